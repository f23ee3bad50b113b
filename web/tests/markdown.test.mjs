// The chat's markdown renderer (web/markdown.js): HTML in input is always text.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";

// Loaded from source as a data: module, so no package.json "type" is needed in web/.
const src = await readFile(new URL("../markdown.js", import.meta.url), "utf8");
const { renderMarkdown, renderInline, escapeHtml } = await import("data:text/javascript;base64," + Buffer.from(src).toString("base64"));

/** Every tag the renderer may emit; anything else in the output is a bug. */
const ALLOWED = new Set(["p", "br", "pre", "code", "strong", "em", "del", "ul", "ol", "li", "blockquote", "span"]);

function tags(html) {
  return [...html.matchAll(/<\/?([a-zA-Z][a-zA-Z0-9-]*)/g)].map((m) => m[1].toLowerCase());
}

test("escapes HTML everywhere", () => {
  const payloads = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "**<b>x</b>**",
    "`<i>code</i>`",
    "```\n</code></pre><script>1</script>\n```",
    "```js\" onmouseover=\"x\n1\n```",
    "- <svg onload=1>\n- *<a href=javascript:1>x</a>*",
    "> <iframe src=//evil>",
    "# <style>*{}</style>",
    '[link](javascript:alert(1)) <a href="x">a</a>',
    "&lt;already&gt; & \"quotes\" 'single'",
  ];
  for (const p of payloads) {
    const html = renderMarkdown(p);
    for (const t of tags(html)) assert.ok(ALLOWED.has(t), `${JSON.stringify(p)} produced <${t}>: ${html}`);
    // The only attributes ever emitted: class and data-lang.
    for (const m of html.matchAll(/<[a-z]+([^>]*)>/g)) {
      const names = [...m[1].matchAll(/([^\s=]+)="[^"]*"/g)].map((a) => a[1]);
      const rest = m[1].replace(/([^\s=]+)="[^"]*"/g, "").trim();
      assert.equal(rest, "", `unquoted attribute text in ${m[0]}`);
      for (const n of names) assert.ok(n === "class" || n === "data-lang", `attribute ${n} in ${html}`);
    }
  }
  assert.equal(escapeHtml(`<&>"'`), "&lt;&amp;&gt;&quot;&#39;");
});

test("renders the markdown a chat needs", () => {
  assert.equal(renderInline("**b** *i* `c*d*` ~~s~~"), "<strong>b</strong> <em>i</em> <code>c*d*</code> <del>s</del>");
  assert.equal(renderMarkdown("a\nb\n\nc"), "<p>a<br>b</p><p>c</p>");
  assert.equal(renderMarkdown("```rust\nfn main() {\n    <x>\n}\n```"), '<pre><code data-lang="rust">fn main() {\n    &lt;x&gt;\n}</code></pre>');
  assert.equal(renderMarkdown("- a\n- b"), "<ul><li>a</li><li>b</li></ul>");
  assert.equal(renderMarkdown("1. a\n2. b"), "<ol><li>a</li><li>b</li></ol>");
  assert.equal(renderMarkdown("> q"), "<blockquote><p>q</p></blockquote>");
  assert.equal(renderMarkdown("## T"), '<span class="md-h md-h2">T</span>');
  // An unclosed fence (a reply still streaming) is code to the end.
  assert.equal(renderMarkdown("x\n```\nstill <coming>"), "<p>x</p><pre><code>still &lt;coming&gt;</code></pre>");
  // Deep quote nesting is bounded.
  assert.ok(renderMarkdown(">".repeat(5000) + " x").length > 0);
});
