//! Full-text search over every session's history, in SQLite FTS5 under
//! `$R1_HOME/index/`.
//!
//! The journals are the truth; the index is a cache of them that can always be
//! rebuilt. Records reach it after they are journaled: the session actor offers each
//! written record to [`SearchIndex::offer`], which extracts its text and queues it
//! without ever waiting; one indexer task ([`SearchIndex::run`]) takes the queue in
//! batches and applies each batch in one SQLite transaction on the blocking pool. The
//! queue is bounded in bytes: an offer that does not fit is dropped and its session
//! marked stale, and the indexer catches a stale session up from its journal file
//! before it looks at that session's queued records again. Per session the index keeps
//! the highest seq it has seen, so catching up reads only what is missing, and the
//! same record never becomes two documents. At start the index is opened (rebuilt
//! when missing, unreadable or of another schema version) and every session whose
//! journal is ahead of it is caught up; sessions gone from `sessions/` are dropped.
//!
//! What is indexed, as documents of three kinds: user and assistant `session.message`
//! (`message`); `tool.started` arguments, `tool.completed` content and the output of a
//! running tool (`tool`); `approval.requested` tool and arguments (`approval`). A
//! lane's `lane.delta` records are one document per lane (its first delta's seq),
//! grown as output comes, up to [`LANE_DOC_BYTES`], and dropped when the tool's
//! `tool.completed` arrives, whose content is the output the model got; so a finished
//! tool's output is one hit, not two, and live and rebuilt indexes hold the same
//! documents.

use std::collections::{HashMap, HashSet};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use r1_proto::{
    ApiError, EventKind, EventRecord, ReindexResult, SearchHit, SearchKind, SearchParams,
    SearchResult, SnippetPart,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

/// The version of the index's tables; an index of another version is rebuilt.
pub const SCHEMA_VERSION: i64 = 1;
/// The most bytes of text waiting for the indexer; past it, offers are dropped and
/// their sessions caught up from their journals (64 MiB: minutes of heavy output).
pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// The most output of one lane the index keeps while the tool runs; its result, in
/// `tool.completed`, is indexed whole when it ends.
pub const LANE_DOC_BYTES: usize = 64 * 1024;
/// How long the indexer waits after a wake-up for more records, so that a burst is
/// one transaction.
const BATCH_DELAY: Duration = Duration::from_millis(20);
/// How many records a catch-up from a journal applies per transaction.
const CATCH_UP_BATCH: usize = 8192;
/// The default and the largest page of hits.
const DEFAULT_LIMIT: u64 = 20;
const MAX_LIMIT: u64 = 200;
/// Words of context in a snippet.
const SNIPPET_TOKENS: i64 = 24;
/// The marks FTS5 puts around a match in a snippet; they never occur in indexed text
/// (see [`clean`]).
const OPEN: char = '\u{1}';
const CLOSE: char = '\u{2}';

/// What a journal record adds to the index.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    /// Nothing; the record only moves the session's seen seq.
    None,
    /// The session's title (`session.created`).
    Title(Option<String>),
    /// A document of `kind`.
    Text(SearchKind, String),
    /// Output of the tool running in `lane`, appended to the lane's document.
    LaneOutput {
        /// The lane.
        lane: String,
        /// The output.
        text: String,
    },
    /// A tool's result: a `tool` document, and the end of its lane's output document.
    ToolResult {
        /// The lane it ran in, if any.
        lane: Option<String>,
        /// The tool name and the result.
        text: String,
    },
}

impl Doc {
    /// What `rec` adds to the index. It reads the fields it needs straight from the
    /// record's JSON (the same fields `r1_proto::events` declares), without decoding
    /// the whole payload: this runs on the session's actor after each append.
    pub fn of(rec: &EventRecord) -> Doc {
        let d = &rec.data;
        let text = |k: &str| d.get(k).and_then(Value::as_str);
        match rec.kind {
            EventKind::SessionCreated => Doc::Title(text("title").map(str::to_string)),
            EventKind::SessionMessage => match text("text") {
                Some(t) if !t.is_empty() => Doc::Text(SearchKind::Message, t.to_string()),
                _ => Doc::None,
            },
            EventKind::ToolStarted => Doc::Text(
                SearchKind::Tool,
                with_args(
                    text("tool").unwrap_or_default(),
                    d.get("args").unwrap_or(&Value::Null),
                ),
            ),
            EventKind::ToolCompleted => Doc::ToolResult {
                lane: text("lane").map(str::to_string),
                text: match text("tool") {
                    Some(tool) => format!("{tool} {}", text("content").unwrap_or_default()),
                    None => text("content").unwrap_or_default().to_string(),
                },
            },
            EventKind::LaneDelta => match (text("lane"), text("text")) {
                (Some(lane), Some(t)) => Doc::LaneOutput {
                    lane: lane.to_string(),
                    text: t.to_string(),
                },
                _ => Doc::None,
            },
            EventKind::ApprovalRequested => Doc::Text(
                SearchKind::Approval,
                with_args(
                    text("tool").unwrap_or_default(),
                    d.get("args").unwrap_or(&Value::Null),
                ),
            ),
            _ => Doc::None,
        }
    }

    /// The bytes of text it carries.
    fn bytes(&self) -> usize {
        match self {
            Doc::None => 0,
            Doc::Title(t) => t.as_ref().map_or(0, String::len),
            Doc::Text(_, t) | Doc::LaneOutput { text: t, .. } | Doc::ToolResult { text: t, .. } => {
                t.len()
            }
        }
    }
}

