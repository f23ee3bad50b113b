//! Planning against real temporary trees, and runs of real shell commands.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for (name, content) in files {
            let path = root.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        Tree { _dir: dir, root }
    }

    fn ctx(&self) -> ToolContext {
        ToolContext {
            workdir: self.root.clone(),
            cancel: CancellationToken::new(),
            output: None,
            protected: Default::default(),
        }
    }

    fn plan(&self, step: VerifyStep, packages: &[&str]) -> Result<VerifyPlan, VerifyError> {
        let packages: Vec<String> = packages.iter().map(|p| (*p).to_owned()).collect();
        plan(&self.ctx(), step, &packages)
    }

    fn command(&self, step: VerifyStep, packages: &[&str]) -> String {
        self.plan(step, packages).unwrap().command
    }
}

const CARGO: (&str, &str) = ("Cargo.toml", "[package]\nname = \"x\"\n");

#[test]
fn cargo_is_detected_with_json_messages() {
    let tree = Tree::new(&[CARGO]);
    let build = tree.plan(VerifyStep::Build, &[]).unwrap();
    assert_eq!(
        build.command,
        "cargo build --workspace --message-format=json"
    );
    assert_eq!(build.format, OutputFormat::CargoJson);
    assert_eq!(build.source, PlanSource::Detected("Cargo.toml"));
    assert_eq!(
        tree.command(VerifyStep::Test, &["r1-engine", "r1-proto"]),
        "cargo test -p r1-engine -p r1-proto --no-fail-fast --message-format=json"
    );
    assert_eq!(
        tree.command(VerifyStep::Lint, &[]),
        "cargo clippy --workspace --all-targets --message-format=json -- -D warnings"
    );
}

#[test]
fn npm_scripts_are_used_only_when_they_exist() {
    let package = r#"{"name": "x", "scripts": {"build": "tsc", "test": "vitest run"}}"#;
    let tree = Tree::new(&[
        ("package.json", package),
        ("Makefile", "lint:\n\teslint .\n"),
    ]);
    assert_eq!(tree.command(VerifyStep::Build, &[]), "npm run build");
    let test = tree.plan(VerifyStep::Test, &["@x/web"]).unwrap();
    assert_eq!(test.command, "npm test --workspace=@x/web");
    assert_eq!(test.format, OutputFormat::Text);
    // No lint script: the next ecosystem that has one answers.
    let lint = tree.plan(VerifyStep::Lint, &[]).unwrap();
    assert_eq!(lint.command, "make lint");
    assert_eq!(lint.source, PlanSource::Detected("Makefile"));

    let broken = Tree::new(&[("package.json", "{\"scripts\": ")]);
    let err = broken.plan(VerifyStep::Test, &[]).unwrap_err();
    assert!(
        matches!(&err, VerifyError::Config { file, .. } if file == "package.json"),
        "{err}"
    );
}

#[test]
fn pyproject_means_pytest_with_a_junit_report_and_ruff() {
    let tree = Tree::new(&[("pyproject.toml", "[project]\nname = \"x\"\n")]);
    let test = tree.plan(VerifyStep::Test, &["tests/unit"]).unwrap();
    let OutputFormat::Junit(report) = &test.format else {
        panic!("{test:?}");
    };
    assert!(report.is_absolute() && report.starts_with(std::env::temp_dir()));
    assert_eq!(
        test.command,
        format!(
            "pytest -o junit_family=xunit1 --junitxml='{}' tests/unit",
            report.display()
        )
    );
    let lint = tree.plan(VerifyStep::Lint, &[]).unwrap();
    assert_eq!(lint.command, "ruff check --output-format=json");
    assert_eq!(lint.format, OutputFormat::RuffJson);
    // Python has no build step of its own.
    assert!(matches!(
        tree.plan(VerifyStep::Build, &[]),
        Err(VerifyError::NothingDetected { .. })
    ));
}

#[test]
fn go_modules_use_package_patterns() {
    let tree = Tree::new(&[("go.mod", "module example.com/x\n")]);
    assert_eq!(tree.command(VerifyStep::Build, &[]), "go build ./...");
    let test = tree
        .plan(VerifyStep::Test, &["./api", "store/...", "."])
        .unwrap();
    assert_eq!(test.command, "go test -json ./api/... ./store/... ./...");
    assert_eq!(test.format, OutputFormat::GoJson);
    assert_eq!(tree.command(VerifyStep::Lint, &[]), "go vet ./...");
}

