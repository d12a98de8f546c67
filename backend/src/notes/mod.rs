//! The notes API: per-user notes in DynamoDB, owned by the verified `sub`.
//!
//! Enabled by `NOTES_TABLE`; without it every `/api/notes` path answers 404
//! `not_configured`. The caller is authenticated before anything else touches
//! the request, and every read and write is keyed by the caller's own `sub`:
//! another user's note is simply not there (404, never 403).
//!
//! - [`config`]: the variables; [`validate`]: ids, query, `If-Match`, body
//! - [`cursor`]: signed list cursors; [`store`]: the DynamoDB calls
//! - [`handler`]: the routes; [`error`]: their refusals; [`metrics`]: counters

pub mod config;
pub mod cursor;
pub mod error;
pub mod handler;
pub mod metrics;
pub mod store;
pub mod validate;

use std::sync::Arc;

use config::NotesConfig;
use cursor::CursorKey;
use metrics::NotesMetrics;
use store::Store;

pub use handler::{handle, owns};

/// The notes API's state: the store and cursor key when configured, and its counters.
pub struct Notes {
    service: Option<Service>,
    metrics: Arc<NotesMetrics>,
}

/// What a configured notes API needs per request.
struct Service {
    store: Store,
    cursors: CursorKey,
}

impl Notes {
    /// The notes API for `config` (`None`: not configured). Logs one warning
    /// when no `NOTES_CURSOR_KEY` is set. No network until the first request.
    pub fn new(config: Option<&NotesConfig>) -> Result<Notes, String> {
        let metrics = Arc::new(NotesMetrics::default());
        let service = match config {
            None => None,
            Some(c) => Some(Service {
                store: Store::new(c, metrics.clone()),
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
        Ok(Notes { service, metrics })
    }

    /// Appends the notes counters to the `/metrics` text.
    pub fn render_metrics(&self, out: &mut String) {
        self.metrics.render(out);
    }
}
