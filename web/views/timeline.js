// The conversation's timeline: renders `state.items` (web/store.js) into the chat log.
//
// The store's items are append-only and replaced (never changed in place) when their
// record changes, so `render` appends a node for each new item and updates the node of
// each item that is not the one it last drew. What is not in the store is the view's
// own: whether a lane is open or expanded, a decision on its way, focus and scroll.

import { el, fmtTime, tokensText } from "../dom.js";
import { setMarkdown } from "../markdown.js";
import { laneText } from "../store.js";

/** Lines of a lane's output shown before it collapses behind "Show all". */
const LANE_COLLAPSED_LINES = 12;

/**
 * A timeline in `log`. `actions`: decide(approvalId, decision) and kill(lane) return
 * promises; refreshLanes() asks the daemon for lane statuses; focusComposer() takes
 * focus somewhere useful when the focused control goes away.
 */
export function createTimeline(log, actions) {
  /** item key → {el, item, …parts} */
  const views = new Map();

  /** Keeps the log pinned to the bottom if it was there before a change. */
  function withScroll(fn) {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
    fn();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  /** The last user message and the last assistant answer offer Edit and Regenerate. */
  let lastUser = null;
  let lastAnswer = null;

  function render(state) {
    withScroll(() => {
      for (const item of state.items) {
        const v = views.get(item.key);
        if (!v) {
          const nv = CREATE[item.type](item, actions);
          views.set(item.key, nv);
          log.append(nv.el);
        } else if (v.item !== item) {
          UPDATE[item.type](v, item, actions);
        }
      }
      let user = null;
      let answer = null;
      for (let i = state.items.length - 1; i >= 0 && !(user && answer); i--) {
        const it = state.items[i];
        if (it.type !== "message") continue;
        if (it.role === "user") user ??= it;
        else if (!answer && !user) answer = it;
      }
      const mark = (prev, next, part) => {
        const old = prev && views.get(prev.key);
        if (old && old[part]) old[part].hidden = true;
        const now = next && views.get(next.key);
        if (now && now[part]) now[part].hidden = next.role === "assistant" && next.streaming;
        return next;
      };
      lastUser = mark(lastUser, user, "edit");
      lastAnswer = mark(lastAnswer, answer, "regen");
    });
  }

  function clear() {
    lastUser = lastAnswer = null;
    views.clear();
    log.replaceChildren();
  }

  return { render, clear };
}

// ---------------------------------------------------------------------------
// Messages

function createMessage(item, actions) {
  const body = el("div", { class: "msg-body" });
  const usage = el("p", { class: "msg-usage", "data-testid": "turn-usage", hidden: true });
  const copy = el("button", { type: "button", class: "btn btn-small btn-ghost", "data-testid": "message-copy", "data-local": "clipboard", text: "Copy" });
  const tools = el("div", { class: "msg-tools" }, copy);
  const v = { el: null, body, usage, item: null, text: null, edit: null, regen: null };
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(v.item.text);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Copy failed";
    }
    setTimeout(() => (copy.textContent = "Copy"), 1500);
  });
  if (item.role === "user") {
    v.edit = el("button", {
      type: "button",
      class: "btn btn-small btn-ghost",
      "data-testid": "message-edit",
      "data-api": "session.send",
      title: "Put this message in the composer to change it and send it again",
      text: "Edit",
      hidden: true,
    });
    v.edit.addEventListener("click", () => actions.edit(v.item.text));
    tools.append(v.edit);
  } else {
    v.regen = el("button", {
      type: "button",
      class: "btn btn-small btn-ghost",
      "data-testid": "message-regenerate",
      "data-api": "session.send",
      title: "Send the question this answers again, for a new answer",
      text: "Regenerate",
      hidden: true,
    });
    v.regen.addEventListener("click", () => actions.regenerate(v.item));
    tools.append(v.regen);
  }
  const node = el(
    "article",
    {
      class: "msg msg-" + item.role,
      "data-testid": "message",
      "data-role": item.role,
      "aria-label": item.role === "user" ? "You" : "Assistant",
    },
    el("span", { class: "msg-role", "aria-hidden": "true", text: item.role === "user" ? "You" : "Assistant" }),
    body,
    usage,
    tools,
  );
  v.el = node;
  updateMessage(v, item, actions);
  return v;
}

function updateMessage(v, item) {
  const node = v.el;
  node.dataset.seq = item.seq;
  if (item.at) node.title = fmtTime(item.at);
  if (item.role === "assistant") node.dataset.streaming = item.streaming ? "true" : "false";
  if (item.streaming) node.setAttribute("aria-busy", "true");
  else node.removeAttribute("aria-busy");
  if (item.interrupted) node.dataset.interrupted = "true";
  if (v.text !== item.text) {
    setMarkdown(v.body, item.text);
    v.text = item.text;
  }
  v.usage.hidden = !item.turnUsage;
  v.usage.textContent = item.turnUsage ? "This turn: " + tokensText(item.turnUsage) : "";
  v.item = item;
}

