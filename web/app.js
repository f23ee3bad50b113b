// r1 web UI: no framework, no build. The transport (one WebSocket per tab, JSON-RPC 2.0
// on /v1/ws, and the login) is web/rpc.js.
//
// Every interactive element carries data-testid and data-api="<operation>"; the
// browser suite (web/tests) walks the DOM of every view and checks them against
// r1_proto::OPERATIONS.

import { setMarkdown } from "./markdown.js";
import { $, el, basename, errorText, fmtTime } from "./dom.js";
import { Connection, obtainToken, forgetToken, newId } from "./rpc.js";
import * as worktrees from "./worktrees.js";
import * as missions from "./missions.js";
import * as search from "./search.js";

const OPEN_KEY = "r1.open";
const WORKDIR_KEY = "r1.lastWorkdir";

const STATE_LABELS = {
  idle: "idle",
  busy: "busy",
  waiting_on_approval: "waiting for approval",
  paused: "paused",
  ended: "ended",
  error: "error",
};

function showLogin(message) {
  setView("login");
  $("app").hidden = true;
  $("view-login").hidden = false;
  const err = $("login-error");
  err.hidden = !message;
  err.textContent = message || "";
  setBanner("idle", "Not signed in");
}

// ---------------------------------------------------------------------------
// App state

const app = {
  conn: null,
  sessions: new Map(), // id -> SessionView (+ updated_at)
  chat: null, // the open session's render state
  engines: null,
  view: "loading",
};

function setView(view) {
  app.view = view;
  document.body.dataset.view = view;
  if (view === "login") return;
  $("view-empty").hidden = view !== "list";
  $("view-start").hidden = view !== "start";
  $("view-chat").hidden = view !== "chat";
  $("view-missions").hidden = view !== "missions";
  $("open-missions").setAttribute("aria-current", view === "missions" ? "page" : "false");
}

function setBanner(state, detail) {
  const box = $("conn");
  box.dataset.state = state;
  const text = {
    idle: detail || "",
    connecting: "Connecting…",
    connected: "Connected",
    reconnecting: "Reconnecting…" + (detail ? ` (${detail})` : ""),
    offline: "Offline: the daemon is not reachable" + (detail ? ` (${detail})` : ""),
  }[state];
  $("conn-text").textContent = text ?? state;
  const retry = $("conn-retry");
  retry.hidden = !(state === "reconnecting" || state === "offline");
  retry.textContent = state === "offline" ? "Retry" : "Retry now";
}

// ---------------------------------------------------------------------------
// Session list

function upsertSession(view, updatedAt) {
  if (!view || !view.id) return;
  const old = app.sessions.get(view.id) || {};
  const merged = { ...old, ...view };
  // A view read before records this page has already counted keeps the newer usage.
  if (old.usage && view.usage && (view.last_seq || 0) < (old.last_seq || 0)) {
    merged.usage = old.usage;
    merged.last_seq = old.last_seq;
  }
  if (updatedAt && (!merged.updated_at || updatedAt > merged.updated_at)) merged.updated_at = updatedAt;
  app.sessions.set(view.id, merged);
  renderListItem(merged);
  if (app.chat && app.chat.id === view.id) renderChatHead();
}

function patchSession(id, patch, updatedAt) {
  const old = app.sessions.get(id);
  if (!old) return;
  upsertSession({ ...old, ...patch }, updatedAt);
}

/** Adds one model call's usage (record `seq`) to the session's totals, unless the
 * session's view already counts it (its `last_seq` is at or past the record). */
function countUsage(id, seq, u) {
  const s = app.sessions.get(id);
  if (!s || !s.usage || !u || seq <= (s.last_seq || 0)) return;
  const t = s.usage;
  const usage = {
    input_tokens: t.input_tokens + (u.input_tokens || 0),
    output_tokens: t.output_tokens + (u.output_tokens || 0),
    cached_input_tokens: t.cached_input_tokens + (u.cached_input_tokens || 0),
    model_calls: t.model_calls + 1,
  };
  if (typeof u.cost_usd === "number") usage.cost_usd = (t.cost_usd || 0) + u.cost_usd;
  else if (typeof t.cost_usd === "number") usage.cost_usd = t.cost_usd;
  patchSession(id, { usage, last_seq: seq });
}

/** A session's usage for people: "Tokens: 1,234 in (200 cached) · 567 out · $0.0123". */
function usageText(u) {
  if (!u.model_calls) return "Tokens: none yet";
  const n = (x) => (x || 0).toLocaleString("en-US");
  let text = `Tokens: ${n(u.input_tokens)} in`;
  if (u.cached_input_tokens) text += ` (${n(u.cached_input_tokens)} cached)`;
  text += ` · ${n(u.output_tokens)} out`;
  if (typeof u.cost_usd === "number") text += ` · $${u.cost_usd.toFixed(4)}`;
  return text;
}

