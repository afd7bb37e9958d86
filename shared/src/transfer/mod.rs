//! Bulk import and export of customers as jobs: the job records, the CSV formats, and the
//! streaming import and export engines.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | job | `JOB#<id>` | `#META` (gsi1 `JOBS#import` / `JOBS#export`, by id = creation order) |
//! | row error | `JOB#<id>` | `ERR#<row, zero-padded>` (column, message, original row) |
//! | source marker | `JOBSRC#<file key>#<etag>` | same (`job_id`): one job per uploaded file version |

pub mod distributed;
pub mod export;
pub mod format;
pub mod import;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DomainError, DomainResult};
use crate::ports::{Clock, IdGenerator, iso};
use crate::store::{Condition, Index, Item, Key, KvStore, Query, StoreError, WriteOp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Running,
    Succeeded,
    PartiallyFailed,
    Failed,
}

impl JobStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::PartiallyFailed | JobStatus::Failed
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Import,
    Export,
}

impl JobKind {
    fn prefix(self) -> &'static str {
        match self {
            JobKind::Import => "imp",
            JobKind::Export => "exp",
        }
    }

    fn name(self) -> &'static str {
        match self {
            JobKind::Import => "import",
            JobKind::Export => "export",
        }
    }
}

/// An import or export job, with its progress. Field order is the wire order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub status: JobStatus,
    /// Import: the CSV read; export: the file written.
    pub file_key: String,
    /// `native`, `shopify` (import, once the header is read), `csv` or `ndjson` (export).
    pub format: Option<String>,
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    /// Export: rows written.
    pub row_count: u64,
    pub error_report_key: Option<String>,
    /// Export: the list filters, as the query string of `GET /admin/customers`.
    pub filters: Option<String>,
    pub message: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Import: where to go on from (a byte offset after a whole row) and the header there.
    #[serde(default)]
    pub checkpoint_offset: u64,
    #[serde(default)]
    pub checkpoint_row: u64,
    #[serde(default)]
    pub header: Option<Vec<String>>,
    #[serde(default)]
    pub version: u64,
}

fn job_key(id: &str) -> Key {
    Key::new(format!("JOB#{id}"), "#META")
}

fn internal(e: impl std::fmt::Display) -> DomainError {
    DomainError::Internal(e.to_string())
}

fn to_item(job: &Job) -> DomainResult<Item> {
    let Value::Object(mut item) = serde_json::to_value(job).map_err(internal)? else {
        return Err(internal("job is not an object"));
    };
    let k = job_key(&job.id);
    item.insert("pk".into(), k.pk.into());
    item.insert("sk".into(), k.sk.into());
    item.insert("entity_type".into(), "job".into());
    item.insert("gsi1pk".into(), format!("JOBS#{}", job.kind.name()).into());
    item.insert("gsi1sk".into(), job.id.clone().into());
    Ok(item)
}

fn from_item(item: Item) -> DomainResult<Job> {
    serde_json::from_value(Value::Object(item)).map_err(internal)
}

