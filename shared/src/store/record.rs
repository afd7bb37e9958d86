//! Entities to items and back: the serde form of an entity plus its key and bookkeeping.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Item, Key};
use crate::error::{DomainError, DomainResult};

/// A marker: an item at `key` that only names another entity (`attribute` = `id`) — what
/// uniqueness markers, default-address markers and index entries are.
pub fn pointer(key: &Key, entity_type: &str, attribute: &str, id: &str) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), key.pk.clone().into());
    item.insert("sk".into(), key.sk.clone().into());
    item.insert("entity_type".into(), entity_type.into());
    item.insert(attribute.into(), id.into());
    item
}

/// The item of `value` at `key`, tagged with its entity type and version.
pub fn to_item<T: Serialize>(
    value: &T,
    key: &Key,
    entity_type: &str,
    version: u64,
) -> DomainResult<Item> {
    let Value::Object(mut item) =
        serde_json::to_value(value).map_err(|e| DomainError::Internal(e.to_string()))?
    else {
        return Err(DomainError::Internal(format!(
            "{entity_type} did not serialise to an object"
        )));
    };
    item.insert("pk".into(), key.pk.clone().into());
    item.insert("sk".into(), key.sk.clone().into());
    item.insert("entity_type".into(), entity_type.into());
    item.insert("version".into(), version.into());
    Ok(item)
}

/// The entity stored in `item` and its version.
pub fn from_item<T: DeserializeOwned>(item: Item) -> DomainResult<(T, u64)> {
    let version = item.get("version").and_then(Value::as_u64).unwrap_or(0);
    let kind = item
        .get("entity_type")
        .and_then(Value::as_str)
        .unwrap_or("record")
        .to_owned();
    serde_json::from_value(Value::Object(item))
        .map(|v| (v, version))
        .map_err(|e| DomainError::Internal(format!("stored {kind} is unreadable: {e}")))
}

/// A string attribute of an item.
pub fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(Value::as_str)
}
