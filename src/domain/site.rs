/// A site code prefixes ticket numbers: 2 to 16 of `A-Z 0-9`, stored upper-case.
pub fn parse_site_code(raw: &str) -> Result<String, String> {
    let code = raw.trim().to_uppercase();
    if !(2..=16).contains(&code.len()) || !code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        return Err("must be 2 to 16 letters or digits".into());
    }
    Ok(code)
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
}
