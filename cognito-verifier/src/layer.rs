//! The verifier for any tower service: [`AuthLayer`] authenticates each
//! request (and applies the route's group or scope guards) before the inner
//! service sees it, and hands the caller on as a request extension that axum
//! handlers take with the [`Caller`] extractor. The answer carries the
//! caller too (a response extension), so a middleware outside the layer —
//! an access log — can say who was served.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tower::{Layer, Service};

use crate::identity::{CallerKind, Identity};
use crate::rejection::{json_error, Rejection};
use crate::verifier::Verifier;

/// A requirement on the verified caller, declared on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The caller must be in this Cognito group (403 `missing_group`).
    Group(String),
    /// The token must carry this OAuth scope (403 `missing_scope`).
    Scope(String),
    /// A machine caller's token must carry this OAuth scope (403
    /// `missing_scope`); a user passes: a user's access token carries no
    /// resource-server scopes, the user's own sign-in is the grant.
    MachineScope(String),
}

impl Guard {
    /// Whether `who` meets this guard.
    pub fn check(&self, who: &Identity) -> Result<(), Rejection> {
        match self {
            Guard::Group(g) if !who.in_group(g) => Err(Rejection::MissingGroup),
            Guard::Scope(s) if !who.has_scope(s) => Err(Rejection::MissingScope),
            Guard::MachineScope(s) if who.kind == CallerKind::Machine && !who.has_scope(s) => {
                Err(Rejection::MissingScope)
            }
            _ => Ok(()),
        }
    }
}

/// Authenticates every request before the inner service; refusals are the
/// JSON error responses of [`Rejection`].
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Verifier>,
    guards: Arc<[Guard]>,
}

impl AuthLayer {
    /// Any verified caller may pass.
    pub fn new(auth: Arc<Verifier>) -> AuthLayer {
        AuthLayer {
            auth,
            guards: Arc::new([]),
        }
    }

    /// Also requires `guard`.
    pub fn require(self, guard: Guard) -> AuthLayer {
        let mut guards = self.guards.to_vec();
        guards.push(guard);
        AuthLayer {
            auth: self.auth,
            guards: guards.into(),
        }
    }

    /// Also requires Cognito group `group`.
    pub fn group(self, group: impl Into<String>) -> AuthLayer {
        self.require(Guard::Group(group.into()))
    }

    /// Also requires OAuth scope `scope`.
    pub fn scope(self, scope: impl Into<String>) -> AuthLayer {
        self.require(Guard::Scope(scope.into()))
    }

    /// Also requires OAuth scope `scope` of a machine caller (see [`Guard::MachineScope`]).
    pub fn machine_scope(self, scope: impl Into<String>) -> AuthLayer {
        self.require(Guard::MachineScope(scope.into()))
    }

    /// The verified caller of a request with these headers, guards applied.
    pub async fn admit(&self, headers: &axum::http::HeaderMap) -> Result<Arc<Identity>, Rejection> {
        let who = self.auth.authenticate(headers).await?;
        self.guard(who)
    }

    /// [`Self::admit`] when the answer needs no waiting (see
    /// [`Verifier::authenticate_now`]).
    pub fn admit_now(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Option<Result<Arc<Identity>, Rejection>> {
        Some(
            self.auth
                .authenticate_now(headers)?
                .and_then(|who| self.guard(who)),
        )
    }

    fn guard(&self, who: Arc<Identity>) -> Result<Arc<Identity>, Rejection> {
        self.guards.iter().try_for_each(|g| g.check(&who))?;
        Ok(who)
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around `S`.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B, ResBody> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = axum::http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AuthFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // A cached token or a refusal in the headers: decided here, and the
        // service that was polled ready serves it, without a box or a clone.
        match self.layer.admit_now(req.headers()) {
            Some(Ok(who)) => {
                req.extensions_mut().insert(Caller(who.clone()));
                return AuthFuture::new(AuthState::Admitted {
                    future: self.inner.call(req),
                    caller: Some(Caller(who)),
                });
            }
            Some(Err(why)) => {
                return AuthFuture::new(AuthState::Refused {
                    response: Some(why.into_response()),
                })
            }
            None => {}
        }
        // The clone that was polled ready serves this request; a fresh clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        AuthFuture::new(AuthState::Verifying {
            future: Box::pin(async move {
                match layer.admit(req.headers()).await {
                    Ok(who) => {
                        req.extensions_mut().insert(Caller(who.clone()));
                        let mut answer = inner.call(req).await?.map(Body::new);
                        answer.extensions_mut().insert(Caller(who));
                        Ok(answer)
                    }
                    Err(why) => Ok(why.into_response()),
                }
            }),
        })
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AuthService`].
    pub struct AuthFuture<F, E> {
        #[pin]
        state: AuthState<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = AuthStateProj]
    enum AuthState<F, E> {
        // Admitted at once: the inner service's answer, given the caller.
        Admitted { #[pin] future: F, caller: Option<Caller> },
        // Refused at once (the refusal, until it is taken).
        Refused { response: Option<Response> },
        // A token being verified, then the inner service's answer: boxed, as
        // the verification awaits key fetches.
        Verifying { future: Pin<Box<dyn Future<Output = Result<Response, E>> + Send>> },
    }
}

impl<F, E> AuthFuture<F, E> {
    fn new(state: AuthState<F, E>) -> AuthFuture<F, E> {
        AuthFuture { state }
    }
}

impl<F, E, ResBody> Future for AuthFuture<F, E>
where
    F: Future<Output = Result<axum::http::Response<ResBody>, E>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            AuthStateProj::Admitted { future, caller } => future.poll(cx).map_ok(|r| {
                let mut answer = r.map(Body::new);
                if let Some(caller) = caller.take() {
                    answer.extensions_mut().insert(caller);
                }
                answer
            }),
            AuthStateProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("a refused request's future is polled once it is ready"))),
            AuthStateProj::Verifying { future } => future.as_mut().poll(cx),
        }
    }
}

/// The verified caller, for axum handlers behind an [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Identity>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, Response> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            // A wiring mistake, not the client's: fail closed and say what is missing.
            tracing::error!("a handler takes Caller but its route has no AuthLayer");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "auth_layer_missing",
                "this route takes the verified caller but is not behind AuthLayer",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::test_verifier;
    use axum::routing::get;
    use axum::Router;
    use testkit::keys::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_answer_carries_the_caller_verified_or_cached() {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let verifier = test_verifier(&server).await;
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .route_layer(AuthLayer::new(verifier));
        let token = test_key(0).sign(&good_claims());
        // The first request verifies the token, the second is answered from the cache.
        for _ in 0..2 {
            let req = Request::get("/")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let answer = app.clone().oneshot(req).await.unwrap();
            assert_eq!(answer.status(), 200);
            let Caller(who) = answer.extensions().get::<Caller>().unwrap();
            assert_eq!(&*who.sub, SUB);
        }
        let refused = app.oneshot(Request::get("/").body(Body::empty()).unwrap());
        assert!(refused
            .await
            .unwrap()
            .extensions()
            .get::<Caller>()
            .is_none());
    }
}
