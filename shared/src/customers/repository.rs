//! Customers in the single table.
//!
//! | item | pk | sk | indexes |
//! |---|---|---|---|
//! | profile | `CUS#<id>` | `#PROFILE` | gsi1 `CUSLIST#<shard>`/`<id>` (creation order), gsi2 `CUSEMAIL#<shard>`/`<email>␁<id>`, gsi3 `CUSNAME#<shard>`/`<last>␁<first>␁<id>` |
//! | email marker | `CUSEMAIL#<0\|1>#<email>` | same | – |
//! | live counter | `COUNT#customer` | `<shard>` | – |
//!
//! Index attributes are only on live profiles, so a soft-deleted customer leaves every listing.
//! The marker makes (email, has_account) unique among live customers in the same transaction as
//! the profile write; the counter moves in that transaction too, so counts are exact.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tokio::task::JoinHandle;

use std::collections::{BTreeSet, HashSet};

use super::listing::{CustomerOrder, CustomerQuery, Direction};
use super::search::BulkEntries;
use super::{Customer, normalize_text, search};
use crate::error::{DomainError, DomainResult};
use crate::store::merge::MergedQuery;
use crate::store::record::{EncodedItem, encoded};
use crate::store::{
    BatchOp, Condition, Index, IndexEntry, Item, Key, KvStore, MAX_TRANSACTION_OPS, Query,
    SortCondition, StoreError, WriteOp,
};

const SHARDS: u32 = 8;
/// The indexes a bulk load's customers are listed in at its end (see `transact_marked`).
const LISTS_LATER: [Index; 2] = [Index::Gsi2, Index::Gsi3];
/// Pending customers read at a time when indexing them or searching them.
const INDEX_PAGE: usize = 1000;
/// Search entries written per commit when indexing pending customers: in key order they fill
/// about a hundred pages, and the items waiting to be written stay a few megabytes.
const INDEX_WRITE: usize = 5_000;

/// When a new customer's search entries are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchEntries {
    /// With the customer (or just before it).
    Now,
    /// By [`CustomerRepository::index_pending`], after a bulk load: a marker until then.
    Later,
}
const SEP: char = '\u{1}';
/// Sorts after every real value: customers without the field come last in ascending order.
const NULL_LAST: &str = "\u{FFFF}";
const ENTITY: &str = "customer";
const SCAN_PAGE: usize = 500;
/// Below every stored key string (DynamoDB rejects an empty key value in a condition).
const MIN_KEY: &str = "\u{1}";
/// Above every stored key string.
const MAX_KEY: &str = "\u{10FFFF}\u{10FFFF}\u{10FFFF}\u{10FFFF}";

fn shard(value: &str) -> u32 {
    // FNV-1a: stable across processes and releases, unlike std's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in value.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % SHARDS
}

fn partitions(prefix: &str) -> Vec<String> {
    (0..SHARDS).map(|s| format!("{prefix}#{s}")).collect()
}

pub fn profile_key(id: &str) -> Key {
    Key::new(format!("CUS#{id}"), "#PROFILE")
}

fn email_marker_key(has_account: bool, email_key: &str) -> Key {
    let k = format!("CUSEMAIL#{}#{email_key}", u8::from(has_account));
    Key::new(k.clone(), k)
}

fn counter_key(shard: u32) -> Key {
    Key::new("COUNT#customer", shard.to_string())
}

/// The customer's item as it is written: its JSON, its key and, while it lives, its lists.
fn record(c: &Customer) -> DomainResult<EncodedItem> {
    let mut item = encoded(c, &profile_key(&c.id), ENTITY, c.version)?;
    if !c.is_deleted() {
        for (index, partition, sort) in index_keys(c) {
            item = item.indexed(index, partition, sort)?;
        }
    }
    Ok(item)
}

fn to_item(c: &Customer) -> DomainResult<Item> {
    Ok(record(c)?.to_item()?)
}

/// A live customer's place in each list: by creation, by email, by name.
fn index_keys(c: &Customer) -> [(Index, String, String); 3] {
    let email = c.email_key();
    let last = c.last_name.as_deref().map(normalize_text);
    [
        (
            Index::Gsi1,
            format!("CUSLIST#{}", shard(&c.id)),
            c.id.clone(),
        ),
        (
            Index::Gsi2,
            format!("CUSEMAIL#{}", shard(email.as_deref().unwrap_or(&c.id))),
            order_key(CustomerOrder::Email, c),
        ),
        (
            Index::Gsi3,
            format!("CUSNAME#{}", shard(last.as_deref().unwrap_or(&c.id))),
            order_key(CustomerOrder::LastName, c),
        ),
    ]
}

