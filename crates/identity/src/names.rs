//! Vietnamese text helpers shared by every parser in this crate.
//!
//! The same name reaches the hub typed on a phone (usually NFC), pasted from older Windows software (often NFD,
//! i.e. base letter plus combining marks), or read from a card's QR code; the two forms look identical on screen
//! but compare unequal byte for byte. Names are therefore stored NFC-normalised ([`normalize_name`]), and searches
//! compare [`fold_for_search`] keys, because officers often type on keyboards without a Vietnamese input method.

use thiserror::Error;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Longest accepted full name, in characters. Generous on purpose: rejecting a real (long) name at the desk is
/// worse than storing a long one, but an unbounded field invites garbage from a mis-read scan.
pub const MAX_NAME_CHARS: usize = 200;

/// Why a full name was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("full name is empty")]
    Empty,
    #[error("full name has no letters")]
    NoLetters,
    #[error("full name is too long ({chars} characters, at most {max})")]
    TooLong { chars: usize, max: usize },
    #[error(
        "full name contains {found:?} at position {position}; only letters, spaces, apostrophes and hyphens are allowed"
    )]
    InvalidChar { position: usize, found: char },
}

/// NFC-normalises, trims and collapses every run of whitespace to a single space.
///
/// Also used for addresses: the same canonical form keeps stored text comparable whatever keyboard produced it.
pub fn normalize_name(input: &str) -> String {
    let nfc: String = input.nfc().collect();
    collapse_whitespace(&nfc)
}

/// Search key: lowercase, without diacritics (đ/Đ become d), whitespace collapsed.
///
/// "Nguyễn Văn Ân", its NFD form and "nguyen   van an" all give "nguyen van an". The key is lossy (Ân, An and Ấn
/// collide): use it to find candidates, never to decide that two records are the same person.
pub fn fold_for_search(input: &str) -> String {
    let folded: String = input
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            // Đ has no decomposition, so stripping marks leaves it alone. Legacy encodings often substitute the
            // Icelandic eth (Ð/ð), which looks identical, so it folds the same way.
            'đ' | 'ð' => 'd',
            // Typographic and modifier apostrophes appear in minority names (H’Hen Niê) pasted from documents.
            '\u{2019}' | '\u{02BC}' => '\'',
            other => other,
        })
        .collect();
    collapse_whitespace(&folded)
}

/// Normalises a full name ([`normalize_name`]) and checks it could be a person's name.
///
/// Letters of any script are allowed (diacritics included), as are spaces, apostrophes (H'Hen Niê) and hyphens;
/// digits and punctuation are not, because they are the usual sign of a column mix-up or a mis-scan.
pub fn validate_name(input: &str) -> Result<String, NameError> {
    let name = normalize_name(input);
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(NameError::TooLong {
            chars,
            max: MAX_NAME_CHARS,
        });
    }
    let mut has_letter = false;
    for (i, c) in name.chars().enumerate() {
        if c.is_alphabetic() {
            has_letter = true;
        } else if !matches!(c, ' ' | '\'' | '\u{2019}' | '-') {
            return Err(NameError::InvalidChar {
                position: i + 1,
                found: c,
            });
        }
    }
    if !has_letter {
        return Err(NameError::NoLetters);
    }
    Ok(name)
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Nguyễn Văn Ân" spelled with base letters and combining marks, as some Windows tools emit it.
    const NFD_NAME: &str = "Nguye\u{302}\u{303}n Va\u{306}n A\u{302}n";

    #[test]
    fn normalize_composes_trims_and_collapses() {
        assert_eq!(normalize_name(NFD_NAME), "Nguyễn Văn Ân");
        assert_eq!(
            normalize_name("  Trần\t Thị \u{a0} Thu   Hà \r\n"),
            "Trần Thị Thu Hà"
        );
        assert_eq!(normalize_name("   "), "");
    }

    #[test]
    fn folding_matches_accented_and_plain_spellings() {
        assert_eq!(fold_for_search("Nguyễn Văn Ân"), "nguyen van an");
        assert_eq!(fold_for_search(NFD_NAME), "nguyen van an");
        assert_eq!(fold_for_search("  nguyen   VAN an "), "nguyen van an");
        assert_eq!(fold_for_search("Đặng Thị Đào"), "dang thi dao");
        assert_eq!(fold_for_search("ĐỖ ĐỨC ĐẠT"), "do duc dat");
        assert_eq!(fold_for_search("Ðỗ Mười"), "do muoi");
        assert_eq!(
            fold_for_search("Phạm Thị Hương Thủy"),
            "pham thi huong thuy"
        );
        assert_eq!(fold_for_search("Lê Hoàng Ưng Ơn"), "le hoang ung on");
        assert_eq!(fold_for_search("H’Hen Niê"), "h'hen nie");
        // Old-style (hoà) and new-style (hòa) tone placement fold to the same key.
        assert_eq!(fold_for_search("Hoà"), fold_for_search("Hòa"));
    }

    #[test]
    fn valid_names() {
        assert_eq!(validate_name(NFD_NAME).unwrap(), "Nguyễn Văn Ân");
        assert_eq!(
            validate_name("  Huỳnh   Ngọc Bảo  Châu ").unwrap(),
            "Huỳnh Ngọc Bảo Châu"
        );
        assert_eq!(validate_name("H'Hen Niê").unwrap(), "H'Hen Niê");
        assert_eq!(validate_name("Ksor H’Bơ").unwrap(), "Ksor H’Bơ");
        assert_eq!(
            validate_name("Tôn Nữ Thị Minh-Châu").unwrap(),
            "Tôn Nữ Thị Minh-Châu"
        );
    }

    #[test]
    fn invalid_names() {
        assert_eq!(validate_name(" \t "), Err(NameError::Empty));
        assert_eq!(validate_name("' -"), Err(NameError::NoLetters));
        assert_eq!(
            validate_name("Lê Văn 2"),
            Err(NameError::InvalidChar {
                position: 8,
                found: '2'
            })
        );
        assert_eq!(
            validate_name("Lê\u{0}Văn").unwrap_err().to_string(),
            "full name contains '\\0' at position 3; only letters, spaces, apostrophes and hyphens are allowed"
        );
        let long = "A".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            validate_name(&long),
            Err(NameError::TooLong {
                chars: MAX_NAME_CHARS + 1,
                max: MAX_NAME_CHARS
            })
        );
    }
}
