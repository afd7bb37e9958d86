//! Token checks on /admin: only tokens of the configured issuer, signed by its key, unexpired,
//! for a staff actor, are accepted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integration_tests::{Backend, TestServer};
use serde_json::{Map, Value, json};
use shared::auth::AuthContext;
use shared::auth::tokens::{SigningKey, TokenIssuer};

fn staff_context(actor_id: &str) -> AuthContext {
    AuthContext {
        actor_id: actor_id.into(),
        actor_type: "user".into(),
        auth_identity_id: "authid_x".into(),
        app_metadata: Map::new(),
        sign_in: None,
    }
}

async fn status_with(s: &TestServer, token: &str) -> u16 {
    s.client
        .get(format!("{}/admin/customers", s.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

fn claims_of(token: &str) -> Map<String, Value> {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_rejected() {
    let s = TestServer::start(Backend::Embedded)
        .await
        .expect("embedded");
    assert_eq!(status_with(&s, &s.token).await, 200);
    let claims = claims_of(&s.token);
    assert_eq!(claims["actor_type"], json!("user"));
    assert!(
        claims["actor_id"]
            .as_str()
            .is_some_and(|a| a.starts_with("user_"))
    );
    assert!(
        claims["auth_identity_id"]
            .as_str()
            .is_some_and(|a| a.starts_with("authid_"))
    );
    let actor = claims["actor_id"].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    // Signed by another key, same issuer and claims.
    let other = TokenIssuer::new(
        SigningKey::ephemeral().unwrap(),
        "customer-module-test",
        3600,
    );
    assert_eq!(
        status_with(
            &s,
            &other
                .issue(&staff_context(&actor), "emailpass", now)
                .unwrap()
        )
        .await,
        401
    );

    // `alg: none` with the real claims.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = s.token.split('.').nth(1).unwrap();
    assert_eq!(status_with(&s, &format!("{header}.{payload}.")).await, 401);

    // The payload changed under the real signature.
    let mut tampered = claims.clone();
    tampered.insert("actor_id".into(), json!("user_someone_else"));
    let forged = format!(
        "{}.{}.{}",
        s.token.split('.').next().unwrap(),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered).unwrap()),
        s.token.split('.').nth(2).unwrap()
    );
    assert_eq!(status_with(&s, &forged).await, 401);
    assert_eq!(status_with(&s, "").await, 401);
}

#[tokio::test]
async fn expired_and_wrong_issuer_tokens_from_the_right_key_are_rejected() {
    // A server whose key we hold: sign with it directly.
    let dir = integration_tests::temp_dir("tokens");
    let key_path = dir.join("jwt-signing-key.json");
    let s = {
        let store = integration_tests::fresh_store(Backend::Embedded)
            .await
            .unwrap();
        integration_tests::seed_staff_user(&store, "user_1", &["admin"]).await;
        let config = integration_tests::test_config(dir.clone());
        let (ready, addr) = tokio::sync::oneshot::channel();
        tokio::spawn(functions::server::serve(config, store, move |a| {
            let _ = ready.send(a);
        }));
        addr.await.unwrap()
    };
    let client = shared::ports::http_client();
    let call = |token: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{s}/admin/customers"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let same_key = || SigningKey::load_or_create(&key_path).unwrap();
    let good = TokenIssuer::new(same_key(), "customer-module-test", 3600);
    assert_eq!(
        call(
            good.issue(&staff_context("user_1"), "emailpass", now)
                .unwrap()
        )
        .await,
        200
    );
    assert_eq!(
        call(
            good.issue(&staff_context("user_1"), "emailpass", now - 7200)
                .unwrap()
        )
        .await,
        401,
        "expired"
    );
    let foreign = TokenIssuer::new(same_key(), "someone-else", 3600);
    assert_eq!(
        call(
            foreign
                .issue(&staff_context("user_1"), "emailpass", now)
                .unwrap()
        )
        .await,
        401,
        "issuer"
    );
    let customer = AuthContext {
        actor_type: "customer".into(),
        ..staff_context("cus_1")
    };
    assert_eq!(
        call(good.issue(&customer, "emailpass", now).unwrap()).await,
        401,
        "customer token on /admin"
    );
    let unlinked = staff_context("");
    assert_eq!(
        call(good.issue(&unlinked, "emailpass", now).unwrap()).await,
        401,
        "no actor yet"
    );
}

/// The local provider's side of the security suite: tokens of the right key but the wrong kind
/// or actor, and one customer's token on another's records.
#[tokio::test]
async fn wrong_kinds_and_actors_are_rejected_with_the_local_provider() {
    let s = TestServer::start(Backend::Embedded)
        .await
        .expect("embedded");
    let key = s.publishable_key().await;
    let signer = TokenIssuer::new(
        SigningKey::load_or_create(&s.data_dir.join("jwt-signing-key.json")).unwrap(),
        "customer-module-test",
        3600,
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // An "ID token": right key, right issuer, Medusa's claims, but not an access token.
    let mut id_claims = claims_of(&s.token);
    id_claims.insert("token_use".into(), json!("id"));
    id_claims.remove("exp");
    id_claims.remove("iat");
    id_claims.remove("iss");
    id_claims.remove("jti");
    let id_token = signer.sign(id_claims, now, 3600).unwrap();
    assert_eq!(status_with(&s, &id_token).await, 401, "ID token");

    // Customers: a registered one, whose token must not open /admin.
    let register = s
        .request(
            "POST",
            "/auth/customer/emailpass/register",
            Some(json!({"email": "eve@example.com", "password": "eve-password"})),
            &[],
        )
        .await;
    let token = register.body["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let created = s
        .request(
            "POST",
            "/store/customers",
            Some(json!({"email": "eve@example.com"})),
            &[("authorization", &bearer), ("x-publishable-api-key", &key)],
        )
        .await;
    assert_eq!(created.status, 200);
    let login = s
        .request(
            "POST",
            "/auth/customer/emailpass",
            Some(json!({"email": "eve@example.com", "password": "eve-password"})),
            &[],
        )
        .await;
    let customer_token = login.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        status_with(&s, &customer_token).await,
        401,
        "customer token on /admin"
    );
    let before = s.get("/admin/customers").await.1["count"].clone();
    let write = s
        .request(
            "POST",
            "/admin/customers",
            Some(json!({"email": "sneaky@example.com"})),
            &[("authorization", &format!("Bearer {customer_token}"))],
        )
        .await;
    assert_eq!(write.status, 401);
    assert_eq!(
        s.get("/admin/customers").await.1["count"],
        before,
        "nothing written"
    );

    // A staff token on a shopper's route.
    let staff_on_store = s
        .request(
            "GET",
            "/store/customers/me",
            None,
            &[
                ("authorization", &format!("Bearer {}", s.token)),
                ("x-publishable-api-key", &key),
            ],
        )
        .await;
    assert_eq!(
        (staff_on_store.status, staff_on_store.body),
        (401, json!({"message": "Unauthorized"}))
    );
}
