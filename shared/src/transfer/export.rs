//! The export engine: pages through the customers a list query selects (keyset pages, so
//! memory stays one page whatever the total) and streams them as CSV (our import format, with
//! formula-like cells neutralised) or NDJSON into the file store.

use serde_json::{Value, json};

use super::format::{NATIVE_COLUMNS, neutralise};
use super::{Job, JobStatus, Jobs};
use crate::addresses::AddressService;
use crate::customers::{Customer, CustomerQuery, CustomerService};
use crate::error::{DomainError, DomainResult};
use crate::files::FileStore;
use crate::groups::GroupService;

const PAGE: usize = 500;

#[derive(Clone)]
pub struct Exporter {
    pub jobs: Jobs,
    pub customers: CustomerService,
    pub addresses: AddressService,
    pub groups: GroupService,
    pub files: std::sync::Arc<dyn FileStore>,
    /// Rows written so far, for a progress display.
    pub progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn csv_row(fields: &[String]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(256));
    let neutral: Vec<String> = fields.iter().map(|f| neutralise(f).into_owned()).collect();
    let _ = writer.write_record(&neutral);
    writer.into_inner().unwrap_or_default()
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

impl Exporter {
    async fn row(&self, customer: &Customer, ndjson: bool) -> DomainResult<Vec<u8>> {
        let addresses = self.addresses.all(&customer.id).await?;
        let groups: Vec<String> = self
            .groups
            .groups_of(&customer.id)
            .await?
            .into_iter()
            .map(|g| g.name)
            .collect();
        if ndjson {
            let mut object =
                serde_json::to_value(customer).map_err(|e| DomainError::Internal(e.to_string()))?;
            object["groups"] = json!(groups);
            object["addresses"] = serde_json::to_value(&addresses).unwrap_or_default();
            let mut line = object.to_string().into_bytes();
            line.push(b'\n');
            return Ok(line);
        }
        let metadata = customer
            .metadata
            .as_ref()
            .map(|m| Value::Object(m.clone()).to_string())
            .unwrap_or_default();
        let fields = vec![
            customer.id.clone(),
            text(&customer.email),
            text(&customer.first_name),
            text(&customer.last_name),
            text(&customer.company_name),
            text(&customer.phone),
            customer.has_account.to_string(),
            metadata,
            if groups.is_empty() {
                String::new()
            } else {
                json!(groups).to_string()
            },
            if addresses.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&addresses).unwrap_or_default()
            },
            customer.created_at.clone(),
            customer.updated_at.clone(),
        ];
        Ok(csv_row(&fields))
    }

    /// Writes every customer `query` selects (its offset and limit ignored) and finishes the job.
    pub async fn run(&self, job_id: &str, mut query: CustomerQuery) -> DomainResult<Job> {
        let job = self.jobs.get(job_id).await?;
        if job.status.is_finished() {
            return Ok(job);
        }
        let started = Job {
            status: JobStatus::Running,
            started_at: Some(self.jobs.now()),
            ..job.clone()
        };
        let job = self.jobs.save(&job, started).await?;
        let ndjson = job.format.as_deref() == Some("ndjson");
        let content_type = if ndjson {
            "application/x-ndjson"
        } else {
            "text/csv"
        };
        let mut writer = self.files.create(&job.file_key, content_type).await?;
        if !ndjson {
            // A BOM so that spreadsheets read the file as UTF-8.
            writer.write("\u{feff}".as_bytes()).await?;
            writer
                .write(&csv_row(
                    &NATIVE_COLUMNS
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>(),
                ))
                .await?;
        }
        query.offset = 0;
        query.limit = PAGE;
        query.after = None;
        let mut rows = 0u64;
        let written: DomainResult<()> = async {
            loop {
                let page = self.customers.list(&query).await?;
                for customer in &page.customers {
                    writer.write(&self.row(customer, ndjson).await?).await?;
                    rows += 1;
                    self.progress
                        .store(rows, std::sync::atomic::Ordering::Relaxed);
                }
                match page.next_after {
                    Some(after) if !page.customers.is_empty() => query.after = Some(after),
                    _ => return Ok(()),
                }
            }
        }
        .await;
        let next = match written {
            Ok(()) => {
                writer.finish().await?;
                Job {
                    status: JobStatus::Succeeded,
                    row_count: rows,
                    finished_at: Some(self.jobs.now()),
                    ..job.clone()
                }
            }
            Err(e) => {
                let _ = writer.abort().await;
                Job {
                    status: JobStatus::Failed,
                    row_count: rows,
                    message: Some(e.to_string()),
                    finished_at: Some(self.jobs.now()),
                    ..job.clone()
                }
            }
        };
        self.jobs.save(&job, next).await
    }
}

/// The job as the API shows it (`{export: …}`).
pub fn render(job: &Job, download_url: Option<String>) -> Value {
    json!({
        "id": job.id,
        "status": job.status,
        "format": job.format,
        "row_count": job.row_count,
        "download_url": download_url,
        "filters": job.filters,
        "message": job.message,
        "created_by": job.created_by,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    })
}
