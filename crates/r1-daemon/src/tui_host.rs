//! Headless TUIs: the `r1.tui.*` operations run the `r1 tui` model (`r1-tui`) inside
//! the daemon, so an agent presses the keys and reads the screen a person would.
//!
//! Each instance is a [`r1_tui::Model`] with the session it follows and where it is in
//! that session's journal. Nothing runs in the background: before answering, the host
//! catches the model up by reading the followed session's journal from its next seq
//! and feeding the records as the terminal client feeds its event stream, runs the
//! model's catalog calls in-process through the hub's own [`Api`] with the executor
//! the terminal client uses ([`r1_tui::run_call`]), and feeds their answers back.
//! Instances are bounded (`[limits] max_tui_sessions`) and closed after
//! `[limits] tui_idle_timeout_ms` without a call, checked on every `tui.*` call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use r1_proto::{
    Api, ApiError, ErrorCode, JournalParams, TuiElement, TuiFocusLaneParams, TuiGetModelParams,
    TuiKeyParams, TuiModelView, TuiOpenParams, TuiOpened, TuiPoint, TuiRect, TuiRef, TuiSnapshot,
};
use r1_tui::{Cmd, ColorMode, Config, Key, Model, Msg};
use serde_json::Value;

use crate::hub::Hub;

/// The default screen: wide enough for the three panes, tall enough for a card.
const DEFAULT_SIZE: (u16, u16) = (100, 30);
/// The smallest and largest screens accepted; the model draws down to far smaller,
/// but an agent reading a screen narrower than this reads mostly ellipses.
const WIDTH_RANGE: (u16, u16) = (20, 500);
const HEIGHT_RANGE: (u16, u16) = (6, 200);
/// The most messages one call folds in: a model that kept asking for calls that
/// answer with more calls would otherwise hold the caller for ever.
const MAX_STEPS: usize = 10_000;
/// Journal records read per page while catching up.
const PAGE: u64 = 1000;
/// The most ticks fed at once after a long pause: enough to expire any flash and
/// refresh the list; more would only repeat that.
const MAX_TICKS: u64 = 8;

/// One headless TUI.
struct Instance {
    model: Model,
    /// The session whose records the model follows, and the next seq to read.
    follow: Option<(String, u64)>,
    /// When the model last saw a tick (one a second, as the terminal host sends).
    ticked: Instant,
    /// The model asked to quit (`ctrl+q`, `:q`): the instance is closed.
    quit: bool,
}

/// An instance in the registry, with when it was last called.
struct Slot {
    /// An async lock: a call holds it across the catalog calls it runs, so two calls
    /// on one instance take turns and each sees a whole update.
    inst: Arc<tokio::sync::Mutex<Instance>>,
    last_used: Instant,
}

/// The open headless TUIs.
#[derive(Default)]
pub(crate) struct TuiHost {
    slots: Mutex<HashMap<String, Slot>>,
}

fn registry_error() -> ApiError {
    ApiError::internal("the headless TUI registry is unavailable")
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!(
            "no headless TUI {id}: it was closed, or idle too long; open another with r1_tui_open"
        ),
    )
}

fn budget_exceeded(max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::BudgetExceeded,
        format!(
            "{max} headless TUIs are open ([limits] max_tui_sessions); close one with r1_tui_close, or wait for an idle one to be reaped"
        ),
    )
}

impl TuiHost {
    /// Closes the instances idle longer than `idle`; returns how many.
    fn reap(&self, idle: Duration) -> Result<usize, ApiError> {
        let mut slots = self.slots.lock().map_err(|_| registry_error())?;
        let now = Instant::now();
        let before = slots.len();
        slots.retain(|_, s| now.duration_since(s.last_used) < idle);
        let reaped = before - slots.len();
        if reaped > 0 {
            tracing::info!(reaped, "closed idle headless TUIs");
        }
        Ok(reaped)
    }

