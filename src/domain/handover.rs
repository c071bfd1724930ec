//! Shift handovers (交接班): which shift hands over, and which tickets it hands on.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ticket::Status;

/// The desk's two shifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Shift {
    Day,
    Night,
}

impl Shift {
    pub const ALL: [Shift; 2] = [Shift::Day, Shift::Night];

    pub fn as_str(self) -> &'static str {
        match self {
            Shift::Day => "day",
            Shift::Night => "night",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The longest note of a handover, in characters (trimmed).
pub const MAX_NOTE: usize = 1000;

/// The tickets a handover lists: those the next shift may still have to act on. Completed work
/// waits only for its callback, which the callback list already shows; closed, cancelled and
/// declined tickets are done.
pub fn handed_on(status: Status) -> bool {
    status != Status::Completed && !status.is_final()
}

/// [`handed_on`] as the list of statuses.
pub fn handed_on_statuses() -> Vec<Status> {
    Status::ALL.iter().copied().filter(|s| handed_on(*s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handover_lists_unfinished_work_only() {
        use Status::*;
        assert_eq!(handed_on_statuses(), [Open, Assigned, OnSite, OnHold, AwaitingInspection]);
        assert_eq!(Shift::parse("night"), Some(Shift::Night));
        assert_eq!(Shift::parse("evening"), None);
    }
}
