//! The console's two languages: Chinese (the desk's, the default) and English, chosen by the
//! `lang` query parameter or cookie. Every label is a pair written where it is used, or one of
//! the names below for the domain's stored values.

use actix_web::HttpRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

pub const COOKIE: &str = "lang";

impl Lang {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "zh" | "zh-CN" => Some(Self::Zh),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    /// `?lang=` first, then the cookie; Chinese otherwise.
    pub fn of(req: &HttpRequest) -> Self {
        let query = form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Self::parse(&v));
        query.or_else(|| req.cookie(COOKIE).and_then(|c| Self::parse(c.value()))).unwrap_or(Self::Zh)
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Zh => "zh",
            Self::En => "en",
        }
    }

    pub fn html_lang(self) -> &'static str {
        match self {
            Self::Zh => "zh-CN",
            Self::En => "en",
        }
    }

    pub fn other(self) -> Self {
        match self {
            Self::Zh => Self::En,
            Self::En => Self::Zh,
        }
    }

    /// One label in this language.
    pub fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Self::Zh => zh,
            Self::En => en,
        }
    }

    /// The label of a stored value (a status, a category...), or the value itself when it has none.
    pub fn name(self, value: &str) -> &str {
        match NAMES.iter().find(|(v, _, _)| *v == value) {
            Some((_, zh, en)) => self.t(zh, en),
            None => value,
        }
    }
}

/// Stored values and their labels. One table for every enum: their values do not collide
/// where they mean different things (`open` is a ticket's and a matter's first status in both).
const NAMES: &[(&str, &str, &str)] = &[
    // ticket statuses
    ("open", "待接单", "Open pool"),
    ("assigned", "已派单", "Assigned"),
    ("on_site", "在现场", "On site"),
    ("on_hold", "暂停", "On hold"),
    ("awaiting_inspection", "待验收", "Awaiting inspection"),
    ("completed", "已完成", "Completed"),
    ("closed", "已回访关闭", "Closed"),
    ("cancelled", "已作废", "Cancelled"),
    ("declined", "报价被拒", "Declined"),
    // categories
    ("water", "水", "Water"),
    ("electric", "电", "Electric"),
    ("gas", "燃气", "Gas"),
    ("elevator", "电梯", "Elevator"),
    ("hvac", "空调暖通", "HVAC"),
    ("door_window", "门窗", "Doors & windows"),
    ("general", "综合维修", "General"),
    ("other", "其他", "Other"),
    // urgency, area, channel
    ("normal", "一般", "Normal"),
    ("emergency", "紧急", "Emergency"),
    ("in_home", "户内", "In home"),
    ("public", "公共区域", "Public area"),
    ("phone", "电话", "Phone"),
    ("app", "App", "App"),
    ("wechat", "微信", "WeChat"),
    ("walk_in", "前台", "Walk-in"),
    ("patrol", "巡检", "Patrol"),
    // escalations
    ("unclaimed", "无人接单", "Unclaimed"),
    ("late_arrival", "未按时到场", "Late arrival"),
    ("stalled", "长时间无进展", "Stalled"),
    ("sms_failed", "短信失败", "SMS failed"),
    ("technician_removed", "师傅被移出", "Technician removed"),
    ("unreplied", "报事未答复", "Unreplied matter"),
    // history
    ("created", "登记", "Registered"),
    ("claimed", "抢单", "Claimed"),
    ("released", "退回单池", "Released"),
    ("reassigned", "改派", "Reassigned"),
    ("unassigned", "退回单池", "Unassigned"),
    ("arrived", "到场", "Arrived"),
    ("verified_by_phone", "电话核实", "Verified by phone"),
    ("code_resent", "重发验证码", "Code resent"),
    ("material_added", "添加材料", "Material added"),
    ("material_updated", "修改材料", "Material changed"),
    ("material_removed", "删除材料", "Material removed"),
    ("note", "备注", "Note"),
    ("note_added", "备注", "Note"),
    ("sms_sent", "短信已发出", "SMS sent"),
    ("not_required", "无需验证码（公共区域）", "Not required (public area)"),
    ("code", "业主验证码", "Resident's code"),
    ("held", "暂停", "Put on hold"),
    ("resumed", "恢复", "Resumed"),
    ("quoted", "报价", "Quoted"),
    ("quote_accepted", "接受报价", "Quote accepted"),
    ("quote_declined", "拒绝报价", "Quote declined"),
    ("inspected", "验收", "Inspected"),
    ("callback", "回访", "Callback"),
    ("escalated", "升级提醒", "Escalated"),
    ("escalation_acknowledged", "确认升级提醒", "Escalation acknowledged"),
    ("edited", "修改", "Edited"),
    // holds
    ("awaiting_parts", "等配件", "Awaiting parts"),
    ("needs_assessment", "需评估", "Needs assessment"),
    ("resident_absent", "业主不在", "Resident absent"),
    // quotes, SMS
    ("pending", "待确认", "Pending"),
    ("accepted", "已接受", "Accepted"),
    ("sending", "发送中", "Sending"),
    ("sent", "已发送", "Sent"),
    ("failed", "失败", "Failed"),
    ("superseded", "已被新码取代", "Superseded"),
    ("all", "全包价", "All in"),
    ("labour", "仅人工费", "Labour only"),
    ("company", "公司", "Company"),
    ("resident", "业主自备", "Resident"),
    ("arrival_code", "上门验证码", "Door code"),
    ("quote_code", "报价验证码", "Quote code"),
    ("appointment", "预约时间", "Appointment"),
    // matters, handovers
    ("complaint", "投诉", "Complaint"),
    ("inquiry", "咨询", "Inquiry"),
    ("suggestion", "建议", "Suggestion"),
    ("praise", "表扬", "Praise"),
    ("replied", "已答复", "Replied"),
    ("engineering", "工程部", "Engineering"),
    ("customer_service", "客服部", "Customer service"),
    ("security", "秩序部", "Security"),
    ("cleaning", "保洁部", "Cleaning"),
    ("landscaping", "绿化部", "Landscaping"),
    ("day", "白班", "Day"),
    ("night", "夜班", "Night"),
    // roles
    ("admin", "管理员", "Admin"),
    ("dispatcher", "调度", "Dispatcher"),
    ("supervisor", "主管", "Supervisor"),
    ("technician", "维修师傅", "Technician"),
];

