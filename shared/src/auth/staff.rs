//! Staff user records, shared by every identity provider.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | staff user | `USER#<id>` | `#PROFILE`, gsi1 `USERS`/`<id>` |
//!
//! A record written before roles existed has no `roles` attribute; such a user was a full
//! administrator then and stays one (`admin`) until given roles.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::links;
use crate::error::{DomainError, DomainResult};
use crate::ports::{Clock, iso};
use crate::roles::ADMIN;
use crate::store::record::{from_item, to_item};
use crate::store::{Condition, Index, Key, KvStore, Query, WriteOp, query_all};

const MAX_NAME: usize = 255;

/// Whether any staff user exists (to decide whether to create the first one).
pub async fn any_staff(store: &Arc<dyn KvStore>) -> DomainResult<bool> {
    let mut query = Query::new(Index::Gsi1, "USERS");
    query.limit = 1;
    Ok(!store.query(&query).await?.items.is_empty())
}

fn user_key(id: &str) -> Key {
    Key::new(format!("USER#{id}"), "#PROFILE")
}

/// The writes that create staff user `user_id` for `email` with `roles`, linked to `identity_id`.
pub fn staff_user_ops(
    identity_id: &str,
    user_id: &str,
    email: &str,
    roles: &[String],
    now: &str,
) -> Vec<WriteOp> {
    let user = json!({
        "id": user_id, "email": email.trim(), "first_name": null, "last_name": null,
        "roles": roles, "metadata": null,
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

fn legacy_roles() -> Vec<String> {
    vec![ADMIN.to_owned()]
}

/// A staff user as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffUser {
    pub id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(default = "legacy_roles")]
    pub roles: Vec<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    pub created_at: String,
    pub updated_at: String,
}

/// What an update may change: `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StaffPatch {
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub roles: Option<Vec<String>>,
    pub metadata: Option<Option<Map<String, Value>>>,
}

#[derive(Clone)]
pub struct StaffUsers {
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("User with id: {id} was not found"))
}

impl StaffUsers {
    pub fn new(store: Arc<dyn KvStore>, clock: Arc<dyn Clock>) -> Self {
        StaffUsers { store, clock }
    }

    async fn load(&self, id: &str) -> DomainResult<Option<(StaffUser, u64)>> {
        self.store
            .get(&user_key(id))
            .await?
            .map(from_item)
            .transpose()
    }

    pub async fn retrieve(&self, id: &str) -> DomainResult<StaffUser> {
        self.load(id)
            .await?
            .map(|(u, _)| u)
            .ok_or_else(|| not_found(id))
    }

    /// The roles of a staff user; `None` when there is no such user.
    pub async fn roles_of(&self, id: &str) -> DomainResult<Option<Vec<String>>> {
        Ok(self.load(id).await?.map(|(u, _)| u.roles))
    }

    /// Every staff user, in creation order.
    pub async fn all(&self) -> DomainResult<Vec<StaffUser>> {
        query_all(self.store.as_ref(), Query::new(Index::Gsi1, "USERS"))
            .await?
            .into_iter()
            .map(|item| Ok(from_item::<StaffUser>(item)?.0))
            .collect()
    }

    /// Ids of the users holding `role`.
    pub async fn holding(&self, role: &str) -> DomainResult<Vec<String>> {
        Ok(self
            .all()
            .await?
            .into_iter()
            .filter(|u| u.roles.iter().any(|r| r == role))
            .map(|u| u.id)
            .collect())
    }

    /// Applies `patch`. Taking `admin` from the last administrator is refused, so the store
    /// can never end up without someone able to manage staff.
    pub async fn update(&self, id: &str, patch: &StaffPatch) -> DomainResult<StaffUser> {
        for text in [&patch.first_name, &patch.last_name]
            .into_iter()
            .flatten()
            .flatten()
        {
            if text.chars().count() > MAX_NAME {
                return Err(DomainError::InvalidData(format!(
                    "Names must be at most {MAX_NAME} characters"
                )));
            }
        }
        crate::customers::check_metadata(&patch.metadata.clone().flatten())?;
        for _ in 0..5 {
            let (current, version) = self.load(id).await?.ok_or_else(|| not_found(id))?;
            let mut next = current.clone();
            if let Some(v) = &patch.first_name {
                next.first_name = v.clone();
            }
            if let Some(v) = &patch.last_name {
                next.last_name = v.clone();
            }
            if let Some(v) = &patch.metadata {
                next.metadata = v.clone();
            }
            if let Some(roles) = &patch.roles {
                // Each role once, in the order given.
                let mut unique: Vec<String> = Vec::with_capacity(roles.len());
                for role in roles {
                    if !unique.contains(role) {
                        unique.push(role.clone());
                    }
                }
                next.roles = unique;
            }
            let loses_admin =
                current.roles.iter().any(|r| r == ADMIN) && !next.roles.iter().any(|r| r == ADMIN);
            if loses_admin && self.holding(ADMIN).await?.iter().all(|u| u == id) {
                return Err(DomainError::NotAllowed(
                    "This is the last user with the admin role; give the role to someone else first".into(),
                ));
            }
            next.updated_at = iso(self.clock.now());
            let mut item = to_item(&next, &user_key(id), "user", version + 1)?;
            item.insert("gsi1pk".into(), "USERS".into());
            item.insert("gsi1sk".into(), id.into());
            item.insert("deleted_at".into(), Value::Null);
            let write = WriteOp::Put {
                item,
                condition: Some(Condition::equals("version", version)),
            };
            match self.store.transact(vec![write]).await {
                Ok(()) => return Ok(next),
                Err(crate::store::StoreError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Conflict(format!(
            "User {id} is being changed by other requests, please retry."
        )))
    }
}
