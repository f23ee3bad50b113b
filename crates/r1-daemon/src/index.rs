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
//! Durability of a create needs exactly three syncs: the new directory's entry in
//! `sessions/` (here: fsync of `sessions/`), the journal file's entry in its directory
//! (`Journal::create`), and the `session.created` record (its durable append). The
//! first is group-committed: creates racing each other share one fsync of `sessions/`,
//! as the journal's writer shares one `fdatasync` among the records waiting for it. A
//! create runs the three at the same time, once the directory, the file and the record
//! are written: on a journaling file system they then share one commit, so a create
//! waits for about one sync, not three in a row.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The name of the index file older daemons rewrote whole on every change; removed on
/// start so nobody reads a copy that is no longer kept up to date.
const LEGACY_INDEX: &str = "sessions-index.json";

/// Adds sessions to the index durably and lists them.
#[derive(Debug, Default)]
pub struct SessionIndex {
    /// Held by the one task running an fsync of `sessions/`; the others wait for it and
    /// then find their directory already covered.
    syncing: tokio::sync::Mutex<()>,
    /// Tickets handed out: one per directory created, taken after its `mkdir` returned.
    created: AtomicU64,
    /// Every ticket up to this one is covered by an fsync of `sessions/` that started
    /// after its `mkdir` returned.
    synced: AtomicU64,
}

impl SessionIndex {
    /// Creates `sessions_dir/<id>` (0700; an existing one is an error, so an id is never
    /// reused) and returns once its entry is durable: [`SessionIndex::make`] then
    /// [`SessionIndex::sync`]. Returns the new directory.
    #[cfg(test)]
    pub async fn add(&self, sessions_dir: &Path, id: &str) -> io::Result<PathBuf> {
        let (dir, ticket) = self.make(sessions_dir, id).await?;
        if let Err(e) = self.sync(sessions_dir, ticket).await {
            // Not durable: take the directory back so the create fails cleanly.
            let _ = fs::remove_dir(&dir);
            return Err(e);
        }
        Ok(dir)
    }

    /// Creates `sessions_dir/<id>` (0700; an existing one is an error) without making
    /// its entry durable; returns the directory and the ticket to pass to
    /// [`SessionIndex::sync`], which the caller may run beside its own syncs.
    pub async fn make(&self, sessions_dir: &Path, id: &str) -> io::Result<(PathBuf, u64)> {
        let dir = sessions_dir.join(id);
        let made = dir.clone();
        blocking(move || DirBuilder::new().mode(0o700).create(&made)).await?;
        let ticket = self.created.fetch_add(1, Ordering::AcqRel) + 1;
        Ok((dir, ticket))
    }

    /// Returns once the directory of `ticket` (from [`SessionIndex::make`]) has a
    /// durable entry in `sessions_dir`: by an fsync of `sessions/` that started after its
    /// `mkdir` returned, its own or one a racing create ran (group commit).
    pub async fn sync(&self, sessions_dir: &Path, ticket: u64) -> io::Result<()> {
        let _one_at_a_time = self.syncing.lock().await;
        if self.synced.load(Ordering::Acquire) >= ticket {
            // A sync that started after our mkdir returned has covered it.
            return Ok(());
        }
        // Every ticket handed out so far belongs to a mkdir that has returned, so the
        // sync below covers them all.
        let upto = self.created.load(Ordering::Acquire);
        let parent = sessions_dir.to_path_buf();
        blocking(move || File::open(&parent)?.sync_all()).await?;
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
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

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("file task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::SessionIndex;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_adds_all_land_and_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let index = std::sync::Arc::new(SessionIndex::default());
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let (index, root) = (index.clone(), dir.path().to_path_buf());
                tokio::spawn(async move {
                    let d = index.add(&root, &format!("ses_{i:02}")).await.unwrap();
                    std::fs::write(d.join("journal.ndjson"), b"").unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // Every ticket is covered, with (usually far) fewer than 32 fsyncs.
        assert_eq!(index.synced.load(std::sync::atomic::Ordering::Acquire), 32);
        let mut ids = SessionIndex::list(dir.path());
        ids.sort();
        assert_eq!(ids.len(), 32);
        assert_eq!(ids[0], "ses_00");
        // A directory without a journal, or not named ses_…, is not a session.
        std::fs::create_dir(dir.path().join("ses_nojournal")).unwrap();
        std::fs::create_dir(dir.path().join("other")).unwrap();
        assert_eq!(SessionIndex::list(dir.path()).len(), 32);
        // An id is never reused.
        assert!(index.add(dir.path(), "ses_00").await.is_err());
    }
}
