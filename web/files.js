// The session view's "Files" tab: the files the agent touched, read-only.
//
// The list comes from the open session's records (web/store.js): every tool lane of a
// file tool (`read_file`, `write_file`, `edit_file`) names its file in `args.path`,
// newest first; with a worktree, the files its diff changed follow. A file is shown
// with `workdir.read`: line numbers in a gutter, the text highlighted by the vendored
// highlight.js and its HTML sanitized by the vendored DOMPurify (as web/markdown.js
// does), with notices for a cut or a binary file and plain errors for a file that is
// gone or leads outside the workdir.

import { $, el, errorText, fmtTime } from "./dom.js";
import { languageOf, highlight } from "./highlight.js";
import * as worktrees from "./worktrees.js";

/** The agent tools that take one file in `args.path`, and what they did to it. */
const FILE_TOOLS = { read_file: "read", write_file: "wrote", edit_file: "edited" };
/** How much of a file is read and shown (the daemon's default cut). */
const MAX_BYTES = 256 * 1024;
/** Files longer than this are shown without highlighting (highlighting is per open). */
const HIGHLIGHT_MAX_CHARS = 256 * 1024;

const pane = {
  call: null,
  state: () => null, // the open session's store state
  sessionId: null,
  items: null, // the store items the list was derived from
  touched: [], // [{path, did, seq}] newest first
  changed: [], // worktree diff paths
  selected: null, // path shown
  gen: 0, // bumped on open/close, so late answers for another session are dropped
  queued: false,
};

/** Wires the pane; `call(method, params)` is the UI's RPC, `state()` the open session's store state. */
export function init({ call, state }) {
  pane.call = call;
  pane.state = state;
  $("tab-files").addEventListener("click", () => worktrees.selectTab("files", true));
  $("fv-refresh").addEventListener("click", () => refresh(true));
  worktrees.onTabSelect((name, byUser) => {
    if (name === "files" && byUser) refresh(false);
  });
}

/** A session was opened (or the connection came back). */
export function open(sessionId) {
  if (pane.sessionId !== sessionId) {
    reset();
    pane.sessionId = sessionId;
  }
  derive();
  loadChanged();
}

/** The session view closed. */
export function close() {
  reset();
}

/** The open session's records changed: the list is derived again, at most once a frame. */
export function changed(sessionId) {
  if (sessionId !== pane.sessionId || pane.queued) return;
  pane.queued = true;
  requestAnimationFrame(() => {
    pane.queued = false;
    derive();
  });
}

/** The session's turn ended: a file on show may have changed. */
export function settled(sessionId) {
  if (sessionId !== pane.sessionId || worktrees.currentTab() !== "files") return;
  refresh(false);
}

function reset() {
  pane.gen++;
  pane.sessionId = null;
  pane.items = null;
  pane.touched = [];
  pane.changed = [];
  pane.selected = null;
  $("fv-list").replaceChildren();
  $("fv-empty").hidden = true;
  $("fv-view").hidden = true;
  clearView();
  worktrees.offerTab("files", false);
}

/** The touched files, newest first, from the store's tool lanes. */
export function touchedFiles(items) {
  const seen = new Map();
  for (const it of items || []) {
    if (it.type !== "lane" || !FILE_TOOLS[it.tool] || !it.args || typeof it.args.path !== "string") continue;
    const path = normalize(it.args.path);
    if (!path) continue;
    const seq = it.seq || 0;
    const prev = seen.get(path);
    if (!prev || prev.seq <= seq) seen.set(path, { path, did: FILE_TOOLS[it.tool], seq });
  }
  return [...seen.values()].sort((a, b) => b.seq - a.seq);
}

/** `./src//a.rs` as `src/a.rs`; "" for the workdir itself. */
function normalize(p) {
  return String(p)
    .split("/")
    .filter((c, i) => c !== "." && (c !== "" || i === 0))
    .join("/");
}

function derive() {
  const st = pane.state();
  if (!pane.sessionId || !st || st.items === pane.items) return;
  pane.items = st.items;
  const next = touchedFiles(st.items);
  const same = next.length === pane.touched.length && next.every((f, i) => f.path === pane.touched[i].path && f.did === pane.touched[i].did);
  pane.touched = next;
  if (!same) renderList();
}

/** The worktree's changed files, when the session has a worktree. */
async function loadChanged() {
  const gen = pane.gen;
  const sessionId = pane.sessionId;
  try {
    const { worktrees: wts } = await pane.call("worktree.list", { session_id: sessionId });
    const wt = (wts || []).filter((w) => w.state !== "cleaned").pop();
    if (!wt) {
      if (gen === pane.gen && pane.changed.length) {
        pane.changed = [];
        renderList();
      }
      return;
    }
    const diff = await pane.call("worktree.diff", { worktree_id: wt.id });
    if (gen !== pane.gen) return;
    pane.changed = (diff.files || []).map((f) => f.path);
    renderList();
  } catch {
    // The list of touched files stands on its own.
  }
}

