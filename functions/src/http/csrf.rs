//! Defences against cross-site requests.
//!
//! A browser attaches the session cookie to requests that other sites' pages make. Such a page
//! can send without asking the server first (no CORS preflight) only "simple" requests: a form
//! or `text/plain` body, no `Authorization` header. So:
//! - a body must have a media type its route declares (JSON, or CSV on the import route):
//!   a simple request's body never does ([`require_declared_media_type`]);
//! - a state-changing request that the session cookie authenticates must come from this API's
//!   own origin or one in `ALLOWED_ORIGINS` ([`require_trusted_origin`]); bearer tokens and API
//!   keys are never sent by a browser on its own, so their requests need no such check;
//! - CORS headers, with credentials, go to the allowed origins only ([`cors`]).

use std::sync::Arc;

use axum::body::HttpBody;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::DomainError;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use super::auth::{Credential, presented_credential};
use super::error::{ApiError, UnsupportedMediaType};
use super::{AppState, MediaType, route_of, spec};

/// Origins (`scheme://host[:port]`, normalised) trusted besides the API's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowedOrigins(Arc<[String]>);

impl AllowedOrigins {
    /// Reads a comma-separated list; each entry must be an `http(s)://host[:port]` origin.
    pub fn parse(list: &str) -> Result<AllowedOrigins, String> {
        let mut origins = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bare = entry.trim_end_matches('/');
            let has_path = bare
                .split_once("://")
                .is_some_and(|(_, rest)| rest.contains(['/', '?', '#']));
            let origin = normalised_origin(bare)
                .filter(|_| !has_path)
                .ok_or_else(|| {
                    format!("'{entry}' is not an origin such as https://shop.example.com")
                })?;
            origins.push(origin);
        }
        Ok(AllowedOrigins(origins.into()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o == origin)
    }
}

/// The origin (`scheme://host[:port]`, lower case, default port left out) of an `http(s)` URL
/// or origin; `None` for anything else, such as the `null` origin of a sandboxed page.
fn normalised_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

/// This API's own origin as the request names it: its `Host`, with the scheme a proxy in
/// front reports (`X-Forwarded-Proto`, as API Gateway sets it), or plain HTTP.
fn own_origin(request: &Request) -> Option<String> {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))?;
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .or_else(|| request.uri().scheme_str())
        .unwrap_or("http");
    normalised_origin(&format!("{scheme}://{host}"))
}

/// Where the request says it comes from: its `Origin`, or else the origin of its `Referer`.
fn claimed_origin(headers: &HeaderMap) -> Option<String> {
    let named = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    match named(header::ORIGIN) {
        Some(origin) => normalised_origin(origin),
        None => named(header::REFERER).and_then(normalised_origin),
    }
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses (403) a state-changing request authenticated by the session cookie unless its
/// `Origin` (or, without one, its `Referer`) is this API's own origin or an allowed one.
///
/// A request with neither header is refused too: browsers send `Origin` on every POST, PUT,
/// PATCH and DELETE, same-origin ones included, so a browser request without it cannot be
/// vouched for (a privacy setting may also have stripped the `Referer`), and clients that
/// are not browsers sign in with a bearer token, which this check leaves alone.
pub async fn require_trusted_origin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !changes_state(request.method())
        || !matches!(
            presented_credential(request.headers(), request.extensions()),
            Credential::SessionCookie(_)
        )
    {
        return next.run(request).await;
    }
    let trusted = claimed_origin(request.headers()).is_some_and(|origin| {
        own_origin(&request).as_deref() == Some(origin.as_str())
            || state.allowed_origins.contains(&origin)
    });
    if trusted {
        next.run(request).await
    } else {
        ApiError(DomainError::Forbidden(
            "A request with a session cookie must come from this site or an allowed origin".into(),
        ))
        .into_response()
    }
}

/// Refuses (415) a request body whose `Content-Type` is not one its route declares
/// ([`super::RouteSpec::body_media_types`]), a missing one included. An empty body passes:
/// the routes read it as `{}`.
pub async fn require_declared_media_type(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| route_of(request.method(), path.as_str()));
    let Some(route) = route else {
        return next.run(request).await;
    };
    if request.body().size_hint().upper() == Some(0) {
        return next.run(request).await;
    }
    let accepted = spec(route).body_media_types();
    match MediaType::of(request.headers()) {
        Some(media) if accepted.contains(&media) => next.run(request).await,
        _ => {
            let given = request
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            UnsupportedMediaType { given, accepted }.into_response()
        }
    }
}

/// CORS for the allowed origins, with credentials (so their pages may use the session
/// cookie); `None` when no origin is allowed, and no CORS header is ever sent.
pub fn cors(allowed: &AllowedOrigins) -> Option<CorsLayer> {
    if allowed.is_empty() {
        return None;
    }
    let allowed = allowed.clone();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
                origin
                    .to_str()
                    .ok()
                    .and_then(normalised_origin)
                    .is_some_and(|o| allowed.contains(&o))
            }))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(AllowHeaders::mirror_request())
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            normalised_origin("HTTPS://Shop.Example.com:443/path?q#f").as_deref(),
            Some("https://shop.example.com")
        );
        assert_eq!(
            normalised_origin("http://localhost:8000").as_deref(),
            Some("http://localhost:8000")
        );
        assert_eq!(normalised_origin("null"), None);
        assert_eq!(normalised_origin("ftp://x.example"), None);
        assert_eq!(normalised_origin("https://user@evil.example"), None);
    }

    #[test]
    fn allowed_origins_are_origins() {
        let list =
            AllowedOrigins::parse(" https://shop.example.com/, http://localhost:8000").unwrap();
        assert!(list.contains("https://shop.example.com"));
        assert!(list.contains("http://localhost:8000"));
        assert!(AllowedOrigins::parse("*").is_err());
        assert!(AllowedOrigins::parse("https://shop.example.com/app").is_err());
        assert!(AllowedOrigins::parse("").unwrap().is_empty());
    }
}
