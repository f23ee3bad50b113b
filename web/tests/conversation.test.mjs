// The conversation as people read it: GFM tables, highlighted code copied by its
// button, tool output whose columns line up (in the lane and in the reply), long output
// collapsed a click away from all of it, links that open outside, model text that
// never runs, per-turn tokens; axe and the CSP along the way.

import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  tempDir,
  startSessionUI,
  sendUI,
  waitAssistant,
  operations,
  walkDataApi,
  axe,
  seriousOnly,
  screenshots,
} from "./lib.mjs";

/** The newest finished assistant message whose text includes `part` (run in the page). */
function lastAssistant(part) {
  const all = Array.from(document.querySelectorAll('#log [data-testid="message"][data-role="assistant"]'));
  return all.reverse().find((e) => e.dataset.streaming === "false" && e.textContent.includes(part));
}

async function waitReply(page, part, timeout = 10000) {
  await page.waitForFunction(lastAssistant, part, { timeout });
  return page.evaluateHandle(lastAssistant, part);
}

/**
 * The x position, for each line of `pre` (a <pre> whose text may be split over many
 * text nodes) that `re` matches at its start, of the character right after the match.
 */
function columnXs(pre, re) {
  return pre.evaluate(
    (el, [src, flags]) => {
      const re = new RegExp(src, flags);
      const nodes = [];
      const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      for (let n = walk.nextNode(); n; n = walk.nextNode()) nodes.push(n);
      const text = nodes.map((n) => n.data).join("");
      const at = (offset) => {
        for (const n of nodes) {
          if (offset < n.data.length) return [n, offset];
          offset -= n.data.length;
        }
        return null;
      };
      const out = [];
      let start = 0;
      for (const line of text.split("\n")) {
        const m = re.exec(line);
        if (m) {
          const col = m[0].length;
          const [node, off] = at(start + col);
          const r = document.createRange();
          r.setStart(node, off);
          r.setEnd(node, off + 1);
          out.push({ line, col, x: r.getBoundingClientRect().left });
        }
        start += line.length + 1;
      }
      return out;
    },
    [re.source, re.flags],
  );
}

/** `ls -la` entries up to the column where the name starts (after 8 fields). */
const LS_NAME = /^[-dlcbps][-rwxsStT@+.]{9,10}\s+(\S+\s+){7}/;

