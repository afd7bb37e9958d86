//! What redb alone can do with an import's write pattern, without our code around it: per
//! customer one email marker read and written at a random place, three items next to each
//! other (profile, address, default marker), and N search keys at random places; `ROWS` rows
//! per commit.
//!
//! `cargo run --release --manifest-path infra/bench/redb-ceiling/Cargo.toml -- CUSTOMERS FILE
//! SEARCH_KEYS ROWS_PER_COMMIT [deferred]` prints customers/s. Run it with 0 search keys to see
//! the rest. `deferred` writes the search keys sorted after the rows, as an embedded bulk import
//! does. `NODUR=1` commits without an fsync (one durable commit at the end), as the import's
//! row commits do; `CHUNK=N` sets the sorted keys per commit (200,000). `LISTS=random` adds two
//! list-index entries per customer (by email, by name) at random places in the row commits;
//! `LISTS=deferred` writes them sorted after the rows instead, as a bulk import does.
//! `CACHE_MB` sets the page cache (48; the import commands use 16).

use std::time::Instant;

use redb::{Database, ReadableTable, TableDefinition};

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");
const SEARCH: TableDefinition<&str, ()> = TableDefinition::new("search");
const LISTS: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("lists");

/// A fixed scramble of `x`, so keys land all over the tree as emails and name suffixes do.
fn scatter(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn arg(n: usize, name: &str) -> String {
    std::env::args().nth(n).unwrap_or_else(|| {
        panic!("usage: redb-ceiling CUSTOMERS FILE SEARCH_KEYS ROWS_PER_COMMIT (missing {name})")
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let customers: u64 = arg(1, "CUSTOMERS").parse()?;
    let path = arg(2, "FILE");
    let search_keys: u64 = arg(3, "SEARCH_KEYS").parse()?;
    let per_commit: u64 = arg(4, "ROWS_PER_COMMIT").parse::<u64>()?.max(1);
    let deferred = std::env::args().nth(5).is_some_and(|a| a == "deferred");
    let mut spilled: Vec<String> = Vec::new();
    // The import's own page cache (16 MB) plus room: the cache is not what limits this.
    let cache_mb: usize = std::env::var("CACHE_MB")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48);
    let db = Database::builder()
        .set_cache_size(cache_mb << 20)
        .create(&path)?;
    let profile = vec![b'x'; 600];
    let small = vec![b'y'; 60];
    let started = Instant::now();
    let mut done = 0u64;
    let nodur = std::env::var("NODUR").is_ok();
    let lists = std::env::var("LISTS").unwrap_or_default();
    let mut list_spill: Vec<(String, String)> = Vec::new();
    while done < customers {
        let mut txn = db.begin_write()?;
        if nodur {
            txn.set_durability(redb::Durability::None)?;
        }
        {
            let mut items = txn.open_table(ITEMS)?;
            let mut search = txn.open_table(SEARCH)?;
            let mut list_table = txn.open_table(LISTS)?;
            for i in done..(done + per_commit).min(customers) {
                let email = format!("{:016x}", scatter(i * 31));
                let taken = items.get(("EMAIL", email.as_str()))?.is_some();
                assert!(!taken, "generated emails are unique");
                items.insert(("EMAIL", email.as_str()), small.as_slice())?;
                let id = format!("cus_{i:020}");
                items.insert((id.as_str(), "CUSTOMER"), profile.as_slice())?;
                items.insert((id.as_str(), "ADDRESS#1"), profile.as_slice())?;
                items.insert((id.as_str(), "DEFAULT"), small.as_slice())?;
                if !lists.is_empty() {
                    for (n, part) in ["EMAIL", "NAME"].iter().enumerate() {
                        let sk = format!("{:016x}\u{1}{id}", scatter(i * 7 + n as u64 + 1));
                        if lists == "deferred" {
                            list_spill.push((part.to_string(), sk));
                        } else {
                            list_table.insert((*part, sk.as_str(), id.as_str(), "CUSTOMER"), ())?;
                        }
                    }
                }
                for k in 0..search_keys {
                    let key = format!("{:016x}\u{1}{id}", scatter(i * 131 + k));
                    if deferred {
                        spilled.push(key);
                    } else {
                        search.insert(key.as_str(), ())?;
                    }
                }
            }
        }
        txn.commit()?;
        done = (done + per_commit).min(customers);
    }
    let rows_done = started.elapsed().as_secs_f64();
    if !list_spill.is_empty() {
        list_spill.sort_unstable();
        for chunk in list_spill.chunks(200_000) {
            let txn = db.begin_write()?;
            {
                let mut t = txn.open_table(LISTS)?;
                for (part, sk) in chunk {
                    let id = sk.rsplit('\u{1}').next().unwrap_or_default();
                    t.insert((part.as_str(), sk.as_str(), id, "CUSTOMER"), ())?;
                }
            }
            txn.commit()?;
        }
        println!("lists {:.1} s", started.elapsed().as_secs_f64() - rows_done);
    }
    if deferred {
        spilled.sort_unstable();
        let chunk_size: usize = std::env::var("CHUNK")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(200_000);
        for chunk in spilled.chunks(chunk_size) {
            let mut txn = db.begin_write()?;
            if nodur {
                txn.set_durability(redb::Durability::None)?;
            }
            {
                let mut search = txn.open_table(SEARCH)?;
                for key in chunk {
                    search.insert(key.as_str(), ())?;
                }
            }
            txn.commit()?;
        }
        println!(
            "rows {rows_done:.1} s, index {:.1} s",
            started.elapsed().as_secs_f64() - rows_done
        );
    }
    if nodur {
        let txn = db.begin_write()?;
        txn.commit()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{customers} customers, {search_keys} search keys each, {per_commit} per commit: {seconds:.1} s, {:.0} customers/s",
        customers as f64 / seconds
    );
    Ok(())
}
