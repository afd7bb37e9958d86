//! Helpers shared by the integration tests: backends (embedded file, DynamoDB on moto), an
//! in-process server on a free port, and a small HTTP client.

use std::path::PathBuf;
use std::sync::Arc;

use functions::config::{AuthConfig, Config, StoreConfig};
use serde_json::Value;
use shared::store::KvStore;
use shared::store::dynamo::DynamoStore;
use shared::store::embedded::EmbeddedStore;

pub const ADMIN_EMAIL: &str = "admin@test.com";
pub const ADMIN_PASSWORD: &str = "supersecret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    DynamoDb,
}

/// moto's endpoint, from `AWS_ENDPOINT_URL`. Without it the DynamoDB variants are skipped
/// with a message — except in CI (`CI=true`), where a missing moto fails the test.
pub fn moto_endpoint() -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(url) => Some(url),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but AWS_ENDPOINT_URL is not set: moto server is required for DynamoDB tests"
            )
        }
        None => {
            eprintln!(
                "SKIPPED: AWS_ENDPOINT_URL not set, DynamoDB variant not run (run tests/run.sh)"
            );
            None
        }
    }
}

pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

pub fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

pub async fn dynamo_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&local_aws(endpoint).load().await)
}

/// A client that tries each request once: for stand-in endpoints that fail on purpose, where
/// the SDK's own retries would only slow the test down.
pub async fn dynamo_client_trying_once(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = local_aws(endpoint)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

fn local_aws(endpoint: &str) -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
}

/// A fresh, empty store of the given kind; `None` when the backend is unavailable (see
/// [`moto_endpoint`]).
pub async fn fresh_store(backend: Backend) -> Option<Arc<dyn KvStore>> {
    match backend {
        Backend::Embedded => {
            let path = temp_dir("store").join("store.redb");
            Some(Arc::new(
                EmbeddedStore::open(&path).expect("open embedded store"),
            ))
        }
        Backend::DynamoDb => {
            let endpoint = moto_endpoint()?;
            let store = DynamoStore::new(dynamo_client(&endpoint).await, unique_name("test"));
            store.ensure_table().await.expect("create table on moto");
            Some(Arc::new(store))
        }
    }
}

/// The API served in-process on a free loopback port.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
    pub store: Arc<dyn KvStore>,
    /// The server's `DATA_DIR` (signing key, `events.ndjson`).
    pub data_dir: PathBuf,
}

/// A response as the tests look at it.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

