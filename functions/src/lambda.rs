//! The Lambda entry point every per-route binary calls: config once, clients once, then the
//! shared router restricted to that binary's routes.

use crate::app::{build_lambda_state, init_tracing};
use crate::config::{Config, Mode};
use crate::http::{Route, router};

pub async fn serve(routes: &[Route]) -> Result<(), lambda_http::Error> {
    let config = Config::from_env(Mode::Lambda)?;
    init_tracing(config.json_logs);
    let state = build_lambda_state(&config).await?;
    lambda_http::run(router(state, routes)).await
}
