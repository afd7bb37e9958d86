//! What signing in may cost, and how fast anyone may guess passwords.
//!
//! - [`HashPool`]: every password hash (sign-in, registration, reset, staff creation) runs in
//!   a pool of about one slot per core. argon2 takes ~19 MiB per hash, so unbounded hashing on
//!   the blocking threads let a flood of sign-ins take the process to gigabytes; a request
//!   that finds no slot within a short wait gets 429 with `Retry-After` instead.
//! - [`SignInLimiter`]: failed sign-ins slow down the address and the account they come from,
//!   without ever locking an account for good. Per account *and* client address, failures
//!   beyond a few free ones make the next attempt wait (doubling, capped, forgotten after a
//!   quiet while), so a guesser on another address does not lock the real user out; per
//!   address and per account (all addresses together), token buckets bound the rate of
//!   attempts that do not succeed. A success gives its tokens back.
//!
//! Both live in the process: a Lambda instance or the local server counts for itself (a
//! Lambda fleet multiplies the per-address and per-account rates by its instances; API
//! Gateway's route throttles bound the whole). The tables are capped in size.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::error::{DomainError, DomainResult};

fn retry_after(wait: Duration, message: &str) -> DomainError {
    DomainError::TooManyRequests {
        message: message.into(),
        retry_after_seconds: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

/// A bounded pool for password hashing, shared by every hash of the process.
#[derive(Clone)]
pub struct HashPool {
    slots: Arc<Semaphore>,
    wait: Duration,
}

/// How long a request waits for a hashing slot by default.
pub const DEFAULT_HASH_WAIT: Duration = Duration::from_secs(2);

impl HashPool {
    /// `concurrency` hashes at a time (at least one); a request waits at most `wait` for a slot.
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        HashPool {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            wait,
        }
    }

    /// One slot per core.
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }

    /// Runs `work` on a blocking thread once a slot is free, or answers 429 after the wait.
    /// The slot stays taken until `work` ends, even if the request is dropped meanwhile.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> DomainResult<T> {
        let slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| {
                retry_after(
                    self.wait,
                    "The server is busy signing people in. Try again in a moment.",
                )
            })?
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))
    }
}

impl Default for HashPool {
    fn default() -> Self {
        HashPool::new(HashPool::default_concurrency(), DEFAULT_HASH_WAIT)
    }
}

/// A token bucket's shape: `burst` attempts at once, then one more every `refill_every`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: u32,
    pub refill_every: Duration,
}

/// The limits [`SignInLimiter`] applies.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInLimits {
    /// Failures per account and address before attempts must wait (after this many, the
    /// next attempt waits [`SignInLimits::first_delay`]).
    pub free_failures: u32,
    /// The wait after the first failure beyond the free ones; it doubles with each further one.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Failures of an account and address are forgotten after this long without one.
    pub forget_after: Duration,
    /// Attempts that have not succeeded, per client address.
    pub per_address: Rate,
    /// Attempts that have not succeeded, per account, from all addresses together.
    pub per_account: Rate,
    /// Entries each table keeps at most (idle ones go first, then all).
    pub max_entries: usize,
    /// How long an address an account signed in from stays exempt from the account's shared
    /// bucket: an attacker draining it from elsewhere cannot keep the owner out from there.
    pub trust_after_success: Duration,
}

impl Default for SignInLimits {
    fn default() -> Self {
        SignInLimits {
            free_failures: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5 * 60),
            forget_after: Duration::from_secs(15 * 60),
            trust_after_success: Duration::from_secs(30 * 24 * 3600),
            per_address: Rate {
                burst: 30,
                refill_every: Duration::from_secs(2),
            },
            per_account: Rate {
                burst: 50,
                refill_every: Duration::from_secs(10),
            },
            max_entries: 50_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(rate.burst),
            updated: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let gained = now.duration_since(self.updated).as_secs_f64()
            / rate.refill_every.as_secs_f64().max(f64::EPSILON);
        self.tokens = (self.tokens + gained).min(f64::from(rate.burst));
        self.updated = now;
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(rate.refill_every.mul_f64(1.0 - self.tokens))
        }
    }

    fn give_back(&mut self, rate: Rate, now: Instant) {
        self.refill(rate, now);
        self.tokens = (self.tokens + 1.0).min(f64::from(rate.burst));
    }

    fn idle(&self, rate: Rate, now: Instant) -> bool {
        let mut probe = *self;
        probe.refill(rate, now);
        probe.tokens >= f64::from(rate.burst)
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// A map that never holds more than `max` entries: when full, idle entries go, and if none
/// is idle, everything (limits then start afresh rather than memory growing).
struct Table<K, V> {
    entries: HashMap<K, V>,
}

impl<K: Eq + Hash, V> Table<K, V> {
    fn new() -> Self {
        Table {
            entries: HashMap::new(),
        }
    }

    fn entry(
        &mut self,
        key: K,
        max: usize,
        idle: impl Fn(&V) -> bool,
        new: impl FnOnce() -> V,
    ) -> &mut V {
        if self.entries.len() >= max && !self.entries.contains_key(&key) {
            self.entries.retain(|_, v| !idle(v));
            if self.entries.len() >= max {
                tracing::warn!(entries = max, "sign-in limiter table full, cleared");
                self.entries.clear();
            }
        }
        self.entries.entry(key).or_insert_with(new)
    }
}

struct Tables {
    by_address: Table<IpAddr, Bucket>,
    by_account: Table<String, Bucket>,
    failures: Table<(String, Option<IpAddr>), Failures>,
    /// (account, address) pairs that signed in, with when: exempt from the account's bucket.
    trusted: Table<(String, IpAddr), Instant>,
}

/// Per-address and per-account limits on sign-in attempts (see the module doc).
pub struct SignInLimiter {
    limits: SignInLimits,
    tables: Mutex<Tables>,
}

/// An attempt the limiter let through; report how it ended.
#[must_use]
pub struct Attempt<'a> {
    limiter: &'a SignInLimiter,
    account: String,
    address: Option<IpAddr>,
    /// Whether a token of the account's bucket was taken (not for a trusted address).
    took_account_token: bool,
}

