//! The local sign-in provider (the embedded default): email and password identities with
//! argon2 hashes in the store, and staff users.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | auth identity | `AUTHID#<id>` | `#IDENTITY` (`app_metadata` links actors: `user_id`, `customer_id`) |
//! | email/password identity | `PROVIDER#emailpass#<email>` | same (hash, `auth_identity_id`) |
//! | staff user | `USER#<id>` | `#PROFILE`, gsi1 `USERS`/`<id>` |

use std::sync::Arc;

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use serde_json::{Map, Value};

use super::AuthContext;
use super::tokens::TokenIssuer;
use crate::customers::{is_valid_email, normalize_email};
use crate::error::{DomainError, DomainResult};
use crate::ports::{Clock, IdGenerator, iso};
use crate::store::{Condition, Index, Item, Key, KvStore, Query, StoreError, WriteOp};

pub const PROVIDER: &str = "emailpass";
const MIN_PASSWORD_LEN: usize = 8;
const MAX_PASSWORD_LEN: usize = 1024;

fn invalid_login() -> DomainError {
    DomainError::Unauthorized("Invalid email or password".into())
}

fn provider_key(email_key: &str) -> Key {
    let k = format!("PROVIDER#{PROVIDER}#{email_key}");
    Key::new(k.clone(), k)
}

fn identity_key(id: &str) -> Key {
    Key::new(format!("AUTHID#{id}"), "#IDENTITY")
}

fn user_key(id: &str) -> Key {
    Key::new(format!("USER#{id}"), "#PROFILE")
}

fn item(key: Key, entity: &str, fields: Map<String, Value>) -> Item {
    let mut item = fields;
    item.insert("pk".into(), key.pk.into());
    item.insert("sk".into(), key.sk.into());
    item.insert("entity_type".into(), entity.into());
    item
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub fn hash_password(password: &str) -> DomainResult<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| DomainError::Internal(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| DomainError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DomainError::Internal(format!("cannot hash password: {e}")))
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A real hash of a random password, verified against when the email is unknown so that a
/// failed sign-in takes as long whether or not the account exists.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&ulid::Ulid::new().to_string()).unwrap_or_default())
}

#[derive(Clone)]
pub struct LocalIdentityProvider {
    store: Arc<dyn KvStore>,
    issuer: Arc<TokenIssuer>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl LocalIdentityProvider {
    pub fn new(
        store: Arc<dyn KvStore>,
        issuer: Arc<TokenIssuer>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        LocalIdentityProvider {
            store,
            issuer,
            clock,
            ids,
        }
    }

    /// Signs in with email and password and returns a token for `actor_type`.
    pub async fn login(
        &self,
        actor_type: &str,
        email: &str,
        password: &str,
    ) -> DomainResult<String> {
        let email_key = normalize_email(email);
        let found = self.store.get(&provider_key(&email_key)).await?;
        let hash = found
            .as_ref()
            .and_then(|p| p.get("password_hash"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| decoy_hash())
            .to_owned();
        let candidate = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || password_matches(&candidate, &hash))
            .await
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let Some(provider) = found.filter(|_| matches) else {
            return Err(invalid_login());
        };
        let identity_id = provider
            .get("auth_identity_id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                DomainError::Internal("provider identity without auth identity".into())
            })?;
        let identity = self
            .store
            .get(&identity_key(identity_id))
            .await?
            .ok_or_else(|| DomainError::Internal(format!("auth identity {identity_id} missing")))?;
        let app_metadata = identity
            .get("app_metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let actor_id = app_metadata
            .get(&format!("{actor_type}_id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let context = AuthContext {
            actor_id,
            actor_type: actor_type.to_owned(),
            auth_identity_id: identity_id.to_owned(),
            app_metadata,
        };
        self.issuer
            .issue(&context, PROVIDER, self.clock.now().unix_timestamp())
    }

    /// Whether any staff user exists (to decide whether to create the first one).
    pub async fn has_staff(&self) -> DomainResult<bool> {
        let mut query = Query::new(Index::Gsi1, "USERS");
        query.limit = 1;
        Ok(!self.store.query(&query).await?.items.is_empty())
    }

    /// Creates a staff user with an email/password identity, atomically. Returns the user id.
    pub async fn create_staff_user(&self, email: &str, password: &str) -> DomainResult<String> {
        let email = email.trim();
        if !is_valid_email(email) {
            return Err(DomainError::InvalidData(format!(
                "Invalid email address: {email}"
            )));
        }
        if password.chars().count() < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
            return Err(DomainError::InvalidData(format!(
                "The password must have {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"
            )));
        }
        let owned = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
            .await
            .map_err(|e| DomainError::Internal(e.to_string()))??;
        let now = iso(self.clock.now());
        let user_id = self.ids.new_id("user");
        let identity_id = self.ids.new_id("authid");
        let email_key = normalize_email(email);
        let mut user = object(serde_json::json!({
            "id": user_id, "email": email, "first_name": null, "last_name": null,
            "created_at": now, "updated_at": now, "deleted_at": null,
            "gsi1pk": "USERS", "gsi1sk": user_id,
        }));
        user.insert("version".into(), 0.into());
        let ops = vec![
            WriteOp::Put {
                item: item(
                    provider_key(&email_key),
                    "provider_identity",
                    object(serde_json::json!({
                        "provider": PROVIDER, "entity_id": email_key,
                        "auth_identity_id": identity_id, "password_hash": hash,
                    })),
                ),
                condition: Some(Condition::NotExists),
            },
            WriteOp::Put {
                item: item(
                    identity_key(&identity_id),
                    "auth_identity",
                    object(serde_json::json!({
                        "id": identity_id, "app_metadata": { "user_id": user_id }, "created_at": now,
                    })),
                ),
                condition: Some(Condition::NotExists),
            },
            WriteOp::Put {
                item: item(user_key(&user_id), "user", user),
                condition: Some(Condition::NotExists),
            },
        ];
        match self.store.transact(ops).await {
            Ok(()) => Ok(user_id),
            Err(StoreError::ConditionFailed { index: 0 }) => Err(DomainError::Unauthorized(
                "Identity with email already exists".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the first staff user from configuration when there is none yet.
    pub async fn ensure_first_staff_user(&self, email: &str, password: &str) -> DomainResult<bool> {
        if self.has_staff().await? {
            return Ok(false);
        }
        match self.create_staff_user(email, password).await {
            Ok(id) => {
                tracing::info!(user_id = %id, %email, "created the first staff user");
                Ok(true)
            }
            // Another instance created it at the same moment.
            Err(DomainError::Unauthorized(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
