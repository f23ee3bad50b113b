// The command palette (Ctrl/Cmd+K) and the shortcut list (?): two dialogs drawn with
// Preact. The palette lists what can be done now — the app hands it the commands — and
// runs the one picked with Enter; typing filters them. The shortcut list shows the keys
// the app binds (web/keys.js registers them), so the two never disagree.
//
// Focus: a command moves focus where its result is (the app's command does that); a
// palette closed without running anything gives focus back to where it was, or to the
// page's main heading if that element is gone.

import { html, render, signal, useEffect, useRef } from "../ui.js";

const open = signal(false);
const query = signal("");
const active = signal(0);
const helpOpen = signal(false);

/** `(query) => [{id, title, hint?, api, run}]`, set by the app. */
let source = () => [];
/** `[{keys, what}]`, set by web/keys.js. */
let shortcutList = [];
let returnFocus = null;

/** Words of the query, each found in the title (in any order), rank by where they start. */
export function match(commands, q) {
  const words = q.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return commands;
  const scored = [];
  for (const c of commands) {
    const t = c.title.toLowerCase();
    let score = 0;
    let ok = true;
    for (const w of words) {
      const i = t.indexOf(w);
      if (i < 0) {
        ok = false;
        break;
      }
      score += i === 0 ? 0 : /\W/.test(t[i - 1]) ? 1 : 3;
    }
    if (ok) scored.push([score, c]);
  }
  return scored.sort((a, b) => a[0] - b[0]).map(([, c]) => c);
}

function currentItems() {
  return match(source(query.value), query.value);
}

export function openPalette(q = "") {
  if (!open.value) returnFocus = document.activeElement;
  helpOpen.value = false;
  query.value = q;
  active.value = 0;
  open.value = true;
  // Open now, not at the next render, so the keys typed right after Ctrl+K land in it.
  const d = document.getElementById("palette");
  if (d && !d.open) {
    d.showModal();
    const input = document.getElementById("palette-input");
    input.value = q;
    input.focus();
  }
}

function closePalette({ restore = true } = {}) {
  open.value = false;
  // Closed now, not at the next render: a modal dialog gives focus back to what had it
  // before it opened, which must happen before a command moves focus on.
  const d = document.getElementById("palette");
  if (d && d.open) d.close();
  if (restore) giveFocusBack();
}

function giveFocusBack() {
  const back = returnFocus;
  returnFocus = null;
  if (back && back.isConnected && back !== document.body && !back.closest("[hidden]")) back.focus();
  else document.querySelector("main h2:not([hidden])")?.focus();
}

async function runItem(c) {
  if (!c) return;
  closePalette({ restore: false });
  returnFocus = null;
  await c.run();
  // A command that moved focus nowhere leaves it where the palette was opened from.
  if (document.activeElement === document.body || !document.activeElement) document.querySelector("#main h2")?.focus();
}

function Palette() {
  const ref = useRef(null);
  const input = useRef(null);
  const isOpen = open.value;
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (isOpen && !d.open) {
      d.showModal();
      input.current.focus();
    } else if (!isOpen && d.open) d.close();
  }, [isOpen]);
  const items = isOpen ? currentItems() : [];
  const at = Math.min(active.value, Math.max(0, items.length - 1));
  const onKey = (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const n = items.length;
      if (n) active.value = (at + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
    } else if (e.key === "Enter") {
      e.preventDefault();
      runItem(items[at]);
    } else if (e.key === "Escape") {
      e.preventDefault();
      closePalette();
    }
  };
  useEffect(() => {
    document.getElementById(`palette-opt-${at}`)?.scrollIntoView({ block: "nearest" });
  });
  return html`<dialog
    ref=${ref}
    id="palette"
    class="palette"
    data-testid="palette"
    aria-label="Command palette"
    onClose=${() => open.value && closePalette()}
    onClick=${(e) => e.target === ref.current && closePalette()}
  >
    <input
      ref=${input}
      id="palette-input"
      type="text"
      role="combobox"
      aria-expanded="true"
      aria-controls="palette-list"
      aria-activedescendant=${items.length ? `palette-opt-${at}` : undefined}
      aria-label="Type a command"
      autocomplete="off"
      spellcheck="false"
      placeholder="Type a command, a session, or words to search for"
      data-testid="palette-input"
      data-api="search.query"
      value=${query.value}
      onInput=${(e) => {
        query.value = e.currentTarget.value;
        active.value = 0;
      }}
      onKeyDown=${onKey}
    />
    <ul id="palette-list" class="palette-list" role="listbox" aria-label="Commands" data-testid="palette-list">
      ${items.map(
        (c, i) => html`<li
          key=${c.id}
          id=${`palette-opt-${i}`}
          role="option"
          class="palette-item"
          aria-selected=${i === at ? "true" : "false"}
          data-testid="palette-item"
          data-command=${c.id}
          data-api=${c.api}
          onMouseMove=${() => i !== at && (active.value = i)}
          onClick=${() => runItem(c)}
        >
          <span class="palette-title">${c.title}</span>
          ${c.hint ? html`<kbd class="palette-hint">${c.hint}</kbd>` : null}
        </li>`,
      )}
    </ul>
    ${items.length ? null : html`<p class="muted palette-empty" data-testid="palette-empty">No command matches.</p>`}
  </dialog>`;
}

function Help() {
  const ref = useRef(null);
  const isOpen = helpOpen.value;
  useEffect(() => {
    const d = ref.current;
    if (isOpen && !d.open) {
      d.showModal();
      d.querySelector("button").focus();
    } else if (!isOpen && d.open) d.close();
  }, [isOpen]);
  const close = () => {
    helpOpen.value = false;
    if (ref.current.open) ref.current.close();
    giveFocusBack();
  };
  return html`<dialog ref=${ref} id="shortcuts" class="small-dialog shortcuts" data-testid="shortcuts" aria-labelledby="shortcuts-title" onClose=${() => helpOpen.value && close()}>
    <h2 id="shortcuts-title">Keyboard shortcuts</h2>
    <p class="muted">Single keys work when you are not typing in a field.</p>
    <table class="shortcut-table" data-testid="shortcut-table">
      <thead><tr><th scope="col">Keys</th><th scope="col">What they do</th></tr></thead>
      <tbody>
        ${shortcutList.map(
          (s) => html`<tr key=${s.keys}>
            <td><kbd>${s.keys}</kbd></td>
            <td>${s.what}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    <div class="dialog-actions">
      <button type="button" class="btn btn-primary" data-testid="shortcuts-close" data-local="dialog" onClick=${close}>Close</button>
    </div>
  </dialog>`;
}

export function openHelp() {
  if (!helpOpen.value) returnFocus = document.activeElement;
  open.value = false;
  helpOpen.value = true;
}

export function isOpen() {
  return open.value || helpOpen.value;
}

/** Mounts both dialogs in `host`; `commands()` lists what the palette offers now. */
export function mount(host, { commands, shortcuts }) {
  source = commands;
  shortcutList = shortcuts;
  render(html`<${Palette} /><${Help} />`, host);
}
