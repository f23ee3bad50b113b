// The session view's "Worktree" tab: the session's git worktree (branch, base,
// ahead/behind, dirty, state), its diff against the base commit, and Merge / Clean.
//
// The tab appears only when `worktree.list {session_id}` finds a worktree. The diff
// (web/diff.js parses, numbers and pairs its lines) is shown unified or side by side,
// highlighted by highlight.js, each file collapsible; see "The diff" below.

import { $, el, errorText, shortCommit, confirmDialog } from "./dom.js";
import { parseUnifiedDiff, lineNumbers, sideBySide, fileInfo, describeFile } from "./diff.js";
import { languageOf, highlight } from "./highlight.js";

const STRATEGY_HELP = {
  "ff-only": "Advances the base branch to this branch; refused if the base branch has moved.",
  squash: "Adds one new commit with all of this branch's changes to the base branch.",
  ours: "Adds a merge commit; where both sides changed the same lines, the base branch's side is kept.",
};

const STATE_LABELS = { active: "active", merged: "merged", cleaned: "cleaned" };

/** The pane's state: `call` (the RPC), and the open session's worktree. */
const pane = {
  call: null,
  sessionId: null,
  wt: null, // WorktreeView
  diff: null, // WorktreeDiff last shown
  busy: false,
  gen: 0, // bumped on every open/close, so late answers for another session are dropped
  tab: "conversation",
};

/** Wires the pane's controls; `call(method, params)` is the UI's RPC. */
export function init({ call }) {
  pane.call = call;
  $("tab-conversation").addEventListener("click", () => selectTab("conversation", true));
  $("tab-worktree").addEventListener("click", () => selectTab("worktree", true));
  $("chat-tabs").addEventListener("keydown", onTabKey);
  $("wt-strategy").addEventListener("change", strategyHelp);
  $("wt-merge").addEventListener("click", merge);
  $("wt-clean").addEventListener("click", clean);
  $("wt-refresh").addEventListener("click", () => refresh());
  $("wt-full").addEventListener("click", () => refresh({ full: true, announce: true }));
  initDiffView();
  strategyHelp();
}

/** A session was opened (or the connection came back): look for its worktree. */
export async function open(sessionId) {
  const same = pane.sessionId === sessionId;
  if (!same) {
    reset();
    pane.sessionId = sessionId;
  }
  const gen = pane.gen;
  let list;
  try {
    list = await pane.call("worktree.list", { session_id: sessionId });
  } catch {
    return; // the tab stays as it was; the conversation works without it
  }
  if (gen !== pane.gen) return;
  const wts = (list && list.worktrees) || [];
  const wt = wts[wts.length - 1];
  if (!wt) {
    showTabs(false);
    return;
  }
  showTabs(true);
  setWorktree(wt);
  if (pane.tab === "worktree") await loadDiff();
}

/** The session view closed. */
export function close() {
  reset();
}

/** The session's turn ended: its files may have changed, so a visible diff is refreshed. */
export function settled(sessionId) {
  if (pane.sessionId === sessionId && pane.wt && pane.tab === "worktree" && !pane.busy) refresh();
}

function reset() {
  pane.gen++;
  pane.sessionId = null;
  pane.wt = null;
  pane.diff = null;
  pane.busy = false;
  selectTab("conversation", false);
  showTabs(false);
  setStatus("");
  $("wt-files").replaceChildren();
  $("wt-diff").replaceChildren();
  $("wt-truncated").hidden = true;
  $("wt-diff-empty").hidden = true;
  $("wt-diff-summary").textContent = "";
}

/**
 * The session view's tabs, in order. The conversation is always there; the worktree
 * tab with a worktree; the files tab (web/files.js) whenever the bar shows, that is
 * when the session has a worktree or has touched files (`offerTab("files", …)`).
 */
const TABS = [
  { name: "conversation", tab: "tab-conversation", panel: "panel-conversation" },
  { name: "worktree", tab: "tab-worktree", panel: "panel-worktree" },
  { name: "files", tab: "tab-files", panel: "panel-files" },
];
const offered = { worktree: false, files: false };
const tabWatchers = [];

