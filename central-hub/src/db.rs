//! The database: SQLite (the default, a file in the data directory) or PostgreSQL (at scale), through sqlx's
//! `Any` driver so every query and migration is written once. Portable SQL only: `$N` parameters (sqlx's
//! SQLite driver reads them by number), BIGINT milliseconds for times, 0/1 for flags, `ON CONFLICT` upserts.
//!
//! Each table has one owner: the only module whose SQL writes it, and whose functions the other modules call
//! to read it. The few read-only joins into another owner's table are named with the reader. (Unit tests
//! seed other owners' tables directly.)
//!
//! | tables | owner |
//! |---|---|
//! | `events`, `ingest_rejects` | `ingest` |
//! | `agents`, `cameras`, `camera_degraded`, `system_alerts` | `agents` |
//! | `counts`, `line_state` | `counts` |
//! | `alerts` | `alerts` (reads an entry's label and case retention from `watchlist_entries`) |
//! | `alert_reviews`, `alert_negatives` | `review` |
//! | `users` (people), `sessions` | `auth` (`lodging` and `exams` read a user's role) |
//! | `users` (agent accounts: role `agent`) | `broker` |
//! | `audit_log`, `audit_epochs` | `audit` |
//! | `persons`, `person_templates` | `records` |
//! | `watchlist_entries`, `watchlist_photos`, `watchlist_revisions` | `watchlists` (counts a list's templates with `person_templates`) |
//! | `watchlist_policies` | `policies` |
//! | `lodging_establishments`, `lodging_staff`, `lodging_stays` | `lodging` |
//! | `exam_sessions`, `exam_candidates`, `exam_checkins`, `exam_session_staff` | `exams` (reads `persons.full_name`) |
//! | `occupancy_settings`, `occupancy_crossings`, `occupancy_hours` | `occupancy` |

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the data directory or database file {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// A batch could not be encoded as the JSON parameter of a set-based write.
    #[error("encoding a batch for the database: {0}")]
    Encode(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// How to reach the database again for a connection of its own (PostgreSQL's LISTEN); may hold a password.
    url: std::sync::Arc<str>,
    /// What names this deployment's data in the database server: the schema on PostgreSQL (advisory locks
    /// and notification channels are server-wide, so hubs of different deployments, or parallel tests with
    /// a schema each, must not share them), `main` on SQLite.
    scope: std::sync::Arc<str>,
}

/// The URL with any password replaced, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Db {
    /// Connects (creating the SQLite file and its directory if needed) and applies the migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if backend == Backend::Sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or(path);
            let file = std::path::Path::new(path);
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::private_files::create_private_dir_all(dir).map_err(|source| {
                    DbError::DataDir {
                        path: dir.display().to_string(),
                        source,
                    }
                })?;
            }
            // Made here, private, before SQLite makes it world-readable (its -wal and -shm files copy the
            // database file's mode). In-memory databases have no file.
            if !path.is_empty() && !path.starts_with(':') && !url.contains("mode=memory") {
                crate::private_files::create_private_file(file).map_err(|source| {
                    DbError::DataDir {
                        path: file.display().to_string(),
                        source,
                    }
                })?;
            }
        }
        let max = match (max_connections, backend) {
            (0, Backend::Sqlite) => 4,
            (0, Backend::Postgres) => 16,
            (n, _) => n,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets the dashboard read while ingest writes; foreign keys are off by default.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|source| DbError::Connect {
                url: redact(url),
                source,
            })?;
        let scope: String = match backend {
            Backend::Sqlite => "main".into(),
            Backend::Postgres => {
                sqlx::query_scalar("SELECT CAST(current_schema() AS TEXT)")
                    .fetch_one(&pool)
                    .await?
            }
        };
        let db = Db {
            pool,
            backend,
            url: url.into(),
            scope: scope.into(),
        };
        sqlx::migrate!("./migrations").run(&db.pool).await?;
        Ok(db)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// A transaction that will write. On SQLite it takes the write lock at `BEGIN` (`BEGIN IMMEDIATE`): a
    /// deferred transaction that reads and then writes while another connection writes is refused at once
    /// with "database is locked", without waiting for `busy_timeout`, because waiting could deadlock. Taking
    /// the lock first makes it wait its turn instead. PostgreSQL needs nothing of the sort.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, DbError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The rows of a set-based write as the JSON parameter [`json_rows`] reads.