/// Job records: creation, optimistic updates, listing, row errors.
#[derive(Clone)]
pub struct Jobs {
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl Jobs {
    pub fn new(store: Arc<dyn KvStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        Jobs { store, clock, ids }
    }

    pub fn now(&self) -> String {
        iso(self.clock.now())
    }

    pub fn new_id(&self, kind: JobKind) -> String {
        self.ids.new_id(kind.prefix())
    }

    /// A new job record, not yet stored; `{id}` in `file_key` becomes the job's id.
    fn pending(
        &self,
        kind: JobKind,
        file_key: &str,
        format: Option<String>,
        filters: Option<String>,
        created_by: Option<String>,
    ) -> Job {
        let id = self.new_id(kind);
        Job {
            file_key: file_key.replace("{id}", &id),
            id,
            kind,
            status: JobStatus::Pending,
            format,
            processed: 0,
            created: 0,
            updated: 0,
            unchanged: 0,
            failed: 0,
            row_count: 0,
            error_report_key: None,
            filters,
            message: None,
            created_by,
            created_at: self.now(),
            started_at: None,
            finished_at: None,
            checkpoint_offset: 0,
            checkpoint_row: 0,
            header: None,
            version: 0,
        }
    }

    /// A pending job; `file_key` may name the file to come (`{id}` is replaced by the job id).
    pub async fn create(
        &self,
        kind: JobKind,
        file_key: &str,
        format: Option<String>,
        filters: Option<String>,
        created_by: Option<String>,
    ) -> DomainResult<Job> {
        let job = self.pending(kind, file_key, format, filters, created_by);
        self.store
            .transact(vec![WriteOp::Put {
                item: to_item(&job)?,
                condition: Some(Condition::NotExists),
            }])
            .await?;
        Ok(job)
    }

    /// The import job of an uploaded file version, created on first sight: a second delivery
    /// of the same S3 event finds the first job.
    pub async fn for_source(&self, file_key: &str, etag: &str) -> DomainResult<(Job, bool)> {
        let marker_key = {
            let k = format!("JOBSRC#{file_key}#{etag}");
            Key::new(k.clone(), k)
        };
        if let Some(marker) = self.store.get(&marker_key).await?
            && let Some(id) = marker.get("job_id").and_then(Value::as_str)
        {
            return Ok((self.get(id).await?, false));
        }
        let mut job = self.pending(JobKind::Import, file_key, None, None, Some("s3".into()));
        // A dropped file's key is taken as it is (no `{id}` substitution).
        job.file_key = file_key.to_owned();
        let id = job.id.clone();
        let mut marker = Item::new();
        marker.insert("pk".into(), marker_key.pk.clone().into());
        marker.insert("sk".into(), marker_key.sk.clone().into());
        marker.insert("entity_type".into(), "job_source".into());
        marker.insert("job_id".into(), id.into());
        let created = self
            .store
            .transact(vec![
                WriteOp::Put {
                    item: marker,
                    condition: Some(Condition::NotExists),
                },
                WriteOp::Put {
                    item: to_item(&job)?,
                    condition: Some(Condition::NotExists),
                },
            ])
            .await;
        match created {
            Ok(()) => Ok((job, true)),
            // Delivered twice at once: the other delivery made the job.
            Err(StoreError::ConditionFailed { index: 0 }) => {
                Box::pin(self.for_source(file_key, etag)).await
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get(&self, id: &str) -> DomainResult<Job> {
        match self.store.get(&job_key(id)).await? {
            Some(item) => from_item(item),
            None => Err(DomainError::NotFound(format!(
                "Job with id: {id} was not found"
            ))),
        }
    }

    /// Writes `next` over `current`; fails with `Conflict` when someone else moved the job on.
    pub async fn save(&self, current: &Job, next: Job) -> DomainResult<Job> {
        self.save_to(&self.store, current, next).await
    }

    /// [`Jobs::save`] for a checkpoint of bulk work: through the store's deferred view (no
    /// wait for the disk) unless `durable`. A crash goes back to the last durable checkpoint,
    /// with the rows written up to it, and the next run writes the rest again: every row write
    /// is an upsert.
    pub async fn save_checkpoint(
        &self,
        current: &Job,
        next: Job,
        durable: bool,
    ) -> DomainResult<Job> {
        match self.store.deferred().filter(|_| !durable) {
            Some(deferred) => self.save_to(&deferred, current, next).await,
            None => self.save(current, next).await,
        }
    }

    /// `next` as a save over `current` stores it (and returns it when it succeeds).
    pub fn saved_as(current: &Job, mut next: Job) -> Job {
        next.version = current.version + 1;
        next
    }

    async fn save_to(
        &self,
        store: &Arc<dyn KvStore>,
        current: &Job,
        next: Job,
    ) -> DomainResult<Job> {
        let next = Jobs::saved_as(current, next);
        match store
            .transact(vec![WriteOp::Put {
                item: to_item(&next)?,
                condition: Some(Condition::equals("version", current.version)),
            }])
            .await
        {
            Ok(()) => Ok(next),
            Err(StoreError::ConditionFailed { .. }) => Err(DomainError::Conflict(format!(
                "Job {} is being run elsewhere",
                current.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends a job that cannot go on, with the reason as its message; a finished job stays as
    /// it is.
    pub async fn fail(&self, id: &str, message: String) -> DomainResult<Job> {
        let job = self.get(id).await?;
        if job.status.is_finished() {
            return Ok(job);
        }
        self.fail_job(&job, message).await
    }

    /// [`Jobs::fail`] for the job as the caller last saved it.
    pub async fn fail_job(&self, job: &Job, message: String) -> DomainResult<Job> {
        let next = Job {
            status: JobStatus::Failed,
            message: Some(message),
            finished_at: Some(self.now()),
            ..job.clone()
        };
        self.save(job, next).await
    }

    /// Newest first.
    pub async fn list(&self, kind: JobKind, offset: usize, limit: usize) -> DomainResult<Vec<Job>> {
        let mut query = Query::new(Index::Gsi1, format!("JOBS#{}", kind.name()));
        query.forward = false;
        query.limit = offset + limit;
        let page = self.store.query(&query).await?;
        page.items
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(from_item)
            .collect()
    }

    /// Records a row's failure (idempotent: a replayed row writes the same item).
    pub fn error_item(job_id: &str, error: &format::RowError, original: &str) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), format!("JOB#{job_id}").into());
        item.insert("sk".into(), format!("ERR#{:012}", error.row).into());
        item.insert("entity_type".into(), "job_row_error".into());
        item.insert("row".into(), error.row.into());
        item.insert("column".into(), error.column.clone().into());
        item.insert("message".into(), error.message.clone().into());
        item.insert("original".into(), original.into());
        item
    }

    /// The recorded row errors, in row order, a page at a time.
    pub async fn errors(
        &self,
        job_id: &str,
        after: Option<crate::store::KeyMap>,
    ) -> DomainResult<crate::store::QueryPage> {
        let mut query = Query::new(Index::Main, format!("JOB#{job_id}"));
        query.sort = crate::store::SortCondition::BeginsWith("ERR#".into());
        query.limit = 1000;
        query.start_after = after;
        Ok(self.store.query(&query).await?)
    }

    pub fn store(&self) -> &Arc<dyn KvStore> {
        &self.store
    }
}
