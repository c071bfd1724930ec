//! Tickets: what intake accepts, how numbers read, which moves each state allows, and the clock.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::category::Category;
use super::phone::parse_phone;
use crate::error::FieldError;

/// An enum stored and sent as snake_case text.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
            diesel::AsExpression, diesel::FromSqlRow,
        )]
        #[serde(rename_all = "snake_case")]
        // stored as its text in a TEXT column (the conversions: `db::types`)
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name { $($variant),+ }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// In the resident's home (户内) or anywhere outside the unit's entrance door (公共).
    Area { InHome => "in_home", Public => "public" }
);
string_enum!(Urgency { Normal => "normal", Emergency => "emergency" });
string_enum!(Channel { Phone => "phone", App => "app", Wechat => "wechat", WalkIn => "walk_in", Patrol => "patrol" });
string_enum!(
    /// `declined`: a paid job whose quote the resident turned down.
    Status {
        Open => "open",
        Assigned => "assigned",
        OnSite => "on_site",
        OnHold => "on_hold",
        AwaitingInspection => "awaiting_inspection",
        Completed => "completed",
        Closed => "closed",
        Cancelled => "cancelled",
        Declined => "declined",
    }
);
string_enum!(
    HoldReason {
        AwaitingParts => "awaiting_parts",
        NeedsAssessment => "needs_assessment",
        ResidentAbsent => "resident_absent",
        Other => "other",
    }
);
string_enum!(
    EscalationKind {
        Unclaimed => "unclaimed",
        LateArrival => "late_arrival",
        Stalled => "stalled",
        SmsFailed => "sms_failed",
        TechnicianRemoved => "technician_removed",
    }
);

string_enum!(
    /// A paid job's price, as the resident answered it.
    QuoteStatus { Pending => "pending", Accepted => "accepted", Declined => "declined" }
);

string_enum!(
    /// What a quote's price covers: `all`, the whole price the resident agreed to (materials are
    /// inside it), or `labour`, labour only (chargeable company-supplied materials are added).
    Covers { All => "all", Labour => "labour" }
);

impl Covers {
    /// How the resident's SMS says it (`{covers}` in the quote text).
    pub fn for_residents(self) -> &'static str {
        match self {
            Covers::All => "全包价，含材料",
            Covers::Labour => "仅人工费，材料另计",
        }
    }
}

/// Who makes a move on a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The site's dispatchers and supervisors, and admins.
    Desk,
    /// The technician holding the ticket.
    Holder,
    /// A technician of the ticket's site and trade who does not hold it (the pool).
    Technician,
    /// An admin's change of a user that takes their tickets away.
    Removal,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Desk => "the desk",
            Actor::Holder => "the technician holding it",
            Actor::Technician => "a technician of its site and trade",
            Actor::Removal => "an admin removing its technician",
        }
    }
}

/// Everything that is done to a ticket once it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Claim,
    Release,
    Assign,
    Cancel,
    VerifyByPhone,
    ResendCode,
    Arrive,
    Quote,
    AcceptQuote,
    DeclineQuote,
    Materials,
    Note,
    Hold,
    Resume,
    Complete,
    Inspect,
    Callback,
    Unassign,
    Edit,
}

/// One row of [`MOVES`]: a move, the statuses it is allowed from, the statuses it may lead to
/// (none: the status stays), and who may make it.
#[derive(Debug, Clone, Copy)]
pub struct Transition {
    pub what: Move,
    /// The verb of a refusal: "cannot {doing} a ticket that is on_site".
    pub doing: &'static str,
    /// The event the move records.
    pub event: &'static str,
    pub from: &'static [Status],
    pub to: &'static [Status],
    pub by: &'static [Actor],
    /// The statuses from which the move needs a reason (422 naming `reason` without one).
    pub reason_from: &'static [Status],
}

use Actor::{Desk, Holder, Removal, Technician};
use Status::{Assigned, AwaitingInspection, Cancelled, Closed, Completed, Declined, OnHold, OnSite, Open};

/// The statuses where someone holds the ticket and a paid job's price is settled.
const HELD: &[Status] = &[Assigned, OnSite, OnHold];

