//! What the model looks like: [`layout`] places the panes for a terminal size, [`render`]
//! draws the model into a ratatui [`Buffer`] (so the terminal runner, unit tests and a
//! headless driver all draw the same cells), [`snapshot`] turns that into text lines,
//! and [`elements`] lists what can be acted on, each with a stable id and the catalog
//! method it leads to.

use r1_proto::{SessionState, SessionView};
use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Widget};
use ratatui::Frame;
use serde::Serialize;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::keymap::{key_for, Action, Scope, BINDINGS};
use crate::markdown::{self, hard_wrap};
use crate::model::{Connection, EntryKind, Focus, Model, Overlay, Transcript};
use crate::theme::{Palette, Role};
use crate::update::args_summary;

/// Where each pane is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panes {
    /// The sessions list, when there is room for it (or it has the focus).
    pub sessions: Option<Rect>,
    /// The conversation (empty when another pane took its place).
    pub conversation: Rect,
    /// The lanes, when the session has some and there is room (or they have the focus).
    pub lanes: Option<Rect>,
    /// The message box.
    pub input: Rect,
    /// The status line.
    pub status: Rect,
}

/// The widest the message box grows, in lines of text.
const INPUT_MAX_LINES: u16 = 6;
/// From this width on, the sessions list is shown beside the conversation.
const WIDE: u16 = 72;
/// From this height of the panes' area on, lanes get a pane under the conversation.
const TALL: u16 = 16;

/// The panes of the model's terminal size.
pub fn layout(m: &Model) -> Panes {
    layout_in(m, Rect::new(0, 0, m.width, m.height))
}

/// The panes in `area`. Every rectangle lies inside it, whatever its size.
pub fn layout_in(m: &Model, area: Rect) -> Panes {
    let status = Rect::new(
        area.x,
        area.bottom().saturating_sub(1),
        area.width,
        area.height.min(1),
    );
    let above = area.height.saturating_sub(1);
    let text_rows = input_rows(&m.input.text, area.width.saturating_sub(2)).len() as u16;
    let input_h =
        (text_rows.clamp(1, INPUT_MAX_LINES) + 2).min(above.saturating_sub(3).max(above.min(3)));
    let input = Rect::new(area.x, area.y + above - input_h, area.width, input_h);
    let body = Rect::new(area.x, area.y, area.width, above - input_h);
    let (sessions, main) = if body.width >= WIDE {
        let w = (body.width / 4).clamp(20, 34);
        (
            Some(Rect::new(body.x, body.y, w, body.height)),
            Rect::new(body.x + w, body.y, body.width - w, body.height),
        )
    } else if m.focus == Focus::Sessions {
        (Some(body), Rect::new(body.x, body.y, 0, 0))
    } else {
        (None, body)
    };
    let has_lanes = m.transcript().is_some_and(|t| !t.lanes.is_empty());
    let (conversation, lanes) = if main.is_empty() {
        (main, None)
    } else if (has_lanes || m.focus == Focus::Lanes) && main.height >= TALL {
        let lh = (main.height * 2 / 5).max(6);
        (
            Rect::new(main.x, main.y, main.width, main.height - lh),
            Some(Rect::new(main.x, main.y + main.height - lh, main.width, lh)),
        )
    } else if m.focus == Focus::Lanes {
        (Rect::new(main.x, main.y, main.width, 0), Some(main))
    } else {
        (main, None)
    };
    Panes {
        sessions,
        conversation,
        lanes,
        input,
        status,
    }
}

/// A rectangle of the screen, as elements report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Area {
    /// Column of the left edge.
    pub x: u16,
    /// Row of the top edge.
    pub y: u16,
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

impl Area {
    /// Whether the cell at `column`, `row` is inside.
    pub fn contains(&self, column: u16, row: u16) -> bool {
        column >= self.x
            && column < self.x + self.width
            && row >= self.y
            && row < self.y + self.height
    }
}

impl From<Rect> for Area {
    fn from(r: Rect) -> Area {
        Area {
            x: r.x,
            y: r.y,
            width: r.width,
            height: r.height,
        }
    }
}

/// What activating an element does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Target {
    /// What its key does.
    Action(Action),
    /// Shows this session.
    Session(String),
    /// Focuses this lane.
    Lane(String),
}

/// Something on screen that can be acted on: by its key, by a click, or by a headless
/// driver activating its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Element {
    /// A stable id: the same element has the same id from frame to frame
    /// (`approval.allow`, `sessions.item.ses_…`, `lanes.kill.tool_…`).
    pub id: String,
    /// What it says, for people.
    pub label: String,
    /// The catalog method it calls (directly or once its prompt is answered); `None`
    /// for what stays in the client (help, focus, quit).
    pub method: Option<&'static str>,
    /// The key that does the same, by name.
    pub key: Option<&'static str>,
    /// Where it is drawn, when it is drawn as a thing of its own.
    pub rect: Option<Area>,
    /// What activating it does.
    pub target: Target,
}

