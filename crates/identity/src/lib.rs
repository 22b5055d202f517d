//! Citizen identity data for the Checkpoint hub: parsing and validation of Vietnamese CCCD numbers, the QR code
//! on CCCD cards, foreign guests' passports, and bulk CSV imports of citizen records.
//!
//! A checkpoint officer acts on these numbers: a watchlist hit, a visitor log or a hand-over to another unit all
//! key on them. A mistyped CCCD must therefore be caught at the desk, while the card is still in hand, not
//! discovered months later in an audit. Everything here is a pure function over its input, and every rejection
//! says what is wrong in words the operator can act on.
//!
//! What is validated, and why:
//! - [`Cccd`]: exactly 12 ASCII digits with an assigned province code. The number has no check digit, so
//!   [`Cccd::check_against`] compares the birth year and gender encoded in digits 4-6 with the record: it is
//!   the only internal consistency check the format offers.
//! - [`parse_qr`]: the card's QR payload, field by field, plus the same consistency check and plausible dates
//!   (issued after birth and not in the future), tolerating the noise real scanners add.
//! - [`Passport`]: number shape, and an ISO 3166-1 nationality so records can be searched by country.
//! - [`parse_records_csv`]: every row is checked like a card; bad rows are reported by line, never silently
//!   dropped, and duplicates within a file are flagged.
//! - Names and addresses are stored NFC-normalised ([`normalize_name`]) and searched by [`fold_for_search`]
//!   keys, so the same name typed with or without diacritics, composed or decomposed, is found.
//!
//! Input is untrusted (scanners, spreadsheets, other systems): nothing here panics on it, and sizes are capped.
//!
//! ```
//! use checkpoint_identity::{fold_for_search, parse_qr, Gender};
//! use time::macros::date;
//!
//! let payload = "001085012345|123456789|Nguyễn Văn An|02031985|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15082021\r\n";
//! let card = parse_qr(payload, date!(2025 - 06 - 01))?;
//! assert_eq!(card.cccd.province_name(), "Hà Nội");
//! assert_eq!(card.gender, Gender::Male);
//! assert_eq!(fold_for_search(&card.full_name), "nguyen van an");
//!
//! // Digit 4 says male: a card printed "Nữ" contradicts its own number.
//! let forged = payload.replace("|Nam|", "|Nữ|");
//! assert_eq!(
//!     parse_qr(&forged, date!(2025 - 06 - 01)).unwrap_err().to_string(),
//!     "CCCD number does not match the card: digit 4 says male, record says female",
//! );
//! # Ok::<(), checkpoint_identity::QrError>(())
//! ```

pub mod cccd;
mod countries;
pub mod date;
pub mod import;
pub mod names;
pub mod passport;
pub mod qr;

pub use cccd::{province_name, Cccd, CccdError, Gender, GenderError, PROVINCES};
pub use date::DateError;
pub use import::{
    parse_records_csv, CitizenRecord, ImportError, ImportReport, RejectedRow, RowError,
};
pub use names::{fold_for_search, normalize_name, validate_name, NameError};
pub use passport::{country_name, find_country, Country, Passport, PassportError, COUNTRIES};
pub use qr::{parse_qr, QrError, QrRecord};

/// Bounded copy of an offending input for an error message: enough to recognise it, never a whole garbage
/// payload in a log line.
pub(crate) fn excerpt(value: &str) -> String {
    const MAX_CHARS: usize = 40;
    if value.chars().count() <= MAX_CHARS {
        value.to_owned()
    } else {
        let mut short: String = value.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn excerpt_bounds_long_values() {
        assert_eq!(excerpt("Khác"), "Khác");
        let long = "ữ".repeat(100);
        let short = excerpt(&long);
        assert_eq!(short.chars().count(), 41);
        assert!(short.ends_with('…'));
    }
}
