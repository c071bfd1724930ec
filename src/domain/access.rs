//! Who may see what: the access rules, as plain functions over plain facts, shared by the ticket
//! views, the pool and its stream, sync pull and the sync stream.

use super::ticket::Status;
use super::user::Role;

/// Who is asking, with the sites they belong to and the trades they handle.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    pub user_id: &'a str,
    pub role: Role,
    pub sites: &'a [String],
    pub trades: &'a [String],
}

/// What access is decided on about a ticket.
#[derive(Debug, Clone, Copy)]
pub struct TicketFacts<'a> {
    pub site_id: &'a str,
    pub category: &'a str,
    pub status: Status,
    pub assignee_id: Option<&'a str>,
}

/// What access is decided on about a change of a ticket: where it is, and whom it was given to
/// or taken from (as the change recorded it).
#[derive(Debug, Clone, Copy)]
pub struct ChangeFacts<'a> {
    pub site_id: &'a str,
    pub category: &'a str,
    pub from_status: Option<&'a str>,
    pub to_status: Option<&'a str>,
    pub new_assignee: Option<&'a str>,
    pub previous_assignee: Option<&'a str>,
    /// The trade the ticket had before, when this change gave it another (a desk's edit).
    pub previous_category: Option<&'a str>,
}

/// What a change means for a technician watching the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolEvent {
    /// Given to them (claimed or assigned).
    Assigned,
    /// Taken from them (released, reassigned, cancelled...).
    Lost,
    /// A ticket they may grab came into the pool.
    Added,
    /// A ticket they could grab left the pool.
    Removed,
}

impl PoolEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolEvent::Assigned => "ticket_assigned",
            PoolEvent::Lost => "ticket_lost",
            PoolEvent::Added => "pool_added",
            PoolEvent::Removed => "pool_removed",
        }
    }
}

/// The tickets a user may see ([`Reach::can_see`]), in the shape a query also filters on
/// (`db::tickets::page`), so a page counts only what it will show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every ticket (an admin).
    All,
    /// Every ticket of these sites (their desk).
    Sites(&'a [String]),
    /// In these sites: the technician's own tickets, and open tickets of their trades.
    Technician { user_id: &'a str, sites: &'a [String], trades: &'a [String] },
}

impl Scope<'_> {
    /// Whether the scope holds the ticket: what the database's filter answers.
    pub fn holds(&self, t: TicketFacts<'_>) -> bool {
        match self {
            Scope::All => true,
            Scope::Sites(sites) => sites.iter().any(|s| s == t.site_id),
            Scope::Technician { user_id, sites, trades } => {
                sites.iter().any(|s| s == t.site_id)
                    && (t.assignee_id == Some(*user_id)
                        || (t.status == Status::Open && trades.iter().any(|c| c == t.category)))
            }
        }
    }
}

impl<'a> Reach<'a> {
    /// [`Reach::can_see`] as a filter for the database.
    pub fn scope(&self) -> Scope<'a> {
        match self.role {
            Role::Admin => Scope::All,
            Role::Dispatcher | Role::Supervisor => Scope::Sites(self.sites),
            Role::Technician => Scope::Technician { user_id: self.user_id, sites: self.sites, trades: self.trades },
        }
    }
}

