// Message actions: copy any message, edit-and-resend the last user message, regenerate
// the last answer (the question is sent again, as a new message).

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  freshHome,
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  journal,
  tempDir,
  until,
  startSessionUI,
  sendUI,
  waitAssistant,
  operations,
  walkDataApi,
} from "./lib.mjs";

test("messages: copy, edit and resend the last message, regenerate the last answer", async (t) => {
  const { base, home } = await freshHome();
  const d = await startDaemon({ home, base });
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const context = await browser.newContext();
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: d.url });
  const page = await context.newPage();
  const problems = await watchPage(page);
  await login(page, d);
  const id = await startSessionUI(page, await tempDir());
  await sendUI(page, "first question");
  await waitAssistant(page, "echo: first question");
  await sendUI(page, "second question");
  await waitAssistant(page, "echo: second question");

  // Only the last user message offers Edit, only the last answer Regenerate.
  const visible = (sel) => page.$$eval(sel, (bs) => bs.filter((b) => !b.hidden).length);
  await until(async () => (await visible('[data-testid="message-regenerate"]')) === 1, { what: "one regenerate button" });
  assert.equal(await visible('[data-testid="message-edit"]'), 1);
  await walkDataApi(page, await operations());

  // Copy the first answer.
  const answers = page.locator('[data-testid="message"][data-role="assistant"]');
  await answers.first().locator('[data-testid="message-copy"]').click();
  await until(async () => (await page.evaluate(() => navigator.clipboard.readText())) === "echo: first question", { what: "the copied answer" });

  // Edit the last user message: it comes back into the composer, changed, sent anew.
  await page.locator('[data-testid="message"][data-role="user"]').last().locator('[data-testid="message-edit"]').click();
  assert.equal(await page.inputValue('[data-testid="composer-input"]'), "second question");
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "composer-input");
  await page.fill('[data-testid="composer-input"]', "second question, edited");
  await page.press('[data-testid="composer-input"]', "Enter");
  await waitAssistant(page, "echo: second question, edited");

  // Regenerate the last answer: its question goes again and a new answer comes.
  await page.waitForSelector('#chat-state[data-state="idle"]');
  await page.locator('[data-testid="message-regenerate"]:not([hidden])').click();
  await until(
    async () => (await journal(d, id)).filter((r) => r.kind === "session.message" && r.data.role === "user" && r.data.text === "second question, edited").length === 2,
    { what: "the question sent again" },
  );
  await until(async () => (await page.$$eval('[data-testid="message"][data-role="assistant"]', (ms) => ms.filter((m) => m.dataset.streaming === "false" && m.textContent.includes("echo: second question, edited")).length)) === 2, {
    what: "the regenerated answer",
  });
  assert.equal(await visible('[data-testid="message-regenerate"]'), 1);

  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
