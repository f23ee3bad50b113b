//! `r1 tui`: the full-screen terminal client. Its state, rules and drawing are the
//! `r1-tui` crate; this is its host: it owns the terminal (raw mode, the alternate
//! screen, mouse reporting, bracketed paste), turns terminal events into `Msg`s, runs
//! the model's `Cmd`s against the daemon through `r1-client`, and draws after each
//! batch of messages.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use crossterm::event::{
    self, DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event, KeyEventKind, KeyModifiers, MouseButton, MouseEventKind,
};
use crossterm::{cursor, execute, terminal};
use r1_client::{Client, ClientError, ConnectOptions, SseReader};
use r1_proto::{EventKind, EventRecord};
use r1_tui::{Call, Cmd, ColorMode, Config, Connection, Key, KeyCode, Mouse, Msg};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The flags of `r1 tui` (its help text is on `Command::Tui` in `main.rs`).
#[derive(Debug, Args)]
pub struct TuiArgs {
    /// Attach to this session (`ses_…`).
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// Start a new session working in this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "session")]
    workdir: Option<PathBuf>,
    /// The engine of the sessions this client starts (default: the daemon's).
    #[arg(long)]
    engine: Option<String>,
}

/// How long a call keeps trying to reach a daemon that went away: a restart takes a
/// second or two, a slow machine more.
const RECONNECT_WINDOW: Duration = Duration::from_secs(30);
/// The longest pause between two attempts to follow a session again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The most messages folded into one frame: a burst of records draws once, and a
/// flood still lets a frame through.
const BATCH: usize = 512;

/// Runs the client; returns the exit code.
pub fn run(home: &Path, args: TuiArgs) -> i32 {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        eprintln!("r1 tui needs a terminal; `r1 chat` works with pipes and scripts");
        return 2;
    }
    let rt = match crate::output::runtime(2) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = rt.block_on(async {
        let opts = ConnectOptions::new(home);
        let client = match r1_client::connect_or_spawn(&opts).await {
            Ok(c) => Arc::new(c.with_reconnect(RECONNECT_WINDOW)),
            Err(e) => return crate::output::fail(&e, false),
        };
        match client_loop(client, args).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("r1 tui: {e}");
                1
            }
        }
    });
    // The input thread is blocked reading the terminal; leaving the process ends it.
    rt.shutdown_background();
    code
}

/// Restores the terminal when dropped, panics included.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> std::io::Result<TerminalGuard> {
        terminal::enable_raw_mode()?;
        let guard = TerminalGuard;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            EnableMouseCapture,
            EnableBracketedPaste
        )?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    let _ = execute!(
        std::io::stdout(),
        DisableBracketedPaste,
        DisableMouseCapture,
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
    let _ = terminal::disable_raw_mode();
}

async fn client_loop(client: Arc<Client>, args: TuiArgs) -> std::io::Result<()> {
    let (width, height) = terminal::size()?;
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "/".into());
    let env = |k: &str| std::env::var(k).ok();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let cfg = Config {
        session: args.session,
        workdir: args
            .workdir
            .map(|w| std::path::absolute(&w).unwrap_or(w).display().to_string()),
        engine: args.engine,
        cwd,
        color: ColorMode::detect(
            env("NO_COLOR").as_deref(),
            env("COLORTERM").as_deref(),
            env("TERM").as_deref(),
        ),
        width,
        height,
        client_tag: format!("tui-{}-{started}", std::process::id()),
    };
    let (mut model, cmds) = r1_tui::init(cfg);
    let _guard = TerminalGuard::enter()?;
    let mut term = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    let (tx, mut rx) = mpsc::channel::<Msg>(1024);
    spawn_input(tx.clone());
    let ticker = tx.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            if ticker.send(Msg::Tick).await.is_err() {
                break;
            }
        }
    });
    let (calls, queue) = mpsc::unbounded_channel::<Call>();
    tokio::spawn(caller(client.clone(), queue, tx.clone()));
    let mut host = Host {
        client,
        tx,
        calls,
        follow: None,
    };
    host.run(cmds);
    loop {
        term.draw(|f| r1_tui::view(&model, f))?;
        let Some(msg) = rx.recv().await else {
            return Ok(());
        };
        let mut cmds = r1_tui::update(&mut model, msg);
        for _ in 0..BATCH {
            match rx.try_recv() {
                Ok(msg) => cmds.extend(r1_tui::update(&mut model, msg)),
                Err(_) => break,
            }
        }
        if host.run(cmds) {
            return Ok(());
        }
    }
}

/// Reads terminal events on a thread of its own (crossterm's reads block).
fn spawn_input(tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if let Some(msg) = to_msg(ev) {
                if tx.blocking_send(msg).is_err() {
                    break;
                }
            }
        }
    });
}

