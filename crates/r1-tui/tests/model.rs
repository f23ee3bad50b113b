//! The TUI model driven with no terminal: keys and records in, commands and screens out.

// Tests may unwrap (STYLE.md §4): a panic is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use r1_proto::events::{
    ApprovalRequested, ApprovalResolved, AssistantMessage, LaneCreated, LaneDelta, SessionDelta,
    SessionError, SessionMessage, SessionStateChanged, UserMessage,
};
use r1_proto::{
    Decision, Event, EventData, EventRecord, SearchHit, SearchKind, SessionState, SessionUsage,
    SessionView, SnippetPart,
};
use r1_tui::{
    elements, init, render, snapshot, update, view, Call, Cmd, ColorMode, Config, Connection,
    Focus, Key, KeyCode, Model, Mouse, Msg, Overlay, Scope,
};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::Terminal;

const SID: &str = "ses_0123456789abcdef";

fn config(width: u16, height: u16) -> Config {
    Config {
        session: None,
        workdir: None,
        engine: None,
        cwd: "/home/me/src".into(),
        color: ColorMode::Indexed,
        width,
        height,
        client_tag: "tui-test".into(),
    }
}

fn view_of(id: &str, state: SessionState, last_seq: u64) -> SessionView {
    SessionView {
        id: id.into(),
        workdir: format!("/work/{id}"),
        engine: "echo".into(),
        model: None,
        title: None,
        state,
        reattachable: false,
        created_at: "2025-01-01T00:00:00.000Z".into(),
        last_seq,
        pending_approvals: vec![],
        error: None,
        worktree_id: None,
        usage: SessionUsage::default(),
        archived: false,
    }
}

fn record<E: Event>(seq: u64, e: E) -> EventRecord {
    let data: EventData = e.into();
    EventRecord {
        v: 1,
        seq,
        at: "2025-01-01T00:00:00.000Z".into(),
        kind: E::KIND,
        lane: "main".into(),
        data: data.to_value(),
    }
}

/// A model attached to one idle session, records applied up to `seq` 1.
fn attached(width: u16, height: u16) -> Model {
    let (mut m, _) = init(config(width, height));
    update(
        &mut m,
        Msg::Daemon(r1_tui::DaemonInfo {
            version: "0.1.0".into(),
            pid: 1,
        }),
    );
    let cmds = update(
        &mut m,
        Msg::Sessions(vec![view_of(SID, SessionState::Idle, 0)]),
    );
    assert!(
        cmds.contains(&Cmd::Follow {
            session_id: SID.into(),
            since_seq: 1
        }),
        "{cmds:?}"
    );
    m
}

fn rec(m: &mut Model, r: EventRecord) {
    assert!(update(
        m,
        Msg::Record {
            session_id: SID.into(),
            record: r
        }
    )
    .is_empty());
}

fn key(m: &mut Model, k: &str) -> Vec<Cmd> {
    update(m, Msg::Key(Key::parse(k).unwrap_or_else(|| panic!("{k}"))))
}

fn typ(m: &mut Model, text: &str) {
    for c in text.chars() {
        update(m, Msg::Key(Key::char(c)));
    }
}

fn screen(m: &Model) -> String {
    snapshot(m).lines.join("\n")
}

fn user(seq: u64, text: &str, id: &str) -> EventRecord {
    record(
        seq,
        SessionMessage::User(UserMessage {
            text: text.into(),
            message_id: id.into(),
            client_message_id: None,
        }),
    )
}

fn delta(seq: u64, text: &str, reply_to: &str) -> EventRecord {
    record(
        seq,
        SessionDelta {
            text: text.into(),
            reply_to: reply_to.into(),
        },
    )
}

fn assistant(seq: u64, text: &str, reply_to: &str) -> EventRecord {
    let a: AssistantMessage = serde_json::from_value(serde_json::json!({
        "text": text, "reply_to": reply_to,
        "usage": {"input_tokens": 3, "output_tokens": 2}
    }))
    .unwrap();
    record(seq, SessionMessage::Assistant(a))
}