impl Reach<'_> {
    fn belongs_to(&self, site_id: &str) -> bool {
        self.sites.iter().any(|s| s == site_id)
    }

    /// A ticket of the technician's sites and trades: theirs to grab when open.
    pub fn in_reach(&self, site_id: &str, category: &str) -> bool {
        self.belongs_to(site_id) && self.trades.iter().any(|t| t == category)
    }

    /// The desk of this site (its dispatchers and supervisors), or an admin.
    pub fn is_site_desk(&self, site_id: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Dispatcher | Role::Supervisor => self.belongs_to(site_id),
            Role::Technician => false,
        }
    }

    /// Technicians see their own tickets and their pool, of their sites only (moved off a site,
    /// they see none of its tickets); the desk its sites'; admins all.
    pub fn can_see(&self, t: TicketFacts<'_>) -> bool {
        self.scope().holds(t)
    }

    /// Whether a change may concern what this user sees, so that their phone pulls: the desk
    /// hears of its sites, a technician of what was given to or taken from them and of their
    /// pool's tickets.
    pub fn hears_of(&self, c: ChangeFacts<'_>) -> bool {
        match self.role {
            Role::Admin | Role::Dispatcher | Role::Supervisor => self.is_site_desk(c.site_id),
            Role::Technician => {
                c.new_assignee == Some(self.user_id)
                    || c.previous_assignee == Some(self.user_id)
                    || self.in_reach(c.site_id, c.category)
                    || c.previous_category.is_some_and(|was| self.in_reach(c.site_id, was))
            }
        }
    }

    /// What a change means for a technician watching the pool, if anything.
    pub fn pool_event(&self, c: ChangeFacts<'_>) -> Option<PoolEvent> {
        if c.new_assignee == Some(self.user_id) {
            return Some(PoolEvent::Assigned);
        }
        if c.previous_assignee == Some(self.user_id) {
            return Some(PoolEvent::Lost);
        }
        let open = Some(Status::Open.as_str());
        let reach = self.in_reach(c.site_id, c.category);
        if reach && c.to_status == open {
            return Some(PoolEvent::Added);
        }
        // an open ticket moved to another trade leaves the old trade's pool
        let was_in_reach = c.previous_category.is_some_and(|was| self.in_reach(c.site_id, was));
        if was_in_reach && c.to_status == open {
            return Some(PoolEvent::Removed);
        }
        if reach && c.from_status == open && c.to_status.is_some() {
            return Some(PoolEvent::Removed);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach<'a>(role: Role, sites: &'a [String], trades: &'a [String]) -> Reach<'a> {
        Reach { user_id: "me", role, sites, trades }
    }

    fn ticket(status: Status, assignee_id: Option<&str>) -> TicketFacts<'_> {
        TicketFacts { site_id: "s1", category: "water", status, assignee_id }
    }

    #[test]
    fn technicians_see_their_tickets_and_their_pool_of_their_sites() {
        let (sites, trades) = (vec!["s1".to_owned()], vec!["water".to_owned()]);
        let tech = reach(Role::Technician, &sites, &trades);
        assert!(tech.can_see(ticket(Status::Open, None)));
        assert!(tech.can_see(ticket(Status::OnSite, Some("me"))));
        assert!(!tech.can_see(ticket(Status::Assigned, Some("other"))));
        let electric = TicketFacts { category: "electric", ..ticket(Status::Open, None) };
        assert!(!tech.can_see(electric), "another trade's pool");
        let moved = reach(Role::Technician, &[], &trades);
        assert!(!moved.can_see(ticket(Status::OnSite, Some("me"))), "moved off the site: none of its tickets");
    }

    #[test]
    fn the_desk_sees_its_sites_and_admins_all() {
        let sites = vec!["s1".to_owned()];
        assert!(reach(Role::Dispatcher, &sites, &[]).can_see(ticket(Status::Closed, Some("x"))));
        assert!(!reach(Role::Supervisor, &[], &[]).can_see(ticket(Status::Open, None)));
        assert!(reach(Role::Admin, &[], &[]).can_see(ticket(Status::Open, None)));
    }

    #[test]
    fn a_technician_hears_of_what_was_given_taken_or_pooled() {
        let (sites, trades) = (vec!["s1".to_owned()], vec!["water".to_owned()]);
        let tech = reach(Role::Technician, &sites, &trades);
        let change = ChangeFacts {
            site_id: "s2",
            category: "gas",
            from_status: Some("open"),
            to_status: Some("assigned"),
            new_assignee: Some("me"),
            previous_assignee: None,
            previous_category: None,
        };
        assert!(tech.hears_of(change));
        assert_eq!(tech.pool_event(change), Some(PoolEvent::Assigned));
        let taken = ChangeFacts { new_assignee: Some("other"), previous_assignee: Some("me"), ..change };
        assert_eq!(tech.pool_event(taken), Some(PoolEvent::Lost));
        let pooled = ChangeFacts {
            site_id: "s1",
            category: "water",
            from_status: Some("assigned"),
            to_status: Some("open"),
            new_assignee: None,
            previous_assignee: Some("other"),
            previous_category: None,
        };
        assert_eq!(tech.pool_event(pooled), Some(PoolEvent::Added));
        let grabbed = ChangeFacts { from_status: Some("open"), to_status: Some("assigned"), ..pooled };
        assert_eq!(tech.pool_event(grabbed), Some(PoolEvent::Removed));
        let elsewhere = ChangeFacts { site_id: "s2", new_assignee: None, previous_assignee: None, ..pooled };
        assert!(!tech.hears_of(elsewhere) && tech.pool_event(elsewhere).is_none());
        // the desk gives an open ticket another trade
        let edited =
            ChangeFacts { from_status: Some("open"), to_status: Some("open"), previous_assignee: None, ..pooled };
        let away = ChangeFacts { category: "gas", previous_category: Some("water"), ..edited };
        assert!(tech.hears_of(away));
        assert_eq!(tech.pool_event(away), Some(PoolEvent::Removed));
        let here = ChangeFacts { category: "water", previous_category: Some("gas"), ..edited };
        assert_eq!(tech.pool_event(here), Some(PoolEvent::Added));
    }
}
