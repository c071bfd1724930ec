//! Access tokens (short JWTs, HS256 pinned) and refresh tokens (opaque, stored only as hashes).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ISSUER: &str = "repairdesk";
pub const AUDIENCE: &str = "repairdesk-api";
/// The `typ` claim of access tokens; nothing else may pass as one.
pub const ACCESS_TYP: &str = "access";
/// The `typ` claim of the desk console's session cookie: never an access token, and no access
/// token passes as one.
pub const CONSOLE_TYP: &str = "console";
pub const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    pub typ: String,
    /// The login (session) this token belongs to; revoking it ends the token at once.
    pub sid: String,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Keys [`JwtKeys::mac`], derived from the signing secret.
    mac_key: [u8; 32],
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp", "nbf"]);
        let mac_key = Sha256::new().chain_update(b"repairdesk mac key\0").chain_update(secret).finalize().into();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            mac_key,
        }
    }

    pub fn issue(&self, user_id: &str, session_id: &str, ttl_secs: i64) -> (String, i64) {
        self.issue_typed(ACCESS_TYP, user_id, session_id, ttl_secs)
    }

    /// The desk console's session cookie: like an access token, but of its own `typ`.
    pub fn issue_console(&self, user_id: &str, session_id: &str, ttl_secs: i64) -> String {
        self.issue_typed(CONSOLE_TYP, user_id, session_id, ttl_secs).0
    }

    /// A console cookie's claims, checked like an access token's.
    pub fn verify_console(&self, token: &str) -> Option<AccessClaims> {
        self.verify_typed(token, CONSOLE_TYP)
    }

    /// HMAC-SHA256 of `value` for `purpose`, hex: a value only this server could have made
    /// (the console's CSRF tokens).
    pub fn mac(&self, purpose: &str, value: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.mac_key).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn issue_typed(&self, typ: &str, user_id: &str, session_id: &str, ttl_secs: i64) -> (String, i64) {
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user_id.into(),
            exp: now + ttl_secs,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            typ: typ.into(),
            sid: session_id.into(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        (token, ttl_secs)
    }

    /// Checks signature, algorithm, issuer, audience, times (with the leeway) and `typ`.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        self.verify_typed(token, ACCESS_TYP)
    }

    fn verify_typed(&self, token: &str, typ: &str) -> Option<AccessClaims> {
        let data = decode::<AccessClaims>(token, &self.decoding, &self.validation).ok()?;
        let c = data.claims;
        (c.typ == typ && c.iat <= c.exp && !c.jti.is_empty()).then_some(c)
    }
}

/// A fresh JWT signing secret: 256 random bits, hex.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A new opaque refresh token: 256 random bits.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a refresh token.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn seal_key(holder: &str) -> [u8; 32] {
    Sha256::new().chain_update(b"repairdesk refresh successor seal\0").chain_update(holder.as_bytes()).finalize().into()
}

/// Seals `successor` so only the holder of `holder` can read it back (each key is used once:
/// one token has at most one successor).
pub fn seal_successor(holder: &str, successor: &str) -> Option<String> {
    let raw = URL_SAFE_NO_PAD.decode(successor).ok()?;
    let key = seal_key(holder);
    if raw.len() != key.len() {
        return None;
    }
    Some(hex::encode(raw.iter().zip(key).map(|(a, b)| a ^ b).collect::<Vec<u8>>()))
}

pub fn unseal_successor(holder: &str, sealed: &str) -> Option<String> {
    let raw = hex::decode(sealed).ok()?;
    let key = seal_key(holder);
    if raw.len() != key.len() {
        return None;
    }
    Some(URL_SAFE_NO_PAD.encode(raw.iter().zip(key).map(|(a, b)| a ^ b).collect::<Vec<u8>>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_cookie_is_no_access_token_and_no_access_token_is_a_console_cookie() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef");
        let cookie = keys.issue_console("u1", "s1", 600);
        let (access, _) = keys.issue("u1", "s1", 600);
        assert_eq!(keys.verify_console(&cookie).map(|c| c.sid), Some("s1".to_owned()));
        assert!(keys.verify(&cookie).is_none());
        assert!(keys.verify_console(&access).is_none());
        assert_ne!(keys.mac("csrf", "s1"), keys.mac("csrf", "s2"));
        assert_ne!(keys.mac("csrf", "s1"), JwtKeys::new(b"another secret of 32 bytes or more!").mac("csrf", "s1"));
    }

    #[test]
    fn a_sealed_successor_opens_only_with_its_holder() {
        let holder = new_refresh_token();
        let successor = new_refresh_token();
        let sealed = seal_successor(&holder, &successor).unwrap();
        assert_eq!(unseal_successor(&holder, &sealed).unwrap(), successor);
        assert_ne!(unseal_successor(&new_refresh_token(), &sealed).unwrap(), successor);
    }

    #[test]
    fn access_tokens_round_trip_and_refuse_other_keys() {
        let keys = JwtKeys::new(&[7u8; 32]);
        let (token, _) = keys.issue("u1", "s1", 60);
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("u1", "s1"));
        assert!(JwtKeys::new(&[8u8; 32]).verify(&token).is_none());
    }
}
