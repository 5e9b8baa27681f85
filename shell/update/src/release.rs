//! IT's side of updates: packing a release archive, signing it with zipsign, and writing a
//! channel's signed feed. `tessera release publish` does all three into a feed directory
//! that any static web server can serve:
//!
//! ```text
//! FEED_DIR/stable.json                                   the channel's signed feed
//! FEED_DIR/archives/tessera-1.4.0-linux-x86_64.tar.gz    the signed archive
//! ```
//!
//! An archive holds `bin/tessera`, `bin/tessera-app-host`, `share/tessera/manifests/` (its
//! executables kept executable), `share/tessera/assets/`, the Python client's package
//! (`share/tessera/shell/clients/python/src/tessera_client`, for the demo desk's native app)
//! and `release.json` (its version); the zipsign signature rides in a trailing gzip member, so
//! `tar xzf` reads the archive as usual.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::feed::Feed;
use crate::install::{ReleaseInfo, archive_name, valid_version};

/// Why packing, signing or publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// An input is not usable.
    #[error("{0}")]
    Input(String),
    /// Signing failed.
    #[error("signing {name}: {why}")]
    Sign {
        /// The archive.
        name: String,
        /// What went wrong.
        why: String,
    },
}

type Result<T> = std::result::Result<T, ReleaseError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ReleaseError + '_ {
    move |source| ReleaseError::Io { path: path.to_owned(), source }
}

/// What goes into an archive.
#[derive(Debug, Clone)]
pub struct Contents {
    /// The release's version.
    pub version: String,
    /// The directory holding `tessera` and `tessera-app-host`.
    pub bin_dir: PathBuf,
    /// The directory holding `manifests/` and `assets/` (the source tree's root, or an
    /// installed build's `share/tessera`).
    pub share_dir: PathBuf,
    /// gzip level, 0–9.
    pub level: u32,
}

fn add_file(tar: &mut tar::Builder<impl Write>, from: &Path, to: &Path, mode: u32, mtime: u64) -> Result<()> {
    let mut f = File::open(from).map_err(io_err(from))?;
    let len = f.metadata().map_err(io_err(from))?.len();
    let mut header = tar::Header::new_gnu();
    header.set_size(len);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, to, &mut f).map_err(io_err(from))
}

fn add_tree(tar: &mut tar::Builder<impl Write>, from: &Path, to: &Path, mtime: u64) -> Result<()> {
    let mut entries: Vec<_> =
        fs::read_dir(from).map_err(io_err(from))?.collect::<io::Result<_>>().map_err(io_err(from))?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for e in entries {
        let path = e.path();
        let kind = e.file_type().map_err(io_err(&path))?;
        let dest = to.join(e.file_name());
        if kind.is_dir() {
            if e.file_name() == "__pycache__" {
                // Python's byte code, made on the build machine: not part of a release.
                continue;
            }
            add_tree(tar, &path, &dest, mtime)?;
        } else if kind.is_file() {
            // An executable (a native app of a desk, like the demo's risk engine) stays one.
            use std::os::unix::fs::PermissionsExt;
            let executable = e.metadata().map_err(io_err(&path))?.permissions().mode() & 0o111 != 0;
            add_file(tar, &path, &dest, if executable { 0o755 } else { 0o644 }, mtime)?;
        }
    }
    Ok(())
}

/// Where the Python client's package is, below the share directory (or the source tree).
const PYTHON_CLIENT: &str = "shell/clients/python/src/tessera_client";

