//! Entities to items and back: the serde form of an entity plus its key and bookkeeping.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Index, Item, Key, PK, SK, StoreError};
use crate::error::{DomainError, DomainResult};

/// An item given as its JSON text: an entity serialised once, straight into the bytes a store
/// that keeps JSON (the embedded file) writes as they are. Building an [`Item`] attribute by
/// attribute, encoding it and freeing it was about a fifth of a bulk import's CPU. A store that
/// takes attributes (DynamoDB) reads it back with [`EncodedItem::to_item`].
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedItem {
    key: Key,
    /// A JSON object of every attribute but `pk` and `sk`.
    body: Vec<u8>,
    /// The item's place in each secondary index; the attributes themselves are in `body` too.
    index_keys: Vec<(Index, String, String)>,
}

/// Bytes of a typical entity's JSON (a customer's are about 500).
const BODY_CAPACITY: usize = 512;

impl EncodedItem {
    /// The item at `key` with no other attribute yet.
    pub fn empty(key: Key) -> Self {
        EncodedItem {
            key,
            body: b"{}".to_vec(),
            index_keys: Vec::new(),
        }
    }

    /// The item of `value`, which serialises to a JSON object, at `key`.
    pub fn of<T: Serialize>(key: Key, value: &T) -> DomainResult<Self> {
        let mut body = Vec::with_capacity(BODY_CAPACITY);
        serde_json::to_writer(&mut body, value)
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        if body.first() != Some(&b'{') || body.last() != Some(&b'}') {
            return Err(DomainError::Internal(format!(
                "{} did not serialise to an object",
                std::any::type_name::<T>()
            )));
        }
        Ok(EncodedItem {
            key,
            body,
            index_keys: Vec::new(),
        })
    }

    /// Adds attribute `name`, which the item does not have yet (a repeated name keeps the
    /// last value, as reading it back does).
    pub fn with<V: Serialize + ?Sized>(mut self, name: &str, value: &V) -> DomainResult<Self> {
        self.body.pop();
        if self.body.len() > 1 {
            self.body.push(b',');
        }
        let written = serde_json::to_writer(&mut self.body, name)
            .and_then(|()| {
                self.body.push(b':');
                serde_json::to_writer(&mut self.body, value)
            })
            .map_err(|e| DomainError::Internal(e.to_string()));
        self.body.push(b'}');
        written.map(|()| self)
    }

    /// Places the item in `index` at (`partition`, `sort`): both attributes, and the keys.
    pub fn indexed(self, index: Index, partition: String, sort: String) -> DomainResult<Self> {
        let (p, s) = index.key_attributes();
        let mut item = self.with(p, &partition)?.with(s, &sort)?;
        item.index_keys.push((index, partition, sort));
        Ok(item)
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The key, the JSON object of the other attributes, and the secondary index keys.
    pub fn into_parts(self) -> (Key, Vec<u8>, Vec<(Index, String, String)>) {
        (self.key, self.body, self.index_keys)
    }

    /// The same item, attribute by attribute.
    pub fn to_item(&self) -> Result<Item, StoreError> {
        let mut item: Item = serde_json::from_slice(&self.body).map_err(|e| {
            StoreError::Backend(format!(
                "unreadable item {}/{}: {e}",
                self.key.pk, self.key.sk
            ))
        })?;
        item.insert(PK.into(), self.key.pk.clone().into());
        item.insert(SK.into(), self.key.sk.clone().into());
        Ok(item)
    }
}

/// [`pointer`] as an [`EncodedItem`].
pub fn encoded_pointer(
    key: &Key,
    entity_type: &str,
    attribute: &str,
    id: &str,
) -> DomainResult<EncodedItem> {
    EncodedItem::empty(key.clone())
        .with("entity_type", entity_type)?
        .with(attribute, id)
}

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

/// The item of `value` at `key`, tagged with its entity type and version, as JSON text.
pub fn encoded<T: Serialize>(
    value: &T,
    key: &Key,
    entity_type: &str,
    version: u64,
) -> DomainResult<EncodedItem> {
    EncodedItem::of(key.clone(), value)?
        .with("entity_type", entity_type)?
        .with("version", &version)
}

/// The item of `value` at `key`, tagged with its entity type and version.
pub fn to_item<T: Serialize>(
    value: &T,
    key: &Key,
    entity_type: &str,
    version: u64,
) -> DomainResult<Item> {
    Ok(encoded(value, key, entity_type, version)?.to_item()?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_encoded_item_reads_back_as_the_item_spelt_out() {
        let key = Key::new("CUS#1", "PROFILE");
        let value = json!({"name": "Ann \"Quote\" O'Neil\n", "tags": ["a", "b"], "meta": {"x": 1}});
        let encoded = encoded(&value, &key, "customer", 7)
            .and_then(|e| e.indexed(Index::Gsi2, "EMAIL#2".into(), "ann@example.com".into()))
            .expect("encodes");
        let expected = json!({
            "pk": "CUS#1",
            "sk": "PROFILE",
            "name": "Ann \"Quote\" O'Neil\n",
            "tags": ["a", "b"],
            "meta": {"x": 1},
            "entity_type": "customer",
            "version": 7,
            "gsi2pk": "EMAIL#2",
            "gsi2sk": "ann@example.com",
        });
        assert_eq!(Value::Object(encoded.to_item().expect("reads")), expected);
        assert_eq!(
            Value::Object(to_item(&value, &key, "customer", 7).expect("builds")),
            json!({"pk": "CUS#1", "sk": "PROFILE", "name": "Ann \"Quote\" O'Neil\n",
                   "tags": ["a", "b"], "meta": {"x": 1}, "entity_type": "customer", "version": 7})
        );
        let (read_key, body, index_keys) = encoded.into_parts();
        assert_eq!(read_key, key);
        assert!(!String::from_utf8_lossy(&body).contains("\"pk\""));
        assert_eq!(
            index_keys,
            vec![(
                Index::Gsi2,
                "EMAIL#2".to_owned(),
                "ann@example.com".to_owned()
            )]
        );
    }

    #[test]
    fn an_encoded_pointer_is_the_pointer() {
        let key = Key::new("EMAIL#\"odd\"", "x");
        let encoded = encoded_pointer(&key, "customer_email", "customer_id", "cus_\u{e9}\\1")
            .expect("encodes");
        assert_eq!(
            encoded.to_item().expect("reads"),
            pointer(&key, "customer_email", "customer_id", "cus_\u{e9}\\1")
        );
        assert_eq!(
            EncodedItem::empty(key.clone()).to_item().expect("reads"),
            super::super::bare_item(&key)
        );
    }

    #[test]
    fn only_an_object_is_an_item() {
        let key = Key::new("A", "B");
        assert!(EncodedItem::of(key.clone(), &json!(["not", "an", "object"])).is_err());
        assert!(EncodedItem::of(key, &"text").is_err());
    }
}
