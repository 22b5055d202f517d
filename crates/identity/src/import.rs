//! Bulk import of citizen records into the hub from a CSV file, typically exported from a spreadsheet.
//!
//! Import is all-rows-considered: one bad row never stops the others, and every rejected row comes back with its
//! line number and the reason, so the operator can fix the spreadsheet and re-import only those rows. Only a
//! problem with the file as a whole (unreadable, no header, a required column missing) is reported as a single
//! [`ImportError`].
//!
//! Accepted input: UTF-8 with or without BOM; comma separated, or semicolon/tab separated when the header row
//! has no comma (Excel with Vietnamese regional settings writes semicolons); a header row with the columns
//! `cccd, full_name, date_of_birth, gender, address` and optionally `photo`, in any order and any case; extra
//! columns are ignored. Dates as `dd/mm/yyyy` or `yyyy-mm-dd`. A file saved with US settings (`mm/dd/yyyy`) is
//! only caught when the day is above 12 or the year disagrees with the CCCD: check exports at the source.

use std::collections::HashMap;
use std::io::Read;

use serde::{Deserialize, Serialize, Serializer};
use thiserror::Error;
use time::Date;

use crate::cccd::{Cccd, CccdError, Gender, GenderError};
use crate::date::{parse_flexible, DateError};
use crate::names::{normalize_name, validate_name, NameError};

/// A validated citizen record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitizenRecord {
    pub cccd: Cccd,
    /// NFC-normalised, whitespace collapsed.
    pub full_name: String,
    pub date_of_birth: Date,
    pub gender: Gender,
    /// NFC-normalised, whitespace collapsed.
    pub address: String,
    /// Path of the reference photo, as written in the file; not checked to exist.
    pub photo: Option<String>,
}

/// Why the file as a whole could not be imported.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ImportError {
    #[error("could not read the file: {0}")]
    Read(String),
    #[error("the file is empty: a header row naming the columns is required")]
    Empty,
    #[error("the header row is not valid UTF-8: save the file as CSV UTF-8")]
    HeaderNotUtf8,
    #[error("missing required column '{0}' in the header row")]
    MissingColumn(&'static str),
    #[error("column '{0}' appears more than once in the header row")]
    DuplicateColumn(&'static str),
}

/// Why one row was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RowError {
    #[error("row has {found} values but the header has {expected} (is there an unquoted separator in a value?)")]
    FieldCount { found: usize, expected: usize },
    #[error("column '{column}' is not valid UTF-8: save the file as CSV UTF-8")]
    NotUtf8 { column: String },
    #[error("cccd: {0}")]
    Cccd(CccdError),
    #[error("cccd: {cccd} already appears on line {first_line}")]
    DuplicateCccd { cccd: Cccd, first_line: u64 },
    #[error("full_name: {0}")]
    Name(NameError),
    #[error("date_of_birth: {0}")]
    DateOfBirth(DateError),
    #[error("gender: {0}")]
    Gender(GenderError),
    #[error("address is empty")]
    EmptyAddress,
    #[error("address contains the control character {0:?}")]
    AddressControlChar(char),
    /// The CCCD's digits 4-6 contradict the row's date of birth or gender.
    #[error("cccd does not match the row: {0}")]
    Mismatch(CccdError),
}

/// A row that was not imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejectedRow {
    /// 1-based line in the file where the row starts (the header is line 1).
    pub line: u64,
    #[serde(serialize_with = "as_display")]
    pub reason: RowError,
}

/// Outcome of an import: the records that passed, and every row that did not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[must_use = "rejected rows and file errors must be shown to the operator"]
pub struct ImportReport {
    pub records: Vec<CitizenRecord>,
    /// The file line of each of `records`, for reporting what happens to it later (its photo, say).
    pub lines: Vec<u64>,
    pub rejected: Vec<RejectedRow>,
    /// Set when the file as a whole could not be imported; `records` and `rejected` are then empty.
    #[serde(serialize_with = "as_display_opt")]
    pub error: Option<ImportError>,
}

