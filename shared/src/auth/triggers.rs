//! Cognito user-pool triggers: what happens around a sign-up and each token, on the same
//! domain code as the API.
//!
//! - **PreSignUp**: confirms native sign-ups when configured; for a federated sign-in (Google,
//!   SAML) whose email a native user already has, links the two so both reach one identity —
//!   only when the provider verified the email (or is trusted to, like a company's SAML IdP).
//! - **PostConfirmation**: creates or links the customer of the confirmed identity (idempotent).
//! - **PreTokenGeneration V2**: adds Medusa's `actor_id`, `actor_type`, `auth_identity_id` as
//!   scalar claims, creating the customer first for a federated identity that never went
//!   through PostConfirmation; joins the customer to its company (by SAML provider, or by
//!   verified email domain where the company allows it) and adds `company_id`, `company_role`.
//!
//! Handlers take the raw event and answer it with `response` filled, as Cognito expects.

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::links;
use crate::companies::CompanyService;
use crate::customers::CustomerService;
use crate::error::{DomainError, DomainResult};

/// What the triggers may do; one trigger function serves one pool, so one actor type.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerSettings {
    pub actor_type: String,
    /// Confirm native sign-ups without the emailed code.
    pub auto_confirm: bool,
    /// Create (or link) the customer when an identity is confirmed.
    pub create_customers: bool,
    /// Identity providers whose emails count as verified without `email_verified` (SAML).
    pub trusted_email_providers: Vec<String>,
}

/// The user pool's directory, as the PreSignUp trigger needs it.
#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// The username of the native (email/password) user with this email, if any.
    async fn native_user_by_email(
        &self,
        pool_id: &str,
        email: &str,
    ) -> DomainResult<Option<String>>;
    /// Makes the federated identity sign in as the native user from now on.
    async fn link_provider(
        &self,
        pool_id: &str,
        native_username: &str,
        provider_name: &str,
        provider_user_id: &str,
    ) -> DomainResult<()>;
}

fn text<'a>(event: &'a Value, pointer: &str) -> Option<&'a str> {
    event.pointer(pointer).and_then(Value::as_str)
}

fn attributes(event: &Value) -> Map<String, Value> {
    event
        .pointer("/request/userAttributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn attribute(attributes: &Map<String, Value>, name: &str) -> Option<String> {
    attributes
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .filter(|v| !v.is_empty())
}

fn bad_event(what: &str) -> DomainError {
    DomainError::InvalidData(format!("Not a Cognito trigger event: {what}"))
}

/// `PreSignUp_*`.
pub async fn pre_sign_up(
    mut event: Value,
    directory: &dyn UserDirectory,
    settings: &TriggerSettings,
) -> DomainResult<Value> {
    let source = text(&event, "/triggerSource").ok_or_else(|| bad_event("no triggerSource"))?;
    let attrs = attributes(&event);
    match source {
        "PreSignUp_SignUp" | "PreSignUp_AdminCreateUser" => {
            if settings.auto_confirm && source == "PreSignUp_SignUp" {
                event["response"]["autoConfirmUser"] = json!(true);
                event["response"]["autoVerifyEmail"] = json!(attrs.contains_key("email"));
            }
        }
        "PreSignUp_ExternalProvider" => {
            let pool = text(&event, "/userPoolId").ok_or_else(|| bad_event("no userPoolId"))?;
            let user_name = text(&event, "/userName").ok_or_else(|| bad_event("no userName"))?;
            // `<ProviderName>_<id at the provider>`, as Cognito names federated users.
            let (provider, provider_user_id) = user_name
                .split_once('_')
                .ok_or_else(|| bad_event("federated userName without a provider"))?;
            let verified = attribute(&attrs, "email_verified").as_deref() == Some("true")
                || settings
                    .trusted_email_providers
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(provider));
            if let (Some(email), true) = (attribute(&attrs, "email"), verified)
                && let Some(native) = directory.native_user_by_email(pool, &email).await?
            {
                directory
                    .link_provider(pool, &native, provider, provider_user_id)
                    .await?;
                tracing::info!(
                    provider,
                    "linked a federated sign-in to the native user with its email"
                );
            }
        }
        other => return Err(bad_event(other)),
    }
    Ok(event)
}

/// `PostConfirmation_ConfirmSignUp` (a `ConfirmForgotPassword` needs nothing).
pub async fn post_confirmation(
    event: Value,
    customers: &CustomerService,
    settings: &TriggerSettings,
) -> DomainResult<Value> {
    let source = text(&event, "/triggerSource").ok_or_else(|| bad_event("no triggerSource"))?;
    if source != "PostConfirmation_ConfirmSignUp"
        || settings.actor_type != "customer"
        || !settings.create_customers
    {
        return Ok(event);
    }
    let attrs = attributes(&event);
    let sub = attribute(&attrs, "sub").ok_or_else(|| bad_event("no sub"))?;
    if let Some(email) = attribute(&attrs, "email") {
        let id = customers
            .ensure_for_identity(
                &sub,
                &email,
                attribute(&attrs, "given_name"),
                attribute(&attrs, "family_name"),
            )
            .await?;
        tracing::info!(customer_id = %id, "customer ready for a confirmed sign-up");
    }
    Ok(event)
}

