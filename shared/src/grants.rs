//! Permission grants: which customers, groups, companies or company roles may do what
//! (`view`, `purchase`, any word) on which resources (products, price lists, … or `*`).
//!
//! | item | pk | sk | index |
//! |---|---|---|---|
//! | grant | `PGR#<id>` | `#META` | gsi1 `PGRPRIN#<principal>` / id, gsi2 `PGRRES#<type>#<id>` / id, gsi3 `PGRLIST` / id |
//! | access list | `ACL#<type>#<resource id>` | `#ACL` (`entries`: `<principal>|<action>` → grant) | – |
//!
//! Each grant is also an entry in its resource's access list, written in the same
//! transaction. A check therefore reads one item per resource (and one per resource type for
//! `*` grants) in a single batch, alongside one query of the customer's partition that gives
//! its groups and company: a check of 100 resources is three store requests, whatever the
//! number of grants or principals. The principals are read at check time, so leaving a group
//! or company takes its grants away at once. Deny by default; an expired grant grants nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::companies::{MEMBERSHIP_SK, ROLES as COMPANY_ROLES, membership_from};
use crate::customers::profile_key;
use crate::error::{DomainError, DomainResult};
use crate::ports::{Clock, IdGenerator, iso, parse_instant};
use crate::store::record::{from_item, text, to_item};
use crate::store::{
    Condition, Index, Item, Key, KvStore, Query, SortCondition, StoreError, WriteOp, query_all,
};

pub const ID_PREFIX: &str = "pgr";
/// Entries one resource's access list holds (a DynamoDB item is at most 400 KB). Grants to a
/// group or company instead of to each customer keep lists short.
pub const MAX_GRANTS_PER_RESOURCE: usize = 2000;
/// Checks one request may ask.
pub const MAX_CHECKS: usize = 1000;
const MAX_WORD: usize = 64;
const MAX_RESOURCE_ID: usize = 256;
const ATTEMPTS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Principal {
    Customer { id: String },
    CustomerGroup { id: String },
    Company { id: String },
    CompanyRole { id: String, role: String },
}

impl Principal {
    /// The principal as one string: `customer:<id>`, `company_role:<id>:<role>`…
    pub fn key(&self) -> String {
        match self {
            Principal::Customer { id } => format!("customer:{id}"),
            Principal::CustomerGroup { id } => format!("customer_group:{id}"),
            Principal::Company { id } => format!("company:{id}"),
            Principal::CompanyRole { id, role } => format!("company_role:{id}:{role}"),
        }
    }

    /// How a customer holds grants of this principal (`GET /admin/customers/:id/permissions`).
    pub fn source(&self) -> &'static str {
        match self {
            Principal::Customer { .. } => "own",
            Principal::CustomerGroup { .. } => "group",
            Principal::Company { .. } => "company",
            Principal::CompanyRole { .. } => "role",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

impl Resource {
    fn acl_key(&self) -> Key {
        Key::new(format!("ACL#{}#{}", self.kind, self.id), "#ACL")
    }

    fn wildcard(&self) -> Resource {
        Resource {
            kind: self.kind.clone(),
            id: "*".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub principal: Principal,
    pub action: String,
    pub resource: Resource,
    pub expires_at: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Grant {
    fn entry_name(&self) -> String {
        entry_name(&self.principal.key(), &self.action)
    }

    pub fn is_active(&self, now: &str) -> bool {
        self.expires_at.as_deref().is_none_or(|x| x > now)
    }
}

fn entry_name(principal: &str, action: &str) -> String {
    format!("{principal}|{action}")
}

/// A grant as `POST /admin/permission-grants` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantDraft {
    pub principal: Principal,
    pub action: String,
    pub resource: Resource,
    pub expires_at: Option<String>,
}

/// Filters of `GET /admin/permission-grants`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GrantQuery {
    pub principal_type: Option<String>,
    pub principal_id: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub action: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

/// One question of a permission check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub action: String,
    pub resource: Resource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub action: String,
    pub resource: Resource,
    pub allowed: bool,
    pub granted_by: Vec<String>,
}

/// A grant a customer holds, and how.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveGrant {
    #[serde(flatten)]
    pub grant: Grant,
    pub source: &'static str,
}

fn grant_key(id: &str) -> Key {
    Key::new(format!("PGR#{id}"), "#META")
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::InvalidData(message.into())
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("Permission grant with id: {id} was not found"))
}

/// Actions and resource types are words: letters, digits, `_ - . :`.
pub fn check_word(field: &str, value: &str) -> DomainResult<()> {
    let ok = !value.is_empty()
        && value.len() <= MAX_WORD
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "Field '{field}' must be 1 to {MAX_WORD} letters, digits or _-.: (got '{value}')"
        )))
    }
}

