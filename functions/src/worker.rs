//! The transfer worker Lambda: S3 "Object Created" events (through EventBridge) start imports of
//! files dropped under `imports/` and run jobs requested under `jobs/`. A run stops a minute
//! before the Lambda's time limit at a checkpoint and asks for its own continuation.

use std::time::{Duration, Instant};

use serde_json::Value;
use shared::DomainError;
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
    } else if key.starts_with("imports/") && key.to_ascii_lowercase().ends_with(".csv") {
        let stem = key.trim_start_matches("imports/").trim_end_matches(".csv");
        match transfer.jobs.get(stem).await {
            // Uploaded for a job made through the API.
            Ok(job) if job.file_key == key => job.id,
            _ => {
                let etag = event
                    .pointer("/detail/object/etag")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let etag = match etag {
                    Some(e) => e,
                    None => match transfer.files.info(&key).await? {
                        Some(info) => info.etag,
                        None => return Ok(Handled::Ignored),
                    },
                };
                let (job, created) = transfer.jobs.for_source(&key, &etag).await?;
                if !created {
                    tracing::info!(job_id = %job.id, %key, "repeated event for a known file");
                }
                job.id
            }
        }
    } else {
        return Ok(Handled::Ignored);
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
                let remaining = event
                    .context
                    .deadline()
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                let deadline = Instant::now() + remaining.saturating_sub(MARGIN);
                let handled = handle(&transfer, &event.payload, Some(deadline))
                    .await
                    .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
                Ok::<Value, lambda_runtime::Error>(
                    serde_json::json!({ "handled": format!("{handled:?}") }),
                )
            }
        },
    ))
    .await
}
