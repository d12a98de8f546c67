//! Logs through tracing: JSON lines by default, text with `LOG_FORMAT=text`;
//! and, with traces configured, the spans to [`crate::traces`].
//!
//! No code path logs a token or a header value: rejections are logged by
//! reason code only, and JWKS events by URL (ours, from the configuration).

use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat};
use crate::traces::{self, Tracing};

/// Installs the global subscriber; the error names `RUST_LOG` when its filter is
/// invalid. With traces on, the exporter's handle, for `main` to flush at the end.
pub fn init(config: &Config) -> Result<Option<Tracing>, String> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| format!("planb-backend: RUST_LOG: invalid filter: {e}"))?;
    let Some(trace_config) = &config.traces else {
        // No traces: the filter is global, and a disabled span or event costs one check.
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stdout);
        let result = match config.log_format {
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .try_init(),
            LogFormat::Text => builder.try_init(),
        };
        return result
            .map(|()| None)
            .map_err(|e| format!("planb-backend: logging: {e}"));
    };
    // Traces on: each layer its own filter; the log lines never carry the traces' spans.
    let logs = filter.and(filter_fn(|meta| !meta.is_span()));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stdout);
    let fmt = match config.log_format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(logs)
            .boxed(),
        LogFormat::Text => fmt.with_filter(logs).boxed(),
    };
    let (spans, tracing) = traces::layer(trace_config)?;
    tracing_subscriber::registry()
        .with(fmt)
        .with(spans)
        .try_init()
        .map_err(|e| format!("planb-backend: logging: {e}"))?;
    Ok(Some(tracing))
}
