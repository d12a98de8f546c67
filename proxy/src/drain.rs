//! The end of the process. Pingora's graceful stop (SIGTERM, or SIGQUIT after
//! handing the sockets over) stops accepting, then sleeps the whole
//! `grace_period_seconds` before stopping its runtimes — even with nothing
//! left to wait for. This service exits as soon as nothing is left (as
//! Nginx's graceful quit does):
//! - after SIGTERM, once no request is in progress: a stop is preceded by
//!   ALB1 deregistering the target, so kept connections carry no more
//!   requests;
//! - after a reload's SIGQUIT, once no request is in progress *and* no client
//!   connection is open. ALB1 keeps sending on the connections it holds, and
//!   closing one it is about to send on loses that request; so each is kept
//!   until ALB1 sends on it (answered with `Connection: close`) or closes it
//!   (its idle timeout is below `downstream_keepalive_secs`, which ends the
//!   rest).
//!
//! Either way, not before every proxy service has stopped accepting and
//! started serving what it accepted (see [`crate::shared_socket`]): a
//! connection the kernel handed over just before the stop is served, not
//! reset by the exit. Pingora's grace period bounds the wait. The service also
//! flushes the access log every second and before the exit.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ExecutionPhase, ShutdownWatch};
use pingora::services::background::BackgroundService;
use prometheus::IntGauge;
use tokio::sync::broadcast;

use crate::access_log;

/// How often the counts are looked at while draining.
const POLL: Duration = Duration::from_millis(10);

/// See the module documentation.
pub struct Drain {
    /// Requests in progress (kept by [`InFlight`]).
    pub in_flight: IntGauge,
    /// Client connections open (kept by the downstream loop).
    pub open: Arc<AtomicUsize>,
    /// Proxy services still accepting or with accepted connections not yet
    /// counted in `open` (kept by [`crate::shared_socket`]).
    pub accepting: Arc<AtomicUsize>,
    /// Set here when the stop begins; read by the proxy's metrics.
    pub stopping: Arc<AtomicBool>,
    /// The server's phases (`Server::watch_execution_phase`), to tell a
    /// reload's hand-over from a stop; taken when the service starts.
    pub phases: Mutex<Option<broadcast::Receiver<ExecutionPhase>>>,
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

/// One thing the drain waits for (an open client connection, a service
/// still accepting), counted in its counter while this lives.
pub struct Counted(Arc<AtomicUsize>);

impl Counted {
    /// Counts one more in `count`.
    pub fn start(count: &Arc<AtomicUsize>) -> Counted {
        count.fetch_add(1, Ordering::SeqCst);
        Counted(count.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sets `handing_over` once the server starts sending its sockets to a new
/// process.
async fn watch_for_handover(
    mut phases: broadcast::Receiver<ExecutionPhase>,
    handing_over: Arc<AtomicBool>,
) {
    loop {
        match phases.recv().await {
            Ok(ExecutionPhase::GracefulUpgradeTransferringFds) => {
                handing_over.store(true, Ordering::Relaxed);
                return;
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let handing_over = Arc::new(AtomicBool::new(false));
        let phases = self.phases.lock().ok().and_then(|mut p| p.take());
        if let Some(phases) = phases {
            tokio::spawn(watch_for_handover(phases, handing_over.clone()));
        }
        tokio::select! {
            _ = access_log::flush_periodically() => {}
            stopping = shutdown.wait_for(|stopping| *stopping) => {
                // The sender is gone only when the server itself is gone.
                if stopping.is_err() {
                    return;
                }
            }
        }
        self.stopping.store(true, Ordering::Relaxed);
        let handover = handing_over.load(Ordering::Relaxed);
        tracing::info!(
            handover,
            connections = self.open.load(Ordering::Relaxed),
            accepting = self.accepting.load(Ordering::Relaxed),
            requests = self.in_flight.get(),
            "draining"
        );
        let drained = async {
            while self.accepting.load(Ordering::SeqCst) > 0
                || self.in_flight.get() > 0
                || (handover && self.open.load(Ordering::SeqCst) > 0)
            {
                tokio::time::sleep(POLL).await;
            }
        };
        // The access log is still flushed every second while the drain lasts.
        tokio::select! {
            _ = access_log::flush_periodically() => {}
            _ = drained => {}
        }
        tracing::info!("no request in progress and no connection kept: exiting");
        access_log::flush_all();
        std::process::exit(0);
    }
}
