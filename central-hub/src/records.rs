//! Identity records: citizens keyed by their CCCD number, with face photos and templates, and the 1:1
//! verification of a live photo against a record (exam check-in, the verify endpoint).
//!
//! Everything that enters is validated by `checkpoint-identity` (number, name, dates, gender consistent
//! with the number) and, for photos, by the shared enrolment rules (one usable face).

use std::sync::Arc;

use checkpoint_identity::{fold_for_search, validate_name, Cccd, CitizenRecord, Gender};
use checkpoint_vision::enrol::EnrolError;
use serde::{Deserialize, Serialize};
use time::Date;

use crate::db::{now_ms, Db, DbError};
use crate::faces::{cosine, from_bytes, to_bytes, FaceEngine};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    Invalid(String),
    #[error("no record for CCCD {0}")]
    NotFound(String),
    #[error("a record for CCCD {0} exists already")]
    Exists(String),
    #[error("photo refused: {0}")]
    Photo(#[from] EnrolError),
    #[error("CCCD {0} has no enrolled face photo to compare with")]
    NoTemplate(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for RecordError {
    fn from(e: sqlx::Error) -> Self {
        RecordError::Db(e.into())
    }
}

/// A citizen record as the API shows it (templates never leave the hub).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Person {
    pub cccd: String,
    pub full_name: String,
    /// YYYY-MM-DD
    pub date_of_birth: String,
    /// `male` or `female`
    pub gender: String,
    pub address: String,
    pub province: String,
    pub has_photo: bool,
    pub templates: i64,
    pub updated_ms: i64,
}

/// What a new record needs; validated by [`validate`].
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewPerson {
    pub cccd: String,
    pub full_name: String,
    /// YYYY-MM-DD
    pub date_of_birth: String,
    /// `male`/`female` (also `Nam`/`Nữ`)
    pub gender: String,
    pub address: String,
}

const DATE_FMT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// Checks a new record the way the desk would: a real CCCD whose digits agree with the date of birth and
/// gender, a proper name, a real date.
pub fn validate(p: &NewPerson) -> Result<CitizenRecord, RecordError> {
    let cccd = Cccd::parse(&p.cccd).map_err(|e| RecordError::Invalid(e.to_string()))?;
    let full_name = validate_name(&p.full_name).map_err(|e| RecordError::Invalid(e.to_string()))?;
    let dob = Date::parse(p.date_of_birth.trim(), DATE_FMT).map_err(|_| {
        RecordError::Invalid(format!(
            "date_of_birth {:?} is not a date (YYYY-MM-DD)",
            p.date_of_birth
        ))
    })?;
    let gender: Gender = p
        .gender
        .parse()
        .map_err(|e: checkpoint_identity::GenderError| RecordError::Invalid(e.to_string()))?;
    cccd.check_against(dob, gender)
        .map_err(|e| RecordError::Invalid(e.to_string()))?;
    let address = p.address.trim().to_string();
    if address.is_empty() || address.len() > 500 {
        return Err(RecordError::Invalid(
            "address must be 1-500 characters".into(),
        ));
    }
    Ok(CitizenRecord {
        cccd,
        full_name,
        date_of_birth: dob,
        gender,
        address,
        photo: None,
    })
}

fn gender_str(g: Gender) -> &'static str {
    match g {
        Gender::Male => "male",
        Gender::Female => "female",
    }
}

/// Inserts a record; `replace` updates an existing one instead of refusing it.
pub async fn upsert(db: &Db, r: &CitizenRecord, replace: bool) -> Result<bool, RecordError> {
    let now = now_ms();
    let dob = r
        .date_of_birth
        .format(DATE_FMT)
        .map_err(|e| RecordError::Invalid(e.to_string()))?;
    let q = if replace {
        "INSERT INTO persons (cccd, full_name, name_folded, date_of_birth, gender, address, photo, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7) ON CONFLICT (cccd) DO UPDATE SET \
         full_name = excluded.full_name, name_folded = excluded.name_folded, date_of_birth = excluded.date_of_birth, \
         gender = excluded.gender, address = excluded.address, updated_ms = excluded.updated_ms"
    } else {
        "INSERT INTO persons (cccd, full_name, name_folded, date_of_birth, gender, address, photo, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7) ON CONFLICT (cccd) DO NOTHING"
    };
    let n = sqlx::query(q)
        .bind(r.cccd.as_str())
        .bind(&r.full_name)
        .bind(fold_for_search(&r.full_name))
        .bind(dob)
        .bind(gender_str(r.gender))
        .bind(&r.address)
        .bind(now)
        .execute(&db.pool)
        .await?
        .rows_affected();
    if n == 0 && !replace {
        return Err(RecordError::Exists(r.cccd.as_str().into()));
    }
    Ok(n == 1)
}

/// A `persons` row as [`person_select`] reads it.
#[derive(sqlx::FromRow)]
struct PersonRow {
    cccd: String,
    full_name: String,
    date_of_birth: String,
    gender: String,
    address: String,
    updated_ms: i64,
    has_photo: i64,
    templates: i64,
}

