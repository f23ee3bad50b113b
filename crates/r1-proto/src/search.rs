//! Full-text search over every session's history: the params and results of `search`
//! and `search.reindex`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a search hit is: the kinds of record the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchKind {
    /// A user or assistant `session.message`.
    Message,
    /// A tool call (`tool.started` arguments), its result (`tool.completed` content), or
    /// the output of a tool still running (its `lane.delta` records, one hit per lane).
    Tool,
    /// An `approval.requested`: the tool and arguments a call asked approval for.
    Approval,
}

impl SearchKind {
    /// The wire spelling, e.g. `message`.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchKind::Message => "message",
            SearchKind::Tool => "tool",
            SearchKind::Approval => "approval",
        }
    }
}

/// The params of `search`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// The query, in SQLite FTS5 syntax: words (all must match), `"a phrase"`, `pre*`
    /// for a prefix, `AND`, `OR`, `NOT` and parentheses, `NEAR(a b, 5)`.
    pub q: String,
    /// Only hits in this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Only hits of these kinds (over HTTP, `kind=message,tool`); all kinds when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Vec<SearchKind>>,
    /// Only records written at or after this RFC 3339 time (UTC, e.g.
    /// `2025-06-01T12:00:00Z` or just a date, `2025-06-01`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// At most this many hits (default 20, at most 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Where to go on: the `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// One piece of a hit's snippet: matched text (`hit`) or the text around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SnippetPart {
    /// The text.
    pub text: String,
    /// True when this text matched the query.
    pub hit: bool,
}

/// One search hit: a record of a session's journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SearchHit {
    /// The session (`ses_…`).
    pub session_id: String,
    /// The session's title, `null` when it has none.
    pub session_title: Option<String>,
    /// The seq of the record in the session's journal (for lane output, its first
    /// `lane.delta`).
    pub seq: u64,
    /// What the record is.
    pub kind: SearchKind,
    /// The journal record kind, e.g. `tool.completed`.
    pub record_kind: String,
    /// When the record was written (RFC 3339).
    pub at: String,
    /// Up to about 24 words around the matches, with each match between `[` and `]`
    /// (for people; brackets in the text itself are not escaped: use `parts` to tell).
    pub snippet: String,
    /// The same snippet in pieces, matches marked: what a UI renders.
    pub parts: Vec<SnippetPart>,
}

/// The result of `search`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SearchResult {
    /// The hits, most relevant first (BM25).
    pub hits: Vec<SearchHit>,
    /// Pass it as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// True while the index is catching up with the journals (at start, after a
    /// rebuild or an overflow): results may be missing recent records.
    pub catching_up: bool,
}

/// The result of `search.reindex`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReindexResult {
    /// How many sessions were indexed.
    pub sessions: u64,
    /// How many journal records were read.
    pub records: u64,
    /// How many documents the index holds now.
    pub documents: u64,
    /// How long the rebuild took, in milliseconds.
    pub duration_ms: u64,
}
