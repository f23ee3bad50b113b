//! The rules: [`update`] folds one [`Msg`] (a key, a record, an answer) into the
//! [`Model`] and returns the [`Cmd`]s it wants run. It does no I/O and reads no clock,
//! so every behaviour is a unit test, and any host (the terminal runner, a headless
//! driver) runs the same rules.

use r1_proto::events::{AssistantMessage, SessionMessage};
use r1_proto::{
    ApproveParams, Decision, EventData, EventKind, EventRecord, LaneRef, SearchHit, SearchParams,
    SendMessageParams, SessionRef, SessionState, SessionView, StartSessionParams,
};

use crate::keymap::{lookup, Action, Key, KeyCode, Scope};
use crate::model::{
    Approval, Attach, Config, Connection, DaemonInfo, Entry, EntryKind, Flash, Focus, Lane, Model,
    Overlay, TextInput, Transcript, LANE_OUTPUT_CAP,
};
use crate::view::{elements, layout, max_scroll, Target};

/// Something that happened: input from the user, or news from the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// A key was pressed.
    Key(Key),
    /// Text was pasted (bracketed paste): it goes into the field with the keyboard.
    Paste(String),
    /// The mouse scrolled or clicked.
    Mouse(Mouse),
    /// An element of [`crate::elements`] was activated by its id (a click, or a
    /// headless driver pressing it).
    Activate(String),
    /// Focus this lane of the shown session in the lanes pane (a headless driver's
    /// `tui.focus_lane`; the same as activating its `lanes.item.…` element).
    FocusLane(String),
    /// The terminal changed size.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// About a second passed.
    Tick,
    /// The connection to the daemon changed.
    Connection(Connection),
    /// The daemon's handshake.
    Daemon(DaemonInfo),
    /// The daemon's sessions (`session.list`).
    Sessions(Vec<SessionView>),
    /// One session as it is now (`session.get`, `cancel`, `pause`, `resume`).
    Session(SessionView),
    /// A session this client asked for was started.
    Started(SessionView),
    /// A record of a followed session.
    Record {
        /// The session it belongs to.
        session_id: String,
        /// The record.
        record: EventRecord,
    },
    /// The hits of a search.
    SearchResults {
        /// The query they answer.
        query: String,
        /// The hits, best first.
        hits: Vec<SearchHit>,
    },
    /// The completions of a path in the workdir prompt.
    Completions {
        /// The text they complete.
        input: String,
        /// Whole paths (directories end with `/`), sorted.
        candidates: Vec<String>,
    },
    /// A call failed.
    Failed {
        /// Its catalog method.
        method: &'static str,
        /// What went wrong, for people.
        message: String,
    },
}

/// What the mouse did, at a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mouse {
    /// The wheel turned towards the user (scroll back).
    ScrollUp {
        /// Column.
        column: u16,
        /// Row.
        row: u16,
    },
    /// The wheel turned away (scroll forward).
    ScrollDown {
        /// Column.
        column: u16,
        /// Row.
        row: u16,
    },
    /// The left button was pressed.
    Click {
        /// Column.
        column: u16,
        /// Row.
        row: u16,
    },
}

/// What the model wants done; the host runs it and answers with [`Msg`]s.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    /// Call a catalog operation; its answer (or failure) comes back as a [`Msg`].
    Call(Call),
    /// Follow this session's records from `since_seq` (inclusive), instead of the
    /// session followed so far, reconnecting on its own; records come back as
    /// [`Msg::Record`] and the link's ups and downs as [`Msg::Connection`].
    Follow {
        /// The session.
        session_id: String,
        /// The first seq wanted.
        since_seq: u64,
    },
    /// List the directories that complete `input` (relative to `cwd`, `~` for home):
    /// [`Msg::Completions`].
    Complete {
        /// The text typed.
        input: String,
        /// The directory relative paths start from.
        cwd: String,
    },
    /// Leave.
    Quit,
}

/// A catalog operation with its params: each is one method of `r1_proto::Api`.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `daemon.handshake`: answered with [`Msg::Daemon`].
    Handshake,
    /// `session.list`: [`Msg::Sessions`].
    ListSessions,
    /// `session.get`: [`Msg::Session`].
    GetSession(SessionRef),
    /// `session.start`: [`Msg::Started`].
    StartSession(StartSessionParams),
    /// `session.send`.
    Send(SendMessageParams),
    /// `session.cancel`: [`Msg::Session`].
    Cancel(SessionRef),
    /// `session.pause`: [`Msg::Session`].
    Pause(SessionRef),
    /// `session.resume`: [`Msg::Session`].
    Resume(SessionRef),
    /// `session.approve`.
    Approve(ApproveParams),
    /// `lanes.kill`.
    KillLane(LaneRef),
    /// `search.query`: [`Msg::SearchResults`].
    Search(SearchParams),
}

