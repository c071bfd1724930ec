//! Which push services deliver to technicians' phones, how the push outbox retries, and the
//! texts: read from the environment here, turned into providers by `push::build_providers`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::sms::{base_url, http_url, WebhookSettings};
use super::Secret;

pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
pub const MAX_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_JPUSH_BASE_URL: &str = "https://api.jpush.cn";
/// A worker owns a message it is sending this long, unless twice the timeout is longer.
pub const DEFAULT_LEASE_SECS: u64 = 60;
pub const DEFAULT_FCM_BASE_URL: &str = "https://fcm.googleapis.com";
/// Apple's production service; development builds of the app need `https://api.sandbox.push.apple.com`.
pub const DEFAULT_APNS_BASE_URL: &str = "https://api.push.apple.com";

/// The kinds of push message, as named in the template settings
/// (`REPAIRDESK_PUSH_TITLE_POOL_ADDED`...). `domain::push::Kind` holds the same names.
pub const PUSH_KINDS: [&str; 5] = ["pool_added", "assigned", "unassigned", "quote_decided", "cancelled"];

#[derive(Debug, Clone)]
pub struct PushSettings {
    /// One attempt at a push service, connecting included.
    pub timeout_secs: u64,
    /// Devices registered with `webhook` are delivered here.
    pub webhook: Option<WebhookSettings>,
    /// Devices registered with `jpush` (极光) are delivered through its REST API v3.
    pub jpush: Option<JpushSettings>,
    /// Devices registered with `fcm` are delivered through Firebase Cloud Messaging's HTTP v1 API.
    pub fcm: Option<FcmSettings>,
    /// Devices registered with `apns` are delivered through Apple's service, with token auth.
    pub apns: Option<ApnsSettings>,
    /// Development: devices of a service not configured are accepted, and what would be pushed
    /// to them is written to the log.
    pub log: bool,
    /// The first retry waits this long, doubling per attempt.
    pub retry_base: std::time::Duration,
    /// Attempts before a message is given up.
    pub max_attempts: i64,
    /// How long a worker owns a message it is sending: a message whose worker died (the
    /// instance was killed mid-delivery) is taken over by another round once this has passed.
    /// At least twice `timeout_secs`, so an attempt still waiting on the service is never sent
    /// a second time beside it.
    pub lease_secs: u64,
    /// Kind → (title, body), where a setting replaces the built-in text.
    pub templates: BTreeMap<String, (Option<String>, Option<String>)>,
}

#[derive(Debug, Clone)]
pub struct JpushSettings {
    pub app_key: String,
    pub master_secret: Secret,
    /// Without a trailing slash.
    pub base_url: String,
}

/// The key files are read, and their keys checked, by `push::build_providers` at start.
#[derive(Debug, Clone)]
pub struct FcmSettings {
    /// A Google service-account key file (JSON: `project_id`, `client_email`, `private_key`,
    /// `token_uri`), as the Firebase console downloads it.
    pub service_account_file: PathBuf,
    /// Where messages are sent, without a trailing slash.
    pub base_url: String,
}

#[derive(Debug, Clone)]
pub struct ApnsSettings {
    /// The `.p8` signing key Apple's developer account hands out (EC P-256, PKCS#8 PEM).
    pub key_file: PathBuf,
    /// The key's id (the `kid` of the provider token).
    pub key_id: String,
    /// The developer team's id (the provider token's issuer).
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// Without a trailing slash.
    pub base_url: String,
}

