// The keyboard: the command palette (Ctrl+K) drives a session from start to an allowed
// approval without the mouse, the "?" list shows the shortcuts, single-key shortcuts
// stay out of the way while typing, and focus never drops to <body>. Also the list's
// filters (state, engine, working directory) and the approval notification of a
// hidden tab.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  freshHome,
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  tempDir,
  until,
  api,
  operations,
  walkDataApi,
  axe,
  seriousOnly,
} from "./lib.mjs";

const focused = (page) => page.evaluate(() => document.activeElement?.dataset?.testid || document.activeElement?.tagName);

/** Focus is somewhere useful: never the bare <body>. */
async function focusKept(page, what) {
  const f = await focused(page);
  assert.notEqual(f, "BODY", `focus was lost after ${what}`);
  return f;
}

test("keyboard: the palette drives a session from start to approval, ? lists the shortcuts", async (t) => {
  const { base, home } = await freshHome();
  const d = await startDaemon({ home, base });
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  const problems = await watchPage(page);
  await login(page, d);
  const ops = await operations();
  const workdir = await tempDir();

  // Ctrl+K opens the palette with its box focused; typing filters the commands.
  await page.keyboard.press("Control+k");
  await page.waitForSelector('[data-testid="palette"][open]');
  assert.equal(await focused(page), "palette-input");
  await page.keyboard.type("new sess");
  const titles = await page.$$eval('[data-testid="palette-item"]', (ls) => ls.map((l) => l.dataset.command));
  assert.equal(titles[0], "new-session", `commands for "new sess": ${titles}`);
  await walkDataApi(page, ops);
  assert.deepEqual(seriousOnly(await axe(page)), [], "axe on the open palette");
  await page.keyboard.press("Enter");

  // The start form, its first field focused; Enter in it starts the session.
  await page.waitForSelector('body[data-view="start"]');
  assert.equal(await focused(page), "start-workdir");
  await page.keyboard.type(workdir);
  await page.waitForSelector('[data-testid="start-engine"] option[value="echo"]', { state: "attached" });
  await page.keyboard.press("Enter");
  await page.waitForSelector('body[data-view="chat"]');
  await page.waitForSelector('#chat-state[data-state="idle"]');
  assert.equal(await focused(page), "composer-input");

  // A single-key shortcut does nothing while typing: "n" is text here.
  await page.keyboard.type("/run echo palettedriven n");
  assert.equal(await page.evaluate(() => document.body.dataset.view), "chat");
  await page.keyboard.press("Enter");
  await page.waitForSelector('[data-testid="approval"][data-status="pending"]');
  await page.waitForSelector('#chat-state[data-state="waiting_on_approval"]');

  // A screen reader hears the approval through the status region; the log itself, whose
  // items are drawn and dropped as the reader scrolls, is not a live region.
  await until(async () => (await page.textContent('[data-testid="log-announce"]')) === "Approval needed: run_command", { what: "the approval announced" });
  assert.equal(await page.getAttribute('[data-testid="chat-log"]', "aria-live"), "off");

  // The palette offers the waiting approval first; Enter allows it.
  await page.keyboard.press("Control+k");
  await page.waitForSelector('[data-testid="palette"][open]');
  const first = await page.$eval('[data-testid="palette-item"]', (l) => [l.dataset.command, l.dataset.api, l.getAttribute("aria-selected")]);
  assert.deepEqual(first, ["approval-allow", "session.approve", "true"]);
  await page.keyboard.type("allow");
  await page.keyboard.press("Enter");
  await page.waitForSelector('[data-testid="approval"][data-status="allow"]');
  await page.waitForSelector('[data-testid="lane"][data-status="done"]');
  await page.waitForSelector('#chat-state[data-state="idle"]');
  assert.equal(await focusKept(page, "allowing from the palette"), "composer-input");
  await until(async () => (await page.textContent('[data-testid="log-announce"]')).startsWith("Assistant: "), { what: "the answer announced" });

  // Esc leaves the box (focus on the log), then "?" opens the shortcut list.
  await page.keyboard.press("Escape");
  assert.equal(await focused(page), "chat-log");
  await page.keyboard.press("Shift+?");
  await page.waitForSelector('[data-testid="shortcuts"][open]');
  const rows = await page.$$eval('[data-testid="shortcut-table"] tbody tr', (trs) => trs.map((tr) => tr.cells[0].textContent.trim()));
  for (const k of ["Ctrl K", "?", "/", "N", "J", "K", "I", "A", "X", "Esc"]) assert.ok(rows.includes(k), `the list shows ${k}: ${rows}`);
  assert.equal(await focused(page), "shortcuts-close");
  await walkDataApi(page, ops);
  assert.deepEqual(seriousOnly(await axe(page)), [], "axe on the shortcut list");
  await page.keyboard.press("Escape");
  await page.waitForSelector('[data-testid="shortcuts"]:not([open])', { state: "attached" });
  assert.equal(await focused(page), "chat-log", "closing the list gives focus back");

  // "x" denies an approval without the palette; the pending card says so.
  await page.keyboard.press("i");
  assert.equal(await focused(page), "composer-input");
  await page.keyboard.type("/run echo second");
  await page.keyboard.press("Enter");
  await page.waitForSelector('[data-testid="approval"][data-status="pending"]');
  await page.keyboard.press("Escape");
  await page.keyboard.press("x");
  await page.waitForSelector('[data-testid="approval"][data-status="deny"]');
  // The card may show the decision (from the journal) before the call has answered and
  // the focus moved: wait for the focus, which must never pass through <body>.
  await until(async () => (await focusKept(page, "denying with x")) === "composer-input", { what: "focus back in the message box" });

  // Esc from the box, then again from the log, goes back to the list, with the session's
  // item focused; "n" starts another; Esc in its form goes back.
  await page.keyboard.press("Escape");
  await page.keyboard.press("Escape");
  await page.waitForSelector('body[data-view="list"]');
  assert.equal(await focused(page), "session-item");
  await page.keyboard.press("n");
  await page.waitForSelector('body[data-view="start"]');
  await page.keyboard.press("Escape");
  await page.waitForSelector('body[data-view="list"]');
  await focusKept(page, "leaving the start form");

  // The palette's search command carries what was typed into the search box.
  await page.keyboard.press("Control+k");
  await page.keyboard.type("palettedriven");
  const commands = () => page.$$eval('[data-testid="palette-item"]', (ls) => ls.map((l) => l.dataset.command).join(" "));
  await until(async () => (await commands()) === "search", { what: "only the search command matching free text" });
  await page.keyboard.press("Enter");
  await page.waitForSelector('[data-testid="search-dialog"][open]');
  assert.equal(await page.inputValue('[data-testid="search-input"]'), "palettedriven");
  await page.waitForSelector('[data-testid="search-hit"]');
  await page.keyboard.press("Escape");

  assert.deepEqual(await problems.csp(), [], "no CSP violations");
  assert.deepEqual(problems.pageErrors, [], "no page errors");
});

