// The session view's Worktree tab on a real git repository: the diff (file list, styled
// added and removed lines, a truncated diff and "Load full diff", no highlighting past
// its size bound; the diff viewer itself is in diffview.test.mjs), a refused merge shown
// as an error, an ff-only merge that lands on main, and Clean with its force
// confirmation; axe, the data-api walk and screenshots of the pane and its dialogs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile, access } from "node:fs/promises";
import { join } from "node:path";
import {
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  api,
  operations,
  screenshots,
  git,
  gitRepo,
  until,
  checkView,
} from "./lib.mjs";

/** A long line per row, so the diff is past the daemon's 200 KiB cut and scrolls sideways. */
function bigFile() {
  const rows = [];
  for (let i = 0; i < 2000; i++) rows.push(`row ${String(i).padStart(4, "0")} ` + "x".repeat(150));
  return rows.join("\n") + "\n";
}

test("worktree pane: diff, load full, merge error and ff-only merge, clean with force", async (t) => {
  const ops = await operations();
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const repo = await gitRepo();
  const started = await api(d, "POST", "/v1/sessions", { workdir: repo, worktree: true, title: "greeting" });
  assert.equal(started.status, 201, started.text);
  const sid = started.json.id;
  const listed = await api(d, "GET", `/v1/worktrees?session_id=${sid}`);
  assert.equal(listed.status, 200, listed.text);
  const wt = listed.json.worktrees[0];
  assert.ok(wt && wt.path, listed.text);
  // The session's work, written straight into its checkout.
  await writeFile(join(wt.path, "README.md"), "one\nTWO <b>not html</b>\nthree\n");
  await writeFile(join(wt.path, "big.txt"), bigFile());
  await writeFile(join(wt.path, "notes.txt"), "hello, world\n  indented\tand tabbed\nlast line\n");

  const checked = [];
  const check = (page, name) => checkView(page, ops, name).then(() => checked.push(name));

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = await watchPage(page);
  await login(page, d);
  await page.click(`[data-testid="session-item"][data-session-id="${sid}"]`);
  await page.waitForSelector('body[data-view="chat"]');
  await page.waitForSelector('[data-testid="tab-worktree"]', { state: "visible" });
  assert.equal(await page.getAttribute('[data-testid="tab-conversation"]', "aria-selected"), "true");
  await page.click('[data-testid="tab-worktree"]');
  await page.waitForSelector('[data-testid="worktree-pane"]', { state: "visible" });
  assert.equal(await page.isVisible("#log"), false);

  // The facts.
  await page.waitForSelector('[data-testid="diff-file"][data-path="README.md"]');
  assert.equal(await page.textContent('[data-testid="worktree-branch"]'), wt.branch);
  assert.match(await page.textContent('[data-testid="worktree-base"]'), /^main at [0-9a-f]{10}/);
  assert.equal(await page.textContent('[data-testid="worktree-dirty"]'), "yes");
  assert.equal(await page.textContent('[data-testid="worktree-state"]'), "active");
  assert.equal(await page.textContent('[data-testid="worktree-ahead-behind"]'), "0 ahead, 0 behind");

  // The file list, with counts.
  const files = await page.$$eval('[data-testid="worktree-file"]', (bs) =>
    bs.map((b) => [b.dataset.path, b.querySelector(".diff-stat").textContent]),
  );
  assert.deepEqual(files, [
    ["README.md", "+1 −1"],
    ["big.txt", "+2000 −0"],
    ["notes.txt", "+3 −0"],
  ]);

  // README.md: one line removed, one added, context around them, a hunk header; the
  // markup in the file is text.
  const readme = await page.$$eval('[data-testid="diff-file"][data-path="README.md"] .dl', (ls) =>
    ls.map((l) => [l.className.replace("dl dl-", ""), l.textContent]),
  );
  const body = readme.filter(([k]) => k !== "meta");
  assert.deepEqual(body, [
    ["hunk", "@@ -1,3 +1,3 @@"],
    ["ctx", " one"],
    ["del", "-two"],
    ["add", "+TWO <b>not html</b>"],
    ["ctx", " three"],
  ]);
  assert.ok(readme.some(([k, x]) => k === "meta" && x === "+++ b/README.md"), JSON.stringify(readme));
  assert.equal(await page.$$eval('[data-testid="worktree-diff"] b', (b) => b.length), 0);
  const colors = await page.$eval('[data-testid="diff-file"][data-path="README.md"]', (f) => {
    const bg = (sel) => getComputedStyle(f.querySelector(sel)).backgroundColor;
    return { add: bg(".dl-add"), del: bg(".dl-del"), ctx: bg(".dl-ctx") };
  });
  assert.notEqual(colors.add, colors.ctx);
  assert.notEqual(colors.del, colors.ctx);
  assert.notEqual(colors.add, colors.del);
  assert.equal(await page.$eval('[data-testid="diff-file"][data-path="README.md"] .dl-add', (l) => l.dataset.ln.trim()), "2");

  // The diff is cut: notes.txt is not shown until the full diff is loaded.
  assert.equal(await page.isVisible('[data-testid="worktree-truncated"]'), true);
  assert.equal(await page.$('[data-testid="diff-file"][data-path="notes.txt"]'), null);
  // The long lines scroll inside their file, not the page.
  const scroll = await page.$eval('[data-testid="diff-file"][data-path="big.txt"] .diff-body', (p) => p.scrollWidth > p.clientWidth);
  assert.equal(scroll, true);
  await check(page, "worktree-truncated");
  await page.click('[data-testid="worktree-load-full"]');
  await page.waitForSelector('[data-testid="diff-file"][data-path="notes.txt"]');
  await page.waitForSelector('[data-testid="worktree-status"][data-kind="ok"]');
  assert.match(await page.textContent('[data-testid="worktree-status"]'), /Loaded the full diff/);
  assert.equal(await page.isVisible('[data-testid="worktree-truncated"]'), false);
  // Past 256 KiB the diff is not highlighted (it stays quick to show), and the pane says so.
  assert.match(await page.textContent('[data-testid="diff-note"]'), /^Syntax highlighting is off: this diff is 315 KiB, over the 256 KiB/);
  assert.equal(await page.$$eval('[data-testid="worktree-diff"] [class^="hljs"]', (s) => s.length), 0);
  const notes = await page.$$eval('[data-testid="diff-file"][data-path="notes.txt"] .dl-add', (ls) =>
    ls.map((l) => [l.textContent, getComputedStyle(l).whiteSpace]),
  );
  assert.deepEqual(notes, [
    ["+hello, world", "pre"],
    ["+  indented\tand tabbed", "pre"],
    ["+last line", "pre"],
  ]);
  // A file of the list jumps to its diff.
  await page.click('[data-testid="worktree-file"][data-path="notes.txt"]');
  assert.equal(await page.evaluate(() => document.activeElement.closest("[data-path]")?.dataset.path), "notes.txt");

  // Narrow: no page-wide horizontal overflow.
  await page.setViewportSize({ width: 360, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `horizontal overflow at 360 px: ${overflow}px`);
  await page.setViewportSize({ width: 1280, height: 800 });

  // main moves: an ff-only merge is refused, and the error is shown in words.
  await writeFile(join(repo, "other.txt"), "elsewhere\n");
  await git(repo, "add", "other.txt");
  await git(repo, "commit", "-q", "-m", "main moves");
  await page.selectOption('[data-testid="worktree-strategy"]', "ff-only");
  await page.click('[data-testid="worktree-merge"]');
  await page.waitForSelector('[data-testid="merge-dialog"]');
  await check(page, "worktree-merge-dialog");
  await page.click('[data-testid="merge-dialog-confirm"]');
  await page.waitForSelector('[data-testid="worktree-status"][data-kind="error"]');
  const failed = await page.textContent('[data-testid="worktree-status"]');
  assert.match(failed, /^Merge failed \(conflict\): ./, failed);
  // Enabled again once the diff reloaded after the call.
  await page.waitForSelector('[data-testid="worktree-merge"]:not([disabled])');
  assert.equal(await page.getAttribute('[data-testid="worktree-pane"]', "aria-busy"), "false");
  await check(page, "worktree-merge-error");

  // main back where the worktree started: the ff-only merge lands.
  await git(repo, "reset", "-q", "--hard", "HEAD~1");
  await page.click('[data-testid="worktree-merge"]');
  await page.waitForSelector('[data-testid="merge-dialog"]');
  // Cancel first: nothing happens.
  await page.click('[data-testid="merge-dialog-cancel"]');
  await page.waitForSelector('[data-testid="merge-dialog"]', { state: "detached" });
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "worktree-merge");
  await page.click('[data-testid="worktree-merge"]');
  await page.click('[data-testid="merge-dialog-confirm"]');
  await page.waitForSelector('[data-testid="worktree-status"][data-kind="ok"]');
  const merged = await page.textContent('[data-testid="worktree-status"]');
  assert.match(merged, new RegExp(`^Merged ${wt.branch} into main \\(ff-only\\): main is now at [0-9a-f]{10}\\.`), merged);
  await page.waitForFunction(() => document.querySelector('[data-testid="worktree-state"]').textContent === "merged");
  const mainTip = await git(repo, "rev-parse", "main");
  const branchTip = await git(repo, "rev-parse", wt.branch);
  assert.equal(mainTip, branchTip);
  assert.equal(await git(repo, "show", "main:notes.txt"), "hello, world\n  indented\tand tabbed\nlast line");
  assert.match(merged, new RegExp(mainTip.slice(0, 10)));
  await check(page, "worktree-merged");

  // Uncommitted work again: Clean is refused, and force needs its own confirmation.
  await writeFile(join(wt.path, "scratch.txt"), "unsaved\n");
  await page.click('[data-testid="worktree-clean"]');
  await page.waitForSelector('[data-testid="clean-dialog"]');
  await page.click('[data-testid="clean-dialog-confirm"]');
  await page.waitForSelector('[data-testid="force-clean-dialog"]');
  assert.match(await page.textContent('[data-testid="worktree-status"]'), /^Not cleaned: /);
  await check(page, "worktree-force-dialog");
  await page.click('[data-testid="force-clean-dialog-confirm"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="worktree-state"]').textContent === "cleaned");
  await page.waitForSelector('[data-testid="worktree-status"][data-kind="ok"]');
  assert.match(await page.textContent('[data-testid="worktree-status"]'), /^Cleaned: /);
  for (const id of ["worktree-merge", "worktree-clean", "worktree-refresh"]) {
    assert.equal(await page.isDisabled(`[data-testid="${id}"]`), true, id);
  }
  assert.equal(await page.$$eval('[data-testid="diff-file"]', (f) => f.length), 0);
  const after = await api(d, "GET", `/v1/worktrees?session_id=${sid}`);
  assert.equal(after.json.worktrees[0].state, "cleaned");
  await until(async () => !(await access(wt.path).then(() => true, () => false)), { what: "the checkout to be removed" });
  await check(page, "worktree-cleaned");

  // A session without a worktree has no tabs.
  const plain = await api(d, "POST", "/v1/sessions", { workdir: repo, title: "plain" });
  assert.equal(plain.status, 201, plain.text);
  await page.click(`[data-testid="session-item"][data-session-id="${plain.json.id}"]`);
  await page.waitForFunction((id) => document.querySelector("#view-chat").dataset.sessionId === id, plain.json.id);
  await page.waitForSelector('#chat-state[data-state="idle"]');
  assert.equal(await page.isVisible('[data-testid="chat-tabs"]'), false);
  assert.equal(await page.isVisible("#log"), true);

  assert.deepEqual(checked, [
    "worktree-truncated",
    "worktree-merge-dialog",
    "worktree-merge-error",
    "worktree-merged",
    "worktree-force-dialog",
    "worktree-cleaned",
  ]);
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