function sortedIds() {
  return Array.from(app.sessions.values())
    .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : a.id < b.id ? 1 : -1))
    .map((s) => s.id);
}

function renderListItem(s) {
  const list = $("session-list");
  let li = list.querySelector(`li[data-session-id="${CSS.escape(s.id)}"]`);
  if (!li) {
    const btn = el(
      "button",
      {
        type: "button",
        class: "session-item",
        "data-testid": "session-item",
        "data-api": "session.get",
        dataset: { sessionId: s.id },
        onclick: () => openSession(s.id, { focus: true }),
      },
      el("span", { class: "session-row" }, el("span", { class: "session-name" }), el("span", { class: "badge", "data-testid": "session-state" })),
      el("span", { class: "session-workdir" }),
      el("span", { class: "session-times" }),
    );
    li = el("li", { dataset: { sessionId: s.id } }, btn);
    // keep newest first
    const ids = sortedIds();
    const idx = ids.indexOf(s.id);
    const next = ids.slice(idx + 1).map((id) => list.querySelector(`li[data-session-id="${CSS.escape(id)}"]`)).find(Boolean);
    list.insertBefore(li, next || null);
  }
  const btn = li.firstElementChild;
  btn.querySelector(".session-name").textContent = s.title || basename(s.workdir) || s.id;
  const badge = btn.querySelector(".badge");
  badge.dataset.state = s.state;
  badge.textContent = STATE_LABELS[s.state] || s.state;
  btn.querySelector(".session-workdir").textContent = s.workdir;
  const times = btn.querySelector(".session-times");
  times.replaceChildren(
    s.engine + (s.model ? ` (${s.model})` : "") + " · created ",
    el("time", { datetime: s.created_at, text: fmtTime(s.created_at) }),
    ...(s.updated_at ? [" · updated ", el("time", { datetime: s.updated_at, text: fmtTime(s.updated_at) })] : []),
  );
  btn.setAttribute("aria-current", app.chat && app.chat.id === s.id ? "true" : "false");
  $("list-empty").hidden = app.sessions.size > 0;
  updateResumeAll();
}

// "Resume all" is offered only while some session is paused (after a daemon restart,
// every live session is).
function updateResumeAll() {
  const any = Array.from(app.sessions.values()).some((s) => s.state === "paused");
  const b = $("resume-all");
  if (b.hidden === any) b.hidden = !any;
}

async function resumeAll() {
  const b = $("resume-all");
  const err = $("list-error");
  err.hidden = true;
  b.disabled = true;
  try {
    const r = await app.conn.call("session.resume_all", {});
    for (const v of r.resumed || []) upsertSession(v);
    const failed = r.failed || [];
    if (failed.length) {
      err.hidden = false;
      err.textContent =
        `Could not resume ${failed.length} session${failed.length === 1 ? "" : "s"}: ` +
        failed.map((f) => `${f.id} (${f.error_message})`).join("; ");
    }
  } catch (e) {
    err.hidden = false;
    err.textContent = "Could not resume the paused sessions: " + errorText(e);
  } finally {
    b.disabled = false;
    updateResumeAll();
  }
}

function renderList() {
  const list = $("session-list");
  const keep = new Set(app.sessions.keys());
  for (const li of Array.from(list.children)) {
    if (!keep.has(li.dataset.sessionId)) li.remove();
  }
  for (const id of sortedIds()) renderListItem(app.sessions.get(id));
  $("list-empty").hidden = app.sessions.size > 0;
  updateResumeAll();
}

function markCurrent() {
  for (const b of $("session-list").querySelectorAll(".session-item")) {
    b.setAttribute("aria-current", app.chat && app.chat.id === b.dataset.sessionId ? "true" : "false");
  }
}

async function loadList() {
  const { sessions } = await app.conn.call("session.list", {});
  const fresh = new Map();
  for (const s of sessions) {
    const old = app.sessions.get(s.id);
    fresh.set(s.id, { ...(old || {}), ...s });
  }
  app.sessions = fresh;
  renderList();
  // The last activity of each session, from its last journal record.
  for (const s of sessions.slice(-50)) {
    if (app.sessions.get(s.id)?.updated_at || !s.last_seq) continue;
    app.conn
      .call("session.journal", { session_id: s.id, since_seq: Math.max(1, s.last_seq), limit: 1 })
      .then((page) => {
        const r = page && page.records && page.records[0];
        if (r && r.at) patchSession(s.id, {}, r.at);
      })
      .catch(() => {});
  }
}

