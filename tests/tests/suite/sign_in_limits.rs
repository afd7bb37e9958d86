//! Bounded sign-in (issue 20, "Sign-in floods exhaust memory"): password hashes wait for a
//! slot in a small pool or get 429 with `Retry-After`; failed attempts slow the address and
//! account they come from, and guesses from elsewhere never lock the real user out.

use std::net::IpAddr;
use std::time::Duration;

use integration_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestServer, both_backends};
use serde_json::json;
use shared::auth::limits::{Rate, SignInLimits};

/// A sign-in attempt from `client`: status, `Retry-After` seconds, body.
async fn attempt(
    s: &TestServer,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> (u16, Option<u64>, serde_json::Value) {
    let response = client
        .post(format!("{}/auth/user/emailpass", s.base))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = response.json().await.unwrap_or_default();
    (status, retry_after, body)
}

/// A client whose requests come from another loopback address (Linux answers all of 127/8).
fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(address))
        .build()
        .expect("client")
}

fn generous_limits() -> SignInLimits {
    let plenty = Rate {
        burst: 10_000,
        refill_every: Duration::from_millis(1),
    };
    SignInLimits {
        per_address: plenty,
        per_account: plenty,
        ..SignInLimits::default()
    }
}

/// More concurrent sign-ins than hashing slots: those that find none within the wait get 429
/// with `Retry-After` instead of each holding ~19 MiB on a blocking thread of their own.
async fn hashing_beyond_the_pool_is_refused(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| {
        c.sign_in.hash_concurrency = 1;
        c.sign_in.hash_wait = Duration::from_millis(1);
        c.sign_in.limits = generous_limits();
    })
    .await
    else {
        return;
    };
    let flood = (0..16).map(|n| {
        let s = &s;
        async move {
            attempt(
                s,
                &s.client,
                &format!("nobody{n}@example.com"),
                "wrong password",
            )
            .await
        }
    });
    let answers = futures::future::join_all(flood).await;
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, ..)| *status == 429)
        .collect();
    assert!(!refused.is_empty(), "some wait for a slot in vain");
    for (_, retry_after, body) in &refused {
        assert!(
            retry_after.is_some_and(|s| s >= 1),
            "Retry-After in seconds"
        );
        assert_eq!(body["type"], json!("not_allowed"), "{body}");
        assert!(body["message"].is_string(), "{body}");
    }
    assert!(
        answers
            .iter()
            .all(|(status, ..)| *status == 429 || *status == 401),
        "unknown emails are 401 when hashed"
    );
    // The pool is free again afterwards.
    let (status, ..) = attempt(&s, &s.client, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(status, 200);
}

/// A flood of guesses from one address, over many emails, is cut short by the per-address
/// limit before anything is hashed.
async fn a_flood_from_one_address_is_cut_short(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| {
        c.sign_in.limits.per_address = Rate {
            burst: 5,
            refill_every: Duration::from_secs(60),
        };
    })
    .await
    else {
        return;
    };
    let flood = (0..20).map(|n| {
        let s = &s;
        async move {
            attempt(
                s,
                &s.client,
                &format!("guess{n}@example.com"),
                "wrong password",
            )
            .await
        }
    });
    let answers = futures::future::join_all(flood).await;
    let refused = answers
        .iter()
        .filter(|(status, retry_after, _)| *status == 429 && retry_after.is_some())
        .count();
    assert_eq!(
        refused, 15,
        "five attempts per address, then 429 with Retry-After"
    );
    // Another address is not affected.
    let (status, ..) = attempt(
        &s,
        &client_from([127, 0, 0, 2]),
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
    )
    .await;
    assert_eq!(status, 200);
}

/// Wrong passwords for the admin from another address slow that address down, but the admin
/// signs in at once from its own, and the other address too once its delay is over.
async fn guesses_elsewhere_do_not_lock_the_admin_out(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let attacker = client_from([127, 0, 0, 2]);
    for _ in 0..5 {
        let (status, ..) = attempt(&s, &attacker, ADMIN_EMAIL, "wrong password").await;
        assert_eq!(status, 401);
    }
    let (status, retry_after, body) = attempt(&s, &attacker, ADMIN_EMAIL, "wrong again").await;
    assert_eq!(status, 429, "{body}");
    let wait = retry_after.expect("Retry-After");
    assert!((1..=2).contains(&wait), "a short delay, not a lock: {wait}");

    let (status, ..) = attempt(&s, &s.client, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "the admin is not locked out");

    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (status, ..) = attempt(&s, &attacker, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(
        status, 200,
        "after the delay, the right password works everywhere"
    );
}

both_backends!(
    hashing_beyond_the_pool_is_refused,
    a_flood_from_one_address_is_cut_short,
    guesses_elsewhere_do_not_lock_the_admin_out,
);
