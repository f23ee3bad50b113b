// The conversation's timeline: renders `state.items` (web/store.js) into the chat log.
//
// The store's items are append-only and replaced (never changed in place) when their
// record changes. The log is virtualized: only the items in and near the viewport (and
// a few that must stay: the focused one, pending approvals, the last question and
// answer) have nodes; a spacer stands for each run of items between them, as tall as
// those items were when last drawn (or as estimated, before they ever were). What is
// not in the store is the view's own, kept by item key outside the nodes: whether a
// lane is open or expanded, heights, focus and scroll.

import { el, fmtTime, tokensText } from "../dom.js";
import { setMarkdown } from "../markdown.js";
import { laneText } from "../store.js";

/** Lines of a lane's output shown before it collapses behind "Show all". */
const LANE_COLLAPSED_LINES = 12;
/** Pixels drawn beyond the viewport on each side (at least; a viewport's height if more). */
const OVERSCAN_PX = 600;
/** Items drawn beyond each edge of the viewport, at least (a short session is drawn whole). */
const OVERSCAN_ITEMS = 25;
/** Items drawn around the viewport, at most (the kept ones come on top). */
const MAX_WINDOW = 160;
/** Nodes of items scrolled out kept off the page, to come back without being rebuilt. */
const PARKED_MAX = 200;
/** How close to the bottom counts as "at the bottom" (the log then follows new output). */
const PIN_PX = 48;
/** The event `web/search.js` dispatches on the log to bring a record into view. */
export const REVEAL_EVENT = "timeline:reveal";

/**
 * A timeline in `log`. `actions`: decide(approvalId, decision) and kill(lane) return
 * promises; refreshLanes() asks the daemon for lane statuses; focusComposer() takes
 * focus somewhere useful when the focused control goes away.
 */
