// r1 web UI: no framework, no build. The transport is web/rpc.js; an open session's
// conversation is its records folded by web/store.js and drawn by web/views/timeline.js;
// this module holds the session list, the chat's header and composer, and the wiring.
//
// Every interactive element carries data-testid and data-api="<operation>"; the
// browser suite (web/tests) walks the DOM of every view and checks them against
// r1_proto::OPERATIONS.

import { $, el, basename, errorText, fmtTime, tokensText } from "./dom.js";
import { Connection, obtainToken, forgetToken, newId } from "./rpc.js";
import { initialState, reduce, reduceAll, withLaneStatuses } from "./store.js";
import { createTimeline } from "./views/timeline.js";
import * as sessionList from "./views/sessions.js";
import { STATE_LABELS } from "./views/sessions.js";
import * as worktrees from "./worktrees.js";
import * as files from "./files.js";
import * as missions from "./missions.js";
import * as search from "./search.js";
import * as palette from "./views/palette.js";
import * as keys from "./keys.js";
import * as notify from "./notify.js";
import * as compat from "./compat.js";

const OPEN_KEY = "r1.open";
const WORKDIR_KEY = "r1.lastWorkdir";


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
    incompatible: "Disconnected: the daemon speaks another protocol",
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
  sessionList.upsert(view, updatedAt);
  if (app.chat && app.chat.id === view.id) renderChatHead();
}

function patchSession(id, patch, updatedAt) {
  const old = sessionList.getSession(id);
  if (!old) return;
  upsertSession({ ...old, ...patch }, updatedAt);
}

async function resumeAll() {
  const { list } = sessionList;
  list.error.value = "";
  list.resuming.value = true;
  try {
    const r = await app.conn.call("session.resume_all", {});
    for (const v of r.resumed || []) upsertSession(v);
    const failed = r.failed || [];
    if (failed.length) {
      list.error.value =
        `Could not resume ${failed.length} session${failed.length === 1 ? "" : "s"}: ` +
        failed.map((f) => `${f.id} (${f.error_message})`).join("; ");
    }
  } catch (e) {
    list.error.value = "Could not resume the paused sessions: " + errorText(e);
  } finally {
    list.resuming.value = false;
  }
}

function markCurrent() {
  sessionList.list.current.value = app.chat ? app.chat.id : null;
}

