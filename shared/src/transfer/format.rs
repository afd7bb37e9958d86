//! The CSV formats: ours (exactly what an export writes, so export → import is lossless) and
//! Shopify's customer export (both its current and its older column sets), told apart by the
//! header.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::addresses::normalize_country;
use crate::customers::is_valid_email;

/// Our columns, in export order.
pub const NATIVE_COLUMNS: &[&str] = &[
    "id",
    "email",
    "first_name",
    "last_name",
    "company_name",
    "phone",
    "has_account",
    "metadata",
    "groups",
    "addresses",
    "created_at",
    "updated_at",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Native,
    Shopify,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Shopify => "shopify",
        }
    }
}

/// A file's header: its format, and where each column is.
#[derive(Debug, Clone)]
pub struct Header {
    pub format: Format,
    pub columns: Vec<String>,
}

impl Header {
    /// Recognises the format from the column names (a UTF-8 BOM on the first is ignored).
    pub fn detect(columns: Vec<String>) -> Result<Header, String> {
        let columns: Vec<String> = columns
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let c = if i == 0 {
                    c.trim_start_matches('\u{feff}').to_owned()
                } else {
                    c
                };
                c.trim().to_owned()
            })
            .collect();
        let index: HashMap<String, usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.to_ascii_lowercase(), i))
            .collect();
        let format = if index.contains_key("email")
            && (index.contains_key("first name") || index.contains_key("customer id"))
        {
            Format::Shopify
        } else if index.contains_key("email") && index.contains_key("has_account") {
            Format::Native
        } else {
            return Err(format!(
                "Unrecognised header: expected our export's columns ({}) or Shopify's customer export (Email, First Name, …)",
                NATIVE_COLUMNS.join(", ")
            ));
        };
        Ok(Header { format, columns })
    }

    /// A short linear scan without allocating: cheaper per row than hashing a lower-cased
    /// copy of the name.
    fn cell<'a>(&self, record: &'a csv::StringRecord, name: &str) -> Option<&'a str> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .and_then(|i| record.get(i))
    }
}

/// One address of an imported row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AddressRecord {
    /// Our format keeps address ids; a Shopify default address has none.
    pub id: Option<String>,
    pub fields: Vec<(&'static str, Option<String>)>,
    pub is_default_shipping: bool,
    pub is_default_billing: bool,
    pub metadata: Option<Map<String, Value>>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// One valid row, ready to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRecord {
    pub row: u64,
    pub email: String,
    /// Our format: the customer's id, kept when the customer is created.
    pub id: Option<String>,
    /// `None`: leave as it is (Shopify's empty cells); `Some(None)`: clear (our format).
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub company_name: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub has_account: bool,
    /// Our format replaces the metadata; Shopify's keys are merged into it.
    pub metadata: Option<Option<Map<String, Value>>>,
    pub groups: Vec<String>,
    pub addresses: Vec<AddressRecord>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// A row that cannot be imported, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub row: u64,
    pub column: String,
    pub message: String,
}

fn error(row: u64, column: &str, message: impl Into<String>) -> RowError {
    RowError {
        row,
        column: column.to_owned(),
        message: message.into(),
    }
}

/// Undoes the OWASP formula neutralisation of [`neutralise`]: `'=…` back to `=…`.
pub fn restore(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => cell,
    }
}

/// A cell a spreadsheet would run as a formula gets a leading apostrophe (OWASP's advice).
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

fn text(value: Option<&str>) -> Option<String> {
    value
        .map(restore)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Shopify writes ids, zips and phones as `'02134` so spreadsheets keep their zeros.
fn shopify_text(value: Option<&str>) -> Option<String> {
    text(value.map(|v| v.trim().strip_prefix('\'').unwrap_or(v)))
}

fn yes_no(value: Option<&str>) -> Option<bool> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("yes" | "true" | "1" | "y") => Some(true),
        Some("no" | "false" | "0" | "n") => Some(false),
        _ => None,
    }
}

pub fn parse(
    header: &Header,
    row: u64,
    record: &csv::StringRecord,
) -> Result<ImportRecord, RowError> {
    match header.format {
        Format::Native => parse_native(header, row, record),
        Format::Shopify => parse_shopify(header, row, record),
    }
}

fn email(
    header: &Header,
    row: u64,
    record: &csv::StringRecord,
    column: &str,
) -> Result<String, RowError> {
    let email =
        text(header.cell(record, column)).ok_or_else(|| error(row, column, "Email is required"))?;
    if !is_valid_email(&email) {
        return Err(error(
            row,
            column,
            format!("Invalid email address: {email}"),
        ));
    }
    Ok(email)
}

fn json_object(
    row: u64,
    column: &str,
    cell: Option<&str>,
) -> Result<Option<Map<String, Value>>, RowError> {
    match text(cell) {
        None => Ok(None),
        Some(raw) => match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            Ok(Value::Null) => Ok(None),
            _ => Err(error(row, column, "Expected a JSON object")),
        },
    }
}

const ADDRESS_TEXT: &[&str] = &[
    "address_name",
    "company",
    "first_name",
    "last_name",
    "address_1",
    "address_2",
    "city",
    "province",
    "postal_code",
    "phone",
];

