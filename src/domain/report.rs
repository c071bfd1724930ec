//! The monthly report (issue 16): which month a site's ticket counts in, the rates, the medians,
//! which arrival limit held a ticket, and how the database's grouped rows fold into the report's
//! sections and the tables of its CSV and workbook. Plain data in, plain data out; the queries
//! are `db::reports`, and `docs/reports.md` says what every figure means.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::bill::{self, Covers};
use super::category::Category;
use super::material::SuppliedBy;
use super::matter::{Department, MatterKind};
use super::ticket::{ArrivalLimit, Channel, Clock, Urgency};

/// A month as the query takes it: `YYYY-MM`.
pub const MONTH_PATTERN: &str = r"^[0-9]{4}-(?:0[1-9]|1[0-2])$";
/// The most sites one report covers.
pub const MAX_SITES: usize = 50;

/// A calendar month, read in each site's own time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    /// `YYYY-MM`, years 1 to 9998 (the month after must still be a four-digit year).
    pub fn parse(raw: &str) -> Result<Month, String> {
        const MSG: &str = "must be a month written YYYY-MM, such as 2026-11";
        let (year, month) = raw.split_once('-').ok_or(MSG)?;
        if year.len() != 4 || month.len() != 2 || !(year.bytes().chain(month.bytes()).all(|b| b.is_ascii_digit())) {
            return Err(MSG.into());
        }
        let (year, month): (i32, u32) = (year.parse().map_err(|_| MSG)?, month.parse().map_err(|_| MSG)?);
        if !(1..=12).contains(&month) {
            return Err("must be a month written YYYY-MM: the month is 01 to 12".into());
        }
        if !(1..=9998).contains(&year) {
            return Err("must be a month between 0001-01 and 9998-12".into());
        }
        Ok(Month { year, month })
    }

    /// The month `at` falls in, in `tz`.
    pub fn of<Tz: TimeZone>(at: DateTime<Utc>, tz: &Tz) -> Month {
        let local = at.with_timezone(tz).date_naive();
        Month { year: local.year(), month: local.month() }
    }

    /// The month before.
    pub fn previous(self) -> Month {
        match self.month {
            1 => Month { year: self.year - 1, month: 12 },
            m => Month { year: self.year, month: m - 1 },
        }
    }

    fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a parsed month has a first day")
    }

    fn next(self) -> Month {
        match self.month {
            12 => Month { year: self.year + 1, month: 1 },
            m => Month { year: self.year, month: m + 1 },
        }
    }

    /// The month in `tz` as UTC times: from its first local midnight, up to (not including) the
    /// next month's.
    pub fn bounds<Tz: TimeZone>(self, tz: &Tz) -> (NaiveDateTime, NaiveDateTime) {
        (local_midnight(self.first_day(), tz), local_midnight(self.next().first_day(), tz))
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The first moment of a local day, in UTC: midnight, or where a clock change skips midnight
/// (some zones move their clocks at 00:00), the first local time after it that exists.
fn local_midnight<Tz: TimeZone>(day: NaiveDate, tz: &Tz) -> NaiveDateTime {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    (0..=24 * 4)
        .map(|quarter| midnight + Duration::minutes(15 * quarter))
        .find_map(|local| tz.from_local_datetime(&local).earliest())
        .map_or(midnight, |at| at.naive_utc())
}

/// A rate: `numerator / denominator`, `None` (JSON `null`) when the denominator is 0, never 0 or 1.
pub fn rate(numerator: i64, denominator: i64) -> Option<f64> {
    (denominator != 0).then(|| numerator as f64 / denominator as f64)
}

/// The median of sorted values: the middle one, or the mean of the two middle ones. The SQL of
/// `db::reports` computes the same (rows `(n + 1) / 2` and `(n + 2) / 2` of each group, averaged).
pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// A rate's target from the service levels (`docs/domain.md`, "Every month"): on-time arrivals
/// and callbacks 100%, rework at most 1%.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// The report's section: `on_time`, `rework`, `callbacks`.
    pub key: &'static str,
    pub rate: f64,
    /// The rate must stay at or below the target (rework), else reach it.
    pub at_most: bool,
}

pub const TARGETS: [Target; 3] = [
    Target { key: "on_time", rate: 1.0, at_most: false },
    Target { key: "rework", rate: 0.01, at_most: true },
    Target { key: "callbacks", rate: 1.0, at_most: false },
];

impl Target {
    /// Whether `rate` meets the target; `None` when there is no rate (nothing was due).
    pub fn met(&self, rate: Option<f64>) -> Option<bool> {
        // the rates are quotients of counts: a hair of float error must not miss a 100% target
        const EPSILON: f64 = 1e-9;
        rate.map(|r| if self.at_most { r <= self.rate + EPSILON } else { r >= self.rate - EPSILON })
    }

    /// This target's rate in the figures.
    pub fn actual(&self, f: &Figures) -> Option<f64> {
        match self.key {
            "on_time" => f.on_time.rate,
            "rework" => f.rework.rate,
            _ => f.callbacks.rate,
        }
    }
}

/// Minutes as the report gives them: to a tenth (what the engines' time arithmetic adds below
/// that is noise).
pub fn round_minutes(minutes: f64) -> f64 {
    (minutes * 10.0).round() / 10.0
}

/// The names the database's median rows carry (`MedianRow::measure`).
pub mod measure {
    /// Creation to arrival, per trade, of the tickets reached in the month.
    pub const ARRIVE: &str = "arrive";
    /// Arrival to completion, per trade, of the tickets completed in the month.
    pub const COMPLETE: &str = "complete";
    /// Completion to the first callback, of the tickets completed in the month that had one.
    pub const CALLBACK: &str = "callback";
    /// Reply to the first callback, of the matters replied to in the month that had one.
    pub const MATTER_CALLBACK: &str = "matter_callback";
}

// ---- what the database answers: grouped rows, one kind per query ----

/// Tickets created in the month, counted per combination of what the volume tells apart.
#[derive(Debug, Clone, Default)]
pub struct IntakeRow {
    pub category: String,
    pub area: String,
    pub paid: bool,
    pub urgency: String,
    pub channel: String,
    /// Cancelled (作废) since.
    pub voided: bool,
    pub tickets: i64,
}

/// Tickets whose technician arrived in the month.
#[derive(Debug, Clone, Default)]
pub struct ArrivalRow {
    pub category: String,
    pub technician_id: Option<String>,
    pub urgency: String,
    pub appointment: bool,
    /// The verdict recorded at the arrival (`arrival_on_time`).
    pub on_time: bool,
    pub tickets: i64,
}

