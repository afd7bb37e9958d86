//! Who is calling: tokens, their verification, identity links, sessions, and the identity
//! providers (the local one and Cognito) behind Medusa's auth routes.

pub mod cognito;
pub mod limits;
pub mod links;
pub mod local;
pub mod revocation;
pub mod sessions;
pub mod staff;
pub mod tokens;
pub mod triggers;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use self::tokens::TokenVerifier;
use crate::error::{DomainError, DomainResult};
use crate::store::KvStore;

/// The actor types Medusa's auth routes serve.
pub const ACTOR_TYPES: &[&str] = &["customer", "user"];

/// The actor behind a request, as Medusa's routes see it (`req.auth_context`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthContext {
    /// Empty until the actor record exists (a customer who registered but has no profile yet).
    pub actor_id: String,
    /// `user` (staff), `customer`, or `api-key` (a secret API key).
    pub actor_type: String,
    pub auth_identity_id: String,
    #[serde(default)]
    pub app_metadata: Map<String, Value>,
    /// The sign-in behind a token or session; `None` for secret API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in: Option<SignInFacts>,
}

/// What a token says about the sign-in it stems from, checked against the identity's sign-out
/// mark on every request and against the absolute lifetime on refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInFacts {
    /// When the person last proved a credential (epoch seconds); kept through refreshes.
    pub auth_time: i64,
    /// When this token was issued (epoch seconds).
    pub issued_at: i64,
    /// The identity's token generation the token was issued in (local tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

impl SignInFacts {
    /// From `iat`, `auth_time` and `gen` (numbers, or strings as API Gateway passes claims).
    pub fn from_claims(claims: &Map<String, Value>) -> SignInFacts {
        let number = |name: &str| {
            claims.get(name).and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        let issued_at = number("iat").unwrap_or(0);
        SignInFacts {
            auth_time: number("auth_time").unwrap_or(issued_at),
            issued_at,
            generation: number("gen"),
        }
    }
}

impl AuthContext {
    /// Reads Medusa's claims. Missing `actor_id` means "not linked yet", as in a fresh registration.
    /// Only a customer or a staff user can be claimed: a secret API key is an actor only when
    /// its key is looked up in the store, so a token saying `api-key` (or anything else) is none.
    pub fn from_claims(claims: &Map<String, Value>) -> Option<AuthContext> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Some(AuthContext {
            actor_id: text("actor_id").unwrap_or_default(),
            actor_type: text("actor_type").filter(|t| ACTOR_TYPES.contains(&t.as_str()))?,
            auth_identity_id: text("auth_identity_id").unwrap_or_default(),
            app_metadata: claims
                .get("app_metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            sign_in: Some(SignInFacts::from_claims(claims)),
        })
    }

    /// Staff: a signed-in user, or a secret API key acting for the store.
    pub fn is_staff(&self) -> bool {
        (self.actor_type == "user" || self.actor_type == "api-key") && !self.actor_id.is_empty()
    }

    /// A customer with a customer record.
    pub fn is_registered_customer(&self) -> bool {
        self.actor_type == "customer" && !self.actor_id.is_empty()
    }
}

/// What a sign-in attempt gives.
#[derive(Debug, Clone, PartialEq)]
pub enum SignIn {
    /// `{token}`.
    Token(String),
    /// `{location}`: a provider that signs people in on its own pages (Google, SAML). `state`
    /// is the OAuth state in `location`, which the callback must present again; the caller
    /// binds it to the browser that started the sign-in.
    Redirect { location: String, state: String },
    /// `{verification_required: true}`: the identity exists but must confirm its email first.
    VerificationRequired,
}

/// An identity provider behind Medusa's `/auth/{actor}/{provider}` routes.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// The provider ids this deployment offers (`emailpass`, `google`, a SAML name…).
    fn providers(&self, actor_type: &str) -> Vec<String>;

    async fn register(
        &self,
        actor_type: &str,
        provider: &str,
        email: &str,
        password: &str,
    ) -> DomainResult<SignIn>;

