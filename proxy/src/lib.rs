//! planb-proxy: the Pingora passthrough between ALB1 and ALB2.
//!
//! `main.rs` reads the CLI and the file; [`build_server`] composes the Pingora
//! services: start-up (SSM, DNS) that the listeners wait for, the load
//! balancer's discovery and health checks, the proxy (behind the downstream
//! connection loop; one single-threaded service per thread), the admin
//! listener, and the drain that ends the process.

#![warn(missing_docs)]

pub mod access_log;
pub mod admin;
pub mod ascii;
pub mod config;
pub mod discovery;
pub mod downstream;
pub mod drain;
pub mod metrics;
pub mod passthrough;
pub mod shared_socket;
pub mod ssm;
pub mod startup;
pub mod upstream;

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use pingora::lb::health_check::TcpHealthCheck;
use pingora::lb::{Backends, LoadBalancer};
use pingora::listeners::ListenerConfig;
use pingora::server::configuration::Opt;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service as ListeningService;

use config::Config;
use discovery::DnsDiscovery;
use downstream::Downstream;
use metrics::Metrics;
use passthrough::{Passthrough, Timeouts};
use upstream::{SharedTarget, Target};

/// The Pingora server with every service, ready for `run_forever`.
///
/// Services and their order: `startup` (upstream name and addresses) →
/// Pingora's bootstrap (sockets from the old process on `-u`, readiness to a
/// waiting `-d` parent) → the proxy and admin listeners. The load balancer's
/// discovery/health loop starts after `startup` too.
pub fn build_server(opt: Opt, config: Config) -> Server {
    let Config {
        server: conf,
        proxy: config,
    } = config;
    let u = &config.upstream;
    let metrics = Arc::new(Metrics::new());
    let target: SharedTarget = Arc::new(ArcSwap::from_pointee(Target {
        host: String::new(),
        port: u.port,
    }));
    // Pingora's -d parent waits for SIGUSR1 from this (the original) pid's child.
    let notify_parent = (opt.daemon && conf.daemon_wait_for_ready).then(std::process::id);

    let mut upstreams = LoadBalancer::from_backends(Backends::new(Box::new(DnsDiscovery {
        target: target.clone(),
        resolver: u.resolver,
        metrics: metrics.clone(),
    })));
    let mut hc = TcpHealthCheck::new();
    hc.peer_template.options.connection_timeout = Some(u.connect_timeout);
    upstreams.set_health_check(hc);
    upstreams.health_check_frequency = Some(u.health_check);
    upstreams.parallel_health_check = true;
    upstreams.update_frequency = Some(u.dns_refresh);

    let mut server = Server::new_with_opt_and_conf(opt, conf);
    let bootstrap = server.bootstrap_as_a_service();

    let mut lb = background_service("upstream discovery and health", upstreams);
    lb.threads = Some(1);
    let upstreams = lb.task();

    let mut startup = background_service(
        "startup",
        startup::Startup {
            upstream: u.clone(),
            target: target.clone(),
            upstreams: upstreams.clone(),
            metrics: metrics.clone(),
            notify_parent,
        },
    );
    startup.threads = Some(1);
    let startup = server.add_service(startup);
    server.add_service(lb).add_dependency(&startup);
    bootstrap.add_dependency(&startup);

    let open = Arc::new(AtomicUsize::new(0));
    let accepting = Arc::new(AtomicUsize::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    // One single-threaded service per thread, all on the same address: the
    // first binds it (or takes it over on -u), the others serve a duplicate
    // of that listening socket (see `shared_socket`).
    // Each accept loop serves what it accepts on its own thread, so no
    // connection is ever woken on another thread than the one serving it
    // (Nginx's worker shape); each has its own upstream connection pool.
    for n in 0..server.configuration.threads {
        let proxy = pingora::proxy::http_proxy(
            &server.configuration,
            Passthrough {
                upstreams: upstreams.clone(),
                timeouts: Timeouts {
                    connect: u.connect_timeout,
                    read: u.read_timeout,
                    idle: u.idle_timeout,
                },
                metrics: metrics.clone(),
                access_log: config.access_log,
                stopping: stopping.clone(),
            },
        );
        let mut proxy_service = ListeningService::new(
            format!("planb-proxy {n}"),
            Downstream {
                app: Arc::new(proxy),
                limits: config.downstream,
                head_timeouts: metrics.request_head_timeouts.clone(),
                open: open.clone(),
            },
        );
        proxy_service.threads = Some(1);
        let address = config.listen.to_string();
        proxy_service
            .add_listener(ListenerConfig::tcp(address.clone()).l4_buffer(config.listen_buffers));
        let service = shared_socket::SharedSocket {
            inner: proxy_service,
            address,
            first: n == 0,
            accepting: accepting.clone(),
        };
        server.add_service(service).add_dependency(&bootstrap);
    }

    let mut drain = background_service(
        "drain",
        drain::Drain {
            in_flight: metrics.in_flight.clone(),
            open,
            accepting,
            stopping,
            phases: Mutex::new(Some(server.watch_execution_phase())),
        },
    );
    drain.threads = Some(1);
    server.add_service(drain);

    if let Some(addr) = config.admin_listen {
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
