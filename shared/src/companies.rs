//! B2B companies and their buyers.
//!
//! | item | pk | sk | index |
//! |---|---|---|---|
//! | company | `COMP#<id>` | `#META` | gsi1 `COMPLIST` / `<id>` while live |
//! | member counter | `COMP#<id>` | `#COUNT` (`member_count`) | – |
//! | external id marker | `COMPEXT#<external_id>` | same | – |
//! | email domain marker | `COMPDOMAIN#<domain>` | same | – |
//! | SAML provider marker | `COMPSAML#<provider>` | same | – |
//! | membership | `CUS#<customer>` | `COMPANY` | gsi1 `COMPMEM#<company>` / `<customer>` |
//! | invitation | see [`invitations`] | | |
//!
//! A customer has one `COMPANY` item at most, so "one company per customer" is a key, not a
//! check. The counter is its own item so that membership changes never race a company update.
//! Markers make external ids, email domains and SAML providers unique across companies, and
//! turn a sign-in's domain or provider into its company with one read.

pub mod invitations;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::customers::{check_metadata, merge_metadata, normalize_text, profile_key};
use crate::error::{DomainError, DomainResult};
use crate::ports::{Clock, IdGenerator, iso};
use crate::store::record::{from_item, text, to_item};
use crate::store::{Condition, Index, Item, Key, KvStore, Query, StoreError, WriteOp, query_all};

pub const ID_PREFIX: &str = "comp";
pub const ROLES: &[&str] = &["admin", "buyer", "viewer"];
pub const ADMIN_ROLE: &str = "admin";
/// Most customers one batch call adds or removes.
pub const MAX_BATCH: usize = 1000;
const MAX_DOMAINS: usize = 20;
const MAX_TEXT: usize = 255;
const ATTEMPTS: usize = 5;
/// Customers per membership transaction: two writes each plus the company check and counter.
const MEMBERS_PER_TRANSACTION: usize = 40;
/// The sort key of a customer's membership item.
pub const MEMBERSHIP_SK: &str = "COMPANY";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Company {
    pub id: String,
    pub name: String,
    /// The organisation's id in the buyer's own systems (ERP, CRM); unique.
    pub external_id: Option<String>,
    pub tax_id: Option<String>,
    /// Domains of the company's email addresses, lowercase; each belongs to one company.
    pub email_domains: Vec<String>,
    /// Customers with a verified email in one of `email_domains` join on sign-in.
    pub auto_join_by_domain: bool,
    /// The Cognito identity provider (SAML) whose users are this company's buyers.
    pub saml_provider: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub member_count: i64,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
}

impl Company {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// A customer's place in a company.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    pub customer_id: String,
    pub company_id: String,
    pub role: String,
    pub created_at: String,
}

/// What a create or update may set: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompanyPatch {
    pub name: Option<String>,
    pub external_id: Option<Option<String>>,
    pub tax_id: Option<Option<String>>,
    pub email_domains: Option<Vec<String>>,
    pub auto_join_by_domain: Option<bool>,
    pub saml_provider: Option<Option<String>>,
    /// Merged key by key into the stored metadata.
    pub metadata: Option<Option<Map<String, Value>>>,
}

/// Filters of `GET /admin/companies`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompanyQuery {
    pub q: Option<String>,
    pub ids: Option<Vec<String>>,
    pub external_ids: Option<Vec<String>>,
    pub offset: usize,
    pub limit: usize,
}

pub fn company_key(id: &str) -> Key {
    Key::new(format!("COMP#{id}"), "#META")
}

fn counter_key(id: &str) -> Key {
    Key::new(format!("COMP#{id}"), "#COUNT")
}

pub fn membership_key(customer_id: &str) -> Key {
    Key::new(profile_key(customer_id).pk, MEMBERSHIP_SK)
}

fn members_partition(company_id: &str) -> String {
    format!("COMPMEM#{company_id}")
}

fn marker_key(kind: &str, value: &str) -> Key {
    let k = format!("{kind}#{value}");
    Key::new(k.clone(), k)
}

fn external_marker(external_id: &str) -> Key {
    marker_key("COMPEXT", external_id)
}

fn domain_marker(domain: &str) -> Key {
    marker_key("COMPDOMAIN", domain)
}

