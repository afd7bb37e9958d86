//! What `GET /admin/customers` may ask for, independent of how it arrives over HTTP.

use super::{Customer, normalize_email};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerOrder {
    Id,
    CreatedAt,
    UpdatedAt,
    Email,
    FirstName,
    LastName,
    CompanyName,
    Phone,
    HasAccount,
}

impl CustomerOrder {
    pub fn parse(field: &str) -> Option<Self> {
        Some(match field {
            "id" => CustomerOrder::Id,
            "created_at" => CustomerOrder::CreatedAt,
            "updated_at" => CustomerOrder::UpdatedAt,
            "email" => CustomerOrder::Email,
            "first_name" => CustomerOrder::FirstName,
            "last_name" => CustomerOrder::LastName,
            "company_name" => CustomerOrder::CompanyName,
            "phone" => CustomerOrder::Phone,
            "has_account" => CustomerOrder::HasAccount,
            _ => return None,
        })
    }
}

/// Bounds on an ISO timestamp field; values are already in the store's ISO form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimeRange {
    pub gt: Option<String>,
    pub gte: Option<String>,
    pub lt: Option<String>,
    pub lte: Option<String>,
}

impl TimeRange {
    pub fn is_empty(&self) -> bool {
        self.gt.is_none() && self.gte.is_none() && self.lt.is_none() && self.lte.is_none()
    }

    pub fn contains(&self, value: &str) -> bool {
        self.gt.as_deref().is_none_or(|b| value > b)
            && self.gte.as_deref().is_none_or(|b| value >= b)
            && self.lt.as_deref().is_none_or(|b| value < b)
            && self.lte.as_deref().is_none_or(|b| value <= b)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomerQuery {
    /// Case-insensitive substring over email, names, company and phone.
    pub q: Option<String>,
    pub ids: Option<Vec<String>>,
    /// Members of any of these groups.
    pub groups: Option<Vec<String>>,
    /// Members of any of these companies.
    pub companies: Option<Vec<String>>,
    /// Case-insensitive, like uniqueness.
    pub emails: Option<Vec<String>>,
    pub first_names: Option<Vec<String>>,
    pub last_names: Option<Vec<String>>,
    pub company_names: Option<Vec<String>>,
    pub phones: Option<Vec<String>>,
    pub created_by: Option<Vec<String>>,
    pub has_account: Option<bool>,
    pub created_at: TimeRange,
    pub updated_at: TimeRange,
    pub order: Option<(CustomerOrder, Direction)>,
    /// Keyset pagination: start after the customer with this order key (a page's `next_after`).
    pub after: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

impl Default for CustomerQuery {
    fn default() -> Self {
        CustomerQuery {
            q: None,
            ids: None,
            groups: None,
            companies: None,
            emails: None,
            first_names: None,
            last_names: None,
            company_names: None,
            phones: None,
            created_by: None,
            has_account: None,
            created_at: TimeRange::default(),
            updated_at: TimeRange::default(),
            order: None,
            after: None,
            offset: 0,
            limit: 50,
        }
    }
}

fn one_of(filter: &Option<Vec<String>>, value: &Option<String>) -> bool {
    match filter {
        None => true,
        Some(wanted) => value
            .as_ref()
            .is_some_and(|v| wanted.iter().any(|w| w == v)),
    }
}

impl CustomerQuery {
    /// Creation order, oldest first, unless asked otherwise.
    pub fn order_or_default(&self) -> (CustomerOrder, Direction) {
        self.order
            .unwrap_or((CustomerOrder::CreatedAt, Direction::Asc))
    }

    /// True when nothing but paging and order is asked: the count comes from counters.
    pub fn is_unfiltered(&self) -> bool {
        self.q.is_none()
            && self.ids.is_none()
            && self.groups.is_none()
            && self.companies.is_none()
            && self.emails.is_none()
            && self.first_names.is_none()
            && self.last_names.is_none()
            && self.company_names.is_none()
            && self.phones.is_none()
            && self.created_by.is_none()
            && self.has_account.is_none()
            && self.created_at.is_empty()
            && self.updated_at.is_empty()
    }

    /// True when groups are the only filter (a group's members can then be paged from its index).
    pub fn only_groups(&self) -> bool {
        self.groups.is_some()
            && CustomerQuery {
                groups: None,
                ..self.clone()
            }
            .is_unfiltered()
    }

    /// Whether a live customer matches every filter but `groups` and `companies` (checked by
    /// the caller).
    pub fn matches(&self, c: &Customer) -> bool {
        if c.is_deleted() {
            return false;
        }
        if let Some(q) = &self.q {
            let needle = q.to_lowercase();
            let hit = [
                &c.email,
                &c.first_name,
                &c.last_name,
                &c.company_name,
                &c.phone,
            ]
            .into_iter()
            .flatten()
            .any(|v| v.to_lowercase().contains(&needle));
            if !hit {
                return false;
            }
        }
        if self.ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) {
            return false;
        }
        if let Some(emails) = &self.emails {
            let key = c.email_key();
            if !emails.iter().any(|e| Some(normalize_email(e)) == key) {
                return false;
            }
        }
        one_of(&self.first_names, &c.first_name)
            && one_of(&self.last_names, &c.last_name)
            && one_of(&self.company_names, &c.company_name)
            && one_of(&self.phones, &c.phone)
            && one_of(&self.created_by, &c.created_by)
            && self.has_account.is_none_or(|h| h == c.has_account)
            && self.created_at.contains(&c.created_at)
            && self.updated_at.contains(&c.updated_at)
    }
}
