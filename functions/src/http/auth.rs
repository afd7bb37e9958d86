//! Who is calling, and the sign-in route.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde_json::{Map, Value, json};
use shared::DomainError;
use shared::auth::AuthContext;

use super::AppState;
use super::body::JsonBody;
use super::error::{ApiError, ApiResult};

/// Claims the API Gateway JWT authorizer already verified, when running behind it. HTTP APIs
/// pass every claim as a string, so JSON-valued claims are parsed back.
fn authorizer_claims(parts: &Parts) -> Option<Map<String, Value>> {
    use lambda_http::request::RequestContext;
    let Some(RequestContext::ApiGatewayV2(context)) = parts.extensions.get::<RequestContext>()
    else {
        return None;
    };
    let jwt = context.authorizer.as_ref()?.jwt.as_ref()?;
    if jwt.claims.is_empty() {
        return None;
    }
    Some(
        jwt.claims
            .iter()
            .map(|(k, v)| {
                let value = if v.starts_with('{') {
                    serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone()))
                } else {
                    Value::String(v.clone())
                };
                (k.clone(), value)
            })
            .collect(),
    )
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<AuthContext, DomainError> {
    if let Some(claims) = authorizer_claims(parts) {
        return AuthContext::from_claims(&claims).ok_or(DomainError::Unauthenticated);
    }
    let token = bearer(parts).ok_or(DomainError::Unauthenticated)?;
    let verifier = state
        .verifier
        .as_ref()
        .ok_or(DomainError::Unauthenticated)?;
    verifier.authenticate(token).await
}

/// A signed-in staff user (actor type `user` with an actor id); anything else is a 401.
pub struct Staff(pub AuthContext);

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let context = authenticate(parts, state).await?;
        if !context.is_staff() {
            return Err(ApiError(DomainError::Unauthenticated));
        }
        tracing::Span::current().record("actor", context.actor_id.as_str());
        Ok(Staff(context))
    }
}

/// `POST /auth/user/emailpass {email, password}` → `{token}`.
pub async fn user_login(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let identity = state.identity.as_ref().ok_or_else(|| {
        ApiError(DomainError::NotAllowed(
            "Email and password sign-in is not enabled here".into(),
        ))
    })?;
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    let (Some(email), Some(password)) = (text("email"), text("password")) else {
        return Err(ApiError(DomainError::Unauthorized(
            "Invalid email or password".into(),
        )));
    };
    let token = identity.login("user", &email, &password).await?;
    Ok(Json(json!({ "token": token })))
}
