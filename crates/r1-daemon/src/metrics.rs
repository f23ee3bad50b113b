//! Prometheus metrics, rendered by hand: a few counters and one histogram do not
//! justify a metrics framework in the daemon's dependency tree.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::Hub;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// The daemon's counters.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_ns: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            requests: Mutex::default(),
            rejections: Mutex::default(),
            buckets: Default::default(),
            latency_count: AtomicU64::new(0),
            latency_sum_ns: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Time since the daemon started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts one request of a matched route.
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Counts one request the perimeter turned away, by reason.
    pub fn reject(&self, reason: &'static str) {
        if let Ok(mut m) = self.rejections.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, live_sessions: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP r1_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE r1_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "r1_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP r1_perimeter_rejections_total Requests refused by the perimeter."
        );
        let _ = writeln!(out, "# TYPE r1_perimeter_rejections_total counter");
        if let Ok(m) = self.rejections.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "r1_perimeter_rejections_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        let _ = writeln!(out, "# HELP r1_request_duration_seconds Request latency.");
        let _ = writeln!(out, "# TYPE r1_request_duration_seconds histogram");
        for (i, le) in BUCKETS.iter().enumerate() {
            let n = self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "r1_request_duration_seconds_bucket{{le=\"{le}\"}} {n}");
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = self.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "r1_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "r1_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "r1_request_duration_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP r1_uptime_seconds Seconds since the daemon started."
        );
        let _ = writeln!(out, "# TYPE r1_uptime_seconds gauge");
        let _ = writeln!(out, "r1_uptime_seconds {}", self.uptime().as_secs());
        let _ = writeln!(
            out,
            "# HELP r1_live_sessions Sessions loaded and not ended."
        );
        let _ = writeln!(out, "# TYPE r1_live_sessions gauge");
        let _ = writeln!(out, "r1_live_sessions {live_sessions}");
        out
    }
}

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
    tracing::debug!(%method, %path, status = resp.status().as_u16(), micros = took.as_micros() as u64, "request");
    resp
}
