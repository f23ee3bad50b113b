//! `r1 ctl`: one-shot commands against the daemon, starting it when needed.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use r1_client::{ClientError, ConnectOptions};
use r1_proto::{Api, EmptyParams, RestartParams, ShutdownParams};

use crate::output;

/// Control the r1 daemon. Every verb starts the daemon when it is not running
/// (except `shutdown`), and talks to it over the unix socket unless `--tcp` is given.
///
/// Exit codes: 0 ok, 1 the daemon refused or failed, 2 usage, 3 the daemon speaks
/// another protocol, 4 no daemon could be reached or started, 5 an untrusted state
/// file or port.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Print results as JSON, for scripts.
    #[arg(long, global = true)]
    json: bool,
    /// Talk to the daemon over loopback TCP with the token instead of the unix socket.
    #[arg(long, global = true)]
    tcp: bool,
    /// Fail instead of starting a daemon when none is running.
    #[arg(long, global = true)]
    no_spawn: bool,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Print the daemon's registration (daemon.json); the token is never printed.
    /// `info` is another name for it.
    #[command(visible_alias = "info")]
    Discover,
    /// Ask the daemon how it is.
    Health,
    /// The daemon at a glance: version, uptime, pid, listeners, sandbox, sessions and
    /// missions by state, subscribers, hooks run, last error.
    Status,
    /// Print the daemon's log lines (read through its API, so this works over an
    /// SSH-forwarded socket too).
    Logs(crate::ops_cmd::LogsArgs),
    /// Stop the daemon gracefully and wait until it has exited.
    Shutdown {
        /// Seconds in-flight requests get to finish.
        #[arg(long, default_value_t = 5)]
        grace: u64,
    },
    /// Re-read daemon.toml and apply it now, without dropping sessions or
    /// connections (same as SIGHUP). An invalid file changes nothing; the error names
    /// the key and the line. Keys that need a restart are listed, not applied.
    Reload,
    /// Restart onto the r1 binary now on disk (after an upgrade or a rebuild): the
    /// daemon pauses sessions with work in flight (reason `upgrade`), the new binary
    /// takes the same port and socket and reloads every session, and followers
    /// reconnect. If the new binary does not start and answer in time, the old daemon
    /// comes back and this says why (exit 1).
    Restart {
        /// Seconds the new daemon has to register and answer (1 to 20).
        #[arg(long, default_value_t = 15)]
        timeout: u64,
    },
    /// Replace the token now: the old one is refused at once, no restart needed.
    RotateToken,
    /// List the engines sessions can use, and why each is (not) available.
    Engines,
    /// Search every session's messages, tool calls and output, and approval requests.
    /// QUERY is SQLite FTS5 syntax: words (all must match), "a phrase", prefix*,
    /// AND, OR, NOT, parentheses. Matches are shown between [ and ].
    Search(SearchArgs),
    /// Sessions: list, get, start, send, follow, cancel, pause, resume, kill, approve, deny, lanes.
    #[command(subcommand)]
    Sessions(crate::sessions_cmd::SessionsVerb),
    /// Session worktrees: list, diff, merge, clean.
    #[command(subcommand)]
    Worktrees(crate::worktrees_cmd::WorktreesVerb),
    /// Missions: create, list, get, cancel, resume, watch.
    #[command(subcommand)]
    Missions(crate::missions_cmd::MissionsVerb),
    /// Run the project's build, test or lint command in a worktree (exit 1 when it
    /// fails).
    #[command(subcommand)]
    Verify(crate::missions_cmd::VerifyVerb),
    /// Hooks in `$R1_HOME/hooks`: list (trusted or refused, and why), test one.
    #[command(subcommand)]
    Hooks(crate::ops_cmd::HooksVerb),
    /// A session's cortex: its notes board (read, publish) and the lobes watching it
    /// (list, pause, resume).
    #[command(subcommand)]
    Cortex(crate::ops_cmd::CortexVerb),
}

#[derive(Debug, Args)]
struct SearchArgs {
    /// What to look for.
    #[arg(required_unless_present = "reindex")]
    query: Option<String>,
    /// Only this session's records.
    #[arg(long)]
    session: Option<String>,
    /// Only these kinds: message, tool, approval (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_parser = search_kind)]
    kind: Vec<r1_proto::SearchKind>,
    /// Only records written at or after this RFC 3339 time or date.
    #[arg(long)]
    since: Option<String>,
    /// At most this many hits.
    #[arg(long, default_value_t = 20)]
    limit: u64,
    /// Rebuild the index from the session journals first.
    #[arg(long)]
    reindex: bool,
}

/// A `--kind` value, spelled as on the wire.
fn search_kind(s: &str) -> Result<r1_proto::SearchKind, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("{s:?} is not one of message, tool, approval"))
}

