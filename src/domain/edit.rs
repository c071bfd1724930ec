//! What the desk may correct of a ticket after intake, and what each correction sets off
//! (`commands::desk::edit` carries the consequences out).

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::category::Category;
use super::phone::parse_phone;
use super::ticket::{
    Area, Urgency, APPOINTMENT_GRACE_MINUTES, APPOINTMENT_MAX_DAYS, MAX_DESCRIPTION, MAX_LOCATION, MAX_REASON,
    MAX_REPORTER_NAME,
};
use crate::error::FieldError;

/// The intake fields a ticket has now: what an edit starts from and yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Intake {
    pub area: Area,
    pub location: String,
    pub reporter_name: String,
    pub reporter_phone: Option<String>,
    pub category: Category,
    pub urgency: Urgency,
    pub paid: bool,
    pub appointment_at: Option<NaiveDateTime>,
    pub description: String,
    pub resident_supplies_parts: bool,
}

/// `PATCH /tickets/{id}`: the ticket's `version` and any intake field to change. A field left
/// out stays; `appointment_at: null` removes the appointment, `reporter_phone: null` (or blank)
/// the phone of a public-area ticket.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct TicketEdit {
    /// The version the desk saw: a ticket changed since is not edited (409 `version_conflict`).
    pub version: i64,
    /// Why, when given (kept in the event).
    #[schema(min_length = 1, max_length = 500, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub reason: Option<String>,
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub location: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub reporter_name: Option<String>,
    /// Mainland mobile or E.164; an in-home ticket keeps one (its resident's code goes to it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub reporter_phone: Option<Option<String>>,
    #[schema(value_type = Option<Category>)]
    pub category: Option<String>,
    #[schema(value_type = Option<Urgency>)]
    pub urgency: Option<String>,
    pub paid: Option<bool>,
    /// From 5 minutes ago to 90 days ahead; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub appointment_at: Option<Option<DateTime<Utc>>>,
    #[schema(min_length = 1, max_length = 2000, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub description: Option<String>,
    pub resident_supplies_parts: Option<bool>,
}

/// A member that may be `null`: `Some(None)` when it is, `None` (by `default`) when it is absent.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(de: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(de).map(Some)
}

fn text(errors: &mut Vec<FieldError>, field: &str, value: &Option<String>, max: usize, now: &str) -> String {
    match value.as_deref().map(str::trim) {
        None => now.to_owned(),
        Some("") => {
            errors.push(FieldError::new(field, "must not be blank"));
            now.to_owned()
        }
        Some(v) if v.chars().count() > max => {
            errors.push(FieldError::new(field, format!("must be at most {max} characters")));
            now.to_owned()
        }
        Some(v) => v.to_owned(),
    }
}

impl TicketEdit {
    /// The intake after this edit, or every field it is refused for. `now` bounds a new
    /// appointment time (an appointment left as it is may lie in the past).
    pub fn apply(&self, current: &Intake, now: DateTime<Utc>) -> Result<Intake, Vec<FieldError>> {
        let mut errors = Vec::new();
        let location = text(&mut errors, "location", &self.location, MAX_LOCATION, &current.location);
        let reporter_name =
            text(&mut errors, "reporter_name", &self.reporter_name, MAX_REPORTER_NAME, &current.reporter_name);
        let description = text(&mut errors, "description", &self.description, MAX_DESCRIPTION, &current.description);
        let reporter_phone = match &self.reporter_phone {
            None => current.reporter_phone.clone(),
            Some(raw) => match raw.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
                Some(p) => parse_phone(p).map_err(|m| errors.push(FieldError::new("reporter_phone", m))).ok(),
                None if current.area == Area::InHome => {
                    errors.push(FieldError::new(
                        "reporter_phone",
                        "is required for in-home tickets: the resident's code goes to it",
                    ));
                    None
                }
                None => None,
            },
        };
        let category = match &self.category {
            None => current.category,
            Some(c) => Category::parse(c).unwrap_or_else(|| {
                errors.push(FieldError::new("category", format!("must be one of {}", Category::names())));
                current.category
            }),
        };
        let urgency = match &self.urgency {
            None => current.urgency,
            Some(u) => Urgency::parse(u).unwrap_or_else(|| {
                errors.push(FieldError::new("urgency", format!("must be one of {}", Urgency::names())));
                current.urgency
            }),
        };
        let appointment_at = match self.appointment_at {
            None => current.appointment_at,
            Some(None) => None,
            Some(Some(at)) if current.appointment_at == Some(at.naive_utc()) => Some(at.naive_utc()),
            Some(Some(at)) => {
                if at < now - Duration::minutes(APPOINTMENT_GRACE_MINUTES) {
                    errors.push(FieldError::new("appointment_at", "must not be in the past"));
                } else if at > now + Duration::days(APPOINTMENT_MAX_DAYS) {
                    errors
                        .push(FieldError::new("appointment_at", format!("must be within {APPOINTMENT_MAX_DAYS} days")));
                }
                Some(at.naive_utc())
            }
        };
        if let Some(reason) = &self.reason {
            let r = reason.trim();
            if r.is_empty() || r.chars().count() > MAX_REASON {
                errors.push(FieldError::new("reason", format!("must be 1 to {MAX_REASON} characters")));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Intake {
            area: current.area,
            location,
            reporter_name,
            reporter_phone,
            category,
            urgency,
            paid: self.paid.unwrap_or(current.paid),
            appointment_at,
            description,
            resident_supplies_parts: self.resident_supplies_parts.unwrap_or(current.resident_supplies_parts),
        })
    }
}