fn element(
    id: impl Into<String>,
    label: impl Into<String>,
    method: Option<&'static str>,
    scope: Scope,
    action: Action,
    rect: Option<Rect>,
) -> Element {
    Element {
        id: id.into(),
        label: label.into(),
        method,
        key: key_for(scope, action).or_else(|| key_for(Scope::Global, action)),
        rect: rect.filter(|r| !r.is_empty()).map(Area::from),
        target: Target::Action(action),
    }
}

/// The view-without-API rule for a screen's actionable elements: each has a
/// non-empty id, unique on the screen, and the method it names (if any: help, focus and
/// quit stay in the client) is a catalog operation. The error lists every offender.
pub fn check_elements(els: &[Element]) -> Result<(), String> {
    let mut ids = std::collections::HashSet::new();
    let mut bad = Vec::new();
    for e in els {
        if e.id.trim().is_empty() {
            bad.push(format!("an element without an id ({:?})", e.label));
        } else if !ids.insert(e.id.as_str()) {
            bad.push(format!("{} appears twice", e.id));
        }
        if let Some(method) = e.method {
            if r1_proto::catalog::operation(method).is_none() {
                bad.push(format!(
                    "{} names {method}, which is not in the catalog",
                    e.id
                ));
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("; "))
    }
}

/// The elements that can be acted on now, front-most last.
pub fn elements(m: &Model) -> Vec<Element> {
    let panes = layout(m);
    let mut out = Vec::new();
    match &m.overlay {
        Some(Overlay::Help { .. }) => {
            out.push(element(
                "help.close",
                "close help",
                None,
                Scope::Help,
                Action::Close,
                None,
            ));
            return out;
        }
        Some(Overlay::Search { hits, .. }) => {
            let boxed = overlay_rect(panes_area(m), 90, 20);
            out.push(element(
                "search.query",
                "search",
                Some("search.query"),
                Scope::Search,
                Action::Submit,
                Some(row_of(boxed, 0)),
            ));
            for (i, h) in hits
                .iter()
                .enumerate()
                .take(usize::from(boxed.height.saturating_sub(4)))
            {
                out.push(Element {
                    id: format!("search.hit.{}.{}", h.session_id, h.seq),
                    label: h.snippet.clone(),
                    method: Some("session.get"),
                    key: None,
                    rect: Some(row_of(boxed, 2 + i as u16).into()),
                    target: Target::Session(h.session_id.clone()),
                });
            }
            out.push(element(
                "search.close",
                "close search",
                None,
                Scope::Search,
                Action::Close,
                None,
            ));
            return out;
        }
        Some(Overlay::Workdir { .. }) => {
            let boxed = overlay_rect(panes_area(m), 70, 12);
            out.push(element(
                "workdir.start",
                "start the session",
                Some("session.start"),
                Scope::Workdir,
                Action::Submit,
                Some(row_of(boxed, 1)),
            ));
            out.push(element(
                "workdir.complete",
                "complete the path",
                None,
                Scope::Workdir,
                Action::Complete,
                None,
            ));
            out.push(element(
                "workdir.close",
                "close",
                None,
                Scope::Workdir,
                Action::Close,
                None,
            ));
            return out;
        }
        None => {}
    }
    if let Some(r) = panes.sessions {
        let inner = inner(r);
        let sel = selected_index(m);
        let first = list_offset(sel, m.sessions.len(), usize::from(inner.height));
        for (i, s) in m
            .sessions
            .iter()
            .enumerate()
            .skip(first)
            .take(usize::from(inner.height))
        {
            out.push(Element {
                id: format!("sessions.item.{}", s.id),
                label: session_label(s),
                method: Some("session.get"),
                key: None,
                rect: Some(row_of_inner(inner, (i - first) as u16).into()),
                target: Target::Session(s.id.clone()),
            });
        }
    }
    out.push(element(
        "session.new",
        "new session",
        Some("session.start"),
        Scope::Global,
        Action::NewSession,
        None,
    ));
    out.push(element(
        "search.open",
        "search",
        Some("search.query"),
        Scope::Global,
        Action::Search,
        None,
    ));
    out.push(element(
        "help.open",
        "help",
        None,
        Scope::Global,
        Action::Help,
        None,
    ));
    out.push(element(
        "app.quit",
        "quit",
        None,
        Scope::Global,
        Action::Quit,
        None,
    ));
    if m.sessions.len() > 1 {
        out.push(element(
            "session.next",
            "next session",
            Some("session.get"),
            Scope::Global,
            Action::NextSession,
            None,
        ));
        out.push(element(
            "session.prev",
            "previous session",
            Some("session.get"),
            Scope::Global,
            Action::PrevSession,
            None,
        ));
    }
    let Some(state) = m.state() else { return out };
    match state {
        SessionState::Paused => out.push(element(
            "session.resume",
            "resume",
            Some("session.resume"),
            Scope::Global,
            Action::PauseResume,
            None,
        )),
        SessionState::Ended | SessionState::Error => {}
        _ => out.push(element(
            "session.pause",
            "pause",
            Some("session.pause"),
            Scope::Global,
            Action::PauseResume,
            None,
        )),
    }
    if matches!(state, SessionState::Busy | SessionState::WaitingOnApproval) {
        out.push(element(
            "session.cancel",
            "cancel the turn",
            Some("session.cancel"),
            Scope::Global,
            Action::Cancel,
            None,
        ));
    }
    if let (Some(r), Some(t)) = (panes.lanes, m.transcript()) {
        let (list, _) = lanes_split(inner(r), t.lanes.len());
        let focused = m.focused_lane().map(|l| l.id.clone());
        let sel = focused
            .as_ref()
            .and_then(|f| t.lanes.iter().position(|l| &l.id == f))
            .unwrap_or(0);
        let first = list_offset(sel, t.lanes.len(), usize::from(list.height));
        for (i, l) in t
            .lanes
            .iter()
            .enumerate()
            .skip(first)
            .take(usize::from(list.height))
        {
            out.push(Element {
                id: format!("lanes.item.{}", l.id),
                label: format!("{} {}", l.tool, l.args),
                method: None,
                key: None,
                rect: Some(row_of_inner(list, (i - first) as u16).into()),
                target: Target::Lane(l.id.clone()),
            });
        }
        if let Some(l) = m.focused_lane().filter(|l| l.running()) {
            out.push(element(
                format!("lanes.kill.{}", l.id),
                format!("kill {}", l.tool),
                Some("lanes.kill"),
                Scope::Lanes,
                Action::KillLane,
                None,
            ));
        }
    }
    if m.approval().is_some() {
        let card = approval_rect(&panes);
        let buttons = row_of(card, card.height.saturating_sub(4));
        let third = buttons.width / 3;
        let part = |i: u16| Rect::new(buttons.x + i * third, buttons.y, third, 1);
        out.push(element(
            "approval.allow",
            "allow",
            Some("session.approve"),
            Scope::Approval,
            Action::Allow,
            Some(part(0)),
        ));
        out.push(element(
            "approval.deny",
            "deny",
            Some("session.approve"),
            Scope::Approval,
            Action::Deny,
            Some(part(1)),
        ));
        out.push(element(
            "approval.always",
            "always allow",
            Some("session.approve"),
            Scope::Approval,
            Action::AlwaysAllow,
            Some(part(2)),
        ));
    } else if !matches!(state, SessionState::Ended | SessionState::Error) {
        out.push(element(
            "input.send",
            "send",
            Some("session.send"),
            Scope::Input,
            Action::Send,
            Some(panes.input),
        ));
    }
    out
}

fn panes_area(m: &Model) -> Rect {
    Rect::new(0, 0, m.width, m.height)
}

/// Row `i` inside the border of `r`.
fn row_of(r: Rect, i: u16) -> Rect {
    row_of_inner(inner(r), i)
}

fn row_of_inner(inner: Rect, i: u16) -> Rect {
    if i >= inner.height {
        return Rect::new(inner.x, inner.y, 0, 0);
    }
    Rect::new(inner.x, inner.y + i, inner.width, 1)
}

fn inner(r: Rect) -> Rect {
    Rect::new(
        r.x.saturating_add(1),
        r.y.saturating_add(1),
        r.width.saturating_sub(2),
        r.height.saturating_sub(2),
    )
}

/// A box at most `w`×`h` in the middle of `area`.
fn overlay_rect(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height.saturating_sub(1));
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height.saturating_sub(1) - h) / 2,
        w,
        h,
    )
}