fn saml_marker(provider: &str) -> Key {
    marker_key("COMPSAML", &provider.to_lowercase())
}

/// Every marker a company holds, with the message its clash gives.
fn markers(c: &Company) -> Vec<(Key, String)> {
    let mut out = Vec::new();
    if let Some(e) = &c.external_id {
        out.push((
            external_marker(e),
            format!("Company with external_id: {e}, already exists."),
        ));
    }
    for d in &c.email_domains {
        out.push((
            domain_marker(d),
            format!("Email domain {d} already belongs to another company."),
        ));
    }
    if let Some(p) = &c.saml_provider {
        out.push((
            saml_marker(p),
            format!("Identity provider {p} already belongs to another company."),
        ));
    }
    out
}

fn marker_item(key: &Key, company_id: &str) -> Item {
    crate::store::record::pointer(key, "company_marker", "company_id", company_id)
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("Company with id: {id} was not found"))
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::InvalidData(message.into())
}

fn clean_text(field: &str, value: Option<String>) -> DomainResult<Option<String>> {
    let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if value.as_ref().is_some_and(|v| v.chars().count() > MAX_TEXT) {
        return Err(invalid(format!(
            "Field '{field}' must be at most {MAX_TEXT} characters"
        )));
    }
    Ok(value)
}

/// A domain as companies keep it: lowercase, labels of letters, digits and hyphens, a dot.
pub fn normalize_domain(raw: &str) -> DomainResult<String> {
    let domain = raw.trim().trim_start_matches('@').to_lowercase();
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if domain.len() > 253 || !domain.contains('.') || !domain.split('.').all(valid_label) {
        return Err(invalid(format!(
            "Invalid email domain '{raw}': expected a domain such as example.com"
        )));
    }
    Ok(domain)
}

fn check_role(role: &str) -> DomainResult<()> {
    if ROLES.contains(&role) {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid company role '{role}': expected one of {}",
            ROLES.join(", ")
        )))
    }
}

fn apply(current: &Company, patch: &CompanyPatch) -> DomainResult<Company> {
    let mut next = current.clone();
    if let Some(name) = &patch.name {
        next.name = clean_text("name", Some(name.clone()))?
            .ok_or_else(|| invalid("Field 'name' must not be empty"))?;
    }
    if let Some(v) = &patch.external_id {
        next.external_id = clean_text("external_id", v.clone())?;
    }
    if let Some(v) = &patch.tax_id {
        next.tax_id = clean_text("tax_id", v.clone())?;
    }
    if let Some(v) = &patch.saml_provider {
        next.saml_provider = clean_text("saml_provider", v.clone())?;
    }
    if let Some(domains) = &patch.email_domains {
        let mut clean = Vec::new();
        for d in domains {
            let d = normalize_domain(d)?;
            if !clean.contains(&d) {
                clean.push(d);
            }
        }
        if clean.len() > MAX_DOMAINS {
            return Err(invalid(format!(
                "Field 'email_domains' may list at most {MAX_DOMAINS} domains"
            )));
        }
        next.email_domains = clean;
    }
    if let Some(v) = patch.auto_join_by_domain {
        next.auto_join_by_domain = v;
    }
    if let Some(change) = &patch.metadata {
        next.metadata = merge_metadata(current.metadata.as_ref(), change.as_ref());
        check_metadata(&next.metadata)?;
    }
    if next.auto_join_by_domain && next.email_domains.is_empty() {
        return Err(invalid(
            "Field 'auto_join_by_domain' needs at least one entry in 'email_domains'",
        ));
    }
    Ok(next)
}

/// The membership a `COMPANY` item holds.
pub(crate) fn membership_from(item: &Item) -> Option<Membership> {
    Some(Membership {
        customer_id: text(item, "customer_id")?.to_owned(),
        company_id: text(item, "company_id")?.to_owned(),
        role: text(item, "role")?.to_owned(),
        created_at: text(item, "created_at").unwrap_or_default().to_owned(),
    })
}

