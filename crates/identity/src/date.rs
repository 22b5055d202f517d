//! Calendar dates as they appear on cards and in spreadsheets.
//!
//! Every date is checked against the real calendar (31/02/2000 is rejected, 29/02/2000 is not) because a
//! plausible-looking but impossible date is the most common typo in hand-keyed citizen records.

use thiserror::Error;
use time::{Date, Month};

/// Why a date field was rejected. `value` is the field as given (shortened if long) so the operator can find it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DateError {
    #[error("date is empty")]
    Empty,
    #[error("{value:?} is not a date in the {expected} format")]
    Format {
        value: String,
        expected: &'static str,
    },
    #[error("{value:?} is not a real date: there is no month {month}")]
    Month { value: String, month: u8 },
    #[error("{value:?} is not a real date: {month} {year} has no day {day}")]
    Day {
        value: String,
        day: u8,
        month: Month,
        year: i32,
    },
}

/// `ddmmyyyy`, exactly eight digits, as printed in the card's QR code.
pub(crate) fn parse_ddmmyyyy(input: &str) -> Result<Date, DateError> {
    let value = input.trim();
    if value.is_empty() {
        return Err(DateError::Empty);
    }
    let format_error = || DateError::Format {
        value: crate::excerpt(value),
        expected: "ddmmyyyy",
    };
    if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format_error());
    }
    // All ASCII digits, so these byte ranges are character boundaries.
    let day = number(&value[0..2]).ok_or_else(format_error)?;
    let month = number(&value[2..4]).ok_or_else(format_error)?;
    let year = number(&value[4..8]).ok_or_else(format_error)?;
    build(value, year, month, day)
}

/// `dd/mm/yyyy` (one-digit day and month tolerated, as spreadsheets write them) or ISO `yyyy-mm-dd`.
pub(crate) fn parse_flexible(input: &str) -> Result<Date, DateError> {
    let value = input.trim();
    if value.is_empty() {
        return Err(DateError::Empty);
    }
    let format_error = || DateError::Format {
        value: crate::excerpt(value),
        expected: "dd/mm/yyyy or yyyy-mm-dd",
    };
    let (year, month, day) = if let Some([d, m, y]) = split3(value, '/') {
        if !(1..=2).contains(&d.len()) || !(1..=2).contains(&m.len()) || y.len() != 4 {
            return Err(format_error());
        }
        (y, m, d)
    } else if let Some([y, m, d]) = split3(value, '-') {
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(format_error());
        }
        (y, m, d)
    } else {
        return Err(format_error());
    };
    let year = number(year).ok_or_else(format_error)?;
    let month = number(month).ok_or_else(format_error)?;
    let day = number(day).ok_or_else(format_error)?;
    build(value, year, month, day)
}

fn split3(value: &str, sep: char) -> Option<[&str; 3]> {
    let mut parts = value.split(sep);
    let first = parts.next()?;
    let second = parts.next()?;
    let third = parts.next()?;
    match parts.next() {
        Some(_) => None,
        None => Some([first, second, third]),
    }
}

/// Parses a short run of ASCII digits; `None` for anything else (signs included, which `str::parse` accepts).
fn number<T: std::str::FromStr>(digits: &str) -> Option<T> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn build(value: &str, year: i32, month: u8, day: u8) -> Result<Date, DateError> {
    let month_value = Month::try_from(month).map_err(|_| DateError::Month {
        value: crate::excerpt(value),
        month,
    })?;
    Date::from_calendar_date(year, month_value, day).map_err(|_| DateError::Day {
        value: crate::excerpt(value),
        day,
        month: month_value,
        year,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn ddmmyyyy() {
        assert_eq!(parse_ddmmyyyy("02031985").unwrap(), date!(1985 - 03 - 02));
        assert_eq!(parse_ddmmyyyy(" 29022000 ").unwrap(), date!(2000 - 02 - 29));
        assert_eq!(
            parse_ddmmyyyy("31022000").unwrap_err().to_string(),
            "\"31022000\" is not a real date: February 2000 has no day 31"
        );
        assert_eq!(
            parse_ddmmyyyy("29021900").unwrap_err().to_string(),
            "\"29021900\" is not a real date: February 1900 has no day 29"
        );
        assert_eq!(
            parse_ddmmyyyy("01131990").unwrap_err().to_string(),
            "\"01131990\" is not a real date: there is no month 13"
        );
        assert!(matches!(
            parse_ddmmyyyy("00011990"),
            Err(DateError::Day { day: 0, .. })
        ));
        assert_eq!(parse_ddmmyyyy(""), Err(DateError::Empty));
        for bad in [
            "2031985",
            "020319850",
            "02-03-1985",
            "0203198５",
            "+2031985",
        ] {
            assert!(
                matches!(parse_ddmmyyyy(bad), Err(DateError::Format { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn flexible() {
        assert_eq!(parse_flexible("02/03/1985").unwrap(), date!(1985 - 03 - 02));
        assert_eq!(parse_flexible("2/3/1985").unwrap(), date!(1985 - 03 - 02));
        assert_eq!(parse_flexible("1985-03-02").unwrap(), date!(1985 - 03 - 02));
        assert!(matches!(
            parse_flexible("31/04/2001"),
            Err(DateError::Day { day: 31, .. })
        ));
        assert!(matches!(
            parse_flexible("2001-13-01"),
            Err(DateError::Month { month: 13, .. })
        ));
        for bad in [
            "1985/03/02",
            "02/03/85",
            "1985-3-2",
            "02.03.1985",
            "02/03/1985/1",
            "+2/03/1985",
            "02031985",
        ] {
            assert!(
                matches!(parse_flexible(bad), Err(DateError::Format { .. })),
                "{bad}"
            );
        }
    }
}
