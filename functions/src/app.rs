//! Builds the application state from the configuration: clients once, then the ports.

use std::path::PathBuf;
use std::sync::Arc;

use shared::addresses::AddressService;
use shared::api_keys::ApiKeyService;
use shared::auth::cognito::{CognitoIdentityProvider, CognitoPool};
use shared::auth::limits::HashPool;
use shared::auth::local::LocalIdentityProvider;
use shared::auth::sessions::SessionStore;
use shared::auth::tokens::{RemoteKeys, SigningKey, TokenIssuer, TokenVerifier};
use shared::auth::{Authenticator, IdentityProvider};
use shared::customers::{CustomerRepository, CustomerService};
use shared::events::{EventSink, FileEventSink, LogEventSink, ResetLinkLogSink};
use shared::groups::GroupService;
use shared::ports::{Clock, IdGenerator, SystemClock, UlidGenerator};
use shared::store::KvStore;
use shared::store::dynamo::DynamoStore;
use shared::store::embedded::EmbeddedStore;

use shared::files::{FileStore, LocalFiles, S3Files};
use shared::transfer::Jobs;
use shared::transfer::export::Exporter;
use shared::transfer::import::Importer;

use crate::config::{AuthConfig, CognitoConfig, Config, FilesConfig, StoreConfig};
use crate::http::{AppState, JobRunner, Transfer};

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
pub struct Services {
    pub jobs: Jobs,
    customers: CustomerService,
    addresses: AddressService,
    groups: GroupService,
    companies: shared::companies::CompanyService,
    grants: shared::grants::GrantService,
    roles: shared::roles::RoleService,
    staff_users: shared::auth::staff::StaffUsers,
    api_keys: ApiKeyService,
    sessions: SessionStore,
}

pub fn services(
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
) -> Services {
    Services {
        jobs: Jobs::new(store.clone(), clock.clone(), ids.clone()),
        customers: CustomerService::new(
            CustomerRepository::new(store.clone()),
            clock.clone(),
            ids.clone(),
        ),
        addresses: AddressService::new(store.clone(), clock.clone(), ids.clone()),
        groups: GroupService::new(store.clone(), clock.clone(), ids.clone()),
        companies: shared::companies::CompanyService::new(
            store.clone(),
            clock.clone(),
            ids.clone(),
        ),
        grants: shared::grants::GrantService::new(store.clone(), clock.clone(), ids.clone()),
        roles: shared::roles::RoleService::new(store.clone(), clock.clone(), ids.clone()),
        staff_users: shared::auth::staff::StaffUsers::new(store.clone(), clock.clone()),
        api_keys: ApiKeyService::new(store.clone(), clock.clone(), ids),
        sessions: SessionStore::new(store, clock),
    }
}

/// The file store the configuration names.
pub async fn open_files(config: &Config) -> Option<Arc<dyn FileStore>> {
    match config.files.as_ref()? {
        FilesConfig::Local(dir) => Some(Arc::new(LocalFiles::new(dir.clone()))),
        FilesConfig::S3 { bucket } => {
            let shared = aws_config().await;
            let s3 = aws_sdk_s3::config::Builder::from(&shared)
                // moto (and other local endpoints) serve buckets by path.
                .force_path_style(std::env::var_os("AWS_ENDPOINT_URL").is_some())
                .build();
            Some(Arc::new(S3Files::new(
                aws_sdk_s3::Client::from_conf(s3),
                bucket.clone(),
            )))
        }
    }
}

/// Import and export over `files`. The importer writes through the store's deferred view
/// where there is one (its checkpoints, through `jobs`, make those writes durable).
pub fn transfer_from(
    store: &Arc<dyn KvStore>,
    domain: &Services,
    files: Arc<dyn FileStore>,
    runner: JobRunner,
    spill_dir: PathBuf,
) -> Transfer {
    let jobs = domain.jobs.clone();
    let bulk = match store.deferred() {
        Some(deferred) => services(
            deferred,
            Arc::new(SystemClock),
            Arc::new(UlidGenerator::default()),
        ),
        None => services(
            store.clone(),
            Arc::new(SystemClock),
            Arc::new(UlidGenerator::default()),
        ),
    };
    Transfer {
        importer: Importer {
            jobs: jobs.clone(),
            customers: bulk.customers.clone(),
            addresses: bulk.addresses.clone(),
            groups: bulk.groups.clone(),
            files: files.clone(),
            concurrency: 64,
            batch_rows: shared::transfer::import::BATCH_ROWS,
            store_retry: shared::transfer::import::store_retry(),
            spill_dir,
        },
        exporter: Exporter {
            jobs: jobs.clone(),
            customers: domain.customers.clone(),
            addresses: domain.addresses.clone(),
            groups: domain.groups.clone(),
            files: files.clone(),
            progress: Default::default(),
        },
        jobs,
        files,
        runner,
    }
}

