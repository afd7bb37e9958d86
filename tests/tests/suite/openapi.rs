//! The OpenAPI document served at /openapi.json matches the routes that exist.

use integration_tests::{Backend, TestServer};
use serde_json::Value;

#[tokio::test]
async fn openapi_lists_exactly_the_served_routes() {
    let s = TestServer::start(Backend::Embedded)
        .await
        .expect("embedded");
    let (status, doc) = s.call("GET", "/openapi.json", None, false).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], Value::from("3.0.3"));
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut table: Vec<(String, String)> = functions::http::ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
        .collect();
    documented.sort();
    table.sort();
    assert_eq!(documented, table);
    // Every documented operation is really routed: never the 404 of an unknown route.
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "cus_DOESNOTEXIST");
        let (status, body) = s
            .call(method, &concrete, Some(serde_json::json!({})), false)
            .await;
        let unknown_route = status == 404
            && body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Cannot "));
        assert!(
            !unknown_route,
            "{method} {path} is documented but not served"
        );
    }
    // The body schemas come from the validators' field tables.
    let create = &doc["paths"]["/admin/customers"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    assert_eq!(create["additionalProperties"], Value::Bool(false));
    assert_eq!(
        create["properties"]["email"]["format"],
        Value::from("email")
    );
}
