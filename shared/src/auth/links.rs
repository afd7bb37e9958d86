//! Identity links: which actor (a customer, a staff user) an auth identity signs in as.
//!
//! One identity may link to one actor of each type; one customer may have several identities
//! (a password, Google, a company's SAML). Links are items of their own so that creating a
//! customer and linking it happen in one transaction, and so that deleting the customer can
//! find and remove them.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | forward link | `AUTHID#<identity>` | `ACTOR#<actor_type>` (`actor_id`) |
//! | reverse link | `<actor partition>` (`CUS#<id>`, `USER#<id>`) | `AUTHID#<identity>` |

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::DomainResult;
use crate::store::{BatchOp, Condition, Index, Item, Key, KvStore, Query, SortCondition, WriteOp};

pub fn identity_partition(identity_id: &str) -> String {
    format!("AUTHID#{identity_id}")
}

fn forward_key(identity_id: &str, actor_type: &str) -> Key {
    Key::new(
        identity_partition(identity_id),
        format!("ACTOR#{actor_type}"),
    )
}

/// The partition an actor's records live in.
pub fn actor_partition(actor_type: &str, actor_id: &str) -> String {
    match actor_type {
        "customer" => format!("CUS#{actor_id}"),
        "user" => format!("USER#{actor_id}"),
        other => format!("ACTOR#{other}#{actor_id}"),
    }
}

fn reverse_key(identity_id: &str, actor_type: &str, actor_id: &str) -> Key {
    Key::new(
        actor_partition(actor_type, actor_id),
        format!("AUTHID#{identity_id}"),
    )
}

fn keyed(key: Key, fields: Map<String, Value>) -> Item {
    let mut item = fields;
    item.insert("pk".into(), key.pk.into());
    item.insert("sk".into(), key.sk.into());
    item
}

/// The writes that link `identity_id` to an actor; the first fails its condition when the
/// identity already has an actor of that type.
pub fn link_ops(identity_id: &str, actor_type: &str, actor_id: &str) -> Vec<WriteOp> {
    let mut forward = Map::new();
    forward.insert("entity_type".into(), "identity_link".into());
    forward.insert("actor_type".into(), actor_type.into());
    forward.insert("actor_id".into(), actor_id.into());
    let mut reverse = forward.clone();
    reverse.insert("auth_identity_id".into(), identity_id.into());
    reverse.insert("entity_type".into(), "identity_link_reverse".into());
    vec![
        WriteOp::Put {
            item: keyed(forward_key(identity_id, actor_type), forward),
            condition: Some(Condition::NotExists),
        },
        WriteOp::Put {
            item: keyed(reverse_key(identity_id, actor_type, actor_id), reverse),
            condition: None,
        },
    ]
}

/// Like [`link_ops`], for a link made on the identity's behalf (by a sign-up trigger): the
/// first `POST /store/customers` of the identity claims the customer instead of failing.
pub fn pending_link_ops(identity_id: &str, actor_type: &str, actor_id: &str) -> Vec<WriteOp> {
    let mut ops = link_ops(identity_id, actor_type, actor_id);
    if let Some(WriteOp::Put { item, .. }) = ops.first_mut() {
        item.insert("pending_claim".into(), true.into());
    }
    ops
}

/// Marks link writes as made for an identity whose email nothing proved (an auto-confirmed
/// sign-up, an unverified Google or an out-of-domain SAML identity): the customer they reach was
/// claimed on the identity's word, so no other identity is ever linked to it by that email.
pub fn unproven(mut ops: Vec<WriteOp>) -> Vec<WriteOp> {
    for op in &mut ops {
        if let WriteOp::Put { item, .. } = op {
            item.insert("email_unproven".into(), true.into());
        }
    }
    ops
}