/// The approval card: in the middle of the conversation and lanes, over the message
/// box too when they are too small for it.
fn approval_rect(p: &Panes) -> Rect {
    let mut over = p.conversation;
    if let Some(l) = p.lanes {
        over = if over.is_empty() { l } else { over.union(l) };
    }
    if over.height < 8 {
        over = if over.is_empty() {
            p.input
        } else {
            over.union(p.input)
        };
    }
    let h = 8.min(over.height);
    let w = 64.min(over.width);
    Rect::new(
        over.x + (over.width - w) / 2,
        over.y + over.height.saturating_sub(h) / 2,
        w,
        h,
    )
}

/// The first item to show so that `sel` is visible in `rows` rows.
fn list_offset(sel: usize, len: usize, rows: usize) -> usize {
    if rows == 0 || len <= rows {
        return 0;
    }
    sel.saturating_sub(rows - 1).min(len - rows)
}

fn selected_index(m: &Model) -> usize {
    m.selected
        .as_ref()
        .and_then(|id| m.sessions.iter().position(|s| &s.id == id))
        .unwrap_or(0)
}

/// A session as the list names it: its title, else its workdir's last part, and the
/// start of its id.
pub fn session_label(s: &SessionView) -> String {
    let name = s.title.clone().unwrap_or_else(|| {
        s.workdir
            .rsplit('/')
            .find(|p| !p.is_empty())
            .unwrap_or("/")
            .to_string()
    });
    let short: String = s.id.trim_start_matches("ses_").chars().take(6).collect();
    format!("{name} {short}")
}

