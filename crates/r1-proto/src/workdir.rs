//! Reading a file of a session's workdir (`workdir.read`): the params and the answer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SessionId;

/// How much of a file `workdir.read` returns unless asked otherwise: 256 KiB.
pub const WORKDIR_READ_DEFAULT_BYTES: u64 = 256 * 1024;

/// The most `max_bytes` may ask for: 1 MiB.
pub const WORKDIR_READ_MAX_BYTES: u64 = 1024 * 1024;

/// The params of `workdir.read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkdirReadParams {
    /// The session id (`ses_…`).
    pub session_id: SessionId,
    /// The file, relative to the session's workdir (its worktree when it has one).
    /// Absolute paths and `..` components are refused.
    pub path: String,
    /// The most bytes of text to return (default 256 KiB, at most 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

/// The answer of `workdir.read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkdirFile {
    /// The path asked for, normalized (`.` components dropped), relative to the workdir.
    pub path: String,
    /// The file's size on disk, in bytes.
    pub size: u64,
    /// True when `text` is not the whole file (cut at `max_bytes`, on a character
    /// boundary).
    pub truncated: bool,
    /// True when the file is not text: a NUL byte in its first 8 KiB, or not UTF-8.
    /// `text` is then empty.
    pub binary: bool,
    /// The file's content as UTF-8, up to `max_bytes`; empty for a binary file.
    pub text: String,
    /// When the file was last modified, RFC 3339.
    pub modified_at: String,
}
