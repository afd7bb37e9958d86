//! Who is calling (bearer token, session cookie, secret API key, or the claims API Gateway
//! verified), the extractors routes declare their access with, and Medusa's `/auth/*` routes.

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, RawQuery, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};
use shared::DomainError;
use shared::auth::cognito::STATE_TTL_SECONDS;
use shared::auth::{ACTOR_TYPES, AuthContext, Credentials, IdentityProvider, SignIn};

use super::AppState;
use super::body::JsonBody;
use super::error::{ApiError, ApiResult};

/// Express-session's cookie name, which Medusa keeps.
pub const SESSION_COOKIE: &str = "connect.sid";

/// Claims the API Gateway JWT authorizer already verified, when running behind it. HTTP APIs
/// pass every claim as a string, so JSON-valued claims are parsed back.
fn authorizer_claims(extensions: &Extensions) -> Option<Map<String, Value>> {
    use lambda_http::request::RequestContext;
    let Some(RequestContext::ApiGatewayV2(context)) = extensions.get::<RequestContext>() else {
        return None;
    };
    let jwt = context.authorizer.as_ref()?.jwt.as_ref()?;
    if jwt.claims.is_empty() {
        return None;
    }
    Some(
        jwt.claims
            .iter()
            .map(|(k, v)| {
                let value = if v.starts_with('{') {
                    serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone()))
                } else {
                    Value::String(v.clone())
                };
                (k.clone(), value)
            })
            .collect(),
    )
}

/// The caller's address: API Gateway's `sourceIp` in Lambda, the socket's peer locally.
/// Forwarding headers are not trusted (anyone can write them).
pub fn client_address(parts: &Parts) -> Option<std::net::IpAddr> {
    use lambda_http::request::RequestContext;
    if let Some(RequestContext::ApiGatewayV2(context)) = parts.extensions.get::<RequestContext>() {
        return context.http.source_ip.as_deref()?.parse().ok();
    }
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// The caller's address, as a handler argument.
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(parts)))
    }
}

fn credentials<'a>(headers: &'a HeaderMap, wanted: &str) -> Option<&'a str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case(wanted).then_some(token.trim())
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    credentials(headers, "bearer").filter(|t| !t.is_empty())
}

/// The value of the cookie `name`, if the request has a non-empty one.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, SESSION_COOKIE)
}

/// The credential a request is authenticated by: the first present of these, in this order.
pub enum Credential<'a> {
    /// Claims the API Gateway authorizer verified.
    VerifiedClaims(Map<String, Value>),
    Bearer(&'a str),
    /// `Authorization: Basic base64("sk_…:")`.
    SecretKey(&'a str),
    /// The session cookie: the one credential a browser sends on its own, and so the one a
    /// cross-site request can ride on (see `csrf`).
    SessionCookie(String),
    None,
}

pub fn presented_credential<'a>(headers: &'a HeaderMap, extensions: &Extensions) -> Credential<'a> {
    if let Some(claims) = authorizer_claims(extensions) {
        Credential::VerifiedClaims(claims)
    } else if let Some(token) = bearer(headers) {
        Credential::Bearer(token)
    } else if let Some(basic) = credentials(headers, "basic") {
        Credential::SecretKey(basic)
    } else if let Some(id) = session_id(headers) {
        Credential::SessionCookie(id)
    } else {
        Credential::None
    }
}

/// The caller, from (in order) the authorizer's claims, a bearer token, a secret API key
/// (`Basic base64("sk_…:")`) or the session cookie. A credential that is present but does not
/// verify is a 401, never a fall-through to the next kind.
pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<AuthContext, DomainError> {
    match presented_credential(&parts.headers, &parts.extensions) {
        Credential::VerifiedClaims(claims) => state.auth.from_verified_claims(&claims).await,
        Credential::Bearer(token) => state.auth.from_token(token).await,
        Credential::SecretKey(basic) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(basic)
                .map_err(|_| DomainError::Unauthenticated)?;
            let text = String::from_utf8(decoded).map_err(|_| DomainError::Unauthenticated)?;
            let secret = text.split(':').next().unwrap_or_default();
            let key = state
                .api_keys
                .authenticate_secret(secret)
                .await?
                .ok_or(DomainError::Unauthenticated)?;
            Ok(AuthContext {
                actor_id: key.id,
                actor_type: "api-key".into(),
                auth_identity_id: String::new(),
                app_metadata: Map::new(),
                sign_in: None,
            })
        }
        Credential::SessionCookie(id) => {
            let context = state
                .sessions
                .get(&id)
                .await?
                .ok_or(DomainError::Unauthenticated)?;
            state.auth.check_current(&context).await?;
            Ok(context)
        }
        Credential::None => Err(DomainError::Unauthenticated),
    }
}

