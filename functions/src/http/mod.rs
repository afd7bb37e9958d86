//! The HTTP API, shared by the local server and every Lambda: one route table, from which the
//! router (whole or one route per Lambda) and the OpenAPI document are both built.

pub mod addresses;
pub mod api_keys;
pub mod auth;
pub mod body;
pub mod companies;
pub mod csrf;
pub mod cursor;
pub mod customers;
pub mod error;
pub mod fields;
pub mod grants;
pub mod groups;
pub mod openapi;
pub mod policy;
pub mod query;
pub mod roles;
pub mod store;
pub mod transfer;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post};
use serde_json::{Value, json};
use shared::DomainError;
use shared::addresses::AddressService;
use shared::api_keys::ApiKeyService;
use shared::auth::sessions::SessionStore;
use shared::auth::tokens::TokenIssuer;
use shared::auth::{Authenticator, IdentityProvider};
use shared::customers::CustomerService;
use shared::groups::GroupService;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use self::body::Field;
use self::error::ApiError;

/// Everything a request handler may use; built once per process.
#[derive(Clone)]
pub struct AppState {
    pub customers: CustomerService,
    pub addresses: AddressService,
    pub groups: GroupService,
    pub companies: shared::companies::CompanyService,
    pub grants: shared::grants::GrantService,
    pub roles: shared::roles::RoleService,
    pub staff_users: shared::auth::staff::StaffUsers,
    pub api_keys: ApiKeyService,
    pub sessions: SessionStore,
    /// Signs people in (local provider or Cognito); `None` in functions that serve no auth route.
    pub identity: Option<Arc<dyn IdentityProvider>>,
    /// The local token issuer, whose keys `/.well-known/jwks.json` publishes.
    pub issuer: Option<Arc<TokenIssuer>>,
    /// Turns tokens and verified claims into the caller.
    pub auth: Arc<Authenticator>,
    /// Slows password guessing per client address and account (in this process).
    pub sign_in_limiter: Arc<shared::auth::limits::SignInLimiter>,
    /// Session cookies are marked `Secure` (served over HTTPS only).
    pub secure_cookies: bool,
    /// The `SameSite` attribute of every cookie this API sets.
    pub cookie_same_site: auth::SameSite,
    /// Other origins trusted with cookie sessions and served CORS headers (`ALLOWED_ORIGINS`).
    pub allowed_origins: csrf::AllowedOrigins,
    /// Bulk import and export, where a file store is configured.
    pub transfer: Option<Transfer>,
}

/// How a new job gets going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRunner {
    /// In this process, in the background (the local server).
    InProcess,
    /// By the transfer worker, started by S3 events (Lambda): an import by its file's arrival,
    /// an export by a request object under `jobs/`.
    ViaBucket,
}

/// Import and export jobs and what they run on.
#[derive(Clone)]
pub struct Transfer {
    pub jobs: shared::transfer::Jobs,
    pub importer: shared::transfer::import::Importer,
    pub exporter: shared::transfer::export::Exporter,
    pub files: Arc<dyn shared::files::FileStore>,
    pub runner: JobRunner,
}

impl Transfer {
    /// Starts a job the way this process runs jobs.
    pub async fn start(&self, job: &shared::transfer::Job) -> shared::DomainResult<()> {
        use shared::transfer::JobKind;
        match (self.runner, job.kind) {
            (JobRunner::InProcess, _) => {
                let this = self.clone();
                let id = job.id.clone();
                tokio::spawn(async move {
                    // Nobody else picks the job up in this process: a run the store cut short
                    // is started again (from the job's checkpoint) after a pause, and a run that
                    // cannot go on fails the job, so its status never stays `running` for ever.
                    let mut backoff = this.importer.store_retry.clone();
                    loop {
                        match this.run(&id, Default::default()).await {
                            Ok(_) => break,
                            Err(e @ shared::DomainError::Unavailable(_))
                                if backoff.wait().await =>
                            {
                                tracing::warn!(job_id = %id, error = %e, "job paused, going on");
                            }
                            Err(e) => {
                                tracing::error!(job_id = %id, error = %e, "job stopped");
                                if let Err(e) = this.jobs.fail(&id, e.to_string()).await {
                                    tracing::error!(job_id = %id, error = %e, "job left running");
                                }
                                break;
                            }
                        }
                    }
                });
                Ok(())
            }
            // The uploaded file's own S3 event starts an import.
            (JobRunner::ViaBucket, JobKind::Import) => Ok(()),
            (JobRunner::ViaBucket, JobKind::Export) => self.request_run(&job.id, 0).await,
        }
    }

    /// Leaves `jobs/<id>-<attempt>.json` for the worker (a new key, so a new S3 event).
    pub async fn request_run(&self, job_id: &str, attempt: u32) -> shared::DomainResult<()> {
        let body = json!({ "job_id": job_id, "attempt": attempt }).to_string();
        self.files
            .put(
                &format!("jobs/{job_id}-{attempt}.json"),
                body.into_bytes(),
                "application/json",
            )
            .await
    }