impl From<PersonRow> for Person {
    fn from(r: PersonRow) -> Self {
        let province = Cccd::parse(&r.cccd)
            .map(|c| c.province_name().to_string())
            .unwrap_or_default();
        Person {
            cccd: r.cccd,
            full_name: r.full_name,
            date_of_birth: r.date_of_birth,
            gender: r.gender,
            address: r.address,
            province,
            has_photo: r.has_photo == 1,
            templates: r.templates,
            updated_ms: r.updated_ms,
        }
    }
}

macro_rules! person_select {
    () => {
        "SELECT p.cccd, p.full_name, p.date_of_birth, p.gender, p.address, p.updated_ms, \
         CASE WHEN p.photo IS NULL THEN 0 ELSE 1 END AS has_photo, \
         (SELECT COUNT(*) FROM person_templates t WHERE t.cccd = p.cccd) AS templates FROM persons p "
    };
}

pub async fn get(db: &Db, cccd: &str) -> Result<Person, RecordError> {
    let r: PersonRow = sqlx::query_as(concat!(person_select!(), "WHERE p.cccd = $1"))
        .bind(cccd)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| RecordError::NotFound(cccd.into()))?;
    Ok(r.into())
}

/// By exact CCCD, or by name typed with or without diacritics (substring), at most `limit`.
pub async fn search(
    db: &Db,
    cccd: Option<&str>,
    name: Option<&str>,
    limit: i64,
) -> Result<Vec<Person>, RecordError> {
    let folded = name.map(fold_for_search).unwrap_or_default();
    if cccd.unwrap_or("").trim().is_empty() && folded.is_empty() {
        return Err(RecordError::Invalid(
            "search needs a CCCD number or a name".into(),
        ));
    }
    let rows: Vec<PersonRow> = sqlx::query_as(concat!(
        person_select!(),
        "WHERE ($1 = '' OR p.cccd = $1) AND ($2 = '' OR p.name_folded LIKE $3) ORDER BY p.name_folded LIMIT $4"
    ))
    .bind(cccd.unwrap_or("").trim())
    .bind(&folded)
    .bind(format!("%{}%", folded.replace(['%', '_'], "")))
    .bind(limit.clamp(1, 500))
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().map(Person::from).collect())
}

/// Enrols a photo for a record: the first photo also becomes the record's photo.
pub async fn add_photo(
    db: &Db,
    faces: &Arc<FaceEngine>,
    cccd: &str,
    photo: Vec<u8>,
) -> Result<f32, RecordError> {
    get(db, cccd).await?;
    let enrolled = faces.enrol(photo.clone()).await?;
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO person_templates (id, cccd, embedding, created_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(cccd)
    .bind(to_bytes(&enrolled.embedding.0))
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE persons SET photo = $1, updated_ms = $2 WHERE cccd = $3 AND photo IS NULL")
        .bind(photo)
        .bind(now_ms())
        .bind(cccd)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(enrolled.frontalness)
}

/// What an import did, line by line where something went wrong.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ImportOutcome {
    pub imported: usize,
    pub updated: usize,
    /// Photos enrolled (the `photo` column, with `photos_dir`).
    pub photos: usize,
    /// Rows refused, and rows whose record was stored but whose photo was not (reason says which).
    pub rejected: Vec<ImportLine>,
    /// A problem with the whole file (missing column, unreadable), if any.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportLine {
    pub line: u64,
    pub reason: String,
}