/// Packs an unsigned release archive at `out`.
pub fn pack(contents: &Contents, out: &Path) -> Result<()> {
    if !valid_version(&contents.version) {
        return Err(ReleaseError::Input(format!(
            "version {:?}: use letters, digits, dots, dashes and pluses",
            contents.version
        )));
    }
    for dir in ["manifests", "assets"] {
        if !contents.share_dir.join(dir).is_dir() {
            return Err(ReleaseError::Input(format!("{} has no {dir}/", contents.share_dir.display())));
        }
    }
    let now = broker::Timestamp::now().millis() / 1000;
    let file = File::create(out).map_err(io_err(out))?;
    let gz = flate2::write::GzEncoder::new(BufWriter::new(file), flate2::Compression::new(contents.level.min(9)));
    let mut tar = tar::Builder::new(gz);
    for bin in ["tessera", "tessera-app-host"] {
        add_file(&mut tar, &contents.bin_dir.join(bin), &Path::new("bin").join(bin), 0o755, now)?;
    }
    for dir in ["manifests", "assets"] {
        add_tree(&mut tar, &contents.share_dir.join(dir), &Path::new("share/tessera").join(dir), now)?;
    }
    // The Python client library, where the demo desk's native risk engine finds it (the same
    // path from the manifests as in the source tree).
    let python = Path::new(PYTHON_CLIENT);
    if contents.share_dir.join(python).is_dir() {
        add_tree(&mut tar, &contents.share_dir.join(python), &Path::new("share/tessera").join(python), now)?;
    }
    let info = ReleaseInfo { version: contents.version.clone(), built_at: crate::install::now() };
    let info = serde_json::to_vec_pretty(&info).map_err(|e| ReleaseError::Input(e.to_string()))?;
    let mut header = tar::Header::new_gnu();
    header.set_size(info.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(now);
    tar.append_data(&mut header, "release.json", info.as_slice()).map_err(io_err(out))?;
    let gz = tar.into_inner().map_err(io_err(out))?;
    let mut w = gz.finish().map_err(io_err(out))?;
    w.flush().map_err(io_err(out))?;
    w.into_inner().map_err(|e| io_err(out)(e.into_error()))?.sync_all().map_err(io_err(out))
}

/// Signs the archive at `unsigned` with `keys` (zipsign, bound to the file name `name`),
/// writing the signed archive to `out`.
pub fn sign_archive(unsigned: &Path, out: &Path, name: &str, keys: &[&SigningKey]) -> Result<()> {
    use zipsign_api::sign::copy_and_sign_tar;
    let keys: Vec<zipsign_api::SigningKey> =
        keys.iter().map(|k| zipsign_api::SigningKey::from_bytes(&k.to_bytes())).collect();
    let mut input = File::open(unsigned).map_err(io_err(unsigned))?;
    let mut output = File::create(out).map_err(io_err(out))?;
    copy_and_sign_tar(&mut input, &mut output, &keys, Some(name.as_bytes()))
        .map_err(|e| ReleaseError::Sign { name: name.to_owned(), why: e.to_string() })?;
    output.sync_all().map_err(io_err(out))
}

/// The SHA-256 (hex) and size of a file.
pub fn digest(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = io::Read::read(&mut f, &mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((h.finalize().iter().map(|b| format!("{b:02x}")).collect(), size))
}

/// The signed feed JSON for `fields` (the signature expires with the feed).
pub fn feed(fields: &Feed, key: &SigningKey, key_id: &str) -> Result<Value> {
    let v = serde_json::to_value(fields).map_err(|e| ReleaseError::Input(e.to_string()))?;
    policy::signing::sign_record(&v, key, key_id, &fields.expires).map_err(|e| ReleaseError::Input(e.to_string()))
}

/// What `publish` needs.
#[derive(Debug, Clone)]
pub struct Publish {
    /// What to pack.
    pub contents: Contents,
    /// Where the feed and archives go.
    pub feed_dir: PathBuf,
    /// The URL `feed_dir` is served at.
    pub base_url: String,
    /// The channel.
    pub channel: String,
    /// Percent of desks.
    pub rollout_percent: u8,
    /// The oldest version that may update.
    pub minimum_version: Option<String>,
    /// The feed's expiry (RFC 3339).
    pub expires: String,
}

/// Packs, signs and publishes a release into a feed directory: the archive first, the feed
/// last (each written atomically), so a desk never sees a feed whose archive is not there. A
/// version already published keeps its archive; only the feed is written again (a new rollout
/// percentage, minimum or expiry). Returns the feed.
pub fn publish(p: &Publish, key: &SigningKey, key_id: &str) -> Result<Value> {
    if !(0..=100).contains(&p.rollout_percent) {
        return Err(ReleaseError::Input("the rollout is a percentage, 0 to 100".into()));
    }
    if !p.channel.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') || p.channel.is_empty() {
        return Err(ReleaseError::Input(format!("channel {:?}: letters, digits and dashes only", p.channel)));
    }
    let archives = p.feed_dir.join("archives");
    fs::create_dir_all(&archives).map_err(io_err(&archives))?;
    let name = archive_name(&p.contents.version);
    let unsigned = archives.join(format!(".{name}.unsigned"));
    let tmp = archives.join(format!(".{name}.tmp"));
    let result = (|| {
        let dest = archives.join(&name);
        // Publishing a version again (to raise its rollout) keeps its archive: desks that are
        // downloading it must get the bytes the feed describes.
        if !dest.is_file() {
            pack(&p.contents, &unsigned)?;
            sign_archive(&unsigned, &tmp, &name, &[key])?;
            fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
            File::open(&archives).and_then(|d| d.sync_all()).map_err(io_err(&archives))?;
        }
        let (sha256, size) = digest(&dest)?;
        let fields = Feed {
            channel: p.channel.clone(),
            version: p.contents.version.clone(),
            url: format!("{}/archives/{name}", p.base_url.trim_end_matches('/')),
            sha256,
            size,
            minimum_version: p.minimum_version.clone(),
            rollout_percent: p.rollout_percent,
            issued_at: crate::install::now(),
            expires: p.expires.clone(),
        };
        let feed = feed(&fields, key, key_id)?;
        let text = serde_json::to_string_pretty(&feed).map_err(|e| ReleaseError::Input(e.to_string()))?;
        let feed_path = p.feed_dir.join(format!("{}.json", p.channel));
        crate::install::write_atomic(&feed_path, text.as_bytes()).map_err(|e| ReleaseError::Input(e.to_string()))?;
        Ok(feed)
    })();
    let _ = fs::remove_file(&unsigned);
    let _ = fs::remove_file(&tmp);
    result
}
