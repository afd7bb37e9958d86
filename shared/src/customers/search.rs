//! The index behind `q`: case-insensitive substring search over email, names, company and phone.
//!
//! Every searchable value is lower-cased and its suffixes starting at every `STRIDE`-th character
//! are stored, truncated to `KEEP` characters, as items `SFX#<first two chars>` / `<suffix>␁<id>`.
//! A query of at least `STRIDE + 1` characters that occurs in a value at position `s` covers an
//! indexed position `a` with `s ≤ a < s + STRIDE`, so the suffix at `a` starts with `q[a - s..]`:
//! `STRIDE` prefix range reads find every match. Candidates are then checked against the
//! customer itself, so extra (stale) entries never show up in results — the index only has to
//! be a superset, which is what the write order in the repository guarantees.
//! Shorter queries are answered by a pass over the live customers.
//!
//! A bulk load on the embedded file writes no entries with its customers, only a marker per
//! customer under `SEARCH#PENDING` (one key at the end of a range, where 19 entries scattered
//! over the index cost the load four fifths of its time). Search reads the marked customers
//! too, so it stays exact; [`index_pending`](super::CustomerRepository::index_pending) then
//! writes their entries in key order (`KvStore::put_sorted_keys`: a large load becomes one
//! sorted segment beside the B-tree, where a later delete does not reach — harmless, as every
//! candidate is checked) and takes the markers away.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

use super::{Customer, normalize_text};
use crate::error::{DomainError, DomainResult};
use crate::sort::ExternalSort;
use crate::store::{Index, IndexEntry, Item, Key, KvStore, Query, SortCondition};

/// Every `STRIDE`-th suffix is indexed: a third of all suffixes.
pub const STRIDE: usize = 3;
/// Characters kept per indexed suffix; longer queries are narrowed by their first `KEEP`.
const KEEP: usize = 24;
/// Shortest query the index answers.
pub const MIN_QUERY_CHARS: usize = STRIDE + 1;
const SEP: char = '\u{1}';
const SEP_STR: &str = "\u{1}";
const PAGE: usize = 1000;

fn partition(suffix: &str) -> String {
    let head: String = suffix.chars().take(2).collect();
    partition_of_head(&head)
}

/// The partition of the suffixes that start with `head` (their first two characters).
fn partition_of_head(head: &str) -> String {
    format!("{PARTITION}{head}")
}

/// What every search entry's partition starts with.
const PARTITION: &str = "SFX#";

/// The index keys of a live customer (none for a deleted one). Each is stored as its key alone
/// (`store::bare_item`): the customer id is the sort key's tail, so a value would only repeat it
/// (and made the index a third larger on disk).
pub fn entries(c: &Customer) -> BTreeSet<Key> {
    let mut keys = BTreeSet::new();
    each_suffix(c, |head, suffix| {
        keys.insert(Key::new(
            partition_of_head(head),
            format!("{suffix}{SEP}{}", c.id),
        ));
    });
    keys
}

/// Calls `each` with the first two characters and the text of every indexed suffix of a live
/// customer (a suffix two fields share comes twice).
fn each_suffix(c: &Customer, mut each: impl FnMut(&str, &str)) {
    if c.is_deleted() {
        return;
    }
    let fields = [
        &c.email,
        &c.first_name,
        &c.last_name,
        &c.company_name,
        &c.phone,
    ];
    for value in fields.into_iter().flatten() {
        let text = normalize_text(value);
        // Byte offsets of every character, and the end: suffixes are slices, not copies.
        let bounds: Vec<usize> = text
            .char_indices()
            .map(|(at, _)| at)
            .chain(std::iter::once(text.len()))
            .collect();
        let chars = bounds.len() - 1;
        for start in (0..chars).step_by(STRIDE) {
            let end = (start + KEEP).min(chars);
            if end - start < 2 {
                continue;
            }
            each(
                &text[bounds[start]..bounds[start + 2]],
                &text[bounds[start]..bounds[end]],
            );
        }
    }
}

/// The customer an entry points at. Entries written before carry it as `customer_id` too.
fn customer_of(item: &Item) -> Option<String> {
    let sk = item.get(crate::store::SK)?.as_str()?;
    sk.rsplit_once(SEP).map(|(_, id)| id.to_owned())
}

/// Whether bulk loads into `store` leave their entries for later: where the store takes them
/// far faster in key order (the embedded file's B-tree). DynamoDB's writes cost the same in any
/// order, and there search never needs to read markers.
pub fn deferred_in_bulk(store: &dyn KvStore) -> bool {
    store.transactions_are_cheap()
}

