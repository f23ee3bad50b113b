//! Keeping agents away from the daemon's own secrets.
//!
//! Two layers. [`Protected`] names the paths no tool may touch: the state directory and
//! the token file(s). The file tools check every resolved path against it, by path and by
//! `(dev, inode)`, so neither `..`, a symlink nor a hard link inside the workdir leads to
//! the token, even when the workdir contains the state directory (workdir `~`,
//! `R1_HOME=~/.r1`). Commands and exec agents are another matter: they run arbitrary
//! programs, so on Linux they are confined with Landlock in the child before `exec`. Its
//! rules are an allowlist (Landlock has no "deny"): read everywhere except the protected
//! paths, write only in the workdir, the temp directories and a few devices. "Everywhere
//! except" is built by granting `/` whole unless a protected path lies below it, and then
//! granting each child instead, recursing only along the way down to the protected path
//! (see [`carve`]). Landlock is best-effort: on a kernel without it commands still run,
//! unconfined, and [`probe_sandbox`] says so at daemon start and in `r1 doctor`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The paths no tool may read, write or list, and no sandboxed child may access: the
/// daemon's state directory and its token file(s). Built once by the daemon; the
/// identities of the files (`(dev, inode)`) are read at each check, so a token rotated by
/// an atomic rename (a new inode) is still recognised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protected {
    /// Canonical directories: nothing inside them is reachable.
    dirs: Vec<PathBuf>,
    /// Canonical files: the token, wherever it is configured.
    files: Vec<PathBuf>,
    /// Canonical directories inside a protected directory that are not protected: the
    /// session worktrees the daemon checks out under its state directory, which are
    /// sessions' workdirs. A protected file inside one stays protected.
    holes: Vec<PathBuf>,
}

impl Protected {
    /// Protects `dirs` (everything inside them) and `files`. Paths are canonicalised now
    /// (symlinks resolved) so that a check compares real paths; a path that does not exist
    /// yet keeps its canonical parent and its name.
    pub fn new(
        dirs: impl IntoIterator<Item = PathBuf>,
        files: impl IntoIterator<Item = PathBuf>,
    ) -> Protected {
        let mut out = Protected::default();
        for dir in dirs {
            push_unique(&mut out.dirs, canonical(&dir));
        }
        for file in files {
            push_unique(&mut out.files, canonical(&file));
        }
        out
    }

    /// The daemon's protected set: its state directory (but for its `worktrees`
    /// directory, where session worktrees are checked out), the token in it, and any
    /// other token file it was given (`r1 serve --token-file`).
    pub fn for_state_dir(state_dir: &Path, token_files: &[PathBuf]) -> Protected {
        let token = state_dir.join("token");
        Protected::new(
            [state_dir.to_path_buf()],
            std::iter::once(token).chain(token_files.iter().cloned()),
        )
        .with_hole(&state_dir.join("worktrees"))
    }

    /// Leaves `dir` (inside a protected directory) out of the protection: tools and
    /// sandboxed children may use it like any other directory.
    pub fn with_hole(mut self, dir: &Path) -> Protected {
        push_unique(&mut self.holes, canonical(dir));
        self
    }

    /// True when `path` is inside a protected directory and not inside a hole of it.
    fn fenced_dir(&self, path: &Path) -> bool {
        self.dirs.iter().any(|d| path.starts_with(d))
            && !self.holes.iter().any(|h| path.starts_with(h))
    }