    /// The instance `id`, marked used now.
    fn get(&self, id: &str) -> Result<Arc<tokio::sync::Mutex<Instance>>, ApiError> {
        let mut slots = self.slots.lock().map_err(|_| registry_error())?;
        let slot = slots.get_mut(id).ok_or_else(|| not_found(id))?;
        slot.last_used = Instant::now();
        Ok(Arc::clone(&slot.inst))
    }

    fn len(&self) -> Result<usize, ApiError> {
        Ok(self.slots.lock().map_err(|_| registry_error())?.len())
    }

    fn remove(&self, id: &str) -> Result<bool, ApiError> {
        let mut slots = self.slots.lock().map_err(|_| registry_error())?;
        Ok(slots.remove(id).is_some())
    }

    /// Adds `inst` as `id`, unless `max` are open.
    fn insert(&self, id: &str, inst: Instance, max: usize) -> Result<(), ApiError> {
        let mut slots = self.slots.lock().map_err(|_| registry_error())?;
        if slots.len() >= max {
            return Err(budget_exceeded(max));
        }
        slots.insert(
            id.to_string(),
            Slot {
                inst: Arc::new(tokio::sync::Mutex::new(inst)),
                last_used: Instant::now(),
            },
        );
        Ok(())
    }
}

/// The registry's limits now (a reload changes them).
fn limits(hub: &Hub) -> (usize, Duration) {
    let l = &hub.config().limits;
    (
        l.max_tui_sessions,
        Duration::from_millis(l.tui_idle_timeout_ms),
    )
}

/// `tui.open`.
pub(crate) async fn open(hub: &Hub, p: TuiOpenParams) -> Result<TuiOpened, ApiError> {
    let (max, idle) = limits(hub);
    hub.tui().reap(idle)?;
    let width = p.width.unwrap_or(DEFAULT_SIZE.0);
    let height = p.height.unwrap_or(DEFAULT_SIZE.1);
    if !(WIDTH_RANGE.0..=WIDTH_RANGE.1).contains(&width)
        || !(HEIGHT_RANGE.0..=HEIGHT_RANGE.1).contains(&height)
    {
        return Err(ApiError::validation(format!(
            "the screen must be {} to {} columns and {} to {} rows",
            WIDTH_RANGE.0, WIDTH_RANGE.1, HEIGHT_RANGE.0, HEIGHT_RANGE.1
        )));
    }
    if let Some(id) = &p.session_id {
        // A clear `not_found` now rather than a flash on the screen later.
        hub.session_get(r1_proto::SessionRef::new(id.clone()))
            .await?;
    }
    let id = format!(
        "tui_{}",
        crate::fsutil::random_hex(8).map_err(|_| ApiError::internal("no randomness"))?
    );
    let cwd = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    let cfg = Config {
        session: p.session_id,
        workdir: None,
        engine: None,
        cwd,
        // Colours do not reach the text an agent reads.
        color: ColorMode::None,
        width,
        height,
        // Unique per instance, so its sends are told apart from another client's.
        client_tag: id.clone(),
    };
    // Refused before the model does any work; `insert` checks again under the lock.
    if hub.tui().len()? >= max {
        return Err(budget_exceeded(max));
    }
    let (model, cmds) = r1_tui::init(cfg);
    let mut inst = Instance {
        model,
        follow: None,
        ticked: Instant::now(),
        quit: false,
    };
    step(hub, &mut inst, cmds).await;
    hub.tui().insert(&id, inst, max)?;
    Ok(TuiOpened {
        tui_session_id: id,
        width,
        height,
        idle_timeout_s: idle.as_secs(),
    })
}

/// `tui.close`.
pub(crate) fn close(hub: &Hub, p: TuiRef) -> Result<r1_proto::Ack, ApiError> {
    hub.tui().remove(&p.tui_session_id)?;
    Ok(r1_proto::Ack::OK)
}

