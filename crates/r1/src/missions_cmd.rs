//! `r1 ctl missions …` and `r1 ctl verify …`: queue and follow missions, and run a
//! project's build, test and lint commands in a worktree.

use std::collections::BTreeMap;

use clap::{Subcommand, ValueEnum};
use r1_client::{ClientError, ConnectOptions, SseReader};
use r1_proto::{
    Api, BusEvent, MissionCreateParams, MissionListParams, MissionRef, MissionSpec, MissionState,
    MissionView, VerifyParams, VerifyResult, VerifyStep,
};

use crate::output;

/// A mission verb.
#[derive(Debug, Subcommand)]
pub enum MissionsVerb {
    /// Queue a mission: PROMPT runs as a new session in its own worktree of WORKDIR
    /// when a worker is free, then the --verify steps run.
    Create {
        /// What the agent is asked to do.
        prompt: String,
        /// The repository to work in (absolute path; default: the current directory).
        #[arg(long)]
        workdir: Option<String>,
        /// A title (default: the prompt's first line).
        #[arg(long)]
        title: Option<String>,
        /// The engine (default: the daemon's default engine).
        #[arg(long)]
        engine: Option<String>,
        /// The model (default: the engine's).
        #[arg(long)]
        model: Option<String>,
        /// Work in WORKDIR itself rather than in a new git worktree.
        #[arg(long)]
        no_worktree: bool,
        /// Verify steps to run after the turn, in order (repeat or comma-separate).
        #[arg(long, value_enum, value_delimiter = ',')]
        verify: Vec<Step>,
        /// Tool policy overrides, `TOOL=allow|ask|deny` (repeatable).
        #[arg(long = "policy", value_name = "TOOL=POLICY")]
        policy: Vec<String>,
        /// The session asking for it (for `list --session`).
        #[arg(long)]
        session: Option<String>,
    },
    /// List missions, oldest first.
    List {
        /// Only the missions this session asked for or runs.
        #[arg(long)]
        session: Option<String>,
        /// Only missions in this state.
        #[arg(long, value_enum)]
        state: Option<State>,
    },
    /// Show a mission: state, session, worktree, verify results, log tail.
    Get {
        /// The mission id (`ms_…`).
        id: String,
    },
    /// Cancel a mission (idempotent).
    Cancel {
        /// The mission id (`ms_…`).
        id: String,
    },
    /// Queue a mission a daemon restart paused again.
    Resume {
        /// The mission id (`ms_…`).
        id: String,
    },
    /// Print mission events as they happen (`--json`: one JSON object per line): one
    /// mission's until it finishes, or every mission's until interrupted.
    Watch {
        /// The mission id (`ms_…`); all missions when absent.
        id: Option<String>,
    },
}

/// A verify verb.
#[derive(Debug, Subcommand)]
pub enum VerifyVerb {
    /// Build the project (`[build]` of `.r1/verify.toml`, or detected).
    Build(VerifyArgs),
    /// Run its tests (`[test]`, or detected), with failing tests parsed out.
    Test(VerifyArgs),
    /// Run its linter (`[lint]`, or detected).
    Lint(VerifyArgs),
}

/// Where a verify command runs.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The worktree (`wt_…`).
    #[arg(long, conflicts_with = "session", required_unless_present = "session")]
    worktree: Option<String>,
    /// The session (`ses_…`): its workdir.
    #[arg(long)]
    session: Option<String>,
    /// Only these packages (repeat or comma-separate).
    #[arg(long = "package", short = 'p', value_delimiter = ',')]
    packages: Vec<String>,
}

/// Verify steps, as flags spell them.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Step {
    /// Build.
    Build,
    /// Tests.
    Test,
    /// Lint.
    Lint,
}

impl From<Step> for VerifyStep {
    fn from(s: Step) -> VerifyStep {
        match s {
            Step::Build => VerifyStep::Build,
            Step::Test => VerifyStep::Test,
            Step::Lint => VerifyStep::Lint,
        }
    }
}

