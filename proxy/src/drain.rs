//! The end of the process. Pingora's graceful stop (SIGTERM, or SIGQUIT after
//! handing the sockets over) stops accepting, closes idle connections, then
//! sleeps the whole `grace_period_seconds` before stopping its runtimes — even
//! with nothing left to wait for. This service exits as soon as no request is
//! in progress (as Nginx's graceful quit does); requests still running keep
//! Pingora's grace period. It also flushes the access log every second and
//! before the exit.

use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::IntGauge;

use crate::access_log;

/// How often the in-flight count is looked at while draining.
const POLL: Duration = Duration::from_millis(10);

/// See the module documentation.
pub struct Drain {
    /// Requests in progress (kept by [`InFlight`]).
    pub in_flight: IntGauge,
}

/// One request in progress: counted from its head to the end of its
/// processing. Held in the request's context, so however the request ends,
/// dropping the context uncounts it.
pub struct InFlight(IntGauge);

impl InFlight {
    /// Counts one more request in `gauge`.
    pub fn start(gauge: &IntGauge) -> InFlight {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = access_log::flush_periodically() => {}
            stopping = shutdown.wait_for(|stopping| *stopping) => {
                // The sender is gone only when the server itself is gone.
                if stopping.is_err() {
                    return;
                }
            }
        }
        while self.in_flight.get() > 0 {
            tokio::time::sleep(POLL).await;
        }
        tracing::info!("no request in progress: exiting");
        access_log::flush_all();
        std::process::exit(0);
    }
}
