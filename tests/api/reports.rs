//! The monthly report (issue 16): a month of a site whose every figure is known in advance,
//! read back as JSON, as zipped CSV and as a workbook.
//!
//! The server answers over HTTP; the month is lived through the same commands its routes call,
//! on its database, each at a chosen `now` (a route takes the wall clock, and a month cannot be
//! waited for). Users and sites are made over HTTP.

use std::io::{Cursor, Read};

use calamine::{Data, Reader, Xlsx};
use chrono::{Duration, NaiveDate, NaiveDateTime};
use repairdesk::auth::Caller;
use repairdesk::commands::{
    self, AcceptQuoteBody, ArriveBody, CallbackBody, CompleteBody, Ctx, Error, InspectBody, NewMaterial,
    PhoneVerification, QuoteBody, ReasonBody, ReplyBody,
};
use repairdesk::db::{self, tickets::TicketRow, DatabaseUrl, DbConn, Pool};
use repairdesk::domain::matter::MatterForm;
use repairdesk::domain::ticket::TicketForm;
use repairdesk::domain::user::Role;
use repairdesk::views::Viewer;
use serde_json::{json, Value};

use crate::helpers::*;

/// A time in Shanghai (UTC+8, the test sites' zone), as the UTC the database keeps.
fn local(month: u32, day: u32, hour: u32, minute: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, month, day).unwrap().and_hms_opt(hour, minute, 0).unwrap() - Duration::hours(8)
}

struct Month {
    app: TestApp,
    pool: Pool,
    ctx: Ctx,
    site: String,
    other_site: String,
    admin: String,
    admin_caller: Caller,
    desk: Caller,
    /// Tokens of: the site's dispatcher, a supervisor of both sites, the other site's dispatcher,
    /// a technician.
    desk_token: String,
    supervisor_token: String,
    other_desk_token: String,
    tech_token: String,
    t1: Caller,
    t2: Caller,
    t1_id: String,
    t2_id: String,
}

fn caller(id: &str, role: Role) -> Caller {
    Caller { user_id: id.to_owned(), session_id: db::new_id(), role, membership: None }
}

impl Month {
    fn run<T>(
        &self,
        who: &Caller,
        at: NaiveDateTime,
        work: impl Fn(&mut DbConn, &Ctx, &Viewer, NaiveDateTime) -> Result<T, Error>,
    ) -> T {
        let mut conn = self.pool.get().unwrap();
        db::write_transaction(&mut conn, |conn| {
            let viewer = Viewer::load(conn, who.clone())?;
            work(conn, &self.ctx, &viewer, at)
        })
        .unwrap_or_else(|e| panic!("at {at}: {e:?}"))
    }

    fn create(&self, at: NaiveDateTime, f: impl FnOnce(&mut TicketForm)) -> TicketRow {
        self.create_at(&self.site, at, f)
    }

    fn create_at(&self, site: &str, at: NaiveDateTime, f: impl FnOnce(&mut TicketForm)) -> TicketRow {
        let n = at.and_utc().timestamp() % 100_000_000;
        let mut form = TicketForm {
            site_id: Some(site.to_owned()),
            area: Some("in_home".into()),
            location: Some(format!("{n}室")),
            category: Some("water".into()),
            urgency: Some("normal".into()),
            description: Some("厨房水管漏水".into()),
            reporter_name: Some("王女士".into()),
            reporter_phone: Some(format!("138{n:08}")),
            channel: Some("phone".into()),
            ..Default::default()
        };
        f(&mut form);
        self.run(&self.desk_of(site), at, |c, ctx, v, now| commands::create_ticket(c, ctx, v, &form, None, now))
    }

    fn desk_of(&self, site: &str) -> Caller {
        if site == self.site {
            self.desk.clone()
        } else {
            self.admin_caller.clone()
        }
    }

    fn claim(&self, tech: &Caller, id: &str, at: NaiveDateTime) {
        self.run(tech, at, |c, ctx, v, now| commands::claim(c, ctx, v, id, now));
    }

