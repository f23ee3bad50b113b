//! `r1 ctl sessions …`: start, list, inspect, drive and follow sessions.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Subcommand;
use r1_client::{Client, ClientError, ConnectOptions, SseReader};
use r1_proto::{
    Api, ApproveParams, Decision, EmptyParams, EventKind, EventRecord, LaneRef, PinLaneParams,
    SendMessageParams, SessionRef, SessionView, StartSessionParams, WorktreeRequest, WorktreeSpec,
};

use crate::output;

/// A session verb.
#[derive(Debug, Subcommand)]
pub enum SessionsVerb {
    /// List the sessions (archived ones only with `--all`).
    List {
        /// Archived sessions too.
        #[arg(long)]
        all: bool,
    },
    /// Show one session.
    Get {
        /// The session id (`ses_…`).
        id: String,
    },
    /// Start a session in a working directory.
    Start {
        /// The directory the agent works in (default: the current directory).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// The engine (default: the daemon's default, `echo` when nothing is configured).
        #[arg(long)]
        engine: Option<String>,
        /// The model, for engines that have several.
        #[arg(long)]
        model: Option<String>,
        /// A title for people.
        #[arg(long)]
        title: Option<String>,
        /// A tool policy override, `TOOL=allow|ask|deny` (repeatable).
        #[arg(long = "policy", value_name = "TOOL=POLICY")]
        policy: Vec<String>,
        /// A token budget for the session.
        #[arg(long)]
        token_budget: Option<u64>,
        /// Work in a new git worktree of the repository `--workdir` is in (checked out
        /// under the daemon's state directory; see `r1 ctl worktrees`).
        #[arg(long)]
        worktree: bool,
        /// The worktree's new branch (default `r1/<short session id>`).
        #[arg(long, requires = "worktree")]
        branch: Option<String>,
        /// What the worktree starts from (default the repository's `HEAD`).
        #[arg(long, requires = "worktree")]
        base: Option<String>,
    },
    /// Allow a pending tool call.
    Approve {
        /// The session id.
        id: String,
        /// The approval id (`apr_…`, see `get` or the event stream).
        approval_id: String,
        /// Allow this tool for the rest of the session: its later calls do not ask.
        #[arg(long)]
        always: bool,
    },
    /// Deny a pending tool call; the model is told it was denied.
    Deny {
        /// The session id.
        id: String,
        /// The approval id.
        approval_id: String,
        /// Deny this tool for the rest of the session: its later calls are refused
        /// without asking.
        #[arg(long)]
        always: bool,
    },
    /// List the session's lanes (the conversation and each tool call).
    Lanes {
        /// The session id.
        id: String,
    },
    /// Kill a running tool lane (its whole process group).
    KillLane {
        /// The session id.
        id: String,
        /// The lane id.
        lane: String,
    },
    /// Pin a lane.
    PinLane {
        /// The session id.
        id: String,
        /// The lane id.
        lane: String,
        /// Unpin the lane instead.
        #[arg(long)]
        unpin: bool,
    },
    /// Send a message; with `--wait`, wait for the answer and print it.
    Send {
        /// The session id.
        id: String,
        /// The message text.
        text: String,
        /// An idempotency key: sending again with it returns the original ids.
        #[arg(long)]
        client_message_id: Option<String>,
        /// Wait for the turn to finish and print the answer.
        #[arg(long)]
        wait: bool,
    },
    /// Stream a session's events as they happen; survives daemon restarts.
    Follow {
        /// The session id.
        id: String,
        /// Start from this seq (default: the beginning).
        #[arg(long, default_value_t = 1)]
        since_seq: u64,
        /// Stop after the first record of this kind (e.g. `session.message`).
        #[arg(long)]
        until: Option<String>,
    },
    /// Cancel the turn in progress.
    Cancel {
        /// The session id.
        id: String,
    },
    /// Pause the session (the running turn is cancelled; new messages are refused).
    Pause {
        /// The session id.
        id: String,
    },
    /// Resume a paused session, or with `--all` every paused one (ended and errored
    /// sessions are left alone). With `--all` the answer lists what was resumed and
    /// what could not be, with why; the command succeeds even when some could not.
    Resume {
        /// The session id (or `--all`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Resume every paused session (`session.resume_all`).
        #[arg(long)]
        all: bool,
    },
    /// End the session (idempotent).
    Kill {
        /// The session id.
        id: String,
    },
    /// Give the session a new title.
    Rename {
        /// The session id.
        id: String,
        /// The new title (1 to 200 characters).
        #[arg(allow_hyphen_values = true)]
        title: String,
    },
    /// Print a file of the session's workdir (its worktree when it has one), read-only:
    /// PATH is relative to the workdir; paths leaving it are refused. The text is cut at
    /// `--max-bytes` (default 256 KiB, at most 1 MiB); a binary file is not printed.
    Read {
        /// The session id.
        id: String,
        /// The file, relative to the session's workdir.
        path: String,
        /// The most bytes of text to print.
        #[arg(long)]
        max_bytes: Option<u64>,
    },
    /// Archive the session: it leaves the default list, stays searchable and usable
    /// (idempotent; `unarchive` brings it back).
    Archive {
        /// The session id.
        id: String,
    },
    /// Bring an archived session back into the default list (idempotent).
    Unarchive {
        /// The session id.
        id: String,
    },
    /// Delete the session for good: a live one is ended first, then its journal and
    /// search entries are removed. Asks for confirmation on a terminal; `--yes` skips
    /// the question (needed when stdin is not a terminal).
    Delete {
        /// The session id.
        id: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Repair a session quarantined because its journal is corrupt: keep a `.broken`
    /// copy of the whole journal, cut it back to its last good record, and bring the
    /// session back paused (resume it to go on). Records after the damage stay only in
    /// the copy. A healthy session is left as it is.
    Repair {
        /// The session id.
        id: String,
    },
    /// Compact an idle session's conversation now: the turns before the last two are
    /// summarized by its own model (journaled as `session.compacted`), as happens by
    /// itself when the context budget (`context_tokens` of the engine) runs out.
    Compact {
        /// The session id.
        id: String,
    },
}

fn show(v: &SessionView, json: bool) {
    if json {
        output::json(v);
    } else {
        output::line(&format!(
            "{}  {:<19}  {:<6}  seq {:<6}  {}{}{}{}",
            v.id,
            v.state.as_str(),
            v.engine,
            v.last_seq,
            v.workdir,
            v.title
                .as_deref()
                .map(|t| format!("  \"{t}\""))
                .unwrap_or_default(),
            if v.reattachable {
                "  (reattachable)"
            } else {
                ""
            },
            if v.archived { "  (archived)" } else { "" }
        ));
    }
}

/// Asks `question` on the terminal; false when stdin is not one or the answer is not
/// yes.
fn confirm(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "YES")
}