function onBusRecord(rec) {
  const d = rec.data || {};
  const id = d.session_id;
  switch (rec.kind) {
    case "session.created":
      if (id) app.conn.call("session.get", { session_id: id }).then((v) => upsertSession(v, rec.at), () => {});
      break;
    case "session.state":
      if (id && app.sessions.has(id)) patchSession(id, { state: d.state }, rec.at);
      else if (id) app.conn.call("session.get", { session_id: id }).then((v) => upsertSession(v, rec.at), () => {});
      break;
    case "session.ended":
      if (id) patchSession(id, { state: "ended" }, rec.at);
      break;
    case "daemon.reloaded":
    case "daemon.started":
      loadList().catch(() => {});
      break;
    default:
      missions.onBus(rec);
      break;
  }
}

// ---------------------------------------------------------------------------
// Chat

function newChat(id) {
  return {
    id,
    lastSeq: 0,
    subscription: null,
    stream: null, // {el, body, text}
    lanes: new Map(), // lane id (or call id of an external tool) -> lane parts
    approvals: new Map(),
    pending: null, // {text, cmid} of a send that may have to be retried
    sending: false,
    renderQueued: false,
  };
}

async function openSession(id, { focus = false, replace = false } = {}) {
  if (app.chat && app.chat.id === id && !replace) {
    setView("chat");
    renderChatHead();
    if (focus) $("composer-input").focus();
    return;
  }
  closeChat();
  const chat = newChat(id);
  app.chat = chat;
  sessionStorage.setItem(OPEN_KEY, id);
  $("log").replaceChildren();
  $("composer-error").hidden = true;
  $("composer-input").value = "";
  autosize();
  setView("chat");
  markCurrent();
  renderChatHead();
  if (focus) $("composer-input").focus();
  try {
    const v = await app.conn.call("session.get", { session_id: id });
    if (app.chat !== chat) return;
    upsertSession(v);
    await subscribeChat(chat);
    worktrees.open(id);
  } catch (e) {
    if (app.chat === chat) showNotice("Could not open the session: " + errorText(e));
  }
}

function closeChat() {
  const chat = app.chat;
  if (!chat) return;
  if (chat.subscription) app.conn.call("unsubscribe", { subscription: chat.subscription }).catch(() => {});
  app.chat = null;
  sessionStorage.removeItem(OPEN_KEY);
  worktrees.close();
  markCurrent();
}

async function subscribeChat(chat) {
  chat.subscription = null;
  const r = await app.conn.call("subscribe", { session_id: chat.id, since_seq: chat.lastSeq + 1 });
  if (app.chat !== chat) {
    app.conn.call("unsubscribe", { subscription: r.subscription }).catch(() => {});
    return;
  }
  chat.subscription = r.subscription;
}

/** The notice under the chat's toolbar: "auto" ones follow the session's state, others
 * (errors) stay until the next action. */
function showNotice(text, kind = "error") {
  const n = $("chat-notice");
  n.hidden = !text;
  n.textContent = text || "";
  n.dataset.kind = text ? kind : "";
}

function renderChatHead() {
  const chat = app.chat;
  if (!chat) return;
  const s = app.sessions.get(chat.id) || { id: chat.id, state: "", workdir: "", engine: "" };
  $("view-chat").dataset.sessionId = chat.id;
  $("chat-title").textContent = s.title || basename(s.workdir) || chat.id;
  const badge = $("chat-state");
  badge.dataset.state = s.state || "";
  badge.textContent = STATE_LABELS[s.state] || s.state || "…";
  $("chat-meta").textContent = [s.engine + (s.model ? ` (${s.model})` : ""), s.workdir, chat.id].filter(Boolean).join(" · ");
  const usage = $("chat-usage");
  usage.hidden = !s.usage;
  usage.textContent = s.usage ? usageText(s.usage) : "";
  const st = s.state;
  const can = {
    "act-cancel": st === "busy" || st === "waiting_on_approval",
    "act-pause": st === "idle" || st === "busy" || st === "waiting_on_approval",
    "act-resume": st === "paused",
    "act-end": !!st && st !== "ended",
  };
  const focused = document.activeElement;
  let lostFocus = false;
  for (const [id, ok] of Object.entries(can)) {
    const b = $(id);
    if (b.dataset.busy === "1") continue;
    if (!ok && focused === b) lostFocus = true;
    b.disabled = !ok;
  }
  const sendable = st === "idle" || st === "busy" || st === "waiting_on_approval";
  $("composer-send").disabled = !sendable || chat.sending;
  const input = $("composer-input");
  input.setAttribute("aria-disabled", sendable ? "false" : "true");
  input.readOnly = !sendable;
  input.placeholder = sendable
    ? "Message — Enter to send, Shift+Enter for a new line"
    : st === "paused"
      ? "Paused — press Resume to continue"
      : st === "ended"
        ? "This session has ended"
        : st === "error"
          ? "This session is in error and read-only"
          : "Loading…";
  if (lostFocus) focusNextAction();
  const auto =
    s.state === "paused" && s.reattachable
      ? "The daemon restarted while this session was live, so it is paused. Press Resume to continue."
      : s.state === "error" && s.error
        ? "Error: " + s.error
        : "";
  if (auto) showNotice(auto, "auto");
  else if ($("chat-notice").dataset.kind === "auto") showNotice("");
}

