//! The session index: which sessions exist. It is the `sessions/` directory itself, one
//! directory per session whose journal starts with `session.created` (the session's
//! metadata) and ends with its last known state.
//!
//! Why no separate index file: the journal is the truth, and the daemon lists
//! `sessions/` on start anyway (a separate file can lag the journals after a crash, so it
//! could never be trusted for reload). A second copy of the metadata (a
//! `sessions-index.json` rewritten whole, or a `meta.json` per session) would only add a
//! write, and fsyncs, to every create and state change, and must be kept consistent
//! with the journal. So adding a session costs O(1): one `mkdir`, and the fsyncs that
//! make it durable.
//!
//! Durability of a create needs exactly three syncs: the `session.created` record, the
//! journal file's entry in the session's directory, and the directory's entry in
//! `sessions/` (here: fsync of `sessions/`). [`SessionIndex::add`] runs a whole create
//! in one blocking job: `mkdir`, then the caller's durable journal
//! (`Journal::create_with`: the file and its first record written, then the three
//! syncs started at the same time, this index's through [`Entry::sync`]). On a
//! journaling file system the three then share one commit; one after the other, each
//! later one would find its change committed and flush the disk's cache again for
//! nothing. One job instead of a hand-off to the blocking pool and back per step is the
//! other half of what this saves (see `docs/BENCHMARKS.md`).
//!
//! The fsync of `sessions/` is group-committed: creates racing each other share one, as
//! the journal's writer shares one `fdatasync` among the records waiting for it. A
//! failed one fails every create it covered, with its error, and is never taken as
//! covering them by a later success (after a failed fsync the kernel may have dropped
//! what it could not write, so a later success says nothing about it).

use std::fmt;
use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The name of the index file older daemons rewrote whole on every change; removed on
/// start so nobody reads a copy that is no longer kept up to date.
const LEGACY_INDEX: &str = "sessions-index.json";

/// How the index makes `sessions/` durable: an fsync of the directory, or a fake in
/// tests.
type SyncDir = Box<dyn Fn(&Path) -> io::Result<()> + Send + Sync>;

/// Adds sessions to the index durably and lists them.
pub struct SessionIndex {
    /// Tickets handed out: one per directory created, taken after its `mkdir` returned.
    created: AtomicU64,
    /// Held by the one thread running an fsync of `sessions/`; the others wait for it
    /// and then find their directory already covered.
    syncing: Mutex<()>,
    /// What the fsyncs of `sessions/` covered; held only to read or record that, never
    /// across an fsync, so a create already covered never waits for another's sync.
    synced: Mutex<Synced>,
    sync_dir: SyncDir,
}

/// The outcome of the fsyncs of `sessions/` so far, by ticket.
#[derive(Debug, Default)]
struct Synced {
    /// Every ticket up to this one is covered by an fsync of `sessions/` that started
    /// after its `mkdir` returned, unless a failed one covered it first.
    upto: u64,
    /// The tickets `(after, upto]` each failed fsync covered, with its error. Only
    /// creates that failed add to it, so it stays short.
    failed: Vec<(u64, u64, String)>,
}

impl Synced {
    /// The error of the failed sync that covered `ticket`, if one did.
    fn failure(&self, ticket: u64) -> Option<io::Error> {
        self.failed
            .iter()
            .find(|(after, upto, _)| *after < ticket && ticket <= *upto)
            .map(|(_, _, e)| {
                io::Error::other(format!("syncing the sessions directory failed: {e}"))
            })
    }
}

/// The pending entry of a directory [`SessionIndex::add`] just made in `sessions/`:
/// [`Entry::sync`] makes it durable. Owned, so it can run on another thread beside the
/// caller's own syncs.
#[derive(Debug)]
pub struct Entry {
    index: Arc<SessionIndex>,
    sessions_dir: PathBuf,
    ticket: u64,
}

impl Entry {
    /// Returns once the directory's entry in `sessions/` is durable (group commit; see
    /// [`SessionIndex::add`]).
    pub fn sync(self) -> io::Result<()> {
        self.index.sync(&self.sessions_dir, self.ticket)
    }
}

impl Default for SessionIndex {
    fn default() -> SessionIndex {
        SessionIndex::with_sync(Box::new(|dir| File::open(dir)?.sync_all()))
    }
}

