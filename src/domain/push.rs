//! What a technician's phone is told, and when: which change of a ticket pushes which kind of
//! message to whom, and the texts. Plain data in, plain data out: the commands look up the
//! devices and write the outbox.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::messages::render;
use super::ticket::Status;

/// What a message tells the technician, and the `data.kind` the app opens the ticket by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A ticket new in their pool (their site and trade), or back in it: claim it.
    PoolAdded,
    /// The desk gave them the ticket (or it was requested for them at intake).
    Assigned,
    /// The desk took the ticket from them (reassigned or released).
    Unassigned,
    /// The resident accepted or declined the quote of a ticket they hold.
    QuoteDecided,
    /// A ticket they held was cancelled.
    Cancelled,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::PoolAdded, Kind::Assigned, Kind::Unassigned, Kind::QuoteDecided, Kind::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PoolAdded => "pool_added",
            Kind::Assigned => "assigned",
            Kind::Unassigned => "unassigned",
            Kind::QuoteDecided => "quote_decided",
            Kind::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The push services a phone can be registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Fcm,
    Apns,
    Jpush,
    Webhook,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Provider::Fcm, Provider::Apns, Provider::Jpush, Provider::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Fcm => "fcm",
            Provider::Apns => "apns",
            Provider::Jpush => "jpush",
            Provider::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Android,
    Ios,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Android => "android",
            Platform::Ios => "ios",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Platform::Android, Platform::Ios].into_iter().find(|p| p.as_str() == s)
    }
}

/// The longest token accepted, in characters (FCM's are about 160, APNs' 64 hex digits).
pub const MAX_TOKEN: usize = 4096;
/// The longest app version, in characters.
pub const MAX_APP_VERSION: usize = 50;
/// Devices one user keeps: registering another forgets the one registered least recently.
pub const MAX_DEVICES_PER_USER: usize = 10;

/// A push token as a provider hands it to the app: printable ASCII without spaces.
pub fn parse_token(raw: &str) -> Result<String, String> {
    let token = raw.trim();
    if token.is_empty() || token.chars().count() > MAX_TOKEN {
        return Err(format!("must be 1 to {MAX_TOKEN} characters"));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces, as the push service gave it".into());
    }
    Ok(token.to_owned())
}

/// Who hears of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every technician on duty of the ticket's site and trade, but `except` (who made the change).
    Pool { except: Option<String> },
    /// One technician.
    User(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: Kind,
    pub to: Audience,
}

/// A ticket as far as its pushes go.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub status: Status,
    pub assignee_id: Option<&'a str>,
    pub category: &'a str,
}

/// The messages a change of a ticket sets off: `event` (the history's name for it) by `actor`,
/// from `before` (`None`: the ticket was just registered) to `after`. Nobody is told of their own
/// doing.
pub fn notices(event: &str, actor: &str, before: Option<Seen<'_>>, after: Seen<'_>) -> Vec<Notice> {
    let to = |kind: Kind, user: Option<&str>| {
        user.filter(|u| *u != actor).map(|u| Notice { kind, to: Audience::User(u.to_owned()) })
    };
    let pool = || Notice { kind: Kind::PoolAdded, to: Audience::Pool { except: Some(actor.to_owned()) } };
    let held = before.and_then(|b| b.assignee_id);
    let mut out = Vec::new();
    match event {
        "created" if after.status == Status::Open => out.push(pool()),
        "created" => out.extend(to(Kind::Assigned, after.assignee_id)),
        "released" | "unassigned" => {
            out.extend(to(Kind::Unassigned, held));
            if after.status == Status::Open {
                out.push(pool());
            }
        }
        "assigned" | "reassigned" => {
            if held != after.assignee_id {
                out.extend(to(Kind::Unassigned, held));
            }
            out.extend(to(Kind::Assigned, after.assignee_id));
        }
        "cancelled" => out.extend(to(Kind::Cancelled, held)),
        "quote_accepted" | "quote_declined" => out.extend(to(Kind::QuoteDecided, held)),
        // another trade: the ticket is new in that trade's pool
        "edited" if after.status == Status::Open && before.is_some_and(|b| b.category != after.category) => {
            out.push(pool())
        }
        _ => {}
    }
    out
}

/// The title and body of each kind. Placeholders: `{number}` (the ticket's), `{location}`,
/// `{urgent}` (`【紧急】` for an emergency, else nothing) and, for `quote_decided`,
/// `{decision}` (`同意` or `拒绝`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates(pub BTreeMap<Kind, (String, String)>);

impl Default for Templates {
    fn default() -> Self {
        let texts = [
            (Kind::PoolAdded, "{urgent}新工单 {number}", "{location}，可以抢单了"),
            (Kind::Assigned, "{urgent}派单 {number}", "{location}的工单已派给您，请尽快上门"),
            (Kind::Unassigned, "工单已改派 {number}", "{location}的工单已不再由您处理"),
            (Kind::QuoteDecided, "报价已{decision} {number}", "业主已{decision}{location}的维修报价"),
            (Kind::Cancelled, "工单已取消 {number}", "{location}的工单已取消，无需上门"),
        ];
        Self(texts.into_iter().map(|(k, t, b)| (k, (t.to_owned(), b.to_owned()))).collect())
    }
}

