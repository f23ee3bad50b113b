// The notice that this page and the daemon no longer match, with a Reload button:
// "upgraded" (the daemon was updated and restarted under the open tab; the page still
// works, and a reload picks up the matching one) or "incompatible" (the daemon speaks
// another protocol; nothing works until a reload, and the transport has stopped).

import { $ } from "./dom.js";
import { upgradeText } from "./rpc.js";

let wired = false;

/** The transport's onIncompatible: the daemon speaks `theirs`; `message` says so. */
export function incompatible(theirs, message) {
  show("incompatible", message);
}

/** The transport's onUpgraded: the daemon's build went from handshake `before` to `now`. */
export function upgraded(before, now) {
  show("upgraded", `r1 was updated (${upgradeText(before, now)}): reload to use the matching page.`);
}

function show(kind, text) {
  const box = $("compat");
  if (!wired) {
    $("compat-reload").addEventListener("click", () => location.reload());
    wired = true;
  }
  // A daemon the page cannot talk to outranks one it merely does not match.
  if (box.dataset.kind === "incompatible" && kind !== "incompatible") return;
  box.dataset.kind = kind;
  box.setAttribute("role", kind === "incompatible" ? "alert" : "status");
  $("compat-text").textContent = text;
  box.hidden = false;
}
