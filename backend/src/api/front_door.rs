//! What every request passes through on its way in and out, whatever its
//! route: a CORS preflight answered and cross-origin answers marked
//! ([`super::cors`]), then one count and one log line per refusal
//! ([`super::count`]).
//!
//! A tower layer written out rather than two `axum::middleware::from_fn`s:
//! each of those boxes a future and a copy of the inner service per request,
//! and together they cost about 5% of a cached `GET /api/me` (measured A/B in
//! docs/benchmarks.md); this one allocates nothing of its own.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use hyper::header::HeaderValue;
use tower::{Layer, Service};

use super::app::App;
use super::{cors, count};

/// Wraps each route (and the fallbacks) in [`FrontDoor`]: `Router::layer`, so
/// the route's pattern is known when the request arrives.
#[derive(Clone)]
pub struct FrontDoorLayer {
    app: Arc<App>,
}

impl FrontDoorLayer {
    /// The front door of `app`'s routes.
    pub fn new(app: Arc<App>) -> FrontDoorLayer {
        FrontDoorLayer { app }
    }
}

impl<S> Layer<S> for FrontDoorLayer {
    type Service = FrontDoor<S>;

    fn layer(&self, inner: S) -> FrontDoor<S> {
        FrontDoor {
            inner,
            app: self.app.clone(),
        }
    }
}

/// The service [`FrontDoorLayer`] wraps around a route.
#[derive(Clone)]
pub struct FrontDoor<S> {
    inner: S,
    app: Arc<App>,
}

impl<S> Service<Request> for FrontDoor<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Answer<S::Future> {
        let route = req.extensions().get::<MatchedPath>().cloned();
        let origin = cors::allowed_origin(&self.app, req.headers());
        // A preflight's answer carries its CORS headers already; a routed
        // answer gets them marked when it is ready.
        let (step, origin) = if cors::is_preflight(&req) {
            let response = Some(cors::preflight(origin));
            (Step::Answered { response }, None)
        } else {
            let future = self.inner.call(req);
            (Step::Routed { future }, origin)
        };
        Answer {
            step,
            app: self.app.clone(),
            route,
            origin,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer to one request, counted (and marked for CORS) when it is ready.
    pub struct Answer<F> {
        #[pin]
        step: Step<F>,
        app: Arc<App>,
        route: Option<MatchedPath>,
        origin: Option<HeaderValue>,
    }
}

pin_project_lite::pin_project! {
    /// Where the answer comes from: the route, or the front door itself.
    #[project = StepProj]
    enum Step<F> {
        Routed { #[pin] future: F },
        Answered { response: Option<Response> },
    }
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.step.project() {
            StepProj::Routed { future } => {
                let Ok(mut r) = ready!(future.poll(cx));
                if let Some(origin) = this.origin.take() {
                    cors::mark(&mut r, origin);
                }
                r
            }
            StepProj::Answered { response } => response
                .take()
                .expect("an answered request's future is polled once it is ready"),
        };
        count::record(this.app, this.route.as_ref(), &response);
        Poll::Ready(Ok(response))
    }
}
