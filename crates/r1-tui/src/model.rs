//! The state of the client: everything the view draws and the keys act on. It holds
//! no handle to anything: the daemon's answers and records arrive as
//! [`Msg`](crate::Msg)s, and what it wants done leaves as [`Cmd`](crate::Cmd)s.

use std::collections::BTreeMap;

use r1_proto::{SearchHit, SessionState, SessionView};
use serde::Serialize;

use crate::theme::{ColorMode, Palette};

/// The most bytes of output kept per lane: the oldest output goes first.
pub const LANE_OUTPUT_CAP: usize = 64 * 1024;

/// What the client is started with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Attach to this session.
    pub session: Option<String>,
    /// Start a session in this directory (absolute), unless `session` is given.
    pub workdir: Option<String>,
    /// The engine of sessions it starts; the daemon's default when absent.
    pub engine: Option<String>,
    /// The directory relative paths in the workdir prompt are taken from.
    pub cwd: String,
    /// The colours the terminal shows.
    pub color: ColorMode,
    /// The terminal's size.
    pub width: u16,
    /// The terminal's height.
    pub height: u16,
    /// A tag unique to this client (e.g. pid and start time): the prefix of the
    /// `client_message_id` of each send, so a send retried after a reconnect is not
    /// posted twice.
    pub client_tag: String,
}

/// Which pane has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Focus {
    /// The message box (and the conversation above it).
    Input,
    /// The sessions list.
    Sessions,
    /// The lanes of the selected session.
    Lanes,
}

/// Where the client stands with the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum Connection {
    /// Not yet connected.
    Connecting,
    /// Connected and following.
    Connected,
    /// The daemon went away; trying again (a restart takes a second or two).
    Reconnecting,
    /// Gave up, or the daemon refused; why.
    Offline(String),
}

/// The daemon the client talks to, from its handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaemonInfo {
    /// Its version.
    pub version: String,
    /// Its pid.
    pub pid: u32,
}

/// What one entry of the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A message the user sent.
    User,
    /// The agent's answer (streaming while `streaming`).
    Assistant,
    /// A tool call or its result.
    Tool,
    /// Something that happened to the session (paused, resumed, restarted…).
    Notice,
    /// A failure.
    Error,
}

/// One entry of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// What it is.
    pub kind: EntryKind,
    /// Its text (markdown for the agent's answers).
    pub text: String,
    /// The user message an answer replies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// True while deltas are still arriving.
    pub streaming: bool,
}

/// A tool lane of a session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lane {
    /// The lane id (`tool_…`).
    pub id: String,
    /// The tool running in it.
    pub tool: String,
    /// A short form of its arguments (the command of `run_command`).
    pub args: String,
    /// `running`, `done`, `failed`, `killed` or `cancelled`.
    pub status: String,
    /// Its output so far (at most [`LANE_OUTPUT_CAP`] bytes, the newest).
    pub output: String,
}

impl Lane {
    /// Whether it still runs (and can be killed).
    pub fn running(&self) -> bool {
        self.status == "running"
    }
}

/// A tool call waiting for the user's decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    /// `apr_…`.
    pub id: String,
    /// The tool that asks.
    pub tool: String,
    /// Its arguments.
    pub args: serde_json::Value,
}

/// What the client knows of one session from its records: the conversation, lanes
/// and pending approvals, and the seq to follow it from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// The seq of the next record to apply; records before it were applied already and
    /// are ignored if they come again (a reconnect that overlaps).
    pub next_seq: u64,
    /// The conversation, oldest first.
    pub entries: Vec<Entry>,
    /// Tool lanes, in creation order.
    pub lanes: Vec<Lane>,
    /// Approvals asked and not yet decided, oldest first.
    pub approvals: Vec<Approval>,
}

impl Default for Transcript {
    fn default() -> Transcript {
        Transcript {
            next_seq: 1,
            entries: Vec::new(),
            lanes: Vec::new(),
            approvals: Vec::new(),
        }
    }
}

/// A one-line text field with a cursor (the message box may hold several lines).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TextInput {
    /// The text.
    pub text: String,
    /// The cursor, a byte offset at a character boundary.
    pub cursor: usize,
}