impl ImportReport {
    /// True when the file was readable and every data row was imported.
    pub fn is_clean(&self) -> bool {
        self.error.is_none() && self.rejected.is_empty()
    }

    fn failed(error: ImportError) -> Self {
        ImportReport {
            error: Some(error),
            ..ImportReport::default()
        }
    }
}

const REQUIRED: [&str; 5] = ["cccd", "full_name", "date_of_birth", "gender", "address"];
const PHOTO: &str = "photo";

/// Column positions resolved from the header row.
struct Columns {
    cccd: usize,
    full_name: usize,
    date_of_birth: usize,
    gender: usize,
    address: usize,
    photo: Option<usize>,
    count: usize,
}

/// Reads and validates a CSV file of citizen records. See the module docs for the accepted format.
pub fn parse_records_csv(mut reader: impl Read) -> ImportReport {
    let mut data = Vec::new();
    if let Err(e) = reader.read_to_end(&mut data) {
        return ImportReport::failed(ImportError::Read(e.to_string()));
    }
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&data);

    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .delimiter(detect_delimiter(data))
        .from_reader(data);

    let mut row = csv::ByteRecord::new();
    let header = match csv.read_byte_record(&mut row) {
        Ok(true) => row.clone(),
        Ok(false) => return ImportReport::failed(ImportError::Empty),
        Err(e) => return ImportReport::failed(ImportError::Read(e.to_string())),
    };
    let columns = match resolve_columns(&header) {
        Ok(columns) => columns,
        Err(e) => return ImportReport::failed(e),
    };

    let mut report = ImportReport::default();
    let mut first_seen: HashMap<Cccd, u64> = HashMap::new();
    loop {
        match csv.read_byte_record(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                // Reading from memory cannot fail on I/O and csv-core accepts any byte sequence, so this is
                // unreachable in practice; give up rather than risk looping on a reader that does not advance.
                report.error = Some(ImportError::Read(e.to_string()));
                break;
            }
        }
        // Spreadsheets pad exports with rows of empty cells; they carry no data and are not worth a rejection.
        if row.iter().all(<[u8]>::is_empty) {
            continue;
        }
        let line = row.position().map_or(0, csv::Position::line);
        match parse_row(&row, &header, &columns, line, &mut first_seen) {
            Ok(record) => {
                report.records.push(record);
                report.lines.push(line);
            }
            Err(reason) => report.rejected.push(RejectedRow { line, reason }),
        }
    }
    report
}

/// The header decides the separator: a semicolon- or tab-separated header has no comma in it, while a
/// comma-separated one has at least four (five required columns).
fn detect_delimiter(data: &[u8]) -> u8 {
    let first_line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let count = |sep: u8| first_line.iter().filter(|&&b| b == sep).count();
    if count(b',') > 0 {
        b','
    } else if count(b';') > 0 {
        b';'
    } else if count(b'\t') > 0 {
        b'\t'
    } else {
        b','
    }
}

fn resolve_columns(header: &csv::ByteRecord) -> Result<Columns, ImportError> {
    let names: Vec<String> = header
        .iter()
        .map(|raw| {
            std::str::from_utf8(raw)
                .map(|name| name.trim().to_ascii_lowercase())
                .map_err(|_| ImportError::HeaderNotUtf8)
        })
        .collect::<Result<_, _>>()?;
    let find = |wanted: &'static str| -> Result<Option<usize>, ImportError> {
        let mut positions = names
            .iter()
            .enumerate()
            .filter(|(_, n)| *n == wanted)
            .map(|(i, _)| i);
        let first = positions.next();
        match positions.next() {
            Some(_) => Err(ImportError::DuplicateColumn(wanted)),
            None => Ok(first),
        }
    };
    let required = |wanted: &'static str| find(wanted)?.ok_or(ImportError::MissingColumn(wanted));
    let [cccd, full_name, date_of_birth, gender, address] = REQUIRED;
    Ok(Columns {
        cccd: required(cccd)?,
        full_name: required(full_name)?,
        date_of_birth: required(date_of_birth)?,
        gender: required(gender)?,
        address: required(address)?,
        photo: find(PHOTO)?,
        count: names.len(),
    })
}