/// A signed-in staff user (or secret API key) whose roles allow the route's policy
/// (`policy.rs`): anything else is a 401, or a 403 that names the missing permission.
pub struct Staff(pub AuthContext);

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let context = authenticate(parts, state).await?;
        if !context.is_staff() {
            return Err(ApiError(DomainError::Unauthenticated));
        }
        tracing::Span::current().record("actor", context.actor_id.as_str());
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .and_then(|path| super::route_of(&parts.method, path.as_str()));
        match route.map(super::policy::policy) {
            Some(super::policy::Policy::Requires(permission)) => {
                state
                    .roles
                    .authorize(&state.staff_users, &state.api_keys, &context, permission)
                    .await?
            }
            Some(super::policy::Policy::AnyStaff) => {}
            // A staff extractor on a route without a staff policy is a programming error:
            // refuse rather than allow.
            Some(super::policy::Policy::NotStaff) | None => {
                return Err(ApiError(DomainError::Forbidden(
                    "This route declares no staff policy".into(),
                )));
            }
        }
        Ok(Staff(context))
    }
}

/// Any signed-in identity, linked to an actor or not (Medusa's `allowUnregistered`).
pub struct Identity(pub AuthContext);

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let context = authenticate(parts, state).await?;
        if context.auth_identity_id.is_empty() {
            return Err(ApiError(DomainError::Unauthenticated));
        }
        Ok(Identity(context))
    }
}

/// A request to a `/store/*` route: it carries a valid publishable key.
pub struct Storefront;

impl FromRequestParts<AppState> for Storefront {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get("x-publishable-api-key")
            .and_then(|v| v.to_str().ok());
        state.api_keys.check_publishable(header).await?;
        Ok(Storefront)
    }
}

/// A customer identity on a store route, with or without a customer record yet.
pub struct CustomerIdentity(pub AuthContext);

impl FromRequestParts<AppState> for CustomerIdentity {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let context = authenticate(parts, state).await?;
        if context.actor_type != "customer" || context.auth_identity_id.is_empty() {
            return Err(ApiError(DomainError::Unauthenticated));
        }
        Ok(CustomerIdentity(context))
    }
}

/// A signed-in customer with a customer record (`/store/customers/me*`).
pub struct Shopper(pub AuthContext);

impl FromRequestParts<AppState> for Shopper {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let context = authenticate(parts, state).await?;
        if !context.is_registered_customer() {
            return Err(ApiError(DomainError::Unauthenticated));
        }
        tracing::Span::current().record("actor", context.actor_id.as_str());
        Ok(Shopper(context))
    }
}

fn provider(state: &AppState) -> ApiResult<&dyn IdentityProvider> {
    state.identity.as_deref().ok_or_else(|| {
        ApiError(DomainError::NotAllowed(
            "Sign-in is not served by this function".into(),
        ))
    })
}

fn check_actor(actor: &str) -> ApiResult<()> {
    if ACTOR_TYPES.contains(&actor) {
        Ok(())
    } else {
        Err(ApiError(DomainError::InvalidData(format!(
            "Unknown actor type: {actor}. Expected one of: {}",
            ACTOR_TYPES.join(", ")
        ))))
    }
}

fn object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError(DomainError::InvalidData(
            "Invalid request: the body must be a JSON object".into(),
        ))),
    }
}

/// The answer to a sign-in: `{token}`, `{verification_required}`, or `{location}` with the
/// cookie that binds the federated sign-in's state to this browser.
fn sign_in_answer(state: &AppState, outcome: SignIn) -> ApiResult<Response> {
    Ok(match outcome {
        SignIn::Token(token) => Json(json!({ "token": token })).into_response(),
        SignIn::Redirect {
            location,
            state: oauth_state,
        } => {
            let mut response = Json(json!({ "location": location })).into_response();
            response.headers_mut().insert(
                SET_COOKIE,
                state_cookie(state, &state_digest(&oauth_state), STATE_TTL_SECONDS)?,
            );
            response
        }
        SignIn::VerificationRequired => {
            Json(json!({ "verification_required": true })).into_response()
        }
    })
}

/// The cookie that ties a federated sign-in to the browser that started it (against login
/// CSRF: an attacker's own `code` and `state`, replayed in a victim's browser, would sign the
/// victim in as the attacker). It holds a digest of the state, not the state.
pub const STATE_COOKIE: &str = "auth.state";

fn state_cookie(state: &AppState, digest: &str, max_age: i64) -> ApiResult<HeaderValue> {
    cookie(state, STATE_COOKIE, digest, "/auth", max_age)
}

/// SHA-256 of the OAuth state, base64url.
fn state_digest(oauth_state: &str) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(oauth_state))
}

