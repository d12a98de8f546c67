//! A team's service guarded by cognito-verifier, written against the crate's
//! root API only: a route any signed-in caller may call, one for a group.

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use cognito_verifier::{AuthLayer, Caller, Verifier};

/// The service: `/whoami` for any verified caller, `/reports` for `admins`,
/// `/health` for anyone.
pub fn app(verifier: Arc<Verifier>) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route_layer(AuthLayer::new(verifier.clone()))
        .route(
            "/reports",
            get(|| async { "for admins" }).route_layer(AuthLayer::new(verifier).group("admins")),
        )
        .route("/health", get(|| async { "ok" }))
}

async fn whoami(Caller(who): Caller) -> Json<(String, Option<String>, String)> {
    let username = who.username.as_deref().map(String::from);
    Json((who.sub.to_string(), username, who.kind.as_str().to_string()))
}
