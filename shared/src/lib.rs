//! The customer module's domain: entities, validation, use cases, and the ports and adapters
//! they run on (store, identity). Nothing here knows about HTTP.

pub mod addresses;
pub mod api_keys;
pub mod auth;
pub mod backoff;
pub mod companies;
pub mod customers;
pub mod error;
pub mod events;
pub mod files;
pub mod grants;
pub mod groups;
pub mod ports;
pub mod roles;
pub mod sort;
pub mod store;
pub mod transfer;

pub use error::{DomainError, DomainResult};
