//! The notes routes: `GET /api/notes`, and `GET`/`PUT`/`DELETE /api/notes/{id}`.
//!
//! Order of checks: configured (404) → method (405) → the caller's token
//! (401) → id, query, `If-Match`, body (400/413) → DynamoDB (404/412/503).
//! DynamoDB work runs under [`REQUEST_DEADLINE`]: a slow or unreachable table
//! is a 503 within 3 s, never a hang.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::header::{HeaderMap, HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, ETAG};
use hyper::{Method, Request, Response, StatusCode};

use super::error::NotesError;
use super::metrics::Op;
use super::store::{Note, StoreError};
use super::validate::{self, MAX_BODY_BYTES};
use super::Service;
use crate::routes::{App, Body};

/// The whole DynamoDB part of one request, retries and PUT rounds included.
pub const REQUEST_DEADLINE: Duration = Duration::from_millis(2500);
/// How long a PUT body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

const LIST_PATH: &str = "/api/notes";
const ITEM_PREFIX: &str = "/api/notes/";

/// Which notes resource a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target<'p> {
    List,
    Item(&'p str),
}

/// Whether `path` is a notes route (checked before the other routes).
pub fn owns(path: &str) -> bool {
    target(path).is_some()
}

fn target(path: &str) -> Option<Target<'_>> {
    if path == LIST_PATH {
        Some(Target::List)
    } else {
        path.strip_prefix(ITEM_PREFIX).map(Target::Item)
    }
}

fn op_of(method: &Method, target: Target<'_>) -> Op {
    match (target, method) {
        (Target::List, &Method::GET) => Op::List,
        (Target::Item(_), &Method::GET) => Op::Get,
        (Target::Item(_), &Method::PUT) => Op::Put,
        (Target::Item(_), &Method::DELETE) => Op::Delete,
        _ => Op::Unsupported,
    }
}

/// Answers one notes request and counts it.
pub async fn handle<B>(app: &App, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let target = target(parts.uri.path()).unwrap_or(Target::List);
    let op = op_of(&parts.method, target);
    let resp = match respond(app, op, target, &parts, body).await {
        Ok(resp) => resp,
        Err(NotesError::MethodNotAllowed) => {
            let mut r = NotesError::MethodNotAllowed.response();
            let allow = match target {
                Target::List => "GET",
                Target::Item(_) => "GET, PUT, DELETE",
            };
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            r
        }
        Err(why) => why.response(),
    };
    app.notes.metrics.request(op, resp.status().as_u16());
    resp
}

async fn respond<B>(
    app: &App,
    op: Op,
    target: Target<'_>,
    parts: &hyper::http::request::Parts,
    body: B,
) -> Result<Response<Body>, NotesError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = app
        .notes
        .service
        .as_ref()
        .ok_or(NotesError::NotConfigured)?;
    if op == Op::Unsupported {
        return Err(NotesError::MethodNotAllowed);
    }
    let who = app.auth.authenticate(&parts.headers).await.map_err(|why| {
        app.metrics.failure(why);
        NotesError::Auth(why)
    })?;
    let owner = &*who.sub;
    match (op, target) {
        (Op::List, _) => list(service, owner, parts.uri.query()).await,
        (Op::Get, Target::Item(id)) => get(service, owner, id).await,
        (Op::Put, Target::Item(id)) => put(service, owner, id, &parts.headers, body).await,
        (Op::Delete, Target::Item(id)) => delete(service, owner, id, &parts.headers).await,
        (Op::Get | Op::Put | Op::Delete | Op::Unsupported, _) => Err(NotesError::MethodNotAllowed),
    }
}

async fn get(service: &Service, owner: &str, id: &str) -> Result<Response<Body>, NotesError> {
    let id = validate::note_id(id)?;
    let note = deadline(service.store.get(owner, id))
        .await?
        .ok_or(NotesError::NotFound)?;
    Ok(note_response(StatusCode::OK, &note))
}

async fn put<B>(
    service: &Service,
    owner: &str,
    id: &str,
    headers: &HeaderMap,
    body: B,
) -> Result<Response<Body>, NotesError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let id = validate::note_id(id)?;
    let expect = validate::expect(headers)?;
    let text = validate::put_text(&read_body(headers, body).await?)?;
    let written = deadline(service.store.put(owner, id, &text, expect)).await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(note_response(status, &written.note))
}

async fn delete(
    service: &Service,
    owner: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<Response<Body>, NotesError> {
    let id = validate::note_id(id)?;
    let expect = validate::expect(headers)?;
    if !deadline(service.store.delete(owner, id, expect)).await? {
        return Err(NotesError::NotFound);
    }
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

async fn list(
    service: &Service,
    owner: &str,
    query: Option<&str>,
) -> Result<Response<Body>, NotesError> {
    let q = validate::list_query(query)?;
    let after = match q.cursor {
        None => None,
        Some(c) => Some(
            service
                .cursors
                .open(owner, c)
                .ok_or(NotesError::InvalidCursor)?,
        ),
    };
    let (notes, more) = deadline(service.store.list(owner, after.as_deref(), q.limit)).await?;
    let next = match notes.last() {
        Some(last) if more => Some(service.cursors.seal(owner, &last.id)),
        _ => None,
    };
    let body = serde_json::to_vec(&serde_json::json!({"notes": notes, "next": next}))
        .map_err(|_| NotesError::Unavailable)?;
    Ok(private_json(StatusCode::OK, body))
}

/// The store's future under the request deadline; its errors as API errors.
async fn deadline<T>(
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, NotesError> {
    match tokio::time::timeout(REQUEST_DEADLINE, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(StoreError::ConditionFailed)) => Err(NotesError::PreconditionFailed),
        Ok(Err(StoreError::Contended)) => Err(NotesError::Conflict),
        Ok(Err(StoreError::Unavailable)) => Err(NotesError::Unavailable),
        Err(_) => {
            tracing::warn!("notes request deadline passed while calling DynamoDB");
            Err(NotesError::Unavailable)
        }
    }
}

/// The PUT body, at most [`MAX_BODY_BYTES`] buffered, within [`BODY_TIMEOUT`].
async fn read_body<B>(headers: &HeaderMap, body: B) -> Result<Bytes, NotesError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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

fn note_response(status: StatusCode, note: &Note) -> Response<Body> {
    let body = serde_json::to_vec(note).unwrap_or_default();
    let mut r = private_json(status, body);
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", note.version)) {
        r.headers_mut().insert(ETAG, etag);
    }
    r
}

/// A JSON body no shared cache may keep: it is one user's data.
fn private_json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods() {
        assert_eq!(target("/api/notes"), Some(Target::List));
        assert_eq!(target("/api/notes/a"), Some(Target::Item("a")));
        assert_eq!(target("/api/notes/"), Some(Target::Item("")));
        assert_eq!(target("/api/notes/a/b"), Some(Target::Item("a/b")));
        for other in ["/api/notesx", "/api/note", "/api/me", "/", "/api/notes?x"] {
            assert!(!owns(other), "{other}");
        }
        assert_eq!(op_of(&Method::GET, Target::List), Op::List);
        assert_eq!(op_of(&Method::PUT, Target::List), Op::Unsupported);
        assert_eq!(op_of(&Method::DELETE, Target::Item("a")), Op::Delete);
        assert_eq!(op_of(&Method::POST, Target::Item("a")), Op::Unsupported);
    }
}