impl TextInput {
    /// A field holding `text`, the cursor at its end.
    pub fn with(text: impl Into<String>) -> TextInput {
        let text = text.into();
        TextInput {
            cursor: text.len(),
            text,
        }
    }

    /// Inserts `s` at the cursor.
    pub fn insert(&mut self, s: &str) {
        self.text.insert_str(self.cursor, s);
        self.cursor += s.len();
    }

    /// Takes the text out, leaving the field empty.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    /// Replaces the text, the cursor at its end.
    pub fn set(&mut self, text: impl Into<String>) {
        *self = TextInput::with(text);
    }

    fn prev(&self, at: usize) -> usize {
        self.text[..at]
            .char_indices()
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next(&self, at: usize) -> usize {
        self.text[at..]
            .chars()
            .next()
            .map_or(at, |c| at + c.len_utf8())
    }

    /// The start of the line the cursor is on.
    fn line_start(&self) -> usize {
        self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1)
    }

    /// The end of the line the cursor is on.
    fn line_end(&self) -> usize {
        self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |i| self.cursor + i)
    }

    /// Applies an editing key (arrows, Home, End, Backspace, Delete, Ctrl-A/E/U/W);
    /// false when the key is not one.
    pub fn edit(&mut self, key: &crate::Key) -> bool {
        use crate::KeyCode as K;
        match (key.code, key.ctrl) {
            (K::Left, _) => self.cursor = self.prev(self.cursor),
            (K::Right, _) => self.cursor = self.next(self.cursor),
            (K::Home, _) | (K::Char('a'), true) => self.cursor = self.line_start(),
            (K::End, _) | (K::Char('e'), true) => self.cursor = self.line_end(),
            (K::Backspace, _) | (K::Char('h'), true) => {
                let p = self.prev(self.cursor);
                self.text.replace_range(p..self.cursor, "");
                self.cursor = p;
            }
            (K::Delete, _) | (K::Char('d'), true) => {
                let n = self.next(self.cursor);
                self.text.replace_range(self.cursor..n, "");
            }
            (K::Char('u'), true) => {
                let start = self.line_start();
                self.text.replace_range(start..self.cursor, "");
                self.cursor = start;
            }
            (K::Char('w'), true) => {
                let before = &self.text[..self.cursor];
                let trimmed = before.trim_end();
                let start = trimmed.rfind(char::is_whitespace).map_or(0, |i| {
                    i + trimmed[i..].chars().next().map_or(1, char::len_utf8)
                });
                self.text.replace_range(start..self.cursor, "");
                self.cursor = start;
            }
            _ => return false,
        }
        true
    }

    /// Moves the cursor a line up (`-1`) or down (`1`), keeping its column when it
    /// can; false at the first or last line.
    pub fn move_line(&mut self, dir: i32) -> bool {
        let start = self.line_start();
        let col = self.text[start..self.cursor].chars().count();
        let target = if dir < 0 {
            if start == 0 {
                return false;
            }
            self.text[..start - 1].rfind('\n').map_or(0, |i| i + 1)
        } else {
            let end = self.line_end();
            if end == self.text.len() {
                return false;
            }
            end + 1
        };
        let line_end = self.text[target..]
            .find('\n')
            .map_or(self.text.len(), |i| target + i);
        self.cursor = self.text[target..line_end]
            .char_indices()
            .nth(col)
            .map_or(line_end, |(i, _)| target + i);
        true
    }
}

/// A window in front of the panes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Overlay {
    /// The key map.
    Help {
        /// Lines scrolled.
        scroll: usize,
    },
    /// Search over every session (`search.query`).
    Search {
        /// The query being typed.
        input: TextInput,
        /// The query the hits are for.
        searched: Option<String>,
        /// The hits of the last query.
        hits: Vec<SearchHit>,
        /// The selected hit.
        selected: usize,
        /// A query is on its way.
        pending: bool,
    },
    /// The workdir of a new session, with path completion.
    Workdir {
        /// The path being typed.
        input: TextInput,
        /// What Tab offered for the current text.
        candidates: Vec<String>,
        /// The selected candidate, when the user moved through them.
        selected: Option<usize>,
    },
}

/// A message in the status line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flash {
    /// The text.
    pub text: String,
    /// An error (drawn as one).
    pub error: bool,
    /// Ticks until it goes away.
    pub ttl: u32,
}

