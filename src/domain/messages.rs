//! What the resident's SMS say. Chinese by default; each template can be replaced by a setting.

use std::collections::BTreeMap;

pub const ARRIVAL_CODE: &str = "arrival_code";
pub const QUOTE_CODE: &str = "quote_code";
pub const APPOINTMENT: &str = "appointment";

#[derive(Debug, Clone)]
pub struct Templates {
    /// Placeholders: `{site}`, `{number}`, `{code}`.
    pub arrival_code: String,
    /// Placeholders: `{site}`, `{number}`, `{code}`, `{amount}` (yuan), `{covers}` (what the price
    /// covers: 全包价，含材料 or 仅人工费，材料另计).
    pub quote_code: String,
    /// A new appointment time. Placeholders: `{site}`, `{number}`, `{time}` (the site's local time).
    pub appointment: String,
}

impl Default for Templates {
    fn default() -> Self {
        Self {
            arrival_code: "【{site}】您的报修单{number}已受理。维修师傅上门时，请向师傅提供验证码{code}。".into(),
            quote_code:
                "【{site}】报修单{number}的有偿维修报价为{amount}元（{covers}）。如同意，请向师傅提供确认码{code}。"
                    .into(),
            appointment: "【{site}】您的报修单{number}的上门时间已改为{time}。如有疑问请致电管理处。".into(),
        }
    }
}

impl Templates {
    pub fn text(&self, name: &str) -> &str {
        match name {
            QUOTE_CODE => &self.quote_code,
            APPOINTMENT => &self.appointment,
            _ => &self.arrival_code,
        }
    }
}

/// Fills `{name}` placeholders from `params`.
pub fn render(template: &str, params: &BTreeMap<String, String>) -> String {
    params.iter().fold(template.to_owned(), |text, (k, v)| text.replace(&format!("{{{k}}}"), v))
}

/// Cents as yuan for people: `12345` → `123.45`.
pub fn yuan(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_the_site_ticket_and_code() {
        let params: BTreeMap<String, String> =
            [("site", "光谷一期"), ("number", "GY-20261122-0001"), ("code", "123456")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let text = render(&Templates::default().arrival_code, &params);
        assert!(text.contains("光谷一期") && text.contains("GY-20261122-0001") && text.contains("123456"));
        assert!(!text.contains('{'));
        assert_eq!(yuan(12345), "123.45");
    }
}