/** Offers (`on`) or withdraws the tab `name` of another module ("files"). */
export function offerTab(name, on) {
  offered[name] = !!on;
  showTabs(offered.worktree);
}

/** Calls `fn(name, user)` each time a tab is selected (`user`: by a click or a key). */
export function onTabSelect(fn) {
  tabWatchers.push(fn);
}

/** The name of the selected tab. */
export function currentTab() {
  return pane.tab;
}

function tabShown(name) {
  if (name === "worktree") return offered.worktree;
  if (name === "files") return offered.worktree || offered.files;
  return true;
}

/** `on`: the session has a worktree. The bar shows when any tab but the conversation does. */
function showTabs(on) {
  offered.worktree = !!on;
  const bar = offered.worktree || offered.files;
  $("chat-tabs").hidden = !bar;
  for (const t of TABS) $(t.tab).hidden = !tabShown(t.name);
  const conv = $("panel-conversation");
  // With the conversation alone there are no tabs: the panel is a plain container.
  if (bar) {
    conv.setAttribute("role", "tabpanel");
    conv.setAttribute("aria-labelledby", "tab-conversation");
  } else {
    conv.removeAttribute("role");
    conv.removeAttribute("aria-labelledby");
  }
  if (!tabShown(pane.tab)) selectTab("conversation", false);
}

export function selectTab(name, user) {
  const changed = pane.tab !== name;
  pane.tab = name;
  for (const t of TABS) {
    const on = t.name === name;
    $(t.tab).setAttribute("aria-selected", on ? "true" : "false");
    $(t.tab).tabIndex = on ? 0 : -1;
    $(t.panel).hidden = !on;
  }
  document.body.dataset.chatTab = name;
  if (user && changed && name === "worktree" && pane.wt) refresh();
  for (const fn of tabWatchers) fn(name, user && changed);
}

/** Arrow keys move between the shown tabs (wrapping), Home and End to the first and last. */
function onTabKey(e) {
  if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) return;
  e.preventDefault();
  const shown = TABS.filter((t) => tabShown(t.name));
  const at = Math.max(0, shown.findIndex((t) => t.name === pane.tab));
  const i = e.key === "Home" ? 0 : e.key === "End" ? shown.length - 1 : (at + (e.key === "ArrowRight" ? 1 : shown.length - 1)) % shown.length;
  selectTab(shown[i].name, true);
  $(shown[i].tab).focus();
}

function strategyHelp() {
  $("wt-strategy-help").textContent = STRATEGY_HELP[$("wt-strategy").value] || "";
}

/** Shows a result (`ok`), an error (`error`) or progress (`busy`) in the live region. */
function setStatus(text, kind = "") {
  const s = $("wt-status");
  s.textContent = text || "";
  s.dataset.kind = text ? kind : "";
}

function setWorktree(wt) {
  pane.wt = wt;
  const box = $("panel-worktree");
  box.dataset.worktreeId = wt.id;
  box.dataset.state = wt.state;
  $("wt-branch").textContent = wt.branch + (wt.branch_exists ? "" : " (deleted)");
  $("wt-base").textContent =
    (wt.base_branch || wt.base_ref) + " at " + shortCommit(wt.base_commit) + (wt.base_branch && wt.base_branch !== wt.base_ref ? ` (from ${wt.base_ref})` : "");
  $("wt-ahead").textContent = `${wt.ahead} ahead, ${wt.behind} behind`;
  $("wt-dirty").textContent = wt.state === "cleaned" ? "none (removed)" : wt.dirty ? "yes" : "no";
  $("wt-dirty").dataset.dirty = wt.dirty ? "true" : "false";
  const badge = $("wt-state");
  badge.dataset.state = wt.state;
  badge.textContent = STATE_LABELS[wt.state] || wt.state;
  $("wt-path").textContent = wt.path;
  const head = shortCommit(wt.head_commit) || "—";
  $("wt-head").textContent = !wt.merged_commit
    ? head
    : wt.merged_commit === wt.head_commit
      ? `${head} (merged)`
      : `${head} (merged as ${shortCommit(wt.merged_commit)})`;
  if (wt.state === "cleaned") {
    pane.diff = null;
    $("wt-files").replaceChildren();
    $("wt-diff").replaceChildren();
    $("wt-truncated").hidden = true;
    $("wt-diff-summary").textContent = "";
    $("wt-diff-empty").hidden = false;
    $("wt-diff-empty").textContent = "This worktree was cleaned: its checkout is gone, so there is no diff to show.";
  }
  updateButtons();
}

