// r1 web UI: no framework, no build. The transport is web/rpc.js; an open session's
// conversation is its records folded by web/store.js and drawn by web/views/timeline.js;
// this module holds the session list, the chat's header and composer, and the wiring.
//
// Every interactive element carries data-testid and data-api="<operation>"; the
// browser suite (web/tests) walks the DOM of every view and checks them against
// r1_proto::OPERATIONS.

import { $, el, basename, errorText, fmtTime, tokensText } from "./dom.js";
import { Connection, obtainToken, forgetToken, newId } from "./rpc.js";
import { initialState, reduce, withLaneStatuses } from "./store.js";
import { createTimeline } from "./views/timeline.js";
import * as worktrees from "./worktrees.js";
import * as files from "./files.js";
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

function sortedIds() {
  return Array.from(app.sessions.values())
    .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : a.id < b.id ? 1 : -1))
    .map((s) => s.id);
}

function renderListItem(s) {
  const list = $("session-list");
  let li = list.querySelector(`li[data-session-id="${CSS.escape(s.id)}"]`);
  // Archived sessions are listed only when asked for (an open one stays open).
  if (s.archived && !$("show-archived").checked) {
    if (li) li.remove();
    $("list-empty").hidden = list.children.length > 0;
    return;
  }
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
  btn.querySelector(".session-name").textContent = (s.title || basename(s.workdir) || s.id) + (s.archived ? " (archived)" : "");
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
  $("list-empty").hidden = $("session-list").children.length > 0;
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
  $("list-empty").hidden = $("session-list").children.length > 0;
  updateResumeAll();
}

function markCurrent() {
  for (const b of $("session-list").querySelectorAll(".session-item")) {
    b.setAttribute("aria-current", app.chat && app.chat.id === b.dataset.sessionId ? "true" : "false");
  }
}

async function loadList() {
  const { sessions } = await app.conn.call("session.list", { include_archived: $("show-archived").checked });
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
    case "session.updated":
      if (id && app.sessions.has(id)) {
        patchSession(id, { title: d.title, archived: d.archived });
        if (d.archived && !$("show-archived").checked && !(app.chat && app.chat.id === id)) forgetSession(id);
      } else if (id && (!d.archived || $("show-archived").checked)) {
        app.conn.call("session.get", { session_id: id }).then((v) => upsertSession(v, rec.at), () => {});
      }
      break;
    case "session.deleted":
      if (id) sessionDeleted(id);
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
    /** The conversation: the session's records folded by web/store.js. */
    state: initialState(),
    subscription: null,
    pending: null, // {text, cmid} of a send that may have to be retried
    sending: false,
    renderQueued: false,
  };
}

/** The open session's timeline view; its actions act on whichever chat is open. */
let timeline = null;

function timelineView() {
  timeline ??= createTimeline($("log"), {
    decide: async (approvalId, decision, remember = false) => {
      const chat = app.chat;
      const params = { session_id: chat.id, approval_id: approvalId, decision };
      if (remember) params.remember = true;
      const v = await app.conn.call("session.approve", params);
      upsertSession(v);
    },
    edit: (text) => {
      const input = $("composer-input");
      input.value = text;
      autosize();
      input.focus();
    },
    regenerate: async (answer) => {
      const chat = app.chat;
      const items = chat.state.items;
      const question = items.find((it) => it.type === "message" && it.role === "user" && it.messageId === answer.replyTo);
      const text = question ? question.text : [...items].reverse().find((it) => it.type === "message" && it.role === "user")?.text;
      if (!text) return;
      try {
        await app.conn.call("session.send", { session_id: chat.id, text, client_message_id: newId() });
      } catch (e) {
        showNotice("Could not regenerate: " + errorText(e));
      }
    },
    kill: async (lane) => {
      const chat = app.chat;
      try {
        const { lanes } = await app.conn.call("lanes.kill", { session_id: chat.id, lane });
        applyLanes(chat, lanes);
      } catch (e) {
        showNotice("Could not stop the tool: " + errorText(e));
      }
    },
    refreshLanes: async () => {
      const chat = app.chat;
      if (!chat) return;
      try {
        const { lanes } = await app.conn.call("lanes.list", { session_id: chat.id });
        applyLanes(chat, lanes);
      } catch {
        // informational only
      }
    },
    focusComposer: () => $("composer-input").focus(),
  });
  return timeline;
}

/** Lane statuses the daemon answered with, into the open chat's state. */
function applyLanes(chat, lanes) {
  if (app.chat !== chat) return;
  chat.state = withLaneStatuses(chat.state, lanes);
  timelineView().render(chat.state);
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
  timelineView().clear();
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
    files.open(id);
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
  files.close();
  markCurrent();
}

