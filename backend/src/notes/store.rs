//! The notes table in DynamoDB: partition key `owner` (the verified `sub`),
//! sort key `note_id`. Every call names the caller's partition, so no request
//! can reach another user's items.
//!
//! Only `GetItem`, `PutItem`, `DeleteItem` and `Query` are used: the task role
//! allows exactly those. Versions are counters kept with conditional writes.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use tokio::sync::OnceCell;
use tracing::Instrument;

use super::config::NotesConfig;
use super::metrics::{Call, DynamoDbCalls, Outcome};
use super::validate::Expect;

/// TCP connect bound per attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// One attempt's bound (DynamoDB answers in milliseconds).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// One operation's bound, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per operation (the SDK's standard retry: throttling and transient errors).
pub const MAX_ATTEMPTS: u32 = 3;
/// Read-then-conditional-write rounds an unconditional PUT tries before a 409.
const PUT_ROUNDS: usize = 3;

const OWNER: &str = "owner";
const NOTE_ID: &str = "note_id";
const TEXT: &str = "text";
const UPDATED_AT: &str = "updated_at";
const VERSION: &str = "version";

/// One note as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Note {
    /// The id (the sort key).
    pub id: String,
    /// The text, at most 4096 bytes.
    pub text: String,
    /// When it was last written, RFC 3339 UTC.
    pub updated_at: String,
    /// 1 when created, +1 on every replace; `If-Match` compares it.
    pub version: u64,
}

/// Why a store call did not do what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// A condition failed: the version did not match (or the note is absent).
    ConditionFailed,
    /// Concurrent writes kept winning an unconditional PUT.
    Contended,
    /// DynamoDB could not be used (see the outcome in the metrics).
    Unavailable,
}

/// The result of a PUT.
#[derive(Debug)]
pub struct Written {
    /// The note as stored.
    pub note: Note,
    /// Whether it did not exist before.
    pub created: bool,
}

/// The notes table, its client (built on first use, once) and counters.
pub struct Store {
    table: String,
    region: String,
    client: OnceCell<Client>,
    calls: DynamoDbCalls,
}

impl Store {
    /// The store for `config`; no network until the first call.
    pub fn new(config: &NotesConfig, calls: DynamoDbCalls) -> Store {
        Store {
            table: config.table.clone(),
            region: config.region.clone(),
            client: OnceCell::new(),
            calls,
        }
    }

