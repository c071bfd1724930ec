//! Login throttling, decided before any password is hashed.

use std::net::IpAddr;

use chrono::Duration;

/// One username from one address: 5 wrong passwords in 15 minutes, then that pair waits.
/// Guessing from one place stops here without touching the owner on their own phone.
pub const PAIR_MAX_FAILURES: i64 = 5;
pub const PAIR_WINDOW: Duration = Duration::minutes(15);

/// One address, whatever usernames it tries: 50 wrong passwords in 15 minutes.
pub const ADDRESS_MAX_FAILURES: i64 = 50;
pub const ADDRESS_WINDOW: Duration = Duration::minutes(15);

/// One username from every address together: 100 wrong passwords in a row (a success starts the
/// count again), forgotten after 24 hours. This is NIST SP 800-63B's bound on consecutive failures,
/// far above what the pair limit lets one address reach, so it stops only a guesser spread over
/// twenty addresses or more.
pub const ACCOUNT_MAX_FAILURES: i64 = 100;
pub const ACCOUNT_WINDOW: Duration = Duration::hours(24);

/// One counter of failed logins: at `max` failures within `window`, the next attempt is refused
/// before any password is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub key: String,
    pub max: i64,
    pub window: Duration,
    /// A successful login under this key starts its count again. The address count is not: one
    /// account of your own must not buy more guesses at everyone else's.
    pub cleared_by_success: bool,
}

/// The counters a login (or a password check) of `username` from `address` is counted under.
pub fn limits(username: &str, address: Option<IpAddr>) -> Vec<Limit> {
    let name = normalise(username);
    let mut limits = vec![Limit {
        key: format!("account:{name}"),
        max: ACCOUNT_MAX_FAILURES,
        window: ACCOUNT_WINDOW,
        cleared_by_success: true,
    }];
    if let Some(addr) = address {
        // an address never holds '/', so the username after the first one is unambiguous
        limits.push(Limit {
            key: format!("pair:{addr}/{name}"),
            max: PAIR_MAX_FAILURES,
            window: PAIR_WINDOW,
            cleared_by_success: true,
        });
        limits.push(Limit {
            key: format!("address:{addr}"),
            max: ADDRESS_MAX_FAILURES,
            window: ADDRESS_WINDOW,
            cleared_by_success: false,
        });
    }
    limits
}

fn normalise(username: &str) -> String {
    username.trim().to_lowercase()
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

    #[test]
    fn a_login_counts_per_pair_per_address_and_per_account() {
        let keys: Vec<(String, i64)> =
            limits(" Wang.Tech ", Some(ip("203.0.113.9"))).into_iter().map(|l| (l.key, l.max)).collect();
        assert_eq!(
            keys,
            [
                ("account:wang.tech".to_owned(), 100),
                ("pair:203.0.113.9/wang.tech".to_owned(), 5),
                ("address:203.0.113.9".to_owned(), 50),
            ]
        );
        assert_eq!(limits("admin", None).len(), 1, "without an address only the account counts");
    }
}
