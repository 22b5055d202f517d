//! The operators' web UI: static files (HTML, JavaScript modules, CSS, translations) served by the hub
//! itself, built into the binary, so a site that runs offline needs no CDN and no build step. The UI talks
//! only to the JSON API with the same bearer sessions as any other client.

use std::path::{Component, Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::api::AppState;

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The page may load only its own scripts, styles and images (snapshots arrive as blob: URLs, the exam
/// camera as a media stream), and may not be framed.
const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                   media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// A relative path with no `..`, root or drive: the only kind looked up on disk.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if path.is_empty() || path.len() > 200 {
        return None;
    }
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| p.to_path_buf())
}

/// The bytes of `path`, from `web_dir` when configured, else from the binary.
fn asset(web_dir: Option<&Path>, path: &str) -> Option<Vec<u8>> {
    let rel = safe_relative(path)?;
    match web_dir {
        Some(dir) => std::fs::read(dir.join(rel)).ok(),
        None => WEB_ASSETS
            .iter()
            .find(|(name, _)| *name == path)
            .map(|(_, bytes)| bytes.to_vec()),
    }
}

fn serve(state: &AppState, path: &str, headers: &HeaderMap) -> Response {
    let Some(bytes) = asset(state.cfg.http.web_dir.as_deref(), path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    // Revalidated on every load (an upgraded hub must not run yesterday's script) but cheap: 304 on a match.
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..12]));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type(path))], bytes).into_response()
    };
    let h = resp.headers_mut();
    for (k, v) in [
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, CSP),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    resp
}

async fn index(State(s): State<AppState>, headers: HeaderMap) -> Response {
    serve(&s, "index.html", &headers)
}

async fn file(
    State(s): State<AppState>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    serve(&s, &path, &headers)
}

/// The service worker, at the root so that it may control the whole app (`web/sw.js`).
async fn service_worker(State(s): State<AppState>, headers: HeaderMap) -> Response {
    serve(&s, "sw.js", &headers)
}

/// What the service worker keeps on the device: every file of the interface.
async fn precache_list(State(s): State<AppState>) -> Response {
    let names: Vec<String> = match s.cfg.http.web_dir.as_deref() {
        Some(dir) => files_under(dir),
        None => WEB_ASSETS.iter().map(|(n, _)| n.to_string()).collect(),
    };
    let mut resp = axum::Json(names).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The files under `dir`, relative, with `/` separators (a hub serving its UI from disk while it is developed).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/sw.js", get(service_worker))
        .route("/sw-assets.json", get(precache_list))
        .route("/ui/{*path}", get(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ui_is_built_in() {
        let names: Vec<&str> = WEB_ASSETS.iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"index.html"), "{names:?}");
        // Everything under web/ is built in, nothing else.
        let on_disk = files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("web"));
        for rel in &on_disk {
            assert!(names.contains(&rel.as_str()), "{rel} not built in");
        }
        assert_eq!(on_disk.len(), names.len());
    }

    #[test]
    fn no_path_escapes_the_web_directory() {
        for bad in ["../hub.db", "/etc/passwd", "a/../../b", "", "./x/../../y"] {
            assert!(safe_relative(bad).is_none(), "{bad} accepted");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        let web = dir.path().join("web");
        std::fs::create_dir(&web).unwrap();
        assert!(asset(Some(&web), "../secret").is_none());
        assert!(asset(Some(&web), "./../secret").is_none());
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
    }

    #[test]
    fn vendored_files_are_what_scripts_vendor_web_wrote() {
        let sources = WEB_ASSETS
            .iter()
            .find(|(n, _)| *n == "vendor/SOURCES.txt")
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .expect("vendor/SOURCES.txt");
        let mut checked = 0;
        for line in sources.lines().filter(|l| !l.starts_with('#')) {
            let mut f = line.split_whitespace();
            let (Some(name), Some(sha)) = (f.next(), f.next()) else {
                continue;
            };
            let bytes = WEB_ASSETS
                .iter()
                .find(|(n, _)| *n == format!("vendor/{name}"))
                .map(|(_, b)| *b)
                .unwrap_or_else(|| panic!("vendor/{name} listed but not built in"));
            assert_eq!(
                hex::encode(Sha256::digest(bytes)),
                sha,
                "vendor/{name} differs from what scripts/vendor-web copied"
            );
            checked += 1;
        }
        assert!(checked > 0);
    }
}
