//! Keys and what they do: a terminal-independent [`Key`] (parsed from names such as
//! `"ctrl+c"` or `"alt+enter"`, so a headless driver presses the same keys a person
//! does) and the one table of bindings, [`BINDINGS`], from which both the key handling
//! in [`crate::update`] and the help overlay are made.

use serde::Serialize;

/// A key, as the model sees it: a code and its modifiers. A character carries its own
/// case, so `shift` is only set for keys without one (`shift+tab` is [`KeyCode::BackTab`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Key {
    /// Which key.
    pub code: KeyCode,
    /// Control was held.
    pub ctrl: bool,
    /// Alt (Meta) was held.
    pub alt: bool,
    /// Shift was held (never for a character: see the type's doc).
    pub shift: bool,
}

/// The keys the model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum KeyCode {
    /// A character (with its case).
    Char(char),
    /// Enter / Return.
    Enter,
    /// Escape.
    Esc,
    /// Tab.
    Tab,
    /// Shift-Tab.
    BackTab,
    /// Backspace.
    Backspace,
    /// Delete.
    Delete,
    /// Arrow left.
    Left,
    /// Arrow right.
    Right,
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Home.
    Home,
    /// End.
    End,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// A function key, `F(1)` for F1.
    F(u8),
}

impl Key {
    /// A key with modifiers, normalized: a control character is lowercase, shift is
    /// folded into characters and Tab, and Ctrl-J (what many terminals send for
    /// Shift-Enter) stays Ctrl-J.
    pub fn new(code: KeyCode, ctrl: bool, alt: bool, shift: bool) -> Key {
        let (code, shift) = match code {
            KeyCode::Char(c) if ctrl => (KeyCode::Char(c.to_ascii_lowercase()), false),
            KeyCode::Char(c) => (KeyCode::Char(c), false),
            KeyCode::Tab if shift => (KeyCode::BackTab, false),
            KeyCode::BackTab => (KeyCode::BackTab, false),
            other => (other, shift),
        };
        Key {
            code,
            ctrl,
            alt,
            shift,
        }
    }

    /// A key with no modifier.
    pub fn plain(code: KeyCode) -> Key {
        Key::new(code, false, false, false)
    }

    /// A character key with no modifier.
    pub fn char(c: char) -> Key {
        Key::plain(KeyCode::Char(c))
    }

    /// Control and a character.
    pub fn ctrl(c: char) -> Key {
        Key::new(KeyCode::Char(c), true, false, false)
    }