fn parse_row(
    row: &csv::ByteRecord,
    header: &csv::ByteRecord,
    columns: &Columns,
    line: u64,
    first_seen: &mut HashMap<Cccd, u64>,
) -> Result<CitizenRecord, RowError> {
    if row.len() != columns.count {
        return Err(RowError::FieldCount {
            found: row.len(),
            expected: columns.count,
        });
    }
    let field = |index: usize| -> Result<&str, RowError> {
        let raw = row.get(index).unwrap_or_default();
        std::str::from_utf8(raw).map_err(|_| RowError::NotUtf8 {
            column: String::from_utf8_lossy(header.get(index).unwrap_or_default()).into_owned(),
        })
    };

    let cccd = Cccd::parse(field(columns.cccd)?).map_err(RowError::Cccd)?;
    // Recorded even if a later field fails, so the second copy of a number is always flagged: two rows with
    // the same CCCD need a human decision whichever of them is correct.
    if let Some(&first_line) = first_seen.get(&cccd) {
        return Err(RowError::DuplicateCccd { cccd, first_line });
    }
    first_seen.insert(cccd.clone(), line);

    let full_name = validate_name(field(columns.full_name)?).map_err(RowError::Name)?;
    let date_of_birth =
        parse_flexible(field(columns.date_of_birth)?).map_err(RowError::DateOfBirth)?;
    let gender: Gender = field(columns.gender)?.parse().map_err(RowError::Gender)?;
    let address = normalize_name(field(columns.address)?);
    if address.is_empty() {
        return Err(RowError::EmptyAddress);
    }
    if let Some(c) = address.chars().find(|c| c.is_control()) {
        return Err(RowError::AddressControlChar(c));
    }
    let photo = match columns.photo {
        Some(index) => Some(field(index)?.to_owned()).filter(|p| !p.is_empty()),
        None => None,
    };
    cccd.check_against(date_of_birth, gender)
        .map_err(RowError::Mismatch)?;

    Ok(CitizenRecord {
        cccd,
        full_name,
        date_of_birth,
        gender,
        address,
        photo,
    })
}

fn as_display<S: Serializer, T: std::fmt::Display>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

