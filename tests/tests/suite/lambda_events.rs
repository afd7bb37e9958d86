//! The per-route Lambdas, fed real API Gateway HTTP API (v2) events with JWT-authorizer claims,
//! through the router each Lambda binary mounts (only its own route).

use axum::body::Body;
use functions::config::AuthConfig;
use functions::http::{Route, router};
use integration_tests::{Backend, both_backends, fresh_store, temp_dir, test_config};
use serde_json::{Value, json};
use tower::ServiceExt;

fn fixture(name: &str, customer_id: &str) -> String {
    let path = format!("{}/../infra/events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {path}: {e}"))
        .replace("CUSTOMER_ID", customer_id)
}

struct Lambdas {
    state: functions::http::AppState,
}

impl Lambdas {
    async fn new(backend: Backend) -> Lambdas {
        let store = fresh_store(backend).await.expect("backend available");
        // The staff user the fixtures' claims name, as an admin.
        integration_tests::seed_staff_user(&store, "user_01M8BG77ZYM8TPMS04Z034K497", &["admin"])
            .await;
        let mut config = test_config(temp_dir("lambda"));
        // As deployed: no local sign-in, only what the API Gateway authorizer verified.
        config.auth = AuthConfig::AuthorizerOnly;
        let state = functions::app::build_state(&config, store)
            .await
            .expect("state");
        Lambdas { state }
    }

    /// Invokes the Lambda for `route` with the event in fixture `name`.
    async fn invoke(&self, route: Route, name: &str, customer_id: &str) -> (u16, Value) {
        self.invoke_event(route, &fixture(name, customer_id)).await
    }

    /// Invokes the Lambda for `route` with this event JSON.
    async fn invoke_event(&self, route: Route, event: &str) -> (u16, Value) {
        let request = lambda_http::request::from_str(event).expect("valid API Gateway v2 event");
        let (parts, body) = request.into_parts();
        let request = axum::http::Request::from_parts(parts, Body::from(body.to_vec()));
        let response = router(self.state.clone(), &[route])
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

async fn customer_lifecycle_through_lambda_events(backend: Backend) {
    let lambdas = Lambdas::new(backend).await;
    let (status, created) = lambdas
        .invoke(Route::CreateCustomer, "create-customer.json", "")
        .await;
    assert_eq!(status, 200, "{created}");
    let customer = &created["customer"];
    assert_eq!(customer["email"], json!("lambda@example.com"));
    assert_eq!(
        customer["created_by"],
        json!("user_01M8BG77ZYM8TPMS04Z034K497"),
        "actor from the authorizer claims"
    );
    let id = customer["id"].as_str().unwrap();

    let (status, listed) = lambdas
        .invoke(Route::ListCustomers, "list-customers.json", id)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed,
        json!({"customers": [{"id": id, "email": "lambda@example.com"}], "count": 1, "offset": 0, "limit": 10})
    );

    let (status, got) = lambdas
        .invoke(Route::GetCustomer, "get-customer.json", id)
        .await;
    assert_eq!((status, got["customer"]["id"].clone()), (200, json!(id)));

    let (status, updated) = lambdas
        .invoke(Route::UpdateCustomer, "update-customer.json", id)
        .await;
    assert_eq!(
        (status, updated["customer"]["last_name"].clone()),
        (200, json!("Updated"))
    );
    assert_eq!(updated["customer"]["first_name"], json!("Lam"));

    let (status, deleted) = lambdas
        .invoke(Route::DeleteCustomer, "delete-customer.json", id)
        .await;
    assert_eq!(
        (status, deleted),
        (
            200,
            json!({"id": id, "object": "customer", "deleted": true})
        )
    );
    let (status, _) = lambdas
        .invoke(Route::GetCustomer, "get-customer.json", id)
        .await;
    assert_eq!(status, 404);
}

async fn lambdas_reject_missing_or_wrong_actors(backend: Backend) {
    let lambdas = Lambdas::new(backend).await;
    for fixture in [
        "list-customers-no-authorizer.json",
        "list-customers-customer-token.json",
    ] {
        let (status, body) = lambdas.invoke(Route::ListCustomers, fixture, "").await;
        assert_eq!(
            (status, body),
            (401, json!({"message": "Unauthorized"})),
            "{fixture}"
        );
    }
    // A Lambda serves only its own route.
    let (status, _) = lambdas
        .invoke(Route::GetCustomer, "list-customers.json", "")
        .await;
    assert_eq!(status, 404);
}

both_backends!(
    customer_lifecycle_through_lambda_events,
    lambdas_reject_missing_or_wrong_actors
);

/// Every route's Lambda, fed an API Gateway v2 event built from the route table (path
/// parameters filled, staff claims from the authorizer), serves its route: an answer of the
/// route itself, never the router's "no such route".
async fn every_route_lambda_serves_its_event(backend: Backend) {
    let lambdas = Lambdas::new(backend).await;
    let template = fixture("get-customer.json", "");
    for spec in functions::http::ROUTES {
        let path = spec
            .path
            .replace("{id}", "cus_01M8BGB76BJDJAX4F6R6JDW9XA")
            .replace("{address_id}", "cuaddr_01M8BGB7XJW206SVV5SF723WKZ")
            .replace("{actor}", "customer")
            .replace("{provider}", "emailpass");
        let mut event: Value = serde_json::from_str(&template).expect("fixture");
        event["rawPath"] = json!(path);
        event["routeKey"] = json!(format!("{} {}", spec.method, spec.path));
        event["requestContext"]["http"]["method"] = json!(spec.method.as_str());
        event["requestContext"]["http"]["path"] = json!(path);
        event["requestContext"]["routeKey"] = event["routeKey"].clone();
        if spec.method != axum::http::Method::GET {
            event["body"] = json!("{}");
        }
        let request = lambda_http::request::from_str(&event.to_string()).expect("valid event");
        let (parts, body) = request.into_parts();
        let request = axum::http::Request::from_parts(parts, Body::from(body.to_vec()));
        let response = router(lambdas.state.clone(), &[spec.route])
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let unrouted = body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Cannot "));
        // Staff claims open staff routes; other routes answer for themselves (a 400 for a
        // missing publishable key, a 401 for the wrong actor), but never "no such route".
        let staff_route = spec.access == functions::http::Access::Staff;
        assert!(
            !unrouted && (!staff_route || status != 401) && status < 500,
            "{} {}: {status} {body}",
            spec.method,
            spec.path
        );
    }
}

both_backends!(every_route_lambda_serves_its_event);

/// Staff roles apply to the claims an authorizer verified: a viewer's create is a 403 that
/// writes nothing, the same event from an admin creates.
async fn staff_roles_apply_behind_the_authorizer(backend: Backend) {
    let lambdas = Lambdas::new(backend).await;
    let store = lambdas.state.customers.store();
    integration_tests::seed_staff_user(&store, "user_viewer", &["viewer"]).await;
    let as_viewer = fixture("create-customer.json", "")
        .replace("user_01M8BG77ZYM8TPMS04Z034K497", "user_viewer");
    let (status, body) = lambdas
        .invoke_event(Route::CreateCustomer, &as_viewer)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], json!("not_allowed"));
    let (status, listed) = lambdas
        .invoke(Route::ListCustomers, "list-customers.json", "")
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["count"], json!(0), "the denied create wrote nothing");
    let (status, _) = lambdas
        .invoke(Route::CreateCustomer, "create-customer.json", "")
        .await;
    assert_eq!(status, 200);
}

