//! Strict JSON bodies. One table of fields per body drives both validation (Medusa's zod
//! `strict()` behaviour and messages) and the OpenAPI schema, so they cannot drift apart.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use super::error::{ApiResult, PayloadTooLarge, invalid};

/// Largest request body accepted (Medusa's body-parser default is 100 KB for JSON; imports
/// take their own route).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Email,
    Boolean,
    /// A JSON object (Medusa's `record`).
    Record,
    /// An array of strings (ids).
    StringList,
    /// An array of anything (objects, checked by the handler).
    List,
    Number,
}

impl Kind {
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::String | Kind::Email => "string",
            Kind::Boolean => "boolean",
            Kind::Record => "object",
            Kind::StringList | Kind::List => "array",
            Kind::Number => "number",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            Kind::String | Kind::Email => value.is_string(),
            Kind::Boolean => value.is_boolean(),
            Kind::Record => value.is_object(),
            Kind::StringList => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            Kind::List => value.is_array(),
            Kind::Number => value.is_number(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    /// `null` allowed (zod `nullish`).
    pub nullable: bool,
    pub required: bool,
}

pub const fn nullish(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        nullable: true,
        required: false,
    }
}

/// May be absent, but not `null` (zod `optional`).
pub const fn optional(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        nullable: false,
        required: false,
    }
}

pub const fn required(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        nullable: false,
        required: true,
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
        other => other.to_string(),
    }
}

/// Checks `body` against `fields`; at most three issues are reported, as Medusa does.
pub fn validate(body: Value, fields: &[Field]) -> ApiResult<Map<String, Value>> {
    let Value::Object(map) = body else {
        return Err(invalid(format!(
            "Invalid request: Expected type: 'object' for field 'body', got: '{}'",
            shown(&body)
        )));
    };
    let mut issues = Vec::new();
    let unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !fields.iter().any(|f| f.name == *k))
        .collect();
    if !unknown.is_empty() {
        issues.push(format!("Unrecognized fields: '{}'", unknown.join(", ")));
    }
    for field in fields {
        match map.get(field.name) {
            None if field.required => issues.push(format!("Field '{}' is required", field.name)),
            None => {}
            Some(Value::Null) if field.nullable => {}
            Some(value) if field.kind.accepts(value) => {}
            Some(value) => issues.push(format!(
                "Expected type: '{}' for field '{}', got: '{}'",
                field.kind.type_name(),
                field.name,
                shown(value)
            )),
        }
    }
    if issues.is_empty() {
        Ok(map)
    } else {
        issues.truncate(3);
        Err(invalid(format!("Invalid request: {}", issues.join("; "))))
    }
}

/// The raw JSON body; malformed JSON and oversized bodies become Medusa-shaped 4xx errors.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = axum::response::Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                PayloadTooLarge(MAX_BODY_BYTES).into_response()
            } else {
                invalid(format!(
                    "Invalid request: cannot read the body: {rejection}"
                ))
                .into_response()
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Object(Map::new())));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            invalid(format!("Invalid request: the body is not valid JSON ({e})")).into_response()
        })
    }
}

/// `Some(None)` for an explicit null, `Some(Some(s))` for a string, `None` when absent.
pub fn text_change(map: &Map<String, Value>, name: &str) -> Option<Option<String>> {
    map.get(name).map(|v| v.as_str().map(str::to_owned))
}

/// A validated `StringList` field, trimmed; `None` when absent.
pub fn string_list(map: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    map.get(name).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(|s| s.trim().to_owned())
            .collect()
    })
}

pub fn record_change(map: &Map<String, Value>, name: &str) -> Option<Option<Map<String, Value>>> {
    map.get(name).map(|v| v.as_object().cloned())
}

#[cfg(test)]
mod tests {
    use super::super::error::ApiError;
    use super::*;
    use serde_json::json;
    use shared::DomainError;

    const FIELDS: &[Field] = &[
        nullish("email", Kind::Email),
        nullish("first_name", Kind::String),
        required("name", Kind::String),
    ];

    fn message(result: ApiResult<Map<String, Value>>) -> String {
        match result {
            Err(ApiError(DomainError::InvalidData(m))) => m,
            other => panic!("expected invalid data, got {other:?}"),
        }
    }

    #[test]
    fn medusa_messages() {
        assert_eq!(
            message(validate(json!({"name": "x", "bogus": 1}), FIELDS)),
            "Invalid request: Unrecognized fields: 'bogus'"
        );
        assert_eq!(
            message(validate(json!({"name": "x", "first_name": 42}), FIELDS)),
            "Invalid request: Expected type: 'string' for field 'first_name', got: '42'"
        );
        assert_eq!(
            message(validate(json!({}), FIELDS)),
            "Invalid request: Field 'name' is required"
        );
        assert_eq!(
            message(validate(json!({"name": null}), FIELDS)),
            "Invalid request: Expected type: 'string' for field 'name', got: 'null'"
        );
        assert!(message(validate(json!([1]), FIELDS)).contains("'object'"));
        assert!(validate(json!({"name": "x", "email": null}), FIELDS).is_ok());
    }
}