function updateButtons() {
  const wt = pane.wt;
  const live = !!wt && wt.state !== "cleaned";
  for (const id of ["wt-merge", "wt-clean", "wt-strategy", "wt-refresh", "wt-full"]) {
    const ok = live && !pane.busy && (id !== "wt-merge" || !!wt.base_branch);
    $(id).disabled = !ok;
  }
  $("panel-worktree").setAttribute("aria-busy", pane.busy ? "true" : "false");
}

/** The worktree (and its diff, unless cleaned) again. */
async function refresh({ full, announce = false } = {}) {
  if (!pane.wt) return;
  const gen = pane.gen;
  try {
    const list = await pane.call("worktree.list", { session_id: pane.sessionId });
    if (gen !== pane.gen) return;
    const wt = (list.worktrees || []).find((w) => w.id === pane.wt.id);
    if (wt) setWorktree(wt);
  } catch (e) {
    if (gen === pane.gen) setStatus("Could not refresh the worktree: " + errorText(e), "error");
    return;
  }
  await loadDiff({ full, announce });
}

/** Fetches and shows the diff, whole if `full` (by default: whole if it was whole);
 * `announce` reports a full load in the live region and moves the focus to the diff
 * (the button that asked for it disappears). */
async function loadDiff({ full = !!(pane.diff && pane.diff.full), announce = false } = {}) {
  const wt = pane.wt;
  if (!wt || wt.state === "cleaned") return;
  const gen = pane.gen;
  pane.busy = true;
  updateButtons();
  if (announce) setStatus("Loading the full diff…", "busy");
  try {
    const params = { worktree_id: wt.id };
    if (full) params.full = true;
    const d = await pane.call("worktree.diff", params);
    if (gen !== pane.gen) return;
    d.full = full;
    renderDiff(d);
    if (announce) {
      setStatus(`Loaded the full diff (${kib(d.total_bytes)}).`, "ok");
      $("wt-diff-title").focus();
    }
  } catch (e) {
    if (gen === pane.gen) setStatus("Could not load the diff: " + errorText(e), "error");
  } finally {
    if (gen === pane.gen) {
      pane.busy = false;
      updateButtons();
    }
  }
}

