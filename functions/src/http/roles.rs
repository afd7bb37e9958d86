//! Staff roles (`/admin/roles…`) and staff users (`/admin/users…`).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Value, json};
use shared::DomainError;
use shared::auth::AuthContext;
use shared::auth::staff::StaffPatch;
use shared::roles::{Holdings, RolePatch, RoleService, check_policy};

use super::AppState;
use super::auth::Staff;
use super::body::{
    Field, JsonBody, Kind, nullish, optional, record_change, required, string_list, text_change,
    validate,
};
use super::error::{ApiResult, invalid};
use super::query;

pub const CREATE_BODY: &[Field] = &[
    required("name", Kind::String),
    nullish("description", Kind::String),
    required("policies", Kind::StringList),
];
pub const UPDATE_BODY: &[Field] = &[
    optional("name", Kind::String),
    nullish("description", Kind::String),
    optional("policies", Kind::StringList),
];
pub const CREATE_USER_BODY: &[Field] = &[
    required("email", Kind::Email),
    optional("password", Kind::String),
    nullish("first_name", Kind::String),
    nullish("last_name", Kind::String),
    optional("roles", Kind::StringList),
    nullish("metadata", Kind::Record),
];
pub const UPDATE_USER_BODY: &[Field] = &[
    nullish("first_name", Kind::String),
    nullish("last_name", Kind::String),
    optional("roles", Kind::StringList),
    nullish("metadata", Kind::Record),
];
pub const LIST_PARAMS: &[&str] = &["offset", "limit"];

fn paging(raw: Option<String>) -> ApiResult<(usize, usize)> {
    let params = query::parse(raw.as_deref())?;
    query::reject_unknown(&params, LIST_PARAMS)?;
    Ok((
        query::number(&params, "offset")?.unwrap_or(0),
        query::number(&params, "limit")?
            .unwrap_or(50)
            .min(super::customers::MAX_LIMIT),
    ))
}

pub async fn list(
    State(state): State<AppState>,
    _staff: Staff,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (offset, limit) = paging(raw)?;
    let roles = state.roles.list().await?;
    let count = roles.len();
    let page: Vec<_> = roles.into_iter().skip(offset).take(limit).collect();
    Ok(Json(
        json!({ "roles": page, "count": count, "offset": offset, "limit": limit }),
    ))
}

/// The caller's policies, for the checks that nobody hands out more than they hold.
async fn holdings(state: &AppState, caller: &AuthContext) -> ApiResult<Holdings> {
    Ok(state
        .roles
        .holdings(&state.staff_users, &state.api_keys, caller)
        .await?)
}

/// Policies that are well formed (a 400 otherwise) and that the caller holds (a 403 otherwise).
fn check_policies(holdings: &Holdings, policies: &[String]) -> ApiResult<()> {
    policies.iter().try_for_each(|p| check_policy(p))?;
    Ok(holdings.check_grantable(policies)?)
}

pub async fn create(
    State(state): State<AppState>,
    Staff(caller): Staff,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, CREATE_BODY)?;
    let policies = string_list(&body, "policies").unwrap_or_default();
    check_policies(&holdings(&state, &caller).await?, &policies)?;
    let role = state
        .roles
        .create(
            body.get("name").and_then(Value::as_str).unwrap_or_default(),
            text_change(&body, "description").flatten(),
            policies,
        )
        .await?;
    Ok(Json(json!({ "role": role })))
}

pub async fn retrieve(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "role": state.roles.retrieve(&id).await? })))
}

