//! The notes counters: requests by operation and status, DynamoDB calls by
//! operation and outcome. Fixed arrays of atomics, like the rest of `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A notes API operation, the `op` label of the request counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `GET /api/notes/{id}`.
    Get,
    /// `PUT /api/notes/{id}`.
    Put,
    /// `DELETE /api/notes/{id}`.
    Delete,
    /// `GET /api/notes`.
    List,
    /// Any other method on a notes path.
    Unsupported,
}

impl Op {
    const ALL: [Op; 5] = [Op::Get, Op::Put, Op::Delete, Op::List, Op::Unsupported];

    fn label(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Delete => "delete",
            Op::List => "list",
            Op::Unsupported => "unsupported",
        }
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
    const ALL: [Call; 4] = [Call::GetItem, Call::PutItem, Call::DeleteItem, Call::Query];

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
    const ALL: [Outcome; 6] = [
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

/// Statuses the notes routes answer with, in counter order.
const STATUSES: [u16; 13] = [
    200, 201, 204, 400, 401, 403, 404, 405, 408, 409, 412, 413, 503,
];

/// The notes counters.
pub struct NotesMetrics {
    requests: [[AtomicU64; STATUSES.len()]; Op::ALL.len()],
    calls: [[AtomicU64; Outcome::ALL.len()]; Call::ALL.len()],
}

impl Default for NotesMetrics {
    fn default() -> Self {
        NotesMetrics {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            calls: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl NotesMetrics {
    /// Counts one answered notes request.
    pub fn request(&self, op: Op, status: u16) {
        if let Some(s) = STATUSES.iter().position(|&x| x == status) {
            self.requests[op as usize][s].fetch_add(1, Relaxed);
        }
    }

    /// Counts one DynamoDB call.
    pub fn call(&self, call: Call, outcome: Outcome) {
        self.calls[call as usize][outcome as usize].fetch_add(1, Relaxed);
    }

    /// Appends the Prometheus text of these counters to `out`.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP planb_notes_requests_total Notes API requests, by operation and status.\n",
        );
        out.push_str("# TYPE planb_notes_requests_total counter\n");
        for op in Op::ALL {
            for (s, status) in STATUSES.iter().enumerate() {
                let n = self.requests[op as usize][s].load(Relaxed);
                let _ = writeln!(
                    out,
                    "planb_notes_requests_total{{op=\"{}\",status=\"{status}\"}} {n}",
                    op.label()
                );
            }
        }
        out.push_str(
            "# HELP planb_dynamodb_calls_total DynamoDB calls, by operation and outcome.\n",
        );
        out.push_str("# TYPE planb_dynamodb_calls_total counter\n");
        for call in Call::ALL {
            for outcome in Outcome::ALL {
                let n = self.calls[call as usize][outcome as usize].load(Relaxed);
                let _ = writeln!(
                    out,
                    "planb_dynamodb_calls_total{{op=\"{}\",outcome=\"{}\"}} {n}",
                    call.label(),
                    outcome.label()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_their_labels() {
        let m = NotesMetrics::default();
        m.request(Op::Put, 201);
        m.request(Op::Put, 201);
        m.request(Op::Get, 404);
        m.call(Call::Query, Outcome::Timeout);
        let mut text = String::new();
        m.render(&mut text);
        assert!(text.contains("planb_notes_requests_total{op=\"put\",status=\"201\"} 2\n"));
        assert!(text.contains("planb_notes_requests_total{op=\"get\",status=\"404\"} 1\n"));
        assert!(text.contains("planb_dynamodb_calls_total{op=\"Query\",outcome=\"timeout\"} 1\n"));
        assert!(text.contains("planb_dynamodb_calls_total{op=\"GetItem\",outcome=\"ok\"} 0\n"));
    }
}