/// The client as the limits count it: an IPv6 address by its /64, which one subscriber holds
/// whole (counting each address would give an attacker endless fresh ones).
fn client_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

fn too_many(wait: Duration) -> DomainError {
    retry_after(
        wait,
        "Too many sign-in attempts. Try again in a little while.",
    )
}

impl SignInLimiter {
    pub fn new(limits: SignInLimits) -> Self {
        SignInLimiter {
            limits,
            tables: Mutex::new(Tables {
                by_address: Table::new(),
                by_account: Table::new(),
                failures: Table::new(),
                trusted: Table::new(),
            }),
        }
    }

    /// The wait after `failures` failures: none before the free ones are used up, then the
    /// first delay, doubling with each further failure.
    fn delay_after(&self, failures: u32) -> Duration {
        if failures < self.limits.free_failures {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(failures - self.limits.free_failures);
        self.limits
            .first_delay
            .saturating_mul(factor)
            .min(self.limits.max_delay)
    }

    /// Lets an attempt on `account` (an actor type and email, say) from `address` through, or
    /// answers 429 with how long to wait. Nothing is hashed for a refused attempt.
    pub fn begin(&self, account: &str, address: Option<IpAddr>) -> DomainResult<Attempt<'_>> {
        let address = address.map(client_of);
        let limits = &self.limits;
        let now = Instant::now();
        let mut guard = self
            .tables
            .lock()
            .map_err(|_| DomainError::Internal("sign-in limiter poisoned".into()))?;
        let tables = &mut *guard;
        if let Some(failures) = tables.failures.entries.get(&(account.to_owned(), address)) {
            let since = now.duration_since(failures.last);
            let delay = self.delay_after(failures.count);
            if since < limits.forget_after && since < delay {
                return Err(too_many(delay - since));
            }
        }
        if let Some(address) = address {
            tables
                .by_address
                .entry(
                    address,
                    limits.max_entries,
                    |b| b.idle(limits.per_address, now),
                    || Bucket::full(limits.per_address, now),
                )
                .take(limits.per_address, now)
                .map_err(too_many)?;
        }
        let trusted = address.is_some_and(|a| {
            tables
                .trusted
                .entries
                .get(&(account.to_owned(), a))
                .is_some_and(|since| now.duration_since(*since) < limits.trust_after_success)
        });
        if !trusted {
            let taken = tables
                .by_account
                .entry(
                    account.to_owned(),
                    limits.max_entries,
                    |b| b.idle(limits.per_account, now),
                    || Bucket::full(limits.per_account, now),
                )
                .take(limits.per_account, now);
            if let Err(wait) = taken {
                if let Some(bucket) = address.and_then(|a| tables.by_address.entries.get_mut(&a)) {
                    bucket.give_back(limits.per_address, now);
                }
                return Err(too_many(wait));
            }
        }
        Ok(Attempt {
            limiter: self,
            account: account.to_owned(),
            address,
            took_account_token: !trusted,
        })
    }

    fn give_back(&self, tables: &mut Tables, attempt: &Attempt<'_>, now: Instant) {
        let limits = &self.limits;
        if let Some(bucket) = attempt
            .address
            .and_then(|a| tables.by_address.entries.get_mut(&a))
        {
            bucket.give_back(limits.per_address, now);
        }
        if attempt.took_account_token
            && let Some(bucket) = tables.by_account.entries.get_mut(&attempt.account)
        {
            bucket.give_back(limits.per_account, now);
        }
    }
}

