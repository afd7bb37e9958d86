//! Cognito user-pool triggers: what happens around a sign-up and each token, on the same
//! domain code as the API.
//!
//! - **PreSignUp**: confirms native sign-ups when configured (never verifying their email: only
//!   the emailed code does); for a federated sign-in (Google, SAML) whose email a native user
//!   with a verified email already has, links the two so both reach one identity — only when the
//!   federated identity proves the email too (see [`email_proven`]).
//! - **PostConfirmation**: creates the customer of the confirmed identity, or links it to the
//!   existing account with its email when the email is verified (idempotent).
//! - **PreTokenGeneration V2**: adds Medusa's `actor_id`, `actor_type`, `auth_identity_id` as
//!   scalar claims, creating the customer first for a federated identity that never went
//!   through PostConfirmation; joins the customer to its company (by SAML provider, or by
//!   verified email domain where the company allows it) and adds `company_id`, `company_role`.
//!
//! An identity joins an existing account (a customer, a native user) only with a proof that it
//! owns the email, since whoever signs up can type any address: see [`email_proven`].
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
}

/// Social providers whose `email_verified` claim is a proof: they verify addresses themselves.
const PROVIDERS_VERIFYING_EMAILS: &[&str] = &["Google"];

/// The user pool's directory, as the PreSignUp trigger needs it.
#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// The username of the native (email/password) user with this email, if any, counting
    /// only users whose email is verified (an unverified one proves nothing about its owner).
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

/// Whether the identity proved it owns `email`, the condition for joining the account (or the
/// native user) that holds that email:
/// - a native user: Cognito's `email_verified`, true only once the user typed the emailed code
///   (these triggers never auto-verify) or an administrator set it;
/// - Google: its `email_verified` claim;
/// - any other provider (a company's SAML IdP): the email's domain is one of the `email_domains`
///   of the company whose `saml_provider` it is. Such an IdP can assert any email, and its word
///   on verification is ignored.
pub async fn email_proven(
    attributes: &Map<String, Value>,
    email: &str,
    provider: Option<&str>,
    companies: &CompanyService,
) -> DomainResult<bool> {
    let verified = attribute(attributes, "email_verified").as_deref() == Some("true");
    match provider {
        None => Ok(verified),
        Some(p)
            if PROVIDERS_VERIFYING_EMAILS
                .iter()
                .any(|v| v.eq_ignore_ascii_case(p)) =>
        {
            Ok(verified)
        }
        Some(p) => companies.provider_vouches_for(p, email).await,
    }
}