fn state(seq: u64, s: SessionState) -> EventRecord {
    let v: SessionStateChanged =
        serde_json::from_value(serde_json::json!({"state": s.as_str()})).unwrap();
    record(seq, v)
}

#[test]
fn typing_and_enter_send_a_message_with_an_idempotency_key() {
    let mut m = attached(100, 30);
    typ(&mut m, "hello");
    key(&mut m, "alt+enter");
    typ(&mut m, "world");
    assert_eq!(m.input.text, "hello\nworld");
    let cmds = key(&mut m, "enter");
    let [Cmd::Call(Call::Send(p))] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert_eq!(p.session_id, SID);
    assert_eq!(p.text, "hello\nworld");
    assert_eq!(p.client_message_id.as_deref(), Some("tui-test-1"));
    assert!(m.input.text.is_empty());
    // An empty box sends nothing.
    assert!(key(&mut m, "enter").is_empty());
}

#[test]
fn esc_and_ctrl_c_cancel_and_never_quit() {
    let mut m = attached(100, 30);
    rec(&mut m, state(1, SessionState::Busy));
    for k in ["esc", "ctrl+c"] {
        let cmds = key(&mut m, k);
        assert_eq!(
            cmds,
            vec![Cmd::Call(Call::Cancel(r1_proto::SessionRef::new(SID)))],
            "{k}"
        );
        assert!(!m.quit);
    }
    // Nothing running: nothing to cancel, still no quit.
    rec(&mut m, state(2, SessionState::Idle));
    assert!(key(&mut m, "ctrl+c").is_empty());
    assert!(!m.quit);
    assert_eq!(key(&mut m, "ctrl+q"), vec![Cmd::Quit]);
    assert!(m.quit);
    let mut m = attached(100, 30);
    typ(&mut m, ":q");
    assert_eq!(key(&mut m, "enter"), vec![Cmd::Quit]);
}

#[test]
fn question_mark_opens_help_unless_typing() {
    let mut m = attached(100, 30);
    key(&mut m, "?");
    assert!(matches!(m.overlay, Some(Overlay::Help { .. })));
    assert!(screen(&m).contains("cancel the running turn"));
    key(&mut m, "esc");
    assert!(m.overlay.is_none());
    typ(&mut m, "why?");
    assert_eq!(m.input.text, "why?");
    assert!(m.overlay.is_none());
}

#[test]
fn streaming_deltas_are_assembled_once_even_when_records_come_again() {
    let mut m = attached(100, 30);
    rec(&mut m, user(1, "hello there", "msg_1"));
    rec(&mut m, delta(2, "echo: he", "msg_1"));
    rec(&mut m, delta(3, "llo th", "msg_1"));
    let t = m.transcript().unwrap();
    assert_eq!(t.entries.last().unwrap().text, "echo: hello th");
    assert!(t.entries.last().unwrap().streaming);
    // A reconnect that overlaps replays seq 2 and 3: they are not applied twice.
    rec(&mut m, delta(2, "echo: he", "msg_1"));
    rec(&mut m, delta(3, "llo th", "msg_1"));
    rec(&mut m, delta(4, "ere", "msg_1"));
    rec(&mut m, assistant(5, "echo: hello there", "msg_1"));
    let t = m.transcript().unwrap();
    let answers: Vec<_> = t
        .entries
        .iter()
        .filter(|e| e.kind == r1_tui::EntryKind::Assistant)
        .collect();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].text, "echo: hello there");
    assert!(!answers[0].streaming);
    assert_eq!(t.next_seq, 6);
    let s = screen(&m);
    assert_eq!(s.matches("echo: hello there").count(), 1, "{s}");
    assert!(s.contains("› hello there"), "{s}");
    // Tokens of the assistant message reach the status line.
    assert!(s.contains("tokens 3 in · 2 out"), "{s}");
}

