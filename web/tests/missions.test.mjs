// The missions board: a mission queued through the form moves to running and then to
// succeeded (with its check) live, from the daemon bus, with no reload; another one is
// cancelled from its card; a card opens its session. Axe, the data-api walk and
// screenshots of the board.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  api,
  operations,
  screenshots,
  gitRepo,
  checkView,
} from "./lib.mjs";

/** The state of the card of mission `title`, or null. */
function cardState(page, title) {
  return page.evaluate((t) => {
    const c = Array.from(document.querySelectorAll('[data-testid="mission-card"]')).find(
      (a) => a.querySelector('[data-testid="mission-title"]').textContent === t,
    );
    return c ? c.dataset.state : null;
  }, title);
}

function card(title) {
  return `[data-testid="mission-card"]:has([data-testid="mission-title"]:text-is("${title}"))`;
}

test("missions board: queue from the form, live to succeeded, cancel, open the session", async (t) => {
  const ops = await operations();
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  // A project whose test check passes.
  const repo = await gitRepo({
    ".r1/verify.toml": '[test]\ncommand = "sh check.sh"\nformat = "text"\n',
    "check.sh": "echo all good\n",
  });

  const checked = [];
  const check = (page, name) => checkView(page, ops, name).then(() => checked.push(name));

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = await watchPage(page);
  await login(page, d);
  await page.click('[data-testid="open-missions"]');
  await page.waitForSelector('body[data-view="missions"]');
  await page.waitForSelector('[data-testid="view-missions"]', { state: "visible" });
  assert.equal(await page.getAttribute('[data-testid="open-missions"]', "aria-current"), "page");
  assert.equal(await page.isVisible('[data-testid="missions-empty"]'), true);
  // An empty board opens its form.
  await page.waitForSelector('[data-testid="mission-form"]', { state: "visible" });
  await check(page, "missions-empty");

  // Every state a card takes, as the page saw it (no reload: the marker survives).
  await page.evaluate(() => {
    window.__noReload = true;
    window.__seen = {};
    new MutationObserver(() => {
      for (const c of document.querySelectorAll('[data-testid="mission-card"]')) {
        const t = c.querySelector('[data-testid="mission-title"]').textContent;
        const col = c.closest("[data-column]").dataset.column;
        const s = (window.__seen[t] ||= []);
        const v = `${c.dataset.state}@${col}`;
        if (s[s.length - 1] !== v) s.push(v);
      }
    }).observe(document.getElementById("mission-board"), { subtree: true, attributes: true, childList: true });
  });

  // Form errors.
  await page.fill('[data-testid="mission-workdir"]', "relative");
  await page.fill('[data-testid="mission-prompt"]', "x");
  await page.click('[data-testid="mission-submit"]');
  assert.match(await page.textContent('[data-testid="mission-form-error"]'), /absolute path/);

  // A quick mission with a check.
  await page.fill('[data-testid="mission-prompt"]', "/slow hello world");
  await page.fill('[data-testid="mission-workdir"]', repo);
  await page.fill('[data-testid="mission-title-input"]', "say hello");
  await page.check('[data-testid="mission-verify-test"]');
  await page.click('[data-testid="mission-submit"]');
  await page.waitForSelector(card("say hello"));
  assert.equal(await page.isVisible('[data-testid="mission-form-error"]'), false);
  assert.equal(await page.inputValue('[data-testid="mission-prompt"]'), "");
  await page.waitForSelector(`#mcol-finished ${card("say hello")}[data-state="succeeded"]`, { timeout: 30000 });
  const seen = await page.evaluate(() => window.__seen["say hello"]);
  // Running (or already verifying) in the middle column before it finished.
  assert.ok(seen.some((v) => /^(running|verifying)@running$/.test(v)), JSON.stringify(seen));
  assert.equal(seen[seen.length - 1], "succeeded@finished", JSON.stringify(seen));
  const ok = card("say hello");
  assert.deepEqual(
    await page.$$eval(`${ok} [data-testid="verify-item"]`, (l) => l.map((x) => [x.dataset.step, x.dataset.ok, x.querySelector(".verify-result").textContent])),
    [["test", "true", "passed"]],
  );
  assert.equal(await page.textContent(`${ok} [data-testid="mission-state"]`), "succeeded");
  assert.equal(await page.isVisible(`${ok} [data-testid="mission-cancel"]`), false);
  assert.equal(await page.isVisible(`${ok} [data-testid="mission-resume"]`), false);
  assert.equal(await page.isVisible(`${ok} [data-testid="mission-open-session"]`), true);
  await page.waitForFunction(() => /succeeded/.test(document.querySelector('[data-testid="missions-status"]').textContent));

  // The form folds away and opens again.
  await page.click('[data-testid="mission-new-toggle"]');
  await page.waitForSelector('[data-testid="mission-form"]', { state: "hidden" });
  await page.click('[data-testid="mission-new-toggle"]');
  await page.waitForSelector('[data-testid="mission-form"]', { state: "visible" });
  // Focus moves to the prompt once the form is shown (a frame after it is visible).
  await page
    .waitForFunction(() => document.activeElement?.dataset.testid === "mission-prompt", null, { timeout: 2000 })
    .catch(() => {});
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "mission-prompt");

  // A long one, cancelled from its card while it runs.
  // `/run sleep 30` makes the echo engine ask to run a command; the mission waits on
  // that approval (running) until it is cancelled, however slow the machine.
  await page.fill('[data-testid="mission-prompt"]', "/run sleep 30");
  await page.fill('[data-testid="mission-title-input"]', "too slow");
  await page.uncheck('[data-testid="mission-verify-test"]');
  await page.click('[data-testid="mission-submit"]');
  await page.waitForSelector(`#mcol-running ${card("too slow")}[data-state="running"]`, { timeout: 30000 });
  // Fold the form away: the board is what the rest is about.
  await page.click('[data-testid="mission-new-toggle"]');
  await page.waitForSelector('[data-testid="mission-form"]', { state: "hidden" });
  assert.equal(await page.textContent('[data-testid="mission-count-running"]'), "1");
  await check(page, "missions-running");
  await page.click(`${card("too slow")} [data-testid="mission-cancel"]`);
  await page.waitForSelector(`#mcol-finished ${card("too slow")}[data-state="cancelled"]`, { timeout: 30000 });
  assert.equal(await page.isVisible(`${card("too slow")} [data-testid="mission-cancel"]`), false);
  assert.equal(await page.textContent('[data-testid="mission-count-finished"]'), "2");
  assert.equal(await page.textContent('[data-testid="mission-count-running"]'), "0");
  assert.equal(await cardState(page, "too slow"), "cancelled");
  const viaApi = (await api(d, "GET", "/v1/missions")).json.missions.map((m) => [m.title, m.state]);
  assert.deepEqual(viaApi, [
    ["say hello", "succeeded"],
    ["too slow", "cancelled"],
  ]);
  // Newest finished first.
  assert.deepEqual(
    await page.$$eval('#mcol-finished [data-testid="mission-title"]', (l) => l.map((x) => x.textContent)),
    ["too slow", "say hello"],
  );
  assert.equal(await page.evaluate(() => window.__noReload), true);

  // Narrow: one column, no horizontal overflow, a way back.
  await page.setViewportSize({ width: 360, height: 740 });
  assert.equal(await page.isVisible('[data-testid="missions-back"]'), true);
  assert.equal(await page.isVisible('[data-testid="view-list"]'), false);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `horizontal overflow at 360 px: ${overflow}px`);
  await page.setViewportSize({ width: 1280, height: 800 });
  await check(page, "missions-finished");

  // A card opens its mission's session, which has a worktree.
  await page.click(`${ok} [data-testid="mission-open-session"]`);
  await page.waitForSelector('body[data-view="chat"]');
  await page.waitForSelector('[data-testid="tab-worktree"]', { state: "visible" });
  await page.click('[data-testid="tab-worktree"]');
  await page.waitForSelector('[data-testid="worktree-state"]:text-is("active")');
  assert.equal(await page.getAttribute('[data-testid="open-missions"]', "aria-current"), "false");

  assert.deepEqual(checked, ["missions-empty", "missions-running", "missions-finished"]);
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
