//! Imports run by a Step Functions Distributed Map (`infra/import-state-machine.asl.json`), for
//! files too large for one function's window. The map reads the CSV from S3 itself and hands
//! batches of rows to the transfer worker; these are the steps it calls. Each batch goes
//! through the same row pipeline as a streamed import ([`Importer::write_rows`]).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | batch record | `JOB#<id>` | `BATCH#<first row index, zero-padded>` (the batch's counts, the file's format) |
//!
//! A batch is recorded once, in the transaction that adds its rows to the job's progress, so a
//! retried task (Step Functions retries, Lambda's at-least-once delivery) never counts twice;
//! its writes are upserts, so running it again is harmless.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::format::{self, Header};
use super::import::{Importer, Row, Tally, csv_line};
use super::{Job, JobStatus, job_key};
use crate::error::{DomainError, DomainResult};
use crate::store::{Condition, Index, Item, Key, Query, SortCondition, StoreError, WriteOp};

const BATCH_PREFIX: &str = "BATCH#";

fn batch_key(job_id: &str, first_row: u64) -> Key {
    Key::new(
        format!("JOB#{job_id}"),
        format!("{BATCH_PREFIX}{first_row:012}"),
    )
}

/// One row of a batch, as the map's `ItemSelector` shapes it: its index among the file's rows
/// (0 = the first row after the header) and its cells by column name.
#[derive(Debug, Clone, Deserialize)]
pub struct MapItem {
    pub row: u64,
    pub cells: Map<String, Value>,
}

fn tally_of(item: &Item) -> DomainResult<Tally> {
    serde_json::from_value(Value::Object(item.clone()))
        .map_err(|e| DomainError::Internal(format!("unreadable batch record: {e}")))
}

impl Importer {
    /// First step: whether this execution runs the job. A pending job becomes running; a job
    /// already started or finished (the same event delivered twice) is left alone.
    pub async fn start_map(&self, job_id: &str) -> DomainResult<bool> {
        let job = self.jobs.get(job_id).await?;
        if job.status != JobStatus::Pending {
            return Ok(false);
        }
        let next = Job {
            status: JobStatus::Running,
            started_at: Some(self.jobs.now()),
            ..job.clone()
        };
        match self.jobs.save(&job, next).await {
            Ok(_) => Ok(true),
            Err(DomainError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Second step, once per batch: writes the rows and records the batch. A batch already
    /// recorded is not written again; its counts are returned as they were.
    pub async fn import_map_batch(&self, job_id: &str, items: &[MapItem]) -> DomainResult<Tally> {
        let Some(first) = items.iter().map(|i| i.row).min() else {
            return Ok(Tally::default());
        };
        let key = batch_key(job_id, first);
        let store = self.jobs.store().clone();
        if let Some(recorded) = store.get(&key).await? {
            return tally_of(&recorded);
        }
        let job = self.jobs.get(job_id).await?;
        if job.status != JobStatus::Running {
            return Err(DomainError::InvalidData(format!(
                "Import {job_id} is not running"
            )));
        }
        let columns: Vec<String> = items[0].cells.keys().cloned().collect();
        let header = Header::detect(columns.clone()).map_err(DomainError::InvalidData)?;
        let rows: Vec<Row> = items
            .iter()
            .filter_map(|item| {
                let cells: Vec<String> = columns
                    .iter()
                    .map(|c| {
                        item.cells
                            .get(c)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    })
                    .collect();
                // Blank lines are not rows.
                if cells.iter().all(String::is_empty) {
                    return None;
                }
                let parsed = format::parse(
                    &header,
                    item.row + 1,
                    &csv::StringRecord::from(cells.clone()),
                );
                let original = parsed.is_err().then(|| csv_line(&cells));
                Some((parsed, original))
            })
            .collect();
        let tally = self
            .write_rows(job_id, job.created_by.as_deref(), rows, None)
            .await?;
        let Value::Object(mut record) = serde_json::to_value(tally)
            .map_err(|e| DomainError::Internal(format!("batch record: {e}")))?
        else {
            return Err(DomainError::Internal(
                "batch record is not an object".into(),
            ));
        };
        record.insert("pk".into(), key.pk.clone().into());
        record.insert("sk".into(), key.sk.clone().into());
        record.insert("entity_type".into(), "job_batch".into());
        record.insert("format".into(), header.format.name().into());
        let recorded = store
            .transact(vec![
                WriteOp::Put {
                    item: record,
                    condition: Some(Condition::NotExists),
                },
                WriteOp::Add {
                    key: job_key(job_id),
                    attribute: "processed".into(),
                    delta: i64::try_from(tally.processed).unwrap_or(i64::MAX),
                    condition: Some(Condition::Exists),
                },
            ])
            .await;
        match recorded {
            Ok(()) => Ok(tally),
            // A retry of the same batch, running at the same time, recorded it first.
            Err(StoreError::ConditionFailed { index: 0 }) => match store.get(&key).await? {
                Some(item) => tally_of(&item),
                None => Err(DomainError::Conflict(format!(
                    "Batch {first} of import {job_id} is being recorded elsewhere"
                ))),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Last step: the totals of the recorded batches, the error report and the final status.
    pub async fn finish_map(&self, job_id: &str) -> DomainResult<Job> {
        let job = self.jobs.get(job_id).await?;
        if job.status.is_finished() {
            return Ok(job);
        }
        let mut query = Query::new(Index::Main, format!("JOB#{job_id}"));
        query.sort = SortCondition::BeginsWith(BATCH_PREFIX.into());
        let batches = crate::store::query_all(self.jobs.store().as_ref(), query).await?;
        let mut next = Job {
            processed: 0,
            created: 0,
            updated: 0,
            unchanged: 0,
            failed: 0,
            ..job.clone()
        };
        for batch in &batches {
            tally_of(batch)?.add_to(&mut next);
            if next.format.is_none() {
                next.format = batch.get("format").and_then(Value::as_str).map(Into::into);
            }
        }
        let job = self.jobs.save(&job, next).await?;
        self.finish(job).await
    }

    /// The map failed (a file it cannot read, a header we do not know, a batch that kept
    /// failing): the job fails with the reason.
    pub async fn fail_map(&self, job_id: &str, message: String) -> DomainResult<Job> {
        let job = self.jobs.get(job_id).await?;
        if job.status.is_finished() {
            return Ok(job);
        }
        self.fail(job, message).await
    }
}