/// Tickets completed in the month (and still completed or closed), with what each carries summed.
#[derive(Debug, Clone, Default)]
pub struct CompletionRow {
    pub category: String,
    pub technician_id: Option<String>,
    /// What the accepted quote covers, if one was accepted.
    pub accepted_covers: Option<String>,
    /// The satisfaction given at the callback that reached the resident.
    pub satisfaction: Option<i64>,
    pub tickets: i64,
    /// Of them, those a later ticket points at as its rework (`rework_of`).
    pub reworked: i64,
    pub rated: i64,
    pub rating_sum: i64,
    pub collected_cents: i64,
    pub accepted_quote_cents: i64,
    pub company_material_cents: i64,
    pub resident_material_cents: i64,
    /// With at least one callback; with one that reached the resident.
    pub called: i64,
    pub reached: i64,
}

/// The median of one measure in one part (a trade, or `""` for the whole).
#[derive(Debug, Clone, Default)]
pub struct MedianRow {
    pub measure: String,
    pub part: String,
    pub minutes: f64,
}

/// Material lines of the tickets completed in the month, per item and supplier.
#[derive(Debug, Clone, Default)]
pub struct MaterialRow {
    pub name: String,
    pub spec: Option<String>,
    pub unit: String,
    pub supplied_by: String,
    pub quantity_milli: i64,
    pub cost_cents: i64,
}

/// A ticket cancelled in the month.
#[derive(Debug, Clone, Default)]
pub struct VoidedRow {
    pub number: String,
    pub created_at: NaiveDateTime,
    pub cancelled_at: NaiveDateTime,
    pub reason: Option<String>,
    pub category: String,
    pub location: String,
}

/// Quotes last proposed in the month; quotes accepted and declined in the month.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuoteRow {
    pub quoted: i64,
    pub quoted_cents: i64,
    pub accepted: i64,
    pub accepted_cents: i64,
    pub declined: i64,
    pub declined_cents: i64,
}

/// Matters registered in the month, per kind and department.
#[derive(Debug, Clone, Default)]
pub struct MatterRow {
    pub kind: String,
    pub department: String,
    pub matters: i64,
    pub replied: i64,
    /// Replied within the service level (`REPAIRDESK_MATTER_REPLY_HOURS`).
    pub replied_in_time: i64,
    pub called: i64,
    pub reached: i64,
}

/// Matters replied to in the month, per satisfaction given at the callback that reached the
/// reporter.
#[derive(Debug, Clone, Default)]
pub struct MatterCallbackRow {
    pub satisfaction: Option<i64>,
    pub matters: i64,
    pub called: i64,
    pub reached: i64,
}

/// Everything the database answers for one site's month (or several sites' together).
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub intake: Vec<IntakeRow>,
    pub arrivals: Vec<ArrivalRow>,
    pub completions: Vec<CompletionRow>,
    pub medians: Vec<MedianRow>,
    pub materials: Vec<MaterialRow>,
    pub voided: Vec<VoidedRow>,
    pub quotes: QuoteRow,
    pub matters: Vec<MatterRow>,
    pub matter_callbacks: Vec<MatterCallbackRow>,
    /// Technicians' display names by id.
    pub names: BTreeMap<String, String>,
}

impl Rows {
    /// Several sites' rows as one: every count adds up. Medians do not: the caller reads the
    /// whole's medians on their own (`medians` is left empty here).
    pub fn combine(all: Vec<Rows>) -> Rows {
        let mut whole = Rows::default();
        for rows in all {
            whole.intake.extend(rows.intake);
            whole.arrivals.extend(rows.arrivals);
            whole.completions.extend(rows.completions);
            whole.materials.extend(rows.materials);
            whole.voided.extend(rows.voided);
            let (q, r) = (&mut whole.quotes, rows.quotes);
            q.quoted += r.quoted;
            q.quoted_cents += r.quoted_cents;
            q.accepted += r.accepted;
            q.accepted_cents += r.accepted_cents;
            q.declined += r.declined;
            q.declined_cents += r.declined_cents;
            whole.matters.extend(rows.matters);
            whole.matter_callbacks.extend(rows.matter_callbacks);
            whole.names.extend(rows.names);
        }
        whole
    }
}

// ---- the report ----

/// Tickets created in the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Volume {
    pub total: i64,
    /// 户内.
    pub in_home: i64,
    /// 公共区域.
    pub public: i64,
    /// 日常维修: not paid.
    pub routine: i64,
    /// 特约服务 (paid).
    pub paid: i64,
    pub emergency: i64,
    /// Created in the month and cancelled (作废) since.
    pub voided: i64,
    /// Every channel, 0 included.
    pub by_channel: BTreeMap<String, i64>,
}

/// The arrivals under one limit.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LimitFigures {
    #[schema(value_type = String, example = "normal")]
    pub limit: ArrivalLimit,
    /// The minutes after the claim the limit allows (the server's settings); `null` for an
    /// appointment, whose time is the limit.
    pub limit_minutes: Option<i64>,
    pub arrivals: i64,
    pub on_time: i64,
    /// `on_time / arrivals`; `null` with no arrivals.
    pub rate: Option<f64>,
}

/// Arrivals in the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct OnTime {
    pub arrivals: i64,
    /// Arrived within the limit that held the ticket.
    pub on_time: i64,
    /// `on_time / arrivals`; `null` with no arrivals.
    pub rate: Option<f64>,
    /// The same per limit: `normal`, `emergency`, `appointment`.
    pub by_limit: Vec<LimitFigures>,
}

/// Tickets completed in the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Rework {
    pub completed: i64,
    /// Of them, those a later ticket was linked to as rework (返修, its `rework_of`).
    pub rework: i64,
    /// `rework / completed`; `null` with none completed.
    pub rate: Option<f64>,
}

/// The callbacks (回访) of the matters replied to in the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct MatterCallbacks {
    /// Matters replied to in the month: each is due for a callback.
    pub replied: i64,
    /// Of them, called back at least once.
    pub made: i64,
    /// Of them, with a callback that reached the reporter.
    pub reached: i64,
    /// `reached / replied`; `null` with none replied.
    pub rate: Option<f64>,
    /// Minutes from the reply to the first callback, median of those called back.
    pub median_minutes_to_first: Option<f64>,
    /// How many reached reporters gave each satisfaction, `"1"` to `"5"`.
    pub satisfaction: BTreeMap<String, i64>,
}