    /// Parses a key name: modifiers (`ctrl`, `alt`, `shift`) and a key joined with `+`,
    /// case-insensitive for names (`"ctrl+c"`, `"Alt+Enter"`, `"shift+tab"`, `"f1"`,
    /// `"pageup"`, `"space"`, `"plus"`, `"?"`). A single character stands for itself,
    /// with its case (`"A"` is a capital A).
    pub fn parse(name: &str) -> Option<Key> {
        let (mut ctrl, mut alt, mut shift) = (false, false, false);
        let mut rest = name;
        loop {
            let lower = rest.to_ascii_lowercase();
            let (strip, flag) = if lower.starts_with("ctrl+") {
                (5, &mut ctrl)
            } else if lower.starts_with("control+") {
                (8, &mut ctrl)
            } else if lower.starts_with("alt+") {
                (4, &mut alt)
            } else if lower.starts_with("meta+") {
                (5, &mut alt)
            } else if lower.starts_with("shift+") {
                (6, &mut shift)
            } else {
                break;
            };
            *flag = true;
            rest = &rest[strip..];
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(if shift { c.to_ascii_uppercase() } else { c }),
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backtab" => KeyCode::BackTab,
                "backspace" | "bs" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pageup" | "pgup" => KeyCode::PageUp,
                "pagedown" | "pgdn" => KeyCode::PageDown,
                "space" => KeyCode::Char(' '),
                "plus" => KeyCode::Char('+'),
                f if f.starts_with('f') => KeyCode::F(f[1..].parse().ok().filter(|n| *n >= 1)?),
                _ => return None,
            },
        };
        Some(Key::new(code, ctrl, alt, shift))
    }

    /// The key's name as [`Key::parse`] reads it back, e.g. `ctrl+c`.
    pub fn name(&self) -> String {
        let mut s = String::new();
        if self.ctrl {
            s.push_str("ctrl+");
        }
        if self.alt {
            s.push_str("alt+");
        }
        if self.shift {
            s.push_str("shift+");
        }
        match self.code {
            KeyCode::Char(' ') => s.push_str("space"),
            KeyCode::Char('+') => s.push_str("plus"),
            KeyCode::Char(c) => s.push(c),
            KeyCode::Enter => s.push_str("enter"),
            KeyCode::Esc => s.push_str("esc"),
            KeyCode::Tab => s.push_str("tab"),
            KeyCode::BackTab => s.push_str("shift+tab"),
            KeyCode::Backspace => s.push_str("backspace"),
            KeyCode::Delete => s.push_str("delete"),
            KeyCode::Left => s.push_str("left"),
            KeyCode::Right => s.push_str("right"),
            KeyCode::Up => s.push_str("up"),
            KeyCode::Down => s.push_str("down"),
            KeyCode::Home => s.push_str("home"),
            KeyCode::End => s.push_str("end"),
            KeyCode::PageUp => s.push_str("pageup"),
            KeyCode::PageDown => s.push_str("pagedown"),
            KeyCode::F(n) => s.push_str(&format!("f{n}")),
        }
        s
    }

    /// The character this key types into a text field, if it types one.
    pub fn typed(&self) -> Option<char> {
        match self.code {
            KeyCode::Char(c) if !self.ctrl && !self.alt => Some(c),
            _ => None,
        }
    }
}

/// Where a binding applies. The model looks a key up in the scope of what has the
/// keyboard (an overlay, the approval card, the focused pane), then in `Global`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everywhere, unless the scope in front binds the key itself.
    Global,
    /// The message box.
    Input,
    /// The sessions pane.
    Sessions,
    /// The lanes pane.
    Lanes,
    /// The approval card, while one is shown.
    Approval,
    /// The help overlay.
    Help,
    /// The search overlay.
    Search,
    /// The workdir prompt of a new session.
    Workdir,
}

impl Scope {
    /// What the help overlay calls it.
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "anywhere",
            Scope::Input => "message box",
            Scope::Sessions => "sessions pane",
            Scope::Lanes => "lanes pane",
            Scope::Approval => "approval card",
            Scope::Help => "help",
            Scope::Search => "search",
            Scope::Workdir => "new session",
        }
    }
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Leave the client (the daemon and its sessions keep running).
    Quit,
    /// Cancel the selected session's running turn.
    Cancel,
    /// Select the next session.
    NextSession,
    /// Select the previous session.
    PrevSession,
    /// Open the search overlay.
    Search,
    /// Open the help overlay.
    Help,
    /// Ask for a workdir and start a session in it.
    NewSession,
    /// Pause the selected session, or resume it when it is paused.
    PauseResume,
    /// Move the focus to the next pane.
    FocusNext,
    /// Move the focus to the previous pane.
    FocusPrev,
    /// Send the message box (or run its `:command`).
    Send,
    /// A new line in the message box.
    Newline,
    /// Allow the tool call of the approval card, once.
    Allow,
    /// Deny it.
    Deny,
    /// Allow it and every later call of the same tool in the session.
    AlwaysAllow,
    /// Kill the focused lane.
    KillLane,
    /// Move up (a list's selection, a line of the message box).
    Up,
    /// Move down.
    Down,
    /// Scroll the focused view a page back.
    PageUp,
    /// Scroll it a page forward.
    PageDown,
    /// Take the selection (a session, a search hit) and go to the message box.
    Open,
    /// Close the overlay.
    Close,
    /// Run the overlay's query or take its answer.
    Submit,
    /// Complete the path in the workdir prompt.
    Complete,
}