function kib(n) {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${Math.max(1, Math.round(n / 1024))} KiB`;
}

// ---------------------------------------------------------------------------
// The diff: unified or side by side, syntax-highlighted, each file collapsible.
//
// The diff text is untrusted: lines reach the page as text nodes, or highlighted by
// web/highlight.js (sanitized, only <span class> kept, inserted as DOM nodes).

/** Diffs longer than this (characters) are shown without syntax highlighting, so a big
 * diff stays quick to show and to switch between layouts. */
const HIGHLIGHT_MAX_CHARS = 256 * 1024;
/** Where the chosen layout is kept. */
const MODE_KEY = "r1.diffMode";
/** Narrower than this (the UI's one-column breakpoint), side by side does not fit. */
const NARROW = "(max-width: 719px)";

const view = {
  mode: "unified", // the chosen layout: "unified" or "split"
  narrow: null, // the MediaQueryList of NARROW
  collapsed: new Set(), // paths of the files the user collapsed
  worktreeId: null, // the worktree `collapsed` is about
  text: null, // the diff text `files` was parsed from
  files: [], // the files shown: [{path, lines, info, words, lang, hl}]
  stats: new Map(), // path → the diff's DiffFileStat
  highlight: true, // false when the diff is longer than HIGHLIGHT_MAX_CHARS
};

/** Wires the layout switch and Collapse all / Expand all. */
function initDiffView() {
  view.mode = readMode();
  for (const r of document.querySelectorAll('input[name="wt-diff-mode"]')) {
    r.checked = r.value === view.mode;
    r.addEventListener("change", () => {
      if (r.checked) setMode(r.value);
    });
  }
  $("wt-collapse-all").addEventListener("click", () => setAllCollapsed(true));
  $("wt-expand-all").addEventListener("click", () => setAllCollapsed(false));
  view.narrow = window.matchMedia(NARROW);
  view.narrow.addEventListener("change", () => {
    if (pane.diff) drawFiles();
  });
}

function readMode() {
  try {
    return localStorage.getItem(MODE_KEY) === "split" ? "split" : "unified";
  } catch {
    return "unified";
  }
}

function setMode(mode) {
  view.mode = mode;
  try {
    localStorage.setItem(MODE_KEY, mode);
  } catch {
    // storage refused: the choice lasts until the page reloads
  }
  if (pane.diff) drawFiles();
  if (mode === "split" && view.narrow.matches) setStatus("Side by side needs a wider window; the diff stays unified.", "");
}

/** The layout shown: side by side when chosen and the window is wide enough. */
function shownMode() {
  return view.mode === "split" && !view.narrow.matches ? "split" : "unified";
}

function gutter(oldNo, newNo) {
  return String(oldNo ?? "").padStart(5) + " " + String(newNo ?? "").padStart(5);
}


function renderDiff(d) {
  pane.diff = d;
  if (view.worktreeId !== (pane.wt && pane.wt.id)) {
    view.collapsed.clear();
    view.worktreeId = pane.wt && pane.wt.id;
  }
  view.stats = new Map((d.files || []).map((f) => [f.path, f]));
  const added = (d.files || []).reduce((n, f) => n + f.added, 0);
  const removed = (d.files || []).reduce((n, f) => n + f.removed, 0);
  const count = (d.files || []).length;
  // The same text as last time (a refresh after a turn that changed nothing): the
  // parsed and highlighted files are kept.
  if (view.text !== d.diff || !view.files.length) {
    view.text = d.diff;
    view.highlight = (d.diff || "").length <= HIGHLIGHT_MAX_CHARS;
    view.files = parseUnifiedDiff(d.diff).map((f) => {
      const info = fileInfo(f);
      return { path: f.path, lines: f.lines, info, words: describeFile(info), lang: languageOf(f.path), hl: null };
    });
  }
  $("wt-diff-summary").textContent = count ? `${count} file${count === 1 ? "" : "s"}, +${added} −${removed}` : "";
  $("wt-diff-empty").hidden = count > 0 || view.files.length > 0;
  $("wt-diff-empty").textContent = "No changes against the base commit.";
  const trunc = $("wt-truncated");
  trunc.hidden = !d.truncated;
  $("wt-truncated-text").textContent = d.truncated
    ? `This diff is ${kib(d.total_bytes)}; only its first part is shown.`
    : "";
  drawFiles();

  // The list is redrawn too: a focused entry stays focused (a refresh after a turn).
  const active = document.activeElement;
  const listPath = $("wt-files").contains(active) ? active.dataset.path : null;
  $("wt-files").replaceChildren(
    ...(d.files || []).map((f) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: "wt-file",
            "data-testid": "worktree-file",
            "data-api": "worktree.diff",
            dataset: { path: f.path },
            onclick: () => jumpTo(f.path),
          },
          el("span", { class: "diff-path", text: f.path }),
          statEl(f),
        ),
      ),
    ),
  );
  if (listPath !== null && listPath !== undefined) {
    const again = Array.from($("wt-files").querySelectorAll(".wt-file")).find((b) => b.dataset.path === listPath);
    if (again) again.focus();
  }
}

/** (Re)draws the files of the diff in the layout shown; the focus, if it was on a file's
 * toggle or body, goes back to the same file's. */
function drawFiles() {
  const box = $("wt-diff");
  const mode = shownMode();
  box.dataset.mode = mode;
  const active = document.activeElement;
  const was = box.contains(active) ? active.closest(".diff-file") : null;
  const focusPath = was ? was.dataset.path : null;
  const onToggle = !!was && active.classList.contains("diff-toggle");

  const notes = [];
  if (view.files.length && view.mode === "split" && mode === "unified") {
    notes.push("Side by side needs a wider window, so the diff is shown unified.");
  }
  if (!view.highlight && view.files.some((f) => f.lang)) {
    notes.push(
      `Syntax highlighting is off: this diff is ${kib(pane.diff.diff.length)}, over the ${kib(HIGHLIGHT_MAX_CHARS)} that are highlighted.`,
    );
  }
  const frag = document.createDocumentFragment();
  if (notes.length) frag.append(el("p", { class: "diff-note", "data-testid": "diff-note", text: notes.join(" ") }));
  view.files.forEach((f, i) => frag.append(fileSection(f, i)));
  box.replaceChildren(frag);

  if (focusPath === null) return;
  const s = findSection(focusPath);
  if (!s) return;
  const body = s.querySelector(".diff-body");
  (onToggle || !body || s.dataset.collapsed === "true" ? s.querySelector(".diff-toggle") : body).focus({ preventScroll: true });
}

/** A file: its header (collapse toggle, path, what changed, counts) and its lines. */
function fileSection(f, i) {
  const headId = `wt-file-${i}`;
  const bodyId = `wt-file-body-${i}`;
  const st = view.stats.get(f.path);
  const collapsed = view.collapsed.has(f.path);
  const body = el("div", { class: "diff-file-body", id: bodyId, hidden: collapsed });
  const section = el(
    "section",
    {
      class: "diff-file",
      "data-testid": "diff-file",
      dataset: { path: f.path, index: String(i), collapsed: String(collapsed), lang: f.lang },
      "aria-labelledby": headId,
    },
    el(
      "h4",
      { class: "diff-file-head", id: headId },
      el(
        "button",
        {
          type: "button",
          class: "diff-toggle",
          "aria-expanded": collapsed ? "false" : "true",
          "aria-controls": bodyId,
          "data-testid": "diff-file-toggle",
          "data-local": "expand",
          dataset: { path: f.path },
          onclick: () => setCollapsed(section, section.dataset.collapsed !== "true"),
        },
        el("span", { class: "diff-chevron", "aria-hidden": "true" }),
        el("span", { class: "diff-path", text: f.path || "(diff)" }),
      ),
      f.words.tags.length ? el("span", { class: "diff-tags", "data-testid": "diff-file-tags", text: f.words.tags.join(", ") }) : null,
      st ? statEl(st) : null,
    ),
    body,
  );
  if (!collapsed) fillBody(body, f, headId);
  return section;
}

/** Collapses or expands one file; a body is built the first time it is shown. */
function setCollapsed(section, on) {
  const f = view.files[Number(section.dataset.index)];
  if (!f) return;
  if (on) view.collapsed.add(f.path);
  else view.collapsed.delete(f.path);
  section.dataset.collapsed = String(on);
  section.querySelector(".diff-toggle").setAttribute("aria-expanded", on ? "false" : "true");
  const body = section.querySelector(".diff-file-body");
  if (!on && !body.hasChildNodes()) fillBody(body, f, section.getAttribute("aria-labelledby"));
  body.hidden = on;
}

function setAllCollapsed(on) {
  for (const s of $("wt-diff").querySelectorAll(".diff-file")) setCollapsed(s, on);
}

function fillBody(body, f, headId) {
  if (f.info.hunks === 0) {
    // Binary, mode-only, empty: said in words.
    const last = view.files[view.files.length - 1] === f;
    const text =
      pane.diff.truncated && last && !f.info.binary
        ? "This file's changes are past the cut: load the full diff to see them."
        : f.words.body;
    body.append(el("p", { class: "diff-nolines", "data-testid": "diff-file-note", text }));
    return;
  }
  body.append(shownMode() === "split" ? splitBody(f) : unifiedBody(f, headId));
}

/** The unified layout: one line per row, both line numbers in the gutter (a CSS
 * ::before of data-ln, so copying the text copies the diff). */
function unifiedBody(f, headId) {
  const hl = highlighted(f);
  const nums = lineNumbers(f.lines);
  const code = el("code", { class: "diff-lines" });
  f.lines.forEach((line, i) => {
    const span = document.createElement("span");
    span.className = "dl dl-" + line.kind;
    const [oldNo, newNo] = nums[i];
    if (oldNo !== null || newNo !== null) span.dataset.ln = gutter(oldNo, newNo);
    const nodes = hl && (line.kind === "del" ? hl.old : hl.new).get(i);
    if (nodes) span.append(line.text.slice(0, 1) || " ", nodes.cloneNode(true));
    // A line's own text, never markup; an empty line keeps its height with a space.
    else span.textContent = line.text || " ";
    code.append(span);
  });
  return el(
    "pre",
    { class: "diff-body", tabindex: "0", "data-testid": "diff-body", "data-api": "worktree.diff", "aria-labelledby": headId },
    code,
  );
}

/** The side-by-side layout: a table of the base version's lines (left) and the
 * worktree's (right), paired by diff.js's sideBySide; long lines wrap, so nothing
 * scrolls sideways and the table needs no focus. */
function splitBody(f) {
  const hl = highlighted(f);
  const th = (text, hidden) =>
    el("th", { scope: "col" }, hidden ? el("span", { class: "visually-hidden", text }) : text);
  const tbody = el("tbody");
  for (const r of sideBySide(f.lines)) {
    if (r.type === "hunk") {
      tbody.append(el("tr", { class: "sbs-hunk" }, el("td", { colspan: "4", text: r.text })));
    } else {
      tbody.append(el("tr", { class: "sbs-line" }, ...cells(r.left, "old", hl), ...cells(r.right, "new", hl)));
    }
  }
  const table = el(
    "table",
    { class: "diff-sbs", "data-testid": "diff-sbs" },
    el("caption", { class: "visually-hidden", text: `${f.path}: the base version on the left, the worktree's on the right` }),
    el("colgroup", {}, el("col", { class: "sbs-col-ln" }), el("col", { class: "sbs-col-code" }), el("col", { class: "sbs-col-ln" }), el("col", { class: "sbs-col-code" })),
    el("thead", {}, el("tr", {}, th("Old line number", true), th("Before"), th("New line number", true), th("After"))),
    tbody,
  );
  return el("div", { class: "diff-body diff-body-sbs" }, table);
}

