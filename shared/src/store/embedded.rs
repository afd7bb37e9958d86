//! The embedded backend: one redb file, so `cargo run` needs no AWS at all.
//!
//! Items live in one table keyed by (pk, sk); each secondary index is a table keyed by
//! (index pk, index sk, pk, sk). All writes go through one writer thread that groups the
//! transactions waiting at that moment into a single redb commit (group commit): each
//! transaction's conditions are checked before any of its writes, so a failed one writes
//! nothing, and the fsync is shared by everyone in the group. A bulk load's new items, and their
//! index entries, wait until the end of their commit and go in in key order (see
//! `insert_in_runs`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use serde_json::Value;
use tokio::sync::oneshot;

use super::record::EncodedItem;
use super::segment::{self, Segment, SegmentWriter};
use super::{
    BatchOp, Condition, Index, IndexEntry, Item, Key, KvStore, PK, Query, QueryPage, SK,
    SortedKeys, StoreError, WriteOp, bare_item, key_map, sort_bounds, validate_query,
    validate_transaction_keys,
};

/// (index pk, index sk, pk, sk): an index entry's key.
type IndexKey = (&'static str, &'static str, &'static str, &'static str);
/// An index entry's key, borrowed.
type IndexRowKey<'a> = (&'a str, &'a str, &'a str, &'a str);

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");
const GSI1: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi1");
const GSI2: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi2");
const GSI3: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi3");
/// The segments of sorted keys beside the file (see `segment`) that are part of the store.
const SEGMENTS: TableDefinition<u64, ()> = TableDefinition::new("segments");

/// Upper bound for any stored key string.
const MAX_KEY: &str = "\u{10FFFF}\u{10FFFF}\u{10FFFF}\u{10FFFF}";
/// Page cache unless configured: enough for a few hundred thousand customers' hot pages.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Most transactions merged into one commit.
const GROUP_COMMIT_LIMIT: usize = 256;

fn index_table(
    index: Index,
) -> TableDefinition<'static, (&'static str, &'static str, &'static str, &'static str), ()> {
    match index {
        Index::Gsi1 => GSI1,
        Index::Gsi2 => GSI2,
        Index::Gsi3 => GSI3,
        Index::Main => unreachable!("the main table is not an index table"),
    }
}

enum Job {
    Transact(Vec<Ready>),
    Batch(Vec<Ready>),
    /// Independent transactions applied in one commit (one refused before it was sent keeps
    /// its reason).
    TransactEach(Vec<Result<Vec<Ready>, StoreError>>),
    /// Index entries a bulk load left out, each written only while its item carries it.
    Index(Vec<IndexEntry>),
    /// Segments that become part of the store, and those that leave it (merged).
    Segments {
        add: u64,
        remove: Vec<u64>,
    },
}

/// A write made ready on the caller's thread: its item encoded and its index keys taken out,
/// so the one writer thread does only what needs the file (encoding and freeing items there
/// was a third of its time in a bulk load).
enum Ready {
    Put {
        item: Prepared,
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
    Add {
        key: Key,
        attribute: String,
        delta: i64,
        condition: Option<Condition>,
    },
}

/// An item as it is stored: its key, its encoded value and its secondary index keys.
#[derive(Clone)]
struct Prepared {
    pk: String,
    sk: String,
    bytes: Vec<u8>,
    index_keys: Vec<(Index, String, String)>,
}

impl Prepared {
    /// A bare key (a marker, a search entry): nothing to encode, no index to feed.
    fn bare(Key { pk, sk }: Key) -> Prepared {
        Prepared {
            pk,
            sk,
            bytes: b"{}".to_vec(),
            index_keys: Vec::new(),
        }
    }

    /// An item already in its stored form: its JSON is written as it is.
    fn encoded(item: EncodedItem) -> Prepared {
        let (Key { pk, sk }, bytes, index_keys) = item.into_parts();
        Prepared {
            pk,
            sk,
            bytes,
            index_keys,
        }
    }

    fn of(item: &Item) -> Result<Prepared, StoreError> {
        // One pass over the attributes, comparing names: a hashed lookup per key attribute (two
        // for the key, six for the indexes) was a tenth of the CPU beside the writer in a bulk
        // load, most of it for attributes the item does not have.
        let (mut pk, mut sk) = (None, None);
        let mut parts = [(None, None); 3];
        for (name, value) in item {
            let Some(text) = value.as_str() else {
                continue;
            };
            if name == PK {
                pk = Some(text);
            } else if name == SK {
                sk = Some(text);
            } else if name.starts_with("gsi") {
                for (at, index) in Index::SECONDARY.into_iter().enumerate() {
                    let (p, s) = index.key_attributes();
                    if name == p {
                        parts[at].0 = Some(text);
                    } else if name == s {
                        parts[at].1 = Some(text);
                    }
                }
            }
        }
        let missing =
            |name: &str| StoreError::Backend(format!("item without string attribute {name}"));
        let pk = pk.ok_or_else(|| missing(PK))?.to_owned();
        let sk = sk.ok_or_else(|| missing(SK))?.to_owned();
        if item.len() == 2 {
            return Ok(Prepared::bare(Key { pk, sk }));
        }
        let index_keys = Index::SECONDARY
            .into_iter()
            .zip(parts)
            .filter_map(|(index, part)| match part {
                (Some(p), Some(s)) => Some((index, p.to_owned(), s.to_owned())),
                _ => None,
            })
            .collect();
        Ok(Prepared {
            bytes: encode(item)?,
            pk,
            sk,
            index_keys,
        })
    }
}

impl Ready {
    fn put(item: &Item, condition: Option<Condition>) -> Result<Ready, StoreError> {
        Ok(Ready::Put {
            item: Prepared::of(item)?,
            condition,
        })
    }

    fn of(op: WriteOp) -> Result<Ready, StoreError> {
        Ok(match op {
            WriteOp::Put { item, condition } => Ready::put(&item, condition)?,
            WriteOp::PutEncoded { item, condition } => Ready::Put {
                item: Prepared::encoded(item),
                condition,
            },
            WriteOp::Delete { key, condition } => Ready::Delete { key, condition },
            WriteOp::Check { key, condition } => Ready::Check { key, condition },
            WriteOp::Add {
                key,
                attribute,
                delta,
                condition,
            } => Ready::Add {
                key,
                attribute,
                delta,
                condition,
            },
        })
    }

