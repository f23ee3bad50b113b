//! The daemon's own logs: JSON lines in `$R1_HOME/logs/`, rotated by size and age,
//! read back through `daemon.logs`, and the last ERROR line kept for `daemon.status`.
//!
//! The files are `r1-000001.log`, `r1-000002.log`, …: one [`LogLine`] as JSON per line,
//! the highest number being the file written now. A file is never renamed, so a
//! position in the logs (the `daemon.logs` cursor, `<file number>:<byte offset>`) stays
//! valid across rotations until its file is pruned.
//!
//! Rotation is written here rather than taken from `tracing-appender`, whose rolling
//! appender rotates by time only: r1 rotates when a file would pass `[logs] max_mb`
//! (and at least daily, so age pruning has whole days to work with), and prunes files
//! older than `max_age_days` or beyond `max_files`. `tracing-appender`'s non-blocking
//! writer still carries the lines to this writer off the runtime's threads.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use r1_proto::{ApiError, LogLine, LogPage, LogsParams};
use serde::Deserialize;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// `[logs]` in `daemon.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// A log file is closed and a new one started before it would pass this many MB
    /// (default 100).
    pub max_mb: u64,
    /// Log files last written longer ago than this many days are deleted (default 14).
    pub max_age_days: u64,
    /// At most this many log files are kept, the newest (default 10), so the logs
    /// never take more than `max_files × max_mb`.
    pub max_files: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            max_mb: 100,
            max_age_days: 14,
            max_files: 10,
        }
    }
}

impl LogsConfig {
    /// The rotation this config asks for.
    pub fn rotation(&self) -> Rotation {
        Rotation {
            max_bytes: self.max_mb.max(1).saturating_mul(1024 * 1024),
            max_age: Duration::from_secs(self.max_age_days.max(1).saturating_mul(86_400)),
            max_files: self.max_files.max(1),
            roll_every: ROLL_EVERY,
        }
    }

    /// Checks the values; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_mb == 0 || self.max_age_days == 0 || self.max_files == 0 {
            return Err("[logs] max_mb, max_age_days and max_files must be at least 1".into());
        }
        Ok(())
    }
}

/// A file is started anew at least this often, so files age out a day at a time.
const ROLL_EVERY: Duration = Duration::from_secs(86_400);

/// When a log file is rotated and which files are kept.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// A file never grows past this many bytes (but a single longer line still goes
    /// whole into a file of its own).
    pub max_bytes: u64,
    /// Closed files last written longer ago than this are deleted.
    pub max_age: Duration,
    /// At most this many files, the current one included.
    pub max_files: usize,
    /// The current file is closed once it has been written for this long.
    pub roll_every: Duration,
}

/// The name of log file number `n`.
fn file_name(n: u64) -> String {
    format!("r1-{n:06}.log")
}

/// The number of a log file's name, if it is one.
fn file_number(name: &str) -> Option<u64> {
    name.strip_prefix("r1-")?.strip_suffix(".log")?.parse().ok()
}

/// The log files of `dir`, oldest first.
fn log_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut files: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = file_number(e.file_name().to_str()?)?;
            Some((n, e.path()))
        })
        .collect();
    files.sort();
    files
}

/// The log writer: appends whole lines to the current file and rotates by size and
/// age. One line is one `write` call (the tracing layer formats a line, then writes
/// it), and a line is never split between two files.
#[derive(Debug)]
pub struct RotatingFile {
    dir: PathBuf,
    rotation: Rotation,
    file: File,
    number: u64,
    size: u64,
    opened: Instant,
}

