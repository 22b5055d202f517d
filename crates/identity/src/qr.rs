//! The QR code printed on the chip CCCD card.
//!
//! The payload is seven `|`-separated fields:
//! `CCCD number|old CMND number|full name|ddmmyyyy birth|gender|address|ddmmyyyy issue`, for example
//! `001085012345|123456789|Nguyễn Văn An|02031985|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15082021`.
//!
//! Scanners in the field are sloppy: they append CR/LF, a trailing `|`, and newer cards carry extra trailing
//! fields, so anything after the seventh field is ignored. Everything inside the seven fields is checked,
//! including that the number agrees with the printed birth year and gender: a QR code that contradicts itself is
//! either damaged or forged, and either way the officer must look at the card.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::Date;

use crate::cccd::{Cccd, CccdError, Gender, GenderError};
use crate::date::{parse_ddmmyyyy, DateError};
use crate::names::{normalize_name, validate_name, NameError};

/// Longest payload accepted. A real one is a few hundred bytes; the cap bounds the work done on garbage input
/// from a misbehaving scanner before any parsing starts.
pub const MAX_QR_BYTES: usize = 2048;

/// Number of fields a card QR code carries.
pub const QR_FIELDS: usize = 7;

/// The decoded, validated content of a card's QR code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QrRecord {
    pub cccd: Cccd,
    /// The 9-digit CMND the holder had before the CCCD, when the card lists one.
    pub old_id: Option<String>,
    /// NFC-normalised, whitespace collapsed.
    pub full_name: String,
    pub date_of_birth: Date,
    pub gender: Gender,
    /// NFC-normalised, whitespace collapsed.
    pub address: String,
    pub issued_on: Date,
}

/// Why a QR payload was rejected. Messages name the field so the officer knows what to compare on the card.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum QrError {
    #[error("QR payload is too long ({len} bytes, at most {max}): not a CCCD card")]
    TooLong { len: usize, max: usize },
    #[error("QR payload has {found} field(s), a CCCD card has {QR_FIELDS}")]
    TooFewFields { found: usize },
    #[error("{0}")]
    Cccd(CccdError),
    #[error("old ID number (CMND) must be 9 digits, found {0:?}")]
    OldId(String),
    #[error("{0}")]
    Name(NameError),
    #[error("date of birth: {0}")]
    DateOfBirth(DateError),
    #[error("issue date: {0}")]
    IssueDate(DateError),
    #[error("gender: {0}")]
    Gender(GenderError),
    #[error("address is empty")]
    EmptyAddress,
    #[error("address contains the control character {0:?}")]
    AddressControlChar(char),
    /// The number's digits 4-6 contradict the printed date of birth or gender.
    #[error("CCCD number does not match the card: {0}")]
    Mismatch(CccdError),
    #[error("date of birth {date_of_birth} is in the future (today is {today})")]
    BornInFuture { date_of_birth: Date, today: Date },
    #[error("issue date {issued_on} is before the date of birth {date_of_birth}")]
    IssuedBeforeBirth {
        issued_on: Date,
        date_of_birth: Date,
    },
    #[error("issue date {issued_on} is in the future (today is {today})")]
    IssuedInFuture { issued_on: Date, today: Date },
}

