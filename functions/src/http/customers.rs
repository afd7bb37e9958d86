//! `/admin/customers` and `/admin/customers/{id}`.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Map, Value, json};
use shared::customers::{
    Customer, CustomerDraft, CustomerOrder, CustomerPatch, CustomerQuery, Direction,
};

use super::AppState;
use super::auth::Staff;
use super::body::{Field, JsonBody, Kind, nullish, record_change, text_change, validate};
use super::error::{ApiResult, invalid};
use super::fields::Selection;
use super::query::{self, Params};

pub const DEFAULT_FIELDS: &[&str] = &[
    "id",
    "company_name",
    "first_name",
    "last_name",
    "email",
    "phone",
    "metadata",
    "has_account",
    "created_by",
    "created_at",
    "updated_at",
    "deleted_at",
];
pub const RELATIONS: &[&str] = &["addresses", "groups", "company"];

pub const CUSTOMER_BODY: &[Field] = &[
    nullish("email", Kind::Email),
    nullish("company_name", Kind::String),
    nullish("first_name", Kind::String),
    nullish("last_name", Kind::String),
    nullish("phone", Kind::String),
    nullish("metadata", Kind::Record),
    nullish("additional_data", Kind::Record),
];

pub const LIST_PARAMS: &[&str] = &[
    "q",
    "id",
    "email",
    "first_name",
    "last_name",
    "company_name",
    "phone",
    "created_by",
    "has_account",
    "created_at",
    "updated_at",
    "order",
    "offset",
    "limit",
    "fields",
    "cursor",
    "groups",
    "company_id",
];
pub const FIELDS_PARAM: &[&str] = &["fields"];

/// Largest page; larger `limit`s are clamped and the envelope says so.
pub const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 50;

fn selection(params: &Params) -> ApiResult<Selection> {
    Selection::parse(
        query::string(params, "fields")?.as_deref(),
        DEFAULT_FIELDS,
        RELATIONS,
    )
}

/// The `fields` of a route that takes nothing else, as customer fields.
pub fn customer_selection(raw: Option<String>) -> ApiResult<Selection> {
    let params = query::parse(raw.as_deref())?;
    query::reject_unknown(&params, FIELDS_PARAM)?;
    selection(&params)
}

/// A customer's own fields, without relations.
pub fn render_plain(customer: &Customer, selection: &Selection) -> Value {
    match serde_json::to_value(customer) {
        Ok(Value::Object(map)) => selection.project(map),
        _ => Value::Null,
    }
}

/// A customer with the relations `fields` asks for (`*addresses`, `*groups`).
pub async fn render_customer(
    state: &AppState,
    customer: &Customer,
    selection: &Selection,
) -> ApiResult<Value> {
    let mut out = render_plain(customer, selection);
    if selection.includes("addresses") {
        let addresses = state.addresses.all(&customer.id).await?;
        out["addresses"] = serde_json::to_value(addresses).unwrap_or_default();
    }
    if selection.includes("groups") {
        let groups = state.groups.groups_of(&customer.id).await?;
        out["groups"] = serde_json::to_value(groups).unwrap_or_default();
    }
    if selection.includes("company") {
        out["company"] = match state.companies.company_of(&customer.id).await {
            Ok((company, membership)) => {
                json!({ "id": company.id, "name": company.name, "role": membership.role })
            }
            Err(shared::DomainError::NotFound(_)) => Value::Null,
            Err(e) => return Err(e.into()),
        };
    }
    Ok(out)
}

/// `groups` as ids: a value, a list, or `{id: …}` as the SDK may send it.
fn group_filter(params: &Params) -> ApiResult<Option<Vec<String>>> {
    match params.get("groups") {
        Some(query::Param::Map(children)) => {
            if let Some(other) = children.keys().find(|k| k.as_str() != "id") {
                return Err(invalid(format!(
                    "Invalid request: Unsupported group filter: {other}"
                )));
            }
            query::strings(children, "id")
        }
        _ => query::strings(params, "groups"),
    }
}

