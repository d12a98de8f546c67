//! Client (ALB1) connections: Pingora's own HTTP/1 loop over one connection
//! (the one `HttpServerApp`'s blanket `ServerApp` runs), with limits
//! applied to every request on it, not only the first:
//! - an idle connection waits at most `downstream_keepalive_secs` for its next
//!   request. Pingora's loop gives 60 s before the first request, then carries
//!   HTTP/1.1's "keep alive forever" (or a client's `Keep-Alive: timeout=`) to
//!   the next ones. It must outlast ALB1's idle timeout, so ALB1 closes first.
//! - from its first byte, a request head must be complete within
//!   `request_header_timeout_secs`. Pingora bounds each read of a head (by
//!   the keep-alive timeout), not the head.
//! - at most `downstream_max_requests` requests per connection; Pingora's own
//!   count of the reuses left (`keepalive_reuses_remaining`), which our loop
//!   carries from request to request as Pingora's does.
//!
//! Both are enforced by [`ReadDeadline`], a wrapper around the client stream,
//! and Pingora's own keep-alive timer is left off ("forever"): Pingora would
//! register a timer for every read that waits for a request, where
//! `ReadDeadline` keeps one tokio timer per connection and moves it only when
//! it fires before the current wait's deadline (or must fire sooner): on the
//! usual path that is one clock read per request, no timer registration and
//! no timer reset.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::config::DownstreamConfig;
use crate::drain::Counted;

/// Pingora's keep-alive setting for "keep the connection, no timer of
/// yours": [`ReadDeadline`] times the wait instead.
const KEEPALIVE_UNTIMED: Option<u64> = Some(0);

/// A Pingora HTTP app (the proxy) behind the per-request connection limits.
pub struct Downstream<A> {
    /// The HTTP application each request goes to (`HttpProxy`).
    pub app: Arc<A>,
    /// The limits.
    pub limits: DownstreamConfig,
    /// Counts the connections cut by `request_header_timeout_secs`.
    pub head_timeouts: IntCounter,
    /// Client connections open now, across every proxy service: each is
    /// counted while its loop runs, so the drain can wait for kept
    /// connections as well as for requests.
    pub open: Arc<AtomicUsize>,
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Downstream<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _open = Counted::start(&self.open);
        let mut stream: Stream = Box::new(ReadDeadline::new(
            stream,
            self.limits,
            self.head_timeouts.clone(),
        ));
        let mut session = ServerSession::new_http1(stream);
        // As Pingora's loop, but the wait for the first request is ours to time.
        session.set_keepalive(if *shutdown.borrow() {
            None
        } else {
            KEEPALIVE_UNTIMED
        });
        // Pingora counts the reuses left after this request: at 0 the
        // response says `Connection: close`, so the count is one less.
        session.set_keepalive_reuses_remaining(Some(self.limits.max_requests - 1));
        loop {
            let (next, persistent) = self
                .app
                .process_new_http(session, shutdown)
                .await?
                .consume();
            stream = next;
            if let Some(deadline) = ReadDeadline::of(&stream) {
                deadline.next_request();
            }
            session = ServerSession::new_http1(stream);
            if let Some(settings) = persistent {
                settings.apply_to_session(&mut session);
            }
            // A kept-alive connection (HTTP/1.1's "forever", or a client's own
            // `Keep-Alive: timeout=`) waits untimed by Pingora: ours applies.
            // An off keep-alive (None: `Connection: close`, shutting down)
            // stays off.
            if session.get_keepalive().is_some() {
                session.set_keepalive(KEEPALIVE_UNTIMED);
            }
        }
    }

    /// Called once the service stops accepting. Pingora's proxy would close
    /// every idle kept connection here; a client (ALB1) may be sending on one
    /// at that moment and get no answer. They stay open instead: each is
    /// answered once more with `Connection: close` (Pingora does so while
    /// shutting down), or ends when the client closes it or at
    /// `downstream_keepalive_secs` — within the grace period (see `drain`).
    async fn cleanup(&self) {}
}

/// Where a connection is in its current request, for [`ReadDeadline`]:
/// waiting for its first byte, reading the rest of its head, past its head.
/// `_TIMED`: the deadline of that wait is set.
const IDLE: u8 = 0;
const IDLE_TIMED: u8 = 1;
const HEAD: u8 = 2;
const HEAD_TIMED: u8 = 3;
const BODY: u8 = 4;