    fn batch(op: BatchOp) -> Result<Ready, StoreError> {
        match op {
            BatchOp::Put(item) => Ready::put(&item, None),
            BatchOp::Delete(key) => Ok(Ready::Delete {
                key,
                condition: None,
            }),
        }
    }

    /// The transaction's writes made ready, then checked on their keys (read off each item once).
    fn transaction(ops: Vec<WriteOp>) -> Result<Vec<Ready>, StoreError> {
        let ready = ops
            .into_iter()
            .map(Ready::of)
            .collect::<Result<Vec<_>, _>>()?;
        let keys: Vec<(&str, &str)> = ready.iter().map(Ready::key).collect();
        validate_transaction_keys(&keys)?;
        Ok(ready)
    }

    /// Unconditional puts of bare keys.
    fn bare_puts(keys: Vec<Key>) -> Vec<Ready> {
        keys.into_iter()
            .map(|key| Ready::Put {
                item: Prepared::bare(key),
                condition: None,
            })
            .collect()
    }

    /// A transaction whose puts leave their entries in the `later` indexes out.
    fn transaction_indexing_later(
        ops: Vec<WriteOp>,
        later: &[Index],
    ) -> Result<Vec<Ready>, StoreError> {
        let mut ready = Ready::transaction(ops)?;
        for op in &mut ready {
            if let Ready::Put { item, .. } = op {
                item.index_keys
                    .retain(|(index, _, _)| !later.contains(index));
            }
        }
        Ok(ready)
    }

    fn condition(&self) -> Option<&Condition> {
        match self {
            Ready::Put { condition, .. }
            | Ready::Delete { condition, .. }
            | Ready::Add { condition, .. } => condition.as_ref(),
            Ready::Check { condition, .. } => Some(condition),
        }
    }

    fn key(&self) -> (&str, &str) {
        match self {
            Ready::Put { item, .. } => (&item.pk, &item.sk),
            Ready::Delete { key, .. } | Ready::Check { key, .. } | Ready::Add { key, .. } => {
                (&key.pk, &key.sk)
            }
        }
    }
}

type Outcomes = Vec<Result<(), StoreError>>;

struct Request {
    job: Job,
    /// False for writes of a deferred view: committed without an fsync, made durable by the
    /// next durable commit.
    durable: bool,
    /// One outcome per transaction of the job (a single one for `Transact` and `Batch`), and
    /// the job itself, so that freeing it is the caller's work, not the writer's.
    reply: oneshot::Sender<(Result<Outcomes, StoreError>, Job)>,
}

/// A store in one file. Cheap to clone; the file is closed when the last clone is dropped.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: mpsc::Sender<Request>,
    durable: bool,
    segments: Arc<Segments>,
}

/// Fewer keys than this go into the B-tree: a segment is for a bulk load's millions, and each
/// one is a read more for every search.
const SEGMENT_MIN_KEYS: usize = 50_000;
/// Past this many segments the two smallest are merged.
const MAX_SEGMENTS: usize = 4;

/// The store's segments, in `<file>.segments/`.
struct Segments {
    dir: PathBuf,
    live: RwLock<Vec<Arc<Segment>>>,
    next: AtomicU64,
    /// One segment written or merged at a time.
    writing: Mutex<()>,
}