/// Whether `presented` is the state whose digest this browser's cookie holds (compared in
/// constant time, so the digest cannot be guessed byte by byte).
fn state_bound_to_browser(headers: &HeaderMap, presented: Option<&str>) -> bool {
    let (Some(cookie), Some(presented)) = (cookie_value(headers, STATE_COOKIE), presented) else {
        return false;
    };
    let expected = state_digest(presented);
    cookie.len() == expected.len()
        && cookie
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

/// `email` and `password` as Medusa's emailpass provider reads them: a password of another
/// type is its own 401.
fn credentials_from(body: &Map<String, Value>) -> ApiResult<Credentials> {
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    if body.get("password").is_some_and(|p| !p.is_string()) {
        return Err(ApiError(DomainError::Unauthorized(
            "Password should be a string".into(),
        )));
    }
    Ok(Credentials {
        email: text("email"),
        password: text("password"),
        callback_url: text("callback_url"),
        mfa_code: text("mfa_code"),
    })
}

/// `GET|POST /auth/{actor}/{provider}` → `{token}` or `{location}`. A password attempt goes
/// through the sign-in limiter first (per address and account; 429 with `Retry-After`).
pub async fn sign_in(
    State(state): State<AppState>,
    Path((actor, provider_id)): Path<(String, String)>,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    check_actor(&actor)?;
    let body = object(body)?;
    let credentials = credentials_from(&body)?;
    let identity = provider(&state)?;
    if credentials.password.is_none() {
        let outcome = identity
            .authenticate(&actor, &provider_id, &credentials)
            .await?;
        return sign_in_answer(&state, outcome);
    }
    let account = format!(
        "{actor}:{}",
        shared::customers::normalize_email(credentials.email.as_deref().unwrap_or_default())
    );
    let attempt = state.sign_in_limiter.begin(&account, address)?;
    match identity
        .authenticate(&actor, &provider_id, &credentials)
        .await
    {
        Ok(outcome) => {
            attempt.succeeded();
            sign_in_answer(&state, outcome)
        }
        Err(e @ DomainError::Unauthorized(_)) => {
            attempt.failed();
            Err(ApiError(e))
        }
        Err(e) => {
            attempt.abandoned();
            Err(ApiError(e))
        }
    }
}

/// `POST /auth/{actor}/{provider}/register {email, password}` → `{token}` with no actor yet.
pub async fn register(
    State(state): State<AppState>,
    Path((actor, provider_id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    check_actor(&actor)?;
    let given = credentials_from(&object(body)?)?;
    let (Some(email), Some(password)) = (given.email, given.password) else {
        return Err(ApiError(DomainError::Unauthorized(
            "Email and password are required to register".into(),
        )));
    };
    let outcome = provider(&state)?
        .register(&actor, &provider_id, &email, &password)
        .await?;
    sign_in_answer(&state, outcome)
}

#[derive(serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// `GET|POST /auth/{actor}/{provider}/callback?code&state` → `{token}`, only in the browser
/// that started the sign-in (its state cookie); the cookie is cleared once the state is used.
pub async fn callback(
    State(state): State<AppState>,
    Path((actor, provider_id)): Path<(String, String)>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    check_actor(&actor)?;
    let body = object(body)?;
    let from_body = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    let code = query
        .code
        .or_else(|| from_body("code"))
        .ok_or_else(|| ApiError(DomainError::Unauthorized("No code to exchange".into())))?;
    let state_param = query.state.or_else(|| from_body("state"));
    let provider = provider(&state)?;
    if !state_bound_to_browser(&headers, state_param.as_deref()) {
        return Err(ApiError(DomainError::Unauthorized(
            "Invalid or expired sign-in state".into(),
        )));
    }
    let mut response = match provider
        .callback(&actor, &provider_id, &code, state_param.as_deref())
        .await
    {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(e) => ApiError(e).into_response(),
    };
    response
        .headers_mut()
        .insert(SET_COOKIE, state_cookie(&state, "", 0)?);
    Ok(response)
}

/// `POST /auth/token/refresh` → a new token from the identity as it is now.
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    Identity(context): Identity,
) -> ApiResult<Json<Value>> {
    let presented = bearer(&headers).unwrap_or_default();
    state.auth.check_refreshable(&context)?;
    let token = provider(&state)?.refresh(&context, presented).await?;
    Ok(Json(json!({ "token": token })))
}

/// The `SameSite` attribute of the cookies this API sets (`COOKIE_SAME_SITE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent on top-level navigations from other sites, never on their background requests.
    #[default]
    Lax,
    Strict,
    /// Sent on cross-site requests too: only for a storefront on another site, and only with
    /// `Secure` (browsers refuse it otherwise).
    None,
}

impl SameSite {
    pub fn parse(value: &str) -> Option<SameSite> {
        match value.to_ascii_lowercase().as_str() {
            "lax" => Some(SameSite::Lax),
            "strict" => Some(SameSite::Strict),
            "none" => Some(SameSite::None),
            _ => None,
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// A `Set-Cookie` value with this deployment's `Secure` and `SameSite` attributes.
fn cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
) -> ApiResult<HeaderValue> {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; Max-Age={max_age}{secure}; SameSite={}",
        state.cookie_same_site.attribute()
    ))
    .map_err(|e| ApiError(DomainError::Internal(e.to_string())))
}

fn session_cookie(state: &AppState, value: &str, max_age: i64) -> ApiResult<HeaderValue> {
    cookie(state, SESSION_COOKIE, value, "/", max_age)
}

/// `POST /auth/session` with a bearer token → `{user: auth_context}` and the session cookie.
pub async fn create_session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = bearer(&headers).ok_or(ApiError(DomainError::Unauthenticated))?;
    let context = state.auth.from_token(token).await?;
    let id = state.sessions.create(&context).await?;
    let mut response = Json(json!({ "user": context })).into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        session_cookie(&state, &id, state.sessions.ttl_seconds())?,
    );
    Ok(response)
}