/// Why a `ctl` verb did not succeed.
enum CtlError {
    /// The daemon could not be reached or refused.
    Client(ClientError),
    /// It ran and reported failure (a failing verify): exit with this code.
    Exit(i32),
}

impl From<ClientError> for CtlError {
    fn from(e: ClientError) -> CtlError {
        CtlError::Client(e)
    }
}

impl From<r1_proto::ApiError> for CtlError {
    fn from(e: r1_proto::ApiError) -> CtlError {
        CtlError::Client(e.into())
    }
}

impl CtlArgs {
    /// `r1 ctl status`, which the deprecated `r1 daemon status` runs.
    pub fn status(json: bool) -> CtlArgs {
        CtlArgs::of(Verb::Status, json)
    }

    /// `r1 ctl shutdown --grace GRACE`, which the deprecated `r1 daemon stop` runs.
    pub fn shutdown(grace: u64, json: bool) -> CtlArgs {
        CtlArgs::of(Verb::Shutdown { grace }, json)
    }

    /// `r1 ctl restart`, which `r1 serve restart` runs.
    pub fn restart(json: bool) -> CtlArgs {
        CtlArgs::of(Verb::Restart { timeout: 15 }, json)
    }

    fn of(verb: Verb, json: bool) -> CtlArgs {
        CtlArgs {
            json,
            tcp: false,
            no_spawn: false,
            verb,
        }
    }
}

/// Runs a `ctl` verb; returns the exit code.
pub fn run(home: &Path, args: CtlArgs) -> i32 {
    let rt = match crate::output::runtime(0) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let json = args.json;
    match rt.block_on(dispatch(home, args)) {
        Ok(()) => 0,
        Err(CtlError::Client(e)) => output::fail(&e, json),
        Err(CtlError::Exit(code)) => code,
    }
}

async fn dispatch(home: &Path, args: CtlArgs) -> Result<(), CtlError> {
    let mut opts = ConnectOptions::new(home);
    opts.tcp = args.tcp;
    opts.spawn = !args.no_spawn;
    match args.verb {
        Verb::Shutdown { grace } => return Ok(shutdown(&opts, grace, args.json).await?),
        Verb::Restart { timeout } => return Ok(restart(&opts, timeout, args.json).await?),
        Verb::Sessions(verb) => return Ok(crate::sessions_cmd::run(&opts, verb, args.json).await?),
        Verb::Worktrees(verb) => {
            return Ok(crate::worktrees_cmd::run(&opts, verb, args.json).await?)
        }
        Verb::Missions(verb) => return Ok(crate::missions_cmd::run(&opts, verb, args.json).await?),
        Verb::Verify(verb) => {
            let ok = crate::missions_cmd::run_verify(&opts, verb, args.json).await?;
            return if ok { Ok(()) } else { Err(CtlError::Exit(1)) };
        }
        Verb::Status => return Ok(crate::ops_cmd::status(&opts, args.json).await?),
        Verb::Logs(a) => return Ok(crate::ops_cmd::logs(&opts, a, args.json).await?),
        Verb::Hooks(verb) => return Ok(crate::ops_cmd::hooks(&opts, verb, args.json).await?),
        Verb::Cortex(verb) => return Ok(crate::ops_cmd::cortex(&opts, verb, args.json).await?),
        Verb::Engines => {
            let client = r1_client::connect_or_spawn(&opts).await?;
            let l = client.engines_list(EmptyParams {}).await?;
            if args.json {
                output::json(&l);
            } else {
                for e in &l.engines {
                    output::line(&format!(
                        "{}{:<12} {:<10} {:<24} {}",
                        if e.default { "* " } else { "  " },
                        e.name,
                        e.kind,
                        e.model.as_deref().unwrap_or("-"),
                        e.reason
                    ));
                }
            }
        }
        Verb::Search(a) => {
            let client = r1_client::connect_or_spawn(&opts).await?;
            search(&client, a, args.json).await?;
        }
        Verb::Discover => {
            let client = r1_client::connect_or_spawn(&opts).await?;
            let d = client.discover(EmptyParams {}).await?;
            if args.json {
                output::json(&d);
            } else {
                output::line(&format!("id          {}", d.id));
                output::line(&format!("pid         {}", d.pid));
                output::line(&format!("version     {}", d.version));
                output::line(&format!("protocol    {}", d.protocol));
                output::line(&format!("url         {}", d.url));
                output::line(&format!("sock        {}", d.sock));
                output::line(&format!("started_at  {}", d.started_at));
                output::line(&format!("token       {} (in {})", d.token, d.token_file));
            }
        }
        Verb::Health => {
            let client = r1_client::connect_or_spawn(&opts).await?;
            let h = client.health(EmptyParams {}).await?;
            if args.json {
                output::json(&h);
            } else {
                output::line(&format!(
                    "{}  version {}  sessions {}  uptime {}s  pid {}",
                    h.status,
                    h.version,
                    h.sessions,
                    h.uptime_s,
                    client.registration().pid
                ));
            }
        }
        Verb::Reload => {
            let client = r1_client::connect(&opts).await?;
            let r = client.reload(EmptyParams {}).await?;
            if args.json {
                output::json(&r);
            } else {
                if r.changed.is_empty() {
                    output::line("daemon.toml reloaded: nothing changed");
                } else {
                    output::line(&format!(
                        "daemon.toml reloaded; in force now: {}",
                        r.changed.join(", ")
                    ));
                }
                if !r.restart_required.is_empty() {
                    output::line(&format!(
                        "changed but kept until a restart (`r1 ctl restart`): {}",
                        r.restart_required.join(", ")
                    ));
                }
            }
        }
        Verb::RotateToken => {
            let client = r1_client::connect_or_spawn(&opts).await?;
            let ack = client.rotate_token().await?;
            if args.json {
                output::json(&ack);
            } else {
                output::line(&format!(
                    "token rotated; the new token is in {}",
                    home.join("token").display()
                ));
            }
        }
    }
    Ok(())
}