/// Which move is allowed from which status, and to whom: the one place the commands ask. A
/// ticket is created `open`, or `assigned` when the desk names its technician at intake.
pub const MOVES: &[Transition] = &[
    Transition {
        what: Move::Claim,
        doing: "claim",
        event: "claimed",
        from: &[Open],
        to: &[Assigned],
        by: &[Technician],
        reason_from: &[],
    },
    Transition {
        what: Move::Release,
        doing: "release",
        event: "released",
        from: &[Assigned],
        to: &[Open],
        by: &[Holder, Desk],
        reason_from: &[Assigned],
    },
    Transition {
        what: Move::Assign,
        doing: "assign",
        event: "assigned, reassigned",
        // from on_site: the desk takes it from a technician at the door, and says why
        from: &[Open, Assigned, OnSite, OnHold],
        to: &[Assigned],
        by: &[Desk],
        reason_from: &[OnSite],
    },
    Transition {
        what: Move::Cancel,
        doing: "cancel",
        event: "cancelled",
        from: &[Open, Assigned, OnSite, OnHold, AwaitingInspection],
        to: &[Cancelled],
        by: &[Desk],
        reason_from: &[Open, Assigned, OnSite, OnHold, AwaitingInspection],
    },
    Transition {
        what: Move::VerifyByPhone,
        doing: "verify the arrival of",
        event: "verified_by_phone",
        from: &[Open, Assigned],
        to: &[],
        by: &[Desk],
        reason_from: &[],
    },
    Transition {
        what: Move::ResendCode,
        doing: "resend the code of",
        event: "code_resent",
        from: &[Open, Assigned],
        to: &[],
        by: &[Desk],
        reason_from: &[],
    },
    Transition {
        what: Move::Arrive,
        doing: "check in at",
        event: "arrived",
        from: &[Assigned],
        to: &[OnSite],
        by: &[Holder],
        reason_from: &[],
    },
    Transition {
        what: Move::Quote,
        doing: "quote",
        event: "quoted",
        from: HELD,
        to: &[],
        by: &[Holder, Desk],
        reason_from: &[],
    },
    Transition {
        what: Move::AcceptQuote,
        doing: "accept the quote of",
        event: "quote_accepted",
        from: HELD,
        to: &[],
        by: &[Holder, Desk],
        reason_from: &[],
    },
    Transition {
        what: Move::DeclineQuote,
        doing: "decline the quote of",
        event: "quote_declined",
        from: HELD,
        to: &[Declined],
        by: &[Holder, Desk],
        reason_from: &[],
    },
    Transition {
        what: Move::Materials,
        doing: "record materials on",
        event: "material_added, material_updated, material_removed",
        from: &[OnSite, OnHold],
        to: &[],
        by: &[Holder, Desk],
        reason_from: &[],
    },
    Transition {
        what: Move::Note,
        doing: "write a note on",
        event: "note_added",
        from: Status::ALL,
        to: &[],
        by: &[Holder, Desk],
        reason_from: &[],
    },
    Transition {
        what: Move::Hold,
        doing: "hold",
        event: "held",
        from: &[OnSite],
        to: &[OnHold],
        by: &[Holder, Desk],
        reason_from: &[],
    },
    Transition {
        what: Move::Resume,
        doing: "resume",
        event: "resumed",
        from: &[OnHold],
        to: &[OnSite],
        by: &[Holder, Desk],
        reason_from: &[],
    },
    Transition {
        what: Move::Complete,
        doing: "complete",
        event: "completed",
        from: &[OnSite],
        to: &[Completed, AwaitingInspection],
        by: &[Holder],
        reason_from: &[],
    },
    Transition {
        what: Move::Inspect,
        doing: "inspect",
        event: "inspected",
        from: &[AwaitingInspection],
        to: &[Completed, Assigned],
        by: &[Desk],
        reason_from: &[],
    },
    Transition {
        what: Move::Edit,
        doing: "edit",
        event: "edited",
        from: &[Open, Assigned, OnSite, OnHold],
        to: &[],
        by: &[Desk],
        reason_from: &[],
    },
    Transition {
        what: Move::Callback,
        doing: "call back",
        event: "callback",
        from: &[Completed],
        to: &[Closed],
        by: &[Desk],
        reason_from: &[],
    },
    Transition {
        what: Move::Unassign,
        doing: "unassign",
        event: "unassigned",
        from: HELD,
        to: &[Open],
        by: &[Removal],
        reason_from: &[],
    },
];

