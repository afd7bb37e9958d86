//! Where bulk files live: the file-store port, a local folder (the embedded default) and S3.
//!
//! Files are read as streams from any byte offset (an import resumes where it stopped) and
//! written as streams (S3: a multipart upload, so an export of any size needs no buffer beyond
//! one part).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::error::{DomainError, DomainResult};

pub type Reader = Pin<Box<dyn AsyncRead + Send>>;

/// An object as listed: its key and an identity of its content (S3 ETag; size+mtime locally).
#[derive(Debug, Clone, PartialEq)]
pub struct FileInfo {
    pub key: String,
    pub size: u64,
    pub etag: String,
}

#[async_trait]
pub trait FileStore: Send + Sync {
    async fn info(&self, key: &str) -> DomainResult<Option<FileInfo>>;
    /// The file from byte `offset` on.
    async fn open(&self, key: &str, offset: u64) -> DomainResult<Reader>;
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> DomainResult<()>;
    /// A streaming writer; nothing is visible under `key` until `finish`.
    async fn create(&self, key: &str, content_type: &str) -> DomainResult<Box<dyn FileWriter>>;
    /// A URL to download the file, where the store can sign one (S3); `None` locally.
    async fn download_url(&self, key: &str, ttl: Duration) -> DomainResult<Option<String>>;
    /// A URL to upload the file of exactly `size` bytes to, where the store can sign one (S3;
    /// the length is signed, so a larger body is refused); `None` locally.
    async fn upload_url(&self, key: &str, ttl: Duration, size: u64)
    -> DomainResult<Option<String>>;
    /// Whether [`FileStore::upload_url`] gives URLs.
    fn signs_urls(&self) -> bool {
        false
    }
}

#[async_trait]
pub trait FileWriter: Send {
    async fn write(&mut self, bytes: &[u8]) -> DomainResult<()>;
    async fn finish(self: Box<Self>) -> DomainResult<()>;
    async fn abort(self: Box<Self>) -> DomainResult<()>;
}

fn io_error(key: &str, e: impl std::fmt::Display) -> DomainError {
    DomainError::Internal(format!("file {key}: {e}"))
}

/// A folder on disk; keys are relative paths inside it.
pub struct LocalFiles {
    root: PathBuf,
}

impl LocalFiles {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalFiles { root: root.into() }
    }

    fn path(&self, key: &str) -> DomainResult<PathBuf> {
        let relative = Path::new(key);
        let safe = relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe || key.is_empty() {
            return Err(DomainError::InvalidData(format!("Invalid file key: {key}")));
        }
        Ok(self.root.join(relative))
    }
}

struct LocalWriter {
    key: String,
    temp: PathBuf,
    target: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
}

#[async_trait]
impl FileWriter for LocalWriter {
    async fn write(&mut self, bytes: &[u8]) -> DomainResult<()> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| io_error(&self.key, e))
    }

    async fn finish(mut self: Box<Self>) -> DomainResult<()> {
        self.file
            .flush()
            .await
            .map_err(|e| io_error(&self.key, e))?;
        self.file
            .get_ref()
            .sync_all()
            .await
            .map_err(|e| io_error(&self.key, e))?;
        tokio::fs::rename(&self.temp, &self.target)
            .await
            .map_err(|e| io_error(&self.key, e))
    }

    async fn abort(self: Box<Self>) -> DomainResult<()> {
        let _ = tokio::fs::remove_file(&self.temp).await;
        Ok(())
    }
}

#[async_trait]
impl FileStore for LocalFiles {
    async fn info(&self, key: &str) -> DomainResult<Option<FileInfo>> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(meta) => {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                Ok(Some(FileInfo {
                    key: key.to_owned(),
                    size: meta.len(),
                    etag: format!("{}-{modified}", meta.len()),
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(key, e)),
        }
    }

    async fn open(&self, key: &str, offset: u64) -> DomainResult<Reader> {
        use tokio::io::AsyncSeekExt;
        let mut file =
            tokio::fs::File::open(self.path(key)?)
                .await
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        DomainError::NotFound(format!("File {key} was not found"))
                    }
                    _ => io_error(key, e),
                })?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| io_error(key, e))?;
        Ok(Box::pin(tokio::io::BufReader::with_capacity(
            256 * 1024,
            file,
        )))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> DomainResult<()> {
        let mut writer = self.create(key, content_type).await?;
        writer.write(&bytes).await?;
        writer.finish().await
    }

    async fn create(&self, key: &str, _content_type: &str) -> DomainResult<Box<dyn FileWriter>> {
        let target = self.path(key)?;
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io_error(key, e))?;
        }
        let temp = target.with_extension(format!("partial-{}", ulid::Ulid::new()));
        let file = tokio::fs::File::create(&temp)
            .await
            .map_err(|e| io_error(key, e))?;
        Ok(Box::new(LocalWriter {
            key: key.to_owned(),
            temp,
            target,
            file: tokio::io::BufWriter::with_capacity(256 * 1024, file),
        }))
    }

    async fn download_url(&self, _key: &str, _ttl: Duration) -> DomainResult<Option<String>> {
        Ok(None)
    }

    async fn upload_url(
        &self,
        _key: &str,
        _ttl: Duration,
        _size: u64,
    ) -> DomainResult<Option<String>> {
        Ok(None)
    }
}

