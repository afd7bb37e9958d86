//! The DynamoDB adapter's retries at the seam moto never exercises: `UnprocessedItems` from
//! `BatchWriteItem` and `UnprocessedKeys` from `BatchGetItem`, answered by a stand-in endpoint.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use shared::store::dynamo::DynamoStore;
use shared::store::{BatchOp, Key, KvStore, StoreError, WriteOp};

#[derive(Default)]
struct Seen {
    calls: Vec<(String, Value)>,
}

/// What the stand-in answers: status and body for (operation, request, first call of it).
type Answer = fn(&str, &Value, bool) -> (StatusCode, Value);

/// A stand-in DynamoDB endpoint that records every call and answers with `answer`.
async fn stand_in(seen: Arc<Mutex<Seen>>, answer: Answer) -> String {
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
                let (status, reply) = answer(&target, &request, first);
                seen.calls.push((target, request));
                (
                    status,
                    [("content-type", "application/x-amz-json-1.0")],
                    reply.to_string(),
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

/// Answers the first batch call of each kind with its last request left unprocessed.
fn leaving_the_last_unprocessed(target: &str, request: &Value, first: bool) -> (StatusCode, Value) {
    let answer = match target {
        "BatchWriteItem" => {
            let items = request["RequestItems"]["t"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let rest = if first {
                vec![items.last().cloned().unwrap_or(Value::Null)]
            } else {
                vec![]
            };
            json!({"UnprocessedItems": if rest.is_empty() { json!({}) } else { json!({"t": rest}) }})
        }
        "BatchGetItem" => {
            let keys = request["RequestItems"]["t"]["Keys"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let (served, rest) = if first {
                keys.split_at(keys.len() - 1)
            } else {
                (&keys[..], &[][..])
            };
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
    (StatusCode::OK, answer)
}

#[tokio::test]
async fn unprocessed_items_and_keys_are_retried_until_done() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let endpoint = stand_in(seen.clone(), leaving_the_last_unprocessed).await;
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

/// Fails every `TransactWriteItems` and the first call of anything else with DynamoDB's 500.
fn failing(target: &str, _: &Value, first: bool) -> (StatusCode, Value) {
    if target == "TransactWriteItems" || first {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "stand-in failure"}),
        )
    } else {
        (StatusCode::OK, json!({"UnprocessedItems": {}}))
    }
}

fn item(pk: &str) -> shared::store::Item {
    let mut item = shared::store::Item::new();
    item.insert("pk".into(), json!(pk));
    item.insert("sk".into(), json!("S"));
    item
}

#[tokio::test]
async fn a_store_that_fails_or_cannot_be_reached_is_unavailable() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let endpoint = stand_in(seen.clone(), failing).await;
    let store = DynamoStore::new(
        integration_tests::dynamo_client_trying_once(&endpoint).await,
        "t",
    );
    let put = |pk: &str| WriteOp::Put {
        item: item(pk),
        condition: None,
    };
    let refused = store.transact(vec![put("A"), put("B")]).await;
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("InternalServerError")),
        "{refused:?}"
    );
    assert_eq!(
        shared::DomainError::from(refused.unwrap_err()).to_string(),
        "The store did not answer (InternalServerError), please retry shortly."
    );
    store
        .batch_write(vec![BatchOp::Put(item("C"))])
        .await
        .expect("the failed chunk is sent again");
    let calls = seen.lock().unwrap().calls.clone();
    let token = calls
        .iter()
        .find(|(t, _)| t == "TransactWriteItems")
        .and_then(|(_, body)| body["ClientRequestToken"].as_str().map(str::to_owned))
        .unwrap_or_default();
    assert!(!token.is_empty(), "a transaction carries a request token");
    let writes = calls.iter().filter(|(t, _)| t == "BatchWriteItem").count();
    assert_eq!(writes, 2, "the chunk went again after the 500");

    // Nothing listens there any more: the connection is refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let nowhere = DynamoStore::new(
        integration_tests::dynamo_client_trying_once(&format!("http://{address}")).await,
        "t",
    );
    let unreachable = nowhere.get(&Key::new("A", "S")).await;
    assert!(
        matches!(unreachable, Err(StoreError::Unavailable(_))),
        "{unreachable:?}"
    );
}