#[test]
fn an_interrupted_reply_keeps_its_text_once_and_says_why() {
    let mut m = attached(100, 30);
    rec(&mut m, user(1, "/slow one two", "msg_1"));
    rec(&mut m, delta(2, "echo: on", "msg_1"));
    let e: SessionError = serde_json::from_value(serde_json::json!({
        "message": "the daemon restarted", "message_id": "msg_1", "interrupted": true
    }))
    .unwrap();
    rec(&mut m, record(3, e));
    let s = screen(&m);
    assert_eq!(s.matches("echo: on").count(), 1, "{s}");
    assert!(s.contains("interrupted by a daemon restart"), "{s}");
    assert!(!m.transcript().unwrap().entries.iter().any(|e| e.streaming));
}

fn ask(m: &mut Model, seq: u64, id: &str) {
    let a: ApprovalRequested = serde_json::from_value(serde_json::json!({
        "approval_id": id, "tool": "run_command", "args": {"command": "ls -la"},
        "call_id": "call_1", "reply_to": "msg_1"
    }))
    .unwrap();
    rec(m, record(seq, a));
}

#[test]
fn the_approval_card_takes_y_n_and_a() {
    for (k, decision, remember) in [
        ("y", Decision::Allow, false),
        ("n", Decision::Deny, false),
        ("a", Decision::Allow, true),
    ] {
        let mut m = attached(100, 30);
        ask(&mut m, 1, "apr_1");
        assert_eq!(r1_tui::scope(&m), Scope::Approval);
        let s = screen(&m);
        assert!(s.contains("approval needed"), "{s}");
        assert!(s.contains("run_command wants to run:"), "{s}");
        assert!(s.contains("ls -la"), "{s}");
        assert!(s.contains("[y] allow"), "{s}");
        // Typing does not reach the message box while the card is up.
        update(&mut m, Msg::Key(Key::char('x')));
        assert!(m.input.text.is_empty());
        let cmds = key(&mut m, k);
        let [Cmd::Call(Call::Approve(p))] = cmds.as_slice() else {
            panic!("{cmds:?}")
        };
        assert_eq!(
            (p.approval_id.as_str(), p.decision, p.remember),
            ("apr_1", decision, remember)
        );
        assert!(m.approval().is_none(), "the card goes at once");
        assert!(!screen(&m).contains("approval needed"));
        // A second press decides nothing more.
        assert!(key(&mut m, k)
            .iter()
            .all(|c| !matches!(c, Cmd::Call(Call::Approve(_)))));
    }
}

#[test]
fn a_failed_decision_brings_the_card_back_and_a_resolution_clears_it() {
    let mut m = attached(100, 30);
    ask(&mut m, 1, "apr_1");
    key(&mut m, "y");
    update(
        &mut m,
        Msg::Failed {
            method: "session.approve",
            message: "unreachable".into(),
        },
    );
    assert_eq!(m.approval().map(|a| a.id.as_str()), Some("apr_1"));
    let r: ApprovalResolved = serde_json::from_value(serde_json::json!({
        "approval_id": "apr_1", "decision": "allow"
    }))
    .unwrap();
    rec(&mut m, record(2, r));
    assert!(m.approval().is_none());
}

