//! Passports of foreign guests, who carry no CCCD.
//!
//! Passport numbers follow no international check-digit scheme outside the machine-readable zone, so only the
//! shape is checked (5-20 letters and digits, which covers every issuing state we know of). The nationality is
//! the part worth being strict about: it decides which consular notice applies, and a free-text country name
//! cannot be searched reliably, so it must be one of the official ISO 3166-1 codes.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::countries::{Country, COUNTRIES};

/// Why a passport was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PassportError {
    #[error("passport number must have 5 to 20 letters or digits, found {found}")]
    NumberLength { found: usize },
    #[error("passport number has {found:?} at position {position}; only letters A-Z and digits are allowed")]
    NumberChar { position: usize, found: char },
    #[error("unknown nationality {0:?}: expected an ISO 3166-1 country code such as VNM (or VN)")]
    Nationality(String),
}

/// A foreign guest's passport: normalised number plus ISO 3166-1 alpha-3 nationality.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "PassportFields", into = "PassportFields")]
pub struct Passport {
    number: String,
    country: &'static Country,
}

/// Wire form of [`Passport`]; deserialising goes through [`Passport::parse`] so stored data is re-validated.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PassportFields {
    number: String,
    nationality: String,
}

impl Passport {
    /// `number` is trimmed and uppercased; `nationality` may be alpha-3 (`VNM`) or alpha-2 (`VN`), any case, and is
    /// stored as alpha-3.
    pub fn parse(number: &str, nationality: &str) -> Result<Self, PassportError> {
        let number = number.trim().to_ascii_uppercase();
        // Characters are checked before length so a stray "é" or "-" is named rather than miscounted.
        if let Some((i, found)) = number
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_uppercase() || c.is_ascii_digit()))
        {
            return Err(PassportError::NumberChar {
                position: i + 1,
                found,
            });
        }
        if !(5..=20).contains(&number.len()) {
            return Err(PassportError::NumberLength {
                found: number.len(),
            });
        }
        let country = find_country(nationality)
            .ok_or_else(|| PassportError::Nationality(crate::excerpt(nationality.trim())))?;
        Ok(Passport { number, country })
    }

    /// The passport number, uppercased.
    pub fn number(&self) -> &str {
        &self.number
    }

    /// ISO 3166-1 alpha-3 code of the issuing country, e.g. `"KOR"`.
    pub fn nationality(&self) -> &'static str {
        self.country.alpha3
    }

    /// ISO English short name of the issuing country, e.g. "Korea, Republic of".
    pub fn country_name(&self) -> &'static str {
        self.country.name
    }
}

impl fmt::Display for Passport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.country.alpha3, self.number)
    }
}

impl TryFrom<PassportFields> for Passport {
    type Error = PassportError;

    fn try_from(fields: PassportFields) -> Result<Self, Self::Error> {
        Passport::parse(&fields.number, &fields.nationality)
    }
}

impl From<Passport> for PassportFields {
    fn from(passport: Passport) -> Self {
        PassportFields {
            number: passport.number,
            nationality: passport.country.alpha3.to_owned(),
        }
    }
}

/// ISO English short name for an alpha-3 code (any case); `None` if the code is not officially assigned.
pub fn country_name(alpha3: &str) -> Option<&'static str> {
    let code = alpha3.trim();
    if code.len() != 3 {
        return None;
    }
    find_country(code).map(|c| c.name)
}