impl Call {
    /// The catalog method it calls.
    pub fn method(&self) -> &'static str {
        match self {
            Call::Handshake => "daemon.handshake",
            Call::ListSessions => "session.list",
            Call::GetSession(_) => "session.get",
            Call::StartSession(_) => "session.start",
            Call::Send(_) => "session.send",
            Call::Cancel(_) => "session.cancel",
            Call::Pause(_) => "session.pause",
            Call::Resume(_) => "session.resume",
            Call::Approve(_) => "session.approve",
            Call::KillLane(_) => "lanes.kill",
            Call::Search(_) => "search.query",
        }
    }
}

/// How many ticks a flash stays.
const FLASH_TICKS: u32 = 6;
/// The session list is refreshed every this many ticks, for the state badges of
/// sessions that are not followed.
const REFRESH_TICKS: u64 = 2;
/// Lines one turn of the mouse wheel scrolls.
const WHEEL_LINES: usize = 3;

/// The model for `cfg` and what to do first: the handshake, the session list, and the
/// session to start when a workdir was given.
pub fn init(cfg: Config) -> (Model, Vec<Cmd>) {
    let workdir = cfg.workdir.clone().filter(|_| cfg.session.is_none());
    let model = Model::new(cfg);
    let mut cmds = vec![Cmd::Call(Call::Handshake), Cmd::Call(Call::ListSessions)];
    if let Some(w) = workdir {
        cmds.push(start_session(&model, w));
    }
    (model, cmds)
}

/// Folds `msg` into `model` and returns what to do next. It edits the model in place,
/// which is `(Model, Msg) -> (Model, Vec<Cmd>)` without copying the transcripts.
pub fn update(m: &mut Model, msg: Msg) -> Vec<Cmd> {
    match msg {
        Msg::Key(key) => on_key(m, key),
        Msg::Paste(text) => {
            let carded = m.approval().is_some();
            match &mut m.overlay {
                Some(Overlay::Search { input, .. }) | Some(Overlay::Workdir { input, .. }) => {
                    input.insert(&text.replace(['\r', '\n'], " "))
                }
                Some(Overlay::Help { .. }) => {}
                // The card holds the keyboard: a paste would land in a box it hides.
                None if carded => {}
                None => {
                    m.focus = Focus::Input;
                    m.input
                        .insert(&text.replace("\r\n", "\n").replace('\r', "\n"));
                }
            }
            vec![]
        }
        Msg::Mouse(mouse) => on_mouse(m, mouse),
        Msg::Activate(id) => activate(m, &id),
        Msg::FocusLane(id) => focus_lane(m, id),
        Msg::Resize { width, height } => {
            m.width = width;
            m.height = height;
            vec![]
        }
        Msg::Tick => {
            m.ticks += 1;
            if let Some(f) = &mut m.flash {
                f.ttl = f.ttl.saturating_sub(1);
                if f.ttl == 0 {
                    m.flash = None;
                }
            }
            if m.ticks.is_multiple_of(REFRESH_TICKS) && m.connection == Connection::Connected {
                vec![Cmd::Call(Call::ListSessions)]
            } else {
                vec![]
            }
        }
        Msg::Connection(c) => {
            let back = c == Connection::Connected && m.connection != Connection::Connected;
            let was_lost = m.connection == Connection::Reconnecting;
            m.connection = c;
            if back && was_lost {
                // The daemon may be a new one: its version, the sessions' states.
                flash(m, "reconnected", false);
                let mut cmds = vec![Cmd::Call(Call::Handshake), Cmd::Call(Call::ListSessions)];
                if let Some(id) = &m.selected {
                    cmds.push(Cmd::Call(Call::GetSession(SessionRef::new(id.clone()))));
                }
                return cmds;
            }
            vec![]
        }
        Msg::Daemon(d) => {
            m.daemon = Some(d);
            if m.connection == Connection::Connecting {
                m.connection = Connection::Connected;
            }
            vec![]
        }
        Msg::Sessions(list) => {
            for v in list {
                merge_view(m, v);
            }
            attach(m)
        }
        Msg::Session(v) => {
            merge_view(m, v);
            vec![]
        }
        Msg::Started(v) => {
            let id = v.id.clone();
            merge_view(m, v);
            if matches!(m.attach, Some(Attach::Starting)) {
                m.attach = None;
            }
            m.focus = Focus::Input;
            select(m, &id)
        }
        Msg::Record { session_id, record } => {
            apply_record(m, &session_id, &record);
            vec![]
        }
        Msg::SearchResults { query, hits } => {
            if let Some(Overlay::Search {
                searched,
                hits: h,
                selected,
                pending,
                ..
            }) = &mut m.overlay
            {
                *searched = Some(query);
                *h = hits;
                *selected = 0;
                *pending = false;
            }
            vec![]
        }
        Msg::Completions { input, candidates } => {
            if let Some(Overlay::Workdir {
                input: field,
                candidates: c,
                selected,
            }) = &mut m.overlay
            {
                if field.text == input {
                    match candidates.as_slice() {
                        [] => {}
                        [one] => field.set(one.clone()),
                        many => field.set(common_prefix(many)),
                    }
                    *c = if candidates.len() > 1 {
                        candidates
                    } else {
                        Vec::new()
                    };
                    *selected = None;
                }
            }
            vec![]
        }
        Msg::Failed { method, message } => {
            if method == "search.query" {
                if let Some(Overlay::Search { pending, .. }) = &mut m.overlay {
                    *pending = false;
                }
            }
            if method == "session.approve" {
                if let Some((sid, apr)) = m.deciding.take() {
                    let t = m.transcripts.entry(sid).or_default();
                    if !t.approvals.iter().any(|a| a.id == apr.id) {
                        t.approvals.insert(0, apr);
                    }
                }
            }
            if method == "session.start" && matches!(m.attach, Some(Attach::Starting)) {
                m.attach = None;
            }
            flash(m, &format!("{method}: {message}"), true);
            vec![]
        }
    }
}