#[test]
fn lanes_show_live_output_and_k_kills_the_focused_one() {
    let mut m = attached(100, 30);
    rec(
        &mut m,
        record(
            1,
            LaneCreated {
                lane: "tool_1".into(),
                tool: "run_command".into(),
                call_id: "c".into(),
            },
        ),
    );
    rec(
        &mut m,
        record(
            2,
            LaneDelta {
                lane: "tool_1".into(),
                text: "marker-file.txt\nsecond line\n".into(),
            },
        ),
    );
    let s = screen(&m);
    assert!(s.contains("marker-file.txt"), "{s}");
    assert!(s.contains("run_command"), "{s}");
    // `k` in the message box is a letter.
    typ(&mut m, "k");
    assert_eq!(m.input.text, "k");
    key(&mut m, "backspace");
    key(&mut m, "tab");
    assert_eq!(m.focus, Focus::Lanes);
    let cmds = key(&mut m, "k");
    assert_eq!(
        cmds,
        vec![Cmd::Call(Call::KillLane(r1_proto::LaneRef {
            session_id: SID.into(),
            lane_id: "tool_1".into()
        }))]
    );
    let ids: Vec<String> = elements(&m).into_iter().map(|e| e.id).collect();
    assert!(ids.contains(&"lanes.kill.tool_1".to_string()), "{ids:?}");
}

#[test]
fn ctrl_n_and_ctrl_p_switch_sessions_and_follow_from_where_they_were() {
    let mut m = attached(100, 30);
    rec(&mut m, user(1, "first", "msg_1"));
    update(
        &mut m,
        Msg::Sessions(vec![
            view_of(SID, SessionState::Idle, 1),
            view_of("ses_second", SessionState::Busy, 0),
        ]),
    );
    let cmds = key(&mut m, "ctrl+n");
    assert!(
        cmds.contains(&Cmd::Follow {
            session_id: "ses_second".into(),
            since_seq: 1
        }),
        "{cmds:?}"
    );
    assert_eq!(m.selected.as_deref(), Some("ses_second"));
    let cmds = key(&mut m, "ctrl+p");
    assert!(
        cmds.contains(&Cmd::Follow {
            session_id: SID.into(),
            since_seq: 2
        }),
        "{cmds:?}"
    );
    assert!(screen(&m).contains("› first"));
}

#[test]
fn a_paused_session_is_resumed_before_the_message_goes() {
    let mut m = attached(100, 30);
    update(&mut m, Msg::Session(view_of(SID, SessionState::Paused, 3)));
    typ(&mut m, "again");
    let cmds = key(&mut m, "enter");
    assert!(
        matches!(
            cmds.as_slice(),
            [Cmd::Call(Call::Resume(_)), Cmd::Call(Call::Send(_))]
        ),
        "{cmds:?}"
    );
}

#[test]
fn reconnecting_shows_and_refreshes_when_back() {
    let mut m = attached(100, 30);
    update(&mut m, Msg::Connection(Connection::Connected));
    update(&mut m, Msg::Connection(Connection::Reconnecting));
    assert!(screen(&m).contains("reconnecting"));
    let cmds = update(&mut m, Msg::Connection(Connection::Connected));
    assert!(cmds.contains(&Cmd::Call(Call::ListSessions)), "{cmds:?}");
    assert!(screen(&m).contains("connected"));
}

#[test]
fn the_workdir_prompt_completes_and_starts_a_session() {
    let mut m = attached(100, 30);
    key(&mut m, "ctrl+t");
    let Some(Overlay::Workdir { input, .. }) = &m.overlay else {
        panic!()
    };
    assert_eq!(input.text, format!("/work/{SID}"));
    for _ in 0..input.text.len() {
        key(&mut m, "backspace");
    }
    typ(&mut m, "pro");
    assert_eq!(
        key(&mut m, "tab"),
        vec![Cmd::Complete {
            input: "pro".into(),
            cwd: "/home/me/src".into()
        }]
    );
    update(
        &mut m,
        Msg::Completions {
            input: "pro".into(),
            candidates: vec!["project-a/".into(), "project-b/".into()],
        },
    );
    let Some(Overlay::Workdir {
        input, candidates, ..
    }) = &m.overlay
    else {
        panic!()
    };
    assert_eq!(input.text, "project-");
    assert_eq!(candidates.len(), 2);
    assert!(screen(&m).contains("project-b/"));
    key(&mut m, "down");
    let cmds = key(&mut m, "enter");
    let [Cmd::Call(Call::StartSession(p))] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert_eq!(p.workdir, "/home/me/src/project-a");
    let cmds = update(
        &mut m,
        Msg::Started(view_of("ses_new", SessionState::Idle, 1)),
    );
    assert!(cmds.contains(&Cmd::Follow {
        session_id: "ses_new".into(),
        since_seq: 1
    }));
    assert_eq!(m.selected.as_deref(), Some("ses_new"));
}

