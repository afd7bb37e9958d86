//! Staff user records, shared by every identity provider.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | staff user | `USER#<id>` | `#PROFILE`, gsi1 `USERS`/`<id>` |

use std::sync::Arc;

use serde_json::{Value, json};

use super::links;
use crate::error::DomainResult;
use crate::store::{Condition, Index, KvStore, Query, WriteOp};

/// Whether any staff user exists (to decide whether to create the first one).
pub async fn any_staff(store: &Arc<dyn KvStore>) -> DomainResult<bool> {
    let mut query = Query::new(Index::Gsi1, "USERS");
    query.limit = 1;
    Ok(!store.query(&query).await?.items.is_empty())
}

/// The writes that create staff user `user_id` for `email`, linked to `identity_id`.
pub fn staff_user_ops(identity_id: &str, user_id: &str, email: &str, now: &str) -> Vec<WriteOp> {
    let user = json!({
        "id": user_id, "email": email.trim(), "first_name": null, "last_name": null,
        "created_at": now, "updated_at": now, "deleted_at": null,
        "gsi1pk": "USERS", "gsi1sk": user_id, "version": 0,
        "pk": format!("USER#{user_id}"), "sk": "#PROFILE", "entity_type": "user",
    });
    let Value::Object(item) = user else {
        unreachable!("a JSON object literal")
    };
    let mut ops = vec![WriteOp::Put {
        item,
        condition: Some(Condition::NotExists),
    }];
    ops.extend(links::link_ops(identity_id, "user", user_id));
    ops
}
