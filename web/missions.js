// The missions board: every mission in a column by state (queued, running or
// verifying, paused, finished), a form that queues a new one, and Cancel / Resume.
//
// Live: each `mission.*` event of the daemon bus refetches that mission
// (`mission.get`) and moves its card; nothing is polled and nothing reloads the page.

import { $, el, errorText, fmtTime } from "./dom.js";

const WORKDIR_KEY = "r1.lastWorkdir";

const COLUMNS = [
  { key: "queued", states: ["queued"] },
  { key: "running", states: ["running", "verifying"] },
  { key: "paused", states: ["paused"] },
  { key: "finished", states: ["succeeded", "failed", "cancelled"] },
];

const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const CANCELLABLE = new Set(["queued", "running", "verifying", "paused"]);
/** Failures shown per verify step on a card; the session's lane has the rest. */
const FAILURES_SHOWN = 3;

const board = {
  call: null,
  openSession: null,
  missions: new Map(), // id -> MissionView
  cards: new Map(), // id -> card parts
  loaded: false,
  fetches: new Map(), // id -> number of the newest mission.get, so older answers are dropped
};

/** Wires the board; `call(method, params)` is the UI's RPC, `openSession(id)` opens a
 * session's view. */
export function init({ call, openSession }) {
  board.call = call;
  board.openSession = openSession;
  $("mission-form").addEventListener("submit", submit);
  $("mission-new").addEventListener("toggle", () => {
    if ($("mission-new").open) $("mission-prompt").focus();
  });
}

/** The board is shown: (re)load every mission. */
export async function show() {
  const wd = $("mission-workdir");
  if (!wd.value) wd.value = localStorage.getItem(WORKDIR_KEY) || "";
  await load();
  // An empty board has nothing to show but the form.
  if (board.loaded && board.missions.size === 0) $("mission-new").open = true;
}

/** The connection came back: what happened meanwhile is in the list. */
export function reconnect() {
  if (board.loaded) load();
}

/** A daemon bus record; `mission.*` ones refresh their mission's card. */
export function onBus(rec) {
  if (!board.loaded || !rec || typeof rec.kind !== "string" || !rec.kind.startsWith("mission.")) return;
  const d = rec.data || {};
  if (d.mission_id) refetch(d.mission_id, rec.kind);
}

async function load() {
  try {
    const { missions } = await board.call("mission.list", {});
    board.loaded = true;
    const keep = new Set();
    for (const m of missions || []) {
      keep.add(m.id);
      upsert(m);
    }
    for (const id of Array.from(board.missions.keys())) {
      if (!keep.has(id)) remove(id);
    }
    $("missions-error").hidden = true;
  } catch (e) {
    $("missions-error").hidden = false;
    $("missions-error").textContent = "Could not list the missions: " + errorText(e);
  }
  renderCounts();
}

async function refetch(id, kind) {
  const n = (board.fetches.get(id) || 0) + 1;
  board.fetches.set(id, n);
  try {
    const m = await board.call("mission.get", { mission_id: id });
    if (board.fetches.get(id) !== n) return;
    upsert(m);
    renderCounts();
    // Each of these events comes once per move, so each is announced once.
    if (kind === "mission.finished" || kind === "mission.paused") {
      announce(`Mission “${m.title}” ${m.state}${m.reason ? `: ${m.reason}` : ""}.`);
    }
  } catch {
    // The next event, or the next load, brings it.
  }
}

function announce(text, kind = "") {
  const s = $("missions-status");
  s.textContent = text;
  s.dataset.kind = kind;
}

function columnOf(state) {
  return (COLUMNS.find((c) => c.states.includes(state)) || COLUMNS[0]).key;
}

/** Oldest first while waiting or working (the order they run in); newest first once finished. */
function before(a, b) {
  if (FINAL.has(a.state)) {
    const ta = a.timings.finished_at || a.timings.created_at;
    const tb = b.timings.finished_at || b.timings.created_at;
    return ta > tb || (ta === tb && a.id > b.id);
  }
  return a.timings.created_at < b.timings.created_at || (a.timings.created_at === b.timings.created_at && a.id < b.id);
}

function upsert(m) {
  const old = board.missions.get(m.id);
  // Answers can arrive out of order (a refetch started before a cancel may land after
  // it); a final state is never replaced by an older, unfinished one.
  if (old && FINAL.has(old.state) && !FINAL.has(m.state)) return;
  // A list entry has no log tail: keep the one a get brought.
  if (old && (!m.log_tail || !m.log_tail.length) && old.log_tail) m = { ...m, log_tail: old.log_tail };
  board.missions.set(m.id, m);
  let c = board.cards.get(m.id);
  if (!c) {
    c = card(m);
    board.cards.set(m.id, c);
  }
  fill(c, m);
  place(c, m);
}

