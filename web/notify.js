// Approval notifications: while the tab is hidden, a session that starts waiting for an
// approval raises a browser notification, once the user turned them on here ("Notify
// me of approvals" in the top bar, or the palette). The permission is the browser's;
// the choice is kept in localStorage. Clicking a notification opens its session.

import { $, basename } from "./dom.js";
import { getSession } from "./views/sessions.js";

const NOTIFY_KEY = "r1.notify";

let openSession = () => {};

function supported() {
  return typeof Notification !== "undefined";
}

/** The browser can notify and the user has not refused it for this page. */
export function available() {
  return supported() && Notification.permission !== "denied";
}

export function on() {
  return supported() && Notification.permission === "granted" && localStorage.getItem(NOTIFY_KEY) === "1";
}

function draw() {
  const b = $("notify-toggle");
  b.hidden = !available();
  b.setAttribute("aria-pressed", on() ? "true" : "false");
  b.textContent = on() ? "Approval notifications on" : "Notify me of approvals";
}

export async function toggle() {
  if (on()) {
    localStorage.removeItem(NOTIFY_KEY);
  } else {
    const p = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    if (p === "granted") localStorage.setItem(NOTIFY_KEY, "1");
  }
  draw();
  $("notify-toggle").focus();
}

/** Session `id` started waiting for an approval. */
export function approvalWaiting(id) {
  if (document.visibilityState !== "hidden" || !on()) return;
  const s = getSession(id) || {};
  const n = new Notification("r1: approval needed", {
    body: `${s.title || basename(s.workdir) || id} waits for your decision.`,
    tag: "r1-approval-" + id,
  });
  n.onclick = () => {
    window.focus();
    openSession(id);
    n.close();
  };
}

export function init(hooks) {
  openSession = hooks.openSession;
  $("notify-toggle").addEventListener("click", toggle);
  draw();
}
