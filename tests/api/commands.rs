//! Every change of a ticket called as a command, on a database and without a server: the rules
//! hold whoever calls them (the routes, sync, a job). Each test gets its own database, on SQLite
//! or on PostgreSQL (`TEST_DATABASE_URL`), and drives time with an explicit `now`.

use chrono::{Duration, NaiveDateTime};
use repairdesk::auth::Caller;
use repairdesk::commands::{
    self, AcceptQuoteBody, ArriveBody, AssignBody, CallbackBody, CompleteBody, Ctx, DeclineBody, Error, HoldBody,
    InspectBody, MaterialPatch, NewMaterial, NoteBody, PhoneVerification, QuoteBody, ReasonBody,
};
use repairdesk::db::{self, sites::SiteRow, tickets::TicketRow, users::UserRow, DatabaseUrl, DbConn, Pool};
use repairdesk::domain::ticket::TicketForm;
use repairdesk::domain::user::Role;
use repairdesk::views::Viewer;
use serde_json::Value;

use crate::helpers::TestDb;

/// A site with its desk and two plumbers, on a database of its own.
struct World {
    pool: Pool,
    ctx: Ctx,
    site: String,
    desk: Caller,
    tech: Caller,
    other_tech: Caller,
    now: NaiveDateTime,
    // dropped last: removes the database
    _db: TestDb,
}

impl World {
    fn new() -> Self {
        let db = TestDb::new();
        let pool = db::connect(&DatabaseUrl::parse(&db.url()).unwrap(), 2).unwrap();
        db::migrate(&pool).unwrap();
        let now = db::now();
        let mut conn = pool.get().unwrap();
        let site = SiteRow {
            id: db::new_id(),
            code: "GY".into(),
            name: "光远花园".into(),
            timezone: "Asia/Shanghai".into(),
            created_at: now,
        };
        db::sites::insert(&mut conn, &site).unwrap();
        let mut user = |name: &str, role: Role| {
            let row = UserRow {
                id: db::new_id(),
                username: name.into(),
                password_hash: "-".into(),
                display_name: name.into(),
                role: role.as_str().into(),
                phone: None,
                active: true,
                created_at: now,
                updated_at: now,
                on_duty: true,
            };
            let trades = if role == Role::Technician { vec!["water".to_owned()] } else { vec![] };
            db::users::insert(&mut conn, &row, std::slice::from_ref(&site.id), &trades, &[]).unwrap();
            Caller { user_id: row.id, session_id: db::new_id(), role, membership: None }
        };
        let desk = user("desk", Role::Dispatcher);
        let tech = user("tech", Role::Technician);
        let other_tech = user("tech2", Role::Technician);
        drop(conn);
        let ctx = Ctx {
            code_key: b"test-code-key".to_vec(),
            clock: Default::default(),
            max_active_tickets: 5,
            sms_policy: Default::default(),
        };
        World { pool, ctx, site: site.id, desk, tech, other_tech, now, _db: db }
    }

    /// Runs one command as `who`, in a transaction, `minutes` after the world's start.
    fn run<T>(
        &self,
        who: &Caller,
        work: impl Fn(&mut DbConn, &Ctx, &Viewer, NaiveDateTime) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.run_at(who, 0, work)
    }

    fn run_at<T>(
        &self,
        who: &Caller,
        minutes: i64,
        work: impl Fn(&mut DbConn, &Ctx, &Viewer, NaiveDateTime) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut conn = self.pool.get().unwrap();
        let at = self.now + Duration::minutes(minutes);
        db::write_transaction(&mut conn, |conn| {
            let viewer = Viewer::load(conn, who.clone())?;
            work(conn, &self.ctx, &viewer, at)
        })
    }

    fn form(&self, area: &str) -> TicketForm {
        TicketForm {
            site_id: Some(self.site.clone()),
            area: Some(area.into()),
            location: Some("3-2-1201".into()),
            category: Some("water".into()),
            urgency: Some("normal".into()),
            description: Some("厨房水管漏水".into()),
            reporter_name: Some("王女士".into()),
            reporter_phone: Some("13812345678".into()),
            channel: Some("phone".into()),
            ..Default::default()
        }
    }

    fn create(&self, form: TicketForm) -> TicketRow {
        self.run(&self.desk, |c, ctx, v, now| commands::create_ticket(c, ctx, v, &form, None, now)).unwrap()
    }