export function createTimeline(log, actions) {
  /** item key → the view of an item with a node on the page: {el, item, pos, …parts} */
  const views = new Map();
  /** item key → the view of an item scrolled out, its node off the page (oldest first). */
  const parked = new Map();
  /** item key → the view-only state of a lane that outlives its node: {open, expanded}. */
  const ui = new Map();
  const uiOf = (key) => {
    let u = ui.get(key);
    if (!u) ui.set(key, (u = { open: true, expanded: false }));
    return u;
  };

  let items = [];
  /** Height of each item when last drawn, by position (undefined until it is). */
  let measured = [];
  /** tops[i]: where item i starts, from the first item's top; tops[n]: the end + a gap. */
  let tops = new Float64Array(1);
  /** Items `tops` was computed for. */
  let laidOut = 0;
  /** Measured over estimated height, summed per item type: scales the estimates. */
  const learned = {};
  /** Positions with a node on the page, ascending. */
  let shown = [];
  const spacers = [];
  /** Positions of the approvals still pending; `scanned` items were looked at. */
  const pending = new Set();
  let scanned = 0;
  let lastUser = -1;
  let lastAnswer = -1;
  /** Following the bottom (the user was there at the last change). */
  let pinned = true;
  let box = { gap: 0, padTop: 0, padBottom: 0 };
  let frame = 0;
  let updating = false;
  /** The items were folded again (`rebase`): the page is laid out anew. */
  let replaced = false;
  /** Where the reader was at the end of the last update ({pinned} or {pos, rel}), and
   * whether the log changed width since (the browser reflowed before the update ran). */
  let held = null;
  let resized = false;

  log.style.overflowAnchor = "none"; // the timeline keeps the scroll position itself

  function render(state) {
    const next = state.items;
    if (next !== items) {
      const last = items.length - 1;
      if (last >= 0 && (next.length <= last || next[0].key !== items[0].key || next[last].key !== items[last].key)) rebase(next);
      items = next;
    }
    for (; scanned < items.length; scanned++) {
      if (items[scanned].type === "approval" && items[scanned].status === "pending") pending.add(scanned);
    }
    for (const i of pending) if (items[i].status !== "pending") pending.delete(i);
    // The last user message offers Edit; the answer after it (if any) Regenerate.
    lastUser = lastAnswer = -1;
    for (let i = items.length - 1; i >= 0; i--) {
      const it = items[i];
      if (it.type !== "message") continue;
      if (it.role === "user") {
        lastUser = i;
        break;
      }
      if (lastAnswer < 0) lastAnswer = i;
    }
    update();
  }

  /** A new width reflows every item: heights measured at the old one are guesses now,
   * and the next update puts the reader back where they were before the reflow. */
  let width = 0;
  function checkWidth() {
    const w = log.clientWidth;
    if (!w || w === width) return;
    if (width) {
      measured = [];
      for (const type of Object.keys(learned)) delete learned[type];
      resized = true;
    }
    width = w;
  }

  /** Redraws on the next frame (after a scroll or a resize). */
  function schedule() {
    if (updating || frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      update();
    });
  }

  function viewOf(pos) {
    const it = items[pos];
    let v = views.get(it.key);
    if (v) return v;
    v = parked.get(it.key);
    if (v) {
      parked.delete(it.key);
      if (v.item !== it) UPDATE[it.type](v, it, actions);
    } else {
      v = CREATE[it.type](it, actions, it.type === "lane" ? uiOf(it.key) : null);
      v.fresh = true;
    }
    v.pos = pos;
    views.set(it.key, v);
    return v;
  }

  function park(key, v) {
    v.el.remove();
    views.delete(key);
    parked.set(key, v);
    if (parked.size > PARKED_MAX) parked.delete(parked.keys().next().value);
  }

  /** Heights of the items on the page, as laid out now; true when one changed. */
  function measure() {
    let changed = false;
    for (const i of shown) {
      const v = views.get(items[i].key);
      if (!v) continue;
      // The item's margin box: a note is a <p>, with the paragraph's margins.
      if (v.margin === undefined) {
        const cs = getComputedStyle(v.el);
        v.margin = (parseFloat(cs.marginTop) || 0) + (parseFloat(cs.marginBottom) || 0);
      }
      const h = v.el.getBoundingClientRect().height + v.margin;
      if (v.fresh) {
        v.fresh = false;
        const l = (learned[items[i].type] ??= { m: 0, e: 0 });
        l.m += h;
        l.e += estimate(items[i], ui);
      }
      if (v.placed) {
        // A node put (back) on the page scrolls from the start: long output shows its
        // last lines until expanded.
        v.placed = false;
        if (v.out && !v.expanded) v.out.scrollTop = v.out.scrollHeight;
      }
      if (measured[i] !== h) {
        measured[i] = h;
        changed = true;
      }
    }
    return changed;
  }

  function layoutTops() {
    const n = items.length;
    if (tops.length < n + 1) tops = new Float64Array(Math.max(n + 1, tops.length * 2));
    const scale = {};
    for (const [type, l] of Object.entries(learned)) scale[type] = l.e > 0 ? Math.min(4, Math.max(0.25, l.m / l.e)) : 1;
    let y = 0;
    for (let i = 0; i < n; i++) {
      tops[i] = y;
      const m = measured[i];
      y += (m === undefined ? estimate(items[i], ui) * (scale[items[i].type] ?? 1) : m) + box.gap;
    }
    tops[n] = y;
    laidOut = n;
  }

  const heightOf = (i) => tops[i + 1] - tops[i] - box.gap;
  /** The first position (of the first `n`) whose item ends below `y` (n when none). */
  function firstBelow(y, n = items.length) {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (tops[mid + 1] - box.gap > y) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /**
   * The item at the top of the viewport and how far below the viewport's top it starts
   * (negative: it starts above), so the same item can be put back at the same place
   * whatever was drawn or measured above it. Read from the page when an item with a
   * node is in view, else from the positions the spacers were sized with.
   */
  function readAnchor() {
    const top = log.getBoundingClientRect().top + log.clientTop;
    for (const i of shown) {
      const v = views.get(items[i].key);
      if (!v) continue;
      const r = v.el.getBoundingClientRect();
      if (r.bottom <= top) continue;
      if (r.top < top + log.clientHeight) return [i, r.top - top];
      break;
    }
    if (!laidOut) return [-1, 0];
    const i = Math.min(firstBelow(log.scrollTop - box.padTop, laidOut), laidOut - 1);
    return [i, box.padTop + tops[i] - log.scrollTop];
  }

  /** The position of the item holding focus, or -1. */
  function focusedPos() {
    let a = document.activeElement;
    if (!a || a === log || !log.contains(a)) return -1;
    while (a.parentNode !== log) a = a.parentNode;
    for (const v of views.values()) if (v.el === a) return v.pos;
    return -1;
  }

  /**
   * Draws the items around the viewport and keeps the scroll where the reader is: at
   * the bottom when they were there, else on the same item at the same offset (or,
   * with `reveal`, on that position, centred).
   */
  function update(reveal = -1) {
    if (updating) return;
    updating = true;
    try {
      // Before the resize observer has told us, an update (a scroll the reflow caused)
      // must not take the reflowed page for where the reader is.
      checkWidth();
      const n = items.length;
      const visible = log.clientHeight > 0;
      const ch = visible ? log.clientHeight : 800;
      let anchor = -1;
      let rel = 0;
      if (visible) {
        const cs = getComputedStyle(log);
        box = { gap: parseFloat(cs.rowGap) || 0, padTop: parseFloat(cs.paddingTop) || 0, padBottom: parseFloat(cs.paddingBottom) || 0 };
        measure();
        if (resized && held) {
          pinned = held.pinned;
          if (!pinned) [anchor, rel] = [Math.min(held.pos, n - 1), held.rel];
        } else {
          pinned = log.scrollHeight - log.scrollTop - ch < PIN_PX;
          if (!pinned) [anchor, rel] = readAnchor();
        }
        resized = false;
      }
      layoutTops();
      if (reveal >= 0 && reveal < n) {
        pinned = false;
        anchor = reveal;
        rel = Math.max(0, (ch - heightOf(reveal)) / 2);
      }
      for (const i of shown) {
        const v = views.get(items[i]?.key);
        if (v && v.item !== items[i]) UPDATE[items[i].type](v, items[i], actions);
      }
      const over = Math.max(OVERSCAN_PX, ch);
      for (let pass = 0; pass < 4; pass++) {
        const total = n ? tops[n] - box.gap : 0;
        const top = pinned || anchor < 0 ? Math.max(0, total + box.padBottom - ch) : tops[anchor] - rel;
        let s = Math.max(0, Math.min(firstBelow(top - over), firstBelow(top) - OVERSCAN_ITEMS));
        let e = Math.min(n - 1, Math.max(firstBelow(top + ch + over), firstBelow(top + ch) + OVERSCAN_ITEMS));
        if (e - s + 1 > MAX_WINDOW) {
          const c = firstBelow(top);
          s = Math.max(s, c - (MAX_WINDOW >> 2));
          e = Math.min(e, s + MAX_WINDOW - 1);
        }
        const want = new Set();
        for (let i = s; i <= e; i++) want.add(i);
        for (const i of [focusedPos(), lastUser, lastAnswer, anchor, ...pending]) if (i >= 0 && i < n) want.add(i);
        const next = [...want].sort((a, b) => a - b);
        const same = next.length === shown.length && next.every((x, k) => x === shown[k]);
        if (!same || replaced) place(next);
        replaced = false;
        if (!visible) break;
        const grew = measure();
        layoutTops();
        if (same && !grew) break;
      }
      sizeSpacers();
      mark();
      if (visible && n) {
        const want = pinned ? log.scrollHeight : anchor >= 0 ? box.padTop + tops[anchor] - rel : log.scrollTop;
        if (Math.abs(log.scrollTop - want) > 1) log.scrollTop = want;
        const [pos, at] = pinned ? [-1, 0] : readAnchor();
        held = pinned ? { pinned } : pos >= 0 ? { pinned, pos, rel: at } : null;
      }
    } finally {
      updating = false;
    }
  }

  /** Puts the nodes of positions `next` on the page, in order; a node that stays is
   * never moved (moving a focused node would blur it). */
  function place(next) {
    const keep = new Set(next.map((i) => items[i].key));
    for (const [key, v] of views) if (!keep.has(key)) park(key, v);
    for (const sp of spacers) sp.remove();
    let cur = log.firstChild;
    for (const i of next) {
      const v = viewOf(i);
      if (v.el === cur) cur = cur.nextSibling;
      else {
        log.insertBefore(v.el, cur);
        v.placed = true;
      }
    }
    while (cur) {
      const after = cur.nextSibling;
      cur.remove();
      cur = after;
    }
    shown = next;
    // A spacer before each run of items without nodes, and one after the last.
    let k = 0;
    let prev = -1;
    const gapBefore = (ref) => {
      let sp = spacers[k++];
      if (!sp) {
        sp = el("div", { class: "log-spacer", "aria-hidden": "true" });
        sp.style.flex = "none";
        spacers.push(sp);
      }
      log.insertBefore(sp, ref);
    };
    for (const i of next) {
      if (i > prev + 1) gapBefore(views.get(items[i].key).el);
      prev = i;
    }
    if (prev < items.length - 1) gapBefore(null);
    spacers.length = k;
  }

  function sizeSpacers() {
    let k = 0;
    let prev = -1;
    const size = (a, b) => {
      const sp = spacers[k++];
      if (sp) sp.style.height = Math.max(0, tops[b + 1] - tops[a] - box.gap) + "px";
    };
    for (const i of shown) {
      if (i > prev + 1) size(prev + 1, i - 1);
      prev = i;
    }
    if (prev < items.length - 1) size(prev + 1, items.length - 1);
  }

  /** Edit on the last user message, Regenerate on the answer after it. */
  function mark() {
    for (const v of views.values()) {
      if (v.edit) v.edit.hidden = v.pos !== lastUser;
      if (v.regen) v.regen.hidden = v.pos !== lastAnswer || v.item.streaming;
    }
  }

  /** Brings the item showing record `seq` into view (drawing it); false when the
   * timeline has no record that far yet. */
  function reveal(seq) {
    let best = -1;
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      const first = it.seq;
      const last = it.seqLast ?? first;
      if (first <= seq && seq <= last) {
        best = i;
        break;
      }
      if (first <= seq && (best < 0 || first > items[best].seq)) best = i;
    }
    if (best < 0) return false;
    update(best);
    return true;
  }

  /**
   * The timeline was folded again with history before its first item (a long session
   * opens on its last records): what was drawn and measured moves to its items' new
   * positions, by key, and the next update keeps the reader on the same item.
   */
  function rebase(next) {
    const at = new Map();
    for (let i = 0; i < next.length; i++) at.set(next[i].key, i);
    const heights = [];
    measured.forEach((h, i) => {
      const j = at.get(items[i].key);
      if (j !== undefined) heights[j] = h;
    });
    measured = heights;
    for (const [key, v] of views) {
      const j = at.get(key);
      if (j === undefined) {
        v.el.remove();
        views.delete(key);
      } else v.pos = j;
    }
    for (const key of parked.keys()) if (!at.has(key)) parked.delete(key);
    shown = [...views.values()].map((v) => v.pos).sort((a, b) => a - b);
    pending.clear();
    scanned = 0;
    laidOut = 0;
    replaced = true;
    held = null;
  }

  function clear() {
    cancelAnimationFrame(frame);
    frame = 0;
    items = [];
    measured = [];
    laidOut = 0;
    shown = [];
    spacers.length = 0;
    views.clear();
    parked.clear();
    ui.clear();
    pending.clear();
    scanned = 0;
    lastUser = lastAnswer = -1;
    pinned = true;
    replaced = false;
    held = null;
    log.replaceChildren();
  }

  log.addEventListener("scroll", schedule, { passive: true });
  new ResizeObserver(() => {
    checkWidth();
    schedule();
  }).observe(log);
  log.addEventListener(REVEAL_EVENT, (e) => {
    e.detail.found = reveal(Number(e.detail.seq));
  });

  return { render, clear, reveal };
}

