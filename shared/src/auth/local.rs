//! The local sign-in provider (the embedded default): email and password identities with
//! argon2 hashes in the store, and staff users.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | auth identity | `AUTHID#<id>` | `#IDENTITY` |
//! | email/password identity | `PROVIDER#emailpass#<email>` | same (hash, `auth_identity_id`) |
//! | staff user | `USER#<id>` | `#PROFILE`, gsi1 `USERS`/`<id>` |
//! | used reset token | `RESETUSED#<jti>` | same (`expires_at`) |
//!
//! Which actor an identity signs in as lives in identity links (`links`).

use std::sync::Arc;

use async_trait::async_trait;

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use serde_json::{Map, Value};

use super::limits::HashPool;
use super::tokens::{PASSWORD_RESET, TokenIssuer, TokenVerifier};
use super::{AuthContext, Credentials, IdentityProvider, SignIn, SignInFacts, links, revocation};
use crate::customers::{is_valid_email, normalize_email};
use crate::error::{DomainError, DomainResult};
use crate::events::EventSink;
use crate::ports::{Clock, IdGenerator, iso};
use crate::store::{Condition, Item, Key, KvStore, StoreError, WriteOp};

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
/// failed sign-in takes as long whether or not the account exists. Computed on first use, in
/// the hashing pool like every other hash.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&ulid::Ulid::new().to_string()).unwrap_or_default())
}

/// Reset tokens live 15 minutes, as Medusa's.
pub const RESET_TTL_SECONDS: i64 = 15 * 60;

#[derive(Clone)]
pub struct LocalIdentityProvider {
    store: Arc<dyn KvStore>,
    issuer: Arc<TokenIssuer>,
    reset_verifier: Arc<TokenVerifier>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    events: Arc<dyn EventSink>,
    hashing: HashPool,
}