/** The number and code cells of one side of a row (empty when the side has no line). */
function cells(c, side, hl) {
  if (!c) {
    return [
      el("td", { class: "sbs-ln sbs-empty", dataset: { side } }),
      el("td", { class: "sbs-code sbs-empty", dataset: { side } }),
    ];
  }
  const nodes = hl && hl[side].get(c.index);
  const code = el(
    "td",
    { class: `sbs-code sbs-${c.kind}`, dataset: { side } },
    el("span", { class: "sbs-sign", text: c.kind === "add" ? "+" : c.kind === "del" ? "-" : " " }),
    nodes ? nodes.cloneNode(true) : c.text,
  );
  if (c.noEol) code.append(el("span", { class: "sbs-noeol", text: "No newline at end of file" }));
  return [el("td", { class: `sbs-ln sbs-${c.kind}`, dataset: { side }, text: String(c.no) }), code];
}

/**
 * A file's lines highlighted, `{old, new}`: maps from a line's index to its highlighted
 * nodes (to clone), or null (no language, or the diff is too long).
 *
 * Highlighting is per hunk side: a hunk's context and removed lines are highlighted as
 * one text (a piece of the old file), its context and added lines as another (a piece of
 * the new file), and the result is split back into lines. So a string or comment that
 * spans lines within a hunk is coloured right; one opened before the hunk starts is not
 * (the diff does not have those lines).
 */
