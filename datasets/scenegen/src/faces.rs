//! The face photos: LFW layout `<dir>/<Person_Name>/<Person_Name>_000N.jpg`, one folder per identity.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::SceneError;

/// YuNet face boxes of the LFW fold-1 photos as this crate renders them (see `tools/lfw_face_table.py`).
const TABLE: &str = include_str!("lfw_fold1_faces.tsv");
/// The photo size the table's pixels refer to.
const TABLE_PHOTO_SIZE: f32 = 250.0;
/// Face box (centre x, centre y, width, height) as fractions of the photo size for photos the table does not
/// know: the mean over LFW fold 1 (LFW crops are centred on the face).
pub(crate) const NOMINAL_FACE: [f32; 4] = [0.500, 0.508, 0.386, 0.512];

#[derive(Clone, Copy, Debug)]
enum Entry {
    Face([f32; 4]),
    Reject,
}

fn table() -> &'static HashMap<&'static str, Entry> {
    static T: OnceLock<HashMap<&'static str, Entry>> = OnceLock::new();
    T.get_or_init(|| {
        let mut m = HashMap::new();
        for line in TABLE.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() >= 2 && cols[1] == "reject" {
                m.insert(cols[0], Entry::Reject);
                continue;
            }
            if cols.len() != 5 {
                continue;
            }
            let v: Vec<f32> = cols[1..].iter().filter_map(|c| c.parse().ok()).collect();
            if v.len() == 4 {
                let s = TABLE_PHOTO_SIZE;
                m.insert(
                    cols[0],
                    Entry::Face([v[0] / s, v[1] / s, v[2] / s, v[3] / s]),
                );
            }
        }
        m
    })
}

/// Whether the generator uses this photo (`Person/Person_000N.jpg`): photos in which YuNet also finds a
/// second face are refused, so the truth has one face per actor.
pub fn usable_photo(rel_path: &str) -> bool {
    !matches!(table().get(rel_path), Some(Entry::Reject))
}

/// One usable photo.
#[derive(Clone, Debug)]
pub(crate) struct Photo {
    /// Path relative to the faces directory, `/`-separated (`Person_Name/Person_Name_0001.jpg`).
    pub rel_path: String,
    pub path: PathBuf,
    /// Face box (cx, cy, w, h) as fractions of the photo's width and height.
    pub face: [f32; 4],
    /// Whether `face` was measured for this photo (false: the LFW mean).
    pub measured: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub name: String,
    pub photos: Vec<Photo>,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        .unwrap_or(false)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, SceneError> {
    let rd = std::fs::read_dir(dir).map_err(|e| SceneError::Io {
        path: dir.to_path_buf(),
        err: e,
    })?;
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

/// All identities with at least one usable photo, sorted by name.
pub(crate) fn catalogue(dir: &Path) -> Result<Vec<Identity>, SceneError> {
    if !dir.is_dir() {
        return Err(SceneError::FacesDirMissing {
            path: dir.to_path_buf(),
        });
    }
    let mut out = Vec::new();
    for sub in sorted_entries(dir)? {
        if !sub.is_dir() {
            continue;
        }
        let Some(name) = sub.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let mut photos = Vec::new();
        for f in sorted_entries(&sub)? {
            if !f.is_file() || !is_image(&f) {
                continue;
            }
            let Some(file) = f.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let rel_path = format!("{name}/{file}");
            let (face, measured) = match table().get(rel_path.as_str()) {
                Some(Entry::Reject) => continue,
                Some(Entry::Face(b)) => (*b, true),
                None => (NOMINAL_FACE, false),
            };
            photos.push(Photo {
                rel_path,
                path: f,
                face,
                measured,
            });
        }
        if !photos.is_empty() {
            out.push(Identity { name, photos });
        }
    }
    if out.is_empty() {
        return Err(SceneError::NoPhotos {
            path: dir.to_path_buf(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses() {
        let t = table();
        assert!(t.len() > 800, "{}", t.len());
        let rejects = t.values().filter(|e| matches!(e, Entry::Reject)).count();
        assert!(rejects > 0 && rejects < 40, "{rejects}");
        for e in t.values() {
            if let Entry::Face([cx, cy, w, h]) = e {
                assert!((0.3..0.7).contains(cx) && (0.3..0.7).contains(cy));
                assert!((0.2..0.8).contains(w) && (0.2..0.8).contains(h));
            }
        }
    }
}