fn flash(m: &mut Model, text: &str, error: bool) {
    m.flash = Some(Flash {
        text: text.to_string(),
        error,
        ttl: FLASH_TICKS,
    });
}

/// Takes a session's view unless the client already applied newer records of it.
fn merge_view(m: &mut Model, v: SessionView) {
    match m.sessions.iter_mut().find(|s| s.id == v.id) {
        Some(old) if old.last_seq > v.last_seq => {}
        Some(old) => *old = v,
        None => m.sessions.push(v),
    }
}

/// Selects what the flags asked for, once the first session list arrived.
fn attach(m: &mut Model) -> Vec<Cmd> {
    match m.attach.clone() {
        Some(Attach::Session(id)) => {
            m.attach = None;
            if m.sessions.iter().any(|s| s.id == id) {
                select(m, &id)
            } else {
                flash(m, &format!("no session {id}"), true);
                vec![]
            }
        }
        Some(Attach::Newest) => {
            m.attach = None;
            let newest = m
                .sessions
                .iter()
                .rev()
                .find(|s| !matches!(s.state, SessionState::Ended | SessionState::Error))
                .map(|s| s.id.clone());
            match newest {
                Some(id) => select(m, &id),
                None => {
                    open_workdir(m);
                    vec![]
                }
            }
        }
        Some(Attach::Starting) | None => vec![],
    }
}

/// Shows session `id`: follows it from where the client left it.
fn select(m: &mut Model, id: &str) -> Vec<Cmd> {
    let changed = m.selected.as_deref() != Some(id);
    m.selected = Some(id.to_string());
    if changed {
        m.scroll = 0;
        m.lane = None;
        m.lane_scroll = 0;
    }
    let since = m.transcripts.entry(id.to_string()).or_default().next_seq;
    vec![
        Cmd::Follow {
            session_id: id.to_string(),
            since_seq: since,
        },
        Cmd::Call(Call::GetSession(SessionRef::new(id))),
    ]
}

fn start_session(m: &Model, workdir: String) -> Cmd {
    Cmd::Call(Call::StartSession(StartSessionParams {
        workdir,
        engine: m.engine.clone(),
        model: None,
        title: None,
        policy: None,
        token_budget: None,
        worktree: None,
    }))
}

fn open_workdir(m: &mut Model) {
    let start = m
        .session()
        .map(|s| s.workdir.clone())
        .unwrap_or_else(|| m.cwd.clone());
    m.overlay = Some(Overlay::Workdir {
        input: TextInput::with(start),
        candidates: Vec::new(),
        selected: None,
    });
}

/// The scope of whatever has the keyboard.
pub fn scope(m: &Model) -> Scope {
    match &m.overlay {
        Some(Overlay::Help { .. }) => Scope::Help,
        Some(Overlay::Search { .. }) => Scope::Search,
        Some(Overlay::Workdir { .. }) => Scope::Workdir,
        None if m.approval().is_some() => Scope::Approval,
        None => match m.focus {
            Focus::Input => Scope::Input,
            Focus::Sessions => Scope::Sessions,
            Focus::Lanes => Scope::Lanes,
        },
    }
}