/// Partition of the markers of customers whose entries are not written yet.
const PENDING: &str = "SEARCH#PENDING";

pub fn pending_key(customer_id: &str) -> Key {
    Key::new(PENDING, customer_id)
}

/// A page of customers marked as not indexed yet, and where the next page starts.
pub async fn pending_page(
    store: &Arc<dyn KvStore>,
    after: Option<crate::store::KeyMap>,
    limit: usize,
) -> DomainResult<(Vec<String>, Option<crate::store::KeyMap>)> {
    let mut query = Query::new(crate::store::Index::Main, PENDING);
    query.start_after = after;
    query.limit = limit;
    let page = store.query(&query).await?;
    let ids = page
        .items
        .iter()
        .filter_map(|i| i.get(crate::store::SK)?.as_str().map(str::to_owned))
        .collect();
    Ok((ids, page.last_key))
}

/// Lines sorted in memory before a run is spilled, in each of the two sorts (some 5 MB each:
/// at 100,000 an import's peak memory came within reach of its 100 MB budget).
const SPILL_RUN_ENTRIES: usize = 50_000;
/// Customers waiting for the gatherer: enough to even out a batch, little memory.
const GATHER_QUEUE: usize = 2_000;

/// The entries of customers a bulk load wrote with pending markers, and those markers, gathered
/// to be written in key order afterwards. A thread of its own works out the entries and sorts
/// them (runs spill to files, so memory stays flat), beside the load rather than in its way.
/// The list entries and the search entries are sorted apart, so that at the end they are
/// merged and written side by side.
pub struct BulkEntries {
    spill_dir: PathBuf,
    sender: SyncSender<Gathered>,
    gatherer: JoinHandle<std::io::Result<Sorts>>,
    markers: AtomicU64,
}

/// The gatherer's sorts: list entries, search entries, customer ids (of the markers).
struct Sorts {
    lists: ExternalSort,
    search: ExternalSort,
    ids: ExternalSort,
}

enum Gathered {
    Customer(Box<Customer>),
    /// A marker whose customer is gone: only the marker goes.
    Marker(String),
}

/// The sorted entries of a bulk load, each kind an iterator over spilled runs.
pub struct SortedEntries<L, S, M> {
    /// List entries (by email, by name) in each index's key order.
    pub lists: L,
    /// Search entries in key order.
    pub search: S,
    /// The markers' keys.
    pub markers: M,
}

impl BulkEntries {
    pub fn new(spill_dir: &Path) -> DomainResult<Self> {
        let mut sorts = Sorts {
            lists: ExternalSort::new(spill_dir, SPILL_RUN_ENTRIES),
            search: ExternalSort::new(spill_dir, SPILL_RUN_ENTRIES),
            ids: ExternalSort::new(spill_dir, SPILL_RUN_ENTRIES),
        };
        let (sender, received) = std::sync::mpsc::sync_channel::<Gathered>(GATHER_QUEUE);
        let gatherer = std::thread::Builder::new()
            .name("search-entries".into())
            .spawn(move || {
                for gathered in received {
                    match gathered {
                        Gathered::Customer(customer) => sorts.add(&customer)?,
                        Gathered::Marker(id) => sorts.ids.push(&id)?,
                    }
                }
                Ok(sorts)
            })
            .map_err(|e| spill_error(spill_dir, e))?;
        Ok(BulkEntries {
            spill_dir: spill_dir.to_owned(),
            sender,
            gatherer,
            markers: AtomicU64::new(0),
        })
    }

    fn send(&self, gathered: Gathered) -> DomainResult<()> {
        self.markers.fetch_add(1, Ordering::Relaxed);
        // A closed queue means the gatherer failed; `sorted` reports why.
        self.sender.send(gathered).map_err(|_| {
            DomainError::Internal(format!(
                "gathering search entries under {} stopped",
                self.spill_dir.display()
            ))
        })
    }

    /// A customer written with a pending marker: its entries, then its marker.
    pub fn add(&self, customer: Customer) -> DomainResult<()> {
        self.send(Gathered::Customer(Box::new(customer)))
    }

    /// A marker whose customer is gone: it only goes away.
    pub fn add_marker(&self, customer_id: String) -> DomainResult<()> {
        self.send(Gathered::Marker(customer_id))
    }

    pub fn markers(&self) -> u64 {
        self.markers.load(Ordering::Relaxed)
    }

