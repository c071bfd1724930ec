//! Alibaba Cloud SMS: the `SendSms` action of API version 2017-05-25, an RPC-style GET signed
//! with signature version 1.0 (HMAC-SHA1 over the sorted, percent-encoded parameters).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Client;
use serde::Deserialize;
use sha1::Sha1;

use super::{excerpt, is_retryable_status, transport_error, Accepted, OutgoingSms, SendError, SendFuture, SmsProvider};
use crate::config::sms::AliyunSettings;

const API_VERSION: &str = "2017-05-25";
const METHOD: &str = "GET";

/// RFC 3986 leaves these alone; everything else, `*` included, is `%XY` (uppercase hex).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub struct AliyunProvider {
    settings: AliyunSettings,
    client: Client,
}

/// Alibaba answers every call, taken or not, with a `Code`; `OK` is the only success.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendSmsAnswer {
    code: String,
    message: Option<String>,
    biz_id: Option<String>,
    request_id: Option<String>,
}

impl AliyunProvider {
    pub fn new(settings: AliyunSettings, client: Client) -> Self {
        Self { settings, client }
    }

    async fn deliver(&self, message: &OutgoingSms) -> Result<Accepted, SendError> {
        let url = self.signed_url(message, &chrono::Utc::now(), &uuid::Uuid::new_v4().to_string())?;
        let response = self.client.get(url).send().await.map_err(|e| transport_error("aliyun", e))?;
        let status = response.status();
        let answer = response.bytes().await.map_err(|e| transport_error("aliyun", e))?;
        match serde_json::from_slice::<SendSmsAnswer>(&answer).ok() {
            Some(reply) if reply.code == "OK" => {
                Ok(Accepted { provider_message_id: reply.biz_id, status: Some(reply.code) })
            }
            Some(reply) => {
                let failure = format!(
                    "aliyun {}: {} (HTTP {status}, request {})",
                    reply.code,
                    reply.message.unwrap_or_default(),
                    reply.request_id.unwrap_or_default()
                );
                Err(if is_throttling(&reply.code) || is_retryable_status(status) {
                    SendError::Retryable(failure)
                } else {
                    SendError::Permanent(failure)
                })
            }
            None => {
                let failure = format!("aliyun answered {status} without a Code: {}", excerpt(&answer));
                // a success status without a Code is someone else's page (a proxy's): nothing was sent
                Err(if status.is_success() || is_retryable_status(status) {
                    SendError::Retryable(failure)
                } else {
                    SendError::Permanent(failure)
                })
            }
        }
    }

    /// The GET URL for one attempt; `nonce` must differ between attempts, or Alibaba refuses a replay.
    fn signed_url(
        &self,
        message: &OutgoingSms,
        now: &chrono::DateTime<chrono::Utc>,
        nonce: &str,
    ) -> Result<String, SendError> {
        let settings = &self.settings;
        let template_code = settings.templates.get(&message.template).ok_or_else(|| {
            SendError::Permanent(format!(
                "aliyun: no template code for {:?} in REPAIRDESK_ALIYUN_TEMPLATES",
                message.template
            ))
        })?;
        let phone_numbers = phone_numbers(&message.to)
            .ok_or_else(|| SendError::Permanent("aliyun: the recipient is not an E.164 number".into()))?;
        let mut params: BTreeMap<&str, String> = BTreeMap::from([
            ("AccessKeyId", settings.access_key_id.clone()),
            ("Action", "SendSms".into()),
            ("Format", "JSON".into()),
            ("RegionId", settings.region.clone()),
            ("SignatureMethod", "HMAC-SHA1".into()),
            ("SignatureNonce", nonce.into()),
            ("SignatureVersion", "1.0".into()),
            ("Timestamp", now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            ("Version", API_VERSION.into()),
            ("PhoneNumbers", phone_numbers),
            ("SignName", settings.sign_name.clone()),
            ("TemplateCode", template_code.clone()),
            // lets delivery receipts be matched to our message
            ("OutId", message.id.clone()),
        ]);
        if !message.params.is_empty() {
            let template_param = serde_json::to_string(&message.params)
                .map_err(|e| SendError::Permanent(format!("aliyun: cannot encode the template parameters: {e}")))?;
            params.insert("TemplateParam", template_param);
        }
        let string_to_sign = string_to_sign(METHOD, &params);
        let signature = signature(&string_to_sign, settings.access_key_secret.expose())?;
        Ok(format!("{}/?{}&Signature={}", settings.endpoint, canonicalized_query(&params), percent_encode(&signature)))
    }
}

impl SmsProvider for AliyunProvider {
    fn name(&self) -> &'static str {
        "aliyun"
    }

