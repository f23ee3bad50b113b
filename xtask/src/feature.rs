//! Reading an agent feature file (`*.agent.feature.md`): markdown whose `Feature:`,
//! `Background:` and `Scenario:` lines (headings or plain lines) open blocks, and whose
//! `Given` / `When` / `Then` / `And` / `But` lines (plain or as list items) are steps.
//! Everything else is prose for people; fenced code blocks are skipped. The grammar is
//! in `tests/agent/README.md`.

use std::path::{Path, PathBuf};

use crate::steps::{self, Action};

/// One feature file, parsed and with every step understood.
#[derive(Debug)]
pub struct Feature {
    /// The file.
    pub path: PathBuf,
    /// The text after `Feature:`.
    pub title: String,
    /// Steps run before every scenario of the file.
    pub background: Vec<Step>,
    /// The scenarios, in file order.
    pub scenarios: Vec<Scenario>,
}

/// One scenario.
#[derive(Debug)]
pub struct Scenario {
    /// The text after `Scenario:`.
    pub name: String,
    /// The name made into a directory name (`.agent-failures/<slug>/`).
    pub slug: String,
    /// The line of its `Scenario:` (1-based).
    pub line: usize,
    /// Its steps, without the background's.
    pub steps: Vec<Step>,
}

/// One step: where it is, what it says and what it does.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its line (1-based).
    pub line: usize,
    /// `Given`, `When`, `Then`, `And` or `But`, as written.
    pub keyword: &'static str,
    /// The text after the keyword.
    pub text: String,
    /// What the runner does for it.
    pub action: Action,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {} {}", self.line, self.keyword, self.text)
    }
}

const KEYWORDS: [&str; 5] = ["Given", "When", "Then", "And", "But"];

/// The block the parser is in.
enum Block {
    None,
    Background,
    Scenario,
}

/// Parses the feature file at `path`; every problem is reported with its line.
pub fn load(path: &Path) -> Result<Feature, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    parse(path, &text)
}

