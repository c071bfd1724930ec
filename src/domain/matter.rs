//! Matters that are not repairs (报事): complaints, inquiries, suggestions and praise. The desk
//! registers one, the supervisors of its department at the site reply (报事工单的流转), and the
//! desk calls the reporter back; reaching them closes it.

use chrono::{Duration, NaiveDateTime};
use serde::Deserialize;
use utoipa::ToSchema;

use super::phone::parse_phone;
use super::ticket::{
    choice, string_enum, text, Channel, MAX_DESCRIPTION, MAX_LOCATION, MAX_REPORTER_NAME, MAX_SITE_ID,
};
use super::user::Role;
use crate::error::FieldError;

string_enum!(
    /// 投诉, 咨询, 建议, 表扬.
    MatterKind { Complaint => "complaint", Inquiry => "inquiry", Suggestion => "suggestion", Praise => "praise" }
);
string_enum!(
    /// The department a matter goes to; supervisors answer the matters of their `departments`.
    Department {
        Engineering => "engineering",
        CustomerService => "customer_service",
        Security => "security",
        Cleaning => "cleaning",
        Landscaping => "landscaping",
        Other => "other",
    }
);
string_enum!(
    /// `open` (waiting for the department's reply) → `replied` (waiting for the callback) →
    /// `closed` (the reporter was reached).
    MatterStatus { Open => "open", Replied => "replied", Closed => "closed" }
);

/// The kind of escalation of a matter left without its department's reply past the service level.
pub const UNREPLIED: &str = "unreplied";

/// The longest reply of a department, in characters (trimmed).
pub const MAX_REPLY: usize = 2000;
/// What the matters' numbers carry between the site's code and the day (报事), so they never
/// read like a ticket's.
pub const NUMBER_SERIES: &str = "BS";

/// `{SITE_CODE}-BS-{YYYYMMDD}-{NNNN}`: consecutive per site and local day, a series apart from
/// the tickets'.
pub fn matter_number(site_code: &str, local_day: &str, n: i64) -> String {
    format!("{site_code}-{NUMBER_SERIES}-{local_day}-{n:04}")
}

/// The key of the matters' counter for a day, beside the tickets' (which is the bare day).
pub fn counter_key(local_day: &str) -> String {
    format!("{NUMBER_SERIES}-{local_day}")
}

/// The intake form of a matter, as sent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct MatterForm {
    #[schema(value_type = String, min_length = 1, max_length = 64, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub site_id: Option<String>,
    #[schema(value_type = MatterKind)]
    pub kind: Option<String>,
    #[schema(value_type = Department)]
    pub department: Option<String>,
    #[schema(value_type = String, min_length = 1, max_length = 2000, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub description: Option<String>,
    #[schema(value_type = String, min_length = 1, max_length = 100, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub reporter_name: Option<String>,
    /// Mainland mobile or E.164; blank is the same as left out.
    #[schema(
        pattern = r"^(?:(?:\+86)?1[3-9][0-9]{9}|\+(?:[1-79][0-9]{7,14}|8[0-57-9][0-9]{6,13}|86[02-9][0-9]{5,12}))$"
    )]
    pub reporter_phone: Option<String>,
    /// Where it happened, if anywhere in particular.
    #[schema(max_length = 200)]
    pub location: Option<String>,
    #[schema(value_type = Channel)]
    pub channel: Option<String>,
}

/// A matter's intake that passed every check.
#[derive(Debug, Clone)]
pub struct NewMatter {
    pub site_id: String,
    pub kind: MatterKind,
    pub department: Department,
    pub description: String,
    pub reporter_name: String,
    pub reporter_phone: Option<String>,
    pub location: Option<String>,
    pub channel: Channel,
}