impl Move {
    pub fn transition(self) -> &'static Transition {
        MOVES.iter().find(|t| t.what == self).expect("every move is in MOVES")
    }

    /// Whether the move is allowed from `status`.
    pub fn allowed_from(self, status: Status) -> bool {
        self.transition().from.contains(&status)
    }

    /// Whether the move, made from `status`, needs a reason.
    pub fn needs_reason(self, status: Status) -> bool {
        self.transition().reason_from.contains(&status)
    }
}

impl Status {
    /// Held by a technician: counts against the active-ticket cap.
    pub const ACTIVE: [Status; 3] = [Assigned, OnSite, OnHold];

    /// No move leads anywhere from here.
    pub fn is_final(self) -> bool {
        MOVES.iter().all(|t| !t.from.contains(&self) || t.to.is_empty() || t.what == Move::Note)
    }
}

/// The table as the Markdown of `docs/transitions.md` (checked by a test to be the committed one).
pub fn transitions_markdown() -> String {
    let list = |s: &[Status]| s.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
    let mut out = String::from(
        "# Ticket statuses and moves\n\n\
         Generated from `MOVES` in `src/domain/ticket.rs`; a test checks this file against it \
         (`UPDATE_DOCS=1 cargo test --test api transitions` rewrites it).\n\n\
         A ticket is created `open`, or `assigned` when the desk names its technician at intake.\n\n\
         | move | event | from | to | by | reason required from |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for t in MOVES {
        let to = if t.to.is_empty() { "(stays)".to_owned() } else { list(t.to) };
        let from = if t.from == Status::ALL { "any".to_owned() } else { list(t.from) };
        let by = t.by.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ");
        let reason = if t.reason_from.is_empty() { "-".to_owned() } else { list(t.reason_from) };
        out.push_str(&format!("| {} | {} | {from} | {to} | {by} | {reason} |\n", t.doing, t.event));
    }
    let finals: Vec<Status> = Status::ALL.iter().copied().filter(|s| s.is_final()).collect();
    out.push_str(&format!("\nFinal statuses (only notes are added): {}.\n", list(&finals)));
    out
}

/// The longest texts of the intake form, in characters (trimmed).
pub const MAX_SITE_ID: usize = 64;
pub const MAX_LOCATION: usize = 200;
pub const MAX_DESCRIPTION: usize = 2000;
pub const MAX_REPORTER_NAME: usize = 100;
/// The longest reason for a release, a cancellation, an assignment or an edit, in characters
/// (trimmed).
pub const MAX_REASON: usize = 500;
/// How far back an appointment may be (a form filled in a few minutes ago), and how far ahead.
pub const APPOINTMENT_GRACE_MINUTES: i64 = 5;
pub const APPOINTMENT_MAX_DAYS: i64 = 90;

/// The intake form as sent: the fields are read as optional, so that one answer can name every
/// bad field; the schema states what passes. Texts are trimmed.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TicketForm {
    #[schema(value_type = String, min_length = 1, max_length = 64, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub site_id: Option<String>,
    #[schema(value_type = Area)]
    pub area: Option<String>,
    /// Room/unit (房号) for in-home tickets, the exact place for public ones.
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub location: Option<String>,
    #[schema(value_type = Category)]
    pub category: Option<String>,
    #[schema(value_type = Urgency)]
    pub urgency: Option<String>,
    /// Paid special service (特约维修); `false` when left out.
    pub paid: Option<bool>,
    #[schema(value_type = String, min_length = 1, max_length = 2000, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub description: Option<String>,
    #[schema(value_type = String, min_length = 1, max_length = 100, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub reporter_name: Option<String>,
    /// Mainland mobile or E.164. Required (not blank) when `area` is `in_home`: the resident's
    /// code goes to it.
    #[schema(
        pattern = r"^(?:(?:\+86)?1[3-9][0-9]{9}|\+(?:[1-79][0-9]{7,14}|8[0-57-9][0-9]{6,13}|86[02-9][0-9]{5,12}))$"
    )]
    pub reporter_phone: Option<String>,
    /// From 5 minutes ago to 90 days ahead.
    pub appointment_at: Option<DateTime<Utc>>,
    /// `false` when left out.
    pub resident_supplies_parts: Option<bool>,
    #[schema(value_type = Channel)]
    pub channel: Option<String>,
    /// Assigns the ticket to this technician directly instead of the pool: an active technician
    /// of the site. Blank is the same as left out.
    pub requested_technician_id: Option<String>,
}