fn on_key(m: &mut Model, key: Key) -> Vec<Cmd> {
    let scope = scope(m);
    if scope == Scope::Input && m.input.text.is_empty() && key == Key::char('?') {
        return act(m, Action::Help);
    }
    if let Some(a) = lookup(scope, &key) {
        return act(m, a);
    }
    // Overlays hold the keyboard: only their own keys, Ctrl-Q and typing.
    let overlay = matches!(scope, Scope::Help | Scope::Search | Scope::Workdir);
    if let Some(a) = lookup(Scope::Global, &key) {
        if !overlay || a == Action::Quit {
            return act(m, a);
        }
    }
    match &mut m.overlay {
        Some(Overlay::Search { input, .. }) | Some(Overlay::Workdir { input, .. }) => {
            match key.typed() {
                Some(c) => input.insert(c.encode_utf8(&mut [0; 4])),
                None => {
                    input.edit(&key);
                }
            }
            if let Some(Overlay::Workdir {
                candidates,
                selected,
                ..
            }) = &mut m.overlay
            {
                candidates.clear();
                *selected = None;
            }
        }
        Some(Overlay::Help { .. }) => {}
        None if scope == Scope::Input => match key.typed() {
            Some(c) => m.input.insert(c.encode_utf8(&mut [0; 4])),
            None => {
                m.input.edit(&key);
            }
        },
        // A character typed in another pane goes to the message box.
        None if scope != Scope::Approval && key.typed().is_some() => {
            m.focus = Focus::Input;
            if let Some(c) = key.typed() {
                m.input.insert(c.encode_utf8(&mut [0; 4]));
            }
        }
        None => {}
    }
    vec![]
}

/// Does `a`, the action of a key or an element.
pub fn act(m: &mut Model, a: Action) -> Vec<Cmd> {
    let sid = m.selected.clone();
    match a {
        Action::Quit => {
            m.quit = true;
            vec![Cmd::Quit]
        }
        Action::Cancel => match (sid, m.state()) {
            (Some(id), Some(SessionState::Busy | SessionState::WaitingOnApproval)) => {
                flash(m, "cancelling the turn", false);
                vec![Cmd::Call(Call::Cancel(SessionRef::new(id)))]
            }
            _ => {
                flash(m, "nothing to cancel (Ctrl-Q quits)", false);
                vec![]
            }
        },
        Action::NextSession | Action::PrevSession => {
            cycle(m, if a == Action::NextSession { 1 } else { -1 })
        }
        Action::Search => {
            m.overlay = Some(Overlay::Search {
                input: TextInput::default(),
                searched: None,
                hits: Vec::new(),
                selected: 0,
                pending: false,
            });
            vec![]
        }
        Action::Help => {
            m.overlay = Some(Overlay::Help { scroll: 0 });
            vec![]
        }
        Action::NewSession => {
            open_workdir(m);
            vec![]
        }
        Action::PauseResume => match (sid, m.state()) {
            (Some(id), Some(SessionState::Paused)) => {
                vec![Cmd::Call(Call::Resume(SessionRef::new(id)))]
            }
            (Some(_), Some(SessionState::Ended | SessionState::Error)) | (None, _) => {
                flash(m, "no live session to pause", false);
                vec![]
            }
            (Some(id), _) => vec![Cmd::Call(Call::Pause(SessionRef::new(id)))],
        },
        Action::FocusNext | Action::FocusPrev => {
            const ORDER: [Focus; 3] = [Focus::Input, Focus::Lanes, Focus::Sessions];
            let i = ORDER.iter().position(|f| *f == m.focus).unwrap_or(0);
            let step = if a == Action::FocusNext {
                1
            } else {
                ORDER.len() - 1
            };
            m.focus = ORDER[(i + step) % ORDER.len()];
            vec![]
        }
        Action::Send => submit(m),
        Action::Newline => {
            m.input.insert("\n");
            vec![]
        }
        Action::Allow => decide(m, Decision::Allow, false),
        Action::Deny => decide(m, Decision::Deny, false),
        Action::AlwaysAllow => decide(m, Decision::Allow, true),
        Action::KillLane => match (sid, m.focused_lane()) {
            (Some(id), Some(lane)) if lane.running() => {
                let lane_id = lane.id.clone();
                flash(m, &format!("killing {lane_id}"), false);
                vec![Cmd::Call(Call::KillLane(LaneRef {
                    session_id: id,
                    lane_id,
                }))]
            }
            _ => {
                flash(m, "no running lane to kill", false);
                vec![]
            }
        },
        Action::Up | Action::Down => {
            let dir: i32 = if a == Action::Up { -1 } else { 1 };
            move_in(m, dir)
        }
        Action::PageUp | Action::PageDown => {
            let page = usize::from(m.height / 2).max(1);
            scroll(m, m.focus == Focus::Lanes, a == Action::PageUp, page);
            vec![]
        }
        Action::Open => {
            m.focus = Focus::Input;
            vec![]
        }
        Action::Close => {
            m.overlay = None;
            vec![]
        }
        Action::Submit => submit_overlay(m),
        Action::Complete => match &m.overlay {
            Some(Overlay::Workdir { input, .. }) => vec![Cmd::Complete {
                input: input.text.clone(),
                cwd: m.cwd.clone(),
            }],
            _ => vec![],
        },
    }
}

