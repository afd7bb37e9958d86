//! Staff roles (RBAC on `/admin`): policies in Medusa's `resource:operation` form, four
//! built-in roles and custom ones, and the decision whether a staff caller may do something.
//!
//! | item | pk | sk | index |
//! |---|---|---|---|
//! | custom role | `ROLE#<id>` | `#META` | gsi1 `ROLES` / `<id>` |
//! | name marker | `ROLENAME#<name>` | same | – |
//!
//! Roles live on the staff user record (`USER#<id>`, see `auth::staff`) and are read on each
//! request, so a change takes effect at once. A secret API key acts with the policies its
//! creator held when it was made (kept on the key), never more.
//!
//! Nobody hands out more than they hold: a role's policies, the roles given to or taken from a
//! staff user (the caller included) must each be covered by one of the caller's own policies,
//! and changing a role the caller holds takes `*:*`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api_keys::ApiKeyService;
use crate::auth::AuthContext;
use crate::auth::staff::StaffUsers;
use crate::customers::normalize_text;
use crate::error::{DomainError, DomainResult};
use crate::ports::{Clock, IdGenerator, iso};
use crate::store::record::{from_item, to_item};
use crate::store::{Condition, Index, Key, KvStore, Query, StoreError, WriteOp, query_all};

/// What policies name: Medusa's customer resources and this module's own.
pub const RESOURCES: &[&str] = &[
    "customer",
    "customer_address",
    "customer_group",
    "company",
    "permission_grant",
    "import",
    "export",
    "api_key",
    "role",
    "user",
];
pub const OPERATIONS: &[&str] = &["read", "create", "update", "delete"];

pub const ADMIN: &str = "admin";
pub const CUSTOMER_MANAGER: &str = "customer_manager";
pub const VIEWER: &str = "viewer";
pub const IMPORTER: &str = "importer";
pub const BUILT_IN: &[&str] = &[ADMIN, CUSTOMER_MANAGER, VIEWER, IMPORTER];

const MAX_POLICIES: usize = 100;
const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 1000;

/// What one route needs: an operation on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub resource: &'static str,
    pub operation: &'static str,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.resource, self.operation)
    }
}

/// Whether `policy` (`customer:read`, `customer:*`, `*:read`, `*:*`) covers `permission`.
pub fn covers(policy: &str, permission: Permission) -> bool {
    let Some((resource, operation)) = policy.split_once(':') else {
        return false;
    };
    (resource == "*" || resource == permission.resource)
        && (operation == "*" || operation == permission.operation)
}

/// Whether `held` covers all that `granted` gives: a wildcard is covered only by the same or a
/// wider wildcard, since `customer:*` also covers operations that do not exist yet.
pub fn covers_policy(held: &str, granted: &str) -> bool {
    let (Some((held_resource, held_operation)), Some((resource, operation))) =
        (held.split_once(':'), granted.split_once(':'))
    else {
        return false;
    };
    (held_resource == "*" || held_resource == resource)
        && (held_operation == "*" || held_operation == operation)
}

/// The policy that covers every other one: what changing one's own role takes.
pub const EVERYTHING: &str = "*:*";

/// A policy must name a known resource and operation (or `*`), so a typo is caught at once
/// rather than silently granting nothing.
pub fn check_policy(policy: &str) -> DomainResult<()> {
    let valid = policy.split_once(':').is_some_and(|(resource, operation)| {
        (resource == "*" || RESOURCES.contains(&resource))
            && (operation == "*" || OPERATIONS.contains(&operation))
    });
    if valid {
        Ok(())
    } else {
        Err(DomainError::InvalidData(format!(
            "Invalid policy '{policy}': expected resource:operation with resource one of {} or *, and operation one of {} or *",
            RESOURCES.join(", "),
            OPERATIONS.join(", ")
        )))
    }
}

/// A role as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub policies: Vec<String>,
    pub is_built_in: bool,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

