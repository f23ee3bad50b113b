//! The step vocabulary: each step's text (after its keyword) parsed into an [`Action`]
//! when the file is loaded, so a misspelt step or operation fails before any daemon
//! starts. The keyword itself does not choose the action (as in Cucumber).

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use r1_proto::OperationInfo;
use serde_json::Value;

/// The longest `within N seconds` a step may ask for: a wait is bounded, and a typo
/// of `500` for `5` should not hold CI for an hour.
const MAX_WITHIN: Duration = Duration::from_secs(300);

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// `a temp workdir`: binds `$workdir` to a new empty directory.
    TempWorkdir,
    /// `a temp git repository`: binds `$repo` to a new repository with one commit.
    TempGitRepo,
    /// `a session [as $name] in (a temp workdir | "<path>") [with policy <json> | with
    /// <json>]`: `session.start`, binding the id to `$session` (or `$name`).
    StartSession {
        /// The variable the id is bound to.
        bind: String,
        /// The workdir (with `$vars`); a new temp directory when `None`.
        workdir: Option<String>,
        /// More `session.start` params.
        extra: Option<Value>,
    },
    /// `I call <operation> [with <json>] [as $name]`: binds `$result` (and `$name`).
    Call {
        /// The operation.
        op: &'static OperationInfo,
        /// Its params (with `$vars`).
        params: Option<Value>,
        /// An extra variable for the result.
        bind: Option<String>,
    },
    /// `I send "<text>" [to $name]`: `session.send` to `$session` (or `$name`).
    Send {
        /// The message (with `$vars`).
        text: String,
        /// The variable holding the session id.
        session: String,
    },
    /// `I approve|deny the pending approval [of $name]`: waits for the session's first
    /// pending approval, decides it, binds `$approval`.
    Decide {
        /// `allow` or `deny`.
        decision: &'static str,
        /// The variable holding the session id.
        session: String,
    },
    /// `the call fails with "<code>" [and a message containing "<text>"]`: the
    /// previous call step's error.
    CallFails {
        /// The error code.
        code: String,
        /// A substring of the error message.
        message: Option<String>,
    },
    /// `$name[.path] matches <json>` (or `the result matches <json>`).
    Matches {
        /// The variable reference, without the `$`.
        var: String,
        /// The expected subset.
        expected: Value,
    },
    /// `[within N seconds] the journal [of $name] contains a "<kind>" record [with
    /// <json>]`, or `does not contain`: binds `$record` to the record found.
    Journal {
        /// How long to wait for it.
        within: Option<Duration>,
        /// The variable holding the session id.
        session: String,
        /// The record kind.
        kind: String,
        /// A subset of its `data`.
        data: Option<Value>,
        /// `does not contain`.
        negate: bool,
    },
    /// `[within N seconds] <operation> [with <json>] returns <json>`: calls it (again
    /// until the deadline) until its result matches; binds `$result`.
    Returns {
        /// How long to keep trying.
        within: Option<Duration>,
        /// The operation.
        op: &'static OperationInfo,
        /// Its params.
        params: Option<Value>,
        /// The expected subset of the result.
        expected: Value,
    },
    /// `[within N seconds] the file "<path>" exists | does not exist | contains
    /// "<text>"`, the path relative to `$workdir`.
    File {
        /// How long to wait for it.
        within: Option<Duration>,
        /// The path (with `$vars`).
        path: String,
        /// What must hold.
        check: FileCheck,
    },
    /// `[within N seconds] the session [$name] is "<state>"`.
    SessionIs {
        /// How long to wait for it.
        within: Option<Duration>,
        /// The variable holding the session id.
        session: String,
        /// The state.
        state: String,
    },
}

/// What a file step checks.
#[derive(Debug, Clone)]
pub enum FileCheck {
    /// The file exists.
    Exists,
    /// It does not.
    Absent,
    /// It exists and its text contains this.
    Contains(String),
}