    /// The list entries, the search entries and the markers' keys, each in key order.
    pub fn sorted(
        self,
    ) -> DomainResult<
        SortedEntries<
            impl Iterator<Item = DomainResult<IndexEntry>> + Send + 'static,
            impl Iterator<Item = DomainResult<Key>> + Send + 'static,
            impl Iterator<Item = DomainResult<Key>> + Send + 'static,
        >,
    > {
        let dir = self.spill_dir;
        drop(self.sender);
        let sorts = self
            .gatherer
            .join()
            .map_err(|_| DomainError::Internal("the search entry gatherer panicked".into()))?
            .map_err(|e| spill_error(&dir, e))?;
        let finish = |sort: ExternalSort| sort.finish().map_err(|e| spill_error(&dir, e));
        let lists = finish(sorts.lists)?;
        let search = finish(sorts.search)?;
        let ids = finish(sorts.ids)?;
        let (d1, d2, d3) = (dir.clone(), dir.clone(), dir);
        Ok(SortedEntries {
            lists: lists.map(move |line| list_entry(&line.map_err(|e| spill_error(&d1, e))?)),
            search: search.map(move |line| {
                let mut pk = line.map_err(|e| spill_error(&d2, e))?;
                let Some(separator) = pk.find('\0') else {
                    return Err(lost_shape(&pk));
                };
                // The line becomes the partition and its tail the sort key: one copy, not two.
                let sk = pk[separator + 1..].to_owned();
                pk.truncate(separator);
                Ok(Key { pk, sk })
            }),
            markers: ids.map(move |id| Ok(pending_key(&id.map_err(|e| spill_error(&d3, e))?))),
        })
    }
}

impl Sorts {
    /// A customer's search entries, list entries and id, each to its sort.
    fn add(&mut self, customer: &Customer) -> std::io::Result<()> {
        let mut pushed = Ok(());
        each_suffix(customer, |head, suffix| {
            // A search entry as a spilled line, `SFX#<head>\0<suffix>␁<id>`, copied straight
            // into the sort's buffer. `\0` sorts before any character of a key part: lines sort
            // as the keys do (repeats go when the runs merge).
            if pushed.is_ok() {
                pushed =
                    self.search
                        .push_parts(&[PARTITION, head, "\0", suffix, SEP_STR, &customer.id]);
            }
        });
        pushed?;
        for e in super::repository::list_entries(customer) {
            self.lists.push_parts(&[
                e.index.name(),
                "\0",
                &e.partition,
                "\0",
                &e.sort,
                "\0",
                &e.key.pk,
                "\0",
                &e.key.sk,
            ])?;
        }
        self.ids.push(&customer.id)
    }
}

/// A list entry read back from its spilled line.
fn list_entry(line: &str) -> DomainResult<IndexEntry> {
    let parts: Vec<&str> = line.split('\0').collect();
    let [index, partition, sort, item_pk, item_sk] = parts[..] else {
        return Err(lost_shape(line));
    };
    Ok(IndexEntry {
        index: Index::secondary_named(index).ok_or_else(|| lost_shape(line))?,
        partition: partition.to_owned(),
        sort: sort.to_owned(),
        key: Key::new(item_pk, item_sk),
    })
}

fn lost_shape(line: &str) -> DomainError {
    DomainError::Internal(format!("a spilled entry lost its shape: {line:?}"))
}

fn spill_error(dir: &Path, e: std::io::Error) -> DomainError {
    DomainError::Internal(format!(
        "cannot spill search entries under {}: {e}",
        dir.display()
    ))
}

/// Whether `q` is long enough for the index.
pub fn indexable(q: &str) -> bool {
    normalize_text(q).chars().count() >= MIN_QUERY_CHARS
}

