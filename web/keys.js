// The UI's keyboard shortcuts: one table, bound once on the document and listed by the
// "?" overlay (web/views/palette.js draws the table from the same entries).
//
// A shortcut with `mod` (Ctrl, or ⌘ on a Mac) works everywhere, even while typing; a
// single key works only when focus is not in a text field, a select or an open dialog,
// so typing a message never triggers one.

const MAC = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent || "");

/** `[{key, mod?, shift?, keys (as shown), what, run}]` */
let table = [];

export function modName() {
  return MAC ? "⌘" : "Ctrl";
}

function typing(target) {
  if (!target || !(target instanceof Element)) return false;
  if (target.closest("dialog[open]")) return true;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag === "INPUT") return !["checkbox", "radio", "button", "submit", "reset"].includes(target.type);
  return false;
}

function onKey(e) {
  if (e.defaultPrevented || e.isComposing || e.altKey) return;
  const mod = MAC ? e.metaKey : e.ctrlKey;
  for (const s of table) {
    if (e.key.toLowerCase() !== s.key.toLowerCase() && e.key !== s.key) continue;
    if (s.mod) {
      if (!mod) continue;
    } else {
      if (e.ctrlKey || e.metaKey || typing(e.target)) continue;
      // "?" is Shift+/ on most layouts: the key is what counts, not the Shift.
      if (s.key.length === 1 && /[a-z]/.test(s.key) && e.shiftKey !== !!s.shift) continue;
    }
    if (s.when && !s.when()) continue;
    e.preventDefault();
    s.run(e);
    return;
  }
}

/** Binds the shortcuts (once); returns what the overlay lists. */
export function bind(shortcuts) {
  table = shortcuts;
  document.addEventListener("keydown", onKey);
  return table.map((s) => ({ keys: s.keys, what: s.what }));
}
