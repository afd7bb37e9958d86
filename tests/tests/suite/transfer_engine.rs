//! The import engine below HTTP: resuming after a stop or a crash, throttling at the store
//! seam, and the S3 path (files dropped into the bucket, events delivered twice) over moto.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use functions::http::{JobRunner, Transfer};
use integration_tests::{Backend, both_backends, fresh_store, moto_endpoint, temp_dir};
use serde_json::{Value, json};
use shared::backoff::Backoff;
use shared::customers::{CustomerOrder, CustomerQuery, Direction};
use shared::files::{FileStore, LocalFiles, S3Files};
use shared::ports::{SystemClock, UlidGenerator};
use shared::store::{BatchOp, Item, Key, KvStore, Query, QueryPage, StoreError, WriteOp};
use shared::transfer::import::RunLimits;
use shared::transfer::{Job, JobKind, JobStatus};

fn shopify(rows: usize) -> String {
    let mut csv = String::from(
        "Customer ID,First Name,Last Name,Email,Default Address Address1,Default Address Country Code,Default Address Zip,Tags\n",
    );
    for i in 0..rows {
        csv.push_str(&format!(
            "'{},First{i},Last{i},person{i}@example.com,{i} Main St,US,'{:05},{}\n",
            9000 + i,
            i,
            if i % 3 == 0 { "VIP" } else { "" }
        ));
    }
    csv
}

/// Batches of 20 rows: many checkpoints from few rows (moto is slow).
const BATCH: usize = 20;

fn transfer(store: Arc<dyn KvStore>, files: Arc<dyn FileStore>) -> Transfer {
    let domain = functions::app::services(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(UlidGenerator::default()),
    );
    let mut t = functions::app::transfer_from(
        &store,
        &domain,
        files,
        JobRunner::InProcess,
        temp_dir("spill"),
    );
    t.importer.batch_rows = BATCH;
    t
}

/// A new import job of the file `key` in the transfer's folder.
async fn import_job(t: &Transfer, key: &str) -> Job {
    t.jobs
        .create(JobKind::Import, key, None, None, None)
        .await
        .expect("import job")
}

/// A job importing `shopify(rows)` from a folder of its own, and the transfer that runs it.
async fn shopify_import(store: Arc<dyn KvStore>, folder: &str, rows: usize) -> (Transfer, Job) {
    let folder = temp_dir(folder);
    std::fs::write(folder.join("customers.csv"), shopify(rows)).unwrap();
    let t = transfer(store, Arc::new(LocalFiles::new(folder)));
    let job = import_job(&t, "customers.csv").await;
    (t, job)
}

/// Runs the job until about `rows` rows are done (whole batches), as a run near its time
/// limit stops.
async fn run_at_most(t: &Transfer, job_id: &str, rows: u64) -> Job {
    let limits = RunLimits {
        max_rows: Some(rows),
        deadline: None,
    };
    t.importer.run(job_id, limits).await.unwrap()
}

