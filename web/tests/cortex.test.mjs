// Cortex notes in the session timeline: a note published over the API shows live in an
// open tab, a critical one is marked (in words, not only colour), a lobe paused shows, and a
// reload rebuilds the same notes from the journal.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  freshHome,
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  api,
  tempDir,
  until,
  startSessionUI,
  sendUI,
  waitAssistant,
  axe,
  seriousOnly,
} from "./lib.mjs";

const cortexNotes = (page) =>
  page.$$eval('#log [data-testid="cortex-note"]', (ns) =>
    ns.map((n) => ({ label: n.querySelector(".cortex-source").textContent, text: n.querySelector(".cortex-text").textContent, critical: n.dataset.critical === "true" })),
  );

test("cortex: notes show live in the timeline, critical ones marked", async (t) => {
  const { base, home } = await freshHome();
  const d = await startDaemon({ home, base });
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await (await browser.newContext()).newPage();
  const problems = await watchPage(page);
  await login(page, d);
  const id = await startSessionUI(page, await tempDir());
  await sendUI(page, "hello cortex");
  await waitAssistant(page, "echo: hello cortex");

  let r = await api(d, "POST", `/v1/sessions/${id}/cortex/notes`, { note: { text: "tests in io.rs fail", tags: ["verify"], critical: true } });
  assert.equal(r.status, 201);
  r = await api(d, "POST", `/v1/sessions/${id}/cortex/notes`, { note: { text: "<b>not bold</b>" } });
  assert.equal(r.status, 201);
  await until(async () => (await cortexNotes(page)).length === 2, { what: "two notes in the timeline" });
  const shown = await cortexNotes(page);
  assert.deepEqual(shown, [
    { label: "Critical note from a client (verify)", text: "tests in io.rs fail", critical: true },
    { label: "Note from a client", text: "<b>not bold</b>", critical: false },
  ]);
  // Model-free text is never HTML.
  assert.equal(await page.$$eval("#log .cortex-text b", (b) => b.length), 0);
  const colours = await page.$$eval('#log [data-testid="cortex-note"]', (ns) => ns.map((n) => getComputedStyle(n).borderLeftColor));
  assert.notEqual(colours[0], colours[1], "the critical note is highlighted");

  // Pausing a lobe shows in the timeline too.
  r = await api(d, "POST", `/v1/sessions/${id}/cortex/lobes/loop/pause`, {});
  assert.equal(r.status, 200);
  await until(async () => (await page.$$eval('#log [data-testid="note"]', (ns) => ns.map((n) => n.textContent))).includes("Lobe loop paused for this session."), {
    what: "the lobe paused note",
  });

  const before = await cortexNotes(page);
  await page.reload();
  await page.waitForSelector('#chat-state[data-state="idle"]');
  await until(async () => (await cortexNotes(page)).length === before.length, { what: "notes after reload" });
  assert.deepEqual(await cortexNotes(page), before);

  const v = seriousOnly(await axe(page));
  assert.deepEqual(v, [], JSON.stringify(v, null, 2));
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
