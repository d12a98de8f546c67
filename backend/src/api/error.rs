//! Every error a route can answer with, converted to the JSON error response in one place.

use axum::response::{IntoResponse, Response};
use hyper::StatusCode;

use crate::notes::NotesError;
use cognito_verifier::{json_error, Rejection};

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiError {
    /// Verification or a guard refused the caller.
    Auth(Rejection),
    /// The notes domain refused the operation.
    Notes(NotesError),
    /// No such route.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// `/ready` before the pool's keys are loaded.
    NotReady,
    /// `/logout` without `COGNITO_DOMAIN` and `LOGOUT_REDIRECT_URL`.
    LogoutNotConfigured,
}

impl From<Rejection> for ApiError {
    fn from(why: Rejection) -> ApiError {
        ApiError::Auth(why)
    }
}

impl From<NotesError> for ApiError {
    fn from(why: NotesError) -> ApiError {
        ApiError::Notes(why)
    }
}

/// The status of each notes refusal.
fn notes_status(why: NotesError) -> StatusCode {
    match why {
        NotesError::NotConfigured | NotesError::NotFound => StatusCode::NOT_FOUND,
        NotesError::InvalidId
        | NotesError::InvalidLimit
        | NotesError::InvalidCursor
        | NotesError::InvalidIfMatch => StatusCode::BAD_REQUEST,
        NotesError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        NotesError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        NotesError::Conflict => StatusCode::CONFLICT,
        NotesError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Auth(why) => why.into_response(),
            ApiError::Notes(why) => json_error(notes_status(why), why.code(), why.message()),
            ApiError::NotFound => json_error(StatusCode::NOT_FOUND, "not_found", "no such route"),
            ApiError::MethodNotAllowed => json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            ),
            ApiError::NotReady => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the signing keys are not loaded yet",
            ),
            ApiError::LogoutNotConfigured => json_error(
                StatusCode::NOT_FOUND,
                "logout_not_configured",
                "sign-out is not configured on this server: set COGNITO_DOMAIN and LOGOUT_REDIRECT_URL",
            ),
        }
    }
}
