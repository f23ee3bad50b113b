//! The failure parsers: pure functions from a tool's captured output (or report file)
//! to [`VerifyFailure`]s. Each reads only what the tool emits for machines (or, for
//! libtest, its stable failure blocks); anything they do not recognise is skipped rather
//! than guessed at.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use super::VerifyFailure;

/// The most lines of a tool's message kept in a failure: enough for an assertion's
/// left/right or a compiler error's first lines, short enough for a summary list.
const MESSAGE_LINES: usize = 12;

/// The most bytes of one failure's message.
const MESSAGE_BYTES: usize = 2000;

/// Failures from `cargo … --message-format=json`: every `compiler-message` of level
/// `error` (its primary span's file and line, the first line of its rendering), then
/// the failing tests of libtest's text output, which `cargo test` prints in between.
pub(crate) fn cargo_json(output: &str) -> Vec<VerifyFailure> {
    #[derive(Deserialize)]
    struct Line {
        reason: String,
        message: Option<Diagnostic>,
    }
    #[derive(Deserialize)]
    struct Diagnostic {
        level: String,
        message: String,
        rendered: Option<String>,
        #[serde(default)]
        spans: Vec<Span>,
    }
    #[derive(Deserialize)]
    struct Span {
        file_name: String,
        line_start: u32,
        is_primary: bool,
    }

    let mut failures = Vec::new();
    let mut seen = HashSet::new();
    for line in output.lines() {
        let line = line.trim();
        if !line.starts_with('{') {
            continue;
        }
        let Ok(Line {
            reason,
            message: Some(diag),
        }) = serde_json::from_str::<Line>(line)
        else {
            continue;
        };
        // `error: aborting due to …` repeats the count of the errors already reported.
        if reason != "compiler-message"
            || diag.level != "error"
            || diag.message.starts_with("aborting due to")
        {
            continue;
        }
        let primary = diag.spans.iter().find(|s| s.is_primary);
        let message = diag
            .rendered
            .as_deref()
            .and_then(|r| r.lines().next())
            .filter(|first| !first.trim().is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("error: {}", diag.message));
        let failure = VerifyFailure {
            file: primary.map(|s| s.file_name.clone()),
            line: primary.map(|s| s.line_start),
            test: None,
            message,
        };
        // `cargo test` compiles a crate as a library and as its test harness, and
        // reports the same error for both.
        if seen.insert((failure.file.clone(), failure.line, failure.message.clone())) {
            failures.push(failure);
        }
    }
    failures.extend(libtest(output));
    failures
}