fn to_msg(ev: Event) -> Option<Msg> {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => {
            use crossterm::event::KeyCode as C;
            let code = match k.code {
                C::Char(c) => KeyCode::Char(c),
                C::Enter => KeyCode::Enter,
                C::Esc => KeyCode::Esc,
                C::Tab => KeyCode::Tab,
                C::BackTab => KeyCode::BackTab,
                C::Backspace => KeyCode::Backspace,
                C::Delete => KeyCode::Delete,
                C::Left => KeyCode::Left,
                C::Right => KeyCode::Right,
                C::Up => KeyCode::Up,
                C::Down => KeyCode::Down,
                C::Home => KeyCode::Home,
                C::End => KeyCode::End,
                C::PageUp => KeyCode::PageUp,
                C::PageDown => KeyCode::PageDown,
                C::F(n) => KeyCode::F(n),
                _ => return None,
            };
            let m = k.modifiers;
            Some(Msg::Key(Key::new(
                code,
                m.contains(KeyModifiers::CONTROL),
                m.contains(KeyModifiers::ALT),
                m.contains(KeyModifiers::SHIFT),
            )))
        }
        Event::Mouse(me) => {
            let (column, row) = (me.column, me.row);
            match me.kind {
                MouseEventKind::ScrollUp => Some(Msg::Mouse(Mouse::ScrollUp { column, row })),
                MouseEventKind::ScrollDown => Some(Msg::Mouse(Mouse::ScrollDown { column, row })),
                MouseEventKind::Down(MouseButton::Left) => {
                    Some(Msg::Mouse(Mouse::Click { column, row }))
                }
                _ => None,
            }
        }
        Event::Resize(width, height) => Some(Msg::Resize { width, height }),
        Event::Paste(text) => Some(Msg::Paste(text)),
        _ => None,
    }
}

/// Runs the model's commands.
struct Host {
    client: Arc<Client>,
    tx: mpsc::Sender<Msg>,
    /// Calls go to one task, in order: a resume must land before the send after it.
    calls: mpsc::UnboundedSender<Call>,
    /// The task following the shown session.
    follow: Option<JoinHandle<()>>,
}

impl Host {
    /// Runs `cmds`; true when one of them is `Quit`.
    fn run(&mut self, cmds: Vec<Cmd>) -> bool {
        for cmd in cmds {
            match cmd {
                Cmd::Quit => return true,
                Cmd::Call(call) => {
                    let _ = self.calls.send(call);
                }
                Cmd::Follow {
                    session_id,
                    since_seq,
                } => {
                    if let Some(old) = self.follow.take() {
                        old.abort();
                    }
                    self.follow = Some(tokio::spawn(follow(
                        self.client.clone(),
                        session_id,
                        since_seq,
                        self.tx.clone(),
                    )));
                }
                Cmd::Complete { input, cwd } => {
                    let tx = self.tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let home = std::env::var_os("HOME").map(PathBuf::from);
                        let candidates = r1_tui::complete_path(&input, &cwd, home.as_deref());
                        let _ = tx.blocking_send(Msg::Completions { input, candidates });
                    });
                }
            }
        }
        false
    }
}

/// Runs calls one after the other (with the executor the daemon's headless TUIs use
/// too) and answers each with a message.
async fn caller(
    client: Arc<Client>,
    mut queue: mpsc::UnboundedReceiver<Call>,
    tx: mpsc::Sender<Msg>,
) {
    while let Some(call) = queue.recv().await {
        let Some(msg) = r1_tui::run_call(client.as_ref(), call).await else {
            continue;
        };
        if tx.send(msg).await.is_err() {
            break;
        }
    }
}

/// Follows session `id` from `since`: every record goes to the model; when the stream
/// ends (the daemon restarts or stops), it says so and opens the stream again from
/// the record after the last one it passed on, so nothing is missed or repeated.
async fn follow(client: Arc<Client>, id: String, since: u64, tx: mpsc::Sender<Msg>) {
    let mut next = since;
    let mut lost = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.session_events(&id, next).await {
            Ok(body) => {
                if lost {
                    lost = false;
                    let _ = tx.send(Msg::Connection(Connection::Connected)).await;
                }
                backoff = Duration::from_millis(100);
                let mut events = SseReader::new(body);
                let mut ended = false;
                while let Some(Ok(frame)) = events.next().await {
                    let Ok(record) = serde_json::from_str::<EventRecord>(&frame.data) else {
                        continue;
                    };
                    if record.kind == EventKind::SessionResync {
                        next = record.data["next_seq"].as_u64().unwrap_or(next);
                    } else if record.seq < next {
                        continue;
                    } else {
                        next = record.seq + 1;
                        ended = record.kind == EventKind::SessionEnded;
                    }
                    let msg = Msg::Record {
                        session_id: id.clone(),
                        record,
                    };
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
                if ended {
                    return;
                }
            }
            Err(ClientError::Api(e)) => {
                let _ = tx
                    .send(Msg::Failed {
                        method: "session.events",
                        message: e.message,
                    })
                    .await;
                return;
            }
            Err(_) => {}
        }
        if !lost {
            lost = true;
            let _ = tx.send(Msg::Connection(Connection::Reconnecting)).await;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