/// A state's badge: a mark and a short word.
fn badge(state: SessionState, ticks: u64) -> (&'static str, &'static str, Role) {
    const SPIN: [&str; 4] = ["◐", "◓", "◑", "◒"];
    match state {
        SessionState::Idle => ("●", "idle", Role::Ok),
        SessionState::Busy => (SPIN[(ticks % 4) as usize], "busy", Role::Accent),
        SessionState::WaitingOnApproval => ("◆", "ask", Role::Warn),
        SessionState::Paused => ("‖", "paused", Role::Dim),
        SessionState::Ended => ("○", "ended", Role::Dim),
        SessionState::Error => ("✗", "error", Role::Error),
    }
}

/// The rows a text takes in a field `width` columns wide: `(start, end)` byte ranges,
/// cut at newlines and where a line is full.
pub fn input_rows(text: &str, width: u16) -> Vec<(usize, usize)> {
    let width = usize::from(width.max(2)) - 1; // a column for the cursor at the end
    let mut rows = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, c) in text.char_indices() {
        if c == '\n' {
            rows.push((start, i));
            start = i + 1;
            used = 0;
            continue;
        }
        let w = c.width().unwrap_or(0);
        if used + w > width {
            rows.push((start, i));
            start = i;
            used = 0;
        }
        used += w;
    }
    rows.push((start, text.len()));
    rows
}

fn pane_block<'a>(title: impl Into<Line<'a>>, focused: bool, pal: &Palette) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(pal.style(if focused { Role::Focused } else { Role::Border }))
        .title(title)
}

/// Draws the model into a frame and places the cursor.
pub fn view(m: &Model, frame: &mut Frame<'_>) {
    let area = frame.area();
    if let Some(pos) = render(m, area, frame.buffer_mut()) {
        frame.set_cursor_position(pos);
    }
}

/// Draws the model into `buf` over `area`; returns where the cursor goes, if shown.
pub fn render(m: &Model, area: Rect, buf: &mut Buffer) -> Option<Position> {
    let pal = m.palette();
    let panes = layout_in(m, area);
    if let Some(r) = panes.sessions {
        render_sessions(m, r, buf, &pal);
    }
    if !panes.conversation.is_empty() {
        render_conversation(m, panes.conversation, buf, &pal);
    }
    if let Some(r) = panes.lanes {
        render_lanes(m, r, buf, &pal);
    }
    let mut cursor = render_input(m, panes.input, buf, &pal);
    render_status(m, panes.status, buf, &pal);
    if m.overlay.is_none() && m.approval().is_some() {
        render_approval(m, approval_rect(&panes), buf, &pal);
        cursor = None;
    }
    match &m.overlay {
        Some(Overlay::Help { scroll }) => {
            render_help(*scroll, overlay_rect(area, 76, 40), buf, &pal);
            cursor = None;
        }
        Some(Overlay::Search { .. }) => {
            cursor = render_search(m, overlay_rect(area, 90, 20), buf, &pal)
        }
        Some(Overlay::Workdir { .. }) => {
            cursor = render_workdir(m, overlay_rect(area, 70, 12), buf, &pal)
        }
        None => {}
    }
    cursor
}

fn render_sessions(m: &Model, r: Rect, buf: &mut Buffer, pal: &Palette) {
    let block = pane_block(" sessions ", m.focus == Focus::Sessions, pal);
    let inner = block.inner(r);
    block.render(r, buf);
    let sel = selected_index(m);
    let first = list_offset(sel, m.sessions.len(), usize::from(inner.height));
    let mut lines = Vec::new();
    for s in m
        .sessions
        .iter()
        .skip(first)
        .take(usize::from(inner.height))
    {
        let (mark, word, role) = badge(s.state, m.ticks);
        let selected = m.selected.as_deref() == Some(s.id.as_str());
        let mut line = Line::from(vec![
            Span::styled(format!("{mark} "), pal.style(role)),
            Span::styled(format!("{word:<6} "), pal.style(role)),
            Span::raw(session_label(s)),
        ]);
        if selected {
            line = line.style(pal.style(Role::Selected));
        }
        lines.push(line);
    }
    if m.sessions.is_empty() {
        lines.push(Line::styled("no sessions yet", pal.style(Role::Dim)));
    }
    Paragraph::new(lines).render(inner, buf);
}