/// A tool name and its arguments as words: keys and values, not JSON punctuation (a
/// `\n` escape would glue two words into one token).
fn with_args(tool: &str, args: &Value) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    out.push(' ');
                    out.push_str(k);
                    walk(v, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::String(s) => {
                out.push(' ');
                out.push_str(s);
            }
            Value::Null => {}
            other => {
                out.push(' ');
                out.push_str(&other.to_string());
            }
        }
    }
    let mut out = tool.to_string();
    walk(args, &mut out);
    out
}

/// Text as it is indexed: the snippet marks replaced by spaces.
fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([OPEN, CLOSE]) {
        text.replace([OPEN, CLOSE], " ").into()
    } else {
        text.into()
    }
}

/// One journaled record on its way to the index.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The session.
    pub session: Arc<str>,
    /// The record's seq.
    pub seq: u64,
    /// The record's time.
    pub at: String,
    /// The record's kind.
    pub kind: EventKind,
    /// What it adds.
    pub doc: Doc,
}

impl Entry {
    /// The entry of `rec`, written to `session`'s journal.
    pub fn of(session: Arc<str>, rec: &EventRecord) -> Entry {
        let doc = Doc::of(rec);
        Entry {
            session,
            seq: rec.seq,
            at: if matches!(doc, Doc::None) {
                String::new()
            } else {
                rec.at.clone()
            },
            kind: rec.kind,
            doc,
        }
    }
}

/// An index error: a malformed query, or the index itself failing.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query is not valid FTS5 (the engine's message).
    #[error("invalid search query: {0}")]
    Query(String),
    /// The params are not valid.
    #[error("{0}")]
    Params(String),
    /// SQLite failed.
    #[error("search index: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The index directory could not be made or cleared.
    #[error("search index: {0}")]
    Io(#[from] std::io::Error),
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> ApiError {
        match e {
            SearchError::Query(_) | SearchError::Params(_) => ApiError::validation(e.to_string()),
            other => {
                tracing::error!("{other}");
                ApiError::internal("the search index failed; `r1 ctl search --reindex` rebuilds it")
            }
        }
    }
}

/// True when `e` means the file is not a usable database: it is rebuilt.
fn is_damage(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(
        e.sqlite_error_code(),
        Some(C::DatabaseCorrupt | C::NotADatabase | C::CannotOpen | C::SystemIoFailure)
    )
}

/// The index database: the writer's connection, and what it knows of each session.
pub struct Store {
    dir: PathBuf,
    conn: Connection,
    /// The highest seq seen per session (every record up to it is indexed).
    seen: HashMap<Arc<str>, u64>,
}

/// The index's file in `dir`.
fn db_path(dir: &Path) -> PathBuf {
    dir.join("search.sqlite")
}

