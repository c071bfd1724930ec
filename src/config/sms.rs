//! Which SMS gateway sends the messages, and what it needs to: read from the environment here,
//! turned into a provider by `sms::build_provider`.

use std::collections::BTreeMap;

use reqwest::Url;

use super::Secret;

pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
pub const MAX_TIMEOUT_SECS: u64 = 120;
pub const DEFAULT_ALIYUN_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com";
pub const DEFAULT_ALIYUN_REGION: &str = "cn-hangzhou";
pub const DEFAULT_TWILIO_BASE_URL: &str = "https://api.twilio.com";

/// Which gateway sends the messages, and what it needs to.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    /// The longest one attempt may take, connecting included.
    pub timeout_secs: u64,
    pub provider: ProviderSettings,
}

#[derive(Debug, Clone)]
pub enum ProviderSettings {
    /// Sends nothing: writes each message to the log (development, demos).
    Log,
    Webhook(WebhookSettings),
    Aliyun(AliyunSettings),
    Twilio(TwilioSettings),
}

impl ProviderSettings {
    /// The `REPAIRDESK_SMS_PROVIDER` value it was read from.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Webhook(_) => "webhook",
            Self::Aliyun(_) => "aliyun",
            Self::Twilio(_) => "twilio",
        }
    }
}

/// An HTTP endpoint of the customer's own, sent signed JSON.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: Url,
    pub secret: Secret,
}

/// Alibaba Cloud SMS.
#[derive(Debug, Clone)]
pub struct AliyunSettings {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// The approved signature (签名) shown in front of every message.
    pub sign_name: String,
    /// Our template name → Alibaba's approved template code (`SMS_123456`).
    pub templates: BTreeMap<String, String>,
    /// Without a trailing slash.
    pub endpoint: String,
    pub region: String,
}

/// Twilio's Messages API.
#[derive(Debug, Clone)]
pub struct TwilioSettings {
    pub account_sid: String,
    pub auth_token: Secret,
    pub sender: TwilioSender,
    /// Without a trailing slash.
    pub base_url: String,
}

/// Who the message comes from: one number of ours, or a Messaging Service that picks one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioSender {
    From(String),
    MessagingService(String),
}

impl SmsSettings {
    /// Reads the SMS settings through `get`, so tests can feed a map instead of the environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let timeout_secs = match get("REPAIRDESK_SMS_TIMEOUT_SECS") {
            None => DEFAULT_TIMEOUT_SECS,
            Some(v) => v.parse::<u64>().ok().filter(|secs| (1..=MAX_TIMEOUT_SECS).contains(secs)).ok_or_else(|| {
                format!("REPAIRDESK_SMS_TIMEOUT_SECS must be between 1 and {MAX_TIMEOUT_SECS}, got {v:?}")
            })?,
        };
        let provider_name = get("REPAIRDESK_SMS_PROVIDER").unwrap_or_else(|| "log".into());
        let required = |name: &str| {
            get(name).ok_or_else(|| format!("{name} is required when REPAIRDESK_SMS_PROVIDER is {provider_name}"))
        };
        let provider = match provider_name.as_str() {
            "log" => ProviderSettings::Log,
            "webhook" => ProviderSettings::Webhook(WebhookSettings {
                url: http_url("REPAIRDESK_SMS_WEBHOOK_URL", &required("REPAIRDESK_SMS_WEBHOOK_URL")?)?,
                secret: Secret::new(required("REPAIRDESK_SMS_WEBHOOK_SECRET")?),
            }),
            "aliyun" => ProviderSettings::Aliyun(AliyunSettings {
                access_key_id: required("REPAIRDESK_ALIYUN_ACCESS_KEY_ID")?,
                access_key_secret: Secret::new(required("REPAIRDESK_ALIYUN_ACCESS_KEY_SECRET")?),
                sign_name: required("REPAIRDESK_ALIYUN_SIGN_NAME")?,
                templates: template_codes(&required("REPAIRDESK_ALIYUN_TEMPLATES")?)?,
                endpoint: base_url(
                    "REPAIRDESK_ALIYUN_ENDPOINT",
                    &get("REPAIRDESK_ALIYUN_ENDPOINT").unwrap_or_else(|| DEFAULT_ALIYUN_ENDPOINT.into()),
                )?,
                region: get("REPAIRDESK_ALIYUN_REGION").unwrap_or_else(|| DEFAULT_ALIYUN_REGION.into()),
            }),
            "twilio" => {
                let account_sid = required("REPAIRDESK_TWILIO_ACCOUNT_SID")?;
                // it becomes a path segment of every request
                if !account_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err("REPAIRDESK_TWILIO_ACCOUNT_SID must be letters and digits (AC...)".into());
                }
                let sender = match (get("REPAIRDESK_TWILIO_FROM"), get("REPAIRDESK_TWILIO_MESSAGING_SERVICE_SID")) {
                    (Some(from), None) => TwilioSender::From(from),
                    (None, Some(sid)) => TwilioSender::MessagingService(sid),
                    (None, None) => {
                        return Err("REPAIRDESK_TWILIO_FROM or REPAIRDESK_TWILIO_MESSAGING_SERVICE_SID is required \
                                    when REPAIRDESK_SMS_PROVIDER is twilio"
                            .into())
                    }
                    (Some(_), Some(_)) => {
                        return Err(
                            "set only one of REPAIRDESK_TWILIO_FROM and REPAIRDESK_TWILIO_MESSAGING_SERVICE_SID".into(),
                        )
                    }
                };
                ProviderSettings::Twilio(TwilioSettings {
                    account_sid,
                    auth_token: Secret::new(required("REPAIRDESK_TWILIO_AUTH_TOKEN")?),
                    sender,
                    base_url: base_url(
                        "REPAIRDESK_TWILIO_BASE_URL",
                        &get("REPAIRDESK_TWILIO_BASE_URL").unwrap_or_else(|| DEFAULT_TWILIO_BASE_URL.into()),
                    )?,
                })
            }
            other => {
                return Err(format!("REPAIRDESK_SMS_PROVIDER must be log, webhook, aliyun or twilio, got {other:?}"))
            }
        };
        Ok(Self { timeout_secs, provider })
    }
}