impl fmt::Debug for SessionIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionIndex")
            .field("created", &self.created)
            .field("synced", &self.synced)
            .finish_non_exhaustive()
    }
}

/// Why [`SessionIndex::add`] failed.
#[derive(Debug)]
pub enum AddError<E> {
    /// The directory could not be made, or its entry in `sessions/` made durable.
    Index(io::Error),
    /// The caller's part failed.
    Fill(E),
}

impl SessionIndex {
    fn with_sync(sync_dir: SyncDir) -> SessionIndex {
        SessionIndex {
            created: AtomicU64::new(0),
            syncing: Mutex::new(()),
            synced: Mutex::new(Synced::default()),
            sync_dir,
        }
    }

    /// Adds the session `id`: creates `sessions_dir/<id>` (0700; an existing one is an
    /// error, so an id is never reused), runs `fill` in it (the caller writes the
    /// session's journal and makes it durable, running [`Entry::sync`] at the same time
    /// as its own syncs), and returns what `fill` made once the directory's entry in
    /// `sessions_dir` is durable too (if `fill` did not run the entry's sync, it runs
    /// here). If any step fails, the directory and whatever `fill` put in it are removed
    /// again: no half-made session is left. A failed sync of `sessions/` is the error of
    /// every add it covered, even where `fill` failed because of it.
    ///
    /// Blocking: run it on a blocking thread, the whole create in one job.
    pub fn add<T, E>(
        self: &Arc<Self>,
        sessions_dir: &Path,
        id: &str,
        fill: impl FnOnce(&Path, Entry) -> Result<T, E>,
    ) -> Result<T, AddError<E>> {
        let dir = sessions_dir.join(id);
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(AddError::Index)?;
        let ticket = self.created.fetch_add(1, Ordering::AcqRel) + 1;
        let entry = Entry {
            index: Arc::clone(self),
            sessions_dir: sessions_dir.to_owned(),
            ticket,
        };
        let made = match fill(&dir, entry) {
            // Returns at once when the entry's sync, or a racing add's, covered it.
            Ok(t) => self
                .sync(sessions_dir, ticket)
                .map(|()| t)
                .map_err(AddError::Index),
            Err(e) => Err(match self.settled(ticket) {
                Some(Err(failed)) => AddError::Index(failed),
                _ => AddError::Fill(e),
            }),
        };
        if made.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        made
    }

