//! The import engine: streams a CSV from the file store (constant memory, whatever its size),
//! parses and validates rows on a blocking thread, upserts them by email with bounded
//! concurrency, records failed rows, and checkpoints after every batch so that a run stopped
//! anywhere (a Lambda's time limit, a crash) goes on from there. Every write is an upsert, so
//! replaying a batch changes nothing.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::format::{self, AddressRecord, Header, ImportRecord, RowError};
use super::{Job, JobStatus, Jobs};
use crate::addresses::{Address, AddressPatch, AddressService};
use crate::backoff::Backoff;
use crate::customers::search::{self, BulkEntries};
use crate::customers::{Customer, CustomerDraft, CustomerPatch, CustomerService, normalize_email};
use crate::error::{DomainError, DomainResult};
use crate::files::FileStore;
use crate::groups::GroupService;
use crate::store::{BatchOp, MAX_TRANSACTION_OPS, WriteOp};

/// Rows per batch by default: the unit of checkpointing and of bounded memory.
pub const BATCH_ROWS: usize = 500;
/// Batches parsed ahead of the writers.
const BATCHES_AHEAD: usize = 2;
/// Batches being written while the next is planned (where the store merges transactions): with
/// one, the planner, the threads making writes ready and the store's writer took turns more
/// than they overlapped (a 100,000-row import kept the two cores 70 % busy).
const BATCHES_WRITING: usize = 2;
/// How often a checkpoint waits for the disk; those between are written without an fsync and
/// become durable with the next one (a crash costs at most this much work again).
const DURABLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// When a run should stop early and leave the rest to the next run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunLimits {
    /// Stop after about this many rows (whole batches).
    pub max_rows: Option<u64>,
    /// Stop at the first batch boundary after this instant.
    pub deadline: Option<Instant>,
}

/// Outcomes of some rows, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
}

/// The checkpoint of the last batch finished, being written (after those before it) while the
/// next batches are planned: the store's one writer takes it after the batches sent before it,
/// and waiting for it there cost the planning loop 2.3-2.5 s of a 6 s, 100,000-row import.
type Checkpointing = Option<tokio::task::JoinHandle<DomainResult<Job>>>;

/// Waits for the checkpoint being written, if any: the job as it saved it.
async fn checkpointed(pending: &mut Checkpointing) -> DomainResult<Option<Job>> {
    match pending.take() {
        Some(task) => task
            .await
            .map_err(|e| DomainError::Internal(format!("checkpoint task: {e}")))?
            .map(Some),
        None => Ok(None),
    }
}

/// When the last checkpoint that waited for the disk was written.
struct DurableEvery(Instant);

impl DurableEvery {
    /// Whether the next checkpoint waits for the disk (then counted from now).
    fn due(&mut self) -> bool {
        let due = self.0.elapsed() >= DURABLE_EVERY;
        if due {
            self.0 = Instant::now();
        }
        due
    }
}

/// The job moved past a written batch, with its counts.
fn moved_past(job: &Job, tally: Tally, end_offset: u64, end_row: u64) -> Job {
    let mut next = job.clone();
    tally.add_to(&mut next);
    next.checkpoint_offset = end_offset;
    next.checkpoint_row = end_row;
    next
}

