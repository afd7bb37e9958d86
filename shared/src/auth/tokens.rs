//! Signing and verifying JWTs.
//!
//! Verification always goes through a JWKS (a set of public keys by `kid`) plus an expected
//! issuer, so the local provider's tokens and Cognito's are checked by the same code: only the
//! key source differs (the local key in process, or a pool's `/.well-known/jwks.json`).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::EncodePrivateKey;
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use super::AuthContext;
use crate::error::{DomainError, DomainResult};

/// `token_use` of API tokens (as in Cognito's access tokens).
pub const ACCESS: &str = "access";
/// `token_use` of password-reset tokens, which authenticate nothing else.
pub const PASSWORD_RESET: &str = "password_reset";

/// Tokens live one day, like Medusa's default `jwtExpiresIn`.
pub const DEFAULT_TTL_SECONDS: i64 = 24 * 3600;
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECONDS: u64 = 30;

/// Where verification keys come from.
#[async_trait]
pub trait KeySource: Send + Sync {
    async fn key(&self, kid: &str) -> Option<Jwk>;
}

/// A fixed key set (the local provider's own key).
pub struct StaticKeys(pub JwkSet);

#[async_trait]
impl KeySource for StaticKeys {
    async fn key(&self, kid: &str) -> Option<Jwk> {
        self.0.find(kid).cloned()
    }
}

/// A JWKS fetched over HTTP and cached; an unknown `kid` triggers a refresh (key rotation).
///
/// Anyone can send tokens with made-up `kid`s, so a refresh is rationed: concurrent callers
/// share one fetch, fetches are a cool-down apart (10 s), and a `kid` that a fetched
/// set did not hold is answered "unknown" without fetching for five minutes.
pub struct RemoteKeys {
    url: String,
    client: reqwest::Client,
    cache: RwLock<JwkSet>,
    /// Held while fetching: the single flight, and the fetch times and misses it guards.
    refresh: tokio::sync::Mutex<Refresh>,
    cool_down: std::time::Duration,
    miss_ttl: std::time::Duration,
}

#[derive(Default)]
struct Refresh {
    last_fetch: Option<std::time::Instant>,
    /// `kid`s a fetched set did not hold, with when that was seen.
    misses: std::collections::HashMap<String, std::time::Instant>,
}

/// Unknown `kid`s remembered at most; the memory is cleared whole past it.
const MISS_LIMIT: usize = 1024;

impl RemoteKeys {
    pub fn new(url: impl Into<String>) -> Self {
        RemoteKeys::with_timing(
            url,
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(300),
        )
    }

    /// `cool_down`: least time between two fetches; `miss_ttl`: how long an unknown `kid`
    /// stays unknown without asking again.
    pub fn with_timing(
        url: impl Into<String>,
        cool_down: std::time::Duration,
        miss_ttl: std::time::Duration,
    ) -> Self {
        RemoteKeys {
            url: url.into(),
            client: crate::ports::http_client(),
            cache: RwLock::new(JwkSet { keys: Vec::new() }),
            refresh: Default::default(),
            cool_down,
            miss_ttl,
        }
    }

    async fn fetch(&self) -> Option<JwkSet> {
        self.client
            .get(&self.url)
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .json::<JwkSet>()
            .await
            .ok()
    }
}

#[async_trait]
impl KeySource for RemoteKeys {
    async fn key(&self, kid: &str) -> Option<Jwk> {
        if let Some(k) = self.cache.read().await.find(kid) {
            return Some(k.clone());
        }
        let mut refresh = self.refresh.lock().await;
        // Fetched by the caller this one waited for.
        if let Some(k) = self.cache.read().await.find(kid) {
            return Some(k.clone());
        }
        let now = std::time::Instant::now();
        if refresh
            .misses
            .get(kid)
            .is_some_and(|seen| now.duration_since(*seen) < self.miss_ttl)
        {
            return None;
        }
        if refresh
            .last_fetch
            .is_some_and(|last| now.duration_since(last) < self.cool_down)
        {
            // Not asked for: a key published since then is found after the cool-down.
            return None;
        }
        // A failed fetch counts too: an unreachable JWKS is not asked again at once.
        refresh.last_fetch = Some(now);
        let Some(set) = self.fetch().await else {
            tracing::warn!(url = %self.url, "could not fetch the JWKS");
            return None;
        };
        let found = set.find(kid).cloned();
        *self.cache.write().await = set;
        if found.is_none() {
            if refresh.misses.len() >= MISS_LIMIT {
                refresh.misses.clear();
            }
            refresh.misses.insert(kid.to_owned(), now);
        }
        found
    }
}

/// Verified tokens kept, by digest, until they expire: a signature check costs far more than
/// the request it guards. Cleared whole when full.
const VERIFIED_CACHE_LIMIT: usize = 10_000;

type VerifiedCache =
    std::sync::RwLock<std::collections::HashMap<[u8; 32], (Map<String, Value>, i64)>>;

