//! One place, however the desk typed it: "3栋2单元1502", "3栋2单元 1502", "３幢2单元1502室" and
//! "3号楼2单元1502" are the same room. The key is what rework detection compares and what a
//! search also matches; what the desk typed is kept for display.

/// The place's key: full-width letters and digits as ASCII, no spaces, 幢 and 号楼 as 栋, no 室,
/// ASCII letters in lower case.
pub fn place_key(location: &str) -> String {
    let ascii: String = location
        .chars()
        .map(|c| match c {
            // full-width ASCII (！ to ～) is ASCII shifted by 0xFEE0
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            c => c,
        })
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    ascii.replace("号楼", "栋").replace('幢', "栋").replace('室', "")
}

/// What a search of tickets matches, lowercased: the number, the place as typed and as its key,
/// the reporter, the description and the phone (its digits as the desk types them: `138...`).
pub fn search_text(
    number: &str,
    location: &str,
    reporter_name: &str,
    description: &str,
    reporter_phone: Option<&str>,
) -> String {
    let phone = reporter_phone.unwrap_or_default();
    let national = phone.strip_prefix("+86").unwrap_or(phone);
    [number, location, &place_key(location), reporter_name, description, phone, national]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A search as typed, made into what [`search_text`] holds: trimmed, lowercased, without the
/// characters a `LIKE` pattern reads (`%`, `_`, `\`); `None` when nothing is left.
pub fn search_terms(q: &str) -> Option<(String, String)> {
    let plain: String = q.trim().chars().filter(|c| !matches!(c, '%' | '_' | '\\')).collect::<String>().to_lowercase();
    if plain.is_empty() {
        return None;
    }
    let key = place_key(&plain);
    Some((plain, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_place_has_one_key_however_it_was_typed() {
        let key = place_key("3栋2单元1502");
        for typed in ["3栋2单元 1502", "３栋２单元１５０２", "3幢2单元1502室", "3号楼2单元1502", " 3栋 2单元 1502 室"]
        {
            assert_eq!(place_key(typed), key, "{typed}");
        }
        assert_ne!(place_key("3栋2单元1503"), key);
        assert_eq!(place_key("Ｂ座 12F"), "b座12f");
    }

    #[test]
    fn a_search_finds_number_place_phone_and_words() {
        let text = search_text("GY-20261130-0001", "3栋2单元 1502", "王女士", "厨房水管漏水", Some("+8613812345678"));
        for q in ["gy-20261130-0001", "1502", "3栋2单元1502", "漏水", "王", "13812345678", "+86138"] {
            let (plain, key) = search_terms(q).unwrap();
            assert!(text.contains(&plain) || text.contains(&key), "{q}");
        }
        assert_eq!(search_terms(" %_ "), None);
        assert_eq!(search_terms("3栋 1502室").unwrap().1, "3栋1502");
    }
}
