//! The API driven over HTTP, on SQLite by default or PostgreSQL with TEST_DATABASE_URL.

mod admin;
mod auth;
mod bill;
mod commands;
mod console;
mod desk;
mod edit;
mod errors;
mod helpers;
mod input;
mod matters;
mod onsite;
mod openapi;
mod push;
mod push_apns;
mod push_fcm;
mod reports;
mod rx;
mod schema;
mod search;
mod sms_providers;
mod statements;
mod stub;
mod sync;
mod sync_simulation;
mod tickets;
