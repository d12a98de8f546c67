//! One count per request (`planb_requests_total{route,status}`, `route` the
//! route table's pattern) and one log line per refusal, for every route
//! ([`super::front_door`] calls [`record`] on every answer).

use axum::extract::MatchedPath;
use axum::response::Response;

use super::app::App;
use crate::error::ErrorCode;

/// The `route` label of requests no route matched.
pub const UNMATCHED: &str = "other";

/// Counts the answer `r` to a request of `route` and logs it when it was refused.
pub fn record(app: &App, route: Option<&MatchedPath>, r: &Response) {
    let route = route.map_or(UNMATCHED, MatchedPath::as_str);
    app.metrics.request(route, r.status().as_u16());
    if let Some(ErrorCode(code)) = r.extensions().get::<ErrorCode>() {
        tracing::debug!(
            route,
            status = r.status().as_u16(),
            reason = code,
            "request refused"
        );
    }
}