fn built_in(id: &str, description: &str, policies: &[&str]) -> Role {
    Role {
        id: id.to_owned(),
        name: id.to_owned(),
        description: Some(description.to_owned()),
        policies: policies.iter().map(|p| p.to_string()).collect(),
        is_built_in: true,
        created_at: None,
        updated_at: None,
    }
}

/// The roles every deployment has.
pub fn built_in_roles() -> Vec<Role> {
    vec![
        built_in(ADMIN, "Everything", &["*:*"]),
        built_in(
            CUSTOMER_MANAGER,
            "Customers, their addresses, groups, companies and permission grants; imports and exports",
            &[
                "customer:*",
                "customer_address:*",
                "customer_group:*",
                "company:*",
                "permission_grant:*",
                "import:*",
                "export:*",
            ],
        ),
        built_in(VIEWER, "Reads everything, changes nothing", &["*:read"]),
        built_in(
            IMPORTER,
            "Runs imports and exports; reads customers, groups and companies",
            &[
                "import:*",
                "export:*",
                "customer:read",
                "customer_address:read",
                "customer_group:read",
                "company:read",
            ],
        ),
    ]
}

fn role_key(id: &str) -> Key {
    Key::new(format!("ROLE#{id}"), "#META")
}

fn name_key(name: &str) -> Key {
    let k = format!("ROLENAME#{}", normalize_text(name.trim()));
    Key::new(k.clone(), k)
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("Role with id: {id} was not found"))
}

fn check_fields(name: &str, description: Option<&str>, policies: &[String]) -> DomainResult<()> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME {
        return Err(DomainError::InvalidData(format!(
            "Field 'name' must be 1 to {MAX_NAME} characters"
        )));
    }
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(DomainError::InvalidData(format!(
            "Field 'description' must be at most {MAX_DESCRIPTION} characters"
        )));
    }
    if policies.is_empty() || policies.len() > MAX_POLICIES {
        return Err(DomainError::InvalidData(format!(
            "Field 'policies' must list 1 to {MAX_POLICIES} policies"
        )));
    }
    policies.iter().try_for_each(|p| check_policy(p))
}

/// What an update may change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolePatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub policies: Option<Vec<String>>,
}

