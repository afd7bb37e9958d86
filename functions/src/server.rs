//! The local server: every route in one process, on the same router the Lambdas use.

use std::net::SocketAddr;
use std::sync::Arc;

use shared::store::KvStore;

use tokio::net::TcpListener;

use crate::app::{StartupError, build_state, open_store};
use crate::config::{Config, FilesConfig};
use crate::data_dir::make_private;
use crate::http::{all_routes, router};

/// Binds, then serves until ctrl-c/SIGTERM. Returns the bound address through `on_ready`.
pub async fn run(config: Config, on_ready: impl FnOnce(SocketAddr)) -> Result<(), StartupError> {
    keep_files_private(&config)?;
    let store = open_store(&config).await?;
    serve_private(config, store, on_ready).await
}

/// Serves on an already opened store (tests hand in their own).
pub async fn serve(
    config: Config,
    store: Arc<dyn KvStore>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), StartupError> {
    keep_files_private(&config)?;
    serve_private(config, store, on_ready).await
}

/// [`serve`] once the data folder has been made private.
async fn serve_private(
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

/// The data folder (and a local files folder kept elsewhere) readable by the owner only.
pub fn keep_files_private(config: &Config) -> Result<(), StartupError> {
    let mut folders = vec![config.data_dir.as_path()];
    if let Some(FilesConfig::Local(dir)) = &config.files {
        folders.push(dir.as_path());
    }
    for folder in folders {
        make_private(folder)
            .map_err(|e| StartupError(format!("cannot make {} private: {e}", folder.display())))?;
    }
    Ok(())
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
