//! Running scenarios: one daemon per feature file, the background's and scenario's
//! steps in order against the catalog, and for a failure its context on disk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use r1_client::ClientError;
use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::feature::{Feature, Scenario, Step};
use crate::steps::{Action, FileCheck};
use crate::vars::{self, Vars};

/// How long `I approve the pending approval` waits for one to be pending.
const APPROVAL_WAIT: Duration = Duration::from_secs(10);

/// Time between two tries of a `within` check that has no long-poll of its own.
const POLL: Duration = Duration::from_millis(50);

/// How many lines of the daemon's log a failure keeps.
const LOG_TAIL_LINES: usize = 300;

/// How a scenario ended.
pub struct Outcome {
    /// The scenario's name.
    pub name: String,
    /// How long it ran.
    pub elapsed: Duration,
    /// `None` when it passed; else the failing step and the error.
    pub failure: Option<Failure>,
}

/// Why a scenario failed.
pub struct Failure {
    /// The step (`None`: the scenario's time ran out between steps, or the daemon
    /// did not start).
    pub step: Option<String>,
    /// The error, with its causes.
    pub error: String,
    /// Where its context was written.
    pub context_dir: PathBuf,
}

/// One call to the daemon and its answer, kept for the failure context.
#[derive(Clone)]
struct CallRecord {
    method: String,
    params: Value,
    answer: std::result::Result<Value, Value>,
}

impl CallRecord {
    fn to_json(&self) -> Value {
        match &self.answer {
            Ok(v) => json!({"method": self.method, "params": self.params, "result": v}),
            Err(e) => json!({"method": self.method, "params": self.params, "error": e}),
        }
    }
}

/// The state of one scenario run.
struct World<'d> {
    daemon: &'d mut Daemon,
    vars: Vars,
    last_call: Option<CallRecord>,
    /// Session ids seen in calls, whose journals a failure saves.
    sessions: BTreeSet<String>,
    /// How many steps have passed.
    done: usize,
}

/// What the run is configured with.
pub struct Settings {
    /// Where failure context goes (`<dir>/<scenario-slug>/`).
    pub failures_dir: PathBuf,
    /// The most one scenario may take, all steps included.
    pub scenario_timeout: Duration,
}

/// Runs `scenarios` (a selection of `feature`'s) on a daemon of their own, started
/// from `bin`.
pub async fn run_feature(
    bin: &Path,
    feature: &Feature,
    scenarios: &[&Scenario],
    settings: &Settings,
) -> Vec<Outcome> {
    let mut daemon = match Daemon::start(bin).await {
        Ok(d) => d,
        Err(e) => {
            // Every selected scenario fails with the reason, each with its context.
            return scenarios
                .iter()
                .map(|s| {
                    let dir = settings.failures_dir.join(&s.slug);
                    let error = format!("{e:#}");
                    let _ = std::fs::remove_dir_all(&dir);
                    let _ = std::fs::create_dir_all(&dir).and_then(|_| {
                        std::fs::write(
                            dir.join("failure.txt"),
                            format!(
                                "feature: {}\nscenario: {}\nerror: the daemon did not start: {error}\n",
                                feature.path.display(),
                                s.name
                            ),
                        )
                    });
                    Outcome {
                        name: s.name.clone(),
                        elapsed: Duration::ZERO,
                        failure: Some(Failure {
                            step: None,
                            error: format!("the daemon did not start: {error}"),
                            context_dir: dir,
                        }),
                    }
                })
                .collect();
        }
    };
    let mut out = Vec::new();
    for s in scenarios {
        out.push(run_scenario(&mut daemon, feature, s, settings).await);
    }
    daemon.stop().await;
    out
}