impl Segments {
    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:016}.seg"))
    }

    fn id_of(path: &Path) -> Option<u64> {
        path.file_name()?
            .to_str()?
            .strip_suffix(".seg")?
            .parse()
            .ok()
    }

    /// Opens the registered segments and removes files no commit registered (a write or a
    /// merge cut short, or merged-away segments not yet removed).
    fn open(dir: PathBuf, registered: &[u64]) -> Result<Segments, StoreError> {
        let io =
            |e: std::io::Error| StoreError::Backend(format!("segments in {}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(io)?;
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if Segments::id_of(&path).is_none_or(|id| !registered.contains(&id)) {
                std::fs::remove_file(&path).map_err(io)?;
            }
        }
        let segments = Segments {
            live: RwLock::new(Vec::new()),
            next: AtomicU64::new(registered.iter().max().map_or(1, |m| m + 1)),
            writing: Mutex::new(()),
            dir: dir.clone(),
        };
        let mut live = Vec::with_capacity(registered.len());
        for id in registered {
            live.push(Arc::new(Segment::open(&segments.path(*id)).map_err(io)?));
        }
        *segments.live.write().map_err(poisoned)? = live;
        Ok(segments)
    }

    fn snapshot(&self) -> Result<Vec<Arc<Segment>>, StoreError> {
        Ok(self.live.read().map_err(poisoned)?.clone())
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Backend("a segment list lock was poisoned".into())
}

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the store file with the default page cache.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        EmbeddedStore::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store file, creating missing tables. `cache_bytes` bounds the
    /// page cache, which is most of the process's memory.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| {
                StoreError::Backend(format!("cannot open store file {}: {e}", path.display()))
            })?;
        let txn = db.begin_write().map_err(backend)?;
        let registered = {
            txn.open_table(ITEMS).map_err(backend)?;
            for index in Index::SECONDARY {
                txn.open_table(index_table(index)).map_err(backend)?;
            }
            let table = txn.open_table(SEGMENTS).map_err(backend)?;
            table
                .iter()
                .map_err(backend)?
                .map(|entry| entry.map(|(id, _)| id.value()).map_err(backend))
                .collect::<Result<Vec<u64>, _>>()?
        };
        txn.commit().map_err(backend)?;
        let mut dir = path.as_os_str().to_owned();
        dir.push(".segments");
        let segments = Arc::new(Segments::open(PathBuf::from(dir), &registered)?);
        let db = Arc::new(db);
        let (writer, requests) = mpsc::channel::<Request>();
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || writer_loop(&writer_db, requests))
            .map_err(backend)?;
        Ok(EmbeddedStore {
            db,
            writer,
            durable: true,
            segments,
        })
    }

    /// Sends a job and waits on this thread (a blocking task's): always durable.
    fn submit_blocking(&self, job: Job) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Request {
                job,
                durable: true,
                reply,
            })
            .map_err(|_| StoreError::Backend("store writer stopped".into()))?;
        let (outcomes, _job) = answer
            .blocking_recv()
            .map_err(|_| StoreError::Backend("store writer stopped".into()))?;
        outcomes?
            .pop()
            .unwrap_or_else(|| Err(backend("lost outcome")))
    }

    /// Writes `first` and then `rest` as one new segment and registers it; keys a segment
    /// cannot hold go to the B-tree. Then merges while there are too many segments.
    fn write_segment(&self, first: Vec<Key>, rest: SortedKeys) -> Result<(), StoreError> {
        let segments = &self.segments;
        let _writing = segments.writing.lock().map_err(poisoned)?;
        let id = segments.next.fetch_add(1, Ordering::Relaxed);
        let path = segments.path(id);
        let io =
            |e: std::io::Error| StoreError::Backend(format!("segment {}: {e}", path.display()));
        let mut misfits = Vec::new();
        let written = (|| {
            let mut writer = SegmentWriter::create(&path).map_err(io)?;
            for key in first.into_iter().map(Ok).chain(rest) {
                let key = key?;
                if segment::fits(&key) {
                    writer.push(&key).map_err(io)?;
                } else {
                    misfits.push(key);
                }
            }
            writer.finish().map_err(io)
        })()
        .inspect_err(|_| {
            // Not registered: it would go at the next open, but need not wait for it.
            let _ = std::fs::remove_file(&path);
        })?;
        sync_dir(&segments.dir)?;
        self.submit_blocking(Job::Segments {
            add: id,
            remove: Vec::new(),
        })?;
        segments
            .live
            .write()
            .map_err(poisoned)?
            .push(Arc::new(written));
        if !misfits.is_empty() {
            self.submit_blocking(Job::Batch(Ready::bare_puts(misfits)))?;
        }
        while segments.snapshot()?.len() > MAX_SEGMENTS {
            self.merge_smallest()?;
        }
        Ok(())
    }

    /// Merges the two smallest segments into one; the merged-away files go once the commit
    /// that drops them is durable (before, a crash keeps them and drops the new one).
    fn merge_smallest(&self) -> Result<(), StoreError> {
        let segments = &self.segments;
        let mut live = segments.snapshot()?;
        live.sort_by_key(|s| s.bytes());
        let (a, b) = (live[0].clone(), live[1].clone());
        let id = segments.next.fetch_add(1, Ordering::Relaxed);
        let path = segments.path(id);
        let io =
            |e: std::io::Error| StoreError::Backend(format!("segment {}: {e}", path.display()));
        let merged = segment::merge(&[&a, &b], &path).map_err(io)?;
        sync_dir(&segments.dir)?;
        let gone: Vec<u64> = [&a, &b]
            .iter()
            .filter_map(|s| Segments::id_of(s.path()))
            .collect();
        self.submit_blocking(Job::Segments {
            add: id,
            remove: gone,
        })?;
        {
            let mut live = segments.live.write().map_err(poisoned)?;
            live.retain(|s| !Arc::ptr_eq(s, &a) && !Arc::ptr_eq(s, &b));
            live.push(Arc::new(merged));
        }
        for old in [a, b] {
            // Readers holding it keep their open file; a leftover goes at the next open.
            let _ = std::fs::remove_file(old.path());
        }
        Ok(())
    }

    async fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.submit_each(job)
            .await?
            .pop()
            .unwrap_or_else(|| Err(backend("lost outcome")))
    }

    async fn submit_each(&self, job: Job) -> Result<Outcomes, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Request {
                job,
                durable: self.durable,
                reply,
            })
            .map_err(|_| StoreError::Backend("store writer stopped".into()))?;
        let (outcomes, _job) = answer
            .await
            .map_err(|_| StoreError::Backend("store writer stopped".into()))?;
        outcomes
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(backend)?
    }
}

fn writer_loop(db: &Database, requests: mpsc::Receiver<Request>) {
    let mut changed = Changed::default();
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_COMMIT_LIMIT {
            match requests.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let mut outcomes = Vec::with_capacity(group.len());
        let committed = (|| -> Result<(), StoreError> {
            let mut txn = db.begin_write().map_err(backend)?;
            if group.iter().all(|r| !r.durable) {
                txn.set_durability(redb::Durability::None)
                    .map_err(backend)?;
            }
            {
                let mut tables = Tables::open(&txn, &mut changed)?;
                for request in &group {
                    tables.staging = matches!(&request.job,
                        Job::TransactEach(each) if each.len() >= STAGING_MIN_TRANSACTIONS);
                    outcomes.push(match &request.job {
                        Job::Transact(ops) => vec![tables.transact(ops)],
                        Job::Batch(ops) => vec![tables.batch(ops)],
                        Job::TransactEach(each) => each
                            .iter()
                            .map(|ops| match ops {
                                Ok(ops) => tables.transact(ops),
                                Err(refused) => Err(refused.clone()),
                            })
                            .collect(),
                        Job::Index(entries) => vec![tables.index_entries(entries)],
                        Job::Segments { add, remove } => vec![register(&txn, *add, remove)],
                    });
                }
                tables.write_added()?;
                tables.write_fresh()?;
            }
            txn.commit().map_err(backend)
        })();
        let mut outcomes = outcomes.into_iter();
        for request in group {
            let outcome = match &committed {
                Ok(()) => outcomes.next().ok_or_else(|| backend("lost outcome")),
                Err(e) => Err(e.clone()),
            };
            let _ = request.reply.send((outcome, request.job));
        }
    }
}

/// Makes segment `add` part of the store and drops `remove` from it.
fn register(txn: &redb::WriteTransaction, add: u64, remove: &[u64]) -> Result<(), StoreError> {
    let mut table = txn.open_table(SEGMENTS).map_err(backend)?;
    table.insert(add, ()).map_err(backend)?;
    for id in remove {
        table.remove(*id).map_err(backend)?;
    }
    Ok(())
}

/// Makes a new file's name durable in its directory.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::Backend(format!("cannot sync {}: {e}", dir.display())))
}