impl Store {
    /// Opens the index in `dir` (made 0700 when missing), or makes it anew when it is
    /// missing, unreadable or of another schema version. The second value is true when
    /// it was made anew.
    pub fn open(dir: &Path) -> Result<(Store, bool), SearchError> {
        use std::os::unix::fs::DirBuilderExt as _;
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e.into()),
            _ => {}
        }
        match Store::try_open(dir) {
            Ok(Some(s)) => Ok((s, false)),
            Ok(None) => Ok((Store::create(dir)?, true)),
            Err(e) => {
                tracing::warn!("the search index cannot be read ({e}); rebuilding it");
                Ok((Store::create(dir)?, true))
            }
        }
    }

    /// The index as it is on disk; `None` when there is none or it is of another
    /// version.
    fn try_open(dir: &Path) -> Result<Option<Store>, rusqlite::Error> {
        let path = db_path(dir);
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open(&path)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            tracing::info!(
                version,
                "the search index is of another version; rebuilding it"
            );
            return Ok(None);
        }
        tune(&conn)?;
        let mut seen = HashMap::new();
        {
            let mut st = conn.prepare("SELECT id, seen FROM sessions")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (id, s) = row?;
                seen.insert(Arc::from(id), s as u64);
            }
        }
        Ok(Some(Store {
            dir: dir.to_path_buf(),
            conn,
            seen,
        }))
    }

    /// Removes whatever index is in `dir` and makes an empty one.
    fn create(dir: &Path) -> Result<Store, SearchError> {
        let path = db_path(dir);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        let conn = Connection::open(&path)?;
        tune(&conn)?;
        conn.execute_batch(&format!(
            "BEGIN;
             CREATE TABLE sessions(id TEXT PRIMARY KEY, title TEXT, seen INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
             CREATE TABLE docs(id INTEGER PRIMARY KEY, session TEXT NOT NULL, seq INTEGER NOT NULL,
                               kind INTEGER NOT NULL, record_kind TEXT NOT NULL, at TEXT NOT NULL,
                               lane TEXT, len INTEGER NOT NULL);
             CREATE INDEX docs_session ON docs(session, lane);
             CREATE VIRTUAL TABLE fts USING fts5(body, tokenize = 'unicode61 remove_diacritics 2');
             PRAGMA user_version = {SCHEMA_VERSION};
             COMMIT;"
        ))?;
        Ok(Store {
            dir: dir.to_path_buf(),
            conn,
            seen: HashMap::new(),
        })
    }

    /// Drops every document and starts empty.
    pub fn reset(&mut self) -> Result<(), SearchError> {
        let fresh = Store::create(&self.dir)?;
        *self = fresh;
        Ok(())
    }

    /// The highest seq indexed for `session` (0 when none).
    pub fn seen(&self, session: &str) -> u64 {
        self.seen.get(session).copied().unwrap_or(0)
    }

    /// The sessions the index holds.
    pub fn sessions(&self) -> Vec<Arc<str>> {
        self.seen.keys().cloned().collect()
    }

    /// How many documents the index holds.
    pub fn documents(&self) -> Result<u64, SearchError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM docs", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Applies `entries` in one transaction; entries a session has already seen are
    /// skipped.
    pub fn apply(&mut self, entries: &[Entry]) -> Result<(), SearchError> {
        let tx = self.conn.transaction()?;
        let mut touched: HashMap<Arc<str>, u64> = HashMap::new();
        {
            let mut ins_doc = tx.prepare_cached(
                "INSERT INTO docs(session, seq, kind, record_kind, at, lane, len) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut ins_fts = tx.prepare_cached("INSERT INTO fts(rowid, body) VALUES (?1, ?2)")?;
            let mut find_lane =
                tx.prepare_cached("SELECT id, len FROM docs WHERE session = ?1 AND lane = ?2")?;
            for e in entries {
                let seen = touched
                    .get(&e.session)
                    .copied()
                    .unwrap_or_else(|| self.seen.get(&e.session).copied().unwrap_or(0));
                if e.seq <= seen {
                    continue;
                }
                touched.insert(e.session.clone(), e.seq);
                let mut insert = |kind: SearchKind, lane: Option<&str>, text: &str| {
                    let text = clean(text);
                    ins_doc.execute(params![
                        &*e.session,
                        e.seq as i64,
                        kind_code(kind),
                        e.kind.as_str(),
                        e.at,
                        lane,
                        text.len() as i64
                    ])?;
                    ins_fts.execute(params![tx.last_insert_rowid(), text])?;
                    Ok::<_, rusqlite::Error>(())
                };
                match &e.doc {
                    Doc::None => {}
                    Doc::Title(title) => {
                        tx.execute(
                            "INSERT INTO sessions(id, title) VALUES (?1, ?2)
                             ON CONFLICT(id) DO UPDATE SET title = excluded.title",
                            params![&*e.session, title],
                        )?;
                    }
                    Doc::Text(kind, text) => insert(*kind, None, text)?,
                    Doc::LaneOutput { lane, text } => {
                        let found = find_lane
                            .query_row(params![&*e.session, lane], |r| {
                                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                            })
                            .optional()?;
                        match found {
                            None => {
                                let cut = crate::fsutil::head(text, LANE_DOC_BYTES);
                                insert(SearchKind::Tool, Some(lane), cut)?;
                            }
                            Some((id, len)) if (len as usize) < LANE_DOC_BYTES => {
                                let cut =
                                    clean(crate::fsutil::head(text, LANE_DOC_BYTES - len as usize));
                                tx.execute(
                                    "UPDATE fts SET body = body || ?2 WHERE rowid = ?1",
                                    params![id, cut],
                                )?;
                                tx.execute(
                                    "UPDATE docs SET len = len + ?2 WHERE id = ?1",
                                    params![id, cut.len() as i64],
                                )?;
                            }
                            Some(_) => {}
                        }
                    }
                    Doc::ToolResult { lane, text } => {
                        if let Some(lane) = lane {
                            tx.execute(
                                "DELETE FROM fts WHERE rowid IN (SELECT id FROM docs WHERE session = ?1 AND lane = ?2)",
                                params![&*e.session, lane],
                            )?;
                            tx.execute(
                                "DELETE FROM docs WHERE session = ?1 AND lane = ?2",
                                params![&*e.session, lane],
                            )?;
                        }
                        insert(SearchKind::Tool, None, text)?;
                    }
                }
            }
            let mut mark = tx.prepare_cached(
                "INSERT INTO sessions(id, seen) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET seen = excluded.seen",
            )?;
            for (s, seq) in &touched {
                mark.execute(params![&**s, *seq as i64])?;
            }
        }
        tx.commit()?;
        self.seen.extend(touched);
        Ok(())
    }

    /// Removes every document of `session`.
    pub fn forget(&mut self, session: &str) -> Result<(), SearchError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM fts WHERE rowid IN (SELECT id FROM docs WHERE session = ?1)",
            [session],
        )?;
        tx.execute("DELETE FROM docs WHERE session = ?1", [session])?;
        tx.execute("DELETE FROM sessions WHERE id = ?1", [session])?;
        tx.commit()?;
        self.seen.remove(session);
        Ok(())
    }

    /// Indexes the records of `session`'s journal at `path` that the index has not
    /// seen; returns how many records it read. Stops at the first line that is not a
    /// record (a torn tail, or a quarantined journal's damage).
    pub fn catch_up(&mut self, session: &str, path: &Path) -> Result<u64, SearchError> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let session: Arc<str> = Arc::from(session);
        let from = self.seen(&session);
        let mut batch = Vec::new();
        let mut read = 0;
        for line in std::io::BufReader::with_capacity(256 * 1024, file).lines() {
            let Ok(line) = line else { break };
            // A cheap look at the seq first: most records of a caught-up journal are
            // skipped without decoding their payload.
            if let Some(seq) = peek_seq(&line) {
                if seq <= from {
                    continue;
                }
            }
            let Ok(rec) = serde_json::from_str::<EventRecord>(&line) else {
                break;
            };
            if rec.seq <= from {
                continue;
            }
            read += 1;
            batch.push(Entry::of(session.clone(), &rec));
            if batch.len() >= CATCH_UP_BATCH {
                self.apply(&batch)?;
                batch.clear();
            }
        }
        self.apply(&batch)?;
        Ok(read)
    }
}