fn parse_native(
    header: &Header,
    row: u64,
    record: &csv::StringRecord,
) -> Result<ImportRecord, RowError> {
    let email = email(header, row, record, "email")?;
    let optional = |name: &str| Some(text(header.cell(record, name)));
    let has_account = match header.cell(record, "has_account").map(str::trim) {
        Some("true") => true,
        Some("false" | "") | None => false,
        Some(other) => {
            return Err(error(
                row,
                "has_account",
                format!("Expected true or false, got '{other}'"),
            ));
        }
    };
    let groups = match text(header.cell(record, "groups")) {
        None => Vec::new(),
        Some(raw) => serde_json::from_str::<Vec<String>>(&raw)
            .map_err(|_| error(row, "groups", "Expected a JSON array of group names"))?,
    };
    let mut addresses = Vec::new();
    if let Some(raw) = text(header.cell(record, "addresses")) {
        let list: Vec<Map<String, Value>> = serde_json::from_str(&raw)
            .map_err(|_| error(row, "addresses", "Expected a JSON array of addresses"))?;
        for address in list {
            let get = |k: &str| address.get(k).and_then(Value::as_str).map(str::to_owned);
            let mut fields: Vec<(&'static str, Option<String>)> =
                ADDRESS_TEXT.iter().map(|f| (*f, get(f))).collect();
            let country = match get("country_code") {
                Some(c) => Some(normalize_country(&c).ok_or_else(|| {
                    error(row, "addresses", format!("Invalid country code: {c}"))
                })?),
                None => None,
            };
            fields.push(("country_code", country));
            addresses.push(AddressRecord {
                id: get("id"),
                fields,
                is_default_shipping: address.get("is_default_shipping").and_then(Value::as_bool)
                    == Some(true),
                is_default_billing: address.get("is_default_billing").and_then(Value::as_bool)
                    == Some(true),
                metadata: address.get("metadata").and_then(Value::as_object).cloned(),
                created_at: get("created_at"),
                updated_at: get("updated_at"),
            });
        }
    }
    Ok(ImportRecord {
        row,
        id: text(header.cell(record, "id")).filter(|id| id.starts_with("cus_")),
        email,
        first_name: optional("first_name"),
        last_name: optional("last_name"),
        company_name: optional("company_name"),
        phone: optional("phone"),
        has_account,
        metadata: Some(json_object(
            row,
            "metadata",
            header.cell(record, "metadata"),
        )?),
        groups,
        addresses,
        created_at: text(header.cell(record, "created_at")),
        updated_at: text(header.cell(record, "updated_at")),
    })
}

fn parse_shopify(
    header: &Header,
    row: u64,
    record: &csv::StringRecord,
) -> Result<ImportRecord, RowError> {
    let cell = |name: &str| header.cell(record, name);
    let first = |names: &[&str]| names.iter().find_map(|n| shopify_text(cell(n)));
    let email = email(header, row, record, "Email")?;
    let mut metadata = Map::new();
    if let Some(id) = first(&["Customer ID"]) {
        metadata.insert("shopify_customer_id".into(), id.into());
    }
    if let Some(v) = yes_no(cell("Accepts Email Marketing").or(cell("Accepts Marketing"))) {
        metadata.insert("accepts_email_marketing".into(), v.into());
    }
    if let Some(v) = yes_no(cell("Accepts SMS Marketing")) {
        metadata.insert("accepts_sms_marketing".into(), v.into());
    }
    if let Some(note) = text(cell("Note")) {
        metadata.insert("note".into(), note.into());
    }
    if let Some(v) = yes_no(cell("Tax Exempt")) {
        metadata.insert("tax_exempt".into(), v.into());
    }
    let first_name = first(&["First Name"]);
    let last_name = first(&["Last Name"]);
    let company = first(&["Default Address Company", "Company"]);
    let address_1 = first(&["Default Address Address1", "Address1"]);
    let city = first(&["Default Address City", "City"]);
    let postal = first(&["Default Address Zip", "Zip"]);
    let country_column = if cell("Default Address Country Code").is_some() {
        "Default Address Country Code"
    } else {
        "Country Code"
    };
    let country = match first(&["Default Address Country Code", "Country Code"]) {
        Some(c) => Some(
            normalize_country(&c)
                .ok_or_else(|| error(row, country_column, format!("Invalid country code: {c}")))?,
        ),
        None => None,
    };
    let mut addresses = Vec::new();
    if address_1.is_some() || city.is_some() || postal.is_some() || country.is_some() {
        addresses.push(AddressRecord {
            id: None,
            fields: vec![
                ("company", company.clone()),
                ("first_name", first_name.clone()),
                ("last_name", last_name.clone()),
                ("address_1", address_1),
                (
                    "address_2",
                    first(&["Default Address Address2", "Address2"]),
                ),
                ("city", city),
                (
                    "province",
                    first(&["Default Address Province Code", "Province Code", "Province"]),
                ),
                ("postal_code", postal),
                ("country_code", country),
                ("phone", first(&["Default Address Phone"])),
            ],
            is_default_shipping: true,
            is_default_billing: true,
            metadata: None,
            created_at: None,
            updated_at: None,
        });
    }
    let groups = text(cell("Tags"))
        .map(|tags| {
            tags.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(ImportRecord {
        row,
        id: None,
        email,
        first_name: first_name.map(Some),
        last_name: last_name.map(Some),
        company_name: company.map(Some),
        phone: first(&["Phone", "Default Address Phone"]).map(Some),
        has_account: false,
        metadata: (!metadata.is_empty()).then_some(Some(metadata)),
        groups,
        addresses,
        created_at: None,
        updated_at: None,
    })
}