/// The customer's entries in the lists a bulk load writes at its end (none once deleted).
pub fn list_entries(c: &Customer) -> Vec<IndexEntry> {
    if c.is_deleted() {
        return Vec::new();
    }
    index_keys(c)
        .into_iter()
        .filter(|(index, _, _)| LISTS_LATER.contains(index))
        .map(|(index, partition, sort)| IndexEntry {
            index,
            partition,
            sort,
            key: profile_key(&c.id),
        })
        .collect()
}

fn from_item(item: Item) -> DomainResult<Customer> {
    let version = item.get("version").and_then(Value::as_u64).unwrap_or(0);
    let mut customer: Customer = serde_json::from_value(Value::Object(item))
        .map_err(|e| DomainError::Internal(format!("stored customer is unreadable: {e}")))?;
    customer.version = version;
    Ok(customer)
}

/// What a failed condition of the extra writes of [`CustomerRepository::create`] means: the
/// identity already has a customer (a 422 `duplicate_error`, as in Medusa).
pub const EXTRA_CONDITION_FAILED: &str = "Request already authenticated as a customer.";

fn duplicate_email(c: &Customer) -> DomainError {
    if c.has_account {
        return DomainError::Duplicate("Customer with this email already has an account".into());
    }
    DomainError::InvalidData(format!(
        "Customer with email: {}, has_account: {}, already exists.",
        c.email.as_deref().unwrap_or_default(),
        c.has_account
    ))
}

/// Why an update or delete did not happen.
#[derive(Debug)]
pub enum WriteRejected {
    /// Another writer changed the customer since it was read.
    Stale,
    Domain(DomainError),
}

impl From<DomainError> for WriteRejected {
    fn from(e: DomainError) -> Self {
        WriteRejected::Domain(e)
    }
}

#[derive(Clone)]
pub struct CustomerRepository {
    store: Arc<dyn KvStore>,
}

impl CustomerRepository {
    pub fn new(store: Arc<dyn KvStore>) -> Self {
        CustomerRepository { store }
    }

    pub fn store(&self) -> Arc<dyn KvStore> {
        self.store.clone()
    }

    /// Writes a new customer, with `extra` writes in the same transaction (an identity link);
    /// a failed condition among them is reported as [`EXTRA_CONDITION_FAILED`].
    pub async fn create(&self, c: &Customer, extra: Vec<WriteOp>) -> DomainResult<()> {
        let mut outcomes = self
            .create_many(vec![(c.clone(), extra)], SearchEntries::Now)
            .await?;
        outcomes
            .pop()
            .unwrap_or_else(|| Err(DomainError::Internal("lost outcome".into())))
    }

