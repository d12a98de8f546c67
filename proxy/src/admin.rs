//! The admin listener: `GET /healthz` and Prometheus `GET /metrics`.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics::Metrics;
use crate::upstream::{SharedTarget, Upstreams};

/// The admin app: what it reports on.
pub struct Admin {
    /// Every metric.
    pub metrics: Arc<Metrics>,
    /// The load balancer, for the addresses and their health.
    pub upstreams: Arc<Upstreams>,
    /// The upstream name in use.
    pub target: SharedTarget,
}

fn text(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .expect("static response parts are valid")
}

impl Admin {
    /// Refreshes the gauges that describe the upstream (addresses and their
    /// health, the name) from the live load balancer, then renders everything.
    fn metrics_text(&self) -> Vec<u8> {
        let m = &self.metrics;
        m.upstream_addresses.reset();
        let backends = self.upstreams.backends();
        for b in backends.get_backend().iter() {
            m.upstream_addresses
                .with_label_values(&[&b.addr.to_string()])
                .set(i64::from(backends.ready(b)));
        }
        m.upstream_name.reset();
        m.upstream_name
            .with_label_values(&[&self.target.load().to_string()])
            .set(1);
        m.render()
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if req.method != http::Method::GET {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"method not allowed\n".to_vec(),
            );
        }
        match req.uri.path() {
            "/healthz" => text(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/metrics" => text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics_text(),
            ),
            _ => text(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}
