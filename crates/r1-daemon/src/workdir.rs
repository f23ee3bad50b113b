//! `workdir.read`: one file of a session's workdir, read-only, for the people watching
//! the session (the web UI's Files tab) and for read-capability clients.
//!
//! Confinement, in order:
//!
//! 1. The path is checked lexically: empty, absolute, NUL bytes and any `..` component
//!    are refused (`validation`); `.` components are dropped.
//! 2. It is joined to the canonical workdir and canonicalised, which resolves every
//!    symlink on the way; the real path must still be inside the canonical workdir
//!    (`permission_denied` otherwise: a symlink, or a symlinked parent, leading out).
//! 3. Its metadata (without following) must be a regular file: a directory, a fifo, a
//!    socket or a device is `validation`, and a fifo is never opened, so nothing blocks.
//! 4. It is opened by walking the real path from the workdir one component at a time
//!    with `openat(…, O_NOFOLLOW)`: a symlink swapped into any component after the
//!    check fails the open instead of being followed. The last component is opened
//!    `O_NONBLOCK`, and the opened descriptor is checked again (regular file, and not
//!    one of the daemon's protected files under another name).
//! 5. The daemon's own state directory and token file are refused even inside the
//!    workdir (workdir `~`, state `~/.r1`), by path and by `(dev, inode)`, as for the
//!    agent's file tools.
//!
//! At most `max(max_bytes, 8 KiB)` bytes are read.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path};

use r1_proto::{ApiError, ErrorCode, WorkdirFile};

/// How many leading bytes are looked at for a NUL byte to call a file binary.
const SNIFF: usize = 8 * 1024;

