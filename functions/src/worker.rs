//! The transfer worker Lambda: S3 "Object Created" events (through EventBridge) start imports of
//! files dropped under `imports/` and run jobs requested under `jobs/`. A run stops a minute
//! before the Lambda's time limit at a checkpoint and asks for its own continuation.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::DomainError;
use shared::transfer::distributed::MapItem;
use shared::transfer::import::RunLimits;

use crate::app::{build_lambda_transfer_state, init_tracing};
use crate::config::{Config, Mode};
use crate::http::Transfer;

/// Time kept back from the Lambda's limit to save the checkpoint and hand over.
const MARGIN: Duration = Duration::from_secs(60);

/// What the event asked for, once handled.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// The job ran to its end (or had ended already: a repeated event).
    Finished(String),
    /// The job paused at a checkpoint; a continuation was requested.
    Continued(String),
    /// Not ours (another prefix, a folder marker).
    Ignored,
}

/// S3 keys in events are URL-encoded (`+` for spaces).
fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    form_urlencoded::parse(format!("k={spaced}").replace('&', "%26").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or(spaced)
}

/// The import job of an object put under `imports/`: the API's job it was uploaded for, or one
/// made on first sight of this version of the file (a repeated event finds the same job).
/// `None` for other objects, or one gone meanwhile.
async fn import_job_of(
    transfer: &Transfer,
    key: &str,
    etag: Option<&str>,
) -> Result<Option<String>, DomainError> {
    if !(key.starts_with("imports/") && key.to_ascii_lowercase().ends_with(".csv")) {
        return Ok(None);
    }
    let stem = key.trim_start_matches("imports/").trim_end_matches(".csv");
    if let Ok(job) = transfer.jobs.get(stem).await
        && job.file_key == key
    {
        return Ok(Some(job.id));
    }
    let etag = match etag {
        Some(e) => e.to_owned(),
        None => match transfer.files.info(key).await? {
            Some(info) => info.etag,
            None => return Ok(None),
        },
    };
    let (job, created) = transfer.jobs.for_source(key, &etag).await?;
    if !created {
        tracing::info!(job_id = %job.id, %key, "repeated event for a known file");
    }
    Ok(Some(job.id))
}

/// Handles one step of the import state machine (`infra/import-state-machine.asl.json`):
/// `start` (the job of the object, and whether this execution runs it), `rows` (one batch of
/// the Distributed Map), `finish`, `fail`.
pub async fn handle_step(transfer: &Transfer, event: &Value) -> Result<Value, DomainError> {
    let text = |pointer: &str| {
        event
            .pointer(pointer)
            .and_then(Value::as_str)
            .ok_or_else(|| DomainError::InvalidData(format!("the step lacks {pointer}")))
    };
    let importer = &transfer.importer;
    match text("/step")? {
        "start" => {
            let (bucket, key) = (text("/bucket")?, decode_key(text("/key")?));
            let etag = event.pointer("/etag").and_then(Value::as_str);
            let (job_id, run) = match import_job_of(transfer, &key, etag).await? {
                Some(id) => {
                    let run = importer.start_map(&id).await?;
                    (Some(id), run)
                }
                None => (None, false),
            };
            Ok(json!({ "job_id": job_id, "run": run, "bucket": bucket, "key": key }))
        }
        "rows" => {
            let job_id = text("/BatchInput/job_id")?;
            let items: Vec<MapItem> =
                serde_json::from_value(event.get("Items").cloned().unwrap_or(Value::Null))
                    .map_err(|e| DomainError::InvalidData(format!("the batch's Items: {e}")))?;
            let tally = importer.import_map_batch(job_id, &items).await?;
            Ok(serde_json::to_value(tally).unwrap_or_default())
        }
        "finish" => {
            let job = importer.finish_map(text("/job_id")?).await?;
            Ok(json!({ "job_id": job.id, "status": job.status }))
        }
        "fail" => {
            let cause = event
                .pointer("/error/Cause")
                .or_else(|| event.pointer("/error/Error"))
                .map(|c| match c {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "the import's map failed".into());
            let job = importer
                .fail_map(text("/job_id")?, step_failure(&cause))
                .await?;
            Ok(json!({ "job_id": job.id, "status": job.status }))
        }
        other => Err(DomainError::InvalidData(format!("unknown step {other}"))),
    }
}

/// The reason a failed task gives, as the job's message: Lambda's error JSON carries it in
/// `errorMessage`.
fn step_failure(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(Into::into)
        })
        .unwrap_or_else(|| cause.to_owned())
}

/// How a step's failure is named to Step Functions, which retries only `Transient` ones:
/// a file we reject fails the import at once.
pub fn step_error(e: &DomainError) -> lambda_runtime::Diagnostic {
    let error_type = match e {
        DomainError::InvalidData(_) | DomainError::NotFound(_) | DomainError::Duplicate(_) => {
            "Rejected"
        }
        _ => "Transient",
    };
    lambda_runtime::Diagnostic {
        error_type: error_type.into(),
        error_message: e.to_string(),
    }
}

/// Handles one EventBridge S3 event (`detail.object.key`, `detail.object.etag`).
pub async fn handle(
    transfer: &Transfer,
    event: &Value,
    deadline: Option<Instant>,
) -> Result<Handled, DomainError> {
    let raw_key = event
        .pointer("/detail/object/key")
        .and_then(Value::as_str)
        .ok_or_else(|| DomainError::InvalidData("not an S3 Object Created event".into()))?;
    let key = decode_key(raw_key);
    let limits = RunLimits {
        max_rows: None,
        deadline,
    };
    let job_id = if let Some(name) = key
        .strip_prefix("jobs/")
        .and_then(|n| n.strip_suffix(".json"))
    {
        // `<job id>-<attempt>`
        name.rsplit_once('-').map_or(name, |(id, _)| id).to_owned()
    } else {
        let etag = event.pointer("/detail/object/etag").and_then(Value::as_str);
        match import_job_of(transfer, &key, etag).await? {
            Some(id) => id,
            None => return Ok(Handled::Ignored),
        }
    };
    let job = transfer.run(&job_id, limits).await?;
    if job.status.is_finished() {
        Ok(Handled::Finished(job.id))
    } else {
        let attempt = u32::try_from(job.version).unwrap_or(u32::MAX);
        transfer.request_run(&job.id, attempt).await?;
        Ok(Handled::Continued(job.id))
    }
}

pub async fn serve() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env(Mode::Lambda)?;
    init_tracing(config.json_logs);
    let state = build_lambda_transfer_state(&config).await?;
    let transfer = state
        .transfer
        .ok_or("BUCKET_NAME is required by the transfer worker")?;
    let transfer = std::sync::Arc::new(transfer);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let transfer = transfer.clone();
            async move {
                if event.payload.get("step").is_some() {
                    return handle_step(&transfer, &event.payload)
                        .await
                        .map_err(|e| step_error(&e));
                }
                let remaining = event
                    .context
                    .deadline()
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                let deadline = Instant::now() + remaining.saturating_sub(MARGIN);
                let handled = handle(&transfer, &event.payload, Some(deadline))
                    .await
                    .map_err(|e| step_error(&e))?;
                Ok::<Value, lambda_runtime::Diagnostic>(
                    json!({ "handled": format!("{handled:?}") }),
                )
            }
        },
    ))
    .await
}