    /// The client from the standard AWS config chain (`AWS_ENDPOINT_URL_DYNAMODB`,
    /// credentials from the environment or the ECS task role), with bounded time.
    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let conf = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(self.region.clone()))
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(CONNECT_TIMEOUT)
                            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                            .operation_timeout(OPERATION_TIMEOUT)
                            .build(),
                    )
                    .retry_config(
                        RetryConfig::standard()
                            .with_max_attempts(MAX_ATTEMPTS)
                            .with_initial_backoff(Duration::from_millis(50))
                            .with_max_backoff(Duration::from_millis(400)),
                    )
                    .load()
                    .await;
                Client::new(&conf)
            })
            .await
    }

    /// `owner`'s note `id`, if it exists (a strongly consistent read).
    pub async fn get(&self, owner: &str, id: &str) -> Result<Option<Note>, StoreError> {
        let out = self
            .client()
            .await
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .consistent_read(true)
            .send();
        let out = self.call(Call::GetItem, out).await?;
        Ok(out.item.as_ref().and_then(|item| note_of(id, item)))
    }

    /// Writes `owner`'s note `id` under the `expect` precondition.
    pub async fn put(
        &self,
        owner: &str,
        id: &str,
        text: &str,
        expect: Expect,
    ) -> Result<Written, StoreError> {
        if let Expect::Version(v) = expect {
            let note = self.put_at(owner, id, text, Some(v)).await?;
            return Ok(Written {
                note,
                created: false,
            });
        }
        // No version given: read the current one, write conditionally on it, so
        // every write gets its own version even when writers race.
        for _ in 0..PUT_ROUNDS {
            let current = self.get(owner, id).await?.map(|n| n.version);
            if current.is_none() && expect == Expect::Exists {
                return Err(StoreError::ConditionFailed);
            }
            match self.put_at(owner, id, text, current).await {
                Ok(note) => {
                    return Ok(Written {
                        note,
                        created: current.is_none(),
                    })
                }
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Contended)
    }

    /// One `PutItem`: version `current + 1` if the stored version is `current`,
    /// version 1 if `current` is `None` and the note does not exist.
    async fn put_at(
        &self,
        owner: &str,
        id: &str,
        text: &str,
        current: Option<u64>,
    ) -> Result<Note, StoreError> {
        let note = Note {
            id: id.to_string(),
            text: text.to_string(),
            updated_at: now_rfc3339(),
            version: current.map_or(1, |v| v.saturating_add(1)),
        };
        let mut item = key(owner, id);
        item.insert(TEXT.into(), AttributeValue::S(note.text.clone()));
        item.insert(
            UPDATED_AT.into(),
            AttributeValue::S(note.updated_at.clone()),
        );
        item.insert(VERSION.into(), AttributeValue::N(note.version.to_string()));
        let req = self
            .client()
            .await
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let c = match current {
            None => Condition::absent(),
            Some(v) => Condition::at_version(v),
        };
        let req = req
            .condition_expression(c.expression)
            .set_expression_attribute_names(Some(c.names))
            .set_expression_attribute_values(c.values);
        self.call(Call::PutItem, req.send()).await?;
        Ok(note)
    }

    /// Deletes `owner`'s note `id` under `expect`; `false` when there was none.
    pub async fn delete(&self, owner: &str, id: &str, expect: Expect) -> Result<bool, StoreError> {
        let req = self
            .client()
            .await
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .return_values(ReturnValue::AllOld);
        let condition = match expect {
            Expect::Any => None,
            Expect::Exists => Some(Condition::exists()),
            Expect::Version(v) => Some(Condition::at_version(v)),
        };
        let req = match condition {
            None => req,
            Some(c) => req
                .condition_expression(c.expression)
                .set_expression_attribute_names(Some(c.names))
                .set_expression_attribute_values(c.values),
        };
        let out = self.call(Call::DeleteItem, req.send()).await?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Up to `limit` of `owner`'s notes in id order, after `after`; and whether more may follow.
    pub async fn list(
        &self,
        owner: &str,
        after: Option<&str>,
        limit: u16,
    ) -> Result<(Vec<Note>, bool), StoreError> {
        // One more than asked: whether a next page exists is known without a second query.
        let out = self
            .client()
            .await
            .query()
            .table_name(&self.table)
            .key_condition_expression("#o = :o")
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_values(":o", AttributeValue::S(owner.to_string()))
            .set_exclusive_start_key(after.map(|id| key(owner, id)))
            .limit(i32::from(limit) + 1)
            .consistent_read(true)
            .send();
        let out = self.call(Call::Query, out).await?;
        let truncated = out.last_evaluated_key.is_some();
        let mut notes: Vec<Note> = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| match item.get(NOTE_ID) {
                Some(AttributeValue::S(id)) => note_of(id, item),
                _ => None,
            })
            .collect();
        let more = notes.len() > usize::from(limit) || (truncated && !notes.is_empty());
        notes.truncate(usize::from(limit));
        Ok((notes, more))
    }

    /// Sends `call` in its own span (a client span, for traces), counts it and maps its error.
    async fn call<T, E, R>(
        &self,
        call: Call,
        send: impl Future<Output = Result<T, SdkError<E, R>>>,
    ) -> Result<T, StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let span = tracing::info_span!(
            "DynamoDB",
            otel.name = format!("DynamoDB.{}", call.label()),
            otel.kind = "client",
            rpc.system = "aws-api",
            rpc.service = "DynamoDB",
            rpc.method = call.label(),
            aws.dynamodb.table_names = self.table.as_str(),
            otel.status_code = tracing::field::Empty,
        );
        let result = self.record(call, send.instrument(span.clone()).await);
        if let Err(StoreError::Unavailable) = result {
            span.record("otel.status_code", "ERROR");
        }
        result
    }

    /// Counts the call and maps its error.
    fn record<T, E, R>(
        &self,
        call: Call,
        result: Result<T, SdkError<E, R>>,
    ) -> Result<T, StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(e) => classify(e),
        };
        self.calls.record(call, outcome);
        match (result, outcome) {
            (Ok(out), _) => Ok(out),
            (Err(_), Outcome::ConditionFailed) => Err(StoreError::ConditionFailed),
            (Err(e), outcome) => {
                tracing::warn!(
                    call = call.label(),
                    outcome = outcome.label(),
                    error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                    "DynamoDB call failed"
                );
                Err(StoreError::Unavailable)
            }
        }
    }
}