function remove(id) {
  const c = board.cards.get(id);
  if (c) c.li.remove();
  board.cards.delete(id);
  board.missions.delete(id);
}

function place(c, m) {
  const list = $("mcol-" + columnOf(m.state));
  const hadFocus = c.li.contains(document.activeElement) ? document.activeElement : null;
  let next = null;
  for (const li of list.children) {
    if (li === c.li) continue;
    const other = board.missions.get(li.dataset.missionId);
    if (other && before(m, other)) {
      next = li;
      break;
    }
  }
  if (c.li.parentElement !== list || c.li.nextElementSibling !== next) list.insertBefore(c.li, next);
  // Moving a node drops its focus; hidden buttons cannot keep it either.
  if (hadFocus && document.activeElement !== hadFocus) {
    (hadFocus.isConnected && !hadFocus.hidden && !hadFocus.disabled ? hadFocus : c.title).focus();
  }
}

function renderCounts() {
  for (const col of COLUMNS) {
    const n = $("mcol-" + col.key).children.length;
    $("mcount-" + col.key).textContent = String(n);
    $("mempty-" + col.key).hidden = n > 0;
  }
  $("missions-empty").hidden = board.missions.size > 0;
}

function card(m) {
  const titleId = "mission-" + m.id.replace(/[^A-Za-z0-9_-]/g, "");
  const c = {};
  c.title = el("h4", { id: titleId, class: "mission-title", tabindex: "-1", "data-testid": "mission-title", "data-api": "mission.get" });
  c.badge = el("span", { class: "badge", "data-testid": "mission-state" });
  c.meta = el("p", { class: "mission-meta", "data-testid": "mission-meta" });
  c.prompt = el("p", { class: "mission-prompt", "data-testid": "mission-prompt" });
  c.verify = el("ul", { class: "mission-verify", "data-testid": "mission-verify", "aria-label": "Checks" });
  c.reason = el("p", { class: "mission-reason", "data-testid": "mission-reason" });
  c.logPre = el("pre", { class: "mission-log-text", "data-testid": "mission-log" });
  c.log = el(
    "details",
    { class: "mission-log" },
    el("summary", { "data-testid": "mission-log-toggle", "data-api": "mission.get", text: "Session log (last lines)" }),
    c.logPre,
  );
  c.log.addEventListener("toggle", () => {
    if (c.log.open) refetch(m.id, "");
  });
  c.open = el("button", {
    type: "button",
    class: "btn btn-small",
    "data-testid": "mission-open-session",
    "data-api": "session.get",
    "aria-describedby": titleId,
    text: "Open session",
  });
  c.cancel = el("button", {
    type: "button",
    class: "btn btn-small btn-danger",
    "data-testid": "mission-cancel",
    "data-api": "mission.cancel",
    "aria-describedby": titleId,
    text: "Cancel",
  });
  c.resume = el("button", {
    type: "button",
    class: "btn btn-small",
    "data-testid": "mission-resume",
    "data-api": "mission.resume",
    "aria-describedby": titleId,
    text: "Resume",
  });
  c.open.addEventListener("click", () => {
    const cur = board.missions.get(m.id);
    if (cur && cur.session_id) board.openSession(cur.session_id);
  });
  c.cancel.addEventListener("click", () => action(m.id, "mission.cancel", c.cancel, "cancel"));
  c.resume.addEventListener("click", () => action(m.id, "mission.resume", c.resume, "resume"));
  c.article = el(
    "article",
    { class: "mission", "data-testid": "mission-card", "aria-labelledby": titleId },
    el("div", { class: "mission-head" }, c.title, c.badge),
    c.meta,
    c.prompt,
    c.verify,
    c.reason,
    c.log,
    el("div", { class: "mission-actions" }, c.open, c.resume, c.cancel),
  );
  c.li = el("li", { dataset: { missionId: m.id } }, c.article);
  return c;
}

