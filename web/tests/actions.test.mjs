// The chat's other actions: Cancel, Pause/Resume, Deny, stopping a lane, form errors,
// and a reload that shows the same history once.

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
} from "./lib.mjs";

test("cancel, pause and resume, deny, stop a lane, start-form errors, reload", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = await watchPage(page);
  await login(page, d);

  // Start-form errors are shown, in words, next to the form.
  await page.click('[data-testid="new-session"]');
  await page.fill('[data-testid="start-workdir"]', "relative/path");
  await page.click('[data-testid="start-submit"]');
  assert.match(await page.textContent('[data-testid="start-error"]'), /absolute path/);
  await page.fill('[data-testid="start-workdir"]', "/definitely/not/a/dir/r1");
  await page.click('[data-testid="start-submit"]');
  await page.waitForFunction(() => /Could not start the session: ./.test(document.querySelector('[data-testid="start-error"]').textContent));
  // Escape leaves the form.
  await page.press('[data-testid="start-workdir"]', "Escape");
  await page.waitForSelector('body[data-view="list"]');

  const wd = await tempDir();
  const sid = await startSessionUI(page, wd);

  // Cancel a slow reply while it streams.
  await sendUI(page, "/slow " + "a long answer that takes a while to stream ".repeat(4));
  await page.waitForSelector('#log [data-streaming="true"]');
  await page.waitForSelector('#chat-state[data-state="busy"]');
  await page.click('[data-testid="action-cancel"]');
  await page.waitForFunction(() => document.querySelector("#log").textContent.includes("Turn cancelled."));
  await page.waitForSelector('#chat-state[data-state="idle"]');
  assert.equal(await page.$eval('#log [data-role="assistant"]', (e) => e.dataset.interrupted), "true");

  // Pause: sending is off; Resume: back on. Focus follows the buttons.
  await page.click('[data-testid="action-pause"]');
  await page.waitForSelector('#chat-state[data-state="paused"]');
  assert.equal(await page.isDisabled('[data-testid="composer-send"]'), true);
  assert.equal(await page.isDisabled('[data-testid="action-pause"]'), true);
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "action-resume");
  await page.keyboard.press("Enter");
  await page.waitForSelector('#chat-state[data-state="idle"]');
  assert.equal(await page.isDisabled('[data-testid="composer-send"]'), false);

  // Deny an approval.
  await sendUI(page, "/run echo never");
  await page.waitForSelector('[data-testid="approval"][data-status="pending"]');
  await page.click('[data-testid="approval-deny"]');
  await page.waitForSelector('[data-testid="approval"][data-status="deny"]');
  await page.waitForFunction(() => document.querySelector("#log").textContent.includes("run_command did not run"));
  await waitAssistant(page, "echo: run_command failed: the user denied the run_command call").catch(async () => {
    // The exact wording is the engine's; a failed tool result is what matters.
    await page.waitForFunction(() =>
      Array.from(document.querySelectorAll('#log [data-role="assistant"]')).some((e) => e.textContent.includes("run_command failed")),
    );
  });
  assert.equal(await page.$$eval('[data-testid="lane"]', (l) => l.length), 0);

  // Stop a running lane.
  await sendUI(page, "/run echo started; sleep 30");
  await page.waitForSelector('[data-testid="approval"][data-status="pending"]');
  await page.click('[data-testid="approval"][data-status="pending"] [data-testid="approval-allow"]');
  await page.waitForFunction(() => /started/.test(document.querySelector('[data-testid="lane-output"]')?.textContent || ""));
  await page.waitForSelector('[data-testid="lane"][data-status="running"] [data-testid="lane-kill"]');
  await page.click('[data-testid="lane-kill"]');
  await page.waitForSelector('[data-testid="lane"][data-status="killed"]', { timeout: 10000 });
  assert.equal(await page.isVisible('[data-testid="lane-kill"]'), false);
  await page.waitForSelector('#chat-state[data-state="idle"]', { timeout: 10000 });

  // A reload comes back to the same session and shows the same history, once.
  const before = await messages(page);
  const approvals = await page.$$eval('[data-testid="approval"]', (a) => a.map((x) => x.dataset.status));
  await page.reload();
  await page.waitForSelector('body[data-view="chat"]');
  assert.equal(await page.$eval("#view-chat", (e) => e.dataset.sessionId), sid);
  await page.waitForFunction((n) => document.querySelectorAll('#log [data-testid="message"]').length >= n, before.length);
  await page.waitForSelector('#chat-state[data-state="idle"]');
  assert.deepEqual(
    (await messages(page)).map(([r, x]) => [r, x]),
    before.map(([r, x]) => [r, x]),
  );
  assert.deepEqual(await page.$$eval('[data-testid="approval"]', (a) => a.map((x) => x.dataset.status)), approvals);
  assert.equal((await api(d, "GET", `/v1/sessions/${sid}`)).json.state, "idle");

  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