pub fn test_config(data_dir: PathBuf) -> Config {
    let files = data_dir.join("files");
    Config {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir,
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        store: StoreConfig::Embedded,
        auth: AuthConfig::Local {
            issuer: "customer-module-test".into(),
        },
        token_ttl_seconds: 3600,
        json_logs: false,
        store_cache_bytes: 16 * 1024 * 1024,
        secure_cookies: false,
        cookie_same_site: functions::config::SameSite::Lax,
        allowed_origins: Default::default(),
        files: Some(functions::config::FilesConfig::Local(files)),
        dev_event_log: true,
        password_reset_url: "http://127.0.0.1/app/reset-password".into(),
        sign_in: Default::default(),
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> Option<TestServer> {
        TestServer::start_with(backend, |_| {}).await
    }

    /// Like [`TestServer::start`], with the configuration adjusted first (another sign-in
    /// provider, say).
    pub async fn start_with(
        backend: Backend,
        configure: impl FnOnce(&mut Config),
    ) -> Option<TestServer> {
        let store = fresh_store(backend).await?;
        Some(TestServer::start_on(store, configure).await)
    }

    /// A server over a store that already holds data.
    pub async fn start_on(
        store: Arc<dyn KvStore>,
        configure: impl FnOnce(&mut Config),
    ) -> TestServer {
        if std::env::var_os("RUST_LOG").is_some() {
            functions::app::init_tracing(false);
        }
        let data_dir = temp_dir("server");
        let mut config = test_config(data_dir.clone());
        configure(&mut config);
        let admin = (
            config.admin_email.clone().unwrap_or_default(),
            config.admin_password.clone().unwrap_or_default(),
        );
        let (ready, addr) = tokio::sync::oneshot::channel();
        let served = store.clone();
        tokio::spawn(async move {
            let result = functions::server::serve(config, served, move |addr| {
                let _ = ready.send(addr);
            })
            .await;
            if let Err(e) = result {
                eprintln!("test server stopped: {e}");
            }
        });
        let addr = addr.await.expect("server did not start");
        let mut server = TestServer {
            base: format!("http://{addr}"),
            client: shared::ports::http_client(),
            token: String::new(),
            store,
            data_dir,
        };
        let (status, body) = server
            .call(
                "POST",
                "/auth/user/emailpass",
                Some(serde_json::json!({"email": admin.0, "password": admin.1})),
                false,
            )
            .await;
        assert_eq!(status, 200, "admin login failed: {body}");
        server.token = body["token"].as_str().expect("token").to_owned();
        server
    }

    /// Sends a request (as the admin when `authed`) and returns status and JSON body
    /// (`Value::Null` for an empty or non-JSON body).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        authed: bool,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if authed {
            request = request.bearer_auth(&self.token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends a request with exactly the given headers (no admin token unless passed).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }

    /// The events the server emitted so far (`DATA_DIR/events.ndjson`).
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.data_dir.join("events.ndjson"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Creates a publishable API key and returns its token.
    pub async fn publishable_key(&self) -> String {
        let (status, body) = self
            .post(
                "/admin/api-keys",
                serde_json::json!({"title": "Webshop", "type": "publishable"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["api_key"]["token"].as_str().expect("token").to_owned()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, true).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body), true).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None, true).await
    }

    /// Creates a customer and returns it, failing the test on any error.
    pub async fn create_customer(&self, body: Value) -> Value {
        let (status, response) = self.post("/admin/customers", body).await;
        assert_eq!(status, 200, "create failed: {response}");
        response["customer"].clone()
    }
}

/// Runs a test body once per backend: `both_backends!(name)` expects `async fn name(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn embedded() {
                    super::$name(integration_tests::Backend::Embedded).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn dynamodb() {
                    if integration_tests::moto_endpoint().is_some() {
                        super::$name(integration_tests::Backend::DynamoDb).await;
                    }
                }
            }
        )*
    };
}

impl TestServer {
    /// Sends a request over a raw socket and keeps reading the answer even when the server
    /// stops reading the body early (as it does for an oversized body). Returns status and body.
    pub async fn raw_post(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            self.token,
            body.len()
        );
        let send = tokio::spawn(async move {
            let _ = writer.write_all(head.as_bytes()).await;
            let _ = writer.write_all(&body).await;
        });
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer).await;
        send.abort();
        let text = String::from_utf8_lossy(&answer);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let json = text
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b.trim()).ok())
            .unwrap_or(Value::Null);
        (status, json)
    }
}

/// A staff user record with `roles`, as `POST /admin/users` or the first-user set-up leaves
/// it, for tests whose tokens come from elsewhere (an authorizer, a key the test holds).
pub async fn seed_staff_user(store: &Arc<dyn KvStore>, user_id: &str, roles: &[&str]) {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    let ops = shared::auth::staff::staff_user_ops(
        &format!("authid-{user_id}"),
        user_id,
        &format!("{user_id}@staff.test"),
        &roles,
        "2026-01-01T00:00:00.000Z",
    );
    store.transact(ops).await.expect("seed staff user");
}

/// The claims of a JWT, read without verification (to look at what the server issued).
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Two user pools on moto (customers, staff) with password-auth app clients, as the template
/// defines them, and the configuration that points the API at them.
pub struct CognitoSetup {
    pub client: aws_sdk_cognitoidentityprovider::Client,
    pub config: functions::config::CognitoConfig,
    pub customer_pool: String,
    pub customer_client: String,
    pub staff_pool: String,
    pub staff_client: String,
}

pub async fn cognito_client(endpoint: &str) -> aws_sdk_cognitoidentityprovider::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    aws_sdk_cognitoidentityprovider::Client::new(&config)
}