/// Looks a country up by alpha-3 or alpha-2 code, ignoring case and surrounding whitespace.
pub fn find_country(code: &str) -> Option<&'static Country> {
    let code = code.trim().to_ascii_uppercase();
    match code.len() {
        3 => COUNTRIES
            .binary_search_by(|c| c.alpha3.cmp(code.as_str()))
            .ok()
            .and_then(|i| COUNTRIES.get(i)),
        2 => COUNTRIES.iter().find(|c| c.alpha2 == code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn country_table_is_complete_and_consistent() {
        assert_eq!(COUNTRIES.len(), 249, "officially assigned ISO 3166-1 codes");
        assert!(COUNTRIES.windows(2).all(|w| w[0].alpha3 < w[1].alpha3));
        let alpha2: HashSet<_> = COUNTRIES.iter().map(|c| c.alpha2).collect();
        assert_eq!(alpha2.len(), COUNTRIES.len());
        for c in COUNTRIES {
            assert!(c.alpha3.len() == 3 && c.alpha3.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(c.alpha2.len() == 2 && c.alpha2.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(!c.name.is_empty());
            assert_eq!(find_country(c.alpha2), Some(c));
            assert_eq!(find_country(c.alpha3), Some(c));
        }
    }

    #[test]
    fn country_names() {
        assert_eq!(country_name("VNM"), Some("Viet Nam"));
        assert_eq!(country_name("vnm"), Some("Viet Nam"));
        assert_eq!(country_name("KOR"), Some("Korea, Republic of"));
        assert_eq!(country_name("CHN"), Some("China"));
        assert_eq!(country_name("USA"), Some("United States"));
        assert_eq!(country_name("VN"), None, "alpha-3 only");
        assert_eq!(country_name("XKX"), None, "user-assigned, not official");
        assert_eq!(country_name("ZZZ"), None);
        assert_eq!(country_name(""), None);
    }

    #[test]
    fn valid_passports() {
        let p = Passport::parse(" m12345678 ", "kor").unwrap();
        assert_eq!(p.number(), "M12345678");
        assert_eq!(p.nationality(), "KOR");
        assert_eq!(p.country_name(), "Korea, Republic of");
        assert_eq!(p.to_string(), "KOR M12345678");

        let p = Passport::parse("C1234567", "VN").unwrap();
        assert_eq!(p.nationality(), "VNM");
        assert_eq!(Passport::parse("E1234", "cn").unwrap().nationality(), "CHN");
        assert_eq!(
            Passport::parse("12345678901234567890", "LAO")
                .unwrap()
                .country_name(),
            "Lao People's Democratic Republic"
        );
    }

    #[test]
    fn passport_errors() {
        assert_eq!(
            Passport::parse("B123", "USA"),
            Err(PassportError::NumberLength { found: 4 })
        );
        assert_eq!(
            Passport::parse("", "USA"),
            Err(PassportError::NumberLength { found: 0 })
        );
        assert_eq!(
            Passport::parse("123456789012345678901", "USA"),
            Err(PassportError::NumberLength { found: 21 })
        );
        assert_eq!(
            Passport::parse("AB-123456", "USA"),
            Err(PassportError::NumberChar {
                position: 3,
                found: '-'
            })
        );
        assert_eq!(
            Passport::parse("AB 123456", "USA"),
            Err(PassportError::NumberChar {
                position: 3,
                found: ' '
            })
        );
        assert_eq!(
            Passport::parse("Đ1234567", "VNM"),
            Err(PassportError::NumberChar {
                position: 1,
                found: 'Đ'
            })
        );
        assert_eq!(
            Passport::parse("B1234567", "Korea").unwrap_err().to_string(),
            "unknown nationality \"Korea\": expected an ISO 3166-1 country code such as VNM (or VN)"
        );
        for bad in ["", "V", "XKX", "UK", "ZZ", "VNMM", "ＶＮＭ"] {
            assert!(
                matches!(
                    Passport::parse("B1234567", bad),
                    Err(PassportError::Nationality(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let p = Passport::parse("b1234567", "fr").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"number":"B1234567","nationality":"FRA"}"#);
        assert_eq!(serde_json::from_str::<Passport>(&json).unwrap(), p);
        assert!(
            serde_json::from_str::<Passport>(r#"{"number":"B1","nationality":"FRA"}"#).is_err()
        );
        assert!(
            serde_json::from_str::<Passport>(r#"{"number":"B1234567","nationality":"FRX"}"#)
                .is_err()
        );
    }
}