/// Checks a bearer token: known key, allowed algorithm, signature, issuer, audience, expiry.
pub struct TokenVerifier {
    keys: Arc<dyn KeySource>,
    issuer: String,
    audience: Option<String>,
    /// Cognito access tokens name their app client in `client_id` (they have no `aud`).
    client_id: Option<String>,
    /// `access` for API tokens: an ID token or a password-reset token is refused.
    token_use: Option<String>,
    /// The actor type every identity of this issuer has (a Cognito pool per actor type).
    actor_type: Option<String>,
    verified: VerifiedCache,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl TokenVerifier {
    pub fn new(
        keys: Arc<dyn KeySource>,
        issuer: impl Into<String>,
        audience: Option<String>,
    ) -> Self {
        TokenVerifier {
            keys,
            issuer: issuer.into(),
            audience,
            client_id: None,
            token_use: None,
            actor_type: None,
            verified: Default::default(),
        }
    }

    /// Requires `token_use` to be this value.
    pub fn with_token_use(mut self, token_use: &str) -> Self {
        self.token_use = Some(token_use.to_owned());
        self
    }

    /// Requires the `client_id` claim (or `aud`) to name this app client.
    pub fn with_client_id(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self
    }

    /// Every identity of this issuer is of this actor type.
    pub fn with_actor_type(mut self, actor_type: &str) -> Self {
        self.actor_type = Some(actor_type.to_owned());
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn actor_type(&self) -> Option<&str> {
        self.actor_type.as_deref()
    }

    /// The checks beyond the signature: token use and app client.
    pub fn check_claims(&self, claims: &Map<String, Value>) -> DomainResult<()> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if let Some(expected) = &self.token_use
            && text("token_use") != Some(expected.as_str())
        {
            return Err(DomainError::Unauthenticated);
        }
        if let Some(expected) = &self.client_id
            && text("client_id") != Some(expected.as_str())
            && text("aud") != Some(expected.as_str())
        {
            return Err(DomainError::Unauthenticated);
        }
        Ok(())
    }

    /// The verified claims, or `Unauthenticated` whatever the reason (no detail leaks out).
    pub async fn verify(&self, token: &str) -> DomainResult<Map<String, Value>> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let cached = self.verified.read().ok().and_then(|cache| {
            cache
                .get(&digest)
                .filter(|(_, exp)| unix_now() < *exp)
                .map(|(claims, _)| claims.clone())
        });
        if let Some(claims) = cached {
            return Ok(claims);
        }
        let claims = self.verify_signature(token).await?;
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if let Ok(mut cache) = self.verified.write() {
            if cache.len() >= VERIFIED_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(digest, (claims.clone(), exp));
        }
        Ok(claims)
    }

    async fn verify_signature(&self, token: &str) -> DomainResult<Map<String, Value>> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| DomainError::Unauthenticated)?;
        if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256) {
            return Err(DomainError::Unauthenticated);
        }
        let kid = header.kid.ok_or(DomainError::Unauthenticated)?;
        let jwk = self
            .keys
            .key(&kid)
            .await
            .ok_or(DomainError::Unauthenticated)?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| DomainError::Unauthenticated)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|_| DomainError::Unauthenticated)?;
        self.check_claims(&claims)?;
        Ok(claims)
    }

    pub async fn authenticate(&self, token: &str) -> DomainResult<AuthContext> {
        let claims = self.verify(token).await?;
        AuthContext::from_claims(&claims).ok_or(DomainError::Unauthenticated)
    }
}

/// The local provider's ES256 key, kept in the data folder so tokens survive restarts.
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    public: Jwk,
}

impl SigningKey {
    /// Loads the key from `path`, creating it on first use.
    pub fn load_or_create(path: &Path) -> DomainResult<SigningKey> {
        let internal =
            |e: String| DomainError::Internal(format!("signing key {}: {e}", path.display()));
        let secret_bytes = match std::fs::read_to_string(path) {
            Ok(text) => {
                let stored: Value =
                    serde_json::from_str(&text).map_err(|e| internal(e.to_string()))?;
                let d = stored
                    .get("d")
                    .and_then(Value::as_str)
                    .ok_or_else(|| internal("no d".into()))?;
                URL_SAFE_NO_PAD
                    .decode(d)
                    .map_err(|e| internal(e.to_string()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes = random_scalar()?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| internal(e.to_string()))?;
                }
                let body = serde_json::json!({ "d": URL_SAFE_NO_PAD.encode(&bytes) });
                write_private(path, body.to_string().as_bytes())
                    .map_err(|e| internal(e.to_string()))?;
                bytes
            }
            Err(e) => return Err(internal(e.to_string())),
        };
        SigningKey::from_secret(&secret_bytes)
    }

    /// A key that lives only in memory (tests, benchmarks).
    pub fn ephemeral() -> DomainResult<SigningKey> {
        SigningKey::from_secret(&random_scalar()?)
    }