struct Tables<'t> {
    items: Table<'t, (&'static str, &'static str), &'static [u8]>,
    indexes: Vec<(Index, Table<'t, IndexKey, ()>)>,
    /// Items that `Add`s changed in this commit, written once when it ends: a bulk load adds to
    /// the same few counters once per customer, and reading, decoding, encoding and writing one
    /// each time cost a 100,000-row import 13.6 s of CPU against 12.3 s this way.
    added: Added,
    /// Items whose keys the table did not hold, written in key order when the commit ends.
    fresh: Fresh<'t>,
    /// Whether new items wait in `fresh`: for the many transactions of a bulk load, whose new
    /// keys come in runs. Those of a single transaction fall at scattered places (search
    /// entries, markers), where a cursor per key cost more than an insert.
    staging: bool,
    changed: &'t mut Changed,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction, changed: &'t mut Changed) -> Result<Self, StoreError> {
        let items = txn.open_table(ITEMS).map_err(backend)?;
        let mut indexes = Vec::new();
        for index in Index::SECONDARY {
            indexes.push((index, txn.open_table(index_table(index)).map_err(backend)?));
        }
        Ok(Tables {
            items,
            indexes,
            added: Added::default(),
            fresh: Fresh::default(),
            staging: false,
            changed,
        })
    }

    /// Writes the items `Add`s changed: before the commit, or early when there are many.
    fn write_added(&mut self) -> Result<(), StoreError> {
        for (_, item) in std::mem::take(&mut self.added.0) {
            self.put(Cow::Owned(Prepared::of(&item)?))?;
        }
        Ok(())
    }

    /// Writes the commit's new items, and then their index entries, in key order (see
    /// [`insert_in_runs`]).
    fn write_fresh(&mut self) -> Result<(), StoreError> {
        if self.fresh.by_key.is_empty() {
            return Ok(());
        }
        let fresh = std::mem::take(&mut self.fresh);
        let items: Vec<((&str, &str), &[u8])> = fresh
            .entries()
            .map(|(pk, sk, staged)| ((pk, sk), staged.bytes.as_ref()))
            .collect();
        insert_in_runs(&mut self.items, &items, false)?;
        self.write_index_rows(fresh.entries().flat_map(|(pk, sk, staged)| {
            staged
                .index_keys
                .iter()
                .map(move |(index, ipk, isk)| (*index, (ipk.as_str(), isk.as_str(), pk, sk)))
        }))
    }

    /// Writes index entries, each index's in key order (see [`insert_in_runs`]); an entry
    /// already there stays as it is.
    fn write_index_rows<'a>(
        &mut self,
        entries: impl Iterator<Item = (Index, IndexRowKey<'a>)>,
    ) -> Result<(), StoreError> {
        let mut rows: Vec<Vec<(IndexRowKey, ())>> =
            self.indexes.iter().map(|_| Vec::new()).collect();
        for (index, key) in entries {
            if let Some(at) = self.indexes.iter().position(|(i, _)| *i == index) {
                rows[at].push((key, ()));
            }
        }
        for ((_, table), mut rows) in self.indexes.iter_mut().zip(rows) {
            // Entries a bulk load hands back come in order already: then this is one pass.
            rows.sort_unstable();
            insert_in_runs(table, &rows, true)?;
        }
        Ok(())
    }

    /// The item adds change in this commit: the one in hand, or the stored one (or a bare key)
    /// the first time.
    fn added_item(&mut self, key: &Key) -> Result<&mut Item, StoreError> {
        let at = match self.added.position(&key.pk, &key.sk) {
            Some(at) => at,
            None => {
                if self.added.0.len() >= ADDED_LIMIT {
                    self.write_added()?;
                }
                let item = self.load(key)?.unwrap_or_else(|| bare_item(key));
                self.added.0.push((key.clone(), item));
                self.added.0.len() - 1
            }
        };
        Ok(&mut self.added.0[at].1)
    }

    fn load(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        if let Some(bytes) = self.fresh.get(&key.pk, &key.sk) {
            return decode(key, bytes).map(Some);
        }
        match self
            .items
            .get((key.pk.as_str(), key.sk.as_str()))
            .map_err(backend)?
        {
            Some(bytes) => decode(key, bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `condition` holds for the item at (pk, sk); only `Equals` needs the item
    /// itself, the others only whether it is there.
    fn holds(&self, pk: &str, sk: &str, condition: &Condition) -> Result<bool, StoreError> {
        if let Some(item) = self.added.get(pk, sk) {
            return Ok(condition.holds(Some(item)));
        }
        if let Some(bytes) = self.fresh.get(pk, sk) {
            return Ok(if condition.reads_attributes() {
                condition.holds(Some(&decode_parts(pk, sk, bytes)?))
            } else {
                condition.holds(Some(&Item::new()))
            });
        }
        let found = self.items.get((pk, sk)).map_err(backend)?;
        Ok(match found {
            Some(bytes) if condition.reads_attributes() => {
                condition.holds(Some(&decode_parts(pk, sk, bytes.value())?))
            }
            found => condition.holds(found.map(|_| Item::new()).as_ref()),
        })
    }

    fn transact(&mut self, ops: &'t [Ready]) -> Result<(), StoreError> {
        // Every condition is checked before anything is written, so a failed one writes nothing.
        for (index, op) in ops.iter().enumerate() {
            let (pk, sk) = op.key();
            if let Some(condition) = op.condition()
                && !self.holds(pk, sk, condition)?
            {
                return Err(StoreError::ConditionFailed { index });
            }
        }
        for op in ops {
            self.apply(op)?;
        }
        Ok(())
    }

    /// Writes each entry whose item still carries it. Only items that changed since the store
    /// was opened are read to find out: the others are as they were written, and reading each
    /// at its random place cost a 100,000-row import 1.9 s of its 9.5.
    fn index_entries(&mut self, entries: &[IndexEntry]) -> Result<(), StoreError> {
        let mut kept = Vec::with_capacity(entries.len());
        for e in entries {
            let (pk, sk) = (e.key.pk.as_str(), e.key.sk.as_str());
            if !self.changed.may_hold(pk, sk) || self.carries(e)? {
                kept.push((e.index, (e.partition.as_str(), e.sort.as_str(), pk, sk)));
            }
        }
        self.write_index_rows(kept.into_iter())
    }

    /// Whether the entry's item is there and carries it.
    fn carries(&self, entry: &IndexEntry) -> Result<bool, StoreError> {
        let wanted = Some((entry.partition.as_str(), entry.sort.as_str()));
        let holds = |item: &Item| entry.index.key_of(item) == wanted;
        Ok(match self.added.get(&entry.key.pk, &entry.key.sk) {
            Some(item) => holds(item),
            None => self.load(&entry.key)?.is_some_and(|item| holds(&item)),
        })
    }

    fn batch(&mut self, ops: &'t [Ready]) -> Result<(), StoreError> {
        ops.iter().try_for_each(|op| self.apply(op))
    }

    fn apply(&mut self, op: &'t Ready) -> Result<(), StoreError> {
        match op {
            Ready::Put {
                item,
                condition: Some(Condition::NotExists),
            } if self.staging => self.put_new(Cow::Borrowed(item)),
            Ready::Put { item, .. } => self.put(Cow::Borrowed(item)),
            Ready::Delete { key, .. } => self.delete(key),
            Ready::Check { .. } => Ok(()),
            Ready::Add {
                key,
                attribute,
                delta,
                ..
            } => {
                let item = self.added_item(key)?;
                let now = item.get(attribute).and_then(Value::as_i64).unwrap_or(0);
                item.insert(attribute.clone(), (now + delta).into());
                Ok(())
            }
        }
    }

    /// Writes the item; the value it replaces (from this commit or from the table) is decoded,
    /// to take its index entries away. While `staging`, a key the table does not hold yet is
    /// kept for [`Tables::write_fresh`].
    fn put(&mut self, item: Cow<'t, Prepared>) -> Result<(), StoreError> {
        let (pk, sk) = (item.pk.as_str(), item.sk.as_str());
        let (staged, replaced) = match self.fresh.get(pk, sk) {
            Some(bytes) => (true, Some(decode_parts(pk, sk, bytes)?)),
            None if self.staging && self.items.get((pk, sk)).map_err(backend)?.is_none() => {
                return self.put_new(item);
            }
            None => {
                let replaced = self
                    .items
                    .insert((pk, sk), item.bytes.as_slice())
                    .map_err(backend)?
                    .map(|old| decode_parts(pk, sk, old.value()))
                    .transpose()?;
                (false, replaced)
            }
        };
        self.added.forget(pk, sk);
        if let Some(old) = replaced {
            self.unindex(pk, sk, &old)?;
        }
        if staged {
            // Its index entries wait with it.
            self.fresh.insert(item);
            Ok(())
        } else {
            self.index(&item)
        }
    }

    /// Writes an item whose key is in neither the table nor this commit (its `NotExists`
    /// held, or `put` looked). Past `FRESH_LIMIT` bytes, the commit's new items are written
    /// at once, so that a large commit does not hold them all.
    fn put_new(&mut self, item: Cow<'t, Prepared>) -> Result<(), StoreError> {
        self.added.forget(&item.pk, &item.sk);
        self.fresh.insert(item);
        if self.fresh.bytes > FRESH_LIMIT {
            self.write_fresh()?;
        }
        Ok(())
    }

    /// Writes the item's secondary index entries.
    fn index(&mut self, item: &Prepared) -> Result<(), StoreError> {
        let (pk, sk) = (item.pk.as_str(), item.sk.as_str());
        for (index, ipk, isk) in &item.index_keys {
            if let Some((_, table)) = self.indexes.iter_mut().find(|(i, _)| i == index) {
                table
                    .insert((ipk.as_str(), isk.as_str(), pk, sk), ())
                    .map_err(backend)?;
            }
        }
        Ok(())
    }

    fn delete(&mut self, key: &Key) -> Result<(), StoreError> {
        self.added.forget(&key.pk, &key.sk);
        let removed = match self.fresh.remove(&key.pk, &key.sk) {
            Some(bytes) => Some(decode(key, &bytes)?),
            None => self
                .items
                .remove((key.pk.as_str(), key.sk.as_str()))
                .map_err(backend)?
                .map(|old| decode(key, old.value()))
                .transpose()?,
        };
        if let Some(old) = removed {
            self.unindex(&key.pk, &key.sk, &old)?;
        }
        Ok(())
    }

    /// Takes a replaced or deleted item out of its indexes, and notes it as changed.
    fn unindex(&mut self, pk: &str, sk: &str, old: &Item) -> Result<(), StoreError> {
        for (index, table) in &mut self.indexes {
            if let Some((ipk, isk)) = index.key_of(old) {
                table.remove((ipk, isk, pk, sk)).map_err(backend)?;
                self.changed.note(pk, sk);
            }
        }
        Ok(())
    }
}

/// Indexed items replaced or deleted since the store was opened (as hashes of their keys), so
/// that index entries a bulk load hands back are checked against their item only when it may
/// have changed. Past `CHANGED_LIMIT` items it stops counting and every entry is checked.
/// A commit that fails leaves its notes: a note too many costs a read, never a wrong entry.
#[derive(Default)]
struct Changed {
    keys: std::collections::HashSet<u64>,
    overflowed: bool,
}

/// Some 1.2 MB of hashes: a long day of edits in a busy admin.
const CHANGED_LIMIT: usize = 65_536;

impl Changed {
    fn hash(pk: &str, sk: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (pk, sk).hash(&mut hasher);
        hasher.finish()
    }

    fn note(&mut self, pk: &str, sk: &str) {
        if self.overflowed {
            return;
        }
        if self.keys.len() >= CHANGED_LIMIT {
            self.overflowed = true;
            self.keys = Default::default();
            return;
        }
        self.keys.insert(Changed::hash(pk, sk));
    }

    fn may_hold(&self, pk: &str, sk: &str) -> bool {
        self.overflowed || self.keys.contains(&Changed::hash(pk, sk))
    }
}

/// Items changed by `Add`s and not written yet. A commit touches few of them (a counter's
/// shards, the groups of a batch), so a short list searched by `&str` costs the writes around
/// it less than hashing every key did; past `ADDED_LIMIT` items they are written out early.
#[derive(Default)]
struct Added(Vec<(Key, Item)>);

const ADDED_LIMIT: usize = 64;

impl Added {
    fn position(&self, pk: &str, sk: &str) -> Option<usize> {
        self.0.iter().position(|(k, _)| k.pk == pk && k.sk == sk)
    }

    fn get(&self, pk: &str, sk: &str) -> Option<&Item> {
        self.position(pk, sk).map(|at| &self.0[at].1)
    }

    /// A put or delete of the same key replaces what the adds made.
    fn forget(&mut self, pk: &str, sk: &str) {
        if let Some(at) = self.position(pk, sk) {
            self.0.swap_remove(at);
        }
    }
}

/// A commit's items under keys the table did not hold, by pk then sk (the table's order), with
/// their index entries, which wait with them. What the commit's own writes hold is borrowed
/// from them, not copied.
#[derive(Default)]
struct Fresh<'t> {
    by_key: BTreeMap<Cow<'t, str>, FreshPartition<'t>>,
    bytes: usize,
}

/// The new items of one pk, by sk.
type FreshPartition<'t> = BTreeMap<Cow<'t, str>, Staged<'t>>;

struct Staged<'t> {
    bytes: Cow<'t, [u8]>,
    index_keys: Cow<'t, [(Index, String, String)]>,
}

