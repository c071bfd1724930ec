//! Matters that are not repairs (报事): the desk registers one, its department's supervisor
//! replies, the desk calls the reporter back. Rules in [`crate::domain::matter`].

use chrono::NaiveDateTime;
use serde::Deserialize;
use utoipa::ToSchema;

use super::desk::{CallbackBody, DESK};
use super::error::Error;
use super::text;
use crate::db::matters::{Matter, MatterCallbackRow, MatterRow};
use crate::db::{self, DbConn};
use crate::domain::matter::{counter_key, matter_number, may_reply, Department, MatterForm, MatterStatus, MAX_REPLY};
use crate::domain::site::parse_timezone;
use crate::domain::ticket::local_day;
use crate::domain::user::Role;
use crate::error::ErrorCode;
use crate::views::Viewer;

/// Register a matter: numbered in the site's own series of matters for its local day.
pub fn create_matter(
    conn: &mut DbConn,
    viewer: &Viewer,
    form: &MatterForm,
    now: NaiveDateTime,
) -> Result<Matter, Error> {
    viewer.caller.require(&DESK)?;
    let new = form.validate().map_err(Error::validation)?;
    let site = db::sites::find(conn, &new.site_id)?
        .filter(|s| viewer.is_site_desk(&s.id))
        .ok_or_else(|| Error::field("site_id", "is not a site of yours"))?;
    let tz = parse_timezone(&site.timezone).map_err(Error::internal)?;
    let day = local_day(now, tz);
    let n = db::matters::next_number(conn, &site.id, &counter_key(&day))?;
    let row = MatterRow {
        id: db::new_id(),
        site_id: site.id,
        number: matter_number(&site.code, &day, n),
        kind: new.kind.as_str().to_owned(),
        department: new.department.as_str().to_owned(),
        status: MatterStatus::Open.as_str().to_owned(),
        description: new.description,
        reporter_name: new.reporter_name,
        reporter_phone: new.reporter_phone,
        location: new.location,
        channel: new.channel.as_str().to_owned(),
        created_by: viewer.caller.user_id.clone(),
        created_at: now,
        reply: None,
        replied_by: None,
        replied_at: None,
        closed_at: None,
    };
    db::matters::insert(conn, &row)?;
    Ok(Matter { row, callbacks: Vec::new() })
}

/// A matter the caller may see: the desk of its site (dispatchers, supervisors) or an admin.
/// Anyone else is told it does not exist; technicians are refused outright.
pub fn visible_matter(conn: &mut DbConn, viewer: &Viewer, id: &str) -> Result<MatterRow, Error> {
    viewer.caller.require(&DESK)?;
    db::matters::find(conn, id)?.filter(|m| viewer.is_site_desk(&m.site_id)).ok_or_else(|| Error::not_found("matter"))
}

/// The matter with its callbacks.
pub fn find_matter(conn: &mut DbConn, viewer: &Viewer, id: &str) -> Result<Matter, Error> {
    let row = visible_matter(conn, viewer, id)?;
    let callbacks = db::matters::callbacks_of(conn, std::slice::from_ref(&row.id))?;
    Ok(Matter { row, callbacks })
}

#[derive(Clone, Deserialize, ToSchema)]
pub struct ReplyBody {
    /// What the department did or answers (处理结果).
    #[schema(value_type = String, min_length = 1, max_length = 2000, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    pub reply: Option<String>,
}

/// The department answers an open matter: a supervisor of the site whose departments include the
/// matter's, or an admin. It then waits for the desk's callback; its escalations are resolved.
pub fn reply_matter(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    body: ReplyBody,
    now: NaiveDateTime,
) -> Result<Matter, Error> {
    let reply = text("reply", body.reply.as_deref(), MAX_REPLY, true)?.unwrap_or_default();
    let m = visible_matter(conn, viewer, id)?;
    let department = Department::parse(&m.department).unwrap_or(Department::Other);
    let departments = match viewer.caller.role {
        Role::Supervisor => db::matters::departments_of(conn, &viewer.caller.user_id)?,
        _ => Vec::new(),
    };
    if !may_reply(viewer.caller.role, &departments, viewer.sites.contains(&m.site_id), department) {
        return Err(Error::forbidden(format!("only a supervisor of {department} at this site (or an admin) replies")));
    }
    let (open, replied) = (MatterStatus::Open.as_str(), MatterStatus::Replied.as_str());
    if m.status != open || !db::matters::reply(conn, &m.id, open, replied, &reply, &viewer.caller.user_id, now)? {
        let status = db::matters::find(conn, &m.id)?.map_or(m.status, |m| m.status);
        return Err(Error::new(ErrorCode::InvalidTransition, format!("cannot reply to a matter that is {status}")));
    }
    db::matters::resolve_escalations(conn, &m.id, now)?;
    find_matter(conn, viewer, id)
}

/// Call the reporter back (回访) once the department has replied. Reaching them closes the
/// matter; otherwise the attempt is recorded and it stays due.
pub fn callback_matter(
    conn: &mut DbConn,
    viewer: &Viewer,
    id: &str,
    body: CallbackBody,
    now: NaiveDateTime,
) -> Result<Matter, Error> {
    let CallbackBody { reached, satisfaction, comment } = body;
    if satisfaction.is_some_and(|s| !super::RATING.contains(&s)) {
        return Err(Error::field("satisfaction", "must be 1 to 5"));
    }
    if satisfaction.is_some() && !reached {
        return Err(Error::field("satisfaction", "only a reporter who was reached can rate"));
    }
    let comment = text("comment", comment.as_deref(), super::desk::MAX_COMMENT, false)?;
    let m = visible_matter(conn, viewer, id)?;
    let replied = MatterStatus::Replied.as_str();
    if m.status != replied {
        return Err(Error::new(
            ErrorCode::InvalidTransition,
            format!("cannot call back on a matter that is {}", m.status),
        ));
    }
    if reached && !db::matters::close(conn, &m.id, replied, MatterStatus::Closed.as_str(), now)? {
        return Err(Error::new(ErrorCode::InvalidTransition, "the matter changed meanwhile; reload it"));
    }
    db::matters::insert_callback(
        conn,
        &MatterCallbackRow {
            id: db::new_id(),
            matter_id: m.id.clone(),
            made_by: viewer.caller.user_id.clone(),
            made_at: now,
            reached,
            satisfaction,
            comment,
        },
    )?;
    find_matter(conn, viewer, id)
}

/// Matters of the caller's desk (an admin: any site), optionally of one site and one status.
pub fn list_matters(
    conn: &mut DbConn,
    viewer: &Viewer,
    site_id: Option<String>,
    status: Option<&str>,
) -> Result<Vec<MatterRow>, Error> {
    viewer.caller.require(&DESK)?;
    let status = match status {
        Some(s) => Some(
            MatterStatus::parse(s)
                .ok_or_else(|| Error::field("status", format!("must be one of {}", MatterStatus::names())))?,
        ),
        None => None,
    };
    Ok(db::matters::list(conn, viewer.desk_sites(site_id).as_deref(), status.map(MatterStatus::as_str))?)
}