test("session list: filter by state, engine and workdir; j/k move between sessions", async (t) => {
  const { base, home } = await freshHome();
  const d = await startDaemon({ home, base });
  t.after(() => d.cleanup());
  const [wa, wb] = [await tempDir(), await tempDir()];
  const a = (await api(d, "POST", "/v1/sessions", { workdir: wa, engine: "echo", title: "alpha" })).json.id;
  const b = (await api(d, "POST", "/v1/sessions", { workdir: wb, engine: "echo", title: "beta" })).json.id;
  const c = (await api(d, "POST", "/v1/sessions", { workdir: wb, engine: "echo", title: "gamma" })).json.id;
  assert.equal((await api(d, "DELETE", `/v1/sessions/${c}`)).status, 200);
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  const problems = await watchPage(page);
  await login(page, d);
  const names = () => page.$$eval('[data-testid="session-item"] .session-name', (ns) => ns.map((n) => n.textContent));
  await until(async () => (await names()).length === 3, { what: "three sessions listed" });

  await page.click('[data-testid="list-filters-toggle"]');
  await page.selectOption('[data-testid="filter-workdir"]', wb);
  await until(async () => JSON.stringify(await names()) === JSON.stringify(["gamma", "beta"]), { what: "only workdir b" });
  await page.selectOption('[data-testid="filter-state"]', "ended");
  await until(async () => JSON.stringify(await names()) === JSON.stringify(["gamma"]), { what: "only the ended one" });
  assert.match(await page.textContent('[data-testid="list-filters-toggle"]'), /1 of 3/);
  // A session that changes state moves in or out of the filtered list live.
  assert.equal((await api(d, "DELETE", `/v1/sessions/${b}`)).status, 200);
  await until(async () => JSON.stringify(await names()) === JSON.stringify(["gamma", "beta"]), { what: "beta ended joins the filter" });
  await page.selectOption('[data-testid="filter-engine"]', "echo");
  assert.equal((await names()).length, 2);
  await page.selectOption('[data-testid="filter-workdir"]', wa);
  await page.waitForSelector('[data-testid="list-empty"]:not([hidden])');
  assert.match(await page.textContent('[data-testid="list-empty"]'), /No session matches/);
  await walkDataApi(page, await operations());
  await page.click('[data-testid="filter-clear"]');
  await until(async () => (await names()).length === 3, { what: "filters cleared" });
  // The filter survives a reload of the tab.
  await page.selectOption('[data-testid="filter-state"]', "idle");
  await until(async () => JSON.stringify(await names()) === JSON.stringify(["alpha"]), { what: "only alpha" });
  await page.reload();
  await page.waitForSelector('#conn[data-state="connected"]');
  await until(async () => JSON.stringify(await names()) === JSON.stringify(["alpha"]), { what: "the filter kept after a reload" });
  await page.click('[data-testid="filter-clear"]');
  await until(async () => (await names()).length === 3, { what: "filters cleared" });

  // j opens the newest session, j again the next, k goes back.
  await page.focus('[data-testid="new-session"]');
  await page.keyboard.press("j");
  await page.waitForSelector(`#view-chat[data-session-id="${c}"]`);
  await page.keyboard.press("j");
  await page.waitForSelector(`#view-chat[data-session-id="${b}"]`);
  await page.keyboard.press("k");
  await page.waitForSelector(`#view-chat[data-session-id="${c}"]`);
  assert.equal(await focusKept(page, "j/k"), "chat-title");
  assert.ok(a);
  assert.deepEqual(seriousOnly(await axe(page)), []);
  assert.deepEqual(await problems.csp(), [], "no CSP violations");
});

