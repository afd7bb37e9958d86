//! Customer use cases. They take their ports (store, clock, ids) when built and know nothing of HTTP.

use std::sync::Arc;

use super::repository::WriteRejected;
use super::{
    Customer, CustomerDraft, CustomerPage, CustomerPatch, CustomerQuery, CustomerRepository,
    ID_PREFIX,
};
use crate::error::{DomainError, DomainResult};
use crate::ports::{Clock, IdGenerator, iso};

/// How often an update re-reads and re-applies itself after losing a race.
const UPDATE_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct CustomerService {
    repo: CustomerRepository,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("Customer with id: {id} not found"))
}

impl CustomerService {
    pub fn new(repo: CustomerRepository, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        CustomerService { repo, clock, ids }
    }

    pub async fn create(
        &self,
        draft: CustomerDraft,
        created_by: Option<String>,
    ) -> DomainResult<Customer> {
        self.create_with(draft, created_by, |_| Vec::new()).await
    }

    /// A shopper's own registration (`POST /store/customers`): a customer with an account,
    /// linked to the signed-in identity in the same transaction, so a retry after a failure
    /// neither duplicates the customer nor leaves it unlinked.
    pub async fn register(
        &self,
        auth_identity_id: &str,
        mut draft: CustomerDraft,
    ) -> DomainResult<Customer> {
        if draft.email.as_deref().is_none_or(|e| e.trim().is_empty()) {
            return Err(DomainError::InvalidData(
                "Email is required to create a customer".into(),
            ));
        }
        draft.has_account = true;
        // Checked first for the clearer answer; the link's condition in the transaction still
        // settles a race between two registrations of one identity.
        let store = self.repo.store();
        if crate::auth::links::actor_id(&store, auth_identity_id, "customer")
            .await?
            .is_some()
        {
            return Err(DomainError::InvalidData(
                super::repository::EXTRA_CONDITION_FAILED.into(),
            ));
        }
        let identity = auth_identity_id.to_owned();
        self.create_with(draft, None, move |id| {
            crate::auth::links::link_ops(&identity, "customer", id)
        })
        .await
    }

    async fn create_with(
        &self,
        draft: CustomerDraft,
        created_by: Option<String>,
        extra: impl FnOnce(&str) -> Vec<crate::store::WriteOp>,
    ) -> DomainResult<Customer> {
        let draft = draft.validate()?;
        let now = iso(self.clock.now());
        let customer = Customer {
            id: self.ids.new_id(ID_PREFIX),
            company_name: draft.company_name,
            first_name: draft.first_name,
            last_name: draft.last_name,
            email: draft.email,
            phone: draft.phone,
            metadata: draft.metadata,
            has_account: draft.has_account,
            created_by,
            created_at: now.clone(),
            updated_at: now,
            deleted_at: None,
            version: 0,
        };
        self.repo.create(&customer, extra(&customer.id)).await?;
        tracing::info!(customer_id = %customer.id, "customer created");
        Ok(customer)
    }

    /// A live customer, or 404.
    pub async fn retrieve(&self, id: &str) -> DomainResult<Customer> {
        match self.repo.get(id).await? {
            Some(c) if !c.is_deleted() => Ok(c),
            _ => Err(not_found(id)),
        }
    }

    /// Applies `patch` with optimistic concurrency: a concurrent writer makes this re-read and
    /// re-apply, so no update is ever lost.
    pub async fn update(&self, id: &str, patch: &CustomerPatch) -> DomainResult<Customer> {
        for _ in 0..UPDATE_ATTEMPTS {
            let current = match self.repo.get(id).await? {
                Some(c) if !c.is_deleted() => c,
                _ => {
                    return Err(DomainError::NotFound(format!(
                        "Customer with id \"{id}\" not found"
                    )));
                }
            };
            let mut next = patch.apply(&current)?;
            next.updated_at = iso(self.clock.now());
            match self.repo.update(&current, &next).await {
                Ok(()) => {
                    next.version = current.version + 1;
                    return Ok(next);
                }
                Err(WriteRejected::Stale) => continue,
                Err(WriteRejected::Domain(e)) => return Err(e),
            }
        }
        Err(DomainError::Conflict(format!(
            "Customer {id} is being changed by other requests, please retry."
        )))
    }

    /// Soft delete: the customer first (so nothing new attaches to it), then its addresses are
    /// soft-deleted and its group memberships removed. Deleting a missing customer succeeds, as
    /// in Medusa; deleting a deleted one finishes an interrupted clean-up.
    pub async fn delete(&self, id: &str) -> DomainResult<()> {
        for _ in 0..UPDATE_ATTEMPTS {
            let current = match self.repo.get(id).await? {
                Some(c) if !c.is_deleted() => c,
                Some(_) => return self.clean_up_deleted(id).await,
                None => return Ok(()),
            };
            match self
                .repo
                .soft_delete(&current, &iso(self.clock.now()))
                .await
            {
                Ok(()) => {
                    tracing::info!(customer_id = %id, "customer deleted");
                    return self.clean_up_deleted(id).await;
                }
                Err(WriteRejected::Stale) => continue,
                Err(WriteRejected::Domain(e)) => return Err(e),
            }
        }
        Err(DomainError::Conflict(format!(
            "Customer {id} is being changed by other requests, please retry."
        )))
    }

    async fn clean_up_deleted(&self, id: &str) -> DomainResult<()> {
        let store = self.repo.store();
        crate::addresses::AddressService::new(store.clone(), self.clock.clone(), self.ids.clone())
            .delete_all(id)
            .await?;
        crate::groups::GroupService::new(store.clone(), self.clock.clone(), self.ids.clone())
            .detach_customer(id)
            .await?;
        crate::auth::links::unlink_actor(&store, "customer", id).await
    }

    pub async fn list(&self, query: &CustomerQuery) -> DomainResult<CustomerPage> {
        self.repo.list(query).await
    }
}