/// The callbacks (回访) of the tickets completed in the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Callbacks {
    /// Tickets completed in the month: each is due for a callback.
    pub completed: i64,
    /// Of them, called back at least once.
    pub made: i64,
    /// Of them, with a callback that reached the resident.
    pub reached: i64,
    /// `reached / completed`; `null` with none completed.
    pub rate: Option<f64>,
    /// Minutes from completion to the first callback, median of those called back.
    pub median_minutes_to_first: Option<f64>,
    /// How many reached residents gave each satisfaction, `"1"` to `"5"`.
    pub satisfaction: BTreeMap<String, i64>,
    pub matters: MatterCallbacks,
}

/// One trade (a ticket's category).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Trade {
    #[schema(value_type = String, example = "water")]
    pub category: String,
    /// Created in the month.
    pub created: i64,
    /// Completed in the month.
    pub completed: i64,
    /// Company-supplied material lines of the tickets completed in the month.
    pub material_cents: i64,
    /// Resident-supplied (业主自备) lines of the same tickets, at the prices written on them.
    pub resident_material_cents: i64,
    /// Creation to arrival, median over the tickets reached in the month.
    pub median_minutes_to_arrive: Option<f64>,
    /// Arrival to completion, median over the tickets completed in the month.
    pub median_minutes_to_complete: Option<f64>,
}

/// One technician: the tickets they hold that were completed or reached in the month.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Technician {
    pub technician_id: String,
    pub name: String,
    pub completed: i64,
    /// Arrivals in the month on the tickets they hold.
    pub arrivals: i64,
    pub on_time: i64,
    /// `on_time / arrivals`; `null` with no arrivals.
    pub on_time_rate: Option<f64>,
    /// Of their completed tickets, those later reworked.
    pub rework: i64,
    /// Of their completed tickets, those the resident rated at completion.
    pub ratings: i64,
    /// Mean of those ratings (1 to 5); `null` with none.
    pub average_rating: Option<f64>,
    pub material_cents: i64,
}

/// Money of the month, in cents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Fees {
    /// Quotes last proposed in the month: how many, and their amounts.
    pub quoted: i64,
    pub quoted_cents: i64,
    /// Quotes the resident accepted in the month.
    pub accepted: i64,
    pub accepted_cents: i64,
    /// Quotes the resident declined in the month.
    pub declined: i64,
    pub declined_cents: i64,
    /// The bills (`bill.total_cents`) of the tickets completed in the month.
    pub billed_cents: i64,
    /// Collected on site (`fee_collected_cents`) at the completions of the month.
    pub collected_cents: i64,
}

/// One material item, from one supplier, over the tickets completed in the month.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MaterialFigures {
    pub name: String,
    pub spec: Option<String>,
    pub unit: String,
    #[schema(value_type = String, example = "company")]
    pub supplied_by: String,
    /// A decimal such as `"1.5"`, as on the lines.
    pub quantity: String,
    /// The lines' amounts (each rounded as on its ticket), summed.
    pub cost_cents: i64,
}

/// A ticket cancelled in the month (作废, kept and listed, never deleted).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VoidedTicket {
    pub number: String,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: DateTime<Utc>,
    pub reason: Option<String>,
    pub category: String,
    pub location: String,
}

/// Matters of one kind for one department, registered in the month.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MatterGroup {
    #[schema(value_type = String, example = "complaint")]
    pub kind: String,
    #[schema(value_type = String, example = "cleaning")]
    pub department: String,
    pub count: i64,
    pub replied: i64,
    /// Replied within `reply_hours` of registration.
    pub replied_in_time: i64,
    /// `replied_in_time / count`; `null` with none.
    pub reply_rate: Option<f64>,
    pub callbacks_made: i64,
    pub callbacks_reached: i64,
    /// `callbacks_reached / replied`; `null` with none replied.
    pub callback_rate: Option<f64>,
}

/// Matters (报事) registered in the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct MatterFigures {
    /// The reply's service level, `REPAIRDESK_MATTER_REPLY_HOURS`.
    pub reply_hours: i64,
    pub count: i64,
    pub replied: i64,
    pub replied_in_time: i64,
    /// `replied_in_time / count`; `null` with none.
    pub reply_rate: Option<f64>,
    pub callbacks_made: i64,
    pub callbacks_reached: i64,
    /// `callbacks_reached / replied`; `null` with none replied.
    pub callback_rate: Option<f64>,
    pub by_kind: Vec<MatterGroup>,
}

/// Every section of the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Figures {
    pub volume: Volume,
    pub on_time: OnTime,
    pub rework: Rework,
    pub callbacks: Callbacks,
    /// Every trade, in the order of the categories.
    pub by_trade: Vec<Trade>,
    /// By name.
    pub technicians: Vec<Technician>,
    pub fees: Fees,
    /// By name, spec, unit and supplier.
    pub materials: Vec<MaterialFigures>,
    /// In the order they were cancelled.
    pub voided: Vec<VoidedTicket>,
    pub matters: MatterFigures,
}

impl Trade {
    fn empty(category: &str) -> Self {
        Trade {
            category: category.to_owned(),
            created: 0,
            completed: 0,
            material_cents: 0,
            resident_material_cents: 0,
            median_minutes_to_arrive: None,
            median_minutes_to_complete: None,
        }
    }
}

#[derive(Default)]
struct TechAcc {
    completed: i64,
    arrivals: i64,
    on_time: i64,
    rework: i64,
    ratings: i64,
    rating_sum: i64,
    material_cents: i64,
}

fn satisfaction_counts() -> BTreeMap<String, i64> {
    (1..=5).map(|s| (s.to_string(), 0)).collect()
}

/// A quantity in thousandths as the lines write it: `1500` is `"1.5"`.
pub fn quantity_text(milli: i64) -> String {
    let (whole, frac) = (milli / 1000, (milli % 1000).abs());
    match frac {
        0 => whole.to_string(),
        _ => format!("{whole}.{}", format!("{frac:03}").trim_end_matches('0')),
    }
}