async fn restart(opts: &ConnectOptions, timeout: u64, json: bool) -> Result<(), ClientError> {
    let client = r1_client::connect(opts).await?;
    let old_pid = client.registration().pid;
    let asked = client
        .restart(RestartParams {
            timeout_s: Some(timeout),
        })
        .await;
    match asked {
        Ok(r) => {
            if json {
                output::json(&r);
            } else {
                output::line(&format!(
                    "restarted onto {} (version {} → {}); pid {} → {}, still at {}",
                    r.exe, r.from_version, r.version, old_pid, r.pid, r.url
                ));
            }
            Ok(())
        }
        Err(e) => {
            // A failed handover brings the old daemon back: wait for it, so that the
            // next command finds a daemon, and say which one serves.
            if e.code == r1_proto::ErrorCode::Conflict {
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    if let Ok(c) = r1_client::connect(opts).await {
                        if !json {
                            eprintln!("r1: the daemon serves again (pid {})", c.registration().pid);
                        }
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Err(e.into())
        }
    }
}

/// `r1 ctl search`: rebuilds the index when asked, then prints the hits, one per
/// line: session, seq, kind, time, title and snippet.
async fn search(client: &impl Api, a: SearchArgs, json: bool) -> Result<(), ClientError> {
    if a.reindex {
        let r = client.search_reindex(EmptyParams {}).await?;
        if a.query.is_none() {
            if json {
                output::json(&r);
            } else {
                output::line(&format!(
                    "reindexed {} sessions, {} records: {} documents in {} ms",
                    r.sessions, r.records, r.documents, r.duration_ms
                ));
            }
            return Ok(());
        }
    }
    let result = client
        .search(r1_proto::SearchParams {
            q: a.query.unwrap_or_default(),
            session_id: a.session,
            kind: (!a.kind.is_empty()).then_some(a.kind),
            since: a.since,
            limit: Some(a.limit),
            cursor: None,
        })
        .await?;
    if json {
        output::json(&result);
        return Ok(());
    }
    for h in &result.hits {
        output::line(&format!(
            "{}  #{:<5} {:<8} {}  {}",
            h.session_id,
            h.seq,
            h.kind.as_str(),
            h.at,
            h.session_title.as_deref().unwrap_or("-")
        ));
        output::line(&format!("    {}", h.snippet.replace('\n', " ")));
    }
    if result.hits.is_empty() {
        output::line("no hits");
    }
    if result.catching_up {
        output::line("(the index is still catching up with the journals)");
    }
    Ok(())
}

async fn shutdown(opts: &ConnectOptions, grace: u64, json: bool) -> Result<(), ClientError> {
    let client = match r1_client::connect(opts).await {
        Ok(c) => c,
        Err(ClientError::Unreachable(_)) => {
            if json {
                output::json(&serde_json::json!({"ok": true, "running": false}));
            } else {
                output::line("no daemon is running");
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let pid = client.registration().pid;
    let grace_s = Some(grace);
    client.shutdown(ShutdownParams { grace_s }).await?;
    // Wait until the process is gone, bounded by the grace period plus a margin.
    let deadline = Instant::now() + Duration::from_secs(grace + 5);
    while Instant::now() < deadline && process_alive(pid) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = !process_alive(pid);
    if json {
        output::json(&serde_json::json!({"ok": stopped, "pid": pid, "stopped": stopped}));
    } else if stopped {
        output::line(&format!("daemon {pid} stopped"));
    } else {
        output::line(&format!(
            "daemon {pid} was asked to stop but is still running"
        ));
    }
    Ok(())
}

fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie (state Z) has exited; its parent has not reaped it yet.
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
