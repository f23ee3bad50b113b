// Search: "/" opens the dialog, a word from an assistant reply and one from a
// tool's output are found, and a hit opens its session scrolled to that record,
// highlighted. A malformed query shows the daemon's validation message. Axe, the
// data-api walk and screenshots of the dialog.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  api,
  tempDir,
  until,
  journal,
  operations,
  walkDataApi,
  axe,
  seriousOnly,
  screenshots,
} from "./lib.mjs";

/** Sends `text` to session `id` over the API and waits for the record `pred` finds. */
async function sendAndWait(d, id, text, pred) {
  const r = await api(d, "POST", `/v1/sessions/${id}/messages`, { text });
  assert.equal(r.status, 202, r.text);
  let found;
  await until(async () => (found = (await journal(d, id)).find(pred)), { what: text });
  return found;
}

test("search: the / key, hits from a reply and a tool's output, a hit opens its record", async (t) => {
  const ops = await operations();
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const wd = await tempDir();
  const s = await api(d, "POST", "/v1/sessions", { workdir: wd, title: "searched", policy: { run_command: "allow" } });
  assert.equal(s.status, 201, s.text);
  const id = s.json.id;
  // Enough conversation that the record is off screen when the session opens.
  for (let i = 0; i < 12; i++) {
    await sendAndWait(d, id, `filler line ${i}`, (r) => r.kind === "session.message" && r.data.text === `echo: filler line ${i}`);
  }
  const reply = await sendAndWait(d, id, "where is the gryphonwing", (r) => r.kind === "session.message" && r.data.role === "assistant" && r.data.text.includes("gryphonwing"));
  const done = await sendAndWait(d, id, "/run printf 'hip%s\\n' pogriff", (r) => r.kind === "tool.completed");
  for (let i = 12; i < 24; i++) {
    await sendAndWait(d, id, `filler line ${i}`, (r) => r.kind === "session.message" && r.data.text === `echo: filler line ${i}`);
  }

  const context = await browser.newContext({ viewport: { width: 1280, height: 600 } });
  const page = await context.newPage();
  const problems = await watchPage(page);
  await login(page, d);
  await page.waitForSelector('[data-testid="session-list"] li');

  await page.keyboard.press("/");
  await page.waitForSelector('[data-testid="search-dialog"][open]');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "search-input");

  const hits = () =>
    page.$$eval('[data-testid="search-hit"]', (hs) => hs.map((h) => ({ session: h.dataset.sessionId, seq: Number(h.dataset.seq), marked: Array.from(h.querySelectorAll("mark")).map((m) => m.textContent) })));
  const search = async (q, seq) => {
    await page.fill('[data-testid="search-input"]', q);
    await until(async () => (await hits()).some((h) => h.seq === seq), { what: `hit ${seq} for ${q}: ${JSON.stringify(await hits())} in ${JSON.stringify((await journal(d, id)).filter((r) => JSON.stringify(r.data).includes(q)))}` });
    return hits();
  };
  const replyHits = await search("gryphonwing", reply.seq);
  assert.ok(replyHits.some((h) => h.session === id && h.seq === reply.seq), JSON.stringify(replyHits));
  assert.ok(replyHits.every((h) => h.marked.includes("gryphonwing")));
  const toolHits = await search("hippogriff", done.seq);
  assert.ok(toolHits.some((h) => h.session === id && h.seq === done.seq && h.marked.includes("hippogriff")));
  await walkDataApi(page, ops);
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    const v = seriousOnly(await axe(page));
    assert.deepEqual(v, [], `search (${scheme}): axe violations:\n${JSON.stringify(v, null, 2)}`);
    await screenshots(page, `search-${scheme}`);
  }
  await page.emulateMedia({ colorScheme: "light" });

  // A malformed query: the engine's message, no hits.
  await page.fill('[data-testid="search-input"]', '"unclosed');
  await until(async () => /unterminated string/.test(await page.textContent('[data-testid="search-status"]')), { what: "validation message" });
  assert.equal((await page.$$('[data-testid="search-hit"]')).length, 0);

  // A reply hit opens the session scrolled to that message, highlighted.
  await search("gryphonwing", reply.seq);
  await page.click(`[data-testid="search-hit"][data-seq="${reply.seq}"]`);
  await page.waitForSelector(`[data-testid="message"][data-seq="${reply.seq}"].search-target`);
  assert.equal(await page.isVisible('[data-testid="search-dialog"]'), false);
  const inView = (sel) =>
    page.$eval(sel, (e) => {
      const r = e.getBoundingClientRect();
      const log = document.getElementById("log").getBoundingClientRect();
      return r.bottom > log.top && r.top < log.bottom;
    });
  assert.ok(await inView(`[data-testid="message"][data-seq="${reply.seq}"]`));

  // A tool hit: the lane that holds the record.
  await page.keyboard.press("/");
  await search("hippogriff", done.seq);
  await page.click(`[data-testid="search-hit"][data-seq="${done.seq}"]`);
  await page.waitForSelector('[data-testid="lane"].search-target');
  assert.ok(await inView('[data-testid="lane"].search-target'));
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