    /// Runs a job until it ends or `limits` pause it (imports only; exports run to the end).
    pub async fn run(
        &self,
        job_id: &str,
        limits: shared::transfer::import::RunLimits,
    ) -> shared::DomainResult<shared::transfer::Job> {
        let job = self.jobs.get(job_id).await?;
        match job.kind {
            shared::transfer::JobKind::Import => self.importer.run(job_id, limits).await,
            shared::transfer::JobKind::Export => {
                let params = query::parse(job.filters.as_deref()).map_err(|e| e.0)?;
                let list = customers::list_query(&params).map_err(|e| e.0)?;
                self.exporter.run(job_id, list).await
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Health,
    OpenApi,
    Jwks,
    AuthProviders,
    SignIn,
    SignInGet,
    Register,
    Callback,
    CallbackPost,
    RefreshToken,
    CreateSession,
    DeleteSession,
    ResetPassword,
    UpdateProvider,
    ListCustomers,
    CreateCustomer,
    GetCustomer,
    UpdateCustomer,
    DeleteCustomer,
    ListAddresses,
    CreateAddress,
    GetAddress,
    UpdateAddress,
    DeleteAddress,
    BatchCustomerGroups,
    ListGroups,
    CreateGroup,
    GetGroup,
    UpdateGroup,
    DeleteGroup,
    BatchGroupCustomers,
    ListApiKeys,
    CreateApiKey,
    GetApiKey,
    UpdateApiKey,
    RevokeApiKey,
    DeleteApiKey,
    StoreRegister,
    StoreMe,
    StoreUpdateMe,
    StoreListAddresses,
    StoreCreateAddress,
    StoreGetAddress,
    StoreUpdateAddress,
    StoreDeleteAddress,
    CreateImport,
    ListImports,
    GetImport,
    ImportErrors,
    CreateExport,
    ListExports,
    GetExport,
    DownloadExport,
    ListCompanies,
    CreateCompany,
    GetCompany,
    UpdateCompany,
    DeleteCompany,
    BatchCompanyCustomers,
    StoreMyCompany,
    StoreCompanyMembers,
    StoreUpdateCompanyMembers,
    StoreLeaveCompany,
    StoreCompanyInvitations,
    StoreAcceptCompanyInvitation,
    StoreDeclineCompanyInvitation,
    StorePermissionCheck,
    ListGrants,
    CreateGrant,
    GetGrant,
    DeleteGrant,
    AdminPermissionCheck,
    CustomerPermissions,
    ListRoles,
    CreateRole,
    GetRole,
    UpdateRole,
    DeleteRole,
    ListUsers,
    CreateUser,
    GetMe,
    GetUser,
    UpdateUser,
}

/// What a route needs from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Staff,
    /// Any signed-in identity, linked to an actor or not (Medusa's `allowUnregistered`).
    Identity,
    /// A publishable key and a customer identity that may have no customer yet.
    StoreSignup,
    /// A publishable key and a signed-in customer.
    Shopper,
}

pub struct RouteSpec {
    pub route: Route,
    pub method: Method,
    /// axum syntax: `{id}` for a path parameter (also OpenAPI's).
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub body: Option<&'static [Field]>,
    pub query: &'static [&'static str],
    /// The key of the success envelope, for the OpenAPI document.
    pub response: Response,
}

/// The media type of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Json,
    Csv,
}

impl MediaType {
    /// The name the OpenAPI document and error messages give.
    pub fn name(self) -> &'static str {
        match self {
            MediaType::Json => "application/json",
            MediaType::Csv => "text/csv",
        }
    }

    /// The media type a `Content-Type` value names (parameters such as `charset` aside), if it
    /// is one this API reads.
    pub fn parse(content_type: &str) -> Option<MediaType> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("application/json") {
            Some(MediaType::Json)
        } else if essence.eq_ignore_ascii_case("text/csv")
            || essence.eq_ignore_ascii_case("application/csv")
        {
            Some(MediaType::Csv)
        } else {
            None
        }
    }

    /// The media type of a request's body, from its `Content-Type` header.
    pub fn of(headers: &axum::http::HeaderMap) -> Option<MediaType> {
        headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(MediaType::parse)
    }
}

