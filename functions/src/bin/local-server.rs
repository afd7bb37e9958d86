//! `cargo run`: the whole API on http://127.0.0.1:9000 with the embedded store.
//!
//! Subcommands: `serve` (the default) and `create-user EMAIL PASSWORD` (a staff user).

use functions::app::{build_state, init_tracing, open_store};
use functions::config::{Config, Mode};
use futures::StreamExt;
use shared::customers::{CustomerDraft, CustomerService};

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
                .ok_or("no sign-in provider is configured to create staff users with")?;
            let id = identity
                .create_staff_user(email, password)
                .await
                .map_err(|e| e.to_string())?;
            println!("created staff user {id} ({email})");
            Ok(())
        }
        ["seed-customers", count] => {
            let count: usize = count
                .parse()
                .map_err(|_| format!("not a number: {count}"))?;
            let store = open_store(&config).await.map_err(|e| e.to_string())?;
            let state = build_state(&config, store)
                .await
                .map_err(|e| e.to_string())?;
            let started = std::time::Instant::now();
            seed(&state.customers, count).await?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "seeded {count} customers in {seconds:.1} s ({:.0} customers/s)",
                count as f64 / seconds
            );
            Ok(())
        }
        _ => Err(
            "usage: local-server [serve | create-user EMAIL PASSWORD | seed-customers COUNT]"
                .into(),
        ),
    }
}

/// Demo and benchmark data: `count` customers with varied names, through the normal use case.
async fn seed(customers: &CustomerService, count: usize) -> Result<(), String> {
    const FIRST: [&str; 8] = [
        "Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances",
    ];
    const LAST: [&str; 8] = [
        "Lovelace", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen",
    ];
    let mut created = futures::stream::iter(0..count)
        .map(|i| {
            let draft = CustomerDraft {
                email: Some(format!("seed{i}@example.com")),
                first_name: Some(FIRST[i % FIRST.len()].to_owned()),
                last_name: Some(format!(
                    "{}{}",
                    LAST[(i / FIRST.len()) % LAST.len()],
                    i % 97
                )),
                company_name: (i % 3 == 0).then(|| format!("Company {}", i % 1000)),
                phone: Some(format!("+1555{i:07}")),
                ..Default::default()
            };
            customers.create(draft, None)
        })
        .buffer_unordered(64);
    while let Some(result) = created.next().await {
        result.map_err(|e| e.to_string())?;
    }
    Ok(())
}