/// Folds the database's rows into the report's sections. `clock` gives the limits the figures
/// are read against (the same service levels the dispatch clock enforces).
pub fn figures(rows: Rows, clock: &Clock) -> Figures {
    let mut f = Figures::default();
    // every trade has its row, 0 included
    let mut trades: BTreeMap<String, Trade> =
        Category::ALL.iter().map(|c| (c.as_str().to_owned(), Trade::empty(c.as_str()))).collect();
    fn trade_of<'a>(trades: &'a mut BTreeMap<String, Trade>, category: &str) -> &'a mut Trade {
        trades.entry(category.to_owned()).or_insert_with(|| Trade::empty(category))
    }
    let mut techs: BTreeMap<String, TechAcc> = BTreeMap::new();

    // volume
    let v = &mut f.volume;
    v.by_channel = Channel::ALL.iter().map(|c| (c.as_str().to_owned(), 0)).collect();
    for r in &rows.intake {
        v.total += r.tickets;
        if r.area == "public" {
            v.public += r.tickets;
        } else {
            v.in_home += r.tickets;
        }
        if r.paid {
            v.paid += r.tickets;
        } else {
            v.routine += r.tickets;
        }
        if r.urgency == Urgency::Emergency.as_str() {
            v.emergency += r.tickets;
        }
        if r.voided {
            v.voided += r.tickets;
        }
        *v.by_channel.entry(r.channel.clone()).or_insert(0) += r.tickets;
        trade_of(&mut trades, &r.category).created += r.tickets;
    }

    // on time
    let mut limits: BTreeMap<&'static str, (i64, i64)> = BTreeMap::new();
    for r in &rows.arrivals {
        let urgency = Urgency::parse(&r.urgency).unwrap_or(Urgency::Normal);
        let limit = ArrivalLimit::of(urgency, r.appointment);
        let on_time = if r.on_time { r.tickets } else { 0 };
        let entry = limits.entry(limit.as_str()).or_insert((0, 0));
        entry.0 += r.tickets;
        entry.1 += on_time;
        f.on_time.arrivals += r.tickets;
        f.on_time.on_time += on_time;
        if let Some(id) = &r.technician_id {
            let t = techs.entry(id.clone()).or_default();
            t.arrivals += r.tickets;
            t.on_time += on_time;
        }
    }
    f.on_time.rate = rate(f.on_time.on_time, f.on_time.arrivals);
    f.on_time.by_limit = ArrivalLimit::ALL
        .iter()
        .map(|limit| {
            let (arrivals, on_time) = limits.get(limit.as_str()).copied().unwrap_or((0, 0));
            LimitFigures {
                limit: *limit,
                limit_minutes: clock.arrival_after_claim(*limit).map(|d| d.num_minutes()),
                arrivals,
                on_time,
                rate: rate(on_time, arrivals),
            }
        })
        .collect();

    // completions: rework, callbacks, trades, technicians, the bill
    f.callbacks.satisfaction = satisfaction_counts();
    for r in &rows.completions {
        f.rework.completed += r.tickets;
        f.rework.rework += r.reworked;
        let c = &mut f.callbacks;
        c.completed += r.tickets;
        c.made += r.called;
        c.reached += r.reached;
        if let Some(s) = r.satisfaction.filter(|s| (1..=5).contains(s)) {
            *c.satisfaction.entry(s.to_string()).or_insert(0) += r.tickets;
        }
        let t = trade_of(&mut trades, &r.category);
        t.completed += r.tickets;
        t.material_cents += r.company_material_cents;
        t.resident_material_cents += r.resident_material_cents;
        if let Some(id) = &r.technician_id {
            let t = techs.entry(id.clone()).or_default();
            t.completed += r.tickets;
            t.rework += r.reworked;
            t.ratings += r.rated;
            t.rating_sum += r.rating_sum;
            t.material_cents += r.company_material_cents;
        }
        // the bill adds up: a group's bills are the bill of its summed quote and lines
        let accepted = r.accepted_covers.as_deref().and_then(Covers::parse).map(|c| (r.accepted_quote_cents, c));
        f.fees.billed_cents += bill::bill(accepted, r.company_material_cents).total_cents;
        f.fees.collected_cents += r.collected_cents;
    }
    f.rework.rate = rate(f.rework.rework, f.rework.completed);
    f.callbacks.rate = rate(f.callbacks.reached, f.callbacks.completed);

    // matters' callbacks
    let m = &mut f.callbacks.matters;
    m.satisfaction = satisfaction_counts();
    for r in &rows.matter_callbacks {
        m.replied += r.matters;
        m.made += r.called;
        m.reached += r.reached;
        if let Some(s) = r.satisfaction.filter(|s| (1..=5).contains(s)) {
            *m.satisfaction.entry(s.to_string()).or_insert(0) += r.matters;
        }
    }
    m.rate = rate(m.reached, m.replied);

    // medians
    for r in &rows.medians {
        let minutes = Some(round_minutes(r.minutes));
        match r.measure.as_str() {
            measure::ARRIVE => trade_of(&mut trades, &r.part).median_minutes_to_arrive = minutes,
            measure::COMPLETE => trade_of(&mut trades, &r.part).median_minutes_to_complete = minutes,
            measure::CALLBACK => f.callbacks.median_minutes_to_first = minutes,
            measure::MATTER_CALLBACK => f.callbacks.matters.median_minutes_to_first = minutes,
            _ => {}
        }
    }
    let order = |category: &str| Category::ALL.iter().position(|c| c.as_str() == category).unwrap_or(usize::MAX);
    let mut by_trade: Vec<Trade> = trades.into_values().collect();
    by_trade.sort_by(|a, b| order(&a.category).cmp(&order(&b.category)).then(a.category.cmp(&b.category)));
    f.by_trade = by_trade;

    // technicians
    let mut technicians: Vec<Technician> = techs
        .into_iter()
        .map(|(id, t)| Technician {
            name: rows.names.get(&id).cloned().unwrap_or_default(),
            technician_id: id,
            completed: t.completed,
            arrivals: t.arrivals,
            on_time: t.on_time,
            on_time_rate: rate(t.on_time, t.arrivals),
            rework: t.rework,
            ratings: t.ratings,
            average_rating: rate(t.rating_sum, t.ratings),
            material_cents: t.material_cents,
        })
        .collect();
    technicians.sort_by(|a, b| a.name.cmp(&b.name).then(a.technician_id.cmp(&b.technician_id)));
    f.technicians = technicians;

    // fees
    let q = rows.quotes;
    f.fees.quoted = q.quoted;
    f.fees.quoted_cents = q.quoted_cents;
    f.fees.accepted = q.accepted;
    f.fees.accepted_cents = q.accepted_cents;
    f.fees.declined = q.declined;
    f.fees.declined_cents = q.declined_cents;

    // materials: one entry per item and supplier, whichever sites' rows they came from
    // (name, spec, unit, supplier) -> (thousandths, cents)
    type Item = (String, Option<String>, String, String);
    let mut materials: BTreeMap<Item, (i64, i64)> = BTreeMap::new();
    for r in &rows.materials {
        let supplied_by = SuppliedBy::parse(&r.supplied_by).map_or(r.supplied_by.clone(), |s| s.as_str().to_owned());
        let entry = materials.entry((r.name.clone(), r.spec.clone(), r.unit.clone(), supplied_by)).or_insert((0, 0));
        entry.0 += r.quantity_milli;
        entry.1 += r.cost_cents;
    }
    f.materials = materials
        .into_iter()
        .map(|((name, spec, unit, supplied_by), (milli, cost_cents))| MaterialFigures {
            name,
            spec,
            unit,
            supplied_by,
            quantity: quantity_text(milli),
            cost_cents,
        })
        .collect();

    // voided
    let mut voided: Vec<VoidedTicket> = rows
        .voided
        .iter()
        .map(|r| VoidedTicket {
            number: r.number.clone(),
            created_at: r.created_at.and_utc(),
            cancelled_at: r.cancelled_at.and_utc(),
            reason: r.reason.clone(),
            category: r.category.clone(),
            location: r.location.clone(),
        })
        .collect();
    voided.sort_by(|a, b| a.cancelled_at.cmp(&b.cancelled_at).then(a.number.cmp(&b.number)));
    f.voided = voided;

    // matters
    let mut groups: BTreeMap<(usize, usize, String, String), MatterGroup> = BTreeMap::new();
    let kind_order = |k: &str| MatterKind::ALL.iter().position(|x| x.as_str() == k).unwrap_or(usize::MAX);
    let dept_order = |d: &str| Department::ALL.iter().position(|x| x.as_str() == d).unwrap_or(usize::MAX);
    for r in &rows.matters {
        let key = (kind_order(&r.kind), dept_order(&r.department), r.kind.clone(), r.department.clone());
        let g = groups.entry(key).or_insert_with(|| MatterGroup {
            kind: r.kind.clone(),
            department: r.department.clone(),
            count: 0,
            replied: 0,
            replied_in_time: 0,
            reply_rate: None,
            callbacks_made: 0,
            callbacks_reached: 0,
            callback_rate: None,
        });
        g.count += r.matters;
        g.replied += r.replied;
        g.replied_in_time += r.replied_in_time;
        g.callbacks_made += r.called;
        g.callbacks_reached += r.reached;
    }
    let mf = &mut f.matters;
    mf.reply_hours = clock.matter_reply.num_hours();
    for g in groups.values_mut() {
        g.reply_rate = rate(g.replied_in_time, g.count);
        g.callback_rate = rate(g.callbacks_reached, g.replied);
        mf.count += g.count;
        mf.replied += g.replied;
        mf.replied_in_time += g.replied_in_time;
        mf.callbacks_made += g.callbacks_made;
        mf.callbacks_reached += g.callbacks_reached;
    }
    mf.reply_rate = rate(mf.replied_in_time, mf.count);
    mf.callback_rate = rate(mf.callbacks_reached, mf.replied);
    mf.by_kind = groups.into_values().collect();
    f
}