function fill(c, m) {
  c.article.dataset.missionId = m.id;
  c.article.dataset.state = m.state;
  c.title.textContent = m.title || m.id;
  c.badge.dataset.state = m.state;
  c.badge.textContent = m.state;
  const t = m.timings || {};
  c.meta.replaceChildren(
    m.id,
    " · queued ",
    el("time", { datetime: t.created_at, text: fmtTime(t.created_at) }),
    ...(t.finished_at ? [" · finished ", el("time", { datetime: t.finished_at, text: fmtTime(t.finished_at) })] : []),
    m.tokens_used ? ` · ${m.tokens_used} tokens` : "",
  );
  const prompt = (m.spec && m.spec.prompt) || "";
  c.prompt.textContent = prompt.length > 200 ? prompt.slice(0, 197) + "…" : prompt;
  c.prompt.hidden = !prompt || prompt === m.title;

  const steps = (m.spec && m.spec.verify) || [];
  const results = m.verify || [];
  c.verify.replaceChildren(
    ...results.map((r) => verifyItem(r)),
    // Steps asked for that have not run (yet, or ever: the turn failed first).
    ...steps.slice(results.length).map((s) =>
      el(
        "li",
        { class: "verify-item", "data-testid": "verify-item", dataset: { step: s, ok: "pending" } },
        el("span", { class: "verify-step", text: s }),
        " ",
        el("span", { class: "verify-result", text: FINAL.has(m.state) ? "not run" : "pending" }),
      ),
    ),
  );
  c.verify.hidden = c.verify.children.length === 0;
  c.reason.textContent = m.reason ? "Reason: " + m.reason : "";
  c.reason.hidden = !m.reason;
  const tail = m.log_tail || [];
  c.logPre.textContent = tail.join("\n");
  c.log.hidden = tail.length === 0;

  c.open.hidden = !m.session_id;
  setHidden(c, c.cancel, !CANCELLABLE.has(m.state));
  setHidden(c, c.resume, m.state !== "paused");
}

/** Hides a button; if it had the focus, the card's title takes it. */
function setHidden(c, b, hide) {
  if (hide && document.activeElement === b) {
    b.hidden = true;
    c.title.focus();
  } else {
    b.hidden = hide;
  }
}

function verifyItem(r) {
  const failures = r.failures || [];
  return el(
    "li",
    { class: "verify-item", "data-testid": "verify-item", dataset: { step: r.step, ok: r.ok ? "true" : "false" } },
    el("span", { class: "verify-step", text: r.step }),
    " ",
    el("span", { class: "verify-result", text: r.ok ? "passed" : "failed" }),
    r.summary ? el("span", { class: "verify-summary", text: ": " + r.summary }) : null,
    failures.length
      ? el(
          "ul",
          { class: "verify-failures", "aria-label": `${r.step} failures` },
          ...failures.slice(0, FAILURES_SHOWN).map((f) => el("li", { "data-testid": "verify-failure", text: failureText(f) })),
          failures.length > FAILURES_SHOWN ? el("li", { class: "muted", text: `and ${failures.length - FAILURES_SHOWN} more` }) : null,
        )
      : null,
  );
}

function failureText(f) {
  const where = f.file ? f.file + (f.line ? ":" + f.line : "") : "";
  const head = [f.test, where].filter(Boolean).join(" at ");
  return (head ? head + ": " : "") + (f.message || "");
}

async function action(id, method, btn, verb) {
  btn.disabled = true;
  const m = board.missions.get(id);
  try {
    const v = await board.call(method, { mission_id: id });
    upsert(v);
    renderCounts();
    announce(`Mission “${v.title}”: ${verb === "cancel" ? "cancel requested" : "resumed"}, now ${v.state}.`, "ok");
  } catch (e) {
    announce(`Could not ${verb} mission “${(m && m.title) || id}”: ${errorText(e)}`, "error");
  } finally {
    btn.disabled = false;
  }
}

async function submit(ev) {
  ev.preventDefault();
  const err = $("mission-form-error");
  err.hidden = true;
  const fail = (text, focusId) => {
    err.hidden = false;
    err.textContent = text;
    if (focusId) $(focusId).focus();
  };
  const prompt = $("mission-prompt").value;
  const workdir = $("mission-workdir").value.trim();
  if (!prompt.trim()) return fail("Write what the mission should do.", "mission-prompt");
  if (!workdir.startsWith("/")) return fail("The working directory must be an absolute path (starting with /).", "mission-workdir");
  const spec = { prompt, workdir };
  const title = $("mission-title-input").value.trim();
  if (title) spec.title = title;
  const verify = ["build", "test", "lint"].filter((s) => $("mission-verify-" + s).checked);
  if (verify.length) spec.verify = verify;
  if (!$("mission-worktree").checked) spec.worktree = false;
  const submitBtn = $("mission-submit");
  submitBtn.disabled = true;
  try {
    const m = await board.call("mission.create", { spec });
    localStorage.setItem(WORKDIR_KEY, workdir);
    $("mission-prompt").value = "";
    $("mission-title-input").value = "";
    // The bus's mission.queued may have brought it (and newer news) already.
    if (board.loaded && !board.missions.has(m.id)) {
      upsert(m);
      renderCounts();
    }
    announce(`Queued mission “${m.title}”.`, "ok");
  } catch (e) {
    fail("Could not queue the mission: " + errorText(e));
  } finally {
    submitBtn.disabled = false;
  }
}
