//! Material lines: quantities as decimals, money in integer cents.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppliedBy {
    Company,
    /// 业主自备: marked so on the ticket and never billed.
    Resident,
}

impl SuppliedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppliedBy::Company => "company",
            SuppliedBy::Resident => "resident",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "company" => Some(SuppliedBy::Company),
            "resident" => Some(SuppliedBy::Resident),
            _ => None,
        }
    }
}

/// The most money a material line's price, a catalogue price, a quote or a collected fee may
/// carry, in cents (1,000,000 yuan).
pub const MAX_CENTS: i64 = 100_000_000;

/// The longest name of a material (a line's or a catalogue item's), in characters.
pub const MAX_NAME: usize = 100;
/// The longest spec or model of a material, in characters.
pub const MAX_SPEC: usize = 100;
/// The longest unit of a material (`m`, `个`), in characters.
pub const MAX_UNIT: usize = 20;

/// The largest quantity, in thousandths (100000).
pub const MAX_QUANTITY_MILLI: i64 = 100_000_000;

/// The quantities [`parse_quantity`] takes, as the schema states them: more than 0, at most
/// 100000, at most 3 decimals, written without leading zeros (the server also takes those, and
/// spaces around). Every normalised quantity matches.
pub const QUANTITY_PATTERN: &str =
    r"^(?:[1-9][0-9]{0,4}(?:\.[0-9]{1,3})?|0\.(?:[1-9][0-9]{0,2}|0[1-9][0-9]?|00[1-9])|100000(?:\.0{1,3})?)$";

/// Parses a quantity such as `"1.5"`: positive, at most 3 decimals, at most 100000.
/// Returns the normalised text and the quantity in thousandths.
pub fn parse_quantity(raw: &str) -> Result<(String, i64), String> {
    const MSG: &str = "must be a positive decimal such as \"1\" or \"1.5\" with at most 3 decimals";
    let raw = raw.trim();
    let (whole, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if whole.is_empty()
        || whole.len() > 6
        || frac.len() > 3
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || (raw.contains('.') && frac.is_empty())
    {
        return Err(MSG.into());
    }
    let whole: i64 = whole.parse().map_err(|_| MSG.to_owned())?;
    let frac_milli: i64 = format!("{frac:0<3}").parse().map_err(|_| MSG.to_owned())?;
    let milli = whole * 1000 + frac_milli;
    if milli <= 0 || milli > MAX_QUANTITY_MILLI {
        return Err("must be more than 0 and at most 100000".into());
    }
    let text = if frac_milli == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", format!("{frac_milli:03}").trim_end_matches('0'))
    };
    Ok((text, milli))
}

/// A line's amount in cents, rounded half up.
pub fn line_total_cents(quantity_milli: i64, unit_price_cents: i64) -> i64 {
    (quantity_milli * unit_price_cents + 500) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1.5").unwrap(), ("1.5".into(), 1500));
        assert_eq!(parse_quantity("2").unwrap(), ("2".into(), 2000));
        assert_eq!(parse_quantity("0.250").unwrap(), ("0.25".into(), 250));
        for bad in ["", "0", "-1", "1.", ".5", "1.2345", "abc", "1e3", "1,5", "9999999"] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn totals_round_half_up() {
        assert_eq!(line_total_cents(1500, 1999), 2999);
        assert_eq!(line_total_cents(333, 100), 33);
        assert_eq!(line_total_cents(1000, 0), 0);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::unanchored;

    proptest! {
        /// Whatever the schema's pattern allows, the server takes, and writes the same way.
        #[test]
        fn what_the_pattern_allows_parses(raw in proptest::string::string_regex(&unanchored(QUANTITY_PATTERN)).unwrap()) {
            let (text, milli) = parse_quantity(&raw).unwrap();
            prop_assert!(milli > 0);
            prop_assert_eq!(text.parse::<f64>().unwrap(), raw.parse::<f64>().unwrap());
        }

        /// What parses is written in a form the pattern allows.
        #[test]
        fn what_parses_matches_the_pattern(raw in "[0-9]{1,6}(\\.[0-9]{1,3})?") {
            if let Ok((text, _)) = parse_quantity(&raw) {
                prop_assert!(regex::Regex::new(QUANTITY_PATTERN).unwrap().is_match(&text), "{}", text);
            }
        }

        /// A quantity that parses is positive, and its normal text parses to the same amount.
        #[test]
        fn parsed_quantities_round_trip(raw in "[0-9.,+e -]{0,12}") {
            if let Ok((text, milli)) = parse_quantity(&raw) {
                prop_assert!(milli > 0);
                prop_assert_eq!(parse_quantity(&text).unwrap(), (text.clone(), milli));
            }
        }
    }
}
