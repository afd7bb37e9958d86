//! The key-value store contract, run against the embedded file and DynamoDB on moto alike.

use std::sync::Arc;

use integration_tests::{Backend, both_backends, fresh_store};
use serde_json::{Value, json};
use shared::customers::{CustomerDraft, CustomerPatch, CustomerRepository, CustomerService};
use shared::ports::{SystemClock, UlidGenerator};
use shared::store::{
    BatchOp, Condition, Index, IndexEntry, Item, Key, KvStore, Query, QueryPage, SortCondition,
    StoreError, WriteOp,
};

fn item(pk: &str, sk: &str, extra: Value) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), pk.into());
    item.insert("sk".into(), sk.into());
    if let Value::Object(m) = extra {
        item.extend(m);
    }
    item
}

fn put(item: Item, condition: Option<Condition>) -> WriteOp {
    WriteOp::Put { item, condition }
}

async fn store(backend: Backend) -> Arc<dyn KvStore> {
    fresh_store(backend).await.expect("backend available")
}

async fn all_pages(store: &dyn KvStore, mut query: Query) -> Vec<Item> {
    let mut out = Vec::new();
    loop {
        let page = store.query(&query).await.expect("query");
        assert!(page.items.len() <= query.limit);
        out.extend(page.items);
        match page.last_key {
            Some(k) => query.start_after = Some(k),
            None => return out,
        }
    }
}

