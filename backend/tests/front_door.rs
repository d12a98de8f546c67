//! The API's router end to end on loopback: machine callers, the token-source
//! rule under `ALB_ARN`, the page, sign-out, CORS, one request count for
//! every route however it was added, the README's example route, and the
//! verifier as a layer in a service of its own.

mod common;

use std::sync::Arc;

use axum::handler::Handler;
use axum::routing::get as get_route;
use axum::{Router, ServiceExt};
use cognito_verifier::{AuthLayer, Caller, Verifier};
use common::*;
use planb_backend::api::{self, app::App};
use planb_backend::config::Config;
use serde_json::{json, Value};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_machine_caller_is_reported_and_guarded_by_scope() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[("PROFILE_SCOPE", "planb/read")]).await;
    let machine = test_key(0).sign(&machine_claims("planb/read planb/write"));
    let auth = bearer(&machine);
    let (s, _, b) = get(&backend.url("/api/me"), &[("authorization", &auth)]).await;
    assert_eq!(s, 200, "{b}");
    let me: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(me["kind"], "machine");
    assert_eq!(me["sub"], CLIENT);
    assert_eq!(me["username"], Value::Null);
    let (s, _, b) = get(&backend.url("/api/profile"), &[("authorization", &auth)]).await;
    assert_eq!(
        s, 200,
        "the scope guard admits a machine with the scope: {b}"
    );
    let (s, h, b) = get(&backend.url("/api/admin"), &[("authorization", &auth)]).await;
    assert_error(s, &h, &b, 403, "missing_group");
    let without = bearer(&test_key(0).sign(&machine_claims("planb/write")));
    let (s, h, b) = get(&backend.url("/api/profile"), &[("authorization", &without)]).await;
    assert_error(s, &h, &b, 403, "missing_scope");
    let (s, me) = backend.me(&test_key(0).sign(&good_claims())).await;
    assert_eq!((s, me["kind"].as_str()), (200, Some("user")));
    backend.stop().await;
}

#[tokio::test]
async fn with_alb_arn_a_bearer_token_is_accepted_from_a_machine_only() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    // Never fetched: a bearer token is judged without ALB data, and the other requests fail before a key is needed.
    let key_endpoint = KeyServer::start(Answer::Status(500, String::new())).await;
    let backend = Backend::ready(
        &jwks,
        &[
            ("ALB_ARN", ALB_ARN),
            ("ALB_PUBLIC_KEY_URL", &key_endpoint.base),
        ],
    )
    .await;
    let token = test_key(0).sign(&good_claims());
    let machine = test_key(0).sign(&machine_claims("planb/read"));
    let url = backend.url("/api/me");
    // Twice each: the second answer comes from the verified-token cache.
    for _ in 0..2 {
        let (s, h, b) = get(&url, &[("authorization", &bearer(&token))]).await;
        assert_error(s, &h, &b, 401, "user_bearer_token");
        let (s, _, b) = get(&url, &[("authorization", &bearer(&machine))]).await;
        assert_eq!(
            s, 200,
            "ALB1's JWT-validation path sends no data token: {b}"
        );
    }
    let (s, h, b) = get(&url, &[("x-amzn-oidc-accesstoken", &token)]).await;
    assert_error(s, &h, &b, 401, "alb_data_missing");
    let both = [
        ("x-amzn-oidc-accesstoken", token.as_str()),
        ("authorization", &bearer(&token)),
    ];
    let (s, h, b) = get(&url, &both).await;
    assert_error(s, &h, &b, 401, "ambiguous_token");
    assert_eq!(key_endpoint.hits(), 0);
    backend.stop().await;
}

#[tokio::test]
async fn without_alb_arn_a_users_bearer_token_is_accepted() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[]).await;
    let token = test_key(0).sign(&good_claims());
    let (s, _, b) = get(
        &backend.url("/api/me"),
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(s, 200, "{b}");
    backend.stop().await;
}

#[tokio::test]
async fn the_page_loads_without_a_token_under_a_strict_csp() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[]).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
    ] {
        let (s, h, b) = get(&backend.url(path), &[]).await;
        assert_eq!(s, 200, "{path}");
        assert!(!b.is_empty());
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    let (_, _, html) = get(&backend.url("/"), &[]).await;
    assert!(html.contains("/app.js") && !html.contains("http://") && !html.contains("https://"));
    backend.stop().await;
}