fn order(params: &Params) -> ApiResult<Option<(CustomerOrder, Direction)>> {
    let Some(raw) = query::string(params, "order")? else {
        return Ok(None);
    };
    let (field, direction) = match raw.strip_prefix('-') {
        Some(f) => (f, Direction::Desc),
        None => (raw.as_str(), Direction::Asc),
    };
    CustomerOrder::parse(field)
        .map(|o| Some((o, direction)))
        .ok_or_else(|| invalid(format!("Order field {field} is not valid")))
}

pub fn list_query(params: &Params) -> ApiResult<CustomerQuery> {
    query::reject_unknown(params, LIST_PARAMS)?;
    Ok(CustomerQuery {
        q: query::string(params, "q")?.filter(|q| !q.is_empty()),
        ids: query::strings(params, "id")?,
        groups: group_filter(params)?,
        companies: query::strings(params, "company_id")?,
        emails: query::strings(params, "email")?,
        first_names: query::strings(params, "first_name")?,
        last_names: query::strings(params, "last_name")?,
        company_names: query::strings(params, "company_name")?,
        phones: query::strings(params, "phone")?,
        created_by: query::strings(params, "created_by")?,
        has_account: query::boolean(params, "has_account")?,
        created_at: query::time_range(params, "created_at")?,
        updated_at: query::time_range(params, "updated_at")?,
        order: order(params)?,
        after: match query::string(params, "cursor")? {
            Some(raw) => super::cursor::decode(&raw, params)?,
            None => None,
        },
        offset: query::number(params, "offset")?.unwrap_or(0),
        limit: query::number(params, "limit")?
            .unwrap_or(DEFAULT_LIMIT)
            .min(MAX_LIMIT),
    })
}

pub async fn list(
    State(state): State<AppState>,
    _staff: Staff,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = query::parse(raw.as_deref())?;
    let query = list_query(&params)?;
    let selection = selection(&params)?;
    let page = state.customers.list(&query).await?;
    let mut rendered = Vec::with_capacity(page.customers.len());
    for c in &page.customers {
        rendered.push(render_customer(&state, c, &selection).await?);
    }
    let mut body = json!({
        "customers": rendered,
        "count": page.count,
        "offset": query.offset,
        "limit": query.limit,
    });
    // Keyset pagination is opt-in (`cursor=` for the first page) so that Medusa's envelope
    // stays exactly as it is for clients that do not ask for it.
    if params.contains_key("cursor") {
        body["next_cursor"] = match &page.next_after {
            Some(after) => json!(super::cursor::encode(after, &params)),
            None => Value::Null,
        };
    }
    Ok(Json(body))
}

fn draft(body: &Map<String, Value>) -> CustomerDraft {
    let text = |name: &str| text_change(body, name).flatten();
    CustomerDraft {
        email: text("email"),
        company_name: text("company_name"),
        first_name: text("first_name"),
        last_name: text("last_name"),
        phone: text("phone"),
        metadata: record_change(body, "metadata").flatten(),
        has_account: false,
    }
}

pub fn patch(body: &Map<String, Value>) -> CustomerPatch {
    CustomerPatch {
        email: text_change(body, "email"),
        company_name: text_change(body, "company_name"),
        first_name: text_change(body, "first_name"),
        last_name: text_change(body, "last_name"),
        phone: text_change(body, "phone"),
        metadata: record_change(body, "metadata"),
    }
}

pub async fn create(
    State(state): State<AppState>,
    Staff(actor): Staff,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let selection = customer_selection(raw)?;
    let body = validate(body, CUSTOMER_BODY)?;
    let customer = state
        .customers
        .create(draft(&body), Some(actor.actor_id))
        .await?;
    Ok(Json(
        json!({ "customer": render_customer(&state, &customer, &selection).await? }),
    ))
}

pub async fn retrieve(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let selection = customer_selection(raw)?;
    let customer = state.customers.retrieve(&id).await?;
    Ok(Json(
        json!({ "customer": render_customer(&state, &customer, &selection).await? }),
    ))
}

pub async fn update(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let selection = customer_selection(raw)?;
    let body = validate(body, CUSTOMER_BODY)?;
    let customer = state.customers.update(&id, &patch(&body)).await?;
    Ok(Json(
        json!({ "customer": render_customer(&state, &customer, &selection).await? }),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.customers.delete(&id).await?;
    Ok(Json(
        json!({ "id": id, "object": "customer", "deleted": true }),
    ))
}