/// Only a key looked up in the store makes a caller a secret API key: claims that say
/// `api-key` (from any issuer the authorizer let through) are no caller at all.
async fn api_key_claims_make_no_caller(backend: Backend) {
    let lambdas = Lambdas::new(backend).await;
    let forged = fixture("create-customer.json", "")
        .replace("\"actor_type\": \"user\"", "\"actor_type\": \"api-key\"")
        .replace("user_01M8BG77ZYM8TPMS04Z034K497", "apk_forged");
    assert!(forged.contains("api-key"));
    let (status, body) = lambdas.invoke_event(Route::CreateCustomer, &forged).await;
    assert_eq!(status, 401, "{body}");
    let (_, listed) = lambdas
        .invoke(Route::ListCustomers, "list-customers.json", "")
        .await;
    assert_eq!(listed["count"], json!(0), "the forged create wrote nothing");
}

both_backends!(
    staff_roles_apply_behind_the_authorizer,
    api_key_claims_make_no_caller
);

/// A shopper's route behind the customer pool's JWT authorizer: Cognito's access-token claims
/// (no Medusa claims when no trigger added them) reach the customer through the identity link.
async fn store_lambda_maps_customer_pool_claims(backend: Backend) {
    let store = fresh_store(backend).await.expect("backend available");
    let mut config = test_config(temp_dir("lambda"));
    config.auth = AuthConfig::Cognito(functions::config::CognitoConfig {
        region: "eu-west-1".into(),
        jwks_base_url: "http://127.0.0.1:9".into(),
        pools: vec![shared::auth::cognito::CognitoPool {
            actor_type: "customer".into(),
            pool_id: "eu-west-1_Customers".into(),
            client_id: "storefrontclient".into(),
            domain: None,
            redirect_uri: None,
            federated: Vec::new(),
        }],
        auto_confirm: true,
    });
    config.admin_email = None;
    let state = functions::app::build_state(&config, store)
        .await
        .expect("state");
    let key = state
        .api_keys
        .create(
            "web",
            shared::api_keys::KeyType::Publishable,
            "user_x",
            Vec::new(),
        )
        .await
        .unwrap();
    let sub = "0c9d8e7f-aaaa-4bbb-8ccc-dddddddddddd";
    let customer = state
        .customers
        .register(
            sub,
            Some("lambda.shopper@example.com"),
            shared::customers::CustomerDraft {
                email: Some("lambda.shopper@example.com".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let lambdas = Lambdas { state };
    let invoke = |client: &'static str, key: String| {
        let event = fixture("store-me.json", "")
            .replace("PUBLISHABLE_KEY", &key)
            .replace("CLIENT_ID", client)
            .replace("SUB", sub);
        let lambdas = &lambdas;
        async move {
            let request = lambda_http::request::from_str(&event).expect("valid event");
            let (parts, body) = request.into_parts();
            let request = axum::http::Request::from_parts(parts, Body::from(body.to_vec()));
            let response = router(lambdas.state.clone(), &[Route::StoreMe])
                .oneshot(request)
                .await
                .expect("response");
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
    let (status, body) = invoke("storefrontclient", key.token.clone()).await;
    assert_eq!(
        (status, body["customer"]["id"].clone()),
        (200, json!(customer.id)),
        "{body}"
    );
    let (status, _) = invoke("anotherclient", key.token.clone()).await;
    assert_eq!(status, 401, "a token of another app client");
    let (status, _) = invoke("storefrontclient", "pk_unknown".into()).await;
    assert_eq!(status, 400);
}

both_backends!(store_lambda_maps_customer_pool_claims);