    /// The last code texted for the ticket, read from the outbox.
    fn last_code(&self, ticket_id: &str) -> String {
        let mut conn = self.pool.get().unwrap();
        let rows = db::outbox::for_tickets(&mut conn, &[ticket_id.to_owned()]).unwrap();
        let row = rows.iter().max_by_key(|r| r.created_at).expect("a message");
        let params: Value = serde_json::from_str(&row.params).unwrap();
        params["code"].as_str().unwrap().to_owned()
    }

    fn events(&self, ticket_id: &str) -> Vec<String> {
        let mut conn = self.pool.get().unwrap();
        db::events::for_ticket(&mut conn, ticket_id).unwrap().into_iter().map(|e| e.event_type).collect()
    }

    fn ticket(&self, id: &str) -> TicketRow {
        db::tickets::find(&mut self.pool.get().unwrap(), id).unwrap().unwrap()
    }
}

fn code_of(e: Error) -> &'static str {
    e.code().as_str()
}

fn reason(r: &str) -> ReasonBody {
    ReasonBody { reason: r.into() }
}

fn arrive_with(code: Option<String>) -> ArriveBody {
    ArriveBody { code, lat: None, lng: None, device_time: None }
}

fn material(quantity: &str) -> NewMaterial {
    NewMaterial {
        id: None,
        catalogue_item_id: None,
        name: Some("PPR 管".into()),
        spec: None,
        model: None,
        quantity: quantity.into(),
        unit: Some("m".into()),
        unit_price_cents: Some(1200),
        supplied_by: "company".into(),
        version: None,
    }
}

#[test]
fn the_desk_registers_assigns_and_cancels_a_ticket() {
    let w = World::new();
    // a technician does not register tickets; a bad form names its fields and writes nothing
    let form = w.form("in_home");
    let refused = w.run(&w.tech, |c, ctx, v, now| commands::create_ticket(c, ctx, v, &form, None, now));
    assert_eq!(code_of(refused.unwrap_err()), "forbidden");
    let bad = TicketForm { area: Some("garden".into()), ..w.form("in_home") };
    let refused = w.run(&w.desk, |c, ctx, v, now| commands::create_ticket(c, ctx, v, &bad, None, now)).unwrap_err();
    assert!(refused.fields().iter().any(|e| e.field == "area"));
    assert_eq!(code_of(refused), "validation_failed");

    let t = w.create(w.form("in_home"));
    assert_eq!(t.status.as_str(), "open");
    assert!(t.number.starts_with("GY-"), "{}", t.number);
    assert_eq!(t.number.rsplit('-').next(), Some("0001"), "the first of the site's day: nothing was written before");
    assert_eq!(w.last_code(&t.id).len(), 6, "the resident's code went out with the ticket");

    let to = |who: &Caller| AssignBody { technician_id: who.user_id.clone(), reason: None };
    let assigned = w.run(&w.desk, |c, _, v, now| commands::assign(c, v, &t.id, to(&w.tech), now)).unwrap();
    assert_eq!(
        (assigned.status.as_str(), assigned.assignee_id.as_deref()),
        ("assigned", Some(w.tech.user_id.as_str()))
    );
    // the same assignment again changes nothing
    let again = w.run(&w.desk, |c, _, v, now| commands::assign(c, v, &t.id, to(&w.tech), now)).unwrap();
    assert_eq!(again.version, assigned.version);
    w.run(&w.desk, |c, _, v, now| commands::assign(c, v, &t.id, to(&w.other_tech), now)).unwrap();
    let by_tech = w.run(&w.tech, |c, _, v, now| commands::assign(c, v, &t.id, to(&w.tech), now));
    assert_eq!(code_of(by_tech.unwrap_err()), "forbidden");

    let cancelled =
        w.run(&w.desk, |c, _, v, now| commands::cancel(c, v, &t.id, reason("resident fixed it"), now)).unwrap();
    assert_eq!(cancelled.status.as_str(), "cancelled");
    assert_eq!(cancelled.cancel_reason.as_deref(), Some("resident fixed it"));
    let twice = w.run(&w.desk, |c, _, v, now| commands::cancel(c, v, &t.id, reason("again"), now));
    assert_eq!(code_of(twice.unwrap_err()), "invalid_transition");
    let assign_cancelled = w.run(&w.desk, |c, _, v, now| commands::assign(c, v, &t.id, to(&w.tech), now));
    assert_eq!(code_of(assign_cancelled.unwrap_err()), "invalid_transition");
    assert_eq!(w.events(&t.id), ["created", "assigned", "reassigned", "cancelled"]);
}

