//! The database: SQLite (the default, a file in the data directory) or PostgreSQL (at scale), through sqlx's
//! `Any` driver so every query and migration is written once. Portable SQL only: `$N` parameters (sqlx's
//! SQLite driver reads them by number), BIGINT milliseconds for times, 0/1 for flags, `ON CONFLICT` upserts.

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

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
        let db = Db { pool, backend };
        sqlx::migrate!("./migrations").run(&db.pool).await?;
        Ok(db)
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Whether an error is SQLite's "database is locked" (SQLITE_BUSY and its extended codes), which a retry cures.
pub fn is_busy(e: &DbError) -> bool {
    match e {
        DbError::Sql(sqlx::Error::Database(d)) => {
            d.code()
                .is_some_and(|c| c == "5" || c.parse::<i32>().is_ok_and(|n| n & 0xff == 5))
                || d.message().contains("database is locked")
        }
        _ => false,
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

/// An optional text column (NULL → None).
pub fn opt_text(row: &AnyRow, col: &str) -> Option<String> {
    row.try_get::<Option<String>, _>(col).ok().flatten()
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
