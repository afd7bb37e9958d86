//! Invitations to join a company, addressed to an email.
//!
//! | item | pk | sk | index |
//! |---|---|---|---|
//! | invitation | `COMPINV#<email>` | `COMP#<company>` | gsi1 `COMPINVS#<company>` / `<email>` |
//!
//! A company admin reaches a customer outside the company's email domains only through an
//! invitation that the owner of the address accepts or declines from the storefront. So the
//! admin learns nothing about whether the address has an account, and nobody is put into a
//! company against their will. An invitation is keyed by email, not customer: it waits for
//! someone who registers with that address later. One invitation per company and email;
//! inviting again renews it. `expires_at` (epoch seconds) is the table's TTL attribute, so
//! DynamoDB drops expired invitations; reads skip them until it does.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::{
    ADMIN_ROLE, Company, CompanyService, Membership, check_role, company_key, live,
    membership_item, membership_key,
};
use crate::customers::{CustomerRepository, profile_key};
use crate::error::{DomainError, DomainResult};
use crate::ports::iso;
use crate::store::record::text;
use crate::store::{Condition, Index, Item, Key, Query, StoreError, WriteOp, query_all};

pub const INVITATION_ID_PREFIX: &str = "cinv";
/// How long an invitation can be accepted.
pub const INVITATION_LIFETIME: Duration = Duration::days(14);
/// Emails a company admin adds in one request: each invitation is its own write, and a
/// storefront caller should not fan out without bound.
pub const MAX_EMAILS_PER_REQUEST: usize = 100;
const ATTEMPTS: usize = 5;

/// A pending invitation to join `company_id` with `role`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invitation {
    pub id: String,
    pub company_id: String,
    /// Normalised (trimmed, lowercase).
    pub email: String,
    pub role: String,
    /// The customer id of the company admin who sent it.
    pub invited_by: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    #[serde(skip)]
    expires_epoch: i64,
}

fn invitation_key(email: &str, company_id: &str) -> Key {
    Key::new(invitee_partition(email), company_key(company_id).pk)
}

fn invitee_partition(email: &str) -> String {
    format!("COMPINV#{email}")
}

fn company_invitations_partition(company_id: &str) -> String {
    format!("COMPINVS#{company_id}")
}

fn invitation_item(inv: &Invitation) -> Item {
    let key = invitation_key(&inv.email, &inv.company_id);
    let mut item = Item::new();
    item.insert("pk".into(), key.pk.into());
    item.insert("sk".into(), key.sk.into());
    item.insert("entity_type".into(), "company_invitation".into());
    item.insert("id".into(), inv.id.clone().into());
    item.insert("company_id".into(), inv.company_id.clone().into());
    item.insert("email".into(), inv.email.clone().into());
    item.insert("role".into(), inv.role.clone().into());
    if let Some(by) = &inv.invited_by {
        item.insert("invited_by".into(), by.clone().into());
    }
    item.insert("created_at".into(), inv.created_at.clone().into());
    item.insert("expires_at".into(), inv.expires_epoch.into());
    item.insert(
        "gsi1pk".into(),
        company_invitations_partition(&inv.company_id).into(),
    );
    item.insert("gsi1sk".into(), inv.email.clone().into());
    item
}

fn invitation_from(item: &Item) -> Option<Invitation> {
    let expires_epoch = item.get("expires_at").and_then(Value::as_i64)?;
    Some(Invitation {
        id: text(item, "id")?.to_owned(),
        company_id: text(item, "company_id")?.to_owned(),
        email: text(item, "email")?.to_owned(),
        role: text(item, "role")?.to_owned(),
        invited_by: text(item, "invited_by").map(str::to_owned),
        created_at: text(item, "created_at").unwrap_or_default().to_owned(),
        expires_at: OffsetDateTime::from_unix_timestamp(expires_epoch)
            .map(iso)
            .unwrap_or_default(),
        expires_epoch,
    })
}

fn invitation_not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("Company invitation with id: {id} was not found"))
}

impl CompanyService {
    fn is_pending(&self, inv: &Invitation) -> bool {
        inv.expires_epoch > self.clock.now().unix_timestamp()
    }

