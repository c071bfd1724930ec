//! What a resident pays: the accepted quote and the chargeable materials, as the quote's
//! `covers` says they combine.

use serde::Serialize;
use utoipa::ToSchema;

use super::material::SuppliedBy;
pub use super::ticket::Covers;

/// Whether a material line is charged to the resident: company-supplied ones are; what the
/// resident supplied (业主自备) never is.
pub fn chargeable(supplied_by: SuppliedBy) -> bool {
    supplied_by == SuppliedBy::Company
}

/// The bill of a ticket, in cents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Bill {
    /// The accepted quote's amount; 0 while no quote is accepted (and for work that is not paid).
    pub quote_cents: i64,
    /// The chargeable (company-supplied) materials billed on top of the quote: 0 when the
    /// accepted quote covers `all`.
    pub materials_cents: i64,
    pub total_cents: i64,
}

/// The bill from the accepted quote (its amount and what it covers), if any, and the sum of the
/// chargeable material lines. Without an accepted quote the chargeable materials are the bill.
pub fn bill(accepted: Option<(i64, Covers)>, chargeable_materials_cents: i64) -> Bill {
    let (quote_cents, materials_cents) = match accepted {
        Some((amount, Covers::All)) => (amount, 0),
        Some((amount, Covers::Labour)) => (amount, chargeable_materials_cents),
        None => (0, chargeable_materials_cents),
    };
    Bill { quote_cents, materials_cents, total_cents: quote_cents + materials_cents }
}

/// Whether the bill has grown past what the resident accepted (`None`: not recorded, as for
/// quotes accepted before it was): then completing needs a new accepted quote.
pub fn grew_past_accepted(bill: &Bill, accepted_total_cents: Option<i64>) -> bool {
    accepted_total_cents.is_some_and(|accepted| bill.total_cents > accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quote_covering_all_is_the_whole_bill() {
        // the desk's case: 80 yuan "labour included" and a 25-yuan part
        assert_eq!(
            bill(Some((8000, Covers::All)), 2500),
            Bill { quote_cents: 8000, materials_cents: 0, total_cents: 8000 }
        );
        assert_eq!(
            bill(Some((8000, Covers::Labour)), 2500),
            Bill { quote_cents: 8000, materials_cents: 2500, total_cents: 10500 }
        );
        assert_eq!(bill(None, 2500), Bill { quote_cents: 0, materials_cents: 2500, total_cents: 2500 });
    }

    #[test]
    fn only_a_bill_above_the_accepted_total_needs_a_new_quote() {
        let grown = bill(Some((8000, Covers::Labour)), 2500);
        assert!(grew_past_accepted(&grown, Some(8000)));
        assert!(!grew_past_accepted(&grown, Some(10500)));
        assert!(!grew_past_accepted(&grown, None));
        assert!(!grew_past_accepted(&bill(Some((8000, Covers::All)), 99_999), Some(8000)));
    }

    #[test]
    fn covers_round_trips() {
        for covers in Covers::ALL {
            assert_eq!(Covers::parse(covers.as_str()), Some(*covers));
        }
        assert_eq!(Covers::parse("materials"), None);
        assert!(!chargeable(SuppliedBy::Resident) && chargeable(SuppliedBy::Company));
    }
}
