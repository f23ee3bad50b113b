//! Verify: running a project's own build, test and lint commands in a workdir (a
//! session's worktree) and reading what failed.
//!
//! The contract:
//!
//! - [`plan`] decides the shell command for a [`VerifyStep`]. The step's table of
//!   `.r1/verify.toml` wins when the file has one:
//!
//!   ```toml
//!   [test]
//!   command = "cargo test --message-format=json"
//!   format = "cargo-json"     # or "go-json", "ruff-json", "junit:<path>", "text" (default)
//!   package_arg = "-p {}"     # optional: how each requested package is appended
//!   ```
//!
//!   Its values are used as written; unknown keys and malformed TOML are errors naming
//!   the file and the line. Otherwise the command is detected from the first of these that
//!   offers the step: `Cargo.toml` (`cargo build`/`test`/`clippy` with JSON messages),
//!   `package.json` (`npm run build`, `npm test`, `npm run lint`, when the script
//!   exists), `pyproject.toml` (`pytest` writing a JUnit report, `ruff check` with JSON
//!   output), `go.mod` (`go build`, `go test -json`, `go vet`), a `Makefile` with a
//!   `build`/`test`/`lint` target. Nothing found is a [`VerifyError::NothingDetected`]
//!   saying how to configure it.
//! - Requested packages narrow the run (`cargo -p`, `go ./pkg/...`, `npm --workspace`,
//!   pytest and ruff paths). They are checked against a strict alphabet first, because
//!   the command is a shell string.
//! - [`run`] runs the command like the `run_command` tool does (`sh -c` in the workdir,
//!   its own process group, secrets stripped, the same sandbox, output streamed to
//!   [`ToolContext::output`], the whole group killed on timeout and cancellation), then
//!   parses failures from the output format: cargo's JSON messages and libtest's failure
//!   blocks, `go test -json` events, ruff's JSON, a JUnit XML report. The `text` format
//!   parses nothing: failures are left empty rather than guessed.
//!
//! Every [`VerifyError`] but [`VerifyError::Start`] is the caller's to fix (a
//! `validation` error on the wire).

mod parse;

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

pub use r1_proto::{VerifyFailure, VerifyResult, VerifyStep};

use crate::tools::command::{run_shell, End, ShellOutcome};
use crate::tools::path::{canonical_root, resolve};
use crate::ToolContext;

/// Where a workdir's verify configuration lives, relative to the workdir.
pub const CONFIG_FILE: &str = ".r1/verify.toml";

/// How much of a verify's output is kept for parsing: cargo's JSON messages run to a
/// few hundred KiB for a large workspace, and failures must not be cut off.
const KEEP_BYTES: usize = 8 * 1024 * 1024;

/// The largest JUnit report read; larger ones yield no failures.
const REPORT_LIMIT: u64 = 32 * 1024 * 1024;

/// The largest manifest (`package.json`, `Makefile`, `verify.toml`) read.
const MANIFEST_LIMIT: u64 = 1024 * 1024;

/// The most failures a result carries; the summary still counts them all.
const MAX_FAILURES: usize = 200;

/// The command for one step and how to read its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPlan {
    /// The step it verifies.
    pub step: VerifyStep,
    /// The shell command, run with `sh -c` in the workdir.
    pub command: String,
    /// How failures are read from the command's output.
    pub format: OutputFormat,
    /// Where the command came from.
    pub source: PlanSource,
}

/// How failures are read from a command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFormat {
    /// cargo's `--message-format=json` lines, plus libtest's text failure blocks.
    CargoJson,
    /// `go test -json` events.
    GoJson,
    /// `ruff check --output-format=json`.
    RuffJson,
    /// A JUnit XML report the command writes: relative to the workdir when configured,
    /// an absolute file in the temp directory when r1 chose it (removed after the run).
    Junit(PathBuf),
    /// Nothing is parsed.
    Text,
}

/// Where a plan's command came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanSource {
    /// The step's table in [`CONFIG_FILE`].
    Config,
    /// Detected from this file of the workdir (`Cargo.toml`, `package.json`, …).
    Detected(&'static str),
}

