//! What handlers and jobs share.

use crate::auth::password::Hasher;
use crate::auth::tokens::JwtKeys;
use crate::config::Settings;
use crate::db::Pool;
use crate::jobs::feed::Feed;

/// What every handler shares.
pub struct AppState {
    pub pool: Pool,
    pub keys: JwtKeys,
    pub hasher: Hasher,
    pub feed: Feed,
    /// Keys the hashes of residents' codes.
    pub code_key: Vec<u8>,
    pub settings: Settings,
    /// Failures to inject, for tests (none unless configured).
    pub faults: crate::db::faults::Faults,
}

impl AppState {
    /// What the commands need from the settings.
    pub fn commands(&self) -> crate::commands::Ctx {
        crate::commands::Ctx {
            code_key: self.code_key.clone(),
            clock: self.settings.clock,
            max_active_tickets: self.settings.max_active_tickets,
            sms_policy: self.settings.sms_policy.clone(),
        }
    }
}
