//! `r1 tui` as a pure state machine, in the Elm style: a [`Model`], the [`Msg`]s that
//! change it, [`update`] (`Model + Msg → Model + Vec<Cmd>`, no I/O), and [`view`]
//! (`&Model → frame`). The host runs the [`Cmd`]s (catalog calls, following a
//! session's records, completing a path) and feeds what comes back as `Msg`s: the
//! terminal runner in the `r1` binary does it with a real terminal, tests do it by
//! hand, and a headless driver can do it inside the daemon, reading the screen with
//! [`snapshot`] (text lines plus the actionable [`Element`]s, each with a stable id and
//! the catalog method it calls) and pressing keys parsed with [`Key::parse`].
//!
//! Nothing here touches the network or the terminal; [`complete_path`] is the one
//! helper that reads the file system, for hosts that run [`Cmd::Complete`].

mod exec;
mod keymap;
mod markdown;
mod model;
mod paths;
mod theme;
mod update;
mod view;

pub use exec::run_call;
pub use keymap::{key_for, lookup, Action, Binding, Key, KeyCode, Scope, BINDINGS};
pub use markdown::{line_text, render as render_markdown, CONTINUATION};
pub use model::{
    Approval, Attach, Config, Connection, DaemonInfo, Entry, EntryKind, Flash, Focus, Lane, Model,
    Overlay, TextInput, Transcript, LANE_OUTPUT_CAP,
};
pub use paths::complete_path;
pub use theme::{ColorMode, Palette, Role};
pub use update::{absolute, act, args_summary, init, scope, update, Call, Cmd, Mouse, Msg};
pub use view::{
    buffer_lines, check_elements, elements, help_lines, input_rows, layout, layout_in, max_scroll,
    render, session_label, snapshot, view, Area, Element, Panes, Snapshot, Target,
};
