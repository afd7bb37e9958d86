//! Customer groups and memberships.
//!
//! | item | pk | sk | index |
//! |---|---|---|---|
//! | group | `GRP#<id>` | `#META` (`member_count`) | gsi1 `GRPLIST` / `<id>` while live |
//! | name marker | `GRPNAME#<name>` | same | – |
//! | membership | `CUS#<customer>` | `GRP#<group>` | gsi1 `GRPMEM#<group>` / `<customer>` |
//!
//! A customer's groups are one query on its partition; a group's members are read page by
//! page from gsi1, in customer-creation order, at the same cost per page at any size. Every
//! membership change moves `member_count` in the same transaction, so the count is exact.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::customers::{check_metadata, merge_metadata, normalize_text, profile_key};
use crate::error::{DomainError, DomainResult};
use crate::ports::{Clock, IdGenerator, iso};
use crate::store::record::EncodedItem;
use crate::store::{
    Condition, Index, Item, Key, KvStore, MAX_TRANSACTION_OPS, Query, SortCondition, StoreError,
    WriteOp,
};

pub const ID_PREFIX: &str = "cusgroup";
const ATTEMPTS: usize = 5;
const MAX_NAME: usize = 255;
/// Most ids one batch call takes.
pub const MAX_BATCH: usize = 1000;

/// A group in Medusa's wire order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerGroup {
    pub id: String,
    pub name: String,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    #[serde(skip_serializing, default)]
    pub version: u64,
}

impl CustomerGroup {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

pub fn group_key(id: &str) -> Key {
    Key::new(format!("GRP#{id}"), "#META")
}

fn name_key(name: &str) -> Key {
    let k = format!("GRPNAME#{}", normalize_text(name.trim()));
    Key::new(k.clone(), k)
}

pub fn edge_key(customer_id: &str, group_id: &str) -> Key {
    Key::new(profile_key(customer_id).pk, format!("GRP#{group_id}"))
}

pub fn members_partition(group_id: &str) -> String {
    format!("GRPMEM#{group_id}")
}

fn to_item(g: &CustomerGroup, member_count: Option<i64>) -> DomainResult<Item> {
    let Value::Object(mut item) =
        serde_json::to_value(g).map_err(|e| DomainError::Internal(e.to_string()))?
    else {
        return Err(DomainError::Internal(
            "group did not serialise to an object".into(),
        ));
    };
    let key = group_key(&g.id);
    item.insert("pk".into(), key.pk.into());
    item.insert("sk".into(), key.sk.into());
    item.insert("entity_type".into(), "customer_group".into());
    item.insert("version".into(), g.version.into());
    if let Some(n) = member_count {
        item.insert("member_count".into(), n.into());
    }
    if !g.is_deleted() {
        item.insert("gsi1pk".into(), "GRPLIST".into());
        item.insert("gsi1sk".into(), g.id.clone().into());
    }
    Ok(item)
}

fn from_item(item: Item) -> DomainResult<(CustomerGroup, i64)> {
    let version = item.get("version").and_then(Value::as_u64).unwrap_or(0);
    let count = item
        .get("member_count")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut g: CustomerGroup = serde_json::from_value(Value::Object(item))
        .map_err(|e| DomainError::Internal(format!("stored group is unreadable: {e}")))?;
    g.version = version;
    Ok((g, count))
}

/// A membership's item: the customer's edge to the group, listed under the group (GSI1).
fn edge_item(
    customer_id: &str,
    group_id: &str,
    created_by: Option<&str>,
    now: &str,
) -> DomainResult<EncodedItem> {
    #[derive(serde::Serialize)]
    struct Edge<'a> {
        entity_type: &'static str,
        customer_id: &'a str,
        customer_group_id: &'a str,
        created_by: Option<&'a str>,
        created_at: &'a str,
    }
    let edge = Edge {
        entity_type: "customer_group_customer",
        customer_id,
        customer_group_id: group_id,
        created_by,
        created_at: now,
    };
    EncodedItem::of(edge_key(customer_id, group_id), &edge)?.indexed(
        Index::Gsi1,
        members_partition(group_id),
        customer_id.to_owned(),
    )
}

fn live() -> Condition {
    Condition::equals("deleted_at", Value::Null)
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("Customer group with id: {id} not found"))
}

fn missing_relation(field: &str, id: &str) -> DomainError {
    DomainError::NotFound(format!(
        "You tried to set relationship {field}: {id}, but such entity does not exist"
    ))
}

