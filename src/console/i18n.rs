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

/// The server's field messages, in Chinese where the desk meets them; others as they are.
pub fn message(lang: Lang, field: &str, message: &str) -> String {
    if lang == Lang::En {
        return message.to_owned();
    }
    let known = [
        ("is required", "必填"),
        ("must not be blank", "不能为空"),
        ("must be a mainland mobile", "手机号格式不对：请填 11 位手机号（如 13812345678）或 +国家码"),
        ("a +86 mobile number has 11 digits", "+86 手机号应为 13 至 19 开头的 11 位数字"),
        ("is not a site of yours", "不是您负责的项目"),
        ("is not an active technician", "不是该项目在岗的维修师傅"),
        ("is required to reassign", "改派已接单的工单须填写原因"),
        ("must be in the future", "须晚于现在"),
        ("must be one of", "取值不对"),
        ("must be at most", "太长"),
    ];
    match known.iter().find(|(en, _)| message.contains(en)) {
        Some((_, zh)) => (*zh).to_owned(),
        None => format!("{field}: {message}"),
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

    #[test]
    fn a_bad_phone_is_explained_in_chinese() {
        let m = message(Lang::Zh, "reporter_phone", "must be a mainland mobile (13812345678) or an E.164 number");
        assert!(m.starts_with("手机号"), "{m}");
    }
}
