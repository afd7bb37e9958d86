//! The DynamoDB adapter's retries at the seam moto never exercises: `UnprocessedItems` from
//! `BatchWriteItem` and `UnprocessedKeys` from `BatchGetItem`, answered by a stand-in endpoint.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use serde_json::{Value, json};
use shared::store::dynamo::DynamoStore;
use shared::store::{BatchOp, Key, KvStore};

#[derive(Default)]
struct Seen {
    calls: Vec<(String, Value)>,
}

/// Answers the first batch call of each kind with its last request left unprocessed.
async fn fake_dynamodb(seen: Arc<Mutex<Seen>>) -> String {
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .trim_start_matches("DynamoDB_20120810.")
                    .to_owned();
                let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let mut seen = seen.lock().unwrap();
                let first = !seen.calls.iter().any(|(t, _)| *t == target);
                seen.calls.push((target.clone(), request.clone()));
                let answer = match target.as_str() {
                    "BatchWriteItem" => {
                        let items = request["RequestItems"]["t"].as_array().cloned().unwrap_or_default();
                        let rest = if first { vec![items.last().cloned().unwrap_or(Value::Null)] } else { vec![] };
                        json!({"UnprocessedItems": if rest.is_empty() { json!({}) } else { json!({"t": rest}) }})
                    }
                    "BatchGetItem" => {
                        let keys = request["RequestItems"]["t"]["Keys"].as_array().cloned().unwrap_or_default();
                        let (served, rest) = if first { keys.split_at(keys.len() - 1) } else { (&keys[..], &[][..]) };
                        let items: Vec<Value> = served
                            .iter()
                            .map(|k| json!({"pk": k["pk"], "sk": k["sk"], "n": {"N": "1"}}))
                            .collect();
                        json!({
                            "Responses": {"t": items},
                            "UnprocessedKeys": if rest.is_empty() { json!({}) } else { json!({"t": {"Keys": rest}}) }
                        })
                    }
                    _ => json!({}),
                };
                (
                    [("content-type", "application/x-amz-json-1.0")],
                    answer.to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn unprocessed_items_and_keys_are_retried_until_done() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let endpoint = fake_dynamodb(seen.clone()).await;
    let store = DynamoStore::new(integration_tests::dynamo_client(&endpoint).await, "t");
    let puts: Vec<BatchOp> = (0..3)
        .map(|i| {
            let mut item = shared::store::Item::new();
            item.insert("pk".into(), json!(format!("P#{i}")));
            item.insert("sk".into(), json!("S"));
            BatchOp::Put(item)
        })
        .collect();
    store
        .batch_write(puts)
        .await
        .expect("retried to completion");
    let keys: Vec<Key> = (0..3).map(|i| Key::new(format!("P#{i}"), "S")).collect();
    let items = store.batch_get(&keys).await.expect("retried to completion");
    assert_eq!(
        items.len(),
        3,
        "the unprocessed key was fetched on the retry"
    );

    let calls = seen.lock().unwrap().calls.clone();
    let writes: Vec<&Value> = calls
        .iter()
        .filter(|(t, _)| t == "BatchWriteItem")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(writes.len(), 2);
    assert_eq!(writes[0]["RequestItems"]["t"].as_array().unwrap().len(), 3);
    let retried = writes[1]["RequestItems"]["t"].as_array().unwrap();
    assert_eq!(retried.len(), 1, "only the unprocessed item is sent again");
    assert_eq!(retried[0]["PutRequest"]["Item"]["pk"], json!({"S": "P#2"}));
    let gets: Vec<&Value> = calls
        .iter()
        .filter(|(t, _)| t == "BatchGetItem")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(gets.len(), 2);
    assert_eq!(
        gets[1]["RequestItems"]["t"]["Keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
