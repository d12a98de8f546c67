//! The service of `src/lib.rs` verifying real access tokens from moto's Cognito.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cognito_verifier::{UserPool, Verifier, VerifierConfig};
use serde_json::Value;
use testkit::Moto;
use tower::ServiceExt;

async fn call(app: &axum::Router, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_cognito_token_passes_the_guard_and_others_are_refused() {
    let moto = Moto::start();
    let admin = moto.cognito_user("alice", &["admins"]);
    let user = moto.another_user(&admin, "bob", &[]);

    let pool = UserPool::in_region(&admin.region, &admin.pool_id, [admin.client_id.as_str()])
        .unwrap()
        .with_jwks_url(&admin.jwks_url)
        .unwrap();
    let config = VerifierConfig::builder().user_pool(pool).build().unwrap();
    let registry = prometheus::Registry::new_custom(Some("team".into()), None).unwrap();
    let verifier = Arc::new(Verifier::with_registry(config, &registry).unwrap());
    verifier.load_keys().await;
    assert!(verifier.keys_loaded());
    let app = verifier_outside::app(verifier);

    let (status, body) = call(&app, "/whoami", Some(&admin.access_token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::json!([admin.sub, "alice", "user"]));
    assert_eq!(
        call(&app, "/reports", Some(&admin.access_token)).await.0,
        StatusCode::OK
    );

    let (status, body) = call(&app, "/reports", Some(&user.access_token)).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::FORBIDDEN, &"missing_group".into())
    );
    let (status, body) = call(&app, "/whoami", None).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::UNAUTHORIZED, &"missing_token".into())
    );
    // The ID token is signed by the same pool, but is not an access token.
    let (status, body) = call(&app, "/whoami", Some(&admin.id_token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(call(&app, "/health", None).await.0, StatusCode::OK);

    let mut text = Vec::new();
    prometheus::Encoder::encode(
        &prometheus::TextEncoder::new(),
        &registry.gather(),
        &mut text,
    )
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("team_verification_failures_total{reason=\"missing_token\"} 1\n"),
        "{text}"
    );
}