/// An intake form that passed every check.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub site_id: String,
    pub area: Area,
    pub location: String,
    pub category: Category,
    pub urgency: Urgency,
    pub paid: bool,
    pub description: String,
    pub reporter_name: String,
    pub reporter_phone: Option<String>,
    pub appointment_at: Option<NaiveDateTime>,
    pub resident_supplies_parts: bool,
    pub channel: Channel,
    pub requested_technician_id: Option<String>,
}

pub(crate) fn text(errors: &mut Vec<FieldError>, field: &str, value: Option<&String>, max: usize) -> Option<String> {
    match value.map(|v| v.trim()) {
        None | Some("") => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
        Some(v) if v.chars().count() > max => {
            errors.push(FieldError::new(field, format!("must be at most {max} characters")));
            None
        }
        Some(v) => Some(v.to_owned()),
    }
}

pub(crate) fn choice<T>(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<&String>,
    parse: fn(&str) -> Option<T>,
    names: String,
) -> Option<T> {
    match value {
        None => {
            errors.push(FieldError::new(field, format!("is required: one of {names}")));
            None
        }
        Some(v) => {
            let parsed = parse(v);
            if parsed.is_none() {
                errors.push(FieldError::new(field, format!("must be one of {names}")));
            }
            parsed
        }
    }
}

impl TicketForm {
    /// Checks every field; `now` bounds the appointment time.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<NewTicket, Vec<FieldError>> {
        let mut errors = Vec::new();
        let site_id = text(&mut errors, "site_id", self.site_id.as_ref(), MAX_SITE_ID);
        let area = choice(&mut errors, "area", self.area.as_ref(), Area::parse, Area::names());
        let location = text(&mut errors, "location", self.location.as_ref(), MAX_LOCATION);
        let category = choice(&mut errors, "category", self.category.as_ref(), Category::parse, Category::names());
        let urgency = choice(&mut errors, "urgency", self.urgency.as_ref(), Urgency::parse, Urgency::names());
        let description = text(&mut errors, "description", self.description.as_ref(), MAX_DESCRIPTION);
        let reporter_name = text(&mut errors, "reporter_name", self.reporter_name.as_ref(), MAX_REPORTER_NAME);
        let channel = choice(&mut errors, "channel", self.channel.as_ref(), Channel::parse, Channel::names());
        let reporter_phone = match self.reporter_phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => match parse_phone(p) {
                Ok(p) => Some(p),
                Err(m) => {
                    errors.push(FieldError::new("reporter_phone", m));
                    None
                }
            },
            None => {
                if area == Some(Area::InHome) {
                    errors.push(FieldError::new(
                        "reporter_phone",
                        "is required for in-home tickets: the resident's code goes to it",
                    ));
                }
                None
            }
        };
        if let Some(at) = self.appointment_at {
            if at < now - Duration::minutes(APPOINTMENT_GRACE_MINUTES) {
                errors.push(FieldError::new("appointment_at", "must not be in the past"));
            } else if at > now + Duration::days(APPOINTMENT_MAX_DAYS) {
                errors.push(FieldError::new("appointment_at", format!("must be within {APPOINTMENT_MAX_DAYS} days")));
            }
        }
        let requested_technician_id =
            self.requested_technician_id.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        if !errors.is_empty() {
            return Err(errors);
        }
        match (site_id, area, location, category, urgency, description, reporter_name, channel) {
            (
                Some(site_id),
                Some(area),
                Some(location),
                Some(category),
                Some(urgency),
                Some(description),
                Some(reporter_name),
                Some(channel),
            ) => Ok(NewTicket {
                site_id,
                area,
                location,
                category,
                urgency,
                paid: self.paid.unwrap_or(false),
                description,
                reporter_name,
                reporter_phone,
                appointment_at: self.appointment_at.map(|a| a.naive_utc()),
                resident_supplies_parts: self.resident_supplies_parts.unwrap_or(false),
                channel,
                requested_technician_id,
            }),
            _ => Err(vec![FieldError::new("body", "is incomplete")]),
        }
    }
}