#[test]
fn a_technician_claims_arrives_with_the_code_works_and_the_desk_calls_back() {
    let w = World::new();
    let t = w.create(w.form("in_home"));
    let claimed = w.run(&w.tech, |c, ctx, v, now| commands::claim(c, ctx, v, &t.id, now)).unwrap();
    assert_eq!(claimed.0.status.as_str(), "assigned");
    let lost = w.run(&w.other_tech, |c, ctx, v, now| commands::claim(c, ctx, v, &t.id, now));
    assert_eq!(code_of(lost.unwrap_err()), "already_claimed");

    // a wrong code is refused, and counted: the refusal comes back inside Ok so the count commits
    let wrong =
        w.run(&w.tech, |c, ctx, v, now| commands::arrive(c, ctx, v, &t.id, arrive_with(Some("000000".into())), now));
    assert_eq!(code_of(wrong.unwrap().unwrap_err()), "invalid_code");
    let code = w.last_code(&t.id);
    let arrived = w
        .run_at(&w.tech, 10, |c, ctx, v, now| commands::arrive(c, ctx, v, &t.id, arrive_with(Some(code.clone())), now))
        .unwrap()
        .unwrap();
    assert_eq!((arrived.status.as_str(), arrived.arrival_on_time), ("on_site", Some(true)));

    let line = w.run(&w.tech, |c, _, v, now| commands::add_material(c, v, &t.id, material("1.5"), now)).unwrap();
    // corrected, then a stale edit refused with the line as it stands, then a second line removed
    let patch = |quantity: &str, version| MaterialPatch {
        name: None,
        spec: None,
        model: None,
        quantity: Some(quantity.into()),
        unit: None,
        unit_price_cents: None,
        supplied_by: None,
        version,
    };
    let edited =
        w.run(&w.tech, |c, _, v, now| commands::update_material(c, v, &t.id, &line.id, patch("2", None), now)).unwrap();
    assert_eq!(edited.quantity, "2");
    let stale =
        w.run(&w.tech, |c, _, v, now| commands::update_material(c, v, &t.id, &line.id, patch("3", Some(1)), now));
    assert_eq!(code_of(stale.unwrap_err()), "version_conflict");
    let extra = w.run(&w.tech, |c, _, v, now| commands::add_material(c, v, &t.id, material("1"), now)).unwrap();
    w.run(&w.tech, |c, _, v, now| commands::remove_material(c, v, &t.id, &extra.id, None, now)).unwrap();
    // removing it again is harmless
    w.run(&w.tech, |c, _, v, now| commands::remove_material(c, v, &t.id, &extra.id, None, now)).unwrap();
    let removed = db::materials::find_line(&mut w.pool.get().unwrap(), &extra.id).unwrap().unwrap();
    assert!(removed.deleted_at.is_some());
    let note = NoteBody { id: None, note: "阀门老化".into() };
    w.run(&w.tech, |c, _, v, now| commands::add_note(c, v, &t.id, note.clone(), None, now)).unwrap();
    let hold = HoldBody { reason: "awaiting_parts".into(), note: None, resume_at: None };
    assert_eq!(
        w.run(&w.tech, |c, _, v, now| commands::hold(c, v, &t.id, hold.clone(), now)).unwrap().status.as_str(),
        "on_hold"
    );
    assert_eq!(w.run(&w.tech, |c, _, v, now| commands::resume(c, v, &t.id, now)).unwrap().status.as_str(), "on_site");
    let done = CompleteBody {
        result: "换了阀门".into(),
        resident_rating: Some(5),
        resident_signature_png_base64: None,
        fee_collected_cents: None,
    };
    let by_desk = w.run(&w.desk, |c, _, v, now| commands::complete(c, v, &t.id, done.clone(), now));
    assert_eq!(code_of(by_desk.unwrap_err()), "forbidden");
    let completed = w.run(&w.tech, |c, _, v, now| commands::complete(c, v, &t.id, done.clone(), now)).unwrap();
    assert_eq!(completed.status.as_str(), "completed");

    let unanswered = CallbackBody { reached: false, satisfaction: Some(4), comment: None };
    let rated = w.run(&w.desk, |c, _, v, now| commands::callback(c, v, &t.id, unanswered.clone(), now));
    assert_eq!(code_of(rated.unwrap_err()), "validation_failed");
    let unanswered = CallbackBody { satisfaction: None, ..unanswered };
    let still = w.run(&w.desk, |c, _, v, now| commands::callback(c, v, &t.id, unanswered.clone(), now)).unwrap();
    assert_eq!(still.status.as_str(), "completed", "not reached: the callback stays due");
    let reached = CallbackBody { reached: true, satisfaction: Some(5), comment: Some("满意".into()) };
    let by_tech = w.run(&w.tech, |c, _, v, now| commands::callback(c, v, &t.id, reached.clone(), now));
    assert_eq!(code_of(by_tech.unwrap_err()), "forbidden");
    let closed = w.run(&w.desk, |c, _, v, now| commands::callback(c, v, &t.id, reached.clone(), now)).unwrap();
    assert_eq!(closed.status.as_str(), "closed");
    assert_eq!(
        w.events(&t.id),
        [
            "created",
            "claimed",
            "arrived",
            "material_added",
            "material_updated",
            "material_added",
            "material_removed",
            "note_added",
            "held",
            "resumed",
            "completed",
            "callback",
            "callback"
        ]
    );
}

