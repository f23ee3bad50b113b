// The chat's markdown (web/markdown.js: marked + DOMPurify + highlight.js), run in the
// page itself under the daemon's CSP: GFM renders, and nothing in the text becomes
// live HTML.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startDaemon, launchBrowser, watchPage } from "./lib.mjs";

test("markdown: GFM renders, model text never becomes live HTML", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await (await browser.newContext()).newPage();
  const problems = await watchPage(page);
  await page.goto(d.url + "/");
  await page.waitForSelector('body[data-view="login"]');

  /** Renders each source with setMarkdown into a detached div; returns its HTML. */
  const render = (sources) =>
    page.evaluate(async (srcs) => {
      const { setMarkdown } = await import("/markdown.js");
      return srcs.map((s) => {
        const div = document.createElement("div");
        setMarkdown(div, s);
        return div.innerHTML;
      });
    }, sources);

  // Hostile input: every element that comes out is one markdown makes, with no
  // handler, no style, no script URL.
  const hostile = [
    "<img src=x onerror=window.__xss=1>",
    "<script>window.__xss=2</script>",
    "**<b>x</b>** <i>i</i>",
    "`<i>code</i>`",
    "```\n</code></pre><script>window.__xss=3</script>\n```",
    '```js" onmouseover="window.__xss=4\n1\n```',
    "- <svg onload=window.__xss=5>\n- *<a href=javascript:window.__xss=6>x</a>*",
    "> <iframe src=//evil>",
    "# <style>*{color:red}</style>",
    '[link](javascript:alert(1)) [data](data:text/html,<script>1</script>) <a href="x">a</a>',
    "![pixel](https://tracker.example/p.png) ![local](/x.png)",
    '<div style="color:red" onclick="window.__xss=7">div</div>',
    "<form action=/x><input name=a></form>",
    "&lt;already&gt; & \"quotes\" 'single'",
  ];
  const allowed = new Set(["p", "br", "pre", "code", "strong", "em", "del", "ul", "ol", "li", "blockquote", "span", "a", "div", "button"]);
  const got = await render(hostile);
  for (const [i, html] of got.entries()) {
    for (const m of html.matchAll(/<([a-zA-Z][a-zA-Z0-9-]*)([^>]*)>/g)) {
      assert.ok(allowed.has(m[1].toLowerCase()), `${JSON.stringify(hostile[i])} produced <${m[1]}>: ${html}`);
      assert.doesNotMatch(m[2], /\son\w+=|\sstyle=|javascript:|data:text/i, `${JSON.stringify(hostile[i])}: ${html}`);
    }
  }
  // Raw HTML is shown as the text it is.
  const text = await page.evaluate(async () => {
    const { setMarkdown } = await import("/markdown.js");
    const div = document.createElement("div");
    setMarkdown(div, "<script>x</script> and <b>bold?</b>");
    return div.textContent;
  });
  assert.equal(text, "<script>x</script> and <b>bold?</b>");
  // An image is a link to it, never loaded; a link to a page path or a script is text.
  assert.match(got[10], /<a href="https:\/\/tracker\.example\/p\.png" target="_blank" rel="noopener noreferrer">pixel<\/a>/);
  assert.doesNotMatch(got[10], /href="\/x\.png"/);
  assert.doesNotMatch(got[9], /<a /);

  // GFM: tables, task lists, autolinks, strikethrough; links open outside the page.
  const [table, tasks, links, strike, heading, breaks, code, streaming] = await render([
    "| name | size |\n|:-----|-----:|\n| a.txt | 1 |\n| b.txt | 12 |",
    "- [x] done\n- [ ] todo",
    "see https://example.com/docs, www.example.org and <https://example.net>, or mail a@example.com",
    "~~gone~~",
    "## Title",
    "line one\nline two",
    "```rust\nfn main() {\n    let x = \"<x>\";\n}\n```",
    "x\n```\nstill <coming>",
  ]);
  assert.match(table, /^<table>\s*<thead>\s*<tr>\s*<th align="left">name<\/th>\s*<th align="right">size<\/th>/);
  assert.match(table, /<td align="left">b\.txt<\/td>\s*<td align="right">12<\/td>/);
  assert.match(tasks, /<span class="task-box" role="img" aria-label="done" data-checked="true"><\/span> done/);
  assert.match(tasks, /aria-label="not done" data-checked="false"/);
  const anchors = [...links.matchAll(/<a ([^>]*)>([^<]*)<\/a>/g)];
  assert.deepEqual(
    anchors.map((a) => a[2]),
    ["https://example.com/docs", "www.example.org", "https://example.net", "a@example.com"],
  );
  for (const a of anchors) assert.match(a[1], /target="_blank" rel="noopener noreferrer"/);
  assert.match(links, /href="mailto:a@example\.com"/);
  assert.equal(strike, "<p><del>gone</del></p>\n");
  assert.equal(heading, '<p class="md-h md-h2">Title</p>\n');
  assert.equal(breaks, "<p>line one<br>line two</p>\n");
  // Highlighted code, in a block with its language and a copy button.
  assert.match(code, /^<div class="code-block"><div class="code-head"><span class="code-lang">rust<\/span><button type="button" class="btn btn-small code-copy" data-testid="code-copy" data-local="clipboard">Copy<\/button><\/div><pre tabindex="0" data-testid="code-block" data-local="scroll" aria-label="rust code"><code class="hljs language-rust" data-lang="rust">/);
  assert.match(code, /<span class="hljs-keyword">fn<\/span>/);
  assert.match(code, /<span class="hljs-string">"&lt;x&gt;"<\/span>/);
  // An unclosed fence (a reply still streaming) is code to the end.
  assert.match(streaming, /<code class="hljs" data-lang="">still &lt;coming&gt;<\/code>/);
  // Deep nesting is bounded work.
  const [deep] = await render([">".repeat(5000) + " x"]);
  assert.ok(deep.length > 0);

  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.console, []);
});