async fn customer_count(t: &Transfer) -> usize {
    t.importer
        .customers
        .list(&CustomerQuery {
            limit: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .count
}

async fn import_resumes_after_a_stop_and_a_crash(backend: Backend) {
    let Some(store) = fresh_store(backend).await else {
        return;
    };
    let rows = if backend == Backend::Embedded {
        2_000
    } else {
        100
    };
    let folder = temp_dir("resume");
    std::fs::write(folder.join("customers.csv"), shopify(rows)).unwrap();
    let t = transfer(store, Arc::new(LocalFiles::new(folder)));
    let job = t
        .jobs
        .create(
            JobKind::Import,
            "customers.csv",
            None,
            None,
            Some("test".into()),
        )
        .await
        .unwrap();

    // Stopped after the first batch (a Lambda near its time limit): a checkpoint, not the end.
    let paused = run_at_most(&t, &job.id, 1).await;
    assert_eq!(
        (paused.processed, paused.created),
        (BATCH as u64, BATCH as u64)
    );
    assert!(!paused.status.is_finished() && paused.checkpoint_offset > 0);
    assert_eq!(paused.format.as_deref(), Some("shopify"));

    // A crash in the middle of the next batch: half of its rows were written, the checkpoint
    // was not. The next run replays the batch.
    let csv = shopify(rows);
    let header =
        csv::StringRecord::from(csv.lines().next().unwrap().split(',').collect::<Vec<_>>());
    let parsed_header =
        shared::transfer::format::Header::detect(header.iter().map(str::to_owned).collect())
            .unwrap();
    for line in csv.lines().skip(1 + BATCH).take(BATCH / 2) {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let record = reader.records().next().unwrap().unwrap();
        let parsed = shared::transfer::format::parse(&parsed_header, 0, &record).unwrap();
        t.importer.upsert(parsed, Some("test")).await.unwrap();
    }
    let done = t.importer.run(&job.id, RunLimits::default()).await.unwrap();
    assert_eq!(
        done.status,
        shared::transfer::JobStatus::Succeeded,
        "{done:?}"
    );
    assert_eq!(done.processed, rows as u64);
    assert_eq!(done.created + done.unchanged, rows as u64);
    assert_eq!(
        done.unchanged,
        (BATCH / 2) as u64,
        "the replayed rows were already there"
    );
    assert_eq!(customer_count(&t).await, rows, "no duplicates");
    // Running a finished job again does nothing.
    let again = t.importer.run(&job.id, RunLimits::default()).await.unwrap();
    assert_eq!(again, done);
}

/// One batch holding new customers, a repeat of one of them and, twice, a customer the store
/// already has: new ones are created (on the embedded file all in one commit), the repeats and
/// the known one are updated in file order, and memberships, member counts and addresses come out exactly as if every
/// row had been upserted on its own.
async fn one_batch_mixes_new_repeated_and_known_customers(backend: Backend) {
    let Some(store) = fresh_store(backend).await else {
        return;
    };
    let folder = temp_dir("mixed");
    let header = "Customer ID,First Name,Last Name,Email,Default Address Address1,Default Address Country Code,Default Address Zip,Tags\n";
    let mut csv = String::from(header);
    for i in 0..8 {
        csv.push_str(&format!(
            "'{i},First{i},Last{i},new{i}@example.com,{i} Main St,US,'0000{i},VIP\n"
        ));
    }
    // The repeat: same email in other case, another name, one more tag, the same address.
    csv.push_str("'0,Renamed,Last0,NEW0@example.com,0 Main St,US,'00000,\"VIP, Retail\"\n");
    csv.push_str("'99,Known,Person,known@example.com,1 Known Rd,US,'11111,Retail\n");
    // The known customer again: rows of one customer apply in file order, the last one stays.
    csv.push_str("'99,Final,Person,KNOWN@example.com,1 Known Rd,US,'11111,Retail\n");
    std::fs::write(folder.join("customers.csv"), csv).unwrap();
    let t = transfer(store.clone(), Arc::new(LocalFiles::new(folder)));
    let known = t
        .importer
        .customers
        .create(
            shared::customers::CustomerDraft {
                email: Some("known@example.com".into()),
                first_name: Some("Old".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let job = import_job(&t, "customers.csv").await;
    let done = t.importer.run(&job.id, RunLimits::default()).await.unwrap();
    assert_eq!(
        (done.processed, done.created, done.updated, done.failed),
        (11, 8, 3, 0),
        "{done:?}"
    );
    assert_eq!(customer_count(&t).await, 9, "the repeat is no new customer");
    let first = t
        .importer
        .customers
        .find_by_email("new0@example.com", false)
        .await
        .unwrap()
        .expect("created");
    assert_eq!(first.first_name.as_deref(), Some("Renamed"));
    let mut groups: Vec<String> = t
        .importer
        .groups
        .groups_of(&first.id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    groups.sort();
    assert_eq!(groups, ["Retail", "VIP"]);
    assert_eq!(
        t.importer.addresses.all(&first.id).await.unwrap().len(),
        1,
        "the same address once"
    );
    let known_now = t.importer.customers.retrieve(&known.id).await.unwrap();
    assert_eq!(known_now.first_name.as_deref(), Some("Final"));
    assert_eq!(t.importer.addresses.all(&known.id).await.unwrap().len(), 1);
    // Member counts agree with the memberships written.
    for (name, members) in [("VIP", 8), ("Retail", 2)] {
        let id = t.importer.groups.ensure_named(name, None).await.unwrap();
        let page = t.importer.groups.members(&id, None, 100).await.unwrap();
        assert_eq!(page.customer_ids.len(), members, "{name} members");
        let group = store
            .get(&shared::groups::group_key(&id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            group.get("member_count"),
            Some(&json!(members)),
            "{name} count"
        );
    }
    // The default address markers of a bulk-created customer are in place: a second default
    // address takes the flag over instead of leaving two defaults.
    let imported = t.importer.addresses.all(&first.id).await.unwrap()[0].clone();
    assert!(imported.is_default_shipping && imported.is_default_billing);
    t.importer
        .addresses
        .create(
            &first.id,
            &shared::addresses::AddressPatch {
                text: vec![("address_1", Some("2 Other St".into()))],
                is_default_shipping: Some(true),
                is_default_billing: None,
                metadata: None,
            },
        )
        .await
        .unwrap();
    let before = t
        .importer
        .addresses
        .retrieve(&first.id, &imported.id)
        .await
        .unwrap();
    assert!(
        !before.is_default_shipping,
        "the flag moved to the new address"
    );
    assert!(before.is_default_billing);
}

/// Rows of one customer in two batches apply in file order although the embedded store plans
/// a batch while the one before is written: here the earlier row cannot take the fast path (too
/// many groups for one transaction), so it is written after the next batch was planned.
async fn a_customer_in_consecutive_batches_keeps_its_last_row(backend: Backend) {
    let Some(store) = fresh_store(backend).await else {
        return;
    };
    let folder = temp_dir("consecutive");
    let mut csv = String::from(
        "Customer ID,First Name,Last Name,Email,Default Address Address1,Default Address Country Code,Default Address Zip,Tags\n",
    );
    let many_tags: Vec<String> = (0..60).map(|t| format!("Tag {t:02}")).collect();
    for i in 0..BATCH * 3 {
        let row = match i {
            // The last row of the first batch, and the same customer first in the second.
            i if i == BATCH - 1 => format!(
                "'1,Early,Split,split@example.com,1 Main St,US,'00001,\"{}\"\n",
                many_tags.join(", ")
            ),
            i if i == BATCH => "'1,Late,Split,SPLIT@example.com,1 Main St,US,'00001,\n".into(),
            // A customer new in the second batch and again, renamed, in the third.
            i if i == BATCH * 2 - 1 => {
                "'2,Before,Edge,edge@example.com,2 Main St,US,'00002,\n".into()
            }
            i if i == BATCH * 2 => "'2,After,Edge,edge@example.com,2 Main St,US,'00002,\n".into(),
            // A customer in the first batch and again in the third, while the first may still
            // be being written.
            1 => "'3,Old,Gap,gap@example.com,3 Main St,US,'00003,\n".into(),
            i if i == BATCH * 2 + 1 => "'3,New,Gap,gap@example.com,3 Main St,US,'00003,\n".into(),
            i => format!(
                "'{},First{i},Last{i},row{i}@example.com,{i} Main St,US,'{i:05},\n",
                100 + i
            ),
        };
        csv.push_str(&row);
    }
    std::fs::write(folder.join("customers.csv"), csv).unwrap();
    let t = transfer(store, Arc::new(LocalFiles::new(folder)));
    let job = import_job(&t, "customers.csv").await;
    let done = t.importer.run(&job.id, RunLimits::default()).await.unwrap();
    let rows = (BATCH * 3) as u64;
    assert_eq!(
        (done.processed, done.created, done.updated, done.failed),
        (rows, rows - 3, 3, 0),
        "{done:?}"
    );
    assert_eq!(customer_count(&t).await, BATCH * 3 - 3);
    for (email, last) in [
        ("split@example.com", "Late"),
        ("edge@example.com", "After"),
        ("gap@example.com", "New"),
    ] {
        let customer = t
            .importer
            .customers
            .find_by_email(email, false)
            .await
            .unwrap()
            .expect("imported");
        assert_eq!(customer.first_name.as_deref(), Some(last), "{email}");
    }
    let split = t
        .importer
        .customers
        .find_by_email("split@example.com", false)
        .await
        .unwrap()
        .unwrap();
    let groups = t.importer.groups.groups_of(&split.id).await.unwrap();
    assert_eq!(groups.len(), 60, "the earlier row's groups stay");
    // Renamed by a later row before the import's end: listed once, under its last name, in the
    // lists the embedded file writes at the end.
    for order in [CustomerOrder::LastName, CustomerOrder::Email] {
        let (listed, count) = listed_in_order(&t, order, Direction::Asc, 7).await;
        assert_eq!(
            (listed.len(), count),
            (BATCH * 3 - 3, BATCH * 3 - 3),
            "{order:?}"
        );
        let distinct: std::collections::BTreeSet<&String> = listed.iter().collect();
        assert_eq!(distinct.len(), listed.len(), "{order:?}: each once");
    }
}

fn state_machine() -> Value {
    let path = format!(
        "{}/../infra/import-state-machine.asl.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Feeds a file to the worker's steps the way the import state machine does: items shaped by
/// its `ItemSelector` from the CSV read with the header's names, batched by its `ItemBatcher`,
/// passed with its payloads. Returns the job id.
async fn run_map(t: &Transfer, key: &str, csv_text: &str, repeat_batch: Option<usize>) -> String {
    let definition = state_machine();
    let map = &definition["States"]["ImportRows"];
    let batch_size = map["ItemBatcher"]["MaxItemsPerBatch"].as_u64().unwrap() as usize;
    let start = functions::worker::handle_step(
        t,
        &json!({"step": "start", "bucket": "bucket", "key": key, "etag": "etag-1"}),
    )
    .await
    .unwrap();
    assert_eq!(start["run"], json!(true), "{start}");
    let job_id = start["job_id"].as_str().unwrap().to_owned();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(Into::into).collect();
    let items: Vec<Value> = reader
        .records()
        .enumerate()
        .map(|(index, record)| {
            let cells: serde_json::Map<String, Value> = header
                .iter()
                .cloned()
                .zip(record.unwrap().iter().map(|c| json!(c)))
                .collect();
            json!({"row": index, "cells": cells})
        })
        .collect();
    for (n, batch) in items.chunks(batch_size).enumerate() {
        let payload = json!({
            "step": "rows",
            "BatchInput": {"job_id": job_id},
            "Items": batch,
        });
        let times = if repeat_batch == Some(n) { 2 } else { 1 };
        for _ in 0..times {
            functions::worker::handle_step(t, &payload).await.unwrap();
        }
    }
    job_id
}

/// The Distributed Map path: the definition reads the CSV from S3 in batches processed by the
/// same row pipeline; a repeated event starts nothing, a retried batch counts once, and the
/// last step writes the error report and the totals.
async fn distributed_map_imports_each_batch_once(backend: Backend) {
    let Some(store) = fresh_store(backend).await else {
        return;
    };
    let definition = state_machine();
    let map = &definition["States"]["ImportRows"];
    assert_eq!(map["Type"], "Map");
    assert_eq!(
        map["ItemProcessor"]["ProcessorConfig"]["Mode"],
        "DISTRIBUTED"
    );
    assert_eq!(map["ItemReader"]["ReaderConfig"]["InputType"], "CSV");
    assert_eq!(
        map["ItemReader"]["ReaderConfig"]["CSVHeaderLocation"],
        "FIRST_ROW"
    );
    assert!(
        map["MaxConcurrency"]
            .as_u64()
            .is_some_and(|c| c > 0 && c <= 100)
    );
    assert_eq!(
        map["ItemSelector"],
        json!({"row.$": "$$.Map.Item.Index", "cells.$": "$$.Map.Item.Value"})
    );
    let batch = &map["ItemProcessor"]["States"]["ImportBatch"]["Parameters"]["Payload"];
    assert_eq!(
        batch,
        &json!({"step": "rows", "BatchInput.$": "$.BatchInput", "Items.$": "$.Items"})
    );
    // Small files stream through the worker, large ones go to the map: one threshold for both.
    let template =
        std::fs::read_to_string(format!("{}/../template.yaml", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    assert!(template.contains(r#"size: [{ numeric: ["<", 268435456] }]"#));
    assert!(template.contains(r#"size: [{ numeric: [">=", 268435456] }]"#));
    assert!(template.contains("DefinitionUri: infra/import-state-machine.asl.json"));

    let rows = if backend == Backend::Embedded {
        1_200
    } else {
        120
    };
    let mut csv_text = shopify(rows);
    // Bad rows at known places (rows are numbered from 1 after the header).
    csv_text.push_str("'1,Bad,Email,not-an-email,1 Main St,US,'00001,\n");
    csv_text.push_str("'2,Also,Bad,,1 Main St,US,'00001,\n");
    let folder = temp_dir("map");
    std::fs::create_dir_all(folder.join("imports")).unwrap();
    std::fs::write(folder.join("imports/big.csv"), &csv_text).unwrap();
    let mut t = transfer(store, Arc::new(LocalFiles::new(folder)));
    t.importer.batch_rows = 500;
    let job_id = run_map(&t, "imports/big.csv", &csv_text, Some(1)).await;
    // The same event again: the job is running, this execution stops at once.
    let again = functions::worker::handle_step(
        &t,
        &json!({"step": "start", "bucket": "bucket", "key": "imports/big.csv", "etag": "etag-1"}),
    )
    .await
    .unwrap();
    assert_eq!(again["job_id"], json!(job_id));
    assert_eq!(again["run"], json!(false));
    let running = t.jobs.get(&job_id).await.unwrap();
    assert_eq!(running.processed, rows as u64 + 2, "progress while running");
    let finished = functions::worker::handle_step(&t, &json!({"step": "finish", "job_id": job_id}))
        .await
        .unwrap();
    assert_eq!(finished["status"], "partially_failed");
    let job = t.jobs.get(&job_id).await.unwrap();
    assert_eq!(
        (job.processed, job.created, job.updated, job.failed),
        (rows as u64 + 2, rows as u64, 0, 2),
        "{job:?}"
    );
    assert_eq!(job.format.as_deref(), Some("shopify"));
    assert_eq!(
        customer_count(&t).await,
        rows,
        "the repeated batch made no duplicates"
    );
    let report = job.error_report_key.expect("error report");
    let mut text = String::new();
    use tokio::io::AsyncReadExt;
    t.files
        .open(&report, 0)
        .await
        .unwrap()
        .read_to_string(&mut text)
        .await
        .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[1].starts_with(&format!("{},", rows + 1)), "{text}");
    assert!(lines[2].starts_with(&format!("{},", rows + 2)), "{text}");
    // Finishing twice changes nothing, and a batch arriving after the end is refused, not
    // written.
    let version = t.jobs.get(&job_id).await.unwrap().version;
    functions::worker::handle_step(&t, &json!({"step": "finish", "job_id": job_id}))
        .await
        .unwrap();
    assert_eq!(t.jobs.get(&job_id).await.unwrap().version, version);
    let late = functions::worker::handle_step(
        &t,
        &json!({"step": "rows", "BatchInput": {"job_id": job_id},
                "Items": [{"row": rows + 5, "cells": {"Email": "late@example.com", "First Name": "Late"}}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(functions::worker::step_error(&late).error_type, "Rejected");
    assert_eq!(
        customer_count(&t).await,
        rows,
        "nothing written after the end"
    );
    assert_eq!(t.jobs.get(&job_id).await.unwrap().version, version);
    // An object outside `imports/` is no import: the execution stops without a job.
    let other = functions::worker::handle_step(
        &t,
        &json!({"step": "start", "bucket": "bucket", "key": "exports/x.csv", "etag": "e"}),
    )
    .await
    .unwrap();
    assert_eq!(other["run"], json!(false));
    assert_eq!(other["job_id"], Value::Null);

    // A file we do not know: the batch is rejected (not retried) and the job fails with why.
    let unknown = "Name,Favourite Colour\nAda,green\n";
    let dir = temp_dir("map-unknown");
    std::fs::create_dir_all(dir.join("imports")).unwrap();
    std::fs::write(dir.join("imports/odd.csv"), unknown).unwrap();
    let t2 = Transfer {
        files: Arc::new(LocalFiles::new(dir)),
        ..t.clone()
    };
    let start = functions::worker::handle_step(
        &t2,
        &json!({"step": "start", "bucket": "bucket", "key": "imports/odd.csv", "etag": "etag-2"}),
    )
    .await
    .unwrap();
    let odd = start["job_id"].as_str().unwrap().to_owned();
    let error = functions::worker::handle_step(
        &t2,
        &json!({"step": "rows", "BatchInput": {"job_id": odd},
                "Items": [{"row": 0, "cells": {"Name": "Ada", "Favourite Colour": "green"}}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(functions::worker::step_error(&error).error_type, "Rejected");
    let cause = json!({"errorType": "Rejected", "errorMessage": error.to_string()}).to_string();
    functions::worker::handle_step(
        &t2,
        &json!({"step": "fail", "job_id": odd, "error": {"Error": "Rejected", "Cause": cause}}),
    )
    .await
    .unwrap();
    let failed = t2.jobs.get(&odd).await.unwrap();
    assert_eq!(failed.status, shared::transfer::JobStatus::Failed);
    assert!(
        failed
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("Unrecognised header"),
        "{failed:?}"
    );
}

/// Fails every `every`-th write with `Throttled` (what DynamoDB does once its retries run out),
/// and the next `outage` writes that touch a customer (customer partitions that stopped
/// answering; the job's own item still saves, so what the job says can be checked).
struct Throttling {
    inner: Arc<dyn KvStore>,
    calls: AtomicUsize,
    every: usize,
    outage: AtomicUsize,
}

impl Throttling {
    fn new(inner: Arc<dyn KvStore>, every: usize) -> Self {
        Throttling {
            inner,
            calls: AtomicUsize::new(0),
            every,
            outage: AtomicUsize::new(0),
        }
    }

    fn tick(&self, keys: impl IntoIterator<Item = Key>) -> Result<(), StoreError> {
        let customers = keys.into_iter().any(|k| k.pk.starts_with("CUS"));
        if customers
            && self
                .outage
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(StoreError::Unavailable("injected outage".into()));
        }
        if self.calls.fetch_add(1, Ordering::Relaxed) % self.every == self.every - 1 {
            Err(StoreError::Throttled)
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl KvStore for Throttling {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError> {
        self.inner.batch_get(keys).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.tick(ops.iter().filter_map(|op| op.key().ok()))?;
        self.inner.transact(ops).await
    }
    async fn batch_write(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        self.tick(ops.iter().filter_map(|op| match op {
            BatchOp::Put(item) => Key::of(item).ok(),
            BatchOp::Delete(key) => Some(key.clone()),
        }))?;
        self.inner.batch_write(ops).await
    }
    async fn query(&self, query: &Query) -> Result<QueryPage, StoreError> {
        self.inner.query(query).await
    }
    fn transactions_are_cheap(&self) -> bool {
        self.inner.transactions_are_cheap()
    }
}

fn quick_retries() -> Backoff {
    Backoff::new(Duration::from_millis(1), Duration::from_millis(5), 8)
}

/// A job importing `rows` generated customers through a [`Throttling`] store, with quick retries.
async fn import_through_faults(
    backend: Backend,
    rows: usize,
    every: usize,
) -> Option<(Arc<Throttling>, Transfer, Job, std::path::PathBuf)> {
    let inner = fresh_store(backend).await?;
    let folder = temp_dir("faults");
    std::fs::write(folder.join("customers.csv"), shopify(rows)).unwrap();
    let store = Arc::new(Throttling::new(inner, every));
    let mut t = transfer(store.clone(), Arc::new(LocalFiles::new(folder.clone())));
    t.importer.store_retry = quick_retries();
    let job = import_job(&t, "customers.csv").await;
    Some((store, t, job, folder))
}

/// The job once a run started in process has ended it.
async fn finished(t: &Transfer, id: &str) -> Job {
    for _ in 0..500 {
        let job = t.jobs.get(id).await.unwrap();
        if job.status.is_finished() {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {id} never finished");
}

/// Throttled batches are written again in place: one run imports every row exactly once.
async fn throttled_batches_are_written_again(backend: Backend) {
    let rows = if backend == Backend::Embedded {
        1_000
    } else {
        100
    };
    let Some((throttled, t, job, folder)) = import_through_faults(backend, rows, 37).await else {
        return;
    };
    let done = t.importer.run(&job.id, RunLimits::default()).await.unwrap();
    assert!(
        throttled.calls.load(Ordering::Relaxed) > 37,
        "throttling was injected"
    );
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.processed, rows as u64);
    assert_eq!(done.failed, 0, "{done:?}");
    let clean = transfer(throttled.inner.clone(), Arc::new(LocalFiles::new(folder)));
    assert_eq!(customer_count(&clean).await, rows, "every row once");
}

/// A store that stays away ends the run with the job waiting at its checkpoint; the next run
/// goes on from there. Run in process, the job is failed with the reason instead.
async fn an_outage_pauses_the_import_at_a_checkpoint(backend: Backend) {
    let rows = 100;
    let Some((store, mut t, job, folder)) = import_through_faults(backend, rows, usize::MAX).await
    else {
        return;
    };
    let paused = run_at_most(&t, &job.id, 40).await;
    assert_eq!(paused.processed, 40);
    store.outage.store(usize::MAX, Ordering::Relaxed);
    let error = t.importer.run(&job.id, RunLimits::default()).await;
    assert!(
        matches!(&error, Err(shared::DomainError::Unavailable(m)) if m.contains("injected outage")),
        "{error:?}"
    );
    let waiting = t.jobs.get(&job.id).await.unwrap();
    assert_eq!(waiting.status, JobStatus::Running);
    assert_eq!(waiting.processed, 40, "nothing counted twice or lost");
    store.outage.store(0, Ordering::Relaxed);
    let done = t.importer.run(&job.id, RunLimits::default()).await.unwrap();
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.processed, rows as u64);
    assert_eq!(customer_count(&t).await, rows, "every row once");

    // In process nobody else would come back for a job: the runner starts a cut-short run
    // again. Three tries of a batch (twenty writes each) cannot outlast this outage, so only a
    // new run gets the job through. Other customers: the same ones would be unchanged.
    std::fs::write(
        folder.join("again.csv"),
        shopify(rows).replace('@', "+again@"),
    )
    .unwrap();
    t.importer.store_retry = Backoff::new(Duration::from_millis(1), Duration::from_millis(5), 2);
    let job = import_job(&t, "again.csv").await;
    store.outage.store(100, Ordering::Relaxed);
    t.start(&job).await.unwrap();
    let resumed = finished(&t, &job.id).await;
    assert_eq!(resumed.status, JobStatus::Succeeded, "{resumed:?}");
    assert_eq!(resumed.processed, rows as u64);
    assert_eq!(
        store.outage.load(Ordering::Relaxed),
        0,
        "the outage was met"
    );
    assert_eq!(customer_count(&t).await, 2 * rows, "every row once");

    // When the store stays away, the job ends failed, saying why.
    std::fs::write(
        folder.join("more.csv"),
        shopify(rows).replace('@', "+more@"),
    )
    .unwrap();
    let job = import_job(&t, "more.csv").await;
    store.outage.store(usize::MAX, Ordering::Relaxed);
    t.start(&job).await.unwrap();
    let failed = finished(&t, &job.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(
        failed
            .message
            .as_deref()
            .is_some_and(|m| m.contains("injected outage")),
        "{failed:?}"
    );
}

/// Saves the job itself, as another runner taking it over would, just before the `at`-th save
/// of the job through this store.
struct Rival {
    inner: Arc<dyn KvStore>,
    saves: AtomicUsize,
    at: usize,
}

#[async_trait]
impl KvStore for Rival {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError> {
        self.inner.batch_get(keys).await
    }
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let job = match ops.as_slice() {
            [op] => op
                .key()
                .ok()
                .filter(|k| k.pk.starts_with("JOB#") && k.sk == "#META"),
            _ => None,
        };
        if let Some(key) = job
            && self.saves.fetch_add(1, Ordering::Relaxed) + 1 == self.at
            && let Some(mut item) = self.inner.get(&key).await?
        {
            let version = item["version"].as_u64().unwrap_or(0) + 1;
            item.insert("version".into(), version.into());
            self.inner
                .transact(vec![WriteOp::Put {
                    item,
                    condition: None,
                }])
                .await?;
        }
        self.inner.transact(ops).await
    }
    async fn batch_write(&self, ops: Vec<BatchOp>) -> Result<(), StoreError> {
        self.inner.batch_write(ops).await
    }
    async fn query(&self, query: &Query) -> Result<QueryPage, StoreError> {
        self.inner.query(query).await
    }
    fn transactions_are_cheap(&self) -> bool {
        self.inner.transactions_are_cheap()
    }
}

/// A checkpoint refused because another runner saved the job stops the run with a conflict,
/// though checkpoints are written while later batches go on (the embedded file): the run
/// ends soon after, not at the end of the file.
mod a_job_taken_over_stops_its_run {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded() {
        let inner = fresh_store(Backend::Embedded)
            .await
            .expect("embedded store");
        // Saves: running, the header, then one checkpoint per batch; the third is refused.
        let store: Arc<dyn KvStore> = Arc::new(Rival {
            inner,
            saves: AtomicUsize::new(0),
            at: 5,
        });
        let rows = 20 * BATCH;
        let (t, job) = shopify_import(store, "taken-over", rows).await;
        let outcome = t.importer.run(&job.id, RunLimits::default()).await;
        assert!(
            matches!(&outcome, Err(shared::DomainError::Conflict(m)) if m.contains("run elsewhere")),
            "{outcome:?}"
        );
        let written = customer_count(&t).await;
        assert!(
            (3 * BATCH..=8 * BATCH).contains(&written),
            "stopped a few batches after the refused checkpoint: {written} of {rows}"
        );
    }
}

/// Emails of the customers `q` finds, sorted.
async fn found_by_q(t: &Transfer, q: &str) -> Vec<String> {
    let page = t
        .importer
        .customers
        .list(&CustomerQuery {
            q: Some(q.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut emails: Vec<String> = page.customers.into_iter().filter_map(|c| c.email).collect();
    emails.sort();
    emails
}

/// Emails of every customer in `order`, page after page (pages of `limit`, from the cursor on),
/// and the count each page gave.
async fn listed_in_order(
    t: &Transfer,
    order: CustomerOrder,
    direction: Direction,
    limit: usize,
) -> (Vec<String>, usize) {
    let (mut emails, mut after, mut counts) = (Vec::new(), None, std::collections::BTreeSet::new());
    loop {
        let page = t
            .importer
            .customers
            .list(&CustomerQuery {
                order: Some((order, direction)),
                after: after.take(),
                limit,
                ..Default::default()
            })
            .await
            .unwrap();
        counts.insert(page.count);
        emails.extend(page.customers.into_iter().filter_map(|c| c.email));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(counts.len(), 1, "one count on every page: {counts:?}");
    (emails, counts.into_iter().next().unwrap_or_default())
}

/// The lists by email and by last name hold exactly the live customers among `numbers`
/// (`person<i>`, last name `Last<i>`; `renamed` is now last in name order), both ways.
async fn assert_lists_hold(t: &Transfer, numbers: &[usize], renamed: usize, when: &str) {
    let email = |i: &usize| format!("person{i}@example.com");
    let mut by_email: Vec<String> = numbers.iter().map(email).collect();
    by_email.sort();
    let mut by_name: Vec<&usize> = numbers.iter().filter(|i| **i != renamed).collect();
    by_name.sort_by_key(|i| format!("last{i}"));
    let mut by_name: Vec<String> = by_name.into_iter().map(email).collect();
    by_name.push(email(&renamed));
    for (order, expected) in [
        (CustomerOrder::Email, by_email),
        (CustomerOrder::LastName, by_name),
    ] {
        let (listed, count) = listed_in_order(t, order, Direction::Asc, 7).await;
        assert_eq!(listed, expected, "{order:?} {when}");
        assert_eq!(count, numbers.len(), "{order:?} {when}");
        let (mut backwards, _) = listed_in_order(t, order, Direction::Desc, 7).await;
        backwards.reverse();
        assert_eq!(backwards, expected, "{order:?} descending {when}");
        // Filtered (none of them has an account) and from an offset: counted from the matches.
        let (page, count) = offset_page(t, order, 3, 5).await;
        assert_eq!(page, expected[3..8], "{order:?} from an offset {when}");
        assert_eq!(count, numbers.len(), "{order:?} filtered {when}");
    }
}

/// Emails of `limit` customers without an account in ascending `order` from `offset`, and
/// how many match.
async fn offset_page(
    t: &Transfer,
    order: CustomerOrder,
    offset: usize,
    limit: usize,
) -> (Vec<String>, usize) {
    let page = t
        .importer
        .customers
        .list(&CustomerQuery {
            order: Some((order, Direction::Asc)),
            has_account: Some(false),
            offset,
            limit,
            ..Default::default()
        })
        .await
        .unwrap();
    let emails = page.customers.into_iter().filter_map(|c| c.email).collect();
    (emails, page.count)
}

/// More customers waiting for their list entries than a list keeps at once while it reads
/// them all (twice a scan page): pages by email stay exact, both ways and from an offset.
mod lists_over_many_pending_customers {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded() {
        let store = fresh_store(Backend::Embedded)
            .await
            .expect("embedded store");
        let (t, job) = shopify_import(store.clone(), "many-pending", 1_120).await;
        let paused = run_at_most(&t, &job.id, 1_100).await;
        assert_eq!(paused.created, 1_100);
        assert!(search_markers(&store).await > 0, "their entries still wait");
        let mut expected: Vec<String> = (0..1_100)
            .map(|i| format!("person{i}@example.com"))
            .collect();
        expected.sort();
        let (listed, count) = listed_in_order(&t, CustomerOrder::Email, Direction::Asc, 100).await;
        assert_eq!((listed.len(), count), (1_100, 1_100));
        assert_eq!(listed, expected);
        let (mut backwards, _) =
            listed_in_order(&t, CustomerOrder::Email, Direction::Desc, 100).await;
        backwards.reverse();
        assert_eq!(backwards, expected, "descending");
        let (page, count) = offset_page(&t, CustomerOrder::Email, 600, 7).await;
        assert_eq!(page, expected[600..607]);
        assert_eq!(count, 1_100);
    }
}

/// A bulk load with more search entries than the B-tree takes one by one: on the embedded file
/// they go to a segment beside it, which `q` reads with the B-tree's own entries; a customer
/// edited or deleted afterwards leaves stale entries there, which never show.
mod search_reads_a_bulk_load_from_its_segment {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded() {
        let dir = temp_dir("segment-search");
        let path = dir.join("store.redb");
        let store: Arc<dyn KvStore> =
            Arc::new(shared::store::embedded::EmbeddedStore::open(&path).expect("embedded store"));
        let (mut t, job) = shopify_import(store.clone(), "segment-search-files", 4_000).await;
        t.importer.batch_rows = 500;
        let done = t.importer.run(&job.id, RunLimits::default()).await.unwrap();
        assert_eq!((done.status, done.created), (JobStatus::Succeeded, 4_000));
        assert_eq!(search_markers(&store).await, 0);
        let segments: Vec<_> = std::fs::read_dir(dir.join("store.redb.segments"))
            .unwrap()
            .collect();
        assert_eq!(segments.len(), 1, "the entries went to one segment");
        let mut expected: Vec<String> = std::iter::once(39)
            .chain(390..400)
            .chain(3900..4000)
            .map(|i| format!("person{i}@example.com"))
            .collect();
        expected.sort();
        assert_eq!(found_by_q(&t, "RSON39").await, expected);

        let patch = shared::customers::CustomerPatch {
            first_name: Some(Some("Quenelda".into())),
            ..Default::default()
        };
        edit_and_delete(&t, (3912, patch), 3913).await;
        assert_eq!(found_by_q(&t, "quenel").await, ["person3912@example.com"]);
        assert!(found_by_q(&t, "first3912").await.is_empty(), "the old name");
        assert!(found_by_q(&t, "person3913").await.is_empty(), "deleted");
        assert_eq!(
            found_by_q(&t, "first3914").await,
            ["person3914@example.com"]
        );
    }
}

/// Applies `patch` to customer `person<edited>` and deletes `person<deleted>`.
async fn edit_and_delete(
    t: &Transfer,
    (edited, patch): (usize, shared::customers::CustomerPatch),
    deleted: usize,
) {
    let customers = &t.importer.customers;
    let find = |i: usize| async move {
        customers
            .find_by_email(&format!("person{i}@example.com"), false)
            .await
            .unwrap()
            .expect("imported")
    };
    let renamed = find(edited).await;
    customers.update(&renamed.id, &patch).await.unwrap();
    let gone = find(deleted).await;
    customers.delete(&gone.id).await.unwrap();
}

async fn search_markers(store: &Arc<dyn KvStore>) -> usize {
    let mut query = Query::new(shared::store::Index::Main, "SEARCH#PENDING");
    query.limit = 1000;
    store.query(&query).await.unwrap().items.len()
}

/// On the embedded file a bulk load writes search entries after its rows; `q` must find the
/// customers all along: while only their markers are written, after a run cut short (the
/// entries a crash would lose), after edits and deletes in between, and once indexed.
async fn search_finds_bulk_loaded_customers_before_and_after_indexing(backend: Backend) {
    let Some(store) = fresh_store(backend).await else {
        return;
    };
    let (t, job) = shopify_import(store.clone(), "search-later", 3 * BATCH).await;
    let paused = run_at_most(&t, &job.id, 1).await;
    assert_eq!(paused.created, BATCH as u64);
    let expected_markers = if backend == Backend::Embedded {
        BATCH
    } else {
        0
    };
    assert_eq!(search_markers(&store).await, expected_markers);
    let mut sorted_ones: Vec<String> = [1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        .map(|i| format!("person{i}@example.com"))
        .into_iter()
        .collect();
    sorted_ones.sort();
    assert_eq!(
        found_by_q(&t, "ERSON1").await,
        sorted_ones,
        "not indexed yet"
    );

    // Edits and deletes of customers whose entries are not written yet.
    let patch = shared::customers::CustomerPatch {
        last_name: Some(Some("Zebulon".into())),
        ..Default::default()
    };
    edit_and_delete(&t, (12, patch), 13).await;
    let live: Vec<usize> = (0..BATCH).filter(|i| *i != 13).collect();
    // On the embedded file their list entries wait for the indexing too: lists stay exact.
    assert_lists_hold(&t, &live, 12, "before indexing").await;
    assert_eq!(found_by_q(&t, "zebul").await, ["person12@example.com"]);
    assert!(found_by_q(&t, "last12").await.is_empty(), "the old name");
    assert!(found_by_q(&t, "person13@").await.is_empty(), "deleted");

    // A marker whose customer is not there at all (none is on DynamoDB, which writes no
    // markers): indexing takes it away too.
    if backend == Backend::Embedded {
        store
            .put_keys(vec![shared::customers::search::pending_key("cus_gone")])
            .await
            .unwrap();
    }
    let stray = usize::from(backend == Backend::Embedded);
    assert_eq!(search_markers(&store).await, expected_markers + stray);

    // What a restart does with the markers a cut-short run left: index them.
    assert_eq!(
        t.importer.index_pending().await.unwrap(),
        (expected_markers + stray) as u64
    );
    assert_eq!(search_markers(&store).await, 0);
    assert_eq!(t.importer.index_pending().await.unwrap(), 0, "nothing left");
    // Read from the lists themselves now: each customer once, under its current name.
    assert_lists_hold(&t, &live, 12, "after indexing").await;
    let indexed: Vec<String> = sorted_ones
        .iter()
        .filter(|e| !e.starts_with("person13@"))
        .cloned()
        .collect();
    assert_eq!(found_by_q(&t, "erson1").await, indexed);
    assert_eq!(found_by_q(&t, "zebul").await, ["person12@example.com"]);
    assert!(found_by_q(&t, "last12").await.is_empty());

    // The rest of the file: its entries are written before the job is finished.
    let done = t.importer.run(&job.id, RunLimits::default()).await.unwrap();
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.created, 3 * BATCH as u64);
    assert_eq!(search_markers(&store).await, 0);
    let mut sorted_fives: Vec<String> = [5, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59]
        .map(|i| format!("person{i}@example.com"))
        .into_iter()
        .collect();
    sorted_fives.sort();
    assert_eq!(found_by_q(&t, "rson5").await, sorted_fives);
    assert_eq!(found_by_q(&t, "first55").await, ["person55@example.com"]);
    let live: Vec<usize> = (0..3 * BATCH).filter(|i| *i != 13).collect();
    assert_lists_hold(&t, &live, 12, "after the whole file").await;
}

both_backends!(
    search_finds_bulk_loaded_customers_before_and_after_indexing,
    a_customer_in_consecutive_batches_keeps_its_last_row,
    distributed_map_imports_each_batch_once,
    one_batch_mixes_new_repeated_and_known_customers,
    import_resumes_after_a_stop_and_a_crash,
    throttled_batches_are_written_again,
    an_outage_pauses_the_import_at_a_checkpoint
);

async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    )
}

fn event(bucket: &str, key: &str, etag: &str) -> Value {
    let path = format!(
        "{}/../infra/events/s3-object-created.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["detail"]["bucket"]["name"] = json!(bucket);
    event["detail"]["object"]["key"] = json!(key);
    event["detail"]["object"]["etag"] = json!(etag);
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_dropped_into_the_bucket_are_imported_once() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let s3 = s3_client(&endpoint).await;
    let bucket = integration_tests::unique_name("imports");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket on moto");
    let files: Arc<dyn FileStore> = Arc::new(S3Files::new(s3.clone(), bucket.clone()));
    let store = fresh_store(Backend::DynamoDb).await.unwrap();
    let t = transfer(store, files.clone());
    let key = "imports/from erp/customers+1.csv";
    files
        .put(key, shopify(60).into_bytes(), "text/csv")
        .await
        .unwrap();
    let etag = files.info(key).await.unwrap().unwrap().etag;
    // S3 events carry the key URL-encoded.
    let encoded = "imports/from+erp/customers%2B1.csv";
    let first = functions::worker::handle(&t, &event(&bucket, encoded, &etag), None)
        .await
        .unwrap();
    let functions::worker::Handled::Finished(job_id) = first else {
        panic!("{first:?}");
    };
    let job = t.jobs.get(&job_id).await.unwrap();
    assert_eq!(
        (job.created, job.processed, job.file_key.as_str()),
        (60, 60, key)
    );
    // Delivered again (EventBridge is at-least-once): the same job, nothing new.
    let second = functions::worker::handle(&t, &event(&bucket, encoded, &etag), None)
        .await
        .unwrap();
    assert_eq!(second, functions::worker::Handled::Finished(job_id.clone()));
    assert_eq!(t.jobs.get(&job_id).await.unwrap(), job);
    assert_eq!(customer_count(&t).await, 60);
    // A job made through the API waits for its file at a presigned URL; the file's own event
    // runs that job (not a new one).
    let waiting = t
        .jobs
        .create(
            JobKind::Import,
            "imports/{id}.csv",
            None,
            None,
            Some("user_1".into()),
        )
        .await
        .unwrap();
    let body = shopify(5);
    let upload = files
        .upload_url(
            &waiting.file_key,
            std::time::Duration::from_secs(60),
            body.len() as u64,
        )
        .await
        .unwrap()
        .unwrap();
    // The length is signed: S3 refuses a body of any other size.
    let signed_headers = upload
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("X-Amz-SignedHeaders="))
        .unwrap_or_default()
        .to_owned();
    assert!(signed_headers.contains("content-length"), "{upload}");
    let put = shared::ports::http_client()
        .put(&upload)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let uploaded =
        functions::worker::handle(&t, &event(&bucket, &waiting.file_key, "etag-2"), None)
            .await
            .unwrap();
    assert_eq!(
        uploaded,
        functions::worker::Handled::Finished(waiting.id.clone())
    );
    let done = t.jobs.get(&waiting.id).await.unwrap();
    assert_eq!(
        (done.processed, done.unchanged),
        (5, 5),
        "the same people again: {done:?}"
    );

    // Other prefixes are not ours.
    let other = functions::worker::handle(&t, &event(&bucket, "exports/x.csv", "e"), None)
        .await
        .unwrap();
    assert_eq!(other, functions::worker::Handled::Ignored);

    // An export through S3 (multipart upload) and its presigned download URL.
    let export = t
        .jobs
        .create(
            JobKind::Export,
            "exports/{id}.csv",
            Some("csv".into()),
            Some(String::new()),
            None,
        )
        .await
        .unwrap();
    t.request_run(&export.id, 0).await.unwrap();
    let ran = functions::worker::handle(
        &t,
        &event(&bucket, &format!("jobs/{}-0.json", export.id), "x"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(ran, functions::worker::Handled::Finished(export.id.clone()));
    let done = t.jobs.get(&export.id).await.unwrap();
    assert_eq!(done.row_count, 60);
    let url = files
        .download_url(&done.file_key, std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let body = shared::ports::http_client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body.lines().count(), 61, "header and every customer");
}