/// `{SITE_CODE}-{YYYYMMDD}-{NNNN}`; the day is the site's local day.
pub fn ticket_number(site_code: &str, local_day: &str, n: i64) -> String {
    format!("{site_code}-{local_day}-{n:04}")
}

/// The site-local day (`YYYYMMDD`) of `at`.
pub fn local_day(at: NaiveDateTime, tz: chrono_tz::Tz) -> String {
    at.and_utc().with_timezone(&tz).format("%Y%m%d").to_string()
}

/// The service levels the clock enforces (the seeds' numbers as defaults).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub claim_timeout: Duration,
    pub arrival: Duration,
    pub emergency_arrival: Duration,
    pub stalled_after: Duration,
    /// A matter (报事) waiting this long for its department's reply escalates.
    pub matter_reply: Duration,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            claim_timeout: Duration::minutes(5),
            arrival: Duration::minutes(20),
            emergency_arrival: Duration::minutes(10),
            stalled_after: Duration::hours(2),
            matter_reply: Duration::hours(24),
        }
    }
}

string_enum!(
    /// Which arrival limit a ticket is held to: an appointment's time when it has one, else the
    /// minutes after the claim for its urgency.
    ArrivalLimit { Normal => "normal", Emergency => "emergency", Appointment => "appointment" }
);

impl ArrivalLimit {
    pub fn of(urgency: Urgency, has_appointment: bool) -> Self {
        match (has_appointment, urgency) {
            (true, _) => ArrivalLimit::Appointment,
            (false, Urgency::Emergency) => ArrivalLimit::Emergency,
            (false, Urgency::Normal) => ArrivalLimit::Normal,
        }
    }
}

impl Clock {
    /// When the technician must be at the door: the appointment, else claim time plus the
    /// arrival limit for the urgency.
    pub fn arrival_deadline(
        &self,
        claimed_at: NaiveDateTime,
        urgency: Urgency,
        appointment_at: Option<NaiveDateTime>,
    ) -> NaiveDateTime {
        match (ArrivalLimit::of(urgency, appointment_at.is_some()), appointment_at) {
            (ArrivalLimit::Appointment, Some(at)) => at.max(claimed_at),
            (limit, _) => claimed_at + self.arrival_after_claim(limit).unwrap_or(self.arrival),
        }
    }

    /// The time after the claim a limit allows; `None` for an appointment (its time is the limit).
    pub fn arrival_after_claim(&self, limit: ArrivalLimit) -> Option<Duration> {
        match limit {
            ArrivalLimit::Normal => Some(self.arrival),
            ArrivalLimit::Emergency => Some(self.emergency_arrival),
            ArrivalLimit::Appointment => None,
        }
    }
}

/// What the clock reads of a ticket (`jobs::clock` escalates on it, the desk's board colours by it).
#[derive(Debug, Clone, Copy)]
pub struct ClockFacts {
    pub status: Status,
    pub urgency: Urgency,
    pub pooled_at: Option<NaiveDateTime>,
    pub claimed_at: Option<NaiveDateTime>,
    /// When the desk last restarted the arrival clock (a new appointment, urgency raised).
    pub arrival_clock_at: Option<NaiveDateTime>,
    pub appointment_at: Option<NaiveDateTime>,
    pub resume_at: Option<NaiveDateTime>,
    pub last_activity_at: NaiveDateTime,
}

/// A service level running on a ticket: the escalation it ends in, when it began and when it runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    pub kind: EscalationKind,
    pub since: NaiveDateTime,
    pub deadline: NaiveDateTime,
}

/// How close a running service level is to its end, as the desk's board shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockColour {
    /// Less than three quarters of the limit used.
    Green,
    /// The last quarter of the limit: the desk should look now.
    Amber,
    /// Past the limit: the clock escalates (or has).
    Red,
}

impl ClockColour {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Green => "green",
            Self::Amber => "amber",
            Self::Red => "red",
        }
    }
}

