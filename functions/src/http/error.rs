//! The one mapping from domain errors to HTTP: status plus Medusa's `{code?, type, message}` body.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::DomainError;

#[derive(Debug)]
pub struct ApiError(pub DomainError);

/// A body over the size limit: 413 with Medusa's body shape.
#[derive(Debug)]
pub struct PayloadTooLarge(pub usize);

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for PayloadTooLarge {
    fn into_response(self) -> Response {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({"type": "invalid_data", "message": format!("Request body is larger than {} bytes", self.0)})),
        )
            .into_response()
    }
}

/// A body of a media type the route does not read: 415 with Medusa's body shape.
#[derive(Debug)]
pub struct UnsupportedMediaType {
    /// The request's `Content-Type`, if it had one.
    pub given: Option<String>,
    pub accepted: &'static [super::MediaType],
}

impl IntoResponse for UnsupportedMediaType {
    fn into_response(self) -> Response {
        let accepted: Vec<&str> = self.accepted.iter().map(|m| m.name()).collect();
        let given = match &self.given {
            Some(content_type) => format!("'{content_type}'"),
            None => "no content-type".into(),
        };
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Json(json!({
                "type": "invalid_data",
                "message": format!("Invalid request: the body must be {}, got {given}", accepted.join(" or ")),
            })),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError(DomainError::InvalidData(message.into()))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self.0 {
            DomainError::InvalidData(m) => (
                StatusCode::BAD_REQUEST,
                json!({"type": "invalid_data", "message": m}),
            ),
            DomainError::NotAllowed(m) => (
                StatusCode::BAD_REQUEST,
                json!({"type": "not_allowed", "message": m}),
            ),
            DomainError::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"}))
            }
            DomainError::Unauthorized(m) => (
                StatusCode::UNAUTHORIZED,
                json!({"type": "unauthorized", "message": m}),
            ),
            DomainError::Forbidden(m) => (
                StatusCode::FORBIDDEN,
                json!({"type": "not_allowed", "message": m}),
            ),
            DomainError::TooManyRequests {
                message,
                retry_after_seconds,
            } => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({"type": "not_allowed", "message": message})),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
                return response;
            }
            DomainError::NotFound(m) => (
                StatusCode::NOT_FOUND,
                json!({"type": "not_found", "message": m}),
            ),
            DomainError::Conflict(m) => (
                StatusCode::CONFLICT,
                json!({"code": "invalid_state_error", "type": "conflict", "message": m}),
            ),
            DomainError::Duplicate(m) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"code": "invalid_request_error", "type": "duplicate_error", "message": m}),
            ),
            DomainError::Unavailable(m) => {
                tracing::warn!(error = %m, "store unavailable");
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"code": "api_error", "type": "unavailable", "message": m})),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            DomainError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"code": "unknown_error", "type": "unknown_error", "message": "An unknown error occurred."}),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}