async fn run_scenario(
    daemon: &mut Daemon,
    feature: &Feature,
    scenario: &Scenario,
    settings: &Settings,
) -> Outcome {
    let started = Instant::now();
    let dir = settings.failures_dir.join(&scenario.slug);
    // Context from an earlier run of this scenario would mislead once it passes.
    let _ = std::fs::remove_dir_all(&dir);
    let steps: Vec<&Step> = feature
        .background
        .iter()
        .chain(scenario.steps.iter())
        .collect();
    let mut world = World {
        daemon,
        vars: Vars::new(),
        last_call: None,
        sessions: BTreeSet::new(),
        done: 0,
    };
    let mut failed_at: Option<usize> = None;
    let run = async {
        for (i, step) in steps.iter().enumerate() {
            let next = steps.get(i + 1).map(|s| &s.action);
            if let Err(e) = world.step(step, next).await {
                failed_at = Some(i);
                return Err(e);
            }
            world.done += 1;
        }
        Ok(())
    };
    let result = match tokio::time::timeout(settings.scenario_timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(anyhow!(
            "the scenario ran out of time ({}s)",
            settings.scenario_timeout.as_secs()
        )),
    };
    let failure = match result {
        Ok(()) => None,
        Err(e) => {
            // A timeout cut the step that was running: it is the one after the last done.
            let at = failed_at.unwrap_or(world.done);
            let step = steps.get(at).map(|s| s.to_string());
            let error = format!("{e:#}");
            if let Err(w) = world
                .write_context(&dir, feature, scenario, &steps, at, &error)
                .await
            {
                eprintln!(
                    "cannot write the failure context to {}: {w:#}",
                    dir.display()
                );
            }
            Some(Failure {
                step,
                error,
                context_dir: dir,
            })
        }
    };
    Outcome {
        name: scenario.name.clone(),
        elapsed: started.elapsed(),
        failure,
    }
}