/// Decides a pending approval.
async fn decide(
    client: &Client,
    session_id: String,
    approval_id: String,
    decision: Decision,
    remember: bool,
) -> Result<SessionView, ClientError> {
    let p = ApproveParams {
        session_id,
        approval_id,
        decision,
        remember,
    };
    Ok(client.session_approve(p).await?)
}

fn lanes(l: r1_proto::LaneList, json: bool) {
    if json {
        output::json(&l);
        return;
    }
    for lane in &l.lanes {
        output::line(&format!(
            "{:<16} {:<12} {:<10}{}",
            lane.lane,
            lane.tool.as_deref().unwrap_or("-"),
            lane.status,
            if lane.pinned { "  pinned" } else { "" }
        ));
    }
}

/// Runs a sessions verb.
pub async fn run(opts: &ConnectOptions, verb: SessionsVerb, json: bool) -> Result<(), ClientError> {
    let client = r1_client::connect_or_spawn(opts).await?;
    let client = &client;
    let at = SessionRef::new;
    match verb {
        SessionsVerb::List { all } => {
            let l = client
                .session_list(r1_proto::ListSessionsParams {
                    include_archived: all,
                })
                .await?;
            if json {
                output::json(&l);
            } else if l.sessions.is_empty() {
                output::line("no sessions");
            } else {
                for s in &l.sessions {
                    show(s, false);
                }
            }
        }
        SessionsVerb::Get { id } => {
            let v = client.session_get(at(id)).await?;
            show(&v, json);
            if !json {
                output::line(&format!(
                    "  tokens  {}  ({} model calls)",
                    output::usage(&v.usage),
                    v.usage.model_calls
                ));
            }
        }
        SessionsVerb::Start {
            workdir,
            engine,
            model,
            title,
            policy,
            token_budget,
            worktree,
            branch,
            base,
        } => {
            let mut map = std::collections::BTreeMap::new();
            for p in policy {
                let (tool, v) = p.split_once('=').ok_or_else(|| {
                    ClientError::Protocol(format!("--policy wants TOOL=allow|ask|deny, got {p:?}"))
                })?;
                map.insert(tool.to_string(), v.to_string());
            }
            let workdir = match workdir {
                Some(w) => std::path::absolute(&w).unwrap_or(w),
                None => std::env::current_dir()
                    .map_err(|e| ClientError::Protocol(format!("no current directory: {e}")))?,
            };
            let params = StartSessionParams {
                workdir: workdir.display().to_string(),
                engine,
                model,
                title,
                policy: (!map.is_empty()).then_some(map),
                token_budget,
                worktree: worktree.then(|| {
                    if branch.is_none() && base.is_none() {
                        WorktreeRequest::Enabled(true)
                    } else {
                        WorktreeRequest::Spec(WorktreeSpec { branch, base })
                    }
                }),
            };
            show(&client.session_start(params).await?, json);
        }
        SessionsVerb::Send {
            id,
            text,
            client_message_id,
            wait,
        } => {
            let params = SendMessageParams {
                session_id: id.clone(),
                text,
                client_message_id,
            };
            let r = client.session_send(params).await?;
            if wait {
                let answer = wait_for_reply(client, &id, &r.message_id, r.seq).await?;
                if json {
                    output::json(
                        &serde_json::json!({"message_id": r.message_id, "seq": r.seq, "duplicate": r.duplicate, "reply": answer}),
                    );
                } else {
                    output::line(&answer);
                }
            } else if json {
                output::json(&r);
            } else {
                output::line(&format!(
                    "{} seq {}{}",
                    r.message_id,
                    r.seq,
                    if r.duplicate { " (duplicate)" } else { "" }
                ));
            }
        }
        SessionsVerb::Follow {
            id,
            since_seq,
            until,
        } => {
            follow(opts, Some(client), &id, since_seq, until.as_deref(), json).await?;
        }
        SessionsVerb::Approve {
            id,
            approval_id,
            always,
        } => show(
            &decide(client, id, approval_id, Decision::Allow, always).await?,
            json,
        ),
        SessionsVerb::Deny {
            id,
            approval_id,
            always,
        } => show(
            &decide(client, id, approval_id, Decision::Deny, always).await?,
            json,
        ),
        SessionsVerb::Lanes { id } => lanes(client.lanes_list(at(id)).await?, json),
        SessionsVerb::KillLane { id, lane } => {
            let lane = LaneRef {
                session_id: id,
                lane_id: lane,
            };
            lanes(client.lanes_kill(lane).await?, json)
        }
        SessionsVerb::PinLane { id, lane, unpin } => {
            let pin = PinLaneParams {
                session_id: id,
                lane_id: lane,
                pinned: !unpin,
            };
            lanes(client.lanes_pin(pin).await?, json)
        }
        SessionsVerb::Cancel { id } => show(&client.session_cancel(at(id)).await?, json),
        SessionsVerb::Pause { id } => show(&client.session_pause(at(id)).await?, json),
        SessionsVerb::Resume { id: Some(id), .. } => {
            show(&client.session_resume(at(id)).await?, json)
        }
        SessionsVerb::Resume { id: None, .. } => {
            let r = client.session_resume_all(EmptyParams {}).await?;
            if json {
                output::json(&r);
            } else if r.resumed.is_empty() && r.failed.is_empty() {
                output::line("no paused sessions");
            } else {
                for v in &r.resumed {
                    show(v, false);
                }
                for f in &r.failed {
                    output::line(&format!(
                        "could not resume {}: {} ({})",
                        f.id,
                        f.error_message,
                        f.error_code.as_str()
                    ));
                }
            }
        }
        SessionsVerb::Repair { id } => {
            let r = client.session_repair(at(id)).await?;
            if json {
                output::json(&r);
            } else if r.repaired {
                output::line(&format!(
                    "repaired {}: kept records 1..={}, cut {} bytes; the damaged journal is kept at {}",
                    r.session.id,
                    r.last_seq,
                    r.dropped_bytes,
                    r.broken_copy.as_deref().unwrap_or("?")
                ));
                show(&r.session, false);
            } else {
                output::line(&format!(
                    "{} is healthy (last seq {}); nothing to repair",
                    r.session.id, r.last_seq
                ));
            }
        }
        SessionsVerb::Compact { id } => {
            let r = client.session_compact(at(id)).await?;
            if json {
                output::json(&r);
            } else if r.compacted {
                output::line(&format!(
                    "compacted {} ({}): about {} tokens, now {}",
                    r.session_id,
                    r.method.as_deref().unwrap_or("?"),
                    r.tokens_before,
                    r.tokens_after
                ));
            } else {
                output::line(&format!(
                    "{}: nothing before the last two turns to compact (about {} tokens)",
                    r.session_id, r.tokens_before
                ));
            }
        }
        SessionsVerb::Kill { id } => show(&client.session_kill(at(id)).await?, json),
        SessionsVerb::Rename { id, title } => show(
            &client
                .session_rename(r1_proto::RenameParams {
                    session_id: id,
                    title,
                })
                .await?,
            json,
        ),
        SessionsVerb::Read {
            id,
            path,
            max_bytes,
        } => {
            let f = client
                .workdir_read(r1_proto::WorkdirReadParams {
                    session_id: id,
                    path,
                    max_bytes,
                })
                .await?;
            if json {
                output::json(&f);
            } else if f.binary {
                output::line(&format!(
                    "{}: binary file ({} bytes), not shown",
                    f.path, f.size
                ));
            } else {
                use std::io::Write;
                let _ = std::io::stdout().lock().write_all(f.text.as_bytes());
                if f.truncated {
                    eprintln!(
                        "\n{}: truncated at {} of {} bytes (--max-bytes)",
                        f.path,
                        f.text.len(),
                        f.size
                    );
                }
            }
        }
        SessionsVerb::Archive { id } => show(&client.session_archive(at(id)).await?, json),
        SessionsVerb::Unarchive { id } => show(&client.session_unarchive(at(id)).await?, json),
        SessionsVerb::Delete { id, yes } => {
            if !yes
                && !confirm(&format!(
                    "Delete session {id} and its journal for good? [y/N] "
                ))
            {
                return Err(ClientError::from(r1_proto::ApiError::validation(
                    "not deleted: confirm on a terminal, or pass --yes",
                )));
            }
            let r = client.session_delete(at(id)).await?;
            if json {
                output::json(&r);
            } else {
                output::line(&format!(
                    "deleted {}{}",
                    r.session_id,
                    if r.ended {
                        " (it was live: ended first)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    Ok(())
}

/// Reads the session's stream from `since` until the turn answering `message_id`
/// ends; returns the assistant text (or the error / cancellation as text).
pub async fn wait_for_reply(
    client: &Client,
    id: &str,
    message_id: &str,
    since: u64,
) -> Result<String, ClientError> {
    let body = client.session_events(id, since).await?;
    let mut reader = SseReader::new(body);
    while let Some(frame) = reader.next().await {
        let frame = frame?;
        let Ok(r) = serde_json::from_str::<EventRecord>(&frame.data) else {
            continue;
        };
        let about = r.data["reply_to"] == message_id || r.data["message_id"] == message_id;
        match r.kind {
            EventKind::SessionMessage if r.data["role"] == "assistant" && about => {
                return Ok(r.data["text"].as_str().unwrap_or_default().to_string())
            }
            EventKind::SessionCancelled if about => return Ok("(cancelled)".into()),
            EventKind::SessionError if about || r.data["interrupted"] == true => {
                return Err(ClientError::Protocol(format!(
                    "the turn failed: {}",
                    r.data["message"].as_str().unwrap_or("unknown error")
                )))
            }
            EventKind::SessionEnded | EventKind::SessionPaused => {
                return Err(ClientError::Protocol(format!(
                    "the session stopped ({})",
                    r.kind.as_str()
                )))
            }
            _ => {}
        }
    }
    Err(ClientError::Unreachable(
        "the event stream ended before the answer".into(),
    ))
}

/// Follows a session, reconnecting with `since_seq` after the last record seen when
/// the stream breaks (e.g. the daemon restarts), for up to a minute of absence.
async fn follow(
    opts: &ConnectOptions,
    first: Option<&Client>,
    id: &str,
    since: u64,
    until: Option<&str>,
    json: bool,
) -> Result<(), ClientError> {
    let mut next = since;
    let mut first = first;
    let mut down_since: Option<Instant> = None;
    loop {
        let owned;
        let c = match first.take() {
            Some(c) => c,
            None => match r1_client::connect(opts).await {
                Ok(c) => {
                    owned = c;
                    &owned
                }
                Err(e) => {
                    let t = *down_since.get_or_insert_with(Instant::now);
                    if t.elapsed() > Duration::from_secs(60) {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let body = match c.session_events(id, next).await {
            Ok(b) => b,
            Err(e @ ClientError::Api(_)) => return Err(e),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        down_since = None;
        let mut reader = SseReader::new(body);
        while let Some(Ok(frame)) = reader.next().await {
            let Ok(r) = serde_json::from_str::<EventRecord>(&frame.data) else {
                continue;
            };
            if r.kind == EventKind::SessionResync {
                next = r.data["next_seq"].as_u64().unwrap_or(next);
            } else {
                next = r.seq + 1;
            }
            if json {
                let mut out = std::io::stdout().lock();
                let _ = serde_json::to_writer(&mut out, &r);
                let _ = std::io::Write::write_all(&mut out, b"\n");
            } else {
                output::line(&format!("{:>6} {:<20} {}", r.seq, r.kind.as_str(), r.data));
            }
            if until == Some(r.kind.as_str()) || r.kind == EventKind::SessionEnded {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
