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
//!
//! Finally the real path is checked against the daemon's [`Protected`] paths: by path
//! (inside the state directory, or the token file), and by `(dev, inode)` (a hard link to
//! the token, the state directory through a bind mount). The workdir may contain the state
//! directory (workdir `~`, state `~/.r1`), so being inside the workdir is not enough.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use super::ToolError;
use crate::sandbox::{Identities, Protected};

/// A path resolved inside the workdir.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The real path: the canonical workdir, the canonical existing part, then the
    /// components that do not exist yet.
    pub(crate) path: PathBuf,
    /// The path as the model wrote it, normalised (`"."` for the workdir), for messages.
    pub(crate) display: String,
    /// The identities of the protected files, read during the check, for a second check
    /// on the opened descriptor (which closes the race with a swap after the check).
    pub(crate) ids: Identities,
}

impl Resolved {
    /// Refuses an opened file or directory that turns out to be a protected one.
    pub(crate) fn check_opened(&self, meta: &std::fs::Metadata) -> Result<(), ToolError> {
        match self.ids.matching(meta) {
            Some(kind) => Err(ToolError::Refused(kind.refusal(&self.display))),
            None => Ok(()),
        }
    }
}

/// The canonical form of the workdir, against which every path is checked.
pub(crate) fn canonical_root(workdir: &Path) -> Result<PathBuf, ToolError> {
    workdir
        .canonicalize()
        .map_err(|e| ToolError::io("the workdir is not accessible", e))
}

/// Resolves `requested` inside `root` (already canonical), refusing absolute paths,
/// `..` that leaves the workdir, symlinks that lead out of it, and anything that is or
/// leads into one of the `protected` paths.
pub(crate) fn resolve(
    root: &Path,
    requested: &str,
    protected: &Protected,
) -> Result<Resolved, ToolError> {
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
    if let Some(kind) = protected.covering(&path) {
        return Err(ToolError::Refused(kind.refusal(&display)));
    }
    let ids = protected.identities();
    let resolved = Resolved { path, display, ids };
    if consumed == parts.len() {
        // It exists: it may still be a protected file under another name.
        let meta = std::fs::metadata(&resolved.path)
            .map_err(|e| ToolError::io(format!("cannot access `{}`", resolved.display), e))?;
        resolved.check_opened(&meta)?;
    }
    Ok(resolved)
}
