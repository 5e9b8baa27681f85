//! The `tessera:` scheme: an app's own files, served from its content directory.
//!
//! A local app is loaded as `tessera://<appId>/<path>` rather than `file://`: each app gets an
//! origin of its own (its storage and permissions are not shared with every other local file),
//! it can reach nothing outside its directory, and wry's IPC works (it needs an URL with a host).

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

use wry::http::{Request, Response, StatusCode, header};

/// The scheme's name.
pub(crate) const SCHEME: &str = "tessera";
/// Largest file served.
const MAX_FILE: u64 = 64 << 20;

/// Answers one request for a file under `root` (canonical), with the app's
/// Content-Security-Policy if it has one.
pub(crate) fn serve(root: &Path, request: &Request<Vec<u8>>, csp: Option<&str>) -> Response<Cow<'static, [u8]>> {
    match resolve(root, request.uri().path()) {
        Ok(path) => match read(&path) {
            Ok(bytes) => {
                let mut response = Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, mime(&path))
                    .header(header::CACHE_CONTROL, "no-cache");
                if let Some(csp) = csp {
                    response = response.header(header::CONTENT_SECURITY_POLICY, csp);
                }
                response.body(Cow::Owned(bytes)).unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR))
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "could not serve: {e}");
                status(StatusCode::NOT_FOUND)
            }
        },
        Err(why) => {
            tracing::warn!(uri = %request.uri(), "refused: {why}");
            status(StatusCode::NOT_FOUND)
        }
    }
}

/// The answer for a view with no content directory of its own.
pub(crate) fn not_found() -> Response<Cow<'static, [u8]>> {
    status(StatusCode::NOT_FOUND)
}

fn status(code: StatusCode) -> Response<Cow<'static, [u8]>> {
    let mut r = Response::new(Cow::Borrowed(&b""[..]));
    *r.status_mut() = code;
    r
}

fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return Err(std::io::Error::other("not a regular file of a servable size"));
    }
    std::fs::read(path)
}

/// The file `url_path` names under `root`, refusing anything that leaves it.
pub(crate) fn resolve(root: &Path, url_path: &str) -> Result<PathBuf, String> {
    let decoded = percent_decode(url_path).ok_or("bad percent-encoding")?;
    let relative = Path::new(decoded.trim_start_matches('/'));
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err("the path leaves the app's directory".into());
    }
    let mut path = root.join(relative);
    if decoded.ends_with('/') || decoded.is_empty() {
        path.push("index.html");
    }
    // Symbolic links may not point outside either.
    let real = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
    if !real.starts_with(root) {
        return Err("the path leaves the app's directory".into());
    }
    Ok(real)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    (!text.contains('\0')).then_some(text)
}

fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("ttf") => "font/ttf",
        Some("txt") => "text/plain; charset=utf-8",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests;