/// Creates a pool and an app client; returns their ids.
pub async fn cognito_pool(
    client: &aws_sdk_cognitoidentityprovider::Client,
    name: &str,
) -> (String, String) {
    use aws_sdk_cognitoidentityprovider::types::{
        ExplicitAuthFlowsType, UsernameAttributeType, VerifiedAttributeType,
    };
    let pool = client
        .create_user_pool()
        .pool_name(unique_name(name))
        .username_attributes(UsernameAttributeType::Email)
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .send()
        .await
        .expect("create user pool on moto");
    let pool_id = pool
        .user_pool()
        .and_then(|p| p.id())
        .expect("pool id")
        .to_owned();
    let app = client
        .create_user_pool_client()
        .user_pool_id(&pool_id)
        .client_name("web")
        .generate_secret(false)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .send()
        .await
        .expect("create app client on moto");
    let client_id = app
        .user_pool_client()
        .and_then(|c| c.client_id())
        .expect("client id")
        .to_owned();
    (pool_id, client_id)
}

pub async fn cognito_setup(endpoint: &str) -> CognitoSetup {
    use shared::auth::cognito::CognitoPool;
    let client = cognito_client(endpoint).await;
    let (customer_pool, customer_client) = cognito_pool(&client, "customers").await;
    let (staff_pool, staff_client) = cognito_pool(&client, "staff").await;
    let pool = |actor: &str, pool_id: &str, client_id: &str| CognitoPool {
        actor_type: actor.into(),
        pool_id: pool_id.into(),
        client_id: client_id.into(),
        domain: None,
        redirect_uri: None,
        federated: Vec::new(),
    };
    CognitoSetup {
        config: functions::config::CognitoConfig {
            region: "us-east-1".into(),
            jwks_base_url: endpoint.into(),
            pools: vec![
                pool("customer", &customer_pool, &customer_client),
                pool("user", &staff_pool, &staff_client),
            ],
            auto_confirm: true,
        },
        client,
        customer_pool,
        customer_client,
        staff_pool,
        staff_client,
    }
}

pub const CUSTOMER_PASSWORD: &str = "correct horse battery";

/// A storefront client: a publishable key and, once signed in, a customer token.
pub struct Shop<'a> {
    pub s: &'a TestServer,
    pub key: String,
}