/// Settings for an index that is a cache: WAL so queries read while the indexer
/// writes, and no fsync per transaction (a crash loses at most the last batches,
/// which the catch-up reads again from the journals).
fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA temp_store = MEMORY;",
    )
}

/// The seq of a journal line, read without decoding it (`{"v":1,"seq":12,…`).
fn peek_seq(line: &str) -> Option<u64> {
    let rest = &line[line.find("\"seq\":")? + 6..];
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

fn kind_code(k: SearchKind) -> i64 {
    match k {
        SearchKind::Message => 0,
        SearchKind::Tool => 1,
        SearchKind::Approval => 2,
    }
}

fn kind_of(code: i64) -> SearchKind {
    match code {
        0 => SearchKind::Message,
        1 => SearchKind::Tool,
        _ => SearchKind::Approval,
    }
}

/// Opens a connection that only reads the index in `dir`.
pub fn reader(dir: &Path) -> Result<Connection, SearchError> {
    Ok(Connection::open_with_flags(
        db_path(dir),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

/// Runs a search on `conn`.
pub fn query(conn: &Connection, p: &SearchParams) -> Result<SearchResult, SearchError> {
    if p.q.trim().is_empty() {
        return Err(SearchError::Params("q must not be empty".into()));
    }
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let offset: u64 = match &p.cursor {
        None => 0,
        Some(c) => c.parse().map_err(|_| {
            SearchError::Params(format!("cursor {c:?} is not one this search gave"))
        })?,
    };
    if let Some(since) = &p.since {
        let b = since.as_bytes();
        let date = b.len() >= 10
            && b[..10].iter().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    *c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            });
        if !date {
            return Err(SearchError::Params(format!(
                "since must be an RFC 3339 time or date (2025-06-01T12:00:00Z), got {since:?}"
            )));
        }
    }
    let kinds: i64 = match &p.kind {
        None => 0b111,
        Some(ks) if ks.is_empty() => 0b111,
        Some(ks) => ks.iter().fold(0, |m, k| m | 1 << kind_code(*k)),
    };
    let mut st = conn.prepare_cached(
        "SELECT d.session, s.title, d.seq, d.kind, d.record_kind, d.at,
                snippet(fts, 0, char(1), char(2), '…', ?7)
         FROM fts JOIN docs d ON d.id = fts.rowid LEFT JOIN sessions s ON s.id = d.session
         WHERE fts MATCH ?1
           AND (?2 IS NULL OR d.session = ?2)
           AND (?3 IS NULL OR d.at >= ?3)
           AND ((?4 >> d.kind) & 1) = 1
         ORDER BY fts.rank, d.id
         LIMIT ?5 OFFSET ?6",
    )?;
    let rows = st.query_map(
        params![
            p.q,
            p.session_id,
            p.since,
            kinds,
            (limit + 1) as i64,
            offset as i64,
            SNIPPET_TOKENS
        ],
        |r| {
            let marked: String = r.get(6)?;
            let parts = parts_of(&marked);
            Ok(SearchHit {
                session_id: r.get(0)?,
                session_title: r.get(1)?,
                seq: r.get::<_, i64>(2)? as u64,
                kind: kind_of(r.get(3)?),
                record_kind: r.get(4)?,
                at: r.get(5)?,
                snippet: parts
                    .iter()
                    .map(|p| {
                        if p.hit {
                            format!("[{}]", p.text)
                        } else {
                            p.text.clone()
                        }
                    })
                    .collect(),
                parts,
            })
        },
    );
    let mut hits = Vec::new();
    let collected = rows.and_then(|rows| {
        for h in rows {
            hits.push(h?);
        }
        Ok(())
    });
    if let Err(e) = collected {
        // The SQL is fixed: a plain SQL error here is the query string's, as FTS5 reads
        // it (`fts5: syntax error near "("`, `no such column: foo`).
        return Err(match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::Unknown) => SearchError::Query(match &e {
                rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
                other => other.to_string(),
            }),
            _ => SearchError::Sqlite(e),
        });
    }
    let next_cursor = (hits.len() as u64 > limit).then(|| (offset + limit).to_string());
    hits.truncate(limit as usize);
    Ok(SearchResult {
        hits,
        next_cursor,
        catching_up: false,
    })
}

/// Splits a snippet marked with [`OPEN`] and [`CLOSE`] into parts.
fn parts_of(marked: &str) -> Vec<SnippetPart> {
    let mut parts = Vec::new();
    let mut hit = false;
    let mut text = String::new();
    for c in marked.chars() {
        if c == OPEN || c == CLOSE {
            if !text.is_empty() {
                parts.push(SnippetPart {
                    text: std::mem::take(&mut text),
                    hit,
                });
            }
            hit = c == OPEN;
        } else {
            text.push(c);
        }
    }
    if !text.is_empty() {
        parts.push(SnippetPart { text, hit });
    }
    parts
}

/// A session the indexer can read: its id, its journal file and its last seq.
pub struct Source {
    /// The session id.
    pub id: String,
    /// Its journal file.
    pub path: PathBuf,
    /// The seq of its newest record.
    pub last_seq: u64,
}