#[derive(Clone)]
pub struct RoleService {
    store: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl RoleService {
    pub fn new(store: Arc<dyn KvStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        RoleService { store, clock, ids }
    }

    async fn load(&self, id: &str) -> DomainResult<Option<(Role, u64)>> {
        self.store
            .get(&role_key(id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Built-in roles first, then custom ones in creation order.
    pub async fn list(&self) -> DomainResult<Vec<Role>> {
        let mut roles = built_in_roles();
        for item in query_all(self.store.as_ref(), Query::new(Index::Gsi1, "ROLES")).await? {
            roles.push(from_item::<Role>(item)?.0);
        }
        Ok(roles)
    }

    pub async fn retrieve(&self, id: &str) -> DomainResult<Role> {
        if let Some(role) = built_in_roles().into_iter().find(|r| r.id == id) {
            return Ok(role);
        }
        self.load(id)
            .await?
            .map(|(r, _)| r)
            .ok_or_else(|| not_found(id))
    }

    /// The roles with these ids that exist (unknown ids grant nothing).
    pub async fn resolve(&self, ids: &[String]) -> DomainResult<Vec<Role>> {
        let mut roles: Vec<Role> = built_in_roles()
            .into_iter()
            .filter(|r| ids.contains(&r.id))
            .collect();
        let custom: Vec<Key> = ids
            .iter()
            .filter(|id| !BUILT_IN.contains(&id.as_str()))
            .map(|id| role_key(id))
            .collect();
        if !custom.is_empty() {
            for item in self.store.batch_get(&custom).await? {
                roles.push(from_item::<Role>(item)?.0);
            }
        }
        Ok(roles)
    }

    /// Every id must name a role: assigning a role that does not exist is a mistake.
    pub async fn check_ids(&self, ids: &[String]) -> DomainResult<()> {
        let found = self.resolve(ids).await?;
        match ids.iter().find(|id| !found.iter().any(|r| &r.id == *id)) {
            Some(missing) => Err(DomainError::InvalidData(format!(
                "Role with id: {missing} does not exist"
            ))),
            None => Ok(()),
        }
    }

    pub async fn create(
        &self,
        name: &str,
        description: Option<String>,
        policies: Vec<String>,
    ) -> DomainResult<Role> {
        check_fields(name, description.as_deref(), &policies)?;
        if BUILT_IN.contains(&normalize_text(name.trim()).as_str()) {
            return Err(duplicate(name));
        }
        let now = iso(self.clock.now());
        let role = Role {
            id: self.ids.new_id("role"),
            name: name.trim().to_owned(),
            description,
            policies,
            is_built_in: false,
            created_at: Some(now.clone()),
            updated_at: Some(now),
        };
        let ops = vec![
            WriteOp::Put {
                item: self.item(&role, 0)?,
                condition: Some(Condition::NotExists),
            },
            marker(&role),
        ];
        match self.store.transact(ops).await {
            Ok(()) => Ok(role),
            Err(StoreError::ConditionFailed { index: 1 }) => Err(duplicate(name)),
            Err(e) => Err(e.into()),
        }
    }

    fn item(&self, role: &Role, version: u64) -> DomainResult<crate::store::Item> {
        let mut item = to_item(role, &role_key(&role.id), "role", version)?;
        item.insert("gsi1pk".into(), "ROLES".into());
        item.insert("gsi1sk".into(), role.id.clone().into());
        Ok(item)
    }

    pub async fn update(&self, id: &str, patch: &RolePatch) -> DomainResult<Role> {
        if BUILT_IN.contains(&id) {
            return Err(DomainError::NotAllowed(format!(
                "Role {id} is built in and cannot be changed"
            )));
        }
        for _ in 0..5 {
            let (current, version) = self.load(id).await?.ok_or_else(|| not_found(id))?;
            let mut next = current.clone();
            if let Some(name) = &patch.name {
                next.name = name.trim().to_owned();
            }
            if let Some(description) = &patch.description {
                next.description = description.clone();
            }
            if let Some(policies) = &patch.policies {
                next.policies = policies.clone();
            }
            check_fields(&next.name, next.description.as_deref(), &next.policies)?;
            next.updated_at = Some(iso(self.clock.now()));
            let mut ops = vec![WriteOp::Put {
                item: self.item(&next, version + 1)?,
                condition: Some(Condition::equals("version", version)),
            }];
            let renamed = name_key(&next.name) != name_key(&current.name);
            if renamed {
                if BUILT_IN.contains(&normalize_text(next.name.trim()).as_str()) {
                    return Err(duplicate(&next.name));
                }
                ops.push(marker(&next));
                ops.push(WriteOp::Delete {
                    key: name_key(&current.name),
                    condition: None,
                });
            }
            match self.store.transact(ops).await {
                Ok(()) => return Ok(next),
                Err(StoreError::ConditionFailed { index: 0 }) => continue,
                Err(StoreError::ConditionFailed { index: 1 }) if renamed => {
                    return Err(duplicate(&next.name));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Conflict(format!(
            "Role {id} is being changed by other requests, please retry."
        )))
    }

    /// Deletes a custom role that no staff user holds any more.
    pub async fn delete(&self, id: &str, users: &StaffUsers) -> DomainResult<()> {
        if BUILT_IN.contains(&id) {
            return Err(DomainError::NotAllowed(format!(
                "Role {id} is built in and cannot be deleted"
            )));
        }
        let Some((role, _)) = self.load(id).await? else {
            return Ok(());
        };
        let holders = users.holding(id).await?;
        if !holders.is_empty() {
            return Err(DomainError::NotAllowed(format!(
                "Role {id} is assigned to {} staff user(s) ({}); take it from them first",
                holders.len(),
                holders.join(", ")
            )));
        }
        self.store
            .transact(vec![
                WriteOp::Delete {
                    key: role_key(id),
                    condition: None,
                },
                WriteOp::Delete {
                    key: name_key(&role.name),
                    condition: None,
                },
            ])
            .await?;
        Ok(())
    }

    /// The policies a staff caller acts with, read from the store on each call: a user's
    /// roles', or a secret key's snapshot. A claim in a token never adds to them.
    pub async fn holdings(
        &self,
        users: &StaffUsers,
        keys: &ApiKeyService,
        caller: &AuthContext,
    ) -> DomainResult<Holdings> {
        match caller.actor_type.as_str() {
            "api-key" => {
                let key = keys.retrieve(&caller.actor_id).await?;
                match key.policies {
                    Some(policies) => Ok(Holdings {
                        policies,
                        roles: Vec::new(),
                        source: format!("API key {}", key.id),
                    }),
                    // A key made before keys kept their policies: its creator's, as they are
                    // now (nothing when the creator is gone).
                    None => {
                        let roles = users.roles_of(&key.created_by).await?.unwrap_or_default();
                        Ok(Holdings {
                            policies: self.policies_of_roles(&roles).await?,
                            roles: Vec::new(),
                            source: format!("API key {} (its creator's roles)", key.id),
                        })
                    }
                }
            }
            "user" => {
                let roles = users.roles_of(&caller.actor_id).await?.unwrap_or_default();
                Ok(Holdings {
                    policies: self.policies_of_roles(&roles).await?,
                    source: if roles.is_empty() {
                        "none".to_owned()
                    } else {
                        roles.join(", ")
                    },
                    roles,
                })
            }
            _ => Ok(Holdings {
                policies: Vec::new(),
                roles: Vec::new(),
                source: "none".to_owned(),
            }),
        }
    }

    async fn policies_of_roles(&self, role_ids: &[String]) -> DomainResult<Vec<String>> {
        Ok(self
            .resolve(role_ids)
            .await?
            .into_iter()
            .flat_map(|r| r.policies)
            .collect())
    }

    /// Whether the caller may do `permission`; a 403 naming what is missing otherwise.
    pub async fn authorize(
        &self,
        users: &StaffUsers,
        keys: &ApiKeyService,
        caller: &AuthContext,
        permission: Permission,
    ) -> DomainResult<()> {
        let holdings = self.holdings(users, keys, caller).await?;
        if holdings.policies.iter().any(|p| covers(p, permission)) {
            return Ok(());
        }
        Err(DomainError::Forbidden(format!(
            "You are not allowed to perform this action: it needs {permission}, which your roles ({}) do not grant",
            holdings.source
        )))
    }

    /// Refuses (403, nothing changed) giving or taking the roles `role_ids` unless the caller
    /// could hand out every policy in them.
    pub async fn check_roles_grantable(
        &self,
        holdings: &Holdings,
        role_ids: &[String],
    ) -> DomainResult<()> {
        for role in self.resolve(role_ids).await? {
            if let Err(policy) = holdings.grantable(&role.policies) {
                return Err(DomainError::Forbidden(format!(
                    "You are not allowed to assign or remove role {}: it grants {policy}, which your roles ({}) do not",
                    role.id, holdings.source
                )));
            }
        }
        Ok(())
    }

    /// Refuses (403) a change to role `id` by a caller who holds it, unless it holds `*:*`:
    /// otherwise widening one's own role would be a way past [`Holdings::grantable`]'s check
    /// when the caller is also the only one who reviews it.
    pub fn check_not_own_role(holdings: &Holdings, id: &str) -> DomainResult<()> {
        if holdings.roles.iter().any(|r| r == id)
            && !holdings.policies.iter().any(|p| p == EVERYTHING)
        {
            return Err(DomainError::Forbidden(format!(
                "You are not allowed to change role {id}: you hold it, and changing one's own role needs admin"
            )));
        }
        Ok(())
    }
}

/// What a staff caller acts with, and where that comes from (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Holdings {
    pub policies: Vec<String>,
    /// The roles a staff user holds (none for a key or anyone else).
    pub roles: Vec<String>,
    pub source: String,
}

impl Holdings {
    /// `Err(policy)` names the first of `policies` the caller does not cover.
    pub fn grantable<'a>(&self, policies: &'a [String]) -> Result<(), &'a str> {
        match policies.iter().find(|granted| {
            !self
                .policies
                .iter()
                .any(|held| covers_policy(held, granted))
        }) {
            Some(missing) => Err(missing),
            None => Ok(()),
        }
    }

    /// [`Holdings::grantable`] as the API's 403.
    pub fn check_grantable(&self, policies: &[String]) -> DomainResult<()> {
        self.grantable(policies).map_err(|policy| {
            DomainError::Forbidden(format!(
                "You are not allowed to grant {policy}: your roles ({}) do not",
                self.source
            ))
        })
    }
}

fn marker(role: &Role) -> WriteOp {
    let mut item = crate::store::Item::new();
    let key = name_key(&role.name);
    item.insert("pk".into(), key.pk.into());
    item.insert("sk".into(), key.sk.into());
    item.insert("role_id".into(), role.id.clone().into());
    WriteOp::Put {
        item,
        condition: Some(Condition::NotExists),
    }
}

fn duplicate(name: &str) -> DomainError {
    DomainError::InvalidData(format!("Role with name: {}, already exists.", name.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(resource: &'static str, operation: &'static str) -> Permission {
        Permission {
            resource,
            operation,
        }
    }

    #[test]
    fn policies_cover_with_wildcards() {
        assert!(covers("customer:read", p("customer", "read")));
        assert!(!covers("customer:read", p("customer", "update")));
        assert!(!covers("customer:read", p("customer_group", "read")));
        assert!(covers("customer:*", p("customer", "delete")));
        assert!(covers("*:read", p("role", "read")));
        assert!(!covers("*:read", p("role", "create")));
        assert!(covers("*:*", p("user", "update")));
        assert!(!covers("nonsense", p("user", "update")));
    }

    #[test]
    fn only_what_is_held_can_be_granted() {
        let held = |policies: &[&str]| Holdings {
            policies: policies.iter().map(|p| p.to_string()).collect(),
            roles: Vec::new(),
            source: "test".into(),
        };
        let granted =
            |policies: &[&str]| policies.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        let manager = held(&["customer:*", "role:read"]);
        assert!(
            manager
                .grantable(&granted(&["customer:read", "customer:*"]))
                .is_ok()
        );
        assert!(manager.grantable(&granted(&["role:read"])).is_ok());
        assert_eq!(
            manager.grantable(&granted(&["customer:read", "role:update"])),
            Err("role:update")
        );
        assert_eq!(manager.grantable(&granted(&["*:read"])), Err("*:read"));
        assert_eq!(manager.grantable(&granted(&["*:*"])), Err("*:*"));
        // A wildcard is covered only by a wildcard, even by a union of every concrete policy.
        let readers = held(&[
            "customer:read",
            "customer_address:read",
            "customer_group:read",
        ]);
        assert_eq!(
            readers.grantable(&granted(&["customer:*"])),
            Err("customer:*")
        );
        let admin = held(&["*:*"]);
        assert!(admin.grantable(&granted(&["*:*", "user:update"])).is_ok());
        assert!(held(&[]).grantable(&granted(&["customer:read"])).is_err());
        assert!(
            held(&["nonsense"])
                .grantable(&granted(&["customer:read"]))
                .is_err()
        );
    }

    #[test]
    fn policies_are_checked() {
        assert!(check_policy("customer:read").is_ok());
        assert!(check_policy("*:*").is_ok());
        assert!(check_policy("customer:write").is_err());
        assert!(check_policy("product:read").is_err());
        assert!(check_policy("customer").is_err());
    }
}