impl World<'_> {
    /// Runs one step; `next` is the following step's action (a call may fail when the
    /// next step expects it to).
    async fn step(&mut self, step: &Step, next: Option<&Action>) -> Result<()> {
        match &step.action {
            Action::TempWorkdir => {
                let p = self.daemon.workdir("workdir")?;
                self.bind("workdir", json!(p));
            }
            Action::TempGitRepo => {
                let p = self.daemon.workdir("repo")?;
                git_repo(&p)?;
                self.bind("repo", json!(p));
            }
            Action::StartSession {
                bind,
                workdir,
                extra,
            } => {
                let wd = match workdir {
                    Some(w) => vars::interpolate_str(w, &self.vars)?,
                    None => self
                        .daemon
                        .workdir("workdir")?
                        .to_string_lossy()
                        .to_string(),
                };
                // File steps are relative to the session's workdir.
                self.bind("workdir", json!(wd));
                let mut params = json!({ "workdir": wd });
                if let Some(Value::Object(extra)) = extra {
                    let extra = vars::substitute(&Value::Object(extra.clone()), &self.vars)?;
                    if let (Some(p), Value::Object(e)) = (params.as_object_mut(), extra) {
                        p.extend(e);
                    }
                }
                let view = self.call("session.start", params).await?;
                let id = view["id"].clone();
                if !id.is_string() {
                    bail!(
                        "session.start answered without an id: {}",
                        vars::short(&view)
                    );
                }
                self.bind(bind, id);
                self.bind("result", view);
            }
            Action::Call { op, params, bind } => {
                let params = self.params(params.as_ref())?;
                let expect_failure = matches!(next, Some(Action::CallFails { .. }));
                match self.call(op.method, params).await {
                    Ok(v) => {
                        if let Some(b) = bind {
                            self.bind(b, v.clone());
                        }
                        self.bind("result", v);
                    }
                    // The next step checks the error, from `last_call`.
                    Err(_) if expect_failure => {}
                    Err(e) => return Err(e),
                }
            }
            Action::Send { text, session } => {
                let id = self.session_id(session)?;
                let text = vars::interpolate_str(text, &self.vars)?;
                let expect_failure = matches!(next, Some(Action::CallFails { .. }));
                match self
                    .call("session.send", json!({"session_id": id, "text": text}))
                    .await
                {
                    Ok(v) => self.bind("result", v),
                    Err(_) if expect_failure => {}
                    Err(e) => return Err(e),
                }
            }
            Action::Decide { decision, session } => {
                let id = self.session_id(session)?;
                let approval = self.pending_approval(&id).await?;
                let v = self
                    .call(
                        "session.approve",
                        json!({"session_id": id, "approval_id": approval, "decision": decision}),
                    )
                    .await?;
                self.bind("approval", json!(approval));
                self.bind("result", v);
            }
            Action::CallFails { code, message } => {
                let Some(last) = &self.last_call else {
                    bail!("no call before this step");
                };
                match &last.answer {
                    Ok(v) => bail!(
                        "{} succeeded ({}), but it should fail with {code:?}",
                        last.method,
                        vars::short(v)
                    ),
                    Err(e) => {
                        if e["error_code"] != code.as_str() {
                            bail!(
                                "{} failed with {}, not {code:?}",
                                last.method,
                                vars::short(e)
                            );
                        }
                        if let Some(m) = message {
                            let m = vars::interpolate_str(m, &self.vars)?;
                            let got = e["error_message"].as_str().unwrap_or_default();
                            if !got.contains(&m) {
                                bail!("the error message {got:?} does not contain {m:?}");
                            }
                        }
                    }
                }
            }
            Action::Matches { var, expected } => {
                let actual = vars::lookup(&self.vars, var)?;
                let expected = vars::substitute(expected, &self.vars)?;
                vars::subset(&expected, &actual).with_context(|| {
                    format!("`${var}` does not match: it is {}", vars::short(&actual))
                })?;
            }
            Action::Journal {
                within,
                session,
                kind,
                data,
                negate,
            } => {
                let id = self.session_id(session)?;
                let data = match data {
                    Some(d) => Some(vars::substitute(d, &self.vars)?),
                    None => None,
                };
                self.journal_check(&id, kind, data.as_ref(), *negate, *within)
                    .await?;
            }
            Action::Returns {
                within,
                op,
                params,
                expected,
            } => {
                let params = self.params(params.as_ref())?;
                let expected = vars::substitute(expected, &self.vars)?;
                let deadline = Instant::now() + within.unwrap_or_default();
                // Until the deadline an error answer is one more try: what is awaited
                // may not exist yet.
                loop {
                    let m = match self.call(op.method, params.clone()).await {
                        Ok(got) => {
                            let m = vars::subset(&expected, &got).with_context(|| {
                                format!("{} returned {}", op.method, vars::short(&got))
                            });
                            self.bind("result", got);
                            m
                        }
                        Err(e) => Err(e),
                    };
                    match m {
                        Ok(()) => break,
                        Err(e) if Instant::now() >= deadline => return Err(e),
                        Err(_) => tokio::time::sleep(POLL).await,
                    }
                }
            }
            Action::File {
                within,
                path,
                check,
            } => {
                let path = vars::interpolate_str(path, &self.vars)?;
                let path = match Path::new(&path) {
                    p if p.is_absolute() => p.to_path_buf(),
                    p => PathBuf::from(vars::interpolate_str("$workdir", &self.vars)?).join(p),
                };
                let deadline = Instant::now() + within.unwrap_or_default();
                loop {
                    let held = match check {
                        FileCheck::Exists => path.exists(),
                        FileCheck::Absent => !path.exists(),
                        FileCheck::Contains(t) => {
                            let t = vars::interpolate_str(t, &self.vars)?;
                            std::fs::read_to_string(&path).is_ok_and(|s| s.contains(&t))
                        }
                    };
                    if held {
                        break;
                    }
                    if Instant::now() >= deadline {
                        let what = match check {
                            FileCheck::Exists => "does not exist".to_string(),
                            FileCheck::Absent => "exists".to_string(),
                            FileCheck::Contains(t) => format!(
                                "does not contain {t:?} (it holds {:?})",
                                std::fs::read_to_string(&path).unwrap_or_default()
                            ),
                        };
                        bail!("{} {what}", path.display());
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
            Action::SessionIs {
                within,
                session,
                state,
            } => {
                let id = self.session_id(session)?;
                let deadline = Instant::now() + within.unwrap_or_default();
                loop {
                    let v = self.call("session.get", json!({"session_id": id})).await?;
                    if v["state"] == state.as_str() {
                        break;
                    }
                    if Instant::now() >= deadline {
                        bail!("the session is {}, not {state:?}", v["state"]);
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
        Ok(())
    }

    fn bind(&mut self, name: &str, v: Value) {
        self.vars.insert(name.to_string(), v);
    }

    fn params(&self, params: Option<&Value>) -> Result<Value> {
        match params {
            Some(p) => vars::substitute(p, &self.vars),
            None => Ok(json!({})),
        }
    }

    fn session_id(&self, var: &str) -> Result<String> {
        match vars::lookup(&self.vars, var)? {
            Value::String(s) => Ok(s),
            v => bail!("`${var}` is {}, not a session id", vars::short(&v)),
        }
    }

    /// Calls `method` and records the call; an error answer is an error naming the
    /// method, its code and message.
    async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let answer = match self.daemon.client.call_method(method, params.clone()).await {
            Ok(v) => Ok(v),
            Err(ClientError::Api(e)) => Err(json!({
                "error_code": e.code.as_str(),
                "error_message": e.message,
            })),
            Err(e) => Err(json!({"error_code": "client", "error_message": e.to_string()})),
        };
        collect_sessions(&params, &mut self.sessions);
        if let Ok(v) = &answer {
            collect_sessions(v, &mut self.sessions);
        }
        self.last_call = Some(CallRecord {
            method: method.to_string(),
            params,
            answer: answer.clone(),
        });
        answer.map_err(|e| {
            anyhow!(
                "{method} failed: {}: {}",
                e["error_code"].as_str().unwrap_or_default(),
                e["error_message"].as_str().unwrap_or_default()
            )
        })
    }

    /// Waits for the first pending approval of session `id`.
    async fn pending_approval(&mut self, id: &str) -> Result<String> {
        let deadline = Instant::now() + APPROVAL_WAIT;
        loop {
            let v = self.call("session.get", json!({"session_id": id})).await?;
            if let Some(a) = v["pending_approvals"][0].as_str() {
                return Ok(a.to_string());
            }
            if Instant::now() >= deadline {
                bail!(
                    "no approval was pending within {}s (the session is {})",
                    APPROVAL_WAIT.as_secs(),
                    v["state"]
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Checks the journal of `id` for a `kind` record whose `data` has `data`; with
    /// `within`, follows the journal with `session.tail` until one comes or the time
    /// is up.
    async fn journal_check(
        &mut self,
        id: &str,
        kind: &str,
        data: Option<&Value>,
        negate: bool,
        within: Option<Duration>,
    ) -> Result<()> {
        let deadline = Instant::now() + within.unwrap_or_default();
        let mut records: Vec<Value> = Vec::new();
        let mut next = 1u64;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // Long-poll only once everything already written has been read.
            let (method, wait) = if records.is_empty() && next == 1 || remaining.is_zero() {
                ("session.journal", None)
            } else {
                (
                    "session.tail",
                    Some(remaining.as_millis().min(5_000) as u64),
                )
            };
            let mut params = json!({"session_id": id, "since_seq": next, "limit": 10_000});
            if let Some(w) = wait {
                params["wait_ms"] = json!(w);
            }
            let page = self.call(method, params).await?;
            let fresh = page["records"].as_array().cloned().unwrap_or_default();
            let n = fresh.len();
            records.extend(fresh);
            next = page["next_seq"].as_u64().unwrap_or(next);
            let found = records.iter().find(|r| {
                r["kind"] == kind && data.is_none_or(|d| vars::subset(d, &r["data"]).is_ok())
            });
            if let Some(r) = found {
                if negate {
                    bail!("the journal has one: {}", vars::short(r));
                }
                self.bind("record", r.clone());
                return Ok(());
            }
            // A full page means more is already written: read on before deciding.
            if n == 10_000 {
                continue;
            }
            if negate {
                return Ok(());
            }
            if Instant::now() >= deadline {
                // The newest few of that kind say most about what came instead.
                let same_kind: Vec<String> = records
                    .iter()
                    .filter(|r| r["kind"] == kind)
                    .map(|r| format!("  seq {}: {}", r["seq"], vars::short(&r["data"])))
                    .collect();
                let newest = same_kind[same_kind.len().saturating_sub(3)..].join("\n");
                bail!(
                    "no {kind:?} record{} in the journal of {id} ({} records, {} of that kind{})",
                    data.map(|d| format!(" with {}", vars::short(d)))
                        .unwrap_or_default(),
                    records.len(),
                    same_kind.len(),
                    if newest.is_empty() {
                        String::new()
                    } else {
                        format!("; the newest:\n{newest}")
                    }
                );
            }
        }
    }

    /// Writes what a failure needs to be understood into `dir`.
    async fn write_context(
        &mut self,
        dir: &Path,
        feature: &Feature,
        scenario: &Scenario,
        steps: &[&Step],
        failed: usize,
        error: &str,
    ) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
        let mut text = format!(
            "feature: {} ({})\nscenario: {} (line {})\n",
            feature.title,
            feature.path.display(),
            scenario.name,
            scenario.line
        );
        match steps.get(failed) {
            Some(s) => text.push_str(&format!("failed step: {s}\n")),
            None => text.push_str("failed step: none (the scenario's time ran out)\n"),
        }
        text.push_str(&format!("error: {error}\n\nsteps:\n"));
        for (i, s) in steps.iter().enumerate() {
            let mark = match i.cmp(&failed) {
                std::cmp::Ordering::Less => "ok  ",
                std::cmp::Ordering::Equal => "FAIL",
                std::cmp::Ordering::Greater => "skip",
            };
            text.push_str(&format!("  {mark} {s}\n"));
        }
        text.push_str(&format!(
            "\nvariables:\n{}\n",
            serde_json::to_string_pretty(&self.vars).unwrap_or_default()
        ));
        std::fs::write(dir.join("failure.txt"), text)?;
        let last = self
            .last_call
            .as_ref()
            .map_or(Value::Null, CallRecord::to_json);
        std::fs::write(
            dir.join("last-call.json"),
            serde_json::to_string_pretty(&last).unwrap_or_default() + "\n",
        )?;
        // Reading the journals is a call too; the one that failed stays recorded.
        let sessions: Vec<String> = self.sessions.iter().cloned().collect();
        for id in sessions {
            let mut lines = String::new();
            let mut next = 1u64;
            loop {
                let page = self
                    .daemon
                    .client
                    .call_method(
                        "session.journal",
                        json!({"session_id": id, "since_seq": next, "limit": 10_000}),
                    )
                    .await;
                let Ok(page) = page else {
                    lines.push_str(&format!("# the journal could not be read: {page:?}\n"));
                    break;
                };
                let records = page["records"].as_array().cloned().unwrap_or_default();
                for r in &records {
                    lines.push_str(&r.to_string());
                    lines.push('\n');
                }
                match page["next_seq"].as_u64() {
                    Some(n) if records.len() == 10_000 && n > next => next = n,
                    _ => break,
                }
            }
            std::fs::write(dir.join(format!("journal-{id}.ndjson")), lines)?;
        }
        std::fs::write(dir.join("daemon.log"), self.daemon.log_tail(LOG_TAIL_LINES))?;
        Ok(())
    }
}

/// Adds every session id (`ses_…`) in `v` to `out`.
fn collect_sessions(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s)
            if s.starts_with("ses_")
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|x| collect_sessions(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_sessions(x, out)),
        _ => {}
    }
}

/// Makes `dir` a git repository on `main` with one commit (a README).
fn git_repo(dir: &Path) -> Result<()> {
    std::fs::write(dir.join("README.md"), "one\ntwo\nthree\n")?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["config", "user.name", "r1 agent features"],
        &["config", "user.email", "agent-features@r1.invalid"],
        &["add", "README.md"],
        &["commit", "-q", "-m", "first"],
    ] {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .context("cannot run git (is it installed?)")?;
        if !out.status.success() {
            bail!(
                "git {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}