/// Decodes and validates a card QR payload. `today` is the date the card is being checked on (passed in, not
/// read from the clock, so results are reproducible).
pub fn parse_qr(payload: &str, today: Date) -> Result<QrRecord, QrError> {
    if payload.len() > MAX_QR_BYTES {
        return Err(QrError::TooLong {
            len: payload.len(),
            max: MAX_QR_BYTES,
        });
    }
    // Trailing separators are scanner noise, not empty fields, so they do not count towards the seven.
    let trimmed = payload.trim().trim_end_matches('|');
    let fields: Vec<&str> = trimmed.split('|').collect();
    let [cccd, old_id, full_name, date_of_birth, gender, address, issued_on, ..] = fields[..]
    else {
        let found = if trimmed.trim().is_empty() {
            0
        } else {
            fields.len()
        };
        return Err(QrError::TooFewFields { found });
    };

    let cccd = Cccd::parse(cccd).map_err(QrError::Cccd)?;
    let old_id = parse_old_id(old_id)?;
    let full_name = validate_name(full_name).map_err(QrError::Name)?;
    let date_of_birth = parse_ddmmyyyy(date_of_birth).map_err(QrError::DateOfBirth)?;
    let gender: Gender = gender.parse().map_err(QrError::Gender)?;
    let address = parse_address(address)?;
    let issued_on = parse_ddmmyyyy(issued_on).map_err(QrError::IssueDate)?;

    cccd.check_against(date_of_birth, gender)
        .map_err(QrError::Mismatch)?;
    if date_of_birth > today {
        return Err(QrError::BornInFuture {
            date_of_birth,
            today,
        });
    }
    if issued_on < date_of_birth {
        return Err(QrError::IssuedBeforeBirth {
            issued_on,
            date_of_birth,
        });
    }
    if issued_on > today {
        return Err(QrError::IssuedInFuture { issued_on, today });
    }

    Ok(QrRecord {
        cccd,
        old_id,
        full_name,
        date_of_birth,
        gender,
        address,
        issued_on,
    })
}

fn parse_old_id(field: &str) -> Result<Option<String>, QrError> {
    let old_id = field.trim();
    if old_id.is_empty() {
        return Ok(None);
    }
    if old_id.len() == 9 && old_id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(Some(old_id.to_owned()))
    } else {
        Err(QrError::OldId(crate::excerpt(old_id)))
    }
}