    /// The desk vouches by phone (in-home tickets: no code to read out), then the technician
    /// checks in.
    fn arrive(&self, tech: &Caller, t: &TicketRow, at: NaiveDateTime) -> TicketRow {
        if t.area == "in_home" {
            let note = PhoneVerification { note: "业主确认师傅已到".into() };
            self.run(&self.desk, at, |c, _, v, now| commands::verify_by_phone(c, v, &t.id, note.clone(), now));
        }
        let body = ArriveBody { code: None, lat: None, lng: None, device_time: None };
        self.run(tech, at, |c, ctx, v, now| commands::arrive(c, ctx, v, &t.id, body.clone(), now).map(|r| r.unwrap()))
    }

    fn material(&self, tech: &Caller, id: &str, at: NaiveDateTime, line: (&str, Option<&str>, &str, &str, i64, &str)) {
        let (name, spec, quantity, unit, price, supplied_by) = line;
        let m = NewMaterial {
            id: None,
            catalogue_item_id: None,
            name: Some(name.into()),
            spec: spec.map(Into::into),
            model: None,
            quantity: quantity.into(),
            unit: Some(unit.into()),
            unit_price_cents: Some(price),
            supplied_by: supplied_by.into(),
            version: None,
        };
        self.run(tech, at, |c, _, v, now| commands::add_material(c, v, id, m.clone(), now));
    }

    fn complete(&self, tech: &Caller, id: &str, at: NaiveDateTime, rating: Option<i64>, fee: Option<i64>) -> TicketRow {
        let body = CompleteBody {
            result: "修好了".into(),
            resident_rating: rating,
            resident_signature_png_base64: None,
            fee_collected_cents: fee,
        };
        self.run(tech, at, |c, _, v, now| commands::complete(c, v, id, body.clone(), now))
    }

    fn callback(&self, id: &str, at: NaiveDateTime, reached: bool, satisfaction: Option<i64>) {
        let body = CallbackBody { reached, satisfaction, comment: None };
        self.run(&self.desk, at, |c, _, v, now| commands::callback(c, v, id, body.clone(), now));
    }

    fn cancel(&self, id: &str, at: NaiveDateTime, reason: &str) {
        let body = ReasonBody { reason: reason.into() };
        self.run(&self.desk, at, |c, _, v, now| commands::cancel(c, v, id, body.clone(), now));
    }

    fn inspect(&self, id: &str, at: NaiveDateTime) {
        let body = InspectBody { passed: true, note: None };
        self.run(&self.desk, at, |c, _, v, now| commands::inspect(c, v, id, body.clone(), now));
    }

    async fn report(&self, query: &str, token: &str) -> reqwest::Response {
        self.app.get(&format!("/api/v1/reports/monthly?{query}"), token).await
    }

    async fn json(&self, query: &str) -> Value {
        let res = self.report(query, &self.desk_token).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/json");
        res.json().await.unwrap()
    }

    async fn bytes(&self, query: &str, content_type: &str) -> Vec<u8> {
        let res = self.report(query, &self.desk_token).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], content_type);
        assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename="));
        res.bytes().await.unwrap().to_vec()
    }
}

/// Two sites (Shanghai, and Berlin for a total across zones), their desks, two technicians.
async fn world() -> Month {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let admin_id =
        app.get("/api/v1/me", &admin).await.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let site = app.create_site(&admin, "GY").await;
    let res = app
        .post("/api/v1/sites", &admin, &json!({ "code": "HX", "name": "和协花园", "timezone": "Europe/Berlin" }))
        .await;
    assert_eq!(res.status(), 201);
    let other_site = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let (desk_id, desk_token) = app.user_token(&admin, "desk", "dispatcher", &[&site], &[]).await;
    let (_, supervisor_token) = app.user_token(&admin, "boss", "supervisor", &[&site, &other_site], &[]).await;
    let (_, other_desk_token) = app.user_token(&admin, "hx-desk", "dispatcher", &[&other_site], &[]).await;
    let (t1_id, tech_token) = app.user_token(&admin, "tech-a", "technician", &[&site], &["water", "electric"]).await;
    let (t2_id, _) = app.user_token(&admin, "tech-b", "technician", &[&site], &["water"]).await;
    let pool = db::connect(&DatabaseUrl::parse(&app.db_url).unwrap(), 2).unwrap();
    let ctx = Ctx {
        code_key: b"report-test-code-key".to_vec(),
        clock: Default::default(),
        max_active_tickets: 5,
        sms_policy: Default::default(),
    };
    Month {
        pool,
        ctx,
        admin_caller: caller(&admin_id, Role::Admin),
        desk: caller(&desk_id, Role::Dispatcher),
        t1: caller(&t1_id, Role::Technician),
        t2: caller(&t2_id, Role::Technician),
        app,
        site,
        other_site,
        admin,
        desk_token,
        supervisor_token,
        other_desk_token,
        tech_token,
        t1_id,
        t2_id,
    }
}

