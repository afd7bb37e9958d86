//! `/admin/customers/imports` and `/admin/customers/exports`: bulk jobs.
//!
//! Where a job runs depends on the process: the local server runs it in the background at once;
//! a Lambda leaves a small request object under `jobs/` in the bucket, whose S3 event starts the
//! transfer worker (see `functions::worker`).

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shared::DomainError;
use shared::transfer::{Job, JobKind, export, import};

use super::auth::Staff;
use super::customers::list_query;
use super::error::{ApiError, ApiResult, invalid};
use super::query;
use super::{AppState, MediaType};

/// Largest CSV accepted in a request body; larger files go through the upload URL.
pub const MAX_CSV_BODY: usize = 100 * 1024 * 1024;
const URL_TTL: Duration = Duration::from_secs(3600);
/// Largest file an upload URL is signed for (S3 takes up to 5 GiB in one PUT).
pub const MAX_UPLOAD_BYTES: u64 = 2 * 1024 * 1024 * 1024;

fn transfer(state: &AppState) -> ApiResult<&super::Transfer> {
    state.transfer.as_ref().ok_or_else(|| {
        ApiError(DomainError::NotAllowed(
            "Imports and exports are not served by this function".into(),
        ))
    })
}

async fn error_report_url(state: &AppState, job: &Job) -> ApiResult<Option<String>> {
    let Some(key) = &job.error_report_key else {
        return Ok(None);
    };
    let t = transfer(state)?;
    Ok(Some(match t.files.download_url(key, URL_TTL).await? {
        Some(url) => url,
        None => format!("/admin/customers/imports/{}/errors", job.id),
    }))
}

/// `POST /admin/customers/imports`: a `text/csv` body is imported; a JSON body (`{}`) makes a
/// job waiting for its file at `upload_url`.
pub async fn create_import(
    State(state): State<AppState>,
    Staff(actor): Staff,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let t = transfer(&state)?;
    // The router let through only the media types the route declares, or an empty body.
    if MediaType::of(&headers) == Some(MediaType::Csv) {
        if body.is_empty() {
            return Err(invalid("Invalid request: the CSV body is empty"));
        }
        let job = new_import(t, actor.actor_id).await?;
        t.files
            .put(&job.file_key, body.to_vec(), "text/csv")
            .await?;
        t.start(&job).await?;
        let job = t.jobs.get(&job.id).await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "import": import::render(&job, None) })),
        )
            .into_response());
    }
    let parsed: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("Invalid request: the body is not valid JSON ({e})")))?
    };
    let size = upload_size(&parsed, t.files.signs_urls())?;
    let job = new_import(t, actor.actor_id).await?;
    let upload_url = match size {
        Some(size) => t.files.upload_url(&job.file_key, URL_TTL, size).await?,
        None => None,
    };
    let mut rendered = import::render(&job, None);
    rendered["upload_url"] = json!(upload_url);
    Ok((StatusCode::OK, Json(json!({ "import": rendered }))).into_response())
}

/// A customer import job waiting for its file under `imports/`.
async fn new_import(t: &super::Transfer, created_by: String) -> ApiResult<Job> {
    Ok(t.jobs
        .create(
            JobKind::Import,
            "imports/{id}.csv",
            None,
            None,
            Some(created_by),
        )
        .await?)
}

/// The `size` (bytes) of the file a client will upload, from `{}` or `{"size": N}`. The upload
/// URL is signed for that exact length, so nobody can put a larger file in the bucket than
/// was asked for here; a store that signs URLs needs it.
fn upload_size(body: &Value, signs_urls: bool) -> ApiResult<Option<u64>> {
    let usage = "Invalid request: send the CSV as a text/csv body, or {\"size\": <bytes>} for an upload URL";
    let object = body.as_object().ok_or_else(|| invalid(usage))?;
    if object.keys().any(|k| k != "size") {
        return Err(invalid(usage));
    }
    let size = match object.get("size") {
        None => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|n| (1..=MAX_UPLOAD_BYTES).contains(n))
                .ok_or_else(|| {
                    invalid(format!(
                        "Invalid request: size must be a number of bytes from 1 to {MAX_UPLOAD_BYTES}"
                    ))
                })?,
        ),
    };
    if size.is_none() && signs_urls {
        return Err(invalid(
            "Invalid request: size (the file's length in bytes) is required for an upload URL",
        ));
    }
    Ok(size)
}

pub async fn get_import(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let t = transfer(&state)?;
    let job = t.jobs.get(&id).await?;
    if job.kind != JobKind::Import {
        return Err(ApiError(DomainError::NotFound(format!(
            "Import with id: {id} was not found"
        ))));
    }
    let url = error_report_url(&state, &job).await?;
    Ok(Json(json!({ "import": import::render(&job, url) })))
}

pub const LIST_PARAMS: &[&str] = &["offset", "limit"];