/// Parses `text` as the feature file `path`.
pub fn parse(path: &Path, text: &str) -> Result<Feature, Vec<String>> {
    let mut errors = Vec::new();
    let mut title: Option<String> = None;
    let mut background: Vec<Step> = Vec::new();
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut block = Block::None;
    let mut fence: Option<&str> = None;
    let err = |line: usize, msg: String| format!("{}:{line}: {msg}", path.display());

    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        // Fenced code blocks are examples for people, never steps.
        if let Some(f) = fence {
            if trimmed.starts_with(f) {
                fence = None;
            }
            continue;
        }
        if let Some(f) = ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f)) {
            fence = Some(f);
            continue;
        }
        let is_heading = trimmed.starts_with('#');
        let content = strip_marker(trimmed);
        if let Some(t) = content.strip_prefix("Feature:") {
            if title.is_some() {
                errors.push(err(line, "a second `Feature:`; one per file".into()));
            } else if !scenarios.is_empty() || !background.is_empty() {
                errors.push(err(line, "`Feature:` must come before any step".into()));
            }
            title = Some(t.trim().to_string());
            block = Block::None;
        } else if content.starts_with("Background:") {
            // A title after `Background:` is allowed and ignored, as in Gherkin.
            if !scenarios.is_empty() {
                errors.push(err(
                    line,
                    "`Background:` must come before the first `Scenario:`".into(),
                ));
            } else if !background.is_empty() {
                errors.push(err(line, "a second `Background:`; one per file".into()));
            }
            block = Block::Background;
        } else if let Some(t) = content.strip_prefix("Scenario:") {
            let name = t.trim().to_string();
            if name.is_empty() {
                errors.push(err(line, "a `Scenario:` needs a name".into()));
            }
            if scenarios.iter().any(|s| s.name == name) {
                errors.push(err(line, format!("a second scenario named {name:?}")));
            }
            scenarios.push(Scenario {
                slug: slug(&name),
                name,
                line,
                steps: Vec::new(),
            });
            block = Block::Scenario;
        } else if let Some((keyword, rest)) = step_keyword(content) {
            let action = match steps::parse(rest) {
                Ok(a) => a,
                Err(e) => {
                    errors.push(err(line, format!("{keyword} {rest}: {e}")));
                    continue;
                }
            };
            let step = Step {
                line,
                keyword,
                text: rest.to_string(),
                action,
            };
            match block {
                Block::Background => background.push(step),
                Block::Scenario => {
                    if let Some(s) = scenarios.last_mut() {
                        s.steps.push(step);
                    }
                }
                Block::None => errors.push(err(
                    line,
                    "a step outside any `Scenario:` or `Background:`".into(),
                )),
            }
        } else if is_heading {
            // Any other heading ends the block: prose sections may follow scenarios.
            block = Block::None;
        }
    }
    if fence.is_some() {
        errors.push(format!("{}: a code fence is never closed", path.display()));
    }
    let title = match title {
        Some(t) if !t.is_empty() => t,
        _ => {
            errors.push(format!("{}: no `Feature: <title>` line", path.display()));
            String::new()
        }
    };
    if scenarios.is_empty() {
        errors.push(format!("{}: no `Scenario:`", path.display()));
    }
    for s in &scenarios {
        if s.steps.is_empty() {
            errors.push(err(s.line, format!("scenario {:?} has no steps", s.name)));
        }
    }
    // `the call fails` checks the call of the step just before it.
    for steps in std::iter::once(&background).chain(scenarios.iter().map(|s| &s.steps)) {
        for (i, step) in steps.iter().enumerate() {
            let prev = i.checked_sub(1).map(|p| &steps[p].action);
            if matches!(step.action, Action::CallFails { .. })
                && !matches!(prev, Some(Action::Call { .. } | Action::Send { .. }))
            {
                errors.push(err(
                    step.line,
                    "`the call fails with` must follow `I call …` or `I send …`".into(),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(Feature {
            path: path.to_path_buf(),
            title,
            background,
            scenarios,
        })
    } else {
        Err(errors)
    }
}

/// The line without its heading marks (`## `) or list marker (`- `, `* `, `+ `, `1. `).
fn strip_marker(line: &str) -> &str {
    let s = line.trim_start_matches('#').trim_start();
    for m in ["- ", "* ", "+ "] {
        if let Some(rest) = s.strip_prefix(m) {
            return rest.trim_start();
        }
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 {
        if let Some(rest) = s[digits..].strip_prefix(". ") {
            return rest.trim_start();
        }
    }
    s
}

/// The step keyword `line` starts with (followed by a space) and the rest.
fn step_keyword(line: &str) -> Option<(&'static str, &str)> {
    KEYWORDS.iter().find_map(|k| {
        line.strip_prefix(k)
            .and_then(|r| r.strip_prefix(' '))
            .map(|r| (*k, r.trim()))
    })
}

/// A scenario name as a directory name: lowercase letters and digits, runs of anything
/// else as one `-`, at most 80 bytes.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out = out.trim_end_matches('-').to_string();
    out.truncate(80);
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "scenario".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_bullets_and_plain_lines_are_read_and_prose_and_fences_skipped() {
        let text = r#"# Feature: Sessions

Some prose about it. Given this line is prose, it does not start with a keyword.

## Background:
- Given a temp workdir

## Scenario: A reply
- Given a session in a temp workdir
- When I send "hello"
```
Then this is inside a fence and ignored
```
* Then within 5 seconds the journal contains a "session.message" record with {"text": "echo: hello"}

Scenario: Plain lines
Given a session in a temp workdir with policy {"run_command": "allow"}
1. When I call r1.session.get with {"session_id": "$session"} as $view
And $view matches {"state": "idle"}

## Notes
More prose.
"#;
        let f = parse(Path::new("x.agent.feature.md"), text).unwrap();
        assert_eq!(f.title, "Sessions");
        assert_eq!(f.background.len(), 1);
        assert_eq!(f.scenarios.len(), 2);
        assert_eq!(f.scenarios[0].slug, "a-reply");
        assert_eq!(f.scenarios[0].steps.len(), 3);
        assert_eq!(f.scenarios[0].steps[2].line, 14);
        assert_eq!(f.scenarios[1].steps.len(), 3);
        assert_eq!(f.scenarios[1].steps[2].keyword, "And");
    }

    #[test]
    fn mistakes_are_reported_with_their_lines() {
        let text = "Given a temp workdir\nFeature: X\nScenario: A\nThen I frobnicate\n\
                    Scenario: A\nScenario: B\nGiven a temp workdir\n\
                    Then the call fails with \"conflict\"\n";
        let errs = parse(Path::new("f.md"), text).unwrap_err();
        let all = errs.join("\n");
        assert!(all.contains("f.md:1: a step outside"), "{all}");
        assert!(all.contains("f.md:4: Then I frobnicate"), "{all}");
        assert!(all.contains("f.md:5: a second scenario"), "{all}");
        assert!(all.contains("has no steps"), "{all}");
        assert!(
            all.contains("f.md:8: `the call fails with` must follow"),
            "{all}"
        );
    }

    #[test]
    fn slugs_are_plain_directory_names() {
        assert_eq!(
            slug("Ask → approve: the tool runs!"),
            "ask-approve-the-tool-runs"
        );
        assert_eq!(slug("***"), "scenario");
    }
}
