//! A remote key set is fetched sparingly: tokens with made-up `kid`s cannot turn every request
//! into a fetch of the issuer's JWKS.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use shared::auth::tokens::{KeySource, RemoteKeys, SigningKey};

/// Serves one key set on loopback and counts the fetches; returns its URL, the key's `kid`
/// and the counter.
async fn jwks_server() -> (String, String, Arc<AtomicUsize>) {
    let set = SigningKey::ephemeral().expect("key").jwks();
    let kid = set.keys[0].common.key_id.clone().expect("kid");
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        get(move || {
            let set = set.clone();
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                // Slow enough that concurrent callers overlap.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Json(set)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/jwks.json"), kid, fetches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_kids_share_one_fetch_and_wait_for_the_cool_down() {
    let (url, kid, fetches) = jwks_server().await;
    let keys = Arc::new(RemoteKeys::with_timing(
        url,
        Duration::from_millis(400),
        Duration::from_secs(60),
    ));

    // A flood of made-up kids at once: one fetch between them.
    let flood: Vec<_> = (0..50)
        .map(|i| {
            let keys = keys.clone();
            tokio::spawn(async move { keys.key(&format!("forged-{i}")).await })
        })
        .collect();
    for answer in flood {
        assert!(answer.await.unwrap().is_none());
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "one fetch for the flood");

    // The real key came with that fetch: no new one.
    assert!(keys.key(&kid).await.is_some());
    // Within the cool-down, new unknown kids fetch nothing.
    for i in 0..20 {
        assert!(keys.key(&format!("later-{i}")).await.is_none());
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "no fetch within the cool-down"
    );

    // After it, a new kid fetches once more; a kid a fetched set lacked stays unknown without
    // fetching, beyond the cool-down too.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(keys.key("rotated-in").await.is_none());
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "one fetch after the cool-down"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(keys.key("rotated-in").await.is_none());
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "a known miss is remembered"
    );
    assert!(keys.key("another").await.is_none());
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
}
