//! A bare axum server: `GET /api/me` answers a fixed JSON body and verifies nothing,
//! on the same axum, hyper and tokio as planb-backend, with mimalloc as planb-backend
//! has. The verify benchmark runs it beside planb-backend as the floor: what serving
//! that route costs on the machine at hand with no token checked at all.
//!
//! Environment (set by `bench/bench.py`): `LISTEN_ADDR` (`ip:port`), `BODY` (the JSON
//! answered, planb-backend's own answer for the benchmark's token) and
//! `TOKIO_WORKER_THREADS` (read by tokio itself, as in planb-backend; default: one per CPU).
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use std::net::SocketAddr;
use std::process::exit;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The variable's value, or one line naming what is wrong and exit 2.
fn env_var<T: std::str::FromStr>(name: &str) -> T {
    let Ok(v) = std::env::var(name) else {
        eprintln!("bare-axum: {name} is not set");
        exit(2)
    };
    v.parse().unwrap_or_else(|_| {
        eprintln!("bare-axum: {name}={v:?} is not valid");
        exit(2)
    })
}

fn main() {
    let listen: SocketAddr = env_var("LISTEN_ADDR");
    let body: String = env_var("BODY");
    // Each response clones a reference-counted `Bytes`, as planb-backend answers its cached
    // identity, instead of copying the body.
    let body = axum::body::Bytes::from(body);
    let app = Router::new().route(
        "/api/me",
        get(move || {
            let body = body.clone();
            async move { ([(CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("bare-axum: tokio runtime: {e}");
            exit(1)
        });
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .unwrap_or_else(|e| {
                eprintln!("bare-axum: LISTEN_ADDR: cannot listen on {listen}: {e}");
                exit(1)
            })
            .tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("bare-axum: {e}");
            exit(1)
        }
    });
}