/// October 2026 at GY, as `docs/reports.md`'s worked example tells it.
async fn october() -> Month {
    let m = world().await;
    let (t1, t2) = (m.t1.clone(), m.t2.clone());
    let o = |day, hour, minute| local(10, day, hour, minute);

    // A: in-home water, on time (14 of 20 minutes), a company and a resident line, rated 5,
    // called back and reached in an hour (satisfaction 5); reworked later by H
    let a = m.create(o(5, 10, 0), |f| f.location = Some("1栋101".into()));
    m.claim(&t1, &a.id, o(5, 10, 1));
    m.arrive(&t1, &a, o(5, 10, 15));
    m.material(&t1, &a.id, o(5, 10, 20), ("PPR 管", Some("DN20"), "1.5", "m", 1200, "company"));
    m.material(&t1, &a.id, o(5, 10, 21), ("水龙头", None, "1", "个", 3500, "resident"));
    m.complete(&t1, &a.id, o(5, 11, 0), Some(5), None);
    m.callback(&a.id, o(5, 12, 0), true, Some(5));

    // B: app, late (30 minutes), rated 3; the first callback misses, the second reaches (4)
    let b = m.create(o(6, 10, 0), |f| f.channel = Some("app".into()));
    m.claim(&t1, &b.id, o(6, 10, 0));
    m.arrive(&t1, &b, o(6, 10, 30));
    m.complete(&t1, &b.id, o(6, 11, 30), Some(3), None);
    m.callback(&b.id, o(7, 11, 30), false, None);
    m.callback(&b.id, o(8, 11, 30), true, Some(4));

    // C, D: public electric emergencies from a patrol and a call: 5 minutes (on time), 15 (late);
    // completed when the desk's inspection passes
    let public = |f: &mut TicketForm, channel: &str| {
        f.area = Some("public".into());
        f.category = Some("electric".into());
        f.urgency = Some("emergency".into());
        f.channel = Some(channel.into());
        f.reporter_phone = None;
    };
    let c = m.create(o(10, 8, 0), |f| public(f, "patrol"));
    m.claim(&t1, &c.id, o(10, 8, 0));
    m.arrive(&t1, &c, o(10, 8, 5));
    m.complete(&t1, &c.id, o(10, 8, 40), None, None);
    m.inspect(&c.id, o(10, 9, 0));
    let d = m.create(o(11, 8, 0), |f| public(f, "phone"));
    m.claim(&t1, &d.id, o(11, 8, 0));
    m.arrive(&t1, &d, o(11, 8, 15));
    m.complete(&t1, &d.id, o(11, 9, 0), None, None);
    m.inspect(&d.id, o(11, 9, 30));

    // E, F: appointments, at 14:00 (there at 13:50) and at 10:00 (there at 10:20)
    let e = m.create(o(12, 9, 0), |f| {
        f.channel = Some("wechat".into());
        f.appointment_at = Some(o(12, 14, 0).and_utc());
    });
    m.claim(&t2, &e.id, o(12, 9, 5));
    m.arrive(&t2, &e, o(12, 13, 50));
    m.complete(&t2, &e.id, o(12, 14, 30), Some(4), None);
    m.callback(&e.id, o(12, 16, 30), true, Some(3));
    let f_ = m.create(o(13, 9, 0), |f| {
        f.channel = Some("walk_in".into());
        f.appointment_at = Some(o(13, 10, 0).and_utc());
    });
    m.claim(&t2, &f_.id, o(13, 9, 5));
    m.arrive(&t2, &f_, o(13, 10, 20));
    m.complete(&t2, &f_.id, o(13, 11, 0), None, None);

    // G: paid (特约): 105 yuan for everything quoted and accepted by phone, a 25-yuan valve inside
    // it; the bill (105 yuan) collected at completion, rated 5; reached the next day (5)
    let g = m.create(o(14, 9, 0), |f| f.paid = Some(true));
    m.claim(&t2, &g.id, o(14, 9, 1));
    m.arrive(&t2, &g, o(14, 9, 10));
    let quote = QuoteBody { amount_cents: 10_500, covers: Some("all".into()), note: None };
    m.run(&t2, o(14, 9, 15), |c, ctx, v, now| commands::propose_quote(c, ctx, v, &g.id, quote.clone(), now));
    let consent = AcceptQuoteBody { code: None, via: Some("phone".into()), note: Some("业主电话同意".into()) };
    m.run(&m.desk, o(14, 9, 20), |c, ctx, v, now| {
        commands::accept_quote(c, ctx, v, &g.id, consent.clone(), now).map(|r| r.unwrap())
    });
    m.material(&t2, &g.id, o(14, 9, 30), ("角阀", Some("DN15"), "1", "个", 2500, "company"));
    m.complete(&t2, &g.id, o(14, 10, 0), Some(5), Some(10_500));
    m.callback(&g.id, o(15, 10, 0), true, Some(5));

    // H: the same place and trade as A within 30 days: rework of A (on time, not called back)
    let h = m.create(o(20, 10, 0), |f| f.location = Some("1栋101".into()));
    m.claim(&t2, &h.id, o(20, 10, 1));
    m.arrive(&t2, &h, o(20, 10, 10));
    let h = m.complete(&t2, &h.id, o(20, 10, 40), None, None);
    assert_eq!(h.rework_of.as_deref(), Some(a.id.as_str()));

    // I, J: voided
    let i = m.create(o(21, 9, 0), |f| f.category = Some("general".into()));
    m.cancel(&i.id, o(21, 9, 30), "业主自行修好");
    let j = m.create(o(22, 9, 0), |f| {
        public(f, "phone");
        f.category = Some("elevator".into());
    });
    m.cancel(&j.id, o(22, 10, 0), "重复报修");

    // K: the last evening, 23:30 local (15:30 UTC, still the 31st there): created in October;
    // arrived 35 minutes later, already November locally (late), and completed in November
    let k = m.create(o(31, 23, 30), |f| f.location = Some("7栋707".into()));
    m.claim(&t1, &k.id, o(31, 23, 35));
    m.arrive(&t1, &k, local(11, 1, 0, 10));
    m.complete(&t1, &k.id, local(11, 1, 0, 50), None, None);
    // L: 00:10 on 1 November local is 16:10 on 31 October in UTC: November's
    m.create(local(11, 1, 0, 10), |_| {});
    // M: 00:05 on 1 October local is 30 September in UTC: October's; N: the evening before is not
    m.create(o(1, 0, 5), |f| {
        f.category = Some("hvac".into());
        f.channel = Some("wechat".into());
    });
    m.create(local(9, 30, 23, 50), |_| {});

    // matters: a complaint replied in 10 hours and reached (4), an inquiry replied in 48 hours
    // and not reached, praise not replied to
    let matter = |kind: &str, department: &str, at| {
        let form: MatterForm = serde_json::from_value(json!({
            "site_id": m.site, "kind": kind, "department": department, "description": "楼道灯不亮",
            "reporter_name": "李先生", "channel": "phone"
        }))
        .unwrap();
        m.run(&m.desk, at, |c, _, v, now| commands::create_matter(c, v, &form, now)).row.id
    };
    let reply = |id: &str, at| {
        let body = ReplyBody { reply: Some("已处理".into()) };
        m.run(&m.admin_caller, at, |c, _, v, now| commands::reply_matter(c, v, id, body.clone(), now));
    };
    let call = |id: &str, at, reached: bool, satisfaction| {
        let body = CallbackBody { reached, satisfaction, comment: None };
        m.run(&m.desk, at, |c, _, v, now| commands::callback_matter(c, v, id, body.clone(), now));
    };
    let x = matter("complaint", "cleaning", o(8, 10, 0));
    reply(&x, o(8, 20, 0));
    call(&x, o(9, 10, 0), true, Some(4));
    let y = matter("inquiry", "customer_service", o(9, 10, 0));
    reply(&y, o(11, 10, 0));
    call(&y, o(11, 12, 0), false, None);
    matter("praise", "engineering", o(25, 10, 0));

    // the other site, in Berlin: one open ticket in its October
    let berlin = NaiveDate::from_ymd_opt(2026, 10, 15).unwrap().and_hms_opt(8, 0, 0).unwrap();
    m.create_at(&m.other_site.clone(), berlin, |f| {
        f.area = Some("public".into());
        f.category = Some("general".into());
        f.reporter_phone = None;
    });
    m
}