/// What an edit changed, and what each change sets off.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes {
    /// `{field: {from, to}}` for every field that changed (the `edited` event's `changes`).
    pub fields: Map<String, Value>,
    /// A new number to text: the resident's code goes to it (the old one stops working).
    pub new_phone: bool,
    /// Another trade: the ticket leaves the old trade's pool for the new one's.
    pub new_trade: bool,
    /// A new appointment time: the arrival clock starts again, and the resident is told.
    pub new_appointment: bool,
    /// Now an emergency: the emergency arrival limit counts from the edit.
    pub now_emergency: bool,
}

impl Changes {
    pub fn between(before: &Intake, after: &Intake) -> Self {
        let mut fields = Map::new();
        let mut note = |field: &str, from: Value, to: Value| {
            if from != to {
                fields.insert(field.to_owned(), json!({ "from": from, "to": to }));
            }
        };
        note("location", json!(before.location), json!(after.location));
        note("reporter_name", json!(before.reporter_name), json!(after.reporter_name));
        note("reporter_phone", json!(before.reporter_phone), json!(after.reporter_phone));
        note("category", json!(before.category.as_str()), json!(after.category.as_str()));
        note("urgency", json!(before.urgency.as_str()), json!(after.urgency.as_str()));
        note("paid", json!(before.paid), json!(after.paid));
        let time = |t: Option<NaiveDateTime>| json!(t.map(|t| t.and_utc()));
        note("appointment_at", time(before.appointment_at), time(after.appointment_at));
        note("description", json!(before.description), json!(after.description));
        note("resident_supplies_parts", json!(before.resident_supplies_parts), json!(after.resident_supplies_parts));
        Self {
            fields,
            new_phone: after.reporter_phone.is_some() && after.reporter_phone != before.reporter_phone,
            new_trade: after.category != before.category,
            new_appointment: after.appointment_at.is_some() && after.appointment_at != before.appointment_at,
            now_emergency: after.urgency == Urgency::Emergency && before.urgency != Urgency::Emergency,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn intake() -> Intake {
        Intake {
            area: Area::InHome,
            location: "3栋2单元1502".into(),
            reporter_name: "王女士".into(),
            reporter_phone: Some("13812345678".into()),
            category: Category::parse("water").unwrap(),
            urgency: Urgency::Normal,
            paid: false,
            appointment_at: None,
            description: "厨房漏水".into(),
            resident_supplies_parts: false,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 8, 0, 0).unwrap()
    }

    #[test]
    fn an_edit_changes_what_it_names_and_says_what_follows() {
        let edit = TicketEdit {
            version: 1,
            reporter_phone: Some(Some("139 1234 5678".into())),
            urgency: Some("emergency".into()),
            appointment_at: Some(Some(now() + Duration::hours(2))),
            ..Default::default()
        };
        let after = edit.apply(&intake(), now()).unwrap();
        assert_eq!(after.reporter_phone.as_deref(), Some("+8613912345678"));
        assert_eq!(after.location, intake().location, "left out: kept");
        let changes = Changes::between(&intake(), &after);
        assert_eq!(changes.fields.keys().collect::<Vec<_>>(), ["appointment_at", "reporter_phone", "urgency"]);
        assert_eq!(changes.fields["urgency"], json!({ "from": "normal", "to": "emergency" }));
        assert!(changes.new_phone && changes.new_appointment && changes.now_emergency && !changes.new_trade);
    }

    #[test]
    fn an_edit_is_refused_for_every_bad_field_at_once() {
        let edit = TicketEdit {
            location: Some("  ".into()),
            reporter_phone: Some(None),
            category: Some("wizardry".into()),
            appointment_at: Some(Some(now() - Duration::days(1))),
            reason: Some(String::new()),
            ..Default::default()
        };
        let fields: Vec<String> = edit.apply(&intake(), now()).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["location", "reporter_phone", "category", "appointment_at", "reason"]);
    }

    #[test]
    fn the_same_values_again_change_nothing() {
        let same = TicketEdit {
            location: Some(" 3栋2单元1502 ".into()),
            paid: Some(false),
            appointment_at: Some(None),
            ..Default::default()
        };
        assert!(Changes::between(&intake(), &same.apply(&intake(), now()).unwrap()).is_empty());
    }
}
