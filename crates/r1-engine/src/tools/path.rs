//! Path confinement: turns a path the model gave into a real path inside the workdir,
//! or refuses it.
//!
//! The path is first normalised lexically (`.` dropped, `..` popping a component and
//! never going above the workdir), so `..` is never handed to the operating system and
//! cannot walk back out through a symlinked directory. Then the deepest part of it that
//! exists is canonicalised, which resolves every symlink on the way; that real path must
//! still be inside the canonical workdir. What does not exist yet is appended to it, and
//! cannot contain a symlink precisely because it does not exist. A race with another
//! process swapping a directory for a symlink between this check and the open is not
//! defended against: the workdir belongs to the same user.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use super::ToolError;

/// A path resolved inside the workdir.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The real path: the canonical workdir, the canonical existing part, then the
    /// components that do not exist yet.
    pub(crate) path: PathBuf,
    /// The path as the model wrote it, normalised (`"."` for the workdir), for messages.
    pub(crate) display: String,
}

/// The canonical form of the workdir, against which every path is checked.
pub(crate) fn canonical_root(workdir: &Path) -> Result<PathBuf, ToolError> {
    workdir
        .canonicalize()
        .map_err(|e| ToolError::io("the workdir is not accessible", e))
}

/// Resolves `requested` inside `root` (already canonical), refusing absolute paths,
/// `..` that leaves the workdir, and symlinks that lead out of it.
pub(crate) fn resolve(root: &Path, requested: &str) -> Result<Resolved, ToolError> {
    let escapes = || {
        ToolError::Refused(format!(
            "path escapes the workdir: `{requested}`; only paths inside the workdir are allowed"
        ))
    };
    let given = Path::new(requested);
    if given.has_root() || given.is_absolute() {
        return Err(ToolError::Refused(format!(
            "absolute paths are refused: `{requested}`; give a path relative to the workdir"
        )));
    }
    let mut parts: Vec<OsString> = Vec::new();
    for component in given.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(escapes());
                }
            }
            Component::Normal(name) => parts.push(name.to_owned()),
            // Unreachable after the has_root check on Unix; refused rather than trusted.
            Component::RootDir | Component::Prefix(_) => return Err(escapes()),
        }
    }
    let display = if parts.is_empty() {
        ".".to_owned()
    } else {
        parts
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    };

    // Find the deepest existing prefix. `symlink_metadata` is used so that a dangling
    // symlink counts as existing: treating it as absent would let a write follow it to
    // wherever it points.
    let mut existing = root.to_path_buf();
    let mut consumed = 0;
    for part in &parts {
        let next = existing.join(part);
        match std::fs::symlink_metadata(&next) {
            Ok(_) => {
                existing = next;
                consumed += 1;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => break,
            Err(e) => return Err(ToolError::io(format!("cannot access `{display}`"), e)),
        }
    }
    let real = match existing.canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(ToolError::Refused(format!(
                "`{display}` goes through a symlink whose target does not exist; refused because \
                 it could lead out of the workdir"
            )))
        }
        Err(e) => return Err(ToolError::io(format!("cannot resolve `{display}`"), e)),
    };
    if !real.starts_with(root) {
        return Err(escapes());
    }
    let mut path = real;
    for part in &parts[consumed..] {
        path.push(part);
    }
    Ok(Resolved { path, display })
}
