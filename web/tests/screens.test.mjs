// The pictures in docs/UI.md: each main view in light and dark at 1280 px and at phone
// width (360 px), taken from a real daemon and session here, and saved under docs/ui/.
// The test fails when docs/UI.md does not show a picture it takes (or shows one it no
// longer takes), so the document follows the UI.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { REPO, startDaemon, launchBrowser, watchPage, login, api, gitRepo, tempDir, until, axe, seriousOnly } from "./lib.mjs";

const DOCS = join(REPO, "docs");
const SHOTS = join(DOCS, "ui");

const MODES = [
  ["light", { width: 1280, height: 800 }, "light"],
  ["dark", { width: 1280, height: 800 }, "dark"],
  ["mobile", { width: 360, height: 740 }, "light"],
];

const ANSWER = [
  "The three largest files, by size:",
  "",
  "| file | bytes | kind |",
  "| --- | ---: | --- |",
  "| `src/main.rs` | 4,812 | Rust |",
  "| `README.md` | 1,204 | Markdown |",
  "| `Cargo.toml` | 311 | TOML |",
  "",
  "The entry point reads its config first:",
  "",
  "```rust",
  "fn main() -> anyhow::Result<()> {",
  '    let config = Config::load("r1.toml")?;',
  "    run(config)",
  "}",
  "```",
  "",
  "- [x] list the files",
  "- [ ] check the tests",
].join("\n");

test("docs/UI.md: screenshots of each main view, light, dark and phone width", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  await mkdir(SHOTS, { recursive: true });

  // A project with a worktree session that changed two files, and a plain session.
  const repo = await gitRepo({
    "src/main.rs": 'fn main() {\n    println!("hello");\n}\n',
    "README.md": "# demo\n",
  });
  const wtSession = (await api(d, "POST", "/v1/sessions", { workdir: repo, worktree: true, title: "refactor main" })).json.id;
  const wt = (await api(d, "GET", `/v1/worktrees?session_id=${wtSession}`)).json.worktrees[0];
  await writeFile(join(wt.path, "src/main.rs"), 'fn main() -> anyhow::Result<()> {\n    let config = Config::load("r1.toml")?;\n    run(config)\n}\n');
  await writeFile(join(wt.path, "README.md"), "# demo\n\nRun it with `cargo run`.\n");
  await api(d, "POST", "/v1/sessions", { workdir: await tempDir(), title: "write the changelog" });

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: d.url });
  const page = await context.newPage();
  const problems = await watchPage(page);
  await login(page, d);

  const taken = [];
  const shoot = async (name, prepare = async () => {}) => {
    for (const [mode, viewport, scheme] of MODES) {
      await page.setViewportSize(viewport);
      await page.emulateMedia({ colorScheme: scheme });
      await prepare(mode);
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      const v = seriousOnly(await axe(page));
      assert.deepEqual(v, [], `${name} (${mode}): axe violations:\n${JSON.stringify(v, null, 2)}`);
      const file = `${name}-${mode}.png`;
      await page.screenshot({ path: join(SHOTS, file) });
      taken.push(file);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: "light" });
  };

  // The conversation: markdown with a table and highlighted code, a tool's lane, and an
  // approval waiting.
  await page.click(`[data-testid="session-item"][data-session-id="${wtSession}"]`);
  await page.waitForSelector('#chat-state[data-state="idle"]');
  await api(d, "POST", `/v1/sessions/${wtSession}/messages`, { text: "/run ls -la src" });
  await page.waitForSelector('[data-testid="approval"][data-status="pending"]');
  await page.click('[data-testid="approval-allow"]');
  await page.waitForSelector('[data-testid="lane"][data-status="done"]');
  await page.waitForSelector('#chat-state[data-state="idle"]');
  await api(d, "POST", `/v1/sessions/${wtSession}/messages`, { text: ANSWER });
  await page.waitForSelector("#log table");
  await page.waitForSelector('#chat-state[data-state="idle"]');
  await api(d, "POST", `/v1/sessions/${wtSession}/messages`, { text: "/run cargo fmt --check" });
  await page.waitForSelector('[data-testid="approval"][data-status="pending"]');

  // The list (on a phone it is its own screen).
  await shoot("sessions", async (mode) => {
    if (mode === "mobile") {
      await page.click('[data-testid="chat-back"]');
      await page.waitForSelector('body[data-view="list"]');
    }
  });
  await shoot("conversation", async () => {
    if (!(await page.$('body[data-view="chat"]'))) {
      await page.click(`[data-testid="session-item"][data-session-id="${wtSession}"]`);
      await page.waitForSelector('body[data-view="chat"]');
      await page.waitForSelector('[data-testid="approval"][data-status="pending"]');
    }
    await page.$eval("#log", (l) => (l.scrollTop = l.scrollHeight));
  });

  // The worktree's diff, side by side where there is room.
  await page.click('[data-testid="tab-worktree"]');
  await page.waitForSelector('[data-testid="diff-file"][data-path="src/main.rs"]');
  await page.check('[data-testid="diff-mode-split"]');
  await shoot("diff", async () => {
    await page.$eval('[data-testid="diff-tools"]', (e) => e.scrollIntoView({ block: "start" }));
  });
  // A file of the worktree, read-only.
  await page.click('[data-testid="tab-files"]');
  await page.click('[data-testid="files-item"][data-path="src/main.rs"]');
  await page.waitForSelector('[data-testid="files-code"] .fv-text code');
  await shoot("files");
  await page.click('[data-testid="tab-conversation"]');

  // The command palette over the conversation, with the waiting approval first.
  await shoot("palette", async () => {
    if (!(await page.$('[data-testid="palette"][open]'))) {
      await page.focus('[data-testid="chat-log"]');
      await page.keyboard.press("Control+k");
      await page.waitForSelector('[data-testid="palette"][open]');
    }
    await until(async () => (await page.getAttribute('[data-testid="palette-item"]', "data-command")) === "approval-allow", {
      what: "the waiting approval first in the palette",
    });
  });
  await page.keyboard.press("Escape");

  // The missions board with one finished mission.
  const m = await api(d, "POST", "/v1/missions", { spec: { prompt: "say hello", workdir: await tempDir(), title: "hello mission", worktree: false } });
  assert.equal(m.status, 201, m.text);
  await shoot("missions", async () => {
    if (!(await page.$('body[data-view="missions"]'))) {
      await page.keyboard.press("m");
      await page.waitForSelector('body[data-view="missions"]');
    }
    await page.waitForSelector('[data-testid="mission-column-finished"] li');
  });

  // docs/UI.md shows exactly the pictures taken.
  const doc = await readFile(join(DOCS, "UI.md"), "utf8");
  const shown = new Set(Array.from(doc.matchAll(/\(ui\/([a-z0-9-]+\.png)\)/g), (x) => x[1]));
  for (const f of taken) assert.ok(shown.has(f), `docs/UI.md does not show ui/${f}`);
  for (const f of shown) assert.ok(taken.includes(f), `docs/UI.md shows ui/${f}, which the suite no longer takes`);
  const onDisk = (await readdir(SHOTS)).filter((f) => f.endsWith(".png"));
  for (const f of onDisk) assert.ok(taken.includes(f), `docs/ui/${f} is left over: remove it`);
  assert.deepEqual(await problems.csp(), [], "no CSP violations");
  assert.deepEqual(problems.pageErrors, [], "no page errors");
});
