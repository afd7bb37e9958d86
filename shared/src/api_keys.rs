//! API keys, as Medusa has them: publishable keys (`pk_…`) that a storefront sends in
//! `x-publishable-api-key`, and secret keys (`sk_…`) that a back-office system uses instead of
//! a staff token (`Authorization: Basic base64("sk_…:")`).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | key | `APIKEY#<id>` | `#META` (gsi1 `APIKEYS` / id) |
//! | token lookup | `APIKEYTOKEN#<token or sha256(secret)>` | same (`api_key_id`) |
//!
//! Publishable tokens are public by nature and kept as they are; secret tokens are shown once
//! and only their digest is stored.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Digest;

use crate::error::{DomainError, DomainResult};
use crate::ports::{Clock, IdGenerator, iso};
use crate::store::{Condition, Index, Item, Key, KvStore, Query, StoreError, WriteOp};

pub const ID_PREFIX: &str = "apk";
const MAX_TITLE_LEN: usize = 255;
/// How long a checked publishable key is trusted without reading the store again. Revoking on
/// this instance takes effect at once; elsewhere within this time.
const CHECK_CACHE_TTL: Duration = Duration::from_secs(10);
const CHECK_CACHE_LIMIT: usize = 10_000;

pub const MISSING_PUBLISHABLE_KEY: &str = "Publishable API key required in the request header: x-publishable-api-key. You can manage your keys in settings in the dashboard.";
pub const INVALID_PUBLISHABLE_KEY: &str =
    "A valid publishable key is required to proceed with the request";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Publishable,
    Secret,
}

impl KeyType {
    pub fn parse(text: &str) -> Option<KeyType> {
        match text {
            "publishable" => Some(KeyType::Publishable),
            "secret" => Some(KeyType::Secret),
            _ => None,
        }
    }
}

/// An API key as Medusa shows it. Field order is the wire order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    /// The publishable token; for a secret key, the token only in the answer that created it.
    pub token: String,
    pub redacted: String,
    pub title: String,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub last_used_at: Option<String>,
    pub created_by: String,
    /// A secret key's permissions: its creator's policies when it was made (a key made before
    /// keys kept them has none here, and acts with its creator's roles as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<String>>,
    pub created_at: String,
    pub updated_at: String,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<String>,
    pub deleted_at: Option<String>,
}

fn key_of(id: &str) -> Key {
    Key::new(format!("APIKEY#{id}"), "#META")
}

fn lookup_key(stored_token: &str) -> Key {
    let k = format!("APIKEYTOKEN#{stored_token}");
    Key::new(k.clone(), k)
}

fn digest(secret: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(secret.as_bytes()))
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("API Key with id: {id} was not found"))
}

fn internal(e: impl std::fmt::Display) -> DomainError {
    DomainError::Internal(e.to_string())
}

fn to_item(key: &ApiKey) -> DomainResult<Item> {
    let Value::Object(mut item) = serde_json::to_value(key).map_err(internal)? else {
        return Err(internal("api key is not an object"));
    };
    let k = key_of(&key.id);
    item.insert("pk".into(), k.pk.into());
    item.insert("sk".into(), k.sk.into());
    item.insert("entity_type".into(), "api_key".into());
    item.insert("gsi1pk".into(), "APIKEYS".into());
    item.insert("gsi1sk".into(), key.id.clone().into());
    Ok(item)
}

fn from_item(item: Item) -> DomainResult<ApiKey> {
    serde_json::from_value(Value::Object(item)).map_err(internal)
}

/// Filters of the admin list.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyQuery {
    pub q: Option<String>,
    pub key_type: Option<KeyType>,
    pub revoked: Option<bool>,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Clone)]
pub struct ApiKeyService {
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    checked: Arc<RwLock<HashMap<String, (bool, Instant)>>>,
}

fn random_token(prefix: &str) -> DomainResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| internal(format!("no randomness: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}_{hex}"))
}

fn redact(token: &str) -> String {
    let (prefix, rest) = token.split_at(3);
    format!("{prefix}***{}", &rest[rest.len().saturating_sub(3)..])
}

impl ApiKeyService {
    pub fn new(store: Arc<dyn KvStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        ApiKeyService {
            store,
            clock,
            ids,
            checked: Default::default(),
        }
    }

