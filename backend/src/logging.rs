//! Logs through tracing: JSON lines by default, text with `LOG_FORMAT=text`,
//! to stdout in batches ([`batch`]): a line is out within 100 ms, and the
//! request threads make no system call for their access lines. In JSON, the
//! access line has a formatter of its own ([`access_json`]): the same
//! object, at a fraction of the cost.
//!
//! No code path logs a token or a header value: rejections are logged by
//! reason code only, and JWKS events by URL (ours, from the configuration).

mod access_json;
mod batch;

use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use access_json::AccessJson;

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
    let result = match config.log_format {
        LogFormat::Json => {
            let access = filter_fn(|m| m.target() == access_json::TARGET);
            let others = filter_fn(|m| m.target() != access_json::TARGET);
            tracing_subscriber::registry()
                .with(filter)
                .with(AccessJson::new(writer.clone()).with_filter(access))
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_writer(writer)
                        .with_filter(others),
                )
                .try_init()
        }
        LogFormat::Text => tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(writer))
            .try_init(),
    };
    result
        .map(|()| flusher)
        .map_err(|e| format!("planb-backend: logging: {e}"))
}