/// Runs `f` on instance `id`, caught up before and after, and answers with its screen.
async fn with_instance<F>(hub: &Hub, id: &str, f: F) -> Result<TuiSnapshot, ApiError>
where
    F: FnOnce(&mut Model) -> Result<Vec<Cmd>, ApiError>,
{
    let (_, idle) = limits(hub);
    hub.tui().reap(idle)?;
    let inst = hub.tui().get(id)?;
    let mut inst = inst.lock().await;
    catch_up(hub, &mut inst).await;
    let cmds = f(&mut inst.model)?;
    step(hub, &mut inst, cmds).await;
    catch_up(hub, &mut inst).await;
    let snap = snapshot(id, &inst.model);
    if inst.quit {
        hub.tui().remove(id)?;
    }
    Ok(snap)
}

/// `tui.press_key`.
pub(crate) async fn press_key(hub: &Hub, p: TuiKeyParams) -> Result<TuiSnapshot, ApiError> {
    let key = Key::parse(&p.key).ok_or_else(|| {
        ApiError::validation(format!(
            "`{}` is not a key name: use a character (`a`, `/`, `space`), a named key (`enter`, `esc`, `tab`, `backspace`, `up`, `f1`…) or modifiers joined with `+` (`ctrl+c`, `shift+tab`)",
            p.key
        ))
    })?;
    with_instance(hub, &p.tui_session_id, |m| {
        Ok(r1_tui::update(m, Msg::Key(key)))
    })
    .await
}

/// `tui.snapshot`.
pub(crate) async fn read(hub: &Hub, p: TuiRef) -> Result<TuiSnapshot, ApiError> {
    with_instance(hub, &p.tui_session_id, |_| Ok(Vec::new())).await
}

/// `tui.focus_lane`.
pub(crate) async fn focus_lane(hub: &Hub, p: TuiFocusLaneParams) -> Result<TuiSnapshot, ApiError> {
    let lane = p.lane_id;
    with_instance(hub, &p.tui_session_id, move |m| {
        let known = m
            .transcript()
            .is_some_and(|t| t.lanes.iter().any(|l| l.id == lane));
        if !known {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("the shown session has no lane {lane}"),
            ));
        }
        Ok(r1_tui::update(m, Msg::FocusLane(lane)))
    })
    .await
}

/// `tui.get_model`.
pub(crate) async fn get_model(hub: &Hub, p: TuiGetModelParams) -> Result<TuiModelView, ApiError> {
    let (_, idle) = limits(hub);
    hub.tui().reap(idle)?;
    let inst = hub.tui().get(&p.tui_session_id)?;
    let mut inst = inst.lock().await;
    catch_up(hub, &mut inst).await;
    let whole = serde_json::to_value(&inst.model)
        .map_err(|_| ApiError::internal("could not encode the model"))?;
    let path = p.jsonpath.unwrap_or_else(|| "$".into());
    let value = select(&whole, &path)?.clone();
    Ok(TuiModelView {
        jsonpath: path,
        value,
    })
}

/// The value at `path` in `v`: `$` or empty for `v`, else keys and array indexes
/// joined by `.`, with an optional leading `$.`.
fn select<'a>(v: &'a Value, path: &str) -> Result<&'a Value, ApiError> {
    let rest = path.trim();
    let rest = rest.strip_prefix('$').unwrap_or(rest);
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(v);
    }
    let mut at = v;
    for seg in rest.split('.') {
        let next = match at {
            Value::Object(o) => o.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        at = next.ok_or_else(|| {
            ApiError::validation(format!(
                "`{path}` leads nowhere in the model: no `{seg}` there (paths are `$` or keys and indexes joined by `.`, e.g. `$.input.text`)"
            ))
        })?;
    }
    Ok(at)
}