/// One site's month in a report of several sites.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SiteReport {
    pub site_id: String,
    pub code: String,
    pub name: String,
    pub timezone: String,
    /// The month's first moment in the site's time zone, in UTC.
    pub from: DateTime<Utc>,
    /// The next month's first moment there, in UTC (not included).
    pub until: DateTime<Utc>,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The monthly report of one site, or the total of several.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Report {
    pub site_ids: Vec<String>,
    /// `YYYY-MM`.
    pub month: String,
    /// The sites' time zone, whose month is counted; sites in different zones: their names,
    /// comma-separated (each site's own month is counted).
    pub timezone: String,
    /// The month's bounds in UTC, when every site shares them; else `null` (see `sites`).
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub figures: Figures,
    /// With several sites, each one's own report; the figures above are then their total. Empty
    /// for one site.
    pub sites: Vec<SiteReport>,
}

// ---- the report as tables: the CSV files and the workbook's sheets ----

/// The language of the tables' headers and names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub const NAMES: &'static str = "en, zh";

    pub fn parse(raw: &str) -> Option<Lang> {
        match raw {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    fn pick(self, (en, zh): Label) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }
}

/// A text in English and in Chinese.
type Label = (&'static str, &'static str);

/// One cell of a table: what it holds decides how a CSV writes it and how a sheet formats it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Count(i64),
    /// Money in cents, shown in yuan.
    Cents(i64),
    /// A rate in [0, 1], shown as a percentage; empty when `None`.
    Rate(Option<f64>),
    /// Any other number (minutes, a mean rating, a quantity); empty when `None`.
    Number(Option<f64>),
}

impl Cell {
    /// The cell as text, as a CSV file and a page show it: money in yuan with two decimals, rates
    /// as percentages with one, `None` as nothing.
    pub fn display(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Cents(c) => format!("{}{}.{:02}", if *c < 0 { "-" } else { "" }, c.abs() / 100, c.abs() % 100),
            Cell::Rate(Some(r)) => format!("{:.1}%", r * 100.0),
            Cell::Number(Some(x)) => x.to_string(),
            Cell::Rate(None) | Cell::Number(None) => String::new(),
        }
    }
}

/// One section as a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// `volume`, `on_time`...: the JSON section it shows.
    pub key: &'static str,
    /// The sheet's (and the CSV file's) name in the chosen language.
    pub name: &'static str,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

struct Section {
    key: &'static str,
    name: Label,
    columns: &'static [Label],
    rows: fn(&Figures, Lang, Option<&str>) -> Vec<Vec<Cell>>,
}

const SITE: Label = ("site", "管理处");
const TOTAL: Label = ("total", "合计");

fn word(lang: Lang, value: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("water", "给排水"),
        ("electric", "电气"),
        ("gas", "燃气"),
        ("elevator", "电梯"),
        ("hvac", "暖通空调"),
        ("door_window", "门窗"),
        ("general", "综合维修"),
        ("other", "其他"),
        ("normal", "普通"),
        ("emergency", "紧急"),
        ("appointment", "预约"),
        ("total", "合计"),
        ("company", "公司提供"),
        ("resident", "业主自备"),
        ("tickets", "维修工单"),
        ("matters", "报事"),
        ("complaint", "投诉"),
        ("inquiry", "咨询"),
        ("suggestion", "建议"),
        ("praise", "表扬"),
        ("engineering", "工程部"),
        ("customer_service", "客服部"),
        ("security", "秩序部"),
        ("cleaning", "保洁部"),
        ("landscaping", "绿化部"),
    ];
    match lang {
        Lang::Zh => WORDS.iter().find(|(en, _)| *en == value).map_or(value, |(_, zh)| zh).to_owned(),
        Lang::En => value.to_owned(),
    }
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn count(n: i64) -> Cell {
    Cell::Count(n)
}