impl RotatingFile {
    /// Opens the logs in `dir` (created 0700): continues the newest file when it has
    /// room, else starts the next one; prunes what is too old or too many.
    pub fn open(dir: &Path, rotation: Rotation) -> io::Result<RotatingFile> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let last = log_files(dir).last().map(|(n, _)| *n);
        let (number, file) = match last {
            Some(n) => {
                let f = open_log(dir, n, false)?;
                if f.metadata()?.len() < rotation.max_bytes {
                    (n, f)
                } else {
                    (n + 1, open_log(dir, n + 1, true)?)
                }
            }
            None => (1, open_log(dir, 1, true)?),
        };
        let size = file.metadata()?.len();
        let w = RotatingFile {
            dir: dir.to_path_buf(),
            rotation,
            file,
            number,
            size,
            opened: Instant::now(),
        };
        w.prune();
        Ok(w)
    }

    /// The number of the file written now.
    pub fn current(&self) -> u64 {
        self.number
    }

    fn rotate(&mut self) -> io::Result<()> {
        let next = self.number + 1;
        self.file = open_log(&self.dir, next, true)?;
        self.number = next;
        self.size = 0;
        self.opened = Instant::now();
        self.prune();
        Ok(())
    }

    /// Deletes closed files that are too old, then the oldest beyond `max_files`.
    fn prune(&self) {
        let now = SystemTime::now();
        let mut files = log_files(&self.dir);
        files.retain(|(n, path)| {
            if *n == self.number {
                return true;
            }
            let old = fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > self.rotation.max_age);
            !(old && fs::remove_file(path).is_ok())
        });
        let excess = files.len().saturating_sub(self.rotation.max_files);
        for (n, path) in files.iter().take(excess) {
            if *n != self.number {
                let _ = fs::remove_file(path);
            }
        }
    }
}

fn open_log(dir: &Path, n: u64, create: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.append(true).mode(0o600);
    if create {
        o.create(true);
    }
    o.open(dir.join(file_name(n)))
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = buf.len() as u64;
        let full = self.size > 0 && self.size + len > self.rotation.max_bytes;
        if full || (self.size > 0 && self.opened.elapsed() >= self.rotation.roll_every) {
            self.rotate()?;
        }
        // The whole line, so that no line is ever torn between files.
        self.file.write_all(buf)?;
        self.size += len;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The last ERROR line logged by this process. Logging is process-wide (one tracing
/// subscriber per process, installed by the binary before the daemon exists), so this
/// is too.
static LAST_ERROR: Mutex<Option<LogLine>> = Mutex::new(None);

/// The last ERROR line logged since the process started.
pub fn last_error() -> Option<LogLine> {
    LAST_ERROR.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The tracing layer that writes every event as one JSON [`LogLine`] (with the fields
/// of its spans, so a line logged inside a session's turn carries `session`) to
/// `writer`, and remembers the last ERROR line.
pub struct JsonLayer<W> {
    writer: Option<Mutex<W>>,
}

impl<W: Write> JsonLayer<W> {
    /// A layer writing to `writer`; with `None` it only remembers the last error.
    pub fn new(writer: Option<W>) -> JsonLayer<W> {
        JsonLayer {
            writer: writer.map(Mutex::new),
        }
    }
}

/// The fields of an event or a span, as text.
#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: Write + Send + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut fields = fields.0;
        for span in ctx.event_scope(event).into_iter().flatten() {
            if let Some(outer) = span.extensions().get::<Fields>() {
                for (k, v) in &outer.0 {
                    fields.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        let meta = event.metadata();
        let line = LogLine {
            at: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            level: meta.level().as_str().to_string(),
            target: meta.target().to_string(),
            message: fields.remove("message").unwrap_or_default(),
            session: fields.remove("session"),
            fields,
        };
        if let Some(w) = &self.writer {
            if let Ok(mut text) = serde_json::to_vec(&line) {
                text.push(b'\n');
                if let Ok(mut w) = w.lock() {
                    let _ = w.write_all(&text);
                }
            }
        }
        if *meta.level() == Level::ERROR {
            *LAST_ERROR.lock().unwrap_or_else(|p| p.into_inner()) = Some(line);
        }
    }
}

/// The most lines one `daemon.logs` call returns.
pub const MAX_LINES: usize = 10_000;
/// Lines returned when the caller does not say.
const DEFAULT_LINES: usize = 200;
/// How many bytes of logs one call reads at most. A filter that matches little then
/// answers with fewer lines (and a cursor to continue from) instead of reading a
/// gigabyte of logs in one request.
const SCAN_BUDGET: u64 = 64 * 1024 * 1024;
/// The unit of reading a file backwards.
const CHUNK: u64 = 64 * 1024;

/// One `daemon.logs` query, checked.
#[derive(Debug, Clone)]
pub struct LogQuery {
    /// Lines at or after this time (RFC 3339 with microseconds, as lines carry it, so
    /// text order is time order).
    since: Option<String>,
    /// The least severe level wanted.
    level: Level,
    session: Option<String>,
    limit: usize,
    after: Option<(u64, u64)>,
}

impl LogQuery {
    /// Checks `p`; every bad value is a `validation` error naming its field.
    pub fn parse(p: &LogsParams) -> Result<LogQuery, ApiError> {
        let since = p.since.as_deref().map(parse_since).transpose()?;
        let level = match p.level.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => Level::TRACE,
            Some("error") => Level::ERROR,
            Some("warn" | "warning") => Level::WARN,
            Some("info") => Level::INFO,
            Some("debug") => Level::DEBUG,
            Some("trace") => Level::TRACE,
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "level must be error, warn, info, debug or trace, not {other:?}"
                )))
            }
        };
        let after = p
            .after
            .as_deref()
            .map(|c| {
                parse_cursor(c).ok_or_else(|| {
                    ApiError::validation("after must be the `next` cursor of a previous answer")
                })
            })
            .transpose()?;
        let limit = p.limit.map_or(DEFAULT_LINES, |l| {
            usize::try_from(l).unwrap_or(MAX_LINES).clamp(1, MAX_LINES)
        });
        Ok(LogQuery {
            since,
            level,
            session: p.session_id.clone(),
            limit,
            after,
        })
    }

    /// Moves the query's cursor to `next` (an answer's), to read what comes after.
    pub fn continue_from(&mut self, next: &str) {
        if let Some(c) = parse_cursor(next) {
            self.after = Some(c);
        }
    }

    /// True when the query follows from a cursor.
    pub fn follows(&self) -> bool {
        self.after.is_some()
    }

    fn wants(&self, line: &LogLine) -> bool {
        if let Some(s) = &self.session {
            if line.session.as_deref() != Some(s.as_str()) {
                return false;
            }
        }
        if let Some(since) = &self.since {
            if line.at.as_str() < since.as_str() {
                return false;
            }
        }
        line.level.parse::<Level>().is_ok_and(|l| l <= self.level)
    }
}

