//! The narrow key-value interface the single-table layout is written against.
//!
//! Two backends implement it — DynamoDB and an embedded redb file — and both pass the same
//! conformance suite (`tests/`). Everything above this module (repositories, use cases) is written
//! once. It is also the seam for fault injection: a wrapper can throttle or cancel any call.

pub mod dynamo;
pub mod embedded;
pub mod merge;
pub mod record;
pub mod segment;

use std::collections::BTreeMap;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

/// One stored item: attribute name → JSON value. Key attributes are plain strings.
pub type Item = serde_json::Map<String, Value>;

/// Key attributes of an item as a flat map (primary key and, for index queries, the index key).
/// Used as the exclusive start of the next query page.
pub type KeyMap = BTreeMap<String, String>;

pub const PK: &str = "pk";
pub const SK: &str = "sk";

/// Maximum number of operations DynamoDB accepts in one transaction; the embedded backend
/// enforces it too, so code that works locally works on AWS.
pub const MAX_TRANSACTION_OPS: usize = 100;
/// Transactions of one `transact_each` in flight at once where they cannot be merged.
const TRANSACT_EACH_CONCURRENCY: usize = 16;

/// Keys in ascending (pk, sk) order, read as they are written (from a bulk load's spill files).
pub type SortedKeys = Box<dyn Iterator<Item = Result<Key, StoreError>> + Send>;
/// Keys [`KvStore::put_sorted_keys`] hands to `put_keys` at a time by default.
const SORTED_KEYS_CHUNK: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Key {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    /// Reads the primary key attributes of an item.
    pub fn of(item: &Item) -> Result<Key, StoreError> {
        let (pk, sk) = Key::parts_of(item)?;
        Ok(Key::new(pk, sk))
    }

    /// The primary key attributes of an item, borrowed.
    fn parts_of(item: &Item) -> Result<(&str, &str), StoreError> {
        let attr = |name: &str| {
            item.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| StoreError::Backend(format!("item without string attribute {name}")))
        };
        Ok((attr(PK)?, attr(SK)?))
    }
}

/// The global secondary indexes of the table. Each has a string partition and sort key named
/// `gsiNpk` / `gsiNsk`; an item is in an index only when it carries both attributes (sparse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Index {
    Main,
    Gsi1,
    Gsi2,
    Gsi3,
}

impl Index {
    pub const SECONDARY: [Index; 3] = [Index::Gsi1, Index::Gsi2, Index::Gsi3];

    /// Attribute names of this index's partition and sort key.
    pub fn key_attributes(self) -> (&'static str, &'static str) {
        match self {
            Index::Main => (PK, SK),
            Index::Gsi1 => ("gsi1pk", "gsi1sk"),
            Index::Gsi2 => ("gsi2pk", "gsi2sk"),
            Index::Gsi3 => ("gsi3pk", "gsi3sk"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Index::Main => "main",
            Index::Gsi1 => "gsi1",
            Index::Gsi2 => "gsi2",
            Index::Gsi3 => "gsi3",
        }
    }

    /// The secondary index with this [`Index::name`].
    pub fn secondary_named(name: &str) -> Option<Index> {
        Index::SECONDARY.into_iter().find(|i| i.name() == name)
    }

    /// The item's (partition, sort) in this index, if it carries both.
    pub fn key_of(self, item: &Item) -> Option<(&str, &str)> {
        let (p, s) = self.key_attributes();
        Some((item.get(p)?.as_str()?, item.get(s)?.as_str()?))
    }
}

/// One entry of a secondary index: the item at `key` listed under (`partition`, `sort`).
/// What a bulk load hands back to [`KvStore::write_index_entries`] for the entries it left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub index: Index,
    pub partition: String,
    pub sort: String,
    pub key: Key,
}

/// A condition on the current state of one item, checked atomically with the write.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Exists,
    NotExists,
    /// The item exists and the attribute holds exactly this value.
    Equals {
        attribute: String,
        value: Value,
    },
    /// The item exists and each attribute holds exactly its value: a whole-item write that
    /// must not undo a concurrent change to a counter the item also carries.
    AllEqual(Vec<(String, Value)>),
}

impl Condition {
    pub fn all_equal(pairs: &[(&str, Value)]) -> Self {
        Condition::AllEqual(
            pairs
                .iter()
                .map(|(attribute, value)| ((*attribute).to_owned(), value.clone()))
                .collect(),
        )
    }

    /// Whether deciding needs the stored item's attributes, not only whether it is there.
    pub fn reads_attributes(&self) -> bool {
        matches!(self, Condition::Equals { .. } | Condition::AllEqual(_))
    }