    /// The protected directories, canonical.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The protected files, canonical.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// True when nothing is protected (engine tests, a context built without a daemon).
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty() && self.files.is_empty()
    }

    /// Every protected path, directories first.
    pub(crate) fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.dirs.iter().chain(self.files.iter())
    }

    /// What `path` (absolute, symlinks already resolved) is, when it is protected by its
    /// path: inside a protected directory or a protected file itself.
    pub(crate) fn covering(&self, path: &Path) -> Option<ProtectedKind> {
        if self.files.iter().any(|f| path == f) {
            Some(ProtectedKind::Token)
        } else if self.fenced_dir(path) {
            Some(ProtectedKind::StateDir)
        } else {
            None
        }
    }

    /// Why `shown` may not be read, when the file at `real` (absolute, symlinks
    /// resolved) with metadata `meta` (of the opened file) is protected: by its path, or
    /// as another name for a protected file or directory. For readers outside the tools
    /// (the daemon's `workdir.read`), which apply the same fence.
    pub fn refusal(&self, real: &Path, meta: &std::fs::Metadata, shown: &str) -> Option<String> {
        self.covering(real)
            .or_else(|| self.identities().matching(meta))
            .map(|kind| kind.refusal(shown))
    }

    /// The `(dev, inode)` of every protected path that exists now.
    pub(crate) fn identities(&self) -> Identities {
        let id = |p: &PathBuf| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        Identities {
            dirs: self.dirs.iter().filter_map(id).collect(),
            files: self.files.iter().filter_map(id).collect(),
        }
    }
}

/// Which kind of protected thing a path turned out to be, for the refusal message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProtectedKind {
    /// Inside the state directory.
    StateDir,
    /// The token file (by its path).
    Token,
    /// Another name (a hard link) for the token file.
    TokenLink,
}

impl ProtectedKind {
    /// Why a tool refuses `shown`, in a sentence the model (and a person) understands.
    pub(crate) fn refusal(self, shown: &str) -> String {
        match self {
            ProtectedKind::StateDir => format!(
                "refused: `{shown}` is inside r1's state directory, which holds the daemon's \
                 credentials; tools never read, write or list it"
            ),
            ProtectedKind::Token => format!(
                "refused: `{shown}` is r1's token file; tools never read or write the \
                 daemon's credentials"
            ),
            ProtectedKind::TokenLink => format!(
                "refused: `{shown}` is another name (a hard link) for r1's token file; tools \
                 never read or write the daemon's credentials"
            ),
        }
    }
}

/// The `(dev, inode)` pairs of the protected paths, read once per check.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identities {
    dirs: Vec<(u64, u64)>,
    files: Vec<(u64, u64)>,
}

impl Identities {
    /// What the file or directory with metadata `meta` is, if it is a protected one
    /// under another name: a hard link to the token (a regular file with more than one
    /// link) or the state directory itself (reached through a bind mount).
    pub(crate) fn matching(&self, meta: &std::fs::Metadata) -> Option<ProtectedKind> {
        let id = (meta.dev(), meta.ino());
        if meta.is_file() && self.files.contains(&id) {
            // A file with one link is the token itself, reached by its own path; the
            // caller's path check names that case.
            Some(if meta.nlink() > 1 {
                ProtectedKind::TokenLink
            } else {
                ProtectedKind::Token
            })
        } else if meta.is_dir() && self.dirs.contains(&id) {
            Some(ProtectedKind::StateDir)
        } else {
            None
        }
    }
}

/// The canonical form of `path`, or of its parent joined with its name when it does not
/// exist yet, or `path` itself when neither resolves.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .map_or_else(|_| path.to_path_buf(), |p| p.join(name)),
        _ => path.to_path_buf(),
    }
}

fn push_unique(list: &mut Vec<PathBuf>, path: PathBuf) {
    if !list.contains(&path) {
        list.push(path);
    }
}

/// Why a command could not be confined; the command is not started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SandboxError {
    /// A protected file has another name somewhere: Landlock rules follow paths, so a
    /// confined command could read the token through that other name.
    #[error(
        "r1's token file {path} has {links} hard links; a command could read the token \
         through the other name, so no command is started until the token is replaced \
         (`r1 ctl rotate-token`)"
    )]
    Linked {
        /// The protected file.
        path: PathBuf,
        /// Its link count.
        links: u64,
    },
    /// The kernel refused to build the ruleset.
    #[cfg(target_os = "linux")]
    #[error("cannot build the Landlock sandbox: {0}")]
    Ruleset(#[from] landlock::RulesetError),
}