/// The lines of a transcript at `width`, from its end back until `need` lines are
/// there (or the transcript is done).
fn transcript_lines(
    t: &Transcript,
    width: usize,
    need: usize,
    pal: &Palette,
) -> Vec<Line<'static>> {
    let body = width.saturating_sub(2).max(4);
    let mut blocks: Vec<Vec<Line<'static>>> = Vec::new();
    let mut count = 0;
    for (i, e) in t.entries.iter().enumerate().rev() {
        let (mark, mark_role, lines): (&str, Role, Vec<Line<'static>>) = match e.kind {
            EntryKind::User => (
                "› ",
                Role::User,
                markdown::render(&e.text, body, pal, pal.style(Role::User)),
            ),
            EntryKind::Assistant => {
                let mut lines = markdown::render(&e.text, body, pal, Style::default());
                if e.streaming {
                    match lines.last_mut() {
                        Some(l) => l.spans.push(Span::styled("▍", pal.style(Role::Accent))),
                        None => lines.push(Line::from(Span::styled("▍", pal.style(Role::Accent)))),
                    }
                }
                ("  ", Role::Text, lines)
            }
            EntryKind::Tool => (
                "  ",
                Role::Tool,
                hard_wrap(
                    vec![Span::styled(e.text.clone(), pal.style(Role::Tool))],
                    body,
                    pal,
                ),
            ),
            EntryKind::Notice => (
                "· ",
                Role::Dim,
                hard_wrap(
                    vec![Span::styled(e.text.clone(), pal.style(Role::Dim))],
                    body,
                    pal,
                ),
            ),
            EntryKind::Error => (
                "! ",
                Role::Error,
                hard_wrap(
                    vec![Span::styled(e.text.clone(), pal.style(Role::Error))],
                    body,
                    pal,
                ),
            ),
        };
        let mut block: Vec<Line<'static>> = Vec::new();
        if e.kind == EntryKind::User && i > 0 {
            block.push(Line::default());
        }
        for (j, mut l) in lines.into_iter().enumerate() {
            let gutter = if j == 0 { mark } else { "  " };
            l.spans
                .insert(0, Span::styled(gutter, pal.style(mark_role)));
            block.push(l);
        }
        count += block.len();
        blocks.push(block);
        if count >= need {
            break;
        }
    }
    blocks.into_iter().rev().flatten().collect()
}

/// How far the conversation can scroll back at the model's size.
pub fn max_scroll(m: &Model) -> usize {
    let panes = layout(m);
    let inner = inner(panes.conversation);
    let Some(t) = m.transcript() else { return 0 };
    let all = transcript_lines(t, usize::from(inner.width), usize::MAX, &m.palette());
    all.len().saturating_sub(usize::from(inner.height))
}

fn render_conversation(m: &Model, r: Rect, buf: &mut Buffer, pal: &Palette) {
    let title = match m.session() {
        Some(s) => {
            let (mark, word, role) = badge(s.state, m.ticks);
            Line::from(vec![
                Span::raw(" "),
                Span::styled(format!("{mark} {word}"), pal.style(role)),
                Span::raw(format!(" {} · {} ", session_label(s), s.workdir)),
            ])
        }
        None => Line::from(" conversation "),
    };
    let block = pane_block(title, m.focus == Focus::Input && m.overlay.is_none(), pal);
    let inner = block.inner(r);
    block.render(r, buf);
    let Some(t) = m.transcript() else {
        let hint = if m.sessions.is_empty() {
            "No session yet: Ctrl-T starts one. ? shows every key."
        } else {
            "No session selected: Ctrl-N / Ctrl-P pick one, Ctrl-T starts one."
        };
        Paragraph::new(Line::styled(hint, pal.style(Role::Dim))).render(inner, buf);
        return;
    };
    let height = usize::from(inner.height);
    let lines = transcript_lines(t, usize::from(inner.width), height + m.scroll, pal);
    let scroll = m.scroll.min(lines.len().saturating_sub(height));
    let start = lines.len().saturating_sub(height + scroll);
    let window: Vec<Line<'static>> = lines.into_iter().skip(start).take(height).collect();
    Paragraph::new(window).render(inner, buf);
    if scroll > 0 && inner.height > 0 {
        let tag = format!(" ↓ {scroll} more ");
        let x = inner.right().saturating_sub(tag.width() as u16);
        buf.set_string(x, inner.bottom() - 1, tag, pal.style(Role::Selected));
    }
}

/// Splits the lanes pane's inside into the list and the focused lane's output.
fn lanes_split(inner: Rect, lanes: usize) -> (Rect, Rect) {
    let list_h = (lanes as u16)
        .clamp(1, (inner.height / 3).max(1))
        .min(inner.height);
    let list = Rect::new(inner.x, inner.y, inner.width, list_h);
    let out_y = inner.y + list_h;
    let out = Rect::new(
        inner.x,
        out_y,
        inner.width,
        inner.bottom().saturating_sub(out_y),
    );
    (list, out)
}

fn lane_mark(status: &str) -> (&'static str, Role) {
    match status {
        "running" => ("▶", Role::Accent),
        "done" => ("✓", Role::Ok),
        "failed" => ("✗", Role::Error),
        "killed" => ("☠", Role::Warn),
        _ => ("○", Role::Dim),
    }
}