    fn send<'a>(&'a self, message: &'a OutgoingSms) -> SendFuture<'a> {
        Box::pin(self.deliver(message))
    }
}

/// `PhoneNumbers` as SendSms documents it: mainland numbers without any prefix (`13812345678`),
/// others as country code and number without `+` or `00` (`85212345678`).
pub fn phone_numbers(e164: &str) -> Option<String> {
    let digits = e164.strip_prefix('+')?;
    if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // country codes are prefix-free, so a leading 86 is China and nothing else
    Some(digits.strip_prefix("86").unwrap_or(digits).to_owned())
}

/// Codes that mean "not now": rate limits (per number, per account) and Alibaba's own trouble.
pub fn is_throttling(code: &str) -> bool {
    code.starts_with("Throttling")
        || matches!(code, "isv.BUSINESS_LIMIT_CONTROL" | "isp.SYSTEM_ERROR" | "ServiceUnavailable")
}

pub fn percent_encode(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED).to_string()
}

/// `key=value` pairs, both percent-encoded, in key order, joined with `&`.
pub fn canonicalized_query(params: &BTreeMap<&str, String>) -> String {
    params.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect::<Vec<_>>().join("&")
}

/// `METHOD&%2F&` and the canonicalized query, percent-encoded once more.
pub fn string_to_sign(method: &str, params: &BTreeMap<&str, String>) -> String {
    format!("{method}&{}&{}", percent_encode("/"), percent_encode(&canonicalized_query(params)))
}

