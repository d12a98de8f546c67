//! Why a notes operation is refused: one variant per rule, each a stable code
//! (the HTTP status each maps to is the API's business, in `crate::api`).

/// A refused notes request. `Display`-free on purpose: the body is built from
/// fixed codes and sentences, never from what the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotesError {
    /// `NOTES_TABLE` is not set: the notes routes do not exist here.
    NotConfigured,
    /// The id is not 1-64 of `[A-Za-z0-9_-]`.
    InvalidId,
    /// `limit` is not a whole number in 1-100.
    InvalidLimit,
    /// The cursor is not one this server issued to this caller.
    InvalidCursor,
    /// `If-Match` is not `*` or one version.
    InvalidIfMatch,
    /// The text is over 4096 bytes.
    TooLarge,
    /// No note with this id for this caller (whoever else may own one).
    NotFound,
    /// `If-Match` did not match the note's version (or the note is absent).
    PreconditionFailed,
    /// Concurrent writers kept changing the note during an unconditional PUT.
    Conflict,
    /// DynamoDB was unreachable, slow, throttling or refused the call.
    Unavailable,
}

impl NotesError {
    /// The stable `error` code.
    pub fn code(self) -> &'static str {
        match self {
            NotesError::NotConfigured => "not_configured",
            NotesError::InvalidId => "invalid_id",
            NotesError::InvalidLimit => "invalid_limit",
            NotesError::InvalidCursor => "invalid_cursor",
            NotesError::InvalidIfMatch => "invalid_if_match",
            NotesError::TooLarge => "too_large",
            NotesError::NotFound => "not_found",
            NotesError::PreconditionFailed => "precondition_failed",
            NotesError::Conflict => "conflict",
            NotesError::Unavailable => "notes_unavailable",
        }
    }

    /// A sentence for people; never contains anything the client sent.
    pub fn message(self) -> &'static str {
        match self {
            NotesError::NotConfigured => {
                "the notes API is not configured on this server (NOTES_TABLE)"
            }
            NotesError::InvalidId => "a note id is 1-64 characters of A-Z a-z 0-9 _ -",
            NotesError::InvalidLimit => "limit must be a whole number from 1 to 100",
            NotesError::InvalidCursor => "the cursor is not one this server issued to you",
            NotesError::InvalidIfMatch => "If-Match must be * or one note version",
            NotesError::TooLarge => "the note text is over 4096 bytes",
            NotesError::NotFound => "no such note",
            NotesError::PreconditionFailed => "the note is not at the version If-Match names",
            NotesError::Conflict => "the note kept changing while it was written; retry",
            NotesError::Unavailable => "the notes store is unavailable; retry later",
        }
    }
}