impl<'a> Shop<'a> {
    pub async fn new(s: &'a TestServer) -> Shop<'a> {
        Shop {
            key: s.publishable_key().await,
            s,
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>, token: &str) -> Reply {
        let bearer = format!("Bearer {token}");
        let mut headers = vec![("x-publishable-api-key", self.key.as_str())];
        if !token.is_empty() {
            headers.push(("authorization", bearer.as_str()));
        }
        self.s.request(method, path, body, &headers).await
    }

    /// Registers `email` and creates its customer; returns a token that carries the customer.
    pub async fn sign_up(&self, email: &str, first_name: &str) -> (String, String) {
        let registered = self
            .s
            .request(
                "POST",
                "/auth/customer/emailpass/register",
                Some(serde_json::json!({"email": email, "password": CUSTOMER_PASSWORD})),
                &[],
            )
            .await;
        assert_eq!(registered.status, 200, "{}", registered.body);
        let token = registered.body["token"].as_str().unwrap().to_owned();
        let created = self
            .call(
                "POST",
                "/store/customers",
                Some(serde_json::json!({"email": email, "first_name": first_name, "last_name": "Doe"})),
                &token,
            )
            .await;
        assert_eq!(created.status, 200, "{}", created.body);
        let id = created.body["customer"]["id"].as_str().unwrap().to_owned();
        let refreshed = self
            .s
            .request(
                "POST",
                "/auth/token/refresh",
                None,
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.body);
        let token = refreshed.body["token"].as_str().unwrap().to_owned();
        assert_eq!(claims(&token)["actor_id"], serde_json::json!(id));
        (token, id)
    }
}

impl TestServer {
    /// Creates a staff user with `roles` through the API and returns its token.
    pub async fn staff_token(&self, email: &str, roles: &[&str]) -> String {
        let (status, body) = self
            .post(
                "/admin/users",
                serde_json::json!({"email": email, "password": ADMIN_PASSWORD, "roles": roles}),
            )
            .await;
        assert_eq!(status, 200, "create staff user: {body}");
        let (status, body) = self
            .call(
                "POST",
                "/auth/user/emailpass",
                Some(serde_json::json!({"email": email, "password": ADMIN_PASSWORD})),
                false,
            )
            .await;
        assert_eq!(status, 200, "staff sign-in: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Sends a request with a bearer token (any actor).
    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let bearer = format!("Bearer {token}");
        self.request(method, path, body, &[("authorization", bearer.as_str())])
            .await
    }
}

/// A stand-in for Cognito's hosted UI token endpoint (moto has no hosted UI): it accepts one
/// code, for the expected client and redirect, and answers with tokens moto issued.
pub async fn fake_hosted_ui(client_id: String, access_token: String) -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/oauth2/token",
        post(
            move |axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| {
                let (client_id, access_token) = (client_id.clone(), access_token.clone());
                async move {
                    let ok = form.get("grant_type").map(String::as_str)
                        == Some("authorization_code")
                        && form.get("code").map(String::as_str) == Some("good-code")
                        && form.get("client_id") == Some(&client_id)
                        && form.get("redirect_uri").map(String::as_str)
                            == Some("https://shop.example/callback");
                    if ok {
                        (
                            axum::http::StatusCode::OK,
                            axum::Json(
                                serde_json::json!({"access_token": access_token, "token_type": "Bearer"}),
                            ),
                        )
                    } else {
                        (
                            axum::http::StatusCode::BAD_REQUEST,
                            axum::Json(serde_json::json!({"error": "invalid_grant"})),
                        )
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A server whose customer pool (on moto) offers Google sign-in through [`fake_hosted_ui`],
/// which trades the code `good-code` for tokens of `gina@gmail.com` (password
/// `user_password`), redirecting to `https://shop.example/callback`.
pub struct FederatedServer {
    pub s: TestServer,
    pub setup: CognitoSetup,
    /// The stand-in hosted UI's base URL.
    pub domain: String,
}

/// A [`FederatedServer`]; `None` without moto.
pub async fn federated_server(
    backend: Backend,
    admin_password: &str,
    user_password: &str,
) -> Option<FederatedServer> {
    let endpoint = moto_endpoint()?;
    let mut setup = cognito_setup(&endpoint).await;
    // The federated user as Cognito would have created it on first Google sign-in.
    setup
        .client
        .admin_create_user()
        .user_pool_id(&setup.customer_pool)
        .username("gina@gmail.com")
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    setup
        .client
        .admin_set_user_password()
        .user_pool_id(&setup.customer_pool)
        .username("gina@gmail.com")
        .password(user_password)
        .permanent(true)
        .send()
        .await
        .unwrap();
    let google_token = setup
        .client
        .initiate_auth()
        .client_id(&setup.customer_client)
        .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::UserPasswordAuth)
        .auth_parameters("USERNAME", "gina@gmail.com")
        .auth_parameters("PASSWORD", user_password)
        .send()
        .await
        .unwrap()
        .authentication_result()
        .unwrap()
        .access_token()
        .unwrap()
        .to_owned();
    let domain = fake_hosted_ui(setup.customer_client.clone(), google_token.clone()).await;
    for pool in &mut setup.config.pools {
        if pool.actor_type == "customer" {
            pool.domain = Some(domain.clone());
            pool.redirect_uri = Some("https://shop.example/callback".into());
            pool.federated = vec![("google".into(), "Google".into())];
        }
    }
    let cognito = setup.config.clone();
    let admin_password = admin_password.to_owned();
    let s = TestServer::start_with(backend, move |config| {
        config.auth = functions::config::AuthConfig::Cognito(cognito);
        config.admin_password = Some(admin_password);
    })
    .await?;
    Some(FederatedServer { s, setup, domain })
}
