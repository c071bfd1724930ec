//! How the domain's enums are stored: as their text, in TEXT columns, on both engines. A value
//! the code does not know (a row written by a newer version, a hand edit) fails the read with
//! its name rather than passing as an unknown string.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

use crate::domain::ticket::{
    Area, ArrivalLimit, Channel, Covers, EscalationKind, HoldReason, QuoteStatus, Status, Urgency,
};

macro_rules! stored_as_text {
    ($($name:ident),+ $(,)?) => {$(
        impl<DB: Backend> FromSql<Text, DB> for $name
        where
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                $name::parse(&text).ok_or_else(|| format!("{text:?} is not a {}", stringify!($name)).into())
            }
        }

        impl<DB: Backend> ToSql<Text, DB> for $name
        where
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.as_str().to_sql(out)
            }
        }
    )+};
}

stored_as_text!(Status, QuoteStatus, Covers, Area, Urgency, Channel, HoldReason, EscalationKind, ArrivalLimit);