fn render_lanes(m: &Model, r: Rect, buf: &mut Buffer, pal: &Palette) {
    let focused = m.focus == Focus::Lanes && m.overlay.is_none();
    let hint = if focused {
        " lanes · ↑↓ choose · k kill "
    } else {
        " lanes (Tab) "
    };
    let block = pane_block(hint, focused, pal);
    let inner = block.inner(r);
    block.render(r, buf);
    let Some(t) = m.transcript().filter(|t| !t.lanes.is_empty()) else {
        Paragraph::new(Line::styled("no tool lanes", pal.style(Role::Dim))).render(inner, buf);
        return;
    };
    let (list, out) = lanes_split(inner, t.lanes.len());
    let current = m.focused_lane().map(|l| l.id.clone());
    let sel = current
        .as_ref()
        .and_then(|c| t.lanes.iter().position(|l| &l.id == c))
        .unwrap_or(0);
    let first = list_offset(sel, t.lanes.len(), usize::from(list.height));
    let mut lines = Vec::new();
    for l in t.lanes.iter().skip(first).take(usize::from(list.height)) {
        let (mark, role) = lane_mark(&l.status);
        let mut line = Line::from(vec![
            Span::styled(format!("{mark} "), pal.style(role)),
            Span::styled(format!("{:<8} ", l.status), pal.style(role)),
            Span::styled(format!("{} ", l.tool), pal.style(Role::Tool)),
            Span::raw(l.args.replace('\n', " ")),
            Span::styled(format!("  {}", l.id), pal.style(Role::Dim)),
        ]);
        if current.as_deref() == Some(l.id.as_str()) {
            line = line.style(pal.style(Role::Selected));
        }
        lines.push(line);
    }
    Paragraph::new(lines).render(list, buf);
    if out.is_empty() {
        return;
    }
    let Some(lane) = m.focused_lane() else { return };
    let mut rows: Vec<Line<'static>> = Vec::new();
    for l in lane.output.trim_end_matches('\n').split('\n') {
        rows.extend(hard_wrap(
            vec![Span::raw(l.trim_end_matches('\r').to_string())],
            usize::from(out.width),
            pal,
        ));
    }
    let height = usize::from(out.height);
    let scroll = m.lane_scroll.min(rows.len().saturating_sub(height));
    let start = rows.len().saturating_sub(height + scroll);
    let window: Vec<Line<'static>> = rows.into_iter().skip(start).take(height).collect();
    Paragraph::new(window).render(out, buf);
}

fn render_input(m: &Model, r: Rect, buf: &mut Buffer, pal: &Palette) -> Option<Position> {
    let focused = m.focus == Focus::Input && m.overlay.is_none() && m.approval().is_none();
    let title = match m.state() {
        _ if m.approval().is_some() => " waiting for your decision ".to_string(),
        Some(SessionState::Ended | SessionState::Error) => {
            " this session takes no messages (Ctrl-T starts one) ".to_string()
        }
        Some(SessionState::Paused) => " paused: a message resumes it ".to_string(),
        _ if focused => " message · Enter send · Alt-Enter newline ".to_string(),
        _ => " message ".to_string(),
    };
    let block = pane_block(title, focused, pal);
    let inner = block.inner(r);
    block.render(r, buf);
    if inner.is_empty() {
        return None;
    }
    let text = &m.input.text;
    let rows = input_rows(text, r.width.saturating_sub(2));
    let cursor_row = rows
        .iter()
        .rposition(|(s, _)| *s <= m.input.cursor)
        .unwrap_or(0);
    let first = cursor_row.saturating_sub(usize::from(inner.height) - 1);
    let lines: Vec<Line<'static>> = rows
        .iter()
        .skip(first)
        .take(usize::from(inner.height))
        .map(|(s, e)| Line::raw(text[*s..*e].to_string()))
        .collect();
    Paragraph::new(lines).render(inner, buf);
    if text.is_empty() && !focused {
        let hint = if m.approval().is_some() {
            "y allow · n deny · a always"
        } else {
            "Tab focuses here"
        };
        buf.set_stringn(
            inner.x,
            inner.y,
            hint,
            usize::from(inner.width),
            pal.style(Role::Dim),
        );
    }
    if !focused {
        return None;
    }
    let (s, _) = rows.get(cursor_row).copied().unwrap_or((0, 0));
    let col = text[s..m.input.cursor.min(text.len()).max(s)].width() as u16;
    Some(Position::new(
        (inner.x + col).min(inner.right().saturating_sub(1)),
        inner.y + (cursor_row - first) as u16,
    ))
}

