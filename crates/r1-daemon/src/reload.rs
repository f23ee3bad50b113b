//! Live config reload (SIGHUP, `r1 ctl reload`, `daemon.reload`): re-read
//! `daemon.toml`, put what is valid in force at once, and say what changed.
//!
//! Every consumer reads the config in force when it acts (`Hub::config()` is a cheap
//! `Arc` swapped whole), so applying a reload is one swap plus the few places that keep
//! a copy: the subscriber bounds and the mission worker pool. What a reload changes:
//!
//! - `perimeter.allowed_origins`: the next request from an added origin passes; a
//!   removed one is refused from its next request (an open WebSocket stays).
//! - `retention.*`: the next prune (every few minutes) uses it.
//! - `limits.*`: requests, messages and subscribers from now on; connections, event
//!   streams and WebSockets opened after the reload for the per-connection timers and
//!   queue sizes. The connection caps (`max_connections_tcp`, `max_connections_unix`)
//!   size each listener's permits when it starts: they wait for a restart.
//! - `engines`, `default_engine`: sessions started from now on; a session that already
//!   ran a turn keeps the provider it built.
//! - `mcp_servers`: sessions that start their MCP servers from now on (a session starts
//!   them on its first turn that needs tools).
//! - `mcp.caps`: the next request to `/mcp`.
//! - `missions.workers`: at once; a smaller pool lets running missions finish.
//! - `hooks`: the switch, pool and default timeout ([`Hub::apply_hooks`]).
//! - `web`: the browser behind `web.*` the next time it starts (after its idle stop);
//!   the idle timeout from the next call.
//! - `prices`: the next model call recorded; calls recorded before keep the cost they
//!   were journaled with.

use std::fmt::Debug;

use r1_proto::events::bus;
use r1_proto::{ApiError, ReloadResult};

use crate::hub::{Hub, LiveConfig};
use crate::state::{Config, LoadConfigError};

/// The config keys a running daemon cannot change: each listener's connection permits
/// are sized when it starts.
const RESTART_ONLY: &[&str] = &[
    "limits.max_connections_tcp",
    "limits.max_connections_unix",
    "search.enabled",
];

impl Hub {
    /// Re-reads `daemon.toml` and puts it in force. An invalid file (or one that cannot
    /// be read) changes nothing, and the error names the key and the line. Keys in
    /// [`RESTART_ONLY`] keep their running values and are reported in
    /// `restart_required`. Publishes `daemon.reloaded` on the bus.
    pub async fn reload_config(&self) -> Result<ReloadResult, ApiError> {
        let _one_at_a_time = self.reload_lock().lock().await;
        let path = self.state().path("daemon.toml");
        let loaded = {
            let state = self.state().clone();
            tokio::task::spawn_blocking(move || state.load_config())
                .await
                .map_err(|_| ApiError::internal("the config reload failed"))?
        };
        let mut new = match loaded {
            Ok(c) => c,
            Err(LoadConfigError::Invalid(e)) => {
                tracing::warn!(
                    "config reload refused, nothing changed: {} {e}",
                    path.display()
                );
                return Err(ApiError::validation(format!(
                    "{}: {e}; nothing was changed",
                    path.display()
                )));
            }
            Err(LoadConfigError::Io(e)) => {
                tracing::warn!("config reload: cannot read {}: {e}", path.display());
                return Err(ApiError::internal(format!(
                    "cannot read {}: {}; nothing was changed",
                    path.display(),
                    e.kind()
                )));
            }
        };
        let old = self.config();
        let (changed, restart_required) = diff(&old, &new);
        // What waits for a restart keeps its running value.
        new.limits.max_connections_tcp = old.limits.max_connections_tcp;
        new.limits.max_connections_unix = old.limits.max_connections_unix;
        new.search.enabled = old.search.enabled;
        self.apply_config(new);
        if changed.is_empty() && restart_required.is_empty() {
            tracing::info!("config reloaded: nothing changed");
        } else {
            tracing::info!(
                changed = %changed.join(","),
                restart_required = %restart_required.join(","),
                "config reloaded"
            );
        }
        let result = ReloadResult {
            version: self.info().version.clone(),
            changed,
            restart_required,
        };
        self.bus().publish(&bus::DaemonReloaded {
            daemon_id: self.info().id.clone(),
            sessions: 0,
            version: result.version.clone(),
            config: true,
            changed: result.changed.clone(),
            restart_required: result.restart_required.clone(),
        });
        Ok(result)
    }

    /// Puts `config` in force: the one swap every reader sees, then the parts that keep
    /// a copy of their own.
    fn apply_config(&self, config: Config) {
        let limits = config.limits.clone();
        let workers = config.missions.workers;
        let hooks = config.hooks.clone();
        self.set_live(LiveConfig::new(config));
        self.subscribers()
            .set_limits(limits.max_subscribers_per_session, limits.max_subscribers);
        self.missions().set_workers(workers);
        self.apply_hooks(&hooks);
        self.cortex().rediscover();
    }

    /// Puts a reloaded `[hooks]` in force (the scripts themselves are looked up at
    /// every event, so new and removed hooks need no reload).
    fn apply_hooks(&self, hooks: &crate::hooks::HooksConfig) {
        self.hooks().reconfigure(hooks.clone());
    }
}

