//! `/admin/api-keys`: publishable keys for storefronts, secret keys for back-office systems.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Value, json};
use shared::api_keys::{ApiKeyQuery, KeyType};

use super::AppState;
use super::auth::Staff;
use super::body::{Field, JsonBody, Kind, nullish, optional, required, validate};
use super::error::{ApiResult, invalid};
use super::query;

pub const CREATE_BODY: &[Field] = &[
    required("title", Kind::String),
    required("type", Kind::String),
];
pub const UPDATE_BODY: &[Field] = &[required("title", Kind::String)];
/// Medusa accepts `revoke_in` (seconds); we revoke at once and say so if asked otherwise.
pub const REVOKE_BODY: &[Field] = &[
    optional("revoke_in", Kind::Number),
    nullish("reason", Kind::String),
];
pub const LIST_PARAMS: &[&str] = &["q", "type", "revoked", "fields", "offset", "limit", "order"];

pub async fn list(
    State(state): State<AppState>,
    _staff: Staff,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = query::parse(raw.as_deref())?;
    query::reject_unknown(&params, LIST_PARAMS)?;
    let key_type = match query::string(&params, "type")? {
        Some(t) => Some(KeyType::parse(&t).ok_or_else(|| {
            invalid(format!(
                "Invalid request: type must be publishable or secret, got '{t}'"
            ))
        })?),
        None => None,
    };
    let list_query = ApiKeyQuery {
        q: query::string(&params, "q")?.filter(|q| !q.is_empty()),
        key_type,
        revoked: query::boolean(&params, "revoked")?,
        offset: query::number(&params, "offset")?.unwrap_or(0),
        limit: query::number(&params, "limit")?
            .unwrap_or(20)
            .min(super::customers::MAX_LIMIT),
    };
    let (keys, count) = state.api_keys.list(&list_query).await?;
    Ok(Json(json!({
        "api_keys": keys,
        "count": count,
        "offset": list_query.offset,
        "limit": list_query.limit,
    })))
}

pub async fn create(
    State(state): State<AppState>,
    Staff(actor): Staff,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, CREATE_BODY)?;
    let text = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default();
    let key_type = KeyType::parse(text("type")).ok_or_else(|| {
        invalid(format!(
            "Invalid request: type must be publishable or secret, got '{}'",
            text("type")
        ))
    })?;
    // A secret key acts with what its creator holds now, never more (nor `admin`).
    let policies = match key_type {
        KeyType::Secret => {
            state
                .roles
                .holdings(&state.staff_users, &state.api_keys, &actor)
                .await?
                .policies
        }
        KeyType::Publishable => Vec::new(),
    };
    let key = state
        .api_keys
        .create(text("title"), key_type, &actor.actor_id, policies)
        .await?;
    Ok(Json(json!({ "api_key": key })))
}

pub async fn retrieve(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "api_key": state.api_keys.retrieve(&id).await? }),
    ))
}

pub async fn update(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, UPDATE_BODY)?;
    let title = body
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(Json(
        json!({ "api_key": state.api_keys.update_title(&id, title).await? }),
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    Staff(actor): Staff,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, REVOKE_BODY)?;
    if body
        .get("revoke_in")
        .and_then(Value::as_f64)
        .is_some_and(|s| s > 0.0)
    {
        return Err(invalid(
            "Invalid request: delayed revocation (revoke_in) is not supported; revoke when the key must stop working",
        ));
    }
    Ok(Json(
        json!({ "api_key": state.api_keys.revoke(&id, &actor.actor_id).await? }),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.api_keys.delete(&id).await?;
    Ok(Json(
        json!({ "id": id, "object": "api_key", "deleted": true }),
    ))
}