fn ids(m: &Month) -> (String, String) {
    (m.t1_id.clone(), m.t2_id.clone())
}

#[tokio::test]
async fn a_month_whose_every_figure_is_known_reads_the_same_as_json_csv_and_a_workbook() {
    let m = october().await;
    let r = m.json(&format!("site_id={}&month=2026-10", m.site)).await;
    assert_eq!(r["site_ids"], json!([m.site]));
    assert_eq!((&r["month"], &r["timezone"]), (&json!("2026-10"), &json!("Asia/Shanghai")));
    assert_eq!((&r["from"], &r["until"]), (&json!("2026-09-30T16:00:00Z"), &json!("2026-10-31T16:00:00Z")));
    assert_eq!(r["sites"], json!([]));
    assert_eq!(
        r["volume"],
        json!({
            "total": 12, "in_home": 9, "public": 3, "routine": 11, "paid": 1, "emergency": 3, "voided": 2,
            "by_channel": { "phone": 7, "app": 1, "wechat": 2, "walk_in": 1, "patrol": 1 }
        })
    );
    assert_eq!(
        r["on_time"],
        json!({
            "arrivals": 8, "on_time": 5, "rate": 0.625,
            "by_limit": [
                { "limit": "normal", "limit_minutes": 20, "arrivals": 4, "on_time": 3, "rate": 0.75 },
                { "limit": "emergency", "limit_minutes": 10, "arrivals": 2, "on_time": 1, "rate": 0.5 },
                { "limit": "appointment", "limit_minutes": null, "arrivals": 2, "on_time": 1, "rate": 0.5 },
            ]
        })
    );
    assert_eq!(r["rework"], json!({ "completed": 8, "rework": 1, "rate": 0.125 }));
    assert_eq!(
        r["callbacks"],
        json!({
            "completed": 8, "made": 4, "reached": 4, "rate": 0.5, "median_minutes_to_first": 780.0,
            "satisfaction": { "1": 0, "2": 0, "3": 1, "4": 1, "5": 2 },
            "matters": {
                "replied": 2, "made": 2, "reached": 1, "rate": 0.5, "median_minutes_to_first": 480.0,
                "satisfaction": { "1": 0, "2": 0, "3": 0, "4": 1, "5": 0 }
            }
        })
    );
    let trade =
        |category: &str| r["by_trade"].as_array().unwrap().iter().find(|t| t["category"] == category).unwrap().clone();
    assert_eq!(
        trade("water"),
        json!({
            "category": "water", "created": 7, "completed": 6, "material_cents": 4300,
            "resident_material_cents": 3500, "median_minutes_to_arrive": 22.5, "median_minutes_to_complete": 42.5
        })
    );
    assert_eq!(
        trade("electric"),
        json!({
            "category": "electric", "created": 2, "completed": 2, "material_cents": 0,
            "resident_material_cents": 0, "median_minutes_to_arrive": 10.0, "median_minutes_to_complete": 65.0
        })
    );
    assert_eq!((trade("general")["created"].clone(), trade("hvac")["created"].clone()), (json!(1), json!(1)));
    assert_eq!(trade("gas")["median_minutes_to_arrive"], Value::Null);
    assert_eq!(r["by_trade"].as_array().unwrap().len(), 8);
    let (t1, t2) = ids(&m);
    assert_eq!(
        r["technicians"],
        json!([
            { "technician_id": t1, "name": "tech-a", "completed": 4, "arrivals": 4, "on_time": 2, "on_time_rate": 0.5,
              "rework": 1, "ratings": 2, "average_rating": 4.0, "material_cents": 1800 },
            { "technician_id": t2, "name": "tech-b", "completed": 4, "arrivals": 4, "on_time": 3, "on_time_rate": 0.75,
              "rework": 0, "ratings": 2, "average_rating": 4.5, "material_cents": 2500 },
        ])
    );
    assert_eq!(
        r["fees"],
        json!({
            "quoted": 1, "quoted_cents": 10500, "accepted": 1, "accepted_cents": 10500, "declined": 0,
            "declined_cents": 0, "billed_cents": 12300, "collected_cents": 10500
        })
    );
    assert_eq!(
        r["materials"],
        json!([
            { "name": "PPR 管", "spec": "DN20", "unit": "m", "supplied_by": "company", "quantity": "1.5", "cost_cents": 1800 },
            { "name": "水龙头", "spec": null, "unit": "个", "supplied_by": "resident", "quantity": "1", "cost_cents": 3500 },
            { "name": "角阀", "spec": "DN15", "unit": "个", "supplied_by": "company", "quantity": "1", "cost_cents": 2500 },
        ])
    );
    let voided = r["voided"].as_array().unwrap();
    assert_eq!(
        voided.iter().map(|v| (v["cancelled_at"].clone(), v["reason"].clone())).collect::<Vec<_>>(),
        [(json!("2026-10-21T01:30:00Z"), json!("业主自行修好")), (json!("2026-10-22T02:00:00Z"), json!("重复报修"))]
    );
    assert!(voided[0]["number"].as_str().unwrap().starts_with("GY-20261021-"));
    assert_eq!(
        r["matters"],
        json!({
            "reply_hours": 24, "count": 3, "replied": 2, "replied_in_time": 1, "reply_rate": 1.0 / 3.0,
            "callbacks_made": 2, "callbacks_reached": 1, "callback_rate": 0.5,
            "by_kind": [
                { "kind": "complaint", "department": "cleaning", "count": 1, "replied": 1, "replied_in_time": 1,
                  "reply_rate": 1.0, "callbacks_made": 1, "callbacks_reached": 1, "callback_rate": 1.0 },
                { "kind": "inquiry", "department": "customer_service", "count": 1, "replied": 1, "replied_in_time": 0,
                  "reply_rate": 0.0, "callbacks_made": 1, "callbacks_reached": 0, "callback_rate": 0.0 },
                { "kind": "praise", "department": "engineering", "count": 1, "replied": 0, "replied_in_time": 0,
                  "reply_rate": 0.0, "callbacks_made": 0, "callbacks_reached": 0, "callback_rate": null },
            ]
        })
    );

    // November starts at local midnight: L (16:10 UTC on 31 October) and K's arrival and completion
    let nov = m.json(&format!("site_id={}&month=2026-11", m.site)).await;
    assert_eq!((nov["volume"]["total"].clone(), nov["on_time"]["arrivals"].clone()), (json!(1), json!(1)));
    assert_eq!((nov["on_time"]["on_time"].clone(), nov["on_time"]["rate"].clone()), (json!(0), json!(0.0)));
    assert_eq!((nov["rework"]["completed"].clone(), nov["callbacks"]["rate"].clone()), (json!(1), json!(0.0)));
    // an empty month: every rate null, never 0 or 1
    let empty = m.json(&format!("site_id={}&month=2026-08", m.site)).await;
    for rate in [
        &empty["on_time"]["rate"],
        &empty["rework"]["rate"],
        &empty["callbacks"]["rate"],
        &empty["matters"]["reply_rate"],
    ] {
        assert_eq!(rate, &Value::Null);
    }

    // the same month as CSV files
    let zip = m.bytes(&format!("site_id={}&month=2026-10&format=csv", m.site), "application/zip").await;
    let files = unzip(&zip);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "01_volume.csv",
            "02_on_time.csv",
            "03_rework.csv",
            "04_callbacks.csv",
            "05_by_trade.csv",
            "06_technicians.csv",
            "07_fees.csv",
            "08_materials.csv",
            "09_voided.csv",
            "10_matters.csv"
        ]
    );
    for (name, text) in &files {
        assert!(text.starts_with('\u{feff}'), "{name} starts with a byte order mark");
    }
    let lines = |i: usize| files[i].1.trim_start_matches('\u{feff}').lines().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        lines(0),
        [
            "total,in_home,public,routine,paid,emergency,voided,phone,app,wechat,walk_in,patrol",
            "12,9,3,11,1,3,2,7,1,2,1,1"
        ]
    );
    assert_eq!(
        lines(1),
        [
            "limit,limit_minutes,arrivals,on_time,rate",
            "normal,20,4,3,75.0%",
            "emergency,10,2,1,50.0%",
            "appointment,,2,1,50.0%",
            "total,,8,5,62.5%"
        ]
    );
    assert_eq!(lines(2), ["completed,rework,rate", "8,1,12.5%"]);
    assert_eq!(lines(3)[1], "tickets,8,4,4,50.0%,780,0,0,1,1,2");
    assert_eq!(lines(3)[2], "matters,2,2,1,50.0%,480,0,0,0,1,0");
    assert_eq!(lines(4)[1], "water,7,6,43.00,35.00,22.5,42.5");
    assert_eq!(lines(5)[1], format!("{t1},tech-a,4,4,2,50.0%,1,2,4,18.00"));
    assert_eq!(lines(6)[1], "1,105.00,1,105.00,0,0.00,123.00,105.00");
    assert_eq!(
        lines(7)[1..],
        ["PPR 管,DN20,m,company,1.5,18.00", "水龙头,,个,resident,1,35.00", "角阀,DN15,个,company,1,25.00"]
    );
    assert!(lines(8)[1].contains(",2026-10-21 09:00:00,2026-10-21 09:30:00,业主自行修好,general,"), "{}", lines(8)[1]);
    assert_eq!(lines(9)[4], "total,,3,2,1,33.3%,2,1,50.0%");

    // in Chinese
    let zip = m.bytes(&format!("site_id={}&month=2026-10&format=csv&lang=zh", m.site), "application/zip").await;
    let files = unzip(&zip);
    assert_eq!(files[0].0, "01_工单量.csv");
    assert!(files[0].1.starts_with("\u{feff}总数,户内,公共区域,日常维修,特约服务,紧急,作废,"));
    assert!(files[1].1.contains("\r\n普通,20,4,3,75.0%\r\n"));

    // and as a workbook, read back
    let xlsx = m
        .bytes(
            &format!("site_id={}&month=2026-10&format=xlsx", m.site),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        .await;
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(xlsx.clone())).unwrap();
    assert_eq!(
        book.sheet_names(),
        [
            "volume",
            "on_time",
            "rework",
            "callbacks",
            "by_trade",
            "technicians",
            "fees",
            "materials",
            "voided",
            "matters"
        ]
    );
    let volume = book.worksheet_range("volume").unwrap();
    assert_eq!(volume.get((0, 0)), Some(&Data::String("total".into())));
    let row: Vec<Data> = (0..12).map(|c| volume.get((1, c)).unwrap().clone()).collect();
    assert_eq!(row, [12., 9., 3., 11., 1., 3., 2., 7., 1., 2., 1., 1.].map(Data::Float));
    let on_time = book.worksheet_range("on_time").unwrap();
    assert_eq!(on_time.get((4, 4)), Some(&Data::Float(0.625)));
    assert!(matches!(on_time.get((3, 1)), None | Some(Data::Empty)), "the appointment's limit has no minutes");
    let callbacks = book.worksheet_range("callbacks").unwrap();
    assert_eq!(callbacks.get((1, 5)), Some(&Data::Float(780.0)));
    let fees = book.worksheet_range("fees").unwrap();
    assert_eq!((fees.get((1, 6)), fees.get((1, 7))), (Some(&Data::Float(123.0)), Some(&Data::Float(105.0))));
    let technicians = book.worksheet_range("technicians").unwrap();
    assert_eq!(technicians.get((2, 5)), Some(&Data::Float(0.75)));
    assert_eq!(technicians.get((2, 8)), Some(&Data::Float(4.5)));
    // rates carry a percentage format, money two decimals
    let styles = unzip_raw(&xlsx, "xl/styles.xml");
    assert!(styles.contains("formatCode=\"0.0%\"") && styles.contains("formatCode=\"0.00\""), "{styles}");
    let xlsx = m
        .bytes(
            &format!("site_id={}&month=2026-10&format=xlsx&lang=zh", m.site),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        .await;
    let book: Xlsx<_> = Xlsx::new(Cursor::new(xlsx)).unwrap();
    assert_eq!(book.sheet_names()[..3], ["工单量", "及时率", "返修率"]);
}