impl MatterForm {
    /// Every field's problem at once, or the matter to register.
    pub fn validate(&self) -> Result<NewMatter, Vec<FieldError>> {
        let mut errors = Vec::new();
        let site_id = text(&mut errors, "site_id", self.site_id.as_ref(), MAX_SITE_ID);
        let kind = choice(&mut errors, "kind", self.kind.as_ref(), MatterKind::parse, MatterKind::names());
        let department =
            choice(&mut errors, "department", self.department.as_ref(), Department::parse, Department::names());
        let description = text(&mut errors, "description", self.description.as_ref(), MAX_DESCRIPTION);
        let reporter_name = text(&mut errors, "reporter_name", self.reporter_name.as_ref(), MAX_REPORTER_NAME);
        let channel = choice(&mut errors, "channel", self.channel.as_ref(), Channel::parse, Channel::names());
        let reporter_phone = match self.reporter_phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => parse_phone(p).map_err(|m| errors.push(FieldError::new("reporter_phone", m))).ok(),
            None => None,
        };
        let location = match self.location.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            Some(l) if l.chars().count() > MAX_LOCATION => {
                errors.push(FieldError::new("location", format!("must be at most {MAX_LOCATION} characters")));
                None
            }
            l => l.map(str::to_owned),
        };
        match (site_id, kind, department, description, reporter_name, channel) {
            (Some(site_id), Some(kind), Some(department), Some(description), Some(reporter_name), Some(channel))
                if errors.is_empty() =>
            {
                Ok(NewMatter {
                    site_id,
                    kind,
                    department,
                    description,
                    reporter_name,
                    reporter_phone,
                    location,
                    channel,
                })
            }
            _ => Err(errors),
        }
    }
}

/// Who answers a matter: an admin, or a supervisor of its site whose departments include its
/// department. Dispatchers register matters and call back but do not answer for a department
/// (the seeds: the desk sends the matter to the department's supervisor, who handles it).
pub fn may_reply(role: Role, departments: &[String], is_site_member: bool, department: Department) -> bool {
    match role {
        Role::Admin => true,
        Role::Supervisor => is_site_member && departments.iter().any(|d| d == department.as_str()),
        Role::Dispatcher | Role::Technician => false,
    }
}

/// When a matter still waiting for its reply escalates: `reply_within` after it was registered.
pub fn reply_due(created_at: NaiveDateTime, reply_within: Duration) -> NaiveDateTime {
    created_at + reply_within
}

/// Parses a user's departments: each known one once, in the order given; the unknown ones named.
pub fn parse_departments(raw: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for d in raw {
        match Department::parse(d.trim()) {
            Some(d) if !out.iter().any(|x| x == d.as_str()) => out.push(d.as_str().to_owned()),
            Some(_) => {}
            None => return Err(format!("{d:?} is not one of {}", Department::names())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> MatterForm {
        MatterForm {
            site_id: Some("s".into()),
            kind: Some("complaint".into()),
            department: Some("cleaning".into()),
            description: Some("楼道垃圾未清".into()),
            reporter_name: Some("李先生".into()),
            reporter_phone: None,
            location: Some("  ".into()),
            channel: Some("phone".into()),
        }
    }

    #[test]
    fn a_matter_needs_no_phone_and_a_blank_location_is_none() {
        let m = form().validate().unwrap();
        assert_eq!((m.kind, m.department, m.location), (MatterKind::Complaint, Department::Cleaning, None));
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad =
            MatterForm { kind: Some("rant".into()), department: None, reporter_phone: Some("123".into()), ..form() };
        let fields: Vec<String> = bad.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["kind", "department", "reporter_phone"]);
    }

    #[test]
    fn matter_numbers_are_their_own_series() {
        assert_eq!(matter_number("GY", "20261203", 7), "GY-BS-20261203-0007");
        assert_eq!(counter_key("20261203"), "BS-20261203");
    }

    #[test]
    fn only_the_departments_supervisors_and_admins_reply() {
        let cleaning = vec!["cleaning".to_owned()];
        assert!(may_reply(Role::Supervisor, &cleaning, true, Department::Cleaning));
        assert!(!may_reply(Role::Supervisor, &cleaning, true, Department::Security));
        assert!(!may_reply(Role::Supervisor, &cleaning, false, Department::Cleaning));
        assert!(!may_reply(Role::Dispatcher, &cleaning, true, Department::Cleaning));
        assert!(may_reply(Role::Admin, &[], false, Department::Other));
    }

    #[test]
    fn departments_are_checked_and_deduplicated() {
        assert_eq!(parse_departments(&["cleaning".into(), "cleaning".into()]).unwrap(), ["cleaning"]);
        assert!(parse_departments(&["plumbing".into()]).is_err());
    }
}