function highlighted(f) {
  if (!view.highlight || !f.lang) return null;
  if (f.hl) return f.hl;
  const hl = { old: new Map(), new: new Map() };
  let oldSide = [];
  let newSide = [];
  const paint = (idx, map) => {
    if (!idx.length) return;
    const lines = highlightLines(
      idx.map((i) => f.lines[i].text.slice(1)),
      f.lang,
    );
    if (lines) idx.forEach((i, k) => map.set(i, lines[k]));
  };
  const flush = () => {
    paint(oldSide, hl.old);
    paint(newSide, hl.new);
    oldSide = [];
    newSide = [];
  };
  f.lines.forEach((line, i) => {
    if (line.kind === "hunk") flush();
    else if (line.kind === "ctx") {
      oldSide.push(i);
      newSide.push(i);
    } else if (line.kind === "del") oldSide.push(i);
    else if (line.kind === "add") newSide.push(i);
  });
  flush();
  f.hl = hl;
  return hl;
}

/** `texts` highlighted as one block of `lang`, as one DocumentFragment per line (null if
 * highlight.js fails). Spans open across a line break are closed at its end and opened
 * again on the next line. */
function highlightLines(texts, lang) {
  let sanitized;
  try {
    sanitized = highlight(texts.join("\n"), lang);
  } catch {
    return null;
  }
  let line = document.createDocumentFragment();
  const out = [line];
  const chain = []; // the sanitized spans around the current text
  let open = []; // their copies on the current line, outermost first
  const target = () => {
    while (open.length < chain.length) {
      const copy = document.createElement("span");
      copy.className = chain[open.length].className;
      (open.length ? open[open.length - 1] : line).append(copy);
      open.push(copy);
    }
    return open.length ? open[open.length - 1] : line;
  };
  const visit = (node) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        child.data.split("\n").forEach((part, k) => {
          if (k > 0) {
            line = document.createDocumentFragment();
            out.push(line);
            open = [];
          }
          if (part) target().append(part);
        });
      } else if (child.nodeType === Node.ELEMENT_NODE) {
        chain.push(child);
        visit(child);
        chain.pop();
        if (open.length > chain.length) open.length = chain.length;
      }
    }
  };
  visit(sanitized);
  return out.length === texts.length ? out : null;
}