impl Running {
    pub fn colour(&self, now: NaiveDateTime) -> ClockColour {
        if now >= self.deadline {
            return ClockColour::Red;
        }
        let limit = self.deadline - self.since;
        if (now - self.since) * 4 >= limit * 3 {
            ClockColour::Amber
        } else {
            ClockColour::Green
        }
    }
}

impl Clock {
    /// In the pool: runs from when it (last) entered it.
    pub fn unclaimed(&self, t: &ClockFacts) -> Option<Running> {
        let since = t.pooled_at.filter(|_| t.status == Status::Open)?;
        Some(Running { kind: EscalationKind::Unclaimed, since, deadline: since + self.claim_timeout })
    }

    /// Assigned and not yet at the door: runs from the claim, or from the desk's last restart of
    /// it (an edit), to the appointment or the urgency's limit.
    pub fn late_arrival(&self, t: &ClockFacts) -> Option<Running> {
        let claimed_at = t.claimed_at.filter(|_| t.status == Status::Assigned)?;
        let since = t.arrival_clock_at.map_or(claimed_at, |restart| restart.max(claimed_at));
        let deadline = self.arrival_deadline(since, t.urgency, t.appointment_at);
        Some(Running { kind: EscalationKind::LateArrival, since, deadline })
    }

    /// Held and quiet: silence counts from the last activity, but not before an appointment (a
    /// job booked for the afternoon is not stalled in the morning) nor before a hold's resume time.
    pub fn stalled(&self, t: &ClockFacts) -> Option<Running> {
        if !Status::ACTIVE.contains(&t.status) {
            return None;
        }
        let waits_for = match t.status {
            Status::Assigned => t.appointment_at,
            Status::OnHold => t.resume_at,
            _ => None,
        };
        let since = waits_for.map_or(t.last_activity_at, |at| t.last_activity_at.max(at));
        Some(Running { kind: EscalationKind::Stalled, since, deadline: since + self.stalled_after })
    }