#[tokio::test]
async fn logout_expires_the_session_shards_and_redirects_to_cognito() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let off = Backend::ready(&jwks, &[]).await;
    let (s, h, b) = get(&off.url("/logout"), &[]).await;
    assert_error(s, &h, &b, 404, "logout_not_configured");
    assert!(
        b.contains("COGNITO_DOMAIN") && b.contains("LOGOUT_REDIRECT_URL"),
        "{b}"
    );
    off.stop().await;

    let backend = Backend::ready(
        &jwks,
        &[
            (
                "COGNITO_DOMAIN",
                "https://planb.auth.eu-west-1.amazoncognito.com",
            ),
            ("LOGOUT_REDIRECT_URL", "https://app.example.com/signed-out"),
        ],
    )
    .await;
    let expired = |h: &reqwest::header::HeaderMap| -> Vec<String> {
        h.get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .inspect(|c| assert!(c.contains("Max-Age=0") && c.contains("Path=/"), "{c}"))
            .map(|c| c.split('=').next().unwrap().to_string())
            .collect()
    };
    let (s, h, _) = get(&backend.url("/logout"), &[]).await;
    assert_eq!(s, 302);
    assert_eq!(
        h["location"],
        format!(
            "https://planb.auth.eu-west-1.amazoncognito.com/logout?client_id={CLIENT}\
             &logout_uri=https%3A%2F%2Fapp.example.com%2Fsigned-out"
        )
    );
    assert_eq!(
        expired(&h),
        (0..4)
            .map(|i| format!("AWSELBAuthSessionCookie-{i}"))
            .collect::<Vec<_>>()
    );
    let cookies = "AWSELBAuthSessionCookie-0=a; other=1; AWSELBAuthSessionCookie-5=b";
    let (s, h, _) = get(&backend.url("/logout"), &[("cookie", cookies)]).await;
    assert_eq!(s, 302);
    assert_eq!(
        expired(&h),
        ["AWSELBAuthSessionCookie-0", "AWSELBAuthSessionCookie-5"]
    );
    backend.stop().await;
}

async fn preflight(url: &str, origin: &str) -> reqwest::Response {
    client()
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_only_for_the_configured_origins() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let same_origin = Backend::ready(&jwks, &[]).await;
    let r = preflight(&same_origin.url("/api/notes/a"), "https://app.example.com").await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    same_origin.stop().await;

    let backend = Backend::ready(
        &jwks,
        &[("CORS_ALLOWED_ORIGINS", "https://app.example.com")],
    )
    .await;
    let r = preflight(&backend.url("/api/notes/a"), "https://app.example.com").await;
    assert_eq!(r.status(), 204, "answered before any token is asked for");
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{method} in {methods}");
    }
    let r = preflight(&backend.url("/api/me"), "https://evil.example.com").await;
    assert_eq!(r.status(), 403);
    let token = test_key(0).sign(&good_claims());
    let (s, h, _) = get(
        &backend.url("/api/me"),
        &[
            ("origin", "https://app.example.com"),
            ("authorization", &bearer(&token)),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    let (_, h, _) = get(
        &backend.url("/api/me"),
        &[("origin", "https://evil.example.com")],
    )
    .await;
    assert!(h.get("access-control-allow-origin").is_none());
    backend.stop().await;
}

#[tokio::test]
async fn every_route_is_counted_by_its_pattern_and_refusals_by_reason() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[]).await;
    get(&backend.url("/api/notes/abc"), &[]).await;
    get(&backend.url("/api/notes"), &[]).await;
    get(&backend.url("/nope"), &[]).await;
    get(&backend.url("/api/me"), &[]).await;
    let (_, _, text) = get(&backend.url("/metrics"), &[]).await;
    for series in [
        "planb_requests_total{route=\"/api/notes/{*rest}\",status=\"404\"}",
        "planb_requests_total{route=\"/api/notes\",status=\"404\"}",
        "planb_requests_total{route=\"other\",status=\"404\"}",
        "planb_requests_total{route=\"/api/me\",status=\"401\"}",
        "planb_verification_failures_total{reason=\"missing_token\"}",
    ] {
        assert_eq!(metric(&text, series), 1, "{series} in {text}");
    }
    backend.stop().await;
}

fn test_config(jwks: &KeyServer, extra: &[(&str, &str)]) -> Config {
    let env = env(&jwks.url(), extra);
    Config::from_lookup(|k| env.get(k).cloned()).unwrap()
}

async fn serve<S>(service: S) -> (String, tokio::task::JoinHandle<()>)
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, service.into_make_service())
            .await
            .unwrap();
    });
    (base, task)
}

// The example route of backend/README.md ("Adding a protected endpoint"), mounted only here.
async fn readme_example(Caller(who): Caller) -> axum::Json<Value> {
    axum::Json(json!({"owner": &*who.sub, "items": []}))
}

