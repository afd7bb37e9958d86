//! Exponential backoff with full jitter, as AWS recommends for retrying throttled or
//! partially processed batch calls.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempts_left: u32,
    attempt: u32,
}

impl Default for Backoff {
    /// 25 ms doubling to 5 s, ten tries: enough to ride out a throttled partition.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(25), Duration::from_secs(5), 10)
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, attempts: u32) -> Self {
        Backoff {
            base,
            cap,
            attempts_left: attempts,
            attempt: 0,
        }
    }

    /// The next delay, or `None` when the attempts are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempts_left == 0 {
            return None;
        }
        self.attempts_left -= 1;
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt += 1;
        let random = getrandom::u64().unwrap_or(0x9E37_79B9_7F4A_7C15);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Some(Duration::from_nanos(if nanos == 0 {
            0
        } else {
            random % nanos
        }))
    }

    /// Sleeps for the next delay; false when the attempts are used up.
    pub async fn wait(&mut self) -> bool {
        match self.next_delay() {
            Some(delay) => {
                tokio::time::sleep(delay).await;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_growing_ceiling_and_stop() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(40), 4);
        let ceilings = [10, 20, 40, 40];
        for ceiling in ceilings {
            let d = b.next_delay().expect("attempt left");
            assert!(d < Duration::from_millis(ceiling), "{d:?} >= {ceiling}ms");
        }
        assert_eq!(b.next_delay(), None);
    }
}
