//! Domain events for other systems (marketing tools, e-mail senders): the event-sink port and
//! its local adapter.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
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
/// where a developer or a test can read, say, a password-reset token. Only on request
/// (`DEV_EVENT_LOG=true`): the file keeps live reset tokens.
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
        // Owner-only: the log holds live password-reset tokens.
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
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

/// The local sign-in's channel for password resets when no mailer is wired: the reset link in
/// the server's log at warn level (where the developer running it looks), other events by name.
/// Nothing is written to a file, so no reset token outlives the log.
pub struct ResetLinkLogSink {
    /// The page that takes the token (`PASSWORD_RESET_URL`).
    pub reset_page: String,
}

/// `<page>?token=…&email=…`, the shape Medusa's storefront reset page reads.
pub fn reset_link(reset_page: &str, token: &str, email: &str) -> String {
    let separator = if reset_page.contains('?') { '&' } else { '?' };
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .append_pair("email", email)
        .finish();
    format!("{reset_page}{separator}{query}")
}

#[async_trait]
impl EventSink for ResetLinkLogSink {
    async fn emit(&self, name: &str, data: Value) -> DomainResult<()> {
        if name == "auth.password_reset" {
            let text = |key: &str| data.get(key).and_then(Value::as_str).unwrap_or_default();
            tracing::warn!(
                actor_type = text("actor_type"),
                link = %reset_link(&self.reset_page, text("token"), text("entity_id")),
                "password reset requested: send this link to its owner"
            );
        } else {
            tracing::info!(event = name, "event emitted");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::reset_link;

    #[test]
    fn reset_link_escapes_the_token_and_email() {
        assert_eq!(
            reset_link(
                "http://localhost:9000/app/reset-password",
                "a.b+c",
                "jo+1@x.com"
            ),
            "http://localhost:9000/app/reset-password?token=a.b%2Bc&email=jo%2B1%40x.com"
        );
        assert_eq!(
            reset_link("https://shop.example/reset?lang=en", "t", "e@x"),
            "https://shop.example/reset?lang=en&token=t&email=e%40x"
        );
    }
}