impl Attempt<'_> {
    /// The password was right: the tokens come back and the failures are forgotten.
    pub fn succeeded(self) {
        let now = Instant::now();
        if let Ok(mut tables) = self.limiter.tables.lock() {
            self.limiter.give_back(&mut tables, &self, now);
            tables
                .failures
                .entries
                .remove(&(self.account.clone(), self.address));
            if let Some(address) = self.address {
                let limits = &self.limiter.limits;
                *tables.trusted.entry(
                    (self.account.clone(), address),
                    limits.max_entries,
                    |since| now.duration_since(*since) >= limits.trust_after_success,
                    || now,
                ) = now;
            }
        }
    }

    /// The password (or the email) was wrong: the tokens stay spent and the next attempt from
    /// this address on this account may have to wait.
    pub fn failed(self) {
        let limits = &self.limiter.limits;
        let now = Instant::now();
        if let Ok(mut tables) = self.limiter.tables.lock() {
            let failures = tables.failures.entry(
                (self.account.clone(), self.address),
                limits.max_entries,
                |f| now.duration_since(f.last) >= limits.forget_after,
                || Failures {
                    count: 0,
                    last: now,
                },
            );
            if now.duration_since(failures.last) >= limits.forget_after {
                failures.count = 0;
            }
            failures.count = failures.count.saturating_add(1);
            failures.last = now;
        }
    }

    /// The attempt ended without an answer on the password (the service was busy, say): the
    /// tokens come back, nothing else changes.
    pub fn abandoned(self) {
        let now = Instant::now();
        if let Ok(mut tables) = self.limiter.tables.lock() {
            self.limiter.give_back(&mut tables, &self, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SignInLimits {
        SignInLimits {
            free_failures: 2,
            first_delay: Duration::from_secs(60),
            per_address: Rate {
                burst: 3,
                refill_every: Duration::from_secs(60),
            },
            per_account: Rate {
                burst: 5,
                refill_every: Duration::from_secs(60),
            },
            max_entries: 100,
            ..SignInLimits::default()
        }
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn an_address_the_owner_signed_in_from_outlives_a_drained_account_bucket() {
        let limiter = SignInLimiter::new(limits());
        limiter.begin("user:a", ip(1)).unwrap().succeeded();
        // Attackers from many addresses drain the account's shared bucket (burst 5).
        for attacker in 10..15 {
            limiter.begin("user:a", ip(attacker)).unwrap().failed();
        }
        assert!(
            limiter.begin("user:a", ip(20)).is_err(),
            "the bucket is empty"
        );
        // The owner's own address still gets through.
        limiter.begin("user:a", ip(1)).unwrap().succeeded();
    }

    #[test]
    fn an_ipv6_subscriber_counts_as_one_client() {
        let limiter = SignInLimiter::new(limits());
        let v6 = |last: u16| Some(IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]));
        // Burst 3 per address: fresh addresses in one /64 share it.
        for last in 1..=3 {
            limiter
                .begin(&format!("user:b{last}"), v6(last))
                .unwrap()
                .failed();
        }
        assert!(limiter.begin("user:c", v6(99)).is_err());
        // Another subscriber's /64 has its own allowance.
        let other = Some(IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]));
        assert!(limiter.begin("user:c", other).is_ok());
    }

    #[test]
    fn failures_slow_the_address_not_the_account_elsewhere() {
        let limiter = SignInLimiter::new(limits());
        for _ in 0..2 {
            limiter.begin("user:a", ip(1)).unwrap().failed();
        }
        // Two free failures, then the next attempt waits a minute.
        let refused = limiter.begin("user:a", ip(1)).err().unwrap();
        assert!(matches!(
            refused,
            DomainError::TooManyRequests {
                retry_after_seconds: 60,
                ..
            }
        ));
        // The real user, elsewhere, goes on.
        limiter.begin("user:a", ip(2)).unwrap().succeeded();
    }

    #[test]
    fn an_address_runs_out_of_attempts_across_accounts_and_success_gives_them_back() {
        let limiter = SignInLimiter::new(limits());
        limiter.begin("user:a", ip(1)).unwrap().succeeded();
        for account in ["user:b", "user:c", "user:d"] {
            limiter.begin(account, ip(1)).unwrap().failed();
        }
        assert!(limiter.begin("user:e", ip(1)).is_err());
        assert!(limiter.begin("user:e", ip(2)).is_ok());
    }

    #[test]
    fn an_account_runs_out_of_attempts_across_addresses() {
        let limiter = SignInLimiter::new(limits());
        for last in 1..=5 {
            limiter.begin("user:a", ip(last)).unwrap().failed();
        }
        assert!(limiter.begin("user:a", ip(6)).is_err());
        // A refused attempt took nothing from its address.
        for account in ["user:b", "user:c", "user:d"] {
            limiter.begin(account, ip(6)).unwrap().failed();
        }
    }

    #[test]
    fn tables_stay_within_their_cap() {
        let limiter = SignInLimiter::new(SignInLimits {
            max_entries: 4,
            ..limits()
        });
        for n in 0..40u8 {
            let _ = limiter
                .begin(&format!("user:{n}"), ip(n))
                .map(Attempt::failed);
        }
        let tables = limiter.tables.lock().unwrap();
        assert!(tables.by_address.entries.len() <= 4);
        assert!(tables.by_account.entries.len() <= 4);
        assert!(tables.failures.entries.len() <= 4);
    }
}