/// True unless the operator turned the sandbox off with `R1_SANDBOX=off` in the daemon's
/// environment (an escape hatch for tools that must write outside the workdir; the
/// variable itself never reaches children, like every `R1_` variable).
pub fn sandbox_enabled() -> bool {
    !matches!(
        std::env::var("R1_SANDBOX").as_deref(),
        Ok("off" | "0" | "false" | "no")
    )
}

/// How far the kernel enforces the sandbox on confined children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxEnforcement {
    /// Every requested restriction is enforced.
    Full,
    /// The kernel enforces an older Landlock ABI: the file rules hold, newer rights
    /// (such as connecting to unix sockets, ABI 9) are not restricted.
    Partial,
    /// Landlock is missing or disabled: children run unconfined.
    None,
    /// Turned off with `R1_SANDBOX=off`.
    Disabled,
}

/// What [`probe_sandbox`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxStatus {
    /// How far the sandbox is enforced.
    pub enforcement: SandboxEnforcement,
    /// The kernel's Landlock ABI version, when Landlock is available.
    pub abi: Option<i32>,
    /// True when the probe saw a confined thread refused a protected file and allowed to
    /// write in its workdir: the rules do what they should on this kernel.
    pub verified: bool,
    /// One sentence for a log line or `r1 doctor`.
    pub detail: String,
}

impl SandboxStatus {
    /// True when confined children are actually kept from the protected paths.
    pub fn active(&self) -> bool {
        matches!(
            self.enforcement,
            SandboxEnforcement::Full | SandboxEnforcement::Partial
        ) && self.verified
    }
}

/// Finds out whether the sandbox works on this kernel, by doing it: a throwaway thread
/// confines itself with the rules a command would get (a scratch workdir and a scratch
/// "state directory" with a secret in it), then tries to read the secret and to write in
/// the workdir. Landlock restricts only the calling thread, so the rest of the process is
/// untouched and the restriction ends with the thread.
pub fn probe_sandbox() -> SandboxStatus {
    if !sandbox_enabled() {
        return SandboxStatus {
            enforcement: SandboxEnforcement::Disabled,
            abi: None,
            verified: false,
            detail: "sandbox turned off (R1_SANDBOX=off): commands and exec agents run \
                     unconfined; only the file tools' path checks protect the state directory"
                .to_owned(),
        };
    }
    probe_impl()
}

#[cfg(not(target_os = "linux"))]
fn probe_impl() -> SandboxStatus {
    SandboxStatus {
        enforcement: SandboxEnforcement::None,
        abi: None,
        verified: false,
        detail: "no sandbox: Landlock exists only on Linux; commands run unconfined and only \
                 the file tools' path checks protect the state directory"
            .to_owned(),
    }
}

#[cfg(target_os = "linux")]
fn probe_impl() -> SandboxStatus {
    linux::probe()
}

#[cfg(target_os = "linux")]
pub(crate) use linux::{confine_child, Confinement};

/// Elsewhere there is nothing to confine with; commands run as they are.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub(crate) struct Confinement;

#[cfg(not(target_os = "linux"))]
impl Confinement {
    /// Always `None`: no Landlock outside Linux.
    pub(crate) fn build(
        _workdir: &Path,
        _writable: &[PathBuf],
        _protected: &Protected,
    ) -> Result<Option<Confinement>, SandboxError> {
        Ok(None)
    }
}

/// Nothing to install outside Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn confine_child(_cmd: &mut tokio::process::Command, _confinement: Confinement) {}

/// The Landlock rules and their installation in a child. Linux only.
#[cfg(target_os = "linux")]
mod linux {
    use std::fs::{File, OpenOptions};
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    use std::path::{Path, PathBuf};

    use landlock::{
        Access, AccessFs, BitFlags, CompatLevel, Compatible, LandlockStatus, PathBeneath, Ruleset,
        RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, ABI,
    };

    use super::{Identities, Protected, SandboxEnforcement, SandboxError, SandboxStatus};

    /// The newest Landlock ABI whose rights r1 hands out on purpose. V9 adds
    /// `ResolveUnix` (connecting to a pathname unix socket), which keeps a command from
    /// reaching the daemon's socket in the state directory; older kernels drop it
    /// (best effort), which is reported as partial enforcement.
    const ABI_TARGET: ABI = ABI::V9;