fn membership_item(m: &Membership) -> Item {
    let key = membership_key(&m.customer_id);
    let mut item = Item::new();
    item.insert("pk".into(), key.pk.into());
    item.insert("sk".into(), key.sk.into());
    item.insert("entity_type".into(), "company_member".into());
    item.insert("customer_id".into(), m.customer_id.clone().into());
    item.insert("company_id".into(), m.company_id.clone().into());
    item.insert("role".into(), m.role.clone().into());
    item.insert("created_at".into(), m.created_at.clone().into());
    item.insert("gsi1pk".into(), members_partition(&m.company_id).into());
    item.insert("gsi1sk".into(), m.customer_id.clone().into());
    item
}

fn live() -> Condition {
    Condition::equals("deleted_at", Value::Null)
}

/// Every member id of the companies, deduplicated.
pub async fn member_ids(
    store: &Arc<dyn KvStore>,
    company_ids: &[String],
) -> DomainResult<std::collections::BTreeSet<String>> {
    let mut out = std::collections::BTreeSet::new();
    for id in company_ids {
        let items = query_all(
            store.as_ref(),
            Query::new(Index::Gsi1, members_partition(id)),
        )
        .await?;
        out.extend(
            items
                .iter()
                .filter_map(|i| text(i, "customer_id").map(str::to_owned)),
        );
    }
    Ok(out)
}

/// The company a customer belongs to, if any (one read).
pub async fn membership_of(
    store: &Arc<dyn KvStore>,
    customer_id: &str,
) -> DomainResult<Option<Membership>> {
    Ok(store
        .get(&membership_key(customer_id))
        .await?
        .as_ref()
        .and_then(membership_from))
}

/// A customer as a company admin names it from the storefront.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberRef {
    /// A member of the admin's company (a role change).
    Id(String),
    /// Anyone's email: added directly within the company's domains, else invited.
    Email(String),
}

/// What a company admin's change to its members did, as far as the admin may know it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberChanges {
    pub company: Company,
    /// Emails that got (or renewed) an invitation rather than a membership.
    pub invited: usize,
}

/// One customer to add, as `POST /admin/companies/:id/customers` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMember {
    pub customer_id: String,
    pub role: String,
}

