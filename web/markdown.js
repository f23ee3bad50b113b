// A deliberately small markdown renderer for chat messages.
//
// Safety rule: every piece of input text is HTML-escaped before any markup is added,
// and the only markup ever added is the fixed set of tags below (p, br, pre, code,
// strong, em, del, ul, ol, li, blockquote). No attributes carry input text except
// `data-lang`, whose value is restricted to [A-Za-z0-9_+.#-] and escaped as well.
// Links are rendered as text: a chat transcript never navigates the UI away.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes the five HTML-significant characters. */
export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** Emphasis on text that is already escaped (it holds no `<`, `>` or `&` but entities). */
function emphasis(escaped) {
  return escaped
    .replace(/\*\*(?=\S)([^*\n]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/__(?=\S)([^_\n]*?\S)__/g, "<strong>$1</strong>")
    .replace(/(^|[^\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])/g, "$1<em>$2</em>")
    .replace(/(^|[^\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])/g, "$1<em>$2</em>")
    .replace(/~~(?=\S)([^~\n]*?\S)~~/g, "<del>$1</del>");
}

/** Inline markdown of one line: code spans verbatim, emphasis elsewhere. */
export function renderInline(raw) {
  let out = "";
  let last = 0;
  const re = /(`+)([^`\n]|[^`\n][\s\S]*?[^`\n])\1(?!`)/g;
  let m;
  while ((m = re.exec(raw)) !== null) {
    out += emphasis(escapeHtml(raw.slice(last, m.index)));
    out += "<code>" + escapeHtml(m[2]) + "</code>";
    last = m.index + m[0].length;
  }
  out += emphasis(escapeHtml(raw.slice(last)));
  return out;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([A-Za-z0-9_+.#-]*)[^`]*$/;
const BULLET = /^ {0,3}[-*+]\s+(.*)$/;
const ORDERED = /^ {0,3}\d{1,9}[.)]\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const BLANK = /^\s*$/;

/** Renders markdown to an HTML string that is safe to assign to `innerHTML`. */
export function renderMarkdown(src, depth = 0) {
  const lines = String(src ?? "").replace(/\r\n?/g, "\n").split("\n");
  const out = [];
  let para = [];
  const flush = () => {
    if (para.length) {
      out.push("<p>" + para.map(renderInline).join("<br>") + "</p>");
      para = [];
    }
  };
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      flush();
      const marker = fence[1];
      const lang = fence[2];
      const body = [];
      i++;
      while (i < lines.length) {
        const l = lines[i].trim();
        if (l.length >= marker.length && l === marker[0].repeat(l.length)) break;
        body.push(lines[i]);
        i++;
      }
      i++; // the closing fence (an unclosed fence runs to the end: streaming text)
      const attr = lang ? ` data-lang="${escapeHtml(lang)}"` : "";
      out.push(`<pre><code${attr}>${escapeHtml(body.join("\n"))}</code></pre>`);
      continue;
    }
    if (BLANK.test(line)) {
      flush();
      i++;
      continue;
    }
    const h = HEADING.exec(line);
    if (h) {
      flush();
      out.push(`<span class="md-h md-h${h[1].length}">${renderInline(h[2])}</span>`);
      i++;
      continue;
    }
    if (BULLET.test(line) || ORDERED.test(line)) {
      flush();
      const ordered = !BULLET.test(line);
      const re = ordered ? ORDERED : BULLET;
      const items = [];
      while (i < lines.length && re.test(lines[i])) {
        items.push(re.exec(lines[i])[1]);
        i++;
        // lazy continuation lines belong to the item
        while (
          i < lines.length &&
          !BLANK.test(lines[i]) &&
          !BULLET.test(lines[i]) &&
          !ORDERED.test(lines[i]) &&
          !FENCE.test(lines[i]) &&
          /^\s+/.test(lines[i])
        ) {
          items[items.length - 1] += "\n" + lines[i].trim();
          i++;
        }
      }
      const tag = ordered ? "ol" : "ul";
      out.push(
        `<${tag}>` +
          items.map((t) => "<li>" + t.split("\n").map(renderInline).join("<br>") + "</li>").join("") +
          `</${tag}>`,
      );
      continue;
    }
    if (depth < 8 && QUOTE.test(line)) {
      flush();
      const inner = [];
      while (i < lines.length && QUOTE.test(lines[i])) {
        inner.push(QUOTE.exec(lines[i])[1]);
        i++;
      }
      out.push("<blockquote>" + renderMarkdown(inner.join("\n"), depth + 1) + "</blockquote>");
      continue;
    }
    para.push(line);
    i++;
  }
  flush();
  return out.join("");
}
