// Search ("/", the command palette, or the sidebar's Search button): a dialog with one query box over
// every session's history (`search.query`); each hit opens its session and scrolls to
// the record with that seq (drawn by the timeline on request), highlighted.
//
// Snippets are rendered from the hit's `parts` as text nodes and <mark>s, never as
// HTML, so nothing from a journal can inject markup.

import { $, el, errorText, fmtTime } from "./dom.js";
import { REVEAL_EVENT } from "./views/timeline.js";

/** Wait this long after the last keystroke before asking the daemon. */
const DEBOUNCE_MS = 150;
/** How long to wait for a hit's record to be rendered in the opened session. */
const FIND_MS = 5000;
/** How long to wait for the history of a long session, which opens on its last records. */
const HISTORY_MS = 30000;

const s = { call: null, openSession: null, timer: 0, asked: 0 };

export function init({ call, openSession }) {
  s.call = call;
  s.openSession = openSession;
  $("open-search").addEventListener("click", open);
  const input = $("search-input");
  input.addEventListener("input", () => {
    clearTimeout(s.timer);
    s.timer = setTimeout(run, DEBOUNCE_MS);
  });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    clearTimeout(s.timer);
    run();
  });
  $("search-close").addEventListener("click", close);
  $("search-dialog").addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") moveFocus(e);
  });
}

/** Opens the search box (with `query` in it, searched at once, if given). */
export function open(query) {
  const d = $("search-dialog");
  if (!d.open) d.showModal();
  const input = $("search-input");
  if (typeof query === "string" && query) {
    input.value = query;
    clearTimeout(s.timer);
    run();
  }
  input.focus();
  input.select();
}

function close() {
  $("search-dialog").close();
}

/** Arrow keys move between the box and the hits. */
function moveFocus(e) {
  const items = [$("search-input"), ...$("search-results").querySelectorAll("button")];
  const i = items.indexOf(document.activeElement);
  if (i < 0) return;
  e.preventDefault();
  const next = items[Math.max(0, Math.min(items.length - 1, i + (e.key === "ArrowDown" ? 1 : -1)))];
  next.focus();
}

async function run() {
  const q = $("search-input").value.trim();
  const list = $("search-results");
  const status = $("search-status");
  const ask = ++s.asked;
  if (!q) {
    list.replaceChildren();
    status.textContent = "";
    return;
  }
  try {
    const r = await s.call("search.query", { q, limit: 30 });
    if (ask !== s.asked) return;
    list.replaceChildren(...r.hits.map(hitEl));
    status.dataset.kind = "";
    status.textContent =
      (r.hits.length ? `${r.hits.length}${r.next_cursor ? "+" : ""} found` : "Nothing found") +
      (r.catching_up ? " (the index is still catching up)" : "");
  } catch (e) {
    if (ask !== s.asked) return;
    list.replaceChildren();
    status.dataset.kind = "error";
    status.textContent = errorText(e);
  }
}

function hitEl(h) {
  const snippet = el("span", { class: "search-snippet" });
  for (const p of h.parts) snippet.append(p.hit ? el("mark", { text: p.text }) : document.createTextNode(p.text));
  const button = el(
    "button",
    {
      type: "button",
      class: "search-hit",
      "data-testid": "search-hit",
      "data-api": "session.get",
      dataset: { sessionId: h.session_id, seq: h.seq },
    },
    el(
      "span",
      { class: "search-meta" },
      el("span", { class: "search-title", text: h.session_title || h.session_id }),
      el("span", { class: "badge", text: h.kind }),
      el("span", { class: "muted", text: `#${h.seq} · ${fmtTime(h.at)}` }),
    ),
    snippet,
  );
  button.addEventListener("click", () => go(h));
  return el("li", {}, button);
}

/** Opens the hit's session and scrolls to its record once it is rendered. */
async function go(h) {
  close();
  await s.openSession(h.session_id);
  const started = Date.now();
  let deadline = started + FIND_MS;
  const find = () => {
    if ($("view-chat").dataset.sessionId !== h.session_id) return; // another session was opened
    // The timeline draws only what is near the viewport: ask it to draw this record.
    const ask = { seq: h.seq, found: false };
    $("log").dispatchEvent(new CustomEvent(REVEAL_EVENT, { detail: ask }));
    if (!ask.found && Date.now() < started + HISTORY_MS) {
      // Nothing that early in the timeline yet: its history is still being read.
      deadline = Date.now() + FIND_MS;
      setTimeout(find, 50);
      return;
    }
    const target = recordEl(h.seq);
    if (target && (target.exact || Date.now() > deadline - FIND_MS / 2)) {
      target.el.scrollIntoView({ block: "center" });
      target.el.classList.remove("search-target");
      void target.el.offsetWidth; // restart the highlight's animation
      target.el.classList.add("search-target");
      target.el.dataset.searchTarget = String(h.seq);
      return;
    }
    if (Date.now() < deadline) setTimeout(find, 50);
  };
  find();
}

/** The element showing record `seq`: a message with that seq, a lane whose records
 * span it, or else the nearest record shown before it. */
function recordEl(seq) {
  const log = $("log");
  let best = null;
  let bestSeq = -1;
  for (const e of log.querySelectorAll("[data-seq]")) {
    const first = Number(e.dataset.seq);
    const last = Number(e.dataset.seqLast || first);
    if (first <= seq && seq <= last) return { el: e, exact: true };
    if (first <= seq && first > bestSeq) {
      best = e;
      bestSeq = first;
    }
  }
  return best && { el: best, exact: false };
}