/// `since`: a duration back from now, or an RFC 3339 time; as a line's `at` spells it.
fn parse_since(s: &str) -> Result<String, ApiError> {
    let at = match humantime::parse_duration(s.trim()) {
        Ok(d) => SystemTime::now()
            .checked_sub(d)
            .unwrap_or(SystemTime::UNIX_EPOCH),
        Err(_) => humantime::parse_rfc3339_weak(s.trim()).map_err(|_| {
            ApiError::validation(format!(
                "since must be a duration (10m, 2h, 1d) or an RFC 3339 time, not {s:?}"
            ))
        })?,
    };
    Ok(humantime::format_rfc3339_micros(at).to_string())
}

fn parse_cursor(c: &str) -> Option<(u64, u64)> {
    let (n, off) = c.split_once(':')?;
    Some((n.parse().ok()?, off.parse().ok()?))
}

fn cursor(n: u64, off: u64) -> String {
    format!("{n}:{off}")
}

/// Reads a page of the logs in `dir` for `q`: the newest matching lines, or with a
/// cursor the first ones after it. Blocking file I/O.
pub fn read(dir: &Path, q: &LogQuery) -> io::Result<LogPage> {
    let files = log_files(dir);
    match q.after {
        Some(after) => read_after(&files, after, q),
        None => read_newest(&files, q),
    }
}

fn parse_line(bytes: &[u8]) -> Option<LogLine> {
    serde_json::from_slice(bytes).ok()
}

