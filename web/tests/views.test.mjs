// 4. Accessibility (axe-core, light and dark), 5. the data-api walk, and
// screenshots of every view at 360 px and 1280 px (saved under web/tests/artifacts/).

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  tempDir,
  api,
  operations,
  screenshots,
  sendUI,
  checkView,
} from "./lib.mjs";

test("every view: data-api walk, axe (no serious or critical violations), screenshots", async (t) => {
  const ops = await operations();
  assert.ok(ops.has("session.send") && ops.has("subscribe") && ops.has("auth.exchange"));
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const wd = await tempDir();
  // A session that exists before the page opens, so the list is not empty.
  const pre = await api(d, "POST", "/v1/sessions", { workdir: wd, title: "prepared session" });
  assert.equal(pre.status, 201, pre.text);

  const checked = [];
  const check = (page, name, opts) => checkView(page, ops, name, opts).then(() => checked.push(name));

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = await watchPage(page);

  // Login screen: no code, no token.
  await page.goto(d.url + "/");
  await page.waitForSelector('body[data-view="login"]');
  assert.match(await page.textContent('[data-testid="view-login"]'), /r1 open/);
  await check(page, "login", { interactive: false });

  // The session list.
  await login(page, d);
  await page.waitForSelector('[data-testid="session-item"]');
  await check(page, "list");

  // The start form (engines loaded).
  await page.click('[data-testid="new-session"]');
  await page.waitForSelector('body[data-view="start"]');
  await page.waitForSelector('[data-testid="start-engine"] option[value="echo"]', { state: "attached" });
  // Keyboard: the workdir field has focus, Tab reaches the engine select.
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "start-workdir");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "start-engine");
  await check(page, "start");

  // The chat view with an approval card, then with a lane.
  await page.fill('[data-testid="start-workdir"]', wd);
  await page.click('[data-testid="start-submit"]');
  await page.waitForSelector('#chat-state[data-state="idle"]');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "composer-input");
  await sendUI(page, "Here is **markdown** with `code`:\n\n```\nfn main() {}\n```\n- one\n- two");
  await page.waitForSelector('[data-role="assistant"][data-streaming="false"]');
  await sendUI(page, "/run echo hi");
  await page.waitForSelector('[data-testid="approval"][data-status="pending"]');
  await check(page, "chat-approval");
  // Keyboard: Allow is reachable and operable from the keyboard.
  await page.focus('[data-testid="approval-allow"]');
  await page.keyboard.press("Enter");
  await page.waitForSelector('[data-testid="lane"][data-status="done"]');
  await page.waitForSelector('#chat-state[data-state="idle"]');
  await check(page, "chat-lane");

  // Narrow: the list and the chat are separate screens with a way back.
  await page.setViewportSize({ width: 360, height: 740 });
  assert.equal(await page.isVisible('[data-testid="chat-back"]'), true);
  assert.equal(await page.isVisible('[data-testid="view-list"]'), false);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `horizontal overflow at 360 px: ${overflow}px`);
  await page.click('[data-testid="chat-back"]');
  await page.waitForSelector('body[data-view="list"]');
  assert.equal(await page.isVisible('[data-testid="view-list"]'), true);
  // Focus returns to the session that was open.
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "session-item");
  await check(page, "list-narrow");

  // Visible focus: a focused button draws an outline.
  await page.keyboard.press("Tab");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, "none");

  assert.deepEqual(checked, ["login", "list", "start", "chat-approval", "chat-lane", "list-narrow"]);
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
