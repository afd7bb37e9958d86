//! `cargo run`: the whole API on http://127.0.0.1:9000 with the embedded store, and the
//! operator's commands beside it (`cargo run -- --help`). Settings come from the environment
//! (see the README); the arguments say only what to do.

use clap::{Parser, Subcommand};
use functions::app::{build_state, init_tracing, open_store};
use functions::config::{Config, Mode};
use futures::StreamExt;
use shared::customers::{CustomerDraft, CustomerService};
use shared::files::LocalFiles;
use shared::transfer::JobKind;
use shared::transfer::export::Exporter;
use shared::transfer::import::{Importer, RunLimits};

/// mimalloc rather than glibc's allocator: a bulk import allocates and frees on five threads at
/// once (parser, planner, store writer, search entries, tasks), and glibc spent a third of the
/// import's time in its own locks and free-list upkeep (100,000 rows: 16.7 s, then 10.4 s).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The customer module's local server and its operator commands. Settings (DATA_DIR, STORE,
/// PORT, …) come from the environment.
#[derive(Debug, Parser)]
#[command(name = "local-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the whole API (the default when no command is given).
    Serve,
    /// Add a staff user who signs in with EMAIL and PASSWORD.
    CreateUser {
        /// The address the user signs in with.
        email: String,
        /// At least 8 characters.
        password: String,
        /// Comma-separated role ids (`admin` when left out).
        roles: Option<String>,
    },
    /// Fill the store with COUNT demo customers.
    SeedCustomers {
        /// How many customers to add.
        count: usize,
    },
    /// Import a customer CSV (ours or Shopify's), with progress.
    Import {
        /// Check every row and report, writing nothing.
        #[arg(long)]
        dry_run: bool,
        /// The CSV file to import.
        file: String,
    },
    /// Export customers to FILE: CSV (our import format) or, for `.ndjson`, NDJSON.
    Export {
        /// Where to write; `.ndjson` writes NDJSON, anything else CSV.
        file: String,
        /// A list query selecting whom to export, as on `GET /admin/customers`
        /// (`q=jane&groups[]=cusgroup_…`); everyone when left out.
        query: Option<String>,
    },
}

