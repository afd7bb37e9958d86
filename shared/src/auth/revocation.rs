//! Ending every token and session of an identity at once: a password reset, or "sign out
//! everywhere".
//!
//! | item | pk | sk |
//! |---|---|---|
//! | sign-out mark | `AUTHID#<identity>` | `#SIGNOUT` (`generation`, `signed_out_at` epoch seconds) |
//!
//! Tokens the local issuer signs carry the identity's generation at signing (claim `gen`); a
//! sign-out raises it, so every earlier token, and every session made from one, stops
//! verifying, however close in time. Tokens of other issuers (Cognito) carry no generation:
//! those issued before `signed_out_at` are refused (to the second, the precision of `iat`).
//! Checked on every request: one store read, no cache, so a reset takes effect at once.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::SignInFacts;
use super::links::identity_partition;
use crate::error::{DomainError, DomainResult};
use crate::store::{Condition, Key, KvStore, StoreError, WriteOp};

fn mark_key(identity_id: &str) -> Key {
    Key::new(identity_partition(identity_id), "#SIGNOUT")
}

/// Where an identity's sign-outs stand; all zero for one that never signed out everywhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignOutMark {
    pub generation: i64,
    pub signed_out_at: i64,
}

impl SignOutMark {
    /// Whether this mark ends the sign-in `facts` describe (unknown facts: any sign-out ends it).
    pub fn ends(&self, facts: Option<&SignInFacts>) -> bool {
        match facts {
            Some(SignInFacts {
                generation: Some(generation),
                ..
            }) => *generation < self.generation,
            Some(facts) => facts.issued_at < self.signed_out_at,
            None => self.generation > 0,
        }
    }
}

/// The identity's sign-out mark.
pub async fn mark(store: &Arc<dyn KvStore>, identity_id: &str) -> DomainResult<SignOutMark> {
    let Some(item) = store.get(&mark_key(identity_id)).await? else {
        return Ok(SignOutMark::default());
    };
    let number = |name: &str| item.get(name).and_then(Value::as_i64).unwrap_or(0);
    Ok(SignOutMark {
        generation: number("generation"),
        signed_out_at: number("signed_out_at"),
    })
}

/// The write that moves the identity from `current` to the next generation at `now_unix`; it
/// fails its condition if someone else moved it first.
pub fn sign_out_op(identity_id: &str, current: &SignOutMark, now_unix: i64) -> WriteOp {
    let key = mark_key(identity_id);
    let mut item = Map::new();
    item.insert("pk".into(), key.pk.into());
    item.insert("sk".into(), key.sk.into());
    item.insert("entity_type".into(), "sign_out_mark".into());
    item.insert("generation".into(), (current.generation + 1).into());
    item.insert(
        "signed_out_at".into(),
        now_unix.max(current.signed_out_at).into(),
    );
    let condition = if *current == SignOutMark::default() {
        Condition::NotExists
    } else {
        Condition::Equals {
            attribute: "generation".into(),
            value: current.generation.into(),
        }
    };
    WriteOp::Put {
        item,
        condition: Some(condition),
    }
}

/// Ends every token and session the identity has now. Retries when another sign-out of the
/// same identity raced it (either one ends the earlier tokens).
pub async fn sign_out_everywhere(
    store: &Arc<dyn KvStore>,
    identity_id: &str,
    now_unix: i64,
) -> DomainResult<()> {
    for _ in 0..5 {
        let current = mark(store, identity_id).await?;
        match store
            .transact(vec![sign_out_op(identity_id, &current, now_unix)])
            .await
        {
            Ok(()) => return Ok(()),
            Err(StoreError::ConditionFailed { .. } | StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DomainError::Conflict(
        "The sign-out raced too many others, please retry.".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_ends_earlier_generations_and_earlier_foreign_tokens() {
        let mark = SignOutMark {
            generation: 2,
            signed_out_at: 1_000,
        };
        let local = |generation| SignInFacts {
            auth_time: 0,
            issued_at: 5_000,
            generation: Some(generation),
        };
        assert!(mark.ends(Some(&local(1))));
        assert!(!mark.ends(Some(&local(2))));
        let foreign = |issued_at| SignInFacts {
            auth_time: 0,
            issued_at,
            generation: None,
        };
        assert!(mark.ends(Some(&foreign(999))));
        assert!(!mark.ends(Some(&foreign(1_000))));
        assert!(mark.ends(None));
        assert!(!SignOutMark::default().ends(None));
    }
}
