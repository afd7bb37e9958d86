//! Permission checks: 100 resources for a customer in 5 groups and a company.
//!
//! In process on the embedded store: checks/s and latency percentiles (one task, then several
//! at once). With `AWS_ENDPOINT_URL` (moto) or real AWS credentials and `BENCH_DYNAMO=1`: the
//! number of DynamoDB requests one such check makes, counted by an SDK interceptor at each
//! attempt (so retries would count too).
//!
//! `cargo bench -p integration-tests --bench permission_checks` (see `infra/bench/permissions.sh`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use shared::companies::{CompanyPatch, CompanyService, NewMember};
use shared::customers::{CustomerDraft, CustomerRepository, CustomerService};
use shared::grants::{Check, GrantDraft, GrantService, Principal, Resource};
use shared::groups::GroupService;
use shared::ports::{Clock, IdGenerator, SystemClock, UlidGenerator};
use shared::store::KvStore;
use shared::store::dynamo::DynamoStore;
use shared::store::embedded::EmbeddedStore;

const RESOURCES: usize = 100;

struct Fixture {
    grants: GrantService,
    customer: String,
    checks: Vec<Check>,
}

fn product(i: usize) -> Resource {
    Resource {
        kind: "product".into(),
        id: format!("prod_{i:04}"),
    }
}

/// A customer in 5 groups and a company, grants on half of 100 products through each kind of
/// principal plus a type-wide one, and other customers' grants on the same products.
async fn fixture(store: Arc<dyn KvStore>) -> Fixture {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ids: Arc<dyn IdGenerator> = Arc::new(UlidGenerator::default());
    let customers = CustomerService::new(
        CustomerRepository::new(store.clone()),
        clock.clone(),
        ids.clone(),
    );
    let groups = GroupService::new(store.clone(), clock.clone(), ids.clone());
    let companies = CompanyService::new(store.clone(), clock.clone(), ids.clone());
    let grants = GrantService::new(store.clone(), clock.clone(), ids.clone());
    let new_customer = |email: String| {
        let customers = customers.clone();
        async move {
            customers
                .create(
                    CustomerDraft {
                        email: Some(email),
                        ..Default::default()
                    },
                    None,
                )
                .await
                .expect("customer")
                .id
        }
    };
    let customer = new_customer("bench@acme.example".into()).await;
    let mut others = Vec::new();
    for i in 0..5 {
        others.push(new_customer(format!("other{i}@example.com")).await);
    }
    let mut principals = vec![Principal::Customer {
        id: customer.clone(),
    }];
    for i in 0..5 {
        let group = groups
            .create(&format!("Group {i}"), None, None)
            .await
            .expect("group");
        groups
            .batch_members(&group.id, std::slice::from_ref(&customer), &[], None)
            .await
            .expect("membership");
        principals.push(Principal::CustomerGroup { id: group.id });
    }
    let company = companies
        .create(&CompanyPatch {
            name: Some("Acme".into()),
            ..Default::default()
        })
        .await
        .expect("company");
    companies
        .update_members(
            &company.id,
            &[NewMember {
                customer_id: customer.clone(),
                role: "buyer".into(),
            }],
            &[],
        )
        .await
        .expect("company membership");
    principals.push(Principal::Company {
        id: company.id.clone(),
    });
    principals.push(Principal::CompanyRole {
        id: company.id,
        role: "buyer".into(),
    });
    let grant = |principal: Principal, resource: Resource| {
        let grants = grants.clone();
        async move {
            grants
                .grant(
                    &GrantDraft {
                        principal,
                        action: "view".into(),
                        resource,
                        expires_at: None,
                    },
                    None,
                )
                .await
                .expect("grant");
        }
    };
    for i in (0..RESOURCES).step_by(2) {
        grant(principals[i % principals.len()].clone(), product(i)).await;
    }
    for (n, other) in others.iter().enumerate() {
        for i in (n..RESOURCES).step_by(5) {
            grant(Principal::Customer { id: other.clone() }, product(i)).await;
        }
    }
    grant(
        principals[1].clone(),
        Resource {
            kind: "collection".into(),
            id: "*".into(),
        },
    )
    .await;
    let checks = (0..RESOURCES)
        .map(|i| Check {
            action: "view".into(),
            resource: product(i),
        })
        .collect();
    Fixture {
        grants,
        customer,
        checks,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

async fn embedded() {
    let dir = std::env::temp_dir().join(format!("permission-bench-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store: Arc<dyn KvStore> =
        Arc::new(EmbeddedStore::open(&dir.join("store.redb")).expect("embedded store"));
    let f = fixture(store).await;
    let first = f.grants.check(&f.customer, &f.checks).await.expect("check");
    let allowed = first.iter().filter(|r| r.allowed).count();
    assert_eq!(allowed, RESOURCES / 2, "half of the products are granted");
    for _ in 0..1000 {
        f.grants.check(&f.customer, &f.checks).await.expect("check");
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut latencies = Vec::with_capacity(rounds);
    let started = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        f.grants.check(&f.customer, &f.checks).await.expect("check");
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    println!(
        "embedded, 1 task: {rounds} checks of {RESOURCES} resources in {elapsed:.2} s = {:.0} checks/s ({:.0} resource decisions/s); p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        rounds as f64 / elapsed,
        (rounds * RESOURCES) as f64 / elapsed,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies[latencies.len() - 1],
    );
    let tasks = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let per_task = rounds / tasks;
    let grants = Arc::new(f.grants);
    let checks = Arc::new(f.checks);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (grants, checks, customer) = (grants.clone(), checks.clone(), f.customer.clone());
            tokio::spawn(async move {
                let mut own = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let t = Instant::now();
                    grants.check(&customer, &checks).await.expect("check");
                    own.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                own
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    println!(
        "embedded, {tasks} tasks: {:.0} checks/s; p50 {:.3} ms, p99 {:.3} ms",
        all.len() as f64 / elapsed,
        percentile(&all, 50.0),
        percentile(&all, 99.0),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Counts every attempt the DynamoDB client sends.
#[derive(Debug, Clone, Default)]
struct RequestCounter(Arc<AtomicUsize>);

impl aws_sdk_dynamodb::config::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_attempt(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn dynamodb() {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let counter = RequestCounter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&shared)
        .interceptor(counter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = format!(
        "permission-bench-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let store = DynamoStore::new(client, table.clone());
    store.ensure_table().await.expect("create table");
    let f = fixture(Arc::new(store)).await;
    let mut counts = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let before = counter.0.load(Ordering::SeqCst);
        let t = Instant::now();
        let results = f.grants.check(&f.customer, &f.checks).await.expect("check");
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(results.iter().filter(|r| r.allowed).count(), RESOURCES / 2);
        counts.push(counter.0.load(Ordering::SeqCst) - before);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "dynamodb ({}): one check of {RESOURCES} resources makes {} requests (min {}, max {} over {} checks); p50 {:.1} ms",
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".into()),
        counts[0],
        counts.iter().min().unwrap_or(&0),
        counts.iter().max().unwrap_or(&0),
        counts.len(),
        percentile(&latencies, 50.0),
    );
}

#[tokio::main]
async fn main() {
    embedded().await;
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() || std::env::var_os("BENCH_DYNAMO").is_some()
    {
        dynamodb().await;
    } else {
        println!(
            "dynamodb: skipped (set AWS_ENDPOINT_URL to a moto server, or BENCH_DYNAMO=1 for AWS)"
        );
    }
}