/// The length of `file` up to and including its last newline: a line still being
/// written is not read.
fn complete_len(file: &File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let n = end.min(CHUNK);
        let start = end - n;
        file.read_exact_at(&mut buf[..n as usize], start)?;
        if let Some(i) = buf[..n as usize].iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

fn read_after(files: &[(u64, PathBuf)], after: (u64, u64), q: &LogQuery) -> io::Result<LogPage> {
    let (mut number, mut offset) = after;
    // The cursor's file was pruned: continue from the oldest file there is.
    if let Some((first, _)) = files.first() {
        if number < *first {
            (number, offset) = (*first, 0);
        }
    }
    let mut lines = Vec::new();
    let mut scanned = 0u64;
    let from = number;
    for (n, path) in files.iter().filter(|(n, _)| *n >= from) {
        let start = if *n == number { offset } else { 0 };
        let file = match File::open(path) {
            Ok(f) => f,
            // Pruned while we read: the next one goes on.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let end = complete_len(&file)?;
        (number, offset) = (*n, start.min(end));
        let mut buf = vec![0u8; CHUNK as usize];
        let mut carry: Vec<u8> = Vec::new();
        let mut pos = offset;
        while pos < end {
            let want = (end - pos).min(CHUNK) as usize;
            file.read_exact_at(&mut buf[..want], pos)?;
            pos += want as u64;
            scanned += want as u64;
            carry.extend_from_slice(&buf[..want]);
            let mut consumed = 0;
            while let Some(i) = carry[consumed..].iter().position(|b| *b == b'\n') {
                let line = &carry[consumed..consumed + i];
                consumed += i + 1;
                offset += (i + 1) as u64;
                if let Some(l) = parse_line(line).filter(|l| q.wants(l)) {
                    lines.push(l);
                    if lines.len() >= q.limit {
                        return Ok(LogPage {
                            lines,
                            next: cursor(number, offset),
                        });
                    }
                }
            }
            carry.drain(..consumed);
            if scanned >= SCAN_BUDGET {
                return Ok(LogPage {
                    lines,
                    next: cursor(number, offset),
                });
            }
        }
    }
    Ok(LogPage {
        lines,
        next: cursor(number, offset),
    })
}

fn read_newest(files: &[(u64, PathBuf)], q: &LogQuery) -> io::Result<LogPage> {
    // The cursor is the end of the newest file, whatever the filter kept: following
    // from it gives exactly the lines written after this answer.
    let next = match files.last() {
        Some((n, path)) => cursor(*n, complete_len(&File::open(path)?)?),
        None => cursor(0, 0),
    };
    let mut newest_first = Vec::new();
    let mut scanned = 0u64;
    'files: for (_, path) in files.iter().rev() {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut end = complete_len(&file)?;
        // Bytes after `end` that belong to the line whose start is not read yet.
        let mut carry: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; CHUNK as usize];
        while end > 0 {
            let n = end.min(CHUNK);
            let start = end - n;
            file.read_exact_at(&mut buf[..n as usize], start)?;
            scanned += n;
            let mut data = buf[..n as usize].to_vec();
            data.extend_from_slice(&carry);
            let mut segs: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
            // The piece before the first newline is whole only at the file's start.
            let head = if start > 0 && !segs.is_empty() {
                Some(segs.remove(0).to_vec())
            } else {
                None
            };
            for seg in segs.iter().rev().filter(|s| !s.is_empty()) {
                let Some(l) = parse_line(seg) else { continue };
                // Lines are in time order: one before `since` ends the search.
                if q.since.as_ref().is_some_and(|s| l.at.as_str() < s.as_str()) {
                    break 'files;
                }
                if q.wants(&l) {
                    newest_first.push(l);
                    if newest_first.len() >= q.limit {
                        break 'files;
                    }
                }
            }
            carry = head.unwrap_or_default();
            end = start;
            if scanned >= SCAN_BUDGET {
                break 'files;
            }
        }
    }
    newest_first.reverse();
    Ok(LogPage {
        lines: newest_first,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(max_bytes: u64, max_files: usize) -> Rotation {
        Rotation {
            max_bytes,
            max_age: Duration::from_secs(3600),
            max_files,
            roll_every: ROLL_EVERY,
        }
    }

    fn line(i: usize, level: &str, session: Option<&str>) -> Vec<u8> {
        let l = LogLine {
            at: format!("2026-01-01T00:00:{:02}.{:06}Z", i / 1000, i % 1000),
            level: level.into(),
            target: "t".into(),
            message: format!("line {i}"),
            session: session.map(str::to_string),
            fields: BTreeMap::new(),
        };
        let mut v = serde_json::to_vec(&l).unwrap();
        v.push(b'\n');
        v
    }

    fn query(p: LogsParams) -> LogQuery {
        LogQuery::parse(&p).unwrap()
    }

    #[test]
    fn rotates_by_size_keeps_whole_lines_and_prunes_to_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RotatingFile::open(dir.path(), rotation(1000, 3)).unwrap();
        for i in 0..100 {
            w.write_all(&line(i, "INFO", None)).unwrap();
        }
        let files = log_files(dir.path());
        assert_eq!(files.len(), 3, "{files:?}");
        assert_eq!(files.last().unwrap().0, w.current());
        for (_, p) in &files {
            let text = fs::read(p).unwrap();
            assert!(text.len() as u64 <= 1000, "{} bytes", text.len());
            assert!(text.ends_with(b"\n"));
            // Every line whole and parseable: none torn across files.
            for l in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                assert!(parse_line(l).is_some());
            }
        }
        // The newest line is in the current file, and reading finds it last.
        let page = read(dir.path(), &query(LogsParams::default())).unwrap();
        assert_eq!(page.lines.last().unwrap().message, "line 99");
        // A line longer than the limit still goes whole into a file of its own.
        let long = format!("{}\n", "x".repeat(3000));
        w.write_all(long.as_bytes()).unwrap();
        let cur = dir.path().join(file_name(w.current()));
        assert_eq!(fs::read(cur).unwrap(), long.as_bytes());
    }

    #[test]
    fn prunes_files_older_than_max_age_and_continues_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for n in 1..=3 {
            fs::write(
                dir.path().join(file_name(n)),
                line(n as usize, "INFO", None),
            )
            .unwrap();
        }
        // File 1 was last written 30 days ago.
        let old = SystemTime::now() - Duration::from_secs(30 * 86_400);
        File::options()
            .append(true)
            .open(dir.path().join(file_name(1)))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut r = rotation(1000, 10);
        r.max_age = Duration::from_secs(14 * 86_400);
        let mut w = RotatingFile::open(dir.path(), r).unwrap();
        assert_eq!(w.current(), 3, "the newest file has room: it continues");
        let numbers: Vec<u64> = log_files(dir.path()).iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, vec![2, 3]);
        // Daily roll-over: a file written for longer than roll_every is closed.
        w.rotation.roll_every = Duration::ZERO;
        w.write_all(&line(9, "INFO", None)).unwrap();
        assert_eq!(w.current(), 4);
    }

    #[test]
    fn filters_by_level_session_and_since_and_follows_with_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RotatingFile::open(dir.path(), rotation(700, 100)).unwrap();
        for i in 0..40 {
            let level = ["ERROR", "WARN", "INFO", "DEBUG"][i % 4];
            let session = (i % 5 == 0).then_some("ses_a");
            w.write_all(&line(i, level, session)).unwrap();
        }
        assert!(log_files(dir.path()).len() > 3, "spans several files");
        let warn = read(
            dir.path(),
            &query(LogsParams {
                level: Some("warn".into()),
                ..Default::default()
            }),
        )
        .unwrap();
        assert_eq!(warn.lines.len(), 20);
        assert!(warn
            .lines
            .iter()
            .all(|l| l.level == "ERROR" || l.level == "WARN"));
        let ses = read(
            dir.path(),
            &query(LogsParams {
                session_id: Some("ses_a".into()),
                limit: Some(3),
                ..Default::default()
            }),
        )
        .unwrap();
        let msgs: Vec<_> = ses.lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(
            msgs,
            ["line 25", "line 30", "line 35"],
            "the newest, oldest first"
        );
        let since = read(
            dir.path(),
            &query(LogsParams {
                since: Some("2026-01-01T00:00:00.000030Z".into()),
                ..Default::default()
            }),
        )
        .unwrap();
        assert_eq!(since.lines.len(), 10);
        assert_eq!(since.lines[0].message, "line 30");
        // Follow: nothing after the cursor, then exactly the new lines, across a
        // rotation, in pages of `limit`.
        let mut q = query(LogsParams {
            after: Some(since.next.clone()),
            limit: Some(4),
            ..Default::default()
        });
        assert!(read(dir.path(), &q).unwrap().lines.is_empty());
        for i in 40..50 {
            w.write_all(&line(i, "INFO", None)).unwrap();
        }
        // A line still being written is not read.
        w.file.write_all(b"{\"at\":\"2026").unwrap();
        let mut seen = Vec::new();
        loop {
            let page = read(dir.path(), &q).unwrap();
            if page.lines.is_empty() {
                break;
            }
            seen.extend(page.lines.into_iter().map(|l| l.message));
            q.after = parse_cursor(&page.next);
        }
        let want: Vec<String> = (40..50).map(|i| format!("line {i}")).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn bad_params_name_their_field() {
        for (p, field) in [
            (
                LogsParams {
                    level: Some("loud".into()),
                    ..Default::default()
                },
                "level",
            ),
            (
                LogsParams {
                    since: Some("yesterday-ish".into()),
                    ..Default::default()
                },
                "since",
            ),
            (
                LogsParams {
                    after: Some("x".into()),
                    ..Default::default()
                },
                "after",
            ),
        ] {
            let e = LogQuery::parse(&p).unwrap_err();
            assert!(e.message.starts_with(field), "{}", e.message);
        }
        assert!(LogQuery::parse(&LogsParams {
            since: Some("10m".into()),
            ..Default::default()
        })
        .is_ok());
    }
}