/// `TokenGeneration_*` (V2 event): Medusa's claims on both tokens.
pub async fn pre_token_generation(
    mut event: Value,
    customers: &CustomerService,
    companies: &CompanyService,
    settings: &TriggerSettings,
) -> DomainResult<Value> {
    let attrs = attributes(&event);
    let sub = attribute(&attrs, "sub").ok_or_else(|| bad_event("no sub"))?;
    let store = customers.store();
    let mut actor_id = links::actor_id(&store, &sub, &settings.actor_type)
        .await?
        .unwrap_or_default();
    let federated = attribute(&attrs, "identities").is_some();
    if actor_id.is_empty()
        && federated
        && settings.actor_type == "customer"
        && settings.create_customers
        && let Some(email) = attribute(&attrs, "email")
    {
        actor_id = customers
            .ensure_for_identity(
                &sub,
                &email,
                attribute(&attrs, "given_name"),
                attribute(&attrs, "family_name"),
            )
            .await?;
    }
    let mut claims = json!({
        "actor_id": actor_id,
        "actor_type": settings.actor_type,
        "auth_identity_id": sub,
    });
    if settings.actor_type == "customer" && !actor_id.is_empty() {
        let provider = federated_provider(&attrs);
        let verified = attribute(&attrs, "email_verified").as_deref() == Some("true")
            || provider.as_deref().is_some_and(|p| {
                settings
                    .trusted_email_providers
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(p))
            });
        let membership = companies
            .join_on_sign_in(
                &actor_id,
                attribute(&attrs, "email").as_deref(),
                verified,
                provider.as_deref(),
            )
            .await?;
        if let Some(m) = membership {
            claims["company_id"] = json!(m.company_id);
            claims["company_role"] = json!(m.role);
        }
    }
    event["response"]["claimsAndScopeOverrideDetails"] = json!({
        "idTokenGeneration": { "claimsToAddOrOverride": claims },
        "accessTokenGeneration": { "claimsToAddOrOverride": claims },
    });
    Ok(event)
}

/// The identity provider of a federated user (`identities` holds Cognito's JSON list).
fn federated_provider(attributes: &Map<String, Value>) -> Option<String> {
    let identities: Value = serde_json::from_str(&attribute(attributes, "identities")?).ok()?;
    identities
        .as_array()?
        .iter()
        .find_map(|i| i.get("providerName")?.as_str().map(str::to_owned))
}

/// The pool's directory through the Cognito API.
pub struct CognitoDirectory(pub aws_sdk_cognitoidentityprovider::Client);

#[async_trait]
impl UserDirectory for CognitoDirectory {
    async fn native_user_by_email(
        &self,
        pool_id: &str,
        email: &str,
    ) -> DomainResult<Option<String>> {
        let escaped = email.replace('\\', "\\\\").replace('"', "\\\"");
        let users = self
            .0
            .list_users()
            .user_pool_id(pool_id)
            .filter(format!("email = \"{escaped}\""))
            .send()
            .await
            .map_err(|e| DomainError::Unavailable(format!("Cognito ListUsers: {e}")))?;
        Ok(users
            .users()
            .iter()
            .filter(|u| u.user_status().map(|s| s.as_str()) != Some("EXTERNAL_PROVIDER"))
            .find_map(|u| u.username().map(str::to_owned)))
    }

    async fn link_provider(
        &self,
        pool_id: &str,
        native_username: &str,
        provider_name: &str,
        provider_user_id: &str,
    ) -> DomainResult<()> {
        use aws_sdk_cognitoidentityprovider::types::ProviderUserIdentifierType;
        let destination = ProviderUserIdentifierType::builder()
            .provider_name("Cognito")
            .provider_attribute_value(native_username)
            .build();
        let source = ProviderUserIdentifierType::builder()
            .provider_name(provider_name)
            .provider_attribute_name("Cognito_Subject")
            .provider_attribute_value(provider_user_id)
            .build();
        self.0
            .admin_link_provider_for_user()
            .user_pool_id(pool_id)
            .destination_user(destination)
            .source_user(source)
            .send()
            .await
            .map_err(|e| {
                DomainError::Unavailable(format!("Cognito AdminLinkProviderForUser: {e}"))
            })?;
        Ok(())
    }
}