/// Whether an identity whose email nothing proved is linked to the actor (see [`unproven`]).
pub async fn has_unproven_identity(
    store: &Arc<dyn KvStore>,
    actor_type: &str,
    actor_id: &str,
) -> DomainResult<bool> {
    let mut query = Query::new(Index::Main, actor_partition(actor_type, actor_id));
    query.sort = SortCondition::BeginsWith("AUTHID#".into());
    loop {
        let page = store.query(&query).await?;
        if page
            .items
            .iter()
            .any(|item| item.get("email_unproven").and_then(Value::as_bool) == Some(true))
        {
            return Ok(true);
        }
        match page.last_key {
            Some(last) => query.start_after = Some(last),
            None => return Ok(false),
        }
    }
}

/// A forward link as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub actor_id: String,
    /// Made by a trigger and not yet claimed by the identity itself.
    pub pending_claim: bool,
}

pub async fn link(
    store: &Arc<dyn KvStore>,
    identity_id: &str,
    actor_type: &str,
) -> DomainResult<Option<Link>> {
    Ok(store
        .get(&forward_key(identity_id, actor_type))
        .await?
        .and_then(|item| {
            Some(Link {
                actor_id: item.get("actor_id")?.as_str()?.to_owned(),
                pending_claim: item.get("pending_claim").and_then(Value::as_bool) == Some(true),
            })
        }))
}

/// Marks a pending link as claimed; fails (`ConditionFailed`) when it was claimed already.
pub fn claim_op(identity_id: &str, actor_type: &str, actor_id: &str) -> WriteOp {
    let mut ops = link_ops(identity_id, actor_type, actor_id);
    let WriteOp::Put { item, .. } = ops.swap_remove(0) else {
        unreachable!("link_ops starts with a put")
    };
    WriteOp::Put {
        item,
        condition: Some(Condition::equals("pending_claim", true)),
    }
}

/// The actor of `actor_type` that `identity_id` is linked to, if any.
pub async fn actor_id(
    store: &Arc<dyn KvStore>,
    identity_id: &str,
    actor_type: &str,
) -> DomainResult<Option<String>> {
    Ok(store
        .get(&forward_key(identity_id, actor_type))
        .await?
        .and_then(|item| {
            item.get("actor_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }))
}

/// Every link of an identity as Medusa's `app_metadata` (`{customer_id, user_id}`).
pub async fn app_metadata(
    store: &Arc<dyn KvStore>,
    identity_id: &str,
) -> DomainResult<Map<String, Value>> {
    let mut query = Query::new(Index::Main, identity_partition(identity_id));
    query.sort = SortCondition::BeginsWith("ACTOR#".into());
    let page = store.query(&query).await?;
    Ok(page
        .items
        .iter()
        .filter_map(|item| {
            let actor_type = item.get("actor_type")?.as_str()?;
            let actor_id = item.get("actor_id")?.clone();
            Some((format!("{actor_type}_id"), actor_id))
        })
        .collect())
}

/// Removes every identity link of an actor (when the actor is deleted), so those identities
/// sign in unlinked again, as Medusa's do after a customer is deleted.
pub async fn unlink_actor(
    store: &Arc<dyn KvStore>,
    actor_type: &str,
    actor_id: &str,
) -> DomainResult<()> {
    let mut query = Query::new(Index::Main, actor_partition(actor_type, actor_id));
    query.sort = SortCondition::BeginsWith("AUTHID#".into());
    loop {
        let page = store.query(&query).await?;
        let mut deletes = Vec::new();
        for item in &page.items {
            let Some(identity) = item.get("auth_identity_id").and_then(Value::as_str) else {
                continue;
            };
            // The forward link goes first: a crash in between leaves only a harmless reverse link.
            store
                .transact(vec![WriteOp::Delete {
                    key: forward_key(identity, actor_type),
                    condition: Some(Condition::equals("actor_id", actor_id)),
                }])
                .await
                .or_else(|e| match e {
                    crate::store::StoreError::ConditionFailed { .. } => Ok(()),
                    other => Err(other),
                })?;
            deletes.push(BatchOp::Delete(reverse_key(identity, actor_type, actor_id)));
        }
        store.batch_write(deletes).await?;
        match page.last_key {
            Some(last) => query.start_after = Some(last),
            None => return Ok(()),
        }
    }
}