#[derive(Clone)]
pub struct CompanyService {
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl CompanyService {
    pub fn new(store: Arc<dyn KvStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        CompanyService { store, clock, ids }
    }

    fn company_item(&self, c: &Company, version: u64) -> DomainResult<Item> {
        let mut item = to_item(c, &company_key(&c.id), "company", version)?;
        item.remove("member_count");
        if !c.is_deleted() {
            item.insert("gsi1pk".into(), "COMPLIST".into());
            item.insert("gsi1sk".into(), c.id.clone().into());
        }
        Ok(item)
    }

    /// The company and its version, with its member count, live or deleted.
    async fn load(&self, id: &str) -> DomainResult<Option<(Company, u64)>> {
        let items = self
            .store
            .batch_get(&[company_key(id), counter_key(id)])
            .await?;
        let count = items
            .iter()
            .find(|i| text(i, "sk") == Some("#COUNT"))
            .and_then(|i| i.get("member_count"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let Some(item) = items.into_iter().find(|i| text(i, "sk") == Some("#META")) else {
            return Ok(None);
        };
        let (mut company, version) = from_item::<Company>(item)?;
        company.member_count = count;
        Ok(Some((company, version)))
    }

    pub async fn retrieve(&self, id: &str) -> DomainResult<Company> {
        match self.load(id).await? {
            Some((c, _)) if !c.is_deleted() => Ok(c),
            _ => Err(not_found(id)),
        }
    }

    pub async fn create(&self, patch: &CompanyPatch) -> DomainResult<Company> {
        if patch.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
            return Err(invalid("Field 'name' is required"));
        }
        let now = iso(self.clock.now());
        let blank = Company {
            id: self.ids.new_id(ID_PREFIX),
            name: String::new(),
            external_id: None,
            tax_id: None,
            email_domains: Vec::new(),
            auto_join_by_domain: false,
            saml_provider: None,
            metadata: None,
            member_count: 0,
            created_at: now.clone(),
            updated_at: now,
            deleted_at: None,
        };
        let company = apply(&blank, patch)?;
        let mut ops = vec![WriteOp::Put {
            item: self.company_item(&company, 0)?,
            condition: Some(Condition::NotExists),
        }];
        let added = markers(&company);
        ops.extend(added.iter().map(|(key, _)| WriteOp::Put {
            item: marker_item(key, &company.id),
            condition: Some(Condition::NotExists),
        }));
        match self.store.transact(ops).await {
            Ok(()) => {
                tracing::info!(company_id = %company.id, "company created");
                Ok(company)
            }
            Err(StoreError::ConditionFailed { index }) if index >= 1 => {
                Err(invalid(added[index - 1].1.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn update(&self, id: &str, patch: &CompanyPatch) -> DomainResult<Company> {
        for _ in 0..ATTEMPTS {
            let (current, version) = match self.load(id).await? {
                Some((c, v)) if !c.is_deleted() => (c, v),
                _ => return Err(not_found(id)),
            };
            let mut next = apply(&current, patch)?;
            next.updated_at = iso(self.clock.now());
            let mut ops = vec![WriteOp::Put {
                item: self.company_item(&next, version + 1)?,
                condition: Some(Condition::equals("version", version)),
            }];
            let old = markers(&current);
            let new = markers(&next);
            let added: Vec<&(Key, String)> = new
                .iter()
                .filter(|(k, _)| !old.iter().any(|(o, _)| o == k))
                .collect();
            for (key, _) in old.iter().filter(|(k, _)| !new.iter().any(|(n, _)| n == k)) {
                ops.push(WriteOp::Delete {
                    key: key.clone(),
                    condition: None,
                });
            }
            let first_added = ops.len();
            ops.extend(added.iter().map(|(key, _)| WriteOp::Put {
                item: marker_item(key, id),
                condition: Some(Condition::NotExists),
            }));
            match self.store.transact(ops).await {
                Ok(()) => return Ok(next),
                Err(StoreError::ConditionFailed { index: 0 } | StoreError::Conflict) => continue,
                Err(StoreError::ConditionFailed { index }) if index >= first_added => {
                    return Err(invalid(added[index - first_added].1.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Conflict(format!(
            "Company {id} is being changed by other requests, please retry."
        )))
    }

    /// Soft delete (markers freed), then every member detached and the company's grants
    /// revoked. Deleting again finishes an interrupted clean-up.
    pub async fn delete(&self, id: &str) -> DomainResult<()> {
        for _ in 0..ATTEMPTS {
            let Some((current, version)) = self.load(id).await? else {
                return Ok(());
            };
            if !current.is_deleted() {
                let mut gone = current.clone();
                let now = iso(self.clock.now());
                gone.deleted_at = Some(now.clone());
                gone.updated_at = now;
                let mut ops = vec![WriteOp::Put {
                    item: self.company_item(&gone, version + 1)?,
                    condition: Some(Condition::equals("version", version)),
                }];
                ops.extend(
                    markers(&current)
                        .into_iter()
                        .map(|(key, _)| WriteOp::Delete {
                            key,
                            condition: None,
                        }),
                );
                match self.store.transact(ops).await {
                    Ok(()) => {}
                    Err(StoreError::ConditionFailed { .. } | StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            self.detach_all(id).await?;
            let grants = crate::grants::GrantService::new(
                self.store.clone(),
                self.clock.clone(),
                self.ids.clone(),
            );
            grants.revoke_company(id).await?;
            tracing::info!(company_id = %id, "company deleted");
            return Ok(());
        }
        Err(DomainError::Conflict(format!(
            "Company {id} is being changed by other requests, please retry."
        )))
    }

    async fn detach_all(&self, id: &str) -> DomainResult<()> {
        loop {
            let mut query = Query::new(Index::Gsi1, members_partition(id));
            query.limit = MEMBERS_PER_TRANSACTION * 2;
            let page = self.store.query(&query).await?;
            if page.items.is_empty() {
                return Ok(());
            }
            let members: Vec<Membership> = page.items.iter().filter_map(membership_from).collect();
            let mut ops: Vec<WriteOp> = members
                .iter()
                .map(|m| WriteOp::Delete {
                    key: membership_key(&m.customer_id),
                    condition: None,
                })
                .collect();
            ops.push(self.count_change(id, -(members.len() as i64)));
            self.store.transact(ops).await?;
        }
    }

    fn count_change(&self, id: &str, delta: i64) -> WriteOp {
        WriteOp::Add {
            key: counter_key(id),
            attribute: "member_count".into(),
            delta,
            condition: None,
        }
    }

    /// Live companies matching the filters, in creation order, and how many match.
    pub async fn list(&self, query: &CompanyQuery) -> DomainResult<(Vec<Company>, usize)> {
        let mut matching = Vec::new();
        let index = Query::new(Index::Gsi1, "COMPLIST");
        for item in query_all(self.store.as_ref(), index).await? {
            let company = from_item::<Company>(item)?.0;
            let q_hit = query.q.as_deref().is_none_or(|q| {
                let q = normalize_text(q);
                normalize_text(&company.name).contains(&q)
                    || company
                        .external_id
                        .as_deref()
                        .is_some_and(|e| normalize_text(e).contains(&q))
                    || company.email_domains.iter().any(|d| d.contains(&q))
            });
            let keep = !company.is_deleted()
                && q_hit
                && query
                    .ids
                    .as_ref()
                    .is_none_or(|ids| ids.contains(&company.id))
                && query.external_ids.as_ref().is_none_or(|ids| {
                    company
                        .external_id
                        .as_ref()
                        .is_some_and(|e| ids.contains(e))
                });
            if keep {
                matching.push(company);
            }
        }
        let count = matching.len();
        let mut page: Vec<Company> = matching
            .into_iter()
            .skip(query.offset)
            .take(query.limit)
            .collect();
        let counters: Vec<Key> = page.iter().map(|c| counter_key(&c.id)).collect();
        if !counters.is_empty() {
            let counts: HashMap<String, i64> = self
                .store
                .batch_get(&counters)
                .await?
                .iter()
                .filter_map(|i| {
                    let id = text(i, "pk")?.strip_prefix("COMP#")?.to_owned();
                    Some((
                        id,
                        i.get("member_count").and_then(Value::as_i64).unwrap_or(0),
                    ))
                })
                .collect();
            for c in &mut page {
                c.member_count = counts.get(&c.id).copied().unwrap_or(0);
            }
        }
        Ok((page, count))
    }

    /// The company a customer belongs to, if any.
    pub async fn membership_of(&self, customer_id: &str) -> DomainResult<Option<Membership>> {
        membership_of(&self.store, customer_id).await
    }

    /// Members of a company, in customer-creation order.
    pub async fn members(&self, company_id: &str) -> DomainResult<Vec<Membership>> {
        let query = Query::new(Index::Gsi1, members_partition(company_id));
        let items = query_all(self.store.as_ref(), query).await?;
        Ok(items.iter().filter_map(membership_from).collect())
    }

    /// Adds customers (or changes their role) and removes others. Everything is checked
    /// before anything is written: unknown customers, customers of another company and bad
    /// roles are a 4xx with nothing changed. Batches over one transaction are written in
    /// several, each of which may be repeated safely.
    pub async fn update_members(
        &self,
        company_id: &str,
        add: &[NewMember],
        remove: &[String],
    ) -> DomainResult<Company> {
        if add.len() + remove.len() > MAX_BATCH {
            return Err(invalid(format!(
                "At most {MAX_BATCH} customers can be added or removed in one request"
            )));
        }
        if let Some(both) = add.iter().find(|a| remove.contains(&a.customer_id)) {
            return Err(invalid(format!(
                "Customer {} is both added and removed",
                both.customer_id
            )));
        }
        for a in add {
            check_role(&a.role)?;
        }
        self.retrieve(company_id).await?;
        let ids: Vec<String> = add.iter().map(|a| a.customer_id.clone()).collect();
        let current = self.memberships(&ids).await?;
        self.check_customers(&ids).await?;
        for a in add {
            if let Some(m) = current.get(&a.customer_id)
                && m.company_id != company_id
            {
                return Err(invalid(format!(
                    "Customer {} already belongs to company {}; remove it there first",
                    a.customer_id, m.company_id
                )));
            }
        }
        let now = iso(self.clock.now());
        for chunk in add.chunks(MEMBERS_PER_TRANSACTION) {
            let mut ops = vec![WriteOp::Check {
                key: company_key(company_id),
                condition: live(),
            }];
            let mut joined = 0;
            for a in chunk {
                let existing = current.get(&a.customer_id);
                let membership = Membership {
                    customer_id: a.customer_id.clone(),
                    company_id: company_id.to_owned(),
                    role: a.role.clone(),
                    created_at: existing.map_or(now.clone(), |m| m.created_at.clone()),
                };
                let condition = match existing {
                    Some(_) => Condition::equals("company_id", company_id),
                    None => {
                        joined += 1;
                        Condition::NotExists
                    }
                };
                ops.push(WriteOp::Put {
                    item: membership_item(&membership),
                    condition: Some(condition),
                });
                ops.push(WriteOp::Check {
                    key: profile_key(&a.customer_id),
                    condition: live(),
                });
            }
            if joined > 0 {
                ops.push(self.count_change(company_id, joined));
            }
            match self.store.transact(ops).await {
                Ok(()) => {}
                Err(StoreError::ConditionFailed { index: 0 }) => return Err(not_found(company_id)),
                Err(StoreError::ConditionFailed { index }) => {
                    let who = &chunk[(index - 1) / 2].customer_id;
                    return Err(DomainError::Conflict(format!(
                        "Customer {who} changed company or was deleted meanwhile; nothing in this part was written, please retry"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let leaving = self.memberships(remove).await?;
        let leaving: Vec<&String> = remove
            .iter()
            .filter(|c| leaving.get(*c).is_some_and(|m| m.company_id == company_id))
            .collect();
        for chunk in leaving.chunks(MEMBERS_PER_TRANSACTION) {
            let mut ops: Vec<WriteOp> = chunk
                .iter()
                .map(|c| WriteOp::Delete {
                    key: membership_key(c),
                    condition: Some(Condition::equals("company_id", company_id)),
                })
                .collect();
            ops.push(self.count_change(company_id, -(chunk.len() as i64)));
            match self.store.transact(ops).await {
                Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.retrieve(company_id).await
    }

    /// Current memberships of these customers, by customer id.
    async fn memberships(
        &self,
        customer_ids: &[String],
    ) -> DomainResult<HashMap<String, Membership>> {
        let keys: Vec<Key> = customer_ids.iter().map(|c| membership_key(c)).collect();
        let mut out = HashMap::new();
        for chunk in keys.chunks(100) {
            for item in self.store.batch_get(chunk).await? {
                if let Some(m) = membership_from(&item) {
                    out.insert(m.customer_id.clone(), m);
                }
            }
        }
        Ok(out)
    }

    async fn check_customers(&self, ids: &[String]) -> DomainResult<()> {
        let keys: Vec<Key> = ids.iter().map(|c| profile_key(c)).collect();
        let mut live_ids = Vec::new();
        for chunk in keys.chunks(100) {
            for item in self.store.batch_get(chunk).await? {
                if item.get("deleted_at").is_none_or(Value::is_null)
                    && let Some(id) = text(&item, "id")
                {
                    live_ids.push(id.to_owned());
                }
            }
        }
        match ids.iter().find(|id| !live_ids.contains(id)) {
            Some(missing) => Err(DomainError::NotFound(format!(
                "Customer with id: {missing} was not found"
            ))),
            None => Ok(()),
        }
    }

    /// The company of a signed-in customer: 404 when it has none.
    pub async fn company_of(&self, customer_id: &str) -> DomainResult<(Company, Membership)> {
        let missing = || {
            DomainError::NotFound(format!(
                "Customer {customer_id} does not belong to a company"
            ))
        };
        let m = self.membership_of(customer_id).await?.ok_or_else(missing)?;
        match self.load(&m.company_id).await? {
            Some((c, _)) if !c.is_deleted() => Ok((c, m)),
            _ => Err(missing()),
        }
    }

    /// The company `customer_id` is an admin of; a 403 for anyone else, a customer outside any
    /// company included.
    pub async fn administered_by(&self, customer_id: &str) -> DomainResult<Company> {
        match self.company_of(customer_id).await {
            Ok((company, me)) if me.role == ADMIN_ROLE => Ok(company),
            Ok(_) | Err(DomainError::NotFound(_)) => Err(DomainError::Forbidden(
                "Only a company admin can see and manage the company's members".into(),
            )),
            Err(e) => Err(e),
        }
    }

    /// A company admin managing its company from the storefront: it may add buyers and viewers,
    /// change their roles and remove them, and invite people by email; making admins and
    /// removing them is for staff. Anyone else gets a 403.
    ///
    /// An email in one of the company's `email_domains` whose customer is in no other company is
    /// added at once. Any other email gets an invitation, whether or not it has an account, and
    /// the answer does not tell which: the admin cannot probe for accounts, learn their names,
    /// or pull a customer in against their will. A customer id must be a member already (to
    /// change its role): someone who left comes back only by accepting an invitation.
    pub async fn update_members_as(
        &self,
        caller_id: &str,
        add: &[(MemberRef, String)],
        remove: &[String],
        revoke_invitations: &[String],
    ) -> DomainResult<MemberChanges> {
        let company = self.administered_by(caller_id).await?;
        if add.len() + remove.len() + revoke_invitations.len() > MAX_BATCH {
            return Err(invalid(format!(
                "At most {MAX_BATCH} customers can be added, invited or removed in one request"
            )));
        }
        let by_email = add
            .iter()
            .filter(|(who, _)| matches!(who, MemberRef::Email(_)))
            .count();
        if by_email > invitations::MAX_EMAILS_PER_REQUEST {
            return Err(invalid(format!(
                "At most {} emails can be added in one request",
                invitations::MAX_EMAILS_PER_REQUEST
            )));
        }
        let not_member = |id: &str| {
            DomainError::NotFound(format!(
                "Customer {id} is not a member of company {}",
                company.id
            ))
        };
        let customers = crate::customers::CustomerRepository::new(self.store.clone());
        let ids: Vec<String> = add
            .iter()
            .filter_map(|(who, _)| match who {
                MemberRef::Id(id) => Some(id.clone()),
                MemberRef::Email(_) => None,
            })
            .chain(remove.iter().cloned())
            .collect();
        let current = self.memberships(&ids).await?;
        let is_member = |id: &str| current.get(id).is_some_and(|m| m.company_id == company.id);
        let mut members = Vec::new();
        let mut invitations = Vec::new();
        for (who, role) in add {
            check_role(role)?;
            if role == ADMIN_ROLE {
                return Err(DomainError::Forbidden(
                    "A company admin cannot be made from the storefront; ask the store".into(),
                ));
            }
            match who {
                // Demoting an admin is the first step of removing one: only the store may.
                MemberRef::Id(id)
                    if current
                        .get(id)
                        .is_some_and(|m| m.company_id == company.id && m.role == ADMIN_ROLE) =>
                {
                    return Err(DomainError::Forbidden(format!(
                        "Customer {id} is a company admin; only the store can change an admin's role"
                    )));
                }
                MemberRef::Id(id) if is_member(id) => members.push(NewMember {
                    customer_id: id.clone(),
                    role: role.clone(),
                }),
                MemberRef::Id(id) => return Err(not_member(id)),
                MemberRef::Email(raw) => {
                    let email = crate::customers::normalize_email(raw);
                    if !crate::customers::is_valid_email(&email) {
                        return Err(invalid(format!("Invalid email address '{raw}'")));
                    }
                    match self.direct_member(&company, &customers, &email).await? {
                        Some(customer_id) => members.push(NewMember {
                            customer_id,
                            role: role.clone(),
                        }),
                        None => invitations.push((email, role.clone())),
                    }
                }
            }
        }
        for id in remove {
            match current.get(id) {
                Some(m) if m.company_id == company.id && m.role == ADMIN_ROLE => {
                    return Err(DomainError::Forbidden(format!(
                        "Customer {id} is a company admin; only the store can remove admins"
                    )));
                }
                Some(m) if m.company_id == company.id => {}
                _ => return Err(not_member(id)),
            }
        }
        self.update_members(&company.id, &members, remove).await?;
        for (email, role) in &invitations {
            self.invite(&company.id, email, role, caller_id).await?;
        }
        for raw in revoke_invitations {
            let email = crate::customers::normalize_email(raw);
            self.revoke_invitation(&company.id, &email).await?;
        }
        Ok(MemberChanges {
            company: self.retrieve(&company.id).await?,
            invited: invitations.len(),
        })
    }

    /// The customer an email adds directly: an account in one of the company's own domains,
    /// in no other company. `None` means "invite": for every other address, with an account
    /// or not.
    async fn direct_member(
        &self,
        company: &Company,
        customers: &crate::customers::CustomerRepository,
        email: &str,
    ) -> DomainResult<Option<String>> {
        let in_domain = email
            .rsplit_once('@')
            .is_some_and(|(_, domain)| company.email_domains.iter().any(|d| d == domain));
        if !in_domain {
            return Ok(None);
        }
        let Some(customer_id) = customers.account_by_email(email).await? else {
            return Ok(None);
        };
        // An address held on an unproven identity's word is not the company's to add.
        if crate::auth::links::has_unproven_identity(&self.store, "customer", &customer_id).await? {
            return Ok(None);
        }
        match self.membership_of(&customer_id).await? {
            Some(m) if m.company_id != company.id => Ok(None),
            _ => Ok(Some(customer_id)),
        }
    }

    /// Removes a customer from its company (when the customer is deleted).
    pub async fn detach_customer(&self, customer_id: &str) -> DomainResult<()> {
        let Some(m) = self.membership_of(customer_id).await? else {
            return Ok(());
        };
        let ops = vec![
            WriteOp::Delete {
                key: membership_key(customer_id),
                condition: Some(Condition::equals("company_id", m.company_id.as_str())),
            },
            self.count_change(&m.company_id, -1),
        ];
        match self.store.transact(ops).await {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The company whose marker of `kind` holds `value`, if live.
    async fn company_by_marker(&self, key: Key) -> DomainResult<Option<Company>> {
        let Some(marker) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let Some(id) = text(&marker, "company_id") else {
            return Ok(None);
        };
        Ok(self
            .load(id)
            .await?
            .map(|(c, _)| c)
            .filter(|c| !c.is_deleted()))
    }

    /// Whether `email` is in the `email_domains` of the company whose SAML identity provider is
    /// `provider`: the only emails a company's IdP may vouch for, since it can assert any.
    pub async fn provider_vouches_for(&self, provider: &str, email: &str) -> DomainResult<bool> {
        let Some((_, domain)) = email.trim().rsplit_once('@') else {
            return Ok(false);
        };
        let domain = domain.to_lowercase();
        Ok(self
            .company_by_marker(saml_marker(provider))
            .await?
            .is_some_and(|c| c.email_domains.contains(&domain)))
    }

    /// Whether `provider` is some company's own SAML identity provider: its users are the
    /// company's buyers, whatever address it asserts for them.
    pub async fn is_company_provider(&self, provider: &str) -> DomainResult<bool> {
        Ok(self
            .company_by_marker(saml_marker(provider))
            .await?
            .is_some())
    }

    /// Joins a customer to a company on sign-in: the company of the SAML identity provider it
    /// signed in through, else the company owning its verified email's domain when that
    /// company allows it. A customer already in a company stays where it is.
    pub async fn join_on_sign_in(
        &self,
        customer_id: &str,
        email: Option<&str>,
        email_verified: bool,
        identity_provider: Option<&str>,
    ) -> DomainResult<Option<Membership>> {
        if let Some(m) = self.membership_of(customer_id).await? {
            return Ok(Some(m));
        }
        let mut company = None;
        if let Some(provider) = identity_provider {
            company = self.company_by_marker(saml_marker(provider)).await?;
        }
        if company.is_none()
            && email_verified
            && let Some(domain) = email
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d.to_lowercase())
        {
            company = self
                .company_by_marker(domain_marker(&domain))
                .await?
                .filter(|c| c.auto_join_by_domain);
        }
        let Some(company) = company else {
            return Ok(None);
        };
        let member = NewMember {
            customer_id: customer_id.to_owned(),
            role: "buyer".into(),
        };
        match self.update_members(&company.id, &[member], &[]).await {
            Ok(_) => {}
            // Joined elsewhere at the same moment: that membership stands.
            Err(DomainError::InvalidData(_) | DomainError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        tracing::info!(customer_id, company_id = %company.id, "customer joined its company on sign-in");
        self.membership_of(customer_id).await
    }
}
