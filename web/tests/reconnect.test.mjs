// 2. Reconnect: the daemon restarts under an open session; the banner says so, the view
// reconnects with since_seq, fills the gap, and shows no message twice.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  tempDir,
  startSessionUI,
  sendUI,
  waitAssistant,
  messages,
  api,
  journal,
  until,
} from "./lib.mjs";

test("reconnect after a daemon restart: banner, gap filled, no duplicates, resume and continue", async (t) => {
  const d1 = await startDaemon();
  let d2 = null;
  t.after(async () => {
    await d1.stop();
    if (d2) await d2.cleanup();
    else await d1.cleanup();
  });
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = await watchPage(page);

  await login(page, d1);
  const wd = await tempDir();
  const sid = await startSessionUI(page, wd);
  await sendUI(page, "one");
  await waitAssistant(page, "echo: one");

  // Shut the daemon down (as a client would), wait for it to exit.
  const r = await api(d1, "POST", "/v1/shutdown", {});
  assert.ok(r.status === 200 || r.status === 202, `shutdown: ${r.status} ${r.text}`);
  const exit = await d1.exited;
  assert.equal(exit.code, 0, d1.log());
  await page.waitForSelector('#conn[data-state="reconnecting"], #conn[data-state="offline"]', { timeout: 10000 });
  assert.equal(await page.isVisible('[data-testid="conn-retry"]'), true);
  // Stay down long enough for the tab's backoff to reach seconds between attempts, so
  // what is written right after the restart is a real gap the tab must fill.
  await new Promise((r) => setTimeout(r, 4000));

  // Restart on the same port and home; write to the session while the tab is away:
  // a message and its answer, then a pause. The session was idle when the daemon
  // stopped, so it comes back idle.
  // No --port: the daemon takes its last port back by itself, so the tab's URL is good.
  d2 = await startDaemon({ home: d1.home, base: d1.base });
  assert.equal(d2.url, d1.url);
  const v = await api(d2, "GET", `/v1/sessions/${sid}`);
  assert.equal(v.json.state, "idle");
  assert.equal(v.json.reattachable, false);
  assert.equal((await api(d2, "POST", `/v1/sessions/${sid}/messages`, { text: "two" })).status, 202);
  await until(async () => (await journal(d2, sid)).some((x) => x.kind === "session.message" && x.data.text === "echo: two"), {
    what: "echo: two in the journal",
  });
  assert.equal((await api(d2, "POST", `/v1/sessions/${sid}/pause`, {})).status, 200);

  // The tab reconnects by itself (its backoff tops out at 5 s), with no click.
  await page.waitForSelector('#conn[data-state="connected"]', { timeout: 15000 });
  await page.waitForSelector('#chat-state[data-state="paused"]');
  await waitAssistant(page, "echo: two");

  // Resume through the UI and carry on.
  await page.click('[data-testid="action-resume"]');
  await page.waitForSelector('#chat-state[data-state="idle"]');
  await sendUI(page, "three");
  await waitAssistant(page, "echo: three");

  const shown = (await messages(page)).map(([role, text]) => [role, text]);
  assert.deepEqual(shown, [
    ["user", "one"],
    ["assistant", "echo: one"],
    ["user", "two"],
    ["assistant", "echo: two"],
    ["user", "three"],
    ["assistant", "echo: three"],
  ]);
  // Every record is in the DOM at most once: data-seq values are unique and match the journal.
  const seqs = await page.$$eval("#log [data-seq]", (els) => els.map((e) => Number(e.dataset.seq)));
  assert.equal(new Set(seqs).size, seqs.length, `duplicate records: ${seqs}`);
  const recs = await journal(d2, sid);
  const userSeqs = recs.filter((x) => x.kind === "session.message" && x.data.role === "user").map((x) => x.seq);
  const shownUserSeqs = await page.$$eval('#log [data-role="user"]', (els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(shownUserSeqs, userSeqs);
  // The session was idle across the restart, so nothing was journaled for it and its
  // conversation shows no restart line (the banner above showed the reconnect).
  assert.ok(!(await page.textContent("#log")).includes("The daemon restarted"));
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