#[derive(serde::Deserialize)]
pub struct DeleteSessionQuery {
    #[serde(default)]
    everywhere: Option<String>,
}

/// `DELETE /auth/session` → `{success: true}`; the cookie stops working at once. With
/// `?everywhere=true` (a bearer token or the cookie), every token and session of the caller's
/// identity ends: a staff member's (or anyone's) "sign out everywhere".
pub async fn delete_session(
    State(state): State<AppState>,
    Query(query): Query<DeleteSessionQuery>,
    Identity(context): Identity,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let everywhere = match query.everywhere.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError(DomainError::InvalidData(format!(
                "everywhere must be true or false, got '{other}'"
            ))));
        }
    };
    let id = session_id(&headers);
    if everywhere {
        state
            .sessions
            .sign_out_everywhere(&context.auth_identity_id)
            .await?;
        if let Some(provider) = &state.identity
            && let Err(e) = provider
                .end_provider_sessions(&context.actor_type, &context.auth_identity_id)
                .await
        {
            // The mark already refuses every earlier token here; the provider's own refresh
            // tokens live on until it answers.
            tracing::warn!(error = %e, "the identity provider's sessions were not ended");
        }
    } else if id.is_none() {
        return Err(ApiError(DomainError::Unauthenticated));
    }
    if let Some(id) = id {
        state.sessions.end(&id).await?;
    }
    let mut response = Json(json!({ "success": true })).into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, session_cookie(&state, "", 0)?);
    Ok(response)
}

/// `POST /auth/{actor}/{provider}/reset-password {identifier}` → 201 with no body, always.
pub async fn reset_password(
    State(state): State<AppState>,
    Path((actor, provider_id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    check_actor(&actor)?;
    let body = super::body::validate(body, RESET_BODY)?;
    let identifier = body
        .get("identifier")
        .and_then(Value::as_str)
        .unwrap_or_default();
    provider(&state)?
        .request_password_reset(&actor, &provider_id, identifier)
        .await?;
    Ok(StatusCode::CREATED.into_response())
}

pub const RESET_BODY: &[super::body::Field] = &[
    super::body::required("identifier", super::body::Kind::String),
    super::body::nullish("metadata", super::body::Kind::Record),
];

/// `POST /auth/{actor}/{provider}/update {email, password}` with the reset token in
/// `Authorization: Bearer` or `?token=` → `{success: true}`.
pub async fn update_password(
    State(state): State<AppState>,
    Path((actor, provider_id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    check_actor(&actor)?;
    let from_query = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    let token = bearer(&headers)
        .map(str::to_owned)
        .or(from_query)
        .ok_or_else(|| ApiError(DomainError::Unauthorized("Invalid token".into())))?;
    let given = credentials_from(&object(body)?)?;
    let password = given
        .password
        .ok_or_else(|| ApiError(DomainError::InvalidData("password is required".into())))?;
    provider(&state)?
        .update_password(
            &actor,
            &provider_id,
            &token,
            given.email.as_deref(),
            &password,
        )
        .await?;
    Ok(Json(json!({ "success": true })))
}

/// `GET /auth/{actor}/providers` → the sign-in methods offered to that actor.
pub async fn providers(
    State(state): State<AppState>,
    Path(actor): Path<String>,
) -> ApiResult<Json<Value>> {
    check_actor(&actor)?;
    let list: Vec<Value> = provider(&state)?
        .providers(&actor)
        .into_iter()
        .map(|id| {
            let flow = if id == "emailpass" {
                "form"
            } else {
                "redirect"
            };
            json!({ "id": id, "identifier": id, "display_name": id, "flow": flow })
        })
        .collect();
    Ok(Json(json!({ "providers": list })))
}