#[test]
fn search_queries_and_opens_a_hit() {
    let mut m = attached(100, 30);
    update(
        &mut m,
        Msg::Sessions(vec![
            view_of(SID, SessionState::Idle, 0),
            view_of("ses_other", SessionState::Idle, 9),
        ]),
    );
    key(&mut m, "ctrl+k");
    typ(&mut m, "needle");
    let cmds = key(&mut m, "enter");
    let [Cmd::Call(Call::Search(p))] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert_eq!(p.q, "needle");
    let hit = SearchHit {
        session_id: "ses_other".into(),
        session_title: Some("other".into()),
        seq: 4,
        kind: SearchKind::Message,
        record_kind: "session.message".into(),
        at: "2025-01-01T00:00:00Z".into(),
        snippet: "a [needle] here".into(),
        parts: vec![
            SnippetPart {
                text: "a ".into(),
                hit: false,
            },
            SnippetPart {
                text: "needle".into(),
                hit: true,
            },
            SnippetPart {
                text: " here".into(),
                hit: false,
            },
        ],
    };
    update(
        &mut m,
        Msg::SearchResults {
            query: "needle".into(),
            hits: vec![hit],
        },
    );
    assert!(
        screen(&m).contains("other #4 a needle here"),
        "{}",
        screen(&m)
    );
    let cmds = key(&mut m, "enter");
    assert!(
        cmds.contains(&Cmd::Follow {
            session_id: "ses_other".into(),
            since_seq: 1
        }),
        "{cmds:?}"
    );
    assert!(m.overlay.is_none());
}

#[test]
fn the_mouse_scrolls_the_conversation_and_clicks_select_sessions() {
    let mut m = attached(100, 30);
    for i in 0..40u64 {
        rec(
            &mut m,
            user(i + 1, &format!("line {i}"), &format!("msg_{i}")),
        );
    }
    update(&mut m, Msg::Mouse(Mouse::ScrollUp { column: 60, row: 5 }));
    assert_eq!(m.scroll, 3);
    assert!(screen(&m).contains("more"));
    update(&mut m, Msg::Mouse(Mouse::ScrollDown { column: 60, row: 5 }));
    assert_eq!(m.scroll, 0);
    update(
        &mut m,
        Msg::Sessions(vec![
            view_of(SID, SessionState::Idle, 40),
            view_of("ses_other", SessionState::Idle, 0),
        ]),
    );
    let other = elements(&m)
        .into_iter()
        .find(|e| e.id == "sessions.item.ses_other")
        .unwrap();
    let r = other.rect.unwrap();
    let cmds = update(
        &mut m,
        Msg::Mouse(Mouse::Click {
            column: r.x + 1,
            row: r.y,
        }),
    );
    assert!(
        cmds.contains(&Cmd::Follow {
            session_id: "ses_other".into(),
            since_seq: 1
        }),
        "{cmds:?}"
    );
}