#[tokio::test]
async fn the_readme_example_route_is_one_line_in_the_routes() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let app = Arc::new(App::from_config(&test_config(&jwks, &[])).unwrap());
    app.auth.load_keys().await;
    let routes = api::routes(&app).route(
        "/api/readme-example",
        get_route(readme_example.layer(app.verified().group("admins"))),
    );
    let (base, task) = serve(api::build(routes, app.clone())).await;
    let url = format!("{base}/api/readme-example");
    let alice = test_key(0).sign(&good_claims());
    let (s, _, b) = get(&url, &[("authorization", &bearer(&alice))]).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(serde_json::from_str::<Value>(&b).unwrap()["owner"], SUB);
    let mut bob = good_claims();
    bob["cognito:groups"] = json!(["users"]);
    let bob = test_key(0).sign(&bob);
    let (s, h, b) = get(&url, &[("authorization", &bearer(&bob))]).await;
    assert_error(s, &h, &b, 403, "missing_group");
    let (_, _, text) = get(&format!("{base}/metrics"), &[]).await;
    let series = "planb_requests_total{route=\"/api/readme-example\",status=\"403\"}";
    assert_eq!(metric(&text, series), 1, "{text}");
    task.abort();
}

#[tokio::test]
async fn routes_added_by_nest_merge_or_route_service_are_counted_by_their_pattern() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let app = Arc::new(App::from_config(&test_config(&jwks, &[])).unwrap());
    let nested: Router<Arc<App>> =
        Router::new().route("/items/{id}", get_route(|| async { "item" }));
    let merged: Router<Arc<App>> =
        Router::new().route("/merged/{name}", get_route(|| async { "m" }));
    let service = tower::service_fn(|_req: axum::extract::Request| async {
        Ok::<_, std::convert::Infallible>(axum::response::IntoResponse::into_response("svc"))
    });
    let routes = api::routes(&app)
        .nest("/v2", nested)
        .merge(merged)
        .route_service("/svc/{key}", service);
    let (base, task) = serve(api::build(routes, app.clone())).await;
    for path in ["/v2/items/7", "/merged/x", "/svc/k", "/v2/items/8"] {
        assert_eq!(get(&format!("{base}{path}"), &[]).await.0, 200, "{path}");
    }
    let (s, h, b) = get(&format!("{base}/v2/nothing"), &[]).await;
    assert_error(s, &h, &b, 404, "not_found");
    let put = client()
        .put(format!("{base}/merged/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 405);
    let (_, _, text) = get(&format!("{base}/metrics"), &[]).await;
    for (series, n) in [
        (
            "planb_requests_total{route=\"/v2/items/{id}\",status=\"200\"}",
            2,
        ),
        (
            "planb_requests_total{route=\"/merged/{name}\",status=\"200\"}",
            1,
        ),
        (
            "planb_requests_total{route=\"/svc/{key}\",status=\"200\"}",
            1,
        ),
        (
            "planb_requests_total{route=\"/merged/{name}\",status=\"405\"}",
            1,
        ),
        ("planb_requests_total{route=\"other\",status=\"404\"}", 1),
    ] {
        assert_eq!(metric(&text, series), n, "{series} in {text}");
    }
    task.abort();
}

#[tokio::test]
async fn the_layer_guards_a_service_built_outside_the_binary() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let config = test_config(&jwks, &[]);
    let auth = Arc::new(Verifier::new(config.verifier).unwrap());
    auth.load_keys().await;
    let service: Router = Router::new()
        .route(
            "/whoami",
            get_route(
                |Caller(who): Caller| async move { format!("{} {}", who.sub, who.kind.as_str()) },
            ),
        )
        .route_layer(AuthLayer::new(auth.clone()).scope("planb/write"))
        .route("/open", get_route(|| async { "open" }));
    let (base, task) = serve(service).await;
    let machine = test_key(0).sign(&machine_claims("planb/write"));
    let (s, _, b) = get(
        &format!("{base}/whoami"),
        &[("authorization", &bearer(&machine))],
    )
    .await;
    assert_eq!((s, b.as_str()), (200, format!("{CLIENT} machine").as_str()));
    let user = test_key(0).sign(&good_claims());
    let (s, h, b) = get(
        &format!("{base}/whoami"),
        &[("authorization", &bearer(&user))],
    )
    .await;
    assert_error(s, &h, &b, 403, "missing_scope");
    let (s, h, b) = get(&format!("{base}/whoami"), &[]).await;
    assert_error(s, &h, &b, 401, "missing_token");
    assert_eq!(get(&format!("{base}/open"), &[]).await.0, 200);
    task.abort();
}
