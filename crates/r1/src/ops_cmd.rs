//! `r1 ctl status` and `r1 ctl logs`: the running daemon, seen through its API, so
//! they work the same over an SSH-forwarded socket.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use r1_client::{ClientError, ConnectOptions};
use r1_proto::{Api, EmptyParams, LogLine, LogsParams};

use crate::output;

/// `r1 ctl logs`'s flags.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new lines as the daemon writes them (Ctrl-C to stop).
    #[arg(short, long)]
    follow: bool,
    /// Only lines from this long ago on (`30s`, `10m`, `2h`, `1d`), or since an
    /// RFC 3339 time.
    #[arg(long, value_name = "DURATION")]
    since: Option<String>,
    /// Only lines of this level or more severe: error, warn, info, debug, trace.
    #[arg(long, value_name = "LEVEL")]
    level: Option<String>,
    /// Only lines about this session.
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// How many of the newest lines to print first (default 200; 20 with --follow).
    #[arg(short = 'n', long, value_name = "N")]
    lines: Option<u64>,
}

/// How long one follow request waits for a new line before asking again: below the
/// client's 30 s answer timeout.
const FOLLOW_WAIT_MS: u64 = 20_000;

/// `r1 ctl logs`.
pub async fn logs(opts: &ConnectOptions, args: LogsArgs, json: bool) -> Result<(), ClientError> {
    let client = r1_client::connect_or_spawn(opts).await?;
    let first = LogsParams {
        since: args.since.clone(),
        level: args.level.clone(),
        session_id: args.session.clone(),
        limit: Some(args.lines.unwrap_or(if args.follow { 20 } else { 200 })),
        after: None,
        wait_ms: None,
    };
    let mut page = client.daemon_logs(first).await?;
    loop {
        for l in &page.lines {
            print_line(l, json);
        }
        if !args.follow {
            return Ok(());
        }
        let next = LogsParams {
            since: None,
            level: args.level.clone(),
            session_id: args.session.clone(),
            limit: Some(1000),
            after: Some(page.next.clone()),
            wait_ms: Some(FOLLOW_WAIT_MS),
        };
        page = match client.daemon_logs(next).await {
            Ok(p) => p,
            // A daemon that cannot be reached (restarting) is asked again every
            // second, as `tail -F` does; any other error ends the follow.
            Err(e) if e.code == r1_proto::ErrorCode::CrashRecovery => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                r1_proto::LogPage {
                    lines: Vec::new(),
                    next: page.next.clone(),
                }
            }
            Err(e) => return Err(e.into()),
        };
    }
}

fn print_line(l: &LogLine, json: bool) {
    if json {
        output::line(&serde_json::to_string(l).unwrap_or_default());
        return;
    }
    let mut text = format!("{} {:>5} {}", l.at, l.level, l.message);
    if let Some(s) = &l.session {
        text.push_str(&format!(" session={s}"));
    }
    for (k, v) in &l.fields {
        text.push_str(&format!(" {k}={v}"));
    }
    output::line(&text);
}

/// `r1 ctl status`.
pub async fn status(opts: &ConnectOptions, json: bool) -> Result<(), ClientError> {
    let client = r1_client::connect_or_spawn(opts).await?;
    let s = client.daemon_status(EmptyParams {}).await?;
    if json {
        output::json(&s);
        return Ok(());
    }
    let counts = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    output::line(&format!(
        "r1 {}  {}  pid {}  up {}",
        s.version,
        s.status,
        s.pid,
        humanize(s.uptime_s)
    ));
    output::line(&format!("  daemon id    {}", s.daemon_id));
    if let Some(l) = &s.listen {
        output::line(&format!("  listening    {}  (port {})", l.url, l.port));
        output::line(&format!("  socket       {}", l.socket));
    }
    output::line(&format!("  home         {}", s.home));
    output::line(&format!(
        "  sandbox      {}{}",
        if s.sandbox_active { "" } else { "OFF: " },
        s.sandbox
    ));
    output::line(&format!("  sessions     {}", counts(&s.sessions)));
    output::line(&format!("  missions     {}", counts(&s.missions)));
    output::line(&format!("  tokens       {}", output::usage(&s.usage)));
    output::line(&format!("  subscribers  {}", s.subscribers));
    output::line(&format!("  hooks run    {}", s.hooks_run));
    match &s.last_error {
        Some(e) => output::line(&format!(
            "  last error   {} {}{}",
            e.at,
            e.message,
            e.session
                .as_deref()
                .map(|s| format!(" session={s}"))
                .unwrap_or_default()
        )),
        None => output::line("  last error   none"),
    }
    Ok(())
}