#[test]
fn the_desk_verifies_by_phone_resends_the_code_and_takes_tickets_back() {
    let w = World::new();
    let t = w.create(w.form("in_home"));
    let first_code = w.last_code(&t.id);
    w.run(&w.tech, |c, ctx, v, now| commands::claim(c, ctx, v, &t.id, now)).unwrap();
    // the code is resent, at least the configured interval after the first
    let too_soon = w.run(&w.desk, |c, ctx, v, now| commands::resend_code(c, ctx, v, &t.id, now));
    assert_eq!(code_of(too_soon.unwrap_err()), "sms_rate_limited");
    let by_tech = w.run_at(&w.tech, 2, |c, ctx, v, now| commands::resend_code(c, ctx, v, &t.id, now));
    assert_eq!(code_of(by_tech.unwrap_err()), "forbidden");
    let sms_id = w.run_at(&w.desk, 2, |c, ctx, v, now| commands::resend_code(c, ctx, v, &t.id, now)).unwrap().unwrap();
    assert!(!sms_id.is_empty());
    let new_code = w.last_code(&t.id);
    if new_code != first_code {
        let old = w.run_at(&w.tech, 3, |c, ctx, v, now| {
            commands::arrive(c, ctx, v, &t.id, arrive_with(Some(first_code.clone())), now)
        });
        assert_eq!(code_of(old.unwrap().unwrap_err()), "invalid_code", "the old code stopped working");
    }

    // the resident can't read out the code: the desk calls them and vouches for the technician
    let note = PhoneVerification { note: "called 王女士: the plumber is at the door".into() };
    let by_tech = w.run(&w.tech, |c, _, v, now| commands::verify_by_phone(c, v, &t.id, note.clone(), now));
    assert_eq!(code_of(by_tech.unwrap_err()), "forbidden");
    w.run(&w.desk, |c, _, v, now| commands::verify_by_phone(c, v, &t.id, note.clone(), now)).unwrap();
    let arrived = w.run_at(&w.tech, 4, |c, ctx, v, now| commands::arrive(c, ctx, v, &t.id, arrive_with(None), now));
    let arrived = arrived.unwrap().unwrap();
    assert_eq!((arrived.status.as_str(), arrived.arrival_verified_via.as_deref()), ("on_site", Some("phone")));
    let late = w.run_at(&w.desk, 10, |c, ctx, v, now| commands::resend_code(c, ctx, v, &t.id, now));
    assert_eq!(code_of(late.unwrap_err()), "invalid_transition", "on site: no code is needed any more");

    // released by the technician, claimed again, then taken back when an admin deactivates them
    let second = w.create(w.form("in_home"));
    w.run(&w.tech, |c, ctx, v, now| commands::claim(c, ctx, v, &second.id, now)).unwrap();
    let released = w.run(&w.tech, |c, _, v, now| commands::release(c, v, &second.id, reason("no parts"), now)).unwrap();
    assert_eq!((released.status.as_str(), released.assignee_id.as_deref()), ("open", None));
    w.run(&w.tech, |c, ctx, v, now| commands::claim(c, ctx, v, &second.id, now)).unwrap();
    let mut conn = w.pool.get().unwrap();
    let before = db::users::find(&mut conn, &w.tech.user_id).unwrap().unwrap();
    let mut after = before.clone();
    after.row.active = false;
    let back = commands::release_removed_technician(&mut conn, &w.desk.user_id, &before, &after, w.now).unwrap();
    let mut back: Vec<&str> = back.iter().map(|t| t.id.as_str()).collect();
    back.sort();
    let mut held = vec![t.id.as_str(), second.id.as_str()];
    held.sort();
    assert_eq!(back, held, "both tickets they held, on site or not, go back to the pool");
    assert_eq!(w.ticket(&t.id).status.as_str(), "open");
    let escalations = db::escalations::for_ticket(&mut conn, &second.id).unwrap();
    assert!(escalations.iter().any(|e| e.kind == "technician_removed"));
}