fn sks(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["sk"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn get_put_delete_and_conditions(backend: Backend) {
    let s = store(backend).await;
    let key = Key::new("A", "1");
    assert_eq!(s.get(&key).await.unwrap(), None);
    s.transact(vec![put(
        item("A", "1", json!({"v": 1, "meta": {"x": [1, "two", null]}})),
        Some(Condition::NotExists),
    )])
    .await
    .unwrap();
    let got = s.get(&key).await.unwrap().expect("stored");
    assert_eq!(got["meta"], json!({"x": [1, "two", null]}));
    assert_eq!(got["v"], json!(1));
    // Creating again fails and changes nothing.
    let again = s
        .transact(vec![put(
            item("A", "1", json!({"v": 2})),
            Some(Condition::NotExists),
        )])
        .await;
    assert_eq!(again, Err(StoreError::ConditionFailed { index: 0 }));
    assert_eq!(s.get(&key).await.unwrap().unwrap()["v"], json!(1));
    // Version-guarded replace: the stale writer loses.
    s.transact(vec![put(
        item("A", "1", json!({"v": 2})),
        Some(Condition::equals("v", 1)),
    )])
    .await
    .unwrap();
    let stale = s
        .transact(vec![put(
            item("A", "1", json!({"v": 3})),
            Some(Condition::equals("v", 1)),
        )])
        .await;
    assert_eq!(stale, Err(StoreError::ConditionFailed { index: 0 }));
    // Several attributes at once: every one must hold (a null one included).
    s.transact(vec![put(
        item("A", "2", json!({"v": 1, "n": 5, "gone": null})),
        None,
    )])
    .await
    .unwrap();
    let all =
        |n: i64| Condition::all_equal(&[("v", json!(1)), ("n", json!(n)), ("gone", Value::Null)]);
    let moved = s
        .transact(vec![put(
            item("A", "2", json!({"v": 2, "n": 4})),
            Some(all(4)),
        )])
        .await;
    assert_eq!(moved, Err(StoreError::ConditionFailed { index: 0 }));
    assert_eq!(
        s.get(&Key::new("A", "2")).await.unwrap().unwrap()["n"],
        json!(5)
    );
    s.transact(vec![put(
        item("A", "2", json!({"v": 2, "n": 5})),
        Some(all(5)),
    )])
    .await
    .unwrap();
    let missing = s
        .transact(vec![put(item("A", "3", json!({})), Some(all(5)))])
        .await;
    assert_eq!(missing, Err(StoreError::ConditionFailed { index: 0 }));
    // Guarded delete.
    let wrong = s
        .transact(vec![WriteOp::Delete {
            key: key.clone(),
            condition: Some(Condition::equals("v", 9)),
        }])
        .await;
    assert_eq!(wrong, Err(StoreError::ConditionFailed { index: 0 }));
    s.transact(vec![WriteOp::Delete {
        key: key.clone(),
        condition: Some(Condition::Exists),
    }])
    .await
    .unwrap();
    assert_eq!(s.get(&key).await.unwrap(), None);
}

async fn transactions_are_all_or_nothing(backend: Backend) {
    let s = store(backend).await;
    s.transact(vec![put(item("T", "b", json!({})), None)])
        .await
        .unwrap();
    let result = s
        .transact(vec![
            put(item("T", "a", json!({})), Some(Condition::NotExists)),
            put(item("T", "b", json!({})), Some(Condition::NotExists)),
            WriteOp::Add {
                key: Key::new("T", "count"),
                attribute: "n".into(),
                delta: 1,
                condition: None,
            },
        ])
        .await;
    assert_eq!(result, Err(StoreError::ConditionFailed { index: 1 }));
    assert_eq!(s.get(&Key::new("T", "a")).await.unwrap(), None);
    assert_eq!(s.get(&Key::new("T", "count")).await.unwrap(), None);
    // A failed check cancels the others too.
    let result = s
        .transact(vec![
            put(item("T", "c", json!({})), None),
            WriteOp::Check {
                key: Key::new("T", "missing"),
                condition: Condition::Exists,
            },
        ])
        .await;
    assert_eq!(result, Err(StoreError::ConditionFailed { index: 1 }));
    assert_eq!(s.get(&Key::new("T", "c")).await.unwrap(), None);
    // Limits DynamoDB enforces are enforced everywhere.
    let too_many: Vec<WriteOp> = (0..101)
        .map(|i| put(item("T", &format!("x{i}"), json!({})), None))
        .collect();
    assert!(matches!(
        s.transact(too_many).await,
        Err(StoreError::Invalid(_))
    ));
    let twice = vec![
        put(item("T", "d", json!({})), None),
        put(item("T", "d", json!({})), None),
    ];
    assert!(matches!(
        s.transact(twice).await,
        Err(StoreError::Invalid(_))
    ));
    let hundred: Vec<WriteOp> = (0..100)
        .map(|i| put(item("T", &format!("y{i:03}"), json!({})), None))
        .collect();
    s.transact(hundred).await.unwrap();
}

/// Independent transactions handed over together: each keeps its own all-or-nothing outcome,
/// reported in order, whatever the others do.
async fn transactions_handed_over_together_stand_alone(backend: Backend) {
    let s = store(backend).await;
    s.transact(vec![put(item("E", "taken", json!({})), None)])
        .await
        .unwrap();
    let counter = |delta| WriteOp::Add {
        key: Key::new("E", "count"),
        attribute: "n".into(),
        delta,
        condition: None,
    };
    let outcomes = s
        .transact_each(vec![
            vec![
                put(item("E", "a", json!({})), Some(Condition::NotExists)),
                counter(1),
            ],
            // Fails on its second write: its first and its counter stay unwritten.
            vec![
                put(item("E", "b", json!({})), Some(Condition::NotExists)),
                put(item("E", "taken", json!({})), Some(Condition::NotExists)),
            ],
            // Invalid on its own (one item twice).
            vec![
                put(item("E", "c", json!({})), None),
                put(item("E", "c", json!({})), None),
            ],
            vec![put(item("E", "d", json!({})), None), counter(10)],
        ])
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 4);
    assert_eq!(outcomes[0], Ok(()));
    assert_eq!(outcomes[1], Err(StoreError::ConditionFailed { index: 1 }));
    assert!(
        matches!(outcomes[2], Err(StoreError::Invalid(_))),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[3], Ok(()));
    for (sk, exists) in [("a", true), ("b", false), ("c", false), ("d", true)] {
        assert_eq!(
            s.get(&Key::new("E", sk)).await.unwrap().is_some(),
            exists,
            "item {sk}"
        );
    }
    let count = s.get(&Key::new("E", "count")).await.unwrap().unwrap();
    assert_eq!(count.get("n"), Some(&json!(11)));
    assert_eq!(s.transact_each(Vec::new()).await.unwrap(), Vec::new());
}

/// Many adds handed over together, to more items than a commit keeps at hand and to an item
/// with an index entry and a guard: each lands once, the guard reads the item as the adds left
/// it, and the item keeps its other attributes and its index entry.
async fn adds_handed_over_together_add_up(backend: Backend) {
    let s = store(backend).await;
    s.transact(vec![put(
        item(
            "G",
            "meta",
            json!({"n": 5, "deleted_at": null, "name": "kept", "gsi1pk": "GLIST", "gsi1sk": "g"}),
        ),
        None,
    )])
    .await
    .unwrap();
    let add = |pk: &str, sk: &str, condition| WriteOp::Add {
        key: Key::new(pk, sk),
        attribute: "n".into(),
        delta: 1,
        condition,
    };
    let mut each: Vec<Vec<WriteOp>> = (0..80)
        .map(|i| {
            vec![
                add("CNT", &format!("c{}", i % 70), None),
                add(
                    "G",
                    "meta",
                    Some(Condition::equals("deleted_at", Value::Null)),
                ),
            ]
        })
        .collect();
    // Its guard fails: neither of its adds lands.
    each.push(vec![
        add("CNT", "c0", None),
        add(
            "G",
            "meta",
            Some(Condition::equals("deleted_at", json!("gone"))),
        ),
    ]);
    let outcomes = s.transact_each(each).await.unwrap();
    assert_eq!(outcomes.len(), 81);
    assert!(outcomes[..80].iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(outcomes[80], Err(StoreError::ConditionFailed { index: 1 }));
    for i in 0..70 {
        let counter = s.get(&Key::new("CNT", format!("c{i}"))).await.unwrap();
        let expected = if i < 10 { 2 } else { 1 };
        assert_eq!(
            counter.map(|c| c["n"].clone()),
            Some(json!(expected)),
            "c{i}"
        );
    }
    let meta = s.get(&Key::new("G", "meta")).await.unwrap().unwrap();
    assert_eq!((&meta["n"], &meta["name"]), (&json!(85), &json!("kept")));
    let listed = all_pages(s.as_ref(), Query::new(Index::Gsi1, "GLIST")).await;
    assert_eq!(sks(&listed), vec!["meta"]);
    assert_eq!(listed[0]["n"], json!(85));
}

/// Entries a bulk load leaves out of an index and hands back later: until then the items are
/// missing from that index only (on the embedded file; DynamoDB keeps its indexes itself), and
/// then each entry is written only while its item still carries it.
async fn index_entries_left_for_later_follow_their_items(backend: Backend) {
    let s = store(backend).await;
    let listed = |name: &str| {
        item(
            "L",
            name,
            json!({"gsi1pk": "BYID", "gsi1sk": name, "gsi2pk": "BYNAME", "gsi2sk": format!("{name}-name")}),
        )
    };
    let names = ["a", "b", "c", "d"];
    let outcomes = s
        .transact_each_indexing_later(
            names
                .iter()
                .map(|n| vec![put(listed(n), Some(Condition::NotExists))])
                .collect(),
            &[Index::Gsi2],
        )
        .await
        .unwrap();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let by_id = all_pages(s.as_ref(), Query::new(Index::Gsi1, "BYID")).await;
    assert_eq!(sks(&by_id), names, "the other index at once");
    let by_name = all_pages(s.as_ref(), Query::new(Index::Gsi2, "BYNAME")).await;
    if backend == Backend::Embedded {
        assert!(by_name.is_empty(), "left for later: {by_name:?}");
    }
    // Meanwhile: `b` renamed, `c` deleted, `d` leaves the index.
    let mut renamed = listed("b");
    renamed.insert("gsi2sk".into(), json!("z-name"));
    let mut unlisted = listed("d");
    unlisted.remove("gsi2pk");
    s.transact(vec![put(renamed, None)]).await.unwrap();
    s.transact(vec![put(unlisted, None)]).await.unwrap();
    s.transact(vec![WriteOp::Delete {
        key: Key::new("L", "c"),
        condition: None,
    }])
    .await
    .unwrap();
    // The entries as the items were first written.
    let mut entries: Vec<IndexEntry> = names
        .iter()
        .map(|n| IndexEntry {
            index: Index::Gsi2,
            partition: "BYNAME".into(),
            sort: format!("{n}-name"),
            key: Key::new("L", *n),
        })
        .collect();
    // One twice.
    entries.push(entries[0].clone());
    s.write_index_entries(entries).await.unwrap();
    let by_name = all_pages(s.as_ref(), Query::new(Index::Gsi2, "BYNAME")).await;
    assert_eq!(sks(&by_name), ["a", "b"], "{by_name:?}");
    assert_eq!(
        by_name[1]["gsi2sk"],
        json!("z-name"),
        "under its new key only"
    );
    let mut at_old_key = Query::new(Index::Gsi2, "BYNAME");
    at_old_key.sort = SortCondition::BeginsWith("b-".into());
    assert!(s.query(&at_old_key).await.unwrap().items.is_empty());
}

async fn counters_add_atomically(backend: Backend) {
    let s = store(backend).await;
    let key = Key::new("C", "n");
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            let key = key.clone();
            tokio::spawn(async move {
                s.transact(vec![WriteOp::Add {
                    key,
                    attribute: "n".into(),
                    delta: if i % 4 == 0 { -1 } else { 2 },
                    condition: None,
                }])
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        s.get(&key).await.unwrap().unwrap()["n"].as_i64(),
        Some(15 * 2 - 5)
    );
    // A guarded counter does not move, or create its item, when the guard fails.
    let guarded = |condition| WriteOp::Add {
        key: Key::new("C", "guarded"),
        attribute: "n".into(),
        delta: 1,
        condition: Some(condition),
    };
    assert_eq!(
        s.transact(vec![guarded(Condition::Exists)]).await,
        Err(StoreError::ConditionFailed { index: 0 })
    );
    assert_eq!(s.get(&Key::new("C", "guarded")).await.unwrap(), None);
    s.transact(vec![put(
        item("C", "guarded", json!({"deleted_at": null})),
        None,
    )])
    .await
    .unwrap();
    s.transact(vec![guarded(Condition::equals("deleted_at", Value::Null))])
        .await
        .unwrap();
    s.transact(vec![put(
        item("C", "guarded", json!({"deleted_at": "now", "n": 1})),
        None,
    )])
    .await
    .unwrap();
    let refused = s
        .transact(vec![guarded(Condition::equals("deleted_at", Value::Null))])
        .await;
    assert_eq!(refused, Err(StoreError::ConditionFailed { index: 0 }));
    assert_eq!(
        s.get(&Key::new("C", "guarded")).await.unwrap().unwrap()["n"],
        json!(1)
    );
}

async fn queries_page_in_both_directions(backend: Backend) {
    let s = store(backend).await;
    let ops: Vec<BatchOp> = (0..57)
        .map(|i| BatchOp::Put(item("Q", &format!("item#{i:03}"), json!({"i": i}))))
        .chain([
            BatchOp::Put(item("Q", "other#1", json!({}))),
            BatchOp::Put(item("R", "item#000", json!({}))),
        ])
        .collect();
    s.batch_write(ops).await.unwrap();
    let mut q = Query::new(Index::Main, "Q");
    q.sort = SortCondition::BeginsWith("item#".into());
    q.limit = 10;
    let forward = all_pages(s.as_ref(), q.clone()).await;
    let expected: Vec<String> = (0..57).map(|i| format!("item#{i:03}")).collect();
    assert_eq!(sks(&forward), expected);
    q.forward = false;
    let backward = all_pages(s.as_ref(), q.clone()).await;
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(sks(&backward), reversed);
    let mut between = Query::new(Index::Main, "Q");
    between.sort = SortCondition::Between("item#010".into(), "item#019".into());
    assert_eq!(all_pages(s.as_ref(), between).await.len(), 10);
    let mut empty = Query::new(Index::Main, "Q");
    empty.sort = SortCondition::BeginsWith(String::new());
    assert!(
        matches!(s.query(&empty).await, Err(StoreError::Invalid(_))),
        "empty key values are refused everywhere"
    );
    let mut exact = Query::new(Index::Main, "Q");
    exact.sort = SortCondition::Equals("other#1".into());
    assert_eq!(all_pages(s.as_ref(), exact).await.len(), 1);
}

fn sorted(keys: impl IntoIterator<Item = Key>) -> shared::store::SortedKeys {
    let mut keys: Vec<Key> = keys.into_iter().collect();
    keys.sort_by(|a, b| (&a.pk, &a.sk).cmp(&(&b.pk, &b.sk)));
    Box::new(keys.into_iter().map(Ok))
}

/// Pages of `partition`'s keys starting with `prefix`, both ways, `limit` at a time: what
/// comes back must be `expected`, in order, each once.
async fn pages_hold(
    s: &dyn KvStore,
    partition: &str,
    prefix: &str,
    limit: usize,
    expected: &[String],
) {
    let mut q = Query::new(Index::Main, partition);
    q.sort = SortCondition::BeginsWith(prefix.into());
    q.limit = limit;
    assert_eq!(sks(&all_pages(s, q.clone()).await), expected);
    q.forward = false;
    let mut reversed = expected.to_vec();
    reversed.reverse();
    assert_eq!(sks(&all_pages(s, q).await), reversed);
}

async fn sorted_keys_are_found_by_queries(backend: Backend) {
    let s = store(backend).await;
    // Found with the items of their partition, and each key once where both hold it.
    s.put_keys(vec![Key::new("S", "k#0005"), Key::new("S", "k#0100x")])
        .await
        .unwrap();
    let keys = (0..150).flat_map(|i| {
        [
            Key::new("S", format!("k#{i:04}")),
            Key::new("T", format!("k#{i:04}")),
        ]
    });
    s.put_sorted_keys(sorted(keys)).await.unwrap();
    let mut expected: Vec<String> = (0..150).map(|i| format!("k#{i:04}")).collect();
    expected.push("k#0100x".into());
    expected.sort();
    pages_hold(s.as_ref(), "S", "k#", 7, &expected).await;
    let mut exact = Query::new(Index::Main, "T");
    exact.sort = SortCondition::Equals("k#0005".into());
    assert_eq!(sks(&s.query(&exact).await.unwrap().items), ["k#0005"]);
}

async fn secondary_indexes_follow_item_changes(backend: Backend) {
    let s = store(backend).await;
    for i in 0..30 {
        s.transact(vec![put(
            item(
                "P",
                &format!("{i:02}"),
                json!({"gsi1pk": "LIST", "gsi1sk": format!("k{:02}", 29 - i)}),
            ),
            None,
        )])
        .await
        .unwrap();
    }
    let mut q = Query::new(Index::Gsi1, "LIST");
    q.limit = 7;
    let listed = all_pages(s.as_ref(), q.clone()).await;
    assert_eq!(listed.len(), 30);
    assert_eq!(
        listed[0]["sk"],
        json!("29"),
        "ordered by the index sort key"
    );
    // Moving the index key, and dropping it, is reflected at once.
    s.transact(vec![put(
        item("P", "00", json!({"gsi1pk": "OTHER", "gsi1sk": "z"})),
        None,
    )])
    .await
    .unwrap();
    s.transact(vec![put(item("P", "01", json!({})), None)])
        .await
        .unwrap();
    s.transact(vec![WriteOp::Delete {
        key: Key::new("P", "02"),
        condition: None,
    }])
    .await
    .unwrap();
    let listed = all_pages(s.as_ref(), q.clone()).await;
    assert_eq!(listed.len(), 27);
    q.forward = false;
    assert_eq!(all_pages(s.as_ref(), q).await.len(), 27);
    let other = all_pages(s.as_ref(), Query::new(Index::Gsi1, "OTHER")).await;
    assert_eq!(sks(&other), vec!["00".to_owned()]);
    // Batch writes and conditional puts keep the indexes just as exact.
    s.batch_write(vec![
        BatchOp::Put(item("P", "03", json!({"gsi1pk": "OTHER", "gsi1sk": "y"}))),
        BatchOp::Delete(Key::new("P", "04")),
    ])
    .await
    .unwrap();
    s.transact(vec![put(
        item("P", "05", json!({"gsi1pk": "LIST", "gsi1sk": "a"})),
        Some(Condition::Exists),
    )])
    .await
    .unwrap();
    let mut q = Query::new(Index::Gsi1, "LIST");
    q.limit = 100;
    let listed = all_pages(s.as_ref(), q).await;
    assert_eq!(listed.len(), 25, "one entry per remaining item");
    assert_eq!(
        listed[0]["sk"],
        json!("05"),
        "moved to the front, not copied"
    );
    assert_eq!(listed[0]["pk"], json!("P"), "items read back whole");
    let other = all_pages(s.as_ref(), Query::new(Index::Gsi1, "OTHER")).await;
    assert_eq!(sks(&other), vec!["03".to_owned(), "00".to_owned()]);
}

async fn batches_exceed_single_request_limits(backend: Backend) {
    let s = store(backend).await;
    let puts: Vec<BatchOp> = (0..130)
        .map(|i| BatchOp::Put(item("B", &format!("{i:03}"), json!({"i": i}))))
        .collect();
    s.batch_write(puts).await.unwrap();
    let keys: Vec<Key> = (0..130)
        .map(|i| Key::new("B", format!("{i:03}")))
        .chain([Key::new("B", "none")])
        .collect();
    assert_eq!(s.batch_get(&keys).await.unwrap().len(), 130);
    let deletes: Vec<BatchOp> = (0..65)
        .map(|i| BatchOp::Delete(Key::new("B", format!("{i:03}"))))
        .collect();
    s.batch_write(deletes).await.unwrap();
    assert_eq!(s.batch_get(&keys).await.unwrap().len(), 65);
    // The same key twice in one batch keeps the last write.
    s.batch_write(vec![
        BatchOp::Put(item("B", "dup", json!({"v": 1}))),
        BatchOp::Put(item("B", "dup", json!({"v": 2}))),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.get(&Key::new("B", "dup")).await.unwrap().unwrap()["v"],
        json!(2)
    );
}

fn service(store: Arc<dyn KvStore>) -> CustomerService {
    CustomerService::new(
        CustomerRepository::new(store),
        Arc::new(SystemClock),
        Arc::new(UlidGenerator::default()),
    )
}

async fn concurrent_duplicate_emails_have_one_winner(backend: Backend) {
    let customers = service(store(backend).await);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let customers = customers.clone();
            // Differently cased: the same email to us.
            let email = if i % 2 == 0 {
                "Race@Example.com"
            } else {
                "race@example.COM"
            };
            tokio::spawn(async move {
                customers
                    .create(
                        CustomerDraft {
                            email: Some(email.into()),
                            ..Default::default()
                        },
                        None,
                    )
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(shared::DomainError::InvalidData(m)) => {
                assert!(m.contains("already exists"), "{m}")
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(customers.list(&Default::default()).await.unwrap().count, 1);
    // A registered account may share the guest's email, as in Medusa.
    customers
        .create(
            CustomerDraft {
                email: Some("race@example.com".into()),
                has_account: true,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
}

async fn concurrent_updates_lose_nothing(backend: Backend) {
    let customers = service(store(backend).await);
    let created = customers
        .create(CustomerDraft::default(), None)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let customers = customers.clone();
            let id = created.id.clone();
            tokio::spawn(async move {
                let mut metadata = serde_json::Map::new();
                metadata.insert(format!("k{i}"), json!(i));
                let patch = CustomerPatch {
                    metadata: Some(Some(metadata)),
                    ..Default::default()
                };
                customers.update(&id, &patch).await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            // Under heavy contention an update may give up, but then it must say so.
            Err(shared::DomainError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let stored = customers.retrieve(&created.id).await.unwrap();
    let keys = stored.metadata.unwrap_or_default().len();
    assert_eq!(keys, ok, "every successful update is visible");
    assert_eq!(stored.version as usize, ok);
    assert!(ok >= 1);
}

/// Applies every transaction, then sends it again and answers with the second outcome: what a
/// client sees when the answer to an applied write was lost and the SDK retried it.
struct AnswerLost {
    inner: Arc<dyn KvStore>,
}

#[async_trait::async_trait]
impl KvStore for AnswerLost {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError> {
        self.inner.batch_get(keys).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.inner.transact(ops.clone()).await?;
        self.inner.transact(ops).await
    }
    async fn batch_write(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        self.inner.batch_write(ops).await
    }
    async fn query(&self, query: &Query) -> Result<QueryPage, StoreError> {
        self.inner.query(query).await
    }
}

async fn creates_retried_after_a_lost_answer_succeed(backend: Backend) {
    let inner = store(backend).await;
    let lossy: Arc<dyn KvStore> = Arc::new(AnswerLost {
        inner: inner.clone(),
    });
    let customers = service(lossy.clone());
    let created = customers
        .create(
            CustomerDraft {
                email: Some("lost@example.com".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .expect("the retry met the create it had applied");
    let addresses = shared::addresses::AddressService::new(
        lossy,
        Arc::new(SystemClock),
        Arc::new(UlidGenerator::default()),
    );
    let patch = shared::addresses::AddressPatch {
        text: vec![("address_1", Some("1 Main St".into()))],
        is_default_shipping: Some(true),
        is_default_billing: None,
        metadata: None,
    };
    addresses
        .create(&created.id, &patch)
        .await
        .expect("the retry met the address it had applied");
    // A write that really lost still says so: the same email again is a duplicate.
    let again = customers
        .create(
            CustomerDraft {
                email: Some("LOST@example.com".into()),
                ..Default::default()
            },
            None,
        )
        .await;
    assert!(
        matches!(&again, Err(shared::DomainError::InvalidData(m)) if m.contains("already exists")),
        "{again:?}"
    );
    let clean = service(inner.clone());
    let page = clean
        .list(&shared::customers::CustomerQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.count, 1, "one customer");
    let clean_addresses = shared::addresses::AddressService::new(
        inner,
        Arc::new(SystemClock),
        Arc::new(UlidGenerator::default()),
    );
    let (listed, count) = clean_addresses
        .list(&created.id, &Default::default())
        .await
        .unwrap();
    assert_eq!(count, 1, "one address: {listed:?}");
}

both_backends!(
    creates_retried_after_a_lost_answer_succeed,
    get_put_delete_and_conditions,
    transactions_are_all_or_nothing,
    transactions_handed_over_together_stand_alone,
    counters_add_atomically,
    adds_handed_over_together_add_up,
    index_entries_left_for_later_follow_their_items,
    queries_page_in_both_directions,
    sorted_keys_are_found_by_queries,
    secondary_indexes_follow_item_changes,
    batches_exceed_single_request_limits,
    concurrent_duplicate_emails_have_one_winner,
    concurrent_updates_lose_nothing,
);

/// The embedded file applies transactions handed over together in order, in one commit: what
/// an add left is what the next transaction reads, a put or delete replaces it, and an add
/// after them starts from what they left.
mod ordered_adds_in_one_commit {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded() {
        let s = store(Backend::Embedded).await;
        let add = |sk: &str, delta| WriteOp::Add {
            key: Key::new("O", sk),
            attribute: "n".into(),
            delta,
            condition: None,
        };
        let holds = |sk: &str, n: i64| WriteOp::Check {
            key: Key::new("O", sk),
            condition: Condition::equals("n", json!(n)),
        };
        let outcomes = s
            .transact_each(vec![
                vec![add("a", 1)],
                vec![holds("a", 1)],
                vec![put(item("O", "a", json!({"n": 100})), None)],
                vec![add("a", 1)],
                vec![add("b", 7)],
                vec![WriteOp::Delete {
                    key: Key::new("O", "b"),
                    condition: None,
                }],
                vec![add("c", 3)],
                vec![add("c", 3)],
                vec![WriteOp::Delete {
                    key: Key::new("O", "c"),
                    condition: None,
                }],
                vec![add("c", 5)],
                vec![holds("c", 6)],
            ])
            .await
            .unwrap();
        let failed: Vec<usize> = (0..outcomes.len())
            .filter(|&i| outcomes[i].is_err())
            .collect();
        assert_eq!(failed, vec![10], "{outcomes:?}");
        let n = |item: Option<Item>| item.map(|i| i["n"].clone());
        assert_eq!(
            n(s.get(&Key::new("O", "a")).await.unwrap()),
            Some(json!(101))
        );
        assert_eq!(s.get(&Key::new("O", "b")).await.unwrap(), None);
        assert_eq!(n(s.get(&Key::new("O", "c")).await.unwrap()), Some(json!(5)));
    }
}

/// The embedded file keeps a commit's items under new keys aside and writes them in key order
/// when the commit ends (or when they grow large): until then every later transaction of the
/// commit reads them, replaces them and deletes them as it would items already written, and
/// afterwards each key is there once, in order, beside and between the keys that were there.
mod new_items_in_one_commit {
    use super::*;

    fn listed(sk: &str, v: i64, sort: &str) -> Item {
        item("N", sk, json!({"v": v, "gsi1pk": "NLIST", "gsi1sk": sort}))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded() {
        let s = store(Backend::Embedded).await;
        let mut before: Vec<WriteOp> = ["d", "f", "k150"]
            .iter()
            .map(|sk| put(item("N", sk, json!({"v": 0})), None))
            .collect();
        before.push(put(listed("b", 0, "b0"), None));
        s.transact(before).await.unwrap();
        let exists = |sk: &str, condition| WriteOp::Check {
            key: Key::new("N", sk),
            condition,
        };
        let delete = |sk: &str| WriteOp::Delete {
            key: Key::new("N", sk),
            condition: Some(Condition::Exists),
        };
        // Large enough that the new items of one commit are written before it ends.
        let blob = "x".repeat(15_000);
        let mut each = vec![
            vec![
                put(item("N", "a", json!({"v": 1})), Some(Condition::NotExists)),
                put(listed("c", 1, "c1"), Some(Condition::NotExists)),
            ],
            vec![put(listed("c", 2, "c2"), Some(Condition::equals("v", 1)))],
            vec![put(listed("e", 1, "e1"), Some(Condition::NotExists))],
            vec![delete("e")],
            vec![WriteOp::Add {
                key: Key::new("N", "a"),
                attribute: "n".into(),
                delta: 5,
                condition: Some(Condition::equals("v", 1)),
            }],
            vec![put(listed("b", 1, "b1"), Some(Condition::equals("v", 0)))],
            vec![put(item("N", "g", json!({"v": 1})), None)],
            // Refused: g is new in this commit, but there.
            vec![put(
                item("N", "g", json!({"v": 9})),
                Some(Condition::NotExists),
            )],
            vec![exists("c", Condition::equals("v", 2))],
            // Refused: e was deleted earlier in this commit.
            vec![exists("e", Condition::Exists)],
        ];
        let first_k = each.len();
        each.extend((0..300).map(|i| {
            let k = format!("k{i:03}");
            let mut new = listed(&k, 1, &k);
            new.insert("blob".into(), json!(blob));
            vec![put(new, Some(Condition::NotExists))]
        }));
        let replaced_k = each.len();
        each.push(vec![put(
            listed("k000", 2, "z-k000"),
            Some(Condition::equals("v", 1)),
        )]);
        each.push(vec![delete("k299")]);
        let outcomes = s.transact_each(each).await.unwrap();
        let failed: Vec<usize> = (0..outcomes.len())
            .filter(|&i| outcomes[i].is_err())
            .collect();
        assert_eq!(failed, vec![7, 9, first_k + 150], "{:?}", &outcomes[..10]);
        assert!(outcomes[replaced_k..].iter().all(Result::is_ok));

        let mut query = Query::new(Index::Main, "N");
        query.limit = 7;
        let all = all_pages(s.as_ref(), query).await;
        let mut expected: Vec<String> = ["a", "b", "c", "d", "f", "g"].map(str::to_owned).to_vec();
        expected.extend((0..299).map(|i| format!("k{i:03}")));
        assert_eq!(sks(&all), expected);
        let at = |sk: &str| &all[expected.iter().position(|e| e == sk).unwrap()];
        assert_eq!((&at("a")["v"], &at("a")["n"]), (&json!(1), &json!(5)));
        assert_eq!(at("b")["v"], json!(1));
        assert_eq!(at("c")["v"], json!(2));
        assert_eq!(at("g")["v"], json!(1));
        assert_eq!(at("k000")["v"], json!(2));
        assert_eq!(at("k000").get("blob"), None);
        assert_eq!(at("k001")["blob"].as_str().map(str::len), Some(15_000));
        assert_eq!(at("k150")["v"], json!(0), "the item that was there stays");
        let sorts: Vec<Value> = all_pages(s.as_ref(), Query::new(Index::Gsi1, "NLIST"))
            .await
            .iter()
            .map(|i| i["gsi1sk"].clone())
            .collect();
        let mut expected_sorts = vec![json!("b1"), json!("c2")];
        expected_sorts.extend(
            (1..299)
                .filter(|i| *i != 150)
                .map(|i| json!(format!("k{i:03}"))),
        );
        expected_sorts.push(json!("z-k000"));
        assert_eq!(sorts, expected_sorts, "one entry each, the last");
    }
}

/// A single transaction that meets a bulk load's new items, in their commit or in another:
/// whichever comes first, the single write is what stays, with one index entry. The rounds
/// make it likely that some land in the same commit (which one is up to timing).
mod single_writes_beside_new_items {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded() {
        let s = store(Backend::Embedded).await;
        let listed = |sk: &str, v: i64, sort: &str| {
            item("M", sk, json!({"v": v, "gsi1pk": "MLIST", "gsi1sk": sort}))
        };
        for round in 0..20 {
            let key = |i: usize| format!("r{round:02}-{i:03}");
            let bulk: Vec<Vec<WriteOp>> = (0..200)
                .map(|i| vec![put(listed(&key(i), 1, &key(i)), Some(Condition::NotExists))])
                .collect();
            let bulk_store = s.clone();
            let bulk = tokio::spawn(async move { bulk_store.transact_each(bulk).await });
            let single = format!("z{round:02}");
            s.transact(vec![put(listed(&key(50), 2, &single), None)])
                .await
                .unwrap();
            let outcomes = bulk.await.unwrap().unwrap();
            let refused: Vec<usize> = (0..outcomes.len())
                .filter(|&i| outcomes[i].is_err())
                .collect();
            assert!(refused.is_empty() || refused == [50], "{refused:?}");
            let kept = s.get(&Key::new("M", key(50))).await.unwrap().unwrap();
            assert_eq!(kept["v"], json!(2), "round {round}");
            let entries: Vec<Value> = all_pages(s.as_ref(), Query::new(Index::Gsi1, "MLIST"))
                .await
                .iter()
                .filter(|i| i["sk"] == json!(key(50)))
                .map(|i| i["gsi1sk"].clone())
                .collect();
            assert_eq!(entries, vec![json!(single)], "round {round}");
        }
        let all = all_pages(s.as_ref(), Query::new(Index::Gsi1, "MLIST")).await;
        assert_eq!(all.len(), 20 * 200);
    }
}

/// A large sorted load on the embedded file goes to a segment beside the B-tree: queries merge
/// it with the items, it survives reopening, a file no commit registered goes, and past four
/// segments the smallest are merged without losing a key.
mod sorted_keys_in_segments {
    use super::*;
    use shared::store::embedded::EmbeddedStore;

    fn open(path: &std::path::Path) -> Arc<dyn KvStore> {
        // The previous handle's writer thread lets go of the file shortly after it is dropped.
        for _ in 0..100 {
            if let Ok(store) = EmbeddedStore::open(path) {
                return Arc::new(store);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("cannot reopen {}", path.display());
    }

    fn segment_files(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("segments dir")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded() {
        let path = integration_tests::temp_dir("segments").join("store.redb");
        let segments = path.with_file_name("store.redb.segments");
        let s = open(&path);
        // A key the B-tree holds too comes once.
        s.put_keys(vec![Key::new("S#1", "k#000004|4")])
            .await
            .unwrap();
        // Five loads of 60,000 keys, interleaved: load `l` holds every key `i` with i % 5 == l.
        let key = |i: usize| Key::new(format!("S#{}", i % 3), format!("k#{i:06}|{}", i % 5));
        // A partition holding the segments' separator cannot go into one: its key goes to the
        // B-tree with the first load.
        let misfit = Key::new("N\0ul", "1");
        for load in 0..5 {
            let keys = (0..300_000).filter(|i| i % 5 == load).map(key);
            let misfits = (load == 0).then(|| misfit.clone());
            s.put_sorted_keys(sorted(keys.chain(misfits)))
                .await
                .unwrap();
        }
        let held = |s: Arc<dyn KvStore>| async move {
            let page = s.query(&Query::new(Index::Main, "N\0ul")).await.unwrap();
            sks(&page.items)
        };
        assert_eq!(held(s.clone()).await, ["1"], "the misfit is kept");
        assert_eq!(
            segment_files(&segments).len(),
            4,
            "the two smallest were merged"
        );
        let expected = |from: usize, to: usize| -> Vec<String> {
            (from..to)
                .filter(|i| i % 3 == 1)
                .map(|i| key(i).sk)
                .collect()
        };
        pages_hold(s.as_ref(), "S#1", "k#0012", 333, &expected(1200, 1300)).await;
        pages_hold(s.as_ref(), "S#1", "k#00", 997, &expected(0, 10_000)).await;
        let mut between = Query::new(Index::Main, "S#1");
        between.sort = SortCondition::Between("k#000003".into(), "k#000010|9".into());
        let page = s.query(&between).await.unwrap();
        assert_eq!(sks(&page.items), ["k#000004|4", "k#000007|2", "k#000010|0"]);
        // Reopened, with a torn file no commit registered beside the segments.
        drop(s);
        std::fs::write(segments.join("9999999999999999.seg"), b"torn").unwrap();
        let s = open(&path);
        assert_eq!(
            segment_files(&segments).len(),
            4,
            "the unregistered file is gone"
        );
        assert_eq!(held(s.clone()).await, ["1"]);
        pages_hold(s.as_ref(), "S#1", "k#2999", 50, &expected(299_900, 300_000)).await;
        // A stream that fails part-way leaves no segment and no key behind.
        let failing = (0..60_000)
            .map(|i| Ok(Key::new("F", format!("{i:06}"))))
            .chain(std::iter::once(Err(StoreError::Backend(
                "spill lost".into(),
            ))));
        assert!(s.put_sorted_keys(Box::new(failing)).await.is_err());
        assert_eq!(segment_files(&segments).len(), 4);
        let f = s.query(&Query::new(Index::Main, "F")).await.unwrap();
        assert!(f.items.is_empty(), "{:?}", f.items.first());
        // A small sorted load goes into the B-tree: no fifth segment.
        s.put_sorted_keys(sorted([Key::new("S#1", "k#000004|9")]))
            .await
            .unwrap();
        assert_eq!(segment_files(&segments).len(), 4);
        assert_eq!(
            s.get(&Key::new("S#1", "k#000004|9"))
                .await
                .unwrap()
                .map(|i| i["sk"].clone()),
            Some(json!("k#000004|9"))
        );
    }
}
