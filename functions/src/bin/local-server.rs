//! `cargo run`: the whole API on http://127.0.0.1:9000 with the embedded store.
//!
//! Subcommands: `serve` (the default) and `create-user EMAIL PASSWORD` (a staff user).

use functions::app::{build_state, init_tracing, open_store};
use functions::config::{Config, Mode};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let config = Config::from_env(Mode::LocalServer).map_err(|e| e.to_string())?;
    init_tracing(config.json_logs);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => functions::server::run(config, |addr| {
            tracing::info!("customer module API listening on http://{addr}");
        })
        .await
        .map_err(|e| e.to_string()),
        ["create-user", email, password] => {
            let store = open_store(&config).await.map_err(|e| e.to_string())?;
            let state = build_state(&config, store)
                .await
                .map_err(|e| e.to_string())?;
            let identity = state
                .identity
                .ok_or("staff users can be created only with the local sign-in provider")?;
            let id = identity
                .create_staff_user(email, password)
                .await
                .map_err(|e| e.to_string())?;
            println!("created staff user {id} ({email})");
            Ok(())
        }
        _ => Err("usage: local-server [serve | create-user EMAIL PASSWORD]".into()),
    }
}
