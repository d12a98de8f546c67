//! What every request passes through on its way in and out, whatever its
//! route: a CORS preflight answered and cross-origin answers marked
//! ([`super::cors`]), then one count and one log line per refusal
//! ([`super::count`]).
//!
//! The outermost service, around axum's whole router, rather than a layer
//! inside it: axum boxes the service and the future of every layer it puts
//! around a route (`Router::layer`), per request, and `axum::middleware`
//! boxes once more; this allocates nothing of its own. The route a request
//! goes to is found again by its path in [`RouteCounts`], which the route
//! table fills with the same patterns as the router.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::response::Response;
use hyper::header::HeaderValue;
use hyper::Request;
use tower::Service;

use super::app::App;
use super::cors;
use super::count::{RouteCounts, RouteId};

/// `S` (the router) behind the front door.
#[derive(Clone)]
pub struct FrontDoor<S> {
    inner: S,
    door: Arc<Door>,
}

/// What the front door needs for every request; one `Arc`, as the service is
/// cloned per request.
struct Door {
    app: Arc<App>,
    routes: RouteCounts,
}

impl<S> FrontDoor<S> {
    /// `inner` behind the front door of `app`; `routes` are the patterns `inner` routes by.
    pub fn new(inner: S, routes: RouteCounts, app: Arc<App>) -> FrontDoor<S> {
        FrontDoor {
            inner,
            door: Arc::new(Door { app, routes }),
        }
    }
}

impl<S, B> Service<Request<B>> for FrontDoor<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Answer<S::Future> {
        let route = self.door.routes.route_of(req.uri().path());
        let origin = cors::allowed_origin(&self.door.app, req.headers());
        // A preflight's answer carries its CORS headers already; a routed
        // answer gets them marked when it is ready.
        let (step, origin) = if cors::is_preflight(req.method(), req.headers()) {
            let response = Some(cors::preflight(origin));
            (Step::Answered { response }, None)
        } else {
            let future = self.inner.call(req);
            (Step::Routed { future }, origin)
        };
        Answer {
            step,
            door: self.door.clone(),
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
        door: Arc<Door>,
        route: Option<RouteId>,
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
        let door = &**this.door;
        door.routes
            .record(&door.app.metrics, *this.route, &response);
        Poll::Ready(Ok(response))
    }
}