    fn from_secret(bytes: &[u8]) -> DomainResult<SigningKey> {
        let bad = |e: String| DomainError::Internal(format!("invalid signing key: {e}"));
        let secret = p256::SecretKey::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let der = secret.to_pkcs8_der().map_err(|e| bad(e.to_string()))?;
        let encoding = EncodingKey::from_ec_der(der.as_bytes());
        let mut jwk: Map<String, Value> =
            serde_json::from_str(&secret.public_key().to_jwk_string())
                .map_err(|e| bad(e.to_string()))?;
        // The key id is a digest of the public key: stable, and distinct per key.
        let thumb = {
            use sha2::Digest;
            let x = jwk.get("x").and_then(Value::as_str).unwrap_or_default();
            let y = jwk.get("y").and_then(Value::as_str).unwrap_or_default();
            URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(format!("{x}.{y}").as_bytes())[..12])
        };
        jwk.insert("kid".into(), thumb.clone().into());
        jwk.insert("alg".into(), "ES256".into());
        jwk.insert("use".into(), "sig".into());
        let public: Jwk =
            serde_json::from_value(Value::Object(jwk)).map_err(|e| bad(e.to_string()))?;
        Ok(SigningKey {
            kid: thumb,
            encoding,
            public,
        })
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.public.clone()],
        }
    }

    /// Signs `claims` (which must carry `iss`, `iat` and `exp`).
    pub fn sign(&self, claims: &Map<String, Value>) -> DomainResult<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| DomainError::Internal(format!("cannot sign token: {e}")))
    }
}

fn random_scalar() -> DomainResult<Vec<u8>> {
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| DomainError::Internal(format!("no randomness: {e}")))?;
    Ok(bytes)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

/// Issues Medusa-shaped tokens with the local key.
pub struct TokenIssuer {
    key: SigningKey,
    issuer: String,
    ttl_seconds: i64,
    /// No token outlives its sign-in (`auth_time`) by more than this.
    absolute_lifetime_seconds: i64,
}

impl TokenIssuer {
    pub fn new(key: SigningKey, issuer: impl Into<String>, ttl_seconds: i64) -> Self {
        TokenIssuer {
            key,
            issuer: issuer.into(),
            ttl_seconds,
            absolute_lifetime_seconds: super::DEFAULT_ABSOLUTE_LIFETIME_SECONDS,
        }
    }

    /// Tokens expire at the latest `seconds` after their sign-in, refreshed or not.
    pub fn with_absolute_lifetime(mut self, seconds: i64) -> Self {
        self.absolute_lifetime_seconds = seconds;
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn jwks(&self) -> JwkSet {
        self.key.jwks()
    }

    /// A verifier for the API tokens this issuer signs.
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier::new(Arc::new(StaticKeys(self.jwks())), self.issuer.clone(), None)
            .with_token_use(ACCESS)
    }

    /// A verifier for this issuer's password-reset tokens (and nothing else).
    pub fn reset_verifier(&self) -> TokenVerifier {
        TokenVerifier::new(Arc::new(StaticKeys(self.jwks())), self.issuer.clone(), None)
            .with_token_use(PASSWORD_RESET)
    }

    /// Signs `claims` plus issuer, `iat`, `exp` (`ttl_seconds` from now) and a unique `jti`.
    pub fn sign(
        &self,
        mut claims: Map<String, Value>,
        now_unix: i64,
        ttl_seconds: i64,
    ) -> DomainResult<String> {
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("iat".into(), now_unix.into());
        claims.insert("exp".into(), (now_unix + ttl_seconds).into());
        claims.insert("jti".into(), ulid::Ulid::new().to_string().into());
        self.key.sign(&claims)
    }

    /// An access token for `context`. Its sign-in facts give `auth_time` (a fresh sign-in when
    /// absent) and `gen`, the identity's token generation; `exp` never passes the sign-in's
    /// absolute lifetime.
    pub fn issue(
        &self,
        context: &AuthContext,
        auth_provider: &str,
        now_unix: i64,
    ) -> DomainResult<String> {
        let mut claims = Map::new();
        let auth_time = context.sign_in.map_or(now_unix, |facts| facts.auth_time);
        let generation = context
            .sign_in
            .and_then(|facts| facts.generation)
            .unwrap_or(0);
        claims.insert("auth_time".into(), auth_time.into());
        claims.insert("gen".into(), generation.into());
        claims.insert("actor_id".into(), context.actor_id.clone().into());
        claims.insert("actor_type".into(), context.actor_type.clone().into());
        claims.insert(
            "auth_identity_id".into(),
            context.auth_identity_id.clone().into(),
        );
        claims.insert("auth_provider".into(), auth_provider.into());
        claims.insert(
            "app_metadata".into(),
            Value::Object(context.app_metadata.clone()),
        );
        claims.insert("sub".into(), context.auth_identity_id.clone().into());
        claims.insert("token_use".into(), ACCESS.into());
        // Top-level as well, where the Cognito trigger puts them, so storefronts read one shape.
        for name in ["company_id", "company_role"] {
            if let Some(v) = context.app_metadata.get(name) {
                claims.insert(name.into(), v.clone());
            }
        }
        let ttl = self
            .ttl_seconds
            .min(auth_time + self.absolute_lifetime_seconds - now_unix);
        if ttl <= 0 {
            return Err(DomainError::Unauthenticated);
        }
        self.sign(claims, now_unix, ttl)
    }
}
