// Chat markdown: CommonMark + GFM (tables, task lists, autolinks, strikethrough) parsed
// by `marked`, sanitized by `DOMPurify`, code highlighted by `highlight.js` (all three
// vendored under web/vendor/, see its README.md).
//
// Model output is never trusted HTML:
// - raw HTML in the text is rendered as text (the `html` renderer escapes it);
// - links keep only http(s) and mailto targets and open in a new tab with
//   rel="noopener noreferrer"; any other link is its text only;
// - images become links to them (the page loads nothing a message names);
// - headings are bold lines, not <h1>–<h6>, so a message cannot reshape the page's
//   outline;
// - the HTML marked produces then goes through DOMPurify with an allowlist of the tags
//   and attributes above, and reaches the page as a sanitized DOM fragment.

import { Marked } from "./vendor/marked/marked.esm.js";
import DOMPurify from "./vendor/dompurify/purify.es.mjs";
import hljs from "./vendor/highlight/highlight.min.js";
import { el } from "./dom.js";

/** Code blocks longer than this are shown unhighlighted (highlighting is per render). */
const HIGHLIGHT_MAX_CHARS = 100 * 1024;
/** How long a copy button says "Copied" (ms). */
const COPIED_MS = 1500;

/** A copy button's pending reset of its label. */
const resets = new WeakMap();

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes the five HTML-significant characters. */
export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const SAFE_URL = /^(?:https?:|mailto:)/i;

const marked = new Marked({
  gfm: true,
  // A line break in a chat message is a line break (as in GitHub comments).
  breaks: true,
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
    heading({ tokens, depth }) {
      return `<p class="md-h md-h${depth}">${this.parser.parseInline(tokens)}</p>\n`;
    },
    code({ text, lang }) {
      const language = String(lang || "").match(/^\S*/)[0];
      const known = language && hljs.getLanguage(language) && text.length <= HIGHLIGHT_MAX_CHARS;
      const body = known ? hljs.highlight(text, { language, ignoreIllegals: true }).value : escapeHtml(text);
      const cls = "hljs" + (known ? " language-" + language.replace(/[^\w+#.-]/g, "") : "");
      return `<pre><code class="${cls}" data-lang="${escapeHtml(language)}">${body}</code></pre>\n`;
    },
    link({ href, title, tokens }) {
      const inner = this.parser.parseInline(tokens);
      if (!SAFE_URL.test(String(href || "").trim())) return inner;
      const t = title ? ` title="${escapeHtml(title)}"` : "";
      return `<a href="${escapeHtml(href)}"${t}>${inner}</a>`;
    },
    image({ href, text }) {
      const label = escapeHtml(text || "image");
      if (!SAFE_URL.test(String(href || "").trim())) return label;
      return `<a href="${escapeHtml(href)}">${label}</a>`;
    },
    checkbox({ checked }) {
      // A picture of a box, not a control: a transcript is not a form.
      return `<span class="task-box" role="img" aria-label="${checked ? "done" : "not done"}" data-checked="${checked ? "true" : "false"}"></span> `;
    },
  },
});

const purify = DOMPurify(window);
purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});
const PURIFY = {
  ALLOWED_TAGS: [
    "a", "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "span", "ul", "ol", "li",
    "blockquote", "table", "thead", "tbody", "tr", "th", "td",
  ],
  ALLOWED_ATTR: ["href", "title", "class", "align", "start", "data-lang", "data-checked", "role", "aria-label"],
  // Only href carries a URL: the others are plain values, not checked as URLs.
  ADD_URI_SAFE_ATTR: ["align", "start", "data-lang", "data-checked", "aria-label"],
  ALLOWED_URI_REGEXP: SAFE_URL,
  RETURN_DOM_FRAGMENT: true,
};

/** The markdown `src` as a sanitized DOM fragment (code blocks not yet decorated). */
export function renderMarkdown(src) {
  const text = String(src ?? "");
  let html;
  try {
    html = marked.parse(text);
  } catch {
    // Pathological nesting (thousands of `>`) overflows marked's recursion: show the
    // text as it is rather than nothing.
    html = "<p>" + escapeHtml(text).replace(/\n/g, "<br>") + "</p>";
  }
  return purify.sanitize(html, PURIFY);
}

/** Shows the markdown `text` in `container`: every code block gets a copy button. */
export function setMarkdown(container, text) {
  const frag = renderMarkdown(text);
  for (const pre of Array.from(frag.querySelectorAll("pre"))) decorateCode(pre);
  container.replaceChildren(frag);
}

/** Wraps a <pre> in a block with the language's name and a copy button. */
function decorateCode(pre) {
  const code = pre.querySelector("code");
  const lang = code ? code.dataset.lang || "" : "";
  // Long lines scroll sideways rather than wrap (columns stay aligned), so the block
  // takes focus to be scrolled from the keyboard.
  pre.setAttribute("tabindex", "0");
  pre.setAttribute("data-testid", "code-block");
  pre.setAttribute("data-local", "scroll");
  pre.setAttribute("aria-label", lang ? `${lang} code` : "Code");
  const copy = el("button", {
    type: "button",
    class: "btn btn-small code-copy",
    "data-testid": "code-copy",
    "data-local": "clipboard",
    text: "Copy",
  });
  copy.addEventListener("click", () => copyCode(copy, (code || pre).textContent));
  const block = el("div", { class: "code-block" }, el("div", { class: "code-head" }, el("span", { class: "code-lang", text: lang }), copy));
  pre.replaceWith(block);
  block.append(pre);
}

async function copyCode(btn, text) {
  try {
    await navigator.clipboard.writeText(text);
    btn.textContent = "Copied";
  } catch {
    btn.textContent = "Copy failed";
  }
  clearTimeout(resets.get(btn));
  resets.set(btn, setTimeout(() => (btn.textContent = "Copy"), COPIED_MS));
}