pub fn check_resource(resource: &Resource) -> DomainResult<()> {
    check_word("resource.type", &resource.kind)?;
    if resource.id.is_empty()
        || resource.id.len() > MAX_RESOURCE_ID
        || resource.id.chars().any(char::is_control)
    {
        return Err(invalid(format!(
            "Field 'resource.id' must be 1 to {MAX_RESOURCE_ID} printable characters, or *"
        )));
    }
    Ok(())
}

/// Reads `{type, id, role?}` as a principal.
pub fn parse_principal(value: &Value) -> DomainResult<Principal> {
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| invalid("Field 'principal.id' is required"))?
        .trim()
        .to_owned();
    let role = value.get("role").and_then(Value::as_str);
    match (kind, role) {
        ("customer", None) => Ok(Principal::Customer { id }),
        ("customer_group", None) => Ok(Principal::CustomerGroup { id }),
        ("company", None) => Ok(Principal::Company { id }),
        ("company_role", Some(role)) if COMPANY_ROLES.contains(&role) => {
            Ok(Principal::CompanyRole {
                id,
                role: role.to_owned(),
            })
        }
        ("company_role", _) => Err(invalid(format!(
            "Field 'principal.role' must be one of {} for a company_role principal",
            COMPANY_ROLES.join(", ")
        ))),
        (_, Some(_)) if ["customer", "customer_group", "company"].contains(&kind) => Err(invalid(
            "Field 'principal.role' is only for a company_role principal",
        )),
        _ => Err(invalid(
            "Field 'principal.type' must be one of customer, customer_group, company, company_role",
        )),
    }
}

/// The stored access list of one resource: entry name → (grant id, expiry).
#[derive(Debug, Clone, Default)]
struct AccessList {
    entries: BTreeMap<String, (String, Option<String>)>,
    version: Option<u64>,
}