    /// Every right r1 controls.
    fn handled() -> BitFlags<AccessFs> {
        AccessFs::from_all(ABI_TARGET)
    }

    /// Reading, listing, executing, device ioctls and connecting to sockets: granted
    /// everywhere except the protected paths.
    fn read_rights() -> BitFlags<AccessFs> {
        AccessFs::from_read(ABI_TARGET) | AccessFs::IoctlDev | AccessFs::ResolveUnix
    }

    /// The rights that make sense on a file rather than a directory.
    fn file_rights() -> BitFlags<AccessFs> {
        AccessFs::from_file(ABI_TARGET)
    }

    /// Devices every shell pipeline expects to open for writing.
    const DEVICES: [&str; 8] = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/ptmx",
        "/dev/pts",
    ];

    /// A ruleset built in the parent, waiting to be applied in the child.
    #[derive(Debug)]
    pub(crate) struct Confinement {
        ruleset: RulesetCreated,
    }

    impl Confinement {
        /// The rules for a child working in `workdir`: read everywhere but `protected`,
        /// write in `workdir`, `writable`, the temp directories and the usual devices.
        /// `None` when the sandbox is turned off. Blocking (it lists a few directories
        /// and opens a path descriptor per rule); call it off the async runtime.
        pub(crate) fn build(
            workdir: &Path,
            writable: &[PathBuf],
            protected: &Protected,
        ) -> Result<Option<Confinement>, SandboxError> {
            if !super::sandbox_enabled() {
                return Ok(None);
            }
            for file in protected.files() {
                if let Ok(meta) = std::fs::metadata(file) {
                    if meta.nlink() > 1 {
                        return Err(SandboxError::Linked {
                            path: file.clone(),
                            links: meta.nlink(),
                        });
                    }
                }
            }
            let ids = protected.identities();
            let mut rules = Vec::new();
            carve(&mut rules, Path::new("/"), read_rights(), protected, &ids);
            let mut write_roots: Vec<PathBuf> = vec![workdir.to_path_buf()];
            write_roots.extend(writable.iter().cloned());
            write_roots.push(PathBuf::from("/tmp"));
            write_roots.push(PathBuf::from("/var/tmp"));
            write_roots.push(PathBuf::from("/dev/shm"));
            if let Some(tmp) = std::env::var_os("TMPDIR") {
                write_roots.push(PathBuf::from(tmp));
            }
            for root in write_roots {
                // A grant on a symlink would be a grant on its target: use the real path.
                if let Ok(real) = root.canonicalize() {
                    carve(&mut rules, &real, handled(), protected, &ids);
                }
            }
            let device = AccessFs::ReadFile
                | AccessFs::WriteFile
                | AccessFs::Truncate
                | AccessFs::IoctlDev
                | AccessFs::ReadDir;
            for dev in DEVICES {
                carve(&mut rules, Path::new(dev), device, protected, &ids);
            }

            let mut ruleset = Ruleset::default()
                .set_compatibility(CompatLevel::BestEffort)
                .handle_access(handled())?
                .create()?;
            for (fd, access) in rules {
                ruleset = ruleset.add_rule(PathBeneath::new(fd, access))?;
            }
            Ok(Some(Confinement { ruleset }))
        }
    }

    /// Grants `access` on `root`, except on the protected paths and what is below them
    /// (but for the holes): when a protected path lies strictly below `root`, or `root`
    /// is protected with a hole below it, `root` itself gets nothing and each of its
    /// children is considered instead, so the recursion only follows the way down to
    /// the fences and the holes and the number of rules stays small (the siblings along
    /// that path).
    /// Symlinks get no rule (Landlock judges an access by the real path, so a link's
    /// target keeps the rights of where it really is; a rule on a link would be a rule on
    /// its target). Entries are opened with `O_PATH | O_NOFOLLOW`, and a file that is
    /// another name for a protected one, or the state directory reached through a bind
    /// mount, is left out.
    fn carve(
        rules: &mut Vec<(File, BitFlags<AccessFs>)>,
        root: &Path,
        access: BitFlags<AccessFs>,
        protected: &Protected,
        ids: &Identities,
    ) {
        let fenced = protected.fenced_dir(root) || protected.files.iter().any(|f| root == f);
        let hole_below = protected
            .holes
            .iter()
            .any(|h| h.starts_with(root) && h != root);
        if fenced && !hole_below {
            return;
        }
        let fence_below = protected.all().any(|f| f.starts_with(root) && f != root);
        if fenced || fence_below {
            // An unreadable directory on the way gives nothing: failing closed.
            let Ok(entries) = std::fs::read_dir(root) else {
                return;
            };
            for entry in entries.flatten() {
                carve(rules, &root.join(entry.file_name()), access, protected, ids);
            }
            return;
        }
        let Ok(fd) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
            .open(root)
        else {
            return;
        };
        let Ok(meta) = fd.metadata() else { return };
        if meta.file_type().is_symlink() || ids.matching(&meta).is_some() {
            return;
        }
        let access = if meta.is_dir() {
            access
        } else {
            access & file_rights()
        };
        if !access.is_empty() {
            rules.push((fd, access));
        }
    }

    /// Makes `cmd`'s child confine itself with `confinement` just before `exec`.
    pub(crate) fn confine_child(cmd: &mut tokio::process::Command, confinement: Confinement) {
        let mut pending = Some(confinement.ruleset);
        let apply = move || -> std::io::Result<()> {
            match pending.take() {
                // A ruleset the kernel cannot enforce (no Landlock) comes back as
                // `NotEnforced`, not as an error: best effort. An error means the
                // kernel refused a ruleset it understands; the command is not run.
                Some(ruleset) => ruleset
                    .restrict_self()
                    .map(|_| ())
                    .map_err(|_| std::io::Error::from_raw_os_error(libc::EPERM)),
                None => Ok(()),
            }
        };
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe work is allowed. It allocates nothing and takes no lock:
        // `restrict_self` makes two syscalls (`prctl(PR_SET_NO_NEW_PRIVS)` and
        // `landlock_restrict_self`) on a descriptor opened in the parent, reads plain
        // fields, and closes that descriptor; its error values hold only an errno.
        // `Option::take` moves a value inside the child's copy of the closure.
        unsafe {
            cmd.pre_exec(apply);
        }
    }

    /// See [`super::probe_sandbox`].
    pub(super) fn probe() -> SandboxStatus {
        let base = std::env::temp_dir().join(format!(
            "r1-sandbox-probe-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let status = probe_in(&base);
        // Best effort: the scratch directory holds nothing of value.
        let _ = std::fs::remove_dir_all(&base);
        status
    }

    fn probe_in(base: &Path) -> SandboxStatus {
        let failed = |detail: String| SandboxStatus {
            enforcement: SandboxEnforcement::None,
            abi: None,
            verified: false,
            detail,
        };
        let state = base.join("state");
        let work = base.join("work");
        let secret = state.join("token");
        let prepared = std::fs::create_dir_all(&state)
            .and_then(|()| std::fs::create_dir_all(&work))
            .and_then(|()| std::fs::write(&secret, b"probe"));
        if let Err(e) = prepared {
            return failed(format!(
                "cannot probe the sandbox (scratch directory {}: {e})",
                base.display()
            ));
        }
        let protected = Protected::new([state], [secret.clone()]);
        let confinement = match Confinement::build(&work, &[], &protected) {
            Ok(Some(c)) => c,
            Ok(None) => return failed("sandbox turned off".to_owned()),
            Err(e) => return failed(format!("cannot build the sandbox: {e}")),
        };
        let probe_file = work.join("probe");
        let joined = std::thread::Builder::new()
            .name("r1-sandbox-probe".to_owned())
            .spawn(move || {
                let status = confinement.ruleset.restrict_self();
                let secret_refused = std::fs::read(&secret).is_err();
                let work_writable = std::fs::write(&probe_file, b"ok").is_ok();
                (status, secret_refused, work_writable)
            })
            .map(|t| t.join());
        let (status, secret_refused, work_writable) = match joined {
            Ok(Ok(out)) => out,
            _ => return failed("cannot probe the sandbox: the probe thread failed".to_owned()),
        };
        let status = match status {
            Ok(s) => s,
            Err(e) => return failed(format!("the kernel refused the Landlock sandbox: {e}")),
        };
        let abi = match status.landlock {
            LandlockStatus::Available {
                effective_abi,
                kernel_abi,
            } => Some(kernel_abi.unwrap_or_else(|| abi_number(effective_abi))),
            LandlockStatus::NotEnabled | LandlockStatus::NotImplemented => None,
        };
        let enforcement = match status.ruleset {
            RulesetStatus::FullyEnforced => SandboxEnforcement::Full,
            RulesetStatus::PartiallyEnforced => SandboxEnforcement::Partial,
            RulesetStatus::NotEnforced => SandboxEnforcement::None,
        };
        let verified = enforcement != SandboxEnforcement::None && secret_refused && work_writable;
        let abi_text = abi.map_or_else(String::new, |v| format!(" (Landlock ABI {v})"));
        let detail = match (enforcement, verified) {
            (SandboxEnforcement::Full, true) => format!(
                "Landlock sandbox active{abi_text}: commands and exec agents cannot access the \
                 state directory or the token and write only in the workdir and temp directories"
            ),
            (SandboxEnforcement::Partial, true) => format!(
                "Landlock sandbox active{abi_text}, partially: commands and exec agents cannot \
                 access the state directory's files or the token and write only in the workdir \
                 and temp directories; this kernel cannot keep them from connecting to the \
                 daemon's unix socket (needs Landlock ABI 9)"
            ),
            (SandboxEnforcement::None, _) => match status.landlock {
                LandlockStatus::NotEnabled => "Landlock sandbox inactive: the kernel has Landlock \
                     but it is not enabled (add `landlock` to the `lsm=` boot parameter); \
                     commands run unconfined and only the file tools' path checks protect the \
                     state directory"
                    .to_owned(),
                _ => "Landlock sandbox inactive: this kernel has no Landlock; commands run \
                      unconfined and only the file tools' path checks protect the state directory"
                    .to_owned(),
            },
            _ => format!(
                "Landlock sandbox enforced{abi_text} but the probe saw it fail (protected file \
                 refused: {secret_refused}, workdir writable: {work_writable}); treat commands \
                 as unconfined"
            ),
        };
        SandboxStatus {
            enforcement,
            abi,
            verified,
            detail,
        }
    }

    /// The number of an ABI the crate knows (the enum is non-exhaustive).
    fn abi_number(abi: ABI) -> i32 {
        [
            (ABI::V1, 1),
            (ABI::V2, 2),
            (ABI::V3, 3),
            (ABI::V4, 4),
            (ABI::V5, 5),
            (ABI::V6, 6),
            (ABI::V7, 7),
            (ABI::V8, 8),
            (ABI::V9, 9),
            (ABI::V10, 10),
        ]
        .into_iter()
        .find(|(a, _)| *a == abi)
        .map_or(0, |(_, n)| n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_worktrees_hole_is_open_and_the_rest_of_the_state_directory_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().canonicalize().unwrap().join(".r1");
        std::fs::create_dir_all(state.join("worktrees/wt_1")).unwrap();
        std::fs::create_dir_all(state.join("sessions")).unwrap();
        let p = Protected::for_state_dir(&state, &[]);
        assert_eq!(p.covering(&state.join("worktrees/wt_1/src/a.rs")), None);
        assert_eq!(p.covering(&state.join("worktrees")), None);
        assert_eq!(
            p.covering(&state.join("sessions/x")),
            Some(ProtectedKind::StateDir)
        );
        assert_eq!(p.covering(&state), Some(ProtectedKind::StateDir));
        assert_eq!(p.covering(&state.join("token")), Some(ProtectedKind::Token));
        // A name that merely starts like the hole is not in it.
        assert_eq!(
            p.covering(&state.join("worktrees-other")),
            Some(ProtectedKind::StateDir)
        );
    }
}