function statEl(f) {
  if (f.binary) return el("span", { class: "diff-stat", text: "binary" });
  return el(
    "span",
    { class: "diff-stat" },
    el("span", { class: "diff-stat-add", "aria-label": `${f.added} added`, text: `+${f.added}` }),
    " ",
    el("span", { class: "diff-stat-del", "aria-label": `${f.removed} removed`, text: `−${f.removed}` }),
  );
}

/** A file of the list: its diff, expanded, scrolled to, its toggle focused (loading the
 * full diff first when the file is past the cut). */
async function jumpTo(path) {
  let s = findSection(path);
  if (!s && pane.diff && pane.diff.truncated) {
    await refresh({ full: true });
    s = findSection(path);
  }
  if (!s) {
    setStatus(`${path} has no lines in the diff.`, "");
    return;
  }
  if (s.dataset.collapsed === "true") setCollapsed(s, false);
  s.scrollIntoView({ block: "start" });
  s.querySelector(".diff-toggle").focus({ preventScroll: true });
}

function findSection(path) {
  for (const s of $("wt-diff").querySelectorAll(".diff-file")) {
    if (s.dataset.path === path) return s;
  }
  return null;
}

async function merge() {
  const wt = pane.wt;
  if (!wt || pane.busy) return;
  const strategy = $("wt-strategy").value;
  const ok = await confirmDialog({
    title: "Merge this worktree?",
    body:
      `Merge ${wt.branch} into ${wt.base_branch} with ${strategy}. ` +
      "Uncommitted changes in the worktree are committed on its branch first. " +
      STRATEGY_HELP[strategy],
    confirmLabel: `Merge (${strategy})`,
    api: "worktree.merge",
    testid: "merge-dialog",
  });
  if (!ok) return;
  await act("Merging…", async () => {
    const r = await pane.call("worktree.merge", { worktree_id: wt.id, strategy });
    setWorktree(r.worktree);
    setStatus(
      `Merged ${wt.branch} into ${r.base_branch} (${r.strategy}): ${r.base_branch} is now at ${shortCommit(r.commit)}.` +
        (r.pending_commit ? ` The uncommitted changes were committed first as ${shortCommit(r.pending_commit)}.` : ""),
      "ok",
    );
  }, "Merge failed");
}