fn render_status(m: &Model, r: Rect, buf: &mut Buffer, pal: &Palette) {
    if r.is_empty() {
        return;
    }
    let (conn, role) = match &m.connection {
        Connection::Connecting => ("… connecting".to_string(), Role::Dim),
        Connection::Connected => ("● connected".to_string(), Role::Ok),
        Connection::Reconnecting => ("◌ reconnecting".to_string(), Role::Warn),
        Connection::Offline(why) => (format!("✗ offline: {why}"), Role::Error),
    };
    let mut spans = vec![Span::styled(format!(" {conn}"), pal.style(role))];
    if let Some(d) = &m.daemon {
        spans.push(Span::styled(
            format!(" │ r1 {}", d.version),
            pal.style(Role::Dim),
        ));
    }
    if let Some(s) = m.session() {
        let engine = match &s.model {
            Some(model) => format!("{}/{model}", s.engine),
            None => s.engine.clone(),
        };
        spans.push(Span::styled(format!(" │ {engine}"), pal.style(Role::Text)));
        let u = &s.usage;
        let mut tokens = format!(" │ tokens {} in · {} out", u.input_tokens, u.output_tokens);
        if u.cached_input_tokens > 0 {
            tokens.push_str(&format!(" ({} cached)", u.cached_input_tokens));
        }
        if let Some(c) = u.cost_usd {
            tokens.push_str(&format!(" · ${c:.4}"));
        }
        spans.push(Span::styled(tokens, pal.style(Role::Text)));
    }
    match &m.flash {
        Some(f) => spans.push(Span::styled(
            format!(" │ {}", f.text),
            pal.style(if f.error { Role::Error } else { Role::Warn }),
        )),
        None => spans.push(Span::styled(
            " │ ? help · Ctrl-Q quit",
            pal.style(Role::Dim),
        )),
    }
    Paragraph::new(Line::from(spans)).render(r, buf);
}

fn render_approval(m: &Model, r: Rect, buf: &mut Buffer, pal: &Palette) {
    let Some(a) = m.approval() else { return };
    Clear.render(r, buf);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(pal.style(Role::Warn))
        .title(Line::styled(" approval needed ", pal.style(Role::Warn)));
    let inner = block.inner(r);
    block.render(r, buf);
    let width = usize::from(inner.width);
    let mut lines = vec![Line::from(vec![
        Span::styled(
            a.tool.clone(),
            pal.style(Role::Tool).add_modifier(Modifier::BOLD),
        ),
        Span::raw(" wants to run:"),
    ])];
    let args = args_summary(&a.args);
    let arg_rows = usize::from(inner.height.saturating_sub(4)).max(1);
    lines.extend(
        hard_wrap(vec![Span::styled(args, pal.style(Role::Code))], width, pal)
            .into_iter()
            .take(arg_rows),
    );
    while lines.len() < usize::from(inner.height.saturating_sub(2)) {
        lines.push(Line::default());
    }
    let key = |k: &str| Span::styled(format!("[{k}]"), pal.style(Role::Accent));
    let third = width / 3;
    let pad = |s: &str| format!(" {s:<w$}", w = third.saturating_sub(4));
    lines.push(Line::from(vec![
        key("y"),
        Span::styled(pad("allow"), pal.style(Role::Ok)),
        key("n"),
        Span::styled(pad("deny"), pal.style(Role::Error)),
        key("a"),
        Span::styled(" always allow", pal.style(Role::Warn)),
    ]));
    lines.push(Line::styled("Esc cancels the turn", pal.style(Role::Dim)));
    Paragraph::new(lines).render(inner, buf);
}

fn overlay_block<'a>(title: &'a str, pal: &Palette) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(pal.style(Role::Focused))
        .title(Line::styled(title, pal.style(Role::Accent)))
}

/// The help overlay's lines: every binding, by scope, from [`BINDINGS`].
pub fn help_lines(pal: &Palette) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let key_width = BINDINGS
        .iter()
        .map(|b| b.keys.join(", ").width())
        .max()
        .unwrap_or(0)
        + 2;
    let mut last = None;
    for b in BINDINGS.iter().filter(|b| !matches!(b.scope, Scope::Help)) {
        if last != Some(b.scope) {
            if last.is_some() {
                lines.push(Line::default());
            }
            lines.push(Line::styled(
                b.scope.title().to_string(),
                pal.style(Role::Accent),
            ));
            last = Some(b.scope);
        }
        lines.push(Line::from(vec![
            Span::styled(
                format!("  {:<key_width$}", b.keys.join(", ")),
                pal.style(Role::Code),
            ),
            Span::raw(b.help),
        ]));
    }
    lines.push(Line::default());
    lines.push(Line::styled("editing", pal.style(Role::Accent)));
    lines.push(Line::raw(
        "  ← → Home End Backspace Delete, Ctrl-A/E/U/W; paste works",
    ));
    lines
}

fn render_help(scroll: usize, r: Rect, buf: &mut Buffer, pal: &Palette) {
    Clear.render(r, buf);
    let block = overlay_block(" keys · Esc closes ", pal);
    let inner = block.inner(r);
    block.render(r, buf);
    let lines = help_lines(pal);
    let scroll = scroll.min(lines.len().saturating_sub(usize::from(inner.height)));
    Paragraph::new(lines)
        .scroll((scroll as u16, 0))
        .render(inner, buf);
}