    /// A new key. A secret key acts with `policies` (its creator's, taken by the caller):
    /// publishable keys have none.
    pub async fn create(
        &self,
        title: &str,
        key_type: KeyType,
        created_by: &str,
        policies: Vec<String>,
    ) -> DomainResult<ApiKey> {
        let title = title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE_LEN {
            return Err(DomainError::InvalidData(format!(
                "title must have 1 to {MAX_TITLE_LEN} characters"
            )));
        }
        let token = random_token(match key_type {
            KeyType::Publishable => "pk",
            KeyType::Secret => "sk",
        })?;
        let now = iso(self.clock.now());
        let key = ApiKey {
            id: self.ids.new_id(ID_PREFIX),
            token: token.clone(),
            redacted: redact(&token),
            title: title.to_owned(),
            key_type,
            last_used_at: None,
            created_by: created_by.to_owned(),
            policies: (key_type == KeyType::Secret).then_some(policies),
            created_at: now.clone(),
            updated_at: now,
            revoked_by: None,
            revoked_at: None,
            deleted_at: None,
        };
        let (stored, stored_token) = match key_type {
            KeyType::Publishable => (key.clone(), token.clone()),
            KeyType::Secret => (
                ApiKey {
                    token: String::new(),
                    ..key.clone()
                },
                digest(&token),
            ),
        };
        let lookup_key = lookup_key(&stored_token);
        let mut lookup = Map::new();
        lookup.insert("pk".into(), lookup_key.pk.into());
        lookup.insert("sk".into(), lookup_key.sk.into());
        lookup.insert("entity_type".into(), "api_key_token".into());
        lookup.insert("api_key_id".into(), key.id.clone().into());
        self.store
            .transact(vec![
                WriteOp::Put {
                    item: to_item(&stored)?,
                    condition: Some(Condition::NotExists),
                },
                WriteOp::Put {
                    item: lookup,
                    condition: Some(Condition::NotExists),
                },
            ])
            .await?;
        tracing::info!(api_key_id = %key.id, "api key created");
        Ok(key)
    }

    async fn get(&self, id: &str) -> DomainResult<Option<ApiKey>> {
        match self.store.get(&key_of(id)).await? {
            Some(item) => Ok(Some(from_item(item)?).filter(|k| k.deleted_at.is_none())),
            None => Ok(None),
        }
    }

    pub async fn retrieve(&self, id: &str) -> DomainResult<ApiKey> {
        self.get(id).await?.ok_or_else(|| not_found(id))
    }

    /// Every live key, filtered and paged in memory: a store has a handful of keys.
    pub async fn list(&self, query: &ApiKeyQuery) -> DomainResult<(Vec<ApiKey>, usize)> {
        let mut all = Vec::new();
        let mut page_query = Query::new(Index::Gsi1, "APIKEYS");
        page_query.limit = 500;
        loop {
            let page = self.store.query(&page_query).await?;
            for item in page.items {
                all.push(from_item(item)?);
            }
            match page.last_key {
                Some(last) => page_query.start_after = Some(last),
                None => break,
            }
        }
        let needle = query.q.as_deref().map(str::to_lowercase);
        let matching: Vec<ApiKey> = all
            .into_iter()
            .filter(|k| k.deleted_at.is_none())
            .filter(|k| query.key_type.is_none_or(|t| k.key_type == t))
            .filter(|k| query.revoked.is_none_or(|r| k.revoked_at.is_some() == r))
            .filter(|k| {
                needle.as_deref().is_none_or(|n| {
                    k.title.to_lowercase().contains(n) || k.redacted.to_lowercase().contains(n)
                })
            })
            .collect();
        let count = matching.len();
        Ok((
            matching
                .into_iter()
                .skip(query.offset)
                .take(query.limit)
                .collect(),
            count,
        ))
    }

    pub async fn update_title(&self, id: &str, title: &str) -> DomainResult<ApiKey> {
        let current = self.retrieve(id).await?;
        let title = title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE_LEN {
            return Err(DomainError::InvalidData(format!(
                "title must have 1 to {MAX_TITLE_LEN} characters"
            )));
        }
        let next = ApiKey {
            title: title.to_owned(),
            updated_at: iso(self.clock.now()),
            ..current.clone()
        };
        self.replace(&current, &next).await?;
        Ok(next)
    }

