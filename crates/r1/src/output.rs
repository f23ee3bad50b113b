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

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A usage total for people: `1,234 in (200 cached) / 567 out  $0.0123`; the cached
/// part and the cost only when there are any.
pub fn usage(u: &r1_proto::SessionUsage) -> String {
    let mut text = format!("{} in", thousands(u.input_tokens));
    if u.cached_input_tokens > 0 {
        text.push_str(&format!(" ({} cached)", thousands(u.cached_input_tokens)));
    }
    text.push_str(&format!(" / {} out", thousands(u.output_tokens)));
    if let Some(c) = u.cost_usd {
        text.push_str(&format!("  ${c:.4}"));
    }
    text
}

/// The tokio runtime of a client command: on the calling thread when `workers` is 0
/// (one request and done), else with that many workers (commands that read input while
/// a stream comes in). A runtime that cannot start is said on stderr and is exit 1.
pub fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, i32> {
    let mut builder = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("r1: cannot start the runtime: {e}");
        1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        let mut u = r1_proto::SessionUsage {
            input_tokens: 1234,
            output_tokens: 567,
            ..Default::default()
        };
        assert_eq!(usage(&u), "1,234 in / 567 out");
        u.cached_input_tokens = 200;
        u.cost_usd = Some(0.01234);
        assert_eq!(usage(&u), "1,234 in (200 cached) / 567 out  $0.0123");
    }
}