impl RunLimits {
    fn reached(&self, rows_done: u64) -> bool {
        self.max_rows.is_some_and(|max| rows_done >= max)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

impl Tally {
    pub fn add_to(&self, job: &mut Job) {
        job.processed += self.processed;
        job.created += self.created;
        job.updated += self.updated;
        job.unchanged += self.unchanged;
        job.failed += self.failed;
    }
}

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

struct Batch {
    rows: Vec<Row>,
    /// Byte offset just after the batch's last row, and the row number reached.
    end_offset: u64,
    end_row: u64,
}

/// The rows of a batch the fast path creates, worked out before they are written.
#[derive(Default)]
struct Creates {
    /// Positions in the batch, in the order of `customers`.
    rows: Vec<usize>,
    /// Each customer with what is written in its transaction (taken when it is sent).
    customers: Vec<(Customer, Vec<WriteOp>)>,
    /// Copies for the bulk search entries (empty when there are none to gather).
    kept: Vec<Customer>,
}

impl Creates {
    /// Which rows of a batch of `len` were created, given the outcome of each planned one;
    /// the created customers' search entries go to `bulk`.
    fn settle(
        self,
        len: usize,
        outcomes: Vec<DomainResult<()>>,
        bulk: Option<&BulkEntries>,
    ) -> DomainResult<Vec<bool>> {
        let mut created = vec![false; len];
        let mut kept = self.kept.into_iter();
        for (i, outcome) in self.rows.into_iter().zip(outcomes) {
            created[i] = outcome.is_ok();
            if let (Some(bulk), Some(customer)) = (bulk, kept.next())
                && created[i]
            {
                bulk.add(customer)?;
            }
        }
        Ok(created)
    }
}

/// The customers a batch's rows name (email and `has_account`, and given ids): a batch
/// planned while this one is written leaves those rows to the row-by-row path.
#[derive(Default)]
struct Claimed {
    emails: HashSet<(String, bool)>,
    ids: HashSet<String>,
}

impl Claimed {
    fn of(rows: &[Row]) -> Claimed {
        let mut claimed = Claimed::default();
        for record in rows.iter().filter_map(|(r, _)| r.as_ref().ok()) {
            claimed
                .emails
                .insert((normalize_email(&record.email), record.has_account));
            if let Some(id) = &record.id {
                claimed.ids.insert(id.clone());
            }
        }
        claimed
    }

    fn holds(&self, record: &ImportRecord) -> bool {
        self.emails
            .contains(&(normalize_email(&record.email), record.has_account))
            || record.id.as_ref().is_some_and(|id| self.ids.contains(id))
    }
}

/// A batch whose creates were sent to the store and are being written.
struct Writing {
    batch: Batch,
    creates: Creates,
    /// The creates' outcomes; `None` when they could not be planned.
    creating: Option<tokio::task::JoinHandle<DomainResult<Vec<DomainResult<()>>>>>,
    claimed: Claimed,
}

enum Parsed {
    Header(Vec<String>, u64),
    Batch(Batch),
    Fatal(String),
}

#[derive(Clone)]
pub struct Importer {
    pub jobs: Jobs,
    pub customers: CustomerService,
    pub addresses: AddressService,
    pub groups: GroupService,
    pub files: Arc<dyn FileStore>,
    /// Rows written at the same time.
    pub concurrency: usize,
    /// Rows per batch (checkpoint).
    pub batch_rows: usize,
    /// Pauses before a batch the store failed (busy, timed out, unreachable) is written again.
    pub store_retry: Backoff,
    /// Where sorted runs of search entries spill when a bulk load indexes its customers.
    pub spill_dir: PathBuf,
}

/// Half a second doubling to half a minute, eight tries: rides out a throttled table or a
/// network blip (about two minutes at most) before the run gives up at its checkpoint.
pub fn store_retry() -> Backoff {
    Backoff::new(Duration::from_millis(500), Duration::from_secs(30), 8)
}

pub(crate) fn csv_line(fields: &[String]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let _ = writer.write_record(fields);
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\n')
        .to_owned()
}

/// Reads the CSV on a blocking thread and sends batches; stops when the receiver is dropped.
fn parse_thread(
    reader: crate::files::Reader,
    start_offset: u64,
    start_row: u64,
    header: Option<Vec<String>>,
    batch_rows: usize,
    sender: tokio::sync::mpsc::Sender<Parsed>,
) {
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(std::io::BufReader::with_capacity(256 * 1024, bridge));
    let header = match header {
        Some(h) => Header::detect(h),
        None => {
            let mut first = csv::ByteRecord::new();
            match csv.read_byte_record(&mut first) {
                Ok(true) => {
                    let names: Vec<String> = first
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect();
                    let end = start_offset + csv.position().byte();
                    if sender
                        .blocking_send(Parsed::Header(names.clone(), end))
                        .is_err()
                    {
                        return;
                    }
                    Header::detect(names)
                }
                Ok(false) => Err("The file is empty".into()),
                Err(e) => Err(format!("The header is not valid CSV: {e}")),
            }
        }
    };
    let header = match header {
        Ok(h) => h,
        Err(message) => {
            let _ = sender.blocking_send(Parsed::Fatal(message));
            return;
        }
    };
    let mut row = start_row;
    let batch_rows = batch_rows.max(1);
    let mut rows = Vec::with_capacity(batch_rows);
    let mut raw = csv::ByteRecord::new();
    loop {
        let more = match csv.read_byte_record(&mut raw) {
            Ok(more) => more,
            Err(e) => {
                // A broken row (an unterminated quote runs to the end): report it, stop there.
                row += 1;
                rows.push((
                    Err(RowError {
                        row,
                        column: String::new(),
                        message: format!("Malformed CSV: {e}"),
                    }),
                    None,
                ));
                false
            }
        };
        if more {
            row += 1;
            let (parsed, original) = match csv::StringRecord::from_byte_record(raw.clone()) {
                Ok(record) if record.iter().all(str::is_empty) => {
                    // Blank lines are not rows.
                    row -= 1;
                    continue;
                }
                Ok(record) => {
                    let parsed = format::parse(&header, row, &record);
                    let original = parsed
                        .is_err()
                        .then(|| csv_line(&record.iter().map(str::to_owned).collect::<Vec<_>>()));
                    (parsed, original)
                }
                Err(_) => (
                    Err(RowError {
                        row,
                        column: String::new(),
                        message: "The row is not valid UTF-8".into(),
                    }),
                    Some(String::from_utf8_lossy(raw.as_slice()).into_owned()),
                ),
            };
            rows.push((parsed, original));
        }
        if rows.len() >= batch_rows || (!more && !rows.is_empty()) {
            let batch = Batch {
                rows: std::mem::take(&mut rows),
                end_offset: start_offset + csv.position().byte(),
                end_row: row,
            };
            if sender.blocking_send(Parsed::Batch(batch)).is_err() {
                return;
            }
        }
        if !more {
            return;
        }
    }
}

fn address_from(customer_id: &str, record: &AddressRecord, now: &str) -> DomainResult<Address> {
    let mut object = Map::new();
    for (name, value) in &record.fields {
        object.insert(
            (*name).to_owned(),
            value.clone().map_or(Value::Null, Value::String),
        );
    }
    object.insert("id".into(), record.id.clone().unwrap_or_default().into());
    object.insert(
        "is_default_shipping".into(),
        record.is_default_shipping.into(),
    );
    object.insert(
        "is_default_billing".into(),
        record.is_default_billing.into(),
    );
    object.insert(
        "metadata".into(),
        record.metadata.clone().map_or(Value::Null, Value::Object),
    );
    object.insert("customer_id".into(), customer_id.into());
    object.insert(
        "created_at".into(),
        record
            .created_at
            .clone()
            .unwrap_or_else(|| now.to_owned())
            .into(),
    );
    object.insert(
        "updated_at".into(),
        record
            .updated_at
            .clone()
            .unwrap_or_else(|| now.to_owned())
            .into(),
    );
    object.insert("deleted_at".into(), Value::Null);
    serde_json::from_value(Value::Object(object)).map_err(|e| DomainError::Internal(e.to_string()))
}

/// A new customer as a row describes it.
fn draft_of(record: &ImportRecord) -> CustomerDraft {
    CustomerDraft {
        email: Some(record.email.clone()),
        first_name: record.first_name.clone().flatten(),
        last_name: record.last_name.clone().flatten(),
        company_name: record.company_name.clone().flatten(),
        phone: record.phone.clone().flatten(),
        metadata: record.metadata.clone().flatten(),
        has_account: record.has_account,
    }
}

/// A new address as a row describes it (one without an id: Shopify's default address).
fn patch_of(address: &AddressRecord) -> AddressPatch {
    AddressPatch {
        text: address.fields.clone(),
        is_default_shipping: Some(address.is_default_shipping),
        is_default_billing: Some(address.is_default_billing),
        metadata: address.metadata.clone().map(Some),
    }
}

pub(crate) type Row = (Result<ImportRecord, RowError>, Option<String>);

fn same_profile(a: &Customer, b: &Customer) -> bool {
    (
        &a.email,
        &a.first_name,
        &a.last_name,
        &a.company_name,
        &a.phone,
        &a.metadata,
    ) == (
        &b.email,
        &b.first_name,
        &b.last_name,
        &b.company_name,
        &b.phone,
        &b.metadata,
    )
}

impl Importer {
    /// Runs (or goes on with) an import job until the file ends or `limits` stop it; returns
    /// the job as it is then.
    pub async fn run(&self, job_id: &str, limits: RunLimits) -> DomainResult<Job> {
        let mut job = self.jobs.get(job_id).await?;
        if job.status.is_finished() {
            return Ok(job);
        }
        if job.status == JobStatus::Pending {
            let next = Job {
                status: JobStatus::Running,
                started_at: Some(self.jobs.now()),
                ..job.clone()
            };
            job = self.jobs.save(&job, next).await?;
        }
        let reader = match self.files.open(&job.file_key, job.checkpoint_offset).await {
            Ok(r) => r,
            Err(DomainError::NotFound(m)) => return self.fail(job, m).await,
            Err(e) => return Err(e),
        };
        let (sender, mut receiver) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
        let batch_rows = self.batch_rows;
        let (offset, row, header) = (
            job.checkpoint_offset,
            job.checkpoint_row,
            job.header.clone(),
        );
        let parser = tokio::task::spawn_blocking(move || {
            parse_thread(reader, offset, row, header, batch_rows, sender)
        });
        let started_rows = job.processed;
        let mut stopped_early = false;
        let bulk_wanted = search::deferred_in_bulk(self.customers.store().as_ref());
        let mut durable = DurableEvery(Instant::now());
        // Where the store merges transactions, batches are written while the next is planned.
        let pipelined = self.customers.store().transactions_are_cheap();
        let mut writing: VecDeque<Writing> = VecDeque::new();
        let mut checkpointing: Checkpointing = None;
        let mut fatal = None;
        // Where the store takes them far faster in key order, the search entries of the
        // customers this run creates are written after its rows (see `customers::search`).
        let bulk = if bulk_wanted {
            Some(BulkEntries::new(&self.spill_dir)?)
        } else {
            None
        };
        while let Some(parsed) = receiver.recv().await {
            match parsed {
                Parsed::Fatal(message) => {
                    fatal = Some(message);
                    break;
                }
                Parsed::Header(names, end) => {
                    let format = Header::detect(names.clone())
                        .ok()
                        .map(|h| h.format.name().to_owned());
                    let next = Job {
                        header: Some(names),
                        format,
                        checkpoint_offset: end,
                        ..job.clone()
                    };
                    job = self.jobs.save(&job, next).await?;
                }
                Parsed::Batch(batch) if pipelined => {
                    // This batch's new customers are worked out and sent while the batches
                    // before are written; then the oldest is finished, in file order. Rows of
                    // customers a batch being written names wait for the row-by-row path, which
                    // runs after it; everything else the batches write is apart or adds up.
                    let claimed: Vec<&Claimed> = writing.iter().map(|w| &w.claimed).collect();
                    let planned = self
                        .plan_creates(
                            &batch.rows,
                            job.created_by.as_deref(),
                            &claimed,
                            bulk_wanted,
                        )
                        .await
                        // A store that cannot answer now: the row-by-row path meets it later.
                        .ok();
                    writing.push_back(self.start_writing(batch, planned));
                    if writing.len() > BATCHES_WRITING
                        && let Some(oldest) = writing.pop_front()
                    {
                        job = self
                            .finish_writing(
                                job,
                                oldest,
                                bulk.as_ref(),
                                durable.due(),
                                &mut checkpointing,
                            )
                            .await?;
                    }
                    // Counted as the serial path counts: batches sent are as good as written.
                    let sent: u64 = writing.iter().map(|w| w.batch.rows.len() as u64).sum();
                    if limits.reached(job.processed + sent - started_rows) {
                        stopped_early = true;
                        break;
                    }
                }
                Parsed::Batch(batch) => {
                    job = self
                        .write_batch_retrying(job, batch, bulk.as_ref(), durable.due())
                        .await?;
                    if limits.reached(job.processed - started_rows) {
                        stopped_early = true;
                        break;
                    }
                }
            }
        }
        while let Some(next) = writing.pop_front() {
            job = self
                .finish_writing(job, next, bulk.as_ref(), false, &mut checkpointing)
                .await?;
        }
        if let Some(saved) = checkpointed(&mut checkpointing).await? {
            job = saved;
        }
        if let Some(message) = fatal {
            drop(receiver);
            let _ = parser.await;
            return self.fail(job, message).await;
        }
        drop(receiver);
        let _ = parser.await;
        if stopped_early {
            // The next run may start from a fresh process: the checkpoint it reads goes to disk.
            job = self.jobs.save(&job, job.clone()).await?;
            tracing::info!(
                job_id,
                processed = job.processed,
                "import paused at a checkpoint"
            );
            return Ok(job);
        }
        if let Some(bulk) = bulk {
            self.customers.write_bulk_entries(bulk).await?;
        }
        self.finish(job).await
    }

    /// Parses and validates a whole file without writing anything: `(rows, failed rows)`.
    /// What the benchmark of the parser measures, and a quick check of a file before importing.
    pub async fn dry_run(&self, key: &str) -> DomainResult<(u64, u64)> {
        let reader = self.files.open(key, 0).await?;
        let (sender, mut receiver) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
        let batch_rows = self.batch_rows;
        let parser = tokio::task::spawn_blocking(move || {
            parse_thread(reader, 0, 0, None, batch_rows, sender)
        });
        let (mut rows, mut failed) = (0, 0);
        while let Some(parsed) = receiver.recv().await {
            match parsed {
                Parsed::Fatal(message) => return Err(DomainError::InvalidData(message)),
                Parsed::Header(..) => {}
                Parsed::Batch(batch) => {
                    rows += batch.rows.len() as u64;
                    failed += batch.rows.iter().filter(|(r, _)| r.is_err()).count() as u64;
                }
            }
        }
        let _ = parser.await;
        Ok((rows, failed))
    }

    pub(crate) async fn fail(&self, job: Job, message: String) -> DomainResult<Job> {
        tracing::warn!(job_id = %job.id, %message, "import failed");
        // Rows written before the failure stay; the next indexing pass gets them otherwise.
        if let Err(e) = self.index_pending().await {
            tracing::warn!(job_id = %job.id, error = %e, "search entries left for later");
        }
        self.jobs.fail_job(&job, message).await
    }

    /// Writes the search entries the bulk path left for later (see `customers::search`); a
    /// job is finished only once its customers can be found by `q` through the index.
    pub async fn index_pending(&self) -> DomainResult<u64> {
        self.customers.index_pending(&self.spill_dir).await
    }

    /// The row pipeline every import path shares (a streamed file, a batch of a Distributed
    /// Map): writes the rows, records the failed ones under the job, and counts outcomes.
    /// An `Err` is the store's fault: nothing is counted, and running the same rows again is
    /// harmless (every write is an upsert).
    pub(crate) async fn write_rows(
        &self,
        job_id: &str,
        created_by: Option<&str>,
        rows: Vec<Row>,
        bulk: Option<&BulkEntries>,
    ) -> DomainResult<Tally> {
        let created = if self.customers.store().transactions_are_cheap() {
            self.create_new(&rows, created_by, bulk).await?
        } else {
            Vec::new()
        };
        self.write_others(job_id, created_by, rows, &created).await
    }

    /// The rows of a batch the fast path did not create (`created`, by position; `rows` may be
    /// empty when it created them all), one by one, and the tally of the whole batch.
    async fn write_others(
        &self,
        job_id: &str,
        created_by: Option<&str>,
        rows: Vec<Row>,
        created: &[bool],
    ) -> DomainResult<Tally> {
        type RowResult = (Result<Outcome, RowError>, Option<String>);
        let mut results: Vec<RowResult> = Vec::with_capacity(created.len().max(rows.len()));
        results.extend(
            created
                .iter()
                .filter(|made| **made)
                .map(|_| (Ok(Outcome::Created), None)),
        );
        // The other rows, one queue per customer (email and `has_account`) in file order: queues
        // run side by side, a queue's rows one after the other, so the last row of a customer
        // is the one that stays.
        let mut queues: Vec<Vec<Row>> = Vec::new();
        let mut queue_of: HashMap<(String, bool), usize> = HashMap::new();
        for (i, row) in rows.into_iter().enumerate() {
            if created.get(i).copied().unwrap_or(false) {
                continue;
            }
            let customer = row
                .0
                .as_ref()
                .ok()
                .map(|r| (normalize_email(&r.email), r.has_account));
            match customer.map(|c| queue_of.entry(c)) {
                Some(Entry::Occupied(queue)) => queues[*queue.get()].push(row),
                Some(Entry::Vacant(slot)) => {
                    slot.insert(queues.len());
                    queues.push(vec![row]);
                }
                None => queues.push(vec![row]),
            }
        }
        let upserted: Vec<Result<Vec<RowResult>, DomainError>> = futures::stream::iter(queues)
            .map(|queue| async move {
                let mut outcomes = Vec::with_capacity(queue.len());
                for row in queue {
                    outcomes.push(self.upsert_row(row, created_by).await?);
                }
                Ok(outcomes)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for outcomes in upserted {
            results.extend(outcomes?);
        }
        let mut tally = Tally::default();
        let mut errors = Vec::new();
        for (result, original) in &results {
            tally.processed += 1;
            match result {
                Ok(Outcome::Created) => tally.created += 1,
                Ok(Outcome::Updated) => tally.updated += 1,
                Ok(Outcome::Unchanged) => tally.unchanged += 1,
                Err(e) => {
                    tally.failed += 1;
                    errors.push(BatchOp::Put(Jobs::error_item(
                        job_id,
                        e,
                        original.as_deref().unwrap_or_default(),
                    )));
                }
            }
        }
        if !errors.is_empty() {
            self.jobs.store().batch_write(errors).await?;
        }
        Ok(tally)
    }

    /// One row through [`Importer::upsert`]: its outcome, or its own fault (with the original
    /// row for the error report). An `Err` is the store's fault.
    async fn upsert_row(
        &self,
        (parsed, original): Row,
        created_by: Option<&str>,
    ) -> DomainResult<(Result<Outcome, RowError>, Option<String>)> {
        let record = match parsed {
            Ok(record) => record,
            Err(e) => return Ok((Err(e), original)),
        };
        let row = record.row;
        match self.upsert(record, created_by).await {
            Ok(outcome) => Ok((Ok(outcome), None)),
            Err(
                DomainError::InvalidData(message)
                | DomainError::Duplicate(message)
                | DomainError::NotFound(message),
            ) => Ok((
                Err(RowError {
                    row,
                    column: String::new(),
                    message,
                }),
                original,
            )),
            Err(e) => Err(e),
        }
    }

    /// Writes a batch, again after a pause when the store failed for now: every write is an
    /// upsert, so repeating rows is harmless. When the store stays away the error ends the run
    /// and the job waits at its last checkpoint for the next one.
    async fn write_batch_retrying(
        &self,
        job: Job,
        batch: Batch,
        bulk: Option<&BulkEntries>,
        durable: bool,
    ) -> DomainResult<Job> {
        self.retrying(&job.id, "batch", || {
            let attempt = Batch {
                rows: batch.rows.clone(),
                ..batch
            };
            self.write_batch(job.clone(), attempt, bulk, durable)
        })
        .await
    }

    /// Runs `attempt` again after a pause while the store fails for now (busy, timed out,
    /// unreachable); its error once the pauses run out.
    async fn retrying<T, F, Fut>(&self, job_id: &str, what: &str, mut attempt: F) -> DomainResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = DomainResult<T>>,
    {
        let mut backoff = self.store_retry.clone();
        loop {
            match attempt().await {
                Err(e @ DomainError::Unavailable(_)) => {
                    tracing::warn!(job_id, error = %e, "{what} not written, retrying");
                    if !backoff.wait().await {
                        return Err(e);
                    }
                }
                other => return other,
            }
        }
    }

    async fn write_batch(
        &self,
        job: Job,
        batch: Batch,
        bulk: Option<&BulkEntries>,
        durable: bool,
    ) -> DomainResult<Job> {
        let tally = self
            .write_rows(&job.id, job.created_by.as_deref(), batch.rows, bulk)
            .await?;
        self.checkpoint(job, tally, batch.end_offset, batch.end_row, durable)
            .await
    }

    /// The job moved past a written batch, with its counts, saved.
    async fn checkpoint(
        &self,
        job: Job,
        tally: Tally,
        end_offset: u64,
        end_row: u64,
        durable: bool,
    ) -> DomainResult<Job> {
        let next = moved_past(&job, tally, end_offset, end_row);
        self.jobs.save_checkpoint(&job, next, durable).await
    }

    /// [`Importer::checkpoint`] on a task of its own, which writes it after the one before:
    /// returns the job as it will be saved, so the next batch goes on from it at once. The
    /// planning loop waiting for the checkpoint before kept the store's writer idle: that
    /// checkpoint sat in its queue behind the newest batch, so the loop waited for the store
    /// to run dry before planning the next.
    async fn checkpoint_later(
        &self,
        job: Job,
        tally: Tally,
        (end_offset, end_row): (u64, u64),
        durable: bool,
        checkpointing: &mut Checkpointing,
    ) -> DomainResult<Job> {
        // One already written is looked at now, so that a refused one stops the run at once;
        // one still waiting behind batches in the store's queue is waited for by this one.
        let before = match checkpointing.take() {
            Some(task) if task.is_finished() => {
                checkpointed(&mut Some(task)).await?;
                None
            }
            unfinished => unfinished,
        };
        let next = moved_past(&job, tally, end_offset, end_row);
        let saved = Jobs::saved_as(&job, next.clone());
        let importer = self.clone();
        *checkpointing = Some(tokio::spawn(async move {
            let mut before = before;
            checkpointed(&mut before).await?;
            importer
                .retrying(&job.id, "checkpoint", || {
                    importer.jobs.save_checkpoint(&job, next.clone(), durable)
                })
                .await
        }));
        Ok(saved)
    }

    /// Sends the creates planned for `batch` to the store (a task of their own, so that the
    /// next batch is planned meanwhile).
    fn start_writing(&self, batch: Batch, planned: Option<Creates>) -> Writing {
        let claimed = Claimed::of(&batch.rows);
        let (creates, creating) = match planned {
            Some(mut creates) => {
                let customers = std::mem::take(&mut creates.customers);
                let service = self.customers.clone();
                let task =
                    tokio::spawn(async move { service.create_many_imported(customers).await });
                (creates, Some(task))
            }
            None => (Creates::default(), None),
        };
        Writing {
            batch,
            creates,
            creating,
            claimed,
        }
    }

    /// Waits for a batch's creates, writes its other rows and checkpoints (the checkpoint is
    /// written while the caller goes on, see [`Checkpointing`]). A batch whose creates were not
    /// planned or not written goes the whole way again, as a failed batch does: every write is
    /// an upsert.
    async fn finish_writing(
        &self,
        job: Job,
        writing: Writing,
        bulk: Option<&BulkEntries>,
        durable: bool,
        checkpointing: &mut Checkpointing,
    ) -> DomainResult<Job> {
        let Writing {
            batch,
            creates,
            creating,
            ..
        } = writing;
        let outcomes = match creating {
            Some(task) => match task
                .await
                .map_err(|e| DomainError::Internal(e.to_string()))
                .and_then(|written| written)
            {
                Ok(outcomes) => Some(outcomes),
                Err(e) => {
                    tracing::warn!(job_id = %job.id, error = %e, "batch not written, retrying");
                    None
                }
            },
            None => None,
        };
        let Some(outcomes) = outcomes else {
            checkpointed(checkpointing).await?;
            return self.write_batch_retrying(job, batch, bulk, durable).await;
        };
        let created = creates.settle(batch.rows.len(), outcomes, bulk)?;
        let others = if created.iter().all(|made| *made) {
            Vec::new()
        } else {
            batch.rows.clone()
        };
        match self
            .write_others(&job.id, job.created_by.as_deref(), others, &created)
            .await
        {
            Ok(tally) => {
                let end = (batch.end_offset, batch.end_row);
                self.checkpoint_later(job, tally, end, durable, checkpointing)
                    .await
            }
            Err(e @ DomainError::Unavailable(_)) => {
                tracing::warn!(job_id = %job.id, error = %e, "batch not written, retrying");
                checkpointed(checkpointing).await?;
                self.write_batch_retrying(job, batch, bulk, durable).await
            }
            Err(e) => Err(e),
        }
    }

    /// The fast path of a batch where the store merges transactions (the embedded file): every
    /// row whose customer is new — its email unknown and first in the batch, its id (if any)
    /// unused — is created with its memberships and addresses in one transaction of its own,
    /// and all of them in one commit. Returns which rows were created; the others (updates,
    /// repeats, and anything unusual or refused) go through [`Importer::upsert`], which
    /// decides them one by one, so the outcome is the same as without this path.
    ///
    /// The new customers' search entries go to `bulk`, to be written after the load.
    async fn create_new(
        &self,
        rows: &[Row],
        created_by: Option<&str>,
        bulk: Option<&BulkEntries>,
    ) -> DomainResult<Vec<bool>> {
        let mut creates = self
            .plan_creates(rows, created_by, &[], bulk.is_some())
            .await?;
        let customers = std::mem::take(&mut creates.customers);
        let outcomes = self.customers.create_many_imported(customers).await?;
        creates.settle(rows.len(), outcomes, bulk)
    }

    /// Works out which rows of a batch the fast path creates and what it writes for each;
    /// rows of customers in `claimed` (a batch still being written) are left to the row-by-row
    /// path, which runs after that batch, so the file's order decides between them. `keep`
    /// keeps a copy of each customer for the bulk search entries.
    async fn plan_creates(
        &self,
        rows: &[Row],
        created_by: Option<&str>,
        claimed: &[&Claimed],
        keep: bool,
    ) -> DomainResult<Creates> {
        let records: Vec<(usize, &ImportRecord)> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, (r, _))| r.as_ref().ok().map(|r| (i, r)))
            .filter(|(_, r)| !claimed.iter().any(|c| c.holds(r)))
            .collect();
        if records.is_empty() {
            return Ok(Creates::default());
        }
        let emails: Vec<(String, bool)> = records
            .iter()
            .map(|(_, r)| (r.email.clone(), r.has_account))
            .collect();
        let ids: Vec<String> = records.iter().filter_map(|(_, r)| r.id.clone()).collect();
        let (taken_emails, taken_ids) = self.customers.taken(&emails, &ids).await?;
        let mut seen_emails = HashSet::new();
        let mut seen_ids = HashSet::new();
        let candidates: Vec<(usize, &ImportRecord)> = records
            .into_iter()
            .filter(|(_, r)| {
                let email = (normalize_email(&r.email), r.has_account);
                let id_free =
                    r.id.as_ref()
                        .is_none_or(|id| !taken_ids.contains(id) && seen_ids.insert(id.clone()));
                let defaults = |flag: fn(&AddressRecord) -> bool| {
                    r.addresses.iter().filter(|a| flag(a)).count() <= 1
                };
                seen_emails.insert(email.clone())
                    && !taken_emails.contains(&email)
                    && id_free
                    && defaults(|a| a.is_default_shipping)
                    && defaults(|a| a.is_default_billing)
            })
            .collect();
        // Each group once per batch; a name that cannot be resolved leaves its rows to `upsert`,
        // which reports why.
        let names: BTreeSet<&str> = candidates
            .iter()
            .flat_map(|(_, r)| r.groups.iter().map(String::as_str))
            .collect();
        let mut group_ids = HashMap::new();
        for name in names {
            if let Ok(id) = self.groups.ensure_named(name, created_by).await {
                group_ids.insert(name, id);
            }
        }
        let now = self.jobs.now();
        let mut planned = Vec::with_capacity(candidates.len());
        let mut customers = Vec::with_capacity(candidates.len());
        for (i, record) in candidates {
            let Some(groups) = record
                .groups
                .iter()
                .map(|g| group_ids.get(g.as_str()).cloned())
                .collect::<Option<Vec<String>>>()
            else {
                continue;
            };
            let Ok(customer) = self.customers.imported(
                draft_of(record),
                record.id.clone(),
                record.created_at.clone(),
                record.updated_at.clone(),
                created_by.map(str::to_owned),
            ) else {
                continue;
            };
            let Ok(mut extra) =
                self.groups
                    .memberships_of_new_customer(&customer.id, &groups, created_by)
            else {
                continue;
            };
            let addresses: DomainResult<Vec<Vec<WriteOp>>> = record
                .addresses
                .iter()
                .map(|a| {
                    let address = match &a.id {
                        Some(_) => address_from(&customer.id, a, &now)?,
                        None => self.addresses.prepare(&customer.id, &patch_of(a))?,
                    };
                    self.addresses.writes_for_new_customer(&address)
                })
                .collect();
            let Ok(addresses) = addresses else {
                continue;
            };
            extra.extend(addresses.into_iter().flatten());
            if extra.len() + 3 > MAX_TRANSACTION_OPS {
                continue;
            }
            planned.push(i);
            customers.push((customer, extra));
        }
        // What the bulk entries need once the customers are written (`customers` moves).
        let kept = if keep {
            customers.iter().map(|(c, _)| c.clone()).collect()
        } else {
            Vec::new()
        };
        Ok(Creates {
            rows: planned,
            customers,
            kept,
        })
    }

    /// Creates or updates the customer of `record` by email (and `has_account`), then its
    /// groups and addresses.
    pub async fn upsert(
        &self,
        record: ImportRecord,
        created_by: Option<&str>,
    ) -> DomainResult<Outcome> {
        let mut outcome = Outcome::Unchanged;
        let mut customer = None;
        let mut fresh = false;
        for _ in 0..3 {
            if let Some(current) = self
                .customers
                .find_by_email(&record.email, record.has_account)
                .await?
            {
                let patch = CustomerPatch {
                    email: None,
                    first_name: record.first_name.clone(),
                    last_name: record.last_name.clone(),
                    company_name: record.company_name.clone(),
                    phone: record.phone.clone(),
                    metadata: record.metadata.clone(),
                };
                let wanted = patch.apply(&current)?;
                if same_profile(&wanted, &current) {
                    customer = Some(current);
                } else {
                    customer = Some(self.customers.update(&current.id, &patch).await?);
                    outcome = Outcome::Updated;
                }
                break;
            }
            let id = match &record.id {
                Some(id) if self.customers.retrieve(id).await.is_err() => Some(id.clone()),
                _ => None,
            };
            // A new customer has no groups or addresses yet: nothing to read back below.
            fresh = true;
            let new_customer = self.customers.imported(
                draft_of(&record),
                id,
                record.created_at.clone(),
                record.updated_at.clone(),
                created_by.map(str::to_owned),
            )?;
            match self.customers.create_imported(new_customer).await {
                Ok(created) => {
                    customer = Some(created);
                    outcome = Outcome::Created;
                    break;
                }
                // Another row (or run) created this email meanwhile: update it instead.
                Err(DomainError::InvalidData(m)) if m.ends_with("already exists.") => continue,
                // The id is taken (say, by a deleted customer): a new one.
                Err(DomainError::Internal(m)) if m.contains("already used") => {
                    let mut again = record.clone();
                    again.id = None;
                    return Box::pin(self.upsert(again, created_by)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let customer = customer.ok_or_else(|| {
            DomainError::Conflict(format!(
                "Customer {} is being changed by other requests",
                record.email
            ))
        })?;
        let mut changed = false;
        if !record.groups.is_empty() {
            let mut ids = Vec::with_capacity(record.groups.len());
            for name in &record.groups {
                ids.push(self.groups.ensure_named(name, created_by).await?);
            }
            let current: Vec<String> = if fresh && outcome == Outcome::Created {
                Vec::new()
            } else {
                self.groups
                    .groups_of(&customer.id)
                    .await?
                    .into_iter()
                    .map(|g| g.id)
                    .collect()
            };
            let missing: Vec<String> = ids.into_iter().filter(|g| !current.contains(g)).collect();
            if !missing.is_empty() {
                self.groups
                    .batch_groups(&customer.id, &missing, &[], created_by)
                    .await?;
                changed = true;
            }
        }
        if !record.addresses.is_empty() {
            let now = self.jobs.now();
            let existing = if fresh && outcome == Outcome::Created {
                Vec::new()
            } else {
                self.addresses.all(&customer.id).await?
            };
            for address in &record.addresses {
                if address.id.is_some() {
                    changed |= self
                        .addresses
                        .import(&customer.id, &address_from(&customer.id, address, &now)?)
                        .await?;
                    continue;
                }
                let text = |a: &Address, f: &str| a.text(f).map(str::to_owned);
                let field = |f: &str| {
                    address
                        .fields
                        .iter()
                        .find(|(n, _)| *n == f)
                        .and_then(|(_, v)| v.clone())
                };
                let known = existing.iter().any(|a| {
                    ["address_1", "postal_code", "country_code"]
                        .iter()
                        .all(|f| text(a, f) == field(f))
                });
                if !known {
                    self.addresses
                        .create(&customer.id, &patch_of(address))
                        .await?;
                    changed = true;
                }
            }
        }
        if changed && outcome == Outcome::Unchanged {
            outcome = Outcome::Updated;
        }
        Ok(outcome)
    }

    /// Writes the error report (if any row failed) and the final status.
    pub(crate) async fn finish(&self, job: Job) -> DomainResult<Job> {
        self.index_pending().await?;
        let mut report_key = None;
        if job.failed > 0 {
            let key = format!("reports/{}-errors.csv", job.id);
            let mut writer = self.files.create(&key, "text/csv").await?;
            writer.write(b"row,column,message,original_row\n").await?;
            let mut after = None;
            loop {
                let page = self.jobs.errors(&job.id, after).await?;
                for item in &page.items {
                    let text = |k: &str| {
                        item.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let row = item
                        .get("row")
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                        .to_string();
                    // A spreadsheet runs a cell that starts like a formula: the original
                    // row and the message repeat what the file said, so every cell is
                    // neutralised as exports are (OWASP CSV injection).
                    let cells = [row, text("column"), text("message"), text("original")]
                        .map(|cell| super::format::neutralise(&cell).into_owned());
                    let line = csv_line(&cells);
                    writer.write(format!("{line}\n").as_bytes()).await?;
                }
                match page.last_key {
                    Some(last) => after = Some(last),
                    None => break,
                }
            }
            writer.finish().await?;
            report_key = Some(key);
        }
        let status = if job.failed == 0 {
            JobStatus::Succeeded
        } else if job.failed == job.processed {
            JobStatus::Failed
        } else {
            JobStatus::PartiallyFailed
        };
        let next = Job {
            status,
            error_report_key: report_key,
            finished_at: Some(self.jobs.now()),
            ..job.clone()
        };
        let saved = self.jobs.save(&job, next).await?;
        tracing::info!(job_id = %saved.id, processed = saved.processed, created = saved.created, updated = saved.updated, failed = saved.failed, "import finished");
        Ok(saved)
    }
}

/// The job as the API shows it (`{import: …}`), with the error report's URL.
pub fn render(job: &Job, error_report_url: Option<String>) -> Value {
    json!({
        "id": job.id,
        "status": job.status,
        "file_key": job.file_key,
        "format": job.format,
        "processed": job.processed,
        "created": job.created,
        "updated": job.updated,
        "unchanged": job.unchanged,
        "failed": job.failed,
        "error_report_url": error_report_url,
        "message": job.message,
        "created_by": job.created_by,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    })
}
