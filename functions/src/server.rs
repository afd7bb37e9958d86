//! The local server: every route in one process, on the same router the Lambdas use.

use std::net::SocketAddr;
use std::sync::Arc;

use shared::store::KvStore;

use tokio::net::TcpListener;

use crate::app::{StartupError, build_state, open_store};
use crate::config::Config;
use crate::http::{all_routes, router};

/// Binds, then serves until ctrl-c/SIGTERM. Returns the bound address through `on_ready`.
pub async fn run(config: Config, on_ready: impl FnOnce(SocketAddr)) -> Result<(), StartupError> {
    let store = open_store(&config).await?;
    serve(config, store, on_ready).await
}

/// Serves on an already opened store (tests hand in their own).
pub async fn serve(
    config: Config,
    store: Arc<dyn KvStore>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), StartupError> {
    let state = build_state(&config, store).await?;
    let listener = TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|e| {
            StartupError(format!(
                "cannot listen on {}:{}: {e}",
                config.host, config.port
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartupError(e.to_string()))?;
    on_ready(addr);
    // The peer address feeds the sign-in limiter (per client address).
    let app = router(state, &all_routes()).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| StartupError(e.to_string()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