/// What the indexer is asked to do, in order.
enum Item {
    Record(Entry),
    Forget(String),
    Reindex(oneshot::Sender<Result<ReindexResult, String>>),
}

/// The queue between the journal path and the indexer.
#[derive(Default)]
struct Feed {
    items: Vec<Item>,
    bytes: usize,
    /// Sessions with a record dropped from the queue: caught up from their journal.
    stale: HashSet<Arc<str>>,
}

struct Shared {
    dir: PathBuf,
    /// False under `[search] enabled = false`: nothing is queued, queries are refused.
    enabled: bool,
    queue_bytes: usize,
    feed: Mutex<Feed>,
    wake: Notify,
    /// The writer, used only on the blocking pool by the indexer.
    store: Mutex<Option<Store>>,
    /// The connection queries use, with the generation of the file it reads.
    reader: Mutex<Option<(u64, Connection)>>,
    /// Bumped each time the index file is made anew.
    generation: AtomicU64,
    /// Catching up with the journals (start, rebuild, overflow).
    catching_up: AtomicBool,
    /// Records dropped because the queue was full.
    dropped: AtomicU64,
}

/// The search index of a daemon: the queue that feeds it, its indexer, its queries.
#[derive(Clone)]
pub struct SearchIndex {
    inner: Arc<Shared>,
}

impl SearchIndex {
    /// The index in `dir` (opened by [`SearchIndex::run`]), fed through a queue of at
    /// most `queue_bytes` of text.
    pub fn new(dir: PathBuf, queue_bytes: usize) -> SearchIndex {
        SearchIndex::with(dir, queue_bytes, true)
    }

    /// An index that is turned off (`[search] enabled = false`): offers are ignored,
    /// [`SearchIndex::run`] returns at once, queries and reindex answer `conflict`.
    pub fn disabled(dir: PathBuf) -> SearchIndex {
        SearchIndex::with(dir, 0, false)
    }