fn state_from(
    domain: Services,
    identity: Option<Arc<dyn IdentityProvider>>,
    issuer: Option<Arc<TokenIssuer>>,
    auth: Authenticator,
    config: &Config,
    transfer: Option<Transfer>,
) -> AppState {
    AppState {
        transfer,
        customers: domain.customers,
        addresses: domain.addresses,
        groups: domain.groups,
        companies: domain.companies,
        grants: domain.grants,
        roles: domain.roles,
        staff_users: domain.staff_users,
        api_keys: domain.api_keys,
        sessions: domain.sessions,
        identity,
        issuer,
        auth: Arc::new(auth.with_absolute_lifetime(config.sign_in.absolute_lifetime_seconds)),
        sign_in_limiter: Arc::new(shared::auth::limits::SignInLimiter::new(
            config.sign_in.limits.clone(),
        )),
        secure_cookies: config.secure_cookies,
        cookie_same_site: config.cookie_same_site,
        allowed_origins: config.allowed_origins.clone(),
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

/// Where domain events go: the data folder's event log when a developer asks for it; else the
/// log, where the local sign-in's reset links appear at warn level.
fn event_sink(config: &Config) -> Arc<dyn EventSink> {
    if config.dev_event_log {
        return Arc::new(FileEventSink::new(config.data_dir.join("events.ndjson")));
    }
    match config.auth {
        AuthConfig::Local { .. } => Arc::new(ResetLinkLogSink {
            reset_page: config.password_reset_url.clone(),
        }),
        _ => Arc::new(LogEventSink),
    }
}

/// Cognito sign-in over the configured pools, and a verifier of each pool's access tokens.
async fn cognito_provider(
    cognito: &CognitoConfig,
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
) -> (Arc<dyn IdentityProvider>, Vec<Arc<TokenVerifier>>) {
    let client = aws_sdk_cognitoidentityprovider::Client::new(&aws_config().await);
    let pools: Vec<(CognitoPool, Arc<TokenVerifier>)> = cognito
        .pools
        .iter()
        .map(|pool| {
            let verifier = Arc::new(pool.verifier(&cognito.region, &cognito.jwks_base_url));
            (pool.clone(), verifier)
        })
        .collect();
    let verifiers = pools.iter().map(|(_, v)| v.clone()).collect();
    let provider = CognitoIdentityProvider::new(client, pools, store, clock, cognito.auto_confirm);
    (Arc::new(provider), verifiers)
}

/// The local sign-in provider and its token issuer (key in `DATA_DIR`).
pub fn local_provider(
    config: &Config,
    issuer_name: &str,
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
) -> Result<(Arc<LocalIdentityProvider>, Arc<TokenIssuer>), StartupError> {
    let key = SigningKey::load_or_create(&config.data_dir.join("jwt-signing-key.json"))
        .map_err(|e| StartupError(e.to_string()))?;
    let signer = Arc::new(
        TokenIssuer::new(key, issuer_name.to_owned(), config.token_ttl_seconds)
            .with_absolute_lifetime(config.sign_in.absolute_lifetime_seconds),
    );
    let provider = Arc::new(
        LocalIdentityProvider::new(store, signer.clone(), clock, ids, event_sink(config))
            .with_hash_pool(HashPool::new(
                config.sign_in.hash_concurrency,
                config.sign_in.hash_wait,
            )),
    );
    Ok((provider, signer))
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
    let mut verifiers = Vec::new();
    let mut local = None;
    let mut issuer = None;
    let mut cognito_identity = None;
    match &config.auth {
        AuthConfig::Local { issuer: name } => {
            let (provider, signer) = local_provider(config, name, store.clone(), clock, ids)?;
            verifiers.push(Arc::new(signer.verifier()));
            local = Some(provider);
            issuer = Some(signer);
        }
        AuthConfig::External {
            issuer,
            jwks_url,
            audience,
        } => verifiers.push(external_verifier(issuer, jwks_url, audience)),
        AuthConfig::AuthorizerOnly => {}
        AuthConfig::Cognito(cognito) => {
            let (provider, pool_verifiers) = cognito_provider(cognito, store.clone(), clock).await;
            verifiers.extend(pool_verifiers);
            cognito_identity = Some(provider);
        }
    }
    let identity = local
        .map(|l| l as Arc<dyn IdentityProvider>)
        .or(cognito_identity);
    if let (Some(identity), Some(email), Some(password)) =
        (&identity, &config.admin_email, &config.admin_password)
    {
        shared::auth::ensure_first_staff_user(identity.as_ref(), &store, email, password)
            .await
            .map_err(|e| StartupError(format!("cannot create the first staff user: {e}")))?;
    }
    let transfer = open_files(config).await.map(|files| {
        transfer_from(
            &store,
            &domain,
            files,
            JobRunner::InProcess,
            config.data_dir.join("spill"),
        )
    });
    if let Some(transfer) = &transfer {
        // A bulk load cut short (a crash, a stop) may have left customers to index for search.
        let importer = transfer.importer.clone();
        tokio::spawn(async move {
            if let Err(e) = importer.index_pending().await {
                tracing::warn!(error = %e, "customers of an earlier bulk load not indexed yet");
            }
        });
    }
    Ok(state_from(
        domain,
        identity,
        issuer,
        Authenticator::new(verifiers, store),
        config,
        transfer,
    ))
}

/// What every Lambda has: DynamoDB, and tokens checked by the API Gateway authorizer or an
/// issuer's JWKS (Cognito pools, an external issuer) — never local sign-in. Sign-in and file
/// handling are added only by the functions that need them (`build_lambda_auth_state`,
/// `build_lambda_transfer_state`), so the others do not link the Cognito and S3 clients.
async fn lambda_core(
    config: &Config,
) -> Result<(Arc<dyn KvStore>, Services, Vec<Arc<TokenVerifier>>), StartupError> {
    let store = open_dynamo(config).await?;
    let verifiers = match &config.auth {
        AuthConfig::External {
            issuer,
            jwks_url,
            audience,
        } => vec![external_verifier(issuer, jwks_url, audience)],
        AuthConfig::AuthorizerOnly => Vec::new(),
        AuthConfig::Cognito(cognito) => cognito
            .pools
            .iter()
            .map(|pool| Arc::new(pool.verifier(&cognito.region, &cognito.jwks_base_url)))
            .collect(),
        AuthConfig::Local { .. } => {
            return Err(StartupError(
                "local sign-in is not available in Lambda".into(),
            ));
        }
    };
    let domain = services(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(UlidGenerator::default()),
    );
    Ok((store, domain, verifiers))
}

/// A route Lambda's state (see [`lambda_core`]).
pub async fn build_lambda_state(config: &Config) -> Result<AppState, StartupError> {
    let (store, domain, verifiers) = lambda_core(config).await?;
    let auth = Authenticator::new(verifiers, store);
    Ok(state_from(domain, None, None, auth, config, None))
}

/// An auth route Lambda's state: the core plus Cognito sign-in.
pub async fn build_lambda_auth_state(config: &Config) -> Result<AppState, StartupError> {
    let (store, domain, _) = lambda_core(config).await?;
    let AuthConfig::Cognito(cognito) = &config.auth else {
        return Err(StartupError(
            "the sign-in functions need COGNITO_* settings".into(),
        ));
    };
    let (identity, verifiers) =
        cognito_provider(cognito, store.clone(), Arc::new(SystemClock)).await;
    let auth = Authenticator::new(verifiers, store);
    Ok(state_from(domain, Some(identity), None, auth, config, None))
}

/// An import/export Lambda's state: the core plus the bucket.
pub async fn build_lambda_transfer_state(config: &Config) -> Result<AppState, StartupError> {
    let (store, domain, verifiers) = lambda_core(config).await?;
    let files = open_files(config)
        .await
        .ok_or_else(|| StartupError("BUCKET_NAME is required by this function".into()))?;
    let transfer = transfer_from(
        &store,
        &domain,
        files,
        JobRunner::ViaBucket,
        std::env::temp_dir(),
    );
    let auth = Authenticator::new(verifiers, store);
    Ok(state_from(domain, None, None, auth, config, Some(transfer)))
}

/// Logging per `RUST_LOG` (`info`, `shared=debug,info`, …: levels per target; the regex-based
/// span filters of `EnvFilter` are left out to keep the Lambda binaries small).
pub fn init_tracing(json: bool) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .without_time(),
            )
            .try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer()).try_init()
    };
}
