//! Cognito behind Medusa's auth routes: one user pool per actor type (customers, staff).
//!
//! Why separate pools rather than groups in one pool: customers sign themselves up and may come
//! through Google or a company's SAML provider, staff are invited only and have stricter
//! policies; and a token of one pool can never pass for the other, because its issuer differs.
//!
//! The API hands out Cognito **access tokens** (`token_use: access`, checked with `client_id`),
//! so the API Gateway JWT authorizer can check them too. Medusa's refresh route takes only the
//! current token, so the refresh token Cognito issues with it stays server-side, under the
//! access token's `jti`, until it expires.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | refresh token | `REFRESH#<jti>` | same (`refresh_token`, `actor_type`, `expires_at`) |
//! | pending federated sign-in | `OAUTHSTATE#<state>` | same (`actor_type`, `provider`, `redirect_uri`, `expires_at`) |

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata;
use aws_sdk_cognitoidentityprovider::types::{AttributeType, AuthFlowType, ChallengeNameType};
use serde_json::{Map, Value};

use super::tokens::{ACCESS, RemoteKeys, TokenVerifier};
use super::{AuthContext, Credentials, IdentityProvider, SignIn};
use crate::customers::normalize_email;
use crate::error::{DomainError, DomainResult};
use crate::ports::{Clock, IdGenerator};
use crate::store::{Condition, Key, KvStore, StoreError, WriteOp};

/// Cognito's default refresh-token lifetime; the stored copy expires with it.
const REFRESH_TTL_SECONDS: i64 = 30 * 24 * 3600;
/// How long a federated sign-in may take between `{location}` and the callback.
pub const STATE_TTL_SECONDS: i64 = 10 * 60;

/// One user pool and its app client, serving one actor type.
#[derive(Debug, Clone, PartialEq)]
pub struct CognitoPool {
    pub actor_type: String,
    pub pool_id: String,
    pub client_id: String,
    /// The hosted UI, e.g. `https://shop.auth.eu-west-1.amazoncognito.com` (federated sign-in).
    pub domain: Option<String>,
    /// Where the hosted UI sends people back (the storefront's callback page).
    pub redirect_uri: Option<String>,
    /// Medusa provider id → Cognito identity provider name (`google` → `Google`).
    pub federated: Vec<(String, String)>,
}

impl CognitoPool {
    pub fn issuer(&self, region: &str) -> String {
        format!(
            "https://cognito-idp.{region}.amazonaws.com/{}",
            self.pool_id
        )
    }

    /// A verifier of this pool's access tokens. `jwks_base` is the issuer's host on AWS, or
    /// moto's endpoint in tests (moto issues AWS-shaped issuers but serves the keys itself).
    pub fn verifier(&self, region: &str, jwks_base: &str) -> TokenVerifier {
        let url = format!(
            "{}/{}/.well-known/jwks.json",
            jwks_base.trim_end_matches('/'),
            self.pool_id
        );
        TokenVerifier::new(Arc::new(RemoteKeys::new(url)), self.issuer(region), None)
            .with_token_use(ACCESS)
            .with_client_id(&self.client_id)
            .with_actor_type(&self.actor_type)
    }
}

pub struct CognitoIdentityProvider {
    client: Client,
    pools: Vec<(CognitoPool, Arc<TokenVerifier>)>,
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    /// Confirm sign-ups at once (`AdminConfirmSignUp`) rather than waiting for the emailed code.
    auto_confirm: bool,
}

/// A `ListUsers` filter matching `attribute` exactly, with `value` quoted as Cognito wants.
pub(crate) fn list_users_filter(attribute: &str, value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{attribute} = \"{escaped}\"")
}

/// The value of a user's attribute `name`.
pub(crate) fn user_attribute<'a>(attributes: &'a [AttributeType], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.name() == name)
        .and_then(|a| a.value())
}

fn invalid_login() -> DomainError {
    DomainError::Unauthorized("Invalid email or password".into())
}

fn not_offered(actor_type: &str, provider: &str) -> DomainError {
    DomainError::NotAllowed(format!(
        "The actor type {actor_type} is not allowed to use the auth provider {provider}"
    ))
}

