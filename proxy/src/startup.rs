//! Start-up as a Pingora background service that the bootstrap (and so every
//! listener) waits for: the upstream's name (SSM unless `upstream.address`),
//! its addresses, the load balancer filled; then, with SSM, the periodic
//! re-read. It runs after Pingora's `-d` fork, like the discovery service in
//! Pingora's graceful_upgrade example, so a `-u -d` reload only releases
//! systemd (which then sends SIGQUIT to the old process) once the new process
//! has an upstream; a failure exits non-zero with one line and the old process
//! keeps serving.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;

use crate::config::{Source, UpstreamConfig};
use crate::discovery;
use crate::metrics::Metrics;
use crate::ssm;
use crate::upstream::{SharedTarget, Target, Upstreams};

/// The start-up service (see the module documentation).
pub struct Startup {
    /// `proxy.upstream`.
    pub upstream: UpstreamConfig,
    /// Filled with the name read at start, then kept current.
    pub target: SharedTarget,
    /// Filled with the first resolution before the listeners open.
    pub upstreams: Arc<Upstreams>,
    /// For the SSM refresh failures.
    pub metrics: Arc<Metrics>,
    /// With `-d` and `daemon_wait_for_ready`: the pid of the parent that waits
    /// for SIGUSR1 (see [`wait_for_parent_handler`]).
    pub notify_parent: Option<u32>,
}

impl Startup {
    async fn prepare(&self) -> Result<(), String> {
        let u = &self.upstream;
        let target = match &u.source {
            Source::Ssm {
                parameter,
                allowed_hosts,
            } => {
                let value = ssm::read_at_startup(parameter, u.startup_timeout).await?;
                let t = Target::from_ssm_value(&value, u.port, allowed_hosts)
                    .map_err(|e| format!("SSM parameter {parameter}: {e}"))?;
                tracing::info!(parameter = %parameter, upstream = %t, "upstream name read from SSM");
                t
            }
            Source::Fixed { host, port } => Target {
                host: host.clone(),
                port: *port,
            },
        };
        self.target.store(Arc::new(target.clone()));

        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            match discovery::resolve(&target, u.resolver).await {
                Ok(addrs) => {
                    tracing::info!(upstream = %target, addresses = ?addrs, "upstream resolved");
                    break;
                }
                Err(e) if started.elapsed() + delay >= u.startup_timeout => {
                    return Err(format!("cannot resolve the upstream {target}: {e}"));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "upstream DNS lookup failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.upstreams
            .update()
            .await
            .map_err(|e| format!("cannot resolve the upstream {target}: {e}"))
    }
}

/// Pingora's `-d` parent installs its SIGUSR1 handler after the fork, while
/// the child signals readiness as soon as bootstrap starts; a signal sent
/// before the handler exists is lost (or kills the parent). Wait, at most 5 s,
/// until the parent's signal mask shows the handler.
async fn wait_for_parent_handler(pid: u32) {
    const SIGUSR1_BIT: u64 = 1 << (10 - 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return; // the parent is gone: nothing to wait for
        };
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        if caught & SIGUSR1_BIT != 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[async_trait]
impl BackgroundService for Startup {
    async fn start_with_ready_notifier(
        &self,
        _shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        if let Err(e) = self.prepare().await {
            eprintln!("planb-proxy: {e}");
            std::process::exit(1);
        }
        if let Some(pid) = self.notify_parent {
            wait_for_parent_handler(pid).await;
        }
        ready.notify_ready();
        // The service runtime stops at shutdown; the loop needs no exit of its own.
        if let Source::Ssm {
            parameter,
            allowed_hosts,
        } = &self.upstream.source
        {
            ssm::refresh(
                parameter,
                self.upstream.port,
                allowed_hosts,
                self.upstream.ssm_refresh,
                &self.target,
                &self.metrics,
            )
            .await;
        }
    }
}
