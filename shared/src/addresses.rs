//! Customer addresses: up to one default shipping and one default billing address each.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | address | `CUS#<customer>` | `ADDR#<id>` |
//! | default marker | `CUS#<customer>` | `DEFAULT#shipping` / `DEFAULT#billing` (`address_id`) |
//!
//! The marker is what makes "at most one default" hold under concurrency: whoever sets a
//! default rewrites it, conditioned on what it held, in the same transaction as the address
//! flags; two concurrent writers cannot both win.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::customers::{
    CustomerRepository, check_metadata, merge_metadata, normalize_text,
    profile_key as repository_profile_key,
};
use crate::error::{DomainError, DomainResult};
use crate::ports::{Clock, IdGenerator, iso};
use crate::store::record::{EncodedItem, encoded, encoded_pointer};
use crate::store::{Condition, Item, Key, KvStore, Query, SortCondition, StoreError, WriteOp};

pub const ID_PREFIX: &str = "cuaddr";
const ATTEMPTS: usize = 5;

/// An address in Medusa's full wire order (as `*addresses` on a customer shows it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub id: String,
    pub address_name: Option<String>,
    pub is_default_shipping: bool,
    pub is_default_billing: bool,
    pub company: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub address_1: Option<String>,
    pub address_2: Option<String>,
    pub city: Option<String>,
    pub country_code: Option<String>,
    pub province: Option<String>,
    pub postal_code: Option<String>,
    pub phone: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub customer_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    #[serde(skip_serializing, default)]
    pub version: u64,
}

/// The text fields of an address, by name (for filters, search and patches).
pub const TEXT_FIELDS: [&str; 11] = [
    "address_name",
    "company",
    "first_name",
    "last_name",
    "address_1",
    "address_2",
    "city",
    "country_code",
    "province",
    "postal_code",
    "phone",
];

impl Address {
    pub fn text(&self, field: &str) -> Option<&str> {
        match field {
            "address_name" => self.address_name.as_deref(),
            "company" => self.company.as_deref(),
            "first_name" => self.first_name.as_deref(),
            "last_name" => self.last_name.as_deref(),
            "address_1" => self.address_1.as_deref(),
            "address_2" => self.address_2.as_deref(),
            "city" => self.city.as_deref(),
            "country_code" => self.country_code.as_deref(),
            "province" => self.province.as_deref(),
            "postal_code" => self.postal_code.as_deref(),
            "phone" => self.phone.as_deref(),
            _ => None,
        }
    }