/// Transactions handed over together from which their new items wait (see `Tables::staging`):
/// a bulk load hands over hundreds, the API one.
const STAGING_MIN_TRANSACTIONS: usize = 16;

/// Bytes of new items a commit holds before it writes them.
const FRESH_LIMIT: usize = 4 << 20;

impl<'t> Fresh<'t> {
    fn get(&self, pk: &str, sk: &str) -> Option<&[u8]> {
        self.by_key
            .get(pk)?
            .get(sk)
            .map(|staged| staged.bytes.as_ref())
    }

    fn insert(&mut self, item: Cow<'t, Prepared>) {
        let (pk, sk, staged) = match item {
            Cow::Borrowed(p) => (
                Cow::Borrowed(p.pk.as_str()),
                Cow::Borrowed(p.sk.as_str()),
                Staged {
                    bytes: Cow::Borrowed(p.bytes.as_slice()),
                    index_keys: Cow::Borrowed(p.index_keys.as_slice()),
                },
            ),
            Cow::Owned(p) => (
                Cow::Owned(p.pk),
                Cow::Owned(p.sk),
                Staged {
                    bytes: Cow::Owned(p.bytes),
                    index_keys: Cow::Owned(p.index_keys),
                },
            ),
        };
        self.bytes += staged.bytes.len();
        if let Some(old) = self.by_key.entry(pk).or_default().insert(sk, staged) {
            self.bytes -= old.bytes.len();
        }
    }

