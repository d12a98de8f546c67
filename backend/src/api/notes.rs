//! The notes routes over HTTP: `GET /api/notes`, `GET`/`PUT`/`DELETE /api/notes/{id}`.
//! The domain (store, validation, cursors) is [`crate::notes`]'s; this reads
//! the request and writes the response.
//!
//! Order of checks: configured (404, before the token: the route table mounts
//! these only with `NOTES_TABLE`) → method (405) → the caller's token (401) →
//! id, query, `If-Match`, body (400/413) → DynamoDB (404/412/503).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG};
use hyper::StatusCode;

use super::app::App;
use super::error::ApiError;
use crate::notes::store::Note;
use crate::notes::validate::{self, MAX_BODY_BYTES};
use crate::notes::NotesError;
use cognito_verifier::Caller;

/// The scope a machine caller needs to read notes, as infra's resource server
/// defines it (`infra/lib/constructs/auth.ts`).
pub const READ_SCOPE: &str = "planb-api/read";
/// The scope a machine caller needs to create, change or delete notes.
pub const WRITE_SCOPE: &str = "planb-api/write";

/// How long a PUT body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /api/notes`.
pub async fn list(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let page = app.notes.list(&who.sub, query.as_deref()).await?;
    let body = serde_json::to_vec(&page).map_err(|_| NotesError::Unavailable)?;
    Ok(private_json(StatusCode::OK, body))
}

/// `GET /api/notes/{id}`.
pub async fn get(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let note = app.notes.get(&who.sub, &id).await?;
    Ok(note_response(StatusCode::OK, &note))
}

/// `PUT /api/notes/{id}`.
pub async fn put(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    validate::note_id(&id)?;
    let expect = validate::expect(&headers)?;
    let text = validate::put_text(&read_body(&headers, body).await?)?;
    let written = app.notes.put(&who.sub, &id, &text, expect).await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(note_response(status, &written.note))
}

/// `DELETE /api/notes/{id}`.
pub async fn delete(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    validate::note_id(&id)?;
    let expect = validate::expect(&headers)?;
    app.notes.delete(&who.sub, &id, expect).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every notes path without `NOTES_TABLE`: 404 before anything else.
pub async fn not_configured() -> ApiError {
    ApiError::Notes(NotesError::NotConfigured)
}

/// The PUT body, at most [`MAX_BODY_BYTES`] buffered, within [`BODY_TIMEOUT`].
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, NotesError> {
    if validate::declared_too_large(headers) {
        return Err(NotesError::TooLarge);
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect()).await {
        Err(_) => Err(NotesError::BodyTimeout),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(NotesError::TooLarge),
        Ok(Err(_)) => Err(NotesError::InvalidBody),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn note_response(status: StatusCode, note: &Note) -> Response {
    let body = serde_json::to_vec(note).unwrap_or_default();
    let mut r = private_json(status, body);
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", note.version)) {
        r.headers_mut().insert(ETAG, etag);
    }
    r
}

/// A JSON body no shared cache may keep: it is one user's data.
fn private_json(status: StatusCode, body: Vec<u8>) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    (status, headers, body).into_response()
}
