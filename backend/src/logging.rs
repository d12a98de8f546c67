//! Logs through tracing: JSON lines by default, text with `LOG_FORMAT=text`,
//! to stdout in batches ([`batch`]): a line is out within 100 ms, and the
//! request threads make no system call for their access lines.
//!
//! No code path logs a token or a header value: rejections are logged by
//! reason code only, and JWKS events by URL (ours, from the configuration).

mod batch;

use tracing_subscriber::EnvFilter;

pub use batch::Flusher;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber; the error names `RUST_LOG` when its filter
/// is invalid. Hold the [`Flusher`] until the process ends: dropping it
/// writes the lines still waiting.
pub fn init(config: &Config) -> Result<Flusher, String> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| format!("planb-backend: RUST_LOG: invalid filter: {e}"))?;
    let (writer, flusher) = batch::batched(std::io::stdout())
        .map_err(|e| format!("planb-backend: logging: cannot start its thread: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result
        .map(|()| flusher)
        .map_err(|e| format!("planb-backend: logging: {e}"))
}