    /// Writes new customers, each in its own transaction with its `extra` writes: one outcome
    /// per customer, in order; the outer error is the store's. Where the store merges
    /// transactions (the embedded file) this is one commit for all of them — the bulk import's
    /// fast path.
    ///
    /// Search entries go in before the profile and stale ones out after it, so the search index
    /// is always a superset of what the profiles hold (see `search`). Where a transaction costs
    /// no more than a batch, the entries ride in the customer's own transaction when they fit.
    /// `SearchEntries::Later` writes a pending marker in their place (see `search`).
    pub async fn create_many(
        &self,
        customers: Vec<(Customer, Vec<WriteOp>)>,
        search_entries: SearchEntries,
    ) -> DomainResult<Vec<DomainResult<()>>> {
        let cheap = self.store.transactions_are_cheap();
        let mut plans = Vec::with_capacity(customers.len());
        let mut transactions = Vec::with_capacity(customers.len());
        let mut ahead = Vec::new();
        for (c, extra) in customers {
            let mut ops = vec![WriteOp::PutEncoded {
                item: record(&c)?,
                condition: Some(Condition::NotExists),
            }];
            if let Some(email) = c.email_key() {
                ops.push(marker_put(&c, &email)?);
            }
            ops.push(WriteOp::Add {
                key: counter_key(shard(&c.id)),
                attribute: "n".into(),
                delta: 1,
                condition: None,
            });
            let first_extra = ops.len();
            ops.extend(extra);
            if search_entries == SearchEntries::Later && ops.len() < MAX_TRANSACTION_OPS {
                ops.push(WriteOp::PutEncoded {
                    item: EncodedItem::empty(search::pending_key(&c.id)),
                    condition: None,
                });
                transactions.push((ops, true));
                plans.push((c, first_extra, None));
                continue;
            }
            let entries = search::entries(&c);
            let inline = cheap && entries.len() + ops.len() <= MAX_TRANSACTION_OPS;
            if inline {
                ops.extend(entries.iter().map(|k| WriteOp::Put {
                    item: crate::store::bare_item(k),
                    condition: None,
                }));
            } else {
                ahead.extend(entries.iter().cloned());
            }
            transactions.push((ops, false));
            plans.push((c, first_extra, (!inline).then_some(entries)));
        }
        if !ahead.is_empty() {
            self.store.put_keys(ahead).await?;
        }
        let outcomes = self.transact_marked(transactions).await?;
        let mut results = Vec::with_capacity(plans.len());
        let mut orphans = Vec::new();
        for ((c, first_extra, written_ahead), outcome) in plans.into_iter().zip(outcomes) {
            let outcome = match outcome {
                Err(StoreError::ConditionFailed { index: 0 })
                    if crate::store::holds_exactly(self.store.as_ref(), &to_item(&c)?).await? =>
                {
                    Ok(())
                }
                other => other,
            };
            let result = match outcome {
                Ok(()) => Ok(()),
                Err(StoreError::ConditionFailed { index }) if index >= first_extra => {
                    Err(DomainError::Duplicate(EXTRA_CONDITION_FAILED.into()))
                }
                Err(StoreError::ConditionFailed { index: 1 }) => Err(duplicate_email(&c)),
                Err(StoreError::ConditionFailed { .. }) => Err(DomainError::Internal(format!(
                    "customer id {} already used",
                    c.id
                ))),
                Err(e) => Err(e.into()),
            };
            // The id is new and nobody else's: the entries of a failed create can go at once.
            if let (Err(_), Some(entries)) = (&result, written_ahead) {
                orphans.extend(entries.into_iter().map(BatchOp::Delete));
            }
            results.push(result);
        }
        if !orphans.is_empty()
            && let Err(e) = self.store.batch_write(orphans).await
        {
            tracing::warn!(error = %e, "left search entries of failed creates");
        }
        Ok(results)
    }

    /// Writes each transaction; those of customers marked as pending (`true`) leave their list
    /// entries by email and by name to the end of the bulk load, like their search entries
    /// (where they were two of a new customer's three writes at random places of a B-tree).
    /// The others are listed at once: no marker would bring them back after a crash.
    async fn transact_marked(
        &self,
        transactions: Vec<(Vec<WriteOp>, bool)>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let marked: Vec<bool> = transactions.iter().map(|(_, m)| *m).collect();
        let (later, now): (Vec<_>, Vec<_>) = transactions.into_iter().partition(|(_, m)| *m);
        let strip = |t: Vec<(Vec<WriteOp>, bool)>| t.into_iter().map(|(ops, _)| ops).collect();
        let mut later = self
            .store
            .transact_each_indexing_later(strip(later), &LISTS_LATER)
            .await?
            .into_iter();
        let mut now = self.store.transact_each(strip(now)).await?.into_iter();
        marked
            .into_iter()
            .map(|m| if m { later.next() } else { now.next() })
            .map(|outcome| outcome.ok_or_else(|| StoreError::Backend("lost outcome".into())))
            .collect()
    }

    /// Writes the search entries of every customer a bulk load marked as pending, in key order
    /// (spilling sorted runs under `spill_dir`), then takes the markers away: after a crash
    /// the markers are still there and this runs again. Returns how many customers it indexed.
    pub async fn index_pending(&self, spill_dir: &Path) -> DomainResult<u64> {
        if !search::deferred_in_bulk(self.store.as_ref()) {
            return Ok(0);
        }
        // Usually there are none (every start and every import's end asks): one read, no thread.
        let (mut ids, mut next) = search::pending_page(&self.store, None, INDEX_PAGE).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let bulk = BulkEntries::new(spill_dir)?;
        loop {
            let customers = self.by_ids(&ids).await?;
            let found: HashSet<&str> = customers.iter().map(|c| c.id.as_str()).collect();
            let gone: Vec<String> = ids
                .into_iter()
                .filter(|id| !found.contains(id.as_str()))
                .collect();
            for customer in customers {
                bulk.add(customer)?;
            }
            for id in gone {
                bulk.add_marker(id)?;
            }
            let Some(after) = next else { break };
            (ids, next) = search::pending_page(&self.store, Some(after), INDEX_PAGE).await?;
        }
        self.write_bulk_entries(bulk).await
    }

