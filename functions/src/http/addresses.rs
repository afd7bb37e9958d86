//! `/admin/customers/{id}/addresses…`: Medusa's quirks kept where the SDK relies on them —
//! create and update answer with the parent `{customer}`, delete with `parent`.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Map, Value, json};
use shared::addresses::{Address, AddressPatch, AddressQuery, TEXT_FIELDS};

use super::AppState;
use super::auth::Staff;
use super::body::{Field, JsonBody, Kind, nullish, optional, record_change, text_change, validate};
use super::customers::{customer_selection, render_customer};
use super::error::ApiResult;
use super::query::{self, Params};

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
    nullish("additional_data", Kind::Record),
];

pub const LIST_PARAMS: &[&str] = &[
    "q",
    "company",
    "city",
    "country_code",
    "province",
    "postal_code",
    "fields",
    "offset",
    "limit",
];

/// Which fields an address shows by default, in what order (the parts one after the other),
/// and which it shows on request.
pub struct Shape {
    defaults: &'static [&'static [&'static str]],
    extras: &'static [&'static [&'static str]],
}

const PROFILE: &[&str] = &[
    "id",
    "address_name",
    "company",
    "customer_id",
    "first_name",
    "last_name",
    "address_1",
    "address_2",
    "city",
    "province",
    "postal_code",
    "country_code",
    "phone",
    "metadata",
];
const DEFAULT_FLAGS: &[&str] = &["is_default_shipping", "is_default_billing"];
const TIMES: &[&str] = &["created_at", "updated_at"];
const DELETED: &[&str] = &["deleted_at"];

/// The admin's address routes: Medusa's defaults for them; the default flags on request only
/// (`*addresses` on a customer shows them all).
pub const ADMIN: Shape = Shape {
    defaults: &[PROFILE, TIMES],
    extras: &[DEFAULT_FLAGS, DELETED],
};

/// The storefront's address routes show which address is the default, as Medusa's do (the JS
/// SDK's address book reads the flags).
pub const STORE: Shape = Shape {
    defaults: &[PROFILE, DEFAULT_FLAGS, TIMES],
    extras: &[DELETED],
};

impl Shape {
    fn defaults(&self) -> Vec<&'static str> {
        self.defaults.concat()
    }

    fn extras(&self) -> Vec<&'static str> {
        self.extras.concat()
    }
}

fn render(address: &Address, selection: &super::fields::Selection, shape: &Shape) -> Value {
    let Ok(Value::Object(full)) = serde_json::to_value(address) else {
        return Value::Null;
    };
    let mut ordered = Map::new();
    for name in shape
        .defaults
        .iter()
        .chain(shape.extras)
        .flat_map(|part| part.iter())
    {
        if let Some(v) = full.get(*name).filter(|_| selection.includes(name)) {
            ordered.insert((*name).to_owned(), v.clone());
        }
    }
    Value::Object(ordered)
}

fn address_selection(params: &Params, shape: &Shape) -> ApiResult<super::fields::Selection> {
    super::fields::Selection::parse(
        query::string(params, "fields")?.as_deref(),
        &shape.defaults(),
        &shape.extras(),
    )
}

pub fn patch(body: &Map<String, Value>) -> AddressPatch {
    AddressPatch {
        text: TEXT_FIELDS
            .iter()
            .filter_map(|f| text_change(body, f).map(|v| (*f, v)))
            .collect(),
        is_default_shipping: body.get("is_default_shipping").and_then(Value::as_bool),
        is_default_billing: body.get("is_default_billing").and_then(Value::as_bool),
        metadata: record_change(body, "metadata"),
    }
}

pub async fn list(
    State(state): State<AppState>,
    _staff: Staff,
    Path(customer_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    list_of(&state, &customer_id, raw, LIST_PARAMS, &ADMIN).await
}

/// One customer's addresses, filtered by the `allowed` query parameters.
pub async fn list_of(
    state: &AppState,
    customer_id: &str,
    raw: Option<String>,
    allowed: &[&str],
    shape: &Shape,
) -> ApiResult<Json<Value>> {
    let params = query::parse(raw.as_deref())?;
    query::reject_unknown(&params, allowed)?;
    let selection = address_selection(&params, shape)?;
    let mut exact = Vec::new();
    for field in ["company", "city", "country_code", "province", "postal_code"] {
        if let Some(values) = query::strings(&params, field)? {
            exact.push((field, values));
        }
    }
    let address_query = AddressQuery {
        q: query::string(&params, "q")?.filter(|q| !q.is_empty()),
        exact,
        offset: query::number(&params, "offset")?.unwrap_or(0),
        limit: query::number(&params, "limit")?
            .unwrap_or(50)
            .min(super::customers::MAX_LIMIT),
    };
    let (addresses, count) = state.addresses.list(customer_id, &address_query).await?;
    Ok(Json(json!({
        "addresses": addresses.iter().map(|a| render(a, &selection, shape)).collect::<Vec<_>>(),
        "count": count,
        "offset": address_query.offset,
        "limit": address_query.limit,
    })))
}

pub async fn retrieve(
    State(state): State<AppState>,
    _staff: Staff,
    Path((customer_id, address_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    retrieve_of(&state, &customer_id, &address_id, raw, &ADMIN).await
}

pub async fn retrieve_of(
    state: &AppState,
    customer_id: &str,
    address_id: &str,
    raw: Option<String>,
    shape: &Shape,
) -> ApiResult<Json<Value>> {
    let params = query::parse(raw.as_deref())?;
    query::reject_unknown(&params, &["fields"])?;
    let selection = address_selection(&params, shape)?;
    let address = state.addresses.retrieve(customer_id, address_id).await?;
    Ok(Json(
        json!({ "address": render(&address, &selection, shape) }),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    _staff: Staff,
    Path(customer_id): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let selection = customer_selection(raw)?;
    let body = validate(body, ADDRESS_BODY)?;
    state.addresses.create(&customer_id, &patch(&body)).await?;
    let customer = state.customers.retrieve(&customer_id).await?;
    Ok(Json(
        json!({ "customer": render_customer(&state, &customer, &selection).await? }),
    ))
}

pub async fn update(
    State(state): State<AppState>,
    _staff: Staff,
    Path((customer_id, address_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let selection = customer_selection(raw)?;
    let body = validate(body, ADDRESS_BODY)?;
    state
        .addresses
        .update(&customer_id, &address_id, &patch(&body))
        .await?;
    let customer = state.customers.retrieve(&customer_id).await?;
    Ok(Json(
        json!({ "customer": render_customer(&state, &customer, &selection).await? }),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    _staff: Staff,
    Path((customer_id, address_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let selection = customer_selection(raw)?;
    state.addresses.delete(&customer_id, &address_id).await?;
    let customer = state.customers.retrieve(&customer_id).await?;
    Ok(Json(json!({
        "id": address_id,
        "object": "customer_address",
        "deleted": true,
        "parent": render_customer(&state, &customer, &selection).await?,
    })))
}
