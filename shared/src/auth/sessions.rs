//! Cookie sessions (`POST /auth/session`), kept in the store so every instance (and every
//! Lambda) sees them, and so `DELETE /auth/session` ends them at once.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | session | `SESSION#<sha256(id)>` | same (`context`, `expires_at` epoch seconds, the table's TTL) |
//!
//! Only a digest of the cookie value is stored: a leaked table does not leak live sessions.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::Digest;

use super::AuthContext;
use crate::error::{DomainError, DomainResult};
use crate::ports::Clock;
use crate::store::{Key, KvStore, WriteOp};

/// Express-session's default lifetime in Medusa: 10 hours.
pub const SESSION_TTL_SECONDS: i64 = 10 * 3600;

#[derive(Clone)]
pub struct SessionStore {
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    ttl_seconds: i64,
}

fn key(session_id: &str) -> Key {
    let digest = sha2::Sha256::digest(session_id.as_bytes());
    let k = format!("SESSION#{}", URL_SAFE_NO_PAD.encode(digest));
    Key::new(k.clone(), k)
}

impl SessionStore {
    pub fn new(store: Arc<dyn KvStore>, clock: Arc<dyn Clock>) -> Self {
        SessionStore {
            store,
            clock,
            ttl_seconds: SESSION_TTL_SECONDS,
        }
    }

    pub fn ttl_seconds(&self) -> i64 {
        self.ttl_seconds
    }

    /// Starts a session for `context`; returns the cookie value (256 random bits).
    pub async fn create(&self, context: &AuthContext) -> DomainResult<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| DomainError::Internal(format!("no randomness: {e}")))?;
        let id = URL_SAFE_NO_PAD.encode(bytes);
        let k = key(&id);
        let mut item = Map::new();
        item.insert("pk".into(), k.pk.into());
        item.insert("sk".into(), k.sk.into());
        item.insert("entity_type".into(), "session".into());
        item.insert(
            "context".into(),
            serde_json::to_value(context).map_err(|e| DomainError::Internal(e.to_string()))?,
        );
        item.insert(
            "expires_at".into(),
            (self.clock.now().unix_timestamp() + self.ttl_seconds).into(),
        );
        self.store
            .transact(vec![WriteOp::Put {
                item,
                condition: None,
            }])
            .await?;
        Ok(id)
    }

    /// The session's actor, unless it is unknown, ended or expired.
    pub async fn get(&self, session_id: &str) -> DomainResult<Option<AuthContext>> {
        let Some(item) = self.store.get(&key(session_id)).await? else {
            return Ok(None);
        };
        let expires = item.get("expires_at").and_then(Value::as_i64).unwrap_or(0);
        if expires <= self.clock.now().unix_timestamp() {
            return Ok(None);
        }
        Ok(item
            .get("context")
            .cloned()
            .and_then(|c| serde_json::from_value(c).ok()))
    }

    pub async fn end(&self, session_id: &str) -> DomainResult<()> {
        self.store
            .transact(vec![WriteOp::Delete {
                key: key(session_id),
                condition: None,
            }])
            .await?;
        Ok(())
    }
}
