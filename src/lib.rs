//! repairdesk: the backend of a property-management repair desk and its field technicians.

pub mod auth;
pub mod commands;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod error;
pub mod idempotency;
pub mod input;
pub mod jobs;
pub mod notify;
pub mod push;
pub mod routes;
pub mod sms;
pub mod startup;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod views;
