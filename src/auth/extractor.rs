//! `Caller`: the authenticated user of a request (read from the request by `routes::caller`).

use std::sync::Arc;

use crate::domain::user::Role;
use crate::error::ApiError;

#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub session_id: String,
    pub role: Role,
    /// The caller's sites and trades, when they were read with the session (the request's one
    /// read of who the caller is); `views::Viewer::load` reads them otherwise.
    pub membership: Option<Arc<Membership>>,
}

/// The sites a user belongs to and the trades they work in, each sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub sites: Vec<String>,
    pub trades: Vec<String>,
}

impl Caller {
    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("a {} may not do this", self.role.as_str())))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}
