//! The 12-digit personal identification number printed on the citizen identity card (Căn cước công dân, CCCD).
//!
//! Layout, per Circular 07/2016/TT-BCA, Article 7 (kept unchanged by Circular 59/2021/TT-BCA):
//!
//! | digits | meaning |
//! | --- | --- |
//! | 1-3 | province/city where the birth was registered ([`PROVINCES`]) |
//! | 4 | century of birth and gender: even = male, odd = female; 0/1 1900s, 2/3 2000s, 4/5 2100s, 6/7 2200s, 8/9 2300s |
//! | 5-6 | last two digits of the birth year |
//! | 7-12 | random |
//!
//! The number has no check digit. Its only redundancy is that digits 4-6 repeat the holder's gender and birth
//! year, so [`Cccd::check_against`] comparing them with the rest of the record is the one way to catch a
//! transposed or mistyped digit at the desk.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::Date;
use unicode_normalization::UnicodeNormalization;

/// The 63 province-level codes of Circular 07/2016/TT-BCA (the GSO administrative codes, zero-padded to three
/// digits), sorted by code. Codes are fixed at birth registration: the 2025 province mergers do not change
/// numbers already issued, so this table keeps the pre-merger names the codes were assigned under.
pub const PROVINCES: [(&str, &str); 63] = [
    ("001", "Hà Nội"),
    ("002", "Hà Giang"),
    ("004", "Cao Bằng"),
    ("006", "Bắc Kạn"),
    ("008", "Tuyên Quang"),
    ("010", "Lào Cai"),
    ("011", "Điện Biên"),
    ("012", "Lai Châu"),
    ("014", "Sơn La"),
    ("015", "Yên Bái"),
    ("017", "Hoà Bình"),
    ("019", "Thái Nguyên"),
    ("020", "Lạng Sơn"),
    ("022", "Quảng Ninh"),
    ("024", "Bắc Giang"),
    ("025", "Phú Thọ"),
    ("026", "Vĩnh Phúc"),
    ("027", "Bắc Ninh"),
    ("030", "Hải Dương"),
    ("031", "Hải Phòng"),
    ("033", "Hưng Yên"),
    ("034", "Thái Bình"),
    ("035", "Hà Nam"),
    ("036", "Nam Định"),
    ("037", "Ninh Bình"),
    ("038", "Thanh Hoá"),
    ("040", "Nghệ An"),
    ("042", "Hà Tĩnh"),
    ("044", "Quảng Bình"),
    ("045", "Quảng Trị"),
    ("046", "Thừa Thiên Huế"),
    ("048", "Đà Nẵng"),
    ("049", "Quảng Nam"),
    ("051", "Quảng Ngãi"),
    ("052", "Bình Định"),
    ("054", "Phú Yên"),
    ("056", "Khánh Hoà"),
    ("058", "Ninh Thuận"),
    ("060", "Bình Thuận"),
    ("062", "Kon Tum"),
    ("064", "Gia Lai"),
    ("066", "Đắk Lắk"),
    ("067", "Đắk Nông"),
    ("068", "Lâm Đồng"),
    ("070", "Bình Phước"),
    ("072", "Tây Ninh"),
    ("074", "Bình Dương"),
    ("075", "Đồng Nai"),
    ("077", "Bà Rịa - Vũng Tàu"),
    ("079", "Hồ Chí Minh"),
    ("080", "Long An"),
    ("082", "Tiền Giang"),
    ("083", "Bến Tre"),
    ("084", "Trà Vinh"),
    ("086", "Vĩnh Long"),
    ("087", "Đồng Tháp"),
    ("089", "An Giang"),
    ("091", "Kiên Giang"),
    ("092", "Cần Thơ"),
    ("093", "Hậu Giang"),
    ("094", "Sóc Trăng"),
    ("095", "Bạc Liêu"),
    ("096", "Cà Mau"),
];

/// Name of the province for a three-digit code such as `"079"`; `None` if the code was never assigned.
pub fn province_name(code: &str) -> Option<&'static str> {
    PROVINCES
        .binary_search_by(|(c, _)| (*c).cmp(code))
        .ok()
        .and_then(|i| PROVINCES.get(i))
        .map(|(_, name)| *name)
}

/// Gender as recorded on the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
}

impl Gender {
    /// The word printed on the card: "Nam" or "Nữ".
    pub fn vietnamese(self) -> &'static str {
        match self {
            Gender::Male => "Nam",
            Gender::Female => "Nữ",
        }
    }
}

