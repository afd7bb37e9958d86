//! The Lambda entry point every per-route binary calls: config once, clients once, then the
//! shared router restricted to that binary's routes.

use crate::app::{build_state, init_tracing, open_store};
use crate::config::{Config, Mode};
use crate::http::{Route, router};

pub async fn serve(routes: &[Route]) -> Result<(), lambda_http::Error> {
    let config = Config::from_env(Mode::Lambda)?;
    init_tracing(config.json_logs);
    let store = open_store(&config).await?;
    let state = build_state(&config, store).await?;
    lambda_http::run(router(state, routes)).await
}