    async fn replace(&self, current: &ApiKey, next: &ApiKey) -> DomainResult<()> {
        let result = self
            .store
            .transact(vec![WriteOp::Put {
                item: to_item(next)?,
                condition: Some(Condition::equals("updated_at", current.updated_at.clone())),
            }])
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { .. }) => Err(DomainError::Conflict(format!(
                "API key {} was changed by another request, please retry.",
                current.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes a key from now on. Revoking a revoked key keeps the first revocation.
    pub async fn revoke(&self, id: &str, revoked_by: &str) -> DomainResult<ApiKey> {
        let current = self.retrieve(id).await?;
        if current.revoked_at.is_some() {
            return Ok(current);
        }
        let now = iso(self.clock.now());
        let next = ApiKey {
            revoked_at: Some(now.clone()),
            revoked_by: Some(revoked_by.to_owned()),
            updated_at: now,
            ..current.clone()
        };
        self.replace(&current, &next).await?;
        if let Ok(mut cache) = self.checked.write() {
            cache.clear();
        }
        tracing::info!(api_key_id = %id, "api key revoked");
        Ok(next)
    }

    /// Deletes a revoked key (Medusa refuses to delete a key still in use).
    pub async fn delete(&self, id: &str) -> DomainResult<()> {
        let Some(current) = self.get(id).await? else {
            return Ok(());
        };
        if current.revoked_at.is_none() {
            return Err(DomainError::NotAllowed(format!(
                "Cannot delete api keys that are not revoked - {id}"
            )));
        }
        let stored_token = match current.key_type {
            KeyType::Publishable => current.token.clone(),
            // The digest of a secret is not kept on the key; its lookup item stays, harmless:
            // it points at a deleted key.
            KeyType::Secret => String::new(),
        };
        let mut ops = vec![WriteOp::Delete {
            key: key_of(id),
            condition: Some(Condition::equals("updated_at", current.updated_at.clone())),
        }];
        if !stored_token.is_empty() {
            ops.push(WriteOp::Delete {
                key: lookup_key(&stored_token),
                condition: None,
            });
        }
        match self.store.transact(ops).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { .. }) => Err(DomainError::Conflict(format!(
                "API key {id} was changed by another request, please retry."
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn active_by_stored_token(&self, stored_token: &str) -> DomainResult<Option<ApiKey>> {
        let Some(lookup) = self.store.get(&lookup_key(stored_token)).await? else {
            return Ok(None);
        };
        let Some(id) = lookup.get("api_key_id").and_then(Value::as_str) else {
            return Ok(None);
        };
        Ok(self.get(id).await?.filter(|k| k.revoked_at.is_none()))
    }

    /// Checks the `x-publishable-api-key` header value, with Medusa's two error messages.
    pub async fn check_publishable(&self, header: Option<&str>) -> DomainResult<()> {
        let Some(token) = header.map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(DomainError::NotAllowed(MISSING_PUBLISHABLE_KEY.into()));
        };
        let cached = self.checked.read().ok().and_then(|cache| {
            cache
                .get(token)
                .filter(|(_, at)| at.elapsed() < CHECK_CACHE_TTL)
                .map(|(valid, _)| *valid)
        });
        let valid = match cached {
            Some(valid) => valid,
            None => {
                let valid = token.starts_with("pk_")
                    && self
                        .active_by_stored_token(token)
                        .await?
                        .is_some_and(|k| k.key_type == KeyType::Publishable);
                if let Ok(mut cache) = self.checked.write() {
                    if cache.len() >= CHECK_CACHE_LIMIT {
                        cache.clear();
                    }
                    cache.insert(token.to_owned(), (valid, Instant::now()));
                }
                valid
            }
        };
        if valid {
            Ok(())
        } else {
            Err(DomainError::NotAllowed(INVALID_PUBLISHABLE_KEY.into()))
        }
    }

    /// The secret key behind `token`, if it is live: what `Authorization: Basic` carries.
    pub async fn authenticate_secret(&self, token: &str) -> DomainResult<Option<ApiKey>> {
        if !token.starts_with("sk_") {
            return Ok(None);
        }
        Ok(self
            .active_by_stored_token(&digest(token))
            .await?
            .filter(|k| k.key_type == KeyType::Secret))
    }
}