impl fmt::Display for Gender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Gender::Male => "male",
            Gender::Female => "female",
        })
    }
}

/// A gender field that is none of the accepted spellings.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown gender {0:?}: expected Nam, Nữ, male or female")]
pub struct GenderError(pub String);

impl FromStr for Gender {
    type Err = GenderError;

    /// Accepts "Nam"/"Nữ" (also "Nu" for keyboards without diacritics, NFC or NFD), "male"/"female" and
    /// "M"/"F", in any case. Other diacritic variants are refused rather than folded: "Nứ" is a typo to show
    /// the operator, not a spelling to guess at.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let key: String = input.trim().nfc().collect::<String>().to_lowercase();
        match key.as_str() {
            "nam" | "male" | "m" => Ok(Gender::Male),
            "nữ" | "nu" | "female" | "f" => Ok(Gender::Female),
            _ => Err(GenderError(crate::excerpt(input.trim()))),
        }
    }
}

/// Why a CCCD number was rejected, or disagrees with the record it came with.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CccdError {
    #[error("CCCD number is empty")]
    Empty,
    #[error("CCCD number has a non-digit character {found:?} at position {position}")]
    NonDigit { position: usize, found: char },
    #[error("CCCD number has 9 digits: that is an old CMND number, a CCCD number has 12")]
    OldCmnd,
    #[error("CCCD number must have 12 digits, found {found}")]
    WrongLength { found: usize },
    #[error("unknown province code {code} (digits 1-3 of the CCCD number)")]
    UnknownProvince { code: String },
    #[error("digit 4 says {encoded}, record says {record}")]
    GenderMismatch { encoded: Gender, record: Gender },
    #[error("digits 4-6 say born {encoded}, date of birth is {date_of_birth}")]
    BirthYearMismatch { encoded: i32, date_of_birth: Date },
    #[error(
        "digits 4-6 say born {encoded_year}, date of birth is {date_of_birth}; \
         digit 4 says {encoded_gender}, record says {record_gender}"
    )]
    BirthYearAndGenderMismatch {
        encoded_year: i32,
        date_of_birth: Date,
        encoded_gender: Gender,
        record_gender: Gender,
    },
}

/// A syntactically valid CCCD number with a known province code. Serialises as the bare 12-digit string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cccd(String);

impl Cccd {
    /// Parses a number as typed or scanned: surrounding whitespace is ignored, nothing else is forgiven.
    pub fn parse(input: &str) -> Result<Self, CccdError> {
        let digits = input.trim();
        if digits.is_empty() {
            return Err(CccdError::Empty);
        }
        if let Some((i, found)) = digits
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_digit())
        {
            return Err(CccdError::NonDigit {
                position: i + 1,
                found,
            });
        }
        // Only ASCII digits remain, so byte length is character count and byte slicing is safe.
        match digits.len() {
            12 => {}
            9 => return Err(CccdError::OldCmnd),
            found => return Err(CccdError::WrongLength { found }),
        }
        let code = &digits[..3];
        if province_name(code).is_none() {
            return Err(CccdError::UnknownProvince {
                code: code.to_owned(),
            });
        }
        Ok(Cccd(digits.to_owned()))
    }

    /// The 12 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits 1-3, e.g. `"001"`.
    pub fn province_code(&self) -> &str {
        self.0.get(..3).unwrap_or_default()
    }

    /// Province where the birth was registered, e.g. "Hà Nội".
    pub fn province_name(&self) -> &'static str {
        // Parsing guarantees a known code; the fallback only exists so this cannot panic.
        province_name(self.province_code()).unwrap_or("unknown")
    }

    /// Gender encoded in digit 4.
    pub fn gender(&self) -> Gender {
        if self.digit(3).is_multiple_of(2) {
            Gender::Male
        } else {
            Gender::Female
        }
    }

    /// Birth year encoded in digits 4-6.
    pub fn birth_year(&self) -> i32 {
        let century = match self.digit(3) / 2 {
            0 => 1900,
            1 => 2000,
            2 => 2100,
            3 => 2200,
            _ => 2300,
        };
        century + i32::from(self.digit(4)) * 10 + i32::from(self.digit(5))
    }

    /// Checks that the birth year and gender encoded in the number match the record's.
    pub fn check_against(&self, date_of_birth: Date, gender: Gender) -> Result<(), CccdError> {
        let encoded_year = self.birth_year();
        let encoded_gender = self.gender();
        match (
            encoded_year == date_of_birth.year(),
            encoded_gender == gender,
        ) {
            (true, true) => Ok(()),
            (false, true) => Err(CccdError::BirthYearMismatch {
                encoded: encoded_year,
                date_of_birth,
            }),
            (true, false) => Err(CccdError::GenderMismatch {
                encoded: encoded_gender,
                record: gender,
            }),
            (false, false) => Err(CccdError::BirthYearAndGenderMismatch {
                encoded_year,
                date_of_birth,
                encoded_gender,
                record_gender: gender,
            }),
        }
    }

    fn digit(&self, index: usize) -> u8 {
        self.0
            .as_bytes()
            .get(index)
            .map_or(0, |b| b.wrapping_sub(b'0'))
    }
}