/// `PreSignUp_*`.
pub async fn pre_sign_up(
    mut event: Value,
    directory: &dyn UserDirectory,
    companies: &CompanyService,
    settings: &TriggerSettings,
) -> DomainResult<Value> {
    let source = text(&event, "/triggerSource").ok_or_else(|| bad_event("no triggerSource"))?;
    let attrs = attributes(&event);
    match source {
        "PreSignUp_SignUp" | "PreSignUp_AdminCreateUser" => {
            // A public client can send any attribute it may write, and the Google mapping
            // needs `email_verified` writable: a sign-up claiming it would pass for proof.
            if source == "PreSignUp_SignUp"
                && attribute(&attrs, "email_verified").is_some_and(|v| v == "true")
            {
                return Err(DomainError::InvalidData(
                    "email_verified cannot be set at sign-up: it is set when the e-mailed code is confirmed".into(),
                ));
            }
            // Confirmed, not verified: nobody proved the email is theirs, so it links to no
            // existing account until the owner verifies it.
            if settings.auto_confirm && source == "PreSignUp_SignUp" {
                event["response"]["autoConfirmUser"] = json!(true);
                event["response"]["autoVerifyEmail"] = json!(false);
            }
        }
        "PreSignUp_ExternalProvider" => {
            let pool = text(&event, "/userPoolId").ok_or_else(|| bad_event("no userPoolId"))?;
            let user_name = text(&event, "/userName").ok_or_else(|| bad_event("no userName"))?;
            // `<ProviderName>_<id at the provider>`, as Cognito names federated users.
            let (provider, provider_user_id) = user_name
                .split_once('_')
                .ok_or_else(|| bad_event("federated userName without a provider"))?;
            if let Some(email) = attribute(&attrs, "email")
                && email_proven(&attrs, &email, Some(provider), companies).await?
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

/// `PostConfirmation_ConfirmSignUp`, and `PostConfirmation_ConfirmForgotPassword` (which ends
/// the identity's earlier tokens). Cognito sends
/// the same source for a code-confirmed and an auto-confirmed sign-up; only the first has a
/// verified email, and only it may join the existing account with that email.
pub async fn post_confirmation(
    event: Value,
    customers: &CustomerService,
    settings: &TriggerSettings,
) -> DomainResult<Value> {
    let source = text(&event, "/triggerSource").ok_or_else(|| bad_event("no triggerSource"))?;
    if source == "PostConfirmation_ConfirmForgotPassword" {
        // A reset through Cognito's own pages (the hosted UI, Amplify) ends every earlier token
        // and session, as one through the API does.
        let sub = attribute(&attributes(&event), "sub").ok_or_else(|| bad_event("no sub"))?;
        let now = customers.clock().now().unix_timestamp();
        crate::auth::revocation::sign_out_everywhere(&customers.store(), &sub, now).await?;
        tracing::info!("password reset: earlier tokens and sessions ended");
        return Ok(event);
    }
    if source != "PostConfirmation_ConfirmSignUp"
        || settings.actor_type != "customer"
        || !settings.create_customers
    {
        return Ok(event);
    }
    let attrs = attributes(&event);
    let sub = attribute(&attrs, "sub").ok_or_else(|| bad_event("no sub"))?;
    if let Some(email) = attribute(&attrs, "email") {
        let proven = attribute(&attrs, "email_verified").as_deref() == Some("true");
        let id = customers
            .ensure_for_identity(
                &sub,
                &email,
                attribute(&attrs, "given_name"),
                attribute(&attrs, "family_name"),
                proven,
            )
            .await?;
        match id {
            Some(id) => tracing::info!(customer_id = %id, "customer ready for a confirmed sign-up"),
            None => tracing::info!("a confirmed sign-up with an unverified email stays unlinked"),
        }
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
    let provider = federated_provider(&attrs);
    let email = attribute(&attrs, "email");
    let proven = match (&email, settings.actor_type.as_str()) {
        (Some(email), "customer") => {
            email_proven(&attrs, email, provider.as_deref(), companies).await?
        }
        _ => false,
    };
    // A federated identity that proved nothing (an unverified Google address, an unknown IdP)
    // gets no customer: one made on its word would hold the address against its owner. A
    // company's own IdP is the exception: its users are that company's buyers, whatever
    // address it asserts (their customer is marked unproven, so it never absorbs another).
    let company_user = match provider.as_deref() {
        Some(p) if !proven => companies.is_company_provider(p).await?,
        _ => false,
    };
    if actor_id.is_empty()
        && federated
        && (proven || company_user)
        && settings.actor_type == "customer"
        && settings.create_customers
        && let Some(email) = &email
    {
        actor_id = customers
            .ensure_for_identity(
                &sub,
                email,
                attribute(&attrs, "given_name"),
                attribute(&attrs, "family_name"),
                proven,
            )
            .await?
            .unwrap_or_default();
    }
    let mut claims = json!({
        "actor_id": actor_id,
        "actor_type": settings.actor_type,
        "auth_identity_id": sub,
    });
    if settings.actor_type == "customer" && !actor_id.is_empty() {
        let membership = companies
            .join_on_sign_in(&actor_id, email.as_deref(), proven, provider.as_deref())
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
        let users = self
            .0
            .list_users()
            .user_pool_id(pool_id)
            .filter(super::cognito::list_users_filter("email", email))
            .send()
            .await
            .map_err(|e| DomainError::Unavailable(format!("Cognito ListUsers: {e}")))?;
        let email_verified = |u: &aws_sdk_cognitoidentityprovider::types::UserType| {
            super::cognito::user_attribute(u.attributes(), "email_verified") == Some("true")
        };
        Ok(users
            .users()
            .iter()
            .filter(|u| u.user_status().map(|s| s.as_str()) != Some("EXTERNAL_PROVIDER"))
            .filter(|u| email_verified(u))
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