impl AccessList {
    fn from_item(item: &Item) -> AccessList {
        let entries = item
            .get("entries")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(name, e)| {
                        let id = e.get("g")?.as_str()?.to_owned();
                        let expires = e.get("x").and_then(Value::as_str).map(str::to_owned);
                        Some((name.clone(), (id, expires)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        AccessList {
            entries,
            version: Some(item.get("version").and_then(Value::as_u64).unwrap_or(0)),
        }
    }

    /// The write that stores this list in place of the version read.
    fn write(&self, resource: &Resource) -> WriteOp {
        let key = resource.acl_key();
        let condition = Some(match self.version {
            Some(v) => Condition::equals("version", v),
            None => Condition::NotExists,
        });
        if self.entries.is_empty() {
            return WriteOp::Delete { key, condition };
        }
        let entries: Map<String, Value> = self
            .entries
            .iter()
            .map(|(name, (id, x))| (name.clone(), json!({ "g": id, "x": x })))
            .collect();
        let mut item = Item::new();
        item.insert("pk".into(), key.pk.into());
        item.insert("sk".into(), key.sk.into());
        item.insert("entity_type".into(), "access_list".into());
        item.insert("entries".into(), Value::Object(entries));
        item.insert("version".into(), (self.version.unwrap_or(0) + 1).into());
        WriteOp::Put { item, condition }
    }
}

#[derive(Clone)]
pub struct GrantService {
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl GrantService {
    pub fn new(store: Arc<dyn KvStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        GrantService { store, clock, ids }
    }

    fn grant_item(&self, g: &Grant) -> DomainResult<Item> {
        let mut item = to_item(g, &grant_key(&g.id), "permission_grant", 0)?;
        item.insert(
            "gsi1pk".into(),
            format!("PGRPRIN#{}", g.principal.key()).into(),
        );
        item.insert("gsi1sk".into(), g.id.clone().into());
        item.insert(
            "gsi2pk".into(),
            format!("PGRRES#{}#{}", g.resource.kind, g.resource.id).into(),
        );
        item.insert("gsi2sk".into(), g.id.clone().into());
        item.insert("gsi3pk".into(), "PGRLIST".into());
        item.insert("gsi3sk".into(), g.id.clone().into());
        Ok(item)
    }

    async fn access_list(&self, resource: &Resource) -> DomainResult<AccessList> {
        Ok(self
            .store
            .get(&resource.acl_key())
            .await?
            .as_ref()
            .map(AccessList::from_item)
            .unwrap_or_default())
    }

    pub async fn retrieve(&self, id: &str) -> DomainResult<Grant> {
        match self.store.get(&grant_key(id)).await? {
            Some(item) => Ok(from_item::<Grant>(item)?.0),
            None => Err(not_found(id)),
        }
    }

    /// The principal must exist and be live: a grant to a typo would silently grant nothing.
    async fn check_principal(&self, principal: &Principal) -> DomainResult<()> {
        let (key, what, id) = match principal {
            Principal::Customer { id } => (profile_key(id), "Customer", id),
            Principal::CustomerGroup { id } => (crate::groups::group_key(id), "Customer group", id),
            Principal::Company { id } | Principal::CompanyRole { id, .. } => {
                (crate::companies::company_key(id), "Company", id)
            }
        };
        match self.store.get(&key).await? {
            Some(item) if item.get("deleted_at").is_none_or(Value::is_null) => Ok(()),
            _ => Err(DomainError::NotFound(format!(
                "{what} with id: {id} was not found"
            ))),
        }
    }

    /// Grants, or — when the same principal already has the same action on the resource —
    /// updates that grant's expiry and returns it: granting twice is harmless.
    pub async fn grant(&self, draft: &GrantDraft, created_by: Option<&str>) -> DomainResult<Grant> {
        check_word("action", &draft.action)?;
        check_resource(&draft.resource)?;
        let expires_at = match &draft.expires_at {
            None => None,
            Some(raw) => Some(parse_instant(raw).ok_or_else(|| {
                invalid(format!(
                    "Field 'expires_at' must be a date or date-time, got '{raw}'"
                ))
            })?),
        };
        self.check_principal(&draft.principal).await?;
        let now = iso(self.clock.now());
        let name = entry_name(&draft.principal.key(), &draft.action);
        for _ in 0..ATTEMPTS {
            let mut list = self.access_list(&draft.resource).await?;
            let grant = match list.entries.get(&name) {
                Some((id, _)) => {
                    let mut existing = self.retrieve(id).await?;
                    existing.expires_at = expires_at.clone();
                    existing.updated_at = now.clone();
                    existing
                }
                None => {
                    if list.entries.len() >= MAX_GRANTS_PER_RESOURCE {
                        return Err(DomainError::NotAllowed(format!(
                            "Resource {} {} already has {MAX_GRANTS_PER_RESOURCE} grants; grant to a customer group or company instead",
                            draft.resource.kind, draft.resource.id
                        )));
                    }
                    Grant {
                        id: self.ids.new_id(ID_PREFIX),
                        principal: draft.principal.clone(),
                        action: draft.action.clone(),
                        resource: draft.resource.clone(),
                        expires_at: expires_at.clone(),
                        created_by: created_by.map(str::to_owned),
                        created_at: now.clone(),
                        updated_at: now.clone(),
                    }
                }
            };
            list.entries
                .insert(name.clone(), (grant.id.clone(), grant.expires_at.clone()));
            let ops = vec![
                list.write(&grant.resource),
                WriteOp::Put {
                    item: self.grant_item(&grant)?,
                    condition: None,
                },
            ];
            match self.store.transact(ops).await {
                Ok(()) => return Ok(grant),
                Err(StoreError::ConditionFailed { .. } | StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Conflict(
            "The resource's grants are being changed by other requests, please retry.".into(),
        ))
    }

    /// Revokes a grant; 404 when there is no such grant (any more).
    pub async fn revoke(&self, id: &str) -> DomainResult<()> {
        for _ in 0..ATTEMPTS {
            let grant = self.retrieve(id).await?;
            let mut list = self.access_list(&grant.resource).await?;
            let mut ops = vec![WriteOp::Delete {
                key: grant_key(id),
                condition: None,
            }];
            if list
                .entries
                .get(&grant.entry_name())
                .is_some_and(|(g, _)| g == id)
            {
                list.entries.remove(&grant.entry_name());
                ops.push(list.write(&grant.resource));
            }
            match self.store.transact(ops).await {
                Ok(()) => return Ok(()),
                Err(StoreError::ConditionFailed { .. } | StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Conflict(
            "The resource's grants are being changed by other requests, please retry.".into(),
        ))
    }

    /// Every grant of one principal.
    pub async fn of_principal(&self, principal: &Principal) -> DomainResult<Vec<Grant>> {
        self.read_index(Index::Gsi1, format!("PGRPRIN#{}", principal.key()))
            .await
    }

    async fn read_index(&self, index: Index, partition: String) -> DomainResult<Vec<Grant>> {
        query_all(self.store.as_ref(), Query::new(index, partition))
            .await?
            .into_iter()
            .map(|item| Ok(from_item::<Grant>(item)?.0))
            .collect()
    }

    /// Revokes everything granted to a principal (when it is deleted).
    pub async fn revoke_principal(&self, principal: &Principal) -> DomainResult<()> {
        for grant in self.of_principal(principal).await? {
            match self.revoke(&grant.id).await {
                // Revoked by someone else meanwhile: just as good.
                Ok(()) | Err(DomainError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Revokes the grants of a company and of each of its roles.
    pub async fn revoke_company(&self, company_id: &str) -> DomainResult<()> {
        self.revoke_principal(&Principal::Company {
            id: company_id.to_owned(),
        })
        .await?;
        for role in COMPANY_ROLES {
            self.revoke_principal(&Principal::CompanyRole {
                id: company_id.to_owned(),
                role: (*role).to_owned(),
            })
            .await?;
        }
        Ok(())
    }

    /// Grants matching the filters, in creation order, and how many match.
    pub async fn list(&self, query: &GrantQuery) -> DomainResult<(Vec<Grant>, usize)> {
        let all = match (
            &query.principal_type,
            &query.principal_id,
            &query.resource_type,
            &query.resource_id,
        ) {
            (Some(kind), Some(id), _, _) if kind != "company_role" => {
                let principal = parse_principal(&json!({ "type": kind, "id": id }))?;
                self.of_principal(&principal).await?
            }
            (_, _, Some(kind), Some(id)) => {
                self.read_index(Index::Gsi2, format!("PGRRES#{kind}#{id}"))
                    .await?
            }
            _ => self.read_index(Index::Gsi3, "PGRLIST".into()).await?,
        };
        let principal_id = |p: &Principal| match p {
            Principal::Customer { id }
            | Principal::CustomerGroup { id }
            | Principal::Company { id }
            | Principal::CompanyRole { id, .. } => id.clone(),
        };
        let matching: Vec<Grant> = all
            .into_iter()
            .filter(|g| {
                let kind = g.principal.key();
                let kind = kind.split(':').next().unwrap_or_default();
                query.principal_type.as_deref().is_none_or(|t| t == kind)
                    && query
                        .principal_id
                        .as_ref()
                        .is_none_or(|id| *id == principal_id(&g.principal))
                    && query
                        .resource_type
                        .as_ref()
                        .is_none_or(|t| *t == g.resource.kind)
                    && query
                        .resource_id
                        .as_ref()
                        .is_none_or(|id| *id == g.resource.id)
                    && query.action.as_ref().is_none_or(|a| *a == g.action)
            })
            .collect();
        let count = matching.len();
        Ok((
            matching
                .into_iter()
                .skip(query.offset)
                .take(query.limit)
                .collect(),
            count,
        ))
    }

    /// Who the customer is, as far as grants go: itself, its groups, its company and its
    /// role there. One query of the customer's partition (`COMPANY` … `GRP#…`).
    pub async fn principals_of(&self, customer_id: &str) -> DomainResult<Vec<Principal>> {
        let mut principals = vec![Principal::Customer {
            id: customer_id.to_owned(),
        }];
        let mut query = Query::new(Index::Main, profile_key(customer_id).pk);
        query.sort = SortCondition::Between(MEMBERSHIP_SK.into(), "GRP#\u{10FFFF}".into());
        for item in &query_all(self.store.as_ref(), query).await? {
            let sk = text(item, "sk").unwrap_or_default();
            if sk == MEMBERSHIP_SK {
                if let Some(m) = membership_from(item) {
                    principals.push(Principal::Company {
                        id: m.company_id.clone(),
                    });
                    principals.push(Principal::CompanyRole {
                        id: m.company_id,
                        role: m.role,
                    });
                }
            } else if let Some(group) = sk.strip_prefix("GRP#") {
                principals.push(Principal::CustomerGroup {
                    id: group.to_owned(),
                });
            }
        }
        Ok(principals)
    }

    /// Answers each check for the customer, in the order asked.
    pub async fn check(
        &self,
        customer_id: &str,
        checks: &[Check],
    ) -> DomainResult<Vec<CheckResult>> {
        if checks.len() > MAX_CHECKS {
            return Err(invalid(format!(
                "At most {MAX_CHECKS} checks can be asked in one request"
            )));
        }
        for c in checks {
            check_word("action", &c.action)?;
            check_resource(&c.resource)?;
        }
        let resources: BTreeSet<Resource> = checks
            .iter()
            .flat_map(|c| [c.resource.clone(), c.resource.wildcard()])
            .collect();
        let keys: Vec<Key> = resources.iter().map(Resource::acl_key).collect();
        // The two reads do not depend on each other.
        let (principals, lists) =
            futures::future::try_join(self.principals_of(customer_id), async {
                Ok::<_, DomainError>(self.store.batch_get(&keys).await?)
            })
            .await?;
        let lists: HashMap<String, AccessList> = lists
            .iter()
            .filter_map(|item| Some((text(item, "pk")?.to_owned(), AccessList::from_item(item))))
            .collect();
        let principal_keys: Vec<String> = principals.iter().map(Principal::key).collect();
        let now = iso(self.clock.now());
        Ok(checks
            .iter()
            .map(|c| {
                let mut granted_by = BTreeSet::new();
                for resource in [&c.resource, &c.resource.wildcard()] {
                    let Some(list) = lists.get(&resource.acl_key().pk) else {
                        continue;
                    };
                    for p in &principal_keys {
                        if let Some((id, expires)) = list.entries.get(&entry_name(p, &c.action))
                            && expires.as_deref().is_none_or(|x| x > now.as_str())
                        {
                            granted_by.insert(id.clone());
                        }
                    }
                }
                CheckResult {
                    action: c.action.clone(),
                    resource: c.resource.clone(),
                    allowed: !granted_by.is_empty(),
                    granted_by: granted_by.into_iter().collect(),
                }
            })
            .collect())
    }

    /// The unexpired grants a customer holds, with their source.
    pub async fn effective(&self, customer_id: &str) -> DomainResult<Vec<EffectiveGrant>> {
        let now = iso(self.clock.now());
        let principals = self.principals_of(customer_id).await?;
        let lists =
            futures::future::try_join_all(principals.iter().map(|p| self.of_principal(p))).await?;
        let mut out: Vec<EffectiveGrant> = principals
            .iter()
            .zip(lists)
            .flat_map(|(p, grants)| {
                grants.into_iter().map(move |grant| EffectiveGrant {
                    grant,
                    source: p.source(),
                })
            })
            .filter(|e| e.grant.is_active(&now))
            .collect();
        out.sort_by(|a, b| a.grant.id.cmp(&b.grant.id));
        Ok(out)
    }
}