impl fmt::Display for Cccd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Cccd {
    type Err = CccdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cccd::parse(s)
    }
}

impl TryFrom<String> for Cccd {
    type Error = CccdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Cccd::parse(&value)
    }
}

impl From<Cccd> for String {
    fn from(value: Cccd) -> Self {
        value.0
    }
}

impl AsRef<str> for Cccd {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn province_table_is_the_63_official_codes() {
        assert_eq!(PROVINCES.len(), 63);
        assert!(
            PROVINCES.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no duplicates"
        );
        for (code, name) in PROVINCES {
            assert!(code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(province_name(code), Some(name));
        }
        assert_eq!(province_name("001"), Some("Hà Nội"));
        assert_eq!(province_name("079"), Some("Hồ Chí Minh"));
        assert_eq!(province_name("096"), Some("Cà Mau"));
        for unassigned in ["000", "003", "099", "097", "1", "01", "0001", ""] {
            assert_eq!(province_name(unassigned), None, "{unassigned}");
        }
    }

    #[test]
    fn valid_numbers_from_several_provinces() {
        let cases = [
            ("001085012345", "Hà Nội", Gender::Male, 1985),
            ("079190004321", "Hồ Chí Minh", Gender::Female, 1990),
            ("048203000111", "Đà Nẵng", Gender::Male, 2003),
            ("031301123456", "Hải Phòng", Gender::Female, 2001),
            ("092062987654", "Cần Thơ", Gender::Male, 1962),
            ("046175555555", "Thừa Thiên Huế", Gender::Female, 1975),
            ("077099000000", "Bà Rịa - Vũng Tàu", Gender::Male, 1999),
            ("096300999999", "Cà Mau", Gender::Female, 2000),
        ];
        for (number, province, gender, year) in cases {
            let cccd = Cccd::parse(number).unwrap();
            assert_eq!(cccd.as_str(), number);
            assert_eq!(cccd.to_string(), number);
            assert_eq!(cccd.province_code(), &number[..3]);
            assert_eq!(cccd.province_name(), province);
            assert_eq!(cccd.gender(), gender, "{number}");
            assert_eq!(cccd.birth_year(), year, "{number}");
        }
    }

    #[test]
    fn every_century_and_gender_code() {
        let expected = [
            (0, Gender::Male, 1907),
            (1, Gender::Female, 1907),
            (2, Gender::Male, 2007),
            (3, Gender::Female, 2007),
            (4, Gender::Male, 2107),
            (5, Gender::Female, 2107),
            (6, Gender::Male, 2207),
            (7, Gender::Female, 2207),
            (8, Gender::Male, 2307),
            (9, Gender::Female, 2307),
        ];
        for (digit, gender, year) in expected {
            let cccd = Cccd::parse(&format!("036{digit}07123456")).unwrap();
            assert_eq!(cccd.gender(), gender, "digit {digit}");
            assert_eq!(cccd.birth_year(), year, "digit {digit}");
        }
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(
            Cccd::parse(" \t001085012345\r\n").unwrap().as_str(),
            "001085012345"
        );
    }

