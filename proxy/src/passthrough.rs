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
//!
//! Pingora reads a body by the one value of a `Content-Length` list
//! (`5, 5`, or the same value in repeated fields) and answers 400 when the
//! values differ (RFC 9110 8.6), but forwards the list as it came; we send
//! the one value instead, so what frames the body upstream does not depend on
//! how the server behind reads a list.
//!
//! One other exception to that policy is ours: a header named in `Connection` is
//! dropped as hop-by-hop, but `x-amzn-oidc-*` and `Authorization` are the
//! backend's only evidence of who signed in, so they are always forwarded.
//! (A `Connection` naming `Host` or `X-Forwarded-*` Pingora answers with 400.)

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::Backend;
use pingora::modules::http::HttpModules;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::access_log;
use crate::downstream;
use crate::drain::InFlight;
use crate::metrics::Metrics;
use crate::upstream::Upstreams;

/// Timeouts applied to every upstream connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// One TCP connect.
    pub connect: Duration,
    /// Each read and write.
    pub read: Duration,
    /// A pooled idle connection's lifetime.
    pub idle: Duration,
}

/// The proxy: where requests go and what is recorded about them.
pub struct Passthrough {
    /// The upstream addresses.
    pub upstreams: Arc<Upstreams>,
    /// Upstream connection timeouts.
    pub timeouts: Timeouts,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Whether each request gets an access log line.
    pub access_log: bool,
    /// Set once the process stops serving (SIGTERM, or a reload's SIGQUIT):
    /// from then on Pingora answers every request with `Connection: close`.
    pub stopping: Arc<AtomicBool>,
}

/// Per-request state.
pub struct Ctx {
    /// When the request's processing began (after its head was read).
    start: Instant,
    /// The address picked for the current attempt.
    upstream: Option<SocketAddr>,
    /// An address whose connect failed in this request.
    failed: Option<SocketAddr>,
    retried: bool,
    upstream_start: Option<Instant>,
    /// Counts the request as in progress until the context is dropped.
    _in_flight: InFlight,
}

fn inet(b: &Backend) -> Option<SocketAddr> {
    b.addr.as_inet().copied()
}

/// How long a thread picks by its own copy of the addresses' readiness.
/// Pingora answers readiness per address by hashing the address (SipHash)
/// into a map, more than the rest of the pick; the TCP check that changes
/// it runs every `health_check_secs` (seconds), so a copy this young adds
/// at most this much to the time a failed address keeps getting requests.
const READINESS_TTL: Duration = Duration::from_millis(100);

/// One thread's copy of the readiness of one address set.
struct Readiness {
    /// The address set it was taken of (Pingora swaps the set on a change).
    set: Arc<BTreeSet<Backend>>,
    /// When it was taken.
    at: Instant,
    /// Each address's readiness, in set order.
    ready: Vec<bool>,
}

thread_local! {
    /// This thread's round-robin position over the upstream addresses.
    static TURN: Cell<usize> = const { Cell::new(0) };
    /// This thread's copy of the addresses' readiness.
    static READINESS: RefCell<Option<Readiness>> = const { RefCell::new(None) };
}

impl Passthrough {
    /// The next address round robin that is healthy and not `avoid`; else
    /// the next that is not `avoid` (the health check may lag a recovery);
    /// else none. Healthy as this thread's copy of the readiness says, taken
    /// anew when it is [`READINESS_TTL`] old at `now` or the set changed.
    /// Straight over the address set: Pingora's `select_with` builds a hash
    /// set per call to skip repeats we cannot have.
    fn pick(&self, avoid: Option<SocketAddr>, now: Instant) -> Option<SocketAddr> {
        let backends = self.upstreams.backends();
        let all = backends.get_backend();
        let n = all.len();
        if n == 0 {
            return None;
        }
        let start = TURN.with(|t| {
            let turn = t.get();
            t.set(turn.wrapping_add(1));
            turn % n
        });
        READINESS.with(|cell| {
            let mut cached = cell.borrow_mut();
            let readiness = match &mut *cached {
                Some(r)
                    if Arc::ptr_eq(&r.set, &all)
                        && now.saturating_duration_since(r.at) < READINESS_TTL =>
                {
                    r
                }
                slot => slot.insert(Readiness {
                    ready: all.iter().map(|b| backends.ready(b)).collect(),
                    set: all.clone(),
                    at: now,
                }),
            };
            // Every address once, in set order rotated to start at this turn.
            let in_turn = || {
                let addresses = all.iter().zip(readiness.ready.iter().copied());
                addresses.cycle().skip(start).take(n)
            };
            let other = |(b, _): &(&Backend, bool)| avoid.is_none() || inet(b) != avoid;
            in_turn()
                .filter(other)
                .find(|&(_, ready)| ready)
                .or_else(|| in_turn().find(other))
                .and_then(|(b, _)| inet(b))
        })
    }