/// Failing tests in libtest's text output: each `---- name stdout ----` block (its
/// `panicked at file:line:col` location and the message after it), and every name of
/// the `failures:` list that had no block.
pub(crate) fn libtest(output: &str) -> Vec<VerifyFailure> {
    let mut failures: Vec<VerifyFailure> = Vec::new();
    let mut named: HashSet<String> = HashSet::new();
    let lines: Vec<&str> = output.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(name) = block_header(line) {
            let body_start = i + 1;
            let mut end = body_start;
            while end < lines.len()
                && block_header(lines[end]).is_none()
                && lines[end] != "failures:"
            {
                end += 1;
            }
            failures.push(libtest_block(name, &lines[body_start..end]));
            named.insert(name.to_owned());
            i = end;
            continue;
        }
        if line == "failures:" {
            // The list form: indented names up to the blank line. (The first
            // `failures:` of a binary is followed by a blank line, then the blocks.)
            let mut j = i + 1;
            while j < lines.len() {
                let Some(name) = lines[j].strip_prefix("    ") else {
                    break;
                };
                let name = name.trim();
                if name.is_empty() {
                    break;
                }
                if named.insert(name.to_owned()) {
                    failures.push(VerifyFailure {
                        file: None,
                        line: None,
                        test: Some(name.to_owned()),
                        message: "failed".to_owned(),
                    });
                }
                j += 1;
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    failures
}

/// The test name of a `---- name stdout ----` line.
fn block_header(line: &str) -> Option<&str> {
    line.strip_prefix("---- ")?
        .strip_suffix(" stdout ----")
        .filter(|name| !name.is_empty())
}

/// One failing test's block: where it panicked and what it said.
fn libtest_block(name: &str, body: &[&str]) -> VerifyFailure {
    let mut failure = VerifyFailure {
        file: None,
        line: None,
        test: Some(name.to_owned()),
        message: String::new(),
    };
    for (k, line) in body.iter().enumerate() {
        if let Some((file, line_no, inline)) = panic_location(line) {
            failure.file = Some(file);
            failure.line = Some(line_no);
            let message = match inline {
                // Before Rust 1.73: `panicked at 'message', file:line:col`.
                Some(inline) => inline,
                // Since: `panicked at file:line:col:` then the message on its own lines.
                None => body[k + 1..]
                    .iter()
                    .take_while(|l| {
                        !l.is_empty()
                            && !l.starts_with("note: ")
                            && !l.starts_with("stack backtrace:")
                    })
                    .copied()
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
            failure.message = clip(if message.is_empty() {
                "panicked"
            } else {
                &message
            });
            return failure;
        }
        if let Some(rest) = line.strip_prefix("note: test did not panic as expected") {
            let (file, line_no) = trailing_location(rest).unzip();
            failure.file = file;
            failure.line = line_no;
            failure.message = "test did not panic as expected".to_owned();
            return failure;
        }
    }
    // No panic: a test returning `Err` prints `Error: …`; keep what it printed.
    let text = body
        .iter()
        .filter(|l| !l.starts_with("note: "))
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.trim();
    failure.message = clip(if text.is_empty() { "failed" } else { text });
    failure
}

/// The location of a libtest `thread '…' panicked at …` line: file, line, and the
/// message when it is on the same line (the pre-1.73 format).
fn panic_location(line: &str) -> Option<(String, u32, Option<String>)> {
    let rest = line.strip_prefix("thread '")?;
    let (_, after) = rest.split_once(" panicked at ")?;
    if let Some(quoted) = after.strip_prefix('\'') {
        // 'message', file:line:col
        let (message, location) = quoted.rsplit_once("', ")?;
        let (file, line_no) = location_of(location)?;
        return Some((file, line_no, Some(message.to_owned())));
    }
    let location = after.strip_suffix(':').unwrap_or(after);
    let (file, line_no) = location_of(location)?;
    Some((file, line_no, None))
}

/// `file:line:col` (or `file:line`) at the end of `text`, after its last space.
fn trailing_location(text: &str) -> Option<(String, u32)> {
    let word = text.trim().rsplit(' ').next()?;
    location_of(word)
}

/// Splits `file:line:col` or `file:line` into the file and the line.
fn location_of(text: &str) -> Option<(String, u32)> {
    let (head, last) = text.trim().rsplit_once(':')?;
    let last: u32 = last.parse().ok()?;
    if let Some((file, middle)) = head.rsplit_once(':') {
        if let (Ok(line), false) = (middle.parse::<u32>(), file.is_empty()) {
            return Some((file.to_owned(), line));
        }
    }
    (!head.is_empty()).then(|| (head.to_owned(), last))
}

/// Failures in a JUnit XML report: every `<testcase>` holding a `<failure>` or an
/// `<error>`. The test is `classname.name`; the file is the testcase's `file`
/// attribute, and the line is the crash location pytest writes as the report's last
/// line (`path:line: ErrorType`) when it names that file, else the `line` attribute.
/// A report that is not XML yields nothing.
pub(crate) fn junit(xml: &str) -> Vec<VerifyFailure> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    let mut failures = Vec::new();
    for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        let Some(problem) = case
            .children()
            .find(|n| n.has_tag_name("failure") || n.has_tag_name("error"))
        else {
            continue;
        };
        let name = case.attribute("name").unwrap_or("?");
        let test = match case.attribute("classname").filter(|c| !c.is_empty()) {
            Some(class) => format!("{class}.{name}"),
            None => name.to_owned(),
        };
        let text = problem.text().unwrap_or("").trim();
        let file = case.attribute("file").map(str::to_owned);
        let crash = text.lines().last().and_then(|last| {
            let (location, _) = last.split_once(": ")?;
            location_of(location)
        });
        let line = match (&file, crash) {
            (Some(file), Some((crash_file, line))) if crash_file == *file => Some(line),
            _ => case.attribute("line").and_then(|l| l.parse().ok()),
        };
        let message = problem
            .attribute("message")
            .filter(|m| !m.trim().is_empty())
            .or_else(|| text.lines().find(|l| !l.trim().is_empty()))
            .unwrap_or(if problem.has_tag_name("error") {
                "error"
            } else {
                "failed"
            });
        failures.push(VerifyFailure {
            file,
            line,
            test: Some(test),
            message: clip(message.trim()),
        });
    }
    failures
}

/// Failures in `go test -json` output: each test whose `fail` event names it (a parent
/// whose subtest failed is left out, the subtest says more), with the lines it printed;
/// and each package that failed with no failing test, such as one that did not build.
/// Go prints a test's messages as `file.go:line: text` relative to its package, so
/// they stay in the message rather than being passed off as worktree paths.
pub(crate) fn go_test_json(output: &str) -> Vec<VerifyFailure> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Event {
        action: String,
        package: Option<String>,
        import_path: Option<String>,
        test: Option<String>,
        output: Option<String>,
    }

    let mut printed: HashMap<(String, Option<String>), Vec<String>> = HashMap::new();
    let mut build_output: HashMap<String, Vec<String>> = HashMap::new();
    let mut failed_tests: Vec<(String, String)> = Vec::new();
    let mut failed_packages: Vec<String> = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        if !line.starts_with('{') {
            continue;
        }
        let Ok(event) = serde_json::from_str::<Event>(line) else {
            continue;
        };
        match event.action.as_str() {
            "output" => {
                if let (Some(package), Some(text)) = (event.package, event.output) {
                    printed
                        .entry((package, event.test))
                        .or_default()
                        .push(text.trim_end().to_owned());
                }
            }
            "build-output" => {
                if let (Some(path), Some(text)) = (event.import_path, event.output) {
                    build_output
                        .entry(path)
                        .or_default()
                        .push(text.trim_end().to_owned());
                }
            }
            "fail" => match (event.package, event.test) {
                (Some(package), Some(test)) => failed_tests.push((package, test)),
                (Some(package), None) => failed_packages.push(package),
                _ => {}
            },
            _ => {}
        }
    }

    let mut failures = Vec::new();
    for (package, test) in &failed_tests {
        let prefix = format!("{test}/");
        if failed_tests
            .iter()
            .any(|(p, t)| p == package && t.starts_with(&prefix))
        {
            continue;
        }
        let lines = printed
            .get(&(package.clone(), Some(test.clone())))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let said: Vec<&str> = lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| {
                !l.is_empty()
                    && !l.starts_with("=== ")
                    && !l.starts_with("--- FAIL")
                    && !l.starts_with("--- PASS")
            })
            .collect();
        let message = if said.is_empty() {
            "failed".to_owned()
        } else {
            clip(&said.join("\n"))
        };
        failures.push(VerifyFailure {
            file: None,
            line: None,
            test: Some(format!("{package}.{test}")),
            message,
        });
    }
    for package in &failed_packages {
        if failed_tests.iter().any(|(p, _)| p == package) {
            continue;
        }
        let built: Vec<&str> = build_output
            .get(package)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with("# ") && !l.trim().is_empty())
            .collect();
        let message = if built.is_empty() {
            let said: Vec<&str> = printed
                .get(&(package.clone(), None))
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(String::as_str)
                .filter(|l| !l.trim().is_empty() && *l != "FAIL")
                .collect();
            if said.is_empty() {
                format!("package {package} failed")
            } else {
                clip(&said.join("\n"))
            }
        } else {
            clip(&built.join("\n"))
        };
        failures.push(VerifyFailure {
            file: None,
            line: None,
            test: None,
            message,
        });
    }
    failures
}

