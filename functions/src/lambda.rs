//! The Lambda entry points the per-route binaries call: config once, clients once, then the
//! shared router restricted to that binary's routes. Three variants, so that each function
//! links only the clients it uses.

use crate::app::{
    StartupError, build_lambda_auth_state, build_lambda_state, build_lambda_transfer_state,
    init_tracing,
};
use crate::config::{Config, Mode};
use crate::http::{AppState, Route, router};

async fn run<F>(routes: &[Route], build: impl FnOnce(Config) -> F) -> Result<(), lambda_http::Error>
where
    F: std::future::Future<Output = Result<AppState, StartupError>>,
{
    let config = Config::from_env(Mode::Lambda)?;
    init_tracing(config.json_logs);
    let state = build(config).await?;
    lambda_http::run(router(state, routes)).await
}

/// Customer, address, group, API-key and store routes.
pub async fn serve(routes: &[Route]) -> Result<(), lambda_http::Error> {
    run(
        routes,
        |config| async move { build_lambda_state(&config).await },
    )
    .await
}

/// The `/auth/*` routes that sign people in through Cognito.
pub async fn serve_auth(routes: &[Route]) -> Result<(), lambda_http::Error> {
    run(routes, |config| async move {
        build_lambda_auth_state(&config).await
    })
    .await
}

/// Import and export routes.
pub async fn serve_transfer(routes: &[Route]) -> Result<(), lambda_http::Error> {
    run(routes, |config| async move {
        build_lambda_transfer_state(&config).await
    })
    .await
}