function focusNextAction() {
  const next = ["act-resume", "act-pause", "act-end"].map($).find((b) => !b.disabled);
  (next || $("composer-input")).focus();
}

/** Keeps the log pinned to the bottom if it was there before a change. */
function withScroll(fn) {
  const log = $("log");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  const r = fn();
  if (atBottom) log.scrollTop = log.scrollHeight;
  return r;
}

function appendToLog(node) {
  withScroll(() => $("log").append(node));
}

function addNote(text, kind = "") {
  appendToLog(el("p", { class: "note" + (kind ? " note-" + kind : ""), "data-testid": "note", text }));
}

// A note on the session's cortex board: who wrote it and its text; a critical one
// (shown to the agent at its next turn) is marked in words and in colour.
function addCortexNote(d) {
  const label = (d.critical ? "Critical note from " : "Note from ") + (d.source === "client" ? "a client" : `lobe ${d.source}`);
  const tags = (d.tags || []).length ? ` (${d.tags.join(", ")})` : "";
  appendToLog(
    el(
      "aside",
      {
        class: "cortex-note" + (d.critical ? " cortex-critical" : ""),
        "data-testid": "cortex-note",
        "data-critical": d.critical ? "true" : "false",
        "aria-label": label,
      },
      el("span", { class: "cortex-source", text: label + tags }),
      el("p", { class: "cortex-text", text: d.text }),
    ),
  );
}

function messageEl(role, seq) {
  const body = el("div", { class: "msg-body" });
  const m = el(
    "article",
    {
      class: "msg msg-" + role,
      "data-testid": "message",
      "data-role": role,
      "data-seq": seq,
      "aria-label": role === "user" ? "You" : "Assistant",
    },
    el("span", { class: "msg-role", "aria-hidden": "true", text: role === "user" ? "You" : "Assistant" }),
    body,
  );
  return { el: m, body };
}

function scheduleStreamRender(chat) {
  if (chat.renderQueued) return;
  chat.renderQueued = true;
  requestAnimationFrame(() => {
    chat.renderQueued = false;
    if (chat.stream) withScroll(() => setMarkdown(chat.stream.body, chat.stream.text));
  });
}

function finishStream(chat, finalText, seq, interrupted) {
  const s = chat.stream;
  if (!s) return null;
  chat.stream = null;
  if (finalText !== undefined) s.text = finalText;
  withScroll(() => setMarkdown(s.body, s.text));
  s.el.removeAttribute("aria-busy");
  s.el.dataset.streaming = "false";
  if (seq) s.el.dataset.seq = seq;
  if (interrupted) s.el.dataset.interrupted = "true";
  return s;
}

/** Records the seqs a lane's element shows (`data-seq` the first, `data-seq-last` the
 * newest), so a search hit on any of its records finds it. */
function laneSeq(l, seq) {
  if (!seq) return;
  if (!l.el.dataset.seq) l.el.dataset.seq = seq;
  l.el.dataset.seqLast = seq;
}

function laneParts(chat, key, tool, args) {
  let l = chat.lanes.get(key);
  if (l) return l;
  const status = el("span", { class: "badge lane-status", "data-testid": "lane-status", dataset: { state: "busy" }, text: "running" });
  const argsEl = el("span", { class: "lane-args", "data-testid": "lane-args" });
  const summary = el(
    "summary",
    { "data-testid": "lane-toggle", "data-api": "lanes.list" },
    el("span", { class: "lane-tool", text: tool || "tool" }),
    argsEl,
    status,
  );
  const out = el("pre", {
    class: "lane-output",
    "data-testid": "lane-output",
    "data-api": "subscribe",
    tabindex: "0",
    "aria-label": `Output of ${tool || "tool"}`,
  });
  const result = el("p", { class: "lane-result", "data-testid": "lane-result", hidden: true });
  const kill = el("button", {
    type: "button",
    class: "btn btn-small btn-danger",
    "data-testid": "lane-kill",
    "data-api": "lanes.kill",
    text: "Stop",
    "aria-label": `Stop ${tool || "tool"}`,
  });
  const details = el(
    "details",
    { class: "lane", open: true, "data-testid": "lane", dataset: { lane: key, status: "running" } },
    summary,
    el("div", { class: "lane-body" }, out, result, el("div", { class: "lane-actions" }, kill)),
  );
  kill.addEventListener("click", () => killLane(chat, key, kill));
  summary.addEventListener("click", () => {
    // Opening a lane refreshes lane statuses from the daemon.
    if (!details.open) setTimeout(() => refreshLanes(chat), 0);
  });
  l = { el: details, out, status, result, kill, args: argsEl, tool };
  chat.lanes.set(key, l);
  appendToLog(details);
  if (args !== undefined) setLaneArgs(l, args);
  return l;
}