fn unzip(bytes: &[u8]) -> Vec<(String, String)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut text = String::new();
            file.read_to_string(&mut text).unwrap();
            (file.name().to_owned(), text)
        })
        .collect()
}

fn unzip_raw(bytes: &[u8], name: &str) -> String {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut text = String::new();
    archive.by_name(name).unwrap().read_to_string(&mut text).unwrap();
    text
}

#[tokio::test]
async fn several_sites_report_each_and_their_total_and_only_the_desk_reads_its_own() {
    let m = october().await;
    let both = format!("site_id={}&site_id={}&month=2026-10", m.site, m.other_site);
    // a supervisor of both sites, and an admin
    for token in [&m.supervisor_token, &m.admin] {
        let res = m.report(&both, token).await;
        assert_eq!(res.status(), 200);
        let r: Value = res.json().await.unwrap();
        assert_eq!(r["site_ids"], json!([m.site, m.other_site]));
        assert_eq!(r["timezone"], "Asia/Shanghai, Europe/Berlin");
        assert_eq!((&r["from"], &r["until"]), (&Value::Null, &Value::Null));
        assert_eq!(r["volume"]["total"], 13);
        let sites = r["sites"].as_array().unwrap();
        assert_eq!((sites[0]["code"].clone(), sites[0]["volume"]["total"].clone()), (json!("GY"), json!(12)));
        assert_eq!((sites[1]["code"].clone(), sites[1]["volume"]["total"].clone()), (json!("HX"), json!(1)));
        assert_eq!(sites[1]["from"], "2026-09-30T22:00:00Z");
        assert_eq!(r["on_time"]["rate"], 0.625);
        let water = r["by_trade"].as_array().unwrap().iter().find(|t| t["category"] == "water").unwrap().clone();
        assert_eq!(water["median_minutes_to_arrive"], 22.5);
    }
    // the CSV of several sites: each site's rows, then the total's
    let res = m.report(&format!("{both}&format=csv"), &m.admin).await;
    let files = unzip(&res.bytes().await.unwrap());
    let volume: Vec<&str> = files[0].1.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(volume[0].split(',').next(), Some("site"));
    assert_eq!(
        volume[1..].iter().map(|l| l.split(',').take(2).collect::<Vec<_>>().join(",")).collect::<Vec<_>>(),
        ["GY,12", "HX,1", "total,13"]
    );

    // a dispatcher's report is of one site of theirs
    let res = m.report(&both, &m.desk_token).await;
    let body = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "site_id");
    let res = m.report(&format!("site_id={}&month=2026-10", m.site), &m.other_desk_token).await;
    let body = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "site_id");
    // technicians do not read reports
    let res = m.report(&format!("site_id={}&month=2026-10", m.site), &m.tech_token).await;
    assert_problem(res, 403, "forbidden").await;
    // bad parameters are named
    for (query, field) in [
        (format!("site_id={}&month=2026-13", m.site), "month"),
        (format!("site_id={}&month=October", m.site), "month"),
        (format!("site_id={}", m.site), "month"),
        (format!("site_id={}&month=2026-10&format=pdf", m.site), "format"),
        (format!("site_id={}&month=2026-10&lang=fr", m.site), "lang"),
        ("month=2026-10".to_owned(), "site_id"),
        ("site_id=nowhere&month=2026-10".to_owned(), "site_id"),
        ("site_id=%00&month=2026-10".to_owned(), "site_id"),
    ] {
        let res = m.report(&query, &m.desk_token).await;
        let body = assert_problem(res, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
}
