//! The `ProxyHttp` impl: every request goes to one address of the upstream,
//! unchanged but for `X-Forwarded-For`.
//!
//! What Pingora already does and we rely on (pingora-proxy 0.9's standard
//! upstream request policy): method, path, query, headers (repeated ones, any
//! size up to Pingora's 1 MiB header block) and `Host` pass as received; bodies
//! stream; hop-by-hop fields (`Connection` and what it nominates, `Keep-Alive`,
//! `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, `Proxy-*`) are not forwarded
//! and the body is re-framed; WebSocket upgrades are forwarded; a request with
//! both `Content-Length` and `Transfer-Encoding` is forwarded chunked without
//! `Content-Length` and the client connection is closed after it (RFC 9112 6.1).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::{selection::RoundRobin, Backend, LoadBalancer};
use pingora::modules::http::HttpModules;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::metrics::Metrics;

/// The upstream load balancer: the addresses discovery found, round robin,
/// with health from the TCP check.
pub type Upstreams = LoadBalancer<RoundRobin>;

/// Timeouts applied to every upstream connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub idle: Duration,
}

pub struct Passthrough {
    pub upstreams: Arc<Upstreams>,
    pub timeouts: Timeouts,
    pub metrics: Arc<Metrics>,
    pub access_log: bool,
}

/// Per-request state.
pub struct Ctx {
    start: Instant,
    /// The address picked for the current attempt.
    upstream: Option<SocketAddr>,
    /// An address whose connect failed in this request.
    failed: Option<SocketAddr>,
    retried: bool,
    upstream_start: Option<Instant>,
}

fn inet(b: &Backend) -> Option<SocketAddr> {
    b.addr.as_inet().copied()
}

impl Passthrough {
    /// A healthy address other than `avoid`; else any other address (the
    /// health check may lag a recovery); else none.
    fn pick(&self, avoid: Option<SocketAddr>) -> Option<SocketAddr> {
        let other = |b: &Backend| avoid.is_none() || inet(b) != avoid;
        self.upstreams
            .select_with(b"", 256, |b, healthy| healthy && other(b))
            .or_else(|| self.upstreams.select_with(b"", 256, |b, _| other(b)))
            .and_then(|b| inet(&b))
    }

    fn has_other_than(&self, addr: SocketAddr) -> bool {
        self.upstreams
            .backends()
            .get_backend()
            .iter()
            .any(|b| inet(b) != Some(addr))
    }
}

/// The status we answer for an error that ended a request.
fn status_for(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            504
        }
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                // the client is gone: nothing to answer
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

