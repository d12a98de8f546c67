//! A bare Pingora passthrough proxy: one `ProxyHttp` with a fixed peer and nothing else
//! (no access log, metrics, `X-Forwarded-For`, discovery or health checks), mimalloc as
//! planb-proxy has. The proxy benchmark runs it beside planb-proxy as the floor of
//! Pingora's own request path on the machine at hand.
//!
//! Environment (set by `bench/bench.py`): `LISTEN_ADDR`, `UPSTREAM_ADDR` (`ip:port`) and
//! `THREADS` (default 1), laid out as planb-proxy lays out its `threads`: that many proxy
//! services of one thread each on the same address, so each serves the connections it
//! accepts on its own runtime (Pingora's fd table hands them one listening socket).
use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::net::SocketAddr;
use std::process::exit;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Proxies every request to one fixed upstream.
struct Bare(SocketAddr);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    // No downstream modules: Pingora's default adds response compression, which planb-proxy does not run.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}
    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}

/// The variable's value, or one line naming what is wrong and exit 2.
fn env_var<T: std::str::FromStr>(name: &str, default: Option<T>) -> T {
    match (std::env::var(name), default) {
        (Ok(v), _) => v.parse().unwrap_or_else(|_| {
            eprintln!("bare-pingora: {name}={v:?} is not valid");
            exit(2)
        }),
        (Err(_), Some(d)) => d,
        (Err(_), None) => {
            eprintln!("bare-pingora: {name} is not set");
            exit(2)
        }
    }
}

fn main() {
    let listen: SocketAddr = env_var("LISTEN_ADDR", None);
    let upstream: SocketAddr = env_var("UPSTREAM_ADDR", None);
    let threads: usize = env_var("THREADS", Some(1));
    let conf = ServerConf {
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    // Pingora closes the shared descriptor once per service at exit; planb-proxy guards
    // against that (its reloads hand the socket over), a benchmark proxy that is killed need not.
    for _ in 0..threads.max(1) {
        let mut service = http_proxy_service(&server.configuration, Bare(upstream));
        service.threads = Some(1);
        service.add_tcp(&listen.to_string());
        server.add_service(service);
    }
    server.run_forever();
}