/// Scrolls the conversation (or the focused lane's output) back or forward.
fn scroll(m: &mut Model, lanes: bool, back: bool, lines: usize) {
    let v = if lanes {
        &mut m.lane_scroll
    } else {
        &mut m.scroll
    };
    *v = if back {
        v.saturating_add(lines)
    } else {
        v.saturating_sub(lines)
    };
    // Not past the top, so scrolling forward again answers at once.
    if !lanes && back {
        m.scroll = m.scroll.min(max_scroll(m));
    }
}

fn cycle(m: &mut Model, dir: i64) -> Vec<Cmd> {
    if m.sessions.is_empty() {
        return vec![];
    }
    let n = m.sessions.len() as i64;
    let i = m
        .selected
        .as_ref()
        .and_then(|id| m.sessions.iter().position(|s| &s.id == id))
        .map_or(if dir > 0 { -1 } else { 0 }, |i| i as i64);
    let next = (i + dir).rem_euclid(n) as usize;
    let id = m.sessions[next].id.clone();
    select(m, &id)
}

fn move_in(m: &mut Model, dir: i32) -> Vec<Cmd> {
    match &mut m.overlay {
        Some(Overlay::Help { scroll }) => {
            *scroll = scroll.saturating_add_signed(dir as isize);
            return vec![];
        }
        Some(Overlay::Search { hits, selected, .. }) => {
            if !hits.is_empty() {
                *selected =
                    (*selected as i64 + i64::from(dir)).clamp(0, hits.len() as i64 - 1) as usize;
            }
            return vec![];
        }
        Some(Overlay::Workdir {
            input,
            candidates,
            selected,
        }) => {
            if !candidates.is_empty() {
                let n = candidates.len() as i64;
                let i = selected.map_or(if dir > 0 { -1 } else { n }, |i| i as i64);
                let i = (i + i64::from(dir)).rem_euclid(n) as usize;
                *selected = Some(i);
                input.set(candidates[i].clone());
            }
            return vec![];
        }
        None => {}
    }
    match m.focus {
        Focus::Input => {
            if !m.input.move_line(dir) {
                scroll(m, false, dir < 0, 1);
            }
            vec![]
        }
        Focus::Sessions => cycle(m, i64::from(dir)),
        Focus::Lanes => {
            let Some(t) = m.transcript() else {
                return vec![];
            };
            if t.lanes.is_empty() {
                return vec![];
            }
            let cur = m
                .focused_lane()
                .and_then(|l| t.lanes.iter().position(|x| x.id == l.id))
                .unwrap_or(t.lanes.len() - 1);
            let next = (cur as i64 + i64::from(dir)).clamp(0, t.lanes.len() as i64 - 1) as usize;
            m.lane = Some(t.lanes[next].id.clone());
            m.lane_scroll = 0;
            vec![]
        }
    }
}

fn decide(m: &mut Model, decision: Decision, remember: bool) -> Vec<Cmd> {
    let (Some(sid), Some(apr)) = (m.selected.clone(), m.approval().cloned()) else {
        return vec![];
    };
    // The card goes at once so a second key press does not decide twice; the
    // `approval.resolved` record confirms it (a failed call brings it back).
    if let Some(t) = m.transcripts.get_mut(&sid) {
        t.approvals.retain(|a| a.id != apr.id);
    }
    let what = match (decision, remember) {
        (Decision::Allow, true) => format!("always allowing {}", apr.tool),
        (Decision::Allow, false) => format!("allowed {}", apr.tool),
        (Decision::Deny, _) => format!("denied {}", apr.tool),
    };
    flash(m, &what, false);
    m.deciding = Some((sid.clone(), apr.clone()));
    vec![Cmd::Call(Call::Approve(ApproveParams {
        session_id: sid,
        approval_id: apr.id,
        decision,
        remember,
    }))]
}

/// Sends the message box, or runs its `:command`.
fn submit(m: &mut Model) -> Vec<Cmd> {
    let text = m.input.text.trim_end().to_string();
    if text.trim().is_empty() {
        return vec![];
    }
    let trimmed = text.trim();
    if let Some(cmd) = trimmed.strip_prefix(':') {
        let (verb, arg) = cmd.split_once(' ').unwrap_or((cmd, ""));
        let arg = arg.trim();
        let known = match verb {
            "q" | "quit" | "q!" => Some(act(m, Action::Quit)),
            "new" if arg.is_empty() => Some(act(m, Action::NewSession)),
            "new" => Some(vec![start_session(m, absolute(&m.cwd, arg))]),
            "pause" | "resume" => Some(act(m, Action::PauseResume)),
            "cancel" => Some(act(m, Action::Cancel)),
            "help" => Some(act(m, Action::Help)),
            _ => None,
        };
        if let Some(cmds) = known {
            m.input.take();
            return cmds;
        }
    }
    let Some(sid) = m.selected.clone() else {
        flash(m, "no session: Ctrl-T starts one", true);
        return vec![];
    };
    let mut cmds = Vec::new();
    match m.state() {
        Some(SessionState::Ended | SessionState::Error) => {
            flash(
                m,
                "this session takes no more messages: Ctrl-T starts one",
                true,
            );
            return vec![];
        }
        // A paused session refuses messages: resume it first (calls run in order).
        Some(SessionState::Paused) => {
            flash(m, "resuming the session", false);
            cmds.push(Cmd::Call(Call::Resume(SessionRef::new(sid.clone()))));
        }
        _ => {}
    }
    m.input.take();
    m.sent += 1;
    m.scroll = 0;
    cmds.push(Cmd::Call(Call::Send(SendMessageParams {
        session_id: sid,
        text,
        client_message_id: Some(format!("{}-{}", m.client_tag, m.sent)),
    })));
    cmds
}

