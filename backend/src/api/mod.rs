//! The API as one axum router: the routes (method + path → handler, with the
//! verifier and its guards declared on the route), one JSON error conversion
//! ([`error::ApiError`]), and the middleware every request passes through:
//! the request count and refusal log ([`requests`]) and CORS ([`crate::cors`]).
//!
//! How to add a route: `backend/README.md`, "Adding a protected endpoint".
//!
//! - [`app`]: the shared state; [`handlers`]: health, ready, metrics, identity
//! - [`notes`]: the notes routes; [`page`]: the static page; [`logout`]: sign-out

pub mod app;
pub mod error;
pub mod handlers;
pub mod logout;
pub mod notes;
pub mod openapi;
pub mod page;
pub mod requests;
pub mod schemas;

use std::sync::Arc;

use axum::handler::Handler;
use axum::routing::{any, get};
use axum::Router;
use tower::ServiceBuilder;

use crate::cors;
use app::App;
use cognito_verifier::AuthLayer;
use error::ApiError;

impl App {
    /// The verifier for one handler: `get(handler.layer(app.verified()))`,
    /// plus `.group(..)` or `.scope(..)` for a guard. `Handler::layer` rather
    /// than `route_layer`: axum boxes a route layer's service and its future
    /// per request, and wraps the handler in one boxed route more; a handler's
    /// layer is built into the handler's own route. `route_layer` works too.
    pub fn verified(&self) -> AuthLayer {
        AuthLayer::new(self.auth.clone())
    }

    /// The verifier of the notes routes that read: a machine needs [`notes::READ_SCOPE`].
    fn reads_notes(&self) -> AuthLayer {
        self.verified().machine_scope(notes::READ_SCOPE)
    }

    /// The verifier of the notes routes that write: a machine needs [`notes::WRITE_SCOPE`].
    fn writes_notes(&self) -> AuthLayer {
        self.verified().machine_scope(notes::WRITE_SCOPE)
    }
}

/// The route table: every route the API serves, and what each requires.
pub fn routes(app: &App) -> Router<Arc<App>> {
    let table = Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/logout", get(logout::logout))
        .route("/api/me", get(handlers::me.layer(app.verified())))
        .route(
            "/api/admin",
            get(handlers::admin.layer(app.verified().group(&app.admin_group))),
        )
        .route(
            "/api/profile",
            get(handlers::profile.layer(app.verified().scope(&app.profile_scope))),
        );
    if app.notes.is_configured() {
        table
            .route("/api/notes", get(notes::list.layer(app.reads_notes())))
            .route(
                "/api/notes/{id}",
                get(notes::get.layer(app.reads_notes()))
                    .put(notes::put.layer(app.writes_notes()))
                    .delete(notes::delete.layer(app.writes_notes())),
            )
    } else {
        table
            .route("/api/notes", any(notes::not_configured))
            .route("/api/notes/{*rest}", any(notes::not_configured))
    }
}

/// `routes` as the service the binary serves: 404/405 as JSON, then, on
/// every route and the fallback, the request count ([`requests`]) and CORS
/// ([`crate::cors`]). Layered after every route is added, as axum applies a
/// layer to the routes it already has.
pub fn build(routes: Router<Arc<App>>, app: Arc<App>) -> Router {
    let every_request = ServiceBuilder::new()
        .layer(requests::CountRequests::new(app.requests.clone()))
        .layer(cors::RefuseOtherOrigins::new(app.cors.clone()))
        .option_layer(app.cors.layer());
    routes
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(every_request)
        .with_state(app)
}

/// The binary's service: [`routes`], [`build`] into one router.
pub fn router(app: Arc<App>) -> Router {
    build(routes(&app), app)
}