    /// Counts a response that ended its kept connection, by why: the
    /// connection's last allowed request, or the process stopping.
    fn count_keepalive_close(&self, session: &Session) {
        if session.get_keepalive_reuses_remaining() == Some(0) {
            self.metrics.closes_max_requests.inc();
        } else if session.get_keepalive().is_none() && self.stopping.load(Ordering::Relaxed) {
            self.metrics.closes_shutdown.inc();
        }
    }

    fn has_other_than(&self, addr: SocketAddr) -> bool {
        self.upstreams
            .backends()
            .get_backend()
            .iter()
            .any(|b| inet(b) != Some(addr))
    }
}

/// Whether a header is one ALB1 adds to say who signed in.
fn is_identity_header(name: &http::HeaderName) -> bool {
    name == http::header::AUTHORIZATION || name.as_str().starts_with("x-amzn-oidc-")
}

/// Copies back into `req` every identity header of `original` that Pingora's
/// hop-by-hop policy removed because `Connection` named it (all its values,
/// in their order).
fn restore_identity_headers(original: &RequestHeader, req: &mut RequestHeader) -> Result<()> {
    for name in original.headers.keys() {
        if !is_identity_header(name) || req.headers.contains_key(name) {
            continue;
        }
        for value in original.headers.get_all(name) {
            req.append_header(name.clone(), value.clone())?;
        }
    }
    Ok(())
}

/// A `Content-Length` sent as a list (`5, 5`) or repeated becomes one field
/// with its one value. Pingora has already refused (400) a list whose values
/// differ or do not parse, and dropped `Content-Length` next to
/// `Transfer-Encoding`, so the first value is every value.
fn collapse_content_length(req: &mut RequestHeader) -> Result<()> {
    let mut values = req.headers.get_all(http::header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(());
    };
    if values.next().is_none() && !first.as_bytes().contains(&b',') {
        return Ok(());
    }
    let one = first
        .as_bytes()
        .split(|&b| b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let one = http::HeaderValue::from_bytes(one)
        .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "invalid Content-Length"))?;
    req.insert_header(http::header::CONTENT_LENGTH, one)
}

/// Header names looked up on every request, made once: a `&str` name is
/// parsed on each lookup.
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
const X_AMZN_TRACE_ID: http::HeaderName = http::HeaderName::from_static("x-amzn-trace-id");

/// `X-Forwarded-For: <prior values>, <client ip>` as one field.
fn append_forwarded_for(req: &mut RequestHeader, client: IpAddr) -> Result<()> {
    let mut prior = req.headers.get_all(&X_FORWARDED_FOR).iter().peekable();
    if prior.peek().is_none() {
        // The usual field is the bare address of one of few clients (ALB1's
        // nodes): a shared copy, where a new value costs two allocations.
        return req
            .append_header("X-Forwarded-For", client_value(client)?)
            .map(drop);
    }
    let mut v = bytes::BytesMut::with_capacity(64);
    for h in prior {
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(b", ");
    }
    crate::ascii::put_ip(&mut v, client);
    req.insert_header("X-Forwarded-For", header_value(v.freeze())?)
}

/// Bytes in, no copy out.
fn header_value(b: Bytes) -> Result<http::HeaderValue> {
    http::HeaderValue::from_maybe_shared(b)
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "x-forwarded-for", e))
}

thread_local! {
    /// The last client address this thread wrote, as a header value.
    static CLIENT_VALUE: RefCell<Option<(IpAddr, http::HeaderValue)>> =
        const { RefCell::new(None) };
}