/// One line of the key map.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// Where it applies.
    pub scope: Scope,
    /// The keys, by name (see [`Key::parse`]).
    pub keys: &'static [&'static str],
    /// What they do.
    pub action: Action,
    /// What the help overlay says.
    pub help: &'static str,
}

/// Every binding. Order matters only for the help overlay.
// One binding a line reads as a table; rustfmt would spread each over six lines.
#[rustfmt::skip]
pub const BINDINGS: &[Binding] = &[
    Binding { scope: Scope::Global, keys: &["ctrl+q"], action: Action::Quit, help: "quit (or type :q); sessions keep running" },
    Binding { scope: Scope::Global, keys: &["esc", "ctrl+c"], action: Action::Cancel, help: "cancel the running turn (never quits)" },
    Binding { scope: Scope::Global, keys: &["ctrl+n"], action: Action::NextSession, help: "next session" },
    Binding { scope: Scope::Global, keys: &["ctrl+p"], action: Action::PrevSession, help: "previous session" },
    Binding { scope: Scope::Global, keys: &["ctrl+t"], action: Action::NewSession, help: "start a session (asks for its workdir)" },
    Binding { scope: Scope::Global, keys: &["ctrl+s"], action: Action::PauseResume, help: "pause / resume the session" },
    Binding { scope: Scope::Global, keys: &["ctrl+k"], action: Action::Search, help: "search every session" },
    Binding { scope: Scope::Global, keys: &["tab"], action: Action::FocusNext, help: "next pane" },
    Binding { scope: Scope::Global, keys: &["shift+tab"], action: Action::FocusPrev, help: "previous pane" },
    Binding { scope: Scope::Global, keys: &["pageup"], action: Action::PageUp, help: "scroll back (the mouse wheel too)" },
    Binding { scope: Scope::Global, keys: &["pagedown"], action: Action::PageDown, help: "scroll forward" },
    Binding { scope: Scope::Global, keys: &["f1"], action: Action::Help, help: "help (? when not typing)" },
    Binding { scope: Scope::Input, keys: &["enter"], action: Action::Send, help: "send (:q quits, :new DIR, :pause, :resume)" },
    Binding { scope: Scope::Input, keys: &["alt+enter", "ctrl+j", "shift+enter"], action: Action::Newline, help: "new line" },
    Binding { scope: Scope::Input, keys: &["up"], action: Action::Up, help: "line up" },
    Binding { scope: Scope::Input, keys: &["down"], action: Action::Down, help: "line down" },
    Binding { scope: Scope::Sessions, keys: &["up", "k"], action: Action::Up, help: "previous session" },
    Binding { scope: Scope::Sessions, keys: &["down", "j"], action: Action::Down, help: "next session" },
    Binding { scope: Scope::Sessions, keys: &["enter"], action: Action::Open, help: "write to it" },
    Binding { scope: Scope::Sessions, keys: &["n"], action: Action::NewSession, help: "start a session" },
    Binding { scope: Scope::Sessions, keys: &["p"], action: Action::PauseResume, help: "pause / resume" },
    Binding { scope: Scope::Sessions, keys: &["?"], action: Action::Help, help: "help" },
    Binding { scope: Scope::Lanes, keys: &["up"], action: Action::Up, help: "previous lane" },
    Binding { scope: Scope::Lanes, keys: &["down"], action: Action::Down, help: "next lane" },
    Binding { scope: Scope::Lanes, keys: &["k"], action: Action::KillLane, help: "kill the focused lane" },
    Binding { scope: Scope::Lanes, keys: &["enter"], action: Action::Open, help: "back to the message box" },
    Binding { scope: Scope::Lanes, keys: &["?"], action: Action::Help, help: "help" },
    Binding { scope: Scope::Approval, keys: &["y"], action: Action::Allow, help: "allow this call" },
    Binding { scope: Scope::Approval, keys: &["n"], action: Action::Deny, help: "deny it" },
    Binding { scope: Scope::Approval, keys: &["a"], action: Action::AlwaysAllow, help: "always allow this tool in the session" },
    Binding { scope: Scope::Help, keys: &["esc", "ctrl+c", "q", "?", "enter", "f1"], action: Action::Close, help: "close" },
    Binding { scope: Scope::Help, keys: &["up"], action: Action::Up, help: "scroll up" },
    Binding { scope: Scope::Help, keys: &["down"], action: Action::Down, help: "scroll down" },
    Binding { scope: Scope::Search, keys: &["enter"], action: Action::Submit, help: "search; again to open the hit" },
    Binding { scope: Scope::Search, keys: &["up"], action: Action::Up, help: "previous hit" },
    Binding { scope: Scope::Search, keys: &["down"], action: Action::Down, help: "next hit" },
    Binding { scope: Scope::Search, keys: &["esc", "ctrl+c", "ctrl+k"], action: Action::Close, help: "close" },
    Binding { scope: Scope::Workdir, keys: &["enter"], action: Action::Submit, help: "start the session there" },
    Binding { scope: Scope::Workdir, keys: &["tab"], action: Action::Complete, help: "complete the path" },
    Binding { scope: Scope::Workdir, keys: &["up"], action: Action::Up, help: "previous completion" },
    Binding { scope: Scope::Workdir, keys: &["down"], action: Action::Down, help: "next completion" },
    Binding { scope: Scope::Workdir, keys: &["esc", "ctrl+c"], action: Action::Close, help: "close" },
];

