//! The rules of the repair desk as plain functions over plain data: no I/O here.

pub mod access;
pub mod category;
pub mod code;
pub mod material;
pub mod messages;
pub mod phone;
pub mod site;
pub mod ticket;
pub mod time;
pub mod user;
