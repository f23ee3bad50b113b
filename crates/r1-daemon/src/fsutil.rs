//! Small file helpers shared by the state directory, the index and the registration.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The current time as RFC 3339 with milliseconds, UTC: `2026-11-22T10:00:00.123Z`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// `n` random bytes as lowercase hex, from the operating system's generator.
pub fn random_hex(n: usize) -> io::Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether `name` is the name [`write_atomic`] gives its temp files:
/// `.<name>.<12 lowercase hex>.tmp`.
pub fn is_atomic_temp_name(name: &str) -> bool {
    let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    let Some((base, suffix)) = stem.rsplit_once('.') else {
        return false;
    };
    !base.is_empty()
        && suffix.len() == 12
        && suffix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Replaces `path` with `bytes` so that a reader sees either the old or the new file,
/// never a partial one, and the new content survives power loss: a temp file in the
/// same directory (0600), fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent directory"))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(".{name}.{}.tmp", random_hex(6)?));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The JSON records `<prefix>….json` of a registry directory `dir` (created 0700 if
/// missing), each parsed as `T`. Leftover temporary files of [`write_atomic`] are
/// removed; a record that cannot be read is logged (as `what`) and left alone.
pub fn load_records<T: serde::de::DeserializeOwned>(
    dir: &Path,
    prefix: &str,
    what: &str,
) -> Vec<T> {
    use std::os::unix::fs::DirBuilderExt;
    if let Err(e) = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        tracing::error!("cannot create {}: {e}", dir.display());
    }
    let mut records = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return records;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_atomic_temp_name(&name) || name.ends_with(".index.tmp") {
            let _ = fs::remove_file(&p);
            continue;
        }
        if !(name.starts_with(prefix) && name.ends_with(".json")) {
            continue;
        }
        match fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<T>(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => records.push(r),
            Err(e) => tracing::warn!("{what} record {} unreadable: {e}", p.display()),
        }
    }
    records
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::is_atomic_temp_name;

    #[test]
    fn temp_names() {
        assert!(is_atomic_temp_name(".token.0123456789ab.tmp"));
        assert!(is_atomic_temp_name(".sessions-index.json.a1b2c3d4e5f6.tmp"));
        assert!(!is_atomic_temp_name("token"));
        assert!(!is_atomic_temp_name(".token.tmp"));
        assert!(!is_atomic_temp_name(".token.0123456789AB.tmp"));
        assert!(!is_atomic_temp_name("..0123456789ab.tmp"));
        assert!(!is_atomic_temp_name(".token.0123456789abc.tmp"));
    }
}