/// A `ConditionExpression` with the names and values it uses.
struct Condition {
    expression: &'static str,
    names: HashMap<String, String>,
    values: Option<HashMap<String, AttributeValue>>,
}

impl Condition {
    fn on_id(expression: &'static str) -> Condition {
        Condition {
            expression,
            names: HashMap::from([("#id".to_string(), NOTE_ID.to_string())]),
            values: None,
        }
    }

    /// The note does not exist (a create).
    fn absent() -> Condition {
        Condition::on_id("attribute_not_exists(#id)")
    }

    /// The note exists (`If-Match: *`).
    fn exists() -> Condition {
        Condition::on_id("attribute_exists(#id)")
    }

    /// The note is at version `v` (an absent note fails too).
    fn at_version(v: u64) -> Condition {
        Condition {
            expression: "#v = :v",
            names: HashMap::from([("#v".to_string(), VERSION.to_string())]),
            values: Some(HashMap::from([(
                ":v".to_string(),
                AttributeValue::N(v.to_string()),
            )])),
        }
    }
}

/// What kind of failure an SDK error is.
fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Outcome {
    match err {
        SdkError::TimeoutError(_) => Outcome::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => Outcome::Timeout,
        SdkError::DispatchFailure(d) if d.is_io() => Outcome::Unreachable,
        SdkError::ServiceError(_) => match err.code() {
            Some("ConditionalCheckFailedException") => Outcome::ConditionFailed,
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded",
            ) => Outcome::Throttled,
            _ => Outcome::Error,
        },
        // SdkError is non-exhaustive: construction and response failures, and
        // whatever a later SDK adds, are errors.
        _ => Outcome::Error,
    }
}

fn key(owner: &str, id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (OWNER.to_string(), AttributeValue::S(owner.to_string())),
        (NOTE_ID.to_string(), AttributeValue::S(id.to_string())),
    ])
}

/// A note from a stored item; `None` for an item this code did not write.
fn note_of(id: &str, item: &HashMap<String, AttributeValue>) -> Option<Note> {
    let s = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    };
    let version = match item.get(VERSION) {
        Some(AttributeValue::N(n)) => n.parse().ok()?,
        _ => return None,
    };
    Some(Note {
        id: id.to_string(),
        text: s(TEXT)?,
        updated_at: s(UPDATED_AT)?,
        version,
    })
}

fn now_rfc3339() -> String {
    DateTime::from(SystemTime::now())
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_dynamodb::operation::get_item::GetItemError;

    type Failure = SdkError<GetItemError, ()>;

    fn service(code: &str) -> Failure {
        let meta = ErrorMetadata::builder().code(code).build();
        SdkError::service_error(GetItemError::generic(meta), ())
    }

    #[test]
    fn failures_are_classified() {
        let condition = service("ConditionalCheckFailedException");
        assert_eq!(classify(&condition), Outcome::ConditionFailed);
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
        ] {
            assert_eq!(classify(&service(code)), Outcome::Throttled, "{code}");
        }
        for code in ["ResourceNotFoundException", "AccessDeniedException"] {
            assert_eq!(classify(&service(code)), Outcome::Error, "{code}");
        }
        let refused = Failure::dispatch_failure(ConnectorError::io("connection refused".into()));
        assert_eq!(classify(&refused), Outcome::Unreachable);
        let slow = Failure::dispatch_failure(ConnectorError::timeout("connect timeout".into()));
        assert_eq!(classify(&slow), Outcome::Timeout);
        assert_eq!(
            classify(&Failure::timeout_error("operation timeout")),
            Outcome::Timeout
        );
    }

    #[test]
    fn items_this_code_did_not_write_are_skipped() {
        let mut item = key("alice", "n1");
        assert_eq!(note_of("n1", &item), None);
        item.insert(TEXT.into(), AttributeValue::S("t".into()));
        item.insert(
            UPDATED_AT.into(),
            AttributeValue::S("2026-01-01T00:00:00Z".into()),
        );
        item.insert(VERSION.into(), AttributeValue::N("x".into()));
        assert_eq!(note_of("n1", &item), None);
        item.insert(VERSION.into(), AttributeValue::N("7".into()));
        assert_eq!(note_of("n1", &item).map(|n| n.version), Some(7));
    }
}