function setLaneArgs(l, args) {
  let text;
  if (args && typeof args === "object" && typeof args.command === "string") text = args.command;
  else text = typeof args === "string" ? args : JSON.stringify(args);
  l.args.textContent = text && text.length > 160 ? text.slice(0, 157) + "…" : text || "";
}

function setLaneStatus(l, status) {
  const s = String(status || "");
  l.el.dataset.status = s;
  l.status.textContent = s;
  l.status.dataset.state = s === "running" ? "busy" : s === "done" ? "idle" : s === "waiting" ? "waiting_on_approval" : "error";
  const running = s === "running" || s === "waiting";
  if (!running && document.activeElement === l.kill) $("composer-input").focus();
  l.kill.hidden = !running;
}

async function refreshLanes(chat) {
  try {
    const { lanes } = await app.conn.call("lanes.list", { session_id: chat.id });
    for (const lv of lanes || []) {
      const l = chat.lanes.get(lv.lane);
      if (l) setLaneStatus(l, lv.status);
    }
  } catch {
    // informational only
  }
}

async function killLane(chat, key, btn) {
  btn.disabled = true;
  try {
    const { lanes } = await app.conn.call("lanes.kill", { session_id: chat.id, lane: key });
    for (const lv of lanes || []) {
      const l = chat.lanes.get(lv.lane);
      if (l) setLaneStatus(l, lv.status);
    }
  } catch (e) {
    showNotice("Could not stop the tool: " + errorText(e));
  } finally {
    btn.disabled = false;
  }
}

function approvalCard(chat, d) {
  const id = d.approval_id;
  if (chat.approvals.has(id)) return chat.approvals.get(id);
  const titleId = "apr-" + id.replace(/[^A-Za-z0-9_-]/g, "");
  const allow = el("button", { type: "button", class: "btn btn-primary", "data-testid": "approval-allow", "data-api": "session.approve", text: "Allow" });
  const deny = el("button", { type: "button", class: "btn btn-danger", "data-testid": "approval-deny", "data-api": "session.approve", text: "Deny" });
  const status = el("p", { class: "approval-status", "data-testid": "approval-status", hidden: true });
  const actions = el("div", { class: "approval-actions" }, allow, deny);
  const args = d.args && typeof d.args === "object" && typeof d.args.command === "string" && Object.keys(d.args).length === 1
    ? d.args.command
    : JSON.stringify(d.args ?? {}, null, 2);
  const card = el(
    "section",
    { class: "approval", "data-testid": "approval", "aria-labelledby": titleId, dataset: { approvalId: id, status: "pending" } },
    el("h3", { id: titleId, text: `Approval needed: ${d.tool || "tool"}` }),
    el("pre", { "data-testid": "approval-args", text: args }),
    actions,
    status,
  );
  const decide = async (decision) => {
    allow.disabled = deny.disabled = true;
    try {
      const v = await app.conn.call("session.approve", { session_id: chat.id, approval_id: id, decision });
      upsertSession(v);
    } catch (e) {
      allow.disabled = deny.disabled = false;
      status.hidden = false;
      status.textContent = "Could not send the decision: " + errorText(e);
    }
  };
  allow.addEventListener("click", () => decide("allow"));
  deny.addEventListener("click", () => decide("deny"));
  const a = { el: card, allow, deny, actions, status };
  chat.approvals.set(id, a);
  appendToLog(card);
  return a;
}

function resolveApproval(chat, d) {
  const a = chat.approvals.get(d.approval_id);
  if (!a) return;
  const decision = d.decision === "allow" ? "allow" : "deny";
  a.el.dataset.status = decision;
  const hadFocus = a.el.contains(document.activeElement);
  a.actions.remove();
  a.status.hidden = false;
  a.status.textContent = (decision === "allow" ? "Allowed" : "Denied") + (d.reason ? ` (${d.reason})` : "");
  if (hadFocus) $("composer-input").focus();
}

function setChatState(chat, state, at) {
  if (!state) return;
  patchSession(chat.id, { state, ...(state !== "paused" ? { reattachable: false } : {}) }, at);
}

