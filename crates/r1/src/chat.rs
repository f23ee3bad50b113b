//! `r1 chat`: a line-mode chat with a session in the terminal.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use r1_client::{ClientError, ConnectOptions, SseReader};
use r1_proto::{
    Api, ApproveParams, Decision, EventKind, EventRecord, SendMessageParams, SessionRef,
    SessionView, StartSessionParams,
};
use tokio::sync::mpsc;

/// Chat with a session in the terminal: each line you type is sent as a message and
/// the answer streams back as it is written. Starts a session in `--workdir` (default:
/// the current directory) unless `--session` names one to attach to. Ctrl-D (end of
/// input) waits for the last answer and leaves; the session keeps running in the daemon.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The directory a new session works in.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Attach to this session instead of starting one.
    #[arg(long)]
    session: Option<String>,
    /// The engine of a new session.
    #[arg(long)]
    engine: Option<String>,
}

/// Runs the chat; returns the exit code.
pub fn run(home: &Path, args: ChatArgs) -> i32 {
    let rt = match crate::output::runtime(2) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(chat(home, args)) {
        Ok(()) => 0,
        Err(e) => crate::output::fail(&e, false),
    }
}

async fn chat(home: &Path, args: ChatArgs) -> Result<(), ClientError> {
    let opts = ConnectOptions::new(home);
    let mut client = r1_client::connect_or_spawn(&opts).await?;
    let session: SessionView = match &args.session {
        Some(id) => client.session_get(SessionRef::new(id.as_str())).await?,
        None => {
            let workdir = match &args.workdir {
                Some(w) => std::path::absolute(w).unwrap_or_else(|_| w.clone()),
                None => std::env::current_dir()
                    .map_err(|e| ClientError::Protocol(format!("no current directory: {e}")))?,
            };
            let params = StartSessionParams {
                workdir: workdir.display().to_string(),
                engine: args.engine.clone(),
                model: None,
                title: Some("r1 chat".into()),
                policy: None,
                token_budget: None,
                worktree: None,
            };
            client.session_start(params).await?
        }
    };
    eprintln!(
        "r1 chat: session {} ({}, {}) — type a message, Ctrl-D to leave",
        session.id, session.engine, session.workdir
    );
    // Lines from stdin, read on a thread of their own.
    let (lines_tx, mut lines) = mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    // The next record to show: a stream that ends (the daemon restarts onto a new
    // binary, or stops) is opened again from here, so nothing is missed or repeated.
    let mut next = session.last_seq + 1;
    let body = client.session_events(&session.id, next).await?;
    let mut events = SseReader::new(body);
    let mut pending: Vec<String> = Vec::new();
    let mut asking: Option<String> = None;
    let mut input_open = true;
    loop {
        if !input_open && (pending.is_empty() || asking.is_some()) {
            return Ok(());
        }
        tokio::select! {
            line = lines.recv(), if input_open => match line {
                None => input_open = false,
                Some(l) if asking.is_some() => {
                    let approval = asking.take().unwrap_or_default();
                    let answer = l.trim().to_ascii_lowercase();
                    let decision = if answer == "y" || answer == "yes" { Decision::Allow } else { Decision::Deny };
                    let p = ApproveParams { session_id: session.id.clone(), approval_id: approval, decision, remember: false };
                    client.session_approve(p).await?;
                    eprintln!("({})", decision.as_str());
                }
                Some(l) if l.trim().is_empty() => {}
                Some(l) if l.trim() == "/quit" => input_open = false,
                Some(text) => {
                    let p = SendMessageParams { session_id: session.id.clone(), text, client_message_id: None };
                    let r = client.session_send(p).await?;
                    pending.push(r.message_id);
                }
            },
            frame = events.next() => {
                let Some(Ok(frame)) = frame else {
                    let (c, body) = reconnect(&opts, &session.id, next).await?;
                    client = c;
                    events = SseReader::new(body);
                    continue;
                };
                let Ok(r) = serde_json::from_str::<EventRecord>(&frame.data) else { continue };
                if r.kind == EventKind::SessionResync {
                    next = r.data["next_seq"].as_u64().unwrap_or(next);
                    continue;
                }
                if r.seq < next {
                    continue;
                }
                next = r.seq + 1;
                let mut out = std::io::stdout().lock();
                let reply_to = r.data["reply_to"].as_str().or(r.data["message_id"].as_str()).map(str::to_string);
                match r.kind {
                    EventKind::SessionDelta => {
                        let _ = write!(out, "{}", r.data["text"].as_str().unwrap_or_default());
                        let _ = out.flush();
                    }
                    EventKind::SessionMessage if r.data["role"] == "assistant" => {
                        let _ = writeln!(out);
                        // A step that calls tools is not the end of the turn.
                        if r.data["tool_calls"].as_array().is_none_or(|c| c.is_empty()) {
                            pending.retain(|m| Some(m) != reply_to.as_ref());
                        }
                    }
                    EventKind::SessionCancelled => {
                        let _ = writeln!(out, "\n(cancelled)");
                        pending.retain(|m| Some(m) != reply_to.as_ref());
                    }
                    EventKind::SessionError => {
                        let _ = writeln!(out, "\n(error: {})", r.data["message"].as_str().unwrap_or("unknown"));
                        pending.retain(|m| Some(m) != reply_to.as_ref());
                    }
                    EventKind::ApprovalRequested => {
                        let _ = writeln!(
                            out,
                            "\n{} wants to run: {}\nallow? [y/N] ",
                            r.data["tool"].as_str().unwrap_or("a tool"),
                            r.data["args"]
                        );
                        let _ = out.flush();
                        asking = r.data["approval_id"].as_str().map(str::to_string);
                    }
                    EventKind::LaneDelta => {
                        let _ = write!(out, "{}", r.data["text"].as_str().unwrap_or_default());
                        let _ = out.flush();
                    }
                    EventKind::SessionEnded => {
                        let _ = writeln!(out, "(the session ended)");
                        return Ok(());
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Connects again (a restarted daemon takes a moment to come back) and reopens the
/// session's event stream from `next`, for up to a minute.
pub(crate) async fn reconnect(
    opts: &ConnectOptions,
    id: &str,
    next: u64,
) -> Result<(r1_client::Client, r1_client::EventStream), ClientError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut reported = false;
    loop {
        let last = match r1_client::connect(opts).await {
            Ok(c) => match c.session_events(id, next).await {
                Ok(body) => {
                    if reported {
                        eprintln!("(reconnected)");
                    }
                    return Ok((c, body));
                }
                Err(e @ ClientError::Api(_)) => return Err(e),
                Err(e) => e,
            },
            Err(e) => e,
        };
        if std::time::Instant::now() >= deadline {
            return Err(last);
        }
        if !reported {
            eprintln!("\n(the daemon went away; reconnecting…)");
            reported = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