test("conversation: tables, highlighted code and its copy button, aligned tool output, safe links and text", async (t) => {
  const ops = await operations();
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: d.url });
  const page = await context.newPage();
  const problems = await watchPage(page);
  await login(page, d);
  const wd = await tempDir();
  // Files of different sizes, so `ls -la` pads its columns with spaces.
  await writeFile(join(wd, "a.txt"), "a\n");
  await writeFile(join(wd, "big.bin"), "x".repeat(123456));
  await writeFile(join(wd, "mid.md"), "y".repeat(789));
  await startSessionUI(page, wd);

  // A GFM table.
  await sendUI(page, "table:\n\n| name | size |\n|:-----|-----:|\n| a.txt | 2 |\n| big.bin | 123456 |");
  const table = await waitReply(page, "echo: table:");
  const cells = await table.evaluate((m) => ({
    head: Array.from(m.querySelectorAll(".msg-body table thead th"), (c) => c.textContent),
    body: Array.from(m.querySelectorAll(".msg-body table tbody tr"), (r) => Array.from(r.cells, (c) => c.textContent)),
    align: getComputedStyle(m.querySelector(".msg-body table tbody td:last-child")).textAlign,
  }));
  assert.deepEqual(cells, { head: ["name", "size"], body: [["a.txt", "2"], ["big.bin", "123456"]], align: "right" });

  // A highlighted code block, copied by its button.
  const code = 'const answer = 42; // "the" answer\nfunction twice(x) {\n  return x * 2;\n}';
  await sendUI(page, "code:\n\n```js\n" + code + "\n```");
  const reply = await waitReply(page, "echo: code:");
  const block = await reply.evaluate((m) => {
    const c = m.querySelector(".msg-body pre code");
    return {
      classes: c.className,
      keyword: c.querySelector(".hljs-keyword")?.textContent,
      comment: c.querySelector(".hljs-comment")?.textContent,
      lang: m.querySelector(".code-lang").textContent,
    };
  });
  assert.match(block.classes, /\bhljs\b/);
  assert.match(block.classes, /\blanguage-js\b/);
  assert.equal(block.keyword, "const");
  assert.equal(block.comment, '// "the" answer');
  assert.equal(block.lang, "js");
  const copy = await reply.evaluateHandle((m) => m.querySelector('[data-testid="code-copy"]'));
  await copy.click();
  await page.waitForFunction((b) => b.textContent === "Copied", copy);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), code);

  // Links open outside, with no opener and no referrer; a script link is only text.
  await sendUI(page, "links: see https://example.com/docs and [the spec](https://spec.commonmark.org/) or [bad](javascript:window.__xss=1)");
  const links = await (await waitReply(page, "echo: links:")).evaluate((m) =>
    Array.from(m.querySelectorAll(".msg-body a"), (a) => ({ text: a.textContent, href: a.getAttribute("href"), rel: a.rel, target: a.target })),
  );
  assert.deepEqual(links, [
    { text: "https://example.com/docs", href: "https://example.com/docs", rel: "noopener noreferrer", target: "_blank" },
    { text: "the spec", href: "https://spec.commonmark.org/", rel: "noopener noreferrer", target: "_blank" },
  ]);

  // Markup in model text is inert: shown as text, never run.
  await sendUI(page, "inert: <script>window.__xss=2</script> <img src=x onerror=window.__xss=3> <b onclick=window.__xss=4>b</b>");
  const inert = await (await waitReply(page, "echo: inert:")).evaluate((m) => ({
    text: m.querySelector(".msg-body").textContent.trim(),
    elements: Array.from(m.querySelectorAll(".msg-body *"), (e) => e.tagName.toLowerCase()),
  }));
  assert.equal(inert.text, "echo: inert: <script>window.__xss=2</script> <img src=x onerror=window.__xss=3> <b onclick=window.__xss=4>b</b>");
  assert.deepEqual(inert.elements, ["p"]);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.$$eval("#log script, #log img, #log [onerror], #log [onclick]", (e) => e.length), 0);

  // `ls -la`, allowed: its columns line up in the lane and in the reply.
  await sendUI(page, "/run ls -la");
  await page.waitForSelector('[data-testid="approval"][data-status="pending"]');
  await page.click('[data-testid="approval"][data-status="pending"] [data-testid="approval-allow"]');
  const lsReply = await waitReply(page, "echo: run_command returned:");
  await page.waitForSelector('#chat-state[data-state="idle"]');
  const lane = await page.waitForSelector('[data-testid="lane"][data-status="done"]');
  for (const [where, pre] of [
    ["lane", await lane.$('[data-testid="lane-output"]')],
    ["reply", await lsReply.evaluateHandle((m) => m.querySelector(".msg-body pre"))],
  ]) {
    const xs = await columnXs(pre, LS_NAME);
    const names = xs.map((x) => x.line.slice(x.col));
    for (const n of [".", "..", "a.txt", "big.bin", "mid.md"]) assert.ok(names.includes(n), `${where}: ${n} in ${JSON.stringify(names)}`);
    // The lines differ before the name (sizes, link counts), so a collapsed space or a
    // proportional font would move some names.
    assert.ok(new Set(xs.map((x) => x.line.slice(0, x.col).replace(/ +/g, " "))).size > 1);
    const spread = Math.max(...xs.map((x) => x.x)) - Math.min(...xs.map((x) => x.x));
    assert.ok(spread < 0.5, `${where}: the names start at different x positions: ${JSON.stringify(xs)}`);
  }
  // The turn's tokens show under its answer.
  assert.match(await lsReply.evaluate((m) => m.querySelector('[data-testid="turn-usage"]').textContent), /^This turn: \d+ in · \d+ out$/);
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    await screenshots(page, `conversation-${scheme}`);
  }
  await page.emulateMedia({ colorScheme: "light" });

  // Long output collapses to its last lines; all of it is one click away.
  await sendUI(page, "/run seq 1 300");
  await page.waitForSelector('[data-testid="approval"][data-status="pending"]');
  await page.click('[data-testid="approval"][data-status="pending"] [data-testid="approval-allow"]');
  await waitReply(page, "299\n300");
  const long = (await page.$$('[data-testid="lane"]')).pop();
  await page.waitForFunction((l) => l.dataset.status === "done" && l.dataset.long === "true", long);
  const more = await long.$('[data-testid="lane-expand"]');
  assert.equal(await more.textContent(), "Show all 300 lines");
  const out = await long.$('[data-testid="lane-output"]');
  const collapsed = await out.evaluate((o) => ({ client: o.clientHeight, scroll: o.scrollHeight, text: o.textContent }));
  assert.ok(collapsed.client < collapsed.scroll / 5, `collapsed: ${JSON.stringify({ ...collapsed, text: undefined })}`);
  assert.equal(collapsed.text, Array.from({ length: 300 }, (_, i) => i + 1).join("\n") + "\n");
  await more.click();
  assert.equal(await more.getAttribute("aria-expanded"), "true");
  assert.equal(await more.textContent(), "Show less");
  const expanded = await out.evaluate((o) => ({ client: o.clientHeight, scroll: o.scrollHeight }));
  assert.ok(expanded.client >= expanded.scroll - 1, `expanded: ${JSON.stringify(expanded)}`);
  await more.click();
  assert.equal(await more.textContent(), "Show all 300 lines");
  assert.ok((await out.evaluate((o) => o.clientHeight)) < collapsed.scroll / 5);

  // Every control names its operation (or its client-side action); axe in both schemes.
  await walkDataApi(page, ops);
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    const v = seriousOnly(await axe(page));
    assert.deepEqual(v, [], `${scheme}: ${JSON.stringify(v, null, 2)}`);
  }
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.console, []);
});

test("conversation: a reload shows the same timeline from the journal", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await (await browser.newContext()).newPage();
  const problems = await watchPage(page);
  await login(page, d);
  await startSessionUI(page, await tempDir());
  await sendUI(page, "first");
  await waitAssistant(page, "echo: first");
  await sendUI(page, "/run printf 'a\\tb\\n  c\\n'");
  await page.waitForSelector('[data-testid="approval"][data-status="pending"]');
  await page.click('[data-testid="approval-allow"]');
  await waitReply(page, "echo: run_command returned:");
  await page.waitForSelector('#chat-state[data-state="idle"]');
  const timeline = () =>
    page.$$eval("#log > *", (els) =>
      els.map((e) => [e.dataset.testid, e.dataset.role || e.dataset.status || "", (e.querySelector(".msg-body, .lane-output") || e).textContent]),
    );
  const before = await timeline();
  assert.ok(before.some(([id, , text]) => id === "lane" && text === "a\tb\n  c\n"), JSON.stringify(before));
  await page.reload();
  await page.waitForSelector('#chat-state[data-state="idle"]');
  await page.waitForFunction((n) => document.querySelectorAll("#log > *").length === n, before.length);
  assert.deepEqual(await timeline(), before);
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
