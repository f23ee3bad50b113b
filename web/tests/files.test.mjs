// The session view's Files tab on a real session in a real temporary workdir: the echo
// engine's `/tool` hook makes the agent write and read files, the tab appears, lists
// them newest first, shows one read-only with line numbers and highlighting, and says
// so for a cut file, a binary file, a file that leads outside the workdir and a file
// that is gone; the tab bar's keyboard; axe, the data-api walk and screenshots.

import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile, mkdir, symlink, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  api,
  operations,
  screenshots,
  sendUI,
  waitAssistant,
  tempDir,
  until,
  checkView,
} from "./lib.mjs";

const APP_JS = 'export function greet(name) {\n  return "hello, " + name;\n}\n';

test("files tab: touched files listed newest first, shown read-only, errors explained", async (t) => {
  const ops = await operations();
  assert.ok(ops.has("workdir.read"), "workdir.read is in the catalog");
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const work = await tempDir();
  const outside = await tempDir("r1-web-outside-");
  await writeFile(join(outside, "secret.txt"), "the secret\n");
  await symlink(join(outside, "secret.txt"), join(work, "escape.txt"));
  await writeFile(join(work, "big.txt"), "x".repeat(300 * 1024) + "\n");
  await writeFile(join(work, "logo.png"), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52]));
  await mkdir(join(work, "src"));
  const started = await api(d, "POST", "/v1/sessions", {
    workdir: work,
    title: "files",
    policy: { write_file: "allow", edit_file: "allow" },
  });
  assert.equal(started.status, 201, started.text);
  const sid = started.json.id;

  const checked = [];
  const check = (page, name) => checkView(page, ops, name).then(() => checked.push(name));

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = await watchPage(page);
  await login(page, d);
  await page.click(`[data-testid="session-item"][data-session-id="${sid}"]`);
  await page.waitForSelector('body[data-view="chat"]');
  await page.waitForSelector('#chat-state[data-state="idle"]');
  // Nothing touched and no worktree: no tab bar.
  assert.equal(await page.isVisible('[data-testid="chat-tabs"]'), false);

  // The agent touches files: the binary and the big one (failed edits still name
  // them), one it writes, then the symlink out (which its read_file refuses).
  const tool = async (name, args, answer) => {
    await sendUI(page, `/tool ${name} ${JSON.stringify(args)}`);
    await page.waitForFunction(
      (a) =>
        Array.from(document.querySelectorAll('#log [data-testid="message"][data-role="assistant"]')).some(
          (e) => e.dataset.streaming !== "true" && e.querySelector(".msg-body").textContent.startsWith(a),
        ),
      answer,
      { timeout: 15000 },
    );
    await page.waitForSelector('#chat-state[data-state="idle"]');
  };
  await tool("edit_file", { path: "logo.png", old: "zz", new: "y" }, "echo: edit_file failed");
  await page.waitForSelector('[data-testid="tab-files"]', { state: "visible" });
  assert.equal(await page.isVisible('[data-testid="chat-tabs"]'), true);
  assert.equal(await page.isVisible('[data-testid="tab-worktree"]'), false);
  await tool("edit_file", { path: "./big.txt", old: "nowhere", new: "y" }, "echo: edit_file failed");
  await tool("write_file", { path: "src/app.js", content: APP_JS }, "echo: write_file returned");
  await tool("read_file", { path: "escape.txt" }, "echo: read_file failed");
  await sendUI(page, "plain message");
  await waitAssistant(page, "echo: plain message");

  // The keyboard: arrows move between the shown tabs and wrap, Home and End.
  await page.focus('[data-testid="tab-conversation"]');
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.evaluate(() => document.activeElement.id), "tab-files");
  assert.equal(await page.getAttribute('[data-testid="tab-files"]', "aria-selected"), "true");
  assert.equal(await page.getAttribute('[data-testid="tab-files"]', "tabindex"), "0");
  assert.equal(await page.getAttribute('[data-testid="tab-conversation"]', "tabindex"), "-1");
  assert.equal(await page.isVisible("#log"), false);
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.evaluate(() => document.activeElement.id), "tab-conversation");
  await page.keyboard.press("End");
  assert.equal(await page.evaluate(() => document.activeElement.id), "tab-files");
  await page.waitForSelector('[data-testid="files-pane"]', { state: "visible" });

  // Newest first, each once, with what the agent did.
  await until(async () => (await page.$$('[data-testid="files-item"]')).length === 4, { what: "four files listed" });
  const items = await page.$$eval('[data-testid="files-item"]', (bs) => bs.map((b) => [b.dataset.path, b.dataset.did]));
  assert.deepEqual(items, [
    ["escape.txt", "read"],
    ["src/app.js", "wrote"],
    ["big.txt", "edited"],
    ["logo.png", "edited"],
  ]);
  for (const b of await page.$$('[data-testid="files-item"]')) assert.equal(await b.getAttribute("data-api"), "workdir.read");

  // A file, read-only: its text, line numbers, highlighting.
  await page.click('[data-testid="files-item"][data-path="src/app.js"]');
  await page.waitForSelector('[data-testid="files-code"] .fv-text code');
  assert.equal(await page.textContent('[data-testid="files-path"]'), "src/app.js");
  assert.equal(await page.textContent('[data-testid="files-code"] .fv-text'), APP_JS);
  assert.equal(await page.textContent('[data-testid="files-code"] .fv-gutter'), "1\n2\n3");
  assert.ok(await page.$('[data-testid="files-code"] .fv-text code.language-javascript span.hljs-keyword'), "a highlighted keyword");
  assert.equal(await page.$$eval('[data-testid="files-code"] .fv-text code *', (es) => es.filter((e) => e.tagName !== "SPAN").length), 0);
  assert.match(await page.textContent('[data-testid="files-meta"]'), /^59 bytes · modified /);
  assert.equal(await page.getAttribute('[data-testid="files-item"][data-path="src/app.js"]', "aria-current"), "true");
  assert.equal(await page.evaluate(() => document.activeElement.dataset.path), "src/app.js");
  await check(page, "files-text");

  // Changed on disk, then Refresh.
  await writeFile(join(work, "src", "app.js"), APP_JS + "// more\n");
  await page.click('[data-testid="files-refresh"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="files-code"] .fv-gutter')?.textContent === "1\n2\n3\n4");
  assert.match(await page.textContent('[data-testid="files-code"] .fv-text'), /\/\/ more\n$/);

  // Cut at 256 KiB.
  await page.click('[data-testid="files-item"][data-path="big.txt"]');
  await page.waitForSelector('[data-testid="files-status"][data-kind="note"]');
  assert.match(await page.textContent('[data-testid="files-status"]'), /^Truncated at 256 KiB/);
  assert.equal((await page.textContent('[data-testid="files-code"] .fv-text')).length, 256 * 1024);

  // Binary.
  await page.click('[data-testid="files-item"][data-path="logo.png"]');
  await page.waitForFunction(() => /Binary file/.test(document.querySelector('[data-testid="files-status"]').textContent));
  assert.equal(await page.textContent('[data-testid="files-status"]'), "Binary file (16 bytes), not shown.");
  assert.equal(await page.isVisible('[data-testid="files-code"]'), false);

  // The symlink out of the workdir: refused, and nothing of the target shows.
  await page.click('[data-testid="files-item"][data-path="escape.txt"]');
  await page.waitForSelector('[data-testid="files-status"][data-kind="error"]');
  assert.match(await page.textContent('[data-testid="files-status"]'), /^Not shown: .*outside the session's workdir/);
  assert.equal(await page.isVisible('[data-testid="files-code"]'), false);
  assert.equal((await page.textContent('[data-testid="files-pane"]')).includes("the secret"), false);
  await check(page, "files-error");

  // A file that is gone.
  await rm(join(work, "src", "app.js"));
  await page.click('[data-testid="files-item"][data-path="src/app.js"]');
  await page.waitForFunction(() => /This file is gone/.test(document.querySelector('[data-testid="files-status"]').textContent));

  // Narrow screens keep the tab and the file usable.
  await page.setViewportSize({ width: 360, height: 740 });
  await check(page, "files-narrow");

  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(checked, ["files-text", "files-error", "files-narrow"]);
});