fn local_time(at: DateTime<Utc>, tz: Option<&str>) -> String {
    match tz.and_then(|tz| super::site::parse_timezone(tz).ok()) {
        Some(tz) => at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string(),
        None => at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

const SECTIONS: &[Section] = &[
    Section {
        key: "volume",
        name: ("volume", "工单量"),
        columns: &[
            ("total", "总数"),
            ("in_home", "户内"),
            ("public", "公共区域"),
            ("routine", "日常维修"),
            ("paid", "特约服务"),
            ("emergency", "紧急"),
            ("voided", "作废"),
            ("phone", "电话"),
            ("app", "应用"),
            ("wechat", "微信"),
            ("walk_in", "来访"),
            ("patrol", "巡检"),
        ],
        rows: |f, _, _| {
            let v = &f.volume;
            let mut row = vec![v.total, v.in_home, v.public, v.routine, v.paid, v.emergency, v.voided];
            row.extend(Channel::ALL.iter().map(|c| v.by_channel.get(c.as_str()).copied().unwrap_or(0)));
            vec![row.into_iter().map(count).collect()]
        },
    },
    Section {
        key: "on_time",
        name: ("on_time", "及时率"),
        columns: &[
            ("limit", "时限"),
            ("limit_minutes", "时限(分钟)"),
            ("arrivals", "到场数"),
            ("on_time", "及时数"),
            ("rate", "及时率"),
        ],
        rows: |f, lang, _| {
            let mut rows: Vec<Vec<Cell>> = f
                .on_time
                .by_limit
                .iter()
                .map(|l| {
                    vec![
                        text(word(lang, l.limit.as_str())),
                        Cell::Number(l.limit_minutes.map(|m| m as f64)),
                        count(l.arrivals),
                        count(l.on_time),
                        Cell::Rate(l.rate),
                    ]
                })
                .collect();
            let o = &f.on_time;
            rows.push(vec![
                text(word(lang, "total")),
                Cell::Number(None),
                count(o.arrivals),
                count(o.on_time),
                Cell::Rate(o.rate),
            ]);
            rows
        },
    },
    Section {
        key: "rework",
        name: ("rework", "返修率"),
        columns: &[("completed", "完成数"), ("rework", "返修数"), ("rate", "返修率")],
        rows: |f, _, _| vec![vec![count(f.rework.completed), count(f.rework.rework), Cell::Rate(f.rework.rate)]],
    },
    Section {
        key: "callbacks",
        name: ("callbacks", "回访"),
        columns: &[
            ("of", "类别"),
            ("due", "应回访"),
            ("made", "已回访"),
            ("reached", "回访成功"),
            ("rate", "回访率"),
            ("median_minutes_to_first", "首次回访用时中位数(分钟)"),
            ("satisfaction_1", "满意度1"),
            ("satisfaction_2", "满意度2"),
            ("satisfaction_3", "满意度3"),
            ("satisfaction_4", "满意度4"),
            ("satisfaction_5", "满意度5"),
        ],
        rows: |f, lang, _| {
            let c = &f.callbacks;
            let m = &c.matters;
            let row = |of: &str, due, made, reached, rate, median, sat: &BTreeMap<String, i64>| {
                let mut row = vec![text(word(lang, of)), count(due), count(made), count(reached), Cell::Rate(rate)];
                row.push(Cell::Number(median));
                row.extend((1..=5).map(|s| count(sat.get(&s.to_string()).copied().unwrap_or(0))));
                row
            };
            vec![
                row("tickets", c.completed, c.made, c.reached, c.rate, c.median_minutes_to_first, &c.satisfaction),
                row("matters", m.replied, m.made, m.reached, m.rate, m.median_minutes_to_first, &m.satisfaction),
            ]
        },
    },
    Section {
        key: "by_trade",
        name: ("by_trade", "分工种"),
        columns: &[
            ("category", "工种"),
            ("created", "报修数"),
            ("completed", "完成数"),
            ("material (CNY)", "材料费(元)"),
            ("resident material (CNY)", "业主自备材料(元)"),
            ("median_minutes_to_arrive", "到场用时中位数(分钟)"),
            ("median_minutes_to_complete", "维修用时中位数(分钟)"),
        ],
        rows: |f, lang, _| {
            f.by_trade
                .iter()
                .map(|t| {
                    vec![
                        text(word(lang, &t.category)),
                        count(t.created),
                        count(t.completed),
                        Cell::Cents(t.material_cents),
                        Cell::Cents(t.resident_material_cents),
                        Cell::Number(t.median_minutes_to_arrive),
                        Cell::Number(t.median_minutes_to_complete),
                    ]
                })
                .collect()
        },
    },
    Section {
        key: "technicians",
        name: ("technicians", "维修人员"),
        columns: &[
            ("technician_id", "人员编号"),
            ("name", "姓名"),
            ("completed", "完成数"),
            ("arrivals", "到场数"),
            ("on_time", "及时数"),
            ("on_time_rate", "及时率"),
            ("rework", "返修数"),
            ("ratings", "评价数"),
            ("average_rating", "平均评分"),
            ("material (CNY)", "材料费(元)"),
        ],
        rows: |f, _, _| {
            f.technicians
                .iter()
                .map(|t| {
                    vec![
                        text(t.technician_id.clone()),
                        text(t.name.clone()),
                        count(t.completed),
                        count(t.arrivals),
                        count(t.on_time),
                        Cell::Rate(t.on_time_rate),
                        count(t.rework),
                        count(t.ratings),
                        Cell::Number(t.average_rating),
                        Cell::Cents(t.material_cents),
                    ]
                })
                .collect()
        },
    },
    Section {
        key: "fees",
        name: ("fees", "费用"),
        columns: &[
            ("quoted", "报价笔数"),
            ("quoted (CNY)", "报价金额(元)"),
            ("accepted", "确认笔数"),
            ("accepted (CNY)", "确认金额(元)"),
            ("declined", "拒绝笔数"),
            ("declined (CNY)", "拒绝金额(元)"),
            ("billed (CNY)", "应收(元)"),
            ("collected (CNY)", "实收(元)"),
        ],
        rows: |f, _, _| {
            let x = &f.fees;
            vec![vec![
                count(x.quoted),
                Cell::Cents(x.quoted_cents),
                count(x.accepted),
                Cell::Cents(x.accepted_cents),
                count(x.declined),
                Cell::Cents(x.declined_cents),
                Cell::Cents(x.billed_cents),
                Cell::Cents(x.collected_cents),
            ]]
        },
    },
    Section {
        key: "materials",
        name: ("materials", "材料"),
        columns: &[
            ("name", "名称"),
            ("spec", "规格"),
            ("unit", "单位"),
            ("supplied_by", "提供方"),
            ("quantity", "数量"),
            ("cost (CNY)", "金额(元)"),
        ],
        rows: |f, lang, _| {
            f.materials
                .iter()
                .map(|m| {
                    vec![
                        text(m.name.clone()),
                        text(m.spec.clone().unwrap_or_default()),
                        text(m.unit.clone()),
                        text(word(lang, &m.supplied_by)),
                        Cell::Number(m.quantity.parse().ok()),
                        Cell::Cents(m.cost_cents),
                    ]
                })
                .collect()
        },
    },
    Section {
        key: "voided",
        name: ("voided", "作废工单"),
        columns: &[
            ("number", "单号"),
            ("created_at", "报修时间"),
            ("cancelled_at", "作废时间"),
            ("reason", "原因"),
            ("category", "工种"),
            ("location", "位置"),
        ],
        rows: |f, lang, tz| {
            f.voided
                .iter()
                .map(|v| {
                    vec![
                        text(v.number.clone()),
                        text(local_time(v.created_at, tz)),
                        text(local_time(v.cancelled_at, tz)),
                        text(v.reason.clone().unwrap_or_default()),
                        text(word(lang, &v.category)),
                        text(v.location.clone()),
                    ]
                })
                .collect()
        },
    },
    Section {
        key: "matters",
        name: ("matters", "报事"),
        columns: &[
            ("kind", "类型"),
            ("department", "部门"),
            ("count", "数量"),
            ("replied", "已答复"),
            ("replied_in_time", "按时答复"),
            ("reply_rate", "按时答复率"),
            ("callbacks_made", "已回访"),
            ("callbacks_reached", "回访成功"),
            ("callback_rate", "回访率"),
        ],
        rows: |f, lang, _| {
            let m = &f.matters;
            let mut rows: Vec<Vec<Cell>> = m
                .by_kind
                .iter()
                .map(|g| {
                    vec![
                        text(word(lang, &g.kind)),
                        text(word(lang, &g.department)),
                        count(g.count),
                        count(g.replied),
                        count(g.replied_in_time),
                        Cell::Rate(g.reply_rate),
                        count(g.callbacks_made),
                        count(g.callbacks_reached),
                        Cell::Rate(g.callback_rate),
                    ]
                })
                .collect();
            rows.push(vec![
                text(word(lang, "total")),
                text(""),
                count(m.count),
                count(m.replied),
                count(m.replied_in_time),
                Cell::Rate(m.reply_rate),
                count(m.callbacks_made),
                count(m.callbacks_reached),
                Cell::Rate(m.callback_rate),
            ]);
            rows
        },
    },
];

/// The report as one table per section, headers in `lang`. With several sites every table
/// starts with the site's code, each site's rows first and the total's after them (voided
/// tickets are listed once, under their site). Times are the site's local time.
pub fn tables(report: &Report, lang: Lang) -> Vec<Table> {
    let multi = !report.sites.is_empty();
    let parts: Vec<(String, &Figures, Option<&str>)> = if multi {
        let mut parts: Vec<_> =
            report.sites.iter().map(|s| (s.code.clone(), &s.figures, Some(s.timezone.as_str()))).collect();
        parts.push((lang.pick(TOTAL).to_owned(), &report.figures, None));
        parts
    } else {
        vec![(String::new(), &report.figures, Some(report.timezone.as_str()))]
    };
    SECTIONS
        .iter()
        .map(|section| {
            let mut headers: Vec<&'static str> = multi.then(|| lang.pick(SITE)).into_iter().collect();
            headers.extend(section.columns.iter().map(|c| lang.pick(*c)));
            let mut rows = Vec::new();
            for (site, figures, tz) in &parts {
                if multi && section.key == "voided" && tz.is_none() {
                    continue;
                }
                for row in (section.rows)(figures, lang, *tz) {
                    let mut cells: Vec<Cell> = multi.then(|| text(site.clone())).into_iter().collect();
                    cells.extend(row);
                    rows.push(cells);
                }
            }
            Table { key: section.key, name: lang.pick(section.name), headers, rows }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn months_parse_strictly() {
        assert_eq!(Month::parse("2026-11"), Ok(Month { year: 2026, month: 11 }));
        assert_eq!(Month::parse("2026-11").unwrap().to_string(), "2026-11");
        for bad in ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "2026-11-01", "", "９９９９-11", "0000-05"]
        {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        let pattern = regex::Regex::new(MONTH_PATTERN).unwrap();
        assert!(pattern.is_match("2026-12") && !pattern.is_match("2026-13"));
    }

    #[test]
    fn the_month_of_a_moment_is_the_sites_and_the_one_before_crosses_the_year() {
        let late = at("2026-11-30 17:00:00").and_utc();
        assert_eq!(Month::of(late, &Utc).to_string(), "2026-11");
        assert_eq!(Month::of(late, &chrono_tz::Asia::Shanghai).to_string(), "2026-12", "01:00 on 1 December there");
        assert_eq!(Month::parse("2026-01").unwrap().previous().to_string(), "2025-12");
        assert_eq!(Month::parse("2026-11").unwrap().previous().to_string(), "2026-10");
    }

    #[test]
    fn targets_are_met_at_100_percent_and_rework_at_most_1_percent() {
        let [on_time, rework, callbacks] = TARGETS;
        assert_eq!(on_time.met(rate(3, 3)), Some(true));
        assert_eq!(on_time.met(rate(2, 3)), Some(false));
        assert_eq!(callbacks.met(rate(0, 0)), None, "nothing was due");
        assert_eq!(rework.met(rate(1, 100)), Some(true));
        assert_eq!(rework.met(rate(2, 100)), Some(false));
        assert_eq!(rework.met(rate(0, 7)), Some(true));
    }

    #[test]
    fn a_month_is_the_sites_local_month() {
        let m = Month::parse("2026-10").unwrap();
        // Shanghai is UTC+8 all year: October starts on 30 September at 16:00 UTC
        assert_eq!(m.bounds(&chrono_tz::Asia::Shanghai), (at("2026-09-30 16:00:00"), at("2026-10-31 16:00:00")));
        // December ends in the next year
        let d = Month::parse("2026-12").unwrap();
        assert_eq!(d.bounds(&Utc), (at("2026-12-01 00:00:00"), at("2027-01-01 00:00:00")));
        // Berlin leaves summer time during October: the month is an hour longer
        let (from, until) = m.bounds(&chrono_tz::Europe::Berlin);
        assert_eq!((from, until), (at("2026-09-30 22:00:00"), at("2026-10-31 23:00:00")));
    }

    #[test]
    fn a_month_starting_in_a_skipped_midnight_starts_at_the_first_real_time() {
        // Santiago moves its clocks from 00:00 to 01:00 on the first Sunday of September
        let (from, _) = Month::parse("2024-09").unwrap().bounds(&chrono_tz::America::Santiago);
        assert_eq!(from, at("2024-09-01 04:00:00"));
    }

    #[test]
    fn rates_are_null_without_a_denominator() {
        assert_eq!(rate(1, 4), Some(0.25));
        assert_eq!(rate(0, 3), Some(0.0));
        assert_eq!(rate(0, 0), None);
    }

    #[test]
    fn medians_take_the_middle() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5.0]), Some(5.0));
        assert_eq!(median(&[1.0, 2.0, 10.0]), Some(2.0));
        assert_eq!(median(&[1.0, 2.0, 4.0, 10.0]), Some(3.0));
        assert_eq!(round_minutes(12.349_999), 12.3);
        assert_eq!(quantity_text(1500), "1.5");
        assert_eq!(quantity_text(2000), "2");
        assert_eq!(quantity_text(250), "0.25");
    }

    fn sample() -> Rows {
        let completion = |tech: &str, covers: Option<&str>, satisfaction, tickets, called, reached| CompletionRow {
            category: "water".into(),
            technician_id: Some(tech.into()),
            accepted_covers: covers.map(Into::into),
            satisfaction,
            tickets,
            called,
            reached,
            ..Default::default()
        };
        Rows {
            intake: vec![
                IntakeRow {
                    category: "water".into(),
                    area: "in_home".into(),
                    paid: false,
                    urgency: "normal".into(),
                    channel: "phone".into(),
                    voided: false,
                    tickets: 3,
                },
                IntakeRow {
                    category: "electric".into(),
                    area: "public".into(),
                    paid: true,
                    urgency: "emergency".into(),
                    channel: "patrol".into(),
                    voided: true,
                    tickets: 1,
                },
            ],
            arrivals: vec![
                ArrivalRow {
                    category: "water".into(),
                    technician_id: Some("t1".into()),
                    urgency: "normal".into(),
                    appointment: false,
                    on_time: true,
                    tickets: 2,
                },
                ArrivalRow {
                    category: "water".into(),
                    technician_id: Some("t1".into()),
                    urgency: "emergency".into(),
                    appointment: true,
                    on_time: false,
                    tickets: 1,
                },
            ],
            completions: vec![
                CompletionRow {
                    reworked: 1,
                    rated: 1,
                    rating_sum: 4,
                    company_material_cents: 2500,
                    accepted_quote_cents: 8000,
                    ..completion("t1", Some("labour"), Some(5), 1, 1, 1)
                },
                CompletionRow {
                    company_material_cents: 1000,
                    accepted_quote_cents: 5000,
                    collected_cents: 5000,
                    ..completion("t1", Some("all"), None, 1, 1, 0)
                },
                CompletionRow { resident_material_cents: 700, ..completion("t1", None, None, 1, 0, 0) },
            ],
            medians: vec![MedianRow { measure: measure::ARRIVE.into(), part: "water".into(), minutes: 12.04 }],
            names: [("t1".to_owned(), "师傅甲".to_owned())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn rows_fold_into_the_sections() {
        let f = figures(sample(), &Clock::default());
        assert_eq!((f.volume.total, f.volume.in_home, f.volume.public), (4, 3, 1));
        assert_eq!((f.volume.routine, f.volume.paid, f.volume.emergency, f.volume.voided), (3, 1, 1, 1));
        assert_eq!(f.volume.by_channel["phone"], 3);
        assert_eq!(f.volume.by_channel["app"], 0);
        // an emergency with an appointment is held to the appointment
        assert_eq!((f.on_time.arrivals, f.on_time.on_time), (3, 2));
        let appointment = f.on_time.by_limit.iter().find(|l| l.limit == ArrivalLimit::Appointment).unwrap();
        assert_eq!((appointment.arrivals, appointment.on_time, appointment.rate), (1, 0, Some(0.0)));
        let emergency = f.on_time.by_limit.iter().find(|l| l.limit == ArrivalLimit::Emergency).unwrap();
        assert_eq!((emergency.arrivals, emergency.rate, emergency.limit_minutes), (0, None, Some(10)));
        assert_eq!((f.rework.completed, f.rework.rework), (3, 1));
        assert_eq!((f.callbacks.made, f.callbacks.reached), (2, 1));
        assert_eq!(f.callbacks.satisfaction["5"], 1);
        assert_eq!(f.callbacks.matters.rate, None);
        // labour quote: 80 + 25; all: 50 (its line inside); no quote: the company lines (none)
        assert_eq!((f.fees.billed_cents, f.fees.collected_cents), (8000 + 2500 + 5000, 5000));
        let water = &f.by_trade[0];
        assert_eq!((water.category.as_str(), water.created, water.completed), ("water", 3, 3));
        assert_eq!((water.material_cents, water.resident_material_cents), (3500, 700));
        assert_eq!(water.median_minutes_to_arrive, Some(12.0));
        assert_eq!(f.by_trade.len(), Category::ALL.len());
        let t = &f.technicians[0];
        assert_eq!((t.name.as_str(), t.completed, t.arrivals, t.on_time, t.rework), ("师傅甲", 3, 3, 2, 1));
        assert_eq!((t.average_rating, t.on_time_rate), (Some(4.0), Some(2.0 / 3.0)));
        assert_eq!(f.matters.reply_hours, 24);
    }

    #[test]
    fn tables_in_chinese_name_their_sheets_and_headers() {
        let f = figures(sample(), &Clock::default());
        let report = Report {
            site_ids: vec!["s".into()],
            month: "2026-10".into(),
            timezone: "Asia/Shanghai".into(),
            from: None,
            until: None,
            figures: f,
            sites: vec![],
        };
        let zh = tables(&report, Lang::Zh);
        assert_eq!(zh.len(), SECTIONS.len());
        assert_eq!((zh[0].name, zh[0].headers[0]), ("工单量", "总数"));
        assert_eq!(zh[0].rows[0][0], Cell::Count(4));
        let on_time = zh.iter().find(|t| t.key == "on_time").unwrap();
        assert_eq!(on_time.rows.last().unwrap()[0], Cell::Text("合计".into()));
        assert_eq!(on_time.rows.last().unwrap()[4], Cell::Rate(Some(2.0 / 3.0)));
        let en = tables(&report, Lang::En);
        assert_eq!(
            en.iter().map(|t| t.headers.len()).collect::<Vec<_>>(),
            zh.iter().map(|t| t.headers.len()).collect::<Vec<_>>()
        );
        for t in &en {
            assert!(t.rows.iter().all(|r| r.len() == t.headers.len()), "{}", t.key);
        }
    }
}
