//! HTTP layer, configuration and entry points shared by the local server and the Lambdas.

pub mod app;
pub mod config;
pub mod data_dir;
pub mod http;
pub mod lambda;
pub mod server;
pub mod triggers;
pub mod worker;
