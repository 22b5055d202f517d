//! The data directory holds identity records, face templates, snapshots and password hashes: only the
//! hub's own user may read it. New directories are made 0700 and new files 0600; at start the whole tree
//! is brought back to that, in case it was made by an older hub or by hand.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// `create_dir_all`, with every directory it makes private.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Creates `path` empty and private unless it exists, so that whatever opens it next (SQLite, which gives
/// its `-wal` and `-shm` files the database file's mode) starts from 0600.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes `dir` (created if missing) and everything under it private: directories 0700, files 0600.
/// Symbolic links are left alone (their targets are not the hub's to change). Returns how many modes it
/// had to change.
pub fn secure_tree(dir: &Path) -> io::Result<usize> {
    create_private_dir_all(dir)?;
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        changed += usize::from(restrict(&d, DIR_MODE)?);
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                changed += usize::from(restrict(&entry.path(), FILE_MODE)?);
            }
        }
    }
    Ok(changed)
}

/// Sets `mode` unless the permission bits already are it; true when it changed them.
fn restrict(path: &Path, mode: u32) -> io::Result<bool> {
    let current = std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777;
    if current == mode {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn an_existing_open_tree_is_closed() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        std::fs::create_dir_all(data.join("snapshots")).unwrap();
        std::fs::write(data.join("hub.db"), b"x").unwrap();
        std::fs::write(data.join("snapshots/a.jpg"), b"x").unwrap();
        for (p, m) in [
            (data.clone(), 0o755),
            (data.join("snapshots"), 0o755),
            (data.join("hub.db"), 0o644),
            (data.join("snapshots/a.jpg"), 0o644),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        assert_eq!(secure_tree(&data).unwrap(), 4);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("snapshots")), 0o700);
        assert_eq!(mode(&data.join("hub.db")), 0o600);
        assert_eq!(mode(&data.join("snapshots/a.jpg")), 0o600);
        assert_eq!(secure_tree(&data).unwrap(), 0, "nothing left to change");
    }

    #[test]
    fn new_directories_and_files_are_private() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        create_private_dir_all(&d).unwrap();
        create_private_file(&d.join("hub.db")).unwrap();
        assert_eq!(mode(&t.path().join("a")), 0o700);
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join("hub.db")), 0o600);
        std::fs::write(d.join("hub.db"), b"kept").unwrap();
        create_private_file(&d.join("hub.db")).unwrap();
        assert_eq!(std::fs::read(d.join("hub.db")).unwrap(), b"kept");
    }
}
