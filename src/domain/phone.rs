//! Phone numbers: mainland mobiles (`1[3-9]` and 9 more digits, `+86` optional) and E.164,
//! stored normalised as E.164 (`+8613812345678`).

/// The numbers as the schema states them: a mainland mobile, `+86` optional, or another E.164
/// number (8 to 15 digits after `+`, no leading 0; a `+861` number is a mainland mobile). The
/// server also takes them written with spaces, dashes, dots and parentheses; every normalised
/// number matches.
pub const PATTERN: &str =
    r"^(?:(?:\+86)?1[3-9][0-9]{9}|\+(?:[1-79][0-9]{7,14}|8[0-57-9][0-9]{6,13}|86[02-9][0-9]{5,12}))$";

/// Parses and normalises; spaces, dashes and parentheses are ignored.
pub fn parse_phone(raw: &str) -> Result<String, String> {
    let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.')).collect();
    let (plus, digits) = match compact.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, compact.as_str()),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err("must be a mainland mobile (13812345678) or an E.164 number (+8613812345678)".into());
    }
    let mainland = |n: &str| n.len() == 11 && n.starts_with('1') && matches!(n.as_bytes()[1], b'3'..=b'9');
    if !plus {
        if mainland(digits) {
            return Ok(format!("+86{digits}"));
        }
        return Err("must be a mainland mobile (13812345678) or start with + and a country code".into());
    }
    if let Some(national) = digits.strip_prefix("86") {
        if national.starts_with('1') && !mainland(national) {
            return Err("a +86 mobile number has 11 digits starting 13 to 19".into());
        }
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err("an E.164 number has 8 to 15 digits after + and no leading 0".into());
    }
    Ok(format!("+{digits}"))
}

/// Shows only the last four digits, for those who don't hold the ticket.
pub fn mask_phone(phone: &str) -> String {
    let n = phone.chars().count();
    phone.chars().enumerate().map(|(i, c)| if i + 4 < n && i > 2 { '*' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainland_mobiles_are_normalised() {
        assert_eq!(parse_phone("13812345678").unwrap(), "+8613812345678");
        assert_eq!(parse_phone("+86 138-1234-5678").unwrap(), "+8613812345678");
        assert_eq!(parse_phone("+8619912345678").unwrap(), "+8619912345678");
    }

    #[test]
    fn e164_numbers_are_kept() {
        assert_eq!(parse_phone("+14155552671").unwrap(), "+14155552671");
        assert_eq!(parse_phone("+44 20 7946 0958").unwrap(), "+442079460958");
    }

    #[test]
    fn bad_numbers_are_refused() {
        for bad in ["", "12345678901", "1381234567", "+8612345678901", "+0123456789", "abc", "+1", "138123456789"] {
            assert!(parse_phone(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn masks_keep_the_country_and_last_four() {
        assert_eq!(mask_phone("+8613812345678"), "+86*******5678");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::unanchored;

    proptest! {
        /// Whatever the schema's pattern allows, the server takes, as itself once normalised.
        #[test]
        fn what_the_pattern_allows_parses(raw in proptest::string::string_regex(&unanchored(PATTERN)).unwrap()) {
            let expected = if raw.starts_with('+') { raw.clone() } else { format!("+86{raw}") };
            prop_assert_eq!(parse_phone(&raw).unwrap(), expected);
        }

        /// Any mainland mobile, however it is written, normalises to +86 and its 11 digits, and the
        /// normal form parses to itself.
        #[test]
        fn mainland_mobiles_normalise_whatever_the_punctuation(
            second in 3u8..=9,
            rest in proptest::collection::vec(0u8..=9, 9),
            prefix in prop_oneof![Just(""), Just("+86"), Just("+86 ")],
            separator in prop_oneof![Just(""), Just(" "), Just("-")],
        ) {
            let digits: String = std::iter::once(1).chain(std::iter::once(second)).chain(rest).map(|d| char::from(b'0' + d)).collect();
            let written = format!("{prefix}{}{separator}{}{separator}{}", &digits[..3], &digits[3..7], &digits[7..]);
            let normal = parse_phone(&written).unwrap();
            prop_assert_eq!(&normal, &format!("+86{digits}"));
            prop_assert_eq!(parse_phone(&normal).unwrap(), normal);
        }

        /// The pattern tells every number the server keeps: what an E.164 number normalises to
        /// matches it.
        #[test]
        fn what_parses_matches_the_pattern(raw in "\\+[ ]?[1-9][0-9 ]{7,16}") {
            if let Ok(normal) = parse_phone(&raw) {
                prop_assert!(regex::Regex::new(PATTERN).unwrap().is_match(&normal), "{}", normal);
            }
        }

        /// Whatever is typed, parsing never panics, and what it accepts is E.164.
        #[test]
        fn anything_accepted_is_e164(raw in "\\PC{0,24}") {
            if let Ok(normal) = parse_phone(&raw) {
                prop_assert!(normal.starts_with('+'));
                prop_assert!((9..=16).contains(&normal.len()), "{}", normal);
                prop_assert!(normal[1..].chars().all(|c| c.is_ascii_digit()));
                prop_assert!(!normal[1..].starts_with('0'));
            }
        }
    }
}