/// The keys whose values differ between `old` and `new`: those a reload applies, and
/// those that need a restart ([`RESTART_ONLY`]).
fn diff(old: &Config, new: &Config) -> (Vec<String>, Vec<String>) {
    fn text<T: Debug>(v: &T) -> String {
        format!("{v:?}")
    }
    let mut pairs: Vec<(&str, String, String)> = vec![
        (
            "perimeter.allowed_origins",
            text(&old.perimeter.allowed_origins),
            text(&new.perimeter.allowed_origins),
        ),
        (
            "retention.max_age_hours",
            text(&old.retention.max_age_hours),
            text(&new.retention.max_age_hours),
        ),
        (
            "retention.max_session_mb",
            text(&old.retention.max_session_mb),
            text(&new.retention.max_session_mb),
        ),
    ];
    macro_rules! limits {
        ($($f:ident),* $(,)?) => {$(
            pairs.push((
                concat!("limits.", stringify!($f)),
                text(&old.limits.$f),
                text(&new.limits.$f),
            ));
        )*};
    }
    limits!(
        max_message_bytes,
        max_request_bytes,
        max_subscribers_per_session,
        max_subscribers,
        max_connections_tcp,
        max_connections_unix,
        header_read_timeout_ms,
        subscriber_queue_bytes,
        slow_subscriber_grace_ms,
        write_timeout_ms,
        ws_ping_interval_ms,
        ws_pong_timeout_ms,
        max_tui_sessions,
        tui_idle_timeout_ms,
    );
    pairs.extend([
        ("engines", text(&old.engines), text(&new.engines)),
        (
            "default_engine",
            text(&old.default_engine),
            text(&new.default_engine),
        ),
        (
            "mcp_servers",
            text(&old.mcp_servers),
            text(&new.mcp_servers),
        ),
        ("mcp.caps", text(&old.mcp.caps), text(&new.mcp.caps)),
        (
            "missions.workers",
            text(&old.missions.workers),
            text(&new.missions.workers),
        ),
        ("hooks", text(&old.hooks), text(&new.hooks)),
        ("prices", text(&old.prices), text(&new.prices)),
        ("web", text(&old.web), text(&new.web)),
        (
            "search.enabled",
            text(&old.search.enabled),
            text(&new.search.enabled),
        ),
    ]);
    let mut changed = Vec::new();
    let mut restart = Vec::new();
    for (key, a, b) in pairs {
        if a != b {
            if RESTART_ONLY.contains(&key) {
                restart.push(key.to_string());
            } else {
                changed.push(key.to_string());
            }
        }
    }
    (changed, restart)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::parse_config;

    #[test]
    fn diff_names_changed_and_restart_only_keys() {
        let old = parse_config("").unwrap();
        let new = parse_config(
            "[perimeter]\nallowed_origins = [\"http://x.test\"]\n[limits]\nmax_connections_tcp = 9\n[missions]\nworkers = 3\n",
        )
        .unwrap();
        let (changed, restart) = diff(&old, &new);
        assert_eq!(changed, ["perimeter.allowed_origins", "missions.workers"]);
        assert_eq!(restart, ["limits.max_connections_tcp"]);
        assert_eq!(diff(&new, &new), (vec![], vec![]));
    }

    #[test]
    fn prices_parse_price_calls_and_reload() {
        let old = parse_config("").unwrap();
        let new = parse_config(
            "[prices.\"gpt-4o\"]\ninput = 2.5\noutput = 10.0\ncached_input = 1.25\n[prices.\"m\"]\ninput = 1\noutput = 2\n",
        )
        .unwrap();
        assert_eq!(diff(&old, &new).0, ["prices"]);
        let usage = |input, cached, output| r1_proto::events::TokenUsage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cost_usd: None,
        };
        let p = new.prices["gpt-4o"];
        // 200k fresh input, 800k cached, 100k output.
        let c = p.cost(&usage(1_000_000, Some(800_000), 100_000));
        assert!((c - (0.5 + 1.0 + 1.0)).abs() < 1e-9, "{c}");
        // Without a cached price, cached tokens cost as input.
        let c = new.prices["m"].cost(&usage(1_000_000, Some(500_000), 1_000_000));
        assert!((c - 3.0).abs() < 1e-9, "{c}");

        let e = parse_config("[prices.x]\ninput = -1\noutput = 1\n").unwrap_err();
        assert!(e.message.contains("0 or more"), "{e}");
        let e = parse_config("[prices.x]\ninput = 1\n").unwrap_err();
        assert!(e.message.contains("output"), "{e}");
        let e = parse_config("[prices.x]\ninput = 1\noutput = 1\ncache = 2\n").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
    }

    #[test]
    fn config_errors_name_the_key_and_the_line() {
        let e = parse_config("# r1\n[missions]\nworkers = 0\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("missions.workers"));
        assert_eq!(e.line, Some(3));
        assert!(e.to_string().starts_with("line 3: "), "{e}");

        let e = parse_config("[missions]\nwrokers = 2\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(e.key.as_deref(), Some("missions.wrokers"));
        assert!(e.to_string().contains("line 2, column 1"), "{e}");

        let e = parse_config("[limits]\nmax_subscribers = \"many\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("limits.max_subscribers"));
        assert_eq!(e.line, Some(2));

        let e = parse_config("[engines.x]\nkind = \"nope\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("engines.x"));
        assert_eq!(e.line, Some(1));

        let e = parse_config("[perimeter\n").unwrap_err();
        assert_eq!(e.line, Some(1));
    }
}
