//! r1's developer tasks, run as `cargo xtask <task>` (the alias is in
//! `.cargo/config.toml`).
//!
//! `cargo xtask agent-features [PATH | NAME]…` runs the agent feature files
//! (`tests/agent/**/*.agent.feature.md`, grammar in `tests/agent/README.md`): a fresh
//! daemon per file on a temp `R1_HOME`, every scenario's steps against the catalog,
//! a pass/fail line per scenario, and for each failure its context in
//! `.agent-failures/<scenario-slug>/`. It exits 0 when every scenario passed, 1 when
//! one failed, 2 when the files could not be read or nothing was selected.

mod daemon;
mod feature;
mod runner;
mod steps;
mod vars;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::feature::{Feature, Scenario};

#[derive(Parser)]
#[command(name = "xtask", about = "r1's developer tasks")]
enum Cli {
    /// Run the agent feature files against a fresh r1 daemon per file.
    AgentFeatures(AgentFeatures),
}

#[derive(clap::Args)]
struct AgentFeatures {
    /// Feature files or directories to run (default: tests/agent). An argument that
    /// is not an existing path selects the scenarios whose name contains it (any
    /// case).
    targets: Vec<String>,
    /// Where failure context goes, one directory per failing scenario.
    #[arg(long, env = "R1_AGENT_FAILURES", value_name = "DIR")]
    failures_dir: Option<PathBuf>,
    /// The r1 binary to test (default: target/debug/r1 of this workspace, built with
    /// cargo when missing).
    #[arg(long, env = "R1_BIN", value_name = "PATH")]
    r1_bin: Option<PathBuf>,
    /// Build r1 with cargo first, even when the binary exists.
    #[arg(long)]
    build: bool,
    /// The most one scenario may take, in seconds.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    scenario_timeout: u64,
    /// Only read the files and list the selected scenarios.
    #[arg(long)]
    list: bool,
}

/// The workspace root: xtask lives at `<root>/xtask`.
fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn out(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn main() {
    let code = match Cli::parse() {
        Cli::AgentFeatures(args) => match agent_features(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("agent-features: {e:#}");
                2
            }
        },
    };
    std::process::exit(code);
}

fn agent_features(args: AgentFeatures) -> Result<i32> {
    let root = root();
    let (mut paths, mut names) = (Vec::new(), Vec::new());
    for t in &args.targets {
        if Path::new(t).exists() {
            paths.push(PathBuf::from(t));
        } else {
            names.push(t.to_lowercase());
        }
    }
    if paths.is_empty() {
        paths.push(root.join("tests/agent"));
    }
    let mut files = Vec::new();
    for p in &paths {
        collect(p, &mut files)?;
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        bail!("no *.agent.feature.md file under {}", show(&paths));
    }

    let mut features = Vec::new();
    let mut errors = Vec::new();
    for f in &files {
        match feature::load(f) {
            Ok(feat) => features.push(feat),
            Err(e) => errors.extend(e),
        }
    }
    // Failure context is kept per scenario slug, so slugs must be unique in a run.
    let mut seen = std::collections::BTreeMap::new();
    for f in &features {
        for s in &f.scenarios {
            if let Some(other) = seen.insert(s.slug.clone(), f.path.clone()) {
                errors.push(format!(
                    "{}:{}: scenario {:?} has the same directory name ({}) as one in {}",
                    f.path.display(),
                    s.line,
                    s.name,
                    s.slug,
                    other.display()
                ));
            }
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        bail!("{} problem(s) in the feature files", errors.len());
    }

    let selected: Vec<(&Feature, Vec<&Scenario>)> = features
        .iter()
        .map(|f| {
            let chosen = f
                .scenarios
                .iter()
                .filter(|s| {
                    names.is_empty() || names.iter().any(|n| s.name.to_lowercase().contains(n))
                })
                .collect::<Vec<_>>();
            (f, chosen)
        })
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let total: usize = selected.iter().map(|(_, s)| s.len()).sum();
    if total == 0 {
        bail!("no scenario's name contains {}", names.join(" or "));
    }
    if args.list {
        for (f, scenarios) in &selected {
            out(&format!("{} — Feature: {}", rel(&f.path), f.title));
            for s in scenarios {
                out(&format!("  {}  ({})", s.name, s.slug));
            }
        }
        return Ok(0);
    }

    let bin = r1_binary(&root, args.r1_bin.as_deref(), args.build)?;
    let settings = runner::Settings {
        failures_dir: args
            .failures_dir
            .clone()
            .unwrap_or_else(|| root.join(".agent-failures")),
        scenario_timeout: Duration::from_secs(args.scenario_timeout),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (mut passed, mut failed) = (0usize, Vec::new());
    for (f, scenarios) in &selected {
        out(&format!("{} — Feature: {}", rel(&f.path), f.title));
        // Ctrl+C drops the run, and with it the daemon (killed on drop), so no
        // daemon outlives the runner.
        let outcomes = rt.block_on(async {
            tokio::select! {
                o = runner::run_feature(&bin, f, scenarios, &settings) => Some(o),
                _ = tokio::signal::ctrl_c() => None,
            }
        });
        let Some(outcomes) = outcomes else {
            eprintln!("agent-features: interrupted");
            return Ok(130);
        };
        for o in outcomes {
            let secs = o.elapsed.as_secs_f64();
            match &o.failure {
                None => {
                    passed += 1;
                    out(&format!("  ok    {} ({secs:.1}s)", o.name));
                }
                Some(fail) => {
                    out(&format!("  FAIL  {} ({secs:.1}s)", o.name));
                    if let Some(step) = &fail.step {
                        out(&format!("        at {step}"));
                    }
                    for l in fail.error.lines() {
                        out(&format!("        {l}"));
                    }
                    out(&format!("        context: {}", rel(&fail.context_dir)));
                    failed.push(o.name.clone());
                }
            }
        }
    }
    out(&format!(
        "\nagent features: {passed} passed, {} failed ({total} scenarios in {} files)",
        failed.len(),
        selected.len()
    ));
    for name in &failed {
        out(&format!("  failed: {name}"));
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

/// Adds the feature files at `p` (a file, or every `*.agent.feature.md` under a
/// directory) to `out`.
fn collect(p: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if p.is_file() {
        out.push(p.to_path_buf());
        return Ok(());
    }
    let entries = std::fs::read_dir(p).with_context(|| format!("cannot read {}", p.display()))?;
    for e in entries {
        let path = e?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".agent.feature.md"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// The r1 binary: `explicit`, else `target/debug/r1` (under `CARGO_TARGET_DIR` when
/// set), built with cargo when it is missing or `build` asks.
fn r1_binary(root: &Path, explicit: Option<&Path>, build: bool) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!(
                "R1_BIN / --r1-bin names {}, which is not a file",
                p.display()
            );
        }
        return Ok(p.to_path_buf());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug/r1");
    if build || !bin.is_file() {
        eprintln!("agent-features: building r1 (cargo build --locked -p r1)");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--locked", "-p", "r1"])
            .current_dir(root)
            .status()
            .context("cannot run cargo; build r1 with `cargo build -p r1` or set R1_BIN")?;
        if !status.success() || !bin.is_file() {
            bail!(
                "building r1 failed; build it with `cargo build -p r1` or point R1_BIN at a binary"
            );
        }
    }
    Ok(bin)
}

/// `p` relative to the current directory when it is under it.
fn rel(p: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    p.strip_prefix(&cwd).unwrap_or(p).display().to_string()
}

fn show(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