#[test]
fn every_element_has_a_unique_id_and_a_catalog_method() {
    let mut m = attached(100, 30);
    update(
        &mut m,
        Msg::Sessions(vec![
            view_of(SID, SessionState::Busy, 0),
            view_of("ses_b", SessionState::Idle, 0),
        ]),
    );
    rec(
        &mut m,
        record(
            1,
            LaneCreated {
                lane: "tool_1".into(),
                tool: "run_command".into(),
                call_id: "c".into(),
            },
        ),
    );
    let mut seen = Vec::new();
    let mut check = |m: &Model| {
        let els = elements(m);
        if let Err(e) = r1_tui::check_elements(&els) {
            panic!("{e}");
        }
        seen.extend(els.iter().map(|e| e.id.clone()));
    };
    check(&m);
    ask(&mut m, 2, "apr_1");
    check(&m);
    key(&mut m, "ctrl+k");
    check(&m);
    key(&mut m, "esc");
    key(&mut m, "ctrl+t");
    check(&m);
    key(&mut m, "esc");
    key(&mut m, "f1");
    check(&m);
    for id in [
        "input.send",
        "session.cancel",
        "approval.allow",
        "approval.always",
        "search.query",
        "workdir.start",
        "lanes.item.tool_1",
    ] {
        assert!(seen.iter().any(|s| s == id), "{id} never shown: {seen:?}");
    }
    // Every call the model makes is a catalog operation too.
    for c in [
        Call::Handshake,
        Call::ListSessions,
        Call::Search(Default::default()),
        Call::KillLane(r1_proto::LaneRef {
            session_id: SID.into(),
            lane_id: "l".into(),
        }),
    ] {
        assert!(
            r1_proto::catalog::operation(c.method()).is_some(),
            "{}",
            c.method()
        );
    }
}

#[test]
fn activating_an_element_by_id_does_what_its_key_does() {
    let mut m = attached(100, 30);
    ask(&mut m, 1, "apr_1");
    let cmds = update(&mut m, Msg::Activate("approval.always".into()));
    let [Cmd::Call(Call::Approve(p))] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert!(p.remember);
}

/// A model with a bit of everything: a conversation with code, lanes, an approval.
fn busy_model(width: u16, height: u16, color: ColorMode) -> Model {
    let (mut m, _) = init(Config {
        color,
        ..config(width, height)
    });
    update(
        &mut m,
        Msg::Sessions(vec![
            view_of(SID, SessionState::Idle, 0),
            view_of("ses_b", SessionState::Ended, 0),
        ]),
    );
    rec(&mut m, user(1, "show me code", "msg_1"));
    rec(&mut m, assistant(2, "Here:\n```rust\nfn main() { println!(\"a very long line of code that will not fit in a narrow window\"); }\n```\n- done **now**", "msg_1"));
    rec(
        &mut m,
        record(
            3,
            LaneCreated {
                lane: "tool_1".into(),
                tool: "run_command".into(),
                call_id: "c".into(),
            },
        ),
    );
    rec(
        &mut m,
        record(
            4,
            LaneDelta {
                lane: "tool_1".into(),
                text: "out\n".into(),
            },
        ),
    );
    ask(&mut m, 5, "apr_1");
    update(&mut m, Msg::Connection(Connection::Connected));
    m
}

#[test]
fn small_and_odd_sizes_render_without_panic() {
    for (w, h) in [
        (40, 12),
        (0, 0),
        (1, 1),
        (10, 3),
        (20, 5),
        (72, 16),
        (300, 100),
    ] {
        let mut m = busy_model(w, h, ColorMode::Indexed);
        for k in [
            "f1", "esc", "ctrl+k", "esc", "ctrl+t", "esc", "tab", "tab", "tab",
        ] {
            key(&mut m, k);
            let _ = snapshot(&m);
        }
        update(
            &mut m,
            Msg::Resize {
                width: w / 2,
                height: h / 2,
            },
        );
        let _ = snapshot(&m);
        for i in 0..3 {
            update(
                &mut m,
                Msg::Mouse(Mouse::Click {
                    column: i * 7,
                    row: i * 3,
                }),
            );
            let _ = snapshot(&m);
        }
    }
    // 40×12 still shows the essentials.
    let m = busy_model(40, 12, ColorMode::Indexed);
    let s = snapshot(&m);
    assert_eq!(s.lines.len(), 12);
    assert!(s.lines.iter().all(|l| unicode_width(l) <= 40));
    let text = s.lines.join("\n");
    assert!(text.contains("approval needed"), "{text}");
    assert!(s.lines[11].contains("connected"), "{text}");
}

