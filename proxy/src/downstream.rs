//! Client (ALB1) connections: the HTTP/1 loop over one connection, around
//! Pingora's own per-request processing, with two limits Pingora does not
//! offer for every request:
//! - an idle connection waits at most `downstream_keepalive_secs` for the
//!   first byte of its next request (Pingora: 60 s before the first request,
//!   then no limit). It must outlast ALB1's idle timeout, so ALB1 closes first.
//! - from that first byte, the whole head must arrive within
//!   `request_header_timeout_secs` (Pingora bounds each read, not the head).
//!
//! The loop is Pingora's own (`HttpServerApp`'s HTTP/1 branch) with the wait
//! for the first byte added; the request itself is `HttpProxy`'s, untouched.
//! It also counts requests in progress, which is what the drain on shutdown
//! waits for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use prometheus::IntGauge;

use crate::config::DownstreamConfig;

tokio::task_local! {
    /// Set by [`head_read`] once the request head is parsed: the head timer
    /// of the connection's task stops there.
    static HEAD_READ: Arc<AtomicBool>;
}

/// Tells the connection loop that the current request's head is complete.
/// Called from the first `ProxyHttp` hook; a no-op outside the loop.
pub fn head_read() {
    let _ = HEAD_READ.try_with(|flag| flag.store(true, Ordering::Relaxed));
}

/// A Pingora HTTP app (the proxy) behind the per-request connection limits.
pub struct Downstream<A> {
    /// The HTTP application each request goes to (`HttpProxy`).
    pub app: Arc<A>,
    /// The limits.
    pub limits: DownstreamConfig,
    /// Requests whose first byte arrived and whose processing has not ended.
    pub in_flight: IntGauge,
}

/// Decrements the in-flight gauge however the request ends.
struct InFlight<'a>(&'a IntGauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl<A: HttpServerApp + Send + Sync + 'static> Downstream<A> {
    /// Waits for the first byte of the next request (left in the stream).
    /// False when the connection idled out, closed, or the server is shutting
    /// down with nothing arriving.
    async fn next_request_starts(&self, stream: &mut Stream, shutdown: &ShutdownWatch) -> bool {
        let mut byte = [0u8; 1];
        let mut shutdown = shutdown.clone();
        tokio::select! {
            biased;
            r = tokio::time::timeout(self.limits.keepalive, stream.try_peek(&mut byte)) => {
                matches!(r, Ok(Ok(true)))
            }
            _ = shutdown.wait_for(|stopping| *stopping) => false,
        }
    }

    /// One request through the app, cut if its head is not complete within
    /// `request_header_timeout`.
    async fn serve(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
        head: &Arc<AtomicBool>,
    ) -> Option<ReusedHttpStream> {
        head.store(false, Ordering::Relaxed);
        let request = HEAD_READ.scope(head.clone(), self.app.process_new_http(session, shutdown));
        tokio::pin!(request);
        tokio::select! {
            biased;
            reused = &mut request => reused,
            _ = tokio::time::sleep(self.limits.request_header_timeout) => {
                if head.load(Ordering::Relaxed) {
                    request.await
                } else {
                    tracing::debug!("request head not complete in time: connection closed");
                    None
                }
            }
        }
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Downstream<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let head = Arc::new(AtomicBool::new(false));
        let mut settings: Option<pingora::apps::HttpPersistentSettings> = None;
        loop {
            if !self.next_request_starts(&mut stream, shutdown).await {
                return None;
            }
            self.in_flight.inc();
            let _in_flight = InFlight(&self.in_flight);
            let mut session = ServerSession::new_http1(stream);
            match settings.take() {
                Some(s) => s.apply_to_session(&mut session),
                // As Pingora's own loop; the idle wait above is ours.
                None if *shutdown.borrow() => session.set_keepalive(None),
                None => session.set_keepalive(Some(self.limits.keepalive.as_secs())),
            }
            let reused = self.serve(session, shutdown, &head).await?;
            let (next, persistent) = reused.consume();
            stream = next;
            settings = persistent;
        }
    }

    async fn cleanup(&self) {
        self.app.http_cleanup().await;
    }
}