#[test]
fn public_work_is_inspected_and_sent_back_when_it_fails() {
    let w = World::new();
    let t = w.create(TicketForm { reporter_phone: None, ..w.form("public") });
    assert!(db::outbox::for_tickets(&mut w.pool.get().unwrap(), std::slice::from_ref(&t.id)).unwrap().is_empty());
    w.run(&w.tech, |c, ctx, v, now| commands::claim(c, ctx, v, &t.id, now)).unwrap();
    let done = CompleteBody {
        result: "楼道灯修好".into(),
        resident_rating: None,
        resident_signature_png_base64: None,
        fee_collected_cents: None,
    };
    let visit = |minutes| {
        w.run_at(&w.tech, minutes, |c, ctx, v, now| commands::arrive(c, ctx, v, &t.id, arrive_with(None), now))
            .unwrap()
            .unwrap();
        w.run_at(&w.tech, minutes, |c, _, v, now| commands::complete(c, v, &t.id, done.clone(), now)).unwrap()
    };
    assert_eq!(visit(5).status.as_str(), "awaiting_inspection");
    let silent = InspectBody { passed: false, note: None };
    let refused = w.run(&w.desk, |c, _, v, now| commands::inspect(c, v, &t.id, silent.clone(), now));
    assert_eq!(code_of(refused.unwrap_err()), "validation_failed", "a failed inspection says what to redo");
    let failed = InspectBody { passed: false, note: Some("灯罩没装".into()) };
    let by_tech = w.run(&w.tech, |c, _, v, now| commands::inspect(c, v, &t.id, failed.clone(), now));
    assert_eq!(code_of(by_tech.unwrap_err()), "forbidden");
    let back = w.run(&w.desk, |c, _, v, now| commands::inspect(c, v, &t.id, failed.clone(), now)).unwrap();
    assert_eq!((back.status.as_str(), back.arrived_at), ("assigned", None));
    assert_eq!(visit(30).status.as_str(), "awaiting_inspection");
    let passed = InspectBody { passed: true, note: None };
    let done = w.run(&w.desk, |c, _, v, now| commands::inspect(c, v, &t.id, passed.clone(), now)).unwrap();
    assert_eq!(done.status.as_str(), "completed");
    let again = w.run(&w.desk, |c, _, v, now| commands::inspect(c, v, &t.id, passed.clone(), now));
    assert_eq!(code_of(again.unwrap_err()), "invalid_transition");
}