    fn slot(&mut self, field: &str) -> Option<&mut Option<String>> {
        Some(match field {
            "address_name" => &mut self.address_name,
            "company" => &mut self.company,
            "first_name" => &mut self.first_name,
            "last_name" => &mut self.last_name,
            "address_1" => &mut self.address_1,
            "address_2" => &mut self.address_2,
            "city" => &mut self.city,
            "country_code" => &mut self.country_code,
            "province" => &mut self.province,
            "postal_code" => &mut self.postal_code,
            "phone" => &mut self.phone,
            _ => return None,
        })
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// Changes to an address: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AddressPatch {
    pub text: Vec<(&'static str, Option<String>)>,
    pub is_default_shipping: Option<bool>,
    pub is_default_billing: Option<bool>,
    pub metadata: Option<Option<Map<String, Value>>>,
}

const COUNTRIES: &str = "ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg eh er es et fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug um us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw";

/// ISO 3166-1 alpha-2, lower-cased as Medusa stores it; `None` when not a country code.
pub fn normalize_country(code: &str) -> Option<String> {
    let lower = code.trim().to_ascii_lowercase();
    // `COUNTRIES` is sorted, one code every three bytes: a binary search, not a scan of 249
    // codes (a bulk import checks one per row).
    if lower.len() != 2 {
        return None;
    }
    let code_at = |i: usize| COUNTRIES.get(3 * i..3 * i + 2);
    let (mut low, mut high) = (0, COUNTRIES.len().div_ceil(3));
    while low < high {
        let middle = (low + high) / 2;
        match code_at(middle)?.cmp(lower.as_str()) {
            std::cmp::Ordering::Less => low = middle + 1,
            std::cmp::Ordering::Greater => high = middle,
            std::cmp::Ordering::Equal => return Some(lower),
        }
    }
    None
}

const MAX_TEXT: usize = 255;

impl AddressPatch {
    fn apply(&self, current: &Address) -> DomainResult<Address> {
        let mut next = current.clone();
        for (field, value) in &self.text {
            let value = match (*field, value) {
                ("country_code", Some(code)) => Some(normalize_country(code).ok_or_else(|| {
                    DomainError::InvalidData(format!(
                        "Invalid request: '{code}' is not an ISO 3166-1 alpha-2 country code"
                    ))
                })?),
                (_, Some(v)) if v.chars().count() > MAX_TEXT => {
                    return Err(DomainError::InvalidData(format!(
                        "Invalid request: Field '{field}' must be at most {MAX_TEXT} characters"
                    )));
                }
                (_, v) => v.clone(),
            };
            if let Some(slot) = next.slot(field) {
                *slot = value;
            }
        }
        if let Some(flag) = self.is_default_shipping {
            next.is_default_shipping = flag;
        }
        if let Some(flag) = self.is_default_billing {
            next.is_default_billing = flag;
        }
        if let Some(metadata) = &self.metadata {
            next.metadata = merge_metadata(current.metadata.as_ref(), metadata.as_ref());
            check_metadata(&next.metadata)?;
        }
        Ok(next)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Shipping,
    Billing,
}

impl Kind {
    const BOTH: [Kind; 2] = [Kind::Shipping, Kind::Billing];

    fn marker(self, customer_id: &str) -> Key {
        let name = match self {
            Kind::Shipping => "DEFAULT#shipping",
            Kind::Billing => "DEFAULT#billing",
        };
        Key::new(repository_profile_key(customer_id).pk, name)
    }

    fn flag(self, a: &Address) -> bool {
        match self {
            Kind::Shipping => a.is_default_shipping,
            Kind::Billing => a.is_default_billing,
        }
    }

    fn clear(self, a: &mut Address) {
        match self {
            Kind::Shipping => a.is_default_shipping = false,
            Kind::Billing => a.is_default_billing = false,
        }
    }
}

const DEFAULT_MARKER: &str = "default_address";

/// The item saying which address holds a customer's default (shipping or billing).
fn marker_item(marker: &Key, address_id: &str) -> Item {
    crate::store::record::pointer(marker, DEFAULT_MARKER, "address_id", address_id)
}

fn address_key(customer_id: &str, id: &str) -> Key {
    Key::new(repository_profile_key(customer_id).pk, format!("ADDR#{id}"))
}

/// The address's item as it is written.
fn record(a: &Address) -> DomainResult<EncodedItem> {
    encoded(
        a,
        &address_key(&a.customer_id, &a.id),
        "customer_address",
        a.version,
    )
}

fn to_item(a: &Address) -> DomainResult<Item> {
    Ok(record(a)?.to_item()?)
}

fn from_item(item: Item) -> DomainResult<Address> {
    let version = item.get("version").and_then(Value::as_u64).unwrap_or(0);
    let mut a: Address = serde_json::from_value(Value::Object(item))
        .map_err(|e| DomainError::Internal(format!("stored address is unreadable: {e}")))?;
    a.version = version;
    Ok(a)
}

/// Filters of `GET …/addresses`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AddressQuery {
    /// Case-insensitive substring over the searchable fields.
    pub q: Option<String>,
    /// Field name → accepted values (exact).
    pub exact: Vec<(&'static str, Vec<String>)>,
    pub offset: usize,
    pub limit: usize,
}

const SEARCHABLE: [&str; 9] = [
    "address_name",
    "company",
    "first_name",
    "last_name",
    "address_1",
    "address_2",
    "city",
    "province",
    "postal_code",
];

impl AddressQuery {
    pub fn matches(&self, a: &Address) -> bool {
        if a.is_deleted() {
            return false;
        }
        if let Some(q) = &self.q {
            let needle = normalize_text(q);
            if !SEARCHABLE
                .iter()
                .filter_map(|f| a.text(f))
                .any(|v| normalize_text(v).contains(&needle))
            {
                return false;
            }
        }
        self.exact.iter().all(|(field, wanted)| {
            // Country codes are stored lower-cased; every other field matches exactly.
            a.text(field).is_some_and(|v| {
                wanted.iter().any(|w| match *field {
                    "country_code" => w.eq_ignore_ascii_case(v),
                    _ => w == v,
                })
            })
        })
    }
}

#[derive(Clone)]
pub struct AddressService {
    store: Arc<dyn KvStore>,
    customers: CustomerRepository,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl AddressService {
    pub fn new(store: Arc<dyn KvStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        AddressService {
            customers: CustomerRepository::new(store.clone()),
            store,
            clock,
            ids,
        }
    }

    async fn live_customer(&self, customer_id: &str) -> DomainResult<()> {
        match self.customers.get(customer_id).await? {
            Some(c) if !c.is_deleted() => Ok(()),
            _ => Err(DomainError::NotFound(format!(
                "Customer with id: {customer_id} not found"
            ))),
        }
    }

    /// Every live address of a customer, oldest first (one query).
    pub async fn all(&self, customer_id: &str) -> DomainResult<Vec<Address>> {
        let mut query = Query::new(
            crate::store::Index::Main,
            repository_profile_key(customer_id).pk,
        );
        query.sort = SortCondition::BeginsWith("ADDR#".into());
        query.limit = 1000;
        let mut out = Vec::new();
        loop {
            let page = self.store.query(&query).await?;
            for item in page.items {
                let a = from_item(item)?;
                if !a.is_deleted() {
                    out.push(a);
                }
            }
            match page.last_key {
                Some(k) => query.start_after = Some(k),
                None => return Ok(out),
            }
        }
    }

    pub async fn list(
        &self,
        customer_id: &str,
        query: &AddressQuery,
    ) -> DomainResult<(Vec<Address>, usize)> {
        self.live_customer(customer_id).await?;
        let matching: Vec<Address> = self
            .all(customer_id)
            .await?
            .into_iter()
            .filter(|a| query.matches(a))
            .collect();
        let count = matching.len();
        Ok((
            matching
                .into_iter()
                .skip(query.offset)
                .take(query.limit)
                .collect(),
            count,
        ))
    }

    /// One live address of a live customer, or 404 (also when another customer owns it).
    pub async fn retrieve(&self, customer_id: &str, id: &str) -> DomainResult<Address> {
        self.live_customer(customer_id).await?;
        match self.store.get(&address_key(customer_id, id)).await? {
            Some(item) => {
                let a = from_item(item)?;
                if a.is_deleted() {
                    return Err(address_not_found(id));
                }
                Ok(a)
            }
            None => Err(address_not_found(id)),
        }
    }

    pub async fn create(&self, customer_id: &str, patch: &AddressPatch) -> DomainResult<Address> {
        self.live_customer(customer_id).await?;
        let address = self.prepare(customer_id, patch)?;
        self.write(None, address).await
    }

    /// A new, empty address of a customer, for a patch to fill.
    fn blank(&self, customer_id: &str) -> Address {
        let now = iso(self.clock.now());
        Address {
            id: self.ids.new_id(ID_PREFIX),
            address_name: None,
            is_default_shipping: false,
            is_default_billing: false,
            company: None,
            first_name: None,
            last_name: None,
            address_1: None,
            address_2: None,
            city: None,
            country_code: None,
            province: None,
            postal_code: None,
            phone: None,
            metadata: None,
            customer_id: customer_id.to_owned(),
            created_at: now.clone(),
            updated_at: now,
            deleted_at: None,
            version: 0,
        }
    }

    /// A new address of a customer from a patch, validated, not yet written.
    pub fn prepare(&self, customer_id: &str, patch: &AddressPatch) -> DomainResult<Address> {
        patch.apply(&self.blank(customer_id))
    }

    /// The writes that create `address` and the default markers it claims, for the transaction
    /// that creates its customer (so no marker can be held yet).
    pub fn writes_for_new_customer(&self, address: &Address) -> DomainResult<Vec<WriteOp>> {
        let mut ops = vec![WriteOp::PutEncoded {
            item: record(address)?,
            condition: Some(Condition::NotExists),
        }];
        for kind in Kind::BOTH {
            if kind.flag(address) {
                ops.push(WriteOp::PutEncoded {
                    item: encoded_pointer(
                        &kind.marker(&address.customer_id),
                        DEFAULT_MARKER,
                        "address_id",
                        &address.id,
                    )?,
                    condition: Some(Condition::NotExists),
                });
            }
        }
        Ok(ops)
    }

    /// Writes an address exactly as given (an import of our own export): created with its id
    /// when missing, replaced when it differs. Returns whether anything changed.
    pub async fn import(&self, customer_id: &str, wanted: &Address) -> DomainResult<bool> {
        for _ in 0..ATTEMPTS {
            let current = match self
                .store
                .get(&address_key(customer_id, &wanted.id))
                .await?
            {
                Some(item) => Some(from_item(item)?),
                None => None,
            };
            let mut next = wanted.clone();
            next.customer_id = customer_id.to_owned();
            next.deleted_at = None;
            if let Some(c) = &current {
                let mut same = next.clone();
                same.version = c.version;
                same.created_at = c.created_at.clone();
                same.updated_at = c.updated_at.clone();
                if &same == c {
                    return Ok(false);
                }
                next.created_at = c.created_at.clone();
            }
            match self.write(current.as_ref(), next).await {
                Err(DomainError::Conflict(_)) => continue,
                other => return other.map(|_| true),
            }
        }
        Err(conflict(&wanted.id))
    }

    pub async fn update(
        &self,
        customer_id: &str,
        id: &str,
        patch: &AddressPatch,
    ) -> DomainResult<Address> {
        for _ in 0..ATTEMPTS {
            let current = self.retrieve(customer_id, id).await?;
            let mut next = patch.apply(&current)?;
            next.updated_at = iso(self.clock.now());
            match self.write(Some(&current), next).await {
                Err(DomainError::Conflict(_)) => continue,
                other => return other,
            }
        }
        Err(conflict(id))
    }

    /// Soft delete; a missing address is not an error (Medusa answers 200 either way).
    pub async fn delete(&self, customer_id: &str, id: &str) -> DomainResult<()> {
        self.live_customer(customer_id).await?;
        self.remove(customer_id, id).await
    }

    async fn remove(&self, customer_id: &str, id: &str) -> DomainResult<()> {
        for _ in 0..ATTEMPTS {
            let current = match self.store.get(&address_key(customer_id, id)).await? {
                Some(item) => from_item(item)?,
                None => return Ok(()),
            };
            if current.is_deleted() {
                return Ok(());
            }
            let mut gone = current.clone();
            let now = iso(self.clock.now());
            gone.deleted_at = Some(now.clone());
            gone.updated_at = now;
            gone.is_default_billing = false;
            gone.is_default_shipping = false;
            match self.write(Some(&current), gone).await {
                Err(DomainError::Conflict(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
        Err(conflict(id))
    }

    /// Soft-deletes every address of a customer, deleted or not (when the customer is deleted).
    pub async fn delete_all(&self, customer_id: &str) -> DomainResult<()> {
        for address in self.all(customer_id).await? {
            self.remove(customer_id, &address.id).await?;
        }
        Ok(())
    }

    /// Plans clearing `kind` on the address that held the default before: amends a write
    /// already planned for it (both kinds may move off the same address), or adds one.
    async fn clear_previous(
        &self,
        ops: &mut Vec<WriteOp>,
        kind: Kind,
        customer_id: &str,
        previous: &str,
        at: &str,
    ) -> DomainResult<()> {
        let key = address_key(customer_id, previous);
        if let Some(WriteOp::Put { item, .. }) = ops
            .iter_mut()
            .find(|op| op.key().ok().as_ref() == Some(&key))
        {
            let mut planned = from_item(item.clone())?;
            kind.clear(&mut planned);
            *item = to_item(&planned)?;
            return Ok(());
        }
        let Some(item) = self.store.get(&key).await? else {
            return Ok(());
        };
        let mut old = from_item(item)?;
        if !kind.flag(&old) {
            return Ok(());
        }
        let version = old.version;
        kind.clear(&mut old);
        old.version = version + 1;
        old.updated_at = at.to_owned();
        ops.push(WriteOp::Put {
            item: to_item(&old)?,
            condition: Some(Condition::equals("version", version)),
        });
        Ok(())
    }

    /// Writes `next` (replacing `current`, if any) and moves the default markers with it, in
    /// one transaction. `Conflict` when anything it read has changed meanwhile.
    async fn write(&self, current: Option<&Address>, next: Address) -> DomainResult<Address> {
        let mut written = next.clone();
        written.version = current.map_or(0, |c| c.version + 1);
        let mut ops = vec![WriteOp::Put {
            item: to_item(&written)?,
            condition: Some(match current {
                Some(c) => Condition::equals("version", c.version),
                None => Condition::NotExists,
            }),
        }];
        for kind in Kind::BOTH {
            let was = current.is_some_and(|c| kind.flag(c));
            let now = kind.flag(&written);
            let marker = kind.marker(&next.customer_id);
            if now && !was {
                // Take over the marker; clear the flag on whichever address held it.
                let holder = self.store.get(&marker).await?;
                let held_by = holder
                    .as_ref()
                    .and_then(|m| m.get("address_id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                ops.push(WriteOp::Put {
                    item: marker_item(&marker, &written.id),
                    condition: Some(match &held_by {
                        Some(previous) => Condition::equals("address_id", previous.clone()),
                        None => Condition::NotExists,
                    }),
                });
                if let Some(previous) = held_by.filter(|p| *p != written.id) {
                    self.clear_previous(
                        &mut ops,
                        kind,
                        &next.customer_id,
                        &previous,
                        &written.updated_at,
                    )
                    .await?;
                }
            } else if was && !now {
                ops.push(WriteOp::Delete {
                    key: marker,
                    condition: Some(Condition::equals("address_id", written.id.clone())),
                });
            }
        }
        match self.store.transact(ops).await {
            Ok(()) => Ok(written),
            Err(StoreError::ConditionFailed { index: 0 })
                if crate::store::holds_exactly(self.store.as_ref(), &to_item(&written)?)
                    .await? =>
            {
                Ok(written)
            }
            Err(StoreError::ConditionFailed { index: 0 }) if current.is_none() => Err(
                DomainError::Internal(format!("address id {} already used", written.id)),
            ),
            Err(StoreError::ConditionFailed { .. }) | Err(StoreError::Conflict) => {
                Err(conflict(&written.id))
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn address_not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("Address with id: {id} was not found"))
}

fn conflict(id: &str) -> DomainError {
    DomainError::Conflict(format!(
        "Address {id} is being changed by other requests, please retry."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_are_iso_alpha_2_lower_case() {
        assert_eq!(normalize_country("US").as_deref(), Some("us"));
        assert_eq!(normalize_country(" gb ").as_deref(), Some("gb"));
        assert_eq!(normalize_country("uk"), None);
        assert_eq!(normalize_country("usa"), None);
        assert_eq!(COUNTRIES.split(' ').count(), 249);
        // The lookup is a binary search: the list must stay sorted, and every code is found,
        // the first and the last included.
        let codes: Vec<&str> = COUNTRIES.split(' ').collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "COUNTRIES is sorted");
        for code in &codes {
            assert_eq!(normalize_country(code).as_deref(), Some(*code));
        }
        for missing in ["aa", "zz", "ab", "zx", "a", "u s"] {
            assert_eq!(normalize_country(missing), None, "{missing}");
        }
    }
}
