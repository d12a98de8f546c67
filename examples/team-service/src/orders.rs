//! Orders: the service's own state and its handlers.
//!
//! An order belongs to the caller who placed it (the token's `sub`: a user,
//! or a machine's client id). Another caller's order is a 404, exactly like
//! one that does not exist; the admin group sees and changes every order.
//! Kept in memory, at most `MAX_ORDERS`: swap [`Orders`] for a database
//! client when the service needs to outlive its process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cognito_verifier::{json_error, BodyRejection, Caller, Identity, JsonBody};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::openapi::{BadBody, ErrorBody, Refused};
use crate::AppState;

/// An order body is small: a few names and numbers. Over WAF's 8 KB body
/// inspection a route needs its own body rule in infra/alb1.json.
pub const MAX_ORDER_BODY: usize = 4096;

/// The longest item name accepted.
const MAX_ITEM_CHARS: usize = 200;

/// The body of `POST /api/orders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// What is ordered: 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub item: String,
    /// How many: 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: u32,
}

/// Where an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Placed, not shipped yet.
    Placed,
    /// On its way.
    Shipped,
    /// Called off.
    Cancelled,
}

/// The body of `PATCH /api/orders/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// The new status.
    pub status: Status,
}

/// One order, as kept and as answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    /// The order's id (decimal digits).
    pub id: String,
    /// The `sub` of the caller who placed it.
    pub owner: String,
    /// What is ordered.
    pub item: String,
    /// How many.
    pub quantity: u32,
    /// Where it is.
    pub status: Status,
}

/// Every order, bounded.
pub struct Orders {
    by_id: RwLock<HashMap<u64, Order>>,
    next_id: AtomicU64,
    max: usize,
}

impl Orders {
    /// An empty store for at most `max` orders.
    pub fn new(max: usize) -> Orders {
        Orders {
            by_id: RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            max,
        }
    }

    fn insert(&self, owner: &str, new: NewOrder) -> Option<Order> {
        let mut by_id = self.by_id.write().expect("no writer panics");
        if by_id.len() >= self.max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let order = Order {
            id: id.to_string(),
            owner: owner.to_string(),
            item: new.item,
            quantity: new.quantity,
            status: Status::Placed,
        };
        by_id.insert(id, order.clone());
        Some(order)
    }

    /// The order `id` if `who` may see it: its owner, or the admin group.
    fn visible(&self, id: u64, who: &Identity, admin_group: &str) -> Option<Order> {
        let by_id = self.by_id.read().expect("no writer panics");
        let order = by_id.get(&id)?;
        (*order.owner == *who.sub || who.in_group(admin_group)).then(|| order.clone())
    }

    fn set_status(&self, id: u64, status: Status) -> Option<Order> {
        let mut by_id = self.by_id.write().expect("no writer panics");
        let order = by_id.get_mut(&id)?;
        order.status = status;
        Some(order.clone())
    }
}

/// `POST /api/orders`: places an order for the caller; 201 with its
/// `Location`.
#[utoipa::path(post, path = "/api/orders", tag = "orders",
    security(("albSession" = []), ("bearer" = [])),
    request_body = NewOrder,
    responses((status = 201, description = "Placed", body = Order,
            headers(("Location" = String, description = "The order's path"))),
        Refused, BadBody))]
pub async fn place(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    JsonBody(new): JsonBody<NewOrder, MAX_ORDER_BODY>,
) -> Response {
    let chars = new.item.chars().count();
    if chars == 0 || chars > MAX_ITEM_CHARS {
        return invalid("item");
    }
    if !(1..=1000).contains(&new.quantity) {
        return invalid("quantity");
    }
    match app.orders.insert(&who.sub, new) {
        Some(order) => {
            let location = format!("/api/orders/{}", order.id);
            (StatusCode::CREATED, [(LOCATION, location)], Json(order)).into_response()
        }
        None => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "orders_full",
            "no room for another order",
        ),
    }
}

/// `GET /api/orders/{id}`: one of the caller's orders (any order for the
/// admin group).
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders",
    security(("albSession" = []), ("bearer" = [])),
    params(("id" = u64, Path, description = "The order's id")),
    responses((status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order for this caller (`not_found`)", body = ErrorBody),
        Refused))]
pub async fn get(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    id: Result<Path<u64>, PathRejection>,
) -> Response {
    let found = id
        .ok()
        .and_then(|Path(id)| app.orders.visible(id, &who, &app.settings.admin_group));
    match found {
        Some(order) => Json(order).into_response(),
        None => not_found(),
    }
}

/// `PATCH /api/orders/{id}`: changes any order's status (the route requires
/// the admin group).
#[utoipa::path(patch, path = "/api/orders/{id}", tag = "orders",
    security(("albSession" = []), ("bearer" = [])),
    params(("id" = u64, Path, description = "The order's id")),
    request_body = StatusChange,
    responses((status = 200, description = "The changed order", body = Order),
        (status = 404, description = "No such order (`not_found`)", body = ErrorBody),
        Refused, BadBody))]
pub async fn set_status(
    State(app): State<Arc<AppState>>,
    id: Result<Path<u64>, PathRejection>,
    JsonBody(change): JsonBody<StatusChange, MAX_ORDER_BODY>,
) -> Response {
    match id
        .ok()
        .and_then(|Path(id)| app.orders.set_status(id, change.status))
    {
        Some(order) => Json(order).into_response(),
        None => not_found(),
    }
}

/// A field that parsed but is out of range: the same 422 as a wrong type.
fn invalid(field: &str) -> Response {
    BodyRejection::InvalidField {
        path: field.to_string(),
    }
    .into_response()
}

/// No such order for this caller (an id that is not a number included).
pub fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such order")
}
