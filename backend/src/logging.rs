//! Logs through tracing: JSON lines by default (`LOG_FORMAT=text` for text),
//! to stdout in batches ([`batch`]): a line is out within 100 ms, and the
//! request threads make no system call for their access lines. In JSON, the
//! access line has a format of its own ([`access_json`]): the same
//! object, at a fraction of the cost. With traces configured, the spans go
//! to [`crate::traces`]; the log lines never carry them.
//!
//! No code path logs a token or a header value: rejections are logged by
//! reason code only, and JWKS events by URL (ours, from the configuration).

mod access_json;
mod batch;

use tracing::Subscriber;
use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat};
use crate::traces::{self, Tracing};
use access_json::AccessJson;
use batch::{BatchWriter, Flusher};

/// What `main` holds until the end: the thread writing the log lines and,
/// with traces on, the exporter.
pub struct Logging {
    flusher: Flusher,
    traces: Option<Tracing>,
}

impl Logging {
    /// Sends the last spans (blocking: call it outside the tokio runtime),
    /// then writes the last lines.
    pub fn finish(self) {
        if let Some(traces) = self.traces {
            traces.shutdown();
        }
        drop(self.flusher);
    }
}

/// Installs the global subscriber; the error names `RUST_LOG` when its
/// filter is invalid, or the traces' variable that is.
pub fn init(config: &Config) -> Result<Logging, String> {
    let (writer, flusher) = batch::batched(std::io::stdout())
        .map_err(|e| format!("planb-backend: logging: cannot start its thread: {e}"))?;
    let (spans, traces) = match &config.traces {
        Some(trace_config) => {
            let (spans, traces) = traces::layer(trace_config)?;
            (Some(spans), Some(traces))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(lines(config.log_format, writer).with_filter(log_filter(config)?))
        .with(spans)
        .try_init()
        .map_err(|e| format!("planb-backend: logging: {e}"))?;
    Ok(Logging { flusher, traces })
}

/// `RUST_LOG`, for the log lines only: the traces' spans do not depend on it.
fn log_filter<S>(config: &Config) -> Result<impl Filter<S> + Send + Sync + 'static, String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    EnvFilter::try_new(&config.log_filter)
        .map(|f| f.and(filter_fn(|meta| !meta.is_span())))
        .map_err(|e| format!("planb-backend: RUST_LOG: invalid filter: {e}"))
}

/// The log lines: tracing-subscriber's own formats, the JSON access line by
/// [`AccessJson`].
fn lines<S>(format: LogFormat, writer: BatchWriter) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .map_event_format(AccessJson::new)
            .boxed(),
        LogFormat::Text => lines.boxed(),
    }
}
