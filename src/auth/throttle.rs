//! Login throttling, decided before any password is hashed.

use std::net::IpAddr;

use chrono::Duration;

pub const WINDOW: Duration = Duration::minutes(15);
pub const MAX_ACCOUNT_FAILURES: i64 = 5;
pub const MAX_ADDRESS_FAILURES: i64 = 50;

pub fn account_key(username: &str) -> String {
    format!("account:{}", username.trim().to_lowercase())
}

pub fn address_key(addr: IpAddr) -> String {
    format!("address:{addr}")
}

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_address(peer: Option<IpAddr>, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let Some(list) = forwarded_for else { return Some(peer) };
    let mut chosen = peer;
    for hop in list.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => chosen = ip,
            Ok(ip) => return Some(ip),
            Err(_) => return Some(chosen),
        }
    }
    Some(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [ip("10.0.0.1")];
        assert_eq!(client_address(Some(ip("1.2.3.4")), Some("9.9.9.9"), &trusted), Some(ip("1.2.3.4")));
        assert_eq!(client_address(Some(ip("10.0.0.1")), Some("9.9.9.9"), &trusted), Some(ip("9.9.9.9")));
        assert_eq!(
            client_address(Some(ip("10.0.0.1")), Some("6.6.6.6, 9.9.9.9, 10.0.0.1"), &trusted),
            Some(ip("9.9.9.9"))
        );
        assert_eq!(client_address(Some(ip("10.0.0.1")), None, &trusted), Some(ip("10.0.0.1")));
    }
}
