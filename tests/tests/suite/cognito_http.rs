//! The same auth and store contract with Cognito (on moto) signing people in: register, login,
//! refresh, reset, and JWKS verification over real HTTP; plus the token security suite.

use integration_tests::{
    Backend, CognitoSetup, FederatedServer, Reply, TestServer, both_backends, claims,
    cognito_setup, federated_server, moto_endpoint,
};
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "Adm1n-Passw0rd!";
const PASSWORD: &str = "Sh0pper-Passw0rd!";

async fn start(backend: Backend) -> Option<(TestServer, CognitoSetup)> {
    let endpoint = moto_endpoint()?;
    let setup = cognito_setup(&endpoint).await;
    let cognito = setup.config.clone();
    let server = TestServer::start_with(backend, move |config| {
        config.auth = functions::config::AuthConfig::Cognito(cognito);
        config.admin_password = Some(ADMIN_PASSWORD.into());
    })
    .await?;
    Some((server, setup))
}

async fn store_call(
    s: &TestServer,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> Reply {
    let bearer = format!("Bearer {token}");
    s.request(
        method,
        path,
        body,
        &[("x-publishable-api-key", key), ("authorization", &bearer)],
    )
    .await
}

async fn register(s: &TestServer, email: &str) -> Reply {
    s.request(
        "POST",
        "/auth/customer/emailpass/register",
        Some(json!({"email": email, "password": PASSWORD})),
        &[],
    )
    .await
}

async fn cognito_registration_login_refresh_and_reset(backend: Backend) {
    let Some((s, setup)) = start(backend).await else {
        return;
    };
    // Staff signed in through the staff pool: the admin routes work with a Cognito token.
    let staff_claims = claims(&s.token);
    assert_eq!(staff_claims["token_use"], json!("access"));
    assert!(
        staff_claims["iss"]
            .as_str()
            .unwrap()
            .ends_with(&setup.staff_pool)
    );
    let key = s.publishable_key().await;

    let registered = register(&s, "Carol@Example.com").await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    let token = registered.body["token"].as_str().unwrap().to_owned();
    let c = claims(&token);
    assert_eq!(
        (c["token_use"].clone(), c["client_id"].clone()),
        (json!("access"), json!(setup.customer_client))
    );
    // No customer yet.
    assert_eq!(
        store_call(&s, &key, "GET", "/store/customers/me", None, &token)
            .await
            .status,
        401
    );
    let created = store_call(
        &s,
        &key,
        "POST",
        "/store/customers",
        Some(json!({"email": "carol@example.com", "first_name": "Carol"})),
        &token,
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.body["customer"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["customer"]["has_account"], json!(true));
    // The identity is linked now: the same token reaches `me`, and cannot register again.
    let me = store_call(&s, &key, "GET", "/store/customers/me", None, &token).await;
    assert_eq!(
        (me.status, me.body["customer"]["id"].clone()),
        (200, json!(id))
    );
    let again = store_call(
        &s,
        &key,
        "POST",
        "/store/customers",
        Some(json!({"email": "carol@example.com"})),
        &token,
    )
    .await;
    assert_eq!(
        (again.status, again.body["message"].clone()),
        (422, json!("Request already authenticated as a customer."))
    );

    // Refresh through Cognito's refresh token (kept server-side).
    let refreshed = s
        .request(
            "POST",
            "/auth/token/refresh",
            None,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let fresh = refreshed.body["token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, token);
    assert_eq!(claims(&fresh)["sub"], c["sub"]);
    let me = store_call(&s, &key, "GET", "/store/customers/me", None, &fresh).await;
    assert_eq!(me.body["customer"]["id"], json!(id));

    // Login (case-insensitive email), failures that do not reveal whether the email exists.
    let login = s
        .request(
            "POST",
            "/auth/customer/emailpass",
            Some(json!({"email": "CAROL@example.com", "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let wrong = s
        .request(
            "POST",
            "/auth/customer/emailpass",
            Some(json!({"email": "carol@example.com", "password": "Wr0ng-Passw0rd!"})),
            &[],
        )
        .await;
    let unknown = s
        .request(
            "POST",
            "/auth/customer/emailpass",
            Some(json!({"email": "nobody@example.com", "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.body.clone()),
        (
            401,
            json!({"type": "unauthorized", "message": "Invalid email or password"})
        )
    );
    assert_eq!((unknown.status, unknown.body), (wrong.status, wrong.body));
    let duplicate = register(&s, "carol@example.com").await;
    assert_eq!(
        (duplicate.status, duplicate.body["message"].clone()),
        (401, json!("Identity with email already exists"))
    );

    // Password reset: 201 always; Cognito's emailed code is the reset token.
    for identifier in ["carol@example.com", "nobody@example.com"] {
        let reset = s
            .request(
                "POST",
                "/auth/customer/emailpass/reset-password",
                Some(json!({"identifier": identifier})),
                &[],
            )
            .await;
        assert_eq!(reset.status, 201, "{identifier}: {}", reset.body);
    }
    // moto checks codes of its own shape only; this one is wrong.
    let bad = s
        .request(
            "POST",
            "/auth/customer/emailpass/update",
            Some(json!({"email": "carol@example.com", "password": "N3w-Passw0rd!"})),
            &[("authorization", "Bearer moto-confirmation-code:000000")],
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["message"].clone()),
        (401, json!("Invalid token"))
    );
    // Cognito's tokens say when they were issued to the second: the reset comes a second
    // after the last one so that the sign-out mark ends it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let good = s
        .request(
            "POST",
            "/auth/customer/emailpass/update?token=123456",
            Some(json!({"email": "carol@example.com", "password": "N3w-Passw0rd!"})),
            &[],
        )
        .await;
    assert_eq!((good.status, good.body), (200, json!({"success": true})));
    let old = s
        .request(
            "POST",
            "/auth/customer/emailpass",
            Some(json!({"email": "carol@example.com", "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(old.status, 401);
    let new = s
        .request(
            "POST",
            "/auth/customer/emailpass",
            Some(json!({"email": "carol@example.com", "password": "N3w-Passw0rd!"})),
            &[],
        )
        .await;
    assert_eq!(new.status, 200);
    // The reset ended the tokens from before it; the new sign-in's works.
    let before_reset = store_call(&s, &key, "GET", "/store/customers/me", None, &fresh).await;
    assert_eq!(before_reset.status, 401, "{}", before_reset.body);
    let refresh_old = s
        .request(
            "POST",
            "/auth/token/refresh",
            None,
            &[("authorization", &format!("Bearer {fresh}"))],
        )
        .await;
    assert_eq!(refresh_old.status, 401);
    let fresh = new.body["token"].as_str().unwrap().to_owned();
    let me = store_call(&s, &key, "GET", "/store/customers/me", None, &fresh).await;
    assert_eq!(me.body["customer"]["id"], json!(id), "{}", me.body);

    // Sessions work with Cognito tokens too.
    let session = s
        .request(
            "POST",
            "/auth/session",
            None,
            &[("authorization", &format!("Bearer {fresh}"))],
        )
        .await;
    let cookie = session.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let via_cookie = s
        .request(
            "GET",
            "/store/customers/me",
            None,
            &[("cookie", &cookie), ("x-publishable-api-key", &key)],
        )
        .await;
    assert_eq!(via_cookie.body["customer"]["id"], json!(id));
}

/// Signs `claims` with a key that is not the pool's, under the pool's `kid`.
fn forged(claims: &Value) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("dummy".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(b"guess")).unwrap()
}

fn unsigned(claims: &Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "dummy"})),
        b64(claims)
    )
}

async fn cognito_token_security_suite(backend: Backend) {
    let Some((s, setup)) = start(backend).await else {
        return;
    };
    let key = s.publishable_key().await;
    let mut tokens = Vec::new();
    for email in ["alice@example.com", "bob@example.com"] {
        let token = register(&s, email).await.body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let created = store_call(
            &s,
            &key,
            "POST",
            "/store/customers",
            Some(json!({"email": email})),
            &token,
        )
        .await;
        assert_eq!(created.status, 200, "{}", created.body);
        let added = store_call(
            &s,
            &key,
            "POST",
            "/store/customers/me/addresses",
            Some(json!({"address_1": email})),
            &token,
        )
        .await;
        assert_eq!(added.status, 200);
        tokens.push((
            token,
            added.body["customer"]["addresses"][0]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
    }
    let (alice, alice_address) = tokens[0].clone();
    let (bob, _) = tokens[1].clone();

    // Tokens Cognito issued, but of the wrong kind: an ID token, and a token of another app
    // client of the same pool.
    let direct = setup
        .client
        .initiate_auth()
        .client_id(&setup.customer_client)
        .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", "alice@example.com")
        .auth_parameters("PASSWORD", PASSWORD)
        .send()
        .await
        .expect("moto login");
    let id_token = direct
        .authentication_result()
        .unwrap()
        .id_token()
        .unwrap()
        .to_owned();
    let (_, other_client) = {
        let app = setup
            .client
            .create_user_pool_client()
            .user_pool_id(&setup.customer_pool)
            .client_name("other")
            .send()
            .await
            .unwrap();
        (
            (),
            app.user_pool_client()
                .unwrap()
                .client_id()
                .unwrap()
                .to_owned(),
        )
    };
    let other_client_token = setup
        .client
        .initiate_auth()
        .client_id(&other_client)
        .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", "alice@example.com")
        .auth_parameters("PASSWORD", PASSWORD)
        .send()
        .await
        .unwrap()
        .authentication_result()
        .unwrap()
        .access_token()
        .unwrap()
        .to_owned();
    // A token of a pool this API does not trust (same moto key, other issuer).
    let (foreign_pool, foreign_client) =
        integration_tests::cognito_pool(&setup.client, "foreign").await;
    setup
        .client
        .sign_up()
        .client_id(&foreign_client)
        .username("alice@example.com")
        .password(PASSWORD)
        .user_attributes(
            aws_sdk_cognitoidentityprovider::types::AttributeType::builder()
                .name("email")
                .value("alice@example.com")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    setup
        .client
        .admin_confirm_sign_up()
        .user_pool_id(&foreign_pool)
        .username("alice@example.com")
        .send()
        .await
        .unwrap();
    let foreign_token = setup
        .client
        .initiate_auth()
        .client_id(&foreign_client)
        .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", "alice@example.com")
        .auth_parameters("PASSWORD", PASSWORD)
        .send()
        .await
        .unwrap()
        .authentication_result()
        .unwrap()
        .access_token()
        .unwrap()
        .to_owned();
    let alice_claims = claims(&alice);
    let mut expired_claims = alice_claims.clone();
    expired_claims["exp"] = json!(1_000_000);

    let rejected = [
        ("ID token where an access token is required", id_token),
        ("token of another app client", other_client_token),
        ("token of an untrusted pool", foreign_token),
        ("alg none", unsigned(&alice_claims)),
        ("signed by another key", forged(&alice_claims)),
        ("expired, re-signed by another key", forged(&expired_claims)),
        ("staff token on a store route", s.token.clone()),
    ];
    for (what, token) in &rejected {
        let reply = store_call(
            &s,
            &key,
            "POST",
            "/store/customers/me",
            Some(json!({"first_name": "Mallory"})),
            token,
        )
        .await;
        assert_eq!(
            (reply.status, reply.body.clone()),
            (401, json!({"message": "Unauthorized"})),
            "{what}"
        );
    }
    // Nothing changed.
    let me = store_call(&s, &key, "GET", "/store/customers/me", None, &alice).await;
    assert_eq!(
        me.body["customer"]["first_name"],
        Value::Null,
        "{}",
        me.body
    );

    // A customer token on /admin.
    let admin = s
        .request(
            "GET",
            "/admin/customers",
            None,
            &[("authorization", &format!("Bearer {alice}"))],
        )
        .await;
    assert_eq!(admin.status, 401);
    // Customer B on customer A's address: not found, and untouched.
    let theft = store_call(
        &s,
        &key,
        "POST",
        &format!("/store/customers/me/addresses/{alice_address}"),
        Some(json!({"address_1": "stolen"})),
        &bob,
    )
    .await;
    assert_eq!(theft.status, 404);
    let mine = store_call(
        &s,
        &key,
        "GET",
        &format!("/store/customers/me/addresses/{alice_address}"),
        None,
        &alice,
    )
    .await;
    assert_eq!(
        mine.body["address"]["address_1"],
        json!("alice@example.com")
    );
}

/// On the Cognito path too, the customer's email is the pool user's own.
async fn cognito_registration_takes_only_the_identitys_own_email(backend: Backend) {
    let Some((s, _setup)) = start(backend).await else {
        return;
    };
    let key = s.publishable_key().await;
    let registered = register(&s, "mallory@example.com").await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    let token = registered.body["token"].as_str().unwrap().to_owned();
    let claimed = store_call(
        &s,
        &key,
        "POST",
        "/store/customers",
        Some(json!({"email": "victim@example.com"})),
        &token,
    )
    .await;
    assert_eq!(claimed.status, 400, "{}", claimed.body);
    assert_eq!(claimed.body["type"], json!("invalid_data"));
    let (_, listed) = s.get("/admin/customers?limit=50").await;
    assert_eq!(listed["count"], json!(0), "nothing created: {listed}");
    assert_eq!(
        store_call(&s, &key, "GET", "/store/customers/me", None, &token)
            .await
            .status,
        401,
        "the identity is still unlinked"
    );
    // Its own address (here by default) works.
    let own = store_call(
        &s,
        &key,
        "POST",
        "/store/customers",
        Some(json!({"first_name": "Mallory"})),
        &token,
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["customer"]["email"], json!("mallory@example.com"));
}

both_backends!(
    cognito_registration_takes_only_the_identitys_own_email,
    cognito_registration_login_refresh_and_reset,
    cognito_token_security_suite,
);

async fn federated_sign_in_through_the_hosted_ui(backend: Backend) {
    let Some(FederatedServer { s, setup, domain }) =
        federated_server(backend, ADMIN_PASSWORD, PASSWORD).await
    else {
        return;
    };
    let providers = s
        .request("GET", "/auth/customer/providers", None, &[])
        .await;
    let ids: Vec<&str> = providers.body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["emailpass", "google"]);

    let start = s
        .request("POST", "/auth/customer/google", Some(json!({})), &[])
        .await;
    assert_eq!(start.status, 200, "{}", start.body);
    let location = start.body["location"].as_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!(
            "{domain}/oauth2/authorize?identity_provider=Google&client_id={}",
            setup.customer_client
        )),
        "{location}"
    );
    assert!(location.contains("redirect_uri=https%3A%2F%2Fshop.example%2Fcallback"));
    let state = location.split("state=").nth(1).unwrap().to_owned();
    // The browser keeps the cookie that binds the state to it (see csrf_http).
    let state_cookie = |reply: &Reply| {
        let set = reply.headers["set-cookie"].to_str().unwrap();
        set.split(';').next().unwrap().to_owned()
    };
    let cookie = state_cookie(&start);

    // A forged or unknown state, and a bad code, are refused.
    let forged = s
        .request(
            "GET",
            "/auth/customer/google/callback?code=good-code&state=forged",
            None,
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(forged.status, 401);
    let second = s.request("GET", "/auth/customer/google", None, &[]).await;
    let cookie2 = state_cookie(&second);
    let state2 = second.body["location"]
        .as_str()
        .unwrap()
        .split("state=")
        .nth(1)
        .unwrap()
        .to_owned();
    let bad_code = s
        .request(
            "GET",
            &format!("/auth/customer/google/callback?code=bad&state={state2}"),
            None,
            &[("cookie", &cookie2)],
        )
        .await;
    assert_eq!(bad_code.status, 401, "{}", bad_code.body);

    let done = s
        .request(
            "GET",
            &format!("/auth/customer/google/callback?code=good-code&state={state}"),
            None,
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let token = done.body["token"].as_str().unwrap().to_owned();
    // The state is single-use.
    let replay = s
        .request(
            "GET",
            &format!("/auth/customer/google/callback?code=good-code&state={state}"),
            None,
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(replay.status, 401);

    // As in Medusa: no actor yet, so the storefront creates the customer, then refreshes.
    let key = s.publishable_key().await;
    let created = store_call(
        &s,
        &key,
        "POST",
        "/store/customers",
        Some(json!({"email": "gina@gmail.com"})),
        &token,
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let me = store_call(&s, &key, "GET", "/store/customers/me", None, &token).await;
    assert_eq!(me.body["customer"]["email"], json!("gina@gmail.com"));

    let register = s
        .request(
            "POST",
            "/auth/customer/google/register",
            Some(json!({"email": "x@y.com", "password": PASSWORD})),
            &[],
        )
        .await;
    assert_eq!(register.status, 401);
    let unknown = s
        .request("POST", "/auth/customer/github", Some(json!({})), &[])
        .await;
    assert_eq!(unknown.status, 400);
}

both_backends!(federated_sign_in_through_the_hosted_ui);

/// A staff user who enrolled an authenticator app (the staff pool offers TOTP) signs in with
/// its current code: without it the answer says what is missing, with it a token comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_who_enrolled_in_totp_sign_in_with_its_code() {
    use aws_sdk_cognitoidentityprovider::types::SoftwareTokenMfaSettingsType;
    let Some((s, setup)) = start(Backend::Embedded).await else {
        return;
    };
    let associated = setup
        .client
        .associate_software_token()
        .access_token(&s.token)
        .send()
        .await
        .expect("associate");
    assert!(associated.secret_code().is_some());
    setup
        .client
        .verify_software_token()
        .access_token(&s.token)
        .user_code("123456")
        .send()
        .await
        .expect("verify");
    setup
        .client
        .set_user_mfa_preference()
        .access_token(&s.token)
        .software_token_mfa_settings(
            SoftwareTokenMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(true)
                .build(),
        )
        .send()
        .await
        .expect("prefer TOTP");

    let sign_in = |body: Value| s.request("POST", "/auth/user/emailpass", Some(body), &[]);
    let without =
        sign_in(json!({"email": integration_tests::ADMIN_EMAIL, "password": ADMIN_PASSWORD})).await;
    assert_eq!(without.status, 401, "{}", without.body);
    assert!(
        without.body["message"]
            .as_str()
            .unwrap()
            .contains("mfa_code"),
        "{}",
        without.body
    );
    let with = sign_in(json!({
        "email": integration_tests::ADMIN_EMAIL,
        "password": ADMIN_PASSWORD,
        "mfa_code": "123456",
    }))
    .await;
    assert_eq!(with.status, 200, "{}", with.body);
    let token = with.body["token"].as_str().expect("token");
    assert_eq!(claims(token)["token_use"], json!("access"));
}

/// Signing out everywhere also ends the refresh tokens Cognito issued, which a client may hold
/// and use without this API: the sign-out mark alone would let their new tokens through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signing_out_everywhere_ends_cognito_refresh_tokens() {
    use aws_sdk_cognitoidentityprovider::types::AuthFlowType;
    let Some((s, setup)) = start(Backend::Embedded).await else {
        return;
    };
    // A client that signed in with Cognito directly, and keeps its refresh token.
    let held = setup
        .client
        .initiate_auth()
        .client_id(&setup.staff_client)
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", integration_tests::ADMIN_EMAIL)
        .auth_parameters("PASSWORD", ADMIN_PASSWORD)
        .send()
        .await
        .expect("sign-in on moto");
    let refresh_token = held
        .authentication_result()
        .and_then(|r| r.refresh_token())
        .expect("refresh token")
        .to_owned();
    let refresh = || {
        setup
            .client
            .initiate_auth()
            .client_id(&setup.staff_client)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", &refresh_token)
            .send()
    };
    assert!(
        refresh().await.is_ok(),
        "the held refresh token works first"
    );

    let bearer = format!("Bearer {}", s.token);
    let out = s
        .request(
            "DELETE",
            "/auth/session?everywhere=true",
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(
        refresh().await.is_err(),
        "a refresh token Cognito issued still mints tokens"
    );
}
