//! The one error type of the domain. The HTTP layer maps it to Medusa's error body once.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DomainError {
    /// Bad input: a field, a query parameter, a uniqueness rule. 400 `invalid_data`.
    #[error("{0}")]
    InvalidData(String),
    /// A request that is well formed but not allowed in this state. 400 `not_allowed`.
    #[error("{0}")]
    NotAllowed(String),
    /// No credentials, or credentials that do not verify. 401 with only a message.
    #[error("Unauthorized")]
    Unauthenticated,
    /// A failed sign-in or token check on the auth routes. 401 `unauthorized`.
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but the role does not allow it. 403 `not_allowed`.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Lost an optimistic-concurrency race too many times. 409.
    #[error("{0}")]
    Conflict(String),
    /// 422 `duplicate_error`.
    #[error("{0}")]
    Duplicate(String),
    /// Too many attempts (failed sign-ins), or no capacity left right now. 429 with
    /// `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_seconds: u64,
    },
    /// The store is throttling or unreachable; the client may retry. 503.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Throttled => {
                DomainError::Unavailable("The store is busy, please retry shortly.".into())
            }
            StoreError::Unavailable(reason) => DomainError::Unavailable(format!(
                "The store did not answer ({reason}), please retry shortly."
            )),
            StoreError::Conflict => DomainError::Conflict(
                "The record was changed by another request at the same time, please retry.".into(),
            ),
            other => DomainError::Internal(other.to_string()),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