fn check_password_rules(password: &str) -> DomainResult<()> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
        return Err(DomainError::InvalidData(format!(
            "The password must have {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

fn not_offered(actor_type: &str, provider: &str) -> DomainError {
    DomainError::NotAllowed(format!(
        "The actor type {actor_type} is not allowed to use the auth provider {provider}"
    ))
}

impl LocalIdentityProvider {
    pub fn new(
        store: Arc<dyn KvStore>,
        issuer: Arc<TokenIssuer>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        events: Arc<dyn EventSink>,
    ) -> Self {
        let reset_verifier = Arc::new(issuer.reset_verifier());
        LocalIdentityProvider {
            store,
            issuer,
            reset_verifier,
            clock,
            ids,
            events,
            hashing: HashPool::default(),
        }
    }

    /// Hashes run in `pool` (shared with nothing else that hashes in this process).
    pub fn with_hash_pool(mut self, pool: HashPool) -> Self {
        self.hashing = pool;
        self
    }

    async fn hash(&self, password: &str) -> DomainResult<String> {
        let owned = password.to_owned();
        self.hashing.run(move || hash_password(&owned)).await?
    }

    /// A token for `actor_type` from the identity's links as they are now, in its current
    /// token generation, for a sign-in at `auth_time` (now, or the refreshed token's).
    async fn token_for(
        &self,
        identity_id: &str,
        actor_type: &str,
        auth_time: Option<i64>,
    ) -> DomainResult<String> {
        let now = self.clock.now().unix_timestamp();
        let generation = revocation::mark(&self.store, identity_id).await?.generation;
        let mut app_metadata = links::app_metadata(&self.store, identity_id).await?;
        // Staff created before links existed kept their user id on the identity itself.
        if let Some(identity) = self.store.get(&identity_key(identity_id)).await?
            && let Some(Value::Object(stored)) = identity.get("app_metadata")
        {
            for (k, v) in stored {
                app_metadata.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let actor_id = app_metadata
            .get(&format!("{actor_type}_id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if actor_type == "customer"
            && !actor_id.is_empty()
            && let Some(m) = crate::companies::membership_of(&self.store, &actor_id).await?
        {
            app_metadata.insert("company_id".into(), m.company_id.into());
            app_metadata.insert("company_role".into(), m.role.into());
        }
        let context = AuthContext {
            actor_id,
            actor_type: actor_type.to_owned(),
            auth_identity_id: identity_id.to_owned(),
            app_metadata,
            sign_in: Some(SignInFacts {
                auth_time: auth_time.unwrap_or(now),
                issued_at: now,
                generation: Some(generation),
            }),
        };
        self.issuer.issue(&context, PROVIDER, now)
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
            .map(str::to_owned);
        let candidate = password.to_owned();
        // Unknown emails cost a hash too (nothing tells them apart by time), in the same pool.
        let matches = self
            .hashing
            .run(move || match hash {
                Some(hash) => password_matches(&candidate, &hash),
                None => password_matches(&candidate, decoy_hash()),
            })
            .await?;
        let Some(provider) = found.filter(|_| matches) else {
            return Err(invalid_login());
        };
        let identity_id = provider
            .get("auth_identity_id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                DomainError::Internal("provider identity without auth identity".into())
            })?;
        self.token_for(identity_id, actor_type, None).await
    }

    /// Creates an email/password identity with no actor yet; its token has an empty `actor_id`.
    async fn register_identity(&self, email: &str, password: &str) -> DomainResult<String> {
        let identity_id = self.ids.new_id("authid");
        self.register_identity_with_id(&identity_id, email, password, Vec::new())
            .await?;
        Ok(identity_id)
    }

    async fn register_identity_with_id(
        &self,
        identity_id: &str,
        email: &str,
        password: &str,
        extra: Vec<WriteOp>,
    ) -> DomainResult<()> {
        let email = email.trim();
        if !is_valid_email(email) {
            return Err(DomainError::InvalidData(format!(
                "Invalid email address: {email}"
            )));
        }
        check_password_rules(password)?;
        let hash = self.hash(password).await?;
        let now = iso(self.clock.now());
        let email_key = normalize_email(email);
        let mut ops = vec![
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
                    identity_key(identity_id),
                    "auth_identity",
                    object(serde_json::json!({
                        "id": identity_id, "app_metadata": {}, "created_at": now,
                        "email": email_key,
                    })),
                ),
                condition: Some(Condition::NotExists),
            },
        ];
        ops.extend(extra);
        match self.store.transact(ops).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { index: 0 }) => Err(DomainError::Unauthorized(
                "Identity with email already exists".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl IdentityProvider for LocalIdentityProvider {
    /// Creates a staff user with an email/password identity, atomically. Returns the user id.
    async fn create_staff_user(
        &self,
        email: &str,
        password: Option<&str>,
        roles: &[String],
    ) -> DomainResult<String> {
        let password = password.ok_or_else(|| {
            DomainError::InvalidData(
                "Field 'password' is required: the local sign-in provider sends no invitations"
                    .into(),
            )
        })?;
        let user_id = self.ids.new_id("user");
        let identity_id = self.ids.new_id("authid");
        let now = iso(self.clock.now());
        let extra = super::staff::staff_user_ops(&identity_id, &user_id, email, roles, &now);
        self.register_identity_with_id(&identity_id, email, password, extra)
            .await?;
        Ok(user_id)
    }

    fn providers(&self, _actor_type: &str) -> Vec<String> {
        vec![PROVIDER.to_owned()]
    }

    /// The emailpass identity's email (Medusa's `entity_id`), kept on the identity.
    async fn identity_email(
        &self,
        _actor_type: &str,
        auth_identity_id: &str,
    ) -> DomainResult<Option<String>> {
        Ok(self
            .store
            .get(&identity_key(auth_identity_id))
            .await?
            .and_then(|item| item.get("email")?.as_str().map(str::to_owned)))
    }

    async fn register(
        &self,
        actor_type: &str,
        provider: &str,
        email: &str,
        password: &str,
    ) -> DomainResult<SignIn> {
        if provider != PROVIDER {
            return Err(not_offered(actor_type, provider));
        }
        let identity_id = self.register_identity(email, password).await?;
        Ok(SignIn::Token(
            self.token_for(&identity_id, actor_type, None).await?,
        ))
    }

    async fn authenticate(
        &self,
        actor_type: &str,
        provider: &str,
        credentials: &Credentials,
    ) -> DomainResult<SignIn> {
        if provider != PROVIDER {
            return Err(not_offered(actor_type, provider));
        }
        let (Some(email), Some(password)) = (&credentials.email, &credentials.password) else {
            return Err(invalid_login());
        };
        Ok(SignIn::Token(
            self.login(actor_type, email, password).await?,
        ))
    }

    async fn callback(
        &self,
        actor_type: &str,
        provider: &str,
        _code: &str,
        _state: Option<&str>,
    ) -> DomainResult<String> {
        Err(not_offered(actor_type, provider))
    }

    async fn refresh(&self, context: &AuthContext, _presented: &str) -> DomainResult<String> {
        if context.auth_identity_id.is_empty() {
            return Err(DomainError::Unauthenticated);
        }
        if self
            .store
            .get(&identity_key(&context.auth_identity_id))
            .await?
            .is_none()
        {
            return Err(DomainError::Unauthenticated);
        }
        // The sign-in time carries over, so refreshes never pass the absolute lifetime.
        let auth_time = context.sign_in.map(|facts| facts.auth_time);
        self.token_for(&context.auth_identity_id, &context.actor_type, auth_time)
            .await
    }

    async fn request_password_reset(
        &self,
        actor_type: &str,
        provider: &str,
        identifier: &str,
    ) -> DomainResult<()> {
        if provider != PROVIDER {
            return Err(not_offered(actor_type, provider));
        }
        let email_key = normalize_email(identifier);
        if self.store.get(&provider_key(&email_key)).await?.is_none() {
            // Same answer as for a known identity: nothing tells who has an account.
            return Ok(());
        }
        let mut claims = Map::new();
        claims.insert("entity_id".into(), email_key.clone().into());
        claims.insert("provider".into(), PROVIDER.into());
        claims.insert("actor_type".into(), actor_type.into());
        claims.insert("token_use".into(), PASSWORD_RESET.into());
        let token =
            self.issuer
                .sign(claims, self.clock.now().unix_timestamp(), RESET_TTL_SECONDS)?;
        self.events
            .emit(
                "auth.password_reset",
                serde_json::json!({
                    "entity_id": email_key, "actor_type": actor_type,
                    "provider": PROVIDER, "token": token,
                }),
            )
            .await
    }

    async fn update_password(
        &self,
        actor_type: &str,
        provider: &str,
        reset_token: &str,
        _email: Option<&str>,
        password: &str,
    ) -> DomainResult<()> {
        let invalid = || DomainError::Unauthorized("Invalid token".into());
        if provider != PROVIDER {
            return Err(not_offered(actor_type, provider));
        }
        let claims = self
            .reset_verifier
            .verify(reset_token)
            .await
            .map_err(|_| invalid())?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
        let (entity_id, jti) = (text("entity_id"), text("jti"));
        if entity_id.is_empty() || jti.is_empty() || text("provider") != PROVIDER {
            return Err(invalid());
        }
        check_password_rules(password)?;
        let Some(mut current) = self.store.get(&provider_key(entity_id)).await? else {
            return Err(invalid());
        };
        let old_hash = current.get("password_hash").cloned().unwrap_or(Value::Null);
        let identity_id = current
            .get("auth_identity_id")
            .and_then(Value::as_str)
            .ok_or_else(|| DomainError::Internal("provider identity without auth identity".into()))?
            .to_owned();
        current.insert("password_hash".into(), self.hash(password).await?.into());
        let signed_out = revocation::mark(&self.store, &identity_id).await?;
        let used = format!("RESETUSED#{jti}");
        let expires = claims.get("exp").cloned().unwrap_or(Value::Null);
        let ops = vec![
            // One use per token: a second use fails this condition.
            WriteOp::Put {
                item: item(
                    Key::new(used.clone(), used),
                    "used_reset_token",
                    object(serde_json::json!({ "expires_at": expires })),
                ),
                condition: Some(Condition::NotExists),
            },
            WriteOp::Put {
                item: current,
                condition: Some(Condition::Equals {
                    attribute: "password_hash".into(),
                    value: old_hash,
                }),
            },
            // Every token and session from before the reset ends with it.
            revocation::sign_out_op(&identity_id, &signed_out, self.clock.now().unix_timestamp()),
        ];
        match self.store.transact(ops).await {
            Ok(()) => {
                tracing::info!("password updated with a reset token; earlier sign-ins ended");
                Ok(())
            }
            Err(StoreError::ConditionFailed { .. }) => Err(invalid()),
            Err(e) => Err(e.into()),
        }
    }
}