function applyRecord(chat, rec) {
  if (rec.kind === "session.resync") {
    // The journal's head is behind what this view showed: start over from the journal.
    addNote("The session's journal was repaired; reloading it.", "error");
    openSession(chat.id, { replace: true });
    return;
  }
  if (typeof rec.seq !== "number" || rec.seq <= chat.lastSeq) return; // already shown
  chat.lastSeq = rec.seq;
  const d = rec.data || {};
  switch (rec.kind) {
    case "session.created":
      addNote(`Session started in ${d.workdir || "its working directory"}.`);
      break;
    case "session.message":
      if (d.role === "assistant") countUsage(chat.id, rec.seq, d.usage);
      if (d.role === "user") {
        finishStream(chat, undefined, undefined, true);
        const m = messageEl("user", rec.seq);
        setMarkdown(m.body, d.text || "");
        appendToLog(m.el);
      } else if (chat.stream) {
        finishStream(chat, d.text ?? chat.stream.text, rec.seq, false);
      } else if (d.text) {
        const m = messageEl("assistant", rec.seq);
        setMarkdown(m.body, d.text);
        appendToLog(m.el);
      }
      break;
    case "session.delta": {
      if (!chat.stream) {
        const m = messageEl("assistant", rec.seq);
        m.el.setAttribute("aria-busy", "true");
        m.el.dataset.streaming = "true";
        chat.stream = { el: m.el, body: m.body, text: "" };
        appendToLog(m.el);
      }
      chat.stream.text += d.text || "";
      scheduleStreamRender(chat);
      break;
    }
    case "session.state":
      setChatState(chat, d.state, rec.at);
      // A turn ended: the worktree's files may have changed.
      if (d.state === "idle") worktrees.settled(chat.id);
      break;
    case "session.paused":
      addNote("Paused.");
      setChatState(chat, "paused", rec.at);
      break;
    case "session.resumed":
      addNote("Resumed.");
      break;
    case "session.cancelled":
      finishStream(chat, undefined, undefined, true);
      addNote("Turn cancelled.");
      break;
    case "session.ended":
      finishStream(chat, undefined, undefined, true);
      addNote("Session ended.");
      setChatState(chat, "ended", rec.at);
      break;
    case "session.error":
      finishStream(chat, undefined, undefined, true);
      addNote("Error: " + (d.message || "the turn failed"), "error");
      break;
    case "daemon.reloaded":
      addNote("The daemon restarted. Tool calls that were running were closed.");
      break;
    case "hook.ran":
      // `event` is the hook's own name without an extension; say it only when they differ.
      addNote(`Hook ${d.hook}` + (d.hook === d.event ? "" : ` (${d.event})`) + ` ran in ${d.duration_ms} ms` +
        (d.action ? `: ${d.action}` : "") + (d.reason ? ` (${d.reason})` : "") + ".");
      break;
    case "hook.failed":
      addNote(`Hook ${d.hook} failed: ${d.reason}`, "error");
      break;
    case "cortex.note":
      addCortexNote(d);
      break;
    case "cortex.lobe":
      addNote(`Lobe ${d.lobe} ${d.paused ? "paused" : "resumed"} for this session.`);
      break;
    case "session.compacted":
      countUsage(chat.id, rec.seq, d.usage);
      addNote(
        (d.method === "summary" ? "The earlier conversation was summarized" : "The oldest turns were dropped") +
          ` to fit the model's context (${d.tokens_before} → ${d.tokens_after} tokens).`,
      );
      break;
    case "hook.blocked":
      addNote(`Hook ${d.hook} blocked a message: ${d.reason}`, "error");
      break;
    case "approval.requested":
      finishStream(chat, undefined, undefined, false);
      approvalCard(chat, d);
      break;
    case "approval.resolved":
      resolveApproval(chat, d);
      break;
    case "lane.created":
      laneSeq(laneParts(chat, d.lane || rec.lane, d.tool), rec.seq);
      break;
    case "tool.started": {
      const key = d.lane || (rec.lane !== "main" ? rec.lane : d.call_id);
      const l = laneParts(chat, key, d.tool, d.args);
      laneSeq(l, rec.seq);
      setLaneArgs(l, d.args);
      break;
    }
    case "lane.delta": {
      const l = laneParts(chat, d.lane || rec.lane, undefined);
      laneSeq(l, rec.seq);
      const out = l.out;
      const pinned = out.scrollHeight - out.scrollTop - out.clientHeight < 24;
      withScroll(() => out.append(document.createTextNode(d.text || "")));
      if (pinned) out.scrollTop = out.scrollHeight;
      break;
    }
    case "lane.status": {
      const l = chat.lanes.get(d.lane || rec.lane);
      if (l) setLaneStatus(l, d.status);
      break;
    }
    case "lane.killed": {
      const l = chat.lanes.get(d.lane || rec.lane);
      if (l) setLaneStatus(l, "killed");
      break;
    }
    case "tool.completed": {
      const key = d.lane || (rec.lane !== "main" ? rec.lane : d.external ? d.call_id : null);
      if (key) {
        const l = laneParts(chat, key, d.tool);
        laneSeq(l, rec.seq);
        if (d.external || !["killed", "cancelled", "failed"].includes(l.el.dataset.status)) {
          setLaneStatus(l, d.is_error ? "failed" : "done");
        }
        if (d.is_error && d.content) {
          l.result.hidden = false;
          l.result.textContent = String(d.content);
        } else if (!l.out.textContent && d.content) {
          l.out.textContent = String(d.content);
        }
      } else if (d.denied || d.is_error) {
        addNote(`${d.tool || "The tool"} did not run: ${d.content || "denied"}`, d.denied ? "" : "error");
      }
      break;
    }
    default:
      break;
  }
}

