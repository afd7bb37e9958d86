//! Medusa's store and auth checks (25–40 of medusa-compat.md §8) against the local provider,
//! on both backends: registration, the publishable key, `me` routes, sessions, password reset,
//! refresh; plus API keys and the sign-in throttle.

use integration_tests::{Backend, TestServer, both_backends, claims};
use serde_json::{Value, json};

use integration_tests::{CUSTOMER_PASSWORD as PASSWORD, Shop};

async fn registration_flow(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let shop = Shop::new(&s).await;
    // 25: no token → 401.
    let anonymous = shop
        .call(
            "POST",
            "/store/customers",
            Some(json!({"email": "a@b.com"})),
            "",
        )
        .await;
    assert_eq!(
        (anonymous.status, anonymous.body),
        (401, json!({"message": "Unauthorized"}))
    );

    // 27: a guest with the same email exists already.
    s.create_customer(json!({"email": "Jane@Example.com"}))
        .await;

    // 26: register → exactly {token} with an empty actor, then the customer.
    let registered = s
        .request(
            "POST",
            "/auth/customer/emailpass/register",
            Some(json!({"email": "jane@example.com", "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(registered.status, 200);
    let keys: Vec<&String> = registered.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["token"]);
    let token = registered.body["token"].as_str().unwrap().to_owned();
    let c = claims(&token);
    assert_eq!(
        (c["actor_id"].clone(), c["actor_type"].clone()),
        (json!(""), json!("customer"))
    );
    assert!(
        c["auth_identity_id"]
            .as_str()
            .unwrap()
            .starts_with("authid_")
    );

    let created = shop
        .call(
            "POST",
            "/store/customers",
            Some(
                json!({"email": "jane@example.com", "first_name": "Jane", "last_name": "Doe",
                        "metadata": {"nested": {"deep": [1, 2]}}}),
            ),
            &token,
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let customer = &created.body["customer"];
    assert_eq!(customer["has_account"], json!(true));
    assert_eq!(customer["metadata"], json!({"nested": {"deep": [1, 2]}}));
    assert_eq!(
        customer["addresses"],
        json!([]),
        "store defaults include *addresses"
    );
    let id = customer["id"].as_str().unwrap().to_owned();

    // 27: both customers, one with an account and one without.
    let (_, listed) = s.get("/admin/customers?q=jane@example.com").await;
    assert_eq!(listed["count"], json!(2), "{listed}");
    let mut accounts: Vec<bool> = listed["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["has_account"].as_bool().unwrap())
        .collect();
    accounts.sort();
    assert_eq!(accounts, vec![false, true]);

    // The register token still has no actor; the same identity cannot register twice.
    let again = shop
        .call(
            "POST",
            "/store/customers",
            Some(json!({"email": "jane@example.com"})),
            &token,
        )
        .await;
    assert_eq!(again.status, 422, "{}", again.body);
    assert_eq!(
        again.body,
        json!({"code": "invalid_request_error", "type": "duplicate_error",
               "message": "Request already authenticated as a customer."})
    );

    // 40 (for customers): refresh carries the new customer, with later iat and exp.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refreshed = s
        .request(
            "POST",
            "/auth/token/refresh",
            None,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let fresh = claims(refreshed.body["token"].as_str().unwrap());
    assert_eq!(fresh["actor_id"], json!(id));
    assert_eq!(fresh["auth_identity_id"], c["auth_identity_id"]);
    assert!(fresh["iat"].as_i64() > c["iat"].as_i64() && fresh["exp"].as_i64() > c["exp"].as_i64());

    // 28: a login token already carries the actor → 422, as Medusa answers.
    let login = s
        .request(
            "POST",
            "/auth/customer/emailpass",
            Some(json!({"email": "JANE@example.com", "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let login_token = login.body["token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&login_token)["actor_id"], json!(id));
    let dup = shop
        .call(
            "POST",
            "/store/customers",
            Some(json!({"email": "jane@example.com"})),
            &login_token,
        )
        .await;
    assert_eq!(
        (dup.status, dup.body),
        (
            422,
            json!({"code": "invalid_request_error", "type": "duplicate_error",
                   "message": "Request already authenticated as a customer."})
        )
    );

    // 11: deleting the customer unlinks the identity: a refreshed token has no actor again.
    let (status, _) = s.delete(&format!("/admin/customers/{id}")).await;
    assert_eq!(status, 200);
    let after = s
        .request(
            "POST",
            "/auth/token/refresh",
            None,
            &[("authorization", &format!("Bearer {login_token}"))],
        )
        .await;
    assert_eq!(
        claims(after.body["token"].as_str().unwrap())["actor_id"],
        json!("")
    );
    let gone = shop
        .call("GET", "/store/customers/me", None, &login_token)
        .await;
    assert_eq!(gone.status, 404, "{}", gone.body);
}

/// The registered customer's email is the identity's own: another one is refused and changes
/// nothing, so nobody claims someone else's address first and locks its owner out.
async fn registration_takes_only_the_identitys_own_email(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let shop = Shop::new(&s).await;
    let register = |email: &'static str| {
        let s = &s;
        async move {
            let registered = s
                .request(
                    "POST",
                    "/auth/customer/emailpass/register",
                    Some(json!({"email": email, "password": PASSWORD})),
                    &[],
                )
                .await;
            assert_eq!(registered.status, 200, "{}", registered.body);
            registered.body["token"].as_str().unwrap().to_owned()
        }
    };
    let mallory = register("mallory@example.com").await;

    // The victim's address (no account yet, and a guest with it): 400, nothing created.
    s.create_customer(json!({"email": "victim@example.com"}))
        .await;
    let claimed = shop
        .call(
            "POST",
            "/store/customers",
            Some(json!({"email": "victim@example.com", "first_name": "Mallory"})),
            &mallory,
        )
        .await;
    assert_eq!(claimed.status, 400, "{}", claimed.body);
    assert_eq!(
        claimed.body,
        json!({"type": "invalid_data",
               "message": "Field 'email' must be the email address you signed in with."})
    );
    let (_, listed) = s.get("/admin/customers?limit=50").await;
    assert_eq!(listed["count"], json!(1), "{listed}");
    assert_eq!(listed["customers"][0]["has_account"], json!(false));

    // The victim registers with its own address, unhindered.
    let victim = register("victim@example.com").await;
    let own = shop
        .call(
            "POST",
            "/store/customers",
            Some(json!({"email": "Victim@Example.com"})),
            &victim,
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["customer"]["has_account"], json!(true));

    // An omitted email is the identity's own.
    let omitted = shop
        .call(
            "POST",
            "/store/customers",
            Some(json!({"first_name": "Mallory"})),
            &mallory,
        )
        .await;
    assert_eq!(omitted.status, 200, "{}", omitted.body);
    assert_eq!(
        omitted.body["customer"]["email"],
        json!("mallory@example.com")
    );
}

async fn publishable_key_is_required(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let shop = Shop::new(&s).await;
    let (token, _) = shop.sign_up("key@example.com", "Kay").await;
    let bearer = format!("Bearer {token}");
    // 29: missing and invalid keys, exact bodies.
    let missing = s
        .request(
            "GET",
            "/store/customers/me",
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(
        (missing.status, missing.body),
        (
            400,
            json!({"type": "not_allowed", "message": "Publishable API key required in the request header: x-publishable-api-key. You can manage your keys in settings in the dashboard."})
        )
    );
    let invalid = s
        .request(
            "GET",
            "/store/customers/me",
            None,
            &[
                ("authorization", &bearer),
                ("x-publishable-api-key", "pk_nope"),
            ],
        )
        .await;
    assert_eq!(
        (invalid.status, invalid.body),
        (
            400,
            json!({"type": "not_allowed", "message": "A valid publishable key is required to proceed with the request"})
        )
    );
    assert_eq!(
        shop.call("GET", "/store/customers/me", None, &token)
            .await
            .status,
        200
    );
    // A revoked key stops working at once; a secret key is not a publishable key.
    let (_, keys) = s.get("/admin/api-keys?type=publishable").await;
    let key_id = keys["api_keys"][0]["id"].as_str().unwrap().to_owned();
    let (status, revoked) = s
        .post(&format!("/admin/api-keys/{key_id}/revoke"), json!({}))
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["api_key"]["revoked_at"].is_string());
    assert_eq!(
        shop.call("GET", "/store/customers/me", None, &token)
            .await
            .status,
        400
    );
    let (_, secret) = s
        .post("/admin/api-keys", json!({"title": "ERP", "type": "secret"}))
        .await;
    let secret_token = secret["api_key"]["token"].as_str().unwrap();
    let with_secret = s
        .request(
            "GET",
            "/store/customers/me",
            None,
            &[
                ("authorization", &bearer),
                ("x-publishable-api-key", secret_token),
            ],
        )
        .await;
    assert_eq!(with_secret.status, 400);
}

async fn me_and_my_addresses(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let shop = Shop::new(&s).await;
    let (alice, alice_id) = shop.sign_up("alice@example.com", "Alice").await;
    let (bob, _) = shop.sign_up("bob@example.com", "Bob").await;

    // 30
    let me = shop.call("GET", "/store/customers/me", None, &alice).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["customer"]["id"], json!(alice_id));
    assert_eq!(me.body["customer"]["first_name"], json!("Alice"));
    assert_eq!(me.body["customer"]["email"], json!("alice@example.com"));
    // The store update takes no email.
    let renamed = shop
        .call(
            "POST",
            "/store/customers/me",
            Some(json!({"last_name": "Liddell"})),
            &alice,
        )
        .await;
    assert_eq!(renamed.body["customer"]["last_name"], json!("Liddell"));
    let email_change = shop
        .call(
            "POST",
            "/store/customers/me",
            Some(json!({"email": "x@y.com"})),
            &alice,
        )
        .await;
    assert_eq!(email_change.status, 400);
    assert_eq!(
        email_change.body["message"],
        json!("Invalid request: Unrecognized fields: 'email'")
    );

    // 31
    let mut ids = Vec::new();
    for street in ["1 Main St", "12 High St", "3 Low St"] {
        let created = shop
            .call(
                "POST",
                "/store/customers/me/addresses",
                Some(json!({"first_name": "Alice", "last_name": "Doe", "address_1": street})),
                &alice,
            )
            .await;
        assert_eq!(created.status, 200, "{}", created.body);
        let addresses = created.body["customer"]["addresses"]
            .as_array()
            .unwrap()
            .clone();
        let new = addresses
            .iter()
            .find(|a| a["address_1"] == json!(street))
            .unwrap();
        assert_eq!(new["customer_id"], json!(alice_id));
        ids.push(new["id"].as_str().unwrap().to_owned());
    }
    // 32: only the caller's addresses.
    shop.call(
        "POST",
        "/store/customers/me/addresses",
        Some(json!({"address_1": "Bob's"})),
        &bob,
    )
    .await;
    let listed = shop
        .call("GET", "/store/customers/me/addresses", None, &alice)
        .await;
    assert_eq!(listed.body["count"], json!(3), "{}", listed.body);
    // Medusa's storefront shows which address is the default (the JS SDK's address book reads
    // the flags), in its own field order; the admin's routes show them on request only.
    let keys: Vec<&str> = listed.body["addresses"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "address_name",
            "company",
            "customer_id",
            "first_name",
            "last_name",
            "address_1",
            "address_2",
            "city",
            "province",
            "postal_code",
            "country_code",
            "phone",
            "metadata",
            "is_default_shipping",
            "is_default_billing",
            "created_at",
            "updated_at",
        ]
    );
    let one = shop
        .call(
            "GET",
            &format!("/store/customers/me/addresses/{}", ids[0]),
            None,
            &alice,
        )
        .await;
    assert!(
        one.body["address"]["is_default_billing"].is_boolean(),
        "{}",
        one.body
    );
    let filtered = shop
        .call("GET", "/store/customers/me/addresses?q=12", None, &alice)
        .await;
    assert_eq!(filtered.body["count"], json!(1));

    // 33
    let updated = shop
        .call(
            "POST",
            &format!("/store/customers/me/addresses/{}", ids[0]),
            Some(json!({"first_name": "Jane"})),
            &alice,
        )
        .await;
    assert_eq!(updated.status, 200);
    let address = updated.body["customer"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == json!(ids[0]))
        .unwrap()
        .clone();
    assert_eq!(
        (address["first_name"].clone(), address["last_name"].clone()),
        (json!("Jane"), json!("Doe"))
    );
    let got = shop
        .call(
            "GET",
            &format!("/store/customers/me/addresses/{}", ids[0]),
            None,
            &alice,
        )
        .await;
    assert_eq!(got.body["address"]["id"], json!(ids[0]));

    // Someone else's address is not found, for every verb, and is left untouched.
    for (method, body) in [
        ("GET", None),
        ("POST", Some(json!({"first_name": "Mallory"}))),
        ("DELETE", None),
    ] {
        let other = shop
            .call(
                method,
                &format!("/store/customers/me/addresses/{}", ids[1]),
                body,
                &bob,
            )
            .await;
        assert_eq!(other.status, 404, "{method}: {}", other.body);
        assert_eq!(other.body["type"], json!("not_found"));
    }
    let still = shop
        .call(
            "GET",
            &format!("/store/customers/me/addresses/{}", ids[1]),
            None,
            &alice,
        )
        .await;
    assert_eq!(still.body["address"]["first_name"], json!("Alice"));

    // 34
    for id in &ids {
        let deleted = shop
            .call(
                "DELETE",
                &format!("/store/customers/me/addresses/{id}"),
                None,
                &alice,
            )
            .await;
        assert_eq!(deleted.status, 200, "{}", deleted.body);
        assert_eq!(
            (deleted.body["id"].clone(), deleted.body["deleted"].clone()),
            (json!(id), json!(true))
        );
    }
    let me = shop.call("GET", "/store/customers/me", None, &alice).await;
    assert_eq!(me.body["customer"]["addresses"], json!([]));

    // A token without a customer yet cannot use `me`.
    let fresh = s
        .request(
            "POST",
            "/auth/customer/emailpass/register",
            Some(json!({"email": "new@example.com", "password": PASSWORD})),
            &[],
        )
        .await;
    let unregistered = fresh.body["token"].as_str().unwrap();
    assert_eq!(
        shop.call("GET", "/store/customers/me", None, unregistered)
            .await
            .status,
        401
    );
}

async fn staff_auth_sessions_and_password_reset(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let email = "staff.two@example.com";
    // 35/37: register, duplicate, login, unknown email.
    let registered = s
        .request(
            "POST",
            "/auth/user/emailpass/register",
            Some(json!({"email": email, "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(registered.status, 200);
    let duplicate = s
        .request(
            "POST",
            "/auth/user/emailpass/register",
            Some(json!({"email": "STAFF.two@example.com", "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(
        (duplicate.status, duplicate.body),
        (
            401,
            json!({"type": "unauthorized", "message": "Identity with email already exists"})
        )
    );
    let login = s
        .request("POST", "/auth/user/emailpass", Some(json!({"email": integration_tests::ADMIN_EMAIL, "password": integration_tests::ADMIN_PASSWORD})), &[])
        .await;
    assert_eq!(login.status, 200);
    assert_eq!(
        login.body.as_object().unwrap().len(),
        1,
        "exactly {{token}}"
    );
    let unknown = s
        .request(
            "POST",
            "/auth/user/emailpass",
            Some(json!({"email": "nobody@example.com", "password": PASSWORD})),
            &[],
        )
        .await;
    let wrong = s
        .request(
            "POST",
            "/auth/user/emailpass",
            Some(json!({"email": integration_tests::ADMIN_EMAIL, "password": "not the password"})),
            &[],
        )
        .await;
    // The same answer whether or not the email exists.
    assert_eq!(
        (unknown.status, unknown.body.clone()),
        (
            401,
            json!({"type": "unauthorized", "message": "Invalid email or password"})
        )
    );
    assert_eq!((wrong.status, wrong.body), (unknown.status, unknown.body));
    let typed = s
        .request(
            "POST",
            "/auth/user/emailpass",
            Some(json!({"email": email, "password": 12345678})),
            &[],
        )
        .await;
    assert_eq!(
        (typed.status, typed.body["message"].clone()),
        (401, json!("Password should be a string"))
    );

    // 36: session cookie.
    let token = login.body["token"].as_str().unwrap();
    let session = s
        .request(
            "POST",
            "/auth/session",
            None,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(session.status, 200, "{}", session.body);
    assert_eq!(session.body["user"]["actor_type"], json!("user"));
    let set_cookie = session.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.starts_with("connect.sid=") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let with_cookie = s
        .request("GET", "/admin/customers", None, &[("cookie", &cookie)])
        .await;
    assert_eq!(with_cookie.status, 200);
    // A browser names the page's origin on a cookie request that changes state (csrf_http).
    let ended = s
        .request(
            "DELETE",
            "/auth/session",
            None,
            &[("cookie", &cookie), ("origin", &s.base)],
        )
        .await;
    assert_eq!((ended.status, ended.body), (200, json!({"success": true})));
    let after = s
        .request("GET", "/admin/customers", None, &[("cookie", &cookie)])
        .await;
    assert_eq!(after.status, 401);
    let forged = s
        .request(
            "GET",
            "/admin/customers",
            None,
            &[("cookie", "connect.sid=forged")],
        )
        .await;
    assert_eq!(forged.status, 401);

    // 38: reset-password is 201 for everyone; a missing identifier is a 400.
    for identifier in [email, "nobody@example.com"] {
        let reset = s
            .request(
                "POST",
                "/auth/user/emailpass/reset-password",
                Some(json!({"identifier": identifier})),
                &[],
            )
            .await;
        assert_eq!((reset.status, reset.body), (201, Value::Null));
    }
    let missing = s
        .request(
            "POST",
            "/auth/user/emailpass/reset-password",
            Some(json!({})),
            &[],
        )
        .await;
    assert_eq!(missing.status, 400);
    let events = s.events();
    let resets: Vec<&Value> = events
        .iter()
        .filter(|e| e["name"] == json!("auth.password_reset"))
        .collect();
    assert_eq!(
        resets.len(),
        1,
        "only the known identity gets a token: {events:?}"
    );
    let reset_token = resets[0]["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(resets[0]["data"]["entity_id"], json!(email));
    // A reset token is not a sign-in token.
    let as_bearer = s
        .request(
            "GET",
            "/admin/customers",
            None,
            &[("authorization", &format!("Bearer {reset_token}"))],
        )
        .await;
    assert_eq!(as_bearer.status, 401);

    // 39: update with ?token=, old password fails, new one works; the token is single-use.
    let new_password = "a brand new secret";
    let updated = s
        .request(
            "POST",
            &format!("/auth/user/emailpass/update?token={reset_token}"),
            Some(json!({"email": email, "password": new_password})),
            &[],
        )
        .await;
    assert_eq!(
        (updated.status, updated.body.clone()),
        (200, json!({"success": true})),
        "{}",
        updated.body
    );
    let old = s
        .request(
            "POST",
            "/auth/user/emailpass",
            Some(json!({"email": email, "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(old.status, 401);
    let new = s
        .request(
            "POST",
            "/auth/user/emailpass",
            Some(json!({"email": email, "password": new_password})),
            &[],
        )
        .await;
    assert_eq!(new.status, 200);
    let reused = s
        .request(
            "POST",
            "/auth/user/emailpass/update",
            Some(json!({"email": email, "password": "yet another one"})),
            &[("authorization", &format!("Bearer {reset_token}"))],
        )
        .await;
    assert_eq!(
        (reused.status, reused.body),
        (
            401,
            json!({"type": "unauthorized", "message": "Invalid token"})
        )
    );
    // An expired reset token (signed with the server's own key, 16 minutes ago).
    let key =
        shared::auth::tokens::SigningKey::load_or_create(&s.data_dir.join("jwt-signing-key.json"))
            .unwrap();
    let issuer = shared::auth::tokens::TokenIssuer::new(key, "customer-module-test", 3600);
    let mut stale = serde_json::Map::new();
    stale.insert("entity_id".into(), json!(email));
    stale.insert("provider".into(), json!("emailpass"));
    stale.insert("token_use".into(), json!("password_reset"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expired = issuer.sign(stale, now - 16 * 60, 15 * 60).unwrap();
    let late = s
        .request(
            "POST",
            &format!("/auth/user/emailpass/update?token={expired}"),
            Some(json!({"password": "whatever123"})),
            &[],
        )
        .await;
    assert_eq!(
        (late.status, late.body["message"].clone()),
        (401, json!("Invalid token"))
    );

    // 40: refresh keeps the actor and renews iat/exp.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refreshed = s
        .request(
            "POST",
            "/auth/token/refresh",
            None,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    let (before, after) = (
        claims(token),
        claims(refreshed.body["token"].as_str().unwrap()),
    );
    for claim in ["actor_id", "actor_type", "auth_identity_id"] {
        assert_eq!(before[claim], after[claim], "{claim}");
    }
    assert!(after["iat"].as_i64() > before["iat"].as_i64());
    assert!(after["exp"].as_i64() > before["exp"].as_i64());
    let anonymous = s.request("POST", "/auth/token/refresh", None, &[]).await;
    assert_eq!(anonymous.status, 401);
}

async fn failed_sign_ins_are_throttled(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let attempt = |email: &'static str, password: &'static str| {
        let s = &s;
        async move {
            s.request(
                "POST",
                "/auth/user/emailpass",
                Some(json!({"email": email, "password": password})),
                &[],
            )
            .await
            .status
        }
    };
    for _ in 0..5 {
        assert_eq!(
            attempt(integration_tests::ADMIN_EMAIL, "wrong password").await,
            401
        );
    }
    // Even the right password is refused now, without a password check, for a short while
    // (a delay, not a lock: see sign_in_limits.rs for the rest).
    assert_eq!(
        attempt(
            integration_tests::ADMIN_EMAIL,
            integration_tests::ADMIN_PASSWORD
        )
        .await,
        429
    );
    // Unknown emails are throttled the same way (the limit reveals nothing).
    for _ in 0..5 {
        assert_eq!(attempt("ghost@example.com", "wrong password").await, 401);
    }
    assert_eq!(attempt("ghost@example.com", "wrong password").await, 429);
    // Other identities are unaffected.
    let register = s
        .request(
            "POST",
            "/auth/user/emailpass/register",
            Some(json!({"email": "other@example.com", "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(register.status, 200);
    assert_eq!(attempt("other@example.com", PASSWORD).await, 200);
}

async fn api_keys_lifecycle_and_secret_keys(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let (status, created) = s
        .post(
            "/admin/api-keys",
            json!({"title": "Storefront", "type": "publishable"}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let key = &created["api_key"];
    assert!(key["id"].as_str().unwrap().starts_with("apk_"));
    assert!(key["token"].as_str().unwrap().starts_with("pk_"));
    assert_eq!(
        (key["type"].clone(), key["revoked_at"].clone()),
        (json!("publishable"), Value::Null)
    );
    let id = key["id"].as_str().unwrap().to_owned();
    let (_, renamed) = s
        .post(&format!("/admin/api-keys/{id}"), json!({"title": "Web"}))
        .await;
    assert_eq!(renamed["api_key"]["title"], json!("Web"));
    // Bad input names what is wrong.
    let (status, bad) = s
        .post("/admin/api-keys", json!({"title": "X", "type": "admin"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .contains("publishable or secret"),
        "{bad}"
    );
    let (status, _) = s
        .post("/admin/api-keys", json!({"type": "publishable"}))
        .await;
    assert_eq!(status, 400);
    // A key in use cannot be deleted; a revoked one can.
    let (status, refused) = s.delete(&format!("/admin/api-keys/{id}")).await;
    assert_eq!(status, 400, "{refused}");
    s.post(&format!("/admin/api-keys/{id}/revoke"), json!({}))
        .await;
    let (status, deleted) = s.delete(&format!("/admin/api-keys/{id}")).await;
    assert_eq!(
        (status, deleted),
        (200, json!({"id": id, "object": "api_key", "deleted": true}))
    );
    let (status, _) = s.get(&format!("/admin/api-keys/{id}")).await;
    assert_eq!(status, 404);

    // Secret keys: token shown once, Basic auth on /admin, revocation ends it.
    let (_, secret) = s
        .post("/admin/api-keys", json!({"title": "ERP", "type": "secret"}))
        .await;
    let secret_token = secret["api_key"]["token"].as_str().unwrap().to_owned();
    let secret_id = secret["api_key"]["id"].as_str().unwrap().to_owned();
    let (_, shown) = s.get(&format!("/admin/api-keys/{secret_id}")).await;
    assert_eq!(
        shown["api_key"]["token"],
        json!(""),
        "the secret is not stored"
    );
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{secret_token}:"))
    );
    let as_erp = s
        .request(
            "POST",
            "/admin/customers",
            Some(json!({"email": "erp@example.com"})),
            &[("authorization", &basic)],
        )
        .await;
    assert_eq!(as_erp.status, 200, "{}", as_erp.body);
    assert_eq!(as_erp.body["customer"]["created_by"], json!(secret_id));
    s.post(&format!("/admin/api-keys/{secret_id}/revoke"), json!({}))
        .await;
    let revoked = s
        .request(
            "GET",
            "/admin/customers",
            None,
            &[("authorization", &basic)],
        )
        .await;
    assert_eq!(revoked.status, 401);
    let (_, list) = s.get("/admin/api-keys?revoked=true").await;
    assert_eq!(list["count"], json!(1));
}

both_backends!(
    registration_takes_only_the_identitys_own_email,
    registration_flow,
    publishable_key_is_required,
    me_and_my_addresses,
    staff_auth_sessions_and_password_reset,
    failed_sign_ins_are_throttled,
    api_keys_lifecycle_and_secret_keys,
);