    fn remove(&mut self, pk: &str, sk: &str) -> Option<Cow<'t, [u8]>> {
        let by_sk = self.by_key.get_mut(pk)?;
        let staged = by_sk.remove(sk)?;
        if by_sk.is_empty() {
            self.by_key.remove(pk);
        }
        self.bytes -= staged.bytes.len();
        Some(staged.bytes)
    }

    /// (pk, sk, item) in key order.
    fn entries(&self) -> impl Iterator<Item = (&str, &str, &Staged<'t>)> {
        self.by_key.iter().flat_map(|(pk, by_sk)| {
            by_sk
                .iter()
                .map(move |(sk, staged)| (pk.as_ref(), sk.as_ref(), staged))
        })
    }
}

/// Inserts `entries` (in key order) into `table`, each run that falls between two neighbours
/// of the table through one cursor: redb packs a run into full leaves, where inserting keys
/// one by one splits every leaf in half as it fills and left a bulk load's leaves 45 % full
/// on average (twice the pages to write, half of them written again at the next split). A key
/// the table holds already is written over when `overwrite`, and refused otherwise.
fn insert_in_runs<'k, K: redb::Key + 'static, V: redb::Value + 'static>(
    table: &mut Table<'_, K, V>,
    entries: &[(K::SelfType<'k>, V::SelfType<'k>)],
    overwrite: bool,
) -> Result<(), StoreError> {
    let mut at = 0;
    while let Some((key, value)) = entries.get(at) {
        at += 1;
        let mut cursor = table
            .lower_bound_mut(Bound::Included(key))
            .map_err(backend)?;
        match cursor.insert_before(key, value) {
            Ok(()) => {}
            // Only a key equal to the next one is out of order here: it is there already.
            Err(redb::CursorError::UnorderedKey) if overwrite => {
                cursor.close().map_err(backend)?;
                table.insert(key, value).map_err(backend)?;
                continue;
            }
            Err(e) => return Err(backend(e)),
        }
        // The run goes on up to the table's next key.
        while let Some((key, value)) = entries.get(at) {
            match cursor.insert_before(key, value) {
                Ok(()) => at += 1,
                Err(redb::CursorError::UnorderedKey) => break,
                Err(e) => return Err(backend(e)),
            }
        }
        cursor.close().map_err(backend)?;
    }
    Ok(())
}

/// Items are read far more often than written: the map is sized once up front rather than
/// grown key by key (which reallocated several times per item, the bulk of a list's cost).
struct ItemVisitor;

impl<'de> serde::de::Visitor<'de> for ItemVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a stored item (a JSON object)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Item, A::Error> {
        let mut item = Item::with_capacity(access.size_hint().unwrap_or(ITEM_CAPACITY));
        while let Some((name, value)) = access.next_entry::<String, Value>()? {
            item.insert(name, value);
        }
        Ok(item)
    }
}

/// Attributes of a typical item (a customer has about 20).
const ITEM_CAPACITY: usize = 24;

/// The stored value leaves out `pk` and `sk`: the key already holds them, and they were a fifth
/// of every item on disk. Files written before this still read: the key's values win.
fn encode(item: &Item) -> Result<Vec<u8>, StoreError> {
    struct WithoutKey<'a>(&'a Item);
    impl serde::Serialize for WithoutKey<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap as _;
            let mut map = serializer.serialize_map(None)?;
            for (name, value) in self.0 {
                if name != PK && name != SK {
                    map.serialize_entry(name, value)?;
                }
            }
            map.end()
        }
    }
    // Sized for a typical item up front rather than grown from empty.
    let mut bytes = Vec::with_capacity(ENCODED_CAPACITY);
    serde_json::to_writer(&mut bytes, &WithoutKey(item)).map_err(backend)?;
    Ok(bytes)
}