impl RouteSpec {
    /// The media types a request body may have on this route: JSON everywhere (an empty body
    /// reads as `{}`), and CSV as well on the import route. The content-type check
    /// ([`csrf::require_declared_media_type`]) and the OpenAPI document both read this, so
    /// a body type is declared in one place.
    pub fn body_media_types(&self) -> &'static [MediaType] {
        match self.route {
            Route::CreateImport => &[MediaType::Csv, MediaType::Json],
            _ => &[MediaType::Json],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    Status,
    Document,
    Token,
    SignIn,
    Session,
    Success,
    Created,
    Providers,
    ApiKey,
    ApiKeyList,
    ApiKeyDeleted,
    StoreAddressDeleted,
    Import,
    ImportList,
    Export,
    ExportList,
    File,
    Customer,
    CustomerList,
    CustomerDeleted,
    AddressList,
    Address,
    AddressDeleted,
    Group,
    GroupList,
    GroupDeleted,
    /// `{<key>: {…}}`.
    One(&'static str),
    /// `{<key>: [...], count, offset, limit}`.
    Many(&'static str),
    /// `{id, object: <name>, deleted: true}`.
    Deleted(&'static str),
}

const LOGIN_BODY: &[Field] = &[
    body::optional("email", body::Kind::String),
    body::optional("password", body::Kind::String),
    body::optional("callback_url", body::Kind::String),
    body::optional("mfa_code", body::Kind::String),
];
const REGISTER_BODY: &[Field] = &[
    body::required("email", body::Kind::String),
    body::required("password", body::Kind::String),
];
const UPDATE_PROVIDER_BODY: &[Field] = &[
    body::optional("email", body::Kind::String),
    body::required("password", body::Kind::String),
];
const CALLBACK_BODY: &[Field] = &[
    body::optional("code", body::Kind::String),
    body::optional("state", body::Kind::String),
];

pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        route: Route::Health,
        method: Method::GET,
        path: "/health",
        summary: "Liveness: 200 once the API serves",
        access: Access::Public,
        body: None,
        query: &[],
        response: Response::Status,
    },
    RouteSpec {
        route: Route::OpenApi,
        method: Method::GET,
        path: "/openapi.json",
        summary: "This OpenAPI document",
        access: Access::Public,
        body: None,
        query: &[],
        response: Response::Document,
    },
    RouteSpec {
        route: Route::Jwks,
        method: Method::GET,
        path: "/.well-known/jwks.json",
        summary: "Public keys of the local token issuer",
        access: Access::Public,
        body: None,
        query: &[],
        response: Response::Document,
    },
    RouteSpec {
        route: Route::AuthProviders,
        method: Method::GET,
        path: "/auth/{actor}/providers",
        summary: "Sign-in methods offered to an actor type",
        access: Access::Public,
        body: None,
        query: &[],
        response: Response::Providers,
    },
    RouteSpec {
        route: Route::SignIn,
        method: Method::POST,
        path: "/auth/{actor}/{provider}",
        summary: "Sign in: {token}, or {location} for a redirect provider",
        access: Access::Public,
        body: Some(LOGIN_BODY),
        query: &[],
        response: Response::SignIn,
    },
    RouteSpec {
        route: Route::SignInGet,
        method: Method::GET,
        path: "/auth/{actor}/{provider}",
        summary: "Start a redirect sign-in: {location}",
        access: Access::Public,
        body: None,
        query: &[],
        response: Response::SignIn,
    },
    RouteSpec {
        route: Route::Register,
        method: Method::POST,
        path: "/auth/{actor}/{provider}/register",
        summary: "Register an identity: {token} with no actor yet",
        access: Access::Public,
        body: Some(REGISTER_BODY),
        query: &[],
        response: Response::Token,
    },
    RouteSpec {
        route: Route::Callback,
        method: Method::GET,
        path: "/auth/{actor}/{provider}/callback",
        summary: "Finish a redirect sign-in: exchange the code for {token}",
        access: Access::Public,
        body: None,
        query: &["code", "state"],
        response: Response::Token,
    },
    RouteSpec {
        route: Route::CallbackPost,
        method: Method::POST,
        path: "/auth/{actor}/{provider}/callback",
        summary: "Finish a redirect sign-in (code in the body)",
        access: Access::Public,
        body: Some(CALLBACK_BODY),
        query: &["code", "state"],
        response: Response::Token,
    },
    RouteSpec {
        route: Route::RefreshToken,
        method: Method::POST,
        path: "/auth/token/refresh",
        summary: "A new token from the identity as it is now",
        access: Access::Identity,
        body: None,
        query: &[],
        response: Response::Token,
    },
    RouteSpec {
        route: Route::CreateSession,
        method: Method::POST,
        path: "/auth/session",
        summary: "Turn a bearer token into a session cookie",
        access: Access::Identity,
        body: None,
        query: &[],
        response: Response::Session,
    },
    RouteSpec {
        route: Route::DeleteSession,
        method: Method::DELETE,
        path: "/auth/session",
        summary: "End the cookie session, or with everywhere=true every token and session",
        access: Access::Identity,
        body: None,
        query: &["everywhere"],
        response: Response::Success,
    },
    RouteSpec {
        route: Route::ResetPassword,
        method: Method::POST,
        path: "/auth/{actor}/{provider}/reset-password",
        summary: "Start a password reset (201 whether or not the identity exists)",
        access: Access::Public,
        body: Some(auth::RESET_BODY),
        query: &[],
        response: Response::Created,
    },
    RouteSpec {
        route: Route::UpdateProvider,
        method: Method::POST,
        path: "/auth/{actor}/{provider}/update",
        summary: "Set a new password with a reset token (Bearer or ?token=)",
        access: Access::Public,
        body: Some(UPDATE_PROVIDER_BODY),
        query: &["token"],
        response: Response::Success,
    },
    RouteSpec {
        route: Route::ListCustomers,
        method: Method::GET,
        path: "/admin/customers",
        summary: "List customers",
        access: Access::Staff,
        body: None,
        query: customers::LIST_PARAMS,
        response: Response::CustomerList,
    },
    RouteSpec {
        route: Route::CreateCustomer,
        method: Method::POST,
        path: "/admin/customers",
        summary: "Create a customer",
        access: Access::Staff,
        body: Some(customers::CUSTOMER_BODY),
        query: customers::FIELDS_PARAM,
        response: Response::Customer,
    },
    RouteSpec {
        route: Route::CreateImport,
        method: Method::POST,
        path: "/admin/customers/imports",
        summary: "Import a CSV (text/csv body), or get an upload URL for a file of {size} bytes",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::Import,
    },
    RouteSpec {
        route: Route::ListImports,
        method: Method::GET,
        path: "/admin/customers/imports",
        summary: "Import jobs, newest first",
        access: Access::Staff,
        body: None,
        query: transfer::LIST_PARAMS,
        response: Response::ImportList,
    },
    RouteSpec {
        route: Route::GetImport,
        method: Method::GET,
        path: "/admin/customers/imports/{id}",
        summary: "An import job and its counts",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::Import,
    },
    RouteSpec {
        route: Route::ImportErrors,
        method: Method::GET,
        path: "/admin/customers/imports/{id}/errors",
        summary: "An import's error report (where the file store cannot sign URLs)",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::File,
    },
    RouteSpec {
        route: Route::CreateExport,
        method: Method::POST,
        path: "/admin/customers/exports",
        summary: "Export the customers the list filters select (format=csv|ndjson)",
        access: Access::Staff,
        body: None,
        query: customers::LIST_PARAMS,
        response: Response::Export,
    },
    RouteSpec {
        route: Route::ListExports,
        method: Method::GET,
        path: "/admin/customers/exports",
        summary: "Export jobs, newest first",
        access: Access::Staff,
        body: None,
        query: transfer::LIST_PARAMS,
        response: Response::ExportList,
    },
    RouteSpec {
        route: Route::GetExport,
        method: Method::GET,
        path: "/admin/customers/exports/{id}",
        summary: "An export job and its download URL",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::Export,
    },
    RouteSpec {
        route: Route::DownloadExport,
        method: Method::GET,
        path: "/admin/customers/exports/{id}/download",
        summary: "The exported file (where the file store cannot sign URLs)",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::File,
    },
    RouteSpec {
        route: Route::GetCustomer,
        method: Method::GET,
        path: "/admin/customers/{id}",
        summary: "Retrieve a customer",
        access: Access::Staff,
        body: None,
        query: customers::FIELDS_PARAM,
        response: Response::Customer,
    },
    RouteSpec {
        route: Route::UpdateCustomer,
        method: Method::POST,
        path: "/admin/customers/{id}",
        summary: "Update a customer",
        access: Access::Staff,
        body: Some(customers::CUSTOMER_BODY),
        query: customers::FIELDS_PARAM,
        response: Response::Customer,
    },
    RouteSpec {
        route: Route::DeleteCustomer,
        method: Method::DELETE,
        path: "/admin/customers/{id}",
        summary: "Soft-delete a customer",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::CustomerDeleted,
    },
    RouteSpec {
        route: Route::ListAddresses,
        method: Method::GET,
        path: "/admin/customers/{id}/addresses",
        summary: "List a customer's addresses",
        access: Access::Staff,
        body: None,
        query: addresses::LIST_PARAMS,
        response: Response::AddressList,
    },
    RouteSpec {
        route: Route::CreateAddress,
        method: Method::POST,
        path: "/admin/customers/{id}/addresses",
        summary: "Add an address (answers with the customer)",
        access: Access::Staff,
        body: Some(addresses::ADDRESS_BODY),
        query: customers::FIELDS_PARAM,
        response: Response::Customer,
    },
    RouteSpec {
        route: Route::GetAddress,
        method: Method::GET,
        path: "/admin/customers/{id}/addresses/{address_id}",
        summary: "Retrieve an address",
        access: Access::Staff,
        body: None,
        query: customers::FIELDS_PARAM,
        response: Response::Address,
    },
    RouteSpec {
        route: Route::UpdateAddress,
        method: Method::POST,
        path: "/admin/customers/{id}/addresses/{address_id}",
        summary: "Update an address (answers with the customer)",
        access: Access::Staff,
        body: Some(addresses::ADDRESS_BODY),
        query: customers::FIELDS_PARAM,
        response: Response::Customer,
    },
    RouteSpec {
        route: Route::DeleteAddress,
        method: Method::DELETE,
        path: "/admin/customers/{id}/addresses/{address_id}",
        summary: "Soft-delete an address",
        access: Access::Staff,
        body: None,
        query: customers::FIELDS_PARAM,
        response: Response::AddressDeleted,
    },
    RouteSpec {
        route: Route::BatchCustomerGroups,
        method: Method::POST,
        path: "/admin/customers/{id}/customer-groups",
        summary: "Add a customer to groups and remove it from others",
        access: Access::Staff,
        body: Some(groups::BATCH_BODY),
        query: customers::FIELDS_PARAM,
        response: Response::Customer,
    },
    RouteSpec {
        route: Route::ListGroups,
        method: Method::GET,
        path: "/admin/customer-groups",
        summary: "List customer groups",
        access: Access::Staff,
        body: None,
        query: groups::LIST_PARAMS,
        response: Response::GroupList,
    },
    RouteSpec {
        route: Route::CreateGroup,
        method: Method::POST,
        path: "/admin/customer-groups",
        summary: "Create a customer group",
        access: Access::Staff,
        body: Some(groups::CREATE_BODY),
        query: customers::FIELDS_PARAM,
        response: Response::Group,
    },
    RouteSpec {
        route: Route::GetGroup,
        method: Method::GET,
        path: "/admin/customer-groups/{id}",
        summary: "Retrieve a customer group",
        access: Access::Staff,
        body: None,
        query: customers::FIELDS_PARAM,
        response: Response::Group,
    },
    RouteSpec {
        route: Route::UpdateGroup,
        method: Method::POST,
        path: "/admin/customer-groups/{id}",
        summary: "Update a customer group",
        access: Access::Staff,
        body: Some(groups::UPDATE_BODY),
        query: customers::FIELDS_PARAM,
        response: Response::Group,
    },
    RouteSpec {
        route: Route::DeleteGroup,
        method: Method::DELETE,
        path: "/admin/customer-groups/{id}",
        summary: "Soft-delete a customer group and detach its members",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::GroupDeleted,
    },
    RouteSpec {
        route: Route::BatchGroupCustomers,
        method: Method::POST,
        path: "/admin/customer-groups/{id}/customers",
        summary: "Add customers to a group and remove others (up to 1,000 ids)",
        access: Access::Staff,
        body: Some(groups::BATCH_BODY),
        query: customers::FIELDS_PARAM,
        response: Response::Group,
    },
    RouteSpec {
        route: Route::ListApiKeys,
        method: Method::GET,
        path: "/admin/api-keys",
        summary: "List API keys",
        access: Access::Staff,
        body: None,
        query: api_keys::LIST_PARAMS,
        response: Response::ApiKeyList,
    },
    RouteSpec {
        route: Route::CreateApiKey,
        method: Method::POST,
        path: "/admin/api-keys",
        summary: "Create a publishable or secret API key",
        access: Access::Staff,
        body: Some(api_keys::CREATE_BODY),
        query: &[],
        response: Response::ApiKey,
    },
    RouteSpec {
        route: Route::GetApiKey,
        method: Method::GET,
        path: "/admin/api-keys/{id}",
        summary: "Retrieve an API key",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::ApiKey,
    },
    RouteSpec {
        route: Route::UpdateApiKey,
        method: Method::POST,
        path: "/admin/api-keys/{id}",
        summary: "Rename an API key",
        access: Access::Staff,
        body: Some(api_keys::UPDATE_BODY),
        query: &[],
        response: Response::ApiKey,
    },
    RouteSpec {
        route: Route::RevokeApiKey,
        method: Method::POST,
        path: "/admin/api-keys/{id}/revoke",
        summary: "Revoke an API key",
        access: Access::Staff,
        body: Some(api_keys::REVOKE_BODY),
        query: &[],
        response: Response::ApiKey,
    },
    RouteSpec {
        route: Route::DeleteApiKey,
        method: Method::DELETE,
        path: "/admin/api-keys/{id}",
        summary: "Delete a revoked API key",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::ApiKeyDeleted,
    },
    RouteSpec {
        route: Route::StoreRegister,
        method: Method::POST,
        path: "/store/customers",
        summary: "Create the signed-in identity's customer (registration)",
        access: Access::StoreSignup,
        body: Some(store::CREATE_BODY),
        query: customers::FIELDS_PARAM,
        response: Response::Customer,
    },
    RouteSpec {
        route: Route::StoreMe,
        method: Method::GET,
        path: "/store/customers/me",
        summary: "The signed-in customer",
        access: Access::Shopper,
        body: None,
        query: customers::FIELDS_PARAM,
        response: Response::Customer,
    },
    RouteSpec {
        route: Route::StoreUpdateMe,
        method: Method::POST,
        path: "/store/customers/me",
        summary: "Update the signed-in customer",
        access: Access::Shopper,
        body: Some(store::UPDATE_BODY),
        query: customers::FIELDS_PARAM,
        response: Response::Customer,
    },
    RouteSpec {
        route: Route::StoreListAddresses,
        method: Method::GET,
        path: "/store/customers/me/addresses",
        summary: "The signed-in customer's addresses",
        access: Access::Shopper,
        body: None,
        query: store::ADDRESS_LIST_PARAMS,
        response: Response::AddressList,
    },
    RouteSpec {
        route: Route::StoreCreateAddress,
        method: Method::POST,
        path: "/store/customers/me/addresses",
        summary: "Add an address (answers with the customer)",
        access: Access::Shopper,
        body: Some(store::ADDRESS_BODY),
        query: customers::FIELDS_PARAM,
        response: Response::Customer,
    },
    RouteSpec {
        route: Route::StoreGetAddress,
        method: Method::GET,
        path: "/store/customers/me/addresses/{address_id}",
        summary: "One of the signed-in customer's addresses",
        access: Access::Shopper,
        body: None,
        query: customers::FIELDS_PARAM,
        response: Response::Address,
    },
    RouteSpec {
        route: Route::StoreUpdateAddress,
        method: Method::POST,
        path: "/store/customers/me/addresses/{address_id}",
        summary: "Update an address (answers with the customer)",
        access: Access::Shopper,
        body: Some(store::ADDRESS_BODY),
        query: customers::FIELDS_PARAM,
        response: Response::Customer,
    },
    RouteSpec {
        route: Route::StoreDeleteAddress,
        method: Method::DELETE,
        path: "/store/customers/me/addresses/{address_id}",
        summary: "Delete an address",
        access: Access::Shopper,
        body: None,
        query: customers::FIELDS_PARAM,
        response: Response::StoreAddressDeleted,
    },
    RouteSpec {
        route: Route::ListCompanies,
        method: Method::GET,
        path: "/admin/companies",
        summary: "List B2B companies",
        access: Access::Staff,
        body: None,
        query: companies::LIST_PARAMS,
        response: Response::Many("companies"),
    },
    RouteSpec {
        route: Route::CreateCompany,
        method: Method::POST,
        path: "/admin/companies",
        summary: "Create a company",
        access: Access::Staff,
        body: Some(companies::CREATE_BODY),
        query: &[],
        response: Response::One("company"),
    },
    RouteSpec {
        route: Route::GetCompany,
        method: Method::GET,
        path: "/admin/companies/{id}",
        summary: "Retrieve a company",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::One("company"),
    },
    RouteSpec {
        route: Route::UpdateCompany,
        method: Method::POST,
        path: "/admin/companies/{id}",
        summary: "Update a company",
        access: Access::Staff,
        body: Some(companies::UPDATE_BODY),
        query: &[],
        response: Response::One("company"),
    },
    RouteSpec {
        route: Route::DeleteCompany,
        method: Method::DELETE,
        path: "/admin/companies/{id}",
        summary: "Delete a company: members detached, its grants revoked",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::Deleted("company"),
    },
    RouteSpec {
        route: Route::BatchCompanyCustomers,
        method: Method::POST,
        path: "/admin/companies/{id}/customers",
        summary: "Add customers to a company with a role, remove others",
        access: Access::Staff,
        body: Some(companies::MEMBERS_BODY),
        query: &[],
        response: Response::One("company"),
    },
    RouteSpec {
        route: Route::StoreMyCompany,
        method: Method::GET,
        path: "/store/customers/me/company",
        summary: "The signed-in customer's company and role",
        access: Access::Shopper,
        body: None,
        query: &[],
        response: Response::One("company"),
    },
    RouteSpec {
        route: Route::StoreCompanyMembers,
        method: Method::GET,
        path: "/store/customers/me/company/members",
        summary: "Members of the customer's company (company admins)",
        access: Access::Shopper,
        body: None,
        query: companies::MEMBER_LIST_PARAMS,
        response: Response::Many("members"),
    },
    RouteSpec {
        route: Route::StoreUpdateCompanyMembers,
        method: Method::POST,
        path: "/store/customers/me/company/members",
        summary: "Change buyers, invite by email, revoke invitations (company admins)",
        access: Access::Shopper,
        body: Some(companies::STORE_MEMBERS_BODY),
        query: &[],
        response: Response::Many("members"),
    },
    RouteSpec {
        route: Route::StoreLeaveCompany,
        method: Method::DELETE,
        path: "/store/customers/me/company",
        summary: "Leave the customer's company (not its last admin)",
        access: Access::Shopper,
        body: None,
        query: &[],
        response: Response::Deleted("company_membership"),
    },
    RouteSpec {
        route: Route::StoreCompanyInvitations,
        method: Method::GET,
        path: "/store/customers/me/company-invitations",
        summary: "Pending invitations to the customer's email",
        access: Access::Shopper,
        body: None,
        query: companies::INVITATION_LIST_PARAMS,
        response: Response::Many("company_invitations"),
    },
    RouteSpec {
        route: Route::StoreAcceptCompanyInvitation,
        method: Method::POST,
        path: "/store/customers/me/company-invitations/{id}/accept",
        summary: "Join the inviting company",
        access: Access::Shopper,
        body: None,
        query: &[],
        response: Response::One("company"),
    },
    RouteSpec {
        route: Route::StoreDeclineCompanyInvitation,
        method: Method::POST,
        path: "/store/customers/me/company-invitations/{id}/decline",
        summary: "Decline (delete) an invitation",
        access: Access::Shopper,
        body: None,
        query: &[],
        response: Response::Deleted("company_invitation"),
    },
    RouteSpec {
        route: Route::StorePermissionCheck,
        method: Method::POST,
        path: "/store/permissions/check",
        summary: "What the signed-in customer may do on resources",
        access: Access::Shopper,
        body: Some(grants::CHECK_BODY),
        query: &[],
        response: Response::Many("results"),
    },
    RouteSpec {
        route: Route::ListGrants,
        method: Method::GET,
        path: "/admin/permission-grants",
        summary: "List permission grants",
        access: Access::Staff,
        body: None,
        query: grants::LIST_PARAMS,
        response: Response::Many("permission_grants"),
    },
    RouteSpec {
        route: Route::CreateGrant,
        method: Method::POST,
        path: "/admin/permission-grants",
        summary: "Grant a principal an action on a resource",
        access: Access::Staff,
        body: Some(grants::CREATE_BODY),
        query: &[],
        response: Response::One("permission_grant"),
    },
    RouteSpec {
        route: Route::GetGrant,
        method: Method::GET,
        path: "/admin/permission-grants/{id}",
        summary: "Retrieve a permission grant",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::One("permission_grant"),
    },
    RouteSpec {
        route: Route::DeleteGrant,
        method: Method::DELETE,
        path: "/admin/permission-grants/{id}",
        summary: "Revoke a permission grant",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::Deleted("permission_grant"),
    },
    RouteSpec {
        route: Route::AdminPermissionCheck,
        method: Method::POST,
        path: "/admin/permissions/check",
        summary: "What a customer may do on resources",
        access: Access::Staff,
        body: Some(grants::ADMIN_CHECK_BODY),
        query: &[],
        response: Response::Many("results"),
    },
    RouteSpec {
        route: Route::CustomerPermissions,
        method: Method::GET,
        path: "/admin/customers/{id}/permissions",
        summary: "A customer's effective grants and their source",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::Many("permission_grants"),
    },
    RouteSpec {
        route: Route::ListRoles,
        method: Method::GET,
        path: "/admin/roles",
        summary: "List staff roles (built-in and custom)",
        access: Access::Staff,
        body: None,
        query: roles::LIST_PARAMS,
        response: Response::Many("roles"),
    },
    RouteSpec {
        route: Route::CreateRole,
        method: Method::POST,
        path: "/admin/roles",
        summary: "Create a custom staff role",
        access: Access::Staff,
        body: Some(roles::CREATE_BODY),
        query: &[],
        response: Response::One("role"),
    },
    RouteSpec {
        route: Route::GetRole,
        method: Method::GET,
        path: "/admin/roles/{id}",
        summary: "Retrieve a staff role",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::One("role"),
    },
    RouteSpec {
        route: Route::UpdateRole,
        method: Method::POST,
        path: "/admin/roles/{id}",
        summary: "Update a custom staff role",
        access: Access::Staff,
        body: Some(roles::UPDATE_BODY),
        query: &[],
        response: Response::One("role"),
    },
    RouteSpec {
        route: Route::DeleteRole,
        method: Method::DELETE,
        path: "/admin/roles/{id}",
        summary: "Delete a custom role no one holds",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::Deleted("role"),
    },
    RouteSpec {
        route: Route::ListUsers,
        method: Method::GET,
        path: "/admin/users",
        summary: "List staff users",
        access: Access::Staff,
        body: None,
        query: roles::LIST_PARAMS,
        response: Response::Many("users"),
    },
    RouteSpec {
        route: Route::CreateUser,
        method: Method::POST,
        path: "/admin/users",
        summary: "Create (or invite) a staff user with roles",
        access: Access::Staff,
        body: Some(roles::CREATE_USER_BODY),
        query: &[],
        response: Response::One("user"),
    },
    RouteSpec {
        route: Route::GetMe,
        method: Method::GET,
        path: "/admin/users/me",
        summary: "The signed-in staff user",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::One("user"),
    },
    RouteSpec {
        route: Route::GetUser,
        method: Method::GET,
        path: "/admin/users/{id}",
        summary: "Retrieve a staff user",
        access: Access::Staff,
        body: None,
        query: &[],
        response: Response::One("user"),
    },
    RouteSpec {
        route: Route::UpdateUser,
        method: Method::POST,
        path: "/admin/users/{id}",
        summary: "Update a staff user's names, roles, metadata",
        access: Access::Staff,
        body: Some(roles::UPDATE_USER_BODY),
        query: &[],
        response: Response::One("user"),
    },
];

/// The route a request matched (by method and route pattern).
pub fn route_of(method: &Method, matched_path: &str) -> Option<Route> {
    ROUTES
        .iter()
        .find(|s| s.method == method && s.path == matched_path)
        .map(|s| s.route)
}

pub fn spec(route: Route) -> &'static RouteSpec {
    ROUTES
        .iter()
        .find(|s| s.route == route)
        .unwrap_or_else(|| unreachable!("every route has a spec"))
}

fn handler(route: Route) -> MethodRouter<AppState> {
    match route {
        Route::Health => get(health),
        Route::OpenApi => get(openapi_document),
        Route::Jwks => get(jwks),
        Route::AuthProviders => get(auth::providers),
        Route::SignIn => post(auth::sign_in),
        Route::SignInGet => get(auth::sign_in),
        Route::Register => post(auth::register),
        Route::Callback => get(auth::callback),
        Route::CallbackPost => post(auth::callback),
        Route::RefreshToken => post(auth::refresh),
        Route::CreateSession => post(auth::create_session),
        Route::DeleteSession => delete(auth::delete_session),
        Route::ResetPassword => post(auth::reset_password),
        Route::UpdateProvider => post(auth::update_password),
        Route::ListCustomers => get(customers::list),
        Route::CreateCustomer => post(customers::create),
        Route::GetCustomer => get(customers::retrieve),
        Route::UpdateCustomer => post(customers::update),
        Route::DeleteCustomer => delete(customers::delete),
        Route::ListAddresses => get(addresses::list),
        Route::CreateAddress => post(addresses::create),
        Route::GetAddress => get(addresses::retrieve),
        Route::UpdateAddress => post(addresses::update),
        Route::DeleteAddress => delete(addresses::delete),
        Route::BatchCustomerGroups => post(groups::batch_groups),
        Route::ListGroups => get(groups::list),
        Route::CreateGroup => post(groups::create),
        Route::GetGroup => get(groups::retrieve),
        Route::UpdateGroup => post(groups::update),
        Route::DeleteGroup => delete(groups::delete),
        Route::BatchGroupCustomers => post(groups::batch_customers),
        Route::ListApiKeys => get(api_keys::list),
        Route::CreateApiKey => post(api_keys::create),
        Route::GetApiKey => get(api_keys::retrieve),
        Route::UpdateApiKey => post(api_keys::update),
        Route::RevokeApiKey => post(api_keys::revoke),
        Route::DeleteApiKey => delete(api_keys::delete),
        Route::StoreRegister => post(store::register),
        Route::StoreMe => get(store::me),
        Route::StoreUpdateMe => post(store::update_me),
        Route::StoreListAddresses => get(store::list_addresses),
        Route::StoreCreateAddress => post(store::create_address),
        Route::StoreGetAddress => get(store::get_address),
        Route::StoreUpdateAddress => post(store::update_address),
        Route::StoreDeleteAddress => delete(store::delete_address),
        Route::CreateImport => {
            post(transfer::create_import).layer(DefaultBodyLimit::max(transfer::MAX_CSV_BODY))
        }
        Route::ListImports => get(transfer::list_imports),
        Route::GetImport => get(transfer::get_import),
        Route::ImportErrors => get(transfer::import_errors),
        Route::CreateExport => post(transfer::create_export),
        Route::ListExports => get(transfer::list_exports),
        Route::GetExport => get(transfer::get_export),
        Route::DownloadExport => get(transfer::download_export),
        Route::ListCompanies => get(companies::list),
        Route::CreateCompany => post(companies::create),
        Route::GetCompany => get(companies::retrieve),
        Route::UpdateCompany => post(companies::update),
        Route::DeleteCompany => delete(companies::delete),
        Route::BatchCompanyCustomers => post(companies::batch_customers),
        Route::StoreMyCompany => get(companies::store_company),
        Route::StoreCompanyMembers => get(companies::store_members),
        Route::StoreUpdateCompanyMembers => post(companies::store_update_members),
        Route::StoreLeaveCompany => delete(companies::store_leave_company),
        Route::StoreCompanyInvitations => get(companies::store_invitations),
        Route::StoreAcceptCompanyInvitation => post(companies::store_accept_invitation),
        Route::StoreDeclineCompanyInvitation => post(companies::store_decline_invitation),
        Route::StorePermissionCheck => post(grants::store_check),
        Route::ListGrants => get(grants::list),
        Route::CreateGrant => post(grants::create),
        Route::GetGrant => get(grants::retrieve),
        Route::DeleteGrant => delete(grants::delete),
        Route::AdminPermissionCheck => post(grants::admin_check),
        Route::CustomerPermissions => get(grants::customer_permissions),
        Route::ListRoles => get(roles::list),
        Route::CreateRole => post(roles::create),
        Route::GetRole => get(roles::retrieve),
        Route::UpdateRole => post(roles::update),
        Route::DeleteRole => delete(roles::delete),
        Route::ListUsers => get(roles::list_users),
        Route::CreateUser => post(roles::create_user),
        Route::GetMe => get(roles::me),
        Route::GetUser => get(roles::get_user),
        Route::UpdateUser => post(roles::update_user),
    }
}

/// Every route: what the local server mounts.
pub fn all_routes() -> Vec<Route> {
    ROUTES.iter().map(|s| s.route).collect()
}

/// A router serving `routes` with the shared layers: a span per request, CORS for the allowed
/// origins, the body limit, panics turned into Medusa's 500, and JSON 404/405s; and on every
/// route, the cross-site request checks (declared body types, the origin of cookie requests).
/// The local server and every Lambda are built here, so all get the same checks.
pub fn router(state: AppState, routes: &[Route]) -> Router {
    let mut router = Router::new();
    for route in routes {
        router = router.route(spec(*route).path, handler(*route));
    }
    // Route layers run after routing, where the matched route (and so its spec) is known.
    let router = router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::require_trusted_origin,
        ))
        .route_layer(axum::middleware::from_fn(csrf::require_declared_media_type))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError(DomainError::Internal(
                "handler panicked".into(),
            )))
        }));
    // Outside the checks, so that a refusal reaches an allowed origin's page readably.
    let router = match csrf::cors(&state.allowed_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "unmatched".into());
            tracing::info_span!("request", method = %request.method(), route = %route, actor = tracing::field::Empty)
        }))
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError(DomainError::NotFound(format!(
        "Cannot {} {}",
        request.method(),
        request.uri().path()
    )))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn jwks(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let issuer = state
        .issuer
        .as_ref()
        .ok_or_else(|| ApiError(DomainError::NotFound("No local token issuer here".into())))?;
    serde_json::to_value(issuer.jwks())
        .map(Json)
        .map_err(|e| ApiError(DomainError::Internal(e.to_string())))
}

async fn openapi_document() -> Json<Value> {
    Json(openapi::document())
}
