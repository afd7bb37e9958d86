//! `/admin/customer-groups…` and the customer-side `/admin/customers/{id}/customer-groups`.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Map, Value, json};
use shared::customers::CustomerQuery;
use shared::groups::{CustomerGroup, GroupQuery};

use super::AppState;
use super::auth::Staff;
use super::body::{Field, JsonBody, Kind, nullish, optional, record_change, required, validate};
use super::customers::{customer_selection, render_customer};
use super::error::{ApiResult, invalid};
use super::fields::Selection;
use super::query::{self, Param, Params};

pub const CREATE_BODY: &[Field] = &[
    required("name", Kind::String),
    nullish("metadata", Kind::Record),
];
pub const UPDATE_BODY: &[Field] = &[
    optional("name", Kind::String),
    nullish("metadata", Kind::Record),
];
pub const BATCH_BODY: &[Field] = &[
    optional("add", Kind::StringList),
    optional("remove", Kind::StringList),
];

pub const LIST_PARAMS: &[&str] = &[
    "q",
    "id",
    "name",
    "created_by",
    "customers",
    "order",
    "fields",
    "offset",
    "limit",
];

const DEFAULT_FIELDS: &[&str] = &[
    "id",
    "name",
    "created_by",
    "created_at",
    "updated_at",
    "deleted_at",
    "metadata",
];
const RELATIONS: &[&str] = &["customers"];
/// Most members `*customers` shows; larger groups are listed with `GET /admin/customers?groups=…`.
const MAX_EXPANDED_MEMBERS: usize = 1000;

fn selection(params: &Params) -> ApiResult<Selection> {
    Selection::parse(
        query::string(params, "fields")?.as_deref(),
        DEFAULT_FIELDS,
        RELATIONS,
    )
}

fn fields_only(raw: Option<String>) -> ApiResult<Selection> {
    let params = query::parse(raw.as_deref())?;
    query::reject_unknown(&params, &["fields"])?;
    selection(&params)
}

async fn render(
    state: &AppState,
    group: &CustomerGroup,
    selection: &Selection,
) -> ApiResult<Value> {
    let Ok(Value::Object(map)) = serde_json::to_value(group) else {
        return Ok(Value::Null);
    };
    let mut out = selection.project(map);
    if selection.includes("customers") {
        let query = CustomerQuery {
            groups: Some(vec![group.id.clone()]),
            limit: MAX_EXPANDED_MEMBERS,
            ..Default::default()
        };
        let members = state.customers.list(&query).await?;
        let plain = Selection::parse(None, super::customers::DEFAULT_FIELDS, &[])?;
        out["customers"] = Value::Array(
            members
                .customers
                .iter()
                .map(|c| super::customers::render_plain(c, &plain))
                .collect(),
        );
    }
    Ok(out)
}

/// `customers` as a list of ids, or `{id: …}`.
fn customer_filter(params: &Params) -> ApiResult<Option<Vec<String>>> {
    match params.get("customers") {
        Some(Param::Map(children)) => {
            let unknown: Vec<&String> = children.keys().filter(|k| k.as_str() != "id").collect();
            if !unknown.is_empty() {
                return Err(invalid(format!(
                    "Invalid request: Unsupported customer filter: {}",
                    unknown
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            query::strings(children, "id")
        }
        _ => query::strings(params, "customers"),
    }
}

pub async fn list(
    State(state): State<AppState>,
    _staff: Staff,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = query::parse(raw.as_deref())?;
    query::reject_unknown(&params, LIST_PARAMS)?;
    let selection = selection(&params)?;
    let order_by_name = match query::string(&params, "order")?.as_deref() {
        None | Some("created_at" | "id") => None,
        Some("name") => Some(true),
        Some("-name") => Some(false),
        Some(other) => {
            return Err(invalid(format!(
                "Order field {} is not valid",
                other.trim_start_matches('-')
            )));
        }
    };
    let group_query = GroupQuery {
        q: query::string(&params, "q")?.filter(|q| !q.is_empty()),
        ids: query::strings(&params, "id")?,
        names: query::strings(&params, "name")?,
        created_by: query::strings(&params, "created_by")?,
        customers: customer_filter(&params)?,
        order_by_name,
        offset: query::number(&params, "offset")?.unwrap_or(0),
        limit: query::number(&params, "limit")?
            .unwrap_or(50)
            .min(super::customers::MAX_LIMIT),
    };
    let (groups, count) = state.groups.list(&group_query).await?;
    let mut rendered = Vec::with_capacity(groups.len());
    for g in &groups {
        rendered.push(render(&state, g, &selection).await?);
    }
    Ok(Json(json!({
        "customer_groups": rendered,
        "count": count,
        "offset": group_query.offset,
        "limit": group_query.limit,
    })))
}

pub async fn create(
    State(state): State<AppState>,
    Staff(actor): Staff,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let selection = fields_only(raw)?;
    let body = validate(body, CREATE_BODY)?;
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    let metadata = record_change(&body, "metadata").flatten();
    let group = state
        .groups
        .create(name, metadata, Some(actor.actor_id))
        .await?;
    Ok(Json(
        json!({ "customer_group": render(&state, &group, &selection).await? }),
    ))
}

pub async fn retrieve(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let selection = fields_only(raw)?;
    let group = state.groups.retrieve(&id).await?;
    Ok(Json(
        json!({ "customer_group": render(&state, &group, &selection).await? }),
    ))
}

pub async fn update(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let selection = fields_only(raw)?;
    let body = validate(body, UPDATE_BODY)?;
    let metadata: Option<Option<Map<String, Value>>> = record_change(&body, "metadata");
    let group = state
        .groups
        .update(
            &id,
            body.get("name").and_then(Value::as_str),
            metadata.as_ref().map(Option::as_ref),
        )
        .await?;
    Ok(Json(
        json!({ "customer_group": render(&state, &group, &selection).await? }),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.groups.delete(&id).await?;
    Ok(Json(
        json!({ "id": id, "object": "customer_group", "deleted": true }),
    ))
}

fn id_list(body: &Map<String, Value>, name: &str) -> Vec<String> {
    let mut ids: Vec<String> = body
        .get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids.dedup();
    ids
}

/// `POST /admin/customer-groups/{id}/customers {add, remove}` → `{customer_group}`.
pub async fn batch_customers(
    State(state): State<AppState>,
    Staff(actor): Staff,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let selection = fields_only(raw)?;
    let body = validate(body, BATCH_BODY)?;
    state
        .groups
        .batch_members(
            &id,
            &id_list(&body, "add"),
            &id_list(&body, "remove"),
            Some(&actor.actor_id),
        )
        .await?;
    let group = state.groups.retrieve(&id).await?;
    Ok(Json(
        json!({ "customer_group": render(&state, &group, &selection).await? }),
    ))
}

/// `POST /admin/customers/{id}/customer-groups {add, remove}` → `{customer}`.
pub async fn batch_groups(
    State(state): State<AppState>,
    Staff(actor): Staff,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let selection = customer_selection(raw)?;
    let body = validate(body, BATCH_BODY)?;
    state
        .groups
        .batch_groups(
            &id,
            &id_list(&body, "add"),
            &id_list(&body, "remove"),
            Some(&actor.actor_id),
        )
        .await?;
    let customer = state.customers.retrieve(&id).await?;
    Ok(Json(
        json!({ "customer": render_customer(&state, &customer, &selection).await? }),
    ))
}
