//! Settings from the environment, read once at start-up into one typed struct.

use std::path::PathBuf;

use shared::auth::cognito::CognitoPool;

pub use crate::http::auth::SameSite;
pub use crate::http::csrf::AllowedOrigins;

#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    /// The embedded file `<DATA_DIR>/store.redb`.
    Embedded,
    /// A DynamoDB table (real AWS, or moto through `AWS_ENDPOINT_URL`).
    DynamoDb { table: String, create_table: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub enum AuthConfig {
    /// Sign people in here: passwords in the store, tokens signed with a key in `DATA_DIR`.
    Local { issuer: String },
    /// Verify tokens of an external issuer (Cognito) against its JWKS.
    External {
        issuer: String,
        jwks_url: String,
        audience: Option<String>,
    },
    /// Trust only the claims the API Gateway JWT authorizer verified (Lambdas without JWKS settings).
    AuthorizerOnly,
    /// Cognito user pools (one per actor type) sign people in; their JWKS verify the tokens.
    Cognito(CognitoConfig),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CognitoConfig {
    pub region: String,
    /// Where the pools' JWKS are served: Cognito itself, or moto's endpoint locally.
    pub jwks_base_url: String,
    pub pools: Vec<CognitoPool>,
    /// Confirm sign-ups at once, so registration answers with a token as Medusa's does.
    pub auto_confirm: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub token_ttl_seconds: i64,
    pub json_logs: bool,
    /// Page cache of the embedded store.
    pub store_cache_bytes: usize,
    /// Cookies marked `Secure`, sent over HTTPS only (`COOKIE_SECURE`; on by default in Lambda).
    pub secure_cookies: bool,
    /// The cookies' `SameSite` (`COOKIE_SAME_SITE`: `lax`, the default, `strict`, or `none`
    /// for a storefront on another site, which needs `COOKIE_SECURE`).
    pub cookie_same_site: SameSite,
    /// Origins besides the API's own whose pages may use cookie sessions, and which get CORS
    /// headers with credentials (`ALLOWED_ORIGINS`, comma-separated; none by default).
    pub allowed_origins: AllowedOrigins,
    /// Where bulk files go; `None` in functions that move none.
    pub files: Option<FilesConfig>,
    /// Write every event, reset tokens included, to `DATA_DIR/events.ndjson` (`DEV_EVENT_LOG`);
    /// off by default, when the local sign-in logs reset links instead.
    pub dev_event_log: bool,
    /// The page a local password-reset link opens (`PASSWORD_RESET_URL`).
    pub password_reset_url: String,
    /// What signing in may cost and how fast passwords may be guessed.
    pub sign_in: SignInConfig,
}

/// Bounds on sign-in: the password-hashing pool, attempt limits, the absolute lifetime.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInConfig {
    /// Hashes at a time (`PASSWORD_HASH_CONCURRENCY`; default one per core).
    pub hash_concurrency: usize,
    /// How long a request waits for a hashing slot before a 429 (`PASSWORD_HASH_WAIT_MS`).
    pub hash_wait: std::time::Duration,
    /// Per-address and per-account attempt limits (built-in defaults).
    pub limits: shared::auth::limits::SignInLimits,
    /// Refreshes keep a sign-in alive at most this long (`SESSION_ABSOLUTE_LIFETIME_SECONDS`).
    pub absolute_lifetime_seconds: i64,
}

impl Default for SignInConfig {
    fn default() -> Self {
        SignInConfig {
            hash_concurrency: shared::auth::limits::HashPool::default_concurrency(),
            hash_wait: shared::auth::limits::DEFAULT_HASH_WAIT,
            limits: Default::default(),
            absolute_lifetime_seconds: shared::auth::DEFAULT_ABSOLUTE_LIFETIME_SECONDS,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilesConfig {
    /// A local folder (`FILES_DIR`, default `DATA_DIR/files`).
    Local(PathBuf),
    /// An S3 bucket (`BUCKET_NAME`; real AWS, or moto through `AWS_ENDPOINT_URL`).
    S3 { bucket: String },
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Where the process runs; decides the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    LocalServer,
    Lambda,
}

impl Config {
    pub fn from_env(mode: Mode) -> Result<Config, ConfigError> {
        Config::from_lookup(mode, |name| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        })
    }

    /// Reads settings through `get`, so tests need not touch the process environment.
    pub fn from_lookup(
        mode: Mode,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let port = match get("PORT") {
            Some(p) => p
                .parse()
                .map_err(|_| ConfigError(format!("PORT must be a port number, got '{p}'")))?,
            None => 9000,
        };
        let flag = |name: &str| -> Result<bool, ConfigError> {
            match get(name).as_deref() {
                None => Ok(false),
                Some("1" | "true" | "yes") => Ok(true),
                Some("0" | "false" | "no") => Ok(false),
                Some(other) => Err(ConfigError(format!(
                    "{name} must be true or false, got '{other}'"
                ))),
            }
        };
        let default_store = match mode {
            Mode::LocalServer => "embedded",
            Mode::Lambda => "dynamodb",
        };
        let store = match get("STORE").as_deref().unwrap_or(default_store) {
            "embedded" => StoreConfig::Embedded,
            "dynamodb" => StoreConfig::DynamoDb {
                table: get("TABLE_NAME").ok_or_else(|| {
                    ConfigError("TABLE_NAME is required when STORE=dynamodb".into())
                })?,
                create_table: flag("CREATE_TABLE")?,
            },
            other => {
                return Err(ConfigError(format!(
                    "STORE must be 'embedded' or 'dynamodb', got '{other}'"
                )));
            }
        };
        let cognito = cognito_config(&get, &flag)?;
        let auth = match (get("AUTH_JWKS_URL"), get("AUTH_ISSUER")) {
            _ if cognito.is_some() => AuthConfig::AuthorizerOnly,
            (Some(jwks_url), Some(issuer)) => AuthConfig::External {
                issuer,
                jwks_url,
                audience: get("AUTH_AUDIENCE"),
            },
            (Some(_), None) => {
                return Err(ConfigError(
                    "AUTH_ISSUER is required with AUTH_JWKS_URL".into(),
                ));
            }
            (None, issuer) => match mode {
                Mode::LocalServer => AuthConfig::Local {
                    issuer: issuer.unwrap_or_else(|| "customer-module-local".into()),
                },
                Mode::Lambda => AuthConfig::AuthorizerOnly,
            },
        };
        let auth = match cognito {
            Some(c) => AuthConfig::Cognito(c),
            None => auth,
        };
        let token_ttl_seconds = match get("TOKEN_TTL_SECONDS") {
            Some(v) => v.parse().ok().filter(|t: &i64| *t > 0).ok_or_else(|| {
                ConfigError(format!(
                    "TOKEN_TTL_SECONDS must be a positive number, got '{v}'"
                ))
            })?,
            None => shared::auth::tokens::DEFAULT_TTL_SECONDS,
        };
        let store_cache_bytes = match get("STORE_CACHE_MB") {
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|mb| *mb > 0)
                .map(|mb| mb * 1024 * 1024)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "STORE_CACHE_MB must be a positive number, got '{v}'"
                    ))
                })?,
            None => shared::store::embedded::DEFAULT_CACHE_BYTES,
        };
        let secure_cookies = match get("COOKIE_SECURE") {
            Some(_) => flag("COOKIE_SECURE")?,
            None => mode == Mode::Lambda,
        };
        let positive = |name: &str| -> Result<Option<i64>, ConfigError> {
            get(name)
                .map(|v| {
                    v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        ConfigError(format!("{name} must be a positive number, got '{v}'"))
                    })
                })
                .transpose()
        };
        let defaults = SignInConfig::default();
        let sign_in = SignInConfig {
            hash_concurrency: positive("PASSWORD_HASH_CONCURRENCY")?
                .map_or(defaults.hash_concurrency, |n| n as usize),
            hash_wait: positive("PASSWORD_HASH_WAIT_MS")?.map_or(defaults.hash_wait, |ms| {
                std::time::Duration::from_millis(ms as u64)
            }),
            limits: defaults.limits,
            absolute_lifetime_seconds: positive("SESSION_ABSOLUTE_LIFETIME_SECONDS")?
                .unwrap_or(defaults.absolute_lifetime_seconds),
        };
        let cookie_same_site = match get("COOKIE_SAME_SITE") {
            Some(v) => SameSite::parse(&v).ok_or_else(|| {
                ConfigError(format!(
                    "COOKIE_SAME_SITE must be lax, strict or none, got '{v}'"
                ))
            })?,
            None => SameSite::Lax,
        };
        if cookie_same_site == SameSite::None && !secure_cookies {
            return Err(ConfigError(
                "COOKIE_SAME_SITE=none needs COOKIE_SECURE=true: browsers drop such cookies otherwise"
                    .into(),
            ));
        }
        let allowed_origins = AllowedOrigins::parse(&get("ALLOWED_ORIGINS").unwrap_or_default())
            .map_err(|e| ConfigError(format!("ALLOWED_ORIGINS: {e}")))?;
        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| ".data".into()));
        let files = match (get("BUCKET_NAME"), get("FILES_DIR"), mode) {
            (Some(bucket), _, _) => Some(FilesConfig::S3 { bucket }),
            (None, Some(dir), _) => Some(FilesConfig::Local(PathBuf::from(dir))),
            (None, None, Mode::LocalServer) => Some(FilesConfig::Local(data_dir.join("files"))),
            (None, None, Mode::Lambda) => None,
        };
        let host = get("HOST").unwrap_or_else(|| "127.0.0.1".into());
        let password_reset_url = get("PASSWORD_RESET_URL")
            .unwrap_or_else(|| format!("http://{host}:{port}/app/reset-password"));
        Ok(Config {
            dev_event_log: flag("DEV_EVENT_LOG")?,
            password_reset_url,
            sign_in,
            files,
            secure_cookies,
            cookie_same_site,
            allowed_origins,
            store_cache_bytes,
            host,
            port,
            data_dir,
            admin_email: get("ADMIN_EMAIL"),
            admin_password: get("ADMIN_PASSWORD"),
            store,
            auth,
            token_ttl_seconds,
            json_logs: mode == Mode::Lambda || get("LOG_FORMAT").as_deref() == Some("json"),
        })
    }
}