/// The action `key` has in `scope`, not looking further.
pub fn lookup(scope: Scope, key: &Key) -> Option<Action> {
    BINDINGS
        .iter()
        .filter(|b| b.scope == scope)
        .find(|b| b.keys.iter().any(|k| Key::parse(k).as_ref() == Some(key)))
        .map(|b| b.action)
}

/// The first key bound to `action` in `scope`, by name (for labels such as `[y]`).
pub fn key_for(scope: Scope, action: Action) -> Option<&'static str> {
    BINDINGS
        .iter()
        .find(|b| b.scope == scope && b.action == action)
        .and_then(|b| b.keys.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bound_key_parses_and_names_round_trip() {
        for b in BINDINGS {
            for k in b.keys {
                let key = Key::parse(k).unwrap_or_else(|| panic!("{k} does not parse"));
                assert_eq!(Key::parse(&key.name()), Some(key), "{k}");
            }
        }
    }

    #[test]
    fn names_parse_to_normalized_keys() {
        assert_eq!(Key::parse("ctrl+c"), Some(Key::ctrl('c')));
        assert_eq!(Key::parse("Ctrl+C"), Some(Key::ctrl('c')));
        assert_eq!(Key::parse("shift+tab"), Some(Key::plain(KeyCode::BackTab)));
        assert_eq!(
            Key::parse("alt+enter"),
            Some(Key::new(KeyCode::Enter, false, true, false))
        );
        assert_eq!(Key::parse("A"), Some(Key::char('A')));
        assert_eq!(Key::parse("shift+a"), Some(Key::char('A')));
        assert_eq!(Key::parse("f1"), Some(Key::plain(KeyCode::F(1))));
        assert_eq!(Key::parse("space"), Some(Key::char(' ')));
        assert_eq!(Key::parse("hyper+x"), None);
        assert_eq!(Key::parse("f0"), None);
    }

    #[test]
    fn no_key_is_bound_twice_in_one_scope() {
        let mut seen = std::collections::HashSet::new();
        for b in BINDINGS {
            for k in b.keys {
                let key = Key::parse(k).unwrap_or_else(|| panic!("{k}"));
                assert!(seen.insert((b.scope, key)), "{k} twice in {:?}", b.scope);
            }
        }
    }
}
