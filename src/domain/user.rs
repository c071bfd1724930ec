use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Dispatcher,
    Supervisor,
    Technician,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Dispatcher, Role::Supervisor, Role::Technician];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Dispatcher => "dispatcher",
            Role::Supervisor => "supervisor",
            Role::Technician => "technician",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The desk: those who register, watch and reassign tickets.
    pub fn is_desk(self) -> bool {
        matches!(self, Role::Dispatcher | Role::Supervisor | Role::Admin)
    }
}

/// How long a login name is, in characters.
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=64;
/// Login names as the schema states them (the server also trims spaces around them).
pub const USERNAME_PATTERN: &str = r"^[A-Za-z0-9._-]{3,64}$";
/// The longest name shown on tickets, in characters.
pub const MAX_DISPLAY_NAME: usize = 100;

/// A login name: 3 to 64 of `a-z 0-9 . _ -`, stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim().to_lowercase();
        if !USERNAME_LEN.contains(&name.len()) {
            return Err("must be 3 to 64 characters".into());
        }
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)) {
            return Err("may hold only letters, digits, '.', '_' and '-'".into());
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's name as shown on tickets: 1 to 100 characters, trimmed.
pub fn parse_display_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    match name.chars().count() {
        0 => Err("must not be empty".into()),
        1..=MAX_DISPLAY_NAME => Ok(name.to_owned()),
        _ => Err("must be at most 100 characters".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(Username::parse(" Li.Wei ").unwrap().as_str(), "li.wei");
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("李伟").is_err());
        assert!(Username::parse("a b c").is_err());
    }

    #[test]
    fn what_the_username_pattern_allows_parses() {
        let pattern = regex::Regex::new(USERNAME_PATTERN).unwrap();
        for name in ["abc", "Li.Wei", "tech_1-a", &"x".repeat(64)] {
            assert!(pattern.is_match(name) && Username::parse(name).is_ok(), "{name}");
        }
        for name in ["ab", "li wei", "李伟", &"x".repeat(65)] {
            assert!(!pattern.is_match(name) && Username::parse(name).is_err(), "{name}");
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