pub(crate) fn http_url(name: &str, value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("{name} is not a URL ({e}): {value:?}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{name} must be an http or https URL, got {value:?}"));
    }
    Ok(url)
}

/// A URL that paths are appended to, kept without its trailing slash.
pub(crate) fn base_url(name: &str, value: &str) -> Result<String, String> {
    http_url(name, value)?;
    Ok(value.trim_end_matches('/').to_owned())
}

/// `arrival_code=SMS_123,quote_code=SMS_456` as our template name → Alibaba template code.
fn template_codes(list: &str) -> Result<BTreeMap<String, String>, String> {
    let mut codes = BTreeMap::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, code) = entry
            .split_once('=')
            .map(|(n, c)| (n.trim(), c.trim()))
            .filter(|(n, c)| !n.is_empty() && !c.is_empty())
            .ok_or_else(|| format!("REPAIRDESK_ALIYUN_TEMPLATES: {entry:?} is not our_name=SMS_CODE"))?;
        if codes.insert(name.to_owned(), code.to_owned()).is_some() {
            return Err(format!("REPAIRDESK_ALIYUN_TEMPLATES names {name:?} twice"));
        }
    }
    if codes.is_empty() {
        return Err("REPAIRDESK_ALIYUN_TEMPLATES maps no template".into());
    }
    Ok(codes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<SmsSettings, String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SmsSettings::from_lookup(|k| map.get(k).cloned())
    }

    pub(crate) const ALIYUN: [(&str, &str); 5] = [
        ("REPAIRDESK_SMS_PROVIDER", "aliyun"),
        ("REPAIRDESK_ALIYUN_ACCESS_KEY_ID", "LTAI-test"),
        ("REPAIRDESK_ALIYUN_ACCESS_KEY_SECRET", "aliyun-secret-value"),
        ("REPAIRDESK_ALIYUN_SIGN_NAME", "物业报修"),
        ("REPAIRDESK_ALIYUN_TEMPLATES", "arrival_code=SMS_1, quote_code = SMS_2"),
    ];

    fn with(
        base: &[(&'static str, &'static str)],
        extra: &[(&'static str, &'static str)],
    ) -> Vec<(&'static str, &'static str)> {
        let mut pairs: Vec<_> = base.iter().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).copied().collect();
        pairs.extend_from_slice(extra);
        pairs
    }

    #[test]
    fn the_log_provider_needs_nothing() {
        let s = settings(&[]).unwrap();
        assert!(matches!(s.provider, ProviderSettings::Log));
        assert_eq!(s.timeout_secs, 10);
    }

    #[test]
    fn an_unknown_provider_is_refused_with_the_choices() {
        let err = settings(&[("REPAIRDESK_SMS_PROVIDER", "carrier-pigeon")]).unwrap_err();
        assert!(err.contains("REPAIRDESK_SMS_PROVIDER") && err.contains("twilio"), "{err}");
    }

    #[test]
    fn a_timeout_outside_its_range_is_refused() {
        for bad in ["0", "-1", "ten", "121"] {
            let err = settings(&[("REPAIRDESK_SMS_TIMEOUT_SECS", bad)]).unwrap_err();
            assert!(err.contains("REPAIRDESK_SMS_TIMEOUT_SECS"), "{err}");
        }
        assert_eq!(settings(&[("REPAIRDESK_SMS_TIMEOUT_SECS", " 3 ")]).unwrap().timeout_secs, 3);
    }

    #[test]
    fn the_webhook_names_what_it_misses() {
        let err = settings(&[("REPAIRDESK_SMS_PROVIDER", "webhook")]).unwrap_err();
        assert!(err.contains("REPAIRDESK_SMS_WEBHOOK_URL"), "{err}");
        let err = settings(&[
            ("REPAIRDESK_SMS_PROVIDER", "webhook"),
            ("REPAIRDESK_SMS_WEBHOOK_URL", "https://hooks.example/sms"),
        ])
        .unwrap_err();
        assert!(err.contains("REPAIRDESK_SMS_WEBHOOK_SECRET"), "{err}");
        let err = settings(&[
            ("REPAIRDESK_SMS_PROVIDER", "webhook"),
            ("REPAIRDESK_SMS_WEBHOOK_URL", "ftp://hooks.example/sms"),
            ("REPAIRDESK_SMS_WEBHOOK_SECRET", "s"),
        ])
        .unwrap_err();
        assert!(err.contains("REPAIRDESK_SMS_WEBHOOK_URL") && err.contains("http"), "{err}");
    }

    #[test]
    fn aliyun_names_each_missing_variable() {
        for (missing, _) in ALIYUN.iter().skip(1) {
            let pairs: Vec<_> = ALIYUN.iter().filter(|(k, _)| k != missing).copied().collect();
            let err = settings(&pairs).unwrap_err();
            assert!(err.contains(missing), "{missing}: {err}");
        }
    }

    #[test]
    fn aliyun_defaults_to_hangzhou_and_maps_templates() {
        let ProviderSettings::Aliyun(aliyun) = settings(&ALIYUN).unwrap().provider else { panic!("not aliyun") };
        assert_eq!(aliyun.endpoint, "https://dysmsapi.aliyuncs.com");
        assert_eq!(aliyun.region, "cn-hangzhou");
        assert_eq!(aliyun.templates.get("quote_code").map(String::as_str), Some("SMS_2"));
        assert_eq!(aliyun.templates.len(), 2);
    }

    #[test]
    fn aliyun_refuses_a_template_list_it_cannot_read() {
        for bad in ["arrival_code", "arrival_code=", "=SMS_1", "a=SMS_1,a=SMS_2", " , "] {
            let err = settings(&with(&ALIYUN, &[("REPAIRDESK_ALIYUN_TEMPLATES", bad)])).unwrap_err();
            assert!(err.contains("REPAIRDESK_ALIYUN_TEMPLATES"), "{bad:?}: {err}");
        }
        let err = settings(&with(&ALIYUN, &[("REPAIRDESK_ALIYUN_ENDPOINT", "dysmsapi.aliyuncs.com")])).unwrap_err();
        assert!(err.contains("REPAIRDESK_ALIYUN_ENDPOINT"), "{err}");
    }

    pub(crate) const TWILIO: [(&str, &str); 4] = [
        ("REPAIRDESK_SMS_PROVIDER", "twilio"),
        ("REPAIRDESK_TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
        ("REPAIRDESK_TWILIO_AUTH_TOKEN", "twilio-token-value"),
        ("REPAIRDESK_TWILIO_FROM", "+15005550006"),
    ];

    #[test]
    fn twilio_needs_exactly_one_sender() {
        let none: Vec<_> = TWILIO.iter().take(3).copied().collect();
        let err = settings(&none).unwrap_err();
        assert!(err.contains("REPAIRDESK_TWILIO_FROM") && err.contains("MESSAGING_SERVICE_SID"), "{err}");
        let both = with(&TWILIO, &[("REPAIRDESK_TWILIO_MESSAGING_SERVICE_SID", "MG0123")]);
        assert!(settings(&both).unwrap_err().contains("only one"));
        let ProviderSettings::Twilio(twilio) = settings(&TWILIO).unwrap().provider else { panic!("not twilio") };
        assert_eq!(twilio.sender, TwilioSender::From("+15005550006".into()));
        assert_eq!(twilio.base_url, "https://api.twilio.com");
    }

    #[test]
    fn twilio_names_what_it_misses_and_refuses_an_odd_account_sid() {
        for (missing, _) in TWILIO.iter().skip(1).take(2) {
            let pairs: Vec<_> = TWILIO.iter().filter(|(k, _)| k != missing).copied().collect();
            let err = settings(&pairs).unwrap_err();
            assert!(err.contains(missing), "{missing}: {err}");
        }
        let err = settings(&with(&TWILIO, &[("REPAIRDESK_TWILIO_ACCOUNT_SID", "AC12/../x")])).unwrap_err();
        assert!(err.contains("REPAIRDESK_TWILIO_ACCOUNT_SID"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let aliyun = settings(&ALIYUN).unwrap();
        let twilio = settings(&TWILIO).unwrap();
        let webhook = settings(&[
            ("REPAIRDESK_SMS_PROVIDER", "webhook"),
            ("REPAIRDESK_SMS_WEBHOOK_URL", "https://hooks.example/sms"),
            ("REPAIRDESK_SMS_WEBHOOK_SECRET", "webhook-secret-value"),
        ])
        .unwrap();
        let printed = format!("{aliyun:?} {twilio:?} {webhook:?}");
        for secret in ["aliyun-secret-value", "twilio-token-value", "webhook-secret-value"] {
            assert!(!printed.contains(secret), "{secret} printed");
        }
    }
}
