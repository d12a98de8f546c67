//! The notes domain: per-user notes in DynamoDB, owned by the verified `sub`.
//!
//! Enabled by `NOTES_TABLE`; without it every operation is
//! [`NotesError::NotConfigured`]. Every read and write is keyed by the
//! caller's own `sub`: another user's note is simply not there (not found,
//! never forbidden). The HTTP side (routes, bodies, statuses) is
//! [`crate::api`]'s; this module speaks notes and DynamoDB only.
//!
//! - [`config`]: the settings; [`validate`]: ids, query, `If-Match`, body; [`cursor`]: signed list cursors
//! - [`store`]: the DynamoDB calls; [`error`]: the refusals; [`metrics`]: the call counter

pub mod config;
pub mod cursor;
pub mod error;
pub mod metrics;
pub mod store;
pub mod validate;

use std::time::Duration;

use self::config::NotesConfig;
use cursor::CursorKey;
pub use error::NotesError;
use metrics::DynamoDbCalls;
use prometheus::Registry;
use store::{Note, Store, StoreError, Written};
use validate::Expect;

/// The whole DynamoDB part of one operation, retries and PUT rounds included.
pub const REQUEST_DEADLINE: Duration = Duration::from_millis(2500);

/// The notes API's state: the store and cursor key when configured.
pub struct Notes {
    service: Option<Service>,
}

/// What a configured notes API needs per request.
struct Service {
    store: Store,
    cursors: CursorKey,
}

/// One page of a caller's notes.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Page {
    /// The notes, in id order.
    pub notes: Vec<Note>,
    /// The cursor of the following page; `None` on the last.
    pub next: Option<String>,
}

impl Notes {
    /// The notes API for `config` (`None`: not configured). Logs one warning
    /// when no `NOTES_CURSOR_KEY` is set. No network until the first request.
    pub fn new(config: Option<&NotesConfig>, registry: &Registry) -> Result<Notes, String> {
        let service = match config {
            None => None,
            Some(c) => Some(Service {
                store: Store::new(c, DynamoDbCalls::new(registry)),
                cursors: match &c.cursor_key {
                    Some(secret) => CursorKey::new(secret),
                    None => {
                        tracing::warn!(
                            "NOTES_CURSOR_KEY is not set: list cursors are signed with a random key \
                             and are valid on this process only"
                        );
                        CursorKey::random().map_err(|e| format!("planb-backend: {e}"))?
                    }
                },
            }),
        };
        Ok(Notes { service })
    }

    fn service(&self) -> Result<&Service, NotesError> {
        self.service.as_ref().ok_or(NotesError::NotConfigured)
    }

    /// Whether `NOTES_TABLE` is set (checked before the caller is authenticated).
    pub fn is_configured(&self) -> bool {
        self.service.is_some()
    }

    /// `owner`'s note `id`.
    pub async fn get(&self, owner: &str, id: &str) -> Result<Note, NotesError> {
        let service = self.service()?;
        let id = validate::note_id(id)?;
        deadline(service.store.get(owner, id))
            .await?
            .ok_or(NotesError::NotFound)
    }

    /// Creates or replaces `owner`'s note `id` with `text`, if `expect` holds.
    pub async fn put(
        &self,
        owner: &str,
        id: &str,
        text: &str,
        expect: Expect,
    ) -> Result<Written, NotesError> {
        let service = self.service()?;
        let id = validate::note_id(id)?;
        deadline(service.store.put(owner, id, text, expect)).await
    }

    /// Deletes `owner`'s note `id`, if `expect` holds.
    pub async fn delete(&self, owner: &str, id: &str, expect: Expect) -> Result<(), NotesError> {
        let service = self.service()?;
        let id = validate::note_id(id)?;
        if deadline(service.store.delete(owner, id, expect)).await? {
            Ok(())
        } else {
            Err(NotesError::NotFound)
        }
    }

    /// One page of `owner`'s notes for the raw query string (`limit`, `cursor`).
    pub async fn list(&self, owner: &str, query: Option<&str>) -> Result<Page, NotesError> {
        let service = self.service()?;
        let q = validate::list_query(query)?;
        let after = match q.cursor {
            None => None,
            Some(c) => Some(
                service
                    .cursors
                    .open(owner, c)
                    .ok_or(NotesError::InvalidCursor)?,
            ),
        };
        let (notes, more) = deadline(service.store.list(owner, after.as_deref(), q.limit)).await?;
        let next = match notes.last() {
            Some(last) if more => Some(service.cursors.seal(owner, &last.id)),
            _ => None,
        };
        Ok(Page { notes, next })
    }
}

/// The store's future under the request deadline; its errors as notes errors.
async fn deadline<T>(
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, NotesError> {
    match tokio::time::timeout(REQUEST_DEADLINE, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(StoreError::ConditionFailed)) => Err(NotesError::PreconditionFailed),
        Ok(Err(StoreError::Contended)) => Err(NotesError::Conflict),
        Ok(Err(StoreError::Unavailable)) => Err(NotesError::Unavailable),
        Err(_) => {
            tracing::warn!("notes request deadline passed while calling DynamoDB");
            Err(NotesError::Unavailable)
        }
    }
}