/** Denies the session's latest approval over HTTP. */
async function deny(d, id) {
  const asked = (await api(d, "GET", `/v1/sessions/${id}/journal?since_seq=1&limit=1000`)).json.records.filter((r) => r.kind === "approval.requested");
  const approval = asked[asked.length - 1].data.approval_id;
  const r = await api(d, "POST", `/v1/sessions/${id}/approvals/${approval}`, { decision: "deny" });
  assert.equal(r.status, 200, r.text);
}

test("notifications: an approval waiting in a hidden tab raises one, where allowed", async (t) => {
  const { base, home } = await freshHome();
  const d = await startDaemon({ home, base });
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const context = await browser.newContext();
  await context.grantPermissions(["notifications"], { origin: d.url });
  const page = await context.newPage();
  const problems = await watchPage(page);
  // Every notification the page raises is recorded (the real one is raised too), and the
  // test can hide the tab.
  await page.addInitScript(() => {
    window.__notes = [];
    const Real = window.Notification;
    class Recorded extends Real {
      constructor(title, opts) {
        super(title, opts);
        window.__notes.push({ title, body: opts && opts.body });
      }
    }
    Object.defineProperty(window, "Notification", { value: Recorded, configurable: true });
    window.__hide = (hidden) => {
      Object.defineProperty(document, "visibilityState", { value: hidden ? "hidden" : "visible", configurable: true });
      document.dispatchEvent(new Event("visibilitychange"));
    };
  });
  await login(page, d);
  const id = (await api(d, "POST", "/v1/sessions", { workdir: await tempDir(), engine: "echo", title: "needs me" })).json.id;
  await page.waitForSelector(`[data-testid="session-item"][data-session-id="${id}"]`);

  // Off until the user turns it on: an approval in a hidden tab raises nothing.
  assert.equal(await page.getAttribute('[data-testid="notify-toggle"]', "aria-pressed"), "false");
  await page.evaluate(() => window.__hide(true));
  assert.equal((await api(d, "POST", `/v1/sessions/${id}/messages`, { text: "/run echo one" })).status, 202);
  await page.waitForSelector(`[data-testid="session-item"][data-session-id="${id}"] [data-state="waiting_on_approval"]`);
  assert.equal(await page.evaluate(() => window.__notes.length), 0);
  await page.evaluate(() => window.__hide(false));
  await deny(d, id);
  await page.waitForSelector(`[data-testid="session-item"][data-session-id="${id}"] [data-state="idle"]`);

  // On, tab visible: nothing (the page itself shows it). On, tab hidden: one notification.
  await page.click('[data-testid="notify-toggle"]');
  await until(async () => (await page.getAttribute('[data-testid="notify-toggle"]', "aria-pressed")) === "true", { what: "notifications on" });
  assert.equal(await focused(page), "notify-toggle");
  assert.equal((await api(d, "POST", `/v1/sessions/${id}/messages`, { text: "/run echo two" })).status, 202);
  await page.waitForSelector(`[data-testid="session-item"][data-session-id="${id}"] [data-state="waiting_on_approval"]`);
  assert.equal(await page.evaluate(() => window.__notes.length), 0, "no notification while the tab is visible");
  await page.evaluate(() => window.__hide(true));
  await deny(d, id);
  await page.waitForSelector(`[data-testid="session-item"][data-session-id="${id}"] [data-state="idle"]`);
  assert.equal((await api(d, "POST", `/v1/sessions/${id}/messages`, { text: "/run echo three" })).status, 202);
  await until(async () => (await page.evaluate(() => window.__notes.length)) === 1, { what: "one notification" });
  const note = (await page.evaluate(() => window.__notes))[0];
  assert.equal(note.title, "r1: approval needed");
  assert.match(note.body, /needs me/);
  assert.deepEqual(await problems.csp(), [], "no CSP violations");
});