impl PushSettings {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let number = |name: &str, default: u64, range: std::ops::RangeInclusive<u64>| -> Result<u64, String> {
            match get(name) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                    format!("{name} must be a whole number from {} to {}, got {v:?}", range.start(), range.end())
                }),
            }
        };
        let timeout_secs = number("REPAIRDESK_PUSH_TIMEOUT_SECS", DEFAULT_TIMEOUT_SECS, 1..=MAX_TIMEOUT_SECS)?;
        let lease_secs = number("REPAIRDESK_PUSH_LEASE_SECS", DEFAULT_LEASE_SECS.max(2 * timeout_secs), 2..=3600)?;
        if lease_secs < 2 * timeout_secs {
            return Err(format!(
                "REPAIRDESK_PUSH_LEASE_SECS ({lease_secs}) must be at least twice REPAIRDESK_PUSH_TIMEOUT_SECS \
                 ({timeout_secs}): a message whose attempt outlives its lease can be sent twice"
            ));
        }
        let webhook = match (get("REPAIRDESK_PUSH_WEBHOOK_URL"), get("REPAIRDESK_PUSH_WEBHOOK_SECRET")) {
            (None, None) => None,
            (Some(url), Some(secret)) => Some(WebhookSettings {
                url: http_url("REPAIRDESK_PUSH_WEBHOOK_URL", &url)?,
                secret: Secret::new(secret),
            }),
            _ => {
                return Err("set both REPAIRDESK_PUSH_WEBHOOK_URL and REPAIRDESK_PUSH_WEBHOOK_SECRET, or neither".into())
            }
        };
        let jpush = match (get("REPAIRDESK_JPUSH_APP_KEY"), get("REPAIRDESK_JPUSH_MASTER_SECRET")) {
            (None, None) => None,
            (Some(app_key), Some(secret)) => Some(JpushSettings {
                app_key,
                master_secret: Secret::new(secret),
                base_url: base_url(
                    "REPAIRDESK_JPUSH_BASE_URL",
                    &get("REPAIRDESK_JPUSH_BASE_URL").unwrap_or_else(|| DEFAULT_JPUSH_BASE_URL.into()),
                )?,
            }),
            _ => return Err("set both REPAIRDESK_JPUSH_APP_KEY and REPAIRDESK_JPUSH_MASTER_SECRET, or neither".into()),
        };
        let fcm = get("REPAIRDESK_FCM_SERVICE_ACCOUNT_FILE")
            .map(|file| -> Result<_, String> {
                Ok(FcmSettings {
                    service_account_file: PathBuf::from(file),
                    base_url: base_url(
                        "REPAIRDESK_FCM_BASE_URL",
                        &get("REPAIRDESK_FCM_BASE_URL").unwrap_or_else(|| DEFAULT_FCM_BASE_URL.into()),
                    )?,
                })
            })
            .transpose()?;
        const APNS: [&str; 4] =
            ["REPAIRDESK_APNS_KEY_FILE", "REPAIRDESK_APNS_KEY_ID", "REPAIRDESK_APNS_TEAM_ID", "REPAIRDESK_APNS_TOPIC"];
        let apns = match APNS.map(&get) {
            [None, None, None, None] => None,
            [Some(key_file), Some(key_id), Some(team_id), Some(topic)] => Some(ApnsSettings {
                key_file: PathBuf::from(key_file),
                key_id,
                team_id,
                topic,
                base_url: base_url(
                    "REPAIRDESK_APNS_BASE_URL",
                    &get("REPAIRDESK_APNS_BASE_URL").unwrap_or_else(|| DEFAULT_APNS_BASE_URL.into()),
                )?,
            }),
            _ => return Err(format!("set all of {} or none", APNS.join(", "))),
        };
        let log = match get("REPAIRDESK_PUSH_LOG").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => return Err(format!("REPAIRDESK_PUSH_LOG must be true or false, got {other:?}")),
        };
        let templates = PUSH_KINDS
            .iter()
            .map(|kind| {
                let upper = kind.to_uppercase();
                let title = get(&format!("REPAIRDESK_PUSH_TITLE_{upper}"));
                let body = get(&format!("REPAIRDESK_PUSH_BODY_{upper}"));
                ((*kind).to_owned(), (title, body))
            })
            .collect();
        Ok(Self {
            timeout_secs,
            webhook,
            jpush,
            fcm,
            apns,
            log,
            retry_base: std::time::Duration::from_millis(number("REPAIRDESK_PUSH_RETRY_BASE_MS", 5000, 1..=3_600_000)?),
            max_attempts: number("REPAIRDESK_PUSH_MAX_ATTEMPTS", 8, 1..=100)? as i64,
            lease_secs,
            templates,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<PushSettings, String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        PushSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_is_configured_by_default() {
        let s = settings(&[]).unwrap();
        assert!(s.webhook.is_none() && s.jpush.is_none() && s.fcm.is_none() && s.apns.is_none() && !s.log);
        assert_eq!((s.timeout_secs, s.max_attempts, s.lease_secs), (10, 8, 60));
    }

    #[test]
    fn the_lease_outlasts_two_attempts_timeouts() {
        assert_eq!(settings(&[("REPAIRDESK_PUSH_TIMEOUT_SECS", "45")]).unwrap().lease_secs, 90);
        let short = [("REPAIRDESK_PUSH_TIMEOUT_SECS", "2"), ("REPAIRDESK_PUSH_LEASE_SECS", "4")];
        assert_eq!(settings(&short).unwrap().lease_secs, 4);
        let err = settings(&[("REPAIRDESK_PUSH_TIMEOUT_SECS", "3"), ("REPAIRDESK_PUSH_LEASE_SECS", "5")]).unwrap_err();
        assert!(err.contains("REPAIRDESK_PUSH_LEASE_SECS") && err.contains("twice"), "{err}");
        assert!(settings(&[("REPAIRDESK_PUSH_LEASE_SECS", "1")]).is_err());
    }

    #[test]
    fn half_a_provider_is_refused_with_its_names() {
        let err = settings(&[("REPAIRDESK_PUSH_WEBHOOK_URL", "https://hooks.example/push")]).unwrap_err();
        assert!(err.contains("REPAIRDESK_PUSH_WEBHOOK_SECRET"), "{err}");
        let err = settings(&[("REPAIRDESK_JPUSH_APP_KEY", "k")]).unwrap_err();
        assert!(err.contains("REPAIRDESK_JPUSH_MASTER_SECRET"), "{err}");
        let err = settings(&[("REPAIRDESK_APNS_KEY_FILE", "AuthKey.p8"), ("REPAIRDESK_APNS_TOPIC", "cn.example.app")])
            .unwrap_err();
        assert!(err.contains("REPAIRDESK_APNS_KEY_ID") && err.contains("REPAIRDESK_APNS_TEAM_ID"), "{err}");
        assert!(settings(&[("REPAIRDESK_PUSH_LOG", "yes")]).is_err());
        assert!(settings(&[("REPAIRDESK_PUSH_MAX_ATTEMPTS", "0")]).is_err());
    }

    #[test]
    fn fcm_and_apns_take_their_files_and_default_to_the_real_services() {
        let s = settings(&[
            ("REPAIRDESK_FCM_SERVICE_ACCOUNT_FILE", "/etc/repairdesk/firebase.json"),
            ("REPAIRDESK_APNS_KEY_FILE", "/etc/repairdesk/AuthKey_ABC123DEFG.p8"),
            ("REPAIRDESK_APNS_KEY_ID", "ABC123DEFG"),
            ("REPAIRDESK_APNS_TEAM_ID", "DEF123GHIJ"),
            ("REPAIRDESK_APNS_TOPIC", "cn.example.repair"),
            ("REPAIRDESK_APNS_BASE_URL", "https://api.sandbox.push.apple.com/"),
        ])
        .unwrap();
        let fcm = s.fcm.unwrap();
        assert_eq!(fcm.service_account_file, PathBuf::from("/etc/repairdesk/firebase.json"));
        assert_eq!(fcm.base_url, DEFAULT_FCM_BASE_URL);
        let apns = s.apns.unwrap();
        assert_eq!((apns.key_id.as_str(), apns.topic.as_str()), ("ABC123DEFG", "cn.example.repair"));
        assert_eq!(apns.base_url, "https://api.sandbox.push.apple.com");
        let err = settings(&[("REPAIRDESK_FCM_SERVICE_ACCOUNT_FILE", "f.json"), ("REPAIRDESK_FCM_BASE_URL", "fcm")])
            .unwrap_err();
        assert!(err.contains("REPAIRDESK_FCM_BASE_URL"), "{err}");
    }

    #[test]
    fn a_template_setting_replaces_one_text() {
        let s = settings(&[("REPAIRDESK_PUSH_TITLE_POOL_ADDED", "New {number}")]).unwrap();
        assert_eq!(s.templates["pool_added"], (Some("New {number}".to_owned()), None));
        assert_eq!(s.templates["cancelled"], (None, None));
    }

    #[test]
    fn secrets_never_print() {
        let s = settings(&[("REPAIRDESK_JPUSH_APP_KEY", "k"), ("REPAIRDESK_JPUSH_MASTER_SECRET", "ms-very-secret")])
            .unwrap();
        assert!(!format!("{s:?}").contains("ms-very-secret"));
    }
}