/// Imports a CSV of records (see `checkpoint_identity::parse_records_csv` for the format). With
/// `photos_dir`, a row's `photo` column names a file under it, which is enrolled like an uploaded photo;
/// a photo that is missing, outside the folder or without one usable face is reported with its line, and the
/// record is kept without it. Without `photos_dir` the column is ignored (an HTTP upload has no files).
pub async fn import_csv(
    db: &Db,
    faces: Option<&Arc<FaceEngine>>,
    csv: &[u8],
    photos_dir: Option<&std::path::Path>,
) -> Result<ImportOutcome, RecordError> {
    let report = checkpoint_identity::parse_records_csv(csv);
    let mut out = ImportOutcome {
        error: report.error.as_ref().map(|e| e.to_string()),
        rejected: report
            .rejected
            .iter()
            .map(|r| ImportLine {
                line: r.line,
                reason: r.reason.to_string(),
            })
            .collect(),
        ..Default::default()
    };
    for (i, r) in report.records.iter().enumerate() {
        if upsert(db, r, true).await? {
            out.imported += 1;
        } else {
            out.updated += 1;
        }
        let (Some(dir), Some(name)) = (photos_dir, r.photo.as_deref().filter(|p| !p.is_empty()))
        else {
            continue;
        };
        let line = report.lines.get(i).copied().unwrap_or(0);
        let fail = |reason: String| ImportLine {
            line,
            reason: format!("{}: record stored without photo: {reason}", r.cccd.as_str()),
        };
        let rel = std::path::Path::new(name);
        if !rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            out.rejected.push(fail(format!(
                "photo {name} must be a path inside the photos folder"
            )));
            continue;
        }
        let bytes = match std::fs::read(dir.join(rel)) {
            Ok(b) => b,
            Err(e) => {
                out.rejected.push(fail(format!("photo {name}: {e}")));
                continue;
            }
        };
        let Some(faces) = faces else {
            out.rejected
                .push(fail("face models are not loaded on this hub".into()));
            continue;
        };
        match add_photo(db, faces, r.cccd.as_str(), bytes).await {
            Ok(_) => out.photos += 1,
            Err(RecordError::Photo(e)) => out.rejected.push(fail(format!("photo {name}: {e}"))),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

pub async fn photo(db: &Db, cccd: &str) -> Result<Option<Vec<u8>>, RecordError> {
    sqlx::query_scalar("SELECT photo FROM persons WHERE cccd = $1")
        .bind(cccd)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| RecordError::NotFound(cccd.into()))
}

pub async fn templates_of(db: &Db, cccd: &str) -> Result<Vec<Vec<f32>>, RecordError> {
    let embeddings: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT embedding FROM person_templates WHERE cccd = $1")
            .bind(cccd)
            .fetch_all(&db.pool)
            .await?;
    Ok(embeddings.iter().map(|b| from_bytes(b)).collect())
}

/// The result of a 1:1 comparison.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Verification {
    pub cccd: String,
    /// Whether the live photo is the record's person at `threshold`.
    pub matched: bool,
    /// Best cosine similarity over the record's templates.
    pub similarity: f32,
    pub threshold: f32,
}

/// Compares a live photo with a record's templates (1:1).
pub async fn verify(
    db: &Db,
    faces: &Arc<FaceEngine>,
    cccd: &str,
    live_photo: Vec<u8>,
    threshold: f32,
) -> Result<Verification, RecordError> {
    get(db, cccd).await?;
    let templates = templates_of(db, cccd).await?;
    if templates.is_empty() {
        return Err(RecordError::NoTemplate(cccd.into()));
    }
    let live = faces.enrol(live_photo).await?;
    let similarity = templates
        .iter()
        .map(|t| cosine(t, &live.embedding.0))
        .fold(f32::MIN, f32::max);
    Ok(Verification {
        cccd: cccd.into(),
        matched: similarity >= threshold,
        similarity,
        threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    fn hanoi_man() -> NewPerson {
        NewPerson {
            cccd: "001085012345".into(),
            full_name: "Nguyễn Văn An".into(),
            date_of_birth: "1985-03-02".into(),
            gender: "Nam".into(),
            address: "Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội".into(),
        }
    }

    #[test]
    fn records_are_validated_like_at_the_desk() {
        assert!(validate(&hanoi_man()).is_ok());
        for (spoil, want) in [
            (
                NewPerson {
                    gender: "female".into(),
                    ..hanoi_man()
                },
                "female",
            ),
            (
                NewPerson {
                    date_of_birth: "1986-03-02".into(),
                    ..hanoi_man()
                },
                "1986",
            ),
            (
                NewPerson {
                    cccd: "09908501234".into(),
                    ..hanoi_man()
                },
                "12",
            ),
            (
                NewPerson {
                    date_of_birth: "02/03/1985".into(),
                    ..hanoi_man()
                },
                "YYYY-MM-DD",
            ),
            (
                NewPerson {
                    full_name: "  ".into(),
                    ..hanoi_man()
                },
                "name",
            ),
        ] {
            let e = validate(&spoil).unwrap_err().to_string();
            assert!(e.contains(want), "{e} should mention {want}");
        }
    }

    async fn crud(db: Db) {
        let r = validate(&hanoi_man()).unwrap();
        assert!(upsert(&db, &r, false).await.unwrap());
        assert!(matches!(
            upsert(&db, &r, false).await,
            Err(RecordError::Exists(_))
        ));
        let p = get(&db, "001085012345").await.unwrap();
        assert_eq!(p.full_name, "Nguyễn Văn An");
        assert_eq!(p.province, "Hà Nội");
        assert!(!p.has_photo);
        let found = search(&db, None, Some("nguyen van"), 10).await.unwrap();
        assert_eq!(found.len(), 1);
        // Typed with other diacritics and spacing: folding finds it anyway.
        let found = search(&db, None, Some("NGUYỄN  VĂN ÂN"), 10).await.unwrap();
        assert_eq!(found.len(), 1);
        assert!(search(&db, None, None, 10).await.is_err());
        assert_eq!(
            search(&db, Some("001085012345"), None, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            get(&db, "079185000001").await,
            Err(RecordError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn records_on_sqlite() {
        let (db, _d) = testing::sqlite().await;
        crud(db).await;
    }

    #[tokio::test]
    async fn records_on_postgres() {
        if let Some(db) = testing::postgres().await {
            crud(db).await;
        }
    }
}