/// Findings in `ruff check --output-format=json` output: the JSON array it prints, one
/// entry per finding, with its file made relative to `workdir` when inside it.
pub(crate) fn ruff_json(output: &str, workdir: &Path) -> Vec<VerifyFailure> {
    #[derive(Deserialize)]
    struct Finding {
        code: Option<String>,
        filename: String,
        location: Option<Location>,
        message: String,
    }
    #[derive(Deserialize)]
    struct Location {
        row: u32,
    }

    // The array starts on a line of its own; anything before it is ruff's stderr.
    let Some(start) = output
        .match_indices('[')
        .map(|(at, _)| at)
        .find(|&at| at == 0 || output[..at].ends_with('\n'))
    else {
        return Vec::new();
    };
    let mut values =
        serde_json::Deserializer::from_str(&output[start..]).into_iter::<Vec<Finding>>();
    let Some(Ok(findings)) = values.next() else {
        return Vec::new();
    };
    findings
        .into_iter()
        .map(|f| {
            let path = Path::new(&f.filename);
            let file = path
                .strip_prefix(workdir)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned();
            VerifyFailure {
                file: Some(file),
                line: f.location.map(|l| l.row),
                test: None,
                message: match f.code {
                    Some(code) => format!("{code} {}", f.message),
                    None => f.message,
                },
            }
        })
        .collect()
}