/// A text a message holds, and its Chinese from the limit the message names.
type Rule<'a> = (&'static str, &'a dyn Fn(Option<u64>) -> String);

/// The server's field messages, in Chinese where the desk meets them (every message a desk form
/// can bring back: intake, edit, the ticket's actions, matters, handovers, the report); another,
/// with its field's name, as it is.
pub fn message(lang: Lang, field: &str, message: &str) -> String {
    if lang == Lang::En {
        return message.to_owned();
    }
    // the first rule whose text the message holds: the more particular ones first
    let rules: &[Rule<'_>] = &[
        ("is required for in-home tickets", &|_| "户内报修必填手机号：上门验证码发到这个号码".into()),
        ("is required to reassign", &|_| "改派已接单的工单须填写原因".into()),
        ("a +86 mobile number has 11 digits", &|_| "+86 手机号应为 13 至 19 开头的 11 位数字".into()),
        ("an E.164 number has", &|_| "国际号码应为 + 加国家码，共 8 至 15 位数字，不以 0 开头".into()),
        ("must be a mainland mobile", &|_| "手机号格式不对：请填 11 位手机号（如 13812345678）或 +国家码".into()),
        ("characters", &|n| match n {
            Some(n) if message_says_required(message) => format!("必填，且不超过 {n} 个字"),
            Some(n) => format!("不能超过 {n} 个字"),
            None => "太长".into(),
        }),
        ("is not a site of yours", &|_| "不是您负责的项目".into()),
        ("is not an active technician", &|_| "不是该项目在岗的维修师傅".into()),
        ("report covers one site at a time", &|_| "调度员的报表一次只能看一个项目".into()),
        ("must be a month", &|_| "月份格式应为 年-月，如 2026-11".into()),
        ("is not a time", &|_| "时间格式不对".into()),
        ("must not be in the past", &|_| "不能早于现在".into()),
        ("must be in the future", &|_| "须晚于现在".into()),
        ("must be within", &|n| format!("须在 {} 天之内", n.unwrap_or(0))),
        ("only a resident who was reached can rate", &|_| "未联系上业主时不能评满意度".into()),
        ("only a reporter who was reached can rate", &|_| "未联系上报事人时不能评满意度".into()),
        ("must be 1 to 5", &|_| "须为 1 至 5".into()),
        ("must be a whole number", &|_| "须为整数".into()),
        ("must be day or night", &|_| "须为白班或夜班".into()),
        ("must be one of", &|_| "取值不对，请从列表中选择".into()),
        ("must not be blank", &|_| "不能为空".into()),
        ("is required", &|_| "必填".into()),
        ("holds a NUL character", &|_| "含有不允许的字符".into()),
        ("is incomplete", &|_| "内容不完整".into()),
        ("must be code or phone", &|_| "取值不对".into()),
        ("must be a UUID", &|_| "编号格式不对".into()),
        ("must be at most", &|_| "太长".into()),
        ("is not in this site's catalogue", &|_| "不在本项目的材料目录中".into()),
        ("belongs to another ticket", &|_| "属于另一张工单".into()),
        ("sites at once", &|n| format!("一次最多 {} 个项目", n.unwrap_or(0))),
        ("must be 1 to", &|n| format!("须为 1 至 {}", n.unwrap_or(0))),
    ];
    match rules.iter().find(|(en, _)| message.contains(en)) {
        Some((_, zh)) => zh(last_number(message)),
        None => format!("{field}: {message}"),
    }
}