pub async fn list_imports(
    State(state): State<AppState>,
    _staff: Staff,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    list(state, raw, JobKind::Import).await
}

pub async fn list_exports(
    State(state): State<AppState>,
    _staff: Staff,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    list(state, raw, JobKind::Export).await
}

async fn list(state: AppState, raw: Option<String>, kind: JobKind) -> ApiResult<Json<Value>> {
    let t = transfer(&state)?;
    let params = query::parse(raw.as_deref())?;
    query::reject_unknown(&params, LIST_PARAMS)?;
    let offset = query::number(&params, "offset")?.unwrap_or(0);
    let limit = query::number(&params, "limit")?.unwrap_or(20).min(100);
    let jobs = t.jobs.list(kind, offset, limit).await?;
    let mut rendered = Vec::with_capacity(jobs.len());
    for job in &jobs {
        rendered.push(match kind {
            JobKind::Import => import::render(job, error_report_url(&state, job).await?),
            JobKind::Export => export::render(job, None),
        });
    }
    let key = match kind {
        JobKind::Import => "imports",
        JobKind::Export => "exports",
    };
    Ok(Json(
        json!({ key: rendered, "offset": offset, "limit": limit }),
    ))
}

/// `POST /admin/customers/exports?<the filters of GET /admin/customers>&format=csv|ndjson`.
pub async fn create_export(
    State(state): State<AppState>,
    Staff(actor): Staff,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let t = transfer(&state)?;
    let mut params = query::parse(raw.as_deref())?;
    let format = match query::string(&params, "format")?.as_deref() {
        None | Some("csv") => "csv".to_owned(),
        Some("ndjson") => "ndjson".to_owned(),
        Some(other) => {
            return Err(invalid(format!(
                "Invalid request: format must be csv or ndjson, got '{other}'"
            )));
        }
    };
    params.remove("format");
    for ignored in ["fields", "offset", "limit", "order", "cursor"] {
        params.remove(ignored);
    }
    // Checked now, so a bad filter is a 400 rather than a failed job.
    list_query(&params)?;
    let filters: String = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(k, _)| {
            !["format", "fields", "offset", "limit", "order", "cursor"].contains(&k.as_ref())
        })
        .fold(
            form_urlencoded::Serializer::new(String::new()),
            |mut s, (k, v)| {
                s.append_pair(&k, &v);
                s
            },
        )
        .finish();
    let extension = if format == "ndjson" { "ndjson" } else { "csv" };
    let job = t
        .jobs
        .create(
            JobKind::Export,
            &format!("exports/{{id}}.{extension}"),
            Some(format),
            Some(filters),
            Some(actor.actor_id),
        )
        .await?;
    t.start(&job).await?;
    let job = t.jobs.get(&job.id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "export": export::render(&job, None) })),
    )
        .into_response())
}

pub async fn get_export(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let t = transfer(&state)?;
    let job = t.jobs.get(&id).await?;
    if job.kind != JobKind::Export {
        return Err(ApiError(DomainError::NotFound(format!(
            "Export with id: {id} was not found"
        ))));
    }
    let url = if job.status == shared::transfer::JobStatus::Succeeded {
        Some(match t.files.download_url(&job.file_key, URL_TTL).await? {
            Some(url) => url,
            None => format!("/admin/customers/exports/{id}/download"),
        })
    } else {
        None
    };
    Ok(Json(json!({ "export": export::render(&job, url) })))
}

async fn stream_file(
    state: &AppState,
    key: &str,
    content_type: &'static str,
    name: String,
) -> ApiResult<Response> {
    let t = transfer(state)?;
    let reader = t.files.open(key, 0).await?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// The finished export's file, for stores that cannot sign download URLs (the local folder).
pub async fn download_export(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let t = transfer(&state)?;
    let job = t.jobs.get(&id).await?;
    if job.kind != JobKind::Export || job.status != shared::transfer::JobStatus::Succeeded {
        return Err(ApiError(DomainError::NotFound(format!(
            "Export with id: {id} has no file"
        ))));
    }
    let (content_type, extension) = if job.format.as_deref() == Some("ndjson") {
        ("application/x-ndjson", "ndjson")
    } else {
        ("text/csv; charset=utf-8", "csv")
    };
    stream_file(
        &state,
        &job.file_key,
        content_type,
        format!("customers-{id}.{extension}"),
    )
    .await
}

/// An import's error report, for stores that cannot sign download URLs.
pub async fn import_errors(
    State(state): State<AppState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let t = transfer(&state)?;
    let job = t.jobs.get(&id).await?;
    let key = job.error_report_key.ok_or_else(|| {
        ApiError(DomainError::NotFound(format!(
            "Import with id: {id} has no error report"
        )))
    })?;
    stream_file(
        &state,
        &key,
        "text/csv; charset=utf-8",
        format!("import-{id}-errors.csv"),
    )
    .await
}
