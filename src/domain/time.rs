//! Times sent from outside. chrono takes years from -262143 to 262142, PostgreSQL's `timestamp`
//! only 4713 BC to 294276 AD, and SQLite keeps text that sorts right only for four-digit years:
//! every time a caller sends is kept within years 1 to 9999.

use std::ops::RangeInclusive;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Deserializer};

pub const YEARS: RangeInclusive<i32> = 1..=9999;

/// The time, or why it is refused.
pub fn check(at: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if YEARS.contains(&at.year()) {
        Ok(at)
    } else {
        Err(format!("must be a time between the years {} and {} (UTC)", YEARS.start(), YEARS.end()))
    }
}

/// `#[serde(default, deserialize_with = "crate::domain::time::optional")]` on an optional time.
pub fn optional<'de, D: Deserializer<'de>>(de: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<DateTime<Utc>>::deserialize(de)?.map(check).transpose().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_1_to_9999_pass() {
        for text in ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-30T08:00:00+08:00"] {
            assert!(check(text.parse().unwrap()).is_ok(), "{text}");
        }
        for text in ["+200000-01-01T00:00:00Z", "-5000-01-01T00:00:00Z", "0000-12-31T23:59:59Z"] {
            assert!(check(text.parse().unwrap()).is_err(), "{text}");
        }
    }
}
