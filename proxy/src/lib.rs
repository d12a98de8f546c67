//! planb-proxy: the Pingora passthrough between ALB1 and ALB2.
//!
//! `main.rs` reads the CLI and the file, then [`prepare`] learns the upstream
//! (SSM, then DNS) before anything listens, and [`build_server`] composes the
//! Pingora services: the proxy, the admin listener, the load balancer's
//! discovery and health checks, and the SSM refresh.

pub mod admin;
pub mod config;
pub mod discovery;
pub mod metrics;
pub mod passthrough;
pub mod ssm;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use pingora::lb::health_check::TcpHealthCheck;
use pingora::lb::{Backends, LoadBalancer};
use pingora::server::configuration::Opt;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service as ListeningService;

use config::{Config, ProxyConfig, Source};
use discovery::{DnsDiscovery, SharedTarget, Target};
use metrics::Metrics;
use passthrough::{Passthrough, Timeouts, Upstreams};

/// What start-up learned: the upstream's name and a load balancer already
/// holding its addresses.
pub struct Prepared {
    pub target: SharedTarget,
    pub upstreams: Upstreams,
    pub metrics: Arc<Metrics>,
}

/// Start-up, before the server listens (and before it forks with `-d`): read
/// the upstream's name (SSM unless `upstream.address`), resolve it, fill the
/// load balancer. Each step retries with backoff within
/// `ssm_startup_timeout_secs`; the error is one line naming what failed.
pub async fn prepare(cfg: &ProxyConfig) -> Result<Prepared, String> {
    let u = &cfg.upstream;
    let metrics = Arc::new(Metrics::new());
    let target = match &u.source {
        Source::Ssm { parameter } => {
            let value = ssm::read_at_startup(parameter, u.ssm_startup_timeout).await?;
            let t = ssm::target_from_value(&value, u.port);
            tracing::info!(parameter = %parameter, upstream = %t, "upstream name read from SSM");
            t
        }
        Source::Fixed { host, port } => Target {
            host: host.clone(),
            port: *port,
        },
    };
    let target: SharedTarget = Arc::new(ArcSwap::from_pointee(target));
    let discovery = DnsDiscovery {
        target: target.clone(),
        resolver: u.resolver,
        metrics: metrics.clone(),
    };

    let started = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match discovery.resolve().await {
            Ok(addrs) => {
                tracing::info!(upstream = %target.load(), addresses = ?addrs, "upstream resolved");
                break;
            }
            Err(e) if started.elapsed() + delay >= u.ssm_startup_timeout => {
                return Err(format!(
                    "cannot resolve the upstream {}: {e}",
                    target.load()
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "upstream DNS lookup failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }

    let mut upstreams = LoadBalancer::from_backends(Backends::new(Box::new(discovery)));
    let mut hc = TcpHealthCheck::new();
    hc.peer_template.options.connection_timeout = Some(u.connect_timeout);
    upstreams.set_health_check(hc);
    upstreams.health_check_frequency = Some(u.health_check);
    upstreams.parallel_health_check = true;
    upstreams.update_frequency = Some(u.dns_refresh);
    upstreams
        .update()
        .await
        .map_err(|e| format!("cannot resolve the upstream {}: {e}", target.load()))?;
    Ok(Prepared {
        target,
        upstreams,
        metrics,
    })
}

/// The Pingora server with every service, ready for `run_forever`.
pub fn build_server(opt: Opt, config: Config, prepared: Prepared) -> Server {
    let Config {
        server: conf,
        proxy,
    } = config;
    let Prepared {
        target,
        upstreams,
        metrics,
    } = prepared;
    let u = &proxy.upstream;

    let mut server = Server::new_with_opt_and_conf(opt, conf);
    // Bootstrap (taking the listening sockets over from the old process on
    // `-u`, and telling a waiting `-d` parent we are ready) runs as a service
    // that the listeners wait for.
    let bootstrap = server.bootstrap_as_a_service();

    let mut lb = background_service("upstream discovery and health", upstreams);
    lb.threads = Some(1);
    let upstreams = lb.task();
    server.add_service(lb);

    if let Source::Ssm { parameter } = &u.source {
        let mut refresh = background_service(
            "ssm refresh",
            ssm::SsmRefresh {
                parameter: parameter.clone(),
                default_port: u.port,
                every: u.ssm_refresh,
                target: target.clone(),
                metrics: metrics.clone(),
            },
        );
        refresh.threads = Some(1);
        server.add_service(refresh);
    }

    let mut proxy_service = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Passthrough {
            upstreams: upstreams.clone(),
            timeouts: Timeouts {
                connect: u.connect_timeout,
                read: u.read_timeout,
                idle: u.idle_timeout,
            },
            metrics: metrics.clone(),
            access_log: proxy.access_log,
        },
        "planb-proxy",
    );
    proxy_service.add_tcp(&proxy.listen.to_string());
    server.add_service(proxy_service).add_dependency(&bootstrap);

    if let Some(addr) = proxy.admin_listen {
        let mut admin = ListeningService::new(
            "admin".to_string(),
            admin::Admin {
                metrics,
                upstreams,
                target,
            },
        );
        admin.threads = Some(1);
        admin.add_tcp(&addr.to_string());
        server.add_service(admin).add_dependency(&bootstrap);
    }
    server
}