pub async fn update(
    State(state): State<AppState>,
    Staff(caller): Staff,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, UPDATE_BODY)?;
    let patch = RolePatch {
        name: body.get("name").and_then(Value::as_str).map(str::to_owned),
        description: text_change(&body, "description"),
        policies: string_list(&body, "policies"),
    };
    // A role above the caller is not the caller's to change, nor its own role (unless admin),
    // nor may the change give more than the caller holds.
    let current = state.roles.retrieve(&id).await?;
    let holdings = holdings(&state, &caller).await?;
    RoleService::check_not_own_role(&holdings, &id)?;
    if !current.is_built_in {
        holdings.check_grantable(&current.policies)?;
    }
    if let Some(policies) = &patch.policies {
        check_policies(&holdings, policies)?;
    }
    Ok(Json(
        json!({ "role": state.roles.update(&id, &patch).await? }),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.roles.retrieve(&id).await?;
    state.roles.delete(&id, &state.staff_users).await?;
    Ok(Json(json!({ "id": id, "object": "role", "deleted": true })))
}

pub async fn list_users(
    State(state): State<AppState>,
    _staff: Staff,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (offset, limit) = paging(raw)?;
    let users = state.staff_users.all().await?;
    let count = users.len();
    let page: Vec<_> = users.into_iter().skip(offset).take(limit).collect();
    Ok(Json(
        json!({ "users": page, "count": count, "offset": offset, "limit": limit }),
    ))
}

pub async fn create_user(
    State(state): State<AppState>,
    Staff(caller): Staff,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, CREATE_USER_BODY)?;
    let identity = state.identity.as_ref().ok_or_else(|| {
        DomainError::NotAllowed("No sign-in provider is configured to create staff users".into())
    })?;
    let email = body
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let roles =
        string_list(&body, "roles").unwrap_or_else(|| vec![shared::roles::VIEWER.to_owned()]);
    if roles.is_empty() {
        return Err(invalid("Field 'roles' must name at least one role"));
    }
    state.roles.check_ids(&roles).await?;
    state
        .roles
        .check_roles_grantable(&holdings(&state, &caller).await?, &roles)
        .await?;
    let password = body.get("password").and_then(Value::as_str);
    let id = identity.create_staff_user(email, password, &roles).await?;
    let patch = StaffPatch {
        first_name: text_change(&body, "first_name"),
        last_name: text_change(&body, "last_name"),
        roles: None,
        metadata: record_change(&body, "metadata"),
    };
    let user = if patch == StaffPatch::default() {
        state.staff_users.retrieve(&id).await?
    } else {
        state.staff_users.update(&id, &patch).await?
    };
    Ok(Json(json!({ "user": user })))
}

pub async fn me(State(state): State<AppState>, Staff(actor): Staff) -> ApiResult<Json<Value>> {
    if actor.actor_type != "user" {
        return Err(DomainError::NotFound("A secret API key is not a staff user".into()).into());
    }
    Ok(Json(
        json!({ "user": state.staff_users.retrieve(&actor.actor_id).await? }),
    ))
}

pub async fn get_user(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "user": state.staff_users.retrieve(&id).await? }),
    ))
}

pub async fn update_user(
    State(state): State<AppState>,
    Staff(caller): Staff,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, UPDATE_USER_BODY)?;
    let roles = string_list(&body, "roles");
    if let Some(roles) = &roles {
        if roles.is_empty() {
            return Err(invalid("Field 'roles' must name at least one role"));
        }
        state.roles.check_ids(roles).await?;
        // Every role given or taken (one's own included) must be one the caller could hand out:
        // no one rises above the caller, and no one above it is brought down.
        let current = state.staff_users.retrieve(&id).await?.roles;
        let changed: Vec<String> = roles
            .iter()
            .filter(|r| !current.contains(r))
            .chain(current.iter().filter(|r| !roles.contains(r)))
            .cloned()
            .collect();
        state
            .roles
            .check_roles_grantable(&holdings(&state, &caller).await?, &changed)
            .await?;
    }
    let patch = StaffPatch {
        first_name: text_change(&body, "first_name"),
        last_name: text_change(&body, "last_name"),
        roles,
        metadata: record_change(&body, "metadata"),
    };
    Ok(Json(
        json!({ "user": state.staff_users.update(&id, &patch).await? }),
    ))
}
