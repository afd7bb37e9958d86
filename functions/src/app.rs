//! Builds the application state from the configuration: clients once, then the ports.

use std::sync::Arc;

use shared::addresses::AddressService;
use shared::auth::local::LocalIdentityProvider;
use shared::auth::tokens::{RemoteKeys, SigningKey, TokenIssuer, TokenVerifier};
use shared::customers::{CustomerRepository, CustomerService};
use shared::groups::GroupService;
use shared::ports::{Clock, IdGenerator, SystemClock, UlidGenerator};
use shared::store::KvStore;
use shared::store::dynamo::DynamoStore;
use shared::store::embedded::EmbeddedStore;

use crate::config::{AuthConfig, Config, StoreConfig};
use crate::http::AppState;

#[derive(Debug, thiserror::Error)]
#[error("start-up failed: {0}")]
pub struct StartupError(pub String);

/// AWS settings from the environment, with timeouts: without them a stalled connection
/// would hold a request until the Lambda itself times out.
pub async fn aws_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .operation_attempt_timeout(std::time::Duration::from_secs(10))
        .operation_timeout(std::time::Duration::from_secs(30))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

pub async fn open_store(config: &Config) -> Result<Arc<dyn KvStore>, StartupError> {
    match &config.store {
        StoreConfig::Embedded => {
            let path = config.data_dir.join("store.redb");
            let store = EmbeddedStore::open_with_cache(&path, config.store_cache_bytes)
                .map_err(|e| StartupError(e.to_string()))?;
            tracing::info!(path = %path.display(), "embedded store open");
            Ok(Arc::new(store))
        }
        StoreConfig::DynamoDb { .. } => open_dynamo(config).await,
    }
}

/// The DynamoDB store only: what a Lambda opens, so no embedded-store code is linked into it.
pub async fn open_dynamo(config: &Config) -> Result<Arc<dyn KvStore>, StartupError> {
    let StoreConfig::DynamoDb {
        table,
        create_table,
    } = &config.store
    else {
        return Err(StartupError("this entry point needs STORE=dynamodb".into()));
    };
    let client = aws_sdk_dynamodb::Client::new(&aws_config().await);
    let store = DynamoStore::new(client, table.clone());
    if *create_table {
        store
            .ensure_table()
            .await
            .map_err(|e| StartupError(format!("cannot create table {table}: {e}")))?;
    }
    tracing::info!(%table, "DynamoDB store");
    Ok(Arc::new(store))
}

/// The domain services every entry point needs, on one store.
struct Services {
    customers: CustomerService,
    addresses: AddressService,
    groups: GroupService,
}

fn services(store: Arc<dyn KvStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Services {
    Services {
        customers: CustomerService::new(
            CustomerRepository::new(store.clone()),
            clock.clone(),
            ids.clone(),
        ),
        addresses: AddressService::new(store.clone(), clock.clone(), ids.clone()),
        groups: GroupService::new(store, clock, ids),
    }
}

fn external_verifier(
    issuer: &str,
    jwks_url: &str,
    audience: &Option<String>,
) -> Arc<TokenVerifier> {
    let keys = Arc::new(RemoteKeys::new(jwks_url.to_owned()));
    Arc::new(TokenVerifier::new(
        keys,
        issuer.to_owned(),
        audience.clone(),
    ))
}

/// The local server's (and the tests') state: any store, and local sign-in unless an external
/// issuer is configured.
pub async fn build_state(
    config: &Config,
    store: Arc<dyn KvStore>,
) -> Result<AppState, StartupError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ids: Arc<dyn IdGenerator> = Arc::new(UlidGenerator::default());
    let domain = services(store.clone(), clock.clone(), ids.clone());
    let (identity, issuer, verifier) = match &config.auth {
        AuthConfig::Local { issuer } => {
            let key = SigningKey::load_or_create(&config.data_dir.join("jwt-signing-key.json"))
                .map_err(|e| StartupError(e.to_string()))?;
            let issuer = Arc::new(TokenIssuer::new(
                key,
                issuer.clone(),
                config.token_ttl_seconds,
            ));
            let verifier = Arc::new(issuer.verifier());
            let identity = LocalIdentityProvider::new(store.clone(), issuer.clone(), clock, ids);
            (Some(identity), Some(issuer), Some(verifier))
        }
        AuthConfig::External {
            issuer,
            jwks_url,
            audience,
        } => (
            None,
            None,
            Some(external_verifier(issuer, jwks_url, audience)),
        ),
        AuthConfig::AuthorizerOnly => (None, None, None),
    };
    if let (Some(identity), Some(email), Some(password)) =
        (&identity, &config.admin_email, &config.admin_password)
    {
        identity
            .ensure_first_staff_user(email, password)
            .await
            .map_err(|e| StartupError(format!("cannot create the first staff user: {e}")))?;
    }
    Ok(AppState {
        customers: domain.customers,
        addresses: domain.addresses,
        groups: domain.groups,
        identity,
        issuer,
        verifier,
    })
}

/// A Lambda's state: DynamoDB, and tokens checked by the API Gateway authorizer or an external
/// issuer's JWKS — never local sign-in, whose code then stays out of the binary.
pub async fn build_lambda_state(config: &Config) -> Result<AppState, StartupError> {
    let store = open_dynamo(config).await?;
    let verifier = match &config.auth {
        AuthConfig::External {
            issuer,
            jwks_url,
            audience,
        } => Some(external_verifier(issuer, jwks_url, audience)),
        AuthConfig::AuthorizerOnly => None,
        AuthConfig::Local { .. } => {
            return Err(StartupError(
                "local sign-in is not available in Lambda".into(),
            ));
        }
    };
    let domain = services(
        store,
        Arc::new(SystemClock),
        Arc::new(UlidGenerator::default()),
    );
    Ok(AppState {
        customers: domain.customers,
        addresses: domain.addresses,
        groups: domain.groups,
        identity: None,
        issuer: None,
        verifier,
    })
}

pub fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().flatten_event(true).without_time().try_init()
    } else {
        builder.try_init()
    };
}
