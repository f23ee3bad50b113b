// Small DOM helpers shared by the UI's modules. Nothing here parses HTML: every piece of
// text reaches the page through textContent or a text node.

export const $ = (id) => document.getElementById(id);

/** Creates an element: el("div", {class: "x", dataset: {a: "b"}}, child, "text"). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : d.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

/** Tokens and cost for people: "1,234 in (200 cached) · 567 out · $0.0123". */
export function tokensText(u) {
  const n = (x) => (x || 0).toLocaleString("en-US");
  let text = `${n(u.input_tokens)} in`;
  if (u.cached_input_tokens) text += ` (${n(u.cached_input_tokens)} cached)`;
  text += ` · ${n(u.output_tokens)} out`;
  if (typeof u.cost_usd === "number") text += ` · $${u.cost_usd.toFixed(4)}`;
  return text;
}

export function basename(p) {
  const parts = String(p || "").split("/").filter(Boolean);
  return parts.length ? parts[parts.length - 1] : p || "";
}

export function errorText(e) {
  if (!e) return "unknown error";
  return e.message || String(e);
}

/** The first 10 hex digits of a commit id. */
export function shortCommit(c) {
  return c ? String(c).slice(0, 10) : "";
}

/**
 * Asks a yes/no question in a modal <dialog> and resolves to true when the person
 * confirms. `body` is a paragraph, or a list of them. `api` names the operation the answer decides (both buttons carry it, as
 * every control names the operation it leads to); `testid` prefixes the test ids.
 */
export function confirmDialog({ title, body, confirmLabel, api, testid, danger = false }) {
  return new Promise((resolve) => {
    const back = document.activeElement;
    const titleId = `${testid}-title`;
    const bodyId = `${testid}-body`;
    const ok = el("button", {
      type: "button",
      class: "btn " + (danger ? "btn-danger" : "btn-primary"),
      "data-testid": `${testid}-confirm`,
      "data-api": api,
      text: confirmLabel,
    });
    const cancel = el("button", { type: "button", class: "btn", "data-testid": `${testid}-cancel`, "data-api": api, text: "Cancel" });
    const dlg = el(
      "dialog",
      { class: "confirm", "data-testid": testid, "aria-labelledby": titleId, "aria-describedby": bodyId },
      el("h2", { id: titleId, text: title }),
      el("div", { id: bodyId, class: "confirm-body" }, ...[].concat(body).map((text) => el("p", { text }))),
      el("div", { class: "actions" }, ok, cancel),
    );
    let answer = false;
    ok.addEventListener("click", () => {
      answer = true;
      dlg.close();
    });
    cancel.addEventListener("click", () => dlg.close());
    dlg.addEventListener("close", () => {
      dlg.remove();
      if (back && back.isConnected && typeof back.focus === "function") back.focus();
      resolve(answer);
    });
    document.body.append(dlg);
    dlg.showModal();
    // The safe choice has focus, so Enter alone never discards work.
    cancel.focus();
  });
}
