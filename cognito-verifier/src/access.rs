//! The access line: one log event per request saying who called what with
//! what result, for the operator who must answer "who deleted this?" or
//! "which client hammers this route?".
//!
//! The event has target `access`, level info, message `access`, and the
//! fields `method`, `route` (the pattern axum matched, not the path: no ids
//! or personal data from the URL), `status`, `duration_ms`, `trace_id` (the
//! `Root` of `x-amzn-trace-id`, the trace ALB started), and for a verified
//! caller `sub`, `kind`, `client_id`, `username`; for a refusal its
//! `refusal` code. Never a token, a cookie or a body: only what the verifier
//! established and the code the answer carries. `RUST_LOG=info,access=off`
//! turns it off, and then nothing is read for it.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;

use crate::layer::Caller;
use crate::rejection::ErrorCode;

/// The target of the access line's event: a subscriber that formats or
/// routes the line by itself filters on it.
pub const ACCESS_TARGET: &str = "access";

/// The `route` of a request no route matched.
pub const UNMATCHED_ROUTE: &str = "other";

/// An access line begun when the request came in, written with its answer.
///
/// For a service that has its own per-request middleware (a request count,
/// say) and wants the line from the same place; otherwise layer
/// [`access_log`] on the router.
pub struct AccessLine {
    started: Instant,
    method: Method,
    trace_id: Option<String>,
}

impl AccessLine {
    /// Begins the line for `request`, or `None` when the `access` target is
    /// off (then nothing is read or copied).
    pub fn start<B>(request: &axum::http::Request<B>) -> Option<AccessLine> {
        tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO).then(|| AccessLine {
            started: Instant::now(),
            method: request.method().clone(),
            trace_id: trace_root(request.headers()).map(String::from),
        })
    }

    /// Writes the line for `answer` to a request of `route` (a pattern): the
    /// caller from the verifier's [`Caller`] on the answer, a refusal's code
    /// from the [`ErrorCode`] that [`json_error`](crate::json_error) marks it with.
    pub fn finish<B>(self, route: &str, answer: &axum::http::Response<B>) {
        let who = answer.extensions().get::<Caller>().map(|Caller(who)| who);
        let refusal = answer
            .extensions()
            .get::<ErrorCode>()
            .map(|ErrorCode(c)| *c);
        tracing::info!(
            target: ACCESS_TARGET,
            method = self.method.as_str(),
            route,
            status = answer.status().as_u16(),
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            trace_id = self.trace_id,
            sub = who.map(|w| &*w.sub),
            kind = who.map(|w| w.kind.as_str()),
            client_id = who.map(|w| &*w.client_id),
            username = who.and_then(|w| w.username.as_deref()),
            refusal,
            "access"
        );
    }
}

/// axum middleware writing one [`AccessLine`] per request:
/// `router.layer(axum::middleware::from_fn(cognito_verifier::access_log))`,
/// outermost but for CORS, so that every route and every refusal is logged
/// by its pattern.
pub async fn access_log(request: Request, next: Next) -> Response {
    let Some(line) = AccessLine::start(&request) else {
        return next.run(request).await;
    };
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let answer = next.run(request).await;
    line.finish(
        matched
            .as_ref()
            .map_or(UNMATCHED_ROUTE, MatchedPath::as_str),
        &answer,
    );
    answer
}

/// The `Root` of an `x-amzn-trace-id` (`Root=1-...;Parent=...;Sampled=1`,
/// with ALB2's `Self=...` in front): the trace ALB1 started.
fn trace_root(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("x-amzn-trace-id")?.to_str().ok()?;
    let root = value
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))?;
    // A well-formed root is short and printable; anything else is not logged.
    let well_formed =
        root.len() <= 64 && root.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    well_formed.then_some(root)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use serde_json::Value;
    use testkit::keys::*;
    use tower::ServiceExt;

    use super::*;
    use crate::verifier::test_verifier;
    use crate::AuthLayer;

    /// The log lines written while `run` runs, with `filter`, as JSON values.
    async fn lines<F: std::future::Future<Output = ()>>(filter: &str, run: F) -> Vec<Value> {
        let written = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = written.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter(filter)
            .with_writer(move || Writer(writer.clone()))
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        run.await;
        drop(guard);
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    struct Writer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn app() -> (Router, KeyServer) {
        let server = KeyServer::jwks(&[test_key(0)]).await;
        let verifier = test_verifier(&server).await;
        let app = Router::new()
            .route("/things/{id}", get(|| async { "ok" }))
            .route_layer(AuthLayer::new(verifier))
            .layer(axum::middleware::from_fn(access_log));
        (app, server)
    }

    fn get_thing(token: Option<&str>) -> axum::http::Request<Body> {
        let mut req = axum::http::Request::get("/things/42").header(
            "x-amzn-trace-id",
            "Self=1-2-3;Root=1-67891233-abcdef012345678912345678;Sampled=1",
        );
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        req.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_line_says_who_called_which_route_with_what_result_and_nothing_secret() {
        let (app, _server) = app().await;
        let token = test_key(0).sign(&good_claims());
        let seen = lines("info", async {
            for req in [
                get_thing(Some(&token)),
                get_thing(None),
                axum::http::Request::post("/nowhere")
                    .body(Body::empty())
                    .unwrap(),
            ] {
                app.clone().oneshot(req).await.unwrap();
            }
        })
        .await;
        let access: Vec<&Value> = seen.iter().filter(|l| l["target"] == "access").collect();
        assert_eq!(access.len(), 3, "{seen:?}");
        let (ok, refused, unrouted) = (access[0], access[1], access[2]);
        assert_eq!(ok["message"], "access");
        assert_eq!(
            (&ok["method"], &ok["route"], &ok["status"]),
            (&"GET".into(), &"/things/{id}".into(), &200.into())
        );
        assert_eq!(ok["trace_id"], "1-67891233-abcdef012345678912345678");
        assert_eq!(
            (&ok["sub"], &ok["kind"], &ok["client_id"]),
            (&SUB.into(), &"user".into(), &CLIENT.into())
        );
        assert!(ok["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(ok.get("refusal").is_none());
        assert_eq!(
            (&refused["status"], &refused["refusal"]),
            (&401.into(), &"missing_token".into())
        );
        assert!(refused.get("sub").is_none());
        assert_eq!(
            (&unrouted["route"], &unrouted["method"], &unrouted["status"]),
            (&UNMATCHED_ROUTE.into(), &"POST".into(), &404.into())
        );
        let everything = serde_json::to_string(&seen).unwrap();
        assert!(
            !everything.contains(&token[..20]),
            "a token was logged: {everything}"
        );
    }

    #[tokio::test]
    async fn with_the_access_target_off_nothing_is_written() {
        let (app, _server) = app().await;
        let seen = lines("info,access=off", async {
            app.oneshot(get_thing(None)).await.unwrap();
        })
        .await;
        assert!(seen.iter().all(|l| l["target"] != "access"), "{seen:?}");
    }

    #[test]
    fn the_trace_root_is_taken_from_any_position_and_only_when_well_formed() {
        let root = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-amzn-trace-id", v.parse().unwrap());
            trace_root(&h).map(String::from)
        };
        let id = "1-67891233-abcdef012345678912345678";
        assert_eq!(root(&format!("Root={id}")).as_deref(), Some(id));
        assert_eq!(
            root(&format!("Self=1-2-3;Root={id};Sampled=1")).as_deref(),
            Some(id)
        );
        assert_eq!(root("Self=1-2-3"), None);
        assert_eq!(root("Root=1-2-\"x\"}"), None);
        assert_eq!(trace_root(&HeaderMap::new()), None);
    }
}
