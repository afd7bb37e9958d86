//! Revocable sign-ins (issue 20, "Tokens outlive a password reset", "Unbounded sessions"): a
//! password reset or "sign out everywhere" ends every earlier token and session of the
//! identity, refresh stops at the absolute lifetime, and an identity's sessions are capped.

use std::time::Duration;

use integration_tests::{Backend, Shop, TestServer, both_backends};
use serde_json::{Value, json};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Turns a token into a session cookie (`connect.sid=…`).
async fn session_cookie(s: &TestServer, token: &str) -> String {
    let session = s
        .request(
            "POST",
            "/auth/session",
            None,
            &[("authorization", &bearer(token))],
        )
        .await;
    assert_eq!(session.status, 200, "{}", session.body);
    let set_cookie = session.headers["set-cookie"].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn refresh(s: &TestServer, headers: &[(&str, &str)]) -> (u16, Value) {
    let reply = s
        .request("POST", "/auth/token/refresh", None, headers)
        .await;
    (reply.status, reply.body)
}

async fn a_password_reset_ends_earlier_tokens_and_sessions(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let shop = Shop::new(&s).await;
    let email = "reset.me@example.com";
    let (token, _) = shop.sign_up(email, "Ada").await;
    let cookie = session_cookie(&s, &token).await;
    let me = |headers: Vec<(&'static str, String)>| {
        let (s, shop) = (&s, &shop);
        async move {
            let mut all = vec![("x-publishable-api-key", shop.key.clone())];
            all.extend(headers);
            let borrowed: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.request("GET", "/store/customers/me", None, &borrowed)
                .await
                .status
        }
    };
    assert_eq!(me(vec![("authorization", bearer(&token))]).await, 200);
    assert_eq!(me(vec![("cookie", cookie.clone())]).await, 200);

    let requested = s
        .request(
            "POST",
            "/auth/customer/emailpass/reset-password",
            Some(json!({"identifier": email})),
            &[],
        )
        .await;
    assert_eq!(requested.status, 201);
    let events = s.events();
    let reset_token = events
        .iter()
        .rev()
        .find(|e| e["name"] == json!("auth.password_reset"))
        .and_then(|e| e["data"]["token"].as_str())
        .expect("reset token")
        .to_owned();
    let new_password = "a fresh passphrase";
    let updated = s
        .request(
            "POST",
            &format!("/auth/customer/emailpass/update?token={reset_token}"),
            Some(json!({"email": email, "password": new_password})),
            &[],
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);

    assert_eq!(
        me(vec![("authorization", bearer(&token))]).await,
        401,
        "the old token"
    );
    assert_eq!(
        me(vec![("cookie", cookie.clone())]).await,
        401,
        "the old session"
    );
    let (status, body) = refresh(&s, &[("authorization", &bearer(&token))]).await;
    assert_eq!(
        (status, body),
        (401, json!({"message": "Unauthorized"})),
        "refresh of the old token"
    );

    // Signing in with the new password works at once, in the same second or not.
    let signed_in = s
        .request(
            "POST",
            "/auth/customer/emailpass",
            Some(json!({"email": email, "password": new_password})),
            &[],
        )
        .await;
    assert_eq!(signed_in.status, 200);
    let fresh = signed_in.body["token"].as_str().unwrap();
    assert_eq!(me(vec![("authorization", bearer(fresh))]).await, 200);
}

async fn sign_out_everywhere_ends_every_token_and_session(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let sign_in = || async {
        let reply = s
            .request(
                "POST",
                "/auth/user/emailpass",
                Some(json!({
                    "email": integration_tests::ADMIN_EMAIL,
                    "password": integration_tests::ADMIN_PASSWORD
                })),
                &[],
            )
            .await;
        assert_eq!(reply.status, 200);
        reply.body["token"].as_str().unwrap().to_owned()
    };
    let (laptop, phone) = (sign_in().await, sign_in().await);
    let cookie = session_cookie(&s, &laptop).await;
    let admin = |headers: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            let borrowed: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.request("GET", "/admin/customers", None, &borrowed)
                .await
                .status
        }
    };
    assert_eq!(admin(vec![("authorization", bearer(&phone))]).await, 200);

    let bad = s
        .request(
            "DELETE",
            "/auth/session?everywhere=maybe",
            None,
            &[("authorization", &bearer(&phone))],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(
        admin(vec![("authorization", bearer(&phone))]).await,
        200,
        "nothing changed"
    );

    let ended = s
        .request(
            "DELETE",
            "/auth/session?everywhere=true",
            None,
            &[("authorization", &bearer(&phone))],
        )
        .await;
    assert_eq!((ended.status, ended.body), (200, json!({"success": true})));
    for token in [&laptop, &phone] {
        assert_eq!(admin(vec![("authorization", bearer(token))]).await, 401);
    }
    assert_eq!(admin(vec![("cookie", cookie)]).await, 401);
    let again = sign_in().await;
    assert_eq!(admin(vec![("authorization", bearer(&again))]).await, 200);
}

/// A tiny absolute lifetime: refresh works within it, and neither a token nor a session
/// refreshes past it.
async fn refresh_stops_at_the_absolute_lifetime(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| {
        c.sign_in.absolute_lifetime_seconds = 2;
    })
    .await
    else {
        return;
    };
    let token = s.token.clone();
    let cookie = session_cookie(&s, &token).await;
    let (status, body) = refresh(&s, &[("authorization", &bearer(&token))]).await;
    assert_eq!(status, 200, "{body}");
    let refreshed = body["token"].as_str().unwrap().to_owned();
    let claims = integration_tests::claims(&refreshed);
    assert_eq!(
        claims["auth_time"],
        integration_tests::claims(&token)["auth_time"],
        "the sign-in time carries over"
    );
    assert!(
        claims["exp"].as_i64().unwrap() <= claims["auth_time"].as_i64().unwrap() + 2,
        "no token outlives the sign-in's lifetime: {claims}"
    );

    tokio::time::sleep(Duration::from_millis(3100)).await;
    for headers in [
        vec![("authorization", bearer(&refreshed))],
        // A browser names the page's origin on a cookie request that changes state.
        vec![("cookie", cookie), ("origin", s.base.clone())],
    ] {
        let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _) = refresh(&s, &borrowed).await;
        assert_eq!(status, 401, "{headers:?}");
    }
}

/// An identity keeps at most 20 sessions: the oldest goes when a new one starts.
async fn sessions_per_identity_are_capped(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let mut cookies = Vec::new();
    for _ in 0..22 {
        cookies.push(session_cookie(&s, &s.token).await);
    }
    let status = |cookie: &str| {
        let s = &s;
        let cookie = cookie.to_owned();
        async move {
            s.request("GET", "/admin/customers", None, &[("cookie", &cookie)])
                .await
                .status
        }
    };
    assert_eq!(status(&cookies[0]).await, 401, "the oldest went");
    assert_eq!(status(&cookies[1]).await, 401);
    assert_eq!(status(&cookies[2]).await, 200);
    assert_eq!(status(&cookies[21]).await, 200);
}

both_backends!(
    a_password_reset_ends_earlier_tokens_and_sessions,
    sign_out_everywhere_ends_every_token_and_session,
    refresh_stops_at_the_absolute_lifetime,
    sessions_per_identity_are_capped,
);