    #[test]
    fn error_paths() {
        assert_eq!(Cccd::parse(""), Err(CccdError::Empty));
        assert_eq!(Cccd::parse("   "), Err(CccdError::Empty));
        assert_eq!(
            Cccd::parse("00108501234"),
            Err(CccdError::WrongLength { found: 11 })
        );
        assert_eq!(
            Cccd::parse("0010850123456"),
            Err(CccdError::WrongLength { found: 13 })
        );
        assert_eq!(Cccd::parse("123456789"), Err(CccdError::OldCmnd));
        assert_eq!(
            Cccd::parse("00108501234O"),
            Err(CccdError::NonDigit {
                position: 12,
                found: 'O'
            })
        );
        assert_eq!(
            Cccd::parse("001 085 012 345"),
            Err(CccdError::NonDigit {
                position: 4,
                found: ' '
            })
        );
        // Full-width digits come from some Asian input methods; they are not ASCII digits.
        assert_eq!(
            Cccd::parse("００1085012345"),
            Err(CccdError::NonDigit {
                position: 1,
                found: '０'
            })
        );
        assert_eq!(
            Cccd::parse("099085012345"),
            Err(CccdError::UnknownProvince { code: "099".into() })
        );
        assert_eq!(
            Cccd::parse("000085012345"),
            Err(CccdError::UnknownProvince { code: "000".into() })
        );
    }

    #[test]
    fn error_messages_are_readable() {
        let msg = |s: &str| Cccd::parse(s).unwrap_err().to_string();
        assert_eq!(msg("12345"), "CCCD number must have 12 digits, found 5");
        assert_eq!(
            msg("0010850l2345"),
            "CCCD number has a non-digit character 'l' at position 8"
        );
        assert_eq!(
            msg("099085012345"),
            "unknown province code 099 (digits 1-3 of the CCCD number)"
        );
    }

    #[test]
    fn check_against_record() {
        let male_1985 = Cccd::parse("001085012345").unwrap();
        let female_1985 = Cccd::parse("001185012345").unwrap();
        let dob = date!(1985 - 03 - 02);
        assert_eq!(male_1985.check_against(dob, Gender::Male), Ok(()));
        assert_eq!(female_1985.check_against(dob, Gender::Female), Ok(()));

        assert_eq!(
            female_1985
                .check_against(dob, Gender::Male)
                .unwrap_err()
                .to_string(),
            "digit 4 says female, record says male"
        );
        assert_eq!(
            male_1985
                .check_against(date!(1986 - 03 - 02), Gender::Male)
                .unwrap_err()
                .to_string(),
            "digits 4-6 say born 1985, date of birth is 1986-03-02"
        );
        // Right two digits, wrong century: a 2085 birth is impossible for someone born in 1985.
        let male_2085 = Cccd::parse("001285012345").unwrap();
        assert_eq!(
            male_2085.check_against(dob, Gender::Male),
            Err(CccdError::BirthYearMismatch {
                encoded: 2085,
                date_of_birth: dob
            })
        );
        assert_eq!(
            female_1985
                .check_against(date!(2003 - 01 - 01), Gender::Male)
                .unwrap_err()
                .to_string(),
            "digits 4-6 say born 1985, date of birth is 2003-01-01; digit 4 says female, record says male"
        );
    }

    #[test]
    fn serde_round_trip_validates() {
        let cccd = Cccd::parse("079190004321").unwrap();
        let json = serde_json::to_string(&cccd).unwrap();
        assert_eq!(json, "\"079190004321\"");
        assert_eq!(serde_json::from_str::<Cccd>(&json).unwrap(), cccd);
        let err = serde_json::from_str::<Cccd>("\"099190004321\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown province code 099"),
            "{err}"
        );
        assert!(serde_json::from_str::<Cccd>("79190004321").is_err());
    }

    #[test]
    fn gender_parsing() {
        for male in ["Nam", "nam", " NAM ", "male", "Male", "M", "m"] {
            assert_eq!(male.parse::<Gender>(), Ok(Gender::Male), "{male:?}");
        }
        // NFC "Nữ", NFD "Nữ" (u + horn + tilde), the unaccented spelling, English.
        for female in [
            "Nữ",
            "NỮ",
            "nữ",
            "Nu\u{31b}\u{303}",
            "NU\u{31b}\u{303}",
            "Nu",
            "nu",
            "Female",
            "FEMALE",
            "f",
        ] {
            assert_eq!(female.parse::<Gender>(), Ok(Gender::Female), "{female:?}");
        }
        for bad in ["", "Nứ", "nan", "x", "fem", "Nam Nữ"] {
            assert!(bad.parse::<Gender>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "Khác".parse::<Gender>().unwrap_err().to_string(),
            "unknown gender \"Khác\": expected Nam, Nữ, male or female"
        );
        assert_eq!(
            serde_json::to_string(&Gender::Female).unwrap(),
            "\"female\""
        );
        assert_eq!(
            serde_json::from_str::<Gender>("\"male\"").unwrap(),
            Gender::Male
        );
        assert_eq!(Gender::Female.vietnamese(), "Nữ");
    }
}
