//! Paid work (特约维修): the price is proposed, and the resident accepts it with the code sent
//! to their phone (or to the desk by phone) or turns it down, before any work is recorded.

use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::desk::DESK;
use super::error::Error;
use super::{actable, apply, check_code, code_locked, code_refusal, require_move, text, Ctx, MAX_MOVE_NOTE};
use crate::db::{self, tickets::TicketChanges, tickets::TicketRow, DbConn};
use crate::domain::bill::{self, Bill};
use crate::domain::code::{Purpose, MAX_FAILED_ATTEMPTS};
use crate::domain::material::{line_total_cents, SuppliedBy, MAX_CENTS};
use crate::domain::messages::{self, yuan};
use crate::domain::ticket::{Covers, Move, QuoteStatus, Status};
use crate::error::ErrorCode;
use crate::notify;
use crate::views::Viewer;

#[derive(Clone, Deserialize, ToSchema)]
pub struct QuoteBody {
    /// The price in cents.
    #[schema(minimum = 1, maximum = 100_000_000)]
    pub amount_cents: i64,
    #[schema(schema_with = covers_schema)]
    pub covers: Option<String>,
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

fn covers_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(Covers::ALL.iter().map(|c| c.as_str())))
        .default(Some(Covers::All.as_str().into()))
        .description(Some(
            "What the price covers: `all` (the default), the whole price the resident agrees to, materials \
             included; `labour`, labour only, chargeable (company-supplied) materials added to the bill.",
        ))
        .build()
}

/// The ticket's quote and its bill as it stands now (see [`bill::bill`]).
pub fn bill_of(conn: &mut DbConn, t: &TicketRow) -> Result<(Option<db::quotes::QuoteRow>, Bill), Error> {
    let quote = db::quotes::find(conn, &t.id)?;
    let materials = chargeable_materials_cents(conn, t)?;
    let accepted = quote.as_ref().filter(|q| q.status == QuoteStatus::Accepted).map(|q| (q.amount_cents, q.covers));
    Ok((quote, bill::bill(accepted, materials)))
}

/// The sum of the ticket's chargeable (company-supplied) material lines.
fn chargeable_materials_cents(conn: &mut DbConn, t: &TicketRow) -> Result<i64, Error> {
    Ok(db::materials::lines_of(conn, std::slice::from_ref(&t.id))?
        .iter()
        .filter(|l| SuppliedBy::parse(&l.supplied_by).is_some_and(bill::chargeable))
        .map(|l| line_total_cents(l.quantity_milli, l.unit_price_cents))
        .sum())
}

/// Completing paid work whose bill has grown past what the resident accepted (materials added to
/// a labour-only quote) needs a new accepted quote: `quote_required`, with both totals.
pub fn require_bill_within_quote(conn: &mut DbConn, t: &TicketRow) -> Result<(), Error> {
    if !t.paid {
        return Ok(());
    }
    let (quote, bill) = bill_of(conn, t)?;
    let accepted = quote.and_then(|q| q.accepted_total_cents);
    if !bill::grew_past_accepted(&bill, accepted) {
        return Ok(());
    }
    let accepted = accepted.unwrap_or_default();
    Err(Error::new(
        ErrorCode::QuoteRequired,
        format!(
            "the bill ({} yuan) grew past what the resident accepted ({} yuan): quote again and have it accepted",
            yuan(bill.total_cents),
            yuan(accepted)
        ),
    )
    .with("bill_total_cents", bill.total_cents)
    .with("accepted_total_cents", accepted))
}