pub fn json_param<T: serde::Serialize>(rows: &[T]) -> Result<String, DbError> {
    serde_json::to_string(rows).map_err(|e| DbError::Encode(e.to_string()))
}

/// The SQL type of a column read from a JSON rows parameter ([`json_rows`]).
#[derive(Clone, Copy)]
pub enum Col {
    Text,
    Int,
    Real,
}

/// A `SELECT` yielding one row per object of the JSON array bound as parameter `$param`, with `cols` as
/// its columns (each object's keys). Set-based writes bind a whole batch as one parameter this way: one
/// statement per table per batch instead of one per row, portable between SQLite (`json_each`) and
/// PostgreSQL (`json_to_recordset`), and one cached prepared statement whatever the batch's size.
pub fn json_rows(backend: Backend, param: usize, cols: &[(&str, Col)]) -> String {
    match backend {
        Backend::Postgres => {
            let defs: Vec<String> = cols
                .iter()
                .map(|(n, t)| {
                    let t = match t {
                        Col::Text => "text",
                        Col::Int => "bigint",
                        Col::Real => "double precision",
                    };
                    format!("{n} {t}")
                })
                .collect();
            format!(
                "SELECT * FROM json_to_recordset(${param}::json) AS j({})",
                defs.join(", ")
            )
        }
        Backend::Sqlite => {
            let picks: Vec<String> = cols
                .iter()
                .map(|(n, _)| format!("json_extract(value, '$.{n}') AS {n}"))
                .collect();
            format!("SELECT {} FROM json_each(${param})", picks.join(", "))
        }
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// Milliseconds since the epoch of a timestamp.
pub fn ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A fresh SQLite database in a temporary directory.
    pub async fn sqlite() -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
        (Db::open(&url, 2).await.unwrap(), dir)
    }

    /// A fresh schema in the test PostgreSQL (127.0.0.1:5432, database `test`; `CHECKPOINT_TEST_POSTGRES`
    /// overrides the URL). An unreachable server fails the test: the PostgreSQL half of a test is skipped only
    /// when `CHECKPOINT_SKIP_POSTGRES=1` asks for it (as `scripts/check` does on a machine without one), and
    /// then says so on stderr.
    pub async fn postgres() -> Option<Db> {
        let base = std::env::var("CHECKPOINT_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        sqlx::any::install_default_drivers();
        let admin = match AnyPoolOptions::new()
            .max_connections(1)
            .connect(&base)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                if std::env::var("CHECKPOINT_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
                    eprintln!(
                        "SKIPPED: the PostgreSQL half of this test (CHECKPOINT_SKIP_POSTGRES=1; {base}: {e})"
                    );
                    return None;
                }
                panic!(
                    "PostgreSQL at {base}: {e}. Start it (scripts/test sets one up) or skip this half \
                     explicitly with CHECKPOINT_SKIP_POSTGRES=1"
                );
            }
        };
        // One schema per test so tests run in parallel on one database.
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        // The schema name is made here from a UUID, not taken from input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        Some(Db::open(&url, 4).await.unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://hub:s3cret@db:5432/checkpoint"),
            "postgres://hub:***@db:5432/checkpoint"
        );
        assert_eq!(
            redact("postgres://hub@db/checkpoint"),
            "postgres://hub@db/checkpoint"
        );
        assert_eq!(redact("sqlite://data/hub.db"), "sqlite://data/hub.db");
    }

    #[tokio::test]
    async fn migrations_apply_on_sqlite_and_postgres_and_are_idempotent() {
        let (db, dir) = testing::sqlite().await;
        db.ping().await.unwrap();
        drop(db);
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
        Db::open(&url, 1).await.unwrap().ping().await.unwrap();
        if let Some(pg) = testing::postgres().await {
            assert_eq!(pg.backend, Backend::Postgres);
            pg.ping().await.unwrap();
        }
    }
}