async function loadList() {
  const { sessions } = await app.conn.call("session.list", { include_archived: sessionList.list.showArchived.value });
  sessionList.replaceAll(sessions);
  // The last activity of each session, from its last journal record.
  for (const s of sessions.slice(-50)) {
    if (sessionList.getSession(s.id)?.updated_at || !s.last_seq) continue;
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
      if (id && d.state === "waiting_on_approval" && sessionList.getSession(id)?.state !== "waiting_on_approval") notify.approvalWaiting(id);
      if (id && sessionList.hasSession(id)) patchSession(id, { state: d.state }, rec.at);
      else if (id) app.conn.call("session.get", { session_id: id }).then((v) => upsertSession(v, rec.at), () => {});
      break;
    case "session.ended":
      if (id) patchSession(id, { state: "ended" }, rec.at);
      break;
    case "session.updated":
      if (id && sessionList.hasSession(id)) {
        patchSession(id, { title: d.title, archived: d.archived });
        if (d.archived && !sessionList.list.showArchived.value && !(app.chat && app.chat.id === id)) sessionList.remove(id);
      } else if (id && (!d.archived || sessionList.list.showArchived.value)) {
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
    /** Catching up: records up to this seq (the journal's head at open) are replay. */
    catchUpTo: 0,
    /** Replayed records not folded yet, and whether a frame will fold them. */
    queue: [],
    foldQueued: false,
    /** A long session opens on its last records; until the history before them is read
     * (`backfill`), {before: the first seq subscribed to, records: every record since}. */
    backfill: null,
  };
}

/** Answers an approval of the open session. */
async function decideApproval(approvalId, decision, remember = false) {
  const chat = app.chat;
  const params = { session_id: chat.id, approval_id: approvalId, decision };
  if (remember) params.remember = true;
  const v = await app.conn.call("session.approve", params);
  upsertSession(v);
}

/** The open session's timeline view; its actions act on whichever chat is open. */
let timeline = null;

function timelineView() {
  timeline ??= createTimeline($("log"), {
    decide: decideApproval,
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
  $("log-history").hidden = true;
  worktrees.close();
  files.close();
  markCurrent();
}

/** A session with more records than this opens on its last ones, the rest read after. */
const TAIL_RECORDS = 2000;
/** Records asked for at once while reading the history before them. */
const PAGE_RECORDS = 10000;

async function subscribeChat(chat) {
  foldQueue(chat);
  chat.subscription = null;
  // What the journal holds now is history to catch up on, folded in batches.
  const head = sessionList.getSession(chat.id)?.last_seq || 0;
  chat.catchUpTo = head;
  let since = chat.state.lastSeq + 1;
  if (since === 1 && !chat.backfill && head > TAIL_RECORDS) {
    // A long session: its end first (what the reader sees), its history after.
    since = head - TAIL_RECORDS + 1;
    chat.backfill = { before: since, records: [], reading: false };
  }
  $("log-history").hidden = !chat.backfill;
  const r = await app.conn.call("subscribe", { session_id: chat.id, since_seq: since });
  if (app.chat !== chat) {
    app.conn.call("unsubscribe", { subscription: r.subscription }).catch(() => {});
    return;
  }
  chat.subscription = r.subscription;
  if (chat.backfill && !chat.backfill.reading) readHistory(chat);
}

/**
 * Reads a long session's records before the ones it opened on, page by page, then
 * folds the whole journal again (history, then every record since) and draws it: the
 * timeline keeps the reader on the item they were looking at.
 */
async function readHistory(chat) {
  const b = chat.backfill;
  b.reading = true;
  const older = [];
  let since = 1;
  try {
    while (since < b.before) {
      const page = await app.conn.call("session.journal", { session_id: chat.id, since_seq: since, limit: Math.min(PAGE_RECORDS, b.before - since) });
      if (app.chat !== chat) return;
      const records = page.records || [];
      for (const rec of records) if (rec.seq < b.before) older.push(rec);
      if (!records.length || page.next_seq <= since) break;
      since = page.next_seq;
    }
  } catch {
    b.reading = false; // read again at the next subscribe (after a reconnect)
    return;
  }
  foldQueue(chat);
  chat.backfill = null;
  $("log-history").hidden = true;
  applyState(chat, reduceAll(reduceAll(initialState(), older), b.records), true);
  renderChatHead();
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
  const s = sessionList.getSession(chat.id) || { id: chat.id, state: "", workdir: "", engine: "" };
  $("view-chat").dataset.sessionId = chat.id;
  $("chat-title").textContent = s.title || basename(s.workdir) || chat.id;
  const badge = $("chat-state");
  badge.dataset.state = s.state || "";
  badge.textContent = STATE_LABELS[s.state] || s.state || "…";
  $("chat-meta").textContent = [s.engine + (s.model ? ` (${s.model})` : ""), s.workdir, chat.id].filter(Boolean).join(" · ");
  // The session's totals: the view's until the journal has been read past it, then the
  // journal's (the same sum, kept current record by record).
  const u = !chat.backfill && chat.state.lastSeq >= (s.last_seq || 0) ? chat.state.usage : s.usage;
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
 * One record of the open session: folded into its state, then drawn. While the session's
 * history is caught up (records up to the journal's head when it was opened), records
 * are queued and folded together once a frame (`reduceAll`), and drawn once for the
 * lot; the last one folds and draws whatever is left at once. A live record that adds
 * to the timeline or changes the session's state is drawn at once; one that only adds
 * text (deltas, lane output) waits for the next frame, with whatever else came by then.
 */
function applyRecord(chat, rec) {
  if (chat.backfill && rec && typeof rec.seq === "number") chat.backfill.records.push(rec);
  if (chat.catchUpTo && rec && typeof rec.seq === "number" && rec.seq < chat.catchUpTo) {
    chat.queue.push(rec);
    if (!chat.foldQueued) {
      chat.foldQueued = true;
      requestAnimationFrame(() => {
        chat.foldQueued = false;
        if (app.chat === chat) foldQueue(chat);
      });
    }
    return;
  }
  chat.catchUpTo = 0;
  if (chat.queue.length) {
    chat.queue.push(rec);
    foldQueue(chat);
    return;
  }
  applyState(chat, reduce(chat.state, rec));
  announce(rec);
}

/**
 * Says a live record worth hearing through the hidden status region `#log-announce`:
 * an answer, an approval to decide. The log itself is not a live region, because its
 * items come and go as the reader scrolls (only those near the view are drawn), and a
 * screen reader would read each one drawn again as new.
 */
function announce(rec) {
  const d = (rec && rec.data) || {};
  let text = "";
  if (rec.kind === "session.message" && d.role === "assistant" && d.text) text = "Assistant: " + String(d.text).slice(0, 500);
  else if (rec.kind === "approval.requested") text = `Approval needed: ${d.tool || "a tool"}`;
  if (text) $("log-announce").textContent = text;
}

/** Folds the queued replay records into the chat's state, and draws it. */
function foldQueue(chat) {
  if (!chat.queue.length) return;
  const records = chat.queue;
  chat.queue = [];
  applyState(chat, reduceAll(chat.state, records), true);
  const at = records[records.length - 1].at;
  if (at && app.chat === chat) patchSession(chat.id, {}, at);
}

/** The chat's next state: the list, header and timeline follow it (`now`: draw at once). */
function applyState(chat, next, now = false) {
  const prev = chat.state;
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
  if (now || next.items.length !== prev.items.length || next.status !== prev.status) {
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
    if (chat.queue.length) return; // replay: the time is taken once the batch is folded
    // The list's "updated" time, at most once a second.
    const at = params.record.at;
    const known = sessionList.getSession(chat.id)?.updated_at;
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

/** A session was deleted (here or by another client): it leaves the list, and an open
 * chat of it goes back to the list with a notice. */
function sessionDeleted(id) {
  sessionList.remove(id);
  if (app.chat && app.chat.id === id) {
    backToList();
    sessionList.list.error.value = "The session you had open was deleted.";
  }
}

function openRename() {
  const chat = app.chat;
  if (!chat) return;
  const s = sessionList.getSession(chat.id) || {};
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
  const s = sessionList.getSession(chat.id) || {};
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
    sessionList.list.error.value = "";
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
// Keyboard: the command palette and the shortcuts

/** The open session's approval that waits for a decision, if any. */
function pendingApproval() {
  const items = app.chat ? app.chat.state.items : [];
  for (let i = items.length - 1; i >= 0; i--) {
    if (items[i].type === "approval" && items[i].status === "pending") return items[i];
  }
  return null;
}

async function decideFromKeyboard(decision, remember = false) {
  const a = pendingApproval();
  if (!a) return;
  try {
    await decideApproval(a.approvalId, decision, remember);
  } catch (e) {
    showNotice("Could not send the decision: " + errorText(e));
  }
  $("composer-input").focus();
}

/** A toolbar action as a command, offered while its button is enabled. */
function toolbarCommand(id, title, hint) {
  const b = $(id);
  if (!app.chat || b.disabled) return null;
  return { id, title, hint, api: b.dataset.api, run: () => b.click() };
}

function focusComposer() {
  if (app.chat) $("composer-input").focus();
}

function paletteCommands(q) {
  const cmds = [];
  const approval = pendingApproval();
  if (approval) {
    cmds.push(
      { id: "approval-allow", title: `Allow ${approval.tool}`, hint: "A", api: "session.approve", run: () => decideFromKeyboard("allow") },
      { id: "approval-always", title: `Always allow ${approval.tool} in this session`, api: "session.approve", run: () => decideFromKeyboard("allow", true) },
      { id: "approval-deny", title: `Deny ${approval.tool}`, hint: "X", api: "session.approve", run: () => decideFromKeyboard("deny") },
    );
  }
  cmds.push({ id: "new-session", title: "New session", hint: "N", api: "session.start", run: openStart });
  if (app.chat) cmds.push({ id: "composer", title: "Write a message", hint: "I", api: "session.send", run: focusComposer });
  for (const c of [
    toolbarCommand("act-cancel", "Cancel the turn"),
    toolbarCommand("act-pause", "Pause the session"),
    toolbarCommand("act-resume", "Resume the session"),
    toolbarCommand("act-rename", "Rename the session"),
    toolbarCommand("act-archive", $("act-archive").textContent + " the session"),
    toolbarCommand("act-end", "End the session"),
    toolbarCommand("act-delete", "Delete the session"),
  ]) {
    if (c) cmds.push(c);
  }
  if (sessionList.list.resuming.value === false && Array.from(sessionList.list.sessions.value.values()).some((s) => s.state === "paused")) {
    cmds.push({ id: "resume-all", title: "Resume all paused sessions", api: "session.resume_all", run: resumeAll });
  }
  cmds.push(
    { id: "search", title: q ? `Search all sessions for “${q}”` : "Search all sessions", hint: "/", api: "search.query", run: () => search.open(q) },
    { id: "missions", title: "Missions", hint: "M", api: "mission.list", run: openMissions },
    { id: "list", title: "Session list", api: "session.list", run: () => backToList(app.chat && app.chat.id) },
    { id: "shortcuts", title: "Keyboard shortcuts", hint: "?", api: "session.list", run: palette.openHelp },
  );
  if (notify.available()) {
    cmds.push({ id: "notify", title: notify.on() ? "Stop approval notifications" : "Notify me of approvals in a hidden tab", api: "subscribe", run: notify.toggle });
  }
  for (const s of sessionList.visible.value.slice(0, 100)) {
    cmds.push({
      id: "open-" + s.id,
      title: `Open ${s.title || basename(s.workdir) || s.id} (${STATE_LABELS[s.state] || s.state}) ${s.workdir}`,
      api: "session.get",
      run: () => openSession(s.id, { focus: true }),
    });
  }
  return cmds;
}

const SHORTCUTS = [
  { key: "k", mod: true, keys: `${keys.modName()} K`, what: "Command palette: every action, every session, search", run: () => palette.openPalette() },
  { key: "?", keys: "?", what: "This list of shortcuts", run: () => palette.openHelp() },
  { key: "/", keys: "/", what: "Search every session", run: () => search.open() },
  { key: "n", keys: "N", what: "Start a new session", run: openStart },
  { key: "m", keys: "M", what: "Missions", run: openMissions },
  { key: "j", keys: "J", what: "Open the next session in the list", run: () => stepSession(1) },
  { key: "k", keys: "K", what: "Open the previous session in the list", run: () => stepSession(-1) },
  { key: "i", keys: "I", what: "Write a message in the open session", when: () => !!app.chat, run: focusComposer },
  { key: "a", keys: "A", what: "Allow the tool call that waits for approval", when: () => !!pendingApproval(), run: () => decideFromKeyboard("allow") },
  { key: "x", keys: "X", what: "Deny the tool call that waits for approval", when: () => !!pendingApproval(), run: () => decideFromKeyboard("deny") },
  { key: "Escape", keys: "Esc", what: "Leave the message box; again: back to the session list", run: escape },
];

function stepSession(step) {
  const id = sessionList.neighbour(step);
  if (id) openSession(id, { focus: false }).then(() => $("chat-title").focus());
}

/** Esc in the message box leaves it (for the single-key shortcuts); Esc elsewhere in a
 * session goes back to the list. */
function escape() {
  if (app.view === "chat") backToList(app.chat && app.chat.id);
  else if (app.view === "missions" || app.view === "start") backToList();
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
      if (open && sessionList.hasSession(open)) await openSession(open);
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
  palette.mount($("palette-root"), { commands: paletteCommands, shortcuts: keys.bind(SHORTCUTS) });
  $("open-palette").addEventListener("click", () => palette.openPalette());
  $("open-shortcuts").addEventListener("click", () => palette.openHelp());
  $("palette-kbd").textContent = keys.modName() + " K";
  notify.init({ openSession: (id) => openSession(id, { focus: true }) });
  sessionList.mount($("session-list-root"), {
    open: (id) => openSession(id, { focus: true }),
    resumeAll,
    showArchived: (on) => {
      sessionList.list.showArchived.value = on;
      loadList().catch(() => {});
    },
  });
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

  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  const input = $("composer-input");
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey) {
      e.preventDefault();
      send();
    } else if (e.key === "Escape" && !e.isComposing) {
      // Out of the box, so the single-key shortcuts work; the log keeps the focus.
      e.preventDefault();
      $("log").focus();
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
    // The daemon no longer matches this page (web/compat.js).
    onIncompatible: compat.incompatible,
    onUpgraded: compat.upgraded,
  });
  app.conn.start();
}

main();
