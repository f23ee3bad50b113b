//! Prometheus metrics, rendered by hand in the text exposition format: a few counters,
//! gauges and histograms do not justify a metrics framework in the daemon's
//! dependency tree. Names follow Prometheus conventions (`r1_` prefix, `_total`
//! counters, base units `_seconds` and `_bytes`, HELP and TYPE on every family), and CI
//! checks the output with `promtool check metrics`.
//!
//! What is measured where: requests in the route layer ([`track`]); provider latency
//! around each provider's stream ([`timed_provider`]); journal write and fdatasync
//! latency in a [`JournalIo`] wrapper ([`Metrics::timed_journal`]), so the journal crate
//! needs no hook; turns and tokens in the session actor; connections refused in
//! `conn`; gauges (sessions, missions, subscribers, queued bytes) are read at scrape
//! time from their owners.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use r1_engine::{Provider, ProviderError, ProviderEvent, ProviderRequest};
use r1_journal::{JournalFile, JournalIo, JournalOptions, JournalReader};

use crate::Hub;

/// Request latency buckets, in seconds.
const REQUEST_BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];
/// Journal write and fdatasync buckets, in seconds: from a page-cache write to a
/// disk that stalls.
const JOURNAL_BUCKETS: &[f64] = &[
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
];
/// Provider latency buckets, in seconds: a local echo to a model thinking for a minute.
const PROVIDER_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A histogram with fixed buckets, updated without a lock.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the `+Inf` bucket is `count`.
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `took`.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|le| secs <= *le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Writes the samples of this histogram with `labels` (`k="v",…` or empty).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, le) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// The journal timings, shared with every journal's [`JournalIo`].
#[derive(Debug)]
struct JournalTimes {
    append: Histogram,
    fsync: Histogram,
}

/// A counter family keyed by its label values.
type Counters<K> = Mutex<BTreeMap<K, u64>>;

fn bump<K: Ord>(c: &Counters<K>, key: K, by: u64) {
    if let Ok(mut m) = c.lock() {
        *m.entry(key).or_default() += by;
    }
}

/// The daemon's counters and histograms.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    requests: Counters<(String, String, u16)>,
    rejections: Counters<&'static str>,
    request_latency: Histogram,
    connections_rejected: Counters<(&'static str, &'static str)>,
    turns: Counters<(String, &'static str)>,
    tokens: Counters<(String, &'static str)>,
    provider_latency: Mutex<BTreeMap<String, Arc<Histogram>>>,
    journal: Arc<JournalTimes>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            requests: Mutex::default(),
            rejections: Mutex::default(),
            request_latency: Histogram::new(REQUEST_BUCKETS),
            connections_rejected: Mutex::default(),
            turns: Mutex::default(),
            tokens: Mutex::default(),
            provider_latency: Mutex::default(),
            journal: Arc::new(JournalTimes {
                append: Histogram::new(JOURNAL_BUCKETS),
                fsync: Histogram::new(JOURNAL_BUCKETS),
            }),
        }
    }
}

/// What the scrape reads from the rest of the daemon at the moment it runs.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Sessions loaded and not ended.
    pub live_sessions: u64,
    /// Loaded sessions by state (every state, zeros included).
    pub sessions: BTreeMap<&'static str, u64>,
    /// Missions by state (every state, zeros included).
    pub missions: BTreeMap<&'static str, u64>,
    /// Live event-stream subscribers.
    pub subscribers: u64,
    /// Bytes waiting in subscribers' live queues.
    pub queued_bytes: u64,
    /// Subscribers dropped as too slow since the start.
    pub dropped_subscribers: u64,
    /// Hook runs started since the start.
    pub hook_runs: u64,
    /// Hook runs that failed (non-zero exit, timeout, bad answer, dropped).
    pub hook_failures: u64,
}