// ---------------------------------------------------------------------------
// Lanes

function argsText(args) {
  let text;
  if (args && typeof args === "object" && typeof args.command === "string") text = args.command;
  else text = typeof args === "string" ? args : args === undefined ? "" : JSON.stringify(args);
  return text && text.length > 160 ? text.slice(0, 157) + "…" : text || "";
}

function createLane(item, actions) {
  const tool = item.tool || "tool";
  const toolEl = el("span", { class: "lane-tool", text: tool });
  const status = el("span", { class: "badge lane-status", "data-testid": "lane-status", dataset: { state: "busy" }, text: "running" });
  const args = el("span", { class: "lane-args", "data-testid": "lane-args" });
  const summary = el("summary", { "data-testid": "lane-toggle", "data-api": "lanes.list" }, toolEl, args, status);
  const out = el("pre", {
    class: "lane-output",
    "data-testid": "lane-output",
    "data-api": "subscribe",
    tabindex: "0",
    "aria-label": `Output of ${tool}`,
  });
  const more = el("button", {
    type: "button",
    class: "btn btn-small lane-more",
    "data-testid": "lane-expand",
    "data-local": "expand",
    "aria-expanded": "false",
    hidden: true,
  });
  const result = el("p", { class: "lane-result", "data-testid": "lane-result", hidden: true });
  const kill = el("button", {
    type: "button",
    class: "btn btn-small btn-danger",
    "data-testid": "lane-kill",
    "data-api": "lanes.kill",
    text: "Stop",
    "aria-label": `Stop ${tool}`,
  });
  const details = el(
    "details",
    { class: "lane", open: true, "data-testid": "lane", dataset: { lane: item.lane, status: "running" } },
    summary,
    el("div", { class: "lane-body" }, out, result, el("div", { class: "lane-actions" }, more, kill)),
  );
  const v = { el: details, toolEl, status, args, out, more, result, kill, item: null, text: "", lines: 0, expanded: false };
  kill.addEventListener("click", async () => {
    kill.disabled = true;
    try {
      await actions.kill(v.item.lane);
    } finally {
      kill.disabled = false;
    }
  });
  summary.addEventListener("click", () => {
    // Opening a lane refreshes lane statuses from the daemon.
    if (!details.open) setTimeout(() => actions.refreshLanes(), 0);
  });
  more.addEventListener("click", () => {
    v.expanded = !v.expanded;
    showLength(v);
    if (!v.expanded) v.out.scrollTop = v.out.scrollHeight;
  });
  updateLane(v, item, actions);
  return v;
}

function updateLane(v, item, actions) {
  const d = v.el.dataset;
  d.seq = item.seq;
  d.seqLast = item.seqLast;
  if (item.tool && v.toolEl.textContent !== item.tool) {
    v.toolEl.textContent = item.tool;
    v.out.setAttribute("aria-label", `Output of ${item.tool}`);
    v.kill.setAttribute("aria-label", `Stop ${item.tool}`);
  }
  v.args.textContent = argsText(item.args);
  // Output: appended when it only grew (the common case while a tool runs).
  const text = laneText(item);
  if (text !== v.text) {
    const out = v.out;
    const pinned = out.scrollHeight - out.scrollTop - out.clientHeight < 24;
    if (v.text && text.startsWith(v.text)) {
      const add = text.slice(v.text.length);
      out.append(document.createTextNode(add));
      v.lines += countLines(add);
    } else {
      out.textContent = text;
      v.lines = countLines(text);
    }
    v.text = text;
    showLength(v);
    if (pinned) out.scrollTop = out.scrollHeight;
  }
  v.result.hidden = !item.result;
  v.result.textContent = item.result;
  setStatus(v, item.status, actions);
  v.item = item;
}

function countLines(s) {
  let n = 0;
  for (let i = s.indexOf("\n"); i >= 0; i = s.indexOf("\n", i + 1)) n++;
  return n;
}

/** Long output collapses to a few lines; the button shows all of it, or less again. */
function showLength(v) {
  const lines = v.lines + (v.text && !v.text.endsWith("\n") ? 1 : 0);
  const long = lines > LANE_COLLAPSED_LINES;
  v.el.dataset.long = long ? "true" : "false";
  v.el.dataset.expanded = long && v.expanded ? "true" : "false";
  v.more.hidden = !long;
  v.more.setAttribute("aria-expanded", v.expanded ? "true" : "false");
  v.more.textContent = v.expanded ? "Show less" : `Show all ${lines.toLocaleString("en-US")} lines`;
}