    /// Returns once the directory of `ticket` has a durable entry in `sessions_dir`: by
    /// an fsync of `sessions/` that started after its `mkdir` returned, its own or one
    /// a racing add ran (group commit). Fails if the fsync that covered it failed.
    fn sync(&self, sessions_dir: &Path, ticket: u64) -> io::Result<()> {
        if let Some(settled) = self.settled(ticket) {
            return settled;
        }
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(settled) = self.settled(ticket) {
            // The sync we waited for started after our mkdir returned.
            return settled;
        }
        // Every ticket handed out so far belongs to a mkdir that has returned, so the
        // sync below covers them all.
        let upto = self.created.load(Ordering::Acquire);
        let outcome = (self.sync_dir)(sessions_dir);
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(()) => {
                synced.upto = synced.upto.max(upto);
                Ok(())
            }
            Err(e) => {
                let after = synced.upto;
                synced.failed.push((after, upto, e.to_string()));
                Err(synced.failure(ticket).unwrap_or(e))
            }
        }
    }

    /// How the fsyncs of `sessions/` so far settled `ticket`: `None` while none
    /// covered it.
    fn settled(&self, ticket: u64) -> Option<io::Result<()>> {
        let synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        match synced.failure(ticket) {
            Some(failed) => Some(Err(failed)),
            None => (synced.upto >= ticket).then_some(Ok(())),
        }
    }

    /// The ids of every session in `sessions_dir`: each `ses_…` directory holding a
    /// journal. Reading the directory is the whole cost; no journal is opened here.
    pub fn list(sessions_dir: &Path) -> Vec<String> {
        let Ok(entries) = fs::read_dir(sessions_dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.starts_with("ses_"))
            .filter(|n| sessions_dir.join(n).join("journal.ndjson").exists())
            .collect()
    }

    /// Removes the whole-file index an older daemon kept in `state_root`, if any.
    pub fn retire_legacy(state_root: &Path) {
        let path = state_root.join(LEGACY_INDEX);
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!("removed {LEGACY_INDEX}: the sessions/ directory is the index now")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::{AddError, Entry, SessionIndex};

    /// An index whose fsyncs of `sessions/` are counted, and fail on the calls
    /// `fail_on` lists (1-based).
    fn counting(fail_on: &'static [u64]) -> (Arc<SessionIndex>, Arc<AtomicU64>) {
        let calls = Arc::new(AtomicU64::new(0));
        let seen = calls.clone();
        let index = SessionIndex::with_sync(Box::new(move |dir: &Path| {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            if fail_on.contains(&n) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            std::fs::File::open(dir)?.sync_all()
        }));
        (Arc::new(index), calls)
    }

    /// The caller's part of an add: a journal file in the new directory, then the
    /// entry's sync (as `Journal::create_with` runs it beside its own).
    fn journal(dir: &Path, entry: Entry) -> Result<(), io::Error> {
        std::fs::write(dir.join("journal.ndjson"), b"{}\n")?;
        entry.sync()
    }

    #[test]
    fn racing_adds_all_land_and_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let (index, fsyncs) = counting(&[]);
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let (index, root) = (index.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    let id = format!("ses_{i:02}");
                    if i % 2 == 0 {
                        index.add(&root, &id, journal).unwrap();
                    } else {
                        // A fill that leaves the entry's sync to `add`.
                        index
                            .add(&root, &id, |d, _| {
                                std::fs::write(d.join("journal.ndjson"), b"")
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Every ticket is covered, by at most one fsync each (usually far fewer).
        assert_eq!(index.synced.lock().unwrap().upto, 32);
        assert!(fsyncs.load(Ordering::SeqCst) <= 32);
        let mut ids = SessionIndex::list(dir.path());
        ids.sort();
        assert_eq!(ids.len(), 32);
        assert_eq!(ids[0], "ses_00");
        // A directory without a journal, or not named ses_…, is not a session.
        std::fs::create_dir(dir.path().join("ses_nojournal")).unwrap();
        std::fs::create_dir(dir.path().join("other")).unwrap();
        assert_eq!(SessionIndex::list(dir.path()).len(), 32);
        // An id is never reused.
        assert!(matches!(
            index.add(dir.path(), "ses_00", journal),
            Err(AddError::Index(_))
        ));
    }

    #[test]
    fn a_failed_sync_fails_every_add_it_covered_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (index, fsyncs) = counting(&[1]);
        // `ses_b` is added while `ses_a` waits for its sync (inside `ses_a`'s fill), so
        // the first fsync of `sessions/` covers both, and it fails.
        let a = index.add(root, "ses_a", |d, entry| {
            std::fs::write(d.join("journal.ndjson"), b"")?;
            let b = index.add(root, "ses_b", journal);
            let Err(AddError::Index(e)) = b else {
                panic!("ses_b was added though its sync failed: {b:?}");
            };
            assert!(e
                .to_string()
                .contains("syncing the sessions directory failed"));
            // `ses_a`'s own sync: covered by the failed one, so it fails without another.
            entry.sync()
        });
        let Err(AddError::Index(e)) = a else {
            panic!("ses_a was added though the sync covering it failed: {a:?}");
        };
        assert!(
            e.to_string()
                .contains("syncing the sessions directory failed"),
            "{e}"
        );
        // One fsync ran for both; neither left a directory behind.
        assert_eq!(fsyncs.load(Ordering::SeqCst), 1);
        assert!(!root.join("ses_a").exists() && !root.join("ses_b").exists());
        // A later add syncs again, and lands.
        index.add(root, "ses_c", journal).unwrap();
        assert_eq!(fsyncs.load(Ordering::SeqCst), 2);
        assert_eq!(SessionIndex::list(root), vec!["ses_c".to_string()]);
    }

    #[test]
    fn a_failed_fill_leaves_nothing_and_syncs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (index, fsyncs) = counting(&[]);
        let r = index.add(dir.path(), "ses_x", |d, _| {
            std::fs::write(d.join("journal.ndjson"), b"")?;
            Err::<(), _>(io::Error::other("the journal's fdatasync failed"))
        });
        assert!(matches!(r, Err(AddError::Fill(_))));
        assert!(!dir.path().join("ses_x").exists());
        assert_eq!(fsyncs.load(Ordering::SeqCst), 0);
    }
}
