//! Medusa's `fields` parameter: a plain list replaces the defaults, `+f` adds, `-f` removes,
//! `*rel` selects a relation; `id` is always included; anything outside `allowed` is a 400.

use serde_json::{Map, Value};

use super::error::{ApiResult, invalid};

#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    fields: Vec<String>,
}

impl Selection {
    /// `extra` are the fields allowed on request beyond the defaults (relations, rarer columns).
    pub fn parse(raw: Option<&str>, defaults: &[&str], extra: &[&str]) -> ApiResult<Selection> {
        let mut fields: Vec<String> = defaults.iter().map(|f| f.to_string()).collect();
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return Ok(Selection { fields });
        };
        let entries: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.iter().any(|e| !e.starts_with(['+', '-', '*'])) {
            fields.clear();
        }
        let mut unknown = Vec::new();
        for entry in entries {
            let (op, name) = match entry.chars().next() {
                Some(c @ ('+' | '-' | '*')) => (c, &entry[1..]),
                _ => (' ', entry),
            };
            let name = name.strip_suffix(".*").unwrap_or(name);
            if !defaults.contains(&name) && !extra.contains(&name) {
                unknown.push(name.to_owned());
                continue;
            }
            if op == '-' {
                fields.retain(|f| f != name);
            } else if !fields.iter().any(|f| f == name) {
                fields.push(name.to_owned());
            }
        }
        if !unknown.is_empty() {
            return Err(invalid(format!(
                "Requested fields [{}] are not valid",
                unknown.join(", ")
            )));
        }
        if !fields.iter().any(|f| f == "id") {
            fields.insert(0, "id".into());
        }
        Ok(Selection { fields })
    }

    pub fn includes(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == field)
    }

    /// Keeps the selected keys of `object`, in the object's own (wire) order.
    pub fn project(&self, object: Map<String, Value>) -> Value {
        Value::Object(
            object
                .into_iter()
                .filter(|(k, _)| self.includes(k))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: &[&str] = &["id", "email", "first_name"];

    #[test]
    fn plain_list_replaces_prefixed_entries_adjust() {
        let s = Selection::parse(Some("email"), DEFAULTS, &[]).unwrap();
        assert!(s.includes("id") && s.includes("email") && !s.includes("first_name"));
        let s = Selection::parse(Some("-first_name"), DEFAULTS, &[]).unwrap();
        assert!(s.includes("email") && !s.includes("first_name"));
        let err = Selection::parse(Some("*orders,bogus"), DEFAULTS, &[]).unwrap_err();
        assert!(format!("{:?}", err.0).contains("Requested fields [orders, bogus] are not valid"));
    }
}
