//! Cross-site request forgery (issue 20): bodies only of the media types a route declares,
//! cookie sessions only from this API's own origin or an allowed one, CORS for the allowed
//! origins, `SameSite=Lax` cookies unless cross-site is asked for, and federated sign-in
//! bound to the browser that started it. Both store backends; the Lambda router too.

use axum::body::Body;
use functions::config::{AllowedOrigins, AuthConfig, SameSite};
use functions::http::{Route, router};
use integration_tests::{
    Backend, FederatedServer, Reply, TestServer, both_backends, federated_server, fresh_store,
    temp_dir, test_config,
};
use serde_json::{Value, json};
use tower::ServiceExt;

const EVIL: &str = "https://evil.example";
const SHOP: &str = "https://shop.example.test";

/// What a forged form would create: a staff admin.
fn mallory() -> String {
    json!({"email": "mallory@evil.example", "password": "Mall0ry-Passw0rd!", "roles": ["admin"]})
        .to_string()
}

/// Sends `body` as is, with `content_type` (none when `None`) and `headers`.
async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = s
        .client
        .request(method, format!("{}{path}", s.base))
        .body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    }
}

/// A session cookie (`connect.sid=…`) for the admin, as `POST /auth/session` sets it.
async fn admin_session(s: &TestServer) -> String {
    let bearer = format!("Bearer {}", s.token);
    let session = s
        .request("POST", "/auth/session", None, &[("authorization", &bearer)])
        .await;
    assert_eq!(session.status, 200, "{}", session.body);
    set_cookie(&session)
}

