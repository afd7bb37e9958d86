//! Domain events for other systems (marketing tools, e-mail senders): the event-sink port and
//! its local adapter.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::error::{DomainError, DomainResult};

#[async_trait]
pub trait EventSink: Send + Sync {
    async fn emit(&self, name: &str, data: Value) -> DomainResult<()>;
}

/// Appends one JSON line per event to a file (the local server's `DATA_DIR/events.ndjson`),
/// where a developer or a test can read, say, a password-reset token.
pub struct FileEventSink {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileEventSink {
    pub fn new(path: PathBuf) -> Self {
        FileEventSink {
            path,
            lock: Mutex::new(()),
        }
    }
}

#[async_trait]
impl EventSink for FileEventSink {
    async fn emit(&self, name: &str, data: Value) -> DomainResult<()> {
        let line = json!({ "name": name, "data": data }).to_string();
        let _guard = self
            .lock
            .lock()
            .map_err(|_| DomainError::Internal("event sink poisoned".into()))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| {
                DomainError::Internal(format!("cannot write {}: {e}", self.path.display()))
            })?;
        writeln!(file, "{line}").map_err(|e| DomainError::Internal(e.to_string()))?;
        tracing::info!(event = name, "event emitted");
        Ok(())
    }
}

/// Logs event names only (never their data, which may hold secrets such as reset tokens).
pub struct LogEventSink;

#[async_trait]
impl EventSink for LogEventSink {
    async fn emit(&self, name: &str, _data: Value) -> DomainResult<()> {
        tracing::info!(event = name, "event emitted");
        Ok(())
    }
}
