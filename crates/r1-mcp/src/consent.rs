//! The consent line: the first time an MCP connection makes a mutating call under
//! write capabilities, r1 says so once, on stderr (through `tracing`, which `r1 mcp
//! serve` writes to stderr and the daemon to its log) and in `$R1_HOME/logs/consent.log`,
//! naming the client (from its `initialize`) and the tool it called. A user who gave an
//! agent `--caps write` can see when, and which agent, first used it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Where the consent lines of one server go, and whether this connection wrote its
/// own yet. Cloning shares the flag: one flag per connection (per
/// [`crate::R1McpServer::new`]).
#[derive(Debug, Clone)]
pub(crate) struct Consent {
    /// `$R1_HOME/logs/consent.log`; `None`: the line goes to stderr/log only.
    path: Option<PathBuf>,
    /// The transport, as the line names it (`stdio`, `http`).
    transport: &'static str,
    /// Set by the first mutating call.
    given: Arc<AtomicBool>,
}

impl Consent {
    /// A fresh connection's consent state, logging to `home/logs/consent.log`.
    pub(crate) fn new(home: Option<PathBuf>, transport: &'static str) -> Consent {
        Consent {
            path: home.map(|h| h.join("logs").join("consent.log")),
            transport,
            given: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Records the connection's first mutating call (`tool`, by `client` at
    /// `version`); later calls do nothing. The line is logged even when the file
    /// cannot be written (that failure is logged too): the call itself goes on.
    pub(crate) fn first_mutation(&self, client: &str, version: &str, tool: &str) {
        if self.given.swap(true, Ordering::SeqCst) {
            return;
        }
        let at = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let line = format!(
            "{at} consent: MCP client {client:?} version {version:?} made its first mutating \
             call, {tool}, under --caps write (transport {}, pid {})",
            self.transport,
            std::process::id()
        );
        tracing::warn!(target: "r1::mcp::consent", "{line}");
        let Some(path) = &self.path else { return };
        if let Err(e) = append(path, &line) {
            tracing::warn!(path = %path.display(), "cannot write the consent log: {e}");
        }
    }
}

/// Appends `line` to `path`, creating it 0600 (and its directory 0700).
fn append(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    // One write per line, so lines of concurrent connections never interleave.
    f.write_all(format!("{line}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_line_per_connection() {
        let dir = std::env::temp_dir().join(format!("r1-consent-{}", std::process::id()));
        let a = Consent::new(Some(dir.clone()), "stdio");
        a.first_mutation("claude-code", "1.0", "r1_session_start");
        a.clone()
            .first_mutation("claude-code", "1.0", "r1_session_send");
        Consent::new(Some(dir.clone()), "http").first_mutation("codex", "2", "r1_lanes_kill");
        let text = std::fs::read_to_string(dir.join("logs/consent.log")).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("\"claude-code\"") && lines[0].contains("r1_session_start"));
        assert!(lines[1].contains("\"codex\"") && lines[1].contains("transport http"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