/// What to select once the session list first arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attach {
    /// The session given with `--session`.
    Session(String),
    /// The newest live session; else ask for a workdir.
    Newest,
    /// A session is being started; it is selected when it answers.
    Starting,
}

/// The whole state of the client.
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    /// The terminal's width.
    pub width: u16,
    /// The terminal's height.
    pub height: u16,
    /// The colours in use.
    pub color: ColorMode,
    /// Where the client stands with the daemon.
    pub connection: Connection,
    /// The daemon, once it answered its handshake.
    pub daemon: Option<DaemonInfo>,
    /// Every session the daemon has, oldest first.
    pub sessions: Vec<SessionView>,
    /// The session shown.
    pub selected: Option<String>,
    /// What the client knows of each session it showed.
    pub transcripts: BTreeMap<String, Transcript>,
    /// Which pane has the keyboard.
    pub focus: Focus,
    /// The message box.
    pub input: TextInput,
    /// The overlay in front, if any.
    pub overlay: Option<Overlay>,
    /// Lines the conversation is scrolled back from its end (0: it follows new text).
    pub scroll: usize,
    /// The lane focused in the lanes pane; `None` follows the newest lane.
    pub lane: Option<String>,
    /// Lines the focused lane's output is scrolled back from its end.
    pub lane_scroll: usize,
    /// A message in the status line.
    pub flash: Option<Flash>,
    /// The approval just decided (session id and approval), until the daemon confirms
    /// it; a failed decision puts it back on the card.
    pub deciding: Option<(String, Approval)>,
    /// What to select once the session list arrives.
    pub attach: Option<Attach>,
    /// The directory relative workdirs are taken from.
    pub cwd: String,
    /// The engine for sessions this client starts.
    pub engine: Option<String>,
    /// This client's tag (see [`Config::client_tag`]).
    pub client_tag: String,
    /// Messages sent so far (numbers the `client_message_id`s).
    pub sent: u64,
    /// Ticks seen (about one a second): animation and periodic refresh.
    pub ticks: u64,
    /// The user asked to quit.
    pub quit: bool,
}

impl Model {
    /// The state before anything arrived from the daemon.
    pub fn new(cfg: Config) -> Model {
        let attach = match (&cfg.session, &cfg.workdir) {
            (Some(id), _) => Attach::Session(id.clone()),
            (None, Some(_)) => Attach::Starting,
            (None, None) => Attach::Newest,
        };
        Model {
            width: cfg.width,
            height: cfg.height,
            color: cfg.color,
            connection: Connection::Connecting,
            daemon: None,
            sessions: Vec::new(),
            selected: None,
            transcripts: BTreeMap::new(),
            focus: Focus::Input,
            input: TextInput::default(),
            overlay: None,
            scroll: 0,
            lane: None,
            lane_scroll: 0,
            flash: None,
            deciding: None,
            attach: Some(attach),
            cwd: cfg.cwd,
            engine: cfg.engine,
            client_tag: cfg.client_tag,
            sent: 0,
            ticks: 0,
            quit: false,
        }
    }

    /// The palette of the colour mode.
    pub fn palette(&self) -> Palette {
        Palette::new(self.color)
    }

    /// The selected session's view, when it is listed.
    pub fn session(&self) -> Option<&SessionView> {
        let id = self.selected.as_deref()?;
        self.sessions.iter().find(|s| s.id == id)
    }

    /// The selected session's transcript.
    pub fn transcript(&self) -> Option<&Transcript> {
        self.transcripts.get(self.selected.as_deref()?)
    }

    /// The selected session's state, when known.
    pub fn state(&self) -> Option<SessionState> {
        self.session().map(|s| s.state)
    }

    /// The approval the card shows: the oldest pending one of the selected session.
    pub fn approval(&self) -> Option<&Approval> {
        self.transcript()?.approvals.first()
    }

    /// The lane the lanes pane focuses: the chosen one, else the newest.
    pub fn focused_lane(&self) -> Option<&Lane> {
        let lanes = &self.transcript()?.lanes;
        match &self.lane {
            Some(id) => lanes.iter().find(|l| &l.id == id),
            None => lanes.last(),
        }
    }
}
