//! Opaque cursors for keyset pagination of lists: where the next page starts, bound to the
//! order and filters of the query that produced it, so a cursor cannot be replayed on another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{ApiResult, invalid};
use super::query::Params;

/// Parameters that do not change which rows a query selects or their order.
const PAGING: [&str; 4] = ["cursor", "offset", "limit", "fields"];

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Cursor {
    /// Order key of the last row of the previous page.
    after: String,
    /// Digest of the filters and order.
    query: String,
}

fn fingerprint(params: &Params) -> String {
    let selecting: Vec<_> = params
        .iter()
        .filter(|(k, _)| !PAGING.contains(&k.as_str()))
        .collect();
    let digest = Sha256::digest(format!("{selecting:?}").as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

pub fn encode(after: &str, params: &Params) -> String {
    let cursor = Cursor {
        after: after.to_owned(),
        query: fingerprint(params),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

/// The position a `cursor` parameter points at: `None` for an empty cursor (the first page).
pub fn decode(raw: &str, params: &Params) -> ApiResult<Option<String>> {
    if raw.is_empty() {
        return Ok(None);
    }
    let cursor: Cursor = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| invalid("Invalid request: the cursor is malformed"))?;
    if cursor.query != fingerprint(params) {
        return Err(invalid(
            "Invalid request: the cursor belongs to a query with other filters or order",
        ));
    }
    Ok(Some(cursor.after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::query::parse;

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_query() {
        let params = parse(Some("q=doe&order=-email&limit=5")).unwrap();
        let raw = encode("doe@x.com\u{1}cus_1", &params);
        let later = parse(Some(&format!("q=doe&order=-email&limit=20&cursor={raw}"))).unwrap();
        assert_eq!(
            decode(&raw, &later).unwrap().as_deref(),
            Some("doe@x.com\u{1}cus_1")
        );
        let other = parse(Some("q=smith&order=-email")).unwrap();
        assert!(decode(&raw, &other).is_err());
        assert!(decode("not-a-cursor", &params).is_err());
        assert_eq!(decode("", &params).unwrap(), None);
    }
}