impl Metrics {
    /// Time since the daemon started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts one request of a matched route.
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        bump(
            &self.requests,
            (method.to_string(), route.to_string(), status),
            1,
        );
        self.request_latency.observe(took);
    }

    /// Counts one request the perimeter turned away, by reason.
    pub fn reject(&self, reason: &'static str) {
        bump(&self.rejections, reason, 1);
    }

    /// Counts one connection closed at accept, by listener (`tcp`, `unix`) and reason.
    pub fn reject_connection(&self, listener: &'static str, reason: &'static str) {
        bump(&self.connections_rejected, (listener, reason), 1);
    }

    /// Counts one turn of a session of `engine` that ended as `outcome` (`completed`,
    /// `cancelled`, `failed`).
    pub fn turn(&self, engine: &str, outcome: &'static str) {
        bump(&self.turns, (engine.to_string(), outcome), 1);
    }

    /// Counts the tokens a provider of `engine` reported.
    pub fn tokens(&self, engine: &str, input: u64, output: u64) {
        bump(&self.tokens, (engine.to_string(), "input"), input);
        bump(&self.tokens, (engine.to_string(), "output"), output);
    }

    /// The provider latency histogram of `engine`.
    fn provider_histogram(&self, engine: &str) -> Arc<Histogram> {
        let mut m = self
            .provider_latency
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            m.entry(engine.to_string())
                .or_insert_with(|| Arc::new(Histogram::new(PROVIDER_BUCKETS))),
        )
    }

    /// `opts` with its file I/O timed: each batch write and each fdatasync of every
    /// journal is observed in this daemon's histograms.
    pub fn timed_journal(&self, opts: JournalOptions) -> JournalOptions {
        JournalOptions {
            io: Arc::new(TimedIo {
                inner: opts.io,
                times: Arc::clone(&self.journal),
            }),
            ..opts
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let o = &mut out;
        family(
            o,
            "r1_requests_total",
            "counter",
            "HTTP requests by route and status.",
        );
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    o,
                    "r1_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    esc(method),
                    esc(route)
                );
            }
        }
        family(
            o,
            "r1_perimeter_rejections_total",
            "counter",
            "Requests refused by the perimeter, by reason.",
        );
        if let Ok(m) = self.rejections.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(
                    o,
                    "r1_perimeter_rejections_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        family(o, "r1_connections_rejected_total", "counter", "Connections closed as soon as they were accepted, by listener and reason (limit: over [limits] max_connections_*).");
        if let Ok(m) = self.connections_rejected.lock() {
            for ((listener, reason), n) in m.iter() {
                let _ = writeln!(
                    o,
                    "r1_connections_rejected_total{{listener=\"{listener}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
        family(
            o,
            "r1_request_duration_seconds",
            "histogram",
            "HTTP request latency.",
        );
        self.request_latency
            .render(o, "r1_request_duration_seconds", "");
        family(
            o,
            "r1_uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
        );
        let _ = writeln!(o, "r1_uptime_seconds {}", self.uptime().as_secs());
        family(
            o,
            "r1_live_sessions",
            "gauge",
            "Sessions loaded and not ended.",
        );
        let _ = writeln!(o, "r1_live_sessions {}", g.live_sessions);
        family(o, "r1_sessions", "gauge", "Loaded sessions by state.");
        for (state, n) in &g.sessions {
            let _ = writeln!(o, "r1_sessions{{state=\"{state}\"}} {n}");
        }
        family(o, "r1_missions", "gauge", "Missions by state.");
        for (state, n) in &g.missions {
            let _ = writeln!(o, "r1_missions{{state=\"{state}\"}} {n}");
        }
        family(
            o,
            "r1_turns_total",
            "counter",
            "Agent turns ended, by engine and outcome (completed, cancelled, failed).",
        );
        if let Ok(m) = self.turns.lock() {
            for ((engine, outcome), n) in m.iter() {
                let _ = writeln!(
                    o,
                    "r1_turns_total{{engine=\"{}\",outcome=\"{outcome}\"}} {n}",
                    esc(engine)
                );
            }
        }
        family(
            o,
            "r1_tokens_total",
            "counter",
            "Tokens providers reported, by engine and direction (input, output).",
        );
        if let Ok(m) = self.tokens.lock() {
            for ((engine, direction), n) in m.iter() {
                let _ = writeln!(
                    o,
                    "r1_tokens_total{{engine=\"{}\",direction=\"{direction}\"}} {n}",
                    esc(engine)
                );
            }
        }
        family(
            o,
            "r1_provider_latency_seconds",
            "histogram",
            "Time from a model request to the provider's first event, by engine.",
        );
        let providers: Vec<(String, Arc<Histogram>)> = self
            .provider_latency
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect())
            .unwrap_or_default();
        for (engine, h) in providers {
            h.render(
                o,
                "r1_provider_latency_seconds",
                &format!("engine=\"{}\"", esc(&engine)),
            );
        }
        family(
            o,
            "r1_journal_append_duration_seconds",
            "histogram",
            "Time to write one batch of records (a group commit) to a session journal.",
        );
        self.journal
            .append
            .render(o, "r1_journal_append_duration_seconds", "");
        family(
            o,
            "r1_journal_fsync_duration_seconds",
            "histogram",
            "Time of one fdatasync of a session journal.",
        );
        self.journal
            .fsync
            .render(o, "r1_journal_fsync_duration_seconds", "");
        family(
            o,
            "r1_subscribers",
            "gauge",
            "Live event-stream subscribers (SSE streams and WebSocket subscriptions).",
        );
        let _ = writeln!(o, "r1_subscribers {}", g.subscribers);
        family(
            o,
            "r1_subscriber_queued_bytes",
            "gauge",
            "Bytes of events waiting in subscribers' live queues.",
        );
        let _ = writeln!(o, "r1_subscriber_queued_bytes {}", g.queued_bytes);
        family(
            o,
            "r1_subscribers_dropped_total",
            "counter",
            "Subscribers dropped because their queue stayed full past slow_subscriber_grace_ms.",
        );
        let _ = writeln!(o, "r1_subscribers_dropped_total {}", g.dropped_subscribers);
        family(
            o,
            "r1_hook_runs_total",
            "counter",
            "Hooks run from $R1_HOME/hooks.",
        );
        let _ = writeln!(o, "r1_hook_runs_total {}", g.hook_runs);
        family(
            o,
            "r1_hook_failures_total",
            "counter",
            "Hook runs that failed: non-zero exit, timeout, an answer that is not JSON, or no room in the queue.",
        );
        let _ = writeln!(o, "r1_hook_failures_total {}", g.hook_failures);
        out
    }
}

/// The HELP and TYPE lines of a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped as the exposition format asks.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The route of `daemon.logs`.
const LOGS_ROUTE: &str = "/v1/logs";

/// Route-layer middleware: counts the request under its matched route and logs it,
/// with the path only (query strings may carry a token and are never logged).
pub async fn track(State(hub): State<Hub>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let took = started.elapsed();
    hub.metrics()
        .record(&method, &route, resp.status().as_u16(), took);
    // Reading the logs writes no log line: a follower would otherwise read the line
    // of its own last request, ask again at once, and never wait.
    if route != LOGS_ROUTE {
        tracing::debug!(%method, %path, status = resp.status().as_u16(), micros = took.as_micros() as u64, "request");
    }
    resp
}

/// The journals' file I/O, timed.
struct TimedIo {
    inner: Arc<dyn JournalIo>,
    times: Arc<JournalTimes>,
}

impl JournalIo for TimedIo {
    fn open_append(&self, path: &Path, create_new: bool) -> io::Result<Box<dyn JournalFile>> {
        Ok(Box::new(TimedFile {
            inner: self.inner.open_append(path, create_new)?,
            times: Arc::clone(&self.times),
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn JournalReader>> {
        self.inner.open_read(path)
    }
}

struct TimedFile {
    inner: Box<dyn JournalFile>,
    times: Arc<JournalTimes>,
}

impl JournalFile for TimedFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let t = Instant::now();
        let r = self.inner.write_all(buf);
        self.times.append.observe(t.elapsed());
        r
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let t = Instant::now();
        let r = self.inner.sync_data();
        self.times.fsync.observe(t.elapsed());
        r
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn len(&mut self) -> io::Result<u64> {
        self.inner.len()
    }
}

/// `provider` with its latency (request to first event) observed under `engine`.
pub fn timed_provider(hub: &Hub, engine: &str, provider: Arc<dyn Provider>) -> Arc<dyn Provider> {
    Arc::new(TimedProvider {
        inner: provider,
        latency: hub.metrics().provider_histogram(engine),
    })
}

struct TimedProvider {
    inner: Arc<dyn Provider>,
    latency: Arc<Histogram>,
}

#[async_trait::async_trait]
impl Provider for TimedProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn stream(
        &self,
        req: ProviderRequest,
    ) -> Result<BoxStream<'static, Result<ProviderEvent, ProviderError>>, ProviderError> {
        let started = Instant::now();
        let stream = self.inner.stream(req).await?;
        let mut first = Some(Arc::clone(&self.latency));
        Ok(stream
            .inspect(move |_| {
                if let Some(h) = first.take() {
                    h.observe(started.elapsed());
                }
            })
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let m = Metrics::default();
        m.record("GET", "/v1/x", 200, Duration::from_micros(50));
        m.record("GET", "/v1/x", 200, Duration::from_millis(3));
        m.turn("my \"engine\"", "completed");
        let text = m.render(&Gauges::default());
        assert!(text.contains("r1_request_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("r1_request_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("r1_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("r1_request_duration_seconds_count 2\n"));
        assert!(
            text.contains("r1_turns_total{engine=\"my \\\"engine\\\"\",outcome=\"completed\"} 1")
        );
    }
}