function onEvent(params) {
  if (!params || !params.record) return;
  if (params.session_id === null || params.session_id === undefined) {
    onBusRecord(params.record);
    return;
  }
  const chat = app.chat;
  if (chat && params.session_id === chat.id) {
    applyRecord(chat, params.record);
    // The list's "updated" time, at most once a second.
    const at = params.record.at;
    const known = app.sessions.get(chat.id)?.updated_at;
    if (at && (!known || known.slice(0, 19) < at.slice(0, 19))) patchSession(chat.id, {}, at);
  }
}

// ---------------------------------------------------------------------------
// Actions

async function sessionAction(method, btnId) {
  const chat = app.chat;
  if (!chat) return;
  const b = $(btnId);
  const hadFocus = document.activeElement === b;
  b.disabled = true;
  b.dataset.busy = "1";
  if ($("chat-notice").dataset.kind === "error") showNotice("");
  try {
    const v = await app.conn.call(method, { session_id: chat.id });
    if (v && v.id) upsertSession(v);
  } catch (e) {
    showNotice(`Could not ${b.textContent.toLowerCase()}: ${errorText(e)}`);
  } finally {
    delete b.dataset.busy;
    renderChatHead();
    // Disabling the pressed button dropped focus: move it to the next useful action.
    if (hadFocus && b.disabled) focusNextAction();
  }
}

async function send() {
  const chat = app.chat;
  const input = $("composer-input");
  const text = input.value;
  if (!chat || chat.sending || !text.trim() || input.readOnly) return;
  const cmid = chat.pending && chat.pending.text === text ? chat.pending.cmid : newId();
  chat.pending = { text, cmid };
  chat.sending = true;
  $("composer-send").disabled = true;
  $("composer-error").hidden = true;
  try {
    await app.conn.call("session.send", { session_id: chat.id, text, client_message_id: cmid });
    if (input.value === text) input.value = "";
    chat.pending = null;
    autosize();
  } catch (e) {
    const err = $("composer-error");
    err.hidden = false;
    err.textContent = "Not sent: " + errorText(e) + (e.errorCode === "offline" ? " It will be sent once when you retry." : "");
  } finally {
    chat.sending = false;
    renderChatHead();
  }
}

function autosize() {
  const t = $("composer-input");
  t.style.height = "auto";
  t.style.height = Math.min(t.scrollHeight + 2, Math.round(window.innerHeight * 0.3)) + "px";
}

// ---------------------------------------------------------------------------
// Start form

async function loadEngines() {
  const sel = $("start-engine");
  try {
    const { engines } = await app.conn.call("engines.list", {});
    app.engines = engines || [];
  } catch (e) {
    if (!app.engines) {
      $("start-error").hidden = false;
      $("start-error").textContent = "Could not list engines: " + errorText(e);
    }
    return;
  }
  const current = sel.value;
  sel.replaceChildren(
    ...app.engines.map((en) =>
      el("option", {
        value: en.name,
        disabled: !en.available,
        text: `${en.name} (${en.kind}${en.model ? ", " + en.model : ""})${en.available ? "" : " — unavailable: " + (en.reason || "not configured")}`,
      }),
    ),
  );
  const def = app.engines.find((en) => en.name === current && en.available) || app.engines.find((en) => en.default && en.available) || app.engines.find((en) => en.available);
  if (def) sel.value = def.name;
  updateModelPlaceholder();
}

function updateModelPlaceholder() {
  const en = (app.engines || []).find((x) => x.name === $("start-engine").value);
  $("start-model").placeholder = en && en.model ? `default: ${en.model}` : "engine default";
}

function openStart() {
  closeChat();
  setView("start");
  $("start-error").hidden = true;
  const wd = $("start-workdir");
  if (!wd.value) wd.value = localStorage.getItem(WORKDIR_KEY) || "";
  wd.focus();
  loadEngines();
}

function openMissions() {
  closeChat();
  setView("missions");
  $("missions-title").focus();
  missions.show();
}

function backToList(focusId) {
  closeChat();
  setView("list");
  const target = focusId && $("session-list").querySelector(`.session-item[data-session-id="${CSS.escape(focusId)}"]`);
  (target || $("new-session")).focus();
}

