//! `/store/customers…`: a shopper's own profile and addresses. Every route needs a publishable
//! key; `me` routes act on the signed-in customer only, so another customer's address id is
//! simply not found.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Value, json};
use shared::DomainError;
use shared::customers::CustomerDraft;

use super::AppState;
use super::addresses::{self, patch as address_patch};
use super::auth::{CustomerIdentity, Shopper, Storefront};
use super::body::{Field, JsonBody, Kind, nullish, optional, record_change, text_change, validate};
use super::customers::{patch as customer_patch, render_customer};
use super::error::{ApiError, ApiResult};
use super::fields::Selection;
use super::query;

/// What a shopper sees of themselves by default: Medusa's store defaults, addresses included.
pub const STORE_FIELDS: &[&str] = &[
    "id",
    "email",
    "company_name",
    "first_name",
    "last_name",
    "phone",
    "metadata",
    "has_account",
    "deleted_at",
    "created_at",
    "updated_at",
    "addresses",
];
const STORE_EXTRA: &[&str] = &["groups"];

pub const CREATE_BODY: &[Field] = &[
    nullish("email", Kind::Email),
    nullish("company_name", Kind::String),
    nullish("first_name", Kind::String),
    nullish("last_name", Kind::String),
    nullish("phone", Kind::String),
    nullish("metadata", Kind::Record),
];

/// No `email`: a shopper changes it through their identity, not here (as in Medusa).
pub const UPDATE_BODY: &[Field] = &[
    nullish("company_name", Kind::String),
    nullish("first_name", Kind::String),
    nullish("last_name", Kind::String),
    nullish("phone", Kind::String),
    nullish("metadata", Kind::Record),
];

pub const ADDRESS_BODY: &[Field] = &[
    nullish("address_name", Kind::String),
    nullish("company", Kind::String),
    nullish("first_name", Kind::String),
    nullish("last_name", Kind::String),
    nullish("address_1", Kind::String),
    nullish("address_2", Kind::String),
    nullish("city", Kind::String),
    nullish("country_code", Kind::String),
    nullish("province", Kind::String),
    nullish("postal_code", Kind::String),
    nullish("phone", Kind::String),
    optional("is_default_shipping", Kind::Boolean),
    optional("is_default_billing", Kind::Boolean),
    nullish("metadata", Kind::Record),
];

pub const ADDRESS_LIST_PARAMS: &[&str] = &[
    "q",
    "city",
    "country_code",
    "postal_code",
    "fields",
    "offset",
    "limit",
];

fn selection(raw: Option<String>) -> ApiResult<Selection> {
    let params = query::parse(raw.as_deref())?;
    query::reject_unknown(&params, &["fields"])?;
    Selection::parse(
        query::string(&params, "fields")?.as_deref(),
        STORE_FIELDS,
        STORE_EXTRA,
    )
}

async fn answer(
    state: &AppState,
    customer_id: &str,
    raw: Option<String>,
) -> ApiResult<Json<Value>> {
    let selection = selection(raw)?;
    let customer = state.customers.retrieve(customer_id).await?;
    Ok(Json(
        json!({ "customer": render_customer(state, &customer, &selection).await? }),
    ))
}

/// `POST /store/customers`: the signed-in identity becomes a customer with an account.
pub async fn register(
    State(state): State<AppState>,
    _key: Storefront,
    CustomerIdentity(context): CustomerIdentity,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    if !context.actor_id.is_empty() {
        return Err(ApiError(DomainError::Duplicate(
            shared::customers::EXTRA_CONDITION_FAILED.into(),
        )));
    }
    let selection = selection(raw)?;
    let body = validate(body, CREATE_BODY)?;
    let text = |name: &str| text_change(&body, name).flatten();
    let draft = CustomerDraft {
        email: text("email"),
        company_name: text("company_name"),
        first_name: text("first_name"),
        last_name: text("last_name"),
        phone: text("phone"),
        metadata: record_change(&body, "metadata").flatten(),
        has_account: true,
    };
    // The provider knows the identity's email; a deployment without one (an external
    // issuer) cannot tie a registration to an address, and refuses it.
    let identity_email = match &state.identity {
        Some(provider) => {
            provider
                .identity_email(&context.actor_type, &context.auth_identity_id)
                .await?
        }
        None => None,
    };
    let customer = state
        .customers
        .register(&context.auth_identity_id, identity_email.as_deref(), draft)
        .await?;
    Ok(Json(
        json!({ "customer": render_customer(&state, &customer, &selection).await? }),
    ))
}

pub async fn me(
    State(state): State<AppState>,
    _key: Storefront,
    Shopper(me): Shopper,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    answer(&state, &me.actor_id, raw).await
}

pub async fn update_me(
    State(state): State<AppState>,
    _key: Storefront,
    Shopper(me): Shopper,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, UPDATE_BODY)?;
    selection(raw.clone())?;
    state
        .customers
        .update(&me.actor_id, &customer_patch(&body))
        .await?;
    answer(&state, &me.actor_id, raw).await
}

pub async fn list_addresses(
    State(state): State<AppState>,
    _key: Storefront,
    Shopper(me): Shopper,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    addresses::list_of(
        &state,
        &me.actor_id,
        raw,
        ADDRESS_LIST_PARAMS,
        &addresses::STORE,
    )
    .await
}

pub async fn create_address(
    State(state): State<AppState>,
    _key: Storefront,
    Shopper(me): Shopper,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    selection(raw.clone())?;
    let body = validate(body, ADDRESS_BODY)?;
    state
        .addresses
        .create(&me.actor_id, &address_patch(&body))
        .await?;
    answer(&state, &me.actor_id, raw).await
}

pub async fn get_address(
    State(state): State<AppState>,
    _key: Storefront,
    Shopper(me): Shopper,
    Path(address_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    addresses::retrieve_of(&state, &me.actor_id, &address_id, raw, &addresses::STORE).await
}

pub async fn update_address(
    State(state): State<AppState>,
    _key: Storefront,
    Shopper(me): Shopper,
    Path(address_id): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    selection(raw.clone())?;
    let body = validate(body, ADDRESS_BODY)?;
    state
        .addresses
        .update(&me.actor_id, &address_id, &address_patch(&body))
        .await?;
    answer(&state, &me.actor_id, raw).await
}

pub async fn delete_address(
    State(state): State<AppState>,
    _key: Storefront,
    Shopper(me): Shopper,
    Path(address_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let selection = selection(raw)?;
    // Medusa answers 404 for an address the caller does not own; `delete` alone succeeds on
    // an unknown id, so look first.
    state.addresses.retrieve(&me.actor_id, &address_id).await?;
    state.addresses.delete(&me.actor_id, &address_id).await?;
    let customer = state.customers.retrieve(&me.actor_id).await?;
    Ok(Json(json!({
        "id": address_id,
        "object": "address",
        "deleted": true,
        "parent": render_customer(&state, &customer, &selection).await?,
    })))
}