    /// Email and password sign-in, or the redirect of a federated provider.
    async fn authenticate(
        &self,
        actor_type: &str,
        provider: &str,
        credentials: &Credentials,
    ) -> DomainResult<SignIn>;

    /// The return leg of a federated sign-in: exchanges the code for a token.
    async fn callback(
        &self,
        actor_type: &str,
        provider: &str,
        code: &str,
        state: Option<&str>,
    ) -> DomainResult<String>;

    /// A fresh token for the caller, built from the identity as it is now (so it carries the
    /// customer created since the last token).
    async fn refresh(&self, context: &AuthContext, presented_token: &str) -> DomainResult<String>;

    /// The email address the identity signs in with, as its provider knows it (`None` when
    /// it has none, or the identity is unknown): the only email a customer registering from
    /// this identity may take, so that nobody claims someone else's address.
    async fn identity_email(
        &self,
        actor_type: &str,
        auth_identity_id: &str,
    ) -> DomainResult<Option<String>>;

    /// Starts a password reset; succeeds whether or not the identity exists.
    async fn request_password_reset(
        &self,
        actor_type: &str,
        provider: &str,
        identifier: &str,
    ) -> DomainResult<()>;

    /// Ends what the provider itself keeps for the identity when it signs out everywhere
    /// (Cognito's refresh tokens, which a client may hold and use without this API); the
    /// identity's sign-out mark ends the rest. Nothing to do for the local provider.
    async fn end_provider_sessions(
        &self,
        _actor_type: &str,
        _auth_identity_id: &str,
    ) -> DomainResult<()> {
        Ok(())
    }

    /// Creates a staff user with `roles` who signs in with `email` and `password`; returns the
    /// user id. Without a password, a provider that can (Cognito) invites the user by email;
    /// the local provider needs one.
    async fn create_staff_user(
        &self,
        email: &str,
        password: Option<&str>,
        roles: &[String],
    ) -> DomainResult<String>;

    /// Sets a new password with the reset token (local: the emitted JWT; Cognito: the code
    /// it sent by email, with the email).
    async fn update_password(
        &self,
        actor_type: &str,
        provider: &str,
        reset_token: &str,
        email: Option<&str>,
        password: &str,
    ) -> DomainResult<()>;
}

/// The body of `POST /auth/{actor}/{provider}`.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub email: Option<String>,
    pub password: Option<String>,
    pub callback_url: Option<String>,
    /// The current TOTP code, for an identity that enrolled in MFA (Cognito).
    pub mfa_code: Option<String>,
}

/// Turns a bearer token, or claims API Gateway already verified, into an [`AuthContext`].
///
/// Each verifier stands for one issuer (the local key, the customer pool, the staff pool). An
/// issuer bound to an actor type (a Cognito pool) identifies people by `sub`; their actor id
/// comes from the token's `actor_id` claim when a trigger added it, else from the identity link.
pub struct Authenticator {
    verifiers: Vec<Arc<TokenVerifier>>,
    store: Arc<dyn KvStore>,
    /// How long a sign-in may be kept alive by refreshes (seconds).
    absolute_lifetime_seconds: i64,
}

/// A sign-in lives at most 30 days, however often its token is refreshed.
pub const DEFAULT_ABSOLUTE_LIFETIME_SECONDS: i64 = 30 * 24 * 3600;

fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

impl Authenticator {
    pub fn new(verifiers: Vec<Arc<TokenVerifier>>, store: Arc<dyn KvStore>) -> Self {
        Authenticator {
            verifiers,
            store,
            absolute_lifetime_seconds: DEFAULT_ABSOLUTE_LIFETIME_SECONDS,
        }
    }

    /// Refresh refuses sign-ins older than `seconds`.
    pub fn with_absolute_lifetime(mut self, seconds: i64) -> Self {
        self.absolute_lifetime_seconds = seconds;
        self
    }