/// Ids of every customer that may contain `q` (a superset; the caller checks each).
pub async fn candidates(store: &Arc<dyn KvStore>, q: &str) -> DomainResult<BTreeSet<String>> {
    let chars: Vec<char> = normalize_text(q).chars().collect();
    let prefixes: BTreeSet<String> = (0..STRIDE.min(chars.len()))
        .map(|offset| chars[offset..].iter().take(KEEP).collect::<String>())
        .filter(|p| p.chars().count() >= 2)
        .collect();
    let mut queries: Vec<Query> = prefixes
        .into_iter()
        .map(|prefix| {
            let mut query = Query::new(crate::store::Index::Main, partition(&prefix));
            query.sort = SortCondition::BeginsWith(prefix);
            query.limit = PAGE;
            query
        })
        .collect();
    let mut found = BTreeSet::new();
    while !queries.is_empty() {
        let pages = store.query_many(&queries).await?;
        let mut next = Vec::new();
        for (mut query, page) in queries.into_iter().zip(pages) {
            found.extend(page.items.iter().filter_map(customer_of));
            if let Some(after) = page.last_key {
                query.start_after = Some(after);
                next.push(query);
            }
        }
        queries = next;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(email: &str, last: &str) -> Customer {
        Customer {
            id: "cus_1".into(),
            company_name: None,
            first_name: None,
            last_name: Some(last.into()),
            email: Some(email.into()),
            phone: None,
            metadata: None,
            has_account: false,
            created_by: None,
            created_at: String::new(),
            updated_at: String::new(),
            deleted_at: None,
            version: 0,
        }
    }

    type Gathered = (Vec<IndexEntry>, Vec<Key>, Vec<Key>);

    fn gather(spill_dir: &Path, customers: usize) -> DomainResult<Gathered> {
        let bulk = BulkEntries::new(spill_dir)?;
        for i in 0..customers {
            // Names out of creation order, so that the lists' order is not the ids'.
            let n = (i * 7919) % customers;
            let mut c = customer(&format!("person{n}@example.com"), &format!("Last{n}"));
            c.id = format!("cus_{i:06}");
            bulk.add(c)?;
        }
        let sorted = bulk.sorted()?;
        Ok((
            sorted.lists.collect::<DomainResult<_>>()?,
            sorted.search.collect::<DomainResult<_>>()?,
            sorted.markers.collect::<DomainResult<_>>()?,
        ))
    }

    #[test]
    fn bulk_entries_come_out_in_key_order_each_kind_apart() {
        let dir = std::env::temp_dir().join(format!("bulk-{}", ulid::Ulid::new()));
        // Enough customers for the entries to spill to files.
        let (lists, search, markers) = gather(&dir, 12_000).expect("gathered");
        assert!(search.len() > SPILL_RUN_ENTRIES, "{} entries", search.len());
        assert!(
            search
                .windows(2)
                .all(|w| (&w[0].pk, &w[0].sk) < (&w[1].pk, &w[1].sk))
        );
        // Each index's entries together, in the order of the index's own keys.
        let order = |e: &IndexEntry| {
            (
                e.index.name(),
                e.partition.clone(),
                e.sort.clone(),
                e.key.clone(),
            )
        };
        assert!(lists.windows(2).all(|w| order(&w[0]) < order(&w[1])));
        assert_eq!(lists.len(), 2 * 12_000, "by email and by name");
        let mut c = customer("person77@example.com", "Last77");
        c.id = format!(
            "cus_{:06}",
            (0..12_000).find(|i| (i * 7919) % 12_000 == 77).unwrap()
        );
        assert!(entries(&c).iter().all(|k| search.contains(k)));
        let listed = super::super::repository::list_entries(&c);
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|e| lists.contains(e)));
        assert_eq!(markers.len(), 12_000);
        assert_eq!(markers[77], pending_key("cus_000077"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_spill_that_cannot_be_written_is_an_error() {
        // The spill directory's parent is a file: the first run cannot be written.
        let file = std::env::temp_dir().join(format!("not-a-dir-{}", ulid::Ulid::new()));
        std::fs::write(&file, b"").expect("temp file");
        let result = gather(&file.join("spill"), 12_000);
        let _ = std::fs::remove_file(&file);
        assert!(
            matches!(&result, Err(DomainError::Internal(m)) if m.contains("search entries")),
            "{result:?}"
        );
    }

    /// What a prefix read over `entries` would find for `q`, done in memory.
    fn index_finds(c: &Customer, q: &str) -> bool {
        let chars: Vec<char> = normalize_text(q).chars().collect();
        let keys = entries(c);
        (0..STRIDE.min(chars.len())).any(|offset| {
            let prefix: String = chars[offset..].iter().take(KEEP).collect();
            keys.iter()
                .any(|k| k.pk == partition(&prefix) && k.sk.starts_with(&prefix))
        })
    }

    #[test]
    fn every_substring_of_four_or_more_chars_is_found() {
        let c = customer("Test2@Email.com", "Doe-Ångström");
        for value in ["test2@email.com", "doe-ångström"] {
            let chars: Vec<char> = value.chars().collect();
            for start in 0..chars.len() {
                for end in start + MIN_QUERY_CHARS..=chars.len() {
                    let q: String = chars[start..end].iter().collect();
                    assert!(index_finds(&c, &q.to_uppercase()), "missed {q:?}");
                }
            }
        }
        assert!(!index_finds(&c, "zzzz"));
    }

    #[test]
    fn deleted_customers_have_no_entries_and_entries_are_few() {
        let mut c = customer("someone@example.com", "Doe");
        let n = entries(&c).len();
        assert!((5..=10).contains(&n), "{n} entries");
        c.deleted_at = Some("2026-01-01T00:00:00.000Z".into());
        assert!(entries(&c).is_empty());
    }
}