fn as_display_opt<S: Serializer, T: std::fmt::Display>(
    value: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.collect_str(value),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn import(text: &str) -> ImportReport {
        parse_records_csv(text.as_bytes())
    }

    fn reasons(report: &ImportReport) -> Vec<(u64, String)> {
        report
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.to_string()))
            .collect()
    }

    #[test]
    fn mixed_good_and_bad_rows() {
        let csv = "\
cccd,full_name,date_of_birth,gender,address,photo
001085012345,Nguyễn Văn An,02/03/1985,Nam,\"Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội\",photos/001085012345.jpg
079195004321,  Trần Thị Thu  Hà ,1995-11-17,Nữ,\"12 Nguyễn Huệ, Quận 1, TP. Hồ Chí Minh\",
001085012345,Nguyễn Văn Ân,02/03/1985,Nam,Hà Nội,
048203000111,Lê Hoàng Nam,31/02/2003,Nam,Đà Nẵng,
099190004321,Phạm Thị Mai,01/01/1990,Nữ,Cần Thơ,
036301000777,Phạm Thị Nga,09/09/2001,Nam,Nam Định,
092062987654,Võ Văn Kiệt 2,01/05/1962,Nam,Cần Thơ,
031301123456,Đỗ Thị Lan,1/5/2001,Khác,Hải Phòng,
046175555555,Hồ Thị Xuân Hương,20/10/1976,Nữ,Huế,
077099000000,Bùi Quang Huy,15/06/1999,nam,Số 5, Vũng Tàu,
014080222333,Lò Văn Pọm,03/04/1980,male,   ,
,,,,,
034090111222,Vũ Đức Thắng,1990-07-30,NAM,Thái Bình,photos/vdt.png
";
        let report = import(csv);
        assert_eq!(report.error, None);
        let imported: Vec<&str> = report.records.iter().map(|r| r.cccd.as_str()).collect();
        assert_eq!(imported, ["001085012345", "079195004321", "034090111222"]);
        assert_eq!(
            reasons(&report),
            [
                (4, "cccd: 001085012345 already appears on line 2".to_owned()),
                (
                    5,
                    "date_of_birth: \"31/02/2003\" is not a real date: February 2003 has no day 31".to_owned()
                ),
                (6, "cccd: unknown province code 099 (digits 1-3 of the CCCD number)".to_owned()),
                (
                    7,
                    "cccd does not match the row: digit 4 says female, record says male".to_owned()
                ),
                (
                    8,
                    "full_name: full name contains '2' at position 13; only letters, spaces, apostrophes and hyphens are allowed".to_owned()
                ),
                (
                    9,
                    "gender: unknown gender \"Khác\": expected Nam, Nữ, male or female".to_owned()
                ),
                (
                    10,
                    "cccd does not match the row: digits 4-6 say born 1975, date of birth is 1976-10-20".to_owned()
                ),
                (
                    11,
                    "row has 7 values but the header has 6 (is there an unquoted separator in a value?)".to_owned()
                ),
                (12, "address is empty".to_owned()),
            ]
        );

        let an = &report.records[0];
        assert_eq!(an.full_name, "Nguyễn Văn An");
        assert_eq!(an.date_of_birth, date!(1985 - 03 - 02));
        assert_eq!(an.gender, Gender::Male);
        assert_eq!(an.address, "Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội");
        assert_eq!(an.photo.as_deref(), Some("photos/001085012345.jpg"));
        let ha = &report.records[1];
        assert_eq!(ha.full_name, "Trần Thị Thu Hà");
        assert_eq!(ha.gender, Gender::Female);
        assert_eq!(ha.photo, None);
        assert!(!report.is_clean());
    }

    #[test]
    fn bom_reordered_columns_and_case_insensitive_header() {
        let csv = "\u{feff}Gender, Address ,FULL_NAME,Date_Of_Birth,CCCD,notes\r\n\
                   Nữ,\"Xã Hải Hậu, Nam Định\",Phạm Thị Nga,09/09/2001,036301000777,ghi chú\r\n\
                   Nam,Số 1 Tràng Tiền,Nguyễn Văn An,1985-03-02,001085012345,\r\n";
        let report = import(csv);
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.records.len(), 2);
        let nga = &report.records[0];
        assert_eq!(nga.cccd.as_str(), "036301000777");
        assert_eq!(nga.full_name, "Phạm Thị Nga");
        assert_eq!(nga.address, "Xã Hải Hậu, Nam Định");
        assert_eq!(nga.photo, None);
    }

    #[test]
    fn nfd_text_is_normalised() {
        let csv = "cccd,full_name,date_of_birth,gender,address\n\
                   036301000777,Pha\u{323}m Thi\u{323} Nga,09/09/2001,Nu\u{31b}\u{303},Nam Đi\u{323}nh\n";
        let report = import(csv);
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.records[0].full_name, "Phạm Thị Nga");
        assert_eq!(report.records[0].address, "Nam Định");
    }

    #[test]
    fn semicolon_separated_export() {
        let csv = "cccd;full_name;date_of_birth;gender;address\n\
                   001085012345;Nguyễn Văn An;02/03/1985;Nam;Số 1, Tràng Tiền, Hà Nội\n";
        let report = import(csv);
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.records[0].address, "Số 1, Tràng Tiền, Hà Nội");
    }

    #[test]
    fn multi_line_quoted_value_keeps_line_numbers_right() {
        let csv = "cccd,full_name,date_of_birth,gender,address\n\
                   001085012345,Nguyễn Văn An,02/03/1985,Nam,\"Số 1\nTràng Tiền\"\n\
                   001085012346,Nguyễn Văn Bình,02/03/1986,Nam,Hà Nội\n";
        let report = import(csv);
        assert_eq!(report.records.len(), 1);
        assert_eq!(report.records[0].address, "Số 1 Tràng Tiền");
        assert_eq!(report.rejected[0].line, 4);
        assert!(matches!(report.rejected[0].reason, RowError::Mismatch(_)));
    }

    #[test]
    fn missing_column_is_a_single_error() {
        let csv = "cccd,full_name,gender,address\n001085012345,Nguyễn Văn An,Nam,Hà Nội\n";
        let report = import(csv);
        assert_eq!(
            report.error,
            Some(ImportError::MissingColumn("date_of_birth"))
        );
        assert_eq!(
            report.error.as_ref().unwrap().to_string(),
            "missing required column 'date_of_birth' in the header row"
        );
        assert!(report.records.is_empty() && report.rejected.is_empty());

        // A file without a header row: its first data row is read as the header and fails the same way.
        let report = import("001085012345,Nguyễn Văn An,02/03/1985,Nam,Hà Nội\n");
        assert_eq!(report.error, Some(ImportError::MissingColumn("cccd")));
    }

    #[test]
    fn file_level_errors() {
        assert_eq!(import("").error, Some(ImportError::Empty));
        assert_eq!(import("\u{feff}").error, Some(ImportError::Empty));
        assert_eq!(
            import("cccd,full_name,date_of_birth,gender,address,CCCD\n").error,
            Some(ImportError::DuplicateColumn("cccd"))
        );
        let report = parse_records_csv(&b"cccd,full_name\xff,date_of_birth,gender,address\n"[..]);
        assert_eq!(report.error, Some(ImportError::HeaderNotUtf8));

        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk unplugged"))
            }
        }
        let report = parse_records_csv(Broken);
        assert_eq!(
            report.error.unwrap().to_string(),
            "could not read the file: disk unplugged"
        );
    }

    #[test]
    fn header_only_file_is_clean_and_empty() {
        let report = import("cccd,full_name,date_of_birth,gender,address\n");
        assert!(report.is_clean());
        assert!(report.records.is_empty());
    }

    #[test]
    fn invalid_utf8_row_is_rejected_alone() {
        let mut data = b"cccd,full_name,date_of_birth,gender,address\n".to_vec();
        data.extend_from_slice(b"001085012345,Nguy\xe1n V\xe3n An,02/03/1985,Nam,Ha Noi\n");
        data.extend_from_slice(
            "079195004321,Trần Thị Thu Hà,17/11/1995,Nữ,TP. Hồ Chí Minh\n".as_bytes(),
        );
        let report = parse_records_csv(&data[..]);
        assert_eq!(report.records.len(), 1);
        assert_eq!(
            reasons(&report),
            [(
                2,
                "column 'full_name' is not valid UTF-8: save the file as CSV UTF-8".to_owned()
            )]
        );
    }

    #[test]
    fn report_serialises_reasons_as_text() {
        let report =
            import("cccd,full_name,date_of_birth,gender,address\n12345,A,01/01/1990,Nam,X\n");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["rejected"][0]["line"], 2);
        assert_eq!(
            json["rejected"][0]["reason"],
            "cccd: CCCD number must have 12 digits, found 5"
        );
        assert_eq!(json["error"], serde_json::Value::Null);
    }

    #[test]
    fn arbitrary_rows_never_panic() {
        let mut state: u64 = 0x5EED;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces: [&[u8]; 14] = [
            b",",
            b";",
            b"\"",
            b"\n",
            b"\r\n",
            b"001085012345",
            b"02/03/1985",
            b"Nam",
            b"N\xe1",
            "Nữ".as_bytes(),
            b"\xef\xbb\xbf",
            b"\t",
            b"",
            b"1985-03-02",
        ];
        for _ in 0..1500 {
            let mut data = b"cccd,full_name,date_of_birth,gender,address,photo\n".to_vec();
            for _ in 0..(next() % 60) {
                data.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let _ = parse_records_csv(&data[..]);
            let _ = parse_records_csv(&data[40..]);
        }
    }
}