#[test]
fn paid_work_waits_for_the_residents_consent_to_the_price() {
    let w = World::new();
    let paid = || TicketForm { paid: Some(true), ..w.form("in_home") };
    let t = w.create(paid());
    w.run(&w.tech, |c, ctx, v, now| commands::claim(c, ctx, v, &t.id, now)).unwrap();
    let code = w.last_code(&t.id);
    w.run(&w.tech, |c, ctx, v, now| commands::arrive(c, ctx, v, &t.id, arrive_with(Some(code.clone())), now))
        .unwrap()
        .unwrap();
    let early = w.run(&w.tech, |c, _, v, now| commands::add_material(c, v, &t.id, material("1"), now));
    assert_eq!(code_of(early.unwrap_err()), "quote_required");

    let quote = QuoteBody { amount_cents: 35000, covers: None, note: None };
    let zero = QuoteBody { amount_cents: 0, covers: None, note: None };
    let refused = w.run_at(&w.tech, 2, |c, ctx, v, now| commands::propose_quote(c, ctx, v, &t.id, zero.clone(), now));
    assert_eq!(code_of(refused.unwrap_err()), "validation_failed");
    w.run_at(&w.tech, 2, |c, ctx, v, now| commands::propose_quote(c, ctx, v, &t.id, quote.clone(), now)).unwrap();
    let wrong = AcceptQuoteBody { code: Some("000000".into()), via: None, note: None };
    let refused = w.run(&w.tech, |c, ctx, v, now| commands::accept_quote(c, ctx, v, &t.id, wrong.clone(), now));
    assert_eq!(code_of(refused.unwrap().unwrap_err()), "invalid_code");
    let by_phone =
        AcceptQuoteBody { code: None, via: Some("phone".into()), note: Some("王女士 agreed on the phone".into()) };
    let by_tech = w.run(&w.tech, |c, ctx, v, now| commands::accept_quote(c, ctx, v, &t.id, by_phone.clone(), now));
    assert_eq!(code_of(by_tech.unwrap_err()), "forbidden", "consent by phone is the desk's to record");
    w.run(&w.desk, |c, ctx, v, now| commands::accept_quote(c, ctx, v, &t.id, by_phone.clone(), now)).unwrap().unwrap();
    w.run(&w.tech, |c, _, v, now| commands::add_material(c, v, &t.id, material("1"), now)).unwrap();
    let late = w.run(&w.tech, |c, _, v, now| commands::decline_quote(c, v, &t.id, DeclineBody { note: None }, now));
    assert_eq!(code_of(late.unwrap_err()), "invalid_transition", "an accepted quote is not declined");

    // a second paid job: the resident turns the price down
    let t = w.create(paid());
    let decline = DeclineBody { note: Some("太贵".into()) };
    let unheld = w.run(&w.tech, |c, _, v, now| commands::decline_quote(c, v, &t.id, decline.clone(), now));
    assert_eq!(code_of(unheld.unwrap_err()), "not_found", "a technician acts only on tickets they hold");
    let open = w.run(&w.desk, |c, _, v, now| commands::decline_quote(c, v, &t.id, decline.clone(), now));
    assert_eq!(code_of(open.unwrap_err()), "invalid_transition", "nothing is quoted on an open ticket");
    w.run(&w.tech, |c, ctx, v, now| commands::claim(c, ctx, v, &t.id, now)).unwrap();
    let unquoted = w.run(&w.tech, |c, _, v, now| commands::decline_quote(c, v, &t.id, decline.clone(), now));
    assert_eq!(code_of(unquoted.unwrap_err()), "invalid_transition", "no pending quote");
    w.run_at(&w.tech, 2, |c, ctx, v, now| commands::propose_quote(c, ctx, v, &t.id, quote.clone(), now)).unwrap();
    let declined = w.run(&w.tech, |c, _, v, now| commands::decline_quote(c, v, &t.id, decline.clone(), now)).unwrap();
    assert_eq!(declined.status.as_str(), "declined");
    let again = w.run(&w.desk, |c, _, v, now| commands::decline_quote(c, v, &t.id, decline.clone(), now));
    assert_eq!(code_of(again.unwrap_err()), "invalid_transition");
    assert_eq!(w.ticket(&t.id).status.as_str(), "declined");
}

#[test]
fn events_keep_their_own_versioned_shape() {
    let w = World::new();
    let t = w.create(TicketForm { reporter_phone: None, ..w.form("public") });
    w.run(&w.tech, |c, ctx, v, now| commands::claim(c, ctx, v, &t.id, now)).unwrap();
    w.run(&w.tech, |c, ctx, v, now| commands::arrive(c, ctx, v, &t.id, arrive_with(None), now)).unwrap().unwrap();
    let line = w.run(&w.tech, |c, _, v, now| commands::add_material(c, v, &t.id, material("1.5"), now)).unwrap();
    let events = db::events::for_ticket(&mut w.pool.get().unwrap(), &t.id).unwrap();
    for e in &events {
        let data: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(data["v"], db::events::DATA_VERSION, "{} carries the version of its shape", e.event_type);
    }
    let added = events.iter().find(|e| e.event_type == "material_added").unwrap();
    let data: Value = serde_json::from_str(&added.data).unwrap();
    assert_eq!(data["line"]["id"], line.id);
    assert_eq!(data["line"]["quantity"], "1.5");
    assert_eq!(data["line"]["total_cents"], 1800);
    assert_eq!(data["line"]["billable"], true);
}