impl std::fmt::Display for PlanSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanSource::Config => write!(f, "from {CONFIG_FILE}"),
            PlanSource::Detected(file) => write!(f, "detected from {file}"),
        }
    }
}

/// Why no verify could be planned or started.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No configuration and nothing detected for the step.
    #[error(
        "no {step} command found: {CONFIG_FILE} has no [{step}] table and no Cargo.toml, \
         package.json with a \"{step}\" script, pyproject.toml, go.mod or Makefile with a \
         `{step}` target offers one; add {CONFIG_FILE} with [{step}] command = \"...\""
    )]
    NothingDetected {
        /// The step asked for.
        step: VerifyStep,
    },
    /// A configuration or manifest file is malformed.
    #[error("`{file}` is not valid: {message}")]
    Config {
        /// The file, relative to the workdir.
        file: String,
        /// What is wrong, with its line when known.
        message: String,
    },
    /// A requested package name could be read by the shell as more than a name.
    #[error(
        "invalid package name `{0}`: a package is letters, digits and `._/@:-`, not starting \
         with `-`"
    )]
    Package(String),
    /// Packages were requested but the command has no way to take them.
    #[error("the {step} command ({from}) cannot be narrowed to packages: {hint}")]
    PackagesUnsupported {
        /// The step asked for.
        step: VerifyStep,
        /// Where its command came from.
        from: PlanSource,
        /// What to do instead.
        hint: String,
    },
    /// A file needed to plan could not be read (or is one r1 protects).
    #[error("cannot read `{file}`: {message}")]
    Unreadable {
        /// The file, relative to the workdir.
        file: String,
        /// Why.
        message: String,
    },
    /// The command could not be started (the sandbox refused, `sh` is missing).
    #[error("cannot run the verify command: {0}")]
    Start(String),
}

/// The step's table of [`CONFIG_FILE`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepConfig {
    command: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    package_arg: Option<String>,
}

/// [`CONFIG_FILE`] as a whole.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    build: Option<StepConfig>,
    test: Option<StepConfig>,
    lint: Option<StepConfig>,
}

/// Decides the command for `step` in the context's workdir, narrowed to `packages`.
/// Blocking (it reads a few small files); call it off the async runtime.
pub fn plan(
    ctx: &ToolContext,
    step: VerifyStep,
    packages: &[String],
) -> Result<VerifyPlan, VerifyError> {
    for package in packages {
        check_package(package)?;
    }
    if let Some(text) = read_small(ctx, CONFIG_FILE)? {
        let config: ConfigFile = toml::from_str(&text).map_err(|e| VerifyError::Config {
            file: CONFIG_FILE.to_owned(),
            message: e.to_string().trim().to_owned(),
        })?;
        let table = match step {
            VerifyStep::Build => config.build,
            VerifyStep::Test => config.test,
            VerifyStep::Lint => config.lint,
        };
        if let Some(table) = table {
            return configured(step, table, packages);
        }
    }
    detect(ctx, step, packages)?.ok_or(VerifyError::NothingDetected { step })
}

/// The plan of a [`CONFIG_FILE`] table.
fn configured(
    step: VerifyStep,
    table: StepConfig,
    packages: &[String],
) -> Result<VerifyPlan, VerifyError> {
    let bad = |message: String| VerifyError::Config {
        file: CONFIG_FILE.to_owned(),
        message,
    };
    if table.command.trim().is_empty() {
        return Err(bad(format!("[{step}] command is empty")));
    }
    let format = match table.format.as_deref().map(str::trim) {
        None | Some("text") => OutputFormat::Text,
        Some("cargo-json") => OutputFormat::CargoJson,
        Some("go-json") => OutputFormat::GoJson,
        Some("ruff-json") => OutputFormat::RuffJson,
        Some(other) => match other.strip_prefix("junit:") {
            Some(path) => OutputFormat::Junit(report_path(path).ok_or_else(|| {
                bad(format!(
                    "[{step}] format `{other}`: the report path must be relative to the \
                     worktree and stay inside it"
                ))
            })?),
            None => {
                return Err(bad(format!(
                    "[{step}] format `{other}` is unknown; use \"cargo-json\", \"go-json\", \
                     \"ruff-json\", \"junit:<path>\" or \"text\""
                )))
            }
        },
    };
    let mut command = table.command;
    if !packages.is_empty() {
        let Some(arg) = table.package_arg.filter(|a| a.contains("{}")) else {
            return Err(VerifyError::PackagesUnsupported {
                step,
                from: PlanSource::Config,
                hint: format!("add package_arg = \"-p {{}}\" (or similar) to [{step}]"),
            });
        };
        for package in packages {
            command.push(' ');
            command.push_str(&arg.replace("{}", package));
        }
    }
    Ok(VerifyPlan {
        step,
        command,
        format,
        source: PlanSource::Config,
    })
}

