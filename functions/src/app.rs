//! Builds the application state from the configuration: clients once, then the ports.

use std::sync::Arc;

use shared::auth::local::LocalIdentityProvider;
use shared::auth::tokens::{RemoteKeys, SigningKey, TokenIssuer, TokenVerifier};
use shared::customers::{CustomerRepository, CustomerService};
use shared::ports::{Clock, IdGenerator, SystemClock, UlidGenerator};
use shared::store::KvStore;
use shared::store::dynamo::DynamoStore;
use shared::store::embedded::EmbeddedStore;

use crate::config::{AuthConfig, Config, StoreConfig};
use crate::http::AppState;

#[derive(Debug, thiserror::Error)]
#[error("start-up failed: {0}")]
pub struct StartupError(pub String);

pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

pub async fn open_store(config: &Config) -> Result<Arc<dyn KvStore>, StartupError> {
    match &config.store {
        StoreConfig::Embedded => {
            let path = config.data_dir.join("store.redb");
            let store = EmbeddedStore::open(&path).map_err(|e| StartupError(e.to_string()))?;
            tracing::info!(path = %path.display(), "embedded store open");
            Ok(Arc::new(store))
        }
        StoreConfig::DynamoDb {
            table,
            create_table,
        } => {
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
    }
}

pub async fn build_state(
    config: &Config,
    store: Arc<dyn KvStore>,
) -> Result<AppState, StartupError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ids: Arc<dyn IdGenerator> = Arc::new(UlidGenerator::default());
    let customers = CustomerService::new(
        CustomerRepository::new(store.clone()),
        clock.clone(),
        ids.clone(),
    );
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
        } => {
            let keys = Arc::new(RemoteKeys::new(jwks_url.clone()));
            let verifier = TokenVerifier::new(keys, issuer.clone(), audience.clone());
            (None, None, Some(Arc::new(verifier)))
        }
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
        customers,
        identity,
        issuer,
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
