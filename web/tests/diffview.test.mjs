// The worktree pane's diff viewer on a real git worktree: unified and side by side (lines
// in the right columns with the right numbers, the choice remembered), highlight.js
// tokens in added lines (a comment spanning lines included) with the diff's markup kept
// as text, binary and mode-only files in words, per-file collapse with Collapse all /
// Expand all and the files list expanding what it jumps to, the narrow fallback to
// unified, and a merge from the side-by-side view; axe, the data-api walk, CSP and
// screenshots.

import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile, chmod } from "node:fs/promises";
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
  checkView,
} from "./lib.mjs";

const LIB_RS_BASE = `// The greeting.
pub fn greet(name: &str) -> String {
    let hello = "hello";
    let sep = ", ";
    let unused = 0;
    format!("{hello}{sep}{name}")
}

pub fn answer() -> u32 {
    42
}
`;

const LIB_RS = `// The greeting.
pub fn greet(name: &str) -> String {
    let hello = "hi";
    format!("{hello}, {name}")
}

pub fn answer() -> u32 {
    let x = 40;
    x + 2
}
`;

const APP_JS_BASE = `export function add(a, b) {
  return a + b;
}
`;

const APP_JS =
  APP_JS_BASE +
  `
/* A comment
   over three lines
   ends here. */
const limit = 10;
const tag = "<img src=x onerror=alert(1)>";
`;

/** The side-by-side rows of a file: [oldNo, oldKind, oldText, newNo, newKind, newText],
 * "" for an empty cell, or the hunk header's text. */
function sbsRows(page, path) {
  return page.$$eval(`[data-testid="diff-file"][data-path="${path}"] tbody tr`, (trs) =>
    trs.map((tr) => {
      if (tr.classList.contains("sbs-hunk")) return tr.textContent;
      const [oln, oc, nln, nc] = tr.children;
      const side = (ln, c) => {
        const kind = (c.className.match(/sbs-(del|add|ctx)/) || [, ""])[1];
        if (!ln.className.includes(kind ? `sbs-${kind}` : "sbs-empty")) throw new Error(`number cell ${ln.className} beside ${c.className}`);
        const code = c.cloneNode(true);
        code.querySelector(".sbs-sign")?.remove();
        return [ln.textContent, kind, code.textContent];
      };
      return [...side(oln, oc), ...side(nln, nc)];
    }),
  );
}