fn short_body(code: u16) -> Bytes {
    Bytes::from_static(match code {
        502 => b"502 bad gateway: the upstream could not be reached\n",
        504 => b"504 gateway timeout: the upstream did not answer in time\n",
        400 => b"400 bad request\n",
        _ => b"error\n",
    })
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            upstream: None,
            failed: None,
            retried: false,
            upstream_start: None,
        }
    }

    /// No response modules (Pingora's default adds a disabled compressor).
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    /// `GET /healthz` is answered here (ALB1's target health check on the
    /// traffic port); everything else goes upstream.
    async fn request_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<bool> {
        self.metrics.in_flight.inc();
        let req = session.req_header();
        if req.uri.path() == "/healthz" && req.method == http::Method::GET {
            let mut resp = ResponseHeader::build(200, Some(2))?;
            resp.insert_header(http::header::CONTENT_TYPE, "text/plain")?;
            resp.insert_header(http::header::CONTENT_LENGTH, "3")?;
            session.write_response_header(Box::new(resp), false).await?;
            session
                .write_response_body(Some(Bytes::from_static(b"ok\n")), true)
                .await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let Some(addr) = self.pick(ctx.failed) else {
            return Err(
                Error::explain(ErrorType::ConnectNoRoute, "no upstream address is known").into_up(),
            );
        };
        ctx.upstream = Some(addr);
        ctx.upstream_start = Some(Instant::now());
        // An address, never a host name: no blocking resolution here.
        let mut peer = HttpPeer::new(addr, false, String::new());
        let o = &mut peer.options;
        o.connection_timeout = Some(self.timeouts.connect);
        o.read_timeout = Some(self.timeouts.read);
        o.write_timeout = Some(self.timeouts.read);
        o.idle_timeout = Some(self.timeouts.idle);
        Ok(Box::new(peer))
    }

    /// Appends the client's address to `X-Forwarded-For` (one field, like
    /// Nginx's `$proxy_add_x_forwarded_for`).
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(client) = session.client_addr().and_then(|a| a.as_inet()) else {
            return Ok(());
        };
        let ip = client.ip().to_string();
        let mut prior = req.headers.get_all("x-forwarded-for").iter().peekable();
        let value = if prior.peek().is_none() {
            ip
        } else {
            let mut v = Vec::with_capacity(64);
            for (i, h) in prior.enumerate() {
                if i > 0 {
                    v.extend_from_slice(b", ");
                }
                v.extend_from_slice(h.as_bytes());
            }
            v.extend_from_slice(b", ");
            v.extend_from_slice(ip.as_bytes());
            return req
                .insert_header(
                    "x-forwarded-for",
                    http::HeaderValue::from_bytes(&v).map_err(|e| {
                        Error::because(ErrorType::InvalidHTTPHeader, "x-forwarded-for", e)
                    })?,
                )
                .map(|_| ());
        };
        req.insert_header("x-forwarded-for", value)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(t) = ctx.upstream_start.take() {
            self.metrics
                .upstream_latency
                .observe(t.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// A failed connect is retried once, on another address when there is one.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.metrics.upstream_connect_failures.inc();
        ctx.failed = ctx.upstream;
        let other = ctx.upstream.is_some_and(|a| self.has_other_than(a));
        if !ctx.retried && other {
            ctx.retried = true;
            e.set_retry(true);
        } else {
            e.set_retry(false);
        }
        e
    }

    /// 502 (connect or protocol failure) or 504 (timeout), with a short body.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _ctx: &mut Ctx) -> FailToProxy {
        let code = status_for(e);
        if e.esource() == &ErrorSource::Upstream {
            self.metrics
                .upstream_errors
                .with_label_values(&[e.etype().as_str()])
                .inc();
        }
        if code > 0 {
            if let Err(we) = session
                .respond_error_with_body(code, short_body(code))
                .await
            {
                tracing::debug!(error = %we, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// The access log line and the request counters. Header values of
    /// `x-amzn-oidc-*` are never logged; the trace id is.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        self.metrics.in_flight.dec();
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let code = http::StatusCode::from_u16(status).ok();
        self.metrics
            .requests
            .with_label_values(&[code.as_ref().map(|c| c.as_str()).unwrap_or("0")])
            .inc();
        if !self.access_log {
            return;
        }
        let req = session.req_header();
        let trace_id = req
            .headers
            .get("x-amzn-trace-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let upstream = ctx
            .upstream
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into());
        tracing::info!(
            target: "access",
            method = %req.method,
            path = req.uri.path(),
            status,
            upstream,
            duration_ms = ctx.start.elapsed().as_secs_f64() * 1e3,
            trace_id,
            error = e.map(|e| e.etype().as_str()).unwrap_or(""),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_504_and_other_upstream_failures_502() {
        let up = |t| Error::new(t).into_up();
        assert_eq!(status_for(&up(ErrorType::ConnectTimedout)), 504);
        assert_eq!(status_for(&up(ErrorType::ReadTimedout)), 504);
        assert_eq!(status_for(&up(ErrorType::ConnectRefused)), 502);
        assert_eq!(status_for(&up(ErrorType::ConnectNoRoute)), 502);
        let down = |t| Error::new(t).into_down();
        assert_eq!(status_for(&down(ErrorType::ReadTimedout)), 400);
        assert_eq!(status_for(&down(ErrorType::ConnectionClosed)), 0);
    }
}