/// The `name=value` part of the response's `Set-Cookie`.
fn set_cookie(reply: &Reply) -> String {
    reply.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The staff users with this email.
async fn staff_with_email(s: &TestServer, email: &str) -> usize {
    let (status, body) = s.get("/admin/users?limit=100").await;
    assert_eq!(status, 200, "{body}");
    body["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["email"] == json!(email))
        .count()
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).map(|v| v.to_str().unwrap())
}

/// A `text/plain` or form body (what another site's page can send without a preflight)
/// creates nothing, whoever sends it: 415 in Medusa's shape. JSON (any charset) still works,
/// and so does a CSV import; in the Lambda router too.
async fn bodies_of_undeclared_types_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await.unwrap();
    let bearer = format!("Bearer {}", s.token);
    let cookie = admin_session(&s).await;
    let form = "email=mallory%40evil.example&password=Mall0ry-Passw0rd%21&roles=admin";
    let attempts: [(Option<&str>, String); 6] = [
        (Some("text/plain"), mallory()),
        (Some("text/plain;charset=UTF-8"), mallory()),
        (Some("application/x-www-form-urlencoded"), form.to_owned()),
        (Some("multipart/form-data; boundary=x"), mallory()),
        (Some("application/jsonx"), mallory()),
        (None, mallory()),
    ];
    for (content_type, body) in &attempts {
        for auth in [
            ("authorization", bearer.as_str()),
            ("cookie", cookie.as_str()),
        ] {
            let reply = send(
                &s,
                "POST",
                "/admin/users",
                *content_type,
                body,
                &[auth, ("origin", &s.base)],
            )
            .await;
            assert_eq!(reply.status, 415, "{content_type:?}: {}", reply.body);
            assert_eq!(reply.body["type"], json!("invalid_data"), "{}", reply.body);
            assert!(
                reply.body["message"]
                    .as_str()
                    .unwrap()
                    .contains("application/json"),
                "{}",
                reply.body
            );
        }
    }
    assert_eq!(staff_with_email(&s, "mallory@evil.example").await, 0);

    // JSON with a charset is JSON.
    let created = send(
        &s,
        "POST",
        "/admin/users",
        Some("Application/JSON; charset=utf-8"),
        &json!({"email": "jo@staff.test", "password": "Jo-Passw0rd!"}).to_string(),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(staff_with_email(&s, "jo@staff.test").await, 1);

    // The import route declares CSV as well; text/plain is refused there too.
    let csv = "First Name,Last Name,Email\nAda,Lovelace,ada@example.com\n";
    let plain = send(
        &s,
        "POST",
        "/admin/customers/imports",
        Some("text/plain"),
        csv,
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(plain.status, 415, "{}", plain.body);
    assert!(
        plain.body["message"].as_str().unwrap().contains("text/csv"),
        "{}",
        plain.body
    );
    let imported = send(
        &s,
        "POST",
        "/admin/customers/imports",
        Some("text/csv; charset=utf-8"),
        csv,
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(imported.status, 202, "{}", imported.body);

    // A Lambda mounts the same router: a text/plain event is refused before the handler.
    let store = fresh_store(backend).await.unwrap();
    integration_tests::seed_staff_user(&store, "user_01M8BG77ZYM8TPMS04Z034K497", &["admin"]).await;
    let mut config = test_config(temp_dir("lambda"));
    config.auth = AuthConfig::AuthorizerOnly;
    let state = functions::app::build_state(&config, store).await.unwrap();
    let fixture = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/../infra/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let invoke = |route: Route, event: String| {
        let state = state.clone();
        async move {
            let request = lambda_http::request::from_str(&event).expect("valid event");
            let (parts, body) = request.into_parts();
            let request = axum::http::Request::from_parts(parts, Body::from(body.to_vec()));
            let response = router(state, &[route]).oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    let event = fixture("create-customer.json");
    let plain_event = event.replace(
        "\"content-type\": \"application/json\"",
        "\"content-type\": \"text/plain\"",
    );
    assert_ne!(plain_event, event, "the fixture names its content type");
    let (status, body) = invoke(Route::CreateCustomer, plain_event).await;
    assert_eq!(status, 415, "{body}");
    let (_, listed) = invoke(Route::ListCustomers, fixture("list-customers.json")).await;
    assert_eq!(listed["count"], json!(0), "nothing created: {listed}");
    let (status, body) = invoke(Route::CreateCustomer, event).await;
    assert_eq!(status, 200, "{body}");
    let (_, listed) = invoke(Route::ListCustomers, fixture("list-customers.json")).await;
    assert_eq!(
        listed["count"],
        json!(1),
        "the listing sees a creation: {listed}"
    );
}

/// A state-changing request that the session cookie authenticates must come from the API's
/// own origin (by `Origin`, or `Referer` without one); from elsewhere, or with neither, it is
/// a 403 that changes nothing. Bearer tokens need no origin; reads are not refused.
async fn cookie_requests_from_other_origins_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await.unwrap();
    let cookie = admin_session(&s).await;
    let json_type = Some("application/json");
    let refused: [&[(&str, &str)]; 5] = [
        &[("origin", EVIL)],
        &[("referer", "https://evil.example/page")],
        &[],
        &[("origin", "null")],
        &[("origin", EVIL), ("referer", &format!("{}/app", s.base))],
    ];
    for headers in refused {
        let mut headers = headers.to_vec();
        headers.push(("cookie", &cookie));
        let reply = send(&s, "POST", "/admin/users", json_type, &mallory(), &headers).await;
        assert_eq!(reply.status, 403, "{headers:?}: {}", reply.body);
        assert_eq!(reply.body["type"], json!("not_allowed"));
        assert_eq!(header(&reply, "access-control-allow-origin"), None);
    }
    // Nor may another site end the session.
    let logout = send(
        &s,
        "DELETE",
        "/auth/session",
        None,
        "",
        &[("cookie", &cookie), ("origin", EVIL)],
    )
    .await;
    assert_eq!(logout.status, 403, "{}", logout.body);
    assert_eq!(staff_with_email(&s, "mallory@evil.example").await, 0);

    // Reads with the cookie still answer (CORS keeps them from other sites' scripts).
    let me = send(
        &s,
        "GET",
        "/admin/users/me",
        None,
        "",
        &[("cookie", &cookie), ("origin", EVIL)],
    )
    .await;
    assert_eq!(me.status, 200, "{}", me.body);

    // The admin's own pages: by Origin, or by Referer alone.
    let own_page = format!("{}/app/users", s.base);
    for (email, headers) in [
        ("same-origin@staff.test", ("origin", s.base.as_str())),
        ("same-referer@staff.test", ("referer", own_page.as_str())),
    ] {
        let body = json!({"email": email, "password": "Same-Passw0rd!"}).to_string();
        let reply = send(
            &s,
            "POST",
            "/admin/users",
            json_type,
            &body,
            &[("cookie", &cookie), headers],
        )
        .await;
        assert_eq!(reply.status, 200, "{email}: {}", reply.body);
        assert_eq!(staff_with_email(&s, email).await, 1);
    }

    // A bearer token is not sent by a browser on its own: no origin needed, any origin taken.
    let bearer = format!("Bearer {}", s.token);
    for (email, origin) in [("bea@example.com", None), ("bo@example.com", Some(EVIL))] {
        let mut headers = vec![("authorization", bearer.as_str())];
        headers.extend(origin.map(|o| ("origin", o)));
        let reply = send(
            &s,
            "POST",
            "/admin/customers",
            json_type,
            &json!({ "email": email }).to_string(),
            &headers,
        )
        .await;
        assert_eq!(reply.status, 200, "{origin:?}: {}", reply.body);
    }
    let logout = send(
        &s,
        "DELETE",
        "/auth/session",
        None,
        "",
        &[("cookie", &cookie), ("origin", &s.base)],
    )
    .await;
    assert_eq!(logout.status, 200, "{}", logout.body);
}

/// `ALLOWED_ORIGINS` lets a storefront's pages use the cookie session and read the answers
/// (CORS with credentials); other origins get neither.
async fn allowed_origins_get_cors_and_cookie_sessions(backend: Backend) {
    let s = TestServer::start_with(backend, |config| {
        config.allowed_origins = AllowedOrigins::parse(&format!("{SHOP}/")).unwrap();
    })
    .await
    .unwrap();
    let cookie = admin_session(&s).await;
    let body = json!({"email": "shop@staff.test", "password": "Sh0p-Passw0rd!"}).to_string();
    let allowed = send(
        &s,
        "POST",
        "/admin/users",
        Some("application/json"),
        &body,
        &[("cookie", &cookie), ("origin", SHOP)],
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(SHOP));
    assert_eq!(
        header(&allowed, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(staff_with_email(&s, "shop@staff.test").await, 1);

    let ok = preflight(&s, SHOP).await;
    assert_eq!(ok.status, 200);
    assert_eq!(header(&ok, "access-control-allow-origin"), Some(SHOP));
    assert_eq!(
        header(&ok, "access-control-allow-credentials"),
        Some("true")
    );
    assert!(
        header(&ok, "access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert!(
        header(&ok, "access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase()
            .contains("content-type")
    );

    let other = preflight(&s, EVIL).await;
    assert_eq!(header(&other, "access-control-allow-origin"), None);
    let refused = send(
        &s,
        "POST",
        "/admin/users",
        Some("application/json"),
        &mallory(),
        &[("cookie", &cookie), ("origin", EVIL)],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    assert_eq!(staff_with_email(&s, "mallory@evil.example").await, 0);
}

/// A browser's CORS preflight for a JSON POST from `origin`.
async fn preflight(s: &TestServer, origin: &str) -> Reply {
    send(
        s,
        "OPTIONS",
        "/admin/users",
        None,
        "",
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
    )
    .await
}

/// `Secure` (HTTPS) no longer implies `SameSite=None`: cookies stay `Lax` unless a
/// cross-site storefront is configured.
async fn cookies_stay_lax_unless_cross_site_is_configured(backend: Backend) {
    let secure = TestServer::start_with(backend, |config| config.secure_cookies = true)
        .await
        .unwrap();
    let bearer = format!("Bearer {}", secure.token);
    let session = secure
        .request("POST", "/auth/session", None, &[("authorization", &bearer)])
        .await;
    let set = header(&session, "set-cookie").unwrap();
    assert!(
        set.contains("; Secure") && set.contains("SameSite=Lax"),
        "{set}"
    );

    let cross_site = TestServer::start_with(backend, |config| {
        config.secure_cookies = true;
        config.cookie_same_site = SameSite::None;
    })
    .await
    .unwrap();
    let bearer = format!("Bearer {}", cross_site.token);
    let session = cross_site
        .request("POST", "/auth/session", None, &[("authorization", &bearer)])
        .await;
    let set = header(&session, "set-cookie").unwrap();
    assert!(
        set.contains("; Secure") && set.contains("SameSite=None"),
        "{set}"
    );
}

/// A federated sign-in finishes only in the browser that started it: the start sets an
/// HttpOnly cookie with a digest of the state, and a callback without it, or with another
/// sign-in's, is a 401 (login CSRF: an attacker's code and state replayed in a victim's
/// browser). The rightful browser then signs in, and the cookie is cleared.
async fn federated_state_is_bound_to_the_browser(backend: Backend) {
    let Some(FederatedServer { s, .. }) =
        federated_server(backend, "Adm1n-Passw0rd!", "Sh0pper-Passw0rd!").await
    else {
        return;
    };
    let begin = |path: &'static str| s.request("POST", path, Some(json!({})), &[]);
    let victim = begin("/auth/customer/google").await;
    assert_eq!(victim.status, 200, "{}", victim.body);
    let state = victim.body["location"]
        .as_str()
        .unwrap()
        .split("state=")
        .nth(1)
        .unwrap()
        .to_owned();
    let set = header(&victim, "set-cookie").unwrap().to_owned();
    let victim_cookie = set_cookie(&victim);
    let (name, digest) = victim_cookie.split_once('=').unwrap();
    assert_eq!(name, "auth.state");
    assert_eq!(digest.len(), 43, "SHA-256, base64url: {set}");
    assert!(!set.contains(&state), "the cookie holds a digest: {set}");
    for attribute in ["HttpOnly", "Path=/auth", "Max-Age=600", "SameSite=Lax"] {
        assert!(set.contains(attribute), "{attribute}: {set}");
    }
    let attacker = begin("/auth/customer/google").await;
    let attacker_cookie = set_cookie(&attacker);

    let callback = format!("/auth/customer/google/callback?code=good-code&state={state}");
    for cookie in [None, Some(attacker_cookie.as_str()), Some("auth.state=")] {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        let refused = s.request("GET", &callback, None, &headers).await;
        assert_eq!(refused.status, 401, "{cookie:?}: {}", refused.body);
        assert_eq!(refused.body["type"], json!("unauthorized"));
    }
    let posted = s
        .request(
            "POST",
            "/auth/customer/google/callback",
            Some(json!({"code": "good-code", "state": state})),
            &[("cookie", &attacker_cookie)],
        )
        .await;
    assert_eq!(posted.status, 401, "{}", posted.body);

    // The refusals did not use the state up: the browser that started the sign-in finishes it.
    let done = s
        .request("GET", &callback, None, &[("cookie", &victim_cookie)])
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body["token"].is_string());
    let cleared = header(&done, "set-cookie").unwrap();
    assert!(
        cleared.starts_with("auth.state=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

both_backends!(
    bodies_of_undeclared_types_are_refused,
    cookie_requests_from_other_origins_are_refused,
    allowed_origins_get_cors_and_cookie_sessions,
    cookies_stay_lax_unless_cross_site_is_configured,
    federated_state_is_bound_to_the_browser,
);
