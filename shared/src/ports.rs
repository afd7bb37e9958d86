//! Small ports every use case takes: the clock and the id generator.

use std::sync::Mutex;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Timestamps on the wire and in the store: ISO-8601 UTC with milliseconds, as Medusa sends them.
/// The fixed width makes string order equal time order, which the indexes rely on.
pub fn iso(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses a date or date-time as a client may send it in a filter, into [`iso`] form.
pub fn parse_instant(input: &str) -> Option<String> {
    if let Ok(t) = OffsetDateTime::parse(input, &Rfc3339) {
        return Some(iso(t));
    }
    let date = time::Date::parse(
        input,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    Some(iso(date.midnight().assume_utc()))
}

pub trait IdGenerator: Send + Sync {
    /// A new id `<prefix>_<ULID>`; ids from one generator sort in creation order.
    fn new_id(&self, prefix: &str) -> String;
}

/// ULIDs, monotonic within a process so that ids created in the same millisecond still sort.
pub struct UlidGenerator(Mutex<ulid::Generator>);

impl Default for UlidGenerator {
    fn default() -> Self {
        UlidGenerator(Mutex::new(ulid::Generator::new()))
    }
}

impl IdGenerator for UlidGenerator {
    fn new_id(&self, prefix: &str) -> String {
        let mut generator = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let id = generator.generate().unwrap_or_else(|_| ulid::Ulid::new());
        format!("{prefix}_{id}")
    }
}

/// An HTTP client for outbound calls (JWKS, Cognito's hosted UI), with TLS through the
/// aws-lc provider the AWS SDK already links.
pub fn http_client() -> reqwest::Client {
    // Installing twice is harmless: the first provider wins.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_has_millisecond_precision_and_z() {
        let t = time::macros::datetime!(2026-11-26 08:42:53.515 UTC);
        assert_eq!(iso(t), "2026-11-26T08:42:53.515Z");
    }

    #[test]
    fn filter_dates_are_normalised() {
        assert_eq!(
            parse_instant("2024-01-02").as_deref(),
            Some("2024-01-02T00:00:00.000Z")
        );
        assert_eq!(
            parse_instant("2024-01-02T03:04:05+01:00").as_deref(),
            Some("2024-01-02T02:04:05.000Z")
        );
        assert_eq!(parse_instant("yesterday"), None);
    }

    #[test]
    fn generated_ids_sort_in_creation_order() {
        let g = UlidGenerator::default();
        let ids: Vec<String> = (0..1000).map(|_| g.new_id("cus")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids[0].starts_with("cus_") && ids[0].len() == 30);
    }
}