/// Maps Cognito's errors that are the caller's doing; anything else is ours (500) or
/// Cognito's availability (503).
fn cognito_error<E>(error: &aws_sdk_cognitoidentityprovider::error::SdkError<E>) -> DomainError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let message = error.message().unwrap_or("rejected by Cognito").to_owned();
    match error.code() {
        Some(
            "NotAuthorizedException" | "UserNotFoundException" | "PasswordResetRequiredException",
        ) => invalid_login(),
        Some("UsernameExistsException" | "AliasExistsException") => {
            DomainError::Unauthorized("Identity with email already exists".into())
        }
        Some("InvalidPasswordException" | "InvalidParameterException") => {
            DomainError::InvalidData(message)
        }
        Some(
            "TooManyRequestsException"
            | "LimitExceededException"
            | "TooManyFailedAttemptsException",
        ) => DomainError::TooManyRequests {
            message: "Too many attempts. Try again in a few minutes.".into(),
            retry_after_seconds: 60,
        },
        Some("CodeMismatchException" | "ExpiredCodeException") => {
            DomainError::Unauthorized("Invalid token".into())
        }
        Some("UserNotConfirmedException") => {
            DomainError::Unauthorized("Confirm your email address before signing in".into())
        }
        _ => {
            tracing::error!(error = ?error, "Cognito call failed");
            DomainError::Unavailable("The sign-in service is unavailable, please retry.".into())
        }
    }
}

fn keyed(key: Key, fields: Map<String, Value>) -> crate::store::Item {
    let mut item = fields;
    item.insert("pk".into(), key.pk.into());
    item.insert("sk".into(), key.sk.into());
    item
}

fn single(prefix: &str, id: &str) -> Key {
    let k = format!("{prefix}#{id}");
    Key::new(k.clone(), k)
}