/// `client` as a header value, shared with the previous request's when it
/// came from the same address.
fn client_value(client: IpAddr) -> Result<http::HeaderValue> {
    CLIENT_VALUE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if let Some((ip, v)) = &*cached {
            if *ip == client {
                return Ok(v.clone());
            }
        }
        let mut v = bytes::BytesMut::with_capacity(40);
        crate::ascii::put_ip(&mut v, client);
        let value = header_value(v.freeze())?;
        // The first clone makes the bytes shared: every later one only
        // counts a reference.
        let out = value.clone();
        *cached = Some((client, value));
        Ok(out)
    })
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
            _in_flight: InFlight::start(&self.metrics.in_flight),
        }
    }

    /// No response modules (Pingora's default adds a disabled compressor).
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    /// The head is complete: its timer stops.
    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        downstream::head_complete(session);
        Ok(())
    }

    /// `GET /healthz` is answered here (ALB1's target health check on the
    /// traffic port); everything else goes upstream, with the client's
    /// address appended to `X-Forwarded-For` (one field, like Nginx's
    /// `$proxy_add_x_forwarded_for`). Appended to the request as read, not
    /// to the copy Pingora sends upstream: the copy's two header maps are
    /// cloned full, so one more header there regrows both.
    async fn request_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<bool> {
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
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let req = session.req_header_mut();
        collapse_content_length(req)?;
        if let Some(ip) = client {
            append_forwarded_for(req, ip)?;
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let now = Instant::now();
        let Some(addr) = self.pick(ctx.failed, now) else {
            return Err(
                Error::explain(ErrorType::ConnectNoRoute, "no upstream address is known").into_up(),
            );
        };
        ctx.upstream = Some(addr);
        ctx.upstream_start = Some(now);
        // An address, never a host name: no blocking resolution here.
        let mut peer = HttpPeer::new(addr, false, String::new());
        let o = &mut peer.options;
        o.connection_timeout = Some(self.timeouts.connect);
        o.read_timeout = Some(self.timeouts.read);
        o.write_timeout = Some(self.timeouts.read);
        o.idle_timeout = Some(self.timeouts.idle);
        Ok(Box::new(peer))
    }

    /// Counts the upstream connection as opened or reused.
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _fd: RawFd,
        _digest: Option<&Digest>,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        if reused {
            self.metrics.upstream_reused.inc();
        } else {
            self.metrics.upstream_opened.inc();
        }
        Ok(())
    }

    /// Puts back the identity headers a `Connection` header nominated.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        let original = session.req_header();
        if original.headers.contains_key(http::header::CONNECTION) {
            restore_identity_headers(original, req)?;
        }
        Ok(())
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
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        self.metrics.count_request(status);
        if e.is_none() {
            self.count_keepalive_close(session);
        }
        if !self.access_log {
            return;
        }
        let req = session.req_header();
        access_log::log(&access_log::Entry {
            method: req.method.as_str(),
            path: req.uri.path(),
            status,
            upstream: ctx.upstream,
            duration: ctx.start.elapsed(),
            trace_id: req
                .headers
                .get(&X_AMZN_TRACE_ID)
                .and_then(|v| v.to_str().ok()),
            error: e.map(|e| e.etype().as_str()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passthrough(addresses: &[&str]) -> Passthrough {
        Passthrough {
            upstreams: Arc::new(Upstreams::try_from_iter(addresses).unwrap()),
            timeouts: Timeouts {
                connect: Duration::from_secs(1),
                read: Duration::from_secs(1),
                idle: Duration::from_secs(1),
            },
            metrics: Arc::new(Metrics::new()),
            access_log: false,
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    #[test]
    fn picks_go_round_and_skip_an_address_marked_down_once_the_copy_is_renewed() {
        let p = passthrough(&["127.0.0.1:81", "127.0.0.2:82"]);
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:81".parse().unwrap(),
            "127.0.0.2:82".parse().unwrap(),
        );
        let t0 = Instant::now();
        let both: BTreeSet<_> = (0..2).map(|_| p.pick(None, t0).unwrap()).collect();
        assert_eq!(both, [a, b].into());

        p.upstreams
            .backends()
            .set_enable(&Backend::new("127.0.0.2:82").unwrap(), false);
        // Within READINESS_TTL this thread's copy still says b is ready.
        let soon: BTreeSet<_> = (0..2).map(|_| p.pick(None, t0).unwrap()).collect();
        assert_eq!(soon, [a, b].into());
        let later = t0 + READINESS_TTL;
        for _ in 0..4 {
            assert_eq!(p.pick(None, later), Some(a));
        }
        // Avoiding the one ready address falls back to the other, ready or not.
        assert_eq!(p.pick(Some(a), later), Some(b));
    }

    fn forwarded_for(prior: &[&str], client: &str) -> Vec<String> {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for v in prior {
            req.append_header("x-forwarded-for", *v).unwrap();
        }
        append_forwarded_for(&mut req, client.parse().unwrap()).unwrap();
        req.headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn forwarded_for_is_one_field_with_the_client_last() {
        assert_eq!(forwarded_for(&[], "10.0.0.1"), ["10.0.0.1"]);
        // Another client on the same thread: not the previous one's value.
        assert_eq!(forwarded_for(&[], "10.0.0.2"), ["10.0.0.2"]);
        assert_eq!(forwarded_for(&[], "10.0.0.2"), ["10.0.0.2"]);
        assert_eq!(forwarded_for(&[], "::1"), ["::1"]);
        assert_eq!(
            forwarded_for(&["203.0.113.7"], "10.0.0.2"),
            ["203.0.113.7, 10.0.0.2"]
        );
        assert_eq!(
            forwarded_for(&["203.0.113.7, 198.51.100.1", "192.0.2.5"], "10.0.0.1"),
            ["203.0.113.7, 198.51.100.1, 192.0.2.5, 10.0.0.1"]
        );
    }

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
