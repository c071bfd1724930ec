//! The desk finds tickets: by text in Chinese (substrings of the place, however it was typed, the
//! description, the reporter, the phone's digits), by number, and by filters.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::tickets::{desk_with, ticket_body, Desk};

async fn make(d: &Desk, location: &str, description: &str, phone: &str, category: &str) -> Value {
    let mut body = ticket_body(&d.site);
    body["location"] = json!(location);
    body["description"] = json!(description);
    body["reporter_phone"] = json!(phone);
    body["category"] = json!(category);
    d.create(&body).await
}

async fn find(d: &Desk, query: &str) -> Vec<String> {
    let res = d.app.get(&format!("/api/v1/tickets?{query}"), &d.desk).await;
    assert_eq!(res.status(), 200, "{query}");
    let list: Value = res.json().await.unwrap();
    list["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect()
}

fn q(text: &str) -> String {
    format!("q={}", percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC))
}

fn id(t: &Value) -> String {
    t["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_desk_finds_tickets_by_any_part_of_what_it_knows() {
    let d = desk_with(&[]).await;
    let a = make(&d, "3栋2单元1502", "厨房水管漏水", "13812345678", "water").await;
    let b = make(&d, "5栋1单元302", "客厅灯不亮", "13900001502", "electric").await;
    let c = make(&d, "3栋地下车库", "车库顶棚漏水", "13700000000", "water").await;
    let mut both = vec![id(&a), id(&c)];
    both.sort();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // a place's number (and a phone ending the same way), words of two characters, a building
    assert_eq!(sorted(find(&d, &q("1502")).await), sorted(vec![id(&a), id(&b)]));
    assert_eq!(sorted(find(&d, &q("漏水")).await), both);
    assert_eq!(sorted(find(&d, &q("3栋")).await), both);
    // the same room however it is typed
    for typed in ["3栋2单元 1502", "３幢２单元１５０２室", "3号楼2单元1502"] {
        assert_eq!(find(&d, &q(typed)).await, [id(&a)], "{typed}");
    }
    assert_eq!(find(&d, &q("1390000")).await, [id(&b)], "the phone's digits");
    assert_eq!(find(&d, &q("灯不亮")).await, [id(&b)]);
    assert!(find(&d, &q("燃气")).await.is_empty());
    assert!(find(&d, &q("100%")).await.is_empty(), "a % is text, not a wildcard");
    // the number typed: that ticket first
    let number = c["number"].as_str().unwrap();
    assert_eq!(find(&d, &q(number)).await[0], id(&c));
    assert_eq!(find(&d, &q(&number.to_lowercase())).await[0], id(&c));
    // with the filters
    assert_eq!(find(&d, &format!("{}&category=water", q("漏水"))).await.len(), 2);
    assert_eq!(find(&d, "category=electric").await, [id(&b)]);
    assert!(find(&d, "urgency=emergency").await.is_empty());
    assert_eq!(find(&d, "area=in_home&paid=false").await.len(), 3);
    assert_eq!(find(&d, "status=open,assigned").await.len(), 3);
    assert!(find(&d, "escalated=true").await.is_empty());
    assert_eq!(find(&d, "escalated=false").await.len(), 3);
    assert!(find(&d, "completed_after=2026-01-01T00:00:00Z").await.is_empty());
}

#[tokio::test]
async fn a_search_is_refused_for_bad_filters_and_limited_to_what_the_caller_sees() {
    let d = desk_with(&[]).await;
    make(&d, "3栋2单元1502", "厨房水管漏水", "13812345678", "water").await;
    for (query, field) in [
        ("category=magic", "category"),
        ("area=roof", "area"),
        ("urgency=soon", "urgency"),
        ("paid=maybe", "paid"),
        ("escalated=2", "escalated"),
        ("completed_after=yesterday", "completed_after"),
    ] {
        let res = d.app.get(&format!("/api/v1/tickets?{query}"), &d.desk).await;
        let problem = assert_problem(res, 422, "validation_failed").await;
        assert!(problem.to_string().contains(field), "{query}: {problem}");
    }
    let long = "漏".repeat(201);
    assert_problem(d.app.get(&format!("/api/v1/tickets?{}", q(&long)), &d.desk).await, 422, "validation_failed").await;
    // a technician finds only their own tickets
    let (_, tech) = d.technician("tech1").await;
    let res = d.app.get(&format!("/api/v1/tickets?{}", q("漏水")), &tech).await;
    assert!(res.json::<Value>().await.unwrap()["items"].as_array().unwrap().is_empty());
    // another site's desk finds nothing of this one
    let other_site = d.app.create_site(&d.admin, "HY").await;
    let (_, other) = d.app.user_token(&d.admin, "desk2", "dispatcher", &[&other_site], &[]).await;
    let res = d.app.get(&format!("/api/v1/tickets?{}", q("1502")), &other).await;
    assert!(res.json::<Value>().await.unwrap()["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_edit_is_found_by_its_new_words() {
    let d = desk_with(&[]).await;
    let t = make(&d, "3栋2单元1502", "厨房水管漏水", "13812345678", "water").await;
    let body = json!({ "version": t["version"], "location": "7栋1单元801", "description": "阳台地漏堵塞" });
    assert_eq!(d.app.patch(&format!("/api/v1/tickets/{}", id(&t)), &d.desk, &body).await.status(), 200);
    assert_eq!(find(&d, &q("地漏堵塞")).await, [id(&t)]);
    assert_eq!(find(&d, &q("7栋1单元 801")).await, [id(&t)]);
    assert!(find(&d, &q("厨房水管")).await.is_empty());
}