    fn with(dir: PathBuf, queue_bytes: usize, enabled: bool) -> SearchIndex {
        SearchIndex {
            inner: Arc::new(Shared {
                dir,
                enabled,
                queue_bytes,
                feed: Mutex::new(Feed::default()),
                wake: Notify::new(),
                store: Mutex::new(None),
                reader: Mutex::new(None),
                generation: AtomicU64::new(0),
                catching_up: AtomicBool::new(true),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Queues a record just written to `session`'s journal. Never waits: when the
    /// queue is full the record is dropped and the session caught up from its journal
    /// later.
    pub fn offer(&self, session: &str, rec: &EventRecord) {
        if !self.inner.enabled {
            return;
        }
        let entry = Entry::of(Arc::from(session), rec);
        let bytes = entry.doc.bytes() + 64;
        let mut feed = self.inner.feed.lock().unwrap_or_else(|p| p.into_inner());
        if feed.bytes + bytes > self.inner.queue_bytes || feed.stale.contains(session) {
            // Once a session is stale its later records wait for the catch-up too.
            if feed.stale.insert(entry.session) {
                tracing::debug!(session, "search queue full: the session will be caught up");
            }
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            feed.bytes += bytes;
            feed.items.push(Item::Record(entry));
        }
        drop(feed);
        self.inner.wake.notify_one();
    }

    /// Removes `session` from the index (it was deleted).
    pub fn forget(&self, session: &str) {
        self.push(Item::Forget(session.to_string()));
    }

    /// Marks `session` for a catch-up from its journal after dropping what the index
    /// holds of it (its journal was cut back by a repair).
    pub fn refresh(&self, session: &str) {
        if !self.inner.enabled {
            return;
        }
        let mut feed = self.inner.feed.lock().unwrap_or_else(|p| p.into_inner());
        feed.items.push(Item::Forget(session.to_string()));
        feed.stale.insert(Arc::from(session));
        drop(feed);
        self.inner.wake.notify_one();
    }

    fn push(&self, item: Item) {
        if !self.inner.enabled {
            return;
        }
        self.inner
            .feed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .items
            .push(item);
        self.inner.wake.notify_one();
    }

    /// Rebuilds the index from every journal; answers once done.
    pub async fn reindex(&self) -> Result<ReindexResult, ApiError> {
        self.check_enabled()?;
        let (tx, rx) = oneshot::channel();
        self.push(Item::Reindex(tx));
        rx.await
            .map_err(|_| ApiError::conflict("the daemon is stopping"))?
            .map_err(|e| {
                tracing::error!("reindex failed: {e}");
                ApiError::internal("the search index could not be rebuilt; see the daemon log")
            })
    }

    /// Records dropped from the queue since start (each caught up later).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Runs a search.
    pub async fn search(&self, p: SearchParams) -> Result<SearchResult, ApiError> {
        self.check_enabled()?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.search_blocking(&p))
            .await
            .map_err(|_| ApiError::internal("the search failed"))?
            .map_err(ApiError::from)
    }

    fn search_blocking(&self, p: &SearchParams) -> Result<SearchResult, SearchError> {
        let catching_up = self.inner.catching_up.load(Ordering::Acquire);
        let generation = self.inner.generation.load(Ordering::Acquire);
        let mut reader = self.inner.reader.lock().unwrap_or_else(|e| e.into_inner());
        if generation == 0 {
            // Not opened yet: nothing to find.
            query_checks(p)?;
            return Ok(SearchResult {
                hits: Vec::new(),
                next_cursor: None,
                catching_up: true,
            });
        }
        if reader.as_ref().is_none_or(|(g, _)| *g != generation) {
            *reader = Some((generation, self::reader(&self.inner.dir)?));
        }
        let Some((_, conn)) = reader.as_ref() else {
            return Err(SearchError::Params("the index is not open".into()));
        };
        let mut r = query(conn, p)?;
        r.catching_up = catching_up;
        Ok(r)
    }

    /// Whether search is on (`[search] enabled`).
    pub fn enabled(&self) -> bool {
        self.inner.enabled
    }

    fn check_enabled(&self) -> Result<(), ApiError> {
        if self.inner.enabled {
            Ok(())
        } else {
            Err(ApiError::conflict(
                "search is turned off: set [search] enabled = true in daemon.toml and restart the daemon (r1 ctl restart)",
            ))
        }
    }

    /// The indexer: opens the index, catches it up with every journal `sources`
    /// lists, then applies what is offered, batch by batch, until `stop`.
    pub async fn run<F>(self, sources: F, stop: CancellationToken)
    where
        F: Fn() -> Vec<Source> + Send + Sync + 'static,
    {
        if !self.inner.enabled {
            tracing::info!("search is turned off ([search] enabled = false): nothing is indexed");
            return;
        }
        let sources = Arc::new(sources);
        let me = self.clone();
        let src = sources.clone();
        let opened = tokio::task::spawn_blocking(move || me.open_and_catch_up(&*src)).await;
        match opened {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("the search index cannot be opened: {e}"),
            Err(e) => tracing::error!("the search index task failed: {e}"),
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.inner.wake.notified() => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(BATCH_DELAY) => {}
            }
            let me = self.clone();
            let src = sources.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || me.drain(&*src)).await {
                tracing::error!("the search indexer failed: {e}");
            }
        }
    }

    /// Opens the index and catches it up with every session's journal; drops
    /// sessions that are gone.
    fn open_and_catch_up(&self, sources: &dyn Fn() -> Vec<Source>) -> Result<(), SearchError> {
        let started = Instant::now();
        let (store, fresh) = Store::open(&self.inner.dir)?;
        let mut guard = self.inner.store.lock().unwrap_or_else(|p| p.into_inner());
        let store = guard.insert(store);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        let sources = sources();
        let live: HashSet<&str> = sources.iter().map(|s| s.id.as_str()).collect();
        for gone in store.sessions() {
            if !live.contains(&*gone) {
                store.forget(&gone)?;
            }
        }
        let (sessions, records) = catch_up_all(store, &sources)?;
        self.inner.catching_up.store(false, Ordering::Release);
        tracing::info!(
            fresh,
            sessions,
            records,
            ms = started.elapsed().as_millis() as u64,
            "search index open"
        );
        Ok(())
    }

    /// Takes the queue and applies it.
    fn drain(&self, sources: &dyn Fn() -> Vec<Source>) {
        let (items, stale) = {
            let mut feed = self.inner.feed.lock().unwrap_or_else(|p| p.into_inner());
            feed.bytes = 0;
            (
                std::mem::take(&mut feed.items),
                std::mem::take(&mut feed.stale),
            )
        };
        let mut guard = self.inner.store.lock().unwrap_or_else(|p| p.into_inner());
        let Some(store) = guard.as_mut() else {
            // The index could not be opened: try again, from the journals.
            drop(guard);
            if let Err(e) = self.open_and_catch_up(sources) {
                tracing::error!("the search index cannot be opened: {e}");
            }
            return;
        };
        let result = (|| {
            let mut batch = Vec::new();
            for item in items {
                match item {
                    Item::Record(e) => batch.push(e),
                    Item::Forget(id) => {
                        store.apply(&std::mem::take(&mut batch))?;
                        store.forget(&id)?;
                    }
                    Item::Reindex(reply) => {
                        store.apply(&std::mem::take(&mut batch))?;
                        let r = self.rebuild(store, sources);
                        let _ = reply.send(r.map_err(|e| e.to_string()));
                    }
                }
            }
            // Stale sessions first read their journal, so the records still queued for
            // them are seen already and skipped.
            if !stale.is_empty() {
                self.inner.catching_up.store(true, Ordering::Release);
                let all = sources();
                let wanted: Vec<&Source> = all
                    .iter()
                    .filter(|s| stale.contains(s.id.as_str()))
                    .collect();
                for s in wanted {
                    store.catch_up(&s.id, &s.path)?;
                }
                self.inner.catching_up.store(false, Ordering::Release);
            }
            store.apply(&batch)
        })();
        if let Err(e) = result {
            let damaged = matches!(&e, SearchError::Sqlite(s) if is_damage(s));
            tracing::error!("the search index failed: {e}");
            if damaged {
                if let Err(e) = self.rebuild(store, sources) {
                    tracing::error!("the search index cannot be rebuilt: {e}");
                }
            }
        }
    }

    /// Makes the index anew and reads every journal into it.
    fn rebuild(
        &self,
        store: &mut Store,
        sources: &dyn Fn() -> Vec<Source>,
    ) -> Result<ReindexResult, SearchError> {
        let started = Instant::now();
        self.inner.catching_up.store(true, Ordering::Release);
        store.reset()?;
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        let result = catch_up_all(store, &sources());
        self.inner.catching_up.store(false, Ordering::Release);
        let (sessions, records) = result?;
        let r = ReindexResult {
            sessions,
            records,
            documents: store.documents()?,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        tracing::info!(
            sessions,
            records,
            documents = r.documents,
            ms = r.duration_ms,
            "search index rebuilt"
        );
        Ok(r)
    }
}

/// Checks params before anything is open, so a bad query is refused the same way.
fn query_checks(p: &SearchParams) -> Result<(), SearchError> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(
        "CREATE TABLE sessions(id TEXT PRIMARY KEY, title TEXT, seen INTEGER);
         CREATE TABLE docs(id INTEGER PRIMARY KEY, session TEXT, seq INTEGER, kind INTEGER,
                           record_kind TEXT, at TEXT, lane TEXT, len INTEGER);
         CREATE VIRTUAL TABLE fts USING fts5(body);",
    )?;
    query(&conn, p).map(|_| ())
}

/// Catches up every session in `sources` whose journal is ahead of the index;
/// returns how many sessions and records it read.
fn catch_up_all(store: &mut Store, sources: &[Source]) -> Result<(u64, u64), SearchError> {
    let (mut sessions, mut records) = (0, 0);
    for s in sources {
        if store.seen(&s.id) >= s.last_seq {
            continue;
        }
        sessions += 1;
        records += store.catch_up(&s.id, &s.path)?;
    }
    Ok((sessions, records))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn rec(seq: u64, kind: EventKind, data: Value) -> EventRecord {
        EventRecord {
            v: 1,
            seq,
            at: format!("2025-06-01T12:00:{:02}.000Z", seq % 60),
            kind,
            lane: "main".into(),
            data,
        }
    }

    fn entries(session: &str, recs: &[EventRecord]) -> Vec<Entry> {
        let s: Arc<str> = Arc::from(session);
        recs.iter().map(|r| Entry::of(s.clone(), r)).collect()
    }

    fn sample() -> Vec<EventRecord> {
        vec![
            rec(
                1,
                EventKind::SessionCreated,
                json!({"id": "ses_a", "workdir": "/w", "engine": "echo", "title": "fix the oom", "created_at": "2025-06-01T12:00:00Z"}),
            ),
            rec(
                2,
                EventKind::SessionMessage,
                json!({"role": "user", "text": "please look at the leak", "message_id": "msg_1"}),
            ),
            rec(
                3,
                EventKind::SessionMessage,
                json!({"role": "assistant", "text": "echo: the allocator grows", "reply_to": "msg_1"}),
            ),
            rec(
                4,
                EventKind::ToolStarted,
                json!({"lane": "tool_1", "call_id": "c1", "tool": "run_command", "args": {"command": "ls\nfrobnicate"}}),
            ),
            rec(
                5,
                EventKind::LaneDelta,
                json!({"lane": "tool_1", "text": "partial zanzibar "}),
            ),
            rec(
                6,
                EventKind::LaneDelta,
                json!({"lane": "tool_1", "text": "quokka"}),
            ),
        ]
    }

    fn search(store: &Store, q: &str) -> Result<SearchResult, SearchError> {
        let conn = reader(&store.dir).unwrap();
        query(
            &conn,
            &SearchParams {
                q: q.into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn finds_messages_tools_and_running_output_with_session_and_seq() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, fresh) = Store::open(&dir.path().join("index")).unwrap();
        assert!(fresh);
        store.apply(&entries("ses_a", &sample())).unwrap();
        let r = search(&store, "allocator").unwrap();
        assert_eq!(r.hits.len(), 1);
        let h = &r.hits[0];
        assert_eq!((h.session_id.as_str(), h.seq), ("ses_a", 3));
        assert_eq!(h.kind, SearchKind::Message);
        assert_eq!(h.session_title.as_deref(), Some("fix the oom"));
        assert_eq!(h.snippet, "echo: the [allocator] grows");
        assert!(h.parts.iter().any(|p| p.hit && p.text == "allocator"));
        // Arguments are words: the newline escape does not glue them.
        assert_eq!(search(&store, "frobnicate").unwrap().hits[0].seq, 4);
        // Lane output is one document at its first delta, grown by the next ones.
        let live = search(&store, "zanzibar quokka").unwrap();
        assert_eq!(live.hits.len(), 1);
        assert_eq!(live.hits[0].seq, 5);
        assert_eq!(live.hits[0].record_kind, "lane.delta");
        // The result replaces the running output.
        store
            .apply(&entries(
                "ses_a",
                &[rec(
                    7,
                    EventKind::ToolCompleted,
                    json!({"lane": "tool_1", "call_id": "c1", "tool": "run_command", "content": "partial zanzibar quokka"}),
                )],
            ))
            .unwrap();
        let done = search(&store, "quokka").unwrap();
        assert_eq!(done.hits.len(), 1);
        assert_eq!(
            (done.hits[0].seq, done.hits[0].record_kind.as_str()),
            (7, "tool.completed")
        );
        assert_eq!(store.seen("ses_a"), 7);
    }

    #[test]
    fn records_seen_are_skipped_and_reopen_keeps_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let (mut store, _) = Store::open(&path).unwrap();
        store.apply(&entries("ses_a", &sample())).unwrap();
        store.apply(&entries("ses_a", &sample())).unwrap();
        assert_eq!(search(&store, "allocator").unwrap().hits.len(), 1);
        let docs = store.documents().unwrap();
        drop(store);
        let (store, fresh) = Store::open(&path).unwrap();
        assert!(!fresh);
        assert_eq!(store.seen("ses_a"), 6);
        assert_eq!(store.documents().unwrap(), docs);
    }

    #[test]
    fn forget_removes_a_session() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(&dir.path().join("index")).unwrap();
        store.apply(&entries("ses_a", &sample())).unwrap();
        store.apply(&entries("ses_b", &sample())).unwrap();
        assert_eq!(search(&store, "allocator").unwrap().hits.len(), 2);
        store.forget("ses_a").unwrap();
        let r = search(&store, "allocator").unwrap();
        assert_eq!(r.hits.len(), 1);
        assert_eq!(r.hits[0].session_id, "ses_b");
        assert_eq!(store.seen("ses_a"), 0);
    }