function setStatus(v, status, actions) {
  const s = String(status || "");
  v.el.dataset.status = s;
  v.status.textContent = s;
  v.status.dataset.state = s === "running" ? "busy" : s === "done" ? "idle" : s === "waiting" ? "waiting_on_approval" : "error";
  const running = s === "running" || s === "waiting";
  if (!running && document.activeElement === v.kill) actions.focusComposer();
  v.kill.hidden = !running;
}

// ---------------------------------------------------------------------------
// Approvals

function createApproval(item, actions) {
  const id = item.approvalId;
  const titleId = "apr-" + id.replace(/[^A-Za-z0-9_-]/g, "");
  const allow = el("button", { type: "button", class: "btn btn-primary", "data-testid": "approval-allow", "data-api": "session.approve", text: "Allow" });
  const always = el("button", {
    type: "button",
    class: "btn",
    "data-testid": "approval-always",
    "data-api": "session.approve",
    title: "Allow, and let this tool run without asking for the rest of the session",
    text: "Always allow",
  });
  const deny = el("button", { type: "button", class: "btn btn-danger", "data-testid": "approval-deny", "data-api": "session.approve", text: "Deny" });
  const status = el("p", { class: "approval-status", "data-testid": "approval-status", hidden: true });
  const buttons = el("div", { class: "approval-actions" }, allow, always, deny);
  const a = item.args;
  const args =
    a && typeof a === "object" && typeof a.command === "string" && Object.keys(a).length === 1 ? a.command : JSON.stringify(a ?? {}, null, 2);
  const card = el(
    "section",
    { class: "approval", "data-testid": "approval", "aria-labelledby": titleId, dataset: { approvalId: id, status: "pending", seq: item.seq } },
    el("h3", { id: titleId, text: `Approval needed: ${item.tool}` }),
    el("pre", { "data-testid": "approval-args", text: args }),
    buttons,
    status,
  );
  const decide = async (decision, remember = false) => {
    allow.disabled = always.disabled = deny.disabled = true;
    try {
      await actions.decide(id, decision, remember);
    } catch (e) {
      allow.disabled = always.disabled = deny.disabled = false;
      status.hidden = false;
      status.textContent = "Could not send the decision: " + ((e && e.message) || String(e));
    }
  };
  allow.addEventListener("click", () => decide("allow"));
  always.addEventListener("click", () => decide("allow", true));
  deny.addEventListener("click", () => decide("deny"));
  const v = { el: card, buttons, status, item: null };
  updateApproval(v, item, actions);
  return v;
}

function updateApproval(v, item, actions) {
  v.item = item;
  if (item.status === "pending" || v.el.dataset.status === item.status) return;
  v.el.dataset.status = item.status;
  const hadFocus = v.el.contains(document.activeElement);
  v.buttons.remove();
  v.status.hidden = false;
  v.status.textContent = (item.status === "allow" ? "Allowed" : "Denied") + (item.reason ? ` (${item.reason})` : "");
  if (hadFocus) actions.focusComposer();
}

// ---------------------------------------------------------------------------
// Notes

function createNote(item) {
  const v = { el: el("p", { class: "note" + (item.tone ? " note-" + item.tone : ""), "data-testid": "note", text: item.text }), item };
  if (item.at) v.el.title = fmtTime(item.at);
  return v;
}

function updateNote(v, item) {
  v.el.textContent = item.text;
  v.item = item;
}

// A note on the session's cortex board: who wrote it and its text; a critical one
// (shown to the agent at its next turn) is marked in words and in colour.
function createCortex(item) {
  const label = (item.critical ? "Critical note from " : "Note from ") + (item.source === "client" ? "a client" : `lobe ${item.source}`);
  const tags = item.tags.length ? ` (${item.tags.join(", ")})` : "";
  const node = el(
    "aside",
    {
      class: "cortex-note" + (item.critical ? " cortex-critical" : ""),
      "data-testid": "cortex-note",
      "data-critical": item.critical ? "true" : "false",
      "aria-label": label,
    },
    el("span", { class: "cortex-source", text: label + tags }),
    el("p", { class: "cortex-text", text: item.text }),
  );
  return { el: node, item };
}

const CREATE = { message: createMessage, lane: createLane, approval: createApproval, note: createNote, cortex: createCortex };
const UPDATE = { message: updateMessage, lane: updateLane, approval: updateApproval, note: updateNote, cortex: (v, item) => (v.item = item) };
