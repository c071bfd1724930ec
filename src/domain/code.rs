//! The resident's codes: six digits from the OS's CSPRNG, kept only as a keyed hash.

use chrono::Duration;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

/// Wrong tries before a code locks until the desk resends or verifies by phone.
pub const MAX_FAILED_ATTEMPTS: i64 = 5;
/// A code never outlives this, even if the ticket is still open.
pub const MAX_LIFETIME: Duration = Duration::days(7);

/// What a code is for; part of what is hashed, so an arrival code can't accept a quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Arrival,
    Quote,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Arrival => "arrival",
            Purpose::Quote => "quote",
        }
    }
}

pub fn new_code() -> String {
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
}

fn mac(key: &[u8], ticket_id: &str, purpose: Purpose) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(ticket_id.as_bytes());
    mac.update(b"\0");
    mac.update(purpose.as_str().as_bytes());
    mac.update(b"\0");
    mac
}

pub fn hash_code(key: &[u8], ticket_id: &str, purpose: Purpose, code: &str) -> String {
    let mut mac = mac(key, ticket_id, purpose);
    mac.update(code.trim().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Compares in constant time.
pub fn code_matches(key: &[u8], ticket_id: &str, purpose: Purpose, code: &str, stored_hash: &str) -> bool {
    let Ok(expected) = hex::decode(stored_hash) else { return false };
    let mut mac = mac(key, ticket_id, purpose);
    mac.update(code.trim().as_bytes());
    mac.verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_match_only_their_ticket_and_purpose() {
        let code = new_code();
        assert_eq!(code.len(), 6);
        assert!(code.chars().all(|c| c.is_ascii_digit()));
        let h = hash_code(b"key", "t1", Purpose::Arrival, &code);
        assert!(!h.contains(&code));
        assert!(code_matches(b"key", "t1", Purpose::Arrival, &code, &h));
        assert!(code_matches(b"key", "t1", Purpose::Arrival, &format!(" {code} "), &h));
        assert!(!code_matches(b"key", "t2", Purpose::Arrival, &code, &h));
        assert!(!code_matches(b"key", "t1", Purpose::Quote, &code, &h));
        assert!(!code_matches(b"other", "t1", Purpose::Arrival, &code, &h));
    }
}