/// A configured report path: relative, with no `..`.
fn report_path(path: &str) -> Option<PathBuf> {
    let path = Path::new(path.trim());
    let fine = !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    fine.then(|| path.to_path_buf())
}

/// The detected plan for `step`, from the first ecosystem that offers it.
fn detect(
    ctx: &ToolContext,
    step: VerifyStep,
    packages: &[String],
) -> Result<Option<VerifyPlan>, VerifyError> {
    let exists = |name: &str| ctx.workdir.join(name).is_file();
    let plan = |command: String, format: OutputFormat, from: &'static str| VerifyPlan {
        step,
        command,
        format,
        source: PlanSource::Detected(from),
    };

    if exists("Cargo.toml") {
        let scope = if packages.is_empty() {
            "--workspace".to_owned()
        } else {
            packages
                .iter()
                .map(|p| format!("-p {p}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let command = match step {
            VerifyStep::Build => format!("cargo build {scope} --message-format=json"),
            // Every test binary runs, so one failing crate does not hide another's.
            VerifyStep::Test => format!("cargo test {scope} --no-fail-fast --message-format=json"),
            // A lint step fails on warnings; that is what it is for.
            VerifyStep::Lint => {
                format!("cargo clippy {scope} --all-targets --message-format=json -- -D warnings")
            }
        };
        return Ok(Some(plan(command, OutputFormat::CargoJson, "Cargo.toml")));
    }

    if let Some(text) = read_small(ctx, "package.json")? {
        let manifest: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| VerifyError::Config {
                file: "package.json".to_owned(),
                message: e.to_string(),
            })?;
        let script = step.as_str();
        if manifest
            .get("scripts")
            .and_then(|s| s.get(script))
            .is_some_and(serde_json::Value::is_string)
        {
            let mut command = match step {
                VerifyStep::Test => "npm test".to_owned(),
                _ => format!("npm run {script}"),
            };
            for package in packages {
                command.push_str(&format!(" --workspace={package}"));
            }
            return Ok(Some(plan(command, OutputFormat::Text, "package.json")));
        }
    }

    if exists("pyproject.toml") {
        let paths: String = packages.iter().map(|p| format!(" {p}")).collect();
        match step {
            VerifyStep::Test => {
                let report = scratch_report_path();
                // xunit1 puts each test's file in the report.
                let command = format!(
                    "pytest -o junit_family=xunit1 --junitxml={}{paths}",
                    shell_quote(&report.to_string_lossy())
                );
                return Ok(Some(plan(
                    command,
                    OutputFormat::Junit(report),
                    "pyproject.toml",
                )));
            }
            VerifyStep::Lint => {
                let command = format!("ruff check --output-format=json{paths}");
                return Ok(Some(plan(
                    command,
                    OutputFormat::RuffJson,
                    "pyproject.toml",
                )));
            }
            VerifyStep::Build => {}
        }
    }

    if exists("go.mod") {
        let scope = if packages.is_empty() {
            "./...".to_owned()
        } else {
            packages
                .iter()
                .map(|p| go_pattern(p))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (command, format) = match step {
            VerifyStep::Build => (format!("go build {scope}"), OutputFormat::Text),
            VerifyStep::Test => (format!("go test -json {scope}"), OutputFormat::GoJson),
            VerifyStep::Lint => (format!("go vet {scope}"), OutputFormat::Text),
        };
        return Ok(Some(plan(command, format, "go.mod")));
    }

    for name in ["GNUmakefile", "makefile", "Makefile"] {
        let Some(text) = read_small(ctx, name)? else {
            continue;
        };
        if parse::make_target(&text, step.as_str()) {
            if !packages.is_empty() {
                return Err(VerifyError::PackagesUnsupported {
                    step,
                    from: PlanSource::Detected("Makefile"),
                    hint: format!(
                        "run without packages, or add {CONFIG_FILE} with a [{step}] command \
                         and package_arg"
                    ),
                });
            }
            return Ok(Some(plan(
                format!("make {}", step.as_str()),
                OutputFormat::Text,
                "Makefile",
            )));
        }
        // make reads only the first of these names that exists.
        break;
    }
    Ok(None)
}

/// Refuses a package name the shell could read as more than one word or an option.
fn check_package(name: &str) -> Result<(), VerifyError> {
    let fine = !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/@:-".contains(&b));
    if fine {
        Ok(())
    } else {
        Err(VerifyError::Package(name.to_owned()))
    }
}

/// The `go` pattern for a package directory: `./dir/...`.
fn go_pattern(package: &str) -> String {
    let dir = package.trim_start_matches("./").trim_end_matches("/...");
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() || dir == "." {
        "./...".to_owned()
    } else {
        format!("./{dir}/...")
    }
}

/// A fresh file name in the temp directory (which the sandbox lets commands write) for a
/// report r1 asks a tool to write.
fn scratch_report_path() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "r1-verify-{}-{n}-{nanos:08x}.xml",
        std::process::id()
    ))
}

