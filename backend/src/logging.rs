//! Logs through tracing: JSON lines by default, text with `LOG_FORMAT=text`.
//!
//! No code path logs a token or a header value: rejections are logged by
//! reason code only, and JWKS events by URL (ours, from the configuration).

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber; the error names `RUST_LOG` when its filter is invalid.
pub fn init(config: &Config) -> Result<(), String> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| format!("planb-backend: RUST_LOG: invalid filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let result = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| format!("planb-backend: logging: {e}"))
}
