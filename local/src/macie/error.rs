//! Macie's errors as the restJson1 protocol returns them: an exception name, a status, a message.

/// A Macie error: its exception name, HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacieError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl MacieError {
    pub fn validation(message: impl Into<String>) -> Self {
        Self {
            code: "ValidationException",
            status: 400,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: "ResourceNotFoundException",
            status: 404,
            message: message.into(),
        }
    }

    /// A change that could not be saved: Macie's error for a failure on its side.
    pub(super) fn internal(message: impl Into<String>) -> Self {
        Self {
            code: "InternalServerException",
            status: 500,
            message: message.into(),
        }
    }

    pub(super) fn conflict(message: impl Into<String>) -> Self {
        Self {
            code: "ConflictException",
            status: 409,
            message: message.into(),
        }
    }
}

pub(super) type Result<T> = std::result::Result<T, MacieError>;
