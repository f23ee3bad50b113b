//! Headless TUI resources: the `r1.tui.*` operations run the `r1 tui` model inside the
//! daemon, so an agent can press keys and read the screen a person would see.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The params of `tui.open`: the session to show, and the screen's size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TuiOpenParams {
    /// Attach to this session (`ses_…`); without it the newest live session is shown,
    /// or the workdir prompt when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Columns of the virtual screen (default 100, 20 to 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u16>,
    /// Rows of the virtual screen (default 30, 6 to 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u16>,
}

/// The params of an operation on one headless TUI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TuiRef {
    /// The headless TUI (`tui_…`) from `tui.open`.
    pub tui_session_id: String,
}

/// The params of `tui.press_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TuiKeyParams {
    /// The headless TUI (`tui_…`).
    pub tui_session_id: String,
    /// A key name: a character (`a`, `A`, `/`, `space`), a named key (`enter`, `esc`,
    /// `tab`, `backspace`, `up`, `pageup`, `f1`…), with modifiers joined by `+`
    /// (`ctrl+c`, `alt+enter`, `shift+tab`).
    pub key: String,
}

/// The params of `tui.focus_lane`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TuiFocusLaneParams {
    /// The headless TUI (`tui_…`).
    pub tui_session_id: String,
    /// The lane (`tool_…`) of the shown session to focus in the lanes pane.
    pub lane_id: String,
}

/// The params of `tui.get_model`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TuiGetModelParams {
    /// The headless TUI (`tui_…`).
    pub tui_session_id: String,
    /// A dotted path into the model as JSON: `$` (or empty) for all of it, else keys
    /// and array indexes joined by `.`, e.g. `$.focus`, `$.input.text`,
    /// `$.transcripts.ses_1.entries.0.text`. No wildcards, filters or slices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonpath: Option<String>,
}

/// A headless TUI that was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TuiOpened {
    /// Its id (`tui_…`), for the other `tui.*` operations.
    pub tui_session_id: String,
    /// Columns of its screen.
    pub width: u16,
    /// Rows of its screen.
    pub height: u16,
    /// Seconds without a call after which it is closed.
    pub idle_timeout_s: u64,
}

/// A cell of the screen: column and row, from 0 at the top left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TuiPoint {
    /// The column.
    pub column: u16,
    /// The row.
    pub row: u16,
}

/// A rectangle of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TuiRect {
    /// The left column.
    pub x: u16,
    /// The top row.
    pub y: u16,
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

/// One actionable thing on the screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TuiElement {
    /// A stable id (`approval.allow`, `sessions.item.ses_…`, `lanes.kill.tool_…`,
    /// `input.send`…).
    pub id: String,
    /// What it says.
    pub label: String,
    /// The catalog method it calls (directly, or once its prompt is answered); absent
    /// for what stays in the client (help, focus, quit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The key that does the same, by name (for `tui.press_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Where it is drawn, when it is drawn as a thing of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rect: Option<TuiRect>,
}

/// The screen of a headless TUI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TuiSnapshot {
    /// The headless TUI.
    pub tui_session_id: String,
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
    /// The screen's rows as text, trailing spaces removed (what `tmux capture-pane`
    /// shows for a terminal of the same size).
    pub lines: Vec<String>,
    /// The cursor, when it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<TuiPoint>,
    /// The accessibility tree: every actionable element, with its id and operation.
    pub elements: Vec<TuiElement>,
}

/// A part of a headless TUI's model (`tui.get_model`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TuiModelView {
    /// The path that was read.
    pub jsonpath: String,
    /// The value there. Its shape is the client's internal state and may change
    /// between versions.
    pub value: serde_json::Value,
}
