//! A team's own service behind planb, on the `cognito-verifier` crate: the
//! example to copy (README.md says how to make it yours).
//!
//! [`routes`] is the one place that says which paths exist and who may call
//! each; the handlers live with their state ([`orders`]); [`app`] adds what
//! every route shares: JSON 404/405, CORS for the configured origins, one access
//! line per request. [`openapi`] describes the routes at `/openapi.json`.

pub mod config;
pub mod openapi;
pub mod orders;

use std::sync::Arc;

use axum::handler::Handler;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cognito_verifier::{access_log, json_error, AuthLayer, Verifier};
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::ToSchema;

use config::Settings;
use openapi::ErrorBody;
use orders::Orders;

/// What every handler can reach.
pub struct AppState {
    /// The service's settings.
    pub settings: Settings,
    /// The verifier, for the routes' guards and `/ready`.
    pub verifier: Arc<Verifier>,
    /// The service's own state.
    pub orders: Orders,
}

impl AppState {
    /// Any verified caller; add `.group(..)`, `.scope(..)` or `.machine_scope(..)` for a guard.
    fn verified(&self) -> AuthLayer {
        AuthLayer::new(self.verifier.clone())
    }
}

/// Every route and who may call it.
pub fn routes(app: &AppState) -> Router<Arc<AppState>> {
    let s = &app.settings;
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/openapi.json", get(openapi::document))
        .route(
            "/api/orders",
            post(orders::place.layer(app.verified().machine_scope(&s.write_scope))),
        )
        .route(
            "/api/orders/{id}",
            get(orders::get.layer(app.verified().machine_scope(&s.read_scope)))
                .patch(orders::set_status.layer(app.verified().group(&s.admin_group))),
        )
}

/// The service: [`routes`] with JSON 404/405, CORS and the access line
/// (who called which route with what result, one log event a request).
pub fn app(state: Arc<AppState>) -> Router {
    let cors = cors(&state.settings);
    routes(&state)
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "not_found", "no such resource") })
        .method_not_allowed_fallback(|| async {
            json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this resource does not take that method",
            )
        })
        .with_state(state)
        .layer(axum::middleware::from_fn(access_log))
        // Outside the routes' verifiers: a preflight carries no credentials
        // and is answered here.
        .layer(cors)
}

/// Cross-origin calls from the configured origins only, with the caller's
/// cookies (ALB's session) or `Authorization`.
fn cors(s: &Settings) -> CorsLayer {
    let origins = s
        .cors_origins
        .iter()
        .map(|o| HeaderValue::from_str(o).expect("checked in config"));
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods(s.cors_methods.clone())
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        .allow_credentials(true)
        .max_age(std::time::Duration::from_secs(600))
}

/// The answer of `/health` and `/ready`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

/// `GET /health`: the process serves (ALB2's health check).
#[utoipa::path(get, path = "/health", tag = "meta",
    responses((status = 200, description = "The process serves", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// `GET /ready`: 200 once the user pools' keys are in, 503 before.
#[utoipa::path(get, path = "/ready", tag = "meta", responses(
    (status = 200, description = "The signing keys are loaded", body = Health),
    (status = 503, description = "Not yet (`not_ready`)", body = ErrorBody)))]
async fn ready(axum::extract::State(app): axum::extract::State<Arc<AppState>>) -> Response {
    if app.verifier.keys_loaded() {
        Json(Health {
            status: "ready".into(),
        })
        .into_response()
    } else {
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the signing keys are not loaded yet",
        )
    }
}