    pub fn equals(attribute: &str, value: impl Into<Value>) -> Self {
        Condition::Equals {
            attribute: attribute.to_owned(),
            value: value.into(),
        }
    }

    /// Evaluates the condition against the current item (shared by in-process backends).
    pub fn holds(&self, current: Option<&Item>) -> bool {
        match (self, current) {
            (Condition::Exists, found) => found.is_some(),
            (Condition::NotExists, found) => found.is_none(),
            (Condition::Equals { attribute, value }, Some(item)) => {
                item.get(attribute) == Some(value)
            }
            (Condition::Equals { .. }, None) => false,
            (Condition::AllEqual(pairs), Some(item)) => pairs
                .iter()
                .all(|(attribute, value)| item.get(attribute) == Some(value)),
            (Condition::AllEqual(_), None) => false,
        }
    }
}

/// One write inside a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    /// A put of an item already in its JSON form (see [`record::EncodedItem`]).
    PutEncoded {
        item: record::EncodedItem,
        condition: Option<Condition>,
    },
    Delete {
        key: Key,
        condition: Option<Condition>,
    },
    Check {
        key: Key,
        condition: Condition,
    },
    /// Adds `delta` to a numeric attribute, creating the item (with its key only) when missing
    /// and the condition (if any) allows it.
    Add {
        key: Key,
        attribute: String,
        delta: i64,
        condition: Option<Condition>,
    },
}

impl WriteOp {
    pub fn key(&self) -> Result<Key, StoreError> {
        let (pk, sk) = self.key_parts()?;
        Ok(Key::new(pk, sk))
    }

    /// The key of the item written, borrowed.
    fn key_parts(&self) -> Result<(&str, &str), StoreError> {
        match self {
            WriteOp::Put { item, .. } => Key::parts_of(item),
            WriteOp::PutEncoded { item, .. } => Ok((&item.key().pk, &item.key().sk)),
            WriteOp::Delete { key, .. } | WriteOp::Check { key, .. } | WriteOp::Add { key, .. } => {
                Ok((&key.pk, &key.sk))
            }
        }
    }

    /// The write with an encoded item's attributes spelt out, for stores that take attributes.
    pub fn with_attributes(self) -> Result<WriteOp, StoreError> {
        Ok(match self {
            WriteOp::PutEncoded { item, condition } => WriteOp::Put {
                item: item.to_item()?,
                condition,
            },
            other => other,
        })
    }

    pub fn condition(&self) -> Option<&Condition> {
        match self {
            WriteOp::Put { condition, .. }
            | WriteOp::PutEncoded { condition, .. }
            | WriteOp::Delete { condition, .. }
            | WriteOp::Add { condition, .. } => condition.as_ref(),
            WriteOp::Check { condition, .. } => Some(condition),
        }
    }
}

/// An item that is its key alone (a marker, a search entry).
pub fn bare_item(key: &Key) -> Item {
    let mut item = Item::with_capacity(2);
    item.insert(PK.into(), key.pk.clone().into());
    item.insert(SK.into(), key.sk.clone().into());
    item
}

