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

    /// The service's clock, for the callers that stamp what they write beside its use cases.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The store the customers live in (for the identity links next to them).
    pub fn store(&self) -> Arc<dyn crate::store::KvStore> {
        self.repo.store()
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
    ///
    /// The customer's email is the identity's own (`identity_email`, from its provider): an
    /// omitted email takes it, any other is refused before anything is written, so that
    /// nobody claims someone else's address and locks its owner out.
    pub async fn register(
        &self,
        auth_identity_id: &str,
        identity_email: Option<&str>,
        mut draft: CustomerDraft,
    ) -> DomainResult<Customer> {
        let Some(identity_email) = identity_email.map(str::trim).filter(|e| !e.is_empty()) else {
            return Err(DomainError::InvalidData(
                "The signed-in identity has no verified email address to register a customer with."
                    .into(),
            ));
        };
        match draft.email.as_deref().map(str::trim) {
            None | Some("") => draft.email = Some(identity_email.to_owned()),
            Some(email)
                if super::normalize_email(email) == super::normalize_email(identity_email) => {}
            Some(_) => {
                return Err(DomainError::InvalidData(
                    "Field 'email' must be the email address you signed in with.".into(),
                ));
            }
        }
        draft.has_account = true;
        let store = self.repo.store();
        match crate::auth::links::link(&store, auth_identity_id, "customer").await? {
            // A sign-up trigger created this customer for the identity: the identity's own
            // registration completes it rather than failing.
            Some(link) if link.pending_claim => {
                return self.claim(auth_identity_id, &link.actor_id, draft).await;
            }
            // Checked first for the clearer answer; the link's condition in the transaction
            // still settles a race between two registrations of one identity.
            Some(_) => {
                return Err(DomainError::Duplicate(
                    super::repository::EXTRA_CONDITION_FAILED.into(),
                ));
            }
            None => {}
        }
        let identity = auth_identity_id.to_owned();
        self.create_with(draft, None, move |id| {
            crate::auth::links::link_ops(&identity, "customer", id)
        })
        .await
    }

    async fn claim(
        &self,
        auth_identity_id: &str,
        customer_id: &str,
        draft: CustomerDraft,
    ) -> DomainResult<Customer> {
        let patch = CustomerPatch {
            email: None,
            company_name: draft.company_name.map(Some),
            first_name: draft.first_name.map(Some),
            last_name: draft.last_name.map(Some),
            phone: draft.phone.map(Some),
            metadata: draft.metadata.map(Some),
        };
        let customer = self.update(customer_id, &patch).await?;
        let claimed = self
            .repo
            .store()
            .transact(vec![crate::auth::links::claim_op(
                auth_identity_id,
                "customer",
                customer_id,
            )])
            .await;
        match claimed {
            Ok(()) => Ok(customer),
            Err(crate::store::StoreError::ConditionFailed { .. }) => Err(DomainError::Duplicate(
                super::repository::EXTRA_CONDITION_FAILED.into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The customer of a signed-up identity, created or linked on its behalf (Cognito's
    /// sign-up and token triggers): an existing customer with an account and this email is
    /// linked only when the identity proved it owns the email (`email_proven`), else the
    /// identity stays unlinked (`None`); with no such customer, one is created, left for the
    /// identity's own registration to claim. Idempotent: a second delivery finds the link.
    pub async fn ensure_for_identity(
        &self,
        auth_identity_id: &str,
        email: &str,
        first_name: Option<String>,
        last_name: Option<String>,
        email_proven: bool,
    ) -> DomainResult<Option<String>> {
        let store = self.repo.store();
        for _ in 0..UPDATE_ATTEMPTS {
            if let Some(link) =
                crate::auth::links::link(&store, auth_identity_id, "customer").await?
            {
                return Ok(Some(link.actor_id));
            }
            if let Some(existing) = self.repo.account_by_email(email).await? {
                if !email_proven {
                    // Anyone may claim an email they cannot prove: joining its account would
                    // hand that account over. The identity stays unlinked.
                    tracing::warn!(
                        customer_id = %existing,
                        "an identity with an unproven email was not linked to the account holding it"
                    );
                    return Ok(None);
                }
                // An account that an unproven identity made holds the email on that identity's
                // word: the owner proving the email later must not land in it (its maker would
                // see and act for the owner). The owner's identity stays unlinked.
                if crate::auth::links::has_unproven_identity(&store, "customer", &existing).await? {
                    tracing::warn!(
                        customer_id = %existing,
                        "a proven identity was not linked to an account claimed without proof"
                    );
                    return Ok(None);
                }
                match store
                    .transact(crate::auth::links::link_ops(
                        auth_identity_id,
                        "customer",
                        &existing,
                    ))
                    .await
                {
                    Ok(()) | Err(crate::store::StoreError::ConditionFailed { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let draft = CustomerDraft {
                email: Some(email.to_owned()),
                first_name: first_name.clone(),
                last_name: last_name.clone(),
                has_account: true,
                ..CustomerDraft::default()
            };
            let identity = auth_identity_id.to_owned();
            match self
                .create_with(draft, Some("signup".into()), move |id| {
                    let ops = crate::auth::links::pending_link_ops(&identity, "customer", id);
                    if email_proven {
                        ops
                    } else {
                        crate::auth::links::unproven(ops)
                    }
                })
                .await
            {
                Ok(customer) => return Ok(Some(customer.id)),
                // Someone else created or linked it meanwhile (the email's account, or the
                // identity's link): look again.
                Err(DomainError::Duplicate(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(DomainError::Conflict(format!(
            "Identity {auth_identity_id} is being linked by other requests, please retry."
        )))
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

    /// The live customer with this email and `has_account`, if any.
    pub async fn find_by_email(
        &self,
        email: &str,
        has_account: bool,
    ) -> DomainResult<Option<Customer>> {
        match self.repo.by_email(email, has_account).await? {
            Some(id) => Ok(self.repo.get(&id).await?.filter(|c| !c.is_deleted())),
            None => Ok(None),
        }
    }

    /// Writes a customer built by [`CustomerService::imported`].
    pub async fn create_imported(&self, customer: Customer) -> DomainResult<Customer> {
        self.repo.create(&customer, Vec::new()).await?;
        Ok(customer)
    }

    /// Writes customers built by [`CustomerService::imported`], each with its `extra` writes
    /// (memberships, addresses) in its own transaction: one outcome per customer, in order.
    pub async fn create_many_imported(
        &self,
        customers: Vec<(Customer, Vec<crate::store::WriteOp>)>,
    ) -> DomainResult<Vec<DomainResult<()>>> {
        let entries = if super::search::deferred_in_bulk(self.repo.store().as_ref()) {
            super::repository::SearchEntries::Later
        } else {
            super::repository::SearchEntries::Now
        };
        self.repo.create_many(customers, entries).await
    }

    /// Writes the search entries bulk loads left for later (see [`CustomerRepository::index_pending`]).
    pub async fn index_pending(&self, spill_dir: &std::path::Path) -> DomainResult<u64> {
        self.repo.index_pending(spill_dir).await
    }

    /// Writes the search entries one bulk load gathered, then takes its markers away.
    pub async fn write_bulk_entries(&self, bulk: super::search::BulkEntries) -> DomainResult<u64> {
        self.repo.write_bulk_entries(bulk).await
    }

    /// Which (email, has_account) pairs have a live customer (normalised emails) and which ids
    /// are used, deleted customers' included: one batch read, for a bulk import to tell new
    /// customers from updates.
    pub async fn taken(
        &self,
        emails: &[(String, bool)],
        ids: &[String],
    ) -> DomainResult<(
        std::collections::BTreeSet<(String, bool)>,
        std::collections::BTreeSet<String>,
    )> {
        self.repo.taken(emails, ids).await
    }

    /// The customer an import row describes, validated, not yet written: its own id and
    /// timestamps when given (our export's), otherwise new ones.
    pub fn imported(
        &self,
        draft: CustomerDraft,
        id: Option<String>,
        created_at: Option<String>,
        updated_at: Option<String>,
        created_by: Option<String>,
    ) -> DomainResult<Customer> {
        let draft = draft.validate()?;
        let now = iso(self.clock.now());
        let created_at = created_at
            .and_then(|t| crate::ports::parse_instant(&t))
            .unwrap_or_else(|| now.clone());
        let customer = Customer {
            id: id.unwrap_or_else(|| self.ids.new_id(ID_PREFIX)),
            company_name: draft.company_name,
            first_name: draft.first_name,
            last_name: draft.last_name,
            email: draft.email,
            phone: draft.phone,
            metadata: draft.metadata,
            has_account: draft.has_account,
            created_by,
            updated_at: updated_at
                .and_then(|t| crate::ports::parse_instant(&t))
                .unwrap_or_else(|| created_at.clone()),
            created_at,
            deleted_at: None,
            version: 0,
        };
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
        crate::companies::CompanyService::new(store.clone(), self.clock.clone(), self.ids.clone())
            .detach_customer(id)
            .await?;
        crate::grants::GrantService::new(store.clone(), self.clock.clone(), self.ids.clone())
            .revoke_principal(&crate::grants::Principal::Customer { id: id.to_owned() })
            .await?;
        crate::auth::links::unlink_actor(&store, "customer", id).await
    }

    pub async fn list(&self, query: &CustomerQuery) -> DomainResult<CustomerPage> {
        self.repo.list(query).await
    }
}
