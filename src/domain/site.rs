/// How long a site code is, in characters.
pub const CODE_LEN: std::ops::RangeInclusive<usize> = 2..=16;
/// Site codes as the schema states them (the server also trims spaces around them).
pub const CODE_PATTERN: &str = r"^[A-Za-z0-9]{2,16}$";
/// The longest site name, in characters.
pub const MAX_NAME: usize = 100;

/// A site code prefixes ticket numbers: 2 to 16 of `A-Z 0-9`, stored upper-case.
pub fn parse_site_code(raw: &str) -> Result<String, String> {
    let code = raw.trim().to_uppercase();
    if !CODE_LEN.contains(&code.len()) || !code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        return Err("must be 2 to 16 letters or digits".into());
    }
    Ok(code)
}

/// The names [`parse_timezone`] takes: the IANA time zones and their aliases, as the schema
/// lists them.
pub fn timezone_names() -> impl Iterator<Item = &'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
}

/// An IANA time zone name such as `Asia/Shanghai`; ticket numbers count days in it.
pub fn parse_timezone(raw: &str) -> Result<chrono_tz::Tz, String> {
    raw.trim().parse::<chrono_tz::Tz>().map_err(|_| "must be an IANA time zone such as Asia/Shanghai".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_zones() {
        assert_eq!(parse_site_code("gy1").unwrap(), "GY1");
        assert!(parse_site_code("G").is_err());
        assert!(parse_site_code("G-Y").is_err());
        assert!(parse_timezone("Asia/Shanghai").is_ok());
        assert!(parse_timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn what_the_code_pattern_allows_parses() {
        let pattern = regex::Regex::new(CODE_PATTERN).unwrap();
        for code in ["gy", "GY1", "0123456789abcdef"] {
            assert!(pattern.is_match(code) && parse_site_code(code).is_ok(), "{code}");
        }
        for code in ["G", "G-Y", "0123456789abcdefg"] {
            assert!(!pattern.is_match(code) && parse_site_code(code).is_err(), "{code}");
        }
    }

    #[test]
    fn every_listed_time_zone_parses() {
        for name in timezone_names() {
            assert_eq!(parse_timezone(name).map(|tz| tz.name()), Ok(name));
        }
    }
}
