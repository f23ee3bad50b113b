//! The runner itself, end to end: the real `xtask` binary on a feature file with a
//! passing and a deliberately broken scenario, against the real `r1` binary.

// Tests may unwrap (STYLE.md §4): a panic is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `xtask agent-features <args>`, its failure context in `failures`. The r1 binary
/// is the one next to xtask's when the workspace built it (`cargo test --workspace`);
/// otherwise the runner builds it itself.
fn run(args: &[&str], failures: &Path) -> Output {
    let xtask = PathBuf::from(env!("CARGO_BIN_EXE_xtask"));
    let mut cmd = Command::new(&xtask);
    cmd.arg("agent-features")
        .args(args)
        .arg("--failures-dir")
        .arg(failures)
        .env_remove("R1_AGENT_FAILURES");
    let r1 = xtask.with_file_name("r1");
    if std::env::var_os("R1_BIN").is_none() && r1.is_file() {
        cmd.env("R1_BIN", r1);
    }
    cmd.output().unwrap()
}

#[test]
fn a_broken_scenario_fails_the_run_and_leaves_its_context() {
    let failures = tempfile::tempdir().unwrap();
    let out = run(
        &[fixture("broken.agent.feature.md").to_str().unwrap()],
        failures.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("  ok    A scenario that passes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  FAIL  A reply that never comes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("agent features: 1 passed, 1 failed (2 scenarios in 1 files)"),
        "{stdout}"
    );

    // Only the failing scenario has a context directory.
    let names: Vec<String> = std::fs::read_dir(failures.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["a-reply-that-never-comes"], "{names:?}");
    let dir = failures.path().join("a-reply-that-never-comes");

    // The failing step (the one after it is skipped), the error, the variables.
    let failure = std::fs::read_to_string(dir.join("failure.txt")).unwrap();
    assert!(
        failure.contains(r#"failed step: line 17: And within 1 second the journal contains a "session.message" record with {"role": "assistant", "text": "echo: goodbye"}"#),
        "{failure}"
    );
    assert!(
        failure.contains("error: no \"session.message\" record with"),
        "{failure}"
    );
    assert!(
        failure.contains("  skip line 18: And the session is \"idle\""),
        "{failure}"
    );
    assert!(failure.contains("\"session\": \"ses_"), "{failure}");

    // The last call: the journal read that did not find the reply.
    let last: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("last-call.json")).unwrap())
            .unwrap();
    let method = last["method"].as_str().unwrap();
    assert!(
        method == "session.tail" || method == "session.journal",
        "{last}"
    );
    assert!(
        last["params"]["session_id"]
            .as_str()
            .unwrap()
            .starts_with("ses_"),
        "{last}"
    );
    assert!(last.get("result").is_some(), "{last}");

    // The session's journal, with the reply that did come.
    let journals: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("journal-ses_")
        })
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    let journal = std::fs::read_to_string(&journals[0]).unwrap();
    let records: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["kind"], "session.created", "{journal}");
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "session.message" && r["data"]["text"] == "echo: hello"),
        "{journal}"
    );

    // The daemon's log tail: its own JSON log lines.
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap();
    assert!(log.contains("r1-000001.log"), "{log}");
    assert!(log.contains("\"level\":"), "{log}");
}

#[test]
fn a_filter_runs_only_the_named_scenario() {
    let failures = tempfile::tempdir().unwrap();
    let out = run(
        &[
            fixture("broken.agent.feature.md").to_str().unwrap(),
            "that passes",
        ],
        failures.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("1 passed, 0 failed (1 scenarios in 1 files)"),
        "{stdout}"
    );
    assert!(!stdout.contains("never comes"), "{stdout}");
    assert_eq!(std::fs::read_dir(failures.path()).unwrap().count(), 0);
}

#[test]
fn a_step_nobody_understands_stops_the_run_before_any_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.agent.feature.md");
    std::fs::write(
        &file,
        "# Feature: Typos\n\n## Scenario: One\n- Given a session in a temp workdir\n- When I sned \"hello\"\n",
    )
    .unwrap();
    let out = run(&[file.to_str().unwrap()], &dir.path().join("failures"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("typo.agent.feature.md:5: When I sned"),
        "{stderr}"
    );
    assert!(stderr.contains("no step reads like this"), "{stderr}");
    assert!(!dir.path().join("failures").exists());
}

#[test]
fn a_scenario_out_of_time_fails_at_the_step_it_was_in() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slow.agent.feature.md");
    std::fs::write(
        &file,
        "# Feature: Slow\n\n## Scenario: Waits too long\n\
         - Given a session in a temp workdir\n\
         - Then within 60 seconds the journal contains a \"session.ended\" record\n",
    )
    .unwrap();
    let failures = dir.path().join("failures");
    let out = run(
        &[file.to_str().unwrap(), "--scenario-timeout", "2"],
        &failures,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("the scenario ran out of time (2s)"),
        "{stdout}"
    );
    let failure = std::fs::read_to_string(failures.join("waits-too-long/failure.txt")).unwrap();
    assert!(
        failure.contains("  FAIL line 5: Then within 60 seconds the journal contains"),
        "{failure}"
    );
    assert!(failures.join("waits-too-long/daemon.log").is_file());
}