/// The vocabulary, for the error on a step nobody understands.
pub const VOCABULARY: &str = "\
  a temp workdir | a temp git repository
  a session [as $name] in (a temp workdir | \"<path>\") [with policy <json> | with <json>]
  I call <operation> [with <json>] [as $name]
  I send \"<text>\" [to $name]
  I approve|deny the pending approval [of $name]
  the call fails with \"<code>\" [and a message containing \"<text>\"]
  $name[.field…] matches <json> | the result matches <json>
  [within N seconds] the journal [of $name] contains|does not contain a \"<kind>\" record [with <json>]
  [within N seconds] <operation> [with <json>] returns <json>
  [within N seconds] the file \"<path>\" exists | does not exist | contains \"<text>\"
  [within N seconds] the session [$name] is \"<state>\"";

/// Parses one step's text.
pub fn parse(text: &str) -> Result<Action> {
    let mut c = Cursor { s: text.trim() };
    let within = if c.lit("within") {
        let n = c
            .number()
            .ok_or_else(|| anyhow!("`within` needs a number of seconds"))?;
        if !(c.lit("seconds") || c.lit("second")) {
            bail!("`within {n}` needs `seconds`");
        }
        let d = Duration::from_secs_f64(n);
        if d > MAX_WITHIN {
            bail!("`within` is at most {} seconds", MAX_WITHIN.as_secs());
        }
        Some(d)
    } else {
        None
    };
    let action = parse_action(&mut c, within)?;
    if !c.done() {
        bail!("unexpected {:?} at the end", c.s);
    }
    let waits = matches!(
        action,
        Action::Journal { negate: false, .. }
            | Action::Returns { .. }
            | Action::File { .. }
            | Action::SessionIs { .. }
    );
    if within.is_some() && !waits {
        bail!("`within` goes only with a check that can become true: the journal contains, <operation> returns, the file, the session is");
    }
    Ok(action)
}

fn parse_action(c: &mut Cursor, within: Option<Duration>) -> Result<Action> {
    if c.lit("a temp workdir") {
        return Ok(Action::TempWorkdir);
    }
    if c.lit("a temp git repository") {
        return Ok(Action::TempGitRepo);
    }
    if c.lit("a session") {
        let bind = if c.lit("as") {
            c.var().ok_or_else(|| anyhow!("`as` needs a $name"))?
        } else {
            "session".to_string()
        };
        if !c.lit("in") {
            bail!("`a session` needs `in a temp workdir` or `in \"<path>\"`");
        }
        let workdir = if c.lit("a temp workdir") {
            None
        } else {
            Some(c.string()?)
        };
        let extra = if c.lit("with policy") {
            let p = c.json()?;
            if !p.is_object() {
                bail!("a policy is a JSON object of tool → allow|ask|deny");
            }
            Some(serde_json::json!({ "policy": p }))
        } else if c.lit("with") {
            let p = c.json()?;
            if !p.is_object() {
                bail!("`with` needs a JSON object of session.start params");
            }
            Some(p)
        } else {
            None
        };
        return Ok(Action::StartSession {
            bind,
            workdir,
            extra,
        });
    }
    if c.lit("I call") {
        let op = c.operation()?;
        let params = if c.lit("with") { Some(c.json()?) } else { None };
        let bind = if c.lit("as") {
            Some(c.var().ok_or_else(|| anyhow!("`as` needs a $name"))?)
        } else {
            None
        };
        return Ok(Action::Call { op, params, bind });
    }
    if c.lit("I send") {
        let text = c.string()?;
        let session = c.session_after("to")?;
        return Ok(Action::Send { text, session });
    }
    for (words, decision) in [("I approve", "allow"), ("I deny", "deny")] {
        if c.lit(words) {
            if !c.lit("the pending approval") {
                bail!("`{words}` needs `the pending approval`");
            }
            let session = c.session_after("of")?;
            return Ok(Action::Decide { decision, session });
        }
    }
    if c.lit("the call fails with") {
        let code = c.string()?;
        let message = if c.lit("and a message containing") {
            Some(c.string()?)
        } else {
            None
        };
        return Ok(Action::CallFails { code, message });
    }
    if c.lit("the result matches") {
        return Ok(Action::Matches {
            var: "result".into(),
            expected: c.json()?,
        });
    }
    if let Some(var) = c.var() {
        if !c.lit("matches") {
            bail!("`${var}` needs `matches <json>`");
        }
        return Ok(Action::Matches {
            var,
            expected: c.json()?,
        });
    }
    if c.lit("the journal") {
        let session = c.session_after("of")?;
        let negate = if c.lit("does not contain") {
            true
        } else if c.lit("contains") {
            false
        } else {
            bail!("`the journal` needs `contains` or `does not contain`");
        };
        if !(c.lit("a") || c.lit("an")) {
            bail!("the journal check reads `contains a \"<kind>\" record`");
        }
        let kind = c.string()?;
        if !c.lit("record") {
            bail!("the journal check reads `contains a \"<kind>\" record`");
        }
        let data = if c.lit("with") { Some(c.json()?) } else { None };
        return Ok(Action::Journal {
            within,
            session,
            kind,
            data,
            negate,
        });
    }
    if c.lit("the file") {
        let path = c.string()?;
        let check = if c.lit("exists") {
            FileCheck::Exists
        } else if c.lit("does not exist") {
            FileCheck::Absent
        } else if c.lit("contains") {
            FileCheck::Contains(c.string()?)
        } else {
            bail!("`the file` needs `exists`, `does not exist` or `contains \"<text>\"`");
        };
        return Ok(Action::File {
            within,
            path,
            check,
        });
    }
    if c.lit("the session") {
        let session = c.var().unwrap_or_else(|| "session".to_string());
        if !c.lit("is") {
            bail!("`the session` needs `is \"<state>\"`");
        }
        let state = c.string()?;
        return Ok(Action::SessionIs {
            within,
            session,
            state,
        });
    }
    let word = c.peek_word();
    if r1_client::resolve_operation(word).is_some() {
        let op = c.operation()?;
        let params = if c.lit("with") { Some(c.json()?) } else { None };
        if !c.lit("returns") {
            bail!(
                "`{}` needs `returns <json>` (to call it, write `I call {}`)",
                op.method,
                op.method
            );
        }
        let expected = c.json()?;
        return Ok(Action::Returns {
            within,
            op,
            params,
            expected,
        });
    }
    bail!("no step reads like this; the steps are:\n{VOCABULARY}")
}

/// A position in a step's text.
struct Cursor<'a> {
    s: &'a str,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.s.is_empty()
    }

    /// Takes `words` (one or more, single-spaced) when the text goes on with them,
    /// followed by a word boundary.
    fn lit(&mut self, words: &str) -> bool {
        let Some(rest) = self.s.strip_prefix(words) else {
            return false;
        };
        let ends_word = words.chars().last().is_some_and(char::is_alphanumeric);
        if ends_word && rest.chars().next().is_some_and(char::is_alphanumeric) {
            return false;
        }
        self.s = rest.trim_start();
        true
    }

    fn peek_word(&self) -> &str {
        self.s.split_whitespace().next().unwrap_or("")
    }

    fn number(&mut self) -> Option<f64> {
        let w = self.peek_word();
        let n: f64 = w
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
        self.s = self.s[w.len()..].trim_start();
        Some(n)
    }

    /// A `$name` with an optional `.field` path; returns it without the `$`.
    fn var(&mut self) -> Option<String> {
        let rest = self.s.strip_prefix('$')?;
        let len = crate::vars::reference_len(rest);
        if len == 0 {
            return None;
        }
        let name = rest[..len].to_string();
        self.s = rest[len..].trim_start();
        Some(name)
    }

    /// `$name` after `word` (`to $b`, `of $b`), else `session`.
    fn session_after(&mut self, word: &str) -> Result<String> {
        if self.lit(word) {
            self.var()
                .ok_or_else(|| anyhow!("`{word}` needs a $name holding a session id"))
        } else {
            Ok("session".to_string())
        }
    }

    /// One JSON value, and the text after it.
    fn json(&mut self) -> Result<Value> {
        let mut it = serde_json::Deserializer::from_str(self.s).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) => {
                let used = it.byte_offset();
                self.s = self.s[used..].trim_start();
                Ok(v)
            }
            Some(Err(e)) => bail!(
                "bad JSON ({e}) in {:?}; a $var goes inside a string",
                self.s
            ),
            None => bail!("JSON expected"),
        }
    }

    /// A double-quoted string, JSON escapes allowed.
    fn string(&mut self) -> Result<String> {
        if !self.s.starts_with('"') {
            bail!("a \"quoted string\" expected at {:?}", self.s);
        }
        match self.json()? {
            Value::String(s) => Ok(s),
            _ => bail!("a \"quoted string\" expected"),
        }
    }

    /// An operation name: its method (`session.send`), MCP tool (`r1_session_send`)
    /// or dotted alias (`r1.session.send`).
    fn operation(&mut self) -> Result<&'static OperationInfo> {
        let w = self.peek_word().to_string();
        let op = r1_client::resolve_operation(&w).ok_or_else(|| {
            anyhow!("no operation {w:?} in the catalog (`r1 mcp serve --print-tools` lists them)")
        })?;
        self.s = self.s[w.len()..].trim_start();
        Ok(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_the_vocabulary_parses() {
        let ok = [
            "a temp workdir",
            "a temp git repository",
            "a session in a temp workdir",
            r#"a session as $b in "$repo" with policy {"run_command": "allow"}"#,
            r#"a session in a temp workdir with {"title": "t"}"#,
            r#"I call r1.session.send with {"session_id": "$session", "text": "hi"} as $sent"#,
            "I call session.list",
            r#"I call r1_session_get with {"session_id": "$b"}"#,
            r#"I send "hello" to $b"#,
            "I approve the pending approval",
            "I deny the pending approval of $b",
            r#"the call fails with "not_found" and a message containing "ses_""#,
            r#"$result.hits matches [{"kind": "message"}]"#,
            r#"the result matches {"state": "idle"}"#,
            r#"within 5 seconds the journal contains a "session.message" record with {"role": "assistant"}"#,
            r#"the journal of $b does not contain an "tool.started" record"#,
            r#"within 2.5 seconds r1.session.get with {"session_id": "$session"} returns {"state": "idle"}"#,
            r#"the file "a.txt" contains "hi""#,
            r#"within 1 second the session $b is "paused""#,
        ];
        for s in ok {
            parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        for (s, want) in [
            ("I frobnicate", "no step reads like this"),
            ("I call session.nope", "no operation"),
            (
                r#"I call session.get with {"session_id": $session}"#,
                "bad JSON",
            ),
            ("within 5 seconds I send \"x\"", "`within` goes only"),
            ("within 900 seconds the session is \"idle\"", "at most"),
            (r#"session.get with {} returns"#, "JSON expected"),
            (r#"the session is "idle" now"#, "unexpected"),
        ] {
            let e = parse(s).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn a_call_takes_its_json_and_binding_apart() {
        let Action::Call { op, params, bind } =
            parse(r#"I call mission.create with {"spec": {"prompt": "a b"}} as $m"#).unwrap()
        else {
            panic!("not a call")
        };
        assert_eq!(op.method, "mission.create");
        assert_eq!(params.unwrap()["spec"]["prompt"], "a b");
        assert_eq!(bind.as_deref(), Some("m"));
    }
}