test("diff viewer: unified and side by side, highlighting, collapse, narrow fallback, merge", async (t) => {
  const ops = await operations();
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const repo = await gitRepo({ "src/lib.rs": LIB_RS_BASE, "app.js": APP_JS_BASE, "run.sh": "#!/bin/sh\necho hi\n" });
  const started = await api(d, "POST", "/v1/sessions", { workdir: repo, worktree: true, title: "viewer" });
  assert.equal(started.status, 201, started.text);
  const sid = started.json.id;
  const listed = await api(d, "GET", `/v1/worktrees?session_id=${sid}`);
  const wt = listed.json.worktrees[0];
  assert.ok(wt && wt.path, listed.text);
  // The session's work, written into its checkout: a Rust edit, a JS addition, a mode
  // change and a new binary file.
  await writeFile(join(wt.path, "src/lib.rs"), LIB_RS);
  await writeFile(join(wt.path, "app.js"), APP_JS);
  await chmod(join(wt.path, "run.sh"), 0o755);
  await writeFile(join(wt.path, "logo.bin"), Buffer.from([0, 1, 2, 255, 0, 137, 80, 78, 71]));

  const checked = [];
  // The pictures show the diff, not the worktree's facts above it.
  const toDiff = () => page.$eval('[data-testid="diff-tools"]', (e) => e.scrollIntoView({ block: "start" }));
  const check = (page, name) => checkView(page, ops, name, { before: toDiff }).then(() => checked.push(name));

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = await watchPage(page);
  await login(page, d);
  const openPane = async () => {
    await page.click(`[data-testid="session-item"][data-session-id="${sid}"]`);
    await page.waitForSelector('[data-testid="tab-worktree"]', { state: "visible" });
    await page.click('[data-testid="tab-worktree"]');
    await page.waitForSelector('[data-testid="diff-file"][data-path="src/lib.rs"]');
  };
  await openPane();
  const paths = await page.$$eval('[data-testid="diff-file"]', (fs) => fs.map((f) => f.dataset.path));
  assert.deepEqual(paths, ["app.js", "logo.bin", "run.sh", "src/lib.rs"]);

  // Unified by default: one column, both numbers in the gutter, tokens highlighted.
  assert.equal(await page.isChecked('[data-testid="diff-mode-unified"]'), true);
  assert.equal(await page.getAttribute('[data-testid="worktree-diff"]', "data-mode"), "unified");
  assert.equal(await page.$('[data-testid="diff-sbs"]'), null);
  const unified = await page.$$eval('[data-testid="diff-file"][data-path="src/lib.rs"] .dl', (ls) =>
    ls.filter((l) => !l.classList.contains("dl-meta")).map((l) => [l.className.replace("dl dl-", ""), (l.dataset.ln || "").trim().split(/\s+/).join("|"), l.textContent]),
  );
  assert.deepEqual(unified.slice(0, 5), [
    ["hunk", "", "@@ -1,11 +1,10 @@"],
    ["ctx", "1|1", " // The greeting."],
    ["ctx", "2|2", " pub fn greet(name: &str) -> String {"],
    ["del", "3", '-    let hello = "hello";'],
    ["del", "4", '-    let sep = ", ";'],
  ]);
  assert.equal(
    await page.$eval('[data-testid="diff-file"][data-path="src/lib.rs"] .dl-add', (l) => [l.querySelector(".hljs-keyword")?.textContent, l.textContent].join(" :: ")),
    'let :: +    let hello = "hi";',
  );
  await check(page, "worktree-diff-unified");

  // Side by side: removed lines on the left with the old numbers, added ones on the
  // right with the new numbers, paired row by row, empty cells for the rest.
  await page.check('[data-testid="diff-mode-split"]');
  await page.waitForSelector('[data-testid="worktree-diff"][data-mode="split"] [data-testid="diff-sbs"]');
  assert.equal(await page.isChecked('[data-testid="diff-mode-split"]'), true);
  assert.deepEqual(await sbsRows(page, "src/lib.rs"), [
    "@@ -1,11 +1,10 @@",
    ["1", "ctx", "// The greeting.", "1", "ctx", "// The greeting."],
    ["2", "ctx", "pub fn greet(name: &str) -> String {", "2", "ctx", "pub fn greet(name: &str) -> String {"],
    ["3", "del", '    let hello = "hello";', "3", "add", '    let hello = "hi";'],
    ["4", "del", '    let sep = ", ";', "4", "add", '    format!("{hello}, {name}")'],
    ["5", "del", "    let unused = 0;", "", "", ""],
    ["6", "del", '    format!("{hello}{sep}{name}")', "", "", ""],
    ["7", "ctx", "}", "5", "ctx", "}"],
    ["8", "ctx", "", "6", "ctx", ""],
    ["9", "ctx", "pub fn answer() -> u32 {", "7", "ctx", "pub fn answer() -> u32 {"],
    ["10", "del", "    42", "8", "add", "    let x = 40;"],
    ["", "", "", "9", "add", "    x + 2"],
    ["11", "ctx", "}", "10", "ctx", "}"],
  ]);
  // A table screen readers can follow: a caption and column headers.
  const table = await page.$eval('[data-testid="diff-file"][data-path="src/lib.rs"] table', (tb) => ({
    caption: tb.caption.textContent,
    heads: Array.from(tb.tHead.rows[0].cells).map((c) => [c.tagName, c.getAttribute("scope"), c.textContent]),
  }));
  assert.deepEqual(table, {
    caption: "src/lib.rs: the base version on the left, the worktree's on the right",
    heads: [
      ["TH", "col", "Old line number"],
      ["TH", "col", "Before"],
      ["TH", "col", "New line number"],
      ["TH", "col", "After"],
    ],
  });
  // Highlighted by language, added lines included; a comment over three lines is a
  // comment on each of them; the markup in a string is text.
  const rsTokens = await page.$$eval('[data-testid="diff-file"][data-path="src/lib.rs"] .sbs-code.sbs-add .hljs-keyword', (s) => s.map((x) => x.textContent));
  assert.deepEqual(rsTokens, ["let", "let"]);
  assert.equal(await page.getAttribute('[data-testid="diff-file"][data-path="src/lib.rs"]', "data-lang"), "rust");
  const js = await page.$$eval('[data-testid="diff-file"][data-path="app.js"] td.sbs-code.sbs-add', (cs) =>
    cs.map((c) => [c.querySelector(".hljs-comment, .hljs-keyword, .hljs-string")?.className || "", c.textContent.slice(1)]),
  );
  assert.deepEqual(js, [
    ["", ""],
    ["hljs-comment", "/* A comment"],
    ["hljs-comment", "   over three lines"],
    ["hljs-comment", "   ends here. */"],
    ["hljs-keyword", "const limit = 10;"],
    ["hljs-keyword", 'const tag = "<img src=x onerror=alert(1)>";'],
  ]);
  assert.equal(await page.$$eval('[data-testid="worktree-diff"] img, [data-testid="worktree-diff"] [onerror]', (x) => x.length), 0);
  const highlighted = await page.$$eval('[data-testid="worktree-diff"] span[class^="hljs"]', (s) => s.map((x) => x.attributes.length));
  assert.ok(highlighted.length > 5 && highlighted.every((n) => n === 1), `highlight spans carry only a class: ${highlighted}`);

  // Binary and mode-only files in words.
  const words = async (path) => [
    await page.textContent(`[data-testid="diff-file"][data-path="${path}"] [data-testid="diff-file-tags"]`),
    await page.textContent(`[data-testid="diff-file"][data-path="${path}"] [data-testid="diff-file-note"]`),
  ];
  assert.deepEqual(await words("logo.bin"), ["new file, binary", "Binary file added: its contents are not shown."]);
  assert.deepEqual(await words("run.sh"), [
    "mode 100644 → 100755",
    "Only the file mode changed, from 100644 to 100755 (a regular file became an executable file); the contents are the same.",
  ]);
  await check(page, "worktree-diff-sbs");

  // The choice is remembered.
  await page.reload();
  await page.waitForSelector('#conn[data-state="connected"]');
  await openPane();
  assert.equal(await page.isChecked('[data-testid="diff-mode-split"]'), true);
  assert.equal(await page.getAttribute('[data-testid="worktree-diff"]', "data-mode"), "split");
  assert.equal(await page.evaluate(() => localStorage.getItem("r1.diffMode")), "split");
  // …and switched from the keyboard (a radio group: the arrows).
  await page.focus('[data-testid="diff-mode-split"]');
  await page.keyboard.press("ArrowLeft");
  await page.waitForSelector('[data-testid="worktree-diff"][data-mode="unified"]');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "diff-mode-unified");
  await page.keyboard.press("ArrowRight");
  await page.waitForSelector('[data-testid="worktree-diff"][data-mode="split"]');

  // Collapse one file: its body hides, its toggle says so, the focus stays on it.
  const toggle = '[data-testid="diff-file"][data-path="src/lib.rs"] [data-testid="diff-file-toggle"]';
  const body = '[data-testid="diff-file"][data-path="src/lib.rs"] .diff-file-body';
  assert.equal(await page.getAttribute(toggle, "aria-expanded"), "true");
  assert.equal(await page.textContent(toggle), "src/lib.rs");
  await page.focus(toggle);
  await page.keyboard.press("Enter");
  assert.equal(await page.getAttribute(toggle, "aria-expanded"), "false");
  assert.equal(await page.isVisible(body), false);
  assert.equal(await page.isVisible('[data-testid="diff-file"][data-path="app.js"] .diff-file-body'), true);
  assert.equal(await page.evaluate(() => document.activeElement.closest("[data-path]")?.dataset.path), "src/lib.rs");
  const controls = await page.getAttribute(toggle, "aria-controls");
  assert.equal(await page.$eval(`#${controls}`, (b) => b.closest(".diff-file").dataset.path), "src/lib.rs");
  // A refresh keeps it collapsed.
  await page.click('[data-testid="worktree-refresh"]');
  await page.waitForSelector('[data-testid="worktree-refresh"]:not([disabled])');
  assert.equal(await page.getAttribute(toggle, "aria-expanded"), "false");
  await check(page, "worktree-diff-collapsed");

  // Expand all, collapse all.
  await page.click('[data-testid="diff-expand-all"]');
  const states = () => page.$$eval('[data-testid="diff-file-toggle"]', (ts) => ts.map((t) => t.getAttribute("aria-expanded")));
  assert.deepEqual(await states(), ["true", "true", "true", "true"]);
  assert.equal(await page.isVisible(body), true);
  assert.equal(await page.$$eval(`${body} tbody tr`, (r) => r.length), 13);
  await page.click('[data-testid="diff-collapse-all"]');
  assert.deepEqual(await states(), ["false", "false", "false", "false"]);
  assert.equal(await page.isVisible(body), false);
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "diff-collapse-all");
  // The files list jumps to a file and expands it.
  await page.click('[data-testid="worktree-file"][data-path="src/lib.rs"]');
  assert.equal(await page.getAttribute(toggle, "aria-expanded"), "true");
  assert.equal(await page.isVisible(body), true);
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "diff-file-toggle");
  assert.equal(await page.evaluate(() => document.activeElement.dataset.path), "src/lib.rs");
  assert.deepEqual(await states(), ["false", "false", "false", "true"]);
  await page.click('[data-testid="diff-expand-all"]');

  // Narrow: side by side falls back to unified and says so; wide again, side by side.
  await page.setViewportSize({ width: 360, height: 740 });
  await page.waitForSelector('[data-testid="worktree-diff"][data-mode="unified"]');
  assert.match(await page.textContent('[data-testid="diff-note"]'), /Side by side needs a wider window/);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `horizontal overflow at 360 px: ${overflow}px`);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.waitForSelector('[data-testid="worktree-diff"][data-mode="split"]');
  assert.equal(await page.$('[data-testid="diff-note"]'), null);

  // Merge from the side-by-side view still works; the focus comes back to Merge.
  await page.selectOption('[data-testid="worktree-strategy"]', "ff-only");
  await page.click('[data-testid="worktree-merge"]');
  await page.waitForSelector('[data-testid="merge-dialog"]');
  await page.click('[data-testid="merge-dialog-confirm"]');
  await page.waitForSelector('[data-testid="worktree-status"][data-kind="ok"]');
  assert.match(await page.textContent('[data-testid="worktree-status"]'), new RegExp(`^Merged ${wt.branch} into main \\(ff-only\\)`));
  await page.waitForFunction(() => document.querySelector('[data-testid="worktree-state"]').textContent === "merged");
  await page.waitForSelector('[data-testid="worktree-merge"]:not([disabled])');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "worktree-merge");
  assert.equal(await git(repo, "show", "main:src/lib.rs"), LIB_RS.trimEnd());
  assert.equal(await git(repo, "rev-parse", "main"), await git(repo, "rev-parse", wt.branch));
  assert.equal(await page.getAttribute('[data-testid="worktree-diff"]', "data-mode"), "split");
  await check(page, "worktree-diff-merged");

  assert.deepEqual(checked, ["worktree-diff-unified", "worktree-diff-sbs", "worktree-diff-collapsed", "worktree-diff-merged"]);
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
