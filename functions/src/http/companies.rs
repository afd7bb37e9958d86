//! `/admin/companies…` and the storefront's `/store/customers/me/company…`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Map, Value, json};
use shared::companies::invitations::Invitation;
use shared::companies::{Company, CompanyPatch, CompanyQuery, MemberRef, Membership, NewMember};
use shared::customers::CustomerQuery;

use super::AppState;
use super::auth::{Shopper, Staff, Storefront};
use super::body::{
    Field, JsonBody, Kind, nullish, optional, record_change, required, string_list, text_change,
    validate,
};
use super::error::{ApiResult, invalid};
use super::query;

pub const CREATE_BODY: &[Field] = &[
    required("name", Kind::String),
    nullish("external_id", Kind::String),
    nullish("tax_id", Kind::String),
    optional("email_domains", Kind::StringList),
    optional("auto_join_by_domain", Kind::Boolean),
    nullish("saml_provider", Kind::String),
    nullish("metadata", Kind::Record),
];
pub const UPDATE_BODY: &[Field] = &[
    optional("name", Kind::String),
    nullish("external_id", Kind::String),
    nullish("tax_id", Kind::String),
    optional("email_domains", Kind::StringList),
    optional("auto_join_by_domain", Kind::Boolean),
    nullish("saml_provider", Kind::String),
    nullish("metadata", Kind::Record),
];
pub const MEMBERS_BODY: &[Field] = &[
    optional("add", Kind::List),
    optional("remove", Kind::StringList),
];
/// The storefront's members body: `add` takes emails too, `revoke_invitations` emails.
pub const STORE_MEMBERS_BODY: &[Field] = &[
    optional("add", Kind::List),
    optional("remove", Kind::StringList),
    optional("revoke_invitations", Kind::StringList),
];
pub const LIST_PARAMS: &[&str] = &["q", "id", "external_id", "offset", "limit"];
pub const MEMBER_LIST_PARAMS: &[&str] = &["offset", "limit"];
pub const INVITATION_LIST_PARAMS: &[&str] = &["offset", "limit"];

fn patch_from(body: &Map<String, Value>) -> CompanyPatch {
    CompanyPatch {
        name: body.get("name").and_then(Value::as_str).map(str::to_owned),
        external_id: text_change(body, "external_id"),
        tax_id: text_change(body, "tax_id"),
        email_domains: string_list(body, "email_domains"),
        auto_join_by_domain: body.get("auto_join_by_domain").and_then(Value::as_bool),
        saml_provider: text_change(body, "saml_provider"),
        metadata: record_change(body, "metadata"),
    }
}

/// Reads `add: [{customer_id | email, role}]` (`email` only where `by_email`); `role`
/// defaults to `buyer`.
fn additions(body: &Map<String, Value>, by_email: bool) -> ApiResult<Vec<(MemberRef, String)>> {
    let Some(list) = body.get("add").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let (allowed, who): (&[&str], &str) = if by_email {
        (&["customer_id", "email", "role"], "email or customer_id")
    } else {
        (&["customer_id", "role"], "customer_id")
    };
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            let Some(entry) = entry.as_object() else {
                return Err(invalid(format!(
                    "Invalid request: Expected type: 'object' for field 'add, {i}'"
                )));
            };
            if let Some(k) = entry.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(invalid(format!(
                    "Invalid request: Unrecognized fields: 'add, {i}, {k}'"
                )));
            }
            let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_owned);
            let target = match (text("customer_id"), text("email")) {
                (Some(id), _) => MemberRef::Id(id),
                (None, Some(email)) => MemberRef::Email(email),
                (None, None) => {
                    return Err(invalid(format!(
                        "Invalid request: Field 'add, {i}' needs {who}"
                    )));
                }
            };
            Ok((target, text("role").unwrap_or_else(|| "buyer".into())))
        })
        .collect()
}

fn render(company: &Company) -> Value {
    serde_json::to_value(company).unwrap_or(Value::Null)
}