fn submit_overlay(m: &mut Model) -> Vec<Cmd> {
    match m.overlay.take() {
        Some(Overlay::Search {
            input,
            searched,
            hits,
            selected,
            pending,
        }) => {
            let q = input.text.trim().to_string();
            if !q.is_empty() && searched.as_deref() != Some(q.as_str()) {
                m.overlay = Some(Overlay::Search {
                    input,
                    searched,
                    hits,
                    selected,
                    pending: true,
                });
                return vec![Cmd::Call(Call::Search(SearchParams {
                    q,
                    limit: Some(50),
                    ..SearchParams::default()
                }))];
            }
            match hits.get(selected) {
                Some(hit) => {
                    let id = hit.session_id.clone();
                    if !m.sessions.iter().any(|s| s.id == id) {
                        flash(m, &format!("{id} is not loaded"), true);
                        return vec![];
                    }
                    m.focus = Focus::Input;
                    select(m, &id)
                }
                None => {
                    m.overlay = Some(Overlay::Search {
                        input,
                        searched,
                        hits,
                        selected,
                        pending,
                    });
                    vec![]
                }
            }
        }
        Some(Overlay::Workdir { input, .. }) => {
            let path = input.text.trim();
            if path.is_empty() {
                m.overlay = Some(Overlay::Workdir {
                    input,
                    candidates: Vec::new(),
                    selected: None,
                });
                return vec![];
            }
            let dir = absolute(&m.cwd, path);
            flash(m, &format!("starting a session in {dir}"), false);
            m.attach = Some(Attach::Starting);
            vec![start_session(m, dir)]
        }
        other => {
            m.overlay = other;
            vec![]
        }
    }
}