function renderList() {
  const touched = new Set(pane.touched.map((f) => f.path));
  const entries = [
    ...pane.touched,
    ...pane.changed.filter((p) => !touched.has(p)).sort().map((path) => ({ path, did: "changed" })),
  ];
  worktrees.offerTab("files", entries.length > 0);
  const list = $("fv-list");
  const hadFocus = list.contains(document.activeElement) ? document.activeElement.dataset.path : null;
  list.replaceChildren(
    ...entries.map((f) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: "fv-item",
            "aria-current": f.path === pane.selected ? "true" : undefined,
            dataset: { testid: "files-item", api: "workdir.read", path: f.path, did: f.did },
            onclick: () => show(f.path),
          },
          el("span", { class: "fv-item-path", text: f.path }),
          el("span", { class: "fv-item-did", text: f.did === "changed" ? "changed in the worktree" : f.did }),
        ),
      ),
    ),
  );
  if (hadFocus) list.querySelector(`[data-path="${CSS.escape(hadFocus)}"]`)?.focus();
  $("fv-empty").hidden = entries.length > 0;
}

/** The list again, and the file on show read again. */
async function refresh(announce) {
  derive();
  await loadChanged();
  if (pane.selected) await show(pane.selected, { announce });
}

function clearView() {
  $("fv-path").textContent = "";
  $("fv-meta").textContent = "";
  setStatus("");
  $("fv-code").replaceChildren();
  $("fv-code").hidden = true;
}

/** Shows a notice (`note`), an error (`error`) or progress (`busy`) about the file. */
function setStatus(text, kind = "") {
  const s = $("fv-status");
  s.textContent = text || "";
  s.dataset.kind = text ? kind : "";
}

/** Reads `path` with `workdir.read` and shows it. */
async function show(path, { announce = false } = {}) {
  const gen = pane.gen;
  pane.selected = path;
  for (const b of $("fv-list").querySelectorAll("button")) {
    if (b.dataset.path === path) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
  $("fv-view").hidden = false;
  $("fv-path").textContent = path;
  $("panel-files").setAttribute("aria-busy", "true");
  let f;
  try {
    f = await pane.call("workdir.read", { session_id: pane.sessionId, path, max_bytes: MAX_BYTES });
  } catch (e) {
    if (gen !== pane.gen || pane.selected !== path) return;
    $("panel-files").setAttribute("aria-busy", "false");
    $("fv-meta").textContent = "";
    $("fv-code").replaceChildren();
    $("fv-code").hidden = true;
    setStatus(readError(e), "error");
    return;
  }
  if (gen !== pane.gen || pane.selected !== path) return;
  $("panel-files").setAttribute("aria-busy", "false");
  $("fv-meta").textContent = `${sizeText(f.size)} · modified ${fmtTime(f.modified_at) || f.modified_at}`;
  if (f.binary) {
    setStatus(`Binary file (${f.size.toLocaleString("en-US")} bytes), not shown.`, "note");
    $("fv-code").replaceChildren();
    $("fv-code").hidden = true;
  } else {
    setStatus(
      f.truncated ? `Truncated at ${MAX_BYTES / 1024} KiB: only the start of this ${sizeText(f.size)} file is shown.` : announce ? "Read again." : "",
      f.truncated ? "note" : "ok",
    );
    renderCode(path, f.text);
  }
}

/** What went wrong reading a file, in words a person can act on. */
function readError(e) {
  switch (e && e.errorCode) {
    case "not_found":
      return /session/.test(e.message || "") && !/workdir/.test(e.message || "")
        ? "The session is gone: " + errorText(e)
        : "This file is gone: it no longer exists in the session's working directory.";
    case "permission_denied":
      return "Not shown: " + errorText(e);
    case "validation":
      return "Cannot show this path: " + errorText(e);
    default:
      return "Could not read the file: " + errorText(e);
  }
}

function sizeText(n) {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/** The text with a gutter of line numbers, highlighted when the language is known. */
function renderCode(path, text) {
  const lines = text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n");
  const gutter = el("pre", { class: "fv-gutter", "aria-hidden": "true" }, lines.map((_, i) => i + 1).join("\n"));
  const code = el("code", { class: "hljs" });
  const language = text.length <= HIGHLIGHT_MAX_CHARS ? languageOf(path) : "";
  if (language) {
    code.classList.add("language-" + language.replace(/[^\w+#.-]/g, ""));
    code.append(highlight(text, language));
  } else {
    code.textContent = text;
  }
  code.dataset.lang = language;
  const box = $("fv-code");
  box.replaceChildren(gutter, el("pre", { class: "fv-text" }, code));
  box.setAttribute("aria-label", `Content of ${path}, ${lines.length} line${lines.length === 1 ? "" : "s"}`);
  box.hidden = false;
}