/// Bytes of a typical encoded item (a customer's are about 500).
const ENCODED_CAPACITY: usize = 512;

fn decode(key: &Key, bytes: &[u8]) -> Result<Item, StoreError> {
    decode_parts(&key.pk, &key.sk, bytes)
}

fn decode_parts(pk: &str, sk: &str, bytes: &[u8]) -> Result<Item, StoreError> {
    use serde::Deserializer as _;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut item = de
        .deserialize_map(ItemVisitor)
        .and_then(|item| de.end().map(|()| item))
        .map_err(|e| StoreError::Backend(format!("corrupt item {pk}/{sk}: {e}")))?;
    item.insert(PK.into(), pk.into());
    item.insert(SK.into(), sk.into());
    Ok(item)
}

/// Reads of at most this many items run on the calling task: they take tens of microseconds,
/// less than handing them to the blocking pool and back (two thread switches per request).
const INLINE_READ_ITEMS: usize = 64;

fn read_keys(db: &Database, keys: &[Key]) -> Result<Vec<Item>, StoreError> {
    let txn = db.begin_read().map_err(backend)?;
    let table = txn.open_table(ITEMS).map_err(backend)?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(v) = table
            .get((key.pk.as_str(), key.sk.as_str()))
            .map_err(backend)?
        {
            out.push(decode(key, v.value())?);
        }
    }
    Ok(out)
}

fn start_part<'a>(
    start: &'a Option<super::KeyMap>,
    name: &str,
) -> Result<Option<&'a str>, StoreError> {
    match start {
        None => Ok(None),
        Some(map) => map
            .get(name)
            .map(|v| Some(v.as_str()))
            .ok_or_else(|| StoreError::Invalid(format!("start key lacks {name}"))),
    }
}

/// Reads up to `limit` entries of a range in either direction, decoding each.
fn collect_range<K: redb::Key + 'static, V: redb::Value + 'static>(
    range: redb::Range<'_, K, V>,
    forward: bool,
    limit: usize,
    mut decode_entry: impl FnMut(
        redb::AccessGuard<'_, K>,
        redb::AccessGuard<'_, V>,
    ) -> Result<Item, StoreError>,
) -> Result<Vec<Item>, StoreError> {
    let entries: Box<dyn Iterator<Item = _>> = if forward {
        Box::new(range)
    } else {
        Box::new(range.rev())
    };
    let mut found = Vec::new();
    for entry in entries {
        let (key, value) = entry.map_err(backend)?;
        found.push(decode_entry(key, value)?);
        if found.len() >= limit {
            break;
        }
    }
    Ok(found)
}

fn run_query(
    db: &Database,
    segments: &[Arc<Segment>],
    query: &Query,
) -> Result<QueryPage, StoreError> {
    validate_query(query)?;
    let txn = db.begin_read().map_err(backend)?;
    let items = txn.open_table(ITEMS).map_err(backend)?;
    let (lo, hi) = sort_bounds(&query.sort);
    let lo = lo.unwrap_or_default();
    let hi = hi.unwrap_or_else(|| MAX_KEY.to_owned());
    let part = query.partition.as_str();
    let limit = query.limit.max(1);
    let found = if query.index == Index::Main {
        let start_sk = start_part(&query.start_after, SK)?;
        let (lower, upper) = match (start_sk, query.forward) {
            (Some(s), true) => (
                Bound::Excluded((part, s)),
                Bound::Included((part, hi.as_str())),
            ),
            (Some(s), false) => (
                Bound::Included((part, lo.as_str())),
                Bound::Excluded((part, s)),
            ),
            (None, _) => (
                Bound::Included((part, lo.as_str())),
                Bound::Included((part, hi.as_str())),
            ),
        };
        let range = items
            .range::<(&str, &str)>((lower, upper))
            .map_err(backend)?;
        let mut found = collect_range(range, query.forward, limit, |key, value| {
            let (pk, sk) = key.value();
            decode_parts(pk, sk, value.value())
        })?;
        let wanted = segment::Range {
            pk: part,
            lo: &lo,
            hi: &hi,
            after: start_sk,
            forward: query.forward,
            limit,
        };
        for segment in segments {
            let keys = segment
                .range(&wanted)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            found = with_keys(found, keys, query.forward, limit);
        }
        found
    } else {
        let table = txn.open_table(index_table(query.index)).map_err(backend)?;
        let (_, is) = query.index.key_attributes();
        let start = match &query.start_after {
            None => None,
            Some(_) => Some((
                start_part(&query.start_after, is)?.unwrap_or_default(),
                start_part(&query.start_after, PK)?.unwrap_or_default(),
                start_part(&query.start_after, SK)?.unwrap_or_default(),
            )),
        };
        let low_full = (part, lo.as_str(), "", "");
        let high_full = (part, hi.as_str(), MAX_KEY, MAX_KEY);
        let (lower, upper) = match (start, query.forward) {
            (Some((s, p, k)), true) => {
                (Bound::Excluded((part, s, p, k)), Bound::Included(high_full))
            }
            (Some((s, p, k)), false) => {
                (Bound::Included(low_full), Bound::Excluded((part, s, p, k)))
            }
            (None, _) => (Bound::Included(low_full), Bound::Included(high_full)),
        };
        let range = table
            .range::<(&str, &str, &str, &str)>((lower, upper))
            .map_err(backend)?;
        collect_range(range, query.forward, limit, |key, _| {
            let (_, _, pk, sk) = key.value();
            match items.get((pk, sk)).map_err(backend)? {
                Some(value) => decode_parts(pk, sk, value.value()),
                None => Err(StoreError::Backend(format!(
                    "index entry without item {pk}/{sk}"
                ))),
            }
        })?
    };
    let last_key = if found.len() >= limit {
        found.last().map(|item| key_map(item, query.index))
    } else {
        None
    };
    Ok(QueryPage {
        items: found,
        last_key,
    })
}