    /// The service level that runs out first on the ticket, if any runs.
    pub fn next_due(&self, t: &ClockFacts) -> Option<Running> {
        [self.unclaimed(t), self.late_arrival(t), self.stalled(t)].into_iter().flatten().min_by_key(|r| r.deadline)
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    fn at(minutes: i64) -> NaiveDateTime {
        DateTime::from_timestamp(1_800_000_000 + minutes * 60, 0).unwrap().naive_utc()
    }

    fn facts(status: Status) -> ClockFacts {
        ClockFacts {
            status,
            urgency: Urgency::Normal,
            pooled_at: Some(at(0)),
            claimed_at: Some(at(0)),
            arrival_clock_at: None,
            appointment_at: None,
            resume_at: None,
            last_activity_at: at(0),
        }
    }

    #[test]
    fn a_pooled_ticket_turns_amber_in_the_last_quarter_of_the_claim_limit_and_red_past_it() {
        let clock = Clock::default();
        let running = clock.next_due(&facts(Status::Open)).unwrap();
        assert_eq!((running.kind, running.deadline), (EscalationKind::Unclaimed, at(5)));
        let colours: Vec<_> = [0, 3, 4, 5, 60].iter().map(|m| running.colour(at(*m)).as_str()).collect();
        assert_eq!(colours, ["green", "green", "amber", "red", "red"]);
    }

    #[test]
    fn an_assigned_ticket_runs_to_the_arrival_limit_before_it_can_stall() {
        let clock = Clock::default();
        let normal = clock.next_due(&facts(Status::Assigned)).unwrap();
        assert_eq!((normal.kind, normal.deadline), (EscalationKind::LateArrival, at(20)));
        let emergency = ClockFacts { urgency: Urgency::Emergency, ..facts(Status::Assigned) };
        assert_eq!(clock.next_due(&emergency).unwrap().deadline, at(10));
        let booked = ClockFacts { appointment_at: Some(at(180)), ..facts(Status::Assigned) };
        assert_eq!(clock.late_arrival(&booked).unwrap().deadline, at(180));
        assert_eq!(clock.stalled(&booked).unwrap().deadline, at(300), "quiet counts from the appointment");
    }

    #[test]
    fn only_held_tickets_stall_and_finished_ones_run_no_clock() {
        let clock = Clock::default();
        let on_site = clock.next_due(&facts(Status::OnSite)).unwrap();
        assert_eq!((on_site.kind, on_site.deadline), (EscalationKind::Stalled, at(120)));
        for status in [Status::AwaitingInspection, Status::Completed, Status::Cancelled] {
            assert!(clock.next_due(&facts(status)).is_none(), "{status}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> TicketForm {
        TicketForm {
            site_id: Some("s1".into()),
            area: Some("in_home".into()),
            location: Some("3-2-1201".into()),
            category: Some("water".into()),
            urgency: Some("normal".into()),
            description: Some("厨房水管漏水".into()),
            reporter_name: Some("王女士".into()),
            reporter_phone: Some("13812345678".into()),
            channel: Some("phone".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_complete_form_passes_and_normalises_the_phone() {
        let t = form().validate(Utc::now()).unwrap();
        assert_eq!(t.reporter_phone.as_deref(), Some("+8613812345678"));
        assert!(!t.paid);
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = TicketForm { area: Some("garden".into()), reporter_phone: None, ..Default::default() };
        let fields: Vec<String> = bad.validate(Utc::now()).unwrap_err().into_iter().map(|e| e.field).collect();
        for f in ["site_id", "area", "location", "category", "urgency", "description", "reporter_name", "channel"] {
            assert!(fields.contains(&f.to_string()), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn in_home_needs_a_phone_and_public_does_not() {
        let mut f = form();
        f.reporter_phone = None;
        let errors = f.validate(Utc::now()).unwrap_err();
        assert_eq!(errors[0].field, "reporter_phone");
        f.area = Some("public".into());
        assert!(f.validate(Utc::now()).is_ok());
    }

    #[test]
    fn every_move_has_one_row_and_every_status_is_reached() {
        for (i, t) in MOVES.iter().enumerate() {
            assert!(MOVES[i + 1..].iter().all(|other| other.what != t.what), "{:?} twice", t.what);
            assert!(!t.by.is_empty() && !t.from.is_empty(), "{:?} is made by nobody or from nowhere", t.what);
            assert!(
                t.reason_from.iter().all(|s| t.from.contains(s)),
                "{:?} needs a reason where it is not made",
                t.what
            );
        }
        // created open (or assigned): every other status is where some move leads
        for s in Status::ALL.iter().filter(|s| **s != Status::Open) {
            assert!(MOVES.iter().any(|t| t.to.contains(s)), "nothing leads to {s}");
        }
        assert_eq!(
            Status::ALL.iter().copied().filter(|s| s.is_final()).collect::<Vec<_>>(),
            [Status::Closed, Status::Cancelled, Status::Declined]
        );
    }

    #[test]
    fn the_desk_assigns_and_cancels_only_unfinished_work() {
        // handed (again) to a technician before anyone arrived, on site or on hold; not once done
        assert!(Move::Assign.allowed_from(Status::OnHold) && !Move::Assign.allowed_from(Status::AwaitingInspection));
        // taken from a technician at the door only with a reason
        assert!(Move::Assign.needs_reason(Status::OnSite) && !Move::Assign.needs_reason(Status::Assigned));
        assert!(Move::Cancel.allowed_from(Status::AwaitingInspection) && !Move::Cancel.allowed_from(Status::Completed));
        assert!(Move::Note.allowed_from(Status::Closed));
        assert!(!Move::Materials.allowed_from(Status::Assigned));
    }

    #[test]
    fn numbers_count_local_days() {
        let at = NaiveDateTime::parse_from_str("2026-11-22 17:30:00", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(local_day(at, chrono_tz::Asia::Shanghai), "20261123");
        assert_eq!(ticket_number("GY", "20261123", 7), "GY-20261123-0007");
    }

    #[test]
    fn arrival_deadlines_follow_urgency_and_appointments() {
        let clock = Clock::default();
        let t = NaiveDateTime::parse_from_str("2026-11-22 10:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(clock.arrival_deadline(t, Urgency::Normal, None), t + Duration::minutes(20));
        assert_eq!(clock.arrival_deadline(t, Urgency::Emergency, None), t + Duration::minutes(10));
        let appointment = t + Duration::hours(3);
        assert_eq!(clock.arrival_deadline(t, Urgency::Normal, Some(appointment)), appointment);
    }
}