/// Base64 of HMAC-SHA1 keyed with the AccessKey secret and `&`.
pub fn signature(string_to_sign: &str, access_key_secret: &str) -> Result<String, SendError> {
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{access_key_secret}&").as_bytes())
        .map_err(|e| SendError::Permanent(format!("aliyun: unusable AccessKey secret: {e}")))?;
    mac.update(string_to_sign.as_bytes());
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sms::{DEFAULT_ALIYUN_ENDPOINT, DEFAULT_ALIYUN_REGION};
    use crate::config::Secret;

    fn params<'a>(pairs: &[(&'a str, &str)]) -> BTreeMap<&'a str, String> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn the_documented_ecs_example_signs_as_documented() {
        // Alibaba Cloud's worked example of signature version 1.0 ("API 签名机制(示例)",
        // developer.aliyun.com/ask/210168; its result is the sample Signature of the "Signature
        // mechanism" pages at help.aliyun.com): DescribeRegions, AccessKey testid / testsecret.
        let params = params(&[
            ("TimeStamp", "2016-02-23T12:46:24Z"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Version", "2014-05-26"),
            ("SignatureVersion", "1.0"),
        ]);
        let string_to_sign = string_to_sign("GET", &params);
        // (the page prints the separators inside the encoded query as "&"; encoded, they are "%26")
        assert_eq!(
            string_to_sign,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML\
             %26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\
             %26SignatureVersion%3D1.0%26TimeStamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(signature(&string_to_sign, "testsecret").unwrap(), "CT9X0VtwR86fNWSnsc6v8YGOjuE=");
    }

    #[test]
    fn the_documented_send_sms_example_signs_as_documented() {
        // The SendSms request of Alibaba's SMS "HTTP协议及签名" walkthrough
        // (developer.aliyun.com/ask/218522; the same parameters as help.aliyun.com/document_detail/101343),
        // AccessKey testId / testSecret: its request carries Signature=zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D.
        let params = params(&[
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("AccessKeyId", "testId"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Format", "XML"),
            ("Action", "SendSms"),
            ("Version", "2017-05-25"),
            ("RegionId", "cn-hangzhou"),
            ("PhoneNumbers", "15300000001"),
            ("SignName", "阿里云短信测试专用"),
            ("TemplateParam", "{\"customer\":\"test\"}"),
            ("TemplateCode", "SMS_71390007"),
            ("OutId", "123"),
        ]);
        let signed = signature(&string_to_sign("GET", &params), "testSecret").unwrap();
        assert_eq!(signed, "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
        assert_eq!(percent_encode(&signed), "zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D");
    }

    #[test]
    fn percent_encoding_follows_rfc_3986_not_forms() {
        assert_eq!(percent_encode("a b*c~d-e_f.g"), "a%20b%2Ac~d-e_f.g");
        assert_eq!(percent_encode("+/=&:"), "%2B%2F%3D%26%3A");
        assert_eq!(percent_encode("阿"), "%E9%98%BF");
    }

    #[test]
    fn mainland_numbers_go_national_and_others_keep_their_country_code() {
        assert_eq!(phone_numbers("+8613812345678").as_deref(), Some("13812345678"));
        assert_eq!(phone_numbers("+85291234567").as_deref(), Some("85291234567"));
        assert_eq!(phone_numbers("+886912345678").as_deref(), Some("886912345678"));
        assert_eq!(phone_numbers("+14155552671").as_deref(), Some("14155552671"));
        for bad in ["13812345678", "+86 138 1234 5678", "+86138123456789012", "+", "+12ab45678"] {
            assert_eq!(phone_numbers(bad), None, "{bad}");
        }
    }

    #[test]
    fn rate_limits_and_outages_are_throttling_and_refusals_are_not() {
        for code in
            ["isv.BUSINESS_LIMIT_CONTROL", "Throttling.User", "Throttling", "isp.SYSTEM_ERROR", "ServiceUnavailable"]
        {
            assert!(is_throttling(code), "{code}");
        }
        for code in ["isv.MOBILE_NUMBER_ILLEGAL", "isv.SMS_TEMPLATE_ILLEGAL", "SignatureDoesNotMatch", "OK"] {
            assert!(!is_throttling(code), "{code}");
        }
    }

    #[test]
    fn each_attempt_is_a_complete_signed_get() {
        let provider = AliyunProvider::new(
            AliyunSettings {
                access_key_id: "testId".into(),
                access_key_secret: Secret::new("testSecret"),
                sign_name: "物业报修".into(),
                templates: BTreeMap::from([("arrival_code".into(), "SMS_1".into())]),
                endpoint: DEFAULT_ALIYUN_ENDPOINT.into(),
                region: DEFAULT_ALIYUN_REGION.into(),
            },
            Client::new(),
        );
        let mut message = OutgoingSms {
            id: "m-1".into(),
            to: "+8613812345678".into(),
            text: "到场码 123456".into(),
            template: "arrival_code".into(),
            params: BTreeMap::from([("code".into(), "123456".into())]),
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-01T08:09:10Z").unwrap().to_utc();
        let url = provider.signed_url(&message, &now, "nonce-1").unwrap();
        assert!(
            url.starts_with("https://dysmsapi.aliyuncs.com/?AccessKeyId=testId&Action=SendSms&Format=JSON"),
            "{url}"
        );
        for part in [
            "&OutId=m-1&",
            "&PhoneNumbers=13812345678&",
            "&TemplateCode=SMS_1&",
            "&TemplateParam=%7B%22code%22%3A%22123456%22%7D&",
            "&Timestamp=2026-03-01T08%3A09%3A10Z&",
            "&Version=2017-05-25&Signature=",
        ] {
            assert!(url.contains(part), "{part} missing from {url}");
        }
        message.template = "quote_code".into();
        assert!(
            matches!(provider.signed_url(&message, &now, "nonce-2"), Err(SendError::Permanent(m)) if m.contains("quote_code"))
        );
    }
}