/// "must be 1 to 500 characters": required as well as bounded.
fn message_says_required(message: &str) -> bool {
    message.contains("must be 1 to")
}

/// The last whole number a message names (a limit: "at most 200 characters" → 200).
fn last_number(message: &str) -> Option<u64> {
    message.split(|c: char| !c.is_ascii_digit()).rfind(|s| !s.is_empty()).and_then(|s| s.parse().ok())
}

/// What a refused command says about the whole form (no field named), in the desk's words.
pub fn problem(lang: Lang, code: crate::error::ErrorCode, detail: &str) -> String {
    use crate::error::ErrorCode as C;
    if lang == Lang::En {
        return detail.to_owned();
    }
    match code {
        C::VersionConflict | C::TicketChanged => "工单刚被他人修改过，请看最新内容后再操作。".into(),
        C::InvalidTransition => format!("当前状态下不能这样操作（{detail}）"),
        C::AlreadyAcknowledged => "已有同事确认过。".into(),
        C::OwnHandover => "交班人不能自己接班，请由下一班确认。".into(),
        C::SmsRateLimited => format!("短信发送太频繁（{detail}）"),
        C::TooManyActive => format!("该师傅手上的工单已达上限（{detail}）"),
        C::NotFound => "未找到：可能已被删除，或不属于您负责的项目。".into(),
        C::Forbidden => format!("无权操作（{detail}）"),
        C::DatabaseBusy | C::DatabaseUnavailable => "系统繁忙，请稍后再试。".into(),
        C::QuoteRequired => format!("需先有业主确认的报价（{detail}）"),
        _ => format!("操作未成功：{detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_and_category_has_a_chinese_label() {
        use crate::domain::category::Category;
        use crate::domain::ticket::Status;
        for s in Status::ALL {
            assert_ne!(Lang::Zh.name(s.as_str()), s.as_str(), "{s}");
        }
        for c in Category::ALL {
            assert_ne!(Lang::Zh.name(c.as_str()), c.as_str(), "{}", c.as_str());
        }
    }

    /// Every message a desk form can bring back reads in Chinese, with the limit it names.
    #[test]
    fn the_desk_forms_messages_are_all_in_chinese() {
        let samples = [
            ("reporter_phone", "is required for in-home tickets: the resident's code goes to it"),
            ("reporter_phone", "an E.164 number has 8 to 15 digits after + and no leading 0"),
            ("reason", "is required to reassign a ticket that is on_site"),
            ("reason", "must be 1 to 500 characters"),
            ("location", "must be at most 200 characters"),
            ("note", "is required"),
            ("description", "must not be blank"),
            ("category", "must be one of water, electric"),
            ("kind", "is required: one of complaint, inquiry"),
            ("appointment_at", "must not be in the past"),
            ("appointment_at", "must be within 90 days"),
            ("appointment_at", "is not a time"),
            ("satisfaction", "must be 1 to 5"),
            ("satisfaction", "only a resident who was reached can rate"),
            ("satisfaction", "must be a whole number"),
            ("shift", "is required: day or night"),
            ("month", "must be a month written YYYY-MM, such as 2026-11"),
            ("site_id", "x is not a site of yours"),
            ("site_id", "is required: the site whose month to report"),
            ("requested_technician_id", "is not an active technician of this site"),
            ("form", "holds a NUL character"),
        ];
        for (field, m) in samples {
            let zh = message(Lang::Zh, field, m);
            assert!(!zh.starts_with(field) && zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{m}: {zh}");
        }
        assert_eq!(message(Lang::Zh, "reason", "must be 1 to 500 characters"), "必填，且不超过 500 个字");
        assert_eq!(message(Lang::Zh, "location", "must be at most 200 characters"), "不能超过 200 个字");
        assert_eq!(
            message(Lang::Zh, "reason", "is required to reassign a ticket that is on_site"),
            "改派已接单的工单须填写原因"
        );
        assert_eq!(message(Lang::En, "note", "is required"), "is required");
    }

    #[test]
    fn a_bad_phone_is_explained_in_chinese() {
        let m = message(Lang::Zh, "reporter_phone", "must be a mainland mobile (13812345678) or an E.164 number");
        assert!(m.starts_with("手机号"), "{m}");
    }
}