/// `COGNITO_<ACTOR>_POOL_ID` and `_CLIENT_ID` (both or neither) for `CUSTOMER` and `STAFF`,
/// with optional `_DOMAIN`, `_REDIRECT_URI` and `_PROVIDERS` (`google=Google,acme=AcmeSaml`).
fn cognito_config(
    get: &impl Fn(&str) -> Option<String>,
    flag: &impl Fn(&str) -> Result<bool, ConfigError>,
) -> Result<Option<CognitoConfig>, ConfigError> {
    let mut pools = Vec::new();
    for (prefix, actor_type) in [("COGNITO_CUSTOMER", "customer"), ("COGNITO_STAFF", "user")] {
        let pool_id = get(&format!("{prefix}_POOL_ID"));
        let client_id = get(&format!("{prefix}_CLIENT_ID"));
        let (pool_id, client_id) = match (pool_id, client_id) {
            (Some(p), Some(c)) => (p, c),
            (None, None) => continue,
            _ => {
                return Err(ConfigError(format!(
                    "{prefix}_POOL_ID and {prefix}_CLIENT_ID go together"
                )));
            }
        };
        let mut federated = Vec::new();
        for entry in get(&format!("{prefix}_PROVIDERS"))
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (id, name) = entry.split_once('=').ok_or_else(|| {
                ConfigError(format!(
                    "{prefix}_PROVIDERS entries are provider=CognitoName, got '{entry}'"
                ))
            })?;
            federated.push((id.trim().to_owned(), name.trim().to_owned()));
        }
        pools.push(CognitoPool {
            actor_type: actor_type.into(),
            pool_id,
            client_id,
            domain: get(&format!("{prefix}_DOMAIN")),
            redirect_uri: get(&format!("{prefix}_REDIRECT_URI")),
            federated,
        });
    }
    if pools.is_empty() {
        return Ok(None);
    }
    let region = get("AWS_REGION")
        .or_else(|| get("AWS_DEFAULT_REGION"))
        .ok_or_else(|| ConfigError("AWS_REGION is required with Cognito pools".into()))?;
    let jwks_base_url = get("COGNITO_JWKS_BASE_URL")
        .or_else(|| get("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://cognito-idp.{region}.amazonaws.com"));
    // Off unless asked for: an auto-confirmed sign-up has no proof that it owns its email.
    let auto_confirm = match get("COGNITO_AUTO_CONFIRM") {
        Some(_) => flag("COGNITO_AUTO_CONFIRM")?,
        None => false,
    };
    Ok(Some(CognitoConfig {
        region,
        jwks_base_url,
        pools,
        auto_confirm,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(mode: Mode, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(mode, |k| map.get(k).cloned())
    }

    #[test]
    fn local_defaults_need_nothing() {
        let c = config(Mode::LocalServer, &[]).unwrap();
        assert_eq!((c.port, c.store.clone()), (9000, StoreConfig::Embedded));
        assert!(matches!(c.auth, AuthConfig::Local { .. }));
    }

    #[test]
    fn missing_and_malformed_settings_are_named() {
        assert_eq!(
            config(Mode::Lambda, &[]).unwrap_err(),
            ConfigError("TABLE_NAME is required when STORE=dynamodb".into())
        );
        assert!(
            config(Mode::LocalServer, &[("PORT", "x")])
                .unwrap_err()
                .0
                .contains("PORT")
        );
        assert!(
            config(Mode::LocalServer, &[("STORE", "mysql")])
                .unwrap_err()
                .0
                .contains("STORE")
        );
        let lambda = config(Mode::Lambda, &[("TABLE_NAME", "t")]).unwrap();
        assert_eq!(lambda.auth, AuthConfig::AuthorizerOnly);
    }

    #[test]
    fn sign_in_bounds_are_read_and_checked() {
        let c = config(
            Mode::LocalServer,
            &[
                ("PASSWORD_HASH_CONCURRENCY", "3"),
                ("PASSWORD_HASH_WAIT_MS", "250"),
                ("SESSION_ABSOLUTE_LIFETIME_SECONDS", "3600"),
            ],
        )
        .unwrap();
        assert_eq!(c.sign_in.hash_concurrency, 3);
        assert_eq!(c.sign_in.hash_wait, std::time::Duration::from_millis(250));
        assert_eq!(c.sign_in.absolute_lifetime_seconds, 3600);
        assert!(
            config(Mode::LocalServer, &[("PASSWORD_HASH_CONCURRENCY", "0")])
                .unwrap_err()
                .0
                .contains("PASSWORD_HASH_CONCURRENCY")
        );
    }

    #[test]
    fn cookies_stay_same_site_unless_cross_site_is_asked_for() {
        let lambda = config(Mode::Lambda, &[("TABLE_NAME", "t")]).unwrap();
        assert_eq!(
            (lambda.secure_cookies, lambda.cookie_same_site),
            (true, SameSite::Lax)
        );
        let cross_site = config(
            Mode::Lambda,
            &[("TABLE_NAME", "t"), ("COOKIE_SAME_SITE", "none")],
        )
        .unwrap();
        assert_eq!(cross_site.cookie_same_site, SameSite::None);
        assert!(
            config(Mode::LocalServer, &[("COOKIE_SAME_SITE", "none")])
                .unwrap_err()
                .0
                .contains("COOKIE_SECURE")
        );
        assert!(
            config(Mode::LocalServer, &[("ALLOWED_ORIGINS", "*")])
                .unwrap_err()
                .0
                .contains("ALLOWED_ORIGINS")
        );
    }
}
