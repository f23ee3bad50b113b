// Resilience: an open tab notices what changed under it. A token rotation sends it to
// sign-in at once (and a fresh `r1 open` link works); a daemon upgraded and restarted
// under it shows a non-blocking "r1 was updated" notice with a Reload button; a daemon
// that speaks another protocol gets a plain message, a Reload button and no more
// reconnect attempts. A plain daemon restart (the tab reconnects by itself, fills the
// gap, and a message sent after works) is covered by reconnect.test.mjs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFile, chmod, readFile, utimes } from "node:fs/promises";
import { join } from "node:path";
import {
  R1_BIN,
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  tempDir,
  startSessionUI,
  sendUI,
  waitAssistant,
  operations,
  walkDataApi,
  axe,
  seriousOnly,
  screenshots,
  api,
} from "./lib.mjs";

/** Runs the r1 CLI against `d`'s home; resolves with its stdout. */
function r1(d, ...args) {
  return new Promise((res, rej) => {
    execFile(R1_BIN, args, { env: { ...process.env, R1_HOME: d.home } }, (err, stdout, stderr) =>
      err ? rej(new Error(`r1 ${args.join(" ")}: ${err.message}\n${stderr}`)) : res(stdout),
    );
  });
}

async function openPage(t) {
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = await watchPage(page);
  // Every WebSocket the page opens, to tell whether it still tries to reconnect.
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  return { page, problems, sockets };
}

async function checkPage(page, problems) {
  assert.deepEqual(seriousOnly(await axe(page)), []);
  await walkDataApi(page, await operations());
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
}

test("token rotation: the open tab goes to sign-in at once; a fresh r1 open link works", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const { page, problems, sockets } = await openPage(t);
  await login(page, d);
  await startSessionUI(page, await tempDir());
  await sendUI(page, "before");
  await waitAssistant(page, "echo: before");

  const socketsBefore = sockets.length;
  const rotatedAt = Date.now();
  await r1(d, "ctl", "rotate-token");
  // The daemon closes the tab's socket (4001): sign-in at once, not after backoff rounds.
  await page.waitForSelector('body[data-view="login"]', { timeout: 5000 });
  assert.ok(Date.now() - rotatedAt < 5000, `sign-in took ${Date.now() - rotatedAt} ms`);
  assert.equal(await page.isVisible('[data-testid="view-login"]'), true);
  const message = await page.textContent('[data-testid="login-error"]');
  assert.match(message, /token changed/);
  assert.match(message, /r1 open/);
  assert.notEqual((await page.textContent('[data-testid="conn-text"]')).trim(), "Connected");
  assert.equal(await page.getAttribute("#conn", "data-state"), "idle");
  await checkPage(page, problems);
  await screenshots(page, "resilience-token-rotated");
  // The tab stopped: it never tried the old token again.
  assert.equal(sockets.length, socketsBefore, `reconnect attempts after the rotation: ${sockets.slice(socketsBefore)}`);

  // A fresh login link (minted for the new token) signs the tab in again.
  d.token = (await readFile(join(d.home, "token"), "utf8")).trim();
  await login(page, d);
  await page.waitForSelector('body[data-view="chat"]');
  await sendUI(page, "after");
  await waitAssistant(page, "echo: after");
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});

