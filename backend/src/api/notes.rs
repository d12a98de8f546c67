//! The notes routes over HTTP: `GET /api/notes`, `GET`/`PUT`/`DELETE /api/notes/{id}`.
//! The domain (store, validation, cursors) is [`crate::notes`]'s; this reads
//! the request and writes the response.
//!
//! Order of checks: configured (404, before the token: the route table mounts
//! these only with `NOTES_TABLE`) → method (405) → the caller's token (401) →
//! the body (`JsonBody`: 400/408/413/415/422) → id, query, `If-Match`
//! (400), text (413) → DynamoDB (404/412/503).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG};
use hyper::StatusCode;

use super::app::App;
use super::error::ApiError;
use crate::notes::store::Note;
use crate::notes::validate::{self, NoteInput};
use crate::notes::NotesError;
use crate::notes::Page;
use cognito_verifier::openapi::{ErrorBody, Refused};
use cognito_verifier::{Caller, JsonBody};

/// The scope a machine caller needs to read notes, as infra's resource server
/// defines it (`infra/lib/constructs/auth.ts`).
pub const READ_SCOPE: &str = "planb-api/read";
/// The scope a machine caller needs to create, change or delete notes.
pub const WRITE_SCOPE: &str = "planb-api/write";

/// `GET /api/notes`.
#[utoipa::path(get, path = "/api/notes", tag = "notes",
    security(("albSession" = []), ("bearer" = [])),
    params(
        ("limit" = Option<u16>, Query, description = "Notes per page, 1-100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "The `next` of the previous page"),
    ),
    responses((status = 200, description = "One page of the caller's notes", body = Page),
        (status = 400, description = "A bad limit or cursor", body = ErrorBody),
        Refused,
        (status = 404, description = "Notes are not configured here (`not_configured`)", body = ErrorBody)))]
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
#[utoipa::path(get, path = "/api/notes/{id}", tag = "notes",
    security(("albSession" = []), ("bearer" = [])),
    params(("id" = String, Path, description = "1-64 of A-Z a-z 0-9 _ -")),
    responses((status = 200, description = "The note", body = Note,
            headers(("ETag" = String, description = "The note's version, quoted"))),
        (status = 400, description = "A bad id", body = ErrorBody),
        Refused,
        (status = 404, description = "Notes are not configured here (`not_configured`)", body = ErrorBody)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let note = app.notes.get(&who.sub, &id).await?;
    Ok(note_response(StatusCode::OK, &note))
}

/// `PUT /api/notes/{id}`.
#[utoipa::path(put, path = "/api/notes/{id}", tag = "notes",
    security(("albSession" = []), ("bearer" = [])),
    params(("id" = String, Path, description = "1-64 of A-Z a-z 0-9 _ -"),
        ("If-Match" = Option<String>, Header, description = "`*` or the quoted version to replace")),
    request_body = NoteInput,
    responses((status = 200, description = "Replaced", body = Note),
        (status = 201, description = "Created", body = Note),
        (status = 400, description = "A bad id or If-Match, or a body that is not JSON (`invalid_json`)", body = ErrorBody),
        (status = 408, description = "The body took over 10 s (`body_timeout`)", body = ErrorBody),
        (status = 412, description = "If-Match did not match", body = ErrorBody),
        (status = 413, description = "The text is over 4096 bytes (`too_large`) or the body over 25 KiB (`body_too_large`)", body = ErrorBody),
        (status = 415, description = "Not sent as application/json (`unsupported_media_type`)", body = ErrorBody),
        (status = 422, description = "No `text`, or not a string, or another member (`missing_field`, `invalid_field`)", body = ErrorBody),
        Refused,
        (status = 404, description = "Notes are not configured here (`not_configured`)", body = ErrorBody)))]
pub async fn put(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<NoteInput>,
) -> Result<Response, ApiError> {
    validate::note_id(&id)?;
    let expect = validate::expect(&headers)?;
    let text = validate::note_text(input)?;
    let written = app.notes.put(&who.sub, &id, &text, expect).await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(note_response(status, &written.note))
}

/// `DELETE /api/notes/{id}`.
#[utoipa::path(delete, path = "/api/notes/{id}", tag = "notes",
    security(("albSession" = []), ("bearer" = [])),
    params(("id" = String, Path, description = "1-64 of A-Z a-z 0-9 _ -"),
        ("If-Match" = Option<String>, Header, description = "`*` or the quoted version to delete")),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "A bad id or If-Match", body = ErrorBody),
        (status = 412, description = "If-Match did not match", body = ErrorBody),
        Refused,
        (status = 404, description = "Notes are not configured here (`not_configured`)", body = ErrorBody)))]
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