pub async fn list(
    State(state): State<AppState>,
    _staff: Staff,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = query::parse(raw.as_deref())?;
    query::reject_unknown(&params, LIST_PARAMS)?;
    let q = CompanyQuery {
        q: query::string(&params, "q")?.filter(|q| !q.is_empty()),
        ids: query::strings(&params, "id")?,
        external_ids: query::strings(&params, "external_id")?,
        offset: query::number(&params, "offset")?.unwrap_or(0),
        limit: query::number(&params, "limit")?
            .unwrap_or(50)
            .min(super::customers::MAX_LIMIT),
    };
    let (companies, count) = state.companies.list(&q).await?;
    Ok(Json(json!({
        "companies": companies.iter().map(render).collect::<Vec<_>>(),
        "count": count, "offset": q.offset, "limit": q.limit,
    })))
}

pub async fn create(
    State(state): State<AppState>,
    _staff: Staff,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, CREATE_BODY)?;
    let company = state.companies.create(&patch_from(&body)).await?;
    Ok(Json(json!({ "company": render(&company) })))
}

pub async fn retrieve(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let company = state.companies.retrieve(&id).await?;
    Ok(Json(json!({ "company": render(&company) })))
}

pub async fn update(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, UPDATE_BODY)?;
    let company = state.companies.update(&id, &patch_from(&body)).await?;
    Ok(Json(json!({ "company": render(&company) })))
}

pub async fn delete(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.companies.delete(&id).await?;
    Ok(Json(
        json!({ "id": id, "object": "company", "deleted": true }),
    ))
}

pub async fn batch_customers(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, MEMBERS_BODY)?;
    let add: Vec<NewMember> = additions(&body, false)?
        .into_iter()
        .filter_map(|(target, role)| match target {
            MemberRef::Id(customer_id) => Some(NewMember { customer_id, role }),
            MemberRef::Email(_) => None,
        })
        .collect();
    let company = state
        .companies
        .update_members(&id, &add, &string_list(&body, "remove").unwrap_or_default())
        .await?;
    Ok(Json(json!({ "company": render(&company) })))
}

/// The company as its buyers see it: no sign-in settings, with the caller's role.
fn render_for_member(company: &Company, membership: &Membership) -> Value {
    json!({
        "id": company.id,
        "name": company.name,
        "external_id": company.external_id,
        "tax_id": company.tax_id,
        "email_domains": company.email_domains,
        "member_count": company.member_count,
        "role": membership.role,
        "created_at": company.created_at,
    })
}

pub async fn store_company(
    State(state): State<AppState>,
    _storefront: Storefront,
    Shopper(actor): Shopper,
) -> ApiResult<Json<Value>> {
    let (company, membership) = state.companies.company_of(&actor.actor_id).await?;
    Ok(Json(
        json!({ "company": render_for_member(&company, &membership) }),
    ))
}

async fn members_page(
    state: &AppState,
    company_id: &str,
    offset: usize,
    limit: usize,
) -> ApiResult<Value> {
    let members = state.companies.members(company_id).await?;
    let count = members.len();
    let page: Vec<&Membership> = members.iter().skip(offset).take(limit).collect();
    let ids: Vec<String> = page.iter().map(|m| m.customer_id.clone()).collect();
    let customers = if ids.is_empty() {
        HashMap::new()
    } else {
        state
            .customers
            .list(&CustomerQuery {
                limit: ids.len(),
                ids: Some(ids),
                ..Default::default()
            })
            .await?
            .customers
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect()
    };
    let rendered: Vec<Value> = page
        .iter()
        .map(|m| {
            let c = customers.get(&m.customer_id);
            json!({
                "customer_id": m.customer_id,
                "email": c.and_then(|c| c.email.clone()),
                "first_name": c.and_then(|c| c.first_name.clone()),
                "last_name": c.and_then(|c| c.last_name.clone()),
                "role": m.role,
                "joined_at": m.created_at,
            })
        })
        .collect();
    let invitations: Vec<Value> = state
        .companies
        .pending_invitations(company_id)
        .await?
        .iter()
        .map(|i| {
            json!({
                "id": i.id, "email": i.email, "role": i.role,
                "created_at": i.created_at, "expires_at": i.expires_at,
            })
        })
        .collect();
    Ok(json!({
        "members": rendered, "count": count, "offset": offset, "limit": limit,
        "invitations": invitations,
    }))
}