async function clean() {
  const wt = pane.wt;
  if (!wt || pane.busy) return;
  const ok = await confirmDialog({
    title: "Clean this worktree?",
    body:
      `Remove the checkout at ${wt.path}. ` +
      (wt.state === "merged"
        ? `Its branch ${wt.branch} is merged and is deleted too.`
        : `Its branch ${wt.branch} is not merged and is kept.`) +
      " The session can no longer work in it.",
    confirmLabel: "Clean",
    api: "worktree.clean",
    testid: "clean-dialog",
    danger: true,
  });
  if (!ok) return;
  let conflict = null;
  await act("Cleaning…", async () => {
    try {
      setWorktree(await pane.call("worktree.clean", { worktree_id: wt.id }));
      cleaned();
    } catch (e) {
      if (e.errorCode !== "conflict") throw e;
      conflict = e;
    }
  }, "Clean failed");
  if (!conflict) return;
  setStatus("Not cleaned: " + errorText(conflict), "error");
  const force = await confirmDialog({
    title: "Discard the uncommitted work?",
    body: [
      `The daemon refused: ${errorText(conflict)}`,
      `Force clean removes the checkout with its uncommitted changes and deletes the branch ${wt.branch}, merged or not. That work is lost.`,
    ],
    confirmLabel: "Discard and clean",
    api: "worktree.clean",
    testid: "force-clean-dialog",
    danger: true,
  });
  if (!force) {
    setStatus("Not cleaned: the worktree has uncommitted work, which was kept.", "");
    return;
  }
  await act("Cleaning…", async () => {
    setWorktree(await pane.call("worktree.clean", { worktree_id: wt.id, force: true }));
    cleaned();
  }, "Clean failed");
}

function cleaned() {
  const wt = pane.wt;
  setStatus(
    `Cleaned: the checkout at ${wt.path} is removed` + (wt.branch_exists ? `; branch ${wt.branch} is kept.` : `; branch ${wt.branch} is deleted.`),
    "ok",
  );
}

/** Runs one call with the buttons disabled, reporting a failure in the live region. */
async function act(progress, fn, failure) {
  const gen = pane.gen;
  const focused = document.activeElement;
  pane.busy = true;
  updateButtons();
  setStatus(progress, "busy");
  try {
    await fn();
  } catch (e) {
    if (gen === pane.gen) setStatus(`${failure}${e.errorCode ? ` (${e.errorCode})` : ""}: ${errorText(e)}`, "error");
  } finally {
    if (gen === pane.gen) {
      pane.busy = false;
      updateButtons();
    }
  }
  if (gen !== pane.gen) return;
  if (pane.wt && pane.wt.state !== "cleaned") await loadDiff();
  // The pressed button was disabled while the call ran: give the focus back to it, or
  // to the pane's heading when it stays disabled (a cleaned worktree).
  if (focused && $("panel-worktree").contains(focused) && !$("panel-worktree").contains(document.activeElement)) {
    (focused.disabled ? $("wt-title") : focused).focus();
  }
}