/// `3725` → `1h 2m 5s`.
fn humanize(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

/// `r1 ctl hooks`.
#[derive(Debug, clap::Subcommand)]
pub enum HooksVerb {
    /// What is installed in `$R1_HOME/hooks`: each file's event, whether it is trusted
    /// or why it is refused, and its timeout.
    List,
    /// Run one hook (by file name or event) against a sample event, or the JSON object
    /// given with `--event`, without touching any session.
    Test {
        /// The hook's file name (`on-message.sh`) or its event (`on-message`).
        name: String,
        /// The JSON object to give it on stdin instead of the sample.
        #[arg(long)]
        event: Option<String>,
    },
}

/// Runs `r1 ctl hooks …`.
pub async fn hooks(opts: &ConnectOptions, verb: HooksVerb, json: bool) -> Result<(), ClientError> {
    let client = r1_client::connect_or_spawn(opts).await?;
    match verb {
        HooksVerb::List => {
            let l = client.hooks_list(EmptyParams {}).await?;
            if json {
                output::json(&l);
                return Ok(());
            }
            if !l.enabled {
                output::line("hooks are off ([hooks] enabled = false)");
            }
            if l.hooks.is_empty() {
                output::line(&format!("no hooks in {}", l.dir));
            }
            for h in &l.hooks {
                let state = match (&h.refused, h.event.is_some()) {
                    (Some(why), _) => format!("REFUSED: {why}"),
                    (None, false) => "named after no event; never runs".to_string(),
                    (None, true) => format!("trusted, timeout {} s", h.timeout_s),
                };
                output::line(&format!(
                    "{:<28} {:<20} {state}",
                    h.name,
                    h.event.as_deref().unwrap_or("-")
                ));
            }
        }
        HooksVerb::Test { name, event } => {
            let event = match event {
                Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                    ClientError::from(r1_proto::ApiError::validation(format!(
                        "--event is not JSON: {e}"
                    )))
                })?),
                None => None,
            };
            let r = client
                .hooks_test(r1_proto::HookTestParams { name, event })
                .await?;
            if json {
                output::json(&r);
                return Ok(());
            }
            output::line(&format!(
                "{} ({}): exit {} in {} ms{}",
                r.hook,
                r.event,
                r.exit_code.map_or("-".to_string(), |c| c.to_string()),
                r.duration_ms,
                if r.timed_out { ", timed out" } else { "" }
            ));
            if let Some(e) = &r.error {
                output::line(&format!("  failed: {e}"));
            }
            if !r.stdout.is_empty() {
                output::line(&format!("  stdout: {}", r.stdout.trim_end()));
            }
            if !r.stderr.is_empty() {
                output::line(&format!("  stderr: {}", r.stderr.trim_end()));
            }
        }
    }
    Ok(())
}

/// `r1 ctl cortex`: a session's notes board and lobes.
#[derive(Debug, clap::Subcommand)]
pub enum CortexVerb {
    /// The notes on a session's board, oldest first (critical ones marked `!`).
    Notes {
        /// The session id.
        session: String,
        /// Only notes from this seq on.
        #[arg(long)]
        since: Option<u64>,
    },
    /// Put a note on a session's board; with `--critical` the agent is shown it at the
    /// start of its next turn.
    Publish {
        /// The session id.
        session: String,
        /// The note (it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        text: String,
        /// A label (repeat for more).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Show it to the agent at the start of its next turn.
        #[arg(long)]
        critical: bool,
    },
    /// The lobes watching a session: built-in ones and those in `$R1_HOME/lobes`.
    Lobes {
        /// The session id.
        session: String,
    },
    /// Pause a lobe for one session (ok when it is paused already).
    Pause {
        /// The session id.
        session: String,
        /// The lobe's name (see `r1 ctl cortex lobes`).
        lobe: String,
    },
    /// Resume a lobe for one session (ok when it runs already).
    Resume {
        /// The session id.
        session: String,
        /// The lobe's name.
        lobe: String,
    },
}

/// Runs `r1 ctl cortex …`.
pub async fn cortex(
    opts: &ConnectOptions,
    verb: CortexVerb,
    json: bool,
) -> Result<(), ClientError> {
    let client = r1_client::connect_or_spawn(opts).await?;
    let lobes = match verb {
        CortexVerb::Notes { session, since } => {
            let l = client
                .cortex_notes(r1_proto::CortexNotesParams {
                    session_id: session,
                    since_seq: since,
                })
                .await?;
            if json {
                output::json(&l);
            } else if l.notes.is_empty() {
                output::line("no notes");
            } else {
                for n in &l.notes {
                    output::line(&note_line(n));
                }
            }
            return Ok(());
        }
        CortexVerb::Publish {
            session,
            text,
            tags,
            critical,
        } => {
            let n = client
                .cortex_publish(r1_proto::CortexPublishParams {
                    session_id: session,
                    note: r1_proto::NoteInput {
                        text,
                        tags,
                        critical,
                    },
                })
                .await?;
            if json {
                output::json(&n);
            } else {
                output::line(&note_line(&n));
            }
            return Ok(());
        }
        CortexVerb::Lobes { session } => {
            client
                .cortex_lobes_list(r1_proto::SessionRef::new(session))
                .await?
        }
        CortexVerb::Pause { session, lobe } => {
            client
                .cortex_lobe_pause(r1_proto::LobeRef {
                    session_id: session,
                    lobe,
                })
                .await?
        }
        CortexVerb::Resume { session, lobe } => {
            client
                .cortex_lobe_resume(r1_proto::LobeRef {
                    session_id: session,
                    lobe,
                })
                .await?
        }
    };
    if json {
        output::json(&lobes);
        return Ok(());
    }
    for l in &lobes.lobes {
        let state = match (&l.error, l.paused) {
            (Some(e), _) => format!("REFUSED: {e}"),
            (None, true) => "paused".to_string(),
            (None, false) => "running".to_string(),
        };
        output::line(&format!(
            "{:<16} {:<8} {:<8} notes {:<4} {}",
            l.name, l.kind, state, l.notes, l.description
        ));
    }
    Ok(())
}

/// One note for people: `#seq ! [source] text (tags)`.
fn note_line(n: &r1_proto::NoteView) -> String {
    let tags = if n.tags.is_empty() {
        String::new()
    } else {
        format!("  ({})", n.tags.join(", "))
    };
    format!(
        "#{:<6} {} [{}] {}{tags}",
        n.seq,
        if n.critical { "!" } else { " " },
        n.source,
        n.text
    )
}
