//! The hyper accept loop and graceful shutdown.
//!
//! HTTP/1.1 only (ALB speaks it to targets). At most `MAX_CONNECTIONS` are
//! served at once: each holds a semaphore permit, and past the cap the loop
//! waits for one before it accepts, so more clients queue in the kernel's
//! backlog (no error, no 5xx) instead of growing memory. On shutdown the listener is
//! closed first (new connections are refused, ALB has already deregistered
//! the task), in-flight requests finish, idle keep-alive connections are
//! closed, and after [`DRAIN_LIMIT`] whatever is left is dropped: ECS sends
//! SIGKILL 30 s after SIGTERM.

use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;

use crate::api::{self, app::App};
use crate::config::Config;
use crate::metrics::{counter, gauge, Series};
use prometheus::{IntCounter, IntGauge, Registry};

/// The most of a request hyper buffers: the head must fit (a 16 KiB access
/// token, ALB's data token and the other headers), and a notes body is read
/// through it too. A larger head is refused with 431.
pub const READ_BUFFER_MAX: usize = 40 * 1024;
/// hyper's connection state, the tokio task and the response write buffer.
pub const CONNECTION_OVERHEAD: usize = 8 * 1024;
/// The most one slow client can make a connection hold: a full read buffer
/// and a notes body being collected.
pub const CONNECTION_WORST_CASE: usize =
    READ_BUFFER_MAX + cognito_verifier::DEFAULT_BODY_LIMIT + CONNECTION_OVERHEAD;

/// Longest wait for in-flight requests after a shutdown signal.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// Keep-alive connections may idle this long between requests. Above ALB's
/// default 60 s idle timeout, as AWS advises, so ALB closes first and never
/// sends on a connection we are closing.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(65);

/// Builds the app for `config`, starts the background JWKS load, and serves
/// `listener` until `shutdown` completes; then drains.
pub async fn run(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let app = Arc::new(App::from_config(config)?);
    let verifier = app.auth.clone();
    let loader = tokio::spawn(async move { verifier.load_keys().await });
    let connections = Connections::new(app.metrics.registry());
    let service = match &config.traces {
        Some(traces) => crate::traces::traced_router(app, traces.sampling),
        None => api::router(app),
    };
    serve(
        service,
        &connections,
        listener,
        config.max_connections,
        shutdown,
    )
    .await;
    loader.abort();
    Ok(())
}

/// Serves `service` on `listener`, at most `max_connections` at once, until
/// `shutdown` completes, then drains, counting the connections in `metrics`.
pub async fn serve<S>(
    service: S,
    metrics: &Connections,
    listener: TcpListener,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT)
        .max_buf_size(READ_BUFFER_MAX);
    let slots = Arc::new(Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            permit = connection_slot(&slots, metrics) => permit,
            () = &mut shutdown => None,
        };
        let Some(permit) = slot else { break };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let open = OpenConnection::new(permit, metrics);
                    let svc = TowerToHyperService::new(service.clone());
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), svc));
                    tokio::spawn(async move {
                        // Client resets and timeouts end up here; they are the client's business.
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        drop(open);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: listener closed, draining connections");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(DRAIN_LIMIT) => tracing::warn!("drain limit reached; dropping remaining connections"),
    }
}

/// A permit to serve one more connection; waits (and counts the wait) at the
/// cap. `None` only if the semaphore were closed, which `serve` never does.
async fn connection_slot(
    slots: &Arc<Semaphore>,
    metrics: &Connections,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return Some(permit);
    }
    metrics.waits.inc();
    slots.clone().acquire_owned().await.ok()
}

/// The series of the connection counters.
pub const SERIES: [Series; 2] = [
    ("connections_open", "Connections being served."),
    (
        "connection_waits_total",
        "Times the accept loop waited because MAX_CONNECTIONS were open.",
    ),
];

/// The connection counters.
#[derive(Clone)]
pub struct Connections {
    open: IntGauge,
    waits: IntCounter,
}

impl Connections {
    /// The counters, registered in `registry`.
    pub fn new(registry: &Registry) -> Connections {
        Connections {
            open: gauge(registry, SERIES[0]),
            waits: counter(registry, SERIES[1]),
        }
    }
}

/// One served connection: its permit and its place in the open-connections gauge.
struct OpenConnection {
    _permit: OwnedSemaphorePermit,
    open: IntGauge,
}

impl OpenConnection {
    fn new(permit: OwnedSemaphorePermit, metrics: &Connections) -> OpenConnection {
        metrics.open.inc();
        OpenConnection {
            _permit: permit,
            open: metrics.open.clone(),
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// Installs the SIGTERM (ECS stopping the task) and SIGINT (Ctrl-C) handlers
/// now, before the listener exists, so a signal that arrives during start-up
/// is a graceful stop rather than the default kill; the future completes on either.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The ECS task's memory, and what the process needs besides connections
    /// (binary, runtime, allocator slack).
    const TASK_MEMORY: u64 = 512 * 1024 * 1024;
    const PROCESS_BASE: u64 = 48 * 1024 * 1024;

    #[test]
    fn the_worst_case_of_the_defaults_fits_a_512_mib_task() {
        let c = Config::from_lookup(|k| match k {
            "COGNITO_USER_POOL_ID" => Some("eu-west-1_AbC123".into()),
            "COGNITO_REGION" => Some("eu-west-1".into()),
            "COGNITO_APP_CLIENT_ID" => Some("client1".into()),
            "ALB_ARN" => Some(
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/planb/1"
                    .into(),
            ),
            _ => None,
        })
        .unwrap();
        let connections = c.max_connections as u64 * CONNECTION_WORST_CASE as u64;
        // The verifier's caches and queues, with the ALB check on (as deployed).
        let caches = c.verifier.max_cache_bytes();
        let total = PROCESS_BASE + caches + connections;
        assert!(
            total <= TASK_MEMORY,
            "{} MiB of connections + {} MiB of caches + {} MiB base = {} MiB",
            connections >> 20,
            caches >> 20,
            PROCESS_BASE >> 20,
            total >> 20
        );
    }
}