    /// A context is current unless its identity signed out everywhere (a password reset, say)
    /// after its token was issued. One store read; secret API keys have no identity to check.
    pub async fn check_current(&self, context: &AuthContext) -> DomainResult<()> {
        if context.auth_identity_id.is_empty() {
            return Ok(());
        }
        let mark = revocation::mark(&self.store, &context.auth_identity_id).await?;
        if mark.ends(context.sign_in.as_ref()) {
            return Err(DomainError::Unauthenticated);
        }
        Ok(())
    }

    /// Refresh keeps a sign-in alive only within its absolute lifetime: past it, 401 and the
    /// person signs in again.
    pub fn check_refreshable(&self, context: &AuthContext) -> DomainResult<()> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let auth_time = context.sign_in.map_or(0, |facts| facts.auth_time);
        if now.saturating_sub(auth_time) > self.absolute_lifetime_seconds {
            return Err(DomainError::Unauthenticated);
        }
        Ok(())
    }

    /// Verifies a bearer token with the verifier of its issuer.
    pub async fn from_token(&self, token: &str) -> DomainResult<AuthContext> {
        let issuer = unverified_issuer(token).ok_or(DomainError::Unauthenticated)?;
        let verifier = self
            .verifiers
            .iter()
            .find(|v| v.issuer() == issuer)
            .ok_or(DomainError::Unauthenticated)?;
        let claims = verifier.verify(token).await?;
        let context = self.context(verifier, &claims).await?;
        self.check_current(&context).await?;
        Ok(context)
    }

    /// Claims the API Gateway JWT authorizer verified: mapped by their issuer, never re-checked.
    pub async fn from_verified_claims(
        &self,
        claims: &Map<String, Value>,
    ) -> DomainResult<AuthContext> {
        let issuer = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(DomainError::Unauthenticated)?;
        let context = match self.verifiers.iter().find(|v| v.issuer() == issuer) {
            Some(verifier) => {
                verifier.check_claims(claims)?;
                self.context(verifier, claims).await?
            }
            None => AuthContext::from_claims(claims).ok_or(DomainError::Unauthenticated)?,
        };
        self.check_current(&context).await?;
        Ok(context)
    }

    async fn context(
        &self,
        verifier: &TokenVerifier,
        claims: &Map<String, Value>,
    ) -> DomainResult<AuthContext> {
        let Some(actor_type) = verifier.actor_type() else {
            return AuthContext::from_claims(claims).ok_or(DomainError::Unauthenticated);
        };
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or(DomainError::Unauthenticated)?;
        let claimed = claims
            .get("actor_id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        let actor_id = match claimed {
            Some(id) => id,
            None => links::actor_id(&self.store, sub, actor_type)
                .await?
                .unwrap_or_default(),
        };
        let mut app_metadata = Map::new();
        if !actor_id.is_empty() {
            app_metadata.insert(format!("{actor_type}_id"), actor_id.clone().into());
        }
        Ok(AuthContext {
            actor_id,
            actor_type: actor_type.to_owned(),
            auth_identity_id: sub.to_owned(),
            app_metadata,
            sign_in: Some(SignInFacts::from_claims(claims)),
        })
    }
}

/// Creates the first staff user from configuration (`ADMIN_EMAIL`) when there is none yet.
pub async fn ensure_first_staff_user(
    provider: &dyn IdentityProvider,
    store: &Arc<dyn KvStore>,
    email: &str,
    password: &str,
) -> DomainResult<bool> {
    if staff::any_staff(store).await? {
        return Ok(false);
    }
    let roles = [crate::roles::ADMIN.to_owned()];
    match provider
        .create_staff_user(email, Some(password), &roles)
        .await
    {
        Ok(id) => {
            tracing::info!(user_id = %id, %email, "created the first staff user");
            Ok(true)
        }
        // Another instance created it at the same moment.
        Err(DomainError::Unauthorized(_)) => Ok(false),
        Err(e) => Err(e),
    }
}