async function subscribeChat(chat) {
  chat.subscription = null;
  const r = await app.conn.call("subscribe", { session_id: chat.id, since_seq: chat.state.lastSeq + 1 });
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
  // The session's totals: the view's until the journal has been read past it, then the
  // journal's (the same sum, kept current record by record).
  const u = chat.state.lastSeq >= (s.last_seq || 0) ? chat.state.usage : s.usage;
  const usage = $("chat-usage");
  usage.hidden = !s.usage;
  usage.textContent = !u ? "" : u.model_calls ? "Tokens: " + tokensText(u) : "Tokens: none yet";
  const st = s.state;
  const can = {
    "act-cancel": st === "busy" || st === "waiting_on_approval",
    "act-pause": st === "idle" || st === "busy" || st === "waiting_on_approval",
    "act-resume": st === "paused",
    "act-end": !!st && st !== "ended",
    "act-rename": !!st,
    "act-archive": !!st,
    "act-delete": !!st,
  };
  const archive = $("act-archive");
  archive.textContent = s.archived ? "Unarchive" : "Archive";
  archive.dataset.api = s.archived ? "session.unarchive" : "session.archive";
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

/**
 * One record of the open session: folded into its state, then drawn. A record that adds
 * to the timeline or changes the session's state is drawn at once; one that only adds
 * text (deltas, lane output) waits for the next frame, with whatever else came by then.
 */
function applyRecord(chat, rec) {
  const prev = chat.state;
  const next = reduce(prev, rec);
  if (next === prev) return;
  chat.state = next;
  if (next.resync && !prev.resync) {
    // The journal's head is behind what this view showed: start over from the journal.
    openSession(chat.id, { replace: true });
    return;
  }
  if (next.status !== prev.status) {
    patchSession(chat.id, { state: next.status, ...(next.status !== "paused" ? { reattachable: false } : {}) }, next.statusAt);
    // A turn ended: the worktree's files may have changed.
    if (next.status === "idle") worktrees.settled(chat.id);
    if (next.status === "idle") files.settled(chat.id);
  }
  // The Files tab lists the files the records show the agent touching.
  if (next.items !== prev.items) files.changed(chat.id);
  if (next.usage !== prev.usage) renderChatHead();
  if (next.items.length !== prev.items.length || next.status !== prev.status) {
    timelineView().render(next);
  } else if (!chat.renderQueued) {
    chat.renderQueued = true;
    requestAnimationFrame(() => {
      chat.renderQueued = false;
      if (app.chat === chat) timelineView().render(chat.state);
    });
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

// ---------------------------------------------------------------------------
// Rename, archive, delete

function forgetSession(id) {
  app.sessions.delete(id);
  renderList();
}

/** A session was deleted (here or by another client): it leaves the list, and an open
 * chat of it goes back to the list with a notice. */
function sessionDeleted(id) {
  forgetSession(id);
  if (app.chat && app.chat.id === id) {
    backToList();
    const err = $("list-error");
    err.hidden = false;
    err.textContent = "The session you had open was deleted.";
  }
}

function openRename() {
  const chat = app.chat;
  if (!chat) return;
  const s = app.sessions.get(chat.id) || {};
  $("rename-input").value = s.title || "";
  $("rename-error").hidden = true;
  $("rename-dialog").showModal();
  $("rename-input").select();
}

async function saveRename(ev) {
  ev.preventDefault();
  const chat = app.chat;
  const title = $("rename-input").value.trim();
  const err = $("rename-error");
  if (!chat) return;
  if (!title) {
    err.hidden = false;
    err.textContent = "Give the session a title.";
    $("rename-input").focus();
    return;
  }
  try {
    const v = await app.conn.call("session.rename", { session_id: chat.id, title });
    upsertSession(v);
    $("rename-dialog").close();
    $("act-rename").focus();
  } catch (e) {
    err.hidden = false;
    err.textContent = "Not renamed: " + errorText(e);
  }
}

async function toggleArchive() {
  const chat = app.chat;
  if (!chat) return;
  const s = app.sessions.get(chat.id) || {};
  const method = s.archived ? "session.unarchive" : "session.archive";
  try {
    const v = await app.conn.call(method, { session_id: chat.id });
    upsertSession(v);
    showNotice(v.archived ? "Archived: this session is left out of the list (Show archived brings it back)." : "", "auto");
  } catch (e) {
    showNotice(`Could not ${s.archived ? "unarchive" : "archive"}: ${errorText(e)}`);
  }
  renderChatHead();
  $("act-archive").focus();
}

async function confirmDelete(ev) {
  ev.preventDefault();
  const chat = app.chat;
  if (!chat) return;
  const id = chat.id;
  try {
    await app.conn.call("session.delete", { session_id: id });
    $("delete-dialog").close();
    sessionDeleted(id);
    $("list-error").hidden = true;
  } catch (e) {
    const err = $("delete-error");
    err.hidden = false;
    err.textContent = "Not deleted: " + errorText(e);
  }
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
      files.open(chat.id);
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
  files.init({ call, state: () => app.chat && app.chat.state });
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
  $("act-rename").addEventListener("click", openRename);
  $("rename-form").addEventListener("submit", saveRename);
  $("rename-cancel").addEventListener("click", () => {
    $("rename-dialog").close();
    $("act-rename").focus();
  });
  $("act-archive").addEventListener("click", toggleArchive);
  $("act-delete").addEventListener("click", () => {
    $("delete-error").hidden = true;
    $("delete-dialog").showModal();
  });
  $("delete-form").addEventListener("submit", confirmDelete);
  $("delete-cancel").addEventListener("click", () => {
    $("delete-dialog").close();
    $("act-delete").focus();
  });
  $("show-archived").addEventListener("change", () => loadList().catch(() => {}));
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
