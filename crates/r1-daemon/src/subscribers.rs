//! The count of live subscribers (SSE streams and WebSocket subscriptions), per session
//! and over the whole daemon, so that no client can open followers without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use r1_proto::{ApiError, ErrorCode};

/// The subscriber counts, shared by every transport.
#[derive(Debug)]
pub struct Subscribers {
    /// The bounds, changed by a config reload: lowering one refuses new subscribers
    /// until enough have gone, it never cuts a live one.
    per_session_max: AtomicUsize,
    total_max: AtomicUsize,
    counts: Mutex<Counts>,
    /// Bytes of frames waiting in all live queues (a metrics gauge).
    queued_bytes: AtomicU64,
    /// Subscribers dropped as too slow since the start (a metrics counter).
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_session: HashMap<String, usize>,
}

/// One subscriber's place in the counts; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<Subscribers>,
    session: Option<String>,
}

impl Subscribers {
    /// Counts bounded by `per_session_max` per session and `total_max` in all.
    pub fn new(per_session_max: usize, total_max: usize) -> Arc<Subscribers> {
        Arc::new(Subscribers {
            per_session_max: AtomicUsize::new(per_session_max),
            total_max: AtomicUsize::new(total_max),
            counts: Mutex::new(Counts::default()),
            queued_bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Sets new bounds (a config reload); live subscribers keep their places.
    pub fn set_limits(&self, per_session_max: usize, total_max: usize) {
        self.per_session_max
            .store(per_session_max, Ordering::Relaxed);
        self.total_max.store(total_max, Ordering::Relaxed);
    }

    /// Takes a place for a subscriber of `session` (or of the daemon bus when `None`),
    /// or says which limit is reached.
    pub fn acquire(self: &Arc<Self>, session: Option<&str>) -> Result<Slot, ApiError> {
        let total_max = self.total_max.load(Ordering::Relaxed);
        let per_session_max = self.per_session_max.load(Ordering::Relaxed);
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= total_max {
            return Err(too_many(format!(
                "the daemon already serves {} subscribers ([limits] max_subscribers); close an event stream and retry",
                total_max
            )));
        }
        if let Some(id) = session {
            let n = c.by_session.get(id).copied().unwrap_or(0);
            if n >= per_session_max {
                return Err(too_many(format!(
                    "session {id} already has {} subscribers ([limits] max_subscribers_per_session); close one of its event streams and retry",
                    per_session_max
                )));
            }
            c.by_session.insert(id.to_string(), n + 1);
        }
        c.total += 1;
        Ok(Slot {
            owner: Arc::clone(self),
            session: session.map(str::to_string),
        })
    }

    /// A live queue's bytes went from `from` to `to`.
    pub fn queued(&self, from: usize, to: usize) {
        if to >= from {
            self.queued_bytes
                .fetch_add((to - from) as u64, Ordering::Relaxed);
        } else {
            self.queued_bytes
                .fetch_sub((from - to) as u64, Ordering::Relaxed);
        }
    }

    /// Bytes waiting in all live queues.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes.load(Ordering::Relaxed)
    }

    /// Counts a subscriber dropped as too slow.
    pub fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Subscribers dropped as too slow since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// How many subscribers are live, in all.
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Slot {
    /// The counts this slot belongs to.
    pub fn owner(&self) -> Arc<Subscribers> {
        Arc::clone(&self.owner)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.owner.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(id) = &self.session {
            if let Some(n) = c.by_session.get_mut(id) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.by_session.remove(id);
                }
            }
        }
    }
}

/// The error for a reached limit: 429, under the `budget_exceeded` code, the one of the
/// ten wire codes that means "too many of something; retry later".
fn too_many(message: String) -> ApiError {
    ApiError::new(ErrorCode::BudgetExceeded, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_per_session_and_in_all() {
        let s = Subscribers::new(2, 3);
        let a = s.acquire(Some("a")).unwrap();
        let _a2 = s.acquire(Some("a")).unwrap();
        let e = s.acquire(Some("a")).unwrap_err();
        assert_eq!(e.code, ErrorCode::BudgetExceeded);
        assert!(e.message.contains("max_subscribers_per_session"));
        let _b = s.acquire(Some("b")).unwrap();
        let e = s.acquire(None).unwrap_err();
        assert!(e.message.contains("max_subscribers)"));
        drop(a);
        assert_eq!(s.total(), 2);
        let _a3 = s.acquire(Some("a")).unwrap();
        assert_eq!(s.total(), 3);
    }
}