    /// Writes the entries gathered in key order, then takes their customers' markers away.
    pub async fn write_bulk_entries(&self, bulk: BulkEntries) -> DomainResult<u64> {
        let customers = bulk.markers();
        if customers == 0 {
            return Ok(0);
        }
        tracing::info!(
            customers,
            "writing search entries of a bulk load in key order"
        );
        let sorted = bulk.sorted()?;
        // The search entries are merged and written on a thread of their own (a segment beside
        // the embedded file) while this task merges the list entries and hands them over.
        let keys = sorted
            .search
            .map(|key| key.map_err(|e| StoreError::Backend(e.to_string())));
        let store = self.store.clone();
        let search = tokio::spawn(async move { store.put_sorted_keys(Box::new(keys)).await });
        let mut lists = Vec::new();
        for entry in sorted.lists {
            lists.push(entry?);
            if lists.len() >= INDEX_WRITE {
                self.store
                    .write_index_entries(std::mem::take(&mut lists))
                    .await?;
            }
        }
        self.store.write_index_entries(lists).await?;
        written(search).await?;
        let mut deletes = Vec::with_capacity(INDEX_WRITE);
        for key in sorted.markers {
            deletes.push(BatchOp::Delete(key?));
            if deletes.len() >= INDEX_WRITE {
                self.store.batch_write(std::mem::take(&mut deletes)).await?;
            }
        }
        self.store.batch_write(deletes).await?;
        tracing::info!(customers, "indexed customers of a bulk load for search");
        Ok(customers)
    }

    async fn put_search_entries(&self, keys: &BTreeSet<Key>) -> DomainResult<()> {
        Ok(self.store.put_keys(keys.iter().cloned().collect()).await?)
    }

    /// Removes entries the customer no longer needs, only while it is still at `version`: a
    /// later writer may need them again, and a leftover entry is harmless.
    async fn drop_search_entries(&self, stale: BTreeSet<Key>, id: &str, version: u64) {
        let keys: Vec<Key> = stale.into_iter().collect();
        for chunk in keys.chunks(MAX_TRANSACTION_OPS - 1) {
            let mut ops = vec![WriteOp::Check {
                key: profile_key(id),
                condition: Condition::equals("version", version),
            }];
            ops.extend(chunk.iter().map(|k| WriteOp::Delete {
                key: k.clone(),
                condition: None,
            }));
            if let Err(e) = self.store.transact(ops).await {
                tracing::debug!(error = %e, customer_id = %id, "kept stale search entries");
                return;
            }
        }
    }

