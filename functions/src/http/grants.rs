//! `/admin/permission-grants…`, permission checks for the storefront and the admin, and a
//! customer's effective grants.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Map, Value, json};
use shared::grants::{Check, GrantDraft, GrantQuery, Resource, parse_principal};

use super::AppState;
use super::auth::{Shopper, Staff, Storefront};
use super::body::{Field, JsonBody, Kind, nullish, required, validate};
use super::error::{ApiResult, invalid};
use super::query;

pub const CREATE_BODY: &[Field] = &[
    required("principal", Kind::Record),
    required("action", Kind::String),
    required("resource", Kind::Record),
    nullish("expires_at", Kind::String),
];
pub const CHECK_BODY: &[Field] = &[required("checks", Kind::List)];
pub const ADMIN_CHECK_BODY: &[Field] = &[
    required("customer_id", Kind::String),
    required("checks", Kind::List),
];
pub const LIST_PARAMS: &[&str] = &[
    "principal_type",
    "principal_id",
    "resource_type",
    "resource_id",
    "action",
    "offset",
    "limit",
];

fn resource(value: &Value, field: &str) -> ApiResult<Resource> {
    let Some(map) = value.as_object() else {
        return Err(invalid(format!(
            "Invalid request: Expected type: 'object' for field '{field}'"
        )));
    };
    if let Some(k) = map.keys().find(|k| !["type", "id"].contains(&k.as_str())) {
        return Err(invalid(format!(
            "Invalid request: Unrecognized fields: '{field}, {k}'"
        )));
    }
    let text = |name: &str| {
        map.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                invalid(format!(
                    "Invalid request: Field '{field}, {name}' is required"
                ))
            })
    };
    Ok(Resource {
        kind: text("type")?,
        id: text("id")?,
    })
}

fn checks(body: &Map<String, Value>) -> ApiResult<Vec<Check>> {
    let list = body
        .get("checks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            let action = c
                .get("action")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid(format!(
                        "Invalid request: Field 'checks, {i}, action' is required"
                    ))
                })?
                .to_owned();
            let target = c.get("resource").ok_or_else(|| {
                invalid(format!(
                    "Invalid request: Field 'checks, {i}, resource' is required"
                ))
            })?;
            Ok(Check {
                action,
                resource: resource(target, &format!("checks, {i}, resource"))?,
            })
        })
        .collect()
}

pub async fn list(
    State(state): State<AppState>,
    _staff: Staff,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = query::parse(raw.as_deref())?;
    query::reject_unknown(&params, LIST_PARAMS)?;
    let q = GrantQuery {
        principal_type: query::string(&params, "principal_type")?,
        principal_id: query::string(&params, "principal_id")?,
        resource_type: query::string(&params, "resource_type")?,
        resource_id: query::string(&params, "resource_id")?,
        action: query::string(&params, "action")?,
        offset: query::number(&params, "offset")?.unwrap_or(0),
        limit: query::number(&params, "limit")?
            .unwrap_or(50)
            .min(super::customers::MAX_LIMIT),
    };
    let (grants, count) = state.grants.list(&q).await?;
    Ok(Json(json!({
        "permission_grants": grants, "count": count, "offset": q.offset, "limit": q.limit,
    })))
}

pub async fn create(
    State(state): State<AppState>,
    Staff(actor): Staff,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, CREATE_BODY)?;
    let principal = parse_principal(body.get("principal").unwrap_or(&Value::Null))?;
    let draft = GrantDraft {
        principal,
        action: body
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        resource: resource(body.get("resource").unwrap_or(&Value::Null), "resource")?,
        expires_at: body
            .get("expires_at")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let grant = state.grants.grant(&draft, Some(&actor.actor_id)).await?;
    Ok(Json(json!({ "permission_grant": grant })))
}

pub async fn retrieve(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "permission_grant": state.grants.retrieve(&id).await? }),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.grants.revoke(&id).await?;
    Ok(Json(
        json!({ "id": id, "object": "permission_grant", "deleted": true }),
    ))
}

pub async fn store_check(
    State(state): State<AppState>,
    _storefront: Storefront,
    Shopper(actor): Shopper,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, CHECK_BODY)?;
    let results = state.grants.check(&actor.actor_id, &checks(&body)?).await?;
    Ok(Json(json!({ "results": results })))
}

pub async fn admin_check(
    State(state): State<AppState>,
    _staff: Staff,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, ADMIN_CHECK_BODY)?;
    let customer_id = body
        .get("customer_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let checks = checks(&body)?;
    state.customers.retrieve(customer_id).await?;
    let results = state.grants.check(customer_id, &checks).await?;
    Ok(Json(json!({ "results": results })))
}

pub async fn customer_permissions(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.customers.retrieve(&id).await?;
    let grants = state.grants.effective(&id).await?;
    let count = grants.len();
    Ok(Json(json!({
        "permission_grants": grants, "count": count, "offset": 0, "limit": count,
    })))
}