async function submitStart(ev) {
  ev.preventDefault();
  const err = $("start-error");
  err.hidden = true;
  const workdir = $("start-workdir").value.trim();
  if (!workdir.startsWith("/")) {
    err.hidden = false;
    err.textContent = "The working directory must be an absolute path (starting with /).";
    $("start-workdir").focus();
    return;
  }
  const params = { workdir };
  const engine = $("start-engine").value;
  if (engine) params.engine = engine;
  const model = $("start-model").value.trim();
  if (model) params.model = model;
  const title = $("start-title-input").value.trim();
  if (title) params.title = title;
  const submit = ev.submitter || $("start-form").querySelector("[type=submit]");
  submit.disabled = true;
  try {
    const v = await app.conn.call("session.start", params);
    localStorage.setItem(WORKDIR_KEY, workdir);
    $("start-title-input").value = "";
    $("start-model").value = "";
    upsertSession(v, v.created_at);
    await openSession(v.id, { focus: true });
  } catch (e) {
    err.hidden = false;
    err.textContent = "Could not start the session: " + errorText(e);
  } finally {
    submit.disabled = false;
  }
}

// ---------------------------------------------------------------------------
// Wiring

async function onConnected() {
  try {
    // The bus first (live only), then the list, so no change slips between them.
    await app.conn.call("subscribe", { since_seq: Number.MAX_SAFE_INTEGER });
    await loadList();
    if (app.chat) {
      const chat = app.chat;
      const v = await app.conn.call("session.get", { session_id: chat.id }).catch(() => null);
      if (v) upsertSession(v);
      await subscribeChat(chat);
      worktrees.open(chat.id);
    } else if (app.view === "loading") {
      const open = sessionStorage.getItem(OPEN_KEY);
      if (open && app.sessions.has(open)) await openSession(open);
      else setView("list");
    } else if (app.view === "start") {
      loadEngines();
    }
    missions.reconnect();
  } catch (e) {
    if (app.view === "loading") setView("list");
    if (app.chat) showNotice("Could not refresh after connecting: " + errorText(e));
  }
}

function wire() {
  $("conn-retry").addEventListener("click", () => app.conn && app.conn.retryNow());
  $("new-session").addEventListener("click", openStart);
  $("resume-all").addEventListener("click", resumeAll);
  $("open-missions").addEventListener("click", openMissions);
  $("view-missions").querySelector('[data-testid="missions-back"]').addEventListener("click", () => {
    backToList();
    $("open-missions").focus();
  });
  const call = (method, params) => app.conn.call(method, params);
  worktrees.init({ call });
  missions.init({ call, openSession: (id) => openSession(id, { focus: true }) });
  search.init({ call, openSession: (id) => openSession(id) });
  $("start-form").addEventListener("submit", submitStart);
  $("start-form").addEventListener("keydown", (e) => {
    if (e.key === "Escape") backToList();
  });
  $("start-engine").addEventListener("change", updateModelPlaceholder);
  for (const b of document.querySelectorAll('[data-testid="start-back"], [data-testid="start-cancel"]')) {
    b.addEventListener("click", () => backToList());
  }
  $("view-chat").querySelector('[data-testid="chat-back"]').addEventListener("click", () => backToList(app.chat && app.chat.id));
  $("act-cancel").addEventListener("click", () => sessionAction("session.cancel", "act-cancel"));
  $("act-pause").addEventListener("click", () => sessionAction("session.pause", "act-pause"));
  $("act-resume").addEventListener("click", () => sessionAction("session.resume", "act-resume"));
  $("act-end").addEventListener("click", () => sessionAction("session.kill", "act-end"));
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  const input = $("composer-input");
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey) {
      e.preventDefault();
      send();
    }
  });
  input.addEventListener("input", autosize);
  // A login link opened in a tab that already shows the page is a same-document
  // navigation: start over so the code is exchanged (and scrubbed).
  window.addEventListener("hashchange", () => {
    if (/(^#|&)code=/.test(location.hash)) location.reload();
  });
  window.addEventListener("online", () => app.conn && app.conn.retryNow());
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && app.conn && app.conn.state !== "connected") app.conn.retryNow();
  });
}

async function main() {
  wire();
  const { token, error } = await obtainToken();
  if (!token) {
    showLogin(error);
    return;
  }
  $("view-login").hidden = true;
  $("app").hidden = false;
  setView("loading");
  app.conn = new Connection(token, {
    onOpen: onConnected,
    onClose: () => {},
    onEvent,
    onStatus: setBanner,
    onAuthFailed: () => {
      forgetToken();
      showLogin("Your sign-in is no longer valid (the daemon's token changed). Run r1 open again.");
    },
  });
  app.conn.start();
}

main();
