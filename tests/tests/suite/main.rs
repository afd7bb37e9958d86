//! One test binary (one link) for every integration test.

mod addresses_groups_http;
mod b2b_http;
mod cognito_http;
mod csrf_http;
mod customers_http;
mod data_privacy;
mod dynamo_retries;
mod jwks_cache;
mod lambda_events;
mod openapi;
mod rbac_http;
mod revocation_http;
mod sign_in_limits;
mod store_auth_http;
mod store_conformance;
mod template;
mod tokens;
mod transfer_engine;
mod transfer_http;
mod triggers;