/// Quotes a word for `sh`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Reads a small file of the workdir through the tools' path confinement (so a
/// symlinked manifest cannot show a protected file in an error message); `None` when it
/// does not exist.
fn read_small(ctx: &ToolContext, rel: &str) -> Result<Option<String>, VerifyError> {
    read_confined(ctx, rel, MANIFEST_LIMIT).map_err(|message| VerifyError::Unreadable {
        file: rel.to_owned(),
        message,
    })
}

/// Reads a regular file of the workdir, confined like the file tools, up to `limit`
/// bytes (a longer file is an error); `None` when it does not exist.
fn read_confined(ctx: &ToolContext, rel: &str, limit: u64) -> Result<Option<String>, String> {
    let root = canonical_root(&ctx.workdir).map_err(|e| e.to_string())?;
    let target = resolve(&root, rel, &ctx.protected).map_err(|e| e.to_string())?;
    let meta = match std::fs::metadata(&target.path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    // A directory of that name is not the file; a FIFO would block the open.
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.len() > limit {
        return Err(format!("it is larger than {limit} bytes"));
    }
    let file = File::open(&target.path).map_err(|e| e.to_string())?;
    let opened = file.metadata().map_err(|e| e.to_string())?;
    target.check_opened(&opened).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Runs the plan's command in the context's workdir and reads its failures. The
/// command's output is streamed to [`ToolContext::output`]; the whole process group is
/// killed after `timeout` or when [`ToolContext::cancel`] fires, and the result then
/// says so. Only a command that could not start at all is an error.
pub async fn run(
    ctx: &ToolContext,
    plan: &VerifyPlan,
    timeout: Duration,
) -> Result<VerifyResult, VerifyError> {
    let started_wall = SystemTime::now();
    let started = std::time::Instant::now();
    let shell = run_shell(ctx, &plan.command, timeout, KEEP_BYTES)
        .await
        .map_err(|e| VerifyError::Start(e.to_string()))?;
    let duration = started.elapsed();

    let mut failures = match &plan.format {
        OutputFormat::CargoJson => parse::cargo_json(&shell.output),
        OutputFormat::GoJson => parse::go_test_json(&shell.output),
        OutputFormat::RuffJson => parse::ruff_json(&shell.output, &ctx.workdir),
        OutputFormat::Text => Vec::new(),
        OutputFormat::Junit(report) => {
            let ctx = ctx.clone();
            let report = report.clone();
            let ours = plan.source != PlanSource::Config;
            tokio::task::spawn_blocking(move || {
                read_report(&ctx, &report, ours, started_wall)
                    .map(|xml| parse::junit(&xml))
                    .unwrap_or_default()
            })
            .await
            .unwrap_or_default()
        }
    };
    let exit_code = match shell.end {
        End::Exited => shell.status.and_then(|s| s.code()),
        _ => None,
    };
    let ok = exit_code == Some(0);
    let summary = summarize(plan.step, ok, &shell, timeout, duration, &failures);
    failures.truncate(MAX_FAILURES);
    Ok(VerifyResult {
        step: plan.step,
        ok,
        exit_code,
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        command: plan.command.clone(),
        summary,
        failures,
        session_id: String::new(),
        lane: String::new(),
    })
}

/// The JUnit report of a run. A report r1 named lives in the temp directory and is
/// removed once read; a configured one is read through the workdir's confinement, and
/// only when written since the run started, so a stale report from an earlier run is not
/// passed off as this one's.
fn read_report(
    ctx: &ToolContext,
    report: &Path,
    ours: bool,
    started: SystemTime,
) -> Option<String> {
    if ours {
        // Not followed through a symlink: the command could have planted one there.
        let meta = std::fs::symlink_metadata(report).ok()?;
        let text = if meta.is_file() && meta.len() <= REPORT_LIMIT {
            std::fs::read_to_string(report).ok()
        } else {
            None
        };
        let _ = std::fs::remove_file(report);
        return text;
    }
    let rel = report.to_str()?;
    let root = canonical_root(&ctx.workdir).ok()?;
    let target = resolve(&root, rel, &ctx.protected).ok()?;
    let modified = std::fs::metadata(&target.path).ok()?.modified().ok()?;
    // File systems with whole-second times round down; compare at that grain.
    let since = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    if since(modified) < since(started) {
        return None;
    }
    read_confined(ctx, rel, REPORT_LIMIT).ok().flatten()
}

/// The one-line summary: `test ok in 2.3 s`, `2 tests failed: a, b`, `1 error:
/// src/lib.rs:2: …`, `exit 101`, `timed out after 600 s`.
fn summarize(
    step: VerifyStep,
    ok: bool,
    shell: &ShellOutcome,
    timeout: Duration,
    duration: Duration,
    failures: &[VerifyFailure],
) -> String {
    if ok {
        return format!("{step} ok in {:.1} s", duration.as_secs_f64());
    }
    let ended = match &shell.end {
        End::Exited => match shell.status.map(|s| (s.code(), s.signal())) {
            Some((Some(code), _)) => format!("exit {code}"),
            Some((None, Some(signal))) => format!("killed by signal {signal}"),
            _ => "exit status unknown".to_owned(),
        },
        End::TimedOut => format!(
            "timed out after {} s; killed",
            timeout.as_secs_f64().round()
        ),
        End::Cancelled => "cancelled; killed".to_owned(),
        End::WaitFailed(e) => format!("lost track of the command: {e}"),
    };
    let tests: Vec<&str> = failures.iter().filter_map(|f| f.test.as_deref()).collect();
    let found = failures.len();
    let found_part = if !tests.is_empty() {
        let count = tests.len();
        let shown = tests.iter().take(3).copied().collect::<Vec<_>>().join(", ");
        let more = if count > 3 { ", …" } else { "" };
        let noun = if count == 1 { "test" } else { "tests" };
        format!("{count} {noun} failed: {shown}{more}")
    } else if let Some(first) = failures.first() {
        let noun = if found == 1 { "error" } else { "errors" };
        let at = match (&first.file, first.line) {
            (Some(file), Some(line)) => format!("{file}:{line}: "),
            (Some(file), None) => format!("{file}: "),
            _ => String::new(),
        };
        let what = first.message.lines().next().unwrap_or_default();
        let first_label = if found > 1 { "first " } else { "" };
        format!("{found} {noun}, {first_label}{at}{what}")
    } else {
        return ended;
    };
    match shell.end {
        End::Exited => found_part,
        _ => format!("{ended}; {found_part}"),
    }
}

#[cfg(test)]
mod tests;
