//! Free text that must say something: review notes, reopen reasons, manual exam decisions. A note made of
//! zero-width or blank characters looks like a reason in the database and says nothing.

/// Characters that draw nothing: whitespace (Zs and the other White_Space characters), controls (Cc),
/// format characters (Cf: zero-width space and joiners, bidirectional marks, word joiner, BOM, soft hyphen,
/// tags), variation selectors, the combining grapheme joiner and the Hangul and Braille fillers that fonts
/// render blank.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}')
}

/// How many characters of `s` show on screen.
pub fn visible_chars(s: &str) -> usize {
    s.chars().filter(|&c| !is_invisible(c)).count()
}

/// Whether `s` has at least one visible character.
pub fn has_visible_text(s: &str) -> bool {
    visible_chars(s) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_notes_are_empty() {
        for s in [
            "",
            "   ",
            "\u{200B}\u{200C}\u{200D}",
            "\u{2060}\u{FEFF}\t\n",
            "\u{00A0}\u{3000}\u{202F}",
            "\u{200E}\u{202E}\u{E0041}",
            "\u{3164}\u{FE0F}\u{034F}",
        ] {
            assert!(!has_visible_text(s), "{s:?}");
        }
        assert!(has_visible_text("\u{200B}x\u{200B}"));
        assert!(has_visible_text("Cùng vết sẹo, cùng tai"));
        assert_eq!(visible_chars("a\u{200D}b"), 2);
    }
}
