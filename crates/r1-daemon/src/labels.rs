//! What people call a session and whether they keep it in view: its title (set at
//! start, changed by `session.rename`) and whether it is archived. These are labels,
//! not part of what the session did, so they live next to the journal in
//! `sessions/<id>/labels.json` (written atomically) rather than in it: an ended
//! session's journal is closed for good, and ended sessions are the ones people
//! archive. `session.delete` removes the whole directory.

use std::path::{Path, PathBuf};

use r1_proto::events::bus;
use r1_proto::{ApiError, DeleteResult, SessionState, SessionView};
use serde::{Deserialize, Serialize};

use crate::Hub;

/// The labels of one session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    /// The title people gave it, when it was renamed (the start title otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Left out of the default list.
    #[serde(default)]
    pub archived: bool,
}

/// Where the labels of the session in `dir` live.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("labels.json")
}

/// The labels stored in `dir`; none when there is no file. A file that cannot be read
/// is logged and ignored (the labels are cosmetic; the journal is the session).
pub fn load(dir: &Path) -> Labels {
    match std::fs::read(path(dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!("ignoring {}: {e}", path(dir).display());
            Labels::default()
        }),
        Err(_) => Labels::default(),
    }
}

impl Hub {
    fn session_dir(&self, id: &str) -> PathBuf {
        self.state().path("sessions").join(id)
    }

    /// Changes the labels of session `id` with `change`, durably, then says so on the
    /// bus. Writes are serialized per daemon, so two renames never interleave.
    async fn relabel(
        &self,
        id: &str,
        change: impl FnOnce(&mut Labels),
    ) -> Result<SessionView, ApiError> {
        let s = self.session(id)?;
        let _one = self.sessions().label_lock.lock().await;
        let mut next = s.labels();
        change(&mut next);
        if next != s.labels() {
            let dir = self.session_dir(&s.id);
            let bytes = serde_json::to_vec(&next)
                .map_err(|e| ApiError::internal(format!("cannot encode labels: {e}")))?;
            tokio::task::spawn_blocking(move || crate::fsutil::write_atomic(&path(&dir), &bytes))
                .await
                .map_err(|_| ApiError::internal("the label writer failed"))?
                .map_err(|e| {
                    ApiError::internal(format!("cannot write the session's labels: {e}"))
                })?;
            s.set_labels(next);
            let view = s.view();
            self.bus().publish(&bus::SessionUpdated {
                session_id: s.id.clone(),
                title: view.title.clone(),
                archived: view.archived,
            });
            return Ok(view);
        }
        Ok(s.view())
    }

    /// `session.rename`.
    pub(crate) async fn rename_session(
        &self,
        id: &str,
        title: &str,
    ) -> Result<SessionView, ApiError> {
        let title = title.trim();
        if title.is_empty() {
            return Err(ApiError::validation("the title is empty"));
        }
        if title.chars().count() > 200 {
            return Err(ApiError::validation(
                "the title is longer than 200 characters",
            ));
        }
        crate::sessions::check_title(title)?;
        let title = title.to_string();
        self.relabel(id, |l| l.title = Some(title)).await
    }

    /// `session.archive` and `session.unarchive`.
    pub(crate) async fn archive_session(
        &self,
        id: &str,
        archived: bool,
    ) -> Result<SessionView, ApiError> {
        self.relabel(id, |l| l.archived = archived).await
    }

    /// `session.delete`: ends a live session, then removes its directory (journal,
    /// labels) and its search entries, and forgets it.
    pub(crate) async fn delete_session(&self, id: &str) -> Result<DeleteResult, ApiError> {
        let s = self.session(id)?;
        let _one = self.sessions().label_lock.lock().await;
        let live =
            s.journal.is_some() && !matches!(s.state(), SessionState::Ended | SessionState::Error);
        if live {
            self.kill_session(&s.id).await?;
        }
        let dir = self.session_dir(&s.id);
        let gone = dir.clone();
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&gone) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
        .map_err(|_| ApiError::internal("the delete failed"))?
        .map_err(|e| {
            ApiError::internal(format!(
                "cannot remove {}: {e}; the session is ended but not deleted",
                dir.display()
            ))
        })?;
        self.forget_session(&s.id);
        self.bus().publish(&bus::SessionDeleted {
            session_id: s.id.clone(),
        });
        tracing::info!(session = %s.id, "session deleted");
        Ok(DeleteResult {
            session_id: s.id.clone(),
            deleted: true,
            ended: live,
        })
    }
}