/// The client stream, with a deadline on the reads that wait for a request:
/// while idle, `downstream_keepalive_secs` for its first byte; then, until
/// [`head_complete`], `request_header_timeout_secs` for the rest of its head.
/// Every I/O call goes to the stream inside; a read that would block past
/// the deadline fails with `TimedOut` instead, and Pingora closes the
/// connection.
#[derive(Debug)]
pub struct ReadDeadline {
    inner: Stream,
    limits: DownstreamConfig,
    /// IDLE → HEAD (first byte read) → BODY ([`head_complete`]) → IDLE
    /// ([`ReadDeadline::next_request`]); IDLE and HEAD become `_TIMED` on
    /// their first read that would block. Atomic because `head_complete`
    /// and `next_request` reach it through shared references to the stream.
    phase: AtomicU8,
    /// The deadline of the current wait, in the `_TIMED` phases. Set by the
    /// wait's first read that would block: a head that arrives whole, or a
    /// request already waiting, costs no clock read. (A head's limit so
    /// counts from its first partial read, microseconds after its first byte.)
    deadline: Instant,
    /// The connection's one timer, made by the first read that would block:
    /// at the current wait's deadline or before it (left at an earlier
    /// wait's), never after it.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Counts a head cut by its deadline.
    head_timeouts: IntCounter,
}

impl ReadDeadline {
    fn new(inner: Stream, limits: DownstreamConfig, head_timeouts: IntCounter) -> Self {
        ReadDeadline {
            inner,
            limits,
            phase: AtomicU8::new(IDLE),
            deadline: Instant::now(),
            sleep: None,
            head_timeouts,
        }
    }

    /// The deadline wrapper in a stream this module made.
    fn of(stream: &Stream) -> Option<&ReadDeadline> {
        (**stream).as_any().downcast_ref::<ReadDeadline>()
    }

    fn next_request(&self) {
        self.phase.store(IDLE, Ordering::Relaxed);
    }

    /// Fails the read once the phase's deadline has passed; `Pending` (with
    /// a wake-up at the deadline) before.
    fn poll_deadline(&mut self, cx: &mut Context<'_>, phase: u8) -> Poll<io::Result<()>> {
        let idle = matches!(phase, IDLE | IDLE_TIMED);
        let (timed, limit) = if idle {
            (IDLE_TIMED, self.limits.keepalive)
        } else {
            (HEAD_TIMED, self.limits.request_header_timeout)
        };
        if phase != timed {
            self.deadline = Instant::now() + limit;
            self.phase.store(timed, Ordering::Relaxed);
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        // The timer is moved only where it would fire late (a head's
        // deadline is nearer than the idle wait's before it); one set for an
        // earlier wait fires early and is moved then, once per wait that
        // outlives it instead of once per request.
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        while sleep.as_mut().poll(cx).is_ready() {
            if sleep.deadline() >= deadline {
                return Poll::Ready(Err(self.timed_out(idle, limit)));
            }
            sleep.as_mut().reset(deadline);
        }
        Poll::Pending
    }

    /// The error that ends a read past its deadline, counted and logged.
    fn timed_out(&self, idle: bool, limit: Duration) -> io::Error {
        let why = if idle {
            tracing::debug!(
                limit_secs = limit.as_secs_f64(),
                "idle connection closed after downstream_keepalive_secs"
            );
            "no request within downstream_keepalive_secs"
        } else {
            self.head_timeouts.inc();
            tracing::info!(
                limit_secs = limit.as_secs_f64(),
                "request head not complete within request_header_timeout_secs: connection closed"
            );
            "request head not complete within request_header_timeout_secs"
        };
        io::Error::new(io::ErrorKind::TimedOut, why)
    }
}

/// Tells the connection's [`ReadDeadline`] that the current request's head
/// is complete. Called from the first `ProxyHttp` hook after Pingora parsed it.
pub fn head_complete(session: &pingora::proxy::Session) {
    if let Some(deadline) = session.stream().and_then(ReadDeadline::of) {
        deadline.phase.store(BODY, Ordering::Relaxed);
    }
}

impl AsyncRead for ReadDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        let phase = this.phase.load(Ordering::Relaxed);
        match (phase, &read) {
            (BODY, _) => read,
            (IDLE | IDLE_TIMED, Poll::Ready(Ok(()))) if buf.filled().len() > before => {
                this.phase.store(HEAD, Ordering::Relaxed);
                read
            }
            (_, Poll::Pending) => this.poll_deadline(cx, phase),
            _ => read,
        }
    }
}

impl AsyncWrite for ReadDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for ReadDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for ReadDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for ReadDeadline {
    fn get_ssl(&self) -> Option<&pingora::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for ReadDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for ReadDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for ReadDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for ReadDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