fn random_state() -> DomainResult<String> {
    use base64::Engine;
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| DomainError::Internal(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl CognitoIdentityProvider {
    pub fn new(
        client: Client,
        pools: Vec<(CognitoPool, Arc<TokenVerifier>)>,
        store: Arc<dyn KvStore>,
        clock: Arc<dyn Clock>,
        auto_confirm: bool,
    ) -> Self {
        CognitoIdentityProvider {
            client,
            pools,
            store,
            clock,
            http: crate::ports::http_client(),
            auto_confirm,
        }
    }

    fn pool(&self, actor_type: &str) -> DomainResult<&(CognitoPool, Arc<TokenVerifier>)> {
        self.pools
            .iter()
            .find(|(p, _)| p.actor_type == actor_type)
            .ok_or_else(|| not_offered(actor_type, "cognito"))
    }

    /// Verifies a token Cognito just issued and keeps its refresh token for `/auth/token/refresh`.
    async fn keep(
        &self,
        actor_type: &str,
        verifier: &TokenVerifier,
        access_token: &str,
        refresh_token: Option<&str>,
    ) -> DomainResult<String> {
        let claims = verifier.verify(access_token).await.map_err(|_| {
            DomainError::Internal("Cognito issued a token that does not verify".into())
        })?;
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or_else(|| DomainError::Internal("Cognito token without jti".into()))?;
        if let Some(refresh) = refresh_token {
            let mut fields = Map::new();
            fields.insert("entity_type".into(), "refresh_token".into());
            fields.insert("refresh_token".into(), refresh.into());
            fields.insert("actor_type".into(), actor_type.into());
            fields.insert(
                "expires_at".into(),
                (self.clock.now().unix_timestamp() + REFRESH_TTL_SECONDS).into(),
            );
            self.store
                .transact(vec![WriteOp::Put {
                    item: keyed(single("REFRESH", jti), fields),
                    condition: None,
                }])
                .await?;
        }
        Ok(access_token.to_owned())
    }

    /// After a reset: Cognito revokes the user's refresh tokens, and the sign-out mark ends
    /// the access tokens (and sessions) issued before, which Cognito's JWKS alone would still
    /// accept until they expire.
    async fn sign_out_everywhere(&self, pool: &CognitoPool, username: &str) -> DomainResult<()> {
        let user = self
            .client
            .admin_get_user()
            .user_pool_id(&pool.pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| cognito_error(&e))?;
        let sub = user_attribute(user.user_attributes(), "sub")
            .ok_or_else(|| DomainError::Internal("Cognito user without sub".into()))?
            .to_owned();
        super::revocation::sign_out_everywhere(
            &self.store,
            &sub,
            self.clock.now().unix_timestamp(),
        )
        .await?;
        if let Err(e) = self.global_sign_out(pool, username).await {
            // The mark already ends the old tokens here; Cognito's refresh tokens stay valid
            // until it answers, and refresh is checked against the mark as well.
            tracing::warn!(error = %e, "Cognito global sign-out failed after a reset");
        }
        Ok(())
    }

    /// Revokes every refresh token Cognito issued to the user.
    async fn global_sign_out(&self, pool: &CognitoPool, username: &str) -> DomainResult<()> {
        self.client
            .admin_user_global_sign_out()
            .user_pool_id(&pool.pool_id)
            .username(username)
            .send()
            .await
            .map_err(|e| cognito_error(&e))?;
        Ok(())
    }

    /// The pool user whose `sub` is the identity's id.
    async fn user_by_sub(
        &self,
        pool: &CognitoPool,
        sub: &str,
    ) -> DomainResult<Option<aws_sdk_cognitoidentityprovider::types::UserType>> {
        let users = self
            .client
            .list_users()
            .user_pool_id(&pool.pool_id)
            .filter(list_users_filter("sub", sub))
            .limit(1)
            .send()
            .await
            .map_err(|e| cognito_error(&e))?;
        Ok(users.users().first().cloned())
    }

    async fn password_login(
        &self,
        actor_type: &str,
        email: &str,
        password: &str,
        mfa_code: Option<&str>,
    ) -> DomainResult<String> {
        let (pool, verifier) = self.pool(actor_type)?;
        let username = normalize_email(email);
        let started = self
            .client
            .initiate_auth()
            .client_id(&pool.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", &username)
            .auth_parameters("PASSWORD", password)
            .send()
            .await
            .map_err(|e| cognito_error(&e))?;
        // A user who enrolled in TOTP (the staff pool offers it) answers with the current code.
        let (tokens, challenge) =
            if started.challenge_name() == Some(&ChallengeNameType::SoftwareTokenMfa) {
                let code = mfa_code.ok_or_else(|| {
                    DomainError::Unauthorized(
                    "Sign-in needs the current code of your authenticator app: send it as mfa_code"
                        .into(),
                )
                })?;
                let answered = self
                    .client
                    .respond_to_auth_challenge()
                    .client_id(&pool.client_id)
                    .challenge_name(ChallengeNameType::SoftwareTokenMfa)
                    .set_session(started.session().map(str::to_owned))
                    .challenge_responses("USERNAME", &username)
                    .challenge_responses("SOFTWARE_TOKEN_MFA_CODE", code)
                    .send()
                    .await
                    .map_err(|e| cognito_error(&e))?;
                (
                    answered.authentication_result().cloned(),
                    answered.challenge_name().cloned(),
                )
            } else {
                (
                    started.authentication_result().cloned(),
                    started.challenge_name().cloned(),
                )
            };
        let tokens = tokens.ok_or_else(|| {
            // A challenge (new password, MFA set-up) that this flow does not complete.
            DomainError::Unauthorized(format!(
                "Sign-in needs another step: {}",
                challenge.map(|c| c.as_str().to_owned()).unwrap_or_default()
            ))
        })?;
        let access = tokens
            .access_token()
            .ok_or_else(|| DomainError::Internal("Cognito returned no access token".into()))?;
        self.keep(actor_type, verifier, access, tokens.refresh_token())
            .await
    }

    fn federated_name<'a>(&self, pool: &'a CognitoPool, provider: &str) -> Option<&'a str> {
        pool.federated
            .iter()
            .find(|(id, _)| id == provider)
            .map(|(_, name)| name.as_str())
    }
}

#[async_trait]
impl IdentityProvider for CognitoIdentityProvider {
    fn providers(&self, actor_type: &str) -> Vec<String> {
        match self.pool(actor_type) {
            Ok((pool, _)) => std::iter::once("emailpass".to_owned())
                .chain(pool.federated.iter().map(|(id, _)| id.clone()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn end_provider_sessions(
        &self,
        actor_type: &str,
        auth_identity_id: &str,
    ) -> DomainResult<()> {
        let (pool, _) = self.pool(actor_type)?;
        let Some(user) = self.user_by_sub(pool, auth_identity_id).await? else {
            return Ok(());
        };
        // The pool takes the email as an alias of the user name; sign-ins use it, so it names
        // the user the way its refresh tokens were issued.
        let Some(username) = user_attribute(user.attributes(), "email").or_else(|| user.username())
        else {
            return Ok(());
        };
        self.global_sign_out(pool, username).await
    }

    /// The pool user's `email`: verified by the emailed code (unless sign-ups are
    /// auto-confirmed), or given by the federated provider.
    async fn identity_email(
        &self,
        actor_type: &str,
        auth_identity_id: &str,
    ) -> DomainResult<Option<String>> {
        let (pool, _) = self.pool(actor_type)?;
        let Some(user) = self.user_by_sub(pool, auth_identity_id).await? else {
            return Ok(None);
        };
        let attribute = |name: &str| user_attribute(user.attributes(), name);
        // A federated user's address counts only when its provider verified it (a SAML user in
        // its company's domains has its customer from the trigger already): a customer
        // registered on an unverified one would hold the address against its owner.
        if attribute("identities").is_some() && attribute("email_verified") != Some("true") {
            return Ok(None);
        }
        Ok(attribute("email").map(str::to_owned))
    }

    async fn register(
        &self,
        actor_type: &str,
        provider: &str,
        email: &str,
        password: &str,
    ) -> DomainResult<SignIn> {
        if provider != "emailpass" {
            // Federated identities come into being by signing in (Medusa answers the same).
            return Err(DomainError::Unauthorized(format!(
                "{provider} does not support registration. Use the sign-in route instead."
            )));
        }
        let (pool, _) = self.pool(actor_type)?;
        let username = normalize_email(email);
        let attribute = AttributeType::builder()
            .name("email")
            .value(email.trim())
            .build()
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let signed_up = self
            .client
            .sign_up()
            .client_id(&pool.client_id)
            .username(&username)
            .password(password)
            .user_attributes(attribute)
            .send()
            .await
            .map_err(|e| cognito_error(&e))?;
        if !signed_up.user_confirmed() {
            if !self.auto_confirm {
                return Ok(SignIn::VerificationRequired);
            }
            self.client
                .admin_confirm_sign_up()
                .user_pool_id(&pool.pool_id)
                .username(&username)
                .send()
                .await
                .map_err(|e| cognito_error(&e))?;
        }
        Ok(SignIn::Token(
            self.password_login(actor_type, &username, password, None)
                .await?,
        ))
    }

    async fn authenticate(
        &self,
        actor_type: &str,
        provider: &str,
        credentials: &Credentials,
    ) -> DomainResult<SignIn> {
        if provider == "emailpass" {
            let (Some(email), Some(password)) = (&credentials.email, &credentials.password) else {
                return Err(invalid_login());
            };
            return Ok(SignIn::Token(
                self.password_login(actor_type, email, password, credentials.mfa_code.as_deref())
                    .await?,
            ));
        }
        let (pool, _) = self.pool(actor_type)?;
        let name = self
            .federated_name(pool, provider)
            .ok_or_else(|| not_offered(actor_type, provider))?;
        let domain = pool.domain.as_deref().ok_or_else(|| {
            DomainError::NotAllowed(format!(
                "No hosted sign-in domain is configured for {actor_type}"
            ))
        })?;
        let redirect = credentials
            .callback_url
            .clone()
            .or_else(|| pool.redirect_uri.clone())
            .ok_or_else(|| {
                DomainError::InvalidData(
                    "callback_url is required: no default is configured".into(),
                )
            })?;
        let state = random_state()?;
        let mut fields = Map::new();
        fields.insert("entity_type".into(), "oauth_state".into());
        fields.insert("actor_type".into(), actor_type.into());
        fields.insert("provider".into(), provider.into());
        fields.insert("redirect_uri".into(), redirect.clone().into());
        fields.insert(
            "expires_at".into(),
            (self.clock.now().unix_timestamp() + STATE_TTL_SECONDS).into(),
        );
        self.store
            .transact(vec![WriteOp::Put {
                item: keyed(single("OAUTHSTATE", &state), fields),
                condition: Some(Condition::NotExists),
            }])
            .await?;
        let location = format!(
            "{}/oauth2/authorize?identity_provider={}&client_id={}&response_type=code&scope=openid+email+profile&redirect_uri={}&state={}",
            domain.trim_end_matches('/'),
            urlencode(name),
            urlencode(&pool.client_id),
            urlencode(&redirect),
            urlencode(&state),
        );
        Ok(SignIn::Redirect { location, state })
    }

    async fn callback(
        &self,
        actor_type: &str,
        provider: &str,
        code: &str,
        state: Option<&str>,
    ) -> DomainResult<String> {
        let (pool, verifier) = self.pool(actor_type)?;
        let domain = pool
            .domain
            .as_deref()
            .ok_or_else(|| not_offered(actor_type, provider))?;
        // The state must be one this API handed out, for this actor and provider, and unused:
        // that is what stops a forged callback (login CSRF).
        let invalid_state = || DomainError::Unauthorized("Invalid or expired sign-in state".into());
        let state = state.ok_or_else(invalid_state)?;
        let key = single("OAUTHSTATE", state);
        let pending = self.store.get(&key).await?.ok_or_else(invalid_state)?;
        let text = |name: &str| {
            pending
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let expires = pending
            .get("expires_at")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if text("actor_type") != actor_type
            || text("provider") != provider
            || expires <= self.clock.now().unix_timestamp()
        {
            return Err(invalid_state());
        }
        let redirect_uri = text("redirect_uri").to_owned();
        match self
            .store
            .transact(vec![WriteOp::Delete {
                key,
                condition: Some(Condition::Exists),
            }])
            .await
        {
            Ok(()) => {}
            Err(StoreError::ConditionFailed { .. }) => return Err(invalid_state()),
            Err(e) => return Err(e.into()),
        }
        let response = self
            .http
            .post(format!("{}/oauth2/token", domain.trim_end_matches('/')))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", pool.client_id.as_str()),
                ("code", code),
                ("redirect_uri", redirect_uri.as_str()),
            ])
            .send()
            .await
            .map_err(|e| DomainError::Unavailable(format!("Cognito's token endpoint: {e}")))?;
        if !response.status().is_success() {
            return Err(DomainError::Unauthorized(
                "The sign-in code was rejected".into(),
            ));
        }
        let tokens: Map<String, Value> = response
            .json()
            .await
            .map_err(|e| DomainError::Unavailable(format!("Cognito's token endpoint: {e}")))?;
        let access = tokens
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| DomainError::Unauthorized("The sign-in code was rejected".into()))?;
        let refresh = tokens.get("refresh_token").and_then(Value::as_str);
        self.keep(actor_type, verifier, access, refresh).await
    }

    async fn refresh(&self, context: &AuthContext, presented: &str) -> DomainResult<String> {
        let (pool, verifier) = self.pool(&context.actor_type)?;
        let claims = verifier
            .verify(presented)
            .await
            .map_err(|_| DomainError::Unauthenticated)?;
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or(DomainError::Unauthenticated)?;
        let stored = self
            .store
            .get(&single("REFRESH", jti))
            .await?
            .ok_or(DomainError::Unauthenticated)?;
        let refresh = stored
            .get("refresh_token")
            .and_then(Value::as_str)
            .ok_or(DomainError::Unauthenticated)?
            .to_owned();
        let result = self
            .client
            .initiate_auth()
            .client_id(&pool.client_id)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", &refresh)
            .send()
            .await
            .map_err(|e| match e.code() {
                Some("NotAuthorizedException") => DomainError::Unauthenticated,
                _ => cognito_error(&e),
            })?;
        let access = result
            .authentication_result()
            .and_then(|t| t.access_token())
            .ok_or(DomainError::Unauthenticated)?
            .to_owned();
        // Cognito does not rotate refresh tokens by default: the same one serves the new token.
        let next = result
            .authentication_result()
            .and_then(|t| t.refresh_token())
            .unwrap_or(&refresh)
            .to_owned();
        self.keep(&context.actor_type, verifier, &access, Some(&next))
            .await
    }

    async fn create_staff_user(
        &self,
        email: &str,
        password: Option<&str>,
        roles: &[String],
    ) -> DomainResult<String> {
        let (pool, _) = self.pool("user")?;
        let username = normalize_email(email);
        let attributes = [("email", email.trim()), ("email_verified", "true")]
            .into_iter()
            .map(|(name, value)| AttributeType::builder().name(name).value(value).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let created =
            self.client
                .admin_create_user()
                .user_pool_id(&pool.pool_id)
                .username(&username)
                .set_user_attributes(Some(attributes))
                // With a password the user is ready at once; without, Cognito e-mails an
                // invitation with a temporary password.
                .set_message_action(
                    password.map(|_| {
                        aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress
                    }),
                )
                .set_desired_delivery_mediums(password.is_none().then(|| {
                    vec![aws_sdk_cognitoidentityprovider::types::DeliveryMediumType::Email]
                }))
                .send()
                .await
                .map_err(|e| cognito_error(&e))?;
        if let Some(password) = password {
            self.client
                .admin_set_user_password()
                .user_pool_id(&pool.pool_id)
                .username(&username)
                .password(password)
                .permanent(true)
                .send()
                .await
                .map_err(|e| cognito_error(&e))?;
        }
        let sub = user_attribute(
            created.user().map(|u| u.attributes()).unwrap_or_default(),
            "sub",
        )
        .ok_or_else(|| DomainError::Internal("Cognito user without sub".into()))?
        .to_owned();
        let user_id = crate::ports::UlidGenerator::default().new_id("user");
        let now = crate::ports::iso(self.clock.now());
        self.store
            .transact(super::staff::staff_user_ops(
                &sub, &user_id, email, roles, &now,
            ))
            .await?;
        Ok(user_id)
    }

    async fn request_password_reset(
        &self,
        actor_type: &str,
        provider: &str,
        identifier: &str,
    ) -> DomainResult<()> {
        if provider != "emailpass" {
            return Err(not_offered(actor_type, provider));
        }
        let (pool, _) = self.pool(actor_type)?;
        match self
            .client
            .forgot_password()
            .client_id(&pool.client_id)
            .username(normalize_email(identifier))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // The same answer for unknown identities: nothing tells who has an account.
            Err(e)
                if matches!(
                    e.code(),
                    Some(
                        "UserNotFoundException"
                            | "InvalidParameterException"
                            | "NotAuthorizedException"
                    )
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(cognito_error(&e)),
        }
    }

    async fn update_password(
        &self,
        actor_type: &str,
        provider: &str,
        reset_token: &str,
        email: Option<&str>,
        password: &str,
    ) -> DomainResult<()> {
        if provider != "emailpass" {
            return Err(not_offered(actor_type, provider));
        }
        let (pool, _) = self.pool(actor_type)?;
        // Cognito's reset token is the code it emailed; it is tied to the email.
        let email = email.ok_or_else(|| {
            DomainError::InvalidData("email is required with a Cognito reset code".into())
        })?;
        self.client
            .confirm_forgot_password()
            .client_id(&pool.client_id)
            .username(normalize_email(email))
            .confirmation_code(reset_token)
            .password(password)
            .send()
            .await
            .map_err(|e| match e.code() {
                Some("UserNotFoundException" | "NotAuthorizedException") => {
                    DomainError::Unauthorized("Invalid token".into())
                }
                _ => cognito_error(&e),
            })?;
        self.sign_out_everywhere(pool, &normalize_email(email))
            .await
    }
}