/// Propose the price of paid work and what it covers (`all` unless `labour`); the resident gets
/// a code by SMS to accept it. Quoting again replaces a pending quote, or an accepted one whose
/// bill has since grown past what was accepted, and sends a new code under the limits of
/// resending an arrival code. Wrong codes count for the ticket across quotes: after five, quoting
/// again is refused (`code_locked`) until the desk accepts by phone.
pub fn propose_quote(
    conn: &mut DbConn,
    ctx: &Ctx,
    viewer: &Viewer,
    id: &str,
    body: QuoteBody,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    let QuoteBody { amount_cents, covers, note } = body;
    if !(1..=MAX_CENTS).contains(&amount_cents) {
        return Err(Error::field("amount_cents", format!("must be 1 to {MAX_CENTS}")));
    }
    let covers = match covers.as_deref().map(str::trim) {
        None => Covers::All,
        Some(c) => {
            Covers::parse(c).ok_or_else(|| Error::field("covers", format!("must be one of {}", Covers::names())))?
        }
    };
    let note = text("note", note.as_deref(), MAX_MOVE_NOTE, false)?;
    let t = actable(conn, viewer, id)?;
    if !t.paid {
        return Err(Error::new(ErrorCode::InvalidTransition, "only paid work (特约维修) is quoted"));
    }
    require_move(&t, viewer, Move::Quote)?;
    let (quote, bill) = bill_of(conn, &t)?;
    if quote
        .is_some_and(|q| q.status == QuoteStatus::Accepted && !bill::grew_past_accepted(&bill, q.accepted_total_cents))
    {
        return Err(Error::new(ErrorCode::InvalidTransition, "the quote is already accepted"));
    }
    // wrong codes count for the ticket, not for one quote: a new quote is no new set of guesses
    if db::codes::find(conn, &t.id, Purpose::Quote.as_str())?.is_some_and(|c| c.failed_attempts >= MAX_FAILED_ATTEMPTS)
    {
        return Err(code_locked(Purpose::Quote));
    }
    db::quotes::replace(
        conn,
        &db::quotes::QuoteRow {
            ticket_id: t.id.clone(),
            amount_cents,
            note: note.clone(),
            status: QuoteStatus::Pending,
            proposed_by: viewer.caller.user_id.clone(),
            proposed_at: now,
            decided_at: None,
            decided_by: None,
            decided_via: None,
            decision_note: None,
            covers,
            accepted_total_cents: None,
        },
    )?;
    let site = db::sites::find(conn, &t.site_id)?.ok_or_else(|| Error::not_found("site"))?;
    let amount = [("amount", yuan(amount_cents)), ("covers", covers.for_residents().to_owned())];
    let sms = notify::CodeSms {
        purpose: Purpose::Quote,
        template: messages::QUOTE_CODE,
        extra: &amount,
        first: false,
        new_number: false,
    };
    notify::issue_code(conn, &ctx.code_key, &ctx.sms_policy, &t, &site.name, sms, now)?;
    let data = json!({ "amount_cents": amount_cents, "covers": covers, "note": note });
    apply(conn, &t, &viewer.caller.user_id, "quoted", None, TicketChanges::default(), data, now)
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct AcceptQuoteBody {
    /// The code the resident received by SMS: required (not blank) with `via: code`.
    pub code: Option<String>,
    #[schema(schema_with = consent_via)]
    pub via: Option<String>,
    /// Who was called and what they said: required (not blank) with `via: phone`.
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// How a resident's consent to a quote comes: the values [`accept_quote`] takes for `via`.
pub const CONSENT_VIA: [&str; 2] = ["code", "phone"];

fn consent_via() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(CONSENT_VIA))
        .default(Some(CONSENT_VIA[0].into()))
        .description(Some(
            "`code` (the default) or `phone`: the desk recorded the resident's consent by phone (the desk only).",
        ))
        .build()
}

/// The resident accepts the quote: with the SMS code, or by phone to the desk (which also works
/// once five wrong codes locked the quote). A wrong code is refused inside `Ok`: its counting
/// must commit.
pub fn accept_quote(
    conn: &mut DbConn,
    ctx: &Ctx,
    viewer: &Viewer,
    id: &str,
    body: AcceptQuoteBody,
    now: NaiveDateTime,
) -> Result<Result<TicketRow, Error>, Error> {
    let AcceptQuoteBody { code, via, note } = body;
    let via = match via.as_deref().unwrap_or("code") {
        "code" => "code",
        "phone" => "phone",
        _ => return Err(Error::field("via", "must be code or phone")),
    };
    if via == "phone" {
        viewer.caller.require(&DESK)?;
    }
    let note = text("note", note.as_deref(), MAX_MOVE_NOTE, via == "phone")?;
    let t = actable(conn, viewer, id)?;
    let quote =
        db::quotes::find(conn, &t.id)?.ok_or_else(|| Error::new(ErrorCode::InvalidTransition, "there is no quote"))?;
    if quote.status != QuoteStatus::Pending {
        return Err(Error::new(ErrorCode::InvalidTransition, format!("the quote is {}", quote.status)));
    }
    require_move(&t, viewer, Move::AcceptQuote)?;
    if via == "code" {
        let given = code.as_deref().map(str::trim).filter(|c| !c.is_empty());
        let Some(given) = given else { return Err(Error::field("code", "the resident's code is required")) };
        let check = check_code(conn, &ctx.code_key, &t, Purpose::Quote, given, now)?;
        if let Some(refusal) = code_refusal(check, Purpose::Quote) {
            return Ok(Err(refusal));
        }
    }
    // what the resident agrees to is the bill as it stands: with a labour-only quote, the
    // materials already on the ticket too
    let accepted_total =
        bill::bill(Some((quote.amount_cents, quote.covers)), chargeable_materials_cents(conn, &t)?).total_cents;
    db::quotes::decide(
        conn,
        &t.id,
        QuoteStatus::Accepted,
        &viewer.caller.user_id,
        via,
        note.clone(),
        Some(accepted_total),
        now,
    )?;
    let data = json!({ "amount_cents": quote.amount_cents, "covers": quote.covers, "accepted_total_cents": accepted_total,
        "via": via, "note": note });
    Ok(Ok(apply(conn, &t, &viewer.caller.user_id, "quote_accepted", None, TicketChanges::default(), data, now)?))
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct DeclineBody {
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

/// The resident turns the price down: the ticket ends as `declined`. The technician holding it
/// or the desk records it, while the quote is pending.
pub fn decline_quote(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    body: DeclineBody,
    now: NaiveDateTime,
) -> Result<TicketRow, Error> {
    let note = text("note", body.note.as_deref(), MAX_MOVE_NOTE, false)?;
    let t = actable(conn, viewer, id)?;
    require_move(&t, viewer, Move::DeclineQuote)?;
    if !db::quotes::decide(
        conn,
        &t.id,
        QuoteStatus::Declined,
        &viewer.caller.user_id,
        "declined",
        note.clone(),
        None,
        now,
    )? {
        return Err(Error::new(ErrorCode::InvalidTransition, "there is no pending quote"));
    }
    let data = json!({ "note": note });
    super::transition(
        conn,
        &t,
        &viewer.caller.user_id,
        "quote_declined",
        Status::Declined,
        TicketChanges::default(),
        data,
        now,
    )
}