/** A first guess at an item's height in pixels, before it is drawn (cached per item). */
const estimates = new WeakMap();
function estimate(item, ui) {
  if (item.type === "lane" && ui.get(item.key)?.open === false) return 36;
  let h = estimates.get(item);
  if (h !== undefined) return h;
  switch (item.type) {
    case "message":
      h = 64 + 22 * textLines(item.text, 90);
      break;
    case "lane": {
      const lines = Math.min(LANE_COLLAPSED_LINES, textLines(laneText(item), Infinity));
      h = 36 + 36 + 19 * lines + (item.result ? 22 : 0) + (lines >= LANE_COLLAPSED_LINES || item.status === "running" ? 36 : 0);
      break;
    }
    case "approval":
      h = 150;
      break;
    case "cortex":
      h = 44 + 20 * textLines(item.text, 100);
      break;
    default:
      h = 22 * textLines(item.text || "", 120);
  }
  estimates.set(item, h);
  return h;
}

/** Lines `text` takes, wrapping at `width` characters (counting at most 64 KiB). */
function textLines(text, width) {
  let n = 0;
  let at = 0;
  const end = Math.min(text.length, 65536);
  while (at <= end) {
    let nl = text.indexOf("\n", at);
    if (nl < 0 || nl > end) nl = end;
    n += Math.max(1, Math.ceil((nl - at) / width));
    at = nl + 1;
  }
  return n;
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

/** `ui`: the lane's view-only state ({open, expanded}), kept while its node comes and goes. */
function createLane(item, actions, ui) {
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
    { class: "lane", open: ui.open, "data-testid": "lane", dataset: { lane: item.lane, status: "running" } },
    summary,
    el("div", { class: "lane-body" }, out, result, el("div", { class: "lane-actions" }, more, kill)),
  );
  const v = { el: details, toolEl, status, args, out, more, result, kill, item: null, text: "", lines: 0, expanded: ui.expanded };
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
  details.addEventListener("toggle", () => (ui.open = details.open));
  more.addEventListener("click", () => {
    v.expanded = ui.expanded = !v.expanded;
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
