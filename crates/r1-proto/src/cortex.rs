//! The cortex: a per-session notes board, and the lobes that watch a session and
//! publish to it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SessionId;

/// A note as a client or a lobe writes it (the `note` of `cortex.publish`, and each
/// line a user lobe prints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    /// The note, for the agent and for people (1 to 8,192 bytes).
    pub text: String,
    /// Free-form labels, e.g. `["verify", "test"]`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Put the note in front of the agent at the start of its next turn.
    #[serde(default)]
    pub critical: bool,
}

/// The params of `cortex.publish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CortexPublishParams {
    /// The session id (`ses_…`).
    pub session_id: SessionId,
    /// The note.
    pub note: NoteInput,
}

/// The params of `cortex.notes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CortexNotesParams {
    /// The session id (`ses_…`).
    pub session_id: SessionId,
    /// Only notes journaled at or after this seq (default: all the session keeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_seq: Option<u64>,
}

/// A note on a session's board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NoteView {
    /// The seq of its `cortex.note` record.
    pub seq: u64,
    /// `note_…`.
    pub note_id: String,
    /// RFC 3339 time it was journaled.
    pub at: String,
    /// The text.
    pub text: String,
    /// Its labels.
    pub tags: Vec<String>,
    /// Whether it was put in front of the agent.
    pub critical: bool,
    /// Who published it: `client`, or the lobe's name.
    pub source: String,
}

/// The answer of `cortex.notes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NoteList {
    /// The notes, oldest first (the newest 1,000 at most; every note stays in the
    /// journal).
    pub notes: Vec<NoteView>,
}

/// The params of `cortex.lobe_pause` and `cortex.lobe_resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LobeRef {
    /// The session id (`ses_…`).
    pub session_id: SessionId,
    /// The lobe's name: `verify`, `budget`, `loop`, or a user lobe's file name.
    pub lobe: String,
}

/// A lobe attached to a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LobeView {
    /// Its name.
    pub name: String,
    /// `builtin`, or `user` (an executable in `$R1_HOME/lobes`).
    pub kind: String,
    /// What it watches for.
    pub description: String,
    /// Paused for this session: it is fed nothing and publishes nothing.
    pub paused: bool,
    /// Notes it published in this session (as far as the session remembers).
    pub notes: u64,
    /// Why a user lobe cannot run (an untrusted file, a crash), when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer of `cortex.lobes_list`, `cortex.lobe_pause` and `cortex.lobe_resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LobeList {
    /// The session.
    pub session_id: SessionId,
    /// Every lobe: the built-in ones, then the user's, by name.
    pub lobes: Vec<LobeView>,
}
