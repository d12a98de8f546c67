//! One count per request (`planb_requests_total{route,status}`, `route` the
//! route table's pattern) and one log line per refusal, for every route.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::app::App;
use crate::error::ErrorCode;

/// The `route` label of requests no route matched.
pub const UNMATCHED: &str = "other";

/// Counts the answered request and logs it when it was refused.
pub async fn count(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    // A cheap clone (shared string) taken before the request moves into the handler.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let r = next.run(req).await;
    app.metrics.request(route, r.status().as_u16());
    if let Some(ErrorCode(code)) = r.extensions().get::<ErrorCode>() {
        tracing::debug!(
            route,
            status = r.status().as_u16(),
            reason = code,
            "request refused"
        );
    }
    r
}
