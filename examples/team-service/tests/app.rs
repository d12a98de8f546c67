//! The service in process, for what needs no token: health, JSON 404/405,
//! refusals before any key work, CORS preflights. Signed-in callers,
//! machines and bodies through the whole stack: testkit/e2e/test_team_service.py.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use cognito_verifier::{UserPool, Verifier, VerifierConfig};
use team_service::config::Settings;
use team_service::orders::Orders;
use team_service::{app, AppState};
use tower::ServiceExt;

fn service() -> Router {
    let settings = Settings::from_lookup(|k| {
        (k == "CORS_ALLOWED_ORIGINS").then(|| "https://app.example".to_string())
    })
    .unwrap();
    // Keys that are never fetched: every request here is decided before key work.
    let pool = UserPool::new("ap-northeast-1_Example", ["client"])
        .unwrap()
        .with_jwks_url("http://127.0.0.1:9/jwks.json")
        .unwrap();
    let config = VerifierConfig::builder().user_pool(pool).build().unwrap();
    app(Arc::new(AppState {
        orders: Orders::new(10),
        settings,
        verifier: Arc::new(Verifier::new(config).unwrap()),
    }))
}

async fn call(req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let r = service().oneshot(req).await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let body = axum::body::to_bytes(r.into_body(), 65536).await.unwrap();
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    (status, headers, json)
}

#[tokio::test]
async fn health_ready_and_unknown_paths_answer_json() {
    let (status, _, body) = call(Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, _, body) = call(Request::get("/ready").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("not_ready"))
    );
    let (status, _, body) = call(Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _, body) = call(Request::delete("/api/orders").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn a_request_without_a_token_is_refused_before_its_body_is_read() {
    let req = Request::post("/api/orders")
        .header("content-type", "text/plain")
        .body(Body::from("x"));
    let (status, headers, body) = call(req.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );
    assert!(headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn a_preflight_is_answered_for_an_allowed_origin_only() {
    let preflight = |origin: &str| {
        Request::options("/api/orders/1")
            .header("origin", origin)
            .header("access-control-request-method", "PATCH")
            .header("access-control-request-headers", "content-type")
            .body(Body::empty())
            .unwrap()
    };
    let (status, h, _) = call(preflight("https://app.example")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(
        h["access-control-allow-methods"],
        "GET,POST,PUT,PATCH,DELETE"
    );
    let (_, h, _) = call(preflight("https://evil.example")).await;
    assert!(!h.contains_key("access-control-allow-origin"), "{h:?}");
}

#[tokio::test]
async fn the_openapi_document_is_3_1_with_both_schemes_and_every_operation_is_routed() {
    let (status, _, doc) = call(Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["albSession"]["name"], "x-amzn-oidc-accesstoken");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 5, "{:?}", paths.keys());
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(path.replace("{id}", "1"))
                .body(Body::empty())
                .unwrap();
            let (status, _, body) = call(req).await;
            assert!(
                !matches!(
                    body["error"].as_str(),
                    Some("not_found" | "method_not_allowed")
                ),
                "{method} {path}: {status} {body}"
            );
        }
    }
}
