//! The kinds of failure every layer speaks. The `api` crate maps each kind to
//! exactly one HTTP status and gRPC code; nothing else decides a status.

/// What went wrong, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request itself is malformed or violates a validation rule.
    InvalidArgument,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// No credential, or one that is unknown, expired or revoked.
    Unauthenticated,
    /// A valid credential without the right to do this.
    PermissionDenied,
    /// The named object does not exist (for this tenant).
    NotFound,
    /// An object with this name already exists.
    AlreadyExists,
    /// The request is valid but the current state forbids it.
    FailedPrecondition,
    /// A quota or rate limit refuses the request.
    ResourceExhausted,
    /// The HTTP method is not served on this path.
    Unimplemented,
    /// A bug or an unexpected failure; details are logged, not returned.
    Internal,
    /// A dependency (the database) is not reachable right now.
    Unavailable,
    /// The request took too long.
    DeadlineExceeded,
}

/// A failure with a message that names the field or object at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }

    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FailedPrecondition, message)
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }

    pub fn exhausted(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceExhausted, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
}