fn duplicate_name(name: &str) -> DomainError {
    DomainError::InvalidData(format!("Customer group with name: {name}, already exists."))
}

fn check_name(name: &str) -> DomainResult<()> {
    if name.trim().is_empty() {
        return Err(DomainError::InvalidData(
            "Invalid request: Field 'name' must not be empty".into(),
        ));
    }
    if name.chars().count() > MAX_NAME {
        return Err(DomainError::InvalidData(format!(
            "Invalid request: Field 'name' must be at most {MAX_NAME} characters"
        )));
    }
    Ok(())
}

/// Filters of `GET /admin/customer-groups`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupQuery {
    pub q: Option<String>,
    pub ids: Option<Vec<String>>,
    pub names: Option<Vec<String>>,
    pub created_by: Option<Vec<String>>,
    /// Groups having any of these customers as members.
    pub customers: Option<Vec<String>>,
    pub order_by_name: Option<bool>,
    pub offset: usize,
    pub limit: usize,
}

impl GroupQuery {
    fn matches(&self, g: &CustomerGroup) -> bool {
        !g.is_deleted()
            && self
                .q
                .as_deref()
                .is_none_or(|q| normalize_text(&g.name).contains(&normalize_text(q)))
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&g.id))
            && self
                .names
                .as_ref()
                .is_none_or(|names| names.contains(&g.name))
            && self
                .created_by
                .as_ref()
                .is_none_or(|by| g.created_by.as_ref().is_some_and(|c| by.contains(c)))
    }
}

/// Live members of a group from its counter; `None` for an unknown or deleted group.
pub async fn live_member_count(store: &Arc<dyn KvStore>, id: &str) -> DomainResult<Option<usize>> {
    Ok(
        match store
            .get(&group_key(id))
            .await?
            .map(from_item)
            .transpose()?
        {
            Some((g, n)) if !g.is_deleted() => Some(usize::try_from(n).unwrap_or(0)),
            _ => None,
        },
    )
}