fn unicode_width(s: &str) -> usize {
    s.chars().count()
}

#[test]
fn no_color_draws_no_colour() {
    let m = busy_model(100, 30, ColorMode::None);
    let mut buf = Buffer::empty(Rect::new(0, 0, 100, 30));
    render(&m, buf.area, &mut buf);
    for c in &buf.content {
        assert_eq!((c.fg, c.bg), (Color::Reset, Color::Reset), "{c:?}");
    }
    // With colour, there is some; the 256-colour mode uses no 24-bit colour.
    let m = busy_model(100, 30, ColorMode::Indexed);
    let mut buf = Buffer::empty(Rect::new(0, 0, 100, 30));
    render(&m, buf.area, &mut buf);
    assert!(buf.content.iter().any(|c| c.fg != Color::Reset));
    assert!(buf
        .content
        .iter()
        .all(|c| !matches!(c.fg, Color::Rgb(..)) && !matches!(c.bg, Color::Rgb(..))));
}

#[test]
fn code_stays_intact_in_the_conversation() {
    let mut m = busy_model(60, 30, ColorMode::Indexed);
    key(&mut m, "n"); // deny, so the card is out of the way
    let s = screen(&m);
    assert!(s.contains("```rust"), "{s}");
    assert!(s.contains(&format!("{} ", r1_tui::CONTINUATION)), "{s}");
    assert!(s.contains("• done now"), "{s}");
}

#[test]
fn the_view_draws_through_a_ratatui_terminal() {
    let m = busy_model(80, 24, ColorMode::TrueColor);
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    term.draw(|f| view(&m, f)).unwrap();
    let lines = r1_tui::buffer_lines(term.backend().buffer());
    assert_eq!(lines, snapshot(&m).lines);
    // The message box has the cursor when nothing is in front of it.
    let mut m = attached(80, 24);
    typ(&mut m, "abc");
    let s = snapshot(&m);
    let (x, y) = s.cursor.unwrap();
    let row: Vec<char> = s.lines[usize::from(y)].chars().collect();
    assert_eq!(
        row[usize::from(x) - 3..usize::from(x)]
            .iter()
            .collect::<String>(),
        "abc"
    );
}

#[test]
fn keys_parse_from_the_names_a_headless_driver_sends() {
    assert_eq!(Key::parse("enter"), Some(Key::plain(KeyCode::Enter)));
    assert_eq!(Key::parse("ctrl+c"), Some(Key::ctrl('c')));
    let mut m = attached(100, 30);
    typ(&mut m, "hi");
    let cmds = key(&mut m, "enter");
    assert!(matches!(cmds.as_slice(), [Cmd::Call(Call::Send(_))]));
}

/// The view-without-API rule catches a control planted without an id, twice, or naming
/// an operation the catalog does not have.
#[test]
fn a_planted_element_without_a_catalog_operation_is_refused() {
    let m = attached(100, 30);
    let mut els = elements(&m);
    assert!(r1_tui::check_elements(&els).is_ok());
    let mut planted = els[0].clone();
    planted.id = "planted.button".into();
    planted.method = Some("session.nope");
    els.push(planted.clone());
    let err = r1_tui::check_elements(&els).unwrap_err();
    assert!(err.contains("planted.button names session.nope"), "{err}");
    els.pop();
    planted.method = Some("session.get");
    planted.id = String::new();
    els.push(planted);
    let err = r1_tui::check_elements(&els).unwrap_err();
    assert!(err.contains("without an id"), "{err}");
    let dup = els[0].clone();
    els.pop();
    els.push(dup);
    assert!(r1_tui::check_elements(&els).unwrap_err().contains("twice"));
}
