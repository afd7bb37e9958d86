//! Who is calling: tokens, their verification, and the local sign-in provider.

pub mod local;
pub mod tokens;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The actor behind a request, as Medusa's routes see it (`req.auth_context`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthContext {
    /// Empty until the actor record exists (a customer who registered but has no profile yet).
    pub actor_id: String,
    /// `user` (staff) or `customer`.
    pub actor_type: String,
    pub auth_identity_id: String,
    #[serde(default)]
    pub app_metadata: Map<String, Value>,
}

impl AuthContext {
    /// Reads Medusa's claims. Missing `actor_id` means "not linked yet", as in a fresh registration.
    pub fn from_claims(claims: &Map<String, Value>) -> Option<AuthContext> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Some(AuthContext {
            actor_id: text("actor_id").unwrap_or_default(),
            actor_type: text("actor_type")?,
            auth_identity_id: text("auth_identity_id").unwrap_or_default(),
            app_metadata: claims
                .get("app_metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        })
    }

    pub fn is_staff(&self) -> bool {
        self.actor_type == "user" && !self.actor_id.is_empty()
    }
}
