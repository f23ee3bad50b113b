//! Writing results for people and for scripts. The CLI is the one place that prints;
//! library crates never do.

use std::io::Write;

use r1_client::ClientError;
use serde::Serialize;

/// Prints `value` as one JSON document on stdout.
pub fn json<T: Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = writeln!(out);
}

/// Prints a line on stdout.
pub fn line(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Reports a client error on stderr (or as a JSON envelope on stdout with `--json`)
/// and returns its exit code.
pub fn fail(err: &ClientError, as_json: bool) -> i32 {
    if as_json {
        let code = match err {
            ClientError::Api(e) => e.code.as_str(),
            ClientError::Incompatible { .. } => "schema_version",
            ClientError::Unreachable(_) => "crash_recovery",
            ClientError::Untrusted(_) => "permission_denied",
            ClientError::Protocol(_) => "internal",
        };
        json(
            &serde_json::json!({"ok": false, "error_code": code, "error_message": err.to_string()}),
        );
    } else {
        eprintln!("r1: {err}");
    }
    err.exit_code()
}