/// Mission states, as flags spell them.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum State {
    /// Waiting for a worker.
    Queued,
    /// Its turn runs.
    Running,
    /// Its verify steps run.
    Verifying,
    /// Paused by a restart.
    Paused,
    /// Done, verified.
    Succeeded,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl From<State> for MissionState {
    fn from(s: State) -> MissionState {
        match s {
            State::Queued => MissionState::Queued,
            State::Running => MissionState::Running,
            State::Verifying => MissionState::Verifying,
            State::Paused => MissionState::Paused,
            State::Succeeded => MissionState::Succeeded,
            State::Failed => MissionState::Failed,
            State::Cancelled => MissionState::Cancelled,
        }
    }
}

/// Runs a mission verb.
pub async fn run(opts: &ConnectOptions, verb: MissionsVerb, json: bool) -> Result<(), ClientError> {
    let client = r1_client::connect_or_spawn(opts).await?;
    match verb {
        MissionsVerb::Create {
            prompt,
            workdir,
            title,
            engine,
            model,
            no_worktree,
            verify,
            policy,
            session,
        } => {
            let workdir = match workdir {
                Some(w) => w,
                None => std::env::current_dir()
                    .map_err(|e| usage(format!("cannot read the current directory: {e}")))?
                    .display()
                    .to_string(),
            };
            let policy = parse_policy(&policy)?;
            let m = client
                .mission_create(MissionCreateParams {
                    spec: MissionSpec {
                        title,
                        prompt,
                        workdir,
                        engine,
                        model,
                        worktree: no_worktree.then_some(false),
                        verify: (!verify.is_empty())
                            .then(|| verify.into_iter().map(VerifyStep::from).collect()),
                        policy,
                    },
                    session_id: session,
                })
                .await?;
            if json {
                output::json(&m);
            } else {
                output::line(&m.id);
            }
        }
        MissionsVerb::List { session, state } => {
            let l = client
                .mission_list(MissionListParams {
                    session_id: session,
                    state: state.map(MissionState::from),
                })
                .await?;
            if json {
                output::json(&l);
            } else if l.missions.is_empty() {
                output::line("no missions");
            } else {
                l.missions.iter().for_each(show);
            }
        }
        MissionsVerb::Get { id } => {
            let m = client.mission_get(MissionRef { mission_id: id }).await?;
            if json {
                output::json(&m);
            } else {
                show_full(&m);
            }
        }
        MissionsVerb::Cancel { id } => {
            let m = client.mission_cancel(MissionRef { mission_id: id }).await?;
            if json {
                output::json(&m);
            } else {
                show(&m);
            }
        }
        MissionsVerb::Resume { id } => {
            let m = client.mission_resume(MissionRef { mission_id: id }).await?;
            if json {
                output::json(&m);
            } else {
                show(&m);
            }
        }
        MissionsVerb::Watch { id } => return watch(&client, id, json).await,
    }
    Ok(())
}

/// Follows the bus's `mission.*` events; with an id, until that mission is final.
async fn watch(
    client: &r1_client::Client,
    id: Option<String>,
    json: bool,
) -> Result<(), ClientError> {
    // Subscribe first, then read the state: nothing can happen unseen in between.
    let body = client.stream("/v1/events?since_seq=1", &[]).await?;
    if let Some(id) = &id {
        let m = client
            .mission_get(MissionRef {
                mission_id: id.clone(),
            })
            .await?;
        if m.state.is_final() {
            if json {
                output::json(&m);
            } else {
                show(&m);
            }
            return Ok(());
        }
    }
    let mut events = SseReader::new(body);
    while let Some(frame) = events.next().await {
        let frame = frame?;
        if !frame.event.starts_with("mission.") {
            continue;
        }
        let Ok(ev) = serde_json::from_str::<BusEvent>(&frame.data) else {
            continue;
        };
        let mission = ev.data["mission_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if id.as_deref().is_some_and(|w| w != mission) {
            continue;
        }
        if json {
            // One event per line (NDJSON), for scripts that read as events come.
            output::line(&serde_json::to_string(&ev).unwrap_or_default());
        } else {
            let detail = describe(&ev.kind, &ev.data);
            output::line(&format!("{} {mission} {:<17} {detail}", ev.at, ev.kind));
        }
        if id.is_some() && ev.kind == "mission.finished" {
            return Ok(());
        }
    }
    Err(ClientError::Unreachable(
        "the daemon closed the event stream".into(),
    ))
}