/// Reads `requested` (relative to `workdir`) as `workdir.read` does, returning at most
/// `max_bytes` of text. Blocking: run it off the async runtime.
pub(crate) fn read(
    workdir: &Path,
    protected: &r1_engine::Protected,
    requested: &str,
    max_bytes: u64,
) -> Result<WorkdirFile, ApiError> {
    let parts = normalize(requested)?;
    let shown = if parts.is_empty() {
        ".".to_string()
    } else {
        parts
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    };
    let root = workdir.canonicalize().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ApiError::not_found(format!(
            "the session's workdir {} no longer exists",
            workdir.display()
        )),
        _ => io_error(&format!("the session's workdir {}", workdir.display()), &e),
    })?;
    let joined = parts.iter().fold(root.clone(), |p, c| p.join(c));
    let real = joined
        .canonicalize()
        .map_err(|e| io_error(&format!("`{shown}`"), &e))?;
    let Ok(inside) = real.strip_prefix(&root) else {
        return Err(denied(format!(
            "`{shown}` leads outside the session's workdir (through a symlink); only files \
             inside the workdir can be read"
        )));
    };
    let inside = inside.to_path_buf();
    let meta = std::fs::symlink_metadata(&real).map_err(|e| io_error(&format!("`{shown}`"), &e))?;
    check_regular(&meta.file_type(), &shown)?;
    if let Some(why) = protected.refusal(&real, &meta, &shown) {
        return Err(denied(why));
    }

    let file = open_beneath(&root, &inside).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => denied(format!(
            "`{shown}` changed into a symlink while it was being opened; refused"
        )),
        _ => io_error(&format!("`{shown}`"), &e),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| io_error(&format!("`{shown}`"), &e))?;
    check_regular(&meta.file_type(), &shown)?;
    if let Some(why) = protected.refusal(&real, &meta, &shown) {
        return Err(denied(why));
    }

    let max = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let limit = max.max(SNIFF);
    let mut buf = Vec::with_capacity(limit.min(usize::try_from(meta.len()).unwrap_or(limit)));
    file.take(limit as u64)
        .read_to_end(&mut buf)
        .map_err(|e| io_error(&format!("`{shown}`"), &e))?;
    let size = meta.len();
    let modified_at = meta
        .modified()
        .map(|t| humantime::format_rfc3339_millis(t).to_string())
        .unwrap_or_default();

    let nul = buf[..buf.len().min(SNIFF)].contains(&0);
    let part = &buf[..buf.len().min(max)];
    // More of the file exists after `part`: an incomplete character at its end was cut.
    let more = part.len() < buf.len() || (buf.len() as u64) < size;
    let text = if nul {
        None
    } else {
        match std::str::from_utf8(part) {
            Ok(s) => Some(s),
            Err(e) if e.error_len().is_none() && more => {
                std::str::from_utf8(&part[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        }
    };
    Ok(match text {
        Some(t) => WorkdirFile {
            path: shown,
            size,
            truncated: (t.len() as u64) < size.max(buf.len() as u64),
            binary: false,
            text: crate::fsutil::head(t, max).to_string(),
            modified_at,
        },
        None => WorkdirFile {
            path: shown,
            size,
            truncated: false,
            binary: true,
            text: String::new(),
            modified_at,
        },
    })
}

/// The components of `requested`, refusing what could point outside the workdir.
fn normalize(requested: &str) -> Result<Vec<OsString>, ApiError> {
    if requested.is_empty() {
        return Err(ApiError::validation(
            "`path` is empty; give a file relative to the session's workdir",
        ));
    }
    if requested.contains('\0') {
        return Err(ApiError::validation("`path` contains a NUL byte"));
    }
    let given = Path::new(requested);
    if given.has_root() {
        return Err(ApiError::validation(format!(
            "absolute paths are refused: `{requested}`; give a path relative to the \
             session's workdir"
        )));
    }
    let mut parts = Vec::new();
    for c in given.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(name) => parts.push(name.to_owned()),
            Component::ParentDir => {
                return Err(ApiError::validation(format!(
                    "`..` is refused in `{requested}`; give a path inside the session's \
                     workdir"
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ApiError::validation(format!(
                    "absolute paths are refused: `{requested}`"
                )))
            }
        }
    }
    Ok(parts)
}

/// `validation` unless `t` is a regular file, naming what it is.
fn check_regular(t: &std::fs::FileType, shown: &str) -> Result<(), ApiError> {
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a fifo (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "not a regular file"
    };
    Err(ApiError::validation(format!(
        "`{shown}` is {what}; only regular files can be read"
    )))
}

/// Opens `inside` (a relative path without symlinks, `..` or `.`) under the directory
/// `root`, one component at a time, never following a symlink.
fn open_beneath(root: &Path, inside: &Path) -> io::Result<File> {
    let mut dir = open_at(None, root.as_os_str().as_bytes(), libc::O_DIRECTORY)?;
    let names: Vec<&std::ffi::OsStr> = inside.iter().collect();
    let Some((last, parents)) = names.split_last() else {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    };
    for name in parents {
        dir = open_at(
            Some(dir.as_raw_fd()),
            name.as_bytes(),
            libc::O_DIRECTORY | libc::O_NOFOLLOW,
        )?;
    }
    let fd = open_at(
        Some(dir.as_raw_fd()),
        last.as_bytes(),
        libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
    )?;
    Ok(File::from(fd))
}

/// `openat(dir, name, O_RDONLY | O_CLOEXEC | flags)`; `open` when `dir` is `None`.
fn open_at(dir: Option<RawFd>, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | flags;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call, and `dir`
    // (when given) is an open descriptor borrowed for the call.
    let fd = unsafe {
        match dir {
            Some(d) => libc::openat(d, name.as_ptr(), flags),
            None => libc::open(name.as_ptr(), flags),
        }
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by a successful open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn denied(message: String) -> ApiError {
    ApiError::new(ErrorCode::PermissionDenied, message)
}

/// An I/O error on `what` as the API error a caller can act on.
fn io_error(what: &str, e: &io::Error) -> ApiError {
    match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::NotFound, _) | (_, Some(libc::ENOTDIR)) => {
            ApiError::not_found(format!("{what} does not exist in the session's workdir"))
        }
        (io::ErrorKind::PermissionDenied, _) => denied(format!("{what}: permission denied")),
        (_, Some(libc::ELOOP)) => denied(format!("{what}: too many levels of symlinks")),
        _ => ApiError::internal(format!("cannot read {what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use super::{open_beneath, read};

    /// What `read` sees once its checks passed: a symlink swapped into any component
    /// of the checked path is refused by the open itself, never followed.
    #[test]
    fn the_open_never_follows_a_symlink_swapped_in_after_the_check() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path().canonicalize().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::fs::create_dir(root.join("dir")).unwrap();
        std::fs::write(root.join("dir/file"), "ok").unwrap();
        assert!(open_beneath(&root, Path::new("dir/file")).is_ok());

        // The last component became a symlink out.
        symlink(outside.path().join("secret"), root.join("last")).unwrap();
        let e = open_beneath(&root, Path::new("last")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        // A parent directory became a symlink out.
        std::fs::remove_dir_all(root.join("dir")).unwrap();
        symlink(outside.path(), root.join("dir")).unwrap();
        std::fs::write(outside.path().join("file"), "out").unwrap();
        let e = open_beneath(&root, Path::new("dir/file")).unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)),
            "{e}"
        );
    }

    /// A fifo swapped in after the metadata check opens without blocking (no writer)
    /// and is refused by the check on the descriptor.
    #[test]
    fn a_fifo_opens_without_blocking() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path().canonicalize().unwrap();
        let fifo = std::ffi::CString::new(root.join("pipe").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let f = open_beneath(&root, Path::new("pipe")).unwrap();
        assert!(!f.metadata().unwrap().is_file());
        let e = read(&root, &r1_engine::Protected::default(), "pipe", 10).unwrap_err();
        assert!(e.message.contains("fifo"), "{}", e.message);
    }
}
