//! Hand-written statements that stay prepared. diesel's `sql_query` is parsed and planned anew on
//! every run; a statement here has fixed text, so diesel keeps it prepared on each connection, as it
//! does for the statements its query builder makes. For the few statements the builder cannot
//! express (a writable CTE, a union of reads).
//!
//! The text names its parameters `$1`, `$2`...; they are sent as the backend's own placeholders.

use diesel::backend::Backend;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, Text, Timestamp, Untyped};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, RunQueryDsl};

/// A parameter of a [`Statement`].
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Text(&'a str),
    Timestamp(&'a chrono::NaiveDateTime),
    /// PostgreSQL only.
    TextArray(&'a [String]),
}

/// A statement with fixed text. `M` is a marker type, one per text: diesel keys its cache of
/// prepared statements by it.
pub struct Statement<'a, M> {
    text: &'static str,
    params: Vec<Param<'a>>,
    marker: std::marker::PhantomData<M>,
}

impl<'a, M> Statement<'a, M> {
    pub fn new(text: &'static str, params: Vec<Param<'a>>) -> Self {
        Self { text, params, marker: std::marker::PhantomData }
    }

    /// The text between parameters, each followed by the index of the parameter after it.
    fn pieces(&self) -> impl Iterator<Item = (&'static str, Option<usize>)> + '_ {
        let text = self.text;
        let mut rest = text;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            match rest.find('$') {
                Some(at) => {
                    let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
                    let index: usize = rest[at + 1..at + 1 + digits].parse().ok()?;
                    let piece = &rest[..at];
                    rest = &rest[at + 1 + digits..];
                    Some((piece, Some(index - 1)))
                }
                None => Some((std::mem::take(&mut rest), None)),
            }
        })
    }
}

impl<M: 'static> QueryId for Statement<'_, M> {
    type QueryId = M;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<M> Query for Statement<'_, M> {
    type SqlType = Untyped;
}

impl<M, Conn> RunQueryDsl<Conn> for Statement<'_, M> {}

fn walk<'b, DB, M>(
    statement: &'b Statement<'_, M>,
    mut out: AstPass<'_, 'b, DB>,
    bind: impl Fn(&mut AstPass<'_, 'b, DB>, &'b Param<'_>) -> QueryResult<()>,
) -> QueryResult<()>
where
    DB: Backend,
{
    for (piece, param) in statement.pieces() {
        out.push_sql(piece);
        if let Some(index) = param {
            let param = statement.params.get(index).ok_or_else(|| {
                diesel::result::Error::QueryBuilderError(format!("no parameter ${}", index + 1).into())
            })?;
            bind(&mut out, param)?;
        }
    }
    Ok(())
}

impl<M> QueryFragment<Pg> for Statement<'_, M> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        walk(self, out, |out, param| match param {
            Param::Text(v) => out.push_bind_param::<Text, _>(v),
            Param::Timestamp(v) => out.push_bind_param::<Timestamp, _>(*v),
            Param::TextArray(v) => out.push_bind_param::<Array<Text>, _>(v),
        })
    }
}

impl<M> QueryFragment<Sqlite> for Statement<'_, M> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        walk(self, out, |out, param| match param {
            Param::Text(v) => out.push_bind_param::<Text, _>(v),
            Param::Timestamp(v) => out.push_bind_param::<Timestamp, _>(*v),
            Param::TextArray(_) => {
                Err(diesel::result::Error::QueryBuilderError("SQLite has no arrays: a PostgreSQL statement".into()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_found_in_order_and_repeated() {
        let s: Statement<'_, ()> = Statement::new("a = $1 AND b = $2 OR c = $1", vec![]);
        let pieces: Vec<_> = s.pieces().collect();
        assert_eq!(pieces, [("a = ", Some(0)), (" AND b = ", Some(1)), (" OR c = ", Some(0))]);
        let s: Statement<'_, ()> = Statement::new("$10 x", vec![]);
        assert_eq!(s.pieces().collect::<Vec<_>>(), [("", Some(9)), (" x", None)]);
    }
}