    #[test]
    fn catch_up_from_a_journal_equals_live_indexing() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.ndjson");
        let lines: String = sample()
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(&journal, lines + "{\"torn").unwrap();
        let (mut live, _) = Store::open(&dir.path().join("a")).unwrap();
        live.apply(&entries("ses_a", &sample()[..3])).unwrap();
        live.apply(&entries("ses_a", &sample()[3..])).unwrap();
        let (mut rebuilt, _) = Store::open(&dir.path().join("b")).unwrap();
        assert_eq!(rebuilt.catch_up("ses_a", &journal).unwrap(), 6);
        for q in ["allocator", "leak", "zanzibar", "frobnicate"] {
            assert_eq!(
                search(&live, q).unwrap(),
                search(&rebuilt, q).unwrap(),
                "{q}"
            );
        }
        // Caught up already: nothing more is read.
        assert_eq!(rebuilt.catch_up("ses_a", &journal).unwrap(), 0);
    }

    #[test]
    fn a_malformed_query_is_a_query_error_with_the_engine_message() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("index")).unwrap();
        for q in ["\"unclosed", "a AND", "(x", "nocolumn: y"] {
            match search(&store, q) {
                Err(SearchError::Query(m)) => assert!(!m.is_empty(), "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
        let e = ApiError::from(search(&store, "(x").unwrap_err());
        assert_eq!(e.code, r1_proto::ErrorCode::Validation);
    }

    #[test]
    fn filters_kinds_sessions_time_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(&dir.path().join("index")).unwrap();
        store.apply(&entries("ses_a", &sample())).unwrap();
        store.apply(&entries("ses_b", &sample())).unwrap();
        let conn = reader(&store.dir).unwrap();
        let q = |p: SearchParams| query(&conn, &p).unwrap();
        let base = SearchParams {
            q: "leak OR frobnicate".into(),
            ..Default::default()
        };
        assert_eq!(q(base.clone()).hits.len(), 4);
        let tools = q(SearchParams {
            kind: Some(vec![SearchKind::Tool]),
            ..base.clone()
        });
        assert!(tools.hits.iter().all(|h| h.kind == SearchKind::Tool));
        assert_eq!(tools.hits.len(), 2);
        let one = q(SearchParams {
            session_id: Some("ses_b".into()),
            ..base.clone()
        });
        assert!(one.hits.iter().all(|h| h.session_id == "ses_b"));
        let late = q(SearchParams {
            since: Some("2025-06-01T12:00:03".into()),
            ..base.clone()
        });
        assert!(late.hits.iter().all(|h| h.seq >= 3));
        let first = q(SearchParams {
            limit: Some(3),
            ..base.clone()
        });
        assert_eq!(first.hits.len(), 3);
        let rest = q(SearchParams {
            limit: Some(3),
            cursor: first.next_cursor.clone(),
            ..base
        });
        assert_eq!(rest.hits.len(), 1);
        assert_eq!(rest.next_cursor, None);
    }

    #[test]
    fn an_index_of_another_version_or_a_damaged_file_is_made_anew() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let (mut store, _) = Store::open(&path).unwrap();
        store.apply(&entries("ses_a", &sample())).unwrap();
        store.conn.execute_batch("PRAGMA user_version = 0").unwrap();
        drop(store);
        let (store, fresh) = Store::open(&path).unwrap();
        assert!(fresh);
        assert_eq!(store.documents().unwrap(), 0);
        drop(store);
        std::fs::write(db_path(&path), b"this is not a database, not at all......").unwrap();
        let (store, fresh) = Store::open(&path).unwrap();
        assert!(fresh);
        assert_eq!(store.seen("ses_a"), 0);
    }

    #[tokio::test]
    async fn a_full_queue_drops_records_and_the_session_catches_up_from_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.ndjson");
        let recs = sample();
        let lines: String = recs
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(&journal, lines).unwrap();
        // Room for about one record: the rest overflow.
        let index = SearchIndex::new(dir.path().join("index"), 100);
        let stop = CancellationToken::new();
        let j = journal.clone();
        let task = tokio::spawn(index.clone().run(
            move || {
                vec![Source {
                    id: "ses_a".into(),
                    path: j.clone(),
                    last_seq: 0,
                }]
            },
            stop.clone(),
        ));
        for r in &recs {
            index.offer("ses_a", r);
        }
        assert!(index.dropped() > 0);
        let p = SearchParams {
            q: "zanzibar".into(),
            ..Default::default()
        };
        let mut found = Vec::new();
        for _ in 0..200 {
            found = index.search(p.clone()).await.unwrap().hits;
            if !found.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].seq, 5);
        let bad = index
            .search(SearchParams {
                q: "\"open".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code, r1_proto::ErrorCode::Validation);
        stop.cancel();
        task.await.unwrap();
    }
}