/// Every member id of the groups, deduplicated.
pub async fn member_ids(
    store: &Arc<dyn KvStore>,
    group_ids: &[String],
) -> DomainResult<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for id in group_ids {
        let mut query = Query::new(Index::Gsi1, members_partition(id));
        query.limit = 1000;
        loop {
            let page = store.query(&query).await?;
            out.extend(page.items.iter().filter_map(|i| {
                i.get("customer_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }));
            match page.last_key {
                Some(k) => query.start_after = Some(k),
                None => break,
            }
        }
    }
    Ok(out)
}

/// One page of a group's members: customer ids in creation order.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberPage {
    pub customer_ids: Vec<String>,
    pub next: Option<crate::store::KeyMap>,
}

#[derive(Clone)]
pub struct GroupService {
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl GroupService {
    pub fn new(store: Arc<dyn KvStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        GroupService { store, clock, ids }
    }

    async fn load(&self, id: &str) -> DomainResult<Option<(CustomerGroup, i64)>> {
        self.store
            .get(&group_key(id))
            .await?
            .map(from_item)
            .transpose()
    }

    pub async fn retrieve(&self, id: &str) -> DomainResult<CustomerGroup> {
        match self.load(id).await? {
            Some((g, _)) if !g.is_deleted() => Ok(g),
            _ => Err(not_found(id)),
        }
    }

    pub async fn create(
        &self,
        name: &str,
        metadata: Option<Map<String, Value>>,
        created_by: Option<String>,
    ) -> DomainResult<CustomerGroup> {
        check_name(name)?;
        check_metadata(&metadata)?;
        let now = iso(self.clock.now());
        let group = CustomerGroup {
            id: self.ids.new_id(ID_PREFIX),
            name: name.trim().to_owned(),
            created_by,
            created_at: now.clone(),
            updated_at: now,
            deleted_at: None,
            metadata,
            version: 0,
        };
        let ops = vec![
            WriteOp::Put {
                item: to_item(&group, Some(0))?,
                condition: Some(Condition::NotExists),
            },
            name_marker(&group),
        ];
        match self.store.transact(ops).await {
            Ok(()) => Ok(group),
            Err(StoreError::ConditionFailed { index: 1 }) => Err(duplicate_name(&group.name)),
            Err(e) => Err(e.into()),
        }
    }

    /// The live group with this name (case-insensitive), created when there is none: how an
    /// import turns tag names into groups. Safe under concurrency: the name marker decides.
    pub async fn ensure_named(&self, name: &str, created_by: Option<&str>) -> DomainResult<String> {
        for _ in 0..3 {
            if let Some(marker) = self.store.get(&name_key(name)).await?
                && let Some(id) = marker.get("group_id").and_then(Value::as_str)
            {
                return Ok(id.to_owned());
            }
            match self.create(name, None, created_by.map(str::to_owned)).await {
                Ok(group) => return Ok(group.id),
                Err(DomainError::InvalidData(m)) if m.ends_with("already exists.") => continue,
                Err(e) => return Err(e),
            }
        }
        Err(DomainError::Conflict(format!(
            "Customer group {name} is being created by other requests, please retry."
        )))
    }

    pub async fn update(
        &self,
        id: &str,
        name: Option<&str>,
        metadata: Option<Option<&Map<String, Value>>>,
    ) -> DomainResult<CustomerGroup> {
        if let Some(name) = name {
            check_name(name)?;
        }
        for _ in 0..ATTEMPTS {
            let Some((current, count)) = self.load(id).await?.filter(|(g, _)| !g.is_deleted())
            else {
                return Err(DomainError::NotFound(format!(
                    "Customer group with id \"{id}\" not found"
                )));
            };
            let mut next = current.clone();
            if let Some(name) = name {
                next.name = name.trim().to_owned();
            }
            if let Some(change) = metadata {
                next.metadata = merge_metadata(current.metadata.as_ref(), change);
                check_metadata(&next.metadata)?;
            }
            next.updated_at = iso(self.clock.now());
            next.version = current.version + 1;
            // The item carries the member count, which memberships move without touching the
            // version: the write holds only if neither changed since the load, or it would put
            // back a count a concurrent membership change had moved.
            let mut ops = vec![WriteOp::Put {
                item: to_item(&next, Some(count))?,
                condition: Some(Condition::all_equal(&[
                    ("version", current.version.into()),
                    ("member_count", count.into()),
                ])),
            }];
            let renamed = normalize_text(&next.name) != normalize_text(&current.name);
            if renamed {
                ops.push(WriteOp::Delete {
                    key: name_key(&current.name),
                    condition: Some(Condition::equals("group_id", id)),
                });
                ops.push(name_marker(&next));
            }
            match self.store.transact(ops).await {
                Ok(()) => return Ok(next),
                Err(StoreError::ConditionFailed { index: 2 }) if renamed => {
                    return Err(duplicate_name(&next.name));
                }
                Err(StoreError::ConditionFailed { .. } | StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Conflict(format!(
            "Customer group {id} is being changed by other requests, please retry."
        )))
    }

    /// Soft delete, then detach every member. Deleting again finishes an interrupted detach.
    pub async fn delete(&self, id: &str) -> DomainResult<()> {
        for _ in 0..ATTEMPTS {
            let Some((current, count)) = self.load(id).await? else {
                return Ok(());
            };
            if !current.is_deleted() {
                let mut gone = current.clone();
                let now = iso(self.clock.now());
                gone.deleted_at = Some(now.clone());
                gone.updated_at = now;
                gone.version = current.version + 1;
                let ops = vec![
                    WriteOp::Put {
                        item: to_item(&gone, Some(count))?,
                        // As in `update`: a concurrent membership change moved the count.
                        condition: Some(Condition::all_equal(&[
                            ("version", current.version.into()),
                            ("member_count", count.into()),
                        ])),
                    },
                    WriteOp::Delete {
                        key: name_key(&current.name),
                        condition: Some(Condition::equals("group_id", id)),
                    },
                ];
                match self.store.transact(ops).await {
                    Ok(()) => {}
                    Err(StoreError::ConditionFailed { .. } | StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            self.detach_all_members(id).await?;
            return crate::grants::GrantService::new(
                self.store.clone(),
                self.clock.clone(),
                self.ids.clone(),
            )
            .revoke_principal(&crate::grants::Principal::CustomerGroup { id: id.to_owned() })
            .await;
        }
        Err(DomainError::Conflict(format!(
            "Customer group {id} is being changed by other requests, please retry."
        )))
    }

    async fn detach_all_members(&self, id: &str) -> DomainResult<()> {
        loop {
            let page = self.members(id, None, MAX_TRANSACTION_OPS - 1).await?;
            if page.customer_ids.is_empty() {
                return Ok(());
            }
            let n = page.customer_ids.len();
            let mut ops: Vec<WriteOp> = page
                .customer_ids
                .iter()
                .map(|c| WriteOp::Delete {
                    key: edge_key(c, id),
                    condition: None,
                })
                .collect();
            ops.push(WriteOp::Add {
                key: group_key(id),
                attribute: "member_count".into(),
                delta: -i64::try_from(n).unwrap_or(0),
                condition: Some(Condition::Exists),
            });
            self.store.transact(ops).await?;
        }
    }

    /// Detaches a customer from all its groups (when the customer is deleted).
    pub async fn detach_customer(&self, customer_id: &str) -> DomainResult<()> {
        let groups = self.group_ids_of(customer_id).await?;
        let ops_per_group = 2;
        for chunk in groups.chunks(MAX_TRANSACTION_OPS / ops_per_group) {
            let mut ops = Vec::new();
            for g in chunk {
                ops.push(WriteOp::Delete {
                    key: edge_key(customer_id, g),
                    condition: None,
                });
                ops.push(WriteOp::Add {
                    key: group_key(g),
                    attribute: "member_count".into(),
                    delta: -1,
                    condition: Some(Condition::Exists),
                });
            }
            self.store.transact(ops).await?;
        }
        Ok(())
    }

    /// A page of member ids, in customer-creation order.
    pub async fn members(
        &self,
        id: &str,
        start_after: Option<crate::store::KeyMap>,
        limit: usize,
    ) -> DomainResult<MemberPage> {
        let mut query = Query::new(Index::Gsi1, members_partition(id));
        query.limit = limit.max(1);
        query.start_after = start_after;
        let page = self.store.query(&query).await?;
        Ok(MemberPage {
            customer_ids: page
                .items
                .iter()
                .filter_map(|i| {
                    i.get("customer_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .collect(),
            next: page.last_key,
        })
    }

    /// Ids of the groups a customer is in (one query), live or not.
    async fn group_ids_of(&self, customer_id: &str) -> DomainResult<Vec<String>> {
        let mut query = Query::new(Index::Main, profile_key(customer_id).pk);
        query.sort = SortCondition::BeginsWith("GRP#".into());
        query.limit = 1000;
        let mut ids = Vec::new();
        loop {
            let page = self.store.query(&query).await?;
            ids.extend(page.items.iter().filter_map(|i| {
                i.get("customer_group_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }));
            match page.last_key {
                Some(k) => query.start_after = Some(k),
                None => return Ok(ids),
            }
        }
    }

    /// The live groups a customer is in.
    pub async fn groups_of(&self, customer_id: &str) -> DomainResult<Vec<CustomerGroup>> {
        let ids = self.group_ids_of(customer_id).await?;
        let keys: Vec<Key> = ids.iter().map(|g| group_key(g)).collect();
        let mut groups: Vec<CustomerGroup> = self
            .store
            .batch_get(&keys)
            .await?
            .into_iter()
            .map(|item| from_item(item).map(|(g, _)| g))
            .collect::<DomainResult<Vec<_>>>()?
            .into_iter()
            .filter(|g| !g.is_deleted())
            .collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(groups)
    }

    pub async fn list(&self, query: &GroupQuery) -> DomainResult<(Vec<CustomerGroup>, usize)> {
        let mut candidates: Vec<CustomerGroup> = match &query.customers {
            Some(customers) => {
                let mut ids = BTreeSet::new();
                for c in customers {
                    ids.extend(self.group_ids_of(c).await?);
                }
                let keys: Vec<Key> = ids.iter().map(|g| group_key(g)).collect();
                self.store
                    .batch_get(&keys)
                    .await?
                    .into_iter()
                    .map(|item| from_item(item).map(|(g, _)| g))
                    .collect::<DomainResult<_>>()?
            }
            None => {
                // Groups number in the hundreds or thousands: one pass over the list index.
                let mut q = Query::new(Index::Gsi1, "GRPLIST");
                q.limit = 1000;
                let mut all = Vec::new();
                loop {
                    let page = self.store.query(&q).await?;
                    for item in page.items {
                        all.push(from_item(item)?.0);
                    }
                    match page.last_key {
                        Some(k) => q.start_after = Some(k),
                        None => break,
                    }
                }
                all
            }
        };
        candidates.retain(|g| query.matches(g));
        match query.order_by_name {
            Some(ascending) => {
                candidates.sort_by_key(|g| (normalize_text(&g.name), g.id.clone()));
                if !ascending {
                    candidates.reverse();
                }
            }
            None => candidates.sort_by(|a, b| a.id.cmp(&b.id)),
        }
        let count = candidates.len();
        Ok((
            candidates
                .into_iter()
                .skip(query.offset)
                .take(query.limit)
                .collect(),
            count,
        ))
    }

    /// Adds and removes members of one group. Unknown or deleted group or customers: 404 and
    /// nothing written. Idempotent: adding a member twice keeps one membership, removing a
    /// non-member does nothing.
    pub async fn batch_members(
        &self,
        group_id: &str,
        add: &[String],
        remove: &[String],
        created_by: Option<&str>,
    ) -> DomainResult<()> {
        check_batch(add, remove)?;
        if self
            .load(group_id)
            .await?
            .is_none_or(|(g, _)| g.is_deleted())
        {
            return Err(missing_relation("customer_group_id", group_id));
        }
        let wanted: BTreeSet<&String> = add.iter().chain(remove).collect();
        self.require_live_customers(wanted.iter().map(|s| s.as_str()))
            .await?;
        let pairs = |ids: &[String]| -> Vec<(String, String)> {
            ids.iter()
                .map(|c| (c.clone(), group_id.to_owned()))
                .collect()
        };
        self.apply(&pairs(add), &pairs(remove), created_by).await
    }

    /// Adds a customer to and removes it from groups (the customer-side route).
    pub async fn batch_groups(
        &self,
        customer_id: &str,
        add: &[String],
        remove: &[String],
        created_by: Option<&str>,
    ) -> DomainResult<()> {
        check_batch(add, remove)?;
        self.require_live_customers([customer_id]).await?;
        let wanted: BTreeSet<&String> = add.iter().chain(remove).collect();
        let keys: Vec<Key> = wanted.iter().map(|g| group_key(g)).collect();
        let live: BTreeSet<String> = self
            .store
            .batch_get(&keys)
            .await?
            .into_iter()
            .map(from_item)
            .collect::<DomainResult<Vec<_>>>()?
            .into_iter()
            .filter(|(g, _)| !g.is_deleted())
            .map(|(g, _)| g.id)
            .collect();
        if let Some(missing) = wanted.iter().find(|g| !live.contains(g.as_str())) {
            return Err(missing_relation("customer_group_id", missing));
        }
        let pairs = |ids: &[String]| -> Vec<(String, String)> {
            ids.iter()
                .map(|g| (customer_id.to_owned(), g.clone()))
                .collect()
        };
        self.apply(&pairs(add), &pairs(remove), created_by).await
    }

    /// The writes that make a customer being created a member of `group_ids`, for the
    /// customer's own transaction: per group the edge and the member count, the latter only
    /// while the group is live (a group deleted meanwhile fails the whole transaction).
    pub fn memberships_of_new_customer(
        &self,
        customer_id: &str,
        group_ids: &[String],
        created_by: Option<&str>,
    ) -> DomainResult<Vec<WriteOp>> {
        let now = iso(self.clock.now());
        let unique: BTreeSet<&String> = group_ids.iter().collect();
        let mut ops = Vec::with_capacity(unique.len() * 2);
        for group in unique {
            ops.push(WriteOp::PutEncoded {
                item: edge_item(customer_id, group, created_by, &now)?,
                condition: Some(Condition::NotExists),
            });
            ops.push(WriteOp::Add {
                key: group_key(group),
                attribute: "member_count".into(),
                delta: 1,
                condition: Some(live()),
            });
        }
        Ok(ops)
    }

    async fn require_live_customers<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> DomainResult<()> {
        let ids: Vec<&str> = ids.into_iter().collect();
        let keys: Vec<Key> = ids.iter().map(|c| profile_key(c)).collect();
        let live: BTreeSet<String> = self
            .store
            .batch_get(&keys)
            .await?
            .iter()
            .filter(|item| item.get("deleted_at").is_none_or(Value::is_null))
            .filter_map(|item| item.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        match ids.iter().find(|c| !live.contains(**c)) {
            Some(missing) => Err(missing_relation("customer_id", missing)),
            None => Ok(()),
        }
    }

    /// Writes membership changes (customer, group) in transactions of at most 100 actions: per
    /// new membership the edge (if absent) and a liveness check of the customer, per group one
    /// counter update guarded by the group being live. Each transaction is all-or-nothing and
    /// every one is idempotent, so after a failure a retry of the same call completes it.
    async fn apply(
        &self,
        add: &[(String, String)],
        remove: &[(String, String)],
        created_by: Option<&str>,
    ) -> DomainResult<()> {
        let now = iso(self.clock.now());
        for attempt in 0..ATTEMPTS {
            let keys: Vec<Key> = add
                .iter()
                .chain(remove)
                .map(|(c, g)| edge_key(c, g))
                .collect();
            let existing: BTreeSet<Key> = self
                .store
                .batch_get(&keys)
                .await?
                .iter()
                .filter_map(|item| Key::of(item).ok())
                .collect();
            let to_add: Vec<&(String, String)> = add
                .iter()
                .filter(|(c, g)| !existing.contains(&edge_key(c, g)))
                .collect();
            let to_remove: Vec<&(String, String)> = remove
                .iter()
                .filter(|(c, g)| existing.contains(&edge_key(c, g)))
                .collect();
            match self
                .write_changes(&to_add, &to_remove, created_by, &now)
                .await
            {
                Ok(()) => return Ok(()),
                // Someone changed these memberships meanwhile: re-read and go again.
                Err(StoreError::ConditionFailed { .. } | StoreError::Conflict)
                    if attempt + 1 < ATTEMPTS =>
                {
                    continue;
                }
                Err(StoreError::ConditionFailed { .. }) => {
                    return Err(DomainError::Conflict(
                        "Memberships are being changed by other requests, please retry.".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn write_changes(
        &self,
        add: &[&(String, String)],
        remove: &[&(String, String)],
        created_by: Option<&str>,
        now: &str,
    ) -> Result<(), StoreError> {
        // Chunks keep a group's counter update in the transaction with its edges.
        let mut pending: Vec<(bool, &(String, String))> = add
            .iter()
            .map(|p| (true, *p))
            .chain(remove.iter().map(|p| (false, *p)))
            .collect();
        while !pending.is_empty() {
            let mut ops = Vec::new();
            let mut deltas: BTreeMap<String, i64> = BTreeMap::new();
            let mut checked: BTreeSet<String> = BTreeSet::new();
            let mut taken = 0;
            for (adding, (customer, group)) in &pending {
                let new_group = !deltas.contains_key(group);
                let new_customer = *adding && !checked.contains(customer);
                let needed = 1 + usize::from(new_group) + usize::from(new_customer);
                if ops.len() + checked.len() + deltas.len() + needed > MAX_TRANSACTION_OPS {
                    break;
                }
                if *adding {
                    ops.push(WriteOp::PutEncoded {
                        item: edge_item(customer, group, created_by, now)
                            .map_err(|e| StoreError::Backend(e.to_string()))?,
                        condition: Some(Condition::NotExists),
                    });
                    if new_customer {
                        checked.insert(customer.clone());
                    }
                } else {
                    ops.push(WriteOp::Delete {
                        key: edge_key(customer, group),
                        condition: Some(Condition::Exists),
                    });
                }
                *deltas.entry(group.clone()).or_insert(0) += if *adding { 1 } else { -1 };
                taken += 1;
            }
            for customer in &checked {
                ops.push(WriteOp::Check {
                    key: profile_key(customer),
                    condition: live(),
                });
            }
            for (group, delta) in &deltas {
                ops.push(WriteOp::Add {
                    key: group_key(group),
                    attribute: "member_count".into(),
                    delta: *delta,
                    condition: Some(live()),
                });
            }
            self.store.transact(ops).await?;
            pending.drain(..taken);
        }
        Ok(())
    }
}

fn check_batch(add: &[String], remove: &[String]) -> DomainResult<()> {
    if add.len() + remove.len() > MAX_BATCH {
        return Err(DomainError::InvalidData(format!(
            "Invalid request: at most {MAX_BATCH} ids per call"
        )));
    }
    Ok(())
}

fn name_marker(g: &CustomerGroup) -> WriteOp {
    WriteOp::Put {
        item: crate::store::record::pointer(
            &name_key(&g.name),
            "customer_group_name",
            "group_id",
            &g.id,
        ),
        condition: Some(Condition::NotExists),
    }
}
