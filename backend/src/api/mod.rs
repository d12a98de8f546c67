//! The front door: one route table (method + path → handler, with the
//! verifier and its guards declared on the route), one JSON error conversion
//! ([`error::ApiError`]), one request count and one log line per refusal
//! ([`count`]), CORS for the configured origins ([`cors`]), both in
//! [`front_door`]'s service around the router.
//!
//! Adding a protected endpoint is one line in [`routes`] plus a handler that
//! takes the verified [`Caller`](cognito_verifier::Caller); see
//! `backend/README.md` for the example the tests mount.
//!
//! - [`app`]: the shared state; [`handlers`]: health, ready, metrics, identity
//! - [`notes`]: the notes routes; [`page`]: the static page; [`logout`]: sign-out

pub mod app;
pub mod cors;
pub mod count;
pub mod error;
pub mod front_door;
pub mod handlers;
pub mod logout;
pub mod notes;
pub mod openapi;
pub mod page;

use std::sync::Arc;

use axum::handler::Handler;
use axum::routing::{any, get, MethodRouter};
use axum::Router;

use app::App;
use cognito_verifier::AuthLayer;
use count::RouteCounts;
use error::ApiError;
use front_door::FrontDoor;

impl App {
    /// The verifier for one handler: `get(handler.layer(app.verified()))`,
    /// plus `.group(..)` or `.scope(..)` for a guard. `Handler::layer` rather
    /// than `route_layer`: axum boxes a route layer's service and its future
    /// per request, and wraps the handler in one boxed route more; a handler's
    /// layer is built into the handler's own route (about 4% of the CPU of a
    /// cached `GET /api/me`, docs/benchmarks.md). `route_layer` works too.
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

/// The route table: axum's router, which dispatches each request to its
/// handler, and each route's pattern, by which [`front_door`] counts it.
#[derive(Default)]
pub struct RouteTable {
    router: Router<Arc<App>>,
    counts: RouteCounts,
}

impl RouteTable {
    /// A table with no routes.
    pub fn new() -> RouteTable {
        RouteTable::default()
    }

    /// Adds `path` (axum's pattern syntax), served by `methods`. Panics, as
    /// axum's `Router::route` does, on a path another route already has: a
    /// route table that cannot work is refused at start.
    pub fn route(self, path: &'static str, methods: MethodRouter<Arc<App>>) -> RouteTable {
        let RouteTable { router, mut counts } = self;
        let router = router.route(path, methods);
        if let Err(e) = counts.add(path) {
            panic!("route {path:?} overlaps another route: {e}");
        }
        RouteTable { router, counts }
    }
}

/// The route table: every route the API serves, and what each requires.
pub fn routes(app: &App) -> RouteTable {
    let table = RouteTable::new()
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

/// The service of `table` behind the one front door: 404/405 as JSON, CORS,
/// the request count.
pub fn front_door(table: RouteTable, app: Arc<App>) -> FrontDoor<Router> {
    let RouteTable { router, counts } = table;
    let router = router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(app.clone());
    FrontDoor::new(router, counts, app)
}

/// The binary's service: [`routes`] behind [`front_door`].
pub fn router(app: Arc<App>) -> FrontDoor<Router> {
    front_door(routes(&app), app)
}
