// Code highlighting outside messages (the worktree diff, the Files tab): highlight.js
// picks the tokens, and its HTML — escaped text in <span class="hljs-…"> — is passed
// through DOMPurify keeping only <span class>, and reaches the page as DOM nodes.
// (Messages are highlighted inside web/markdown.js, whose sanitizing covers them.)

import DOMPurify from "./vendor/dompurify/purify.es.mjs";
import hljs from "./vendor/highlight/highlight.min.js";
import { languageFor } from "./diff.js";

const purify = DOMPurify(window);
const SPANS_ONLY = { ALLOWED_TAGS: ["span"], ALLOWED_ATTR: ["class"], RETURN_DOM_FRAGMENT: true };

/** The registered highlight.js language of a file, by its name or extension ("" for none). */
export function languageOf(path) {
  const lang = languageFor(path);
  return lang && hljs.getLanguage(lang) ? lang : "";
}

/** `text` highlighted as `language`, as a sanitized DocumentFragment (throws if
 * highlight.js does). */
export function highlight(text, language) {
  return purify.sanitize(hljs.highlight(text, { language, ignoreIllegals: true }).value, SPANS_ONLY);
}
