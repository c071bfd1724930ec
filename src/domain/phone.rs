//! Phone numbers: mainland mobiles (`1[3-9]` and 9 more digits, `+86` optional) and E.164,
//! stored normalised as E.164 (`+8613812345678`).

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