/// Draws a one-line text field; returns its cursor.
fn field(
    input: &crate::model::TextInput,
    r: Rect,
    buf: &mut Buffer,
    pal: &Palette,
) -> Option<Position> {
    if r.is_empty() {
        return None;
    }
    let prompt = "› ";
    let room = usize::from(r.width).saturating_sub(prompt.width() + 1);
    let before = &input.text[..input.cursor.min(input.text.len())];
    // Keep the cursor in view: drop characters from the front.
    let mut start = 0;
    while before[start..].width() > room {
        start += before[start..].chars().next().map_or(1, char::len_utf8);
    }
    buf.set_string(r.x, r.y, prompt, pal.style(Role::Accent));
    let x = r.x + prompt.width() as u16;
    buf.set_stringn(x, r.y, &input.text[start..], room, Style::default());
    Some(Position::new(x + before[start..].width() as u16, r.y))
}

fn render_search(m: &Model, r: Rect, buf: &mut Buffer, pal: &Palette) -> Option<Position> {
    let Some(Overlay::Search {
        input,
        searched,
        hits,
        selected,
        pending,
    }) = &m.overlay
    else {
        return None;
    };
    Clear.render(r, buf);
    let block = overlay_block(
        " search every session · Enter search, Enter again opens ",
        pal,
    );
    let inner = block.inner(r);
    block.render(r, buf);
    let cursor = field(input, row_of_inner(inner, 0), buf, pal);
    let status = if *pending {
        "searching…".to_string()
    } else if searched.is_some() && hits.is_empty() {
        "no hits".to_string()
    } else if searched.is_some() {
        format!("{} hits", hits.len())
    } else {
        "words, \"a phrase\", pre*, AND / OR / NOT".to_string()
    };
    let s = row_of_inner(inner, 1);
    buf.set_stringn(s.x, s.y, status, usize::from(s.width), pal.style(Role::Dim));
    for (i, h) in hits
        .iter()
        .enumerate()
        .take(usize::from(inner.height.saturating_sub(2)))
    {
        let row = row_of_inner(inner, 2 + i as u16);
        let name = h
            .session_title
            .clone()
            .unwrap_or_else(|| h.session_id.clone());
        let mut spans = vec![Span::styled(
            format!("{name} #{} ", h.seq),
            pal.style(Role::Dim),
        )];
        for p in &h.parts {
            let style = if p.hit {
                pal.style(Role::Warn)
            } else {
                Style::default()
            };
            spans.push(Span::styled(p.text.replace('\n', " "), style));
        }
        let mut line = Line::from(spans);
        if i == *selected {
            line = line.style(pal.style(Role::Selected));
        }
        buf.set_line(row.x, row.y, &line, row.width);
    }
    cursor
}

fn render_workdir(m: &Model, r: Rect, buf: &mut Buffer, pal: &Palette) -> Option<Position> {
    let Some(Overlay::Workdir {
        input,
        candidates,
        selected,
    }) = &m.overlay
    else {
        return None;
    };
    Clear.render(r, buf);
    let block = overlay_block(" new session · Tab completes · Enter starts ", pal);
    let inner = block.inner(r);
    block.render(r, buf);
    let head = row_of_inner(inner, 0);
    buf.set_stringn(
        head.x,
        head.y,
        "workdir:",
        usize::from(head.width),
        pal.style(Role::Dim),
    );
    let cursor = field(input, row_of_inner(inner, 1), buf, pal);
    for (i, c) in candidates
        .iter()
        .enumerate()
        .take(usize::from(inner.height.saturating_sub(2)))
    {
        let row = row_of_inner(inner, 2 + i as u16);
        let style = if *selected == Some(i) {
            pal.style(Role::Selected)
        } else {
            pal.style(Role::Dim)
        };
        buf.set_stringn(
            row.x + 2,
            row.y,
            c,
            usize::from(row.width.saturating_sub(2)),
            style,
        );
    }
    cursor
}

/// The screen as text and what can be acted on: what a headless driver reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The screen's rows, trailing spaces removed.
    pub lines: Vec<String>,
    /// Where the cursor is, when it shows: column and row.
    pub cursor: Option<(u16, u16)>,
    /// The actionable elements.
    pub elements: Vec<Element>,
}

/// Draws the model at its size and reads the screen back as text.
pub fn snapshot(m: &Model) -> Snapshot {
    let area = Rect::new(0, 0, m.width, m.height);
    let mut buf = Buffer::empty(area);
    let cursor = render(m, area, &mut buf).map(|p| (p.x, p.y));
    Snapshot {
        lines: buffer_lines(&buf),
        cursor,
        elements: elements(m),
    }
}

/// The rows of a buffer as text (wide characters once), trailing spaces removed.
pub fn buffer_lines(buf: &Buffer) -> Vec<String> {
    let width = usize::from(buf.area.width);
    if width == 0 {
        return vec![String::new(); usize::from(buf.area.height)];
    }
    buf.content
        .chunks(width)
        .map(|row| {
            let mut s = String::new();
            let mut skip = 0usize;
            for c in row {
                if skip == 0 {
                    s.push_str(c.symbol());
                }
                skip = skip.max(c.symbol().width()).saturating_sub(1);
            }
            s.trim_end().to_string()
        })
        .collect()
}
