// The session view's "Worktree" tab: the session's git worktree (branch, base,
// ahead/behind, dirty, state), its diff against the base commit, and Merge / Clean.
//
// The tab appears only when `worktree.list {session_id}` finds a worktree. The diff is
// built from text nodes (web/diff.js classifies the lines); nothing is parsed as HTML.

import { $, el, errorText, shortCommit, confirmDialog } from "./dom.js";
import { parseUnifiedDiff } from "./diff.js";

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

/** Old and new line numbers of a hunk header `@@ -a,b +c,d @@`. */
function hunkStart(text) {
  const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

function gutter(oldNo, newNo) {
  return String(oldNo ?? "").padStart(5) + " " + String(newNo ?? "").padStart(5);
}

function renderDiff(d) {
  pane.diff = d;
  const files = parseUnifiedDiff(d.diff);
  const stats = new Map((d.files || []).map((f) => [f.path, f]));
  const added = (d.files || []).reduce((n, f) => n + f.added, 0);
  const removed = (d.files || []).reduce((n, f) => n + f.removed, 0);
  const count = (d.files || []).length;
  $("wt-diff-summary").textContent = count ? `${count} file${count === 1 ? "" : "s"}, +${added} −${removed}` : "";
  $("wt-diff-empty").hidden = count > 0 || files.length > 0;
  $("wt-diff-empty").textContent = "No changes against the base commit.";
  const trunc = $("wt-truncated");
  trunc.hidden = !d.truncated;
  $("wt-truncated-text").textContent = d.truncated
    ? `This diff is ${kib(d.total_bytes)}; only its first part is shown.`
    : "";

  const sections = new Map();
  const diffBox = $("wt-diff");
  const frag = document.createDocumentFragment();
  files.forEach((f, i) => {
    const headId = `wt-file-${i}`;
    const st = stats.get(f.path);
    const code = el("code", { class: "diff-lines" });
    let oldNo = 0;
    let newNo = 0;
    for (const line of f.lines) {
      let ln = "";
      if (line.kind === "hunk") {
        [oldNo, newNo] = hunkStart(line.text);
      } else if (line.kind === "ctx") {
        ln = gutter(oldNo++, newNo++);
      } else if (line.kind === "add") {
        ln = gutter(null, newNo++);
      } else if (line.kind === "del") {
        ln = gutter(oldNo++, null);
      }
      const span = document.createElement("span");
      span.className = "dl dl-" + line.kind;
      if (ln) span.dataset.ln = ln;
      // A line's own text, never markup; an empty line keeps its height with a space.
      span.textContent = line.text || " ";
      code.append(span);
    }
    const pre = el(
      "pre",
      {
        class: "diff-body",
        tabindex: "0",
        "data-testid": "diff-body",
        "data-api": "worktree.diff",
        "aria-labelledby": headId,
      },
      code,
    );
    const section = el(
      "section",
      { class: "diff-file", "data-testid": "diff-file", dataset: { path: f.path }, "aria-labelledby": headId },
      el(
        "h4",
        { class: "diff-file-head", id: headId },
        el("span", { class: "diff-path", text: f.path || "(diff)" }),
        st ? statEl(st) : null,
      ),
      pre,
    );
    sections.set(f.path, pre);
    frag.append(section);
  });
  diffBox.replaceChildren(frag);

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

async function jumpTo(path) {
  let pre = findBody(path);
  if (!pre && pane.diff && pane.diff.truncated) {
    await refresh({ full: true });
    pre = findBody(path);
  }
  if (!pre) {
    setStatus(`${path} has no lines in the diff (a mode change or an empty file).`, "");
    return;
  }
  pre.scrollIntoView({ block: "start" });
  pre.focus({ preventScroll: true });
}

function findBody(path) {
  for (const s of $("wt-diff").querySelectorAll(".diff-file")) {
    if (s.dataset.path === path) return s.querySelector(".diff-body");
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