/// A message cut to [`MESSAGE_LINES`] lines and about [`MESSAGE_BYTES`] bytes.
fn clip(text: &str) -> String {
    let mut out: String = text
        .lines()
        .take(MESSAGE_LINES)
        .collect::<Vec<_>>()
        .join("\n");
    if out.len() > MESSAGE_BYTES {
        let mut cut = MESSAGE_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    } else if text.lines().count() > MESSAGE_LINES {
        out.push_str("\n…");
    }
    out
}

/// The pattern of a Makefile rule line for `target`: the name at the start of a line,
/// then `:` that is not `:=` (an assignment). Kept here with the other text matching.
pub(crate) fn make_target(makefile: &str, target: &str) -> bool {
    let pattern = format!(r"(?m)^{}[ \t]*:([^=]|$)", regex::escape(target));
    Regex::new(&pattern)
        .map(|re| re.is_match(makefile))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn failure(
        file: Option<&str>,
        line: Option<u32>,
        test: Option<&str>,
        message: &str,
    ) -> VerifyFailure {
        VerifyFailure {
            file: file.map(str::to_owned),
            line,
            test: test.map(str::to_owned),
            message: message.to_owned(),
        }
    }

    #[test]
    fn cargo_build_errors_come_from_the_json_messages() {
        let output = include_str!("testdata/cargo-build-error.jsonl");
        let found = cargo_json(output);
        // The unused-variable warning and the `--explain` note are not failures.
        assert_eq!(
            found,
            vec![failure(
                Some("src/lib.rs"),
                Some(2),
                None,
                "error[E0425]: cannot find value `c` in this scope"
            )]
        );
    }

    #[test]
    fn cargo_errors_reported_twice_are_kept_once() {
        let line = include_str!("testdata/cargo-build-error.jsonl")
            .lines()
            .find(|l| l.contains("E0425"))
            .unwrap();
        let output = format!(
            "{line}\n{line}\nnot json\n{{\"reason\":\"build-finished\",\"success\":false}}\n"
        );
        assert_eq!(cargo_json(&output).len(), 1);
    }

    #[test]
    fn cargo_errors_without_a_span_keep_their_message() {
        let output = r#"{"reason":"compiler-message","message":{"rendered":"error: linking with `cc` failed: exit status: 1\n  |\n  = note: ...","level":"error","message":"linking with `cc` failed: exit status: 1","spans":[]}}
{"reason":"compiler-message","message":{"rendered":"error: aborting due to 1 previous error\n","level":"error","message":"aborting due to 1 previous error","spans":[]}}"#;
        assert_eq!(
            cargo_json(output),
            vec![failure(
                None,
                None,
                None,
                "error: linking with `cc` failed: exit status: 1"
            )]
        );
    }

    #[test]
    fn cargo_test_failures_come_from_libtest_blocks() {
        let output = include_str!("testdata/cargo-test-failures.txt");
        let found = cargo_json(output);
        assert_eq!(
            found,
            vec![
                failure(None, None, Some("tests::errs"), "Error: \"boom\""),
                failure(
                    Some("src/lib.rs"),
                    Some(11),
                    Some("tests::adds"),
                    "assertion `left == right` failed\n  left: 2\n right: 3"
                ),
                failure(
                    Some("src/lib.rs"),
                    Some(26),
                    Some("tests::should"),
                    "test did not panic as expected"
                ),
            ]
        );
    }

    #[test]
    fn libtest_reads_the_old_panic_format_and_the_bare_list() {
        let output = "\
running 2 tests
test a::one ... FAILED
test a::two ... FAILED

failures:

---- a::one stdout ----
thread 'a::one' panicked at 'assertion failed: x > 1', src/a.rs:7:5
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    a::one
    a::two

test result: FAILED. 0 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out
";
        assert_eq!(
            libtest(output),
            vec![
                failure(
                    Some("src/a.rs"),
                    Some(7),
                    Some("a::one"),
                    "assertion failed: x > 1"
                ),
                failure(None, None, Some("a::two"), "failed"),
            ]
        );
    }

    #[test]
    fn libtest_with_backtraces_stops_the_message_before_them() {
        let output = "\
---- t stdout ----

thread 't' (2787) panicked at crates/x/src/lib.rs:11:9:
boom
stack backtrace:
   0: __rustc::rust_begin_unwind

failures:
    t
";
        assert_eq!(
            libtest(output),
            vec![failure(
                Some("crates/x/src/lib.rs"),
                Some(11),
                Some("t"),
                "boom"
            )]
        );
    }

    #[test]
    fn passing_libtest_output_has_no_failures() {
        let output = "running 1 test\ntest t ... ok\n\ntest result: ok. 1 passed; 0 failed\n";
        assert!(libtest(output).is_empty());
        assert!(cargo_json(output).is_empty());
    }

    const PYTEST_JUNIT: &str = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4" time="0.050" timestamp="2024-05-01T10:00:00.000000" hostname="dev"><testcase classname="tests.test_calc" file="tests/test_calc.py" line="2" name="test_add" time="0.001" /><testcase classname="tests.test_calc" file="tests/test_calc.py" line="6" name="test_sub" time="0.001"><failure message="assert 1 == 2&#10; +  where 1 = sub(3, 2)">def test_sub():
&gt;       assert sub(3, 2) == 2
E       assert 1 == 2
E        +  where 1 = sub(3, 2)

tests/test_calc.py:8: AssertionError</failure></testcase><testcase classname="tests.test_calc" file="tests/test_calc.py" line="10" name="test_later" time="0.000"><skipped type="pytest.skip" message="later">tests/test_calc.py:11: later</skipped></testcase><testcase classname="tests.test_calc" file="tests/test_calc.py" line="14" name="test_db" time="0.000"><error message="failed on setup with &quot;fixture 'db' not found&quot;">file /home/dev/proj/tests/test_calc.py, line 15
  def test_db(db):
E       fixture 'db' not found</error></testcase></testsuite></testsuites>"#;

    #[test]
    fn junit_failures_and_errors_are_read_and_skips_are_not() {
        assert_eq!(
            junit(PYTEST_JUNIT),
            vec![
                failure(
                    Some("tests/test_calc.py"),
                    Some(8),
                    Some("tests.test_calc.test_sub"),
                    "assert 1 == 2\n +  where 1 = sub(3, 2)"
                ),
                failure(
                    Some("tests/test_calc.py"),
                    Some(14),
                    Some("tests.test_calc.test_db"),
                    "failed on setup with \"fixture 'db' not found\""
                ),
            ]
        );
    }

    #[test]
    fn junit_without_file_attributes_and_garbage() {
        let xml = r#"<testsuite name="jest"><testcase classname="math" name="adds"><failure>Expected 3, received 2
    at Object.&lt;anonymous&gt; (math.test.js:4:17)</failure></testcase></testsuite>"#;
        assert_eq!(
            junit(xml),
            vec![failure(
                None,
                None,
                Some("math.adds"),
                "Expected 3, received 2"
            )]
        );
        assert!(junit("not xml <").is_empty());
        assert!(junit("").is_empty());
    }

    const GO_TEST_JSON: &str = include_str!("testdata/go-test.jsonl");

    #[test]
    fn go_test_failures_name_the_deepest_failing_test_and_broken_packages() {
        assert_eq!(
            go_test_json(GO_TEST_JSON),
            vec![
                failure(
                    None,
                    None,
                    Some("example.com/calc.TestAdd"),
                    "calc_test.go:8: Add(1, 1) = 3, want 2"
                ),
                failure(
                    None,
                    None,
                    Some("example.com/calc.TestTable/neg"),
                    "calc_test.go:20: got -1"
                ),
                failure(None, None, None, "broken/x.go:3:2: undefined: y"),
                failure(None, None, None, "FAIL\texample.com/old [build failed]"),
            ]
        );
        assert!(go_test_json("ok  \texample.com/calc\t0.003s\n").is_empty());
    }

    #[test]
    fn ruff_findings_are_made_relative_to_the_workdir() {
        let output = r#"warning: `ruff` is in preview
[
  {
    "cell": null,
    "code": "F401",
    "end_location": {"column": 10, "row": 1},
    "filename": "/home/dev/proj/app/main.py",
    "fix": {"applicability": "safe", "edits": [], "message": "Remove unused import: `os`"},
    "location": {"column": 8, "row": 1},
    "message": "`os` imported but unused",
    "noqa_row": 1,
    "url": "https://docs.astral.sh/ruff/rules/unused-import"
  }
]
"#;
        assert_eq!(
            ruff_json(output, Path::new("/home/dev/proj")),
            vec![failure(
                Some("app/main.py"),
                Some(1),
                None,
                "F401 `os` imported but unused"
            )]
        );
        assert!(ruff_json("[]\n", Path::new("/")).is_empty());
        assert!(ruff_json("ruff: command not found\n", Path::new("/")).is_empty());
    }

    #[test]
    fn locations() {
        assert_eq!(
            location_of("src/a.rs:7:5"),
            Some(("src/a.rs".to_owned(), 7))
        );
        assert_eq!(
            location_of("tests/t.py:8"),
            Some(("tests/t.py".to_owned(), 8))
        );
        assert_eq!(location_of("nothing"), None);
        assert_eq!(location_of(":3"), None);
    }

    #[test]
    fn long_messages_are_clipped() {
        let long = (0..40)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let clipped = clip(&long);
        assert_eq!(clipped.lines().count(), MESSAGE_LINES + 1);
        assert!(clipped.ends_with('…'));
        assert!(clip(&"é".repeat(3000)).len() <= MESSAGE_BYTES + '…'.len_utf8());
    }

    #[test]
    fn make_targets() {
        let makefile = "VAR := 1\nbuild: deps\n\tcc x.c\ntest:\n\t./run\nlint := no\n";
        assert!(make_target(makefile, "build"));
        assert!(make_target(makefile, "test"));
        assert!(!make_target(makefile, "lint"));
        assert!(!make_target("rebuild:\n", "build"));
    }
}