    /// The live customer with this email and `has_account`, if any (one read of its marker).
    pub async fn by_email(&self, email: &str, has_account: bool) -> DomainResult<Option<String>> {
        let marker = self
            .store
            .get(&email_marker_key(
                has_account,
                &super::normalize_email(email),
            ))
            .await?;
        Ok(marker.and_then(|m| {
            m.get("customer_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        }))
    }

    /// Which of these (email, has_account) pairs belong to a live customer and which of these
    /// ids are used by any customer, live or deleted: one batch read. Emails come back
    /// normalised.
    pub async fn taken(
        &self,
        emails: &[(String, bool)],
        ids: &[String],
    ) -> DomainResult<(BTreeSet<(String, bool)>, BTreeSet<String>)> {
        let mut keys: Vec<Key> = emails
            .iter()
            .map(|(e, account)| email_marker_key(*account, &super::normalize_email(e)))
            .collect();
        keys.extend(ids.iter().map(|id| profile_key(id)));
        let mut taken_emails = BTreeSet::new();
        let mut taken_ids = BTreeSet::new();
        for item in self.store.batch_get(&keys).await? {
            let pk = item.get("pk").and_then(Value::as_str).unwrap_or_default();
            if let Some(rest) = pk.strip_prefix("CUSEMAIL#") {
                if let Some((account, email)) = rest.split_once('#') {
                    taken_emails.insert((email.to_owned(), account == "1"));
                }
            } else if let Some(id) = pk.strip_prefix("CUS#") {
                taken_ids.insert(id.to_owned());
            }
        }
        Ok((taken_emails, taken_ids))
    }

    /// The live customer with an account for this email, if any (one read of its email marker).
    pub async fn account_by_email(&self, email: &str) -> DomainResult<Option<String>> {
        let marker = self
            .store
            .get(&email_marker_key(true, &super::normalize_email(email)))
            .await?;
        Ok(marker.and_then(|m| {
            m.get("customer_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        }))
    }

    pub async fn get(&self, id: &str) -> DomainResult<Option<Customer>> {
        self.store
            .get(&profile_key(id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Replaces `old` with `new` if nobody changed it meanwhile; moves the email marker when
    /// the email changes.
    pub async fn update(&self, old: &Customer, new: &Customer) -> Result<(), WriteRejected> {
        let mut next = new.clone();
        next.version = old.version + 1;
        let (before, after) = (search::entries(old), search::entries(&next));
        let added: BTreeSet<Key> = after.difference(&before).cloned().collect();
        self.put_search_entries(&added).await?;
        let mut ops = vec![WriteOp::PutEncoded {
            item: record(&next)?,
            condition: Some(Condition::equals("version", old.version)),
        }];
        let (old_email, new_email) = (old.email_key(), next.email_key());
        let mut new_marker_at = None;
        if old_email != new_email || old.has_account != next.has_account {
            if let Some(e) = &old_email {
                ops.push(marker_delete(old, e));
            }
            if let Some(e) = &new_email {
                new_marker_at = Some(ops.len());
                ops.push(marker_put(&next, e)?);
            }
        }
        match self.store.transact(ops).await {
            Ok(()) => {
                let stale = before.difference(&after).cloned().collect();
                self.drop_search_entries(stale, &next.id, next.version)
                    .await;
                Ok(())
            }
            Err(StoreError::ConditionFailed { index: 0 }) => Err(WriteRejected::Stale),
            Err(StoreError::ConditionFailed { index }) if Some(index) == new_marker_at => {
                Err(duplicate_email(&next).into())
            }
            Err(StoreError::ConditionFailed { .. }) => Err(WriteRejected::Stale),
            Err(e) => Err(DomainError::from(e).into()),
        }
    }

    /// Soft delete: the profile stays with `deleted_at`, leaves the indexes, frees its email.
    pub async fn soft_delete(&self, old: &Customer, at: &str) -> Result<(), WriteRejected> {
        let mut gone = old.clone();
        gone.deleted_at = Some(at.to_owned());
        gone.updated_at = at.to_owned();
        gone.version = old.version + 1;
        let mut ops = vec![WriteOp::PutEncoded {
            item: record(&gone)?,
            condition: Some(Condition::equals("version", old.version)),
        }];
        if let Some(e) = old.email_key() {
            ops.push(marker_delete(old, &e));
        }
        ops.push(WriteOp::Add {
            key: counter_key(shard(&old.id)),
            attribute: "n".into(),
            delta: -1,
            condition: None,
        });
        match self.store.transact(ops).await {
            Ok(()) => {
                self.drop_search_entries(search::entries(old), &gone.id, gone.version)
                    .await;
                Ok(())
            }
            Err(StoreError::ConditionFailed { .. }) => Err(WriteRejected::Stale),
            Err(e) => Err(DomainError::from(e).into()),
        }
    }

    /// Live customers in total, from the counters.
    pub async fn count_live(&self) -> DomainResult<usize> {
        let keys: Vec<Key> = (0..SHARDS).map(counter_key).collect();
        let total: i64 = self
            .store
            .batch_get(&keys)
            .await?
            .iter()
            .filter_map(|item| item.get("n").and_then(Value::as_i64))
            .sum();
        Ok(usize::try_from(total).unwrap_or(0))
    }

    async fn by_ids(&self, ids: &[String]) -> DomainResult<Vec<Customer>> {
        let keys: Vec<Key> = ids.iter().map(|id| profile_key(id)).collect();
        self.store
            .batch_get(&keys)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn ids_by_email(&self, emails: &[String]) -> DomainResult<Vec<String>> {
        let keys: Vec<Key> = emails
            .iter()
            .flat_map(|e| {
                let e = super::normalize_email(e);
                [email_marker_key(false, &e), email_marker_key(true, &e)]
            })
            .collect();
        Ok(self
            .store
            .batch_get(&keys)
            .await?
            .iter()
            .filter_map(|m| {
                m.get("customer_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect())
    }

    /// One page of customers matching `query`, how many match in all, and where the next
    /// page starts (for keyset pagination).
    ///
    /// `id` and `email` filters read their customers directly, and so does `q` through the
    /// search index (see `search`; queries under four characters excepted). Otherwise the order
    /// picks an index (creation order, email, last name) which is read in order; other filters
    /// are checked on the way, so they cost a pass over the live customers. With no filter at
    /// all only the page is read (from the cursor on) and the count comes from the counters.
    pub async fn list(&self, query: &CustomerQuery) -> DomainResult<CustomerPage> {
        let (order, direction) = query.order_or_default();
        if query.groups.is_some() || query.companies.is_some() {
            if let (Some([group]), true, CustomerOrder::CreatedAt | CustomerOrder::Id) =
                (query.groups.as_deref(), query.only_groups(), order)
            {
                return self
                    .group_page(group, query, direction == Direction::Asc)
                    .await;
            }
            let mut members = match &query.groups {
                Some(groups) => Some(crate::groups::member_ids(&self.store, groups).await?),
                None => None,
            };
            if let Some(companies) = &query.companies {
                let in_companies = crate::companies::member_ids(&self.store, companies).await?;
                members = Some(match members {
                    Some(m) => m.intersection(&in_companies).cloned().collect(),
                    None => in_companies,
                });
            }
            let mut members = members.unwrap_or_default();
            if let Some(ids) = &query.ids {
                members.retain(|m| ids.contains(m));
            }
            let ids: Vec<String> = members.into_iter().collect();
            let matching = self
                .by_ids(&ids)
                .await?
                .into_iter()
                .filter(|c| query.matches(c))
                .collect();
            return Ok(page_in_memory(matching, query));
        }
        let searchable = query.q.as_deref().filter(|q| search::indexable(q));
        let direct = match (&query.ids, &query.emails, searchable) {
            (Some(ids), _, _) => Some(self.by_ids(ids).await?),
            (None, Some(emails), _) => {
                let ids = self.ids_by_email(emails).await?;
                Some(self.by_ids(&ids).await?)
            }
            (None, None, Some(q)) => {
                let ids = search::candidates(&self.store, q).await?;
                let listed: Vec<String> = ids.iter().cloned().collect();
                let mut found = self.by_ids(&listed).await?;
                if search::deferred_in_bulk(self.store.as_ref()) {
                    // Customers of a bulk load not in the index yet: read in pages, matches
                    // kept (a small first page, as there are usually none).
                    let (mut after, mut limit) = (None, 50);
                    loop {
                        let (pending, next) =
                            search::pending_page(&self.store, after, limit).await?;
                        limit = INDEX_PAGE;
                        let unlisted: Vec<String> =
                            pending.into_iter().filter(|id| !ids.contains(id)).collect();
                        let customers = self.by_ids(&unlisted).await?;
                        found.extend(customers.into_iter().filter(|c| query.matches(c)));
                        match next {
                            Some(next) => after = Some(next),
                            None => break,
                        }
                    }
                }
                Some(found)
            }
            (None, None, None) => None,
        };
        if let Some(found) = direct {
            let matching = found.into_iter().filter(|c| query.matches(c)).collect();
            return Ok(page_in_memory(matching, query));
        }
        let forward = direction == Direction::Asc;
        let (index, prefix) = match order {
            CustomerOrder::Id | CustomerOrder::CreatedAt => (Index::Gsi1, "CUSLIST"),
            CustomerOrder::Email => (Index::Gsi2, "CUSEMAIL"),
            CustomerOrder::LastName => (Index::Gsi3, "CUSNAME"),
            _ => {
                let all = self.scan(query, Index::Gsi1, "CUSLIST", true).await?;
                return Ok(page_in_memory(all, query));
            }
        };
        if LISTS_LATER.contains(&index) && self.lists_pending().await? {
            return self.list_from_all(query, order, forward).await;
        }
        let unfiltered = query.is_unfiltered();
        // Unfiltered, the cursor is a range start; filtered, the whole pass is needed for the count.
        let sort = match (&query.after, unfiltered, forward) {
            (Some(after), true, true) => SortCondition::Between(after.clone(), MAX_KEY.to_owned()),
            (Some(after), true, false) => SortCondition::Between(MIN_KEY.to_owned(), after.clone()),
            _ => SortCondition::Any,
        };
        let wanted = if unfiltered {
            query.offset + query.limit + 1
        } else {
            SCAN_PAGE * SHARDS as usize
        };
        let mut merged = MergedQuery::new(
            self.store.clone(),
            index,
            partitions(prefix),
            sort,
            forward,
            wanted,
        );
        let mut window = Window::new(query, forward);
        while let Some(item) = merged.next().await? {
            let customer = from_item(item)?;
            if !query.matches(&customer) {
                continue;
            }
            let key = order_key(order, &customer);
            if window.offer(customer, key) && unfiltered {
                break;
            }
        }
        let count = if unfiltered {
            Some(self.count_live().await?)
        } else {
            None
        };
        Ok(window.finish(count))
    }

    /// Whether customers of a bulk load still wait for their list entries (see
    /// `transact_marked`): one read, and only where bulk loads defer them.
    async fn lists_pending(&self) -> DomainResult<bool> {
        if !search::deferred_in_bulk(self.store.as_ref()) {
            return Ok(false);
        }
        let (pending, _) = search::pending_page(&self.store, None, 1).await?;
        Ok(!pending.is_empty())
    }

    /// A page in `order` worked out from every live customer (read in creation order, whose
    /// list is always whole) instead of the order's own list, which misses a running bulk
    /// load's customers: slower, as exact. Only the first `offset + limit + 1` past the
    /// cursor are kept, so memory stays that of a few pages whatever the store's size.
    async fn list_from_all(
        &self,
        query: &CustomerQuery,
        order: CustomerOrder,
        forward: bool,
    ) -> DomainResult<CustomerPage> {
        let keep = query.offset + query.limit + 1;
        let first = |a: &str, b: &str| if forward { a < b } else { a > b };
        let trim = |best: &mut Vec<(String, Customer)>| {
            best.sort_unstable_by(|(a, _), (b, _)| if forward { a.cmp(b) } else { b.cmp(a) });
            best.truncate(keep);
        };
        let mut merged = MergedQuery::new(
            self.store.clone(),
            Index::Gsi1,
            partitions("CUSLIST"),
            SortCondition::Any,
            true,
            SCAN_PAGE * SHARDS as usize,
        );
        let (mut best, mut matched) = (Vec::new(), 0);
        while let Some(item) = merged.next().await? {
            let customer = from_item(item)?;
            if !query.matches(&customer) {
                continue;
            }
            matched += 1;
            let key = order_key(order, &customer);
            if query
                .after
                .as_deref()
                .is_some_and(|after| !first(after, &key))
            {
                continue;
            }
            best.push((key, customer));
            if best.len() >= 2 * keep.max(SCAN_PAGE) {
                trim(&mut best);
            }
        }
        trim(&mut best);
        let mut window = Window::new(query, forward);
        for (key, customer) in best {
            if window.offer(customer, key) {
                break;
            }
        }
        let count = if query.is_unfiltered() {
            self.count_live().await?
        } else {
            matched
        };
        Ok(window.finish(Some(count)))
    }

    /// A page of one group's members in creation order, read from the membership index from
    /// the cursor (or offset) on: the same cost per page whatever the group's size.
    async fn group_page(
        &self,
        group: &str,
        query: &CustomerQuery,
        forward: bool,
    ) -> DomainResult<CustomerPage> {
        let Some(count) = crate::groups::live_member_count(&self.store, group).await? else {
            return Ok(CustomerPage {
                customers: Vec::new(),
                count: 0,
                next_after: None,
            });
        };
        let mut q = Query::new(Index::Gsi1, crate::groups::members_partition(group));
        q.forward = forward;
        q.limit = (query.offset + query.limit + 1).min(1000);
        q.sort = match (&query.after, forward) {
            (Some(after), true) => SortCondition::Between(after.clone(), MAX_KEY.to_owned()),
            (Some(after), false) => SortCondition::Between(MIN_KEY.to_owned(), after.clone()),
            (None, _) => SortCondition::Any,
        };
        let wanted = query.offset + query.limit + 1;
        let mut ids = Vec::with_capacity(wanted);
        loop {
            let page = self.store.query(&q).await?;
            ids.extend(
                page.items
                    .iter()
                    .filter_map(|i| {
                        i.get("customer_id")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .filter(|id| query.after.as_ref() != Some(id)),
            );
            match page.last_key {
                Some(next) if ids.len() < wanted => q.start_after = Some(next),
                _ => break,
            }
        }
        let more = ids.len() > query.offset + query.limit;
        let page_ids: Vec<String> = ids
            .into_iter()
            .skip(query.offset)
            .take(query.limit)
            .collect();
        let mut found: std::collections::HashMap<String, Customer> = self
            .by_ids(&page_ids)
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let customers: Vec<Customer> = page_ids
            .iter()
            .filter_map(|id| found.remove(id))
            .filter(|c| !c.is_deleted())
            .collect();
        let next_after = if more {
            customers.last().map(|c| c.id.clone())
        } else {
            None
        };
        Ok(CustomerPage {
            customers,
            count,
            next_after,
        })
    }

    async fn scan(
        &self,
        query: &CustomerQuery,
        index: Index,
        prefix: &str,
        forward: bool,
    ) -> DomainResult<Vec<Customer>> {
        let mut merged = MergedQuery::new(
            self.store.clone(),
            index,
            partitions(prefix),
            SortCondition::Any,
            forward,
            SCAN_PAGE * SHARDS as usize,
        );
        let mut out = Vec::new();
        while let Some(item) = merged.next().await? {
            let customer = from_item(item)?;
            if query.matches(&customer) {
                out.push(customer);
            }
        }
        Ok(out)
    }
}

fn marker_put(c: &Customer, email_key: &str) -> DomainResult<WriteOp> {
    Ok(WriteOp::PutEncoded {
        item: crate::store::record::encoded_pointer(
            &email_marker_key(c.has_account, email_key),
            "customer_email",
            "customer_id",
            &c.id,
        )?,
        condition: Some(Condition::NotExists),
    })
}

fn marker_delete(c: &Customer, email_key: &str) -> WriteOp {
    WriteOp::Delete {
        key: email_marker_key(c.has_account, email_key),
        condition: Some(Condition::equals("customer_id", c.id.clone())),
    }
}

fn page_in_memory(mut all: Vec<Customer>, query: &CustomerQuery) -> CustomerPage {
    let (order, direction) = query.order_or_default();
    let mut keyed: Vec<(String, Customer)> =
        all.drain(..).map(|c| (order_key(order, &c), c)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    if direction == Direction::Desc {
        keyed.reverse();
    }
    let mut window = Window::new(query, direction == Direction::Asc);
    for (key, customer) in keyed {
        window.offer(customer, key);
    }
    window.finish(None)
}

/// The value a listing is ordered by, as one string: the index sort key where an index serves
/// the order, so a cursor taken from any path resumes on any other.
pub fn order_key(order: CustomerOrder, c: &Customer) -> String {
    let or_last = |v: Option<String>| v.unwrap_or_else(|| NULL_LAST.to_owned());
    match order {
        CustomerOrder::Id | CustomerOrder::CreatedAt => c.id.clone(),
        CustomerOrder::Email => format!("{}{SEP}{}", or_last(c.email_key()), c.id),
        CustomerOrder::LastName => format!(
            "{}{SEP}{}{SEP}{}",
            or_last(c.last_name.as_deref().map(normalize_text)),
            or_last(c.first_name.as_deref().map(normalize_text)),
            c.id
        ),
        CustomerOrder::FirstName => format!(
            "{}{SEP}{}",
            or_last(c.first_name.as_deref().map(normalize_text)),
            c.id
        ),
        CustomerOrder::CompanyName => format!(
            "{}{SEP}{}",
            or_last(c.company_name.as_deref().map(normalize_text)),
            c.id
        ),
        CustomerOrder::Phone => format!("{}{SEP}{}", or_last(c.phone.clone()), c.id),
        CustomerOrder::UpdatedAt => format!("{}{SEP}{}", c.updated_at, c.id),
        CustomerOrder::HasAccount => format!("{}{SEP}{}", c.has_account, c.id),
    }
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerPage {
    pub customers: Vec<Customer>,
    pub count: usize,
    /// Order key of the last customer when more follow: where the next page starts.
    pub next_after: Option<String>,
}

/// Collects one page from matches arriving in order: skips those up to the cursor and the
/// offset, keeps `limit`, notes whether more follow, and counts them all.
struct Window<'q> {
    query: &'q CustomerQuery,
    forward: bool,
    matched: usize,
    passed: usize,
    page: Vec<(String, Customer)>,
    more: bool,
}

impl<'q> Window<'q> {
    fn new(query: &'q CustomerQuery, forward: bool) -> Self {
        Window {
            query,
            forward,
            matched: 0,
            passed: 0,
            page: Vec::with_capacity(query.limit.min(1000)),
            more: false,
        }
    }

    /// Takes the next match; true once the page is full and another match was seen.
    fn offer(&mut self, customer: Customer, key: String) -> bool {
        self.matched += 1;
        let before_cursor = self.query.after.as_deref().is_some_and(|after| {
            if self.forward {
                key.as_str() <= after
            } else {
                key.as_str() >= after
            }
        });
        if before_cursor {
            return false;
        }
        self.passed += 1;
        if self.passed <= self.query.offset {
            return false;
        }
        if self.page.len() < self.query.limit {
            self.page.push((key, customer));
            false
        } else {
            self.more = true;
            true
        }
    }

    fn finish(self, count: Option<usize>) -> CustomerPage {
        let next_after = if self.more {
            self.page.last().map(|(key, _)| key.clone())
        } else {
            None
        };
        CustomerPage {
            count: count.unwrap_or(self.matched),
            customers: self.page.into_iter().map(|(_, c)| c).collect(),
            next_after,
        }
    }
}

/// The outcome of a write handed to a task of its own.
async fn written(task: JoinHandle<Result<(), StoreError>>) -> DomainResult<()> {
    task.await
        .map_err(|e| DomainError::Internal(format!("a store write stopped: {e}")))?
        .map_err(DomainError::from)
}
