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
    assert!(find(&d, &q("\"1502\" OR 漏水")).await.is_empty(), "quotes and OR are text, not the index's syntax");
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

/// Writes `n` tickets into the site straight to the database, one second apart, the newest
/// first, written by the user `by`; every `every`-th says `common`, the rest `rare` (with the
/// ticket's index).
fn fill(d: &Desk, by: &str, n: usize, every: usize, common: &str, rare: &str) {
    use diesel::prelude::*;
    use repairdesk::db::{self, schema::tickets, tickets::TicketRow, DatabaseUrl, DbConn};
    use repairdesk::domain::category::Category;
    use repairdesk::domain::ticket::{Area, Channel, NewTicket, Urgency};
    let pool = db::connect(&DatabaseUrl::parse(&d.app.db_url).unwrap(), 1).unwrap();
    let mut conn = pool.get().unwrap();
    let now = db::now();
    let rows: Vec<TicketRow> = (0..n)
        .map(|i| {
            let description = if i % every == 0 { common.to_owned() } else { format!("{rare}{i}") };
            let new = NewTicket {
                site_id: d.site.clone(),
                area: Area::InHome,
                location: format!("{}栋{}单元{}", i % 30 + 1, i % 6 + 1, i),
                category: Category::Water,
                urgency: Urgency::Normal,
                paid: false,
                description,
                reporter_name: "王女士".into(),
                reporter_phone: None,
                appointment_at: None,
                resident_supplies_parts: false,
                channel: Channel::Phone,
                requested_technician_id: None,
            };
            let at = now - chrono::Duration::seconds(i as i64 + 60);
            TicketRow::from_intake(new, format!("GY-20261203-{i:05}"), by.to_owned(), at).with_search_text()
        })
        .collect();
    for chunk in rows.chunks(300) {
        match &mut *conn {
            DbConn::Sqlite(c) => diesel::insert_into(tickets::table).values(chunk).execute(c).unwrap(),
            DbConn::Postgres(c) => diesel::insert_into(tickets::table).values(chunk).execute(c).unwrap(),
        };
    }
}

#[tokio::test]
async fn a_text_found_in_thousands_of_tickets_is_paged_newest_first_like_a_rare_one() {
    // past db::tickets::COMMON_MATCHES, SQLite reads such a text row by row, newest first; the
    // answer is the same as from the search index
    let d = desk_with(&[]).await;
    let n = 2 * repairdesk::db::tickets::COMMON_MATCHES as usize + 200;
    let me: Value = json_of(d.app.get("/api/v1/me", &d.desk).await).await;
    fill(&d, me["id"].as_str().unwrap(), n, 2, "卫生间地漏堵塞", "客厅插座没电");
    let newest = make(&d, "9栋1单元101", "阳台地漏堵塞返味", "13812345678", "water").await;

    // which way SQLite read it: the statements the first page ran
    let sqlite = d.app.db_url.starts_with("sqlite");
    let from_the_index = |sql: &[String]| sql.iter().any(|s| s.contains("rowid IN (SELECT rowid FROM ticket_search"));
    d.app.statements.take_recorded();
    d.app.statements.record(true);
    let mut seen = vec![];
    let mut query = format!("{}&limit=200", q("地漏堵塞"));
    for _ in 0..3 {
        let res = d.app.get(&format!("/api/v1/tickets?{query}"), &d.desk).await;
        let page: Value = res.json().await.unwrap();
        for t in page["items"].as_array().unwrap() {
            assert!(t["description"].as_str().unwrap().contains("地漏堵塞"), "{t}");
            seen.push(t["number"].as_str().unwrap().to_owned());
        }
        query = format!("{}&limit=200&cursor={}", q("地漏堵塞"), page["next_cursor"].as_str().unwrap());
    }
    let common = d.app.statements.take_recorded();
    if sqlite {
        assert!(common.iter().any(|s| s.contains("LIMIT ?))")), "the index's rows were counted: {common:?}");
        assert!(!from_the_index(&common), "a common text is read row by row: {common:?}");
    }
    // the ticket made last, then the filled ones in the order they were made, newest first
    assert_eq!(seen[0], newest["number"].as_str().unwrap());
    let expected: Vec<String> = (0..599).map(|k| format!("GY-20261203-{:05}", 2 * k)).collect();
    assert_eq!(seen[1..], expected[..]);

    // a text in a few of them still comes from the search index, whole
    let rare = find(&d, &q("客厅插座没电1999")).await;
    assert_eq!(rare.len(), 1);
    d.app.statements.record(false);
    if sqlite {
        let sql = d.app.statements.take_recorded();
        assert!(from_the_index(&sql), "a rare text comes from the index: {sql:?}");
    }
}