    /// Invites `email` (normalised) to the company, or renews its invitation.
    pub(super) async fn invite(
        &self,
        company_id: &str,
        email: &str,
        role: &str,
        invited_by: &str,
    ) -> DomainResult<()> {
        check_role(role)?;
        let now = self.clock.now();
        let invitation = Invitation {
            id: self.ids.new_id(INVITATION_ID_PREFIX),
            company_id: company_id.to_owned(),
            email: email.to_owned(),
            role: role.to_owned(),
            invited_by: Some(invited_by.to_owned()),
            created_at: iso(now),
            expires_at: iso(now + INVITATION_LIFETIME),
            expires_epoch: (now + INVITATION_LIFETIME).unix_timestamp(),
        };
        let ops = vec![
            WriteOp::Check {
                key: company_key(company_id),
                condition: live(),
            },
            WriteOp::Put {
                item: invitation_item(&invitation),
                condition: None,
            },
        ];
        match self.store.transact(ops).await {
            Ok(()) => {
                tracing::info!(company_id, invitation_id = %invitation.id, "company invitation sent");
                Ok(())
            }
            Err(StoreError::ConditionFailed { .. }) => Err(super::not_found(company_id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Withdraws the company's invitation to `email`, if there is one.
    pub(super) async fn revoke_invitation(
        &self,
        company_id: &str,
        email: &str,
    ) -> DomainResult<()> {
        let ops = vec![WriteOp::Delete {
            key: invitation_key(email, company_id),
            condition: None,
        }];
        self.store.transact(ops).await?;
        Ok(())
    }

    /// The company's pending invitations, by email.
    pub async fn pending_invitations(&self, company_id: &str) -> DomainResult<Vec<Invitation>> {
        let query = Query::new(Index::Gsi1, company_invitations_partition(company_id));
        let items = query_all(self.store.as_ref(), query).await?;
        Ok(items
            .iter()
            .filter_map(invitation_from)
            .filter(|i| self.is_pending(i))
            .collect())
    }

    /// The email a customer is invited under: its own, normalised. A deleted customer or one
    /// without an email has none.
    async fn invitee_email(&self, customer_id: &str) -> DomainResult<Option<String>> {
        // A customer that an identity claimed without proving its address holds the address on
        // its word: invitations to that address are not its to see or accept.
        if crate::auth::links::has_unproven_identity(&self.store, "customer", customer_id).await? {
            return Ok(None);
        }
        let customer = CustomerRepository::new(self.store.clone())
            .get(customer_id)
            .await?;
        Ok(customer
            .filter(|c| !c.is_deleted())
            .and_then(|c| c.email_key()))
    }

    /// Pending invitations addressed to this email, whatever their company's state.
    async fn invitations_to(&self, email: &str) -> DomainResult<Vec<Invitation>> {
        let query = Query::new(Index::Main, invitee_partition(email));
        let items = query_all(self.store.as_ref(), query).await?;
        Ok(items
            .iter()
            .filter_map(invitation_from)
            .filter(|i| self.is_pending(i))
            .collect())
    }

    /// The customer's pending invitations to live companies, oldest first, with the company.
    pub async fn invitations_for(
        &self,
        customer_id: &str,
    ) -> DomainResult<Vec<(Invitation, Company)>> {
        let Some(email) = self.invitee_email(customer_id).await? else {
            return Ok(Vec::new());
        };
        let mut invitations = self.invitations_to(&email).await?;
        invitations.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        let mut companies: HashMap<String, Option<Company>> = HashMap::new();
        let mut out = Vec::with_capacity(invitations.len());
        for inv in invitations {
            if !companies.contains_key(&inv.company_id) {
                let company = self
                    .load(&inv.company_id)
                    .await?
                    .map(|(c, _)| c)
                    .filter(|c| !c.is_deleted());
                companies.insert(inv.company_id.clone(), company);
            }
            if let Some(Some(company)) = companies.get(&inv.company_id) {
                out.push((inv, company.clone()));
            }
        }
        Ok(out)
    }

    /// The caller's own pending invitation `id`: anyone else's is not found.
    async fn own_invitation(&self, customer_id: &str, id: &str) -> DomainResult<Invitation> {
        let Some(email) = self.invitee_email(customer_id).await? else {
            return Err(invitation_not_found(id));
        };
        self.invitations_to(&email)
            .await?
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| invitation_not_found(id))
    }

    /// Joins the invited company: membership, member count and the invitation's removal in
    /// one transaction, so an invitation is used once and the count stays right. A customer
    /// already in that company just uses up the invitation; one in another company must
    /// leave it first.
    pub async fn accept_invitation(
        &self,
        customer_id: &str,
        id: &str,
    ) -> DomainResult<(Company, Membership)> {
        for _ in 0..ATTEMPTS {
            let inv = self.own_invitation(customer_id, id).await?;
            let used_up = WriteOp::Delete {
                key: invitation_key(&inv.email, &inv.company_id),
                condition: Some(Condition::equals("id", inv.id.as_str())),
            };
            if let Some(current) = self.membership_of(customer_id).await? {
                if current.company_id != inv.company_id {
                    return Err(DomainError::NotAllowed(format!(
                        "Customer {customer_id} already belongs to a company; leave it before joining another"
                    )));
                }
                match self.store.transact(vec![used_up]).await {
                    Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                return self.company_of(customer_id).await;
            }
            let membership = Membership {
                customer_id: customer_id.to_owned(),
                company_id: inv.company_id.clone(),
                role: inv.role.clone(),
                created_at: iso(self.clock.now()),
            };
            let ops = vec![
                WriteOp::Check {
                    key: company_key(&inv.company_id),
                    condition: live(),
                },
                WriteOp::Put {
                    item: membership_item(&membership),
                    condition: Some(Condition::NotExists),
                },
                WriteOp::Check {
                    key: profile_key(customer_id),
                    condition: live(),
                },
                self.count_change(&inv.company_id, 1),
                used_up,
            ];
            match self.store.transact(ops).await {
                Ok(()) => {
                    tracing::info!(customer_id, company_id = %inv.company_id, invitation_id = %inv.id, "company invitation accepted");
                    return self.company_of(customer_id).await;
                }
                Err(StoreError::ConditionFailed { index: 0 }) => {
                    return Err(invitation_not_found(id));
                }
                // Joined a company, or the invitation was used or renewed, meanwhile: look again.
                Err(StoreError::ConditionFailed { .. } | StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Conflict(format!(
            "Company invitation {id} is being changed by other requests, please retry."
        )))
    }

    /// Declines (deletes) the caller's own invitation.
    pub async fn decline_invitation(&self, customer_id: &str, id: &str) -> DomainResult<()> {
        let inv = self.own_invitation(customer_id, id).await?;
        let ops = vec![WriteOp::Delete {
            key: invitation_key(&inv.email, &inv.company_id),
            condition: Some(Condition::equals("id", inv.id.as_str())),
        }];
        match self.store.transact(ops).await {
            Ok(()) => {
                tracing::info!(customer_id, company_id = %inv.company_id, invitation_id = %inv.id, "company invitation declined");
                Ok(())
            }
            Err(StoreError::ConditionFailed { .. }) => Err(invitation_not_found(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// Leaves the customer's company. The last admin cannot: the company would be left
    /// without anyone to manage it. The other admin's membership is checked in the same
    /// transaction, so two last admins leaving at once cannot both go.
    pub async fn leave(&self, customer_id: &str) -> DomainResult<Membership> {
        for _ in 0..ATTEMPTS {
            let Some(me) = self.membership_of(customer_id).await? else {
                return Err(DomainError::NotFound(format!(
                    "Customer {customer_id} does not belong to a company"
                )));
            };
            let mut ops = vec![
                WriteOp::Delete {
                    key: membership_key(customer_id),
                    condition: Some(Condition::equals("company_id", me.company_id.as_str())),
                },
                self.count_change(&me.company_id, -1),
            ];
            if me.role == ADMIN_ROLE {
                let other_admin = self
                    .members(&me.company_id)
                    .await?
                    .into_iter()
                    .find(|m| m.role == ADMIN_ROLE && m.customer_id != customer_id);
                let Some(other) = other_admin else {
                    return Err(DomainError::NotAllowed(format!(
                        "Customer {customer_id} is the last admin of company {}; ask the store to appoint another admin first",
                        me.company_id
                    )));
                };
                ops.push(WriteOp::Check {
                    key: membership_key(&other.customer_id),
                    condition: Condition::equals("role", ADMIN_ROLE),
                });
            }
            match self.store.transact(ops).await {
                Ok(()) => {
                    tracing::info!(customer_id, company_id = %me.company_id, "customer left its company");
                    return Ok(me);
                }
                Err(StoreError::ConditionFailed { .. } | StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DomainError::Conflict(format!(
            "The company of customer {customer_id} is being changed by other requests, please retry."
        )))
    }
}