impl Command {
    /// Streaming commands, which keep their memory flat.
    fn is_bulk(&self) -> bool {
        matches!(self, Command::Import { .. } | Command::Export { .. })
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if command.is_bulk() {
        keep_bulk_memory_flat();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The streaming commands' memory stays flat only if freed memory goes back soon: by default
/// mimalloc commits its arenas whole and keeps freed pages for a second, which took a 100,000-row
/// import from about 85 MB to 130-145 MB peak RSS. mimalloc reads these settings when it starts,
/// before `main`, so the command starts itself again with them set (unless they are set).
#[cfg(unix)]
fn keep_bulk_memory_flat() {
    use std::os::unix::process::CommandExt as _;
    const SETTINGS: [(&str, &str); 2] = [
        ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
        ("MIMALLOC_PURGE_DELAY", "100"),
    ];
    if SETTINGS
        .iter()
        .any(|(name, _)| std::env::var_os(name).is_some())
    {
        return;
    }
    let Ok(program) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(program)
        .args(std::env::args_os().skip(1))
        .envs(SETTINGS)
        .exec();
    // Only reached when it could not start again: go on as we are.
    eprintln!("note: running without the bulk memory settings ({error})");
}

#[cfg(not(unix))]
fn keep_bulk_memory_flat() {}

/// Streaming commands read each item about once: a small page cache serves them as well as a
/// large one, and keeps their memory flat (8 MB imported as fast as 16 MB, at 100,000 and at
/// 1,000,000 rows, with 8-10 MB less peak RSS). `STORE_CACHE_MB` still wins when set.
const BULK_CACHE_BYTES: usize = 8 * 1024 * 1024;

async fn run(command: Command) -> Result<(), String> {
    let mut config = Config::from_env(Mode::LocalServer).map_err(|e| e.to_string())?;
    if command.is_bulk() && std::env::var_os("STORE_CACHE_MB").is_none() {
        config.store_cache_bytes = BULK_CACHE_BYTES;
    }
    init_tracing(config.json_logs);
    // Serving makes the data folder private itself; the other commands write there too.
    if !matches!(command, Command::Serve) {
        functions::server::keep_files_private(&config).map_err(|e| e.to_string())?;
    }
    match command {
        Command::Serve => functions::server::run(config, |addr| {
            tracing::info!("customer module API listening on http://{addr}");
        })
        .await
        .map_err(|e| e.to_string()),
        Command::CreateUser {
            email,
            password,
            roles,
        } => {
            // The command line is the operator's: admin unless told otherwise.
            let roles: Vec<String> = roles
                .as_deref()
                .unwrap_or(shared::roles::ADMIN)
                .split(',')
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect();
            let store = open_store(&config).await.map_err(|e| e.to_string())?;
            let state = build_state(&config, store)
                .await
                .map_err(|e| e.to_string())?;
            let identity = state
                .identity
                .ok_or("no sign-in provider is configured to create staff users with")?;
            let id = identity
                .create_staff_user(&email, Some(&password), &roles)
                .await
                .map_err(|e| e.to_string())?;
            println!("created staff user {id} ({email})");
            Ok(())
        }
        Command::SeedCustomers { count } => {
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
        Command::Import { dry_run, file } => import(&config, &file, dry_run).await,
        Command::Export { file, query } => export(&config, &file, query.as_deref()).await,
    }
}

/// The parent folder of `file` as a file store, and the file's name in it.
fn folder_of(file: &str) -> Result<(std::sync::Arc<LocalFiles>, String), String> {
    let path = std::path::Path::new(file);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("not a file name: {file}"))?
        .to_owned();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    Ok((std::sync::Arc::new(LocalFiles::new(parent)), name))
}

/// A one-line progress bar on stderr.
fn bar(fraction: f64, detail: &str) {
    let width = 30;
    let filled = ((fraction.clamp(0.0, 1.0)) * width as f64) as usize;
    eprint!(
        "\r[{}{}] {:>3.0}% {detail}   ",
        "#".repeat(filled),
        " ".repeat(width - filled),
        fraction * 100.0
    );
}

/// The outcome of a job's run, showing its progress every quarter second meanwhile. The run's
/// end is seen at once: polling it on the same tick added up to a quarter second to every
/// timing these commands print.
async fn until_done<T>(
    mut run: tokio::task::JoinHandle<shared::error::DomainResult<T>>,
    mut progress: impl AsyncFnMut(),
) -> Result<T, String> {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tokio::select! {
            done = &mut run => {
                return done.map_err(|e| e.to_string())?.map_err(|e| e.to_string());
            }
            _ = tick.tick() => progress().await,
        }
    }
}

/// `import FILE`: imports a CSV (ours or Shopify's) into the configured store, with progress;
/// `--dry-run` only parses and validates it.
async fn import(config: &Config, file: &str, dry_run: bool) -> Result<(), String> {
    let (folder, name) = folder_of(file)?;
    let size = std::fs::metadata(file)
        .map_err(|e| format!("{file}: {e}"))?
        .len()
        .max(1);
    let store = open_store(config).await.map_err(|e| e.to_string())?;
    let state = build_state(config, store)
        .await
        .map_err(|e| e.to_string())?;
    let transfer = state.transfer.ok_or("no file store configured")?;
    let importer = Importer {
        files: folder,
        ..transfer.importer.clone()
    };
    let started = std::time::Instant::now();
    if dry_run {
        let (rows, failed) = importer.dry_run(&name).await.map_err(|e| e.to_string())?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "parsed and validated {rows} rows ({failed} invalid) in {seconds:.2} s ({:.0} rows/s)",
            rows as f64 / seconds
        );
        return Ok(());
    }
    let job = transfer
        .jobs
        .create(JobKind::Import, &name, None, None, Some("cli".into()))
        .await
        .map_err(|e| e.to_string())?;
    let id = job.id.clone();
    let runner = importer.clone();
    let run = tokio::spawn(async move { runner.run(&id, RunLimits::default()).await });
    let job = until_done(run, async || {
        if let Ok(job) = transfer.jobs.get(&job.id).await {
            let rate = job.processed as f64 / started.elapsed().as_secs_f64().max(0.001);
            bar(
                job.checkpoint_offset as f64 / size as f64,
                &format!("{} rows, {rate:.0} rows/s", job.processed),
            );
        }
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    bar(1.0, &format!("{} rows", job.processed));
    eprintln!();
    println!(
        "import {}: {:?} — {} rows in {seconds:.2} s ({:.0} rows/s): {} created, {} updated, {} unchanged, {} failed{}",
        job.id,
        job.status,
        job.processed,
        job.processed as f64 / seconds,
        job.created,
        job.updated,
        job.unchanged,
        job.failed,
        job.error_report_key
            .map(|k| format!(
                "; error report: {}",
                config.data_dir.join("files").join(k).display()
            ))
            .unwrap_or_default()
    );
    Ok(())
}

/// `export FILE [QUERY]`: writes the customers the list query selects (all by default) to a
/// CSV (our import format) or, for `.ndjson`, NDJSON.
async fn export(config: &Config, file: &str, query: Option<&str>) -> Result<(), String> {
    let (folder, name) = folder_of(file)?;
    let store = open_store(config).await.map_err(|e| e.to_string())?;
    let state = build_state(config, store)
        .await
        .map_err(|e| e.to_string())?;
    let transfer = state.transfer.ok_or("no file store configured")?;
    let params = functions::http::query::parse(query).map_err(|e| e.0.to_string())?;
    let list = functions::http::customers::list_query(&params).map_err(|e| e.0.to_string())?;
    let total = {
        let mut count = list.clone();
        count.limit = 0;
        state
            .customers
            .list(&count)
            .await
            .map_err(|e| e.to_string())?
            .count
            .max(1)
    };
    let format = if name.ends_with(".ndjson") {
        "ndjson"
    } else {
        "csv"
    };
    let exporter = Exporter {
        files: folder,
        ..transfer.exporter.clone()
    };
    let job = transfer
        .jobs
        .create(
            JobKind::Export,
            &name,
            Some(format.into()),
            query.map(str::to_owned),
            Some("cli".into()),
        )
        .await
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let progress = exporter.progress.clone();
    let id = job.id.clone();
    let run = tokio::spawn(async move { exporter.run(&id, list).await });
    let job = until_done(run, async || {
        let rows = progress.load(std::sync::atomic::Ordering::Relaxed);
        bar(rows as f64 / total as f64, &format!("{rows} rows"));
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    bar(1.0, &format!("{} rows", job.row_count));
    eprintln!();
    println!(
        "export {}: {:?} — {} rows to {file} in {seconds:.2} s ({:.0} rows/s)",
        job.id,
        job.status,
        job.row_count,
        job.row_count as f64 / seconds
    );
    Ok(())
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
