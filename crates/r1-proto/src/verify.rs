//! Verify resources: running a project's own build, test and lint commands in a
//! session's worktree, and what they found.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which of the project's commands a verify runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VerifyStep {
    /// Compile the project (`verify.build`).
    Build,
    /// Run its tests (`verify.test`).
    Test,
    /// Run its linter (`verify.lint`).
    Lint,
}

impl VerifyStep {
    /// The wire spelling, also the table name in `.r1/verify.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyStep::Build => "build",
            VerifyStep::Test => "test",
            VerifyStep::Lint => "lint",
        }
    }
}

impl std::fmt::Display for VerifyStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The params of `verify.build`, `verify.test` and `verify.lint`: the worktree, named
/// directly or by its session, and optionally the packages to narrow the run to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyParams {
    /// The worktree id (`wt_…`); give it or `session_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree_id: Option<String>,
    /// The session whose worktree to verify; give it or `worktree_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Narrow the run to these packages (`cargo -p`, `go ./pkg/...`, …). Each name may
    /// hold only letters, digits and `._/@:-`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
}

/// One failure found in a verify's machine-readable output: a compile error, a failing
/// test, a lint finding. Fields the tool did not report are absent, never guessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VerifyFailure {
    /// The file, as the tool reported it (usually relative to the worktree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The 1-based line in `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The failing test's name, for a test failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// What went wrong, as the tool said it (first lines only).
    pub message: String,
}

/// The answer of `verify.build`, `verify.test` and `verify.lint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VerifyResult {
    /// `build`, `test` or `lint`.
    pub step: VerifyStep,
    /// True when the command exited with code 0.
    pub ok: bool,
    /// The command's exit code; absent when it was killed (by a signal, the timeout or
    /// a cancel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// The shell command that ran, in the worktree.
    pub command: String,
    /// One line for a person: `build ok in 2.3 s`, `2 tests failed: a::b, c::d`,
    /// `exit 101`.
    pub summary: String,
    /// What the command's machine-readable output says failed; empty when it offers none.
    pub failures: Vec<VerifyFailure>,
    /// The session it ran in (empty when it ran outside a session).
    #[serde(default)]
    pub session_id: String,
    /// The session's lane its output streamed to (`verify_…`).
    #[serde(default)]
    pub lane: String,
}
