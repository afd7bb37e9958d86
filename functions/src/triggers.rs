//! The Cognito trigger Lambdas: config once, clients once, then the shared trigger handlers.

use std::sync::Arc;

use serde_json::Value;
use shared::auth::triggers::{self, CognitoDirectory, TriggerSettings, UserDirectory};
use shared::customers::{CustomerRepository, CustomerService};
use shared::ports::{SystemClock, UlidGenerator};
use shared::store::KvStore;

use crate::app::{aws_config, init_tracing, open_dynamo};
use crate::config::{Config, ConfigError, Mode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    PreSignUp,
    PostConfirmation,
    PreTokenGeneration,
}

/// What a trigger runs on.
pub struct TriggerContext {
    pub customers: CustomerService,
    pub companies: shared::companies::CompanyService,
    pub directory: Arc<dyn UserDirectory>,
    pub settings: TriggerSettings,
}

impl TriggerContext {
    pub fn new(
        store: Arc<dyn KvStore>,
        directory: Arc<dyn UserDirectory>,
        settings: TriggerSettings,
    ) -> Self {
        TriggerContext {
            companies: shared::companies::CompanyService::new(
                store.clone(),
                Arc::new(SystemClock),
                Arc::new(UlidGenerator::default()),
            ),
            customers: CustomerService::new(
                CustomerRepository::new(store),
                Arc::new(SystemClock),
                Arc::new(UlidGenerator::default()),
            ),
            directory,
            settings,
        }
    }
}

/// `ACTOR_TYPE` (`customer` or `user`), `AUTO_CONFIRM` and `CREATE_CUSTOMERS` (default true).
/// No provider is trusted for its emails by configuration: a SAML IdP vouches only for its own
/// company's `email_domains`.
pub fn settings_from(get: impl Fn(&str) -> Option<String>) -> Result<TriggerSettings, ConfigError> {
    let flag = |name: &str, default: bool| -> Result<bool, ConfigError> {
        match get(name).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes") => Ok(true),
            Some("0" | "false" | "no") => Ok(false),
            Some(other) => Err(ConfigError(format!(
                "{name} must be true or false, got '{other}'"
            ))),
        }
    };
    let actor_type = get("ACTOR_TYPE").unwrap_or_else(|| "customer".into());
    if !shared::auth::ACTOR_TYPES.contains(&actor_type.as_str()) {
        return Err(ConfigError(format!(
            "ACTOR_TYPE must be customer or user, got '{actor_type}'"
        )));
    }
    Ok(TriggerSettings {
        actor_type,
        auto_confirm: flag("AUTO_CONFIRM", false)?,
        create_customers: flag("CREATE_CUSTOMERS", true)?,
    })
}

/// Handles one event; an error makes Cognito refuse the sign-up or sign-in, so only real
/// failures (the store down) are errors.
pub async fn handle(
    trigger: Trigger,
    event: Value,
    context: &TriggerContext,
) -> Result<Value, shared::DomainError> {
    match trigger {
        Trigger::PreSignUp => {
            triggers::pre_sign_up(
                event,
                context.directory.as_ref(),
                &context.companies,
                &context.settings,
            )
            .await
        }
        Trigger::PostConfirmation => {
            triggers::post_confirmation(event, &context.customers, &context.settings).await
        }
        Trigger::PreTokenGeneration => {
            triggers::pre_token_generation(
                event,
                &context.customers,
                &context.companies,
                &context.settings,
            )
            .await
        }
    }
}

/// The directory of triggers that do not look users up (only PreSignUp does).
struct NoDirectory;

#[async_trait::async_trait]
impl UserDirectory for NoDirectory {
    async fn native_user_by_email(&self, _: &str, _: &str) -> shared::DomainResult<Option<String>> {
        Ok(None)
    }
    async fn link_provider(&self, _: &str, _: &str, _: &str, _: &str) -> shared::DomainResult<()> {
        Err(shared::DomainError::Internal(
            "this trigger links no users".into(),
        ))
    }
}

/// PostConfirmation and PreTokenGeneration.
pub async fn serve(trigger: Trigger) -> Result<(), lambda_runtime::Error> {
    run(trigger, Arc::new(NoDirectory)).await
}

/// PreSignUp, which looks users up in the pool (and so links the Cognito client).
pub async fn serve_pre_sign_up() -> Result<(), lambda_runtime::Error> {
    let directory = Arc::new(CognitoDirectory(
        aws_sdk_cognitoidentityprovider::Client::new(&aws_config().await),
    ));
    run(Trigger::PreSignUp, directory).await
}

async fn run(
    trigger: Trigger,
    directory: Arc<dyn UserDirectory>,
) -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env(Mode::Lambda)?;
    init_tracing(config.json_logs);
    let settings = settings_from(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))?;
    let store = open_dynamo(&config).await?;
    let context = Arc::new(TriggerContext::new(store, directory, settings));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let context = context.clone();
            async move {
                handle(trigger, event.payload, &context)
                    .await
                    .map_err(|e| lambda_runtime::Error::from(e.to_string()))
            }
        },
    ))
    .await
}