/// A page of items and keys of a segment, both in reading order within one partition, merged:
/// the first `limit`, an item winning over the same key.
fn with_keys(items: Vec<Item>, keys: Vec<Key>, forward: bool, limit: usize) -> Vec<Item> {
    if keys.is_empty() {
        return items;
    }
    fn sk_of(item: &Item) -> &str {
        item.get(SK).and_then(Value::as_str).unwrap_or_default()
    }
    let mut merged = Vec::with_capacity(limit.min(items.len() + keys.len()));
    let mut items = items.into_iter().peekable();
    let mut keys = keys.into_iter().peekable();
    while merged.len() < limit {
        let next = match (items.peek(), keys.peek()) {
            (None, None) => break,
            (Some(_), None) => items.next(),
            (None, Some(_)) => keys.next().map(|k| bare_item(&k)),
            (Some(item), Some(key)) => {
                let sk = sk_of(item);
                let first = if forward {
                    sk.cmp(key.sk.as_str())
                } else {
                    key.sk.as_str().cmp(sk)
                };
                match first {
                    std::cmp::Ordering::Less => items.next(),
                    std::cmp::Ordering::Equal => {
                        keys.next();
                        items.next()
                    }
                    std::cmp::Ordering::Greater => keys.next().map(|k| bare_item(&k)),
                }
            }
        };
        merged.extend(next);
    }
    merged
}

#[async_trait]
impl KvStore for EmbeddedStore {
    fn deferred(&self) -> Option<Arc<dyn KvStore>> {
        Some(Arc::new(EmbeddedStore {
            durable: false,
            ..self.clone()
        }))
    }

    fn transactions_are_cheap(&self) -> bool {
        true
    }

    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        // A point read takes microseconds: less than handing it to the blocking pool.
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(ITEMS).map_err(backend)?;
        match table
            .get((key.pk.as_str(), key.sk.as_str()))
            .map_err(backend)?
        {
            Some(v) => decode(key, v.value()).map(Some),
            None => Ok(None),
        }
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError> {
        if keys.len() <= INLINE_READ_ITEMS {
            return read_keys(&self.db, keys);
        }
        let keys = keys.to_vec();
        self.read(move |db| read_keys(db, &keys)).await
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.submit(Job::Transact(Ready::transaction(ops)?)).await
    }

    async fn batch_write(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let ready = ops
            .into_iter()
            .map(Ready::batch)
            .collect::<Result<_, _>>()?;
        self.submit(Job::Batch(ready)).await
    }

    async fn put_keys(&self, keys: Vec<Key>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.submit(Job::Batch(Ready::bare_puts(keys))).await
    }

    async fn transact_each(
        &self,
        transactions: Vec<Vec<WriteOp>>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        if transactions.is_empty() {
            return Ok(Vec::new());
        }
        let ready = transactions.into_iter().map(Ready::transaction).collect();
        self.submit_each(Job::TransactEach(ready)).await
    }

    async fn transact_each_indexing_later(
        &self,
        transactions: Vec<Vec<WriteOp>>,
        later: &[Index],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        if transactions.is_empty() {
            return Ok(Vec::new());
        }
        let ready = transactions
            .into_iter()
            .map(|ops| Ready::transaction_indexing_later(ops, later))
            .collect();
        self.submit_each(Job::TransactEach(ready)).await
    }

    async fn write_index_entries(&self, entries: Vec<IndexEntry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.submit(Job::Index(entries)).await
    }

    async fn query(&self, query: &Query) -> Result<QueryPage, StoreError> {
        let segments = self.segments_for(std::slice::from_ref(query))?;
        if query.limit <= INLINE_READ_ITEMS {
            return run_query(&self.db, &segments, query);
        }
        let query = query.clone();
        self.read(move |db| run_query(db, &segments, &query)).await
    }

    async fn query_many(&self, queries: &[Query]) -> Result<Vec<QueryPage>, StoreError> {
        let segments = self.segments_for(queries)?;
        if queries.iter().map(|q| q.limit).sum::<usize>() <= INLINE_READ_ITEMS {
            return queries
                .iter()
                .map(|q| run_query(&self.db, &segments, q))
                .collect();
        }
        let queries = queries.to_vec();
        self.read(move |db| {
            queries
                .iter()
                .map(|q| run_query(db, &segments, q))
                .collect()
        })
        .await
    }

    async fn put_sorted_keys(&self, mut keys: SortedKeys) -> Result<(), StoreError> {
        let mut first = Vec::with_capacity(SEGMENT_MIN_KEYS);
        for key in keys.by_ref() {
            first.push(key?);
            if first.len() >= SEGMENT_MIN_KEYS {
                let store = self.clone();
                return tokio::task::spawn_blocking(move || store.write_segment(first, keys))
                    .await
                    .map_err(backend)?;
            }
        }
        // Few keys: into the B-tree, in chunks a commit takes in stride.
        for chunk in first.chunks(SMALL_KEYS_CHUNK) {
            self.put_keys(chunk.to_vec()).await?;
        }
        Ok(())
    }
}

/// Keys per commit when a few sorted keys go into the B-tree.
const SMALL_KEYS_CHUNK: usize = 5_000;

impl EmbeddedStore {
    /// The segments a query may need: only a main-table query reads them.
    fn segments_for(&self, queries: &[Query]) -> Result<Vec<Arc<Segment>>, StoreError> {
        if queries.iter().all(|q| q.index != Index::Main) {
            return Ok(Vec::new());
        }
        self.segments.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_items_are_noted_until_too_many_then_all_count_as_changed() {
        let mut changed = Changed::default();
        changed.note("CUS#1", "#PROFILE");
        assert!(changed.may_hold("CUS#1", "#PROFILE"));
        assert!(!changed.may_hold("CUS#2", "#PROFILE"));
        for i in 0..CHANGED_LIMIT {
            changed.note(&format!("X#{i}"), "x");
        }
        assert!(changed.may_hold("CUS#2", "#PROFILE"), "past the limit");
        assert!(changed.keys.is_empty(), "its memory given back");
    }
}