pub(crate) fn parse_address(field: &str) -> Result<String, QrError> {
    let address = normalize_name(field);
    if address.is_empty() {
        return Err(QrError::EmptyAddress);
    }
    if let Some(c) = address.chars().find(|c| c.is_control()) {
        return Err(QrError::AddressControlChar(c));
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const SAMPLE: &str = "001085012345|123456789|Nguyễn Văn An|02031985|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15082021";
    const TODAY: Date = date!(2025 - 06 - 01);

    fn sample_with(field: usize, value: &str) -> String {
        let mut fields: Vec<&str> = SAMPLE.split('|').collect();
        fields[field] = value;
        fields.join("|")
    }

    #[test]
    fn sample_payload_parses() {
        let record = parse_qr(SAMPLE, TODAY).unwrap();
        assert_eq!(record.cccd.as_str(), "001085012345");
        assert_eq!(record.old_id.as_deref(), Some("123456789"));
        assert_eq!(record.full_name, "Nguyễn Văn An");
        assert_eq!(record.date_of_birth, date!(1985 - 03 - 02));
        assert_eq!(record.gender, Gender::Male);
        assert_eq!(record.address, "Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội");
        assert_eq!(record.issued_on, date!(2021 - 08 - 15));
        assert_eq!(record.cccd.province_name(), "Hà Nội");
    }

    #[test]
    fn female_holder_without_old_id() {
        let payload = "079195004321||Trần Thị Thu   Hà|17111995|Nữ|12 Nguyễn Huệ, Bến Nghé, Quận 1, TP. Hồ Chí Minh|03042022";
        let record = parse_qr(payload, TODAY).unwrap();
        assert_eq!(record.old_id, None);
        assert_eq!(record.full_name, "Trần Thị Thu Hà");
        assert_eq!(record.gender, Gender::Female);
        assert_eq!(record.cccd.province_name(), "Hồ Chí Minh");
    }

    #[test]
    fn nfd_encoded_name_and_gender_are_normalised() {
        // "Nguyễn Văn An" and "Nữ"/"Nam" with combining marks, as some scanner drivers emit them.
        let payload = sample_with(2, "Nguye\u{302}\u{303}n Va\u{306}n An");
        let record = parse_qr(&payload, TODAY).unwrap();
        assert_eq!(record.full_name, "Nguyễn Văn An");

        let payload = "036301000777||Phạm Thi\u{323} Nga|09092001|Nu\u{31b}\u{303}|Xã Hải Hậu, Nam Định|10102021";
        let record = parse_qr(payload, TODAY).unwrap();
        assert_eq!(record.full_name, "Phạm Thị Nga");
        assert_eq!(record.gender, Gender::Female);
    }

    #[test]
    fn scanner_noise_and_extra_fields_are_tolerated() {
        let expected = parse_qr(SAMPLE, TODAY).unwrap();
        for payload in [
            format!("{SAMPLE}\r\n"),
            format!("{SAMPLE}\n"),
            format!("{SAMPLE}|"),
            format!("{SAMPLE}||\r\n"),
            format!("  {SAMPLE}|\r"),
            format!("{SAMPLE}|Kinh|Không|Nam Định|Nguyễn Văn Bình|Lê Thị Hoa\r\n"),
            format!("{SAMPLE}||extra|"),
        ] {
            assert_eq!(
                parse_qr(&payload, TODAY).as_ref(),
                Ok(&expected),
                "{payload:?}"
            );
        }
    }

    #[test]
    fn too_few_fields_says_how_many() {
        let six = SAMPLE.rsplit_once('|').unwrap().0;
        assert_eq!(
            parse_qr(six, TODAY),
            Err(QrError::TooFewFields { found: 6 })
        );
        assert_eq!(
            parse_qr(&format!("{six}|\r\n"), TODAY)
                .unwrap_err()
                .to_string(),
            "QR payload has 6 field(s), a CCCD card has 7"
        );
        assert_eq!(
            parse_qr("001085012345", TODAY),
            Err(QrError::TooFewFields { found: 1 })
        );
        assert_eq!(parse_qr("", TODAY), Err(QrError::TooFewFields { found: 0 }));
        assert_eq!(
            parse_qr(" |||\r\n", TODAY),
            Err(QrError::TooFewFields { found: 0 })
        );
    }

    #[test]
    fn oversized_payload_is_rejected_before_parsing() {
        let payload = format!("{SAMPLE}|{}", "x".repeat(MAX_QR_BYTES));
        assert!(matches!(
            parse_qr(&payload, TODAY),
            Err(QrError::TooLong {
                max: MAX_QR_BYTES,
                ..
            })
        ));
    }

    #[test]
    fn field_errors() {
        let err =
            |field: usize, value: &str| parse_qr(&sample_with(field, value), TODAY).unwrap_err();
        assert_eq!(
            err(0, "00108501234"),
            QrError::Cccd(CccdError::WrongLength { found: 11 })
        );
        assert_eq!(
            err(0, "099085012345"),
            QrError::Cccd(CccdError::UnknownProvince { code: "099".into() })
        );
        assert_eq!(err(1, "12345678"), QrError::OldId("12345678".into()));
        assert_eq!(err(1, "12345678A"), QrError::OldId("12345678A".into()));
        assert_eq!(err(2, "  "), QrError::Name(NameError::Empty));
        assert!(matches!(
            err(2, "Nguyễn Văn 4n"),
            QrError::Name(NameError::InvalidChar { found: '4', .. })
        ));
        assert_eq!(
            err(3, "31021985").to_string(),
            "date of birth: \"31021985\" is not a real date: February 1985 has no day 31"
        );
        assert!(matches!(
            err(3, "2/3/1985"),
            QrError::DateOfBirth(DateError::Format { .. })
        ));
        assert!(matches!(
            err(6, "15132021"),
            QrError::IssueDate(DateError::Month { month: 13, .. })
        ));
        assert!(matches!(
            err(3, " "),
            QrError::DateOfBirth(DateError::Empty)
        ));
        // An empty last field is indistinguishable from a scanner's trailing separator.
        assert_eq!(err(6, ""), QrError::TooFewFields { found: 6 });
        assert_eq!(
            err(4, "Khác").to_string(),
            "gender: unknown gender \"Khác\": expected Nam, Nữ, male or female"
        );
        assert_eq!(err(5, " "), QrError::EmptyAddress);
        assert_eq!(err(5, "Số 1\u{7}"), QrError::AddressControlChar('\u{7}'));
    }

    #[test]
    fn number_contradicting_the_card_is_detected() {
        assert_eq!(
            parse_qr(&sample_with(4, "Nữ"), TODAY)
                .unwrap_err()
                .to_string(),
            "CCCD number does not match the card: digit 4 says male, record says female"
        );
        assert_eq!(
            parse_qr(&sample_with(3, "02031986"), TODAY)
                .unwrap_err()
                .to_string(),
            "CCCD number does not match the card: digits 4-6 say born 1985, date of birth is 1986-03-02"
        );
    }

    #[test]
    fn issue_date_must_fall_between_birth_and_today() {
        assert_eq!(
            parse_qr(&sample_with(6, "01031985"), TODAY),
            Err(QrError::IssuedBeforeBirth {
                issued_on: date!(1985 - 03 - 01),
                date_of_birth: date!(1985 - 03 - 02)
            })
        );
        assert_eq!(
            parse_qr(&sample_with(6, "02062025"), TODAY)
                .unwrap_err()
                .to_string(),
            "issue date 2025-06-02 is in the future (today is 2025-06-01)"
        );
        // Issued on the day of birth and issued today are both possible (newborn cards, same-day issue).
        assert!(parse_qr(&sample_with(6, "02031985"), TODAY).is_ok());
        assert!(parse_qr(&sample_with(6, "01062025"), TODAY).is_ok());
        let future_birth = "001225012345||Nguyễn Văn An|02032025|Nam|Hà Nội|02032025";
        assert_eq!(
            parse_qr(future_birth, date!(2025 - 01 - 01)),
            Err(QrError::BornInFuture {
                date_of_birth: date!(2025 - 03 - 02),
                today: date!(2025 - 01 - 01)
            })
        );
    }

    /// SplitMix64: tiny, deterministic, good enough to drive a fuzz loop without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        const ALPHABET: &[char] = &[
            '0',
            '1',
            '2',
            '3',
            '9',
            '|',
            '|',
            '|',
            ' ',
            '\r',
            '\n',
            '\t',
            '\0',
            'A',
            'n',
            'ữ',
            'Đ',
            'ễ',
            '\u{302}',
            '\u{303}',
            '\u{31b}',
            '\u{feff}',
            '\u{200b}',
            '\u{10ffff}',
            '/',
            '-',
            '\'',
            '+',
            '０',
            'ß',
            'İ',
            '🙂',
        ];
        let mut rng = Rng(0x00C0_FFEE);
        let sample: Vec<char> = SAMPLE.chars().collect();
        for round in 0..6000 {
            let input: String = match round % 3 {
                // Random strings over an alphabet rich in separators, digits and combining marks.
                0 => (0..rng.below(120))
                    .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                    .collect(),
                // The sample with a few characters replaced, inserted or deleted.
                1 => {
                    let mut chars = sample.clone();
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(chars.len() + 1);
                        let c = ALPHABET[rng.below(ALPHABET.len())];
                        match rng.below(3) {
                            0 if at < chars.len() => chars[at] = c,
                            1 if at < chars.len() => {
                                chars.remove(at);
                            }
                            _ => chars.insert(at, c),
                        }
                    }
                    chars.into_iter().collect()
                }
                // Raw bytes, decoded lossily as a scanner driver would.
                _ => {
                    let bytes: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
            };
            let today = if round % 2 == 0 { TODAY } else { Date::MIN };
            let _ = parse_qr(&input, today);
        }
        // A pathological but in-range payload: thousands of separators.
        let _ = parse_qr(&"|".repeat(MAX_QR_BYTES), TODAY);
        let _ = parse_qr(&"\u{303}".repeat(MAX_QR_BYTES / 2), TODAY);
    }
}