impl Templates {
    /// The title and body of a message of `kind` with `params`.
    pub fn render(&self, kind: Kind, params: &BTreeMap<String, String>) -> (String, String) {
        let defaults = Templates::default();
        let (title, body) = self.0.get(&kind).or_else(|| defaults.0.get(&kind)).cloned().unwrap_or_default();
        (render(&title, params), render(&body, params))
    }
}

/// The placeholders' values for a ticket.
pub fn params(number: &str, location: &str, emergency: bool, event: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::from([
        ("number".to_owned(), number.to_owned()),
        ("location".to_owned(), location.to_owned()),
        ("urgent".to_owned(), if emergency { "【紧急】" } else { "" }.to_owned()),
    ]);
    match event {
        "quote_accepted" => drop(params.insert("decision".to_owned(), "同意".to_owned())),
        "quote_declined" => drop(params.insert("decision".to_owned(), "拒绝".to_owned())),
        _ => {}
    }
    params
}

/// Messages of one kind to one technician replace each other on the phone (FCM's collapse key,
/// APNs' collapse id): a burst of new tickets shows as one notification, not thirty.
pub fn collapse_key(kind: Kind, user_id: &str) -> String {
    format!("{}-{user_id}", kind.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: Status, assignee: Option<&str>) -> Seen<'_> {
        Seen { status, assignee_id: assignee, category: "water" }
    }

    fn users(notices: &[Notice]) -> Vec<(Kind, String)> {
        notices
            .iter()
            .map(|n| match &n.to {
                Audience::User(u) => (n.kind, u.clone()),
                Audience::Pool { except } => (n.kind, format!("pool-{}", except.as_deref().unwrap_or(""))),
            })
            .collect()
    }

    #[test]
    fn a_new_ticket_goes_to_the_pool_or_to_the_technician_requested() {
        let open = notices("created", "desk", None, seen(Status::Open, None));
        assert_eq!(users(&open), vec![(Kind::PoolAdded, "pool-desk".to_owned())]);
        let requested = notices("created", "desk", None, seen(Status::Assigned, Some("t1")));
        assert_eq!(users(&requested), vec![(Kind::Assigned, "t1".to_owned())]);
    }

    #[test]
    fn a_reassignment_tells_both_technicians_and_nobody_hears_of_their_own_doing() {
        let moved =
            notices("reassigned", "desk", Some(seen(Status::Assigned, Some("t1"))), seen(Status::Assigned, Some("t2")));
        assert_eq!(users(&moved), vec![(Kind::Unassigned, "t1".to_owned()), (Kind::Assigned, "t2".to_owned())]);
        // released by its holder: back in the pool, the holder is not told
        let released = notices("released", "t1", Some(seen(Status::Assigned, Some("t1"))), seen(Status::Open, None));
        assert_eq!(users(&released), vec![(Kind::PoolAdded, "pool-t1".to_owned())]);
        // released by the desk: the holder is told it was taken
        let taken = notices("released", "desk", Some(seen(Status::Assigned, Some("t1"))), seen(Status::Open, None));
        assert_eq!(users(&taken), vec![(Kind::Unassigned, "t1".to_owned()), (Kind::PoolAdded, "pool-desk".to_owned())]);
        // the holder recording the resident's decline is not told of it
        let declined =
            notices("quote_declined", "t1", Some(seen(Status::OnSite, Some("t1"))), seen(Status::Declined, Some("t1")));
        assert!(declined.is_empty());
    }

    #[test]
    fn work_on_a_ticket_pushes_nothing() {
        for event in ["claimed", "arrived", "material_added", "note_added", "held", "completed", "edited"] {
            let before = seen(Status::Assigned, Some("t1"));
            assert!(notices(event, "t1", Some(before), seen(Status::OnSite, Some("t1"))).is_empty(), "{event}");
        }
    }

    #[test]
    fn texts_name_the_ticket_and_emergencies_say_so() {
        let (title, body) =
            Templates::default().render(Kind::PoolAdded, &params("GY-1", "3栋1单元502", true, "created"));
        assert_eq!(title, "【紧急】新工单 GY-1");
        assert!(body.contains("3栋1单元502"));
        let (title, _) = Templates::default().render(Kind::QuoteDecided, &params("GY-1", "x", false, "quote_declined"));
        assert_eq!(title, "报价已拒绝 GY-1");
        assert!(parse_token(" abc:DEF_123-x ").is_ok());
        assert!(parse_token("a b").is_err() && parse_token("").is_err() && parse_token("令牌").is_err());
    }
}
