//! Client (ALB1) connections: Pingora's own HTTP/1 loop over one connection
//! (the one `HttpServerApp`'s blanket `ServerApp` runs), with two limits
//! applied to every request on it, not only the first:
//! - an idle connection waits at most `downstream_keepalive_secs` for its next
//!   request. Pingora's loop gives 60 s before the first request, then carries
//!   HTTP/1.1's "keep alive forever" to the next ones. It must outlast ALB1's
//!   idle timeout, so ALB1 closes first.
//! - from its first byte, a request head must be complete within
//!   `request_header_timeout_secs` ([`HeadTimer`]). Pingora bounds each read
//!   of a head (by the keep-alive timeout), not the head.
//!
//! Neither costs a syscall or a timer on the usual path: Pingora registers its
//! keep-alive timer only when a read would block, and the head timer starts
//! only when a head arrives in pieces and the next piece is not there yet.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::config::DownstreamConfig;

/// A Pingora HTTP app (the proxy) behind the per-request connection limits.
pub struct Downstream<A> {
    /// The HTTP application each request goes to (`HttpProxy`).
    pub app: Arc<A>,
    /// The limits.
    pub limits: DownstreamConfig,
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Downstream<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let keepalive = self.limits.keepalive.as_secs();
        let mut stream: Stream =
            Box::new(HeadTimer::new(stream, self.limits.request_header_timeout));
        let mut session = ServerSession::new_http1(stream);
        // As Pingora's loop, with our keep-alive instead of its 60 s.
        session.set_keepalive((!*shutdown.borrow()).then_some(keepalive));
        session.set_keepalive_reuses_remaining(
            self.app
                .server_options()
                .and_then(|o| o.keepalive_request_limit),
        );
        loop {
            let (next, persistent) = self
                .app
                .process_new_http(session, shutdown)
                .await?
                .consume();
            stream = next;
            if let Some(timer) = HeadTimer::of(&stream) {
                timer.next_request();
            }
            session = ServerSession::new_http1(stream);
            if let Some(settings) = persistent {
                settings.apply_to_session(&mut session);
            }
            // The request just read left HTTP/1.1's "forever" (Some(0)) here;
            // an off keep-alive (None: `Connection: close`, shutting down)
            // stays off.
            if session.get_keepalive().is_some() {
                session.set_keepalive(Some(keepalive));
            }
        }
    }

    async fn cleanup(&self) {
        self.app.http_cleanup().await;
    }
}

/// Where a connection is in its current request, for [`HeadTimer`].
const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BODY: u8 = 2;

/// The client stream, with a deadline on each request head: from the read
/// that brings a head's first byte to [`head_complete`]. Every I/O call goes
/// to the stream inside; a read of a head that would block past the deadline
/// fails with `TimedOut` instead, and Pingora closes the connection.
#[derive(Debug)]
pub struct HeadTimer {
    inner: Stream,
    limit: Duration,
    /// IDLE → HEAD (first byte read) → BODY ([`head_complete`]) → IDLE
    /// ([`HeadTimer::next_request`]). Atomic because `head_complete` reaches
    /// it through Pingora's shared reference to the stream.
    phase: AtomicU8,
    deadline: Instant,
    /// Made only when a read of a head would block.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl HeadTimer {
    fn new(inner: Stream, limit: Duration) -> Self {
        HeadTimer {
            inner,
            limit,
            phase: AtomicU8::new(IDLE),
            deadline: Instant::now(),
            sleep: None,
        }
    }

    /// The timer in a stream this module made.
    fn of(stream: &Stream) -> Option<&HeadTimer> {
        (**stream).as_any().downcast_ref::<HeadTimer>()
    }

    fn next_request(&self) {
        self.phase.store(IDLE, Ordering::Relaxed);
    }

    /// Fails the read once the head's deadline has passed; `Pending` (with
    /// a wake-up at the deadline) before.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                tracing::info!(
                    limit_secs = self.limit.as_secs_f64(),
                    "request head not complete within request_header_timeout_secs: connection closed"
                );
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request head not complete within request_header_timeout_secs",
                )))
            }
        }
    }
}

/// Tells the connection's [`HeadTimer`] that the current request's head is
/// complete. Called from the first `ProxyHttp` hook after Pingora parsed it.
pub fn head_complete(session: &pingora::proxy::Session) {
    if let Some(timer) = session.stream().and_then(HeadTimer::of) {
        timer.phase.store(BODY, Ordering::Relaxed);
    }
}

impl AsyncRead for HeadTimer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        match this.phase.load(Ordering::Relaxed) {
            IDLE => {
                if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                    this.phase.store(HEAD, Ordering::Relaxed);
                    this.deadline = Instant::now() + this.limit;
                }
                read
            }
            HEAD if read.is_pending() => this.poll_deadline(cx),
            _ => read,
        }
    }
}

impl AsyncWrite for HeadTimer {
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
impl Shutdown for HeadTimer {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeadTimer {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadTimer {
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

impl GetTimingDigest for HeadTimer {
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

impl GetProxyDigest for HeadTimer {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadTimer {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeadTimer {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