test("upgraded daemon: a tab open across the upgrade says r1 was updated, with Reload", async (t) => {
  // Another build of r1: a copy of the binary with another mtime has another build id
  // (`<bytes>-<mtime ns>`), as a reinstalled r1 would.
  const copy = join(await tempDir("r1-web-bin-"), "r1");
  await copyFile(R1_BIN, copy);
  await chmod(copy, 0o755);
  const later = new Date(Date.now() + 86400 * 1000);
  await utimes(copy, later, later);

  const d1 = await startDaemon();
  let d2 = null;
  t.after(async () => {
    await d1.stop();
    if (d2) await d2.cleanup();
    else await d1.cleanup();
  });
  const { page, problems } = await openPage(t);
  await login(page, d1);
  await startSessionUI(page, await tempDir());
  await sendUI(page, "one");
  await waitAssistant(page, "echo: one");
  assert.equal(await page.isHidden('[data-testid="compat-notice"]'), true);

  await d1.stop();
  await page.waitForSelector('#conn[data-state="reconnecting"], #conn[data-state="offline"]', { timeout: 10000 });
  // The new build on the same home takes the same port back; the tab reconnects to it.
  d2 = await startDaemon({ home: d1.home, base: d1.base, bin: copy });
  assert.equal(d2.url, d1.url);
  const before = d1.info.build_id;
  const now = (await api(d2, "GET", "/v1/handshake")).json.build_id;
  assert.ok(before && now && before !== now, `build ids: ${before} / ${now}`);

  await page.waitForSelector('[data-testid="compat-notice"][data-kind="upgraded"]', { state: "visible", timeout: 15000 });
  const text = await page.textContent('[data-testid="compat-text"]');
  assert.match(text, /^r1 was updated \(.+ → .+\): reload to use the matching page\.$/);
  // Non-blocking: the tab is connected and works.
  await page.waitForSelector('#conn[data-state="connected"]');
  await sendUI(page, "two");
  await waitAssistant(page, "echo: two");
  await checkPage(page, problems);
  await screenshots(page, "resilience-upgraded");

  // Reload picks up the page the running daemon serves; the notice is gone.
  await page.click('[data-testid="compat-reload"]');
  await page.waitForSelector('#conn[data-state="connected"]');
  await page.waitForSelector('body[data-view="chat"]');
  assert.equal(await page.isHidden('[data-testid="compat-notice"]'), true);
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});

test("incompatible daemon: a plain message, a Reload button, and no more reconnect attempts", async (t) => {
  const d1 = await startDaemon();
  let d2 = null;
  t.after(async () => {
    await d1.stop();
    if (d2) await d2.cleanup();
    else await d1.cleanup();
  });
  const { page, problems, sockets } = await openPage(t);
  await login(page, d1);

  // The daemon restarts as one that speaks a newer protocol. A real daemon speaks only
  // r1.proto.v1, so the newer one is simulated at its handshake alone: the page's
  // GET /v1/handshake is answered by the real daemon with its protocol string swapped;
  // everything else (the WebSocket included) is the real daemon.
  let handshakes = 0;
  await page.route("**/v1/handshake", async (route) => {
    handshakes++;
    try {
      const real = await route.fetch();
      await route.fulfill({ response: real, json: { ...(await real.json()), protocol: "r1.proto.v2" } });
    } catch {
      await route.abort();
    }
  });
  await d1.stop();
  d2 = await startDaemon({ home: d1.home, base: d1.base });
  assert.equal(d2.url, d1.url);

  await page.waitForSelector('[data-testid="compat-notice"][data-kind="incompatible"]', { state: "visible", timeout: 15000 });
  assert.equal(
    await page.textContent('[data-testid="compat-text"]'),
    "This page speaks r1.proto.v1 but the daemon speaks r1.proto.v2: reload the page.",
  );
  assert.equal(await page.getAttribute("#conn", "data-state"), "incompatible");
  assert.notEqual((await page.textContent('[data-testid="conn-text"]')).trim(), "Connected");
  assert.equal(await page.isHidden('[data-testid="conn-retry"]'), true);
  await checkPage(page, problems);
  await screenshots(page, "resilience-incompatible");

  // Retrying will not help, so the tab does not: nothing more for longer than its
  // first backoff rounds (250 ms … 2 s), while the daemon is up and would answer.
  const seen = { sockets: sockets.length, handshakes };
  await new Promise((r) => setTimeout(r, 4000));
  assert.deepEqual({ sockets: sockets.length, handshakes }, seen);
  assert.equal(await page.getAttribute("#conn", "data-state"), "incompatible");

  // Reload (with the page matching the daemon again) connects.
  await page.unroute("**/v1/handshake");
  await page.click('[data-testid="compat-reload"]');
  await page.waitForSelector('#conn[data-state="connected"]');
  assert.equal(await page.isHidden('[data-testid="compat-notice"]'), true);
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