/// `path` made absolute against `cwd`, without touching the file system (the daemon
/// checks that it exists). A trailing `/` is dropped.
pub fn absolute(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", cwd.trim_end_matches('/'), path)
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The longest prefix all `items` share, cut at a character boundary.
fn common_prefix(items: &[String]) -> String {
    let Some(first) = items.first() else {
        return String::new();
    };
    let mut end = first.len();
    for s in &items[1..] {
        end = end.min(
            first
                .char_indices()
                .zip(s.chars())
                .find(|((_, a), b)| a != b)
                .map_or(end.min(s.len()), |((i, _), _)| i),
        );
    }
    first[..end].to_string()
}

fn on_mouse(m: &mut Model, mouse: Mouse) -> Vec<Cmd> {
    let (column, row) = match mouse {
        Mouse::ScrollUp { column, row }
        | Mouse::ScrollDown { column, row }
        | Mouse::Click { column, row } => (column, row),
    };
    let inside = |r: Option<ratatui::layout::Rect>| {
        r.is_some_and(|r| r.contains(ratatui::layout::Position::new(column, row)))
    };
    let panes = layout(m);
    match mouse {
        Mouse::ScrollUp { .. } | Mouse::ScrollDown { .. } => {
            let up = matches!(mouse, Mouse::ScrollUp { .. });
            if let Some(Overlay::Help { .. }) = m.overlay {
                return move_in(
                    m,
                    if up {
                        -(WHEEL_LINES as i32)
                    } else {
                        WHEEL_LINES as i32
                    },
                );
            }
            if inside(panes.sessions) {
                return cycle(m, if up { -1 } else { 1 });
            }
            scroll(m, inside(panes.lanes), up, WHEEL_LINES);
            vec![]
        }
        Mouse::Click { .. } => {
            let hit = elements(m)
                .into_iter()
                .rev()
                .find(|e| e.rect.is_some_and(|r| r.contains(column, row)));
            if let Some(e) = hit {
                return activate(m, &e.id);
            }
            if m.overlay.is_none() {
                if inside(panes.sessions) {
                    m.focus = Focus::Sessions;
                } else if inside(panes.lanes) {
                    m.focus = Focus::Lanes;
                } else if inside(Some(panes.input)) || inside(Some(panes.conversation)) {
                    m.focus = Focus::Input;
                }
            }
            vec![]
        }
    }
}

/// Activates the element `id` of [`elements`]: what a click on it does.
fn activate(m: &mut Model, id: &str) -> Vec<Cmd> {
    let Some(e) = elements(m).into_iter().find(|e| e.id == id) else {
        flash(m, &format!("no element {id} on screen"), true);
        return vec![];
    };
    match e.target {
        Target::Action(a) => {
            if a == Action::KillLane {
                m.focus = Focus::Lanes;
            }
            act(m, a)
        }
        Target::Session(id) => {
            m.focus = Focus::Sessions;
            select(m, &id)
        }
        Target::Lane(id) => focus_lane(m, id),
    }
}

/// Focuses lane `id` of the shown session in the lanes pane.
fn focus_lane(m: &mut Model, id: String) -> Vec<Cmd> {
    if !m
        .transcript()
        .is_some_and(|t| t.lanes.iter().any(|l| l.id == id))
    {
        flash(m, &format!("no lane {id} in this session"), true);
        return vec![];
    }
    m.focus = Focus::Lanes;
    m.lane = Some(id);
    m.lane_scroll = 0;
    vec![]
}

/// Folds a record of session `sid` into its transcript (and its listed view).
fn apply_record(m: &mut Model, sid: &str, r: &EventRecord) {
    let t = m.transcripts.entry(sid.to_string()).or_default();
    if r.kind == EventKind::SessionResync {
        // The journal was repaired behind the client: go on from where it says.
        if let Some(next) = r.data["next_seq"].as_u64() {
            t.next_seq = next;
        }
        notice(t, "the journal was repaired; following it again");
        return;
    }
    if r.seq < t.next_seq {
        return;
    }
    t.next_seq = r.seq + 1;
    let Ok(event) = r.event() else { return };
    let mut state: Option<SessionState> = None;
    let mut usage = None;
    match event {
        EventData::SessionCreated(c) => notice(t, &format!("session started in {}", c.workdir)),
        EventData::SessionMessage(SessionMessage::User(u)) => t.entries.push(Entry {
            kind: EntryKind::User,
            text: u.text,
            reply_to: Some(u.message_id),
            streaming: false,
        }),
        EventData::SessionMessage(SessionMessage::Assistant(a)) => {
            usage = a.usage;
            assistant(t, a);
        }
        EventData::SessionDelta(d) => {
            match t
                .entries
                .iter_mut()
                .rev()
                .find(|e| e.streaming && e.reply_to.as_deref() == Some(&d.reply_to))
            {
                Some(e) => e.text.push_str(&d.text),
                None => t.entries.push(Entry {
                    kind: EntryKind::Assistant,
                    text: d.text,
                    reply_to: Some(d.reply_to),
                    streaming: true,
                }),
            }
        }
        EventData::SessionState(s) => state = Some(s.state),
        EventData::ToolStarted(s) => {
            if let Some(lane) = s.lane.as_deref() {
                let l = lane_mut(t, lane, &s.tool);
                l.args = args_summary(&s.args);
            }
        }
        EventData::ToolCompleted(c) => {
            let tool = c.tool.unwrap_or_else(|| "tool".into());
            let first = c.content.lines().next().unwrap_or("").to_string();
            let (mark, what) = if c.denied {
                ("✗", "denied".to_string())
            } else if c.is_error {
                ("✗", format!("failed: {first}"))
            } else {
                ("✓", first)
            };
            let more = if c.content.lines().nth(1).is_some() {
                " …"
            } else {
                ""
            };
            t.entries.push(Entry {
                kind: EntryKind::Tool,
                text: format!("{mark} {tool} {what}{more}"),
                reply_to: None,
                streaming: false,
            });
        }
        EventData::ApprovalRequested(a) => {
            if !t.approvals.iter().any(|x| x.id == a.approval_id) {
                t.approvals.push(Approval {
                    id: a.approval_id,
                    tool: a.tool,
                    args: a.args,
                });
            }
        }
        EventData::ApprovalResolved(a) => {
            t.approvals.retain(|x| x.id != a.approval_id);
            if m.deciding
                .as_ref()
                .is_some_and(|(_, d)| d.id == a.approval_id)
            {
                m.deciding = None;
            }
            let always = if a.remember { " (always)" } else { "" };
            notice(t, &format!("approval {}{always}", a.decision.as_str()));
        }
        EventData::LaneCreated(l) => {
            lane_mut(t, &l.lane, &l.tool);
        }
        EventData::LaneDelta(d) => {
            let l = lane_mut(t, &d.lane, "");
            l.output.push_str(&d.text);
            if l.output.len() > LANE_OUTPUT_CAP {
                let mut cut = l.output.len() - LANE_OUTPUT_CAP;
                while !l.output.is_char_boundary(cut) {
                    cut += 1;
                }
                l.output.drain(..cut);
            }
        }
        EventData::LaneStatus(s) => lane_mut(t, &s.lane, "").status = s.status.as_str().into(),
        EventData::LaneKilled(k) => lane_mut(t, &k.lane, "").status = "killed".into(),
        EventData::SessionPaused(p) => {
            end_streaming(t, None);
            notice(t, &format!("paused ({})", p.reason));
        }
        EventData::SessionResumed(_) => notice(t, "resumed"),
        EventData::SessionCancelled(c) => {
            end_streaming(t, Some(&c.message_id));
            notice(t, "cancelled");
        }
        EventData::SessionEnded(_) => {
            end_streaming(t, None);
            notice(t, "the session ended");
            state = Some(SessionState::Ended);
        }
        EventData::SessionError(e) => {
            end_streaming(t, e.message_id.as_deref());
            let text = if e.interrupted {
                format!("interrupted by a daemon restart: {}", e.message)
            } else {
                e.message
            };
            t.entries.push(Entry {
                kind: EntryKind::Error,
                text,
                reply_to: e.message_id,
                streaming: false,
            });
        }
        EventData::DaemonReloaded(_) => notice(t, "the daemon restarted"),
        EventData::HookBlocked(b) => t.entries.push(Entry {
            kind: EntryKind::Error,
            text: format!("blocked by the {} hook: {}", b.hook, b.reason),
            reply_to: None,
            streaming: false,
        }),
        EventData::HookFailed(f) => notice(t, &format!("hook {} failed: {}", f.hook, f.reason)),
        EventData::SessionCompacted(c) => {
            usage = c.usage;
            notice(t, &format!("conversation compacted ({})", c.method));
        }
        EventData::VerifyCompleted(v) => {
            let mark = if v.ok { "✓" } else { "✗" };
            notice(t, &format!("{mark} {}: {}", v.command, v.summary));
        }
        EventData::CortexNote(n) => notice(t, &format!("note ({}): {}", n.source, n.text)),
        EventData::SessionResync(_) | EventData::HookRan(_) | EventData::CortexLobe(_) => {}
    }
    // The listed view follows the records: state, last seq, tokens.
    if let Some(v) = m.sessions.iter_mut().find(|s| s.id == sid) {
        if r.seq > v.last_seq {
            v.last_seq = r.seq;
            if let Some(u) = usage {
                v.usage.add(&u);
            }
            if let Some(s) = state {
                v.state = s;
            }
        }
    }
}

fn assistant(t: &mut Transcript, a: AssistantMessage) {
    // The whole message replaces the deltas: it is the truth if any went missing.
    match t
        .entries
        .iter_mut()
        .rev()
        .find(|e| e.streaming && e.reply_to.as_deref() == Some(&a.reply_to))
    {
        Some(e) => {
            if !a.text.is_empty() {
                e.text = a.text;
            }
            e.streaming = false;
        }
        None if !a.text.is_empty() => t.entries.push(Entry {
            kind: EntryKind::Assistant,
            text: a.text,
            reply_to: Some(a.reply_to.clone()),
            streaming: false,
        }),
        None => {}
    }
    for call in a.tool_calls {
        t.entries.push(Entry {
            kind: EntryKind::Tool,
            text: format!("⚙ {} {}", call.name, args_summary(&call.arguments)),
            reply_to: Some(a.reply_to.clone()),
            streaming: false,
        });
    }
}

/// Stops the streaming of the answers to `reply_to` (all of them when `None`).
fn end_streaming(t: &mut Transcript, reply_to: Option<&str>) {
    for e in &mut t.entries {
        if e.streaming && reply_to.is_none_or(|r| e.reply_to.as_deref() == Some(r)) {
            e.streaming = false;
        }
    }
}

fn notice(t: &mut Transcript, text: &str) {
    t.entries.push(Entry {
        kind: EntryKind::Notice,
        text: text.to_string(),
        reply_to: None,
        streaming: false,
    });
}

fn lane_mut<'a>(t: &'a mut Transcript, id: &str, tool: &str) -> &'a mut Lane {
    let i = match t.lanes.iter().position(|l| l.id == id) {
        Some(i) => i,
        None => {
            t.lanes.push(Lane {
                id: id.to_string(),
                tool: tool.to_string(),
                args: String::new(),
                status: "running".into(),
                output: String::new(),
            });
            t.lanes.len() - 1
        }
    };
    let l = &mut t.lanes[i];
    if l.tool.is_empty() && !tool.is_empty() {
        l.tool = tool.to_string();
    }
    l
}

/// A short form of a tool call's arguments: the command of a shell tool, the path of
/// a file tool, else the JSON.
pub fn args_summary(args: &serde_json::Value) -> String {
    for k in ["command", "path", "pattern", "query", "url"] {
        if let Some(s) = args[k].as_str() {
            return s.to_string();
        }
    }
    match args {
        serde_json::Value::Object(o) if o.is_empty() => String::new(),
        other => other.to_string(),
    }
}

impl From<KeyCode> for Key {
    fn from(code: KeyCode) -> Key {
        Key::plain(code)
    }
}