fn describe(kind: &str, data: &serde_json::Value) -> String {
    let s = |k: &str| data[k].as_str().unwrap_or_default().to_string();
    match kind {
        "mission.queued" => s("title"),
        "mission.started" => s("session_id"),
        "mission.verified" => format!(
            "{} {}: {}",
            s("step"),
            if data["ok"].as_bool() == Some(true) {
                "ok"
            } else {
                "FAILED"
            },
            s("summary")
        ),
        "mission.paused" => s("reason"),
        "mission.finished" => format!("{} {}", s("state"), s("reason")),
        _ => String::new(),
    }
}

/// Runs a verify verb; `false` when the command failed.
pub async fn run_verify(
    opts: &ConnectOptions,
    verb: VerifyVerb,
    json: bool,
) -> Result<bool, ClientError> {
    let client = r1_client::connect_or_spawn(opts).await?;
    let (args, call): (VerifyArgs, VerifyStep) = match verb {
        VerifyVerb::Build(a) => (a, VerifyStep::Build),
        VerifyVerb::Test(a) => (a, VerifyStep::Test),
        VerifyVerb::Lint(a) => (a, VerifyStep::Lint),
    };
    let params = VerifyParams {
        worktree_id: args.worktree,
        session_id: args.session,
        packages: args.packages,
    };
    let r = match call {
        VerifyStep::Build => client.verify_build(params).await?,
        VerifyStep::Test => client.verify_test(params).await?,
        VerifyStep::Lint => client.verify_lint(params).await?,
    };
    if json {
        output::json(&r);
    } else {
        show_verify(&r);
    }
    Ok(r.ok)
}

fn usage(message: String) -> ClientError {
    ClientError::Api(r1_proto::ApiError::validation(message))
}

fn parse_policy(items: &[String]) -> Result<Option<BTreeMap<String, String>>, ClientError> {
    if items.is_empty() {
        return Ok(None);
    }
    let mut map = BTreeMap::new();
    for item in items {
        let (tool, policy) = item
            .split_once('=')
            .ok_or_else(|| usage(format!("--policy takes TOOL=allow|ask|deny, not {item:?}")))?;
        map.insert(tool.to_string(), policy.to_string());
    }
    Ok(Some(map))
}

fn show(m: &MissionView) {
    output::line(&format!(
        "{}  {:<9} {}  {}{}",
        m.id,
        m.state.as_str(),
        m.session_id.as_deref().unwrap_or("-"),
        m.title,
        m.reason
            .as_deref()
            .map(|r| format!("  ({r})"))
            .unwrap_or_default()
    ));
}

fn show_full(m: &MissionView) {
    show(m);
    if let Some(w) = &m.worktree_id {
        output::line(&format!("  worktree  {w}"));
    }
    output::line(&format!("  created   {}", m.timings.created_at));
    if let Some(t) = &m.timings.started_at {
        output::line(&format!("  started   {t}"));
    }
    if let Some(t) = &m.timings.finished_at {
        output::line(&format!("  finished  {t}"));
    }
    output::line(&format!("  tokens    {}", m.tokens_used));
    for v in &m.verify {
        output::line(&format!(
            "  verify {:<5} {} {}",
            v.step.as_str(),
            if v.ok { "ok    " } else { "FAILED" },
            v.summary
        ));
    }
    if !m.log_tail.is_empty() {
        output::line("  log:");
        for l in &m.log_tail {
            output::line(&format!("    {l}"));
        }
    }
}

fn show_verify(r: &VerifyResult) {
    output::line(&format!(
        "{} {} ({} ms): {}",
        r.step.as_str(),
        if r.ok { "ok" } else { "FAILED" },
        r.duration_ms,
        r.summary
    ));
    output::line(&format!("  command: {}", r.command));
    for f in &r.failures {
        let place = match (&f.file, f.line) {
            (Some(file), Some(line)) => format!("{file}:{line} "),
            (Some(file), None) => format!("{file} "),
            _ => String::new(),
        };
        let test = f
            .test
            .as_deref()
            .map(|t| format!("{t}: "))
            .unwrap_or_default();
        output::line(&format!(
            "  {place}{test}{}",
            f.message.lines().next().unwrap_or_default()
        ));
    }
}
