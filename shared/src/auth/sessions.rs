//! Cookie sessions (`POST /auth/session`), kept in the store so every instance (and every
//! Lambda) sees them, and so `DELETE /auth/session` ends them at once.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | session | `SESSION#<sha256(id)>` | same (`context`, `expires_at` epoch seconds, the table's TTL), gsi1 `SESSIONS#<identity>`/`<created ms>#<digest>` |
//!
//! Only a digest of the cookie value is stored: a leaked table does not leak live sessions.
//! An identity keeps at most [`MAX_SESSIONS_PER_IDENTITY`]: a new one ends the oldest beyond
//! that, and sweeps the identity's expired ones (DynamoDB's TTL sweeps the rest; the embedded
//! store has no TTL, so the sweep at creation is what bounds it). A session also ends with
//! its identity's sign-out mark (`revocation`), checked by the authenticator.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::Digest;

use super::AuthContext;
use crate::error::{DomainError, DomainResult};
use crate::ports::Clock;
use crate::store::{Index, Key, KvStore, Query, WriteOp, query_all};

/// Express-session's default lifetime in Medusa: 10 hours.
pub const SESSION_TTL_SECONDS: i64 = 10 * 3600;

/// Live sessions one identity may have; the oldest goes first.
pub const MAX_SESSIONS_PER_IDENTITY: usize = 20;

fn identity_sessions(identity_id: &str) -> String {
    format!("SESSIONS#{identity_id}")
}

#[derive(Clone)]
pub struct SessionStore {
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    ttl_seconds: i64,
}

fn digest(session_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(session_id.as_bytes()))
}

fn key(session_id: &str) -> Key {
    let k = format!("SESSION#{}", digest(session_id));
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
        let now = self.clock.now();
        item.insert(
            "expires_at".into(),
            (now.unix_timestamp() + self.ttl_seconds).into(),
        );
        if !context.auth_identity_id.is_empty() {
            let created_ms = now.unix_timestamp_nanos() / 1_000_000;
            item.insert(
                "gsi1pk".into(),
                identity_sessions(&context.auth_identity_id).into(),
            );
            item.insert(
                "gsi1sk".into(),
                format!("{created_ms:015}#{}", digest(&id)).into(),
            );
            self.make_room(&context.auth_identity_id).await?;
        }
        self.store
            .transact(vec![WriteOp::Put {
                item,
                condition: None,
            }])
            .await?;
        Ok(id)
    }

    /// Ends the identity's expired sessions, and its oldest live ones beyond the cap less one
    /// (room for the session about to start).
    async fn make_room(&self, identity_id: &str) -> DomainResult<()> {
        self.remove_sessions(identity_id, MAX_SESSIONS_PER_IDENTITY - 1)
            .await
    }

    /// Removes the identity's expired sessions, and its oldest live ones beyond `keep`.
    async fn remove_sessions(&self, identity_id: &str, keep: usize) -> DomainResult<()> {
        let now = self.clock.now().unix_timestamp();
        let sessions = query_all(
            self.store.as_ref(),
            Query::new(Index::Gsi1, identity_sessions(identity_id)),
        )
        .await?;
        let (expired, live): (Vec<_>, Vec<_>) = sessions
            .iter()
            .partition(|item| item.get("expires_at").and_then(Value::as_i64).unwrap_or(0) <= now);
        // Oldest first: the index sorts by creation time.
        let surplus = live.len().saturating_sub(keep);
        let ending: Vec<WriteOp> = expired
            .into_iter()
            .chain(live.into_iter().take(surplus))
            .filter_map(|item| Key::of(item).ok())
            .map(|key| WriteOp::Delete {
                key,
                condition: None,
            })
            .collect();
        for chunk in ending.chunks(25) {
            self.store.transact(chunk.to_vec()).await?;
        }
        Ok(())
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

    /// Ends every token and session of the identity (its sign-out mark moves on), and removes
    /// its stored sessions.
    pub async fn sign_out_everywhere(&self, identity_id: &str) -> DomainResult<()> {
        super::revocation::sign_out_everywhere(
            &self.store,
            identity_id,
            self.clock.now().unix_timestamp(),
        )
        .await?;
        self.remove_sessions(identity_id, 0).await
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use time::OffsetDateTime;

    use super::*;
    use crate::store::embedded::EmbeddedStore;

    /// A clock the test moves by hand.
    struct HandClock(Mutex<OffsetDateTime>);

    impl Clock for HandClock {
        fn now(&self) -> OffsetDateTime {
            *self.0.lock().unwrap()
        }
    }

    fn context(identity: &str) -> AuthContext {
        AuthContext {
            actor_id: "user_1".into(),
            actor_type: "user".into(),
            auth_identity_id: identity.into(),
            app_metadata: Map::new(),
            sign_in: None,
        }
    }

    fn stored(store: &Arc<dyn KvStore>) -> impl Fn(&str) -> bool {
        let store = store.clone();
        move |id: &str| {
            let store = store.clone();
            let key = key(id);
            futures::executor::block_on(async move { store.get(&key).await })
                .unwrap()
                .is_some()
        }
    }

    #[tokio::test]
    async fn an_identity_keeps_twenty_sessions_and_loses_its_expired_ones() {
        let dir = std::env::temp_dir().join(format!("sessions-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let store: Arc<dyn KvStore> = Arc::new(EmbeddedStore::open(&dir.join("s.redb")).unwrap());
        let clock = Arc::new(HandClock(Mutex::new(OffsetDateTime::now_utc())));
        let sessions = SessionStore::new(store.clone(), clock.clone());
        let tick = |seconds: i64| {
            let mut now = clock.0.lock().unwrap();
            *now += time::Duration::seconds(seconds);
        };
        let is_stored = stored(&store);

        let stale = sessions.create(&context("authid_a")).await.unwrap();
        tick(SESSION_TTL_SECONDS + 1);
        let mut live = vec![sessions.create(&context("authid_a")).await.unwrap()];
        assert!(
            !is_stored(&stale),
            "the expired session is swept, not only refused"
        );
        for _ in 0..MAX_SESSIONS_PER_IDENTITY + 1 {
            tick(1);
            live.push(sessions.create(&context("authid_a")).await.unwrap());
        }
        let other = sessions.create(&context("authid_b")).await.unwrap();

        assert!(
            !is_stored(&live[0]) && !is_stored(&live[1]),
            "the oldest go"
        );
        for id in &live[2..] {
            assert!(sessions.get(id).await.unwrap().is_some());
        }
        assert!(
            sessions.get(&other).await.unwrap().is_some(),
            "per identity"
        );
    }
}