/// An unconditional write for bulk loads; batches are not atomic but each write is idempotent.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOp {
    Put(Item),
    Delete(Key),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SortCondition {
    Any,
    Equals(String),
    BeginsWith(String),
    /// Inclusive on both ends.
    Between(String, String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub index: Index,
    pub partition: String,
    pub sort: SortCondition,
    /// Ascending sort key order when true.
    pub forward: bool,
    pub limit: usize,
    /// Exclusive start: the `last_key` of the previous page.
    pub start_after: Option<KeyMap>,
}

impl Query {
    pub fn new(index: Index, partition: impl Into<String>) -> Self {
        Query {
            index,
            partition: partition.into(),
            sort: SortCondition::Any,
            forward: true,
            limit: 100,
            start_after: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryPage {
    pub items: Vec<Item>,
    /// Present when more items may follow.
    pub last_key: Option<KeyMap>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum StoreError {
    /// The condition of operation `index` (position in the transaction) did not hold; nothing was written.
    #[error("condition of operation {index} failed")]
    ConditionFailed { index: usize },
    /// Another transaction touched the same items; nothing was written and a retry may succeed.
    #[error("transaction conflict")]
    Conflict,
    /// The backend asked us to slow down and retries were exhausted.
    #[error("throttled by the store")]
    Throttled,
    /// The store did not answer in time or could not be reached. A write may or may not have
    /// been applied, so only idempotent work should be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("invalid request to the store: {0}")]
    Invalid(String),
    #[error("store failure: {0}")]
    Backend(String),
}

/// Whether `item` is exactly what the store holds at its key. After a write's first condition
/// failed, this tells a write that was already applied — an attempt whose answer was lost (a
/// timeout the SDK retried) — from one that really lost: ids are fresh and `updated_at` is in
/// the item, so nobody else writes the very same item.
pub async fn holds_exactly(store: &dyn KvStore, item: &Item) -> Result<bool, StoreError> {
    let key = Key::of(item)?;
    Ok(store.get(&key).await?.is_some_and(|stored| &stored == item))
}

/// The store port. Every method is atomic on its own; `transact` is all-or-nothing.
#[async_trait]
pub trait KvStore: Send + Sync {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;
    /// Items for the keys that exist, in no particular order.
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError>;
    /// Applies every operation or none. At most [`MAX_TRANSACTION_OPS`], one per item.
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError>;
    /// Unconditional puts and deletes, retried until all are applied.
    async fn batch_write(&self, ops: Vec<BatchOp>) -> Result<(), StoreError>;
    async fn query(&self, query: &Query) -> Result<QueryPage, StoreError>;
    /// Unconditional puts of items that are their key alone (markers, search entries): a
    /// batch write of bare items, which a backend may store without building each item.
    async fn put_keys(&self, keys: Vec<Key>) -> Result<(), StoreError> {
        self.batch_write(keys.iter().map(|k| BatchOp::Put(bare_item(k))).collect())
            .await
    }
    /// Unconditional puts of bare keys in ascending order, for an index that only has to be a
    /// superset (search): queries find them, but a store may keep them where a later delete or
    /// a `get` does not look (the embedded file writes a large load as one sorted segment
    /// beside its B-tree), so readers must check what they find. By default `put_keys` in
    /// chunks.
    async fn put_sorted_keys(&self, keys: SortedKeys) -> Result<(), StoreError> {
        let mut chunk = Vec::with_capacity(SORTED_KEYS_CHUNK);
        for key in keys {
            chunk.push(key?);
            if chunk.len() >= SORTED_KEYS_CHUNK {
                self.put_keys(std::mem::take(&mut chunk)).await?;
            }
        }
        if chunk.is_empty() {
            return Ok(());
        }
        self.put_keys(chunk).await
    }
    /// A view of this store whose writes skip the wait for disk until the next write of the
    /// store itself, which makes them durable too (the embedded file: no fsync per commit).
    /// For bulk work that checkpoints through the store itself, so a crash loses only what the
    /// last checkpoint does not cover. `None` where every write is durable anyway (DynamoDB).
    fn deferred(&self) -> Option<Arc<dyn KvStore>> {
        None
    }

    /// Whether a transaction costs no more than a batch write of the same items. True for the
    /// embedded file (one commit either way, so fewer commits is faster); false for DynamoDB,
    /// where a transactional write costs twice a plain one.
    fn transactions_are_cheap(&self) -> bool {
        false
    }
    /// Several independent transactions, each all-or-nothing on its own, with one outcome per
    /// transaction in order. The outer error is the store's failure (nothing may be assumed
    /// written). Backends may apply them together: the embedded file commits them all at once,
    /// which is what makes bulk loads fast; elsewhere they run side by side.
    async fn transact_each(
        &self,
        transactions: Vec<Vec<WriteOp>>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        use futures::StreamExt;
        let outcomes: Vec<Result<(), StoreError>> = futures::stream::iter(transactions)
            .map(|ops| self.transact(ops))
            .buffered(TRANSACT_EACH_CONCURRENCY)
            .collect()
            .await;
        // Throttling, timeouts and backend failures are the store's, not the transaction's.
        if let Some(e) = outcomes.iter().find_map(|o| match o {
            Err(
                e @ (StoreError::Throttled | StoreError::Unavailable(_) | StoreError::Backend(_)),
            ) => Some(e.clone()),
            _ => None,
        }) {
            return Err(e);
        }
        Ok(outcomes)
    }
    /// [`KvStore::transact_each`] whose puts leave out their entries in the `later` indexes,
    /// for the caller to write in key order with [`KvStore::write_index_entries`]: a bulk load
    /// into a B-tree, where entries at random places cost a page each. Until then the items are
    /// missing from those indexes. A store that keeps its indexes itself (DynamoDB) writes
    /// them as usual.
    async fn transact_each_indexing_later(
        &self,
        transactions: Vec<Vec<WriteOp>>,
        later: &[Index],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let _ = later;
        self.transact_each(transactions).await
    }
    /// Writes entries that [`KvStore::transact_each_indexing_later`] left out (or that the
    /// caller read off a stored item), except where the item changed or went away since: that
    /// write indexed it as it is now. Writing an entry that is there already changes nothing.
    async fn write_index_entries(&self, entries: Vec<IndexEntry>) -> Result<(), StoreError> {
        let _ = entries;
        Ok(())
    }
    /// Several queries at once (the shards of a sharded index); backends may run them together.
    async fn query_many(&self, queries: &[Query]) -> Result<Vec<QueryPage>, StoreError> {
        futures::future::try_join_all(queries.iter().map(|q| self.query(q))).await
    }
}

/// Every item `query` selects, page after page: for partitions that stay modest (a company's
/// members, the roles, one principal's grants).
pub async fn query_all(store: &dyn KvStore, mut query: Query) -> Result<Vec<Item>, StoreError> {
    query.limit = query.limit.max(1000);
    let mut items = Vec::new();
    loop {
        let page = store.query(&query).await?;
        items.extend(page.items);
        match page.last_key {
            Some(k) => query.start_after = Some(k),
            None => return Ok(items),
        }
    }
}

/// Rejects transactions DynamoDB would reject, so both backends agree.
pub fn validate_transaction(ops: &[WriteOp]) -> Result<(), StoreError> {
    let keys = ops
        .iter()
        .map(WriteOp::key_parts)
        .collect::<Result<Vec<_>, _>>()?;
    validate_transaction_keys(&keys)
}

/// [`validate_transaction`] given the keys of the items a transaction writes, in order.
pub fn validate_transaction_keys(keys: &[(&str, &str)]) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Err(StoreError::Invalid("empty transaction".into()));
    }
    if keys.len() > MAX_TRANSACTION_OPS {
        return Err(StoreError::Invalid(format!(
            "transaction has {} operations, at most {MAX_TRANSACTION_OPS} allowed",
            keys.len()
        )));
    }
    // Borrowed keys compared pairwise: at most 100 of them, and a bulk load validates a
    // transaction per row (copying and hashing every key was 7 % of the CPU beside the writer).
    for (at, key) in keys.iter().enumerate() {
        if keys[..at].contains(key) {
            return Err(StoreError::Invalid(
                "transaction includes several operations on one item".into(),
            ));
        }
    }
    Ok(())
}

/// Rejects queries DynamoDB would reject: key values in conditions may not be empty.
pub fn validate_query(query: &Query) -> Result<(), StoreError> {
    let empty = match &query.sort {
        SortCondition::Any => false,
        SortCondition::Equals(v) | SortCondition::BeginsWith(v) => v.is_empty(),
        SortCondition::Between(a, b) => a.is_empty() || b.is_empty(),
    };
    if query.partition.is_empty() || empty {
        return Err(StoreError::Invalid(
            "empty key value in a query condition".into(),
        ));
    }
    Ok(())
}

/// Key attributes of `item` for `index`: what a page's `last_key` holds.
pub fn key_map(item: &Item, index: Index) -> KeyMap {
    let mut names = vec![PK, SK];
    if index != Index::Main {
        let (p, s) = index.key_attributes();
        names.extend([p, s]);
    }
    names
        .into_iter()
        .filter_map(|n| {
            item.get(n)
                .and_then(Value::as_str)
                .map(|v| (n.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The sort key range a condition selects, as inclusive bounds (`None` = unbounded).
pub fn sort_bounds(sort: &SortCondition) -> (Option<String>, Option<String>) {
    // U+10FFFF is the greatest character: appended, it bounds every string with the prefix.
    const MAX: char = '\u{10FFFF}';
    match sort {
        SortCondition::Any => (None, None),
        SortCondition::Equals(v) => (Some(v.clone()), Some(v.clone())),
        SortCondition::BeginsWith(p) => (Some(p.clone()), Some(format!("{p}{MAX}{MAX}"))),
        SortCondition::Between(a, b) => (Some(a.clone()), Some(b.clone())),
    }
}

pub fn sort_matches(sort: &SortCondition, value: &str) -> bool {
    match sort {
        SortCondition::Any => true,
        SortCondition::Equals(v) => value == v,
        SortCondition::BeginsWith(p) => value.starts_with(p.as_str()),
        SortCondition::Between(a, b) => value >= a.as_str() && value <= b.as_str(),
    }
}
