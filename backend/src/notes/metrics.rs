//! The DynamoDB call counter (`planb_dynamodb_calls_total{op,result}`) and its label values.

use prometheus::{IntCounterVec, Registry};

use crate::metrics::{counter_vec, Series};

/// The series of the call counter.
pub const SERIES: Series = (
    "dynamodb_calls_total",
    "DynamoDB calls of the notes API, by operation and result.",
);

/// The call counter.
#[derive(Clone)]
pub struct DynamoDbCalls {
    calls: IntCounterVec,
}

impl DynamoDbCalls {
    /// The counter, registered in `registry`, with every series present at 0
    /// (dashboards see it before the first call).
    pub fn new(registry: &Registry) -> DynamoDbCalls {
        let calls = counter_vec(registry, SERIES, &["op", "result"]);
        for call in Call::ALL {
            for outcome in Outcome::ALL {
                calls.with_label_values(&[call.label(), outcome.label()]);
            }
        }
        DynamoDbCalls { calls }
    }

    /// Counts one `call` that ended with `outcome`.
    pub fn record(&self, call: Call, outcome: Outcome) {
        self.calls
            .with_label_values(&[call.label(), outcome.label()])
            .inc();
    }
}

/// A DynamoDB API call, the `op` label of the call counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `GetItem`.
    GetItem,
    /// `PutItem`.
    PutItem,
    /// `DeleteItem`.
    DeleteItem,
    /// `Query`.
    Query,
}

impl Call {
    /// Every call the store makes.
    pub const ALL: [Call; 4] = [Call::GetItem, Call::PutItem, Call::DeleteItem, Call::Query];

    /// The API's name.
    pub fn label(self) -> &'static str {
        match self {
            Call::GetItem => "GetItem",
            Call::PutItem => "PutItem",
            Call::DeleteItem => "DeleteItem",
            Call::Query => "Query",
        }
    }
}

/// How a DynamoDB call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// Its `ConditionExpression` was false (a 412, or a retried PUT).
    ConditionFailed,
    /// DynamoDB throttled it.
    Throttled,
    /// It ran out of time (attempt, operation or request deadline).
    Timeout,
    /// No connection could be made.
    Unreachable,
    /// Anything else DynamoDB or the SDK refused (access, missing table, ...).
    Error,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::ConditionFailed,
        Outcome::Throttled,
        Outcome::Timeout,
        Outcome::Unreachable,
        Outcome::Error,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ConditionFailed => "condition_failed",
            Outcome::Throttled => "throttled",
            Outcome::Timeout => "timeout",
            Outcome::Unreachable => "unreachable",
            Outcome::Error => "error",
        }
    }
}