/// An S3 bucket.
pub struct S3Files {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Files {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Files {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

fn s3_error(key: &str, e: impl std::fmt::Debug) -> DomainError {
    tracing::error!(key, error = ?e, "S3 call failed");
    DomainError::Unavailable(format!(
        "The file store is unavailable ({key}), please retry."
    ))
}

/// S3 parts must be at least 5 MiB (but the last).
const PART_BYTES: usize = 8 * 1024 * 1024;

struct S3Writer {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    buffer: Vec<u8>,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
}

impl S3Writer {
    async fn flush_part(&mut self) -> DomainResult<()> {
        let number = i32::try_from(self.parts.len() + 1)
            .map_err(|_| DomainError::Internal("too many parts".into()))?;
        let body = std::mem::take(&mut self.buffer);
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(body.into())
            .send()
            .await
            .map_err(|e| s3_error(&self.key, e))?;
        self.parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }
}

#[async_trait]
impl FileWriter for S3Writer {
    async fn write(&mut self, bytes: &[u8]) -> DomainResult<()> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= PART_BYTES {
            self.flush_part().await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> DomainResult<()> {
        if !self.buffer.is_empty() || self.parts.is_empty() {
            self.flush_part().await?;
        }
        let upload = aws_sdk_s3::types::CompletedMultipartUpload::builder()
            .set_parts(Some(std::mem::take(&mut self.parts)))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(upload)
            .send()
            .await
            .map_err(|e| s3_error(&self.key, e))?;
        Ok(())
    }

    async fn abort(self: Box<Self>) -> DomainResult<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map_err(|e| s3_error(&self.key, e))?;
        Ok(())
    }
}

#[async_trait]
impl FileStore for S3Files {
    async fn info(&self, key: &str) -> DomainResult<Option<FileInfo>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(FileInfo {
                key: key.to_owned(),
                size: u64::try_from(head.content_length().unwrap_or(0)).unwrap_or(0),
                etag: head
                    .e_tag()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned(),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(s3_error(key, e)),
        }
    }

    async fn open(&self, key: &str, offset: u64) -> DomainResult<Reader> {
        let mut request = self.client.get_object().bucket(&self.bucket).key(key);
        if offset > 0 {
            request = request.range(format!("bytes={offset}-"));
        }
        let object = request.send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                DomainError::NotFound(format!("File {key} was not found"))
            } else {
                s3_error(key, e)
            }
        })?;
        Ok(Box::pin(object.body.into_async_read()))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> DomainResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| s3_error(key, e))?;
        Ok(())
    }

    async fn create(&self, key: &str, content_type: &str) -> DomainResult<Box<dyn FileWriter>> {
        let started = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| s3_error(key, e))?;
        let upload_id = started
            .upload_id()
            .ok_or_else(|| DomainError::Internal("S3 gave no upload id".into()))?
            .to_owned();
        Ok(Box::new(S3Writer {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id,
            buffer: Vec::with_capacity(PART_BYTES),
            parts: Vec::new(),
        }))
    }

    async fn download_url(&self, key: &str, ttl: Duration) -> DomainResult<Option<String>> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl)
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let signed = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| s3_error(key, e))?;
        Ok(Some(signed.uri().to_owned()))
    }

    async fn upload_url(
        &self,
        key: &str,
        ttl: Duration,
        size: u64,
    ) -> DomainResult<Option<String>> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl)
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let length = i64::try_from(size)
            .map_err(|_| DomainError::InvalidData(format!("Invalid size: {size}")))?;
        let signed = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("text/csv")
            .content_length(length)
            .presigned(config)
            .await
            .map_err(|e| s3_error(key, e))?;
        Ok(Some(signed.uri().to_owned()))
    }

    fn signs_urls(&self) -> bool {
        true
    }
}
