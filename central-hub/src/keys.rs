//! The hub's watchlist-signing key: an Ed25519 key made on first use and kept in an owner-only file under the
//! data directory, never in the database (a database dump or a second hub's replica must not be able to sign
//! watchlists). Agents trust its public half (`[watchlist] hub_public_keys`).
//!
//! Rotation without a gap: `sync-key stage` makes the next key and prints its public half; once every agent
//! lists it beside the current one, `sync-key activate` makes it current (restart the hub), and the old public
//! key can then be removed from the agents.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use checkpoint_protocol::signed::SyncSigner;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a signing key (expected base64 of 32 bytes)")]
    Corrupt { path: PathBuf },
    #[error("no staged key at {0}: run `central-hub sync-key stage` first")]
    NothingStaged(PathBuf),
    #[error("the system's random source failed: {0}")]
    Random(String),
}

const CURRENT: &str = "watchlist-sync.key";
const NEXT: &str = "watchlist-sync.next.key";

/// Where the keys live: `<data_dir>/keys`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and parents) owner-only, and tightens it if it exists with wider permissions.
pub fn private_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

fn read_key(path: &Path) -> Result<SyncSigner, KeyError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "signing key was readable by others; made owner-only");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let secret: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| KeyError::Corrupt {
            path: path.to_path_buf(),
        })?;
    Ok(SyncSigner::from_secret(&secret))
}

/// Writes a new random key to `path`, which must not exist (two processes racing both keep the first).
fn create_key(path: &Path) -> Result<(), KeyError> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(
        base64::engine::general_purpose::STANDARD
            .encode(secret)
            .as_bytes(),
    )
    .and_then(|_| f.sync_all())
    .map_err(io(path))
}

/// The current signing key, made on first use.
pub fn load_or_create(data_dir: &Path) -> Result<SyncSigner, KeyError> {
    let dir = dir(data_dir);
    private_dir(&dir)?;
    let path = dir.join(CURRENT);
    if !path.exists() {
        match create_key(&path) {
            Ok(()) => tracing::info!(path = %path.display(), "watchlist signing key created"),
            Err(KeyError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    read_key(&path)
}

/// The staged next key, if any.
pub fn staged(data_dir: &Path) -> Result<Option<SyncSigner>, KeyError> {
    let path = dir(data_dir).join(NEXT);
    if !path.exists() {
        return Ok(None);
    }
    read_key(&path).map(Some)
}

/// Makes the next key (or returns the one already staged).
pub fn stage(data_dir: &Path) -> Result<SyncSigner, KeyError> {
    load_or_create(data_dir)?;
    let path = dir(data_dir).join(NEXT);
    if !path.exists() {
        create_key(&path)?;
    }
    read_key(&path)
}

/// Makes the staged key current; the old one is kept, renamed with the time, for the record.
pub fn activate(data_dir: &Path) -> Result<SyncSigner, KeyError> {
    let dir = dir(data_dir);
    let next = dir.join(NEXT);
    if !next.exists() {
        return Err(KeyError::NothingStaged(next));
    }
    let current = dir.join(CURRENT);
    if current.exists() {
        let retired = dir.join(format!(
            "watchlist-sync.retired-{}.key",
            crate::db::now_ms()
        ));
        std::fs::rename(&current, &retired).map_err(io(&retired))?;
    }
    std::fs::rename(&next, &current).map_err(io(&current))?;
    read_key(&current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_owner_only_and_rotates_through_a_staged_key() {
        let d = tempfile::tempdir().unwrap();
        let a = load_or_create(d.path()).unwrap();
        let b = load_or_create(d.path()).unwrap();
        assert_eq!(
            a.public_key(),
            b.public_key(),
            "the same key on every start"
        );
        let file = dir(d.path()).join(CURRENT);
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir(d.path()))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        assert!(staged(d.path()).unwrap().is_none());
        assert!(matches!(
            activate(d.path()),
            Err(KeyError::NothingStaged(_))
        ));
        let next = stage(d.path()).unwrap();
        assert_ne!(next.public_key(), a.public_key());
        assert_eq!(stage(d.path()).unwrap().public_key(), next.public_key());
        assert_eq!(activate(d.path()).unwrap().public_key(), next.public_key());
        assert_eq!(
            load_or_create(d.path()).unwrap().public_key(),
            next.public_key()
        );
        // A key file opened up by a careless copy is tightened, not refused.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        load_or_create(d.path()).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::write(&file, "garbage").unwrap();
        assert!(matches!(
            load_or_create(d.path()),
            Err(KeyError::Corrupt { .. })
        ));
    }
}
