//! Customers: the entity, its validation rules, its place in the table and its use cases.

mod listing;
mod repository;
pub mod search;
mod service;

pub use listing::{CustomerOrder, CustomerQuery, Direction, TimeRange};
pub use repository::{
    CustomerPage, CustomerRepository, EXTRA_CONDITION_FAILED, order_key, profile_key,
};
pub use service::CustomerService;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{DomainError, DomainResult};

pub const ID_PREFIX: &str = "cus";

/// A customer as Medusa shows it. Field order is the wire order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub company_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub has_account: bool,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    /// Optimistic-concurrency version; never on the wire.
    #[serde(skip_serializing, default)]
    pub version: u64,
}

impl Customer {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    pub fn email_key(&self) -> Option<String> {
        self.email.as_deref().map(normalize_email)
    }
}

/// What a create request may set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerDraft {
    pub email: Option<String>,
    pub company_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub has_account: bool,
}

/// What an update may change: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerPatch {
    pub email: Option<Option<String>>,
    pub company_name: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    /// Merged into the stored metadata key by key; a key sent as null is kept as null.
    pub metadata: Option<Option<Map<String, Value>>>,
}

pub const MAX_NAME_LEN: usize = 255;
pub const MAX_EMAIL_LEN: usize = 254;
pub const MAX_PHONE_LEN: usize = 64;
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Emails compare case-insensitively (unlike Medusa, see its #14745): this is the key used for
/// uniqueness and lookups. The stored email keeps the case the customer typed.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Lower-cased, control characters removed: the form names take in index keys.
pub fn normalize_text(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .to_lowercase()
}

/// A practical email check: one `@`, a local part and a dotted domain of valid labels.
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > MAX_EMAIL_LEN || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return false;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2)
}

fn invalid(message: String) -> DomainError {
    DomainError::InvalidData(format!("Invalid request: {message}"))
}

fn check_len(field: &str, value: &Option<String>, max: usize) -> DomainResult<()> {
    match value {
        Some(v) if v.chars().count() > max => Err(invalid(format!(
            "Field '{field}' must be at most {max} characters"
        ))),
        _ => Ok(()),
    }
}

fn check_email(email: &Option<String>) -> DomainResult<()> {
    match email {
        Some(e) if !is_valid_email(e.trim()) => Err(invalid("Invalid email address".into())),
        _ => Ok(()),
    }
}

pub fn check_metadata(metadata: &Option<Map<String, Value>>) -> DomainResult<()> {
    if let Some(m) = metadata {
        let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > MAX_METADATA_BYTES {
            return Err(invalid(format!(
                "Field 'metadata' must be at most {MAX_METADATA_BYTES} bytes of JSON"
            )));
        }
    }
    Ok(())
}

fn trimmed(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned())
}

impl CustomerDraft {
    pub fn validate(mut self) -> DomainResult<Self> {
        self.email = trimmed(self.email);
        check_email(&self.email)?;
        check_len("company_name", &self.company_name, MAX_NAME_LEN)?;
        check_len("first_name", &self.first_name, MAX_NAME_LEN)?;
        check_len("last_name", &self.last_name, MAX_NAME_LEN)?;
        check_len("phone", &self.phone, MAX_PHONE_LEN)?;
        check_metadata(&self.metadata)?;
        Ok(self)
    }
}

/// A text field of a patch: name, requested change, the field to change, its length limit.
type TextChange<'a> = (
    &'a str,
    &'a Option<Option<String>>,
    &'a mut Option<String>,
    usize,
);

impl CustomerPatch {
    /// Applies the patch to a copy of `current`, validating what it changes.
    pub fn apply(&self, current: &Customer) -> DomainResult<Customer> {
        let mut next = current.clone();
        if let Some(email) = &self.email {
            next.email = trimmed(email.clone());
            check_email(&next.email)?;
        }
        let fields: [TextChange; 4] = [
            (
                "company_name",
                &self.company_name,
                &mut next.company_name,
                MAX_NAME_LEN,
            ),
            (
                "first_name",
                &self.first_name,
                &mut next.first_name,
                MAX_NAME_LEN,
            ),
            (
                "last_name",
                &self.last_name,
                &mut next.last_name,
                MAX_NAME_LEN,
            ),
            ("phone", &self.phone, &mut next.phone, MAX_PHONE_LEN),
        ];
        for (name, change, slot, max) in fields {
            if let Some(value) = change {
                check_len(name, value, max)?;
                *slot = value.clone();
            }
        }
        if let Some(metadata) = &self.metadata {
            next.metadata = merge_metadata(current.metadata.as_ref(), metadata.as_ref());
            check_metadata(&next.metadata)?;
        }
        Ok(next)
    }
}

/// Medusa's metadata update: keys merge into the stored object; `null` for the whole object clears it.
pub fn merge_metadata(
    current: Option<&Map<String, Value>>,
    change: Option<&Map<String, Value>>,
) -> Option<Map<String, Value>> {
    let change = change?;
    let mut merged = current.cloned().unwrap_or_default();
    for (k, v) in change {
        merged.insert(k.clone(), v.clone());
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked() {
        for ok in ["a@b.co", "jane.doe+x@mail.example.com", "Ünï@exämple.de"] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "not-an-email",
            "a@b",
            "@b.com",
            "a@.com",
            "a b@c.com",
            "a@b..com",
            ".a@b.com",
            "a@-b.com",
            "a@b.c",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn draft_rejects_long_names_and_bad_email() {
        let long = CustomerDraft {
            first_name: Some("x".repeat(256)),
            ..Default::default()
        };
        assert!(
            matches!(long.validate(), Err(DomainError::InvalidData(m)) if m.contains("first_name"))
        );
        let bad = CustomerDraft {
            email: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(
            bad.validate(),
            Err(DomainError::InvalidData(
                "Invalid request: Invalid email address".into()
            ))
        );
    }

    #[test]
    fn metadata_merges_and_keeps_nulls() {
        let current: Map<String, Value> = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let change: Map<String, Value> = serde_json::from_str(r#"{"b":null,"c":3}"#).unwrap();
        let merged = merge_metadata(Some(&current), Some(&change)).unwrap();
        assert_eq!(
            Value::Object(merged),
            serde_json::json!({"a":1,"b":null,"c":3})
        );
        assert_eq!(merge_metadata(Some(&current), None), None);
    }
}