/// `offset` and `limit` (50 by default) of a storefront list taking only `allowed`.
fn storefront_page(raw: Option<String>, allowed: &[&str]) -> ApiResult<(usize, usize)> {
    let params = query::parse(raw.as_deref())?;
    query::reject_unknown(&params, allowed)?;
    let offset = query::number(&params, "offset")?.unwrap_or(0);
    let limit = query::number(&params, "limit")?
        .unwrap_or(50)
        .min(super::customers::MAX_LIMIT);
    Ok((offset, limit))
}

pub async fn store_members(
    State(state): State<AppState>,
    _storefront: Storefront,
    Shopper(actor): Shopper,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (offset, limit) = storefront_page(raw, MEMBER_LIST_PARAMS)?;
    let company = state.companies.administered_by(&actor.actor_id).await?;
    Ok(Json(
        members_page(&state, &company.id, offset, limit).await?,
    ))
}

/// The answer is the same whether an invited email has an account or not: the members page
/// (which only the company's own domains can change) and how many emails were invited.
pub async fn store_update_members(
    State(state): State<AppState>,
    _storefront: Storefront,
    Shopper(actor): Shopper,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let body = validate(body, STORE_MEMBERS_BODY)?;
    let changes = state
        .companies
        .update_members_as(
            &actor.actor_id,
            &additions(&body, true)?,
            &string_list(&body, "remove").unwrap_or_default(),
            &string_list(&body, "revoke_invitations").unwrap_or_default(),
        )
        .await?;
    let mut page = members_page(&state, &changes.company.id, 0, 50).await?;
    page["invited"] = json!(changes.invited);
    Ok(Json(page))
}

/// An invitation as its invitee sees it: the company's name, not its members or settings.
fn render_invitation(invitation: &Invitation, company: &Company) -> Value {
    json!({
        "id": invitation.id,
        "company_id": company.id,
        "company": { "id": company.id, "name": company.name },
        "email": invitation.email,
        "role": invitation.role,
        "created_at": invitation.created_at,
        "expires_at": invitation.expires_at,
    })
}

pub async fn store_invitations(
    State(state): State<AppState>,
    _storefront: Storefront,
    Shopper(actor): Shopper,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (offset, limit) = storefront_page(raw, INVITATION_LIST_PARAMS)?;
    let invitations = state.companies.invitations_for(&actor.actor_id).await?;
    let page: Vec<Value> = invitations
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(i, c)| render_invitation(i, c))
        .collect();
    Ok(Json(json!({
        "company_invitations": page,
        "count": invitations.len(), "offset": offset, "limit": limit,
    })))
}

pub async fn store_accept_invitation(
    State(state): State<AppState>,
    _storefront: Storefront,
    Shopper(actor): Shopper,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (company, membership) = state
        .companies
        .accept_invitation(&actor.actor_id, &id)
        .await?;
    Ok(Json(
        json!({ "company": render_for_member(&company, &membership) }),
    ))
}

pub async fn store_decline_invitation(
    State(state): State<AppState>,
    _storefront: Storefront,
    Shopper(actor): Shopper,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state
        .companies
        .decline_invitation(&actor.actor_id, &id)
        .await?;
    Ok(Json(
        json!({ "id": id, "object": "company_invitation", "deleted": true }),
    ))
}

pub async fn store_leave_company(
    State(state): State<AppState>,
    _storefront: Storefront,
    Shopper(actor): Shopper,
) -> ApiResult<Json<Value>> {
    let left = state.companies.leave(&actor.actor_id).await?;
    Ok(Json(
        json!({ "id": left.company_id, "object": "company_membership", "deleted": true }),
    ))
}