/// Runs `cmds` and every command their answers lead to, feeding each answer to the
/// model.
async fn step(hub: &Hub, inst: &mut Instance, cmds: Vec<Cmd>) {
    let mut queue: VecDeque<Cmd> = cmds.into();
    let mut steps = 0;
    while let Some(cmd) = queue.pop_front() {
        steps += 1;
        if steps > MAX_STEPS {
            tracing::warn!("a headless TUI asked for more than {MAX_STEPS} commands in one call");
            break;
        }
        let msg = match cmd {
            Cmd::Call(call) => r1_tui::run_call(hub, call).await,
            Cmd::Follow {
                session_id,
                since_seq,
            } => {
                inst.follow = Some((session_id, since_seq));
                None
            }
            Cmd::Complete { input, cwd } => {
                let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
                let candidates = tokio::task::spawn_blocking(move || {
                    let c = r1_tui::complete_path(&input, &cwd, home.as_deref());
                    (input, c)
                })
                .await;
                candidates
                    .ok()
                    .map(|(input, candidates)| Msg::Completions { input, candidates })
            }
            Cmd::Quit => {
                inst.quit = true;
                None
            }
        };
        if let Some(msg) = msg {
            queue.extend(r1_tui::update(&mut inst.model, msg));
        }
    }
}

/// Brings the model up to date: the ticks it missed, then the followed session's
/// journal from where it stopped, and whatever those lead to.
async fn catch_up(hub: &Hub, inst: &mut Instance) {
    let ticks = (inst.ticked.elapsed().as_secs()).min(MAX_TICKS);
    if ticks > 0 {
        inst.ticked = Instant::now();
        for _ in 0..ticks {
            let cmds = r1_tui::update(&mut inst.model, Msg::Tick);
            step(hub, inst, cmds).await;
        }
    }
    let mut pages = 0;
    while let Some((sid, next)) = inst.follow.clone() {
        pages += 1;
        if pages > MAX_STEPS {
            break;
        }
        let page = hub
            .session_journal(JournalParams {
                session_id: sid.clone(),
                since_seq: Some(next),
                limit: Some(PAGE),
            })
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                inst.follow = None;
                let cmds = r1_tui::update(
                    &mut inst.model,
                    Msg::Failed {
                        method: "session.journal",
                        message: e.message,
                    },
                );
                step(hub, inst, cmds).await;
                break;
            }
        };
        if page.records.is_empty() {
            break;
        }
        inst.follow = Some((sid.clone(), page.next_seq.max(next + 1)));
        for record in page.records {
            let cmds = r1_tui::update(
                &mut inst.model,
                Msg::Record {
                    session_id: sid.clone(),
                    record,
                },
            );
            step(hub, inst, cmds).await;
        }
        // The next turn reads on, from the session a command may have switched to.
    }
}

/// The model's screen as the wire shape.
fn snapshot(id: &str, m: &Model) -> TuiSnapshot {
    let s = r1_tui::snapshot(m);
    TuiSnapshot {
        tui_session_id: id.to_string(),
        width: m.width,
        height: m.height,
        lines: s.lines,
        cursor: s.cursor.map(|(column, row)| TuiPoint { column, row }),
        elements: s
            .elements
            .into_iter()
            .map(|e| TuiElement {
                id: e.id,
                label: e.label,
                method: e.method.map(str::to_string),
                key: e.key.map(str::to_string),
                rect: e.rect.map(|r| TuiRect {
                    x: r.x,
                    y: r.y,
                    width: r.width,
                    height: r.height,
                }),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn paths_select_keys_and_indexes() {
        let v = serde_json::json!({"a": {"b": [10, {"c": "x"}]}, "focus": "input"});
        assert_eq!(select(&v, "$").unwrap(), &v);
        assert_eq!(select(&v, "").unwrap(), &v);
        assert_eq!(select(&v, "$.focus").unwrap(), "input");
        assert_eq!(select(&v, "focus").unwrap(), "input");
        assert_eq!(select(&v, "$.a.b.0").unwrap(), 10);
        assert_eq!(select(&v, "$.a.b.1.c").unwrap(), "x");
        for bad in ["$.nope", "$.a.b.2", "$.a.b.x", "$.focus.deeper", "$..a"] {
            let e = select(&v, bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::Validation, "{bad}");
        }
    }
}