#[test]
fn makefile_targets_and_no_packages() {
    let tree = Tree::new(&[(
        "Makefile",
        "CC := cc\nbuild: main.o\n\tcc main.o\ntest:\n\t./t\n",
    )]);
    assert_eq!(tree.command(VerifyStep::Build, &[]), "make build");
    assert_eq!(tree.command(VerifyStep::Test, &[]), "make test");
    assert!(matches!(
        tree.plan(VerifyStep::Lint, &[]),
        Err(VerifyError::NothingDetected { .. })
    ));
    let err = tree.plan(VerifyStep::Test, &["a"]).unwrap_err();
    assert!(
        matches!(err, VerifyError::PackagesUnsupported { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("package_arg"), "{err}");
}

#[test]
fn nothing_detected_says_how_to_configure() {
    let tree = Tree::new(&[("README.md", "hi")]);
    let err = tree.plan(VerifyStep::Test, &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("add .r1/verify.toml with [test] command = \"...\""),
        "{err}"
    );
}

#[test]
fn verify_toml_wins_and_is_used_as_written() {
    let config = r#"
[test]
command = "./scripts/test.sh --ci"
format = "junit:target/report.xml"
package_arg = "--pkg {}"

[lint]
command = "cargo clippy --message-format=json"
format = "cargo-json"
"#;
    let tree = Tree::new(&[CARGO, (".r1/verify.toml", config)]);
    let test = tree.plan(VerifyStep::Test, &["a", "b"]).unwrap();
    assert_eq!(
        test,
        VerifyPlan {
            step: VerifyStep::Test,
            command: "./scripts/test.sh --ci --pkg a --pkg b".to_owned(),
            format: OutputFormat::Junit(PathBuf::from("target/report.xml")),
            source: PlanSource::Config,
        }
    );
    let lint = tree.plan(VerifyStep::Lint, &[]).unwrap();
    assert_eq!(lint.command, "cargo clippy --message-format=json");
    assert_eq!(lint.format, OutputFormat::CargoJson);
    // No [build] table: detection answers.
    let build = tree.plan(VerifyStep::Build, &[]).unwrap();
    assert_eq!(build.source, PlanSource::Detected("Cargo.toml"));
    // A table without package_arg takes no packages.
    let err = tree.plan(VerifyStep::Lint, &["a"]).unwrap_err();
    assert!(err.to_string().contains("package_arg"), "{err}");
    // The format defaults to text.
    let plain = Tree::new(&[(".r1/verify.toml", "[build]\ncommand = \"make\"\n")]);
    assert_eq!(
        plain.plan(VerifyStep::Build, &[]).unwrap().format,
        OutputFormat::Text
    );
}

#[test]
fn malformed_verify_toml_names_the_file_and_the_line() {
    let tree = Tree::new(&[(
        ".r1/verify.toml",
        "[test]\ncommand = \"ok\"\nformat = cargo-json\n",
    )]);
    let err = tree.plan(VerifyStep::Test, &[]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(".r1/verify.toml"), "{text}");
    assert!(text.contains("line 3"), "{text}");

    let tree = Tree::new(&[(
        ".r1/verify.toml",
        "[test]\ncommand = \"ok\"\ncomand = \"typo\"\n",
    )]);
    let text = tree.plan(VerifyStep::Test, &[]).unwrap_err().to_string();
    assert!(text.contains("unknown field `comand`"), "{text}");
    assert!(text.contains("line 3"), "{text}");

    let tree = Tree::new(&[(".r1/verify.toml", "[tests]\ncommand = \"ok\"\n")]);
    let text = tree.plan(VerifyStep::Test, &[]).unwrap_err().to_string();
    assert!(text.contains("unknown field `tests`"), "{text}");

    for (format, expect) in [
        ("xml", "is unknown"),
        ("junit:../out.xml", "inside it"),
        ("junit:/tmp/out.xml", "inside it"),
    ] {
        let config = format!("[test]\ncommand = \"t\"\nformat = \"{format}\"\n");
        let tree = Tree::new(&[(".r1/verify.toml", &config)]);
        let text = tree.plan(VerifyStep::Test, &[]).unwrap_err().to_string();
        assert!(text.contains(expect), "{format}: {text}");
    }
    let tree = Tree::new(&[(".r1/verify.toml", "[test]\ncommand = \"  \"\n")]);
    let text = tree.plan(VerifyStep::Test, &[]).unwrap_err().to_string();
    assert!(text.contains("empty"), "{text}");
}

#[test]
fn package_names_cannot_reach_the_shell() {
    let tree = Tree::new(&[CARGO]);
    for bad in [
        "a; rm -rf ~",
        "$(id)",
        "a b",
        "-Zunstable",
        "",
        "a\nb",
        "`x`",
        "a|b",
    ] {
        let err = tree.plan(VerifyStep::Test, &[bad]).unwrap_err();
        assert!(matches!(err, VerifyError::Package(_)), "{bad:?}: {err}");
    }
    for good in [
        "r1-engine",
        "@scope/web",
        "pkg/sub",
        "a.b_c",
        "name:bin",
        "./x",
    ] {
        tree.plan(VerifyStep::Test, &[good]).unwrap();
    }
}

#[test]
fn a_protected_config_is_not_read() {
    let tree = Tree::new(&[CARGO, (".r1/verify.toml", "secret = \"token-value\"\n")]);
    let mut ctx = tree.ctx();
    ctx.protected = std::sync::Arc::new(crate::Protected::new(
        Vec::new(),
        vec![tree.root.join(".r1/verify.toml")],
    ));
    let err = plan(&ctx, VerifyStep::Test, &[]).unwrap_err();
    assert!(matches!(err, VerifyError::Unreadable { .. }), "{err}");
    assert!(!err.to_string().contains("token-value"), "{err}");
}

/// A plan running `command` as a test step.
fn test_plan(command: &str, format: OutputFormat, source: PlanSource) -> VerifyPlan {
    VerifyPlan {
        step: VerifyStep::Test,
        command: command.to_owned(),
        format,
        source,
    }
}

/// Collects what a run streamed.
async fn drain(mut rx: mpsc::Receiver<String>) -> String {
    let mut all = String::new();
    while let Some(chunk) = rx.recv().await {
        all.push_str(&chunk);
    }
    all
}

#[tokio::test]
async fn a_failing_libtest_run_is_parsed_and_streamed() {
    let tree = Tree::new(&[(
        "fake-test.sh",
        include_str!("testdata/cargo-test-failures.txt"),
    )]);
    let (tx, rx) = mpsc::channel(64);
    let mut ctx = tree.ctx();
    ctx.output = Some(tx);
    let plan = test_plan(
        "cat fake-test.sh; exit 101",
        OutputFormat::CargoJson,
        PlanSource::Config,
    );
    let streamed = tokio::spawn(drain(rx));
    let result = run(&ctx, &plan, Duration::from_secs(30)).await.unwrap();
    drop(ctx);
    let streamed = streamed.await.unwrap();

    assert!(!result.ok);
    assert_eq!(result.exit_code, Some(101));
    assert_eq!(result.command, "cat fake-test.sh; exit 101");
    let tests: Vec<_> = result.failures.iter().map(|f| f.test.as_deref()).collect();
    assert_eq!(
        tests,
        vec![
            Some("tests::errs"),
            Some("tests::adds"),
            Some("tests::should")
        ]
    );
    assert_eq!(result.failures[1].file.as_deref(), Some("src/lib.rs"));
    assert_eq!(result.failures[1].line, Some(11));
    assert_eq!(
        result.summary,
        "3 tests failed: tests::errs, tests::adds, tests::should"
    );
    assert!(
        streamed.contains("---- tests::adds stdout ----"),
        "{streamed}"
    );
}

#[tokio::test]
async fn a_passing_run_is_ok_and_text_parses_nothing() {
    let tree = Tree::new(&[]);
    let plan = test_plan(
        "echo 'error: looks bad but is text'",
        OutputFormat::Text,
        PlanSource::Config,
    );
    let result = run(&tree.ctx(), &plan, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(result.ok);
    assert_eq!(result.exit_code, Some(0));
    assert!(result.failures.is_empty());
    assert!(
        result.summary.starts_with("test ok in "),
        "{}",
        result.summary
    );

    let failing = test_plan("exit 3", OutputFormat::Text, PlanSource::Config);
    let result = run(&tree.ctx(), &failing, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(!result.ok);
    assert_eq!(result.exit_code, Some(3));
    assert_eq!(result.summary, "exit 3");
}

const JUNIT: &str = r#"<testsuite><testcase classname="t" name="one" file="t.py"><failure message="assert 1 == 2">t.py:4: AssertionError</failure></testcase></testsuite>"#;

#[tokio::test]
async fn a_configured_junit_report_is_read_only_when_fresh() {
    let tree = Tree::new(&[("report-src.xml", JUNIT)]);
    let plan = test_plan(
        "mkdir -p out && cp report-src.xml out/report.xml; exit 1",
        OutputFormat::Junit(PathBuf::from("out/report.xml")),
        PlanSource::Config,
    );
    let result = run(&tree.ctx(), &plan, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(result.exit_code, Some(1));
    assert_eq!(
        result.failures,
        vec![VerifyFailure {
            file: Some("t.py".to_owned()),
            line: Some(4),
            test: Some("t.one".to_owned()),
            message: "assert 1 == 2".to_owned(),
        }]
    );
    assert_eq!(result.summary, "1 test failed: t.one");
    // The configured report is the project's: it stays.
    assert!(tree.root.join("out/report.xml").exists());

    // A report left from an earlier run is not this run's.
    let report = File::options()
        .write(true)
        .open(tree.root.join("out/report.xml"))
        .unwrap();
    report
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let stale = test_plan(
        "exit 1",
        OutputFormat::Junit(PathBuf::from("out/report.xml")),
        PlanSource::Config,
    );
    let result = run(&tree.ctx(), &stale, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(result.failures.is_empty(), "{:?}", result.failures);
    assert_eq!(result.summary, "exit 1");
}

#[tokio::test]
async fn a_report_r1_named_is_read_and_removed() {
    let tree = Tree::new(&[("report-src.xml", JUNIT)]);
    let report = scratch_report_path();
    let plan = test_plan(
        &format!(
            "cp report-src.xml {}; exit 1",
            shell_quote(&report.to_string_lossy())
        ),
        OutputFormat::Junit(report.clone()),
        PlanSource::Detected("pyproject.toml"),
    );
    let result = run(&tree.ctx(), &plan, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(result.failures.len(), 1, "{result:?}");
    assert!(!report.exists());
}

/// True while `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

async fn wait_for_file(path: &Path) -> String {
    for _ in 0..200 {
        if let Ok(text) = fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test]
async fn cancel_kills_the_whole_process_group() {
    let tree = Tree::new(&[]);
    let ctx = tree.ctx();
    let plan = test_plan(
        "sleep 30 & echo $! > sleep.pid; wait",
        OutputFormat::Text,
        PlanSource::Config,
    );
    let cancel = ctx.cancel.clone();
    let pid_file = tree.root.join("sleep.pid");
    let running = tokio::spawn({
        let ctx = ctx.clone();
        async move { run(&ctx, &plan, Duration::from_secs(60)).await }
    });
    let pid: u32 = wait_for_file(&pid_file).await.trim().parse().unwrap();
    assert!(alive(pid));
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the run ends soon after the cancel")
        .unwrap()
        .unwrap();
    assert!(!result.ok);
    assert_eq!(result.exit_code, None);
    assert_eq!(result.summary, "cancelled; killed");
    for _ in 0..100 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the `sleep 30` child ({pid}) outlived the cancel");
}

#[tokio::test]
async fn a_timeout_kills_and_says_so() {
    let tree = Tree::new(&[]);
    let plan = test_plan("sleep 30", OutputFormat::Text, PlanSource::Config);
    let result = run(&tree.ctx(), &plan, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(!result.ok);
    assert_eq!(result.exit_code, None);
    assert!(
        result.summary.starts_with("timed out after"),
        "{}",
        result.summary
    );
    assert!(result.duration_ms < 10_000);
}

#[test]
fn summaries() {
    use std::os::unix::process::ExitStatusExt;
    let shell = |end: End, code: Option<i32>| ShellOutcome {
        end,
        status: code.map(|c| std::process::ExitStatus::from_raw(c << 8)),
        output: String::new(),
    };
    let error = |file: &str, line: u32, message: &str| VerifyFailure {
        file: Some(file.to_owned()),
        line: Some(line),
        test: None,
        message: message.to_owned(),
    };
    let t = Duration::from_secs(600);
    let d = Duration::from_millis(2340);
    assert_eq!(
        summarize(
            VerifyStep::Build,
            true,
            &shell(End::Exited, Some(0)),
            t,
            d,
            &[]
        ),
        "build ok in 2.3 s"
    );
    let errors = [
        error("src/lib.rs", 2, "error[E0425]: cannot find value `c`\nmore"),
        error("src/a.rs", 9, "error: x"),
    ];
    assert_eq!(
        summarize(
            VerifyStep::Build,
            false,
            &shell(End::Exited, Some(101)),
            t,
            d,
            &errors
        ),
        "2 errors, first src/lib.rs:2: error[E0425]: cannot find value `c`"
    );
    let tests: Vec<VerifyFailure> = ["a::b", "c::d", "e::f", "g::h"]
        .iter()
        .map(|name| VerifyFailure {
            file: None,
            line: None,
            test: Some((*name).to_owned()),
            message: "failed".to_owned(),
        })
        .collect();
    assert_eq!(
        summarize(
            VerifyStep::Test,
            false,
            &shell(End::Exited, Some(101)),
            t,
            d,
            &tests
        ),
        "4 tests failed: a::b, c::d, e::f, …"
    );
    assert_eq!(
        summarize(
            VerifyStep::Test,
            false,
            &shell(End::TimedOut, None),
            t,
            d,
            &tests[..1]
        ),
        "timed out after 600 s; killed; 1 test failed: a::b"
    );
    assert_eq!(
        summarize(
            VerifyStep::Test,
            false,
            &shell(End::Exited, Some(101)),
            t,
            d,
            &[]
        ),
        "exit 101"
    );
}
