//! Discovery: where the state directory is, and reading the registration and the
//! token only when they are private to the user.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use r1_proto::Registration;

use crate::ClientError;

/// `$R1_HOME`, else `~/.r1`.
pub fn default_home() -> PathBuf {
    if let Some(h) = std::env::var_os("R1_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".r1")
}

pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Reads a file only when it is a regular file owned by the user with no group or
/// other permission bits; `None` when it does not exist.
fn read_private(path: &Path) -> Result<Option<Vec<u8>>, ClientError> {
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ClientError::Untrusted(format!(
                "cannot stat {}: {e}",
                path.display()
            )))
        }
    };
    if !md.file_type().is_file() || md.uid() != euid() || md.mode() & 0o077 != 0 {
        return Err(ClientError::Untrusted(format!(
            "refusing {}: it must be a regular file owned by uid {} with mode 0600 (it is mode {:o}, uid {}); remove it and start the daemon again",
            path.display(),
            euid(),
            md.mode() & 0o777,
            md.uid()
        )));
    }
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::Untrusted(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The registration in `home/daemon.json`, if there is a readable one.
pub fn discover(home: &Path) -> Result<Option<Registration>, ClientError> {
    Ok(read_private(&home.join("daemon.json"))?.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// `$R1_SOCK`: the unix socket of a daemon reached by another way than this state
/// directory's `daemon.json` (an SSH-forwarded socket), if set.
pub fn env_sock() -> Option<PathBuf> {
    std::env::var_os("R1_SOCK")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// The file that holds the token: `$R1_TOKEN_FILE` when set, else `home/token`.
pub fn token_path(home: &Path) -> PathBuf {
    std::env::var_os("R1_TOKEN_FILE")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join("token"))
}

/// The token in [`token_path`], read only when it is private to the user.
pub fn read_token(home: &Path) -> Result<String, ClientError> {
    let path = token_path(home);
    match read_private(&path)? {
        Some(b) => Ok(String::from_utf8_lossy(&b).trim().to_string()),
        None if env_sock().is_some() => Err(ClientError::Unreachable(format!(
            "no token at {}: copy the daemon's token there (for example `ssh HOST cat .r1/token > {0}; chmod 600 {0}`) or point R1_TOKEN_FILE at it",
            path.display()
        ))),
        None => Err(ClientError::Unreachable(format!(
            "no token in {}; start the daemon with `r1 serve`",
            home.display()
        ))),
    }
}

/// Refuses a state directory that is a symlink, someone else's, or open to others.
pub(crate) fn check_home(home: &Path) -> Result<(), ClientError> {
    let md = match fs::symlink_metadata(home) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(ClientError::Untrusted(format!(
                "cannot stat {}: {e}",
                home.display()
            )))
        }
    };
    let shown = home.display();
    if md.file_type().is_symlink() {
        return Err(ClientError::Untrusted(format!(
            "state dir {shown} is a symlink; point R1_HOME at the real directory"
        )));
    }
    if md.uid() != euid() {
        return Err(ClientError::Untrusted(format!(
            "state dir {shown} is owned by uid {}, not you (uid {}); use a directory you own",
            md.uid(),
            euid()
        )));
    }
    if md.mode() & 0o077 != 0 {
        return Err(ClientError::Untrusted(format!(
            "state dir {shown} has mode {:o}; fix it with `chmod 700 {shown}`",
            md.mode() & 0o777
        )));
    }
    Ok(())
}

/// On Linux, whether the TCP listener on `port` (loopback) belongs to `uid`, read from
/// `/proc/net/tcp{,6}`: the client checks this before sending the token to a port that
/// another user's process may have taken over.
pub(crate) fn tcp_listener_owned_by(port: u16, uid: u32) -> Result<bool, String> {
    let mut found = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 8 || cols[3] != "0A" {
                continue;
            }
            let Some((_, p)) = cols[1].rsplit_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() != Some(port) {
                continue;
            }
            found = true;
            if cols[7].parse::<u32>().ok() != Some(uid) {
                return Ok(false);
            }
        }
    }
    if found {
        Ok(true)
    } else {
        Err(format!("nothing listens on port {port}"))
    }
}
