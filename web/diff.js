// A git unified diff, split into files and classified lines, numbered, paired side by
// side and described in words, and the highlight.js language of a file. Pure: no DOM, so
// it is unit-tested in node (web/tests/diff.test.mjs); the worktree pane (worktrees.js)
// renders the result.

/**
 * Parses `git diff` output into files:
 * `[{path, lines: [{kind, text}]}]`, where `kind` is `meta` (the file's header lines:
 * `diff --git`, `index`, `---`, `+++`, modes, renames, "Binary files … differ"),
 * `hunk` (`@@ … @@`), `add`, `del`, `ctx`, or `note` (`\ No newline at end of file`).
 * Text before the first `diff --git` (there is none from git) goes to a file with an
 * empty path.
 */
export function parseUnifiedDiff(text) {
  const files = [];
  let file = null;
  let inHeader = false;
  const lines = String(text || "").split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  for (const raw of lines) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.startsWith("diff --git ")) {
      file = { path: pathFromDiffGit(line), lines: [] };
      files.push(file);
      inHeader = true;
      file.lines.push({ kind: "meta", text: line });
      continue;
    }
    if (!file) {
      file = { path: "", lines: [] };
      files.push(file);
      inHeader = true;
    }
    if (line.startsWith("@@")) {
      inHeader = false;
      file.lines.push({ kind: "hunk", text: line });
      continue;
    }
    if (inHeader) {
      if (line.startsWith("+++ ")) {
        const p = stripPrefix(line.slice(4));
        if (p) file.path = p;
      } else if (line.startsWith("--- ") && !file.path) {
        const p = stripPrefix(line.slice(4));
        if (p) file.path = p;
      } else if (line.startsWith("rename to ")) {
        file.path = line.slice("rename to ".length);
      }
      file.lines.push({ kind: "meta", text: line });
      continue;
    }
    const c = line[0];
    const kind = c === "+" ? "add" : c === "-" ? "del" : c === "\\" ? "note" : "ctx";
    file.lines.push({ kind, text: line });
  }
  return files;
}

/** `a/x` or `b/x` → `x`; `/dev/null` → "". */
function stripPrefix(p) {
  const s = p.replace(/\t.*$/, "");
  if (s === "/dev/null") return "";
  return s.startsWith("a/") || s.startsWith("b/") ? s.slice(2) : s;
}

/** The path of `diff --git a/x b/x` (the `b/` side, when the two halves can be told apart). */
function pathFromDiffGit(line) {
  const rest = line.slice("diff --git ".length);
  const i = rest.lastIndexOf(" b/");
  if (i >= 0) return rest.slice(i + 3);
  return stripPrefix(rest);
}

/** Old and new start line numbers of a hunk header `@@ -a,b +c,d @@` (`[0, 0]` if it is not one). */
export function hunkStart(text) {
  const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(String(text));
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/**
 * The old and new line numbers of each of a file's `lines` (as parsed above), index for
 * index: `[old, new]`, with `null` on the side a line is not on; `[null, null]` for
 * header, hunk and note lines.
 */
export function lineNumbers(lines) {
  let oldNo = 0;
  let newNo = 0;
  return lines.map((line) => {
    switch (line.kind) {
      case "hunk":
        [oldNo, newNo] = hunkStart(line.text);
        return [null, null];
      case "ctx":
        return [oldNo++, newNo++];
      case "del":
        return [oldNo++, null];
      case "add":
        return [null, newNo++];
      default:
        return [null, null];
    }
  });
}

/**
 * A file's lines side by side: the rows of a two-column diff.
 *
 * - `{type: "hunk", text, index}` for each `@@` header;
 * - `{type: "line", left, right}` for the others, where a side is
 *   `{no, kind, text, index, noEol}` (`kind` is `ctx`, `del` or `add`, `text` is the line
 *   without its `+`/`-`/space, `index` its place in `lines`, `noEol` true when a
 *   "\ No newline at end of file" follows it) or `null` for an empty cell.
 *
 * A context line fills both sides. Within a run of changed lines, the n-th removed line
 * is paired with the n-th added one; the longer side's extra lines face empty cells.
 * A removed line after added ones (git never writes one, other tools may) starts a new
 * run. Header lines are left out (the file's header says what they say, see `fileInfo`).
 */
export function sideBySide(lines) {
  const rows = [];
  let oldNo = 0;
  let newNo = 0;
  let dels = [];
  let adds = [];
  let last = []; // the cells a "\ No newline" would apply to
  const flush = () => {
    const n = Math.max(dels.length, adds.length);
    for (let i = 0; i < n; i++) rows.push({ type: "line", left: dels[i] || null, right: adds[i] || null });
    dels = [];
    adds = [];
  };
  const cell = (no, line, index) => ({ no, kind: line.kind, text: line.text.slice(1), index, noEol: false });
  lines.forEach((line, index) => {
    switch (line.kind) {
      case "hunk":
        flush();
        [oldNo, newNo] = hunkStart(line.text);
        rows.push({ type: "hunk", text: line.text, index });
        last = [];
        break;
      case "del": {
        if (adds.length) flush();
        const c = cell(oldNo++, line, index);
        dels.push(c);
        last = [c];
        break;
      }
      case "add": {
        const c = cell(newNo++, line, index);
        adds.push(c);
        last = [c];
        break;
      }
      case "ctx": {
        flush();
        const left = cell(oldNo++, line, index);
        const right = cell(newNo++, line, index);
        rows.push({ type: "line", left, right });
        last = [left, right];
        break;
      }
      case "note":
        for (const c of last) c.noEol = true;
        break;
      default:
        break; // header lines
    }
  });
  flush();
  return rows;
}

/**
 * What a file's header lines say: `{status, binary, oldMode, newMode, hunks}`, where
 * `status` is `added`, `deleted` or `modified`, the modes are set only when git names
 * them (`new file mode`, `old mode`/`new mode`…), and `hunks` counts the `@@` lines.
 */
export function fileInfo(file) {
  const info = { status: "modified", binary: false, oldMode: "", newMode: "", hunks: 0 };
  for (const { kind, text } of file.lines) {
    if (kind === "hunk") info.hunks++;
    if (kind !== "meta") continue;
    let m;
    if ((m = /^new file mode (\d+)/.exec(text))) {
      info.status = "added";
      info.newMode = m[1];
    } else if ((m = /^deleted file mode (\d+)/.exec(text))) {
      info.status = "deleted";
      info.oldMode = m[1];
    } else if ((m = /^old mode (\d+)/.exec(text))) {
      info.oldMode = m[1];
    } else if ((m = /^new mode (\d+)/.exec(text))) {
      info.newMode = m[1];
    } else if (/^Binary files .* differ$/.test(text) || text === "GIT binary patch") {
      info.binary = true;
    }
  }
  return info;
}

const MODE_WORDS = { 100644: "a regular file", 100755: "an executable file", 120000: "a symbolic link", 160000: "a submodule" };

/**
 * A file's changes in words, for its header (`tags`: short phrases such as "new file",
 * "binary", "mode 100644 → 100755") and for its body when it has no lines to show
 * (`body`, "" when it has).
 */
export function describeFile(info) {
  const tags = [];
  if (info.status === "added") tags.push("new file");
  if (info.status === "deleted") tags.push("deleted");
  if (info.binary) tags.push("binary");
  const modeChanged = info.status === "modified" && info.oldMode && info.newMode && info.oldMode !== info.newMode;
  if (modeChanged) tags.push(`mode ${info.oldMode} → ${info.newMode}`);
  let body = "";
  if (info.binary) {
    const what = { added: "added", deleted: "deleted", modified: "changed" }[info.status];
    body = `Binary file ${what}: its contents are not shown.`;
  } else if (info.hunks === 0) {
    if (modeChanged) {
      const from = MODE_WORDS[info.oldMode];
      const to = MODE_WORDS[info.newMode];
      body =
        `Only the file mode changed, from ${info.oldMode} to ${info.newMode}` +
        (from && to ? ` (${from} became ${to})` : "") +
        "; the contents are the same.";
    } else if (info.status === "added") {
      body = "New empty file.";
    } else if (info.status === "deleted") {
      body = "Deleted an empty file.";
    } else {
      body = "No changed lines to show.";
    }
  }
  return { tags, body };
}

/** highlight.js language names by file extension (lower case) or whole file name. */
const LANGUAGES = {
  rs: "rust",
  js: "javascript",
  mjs: "javascript",
  cjs: "javascript",
  jsx: "javascript",
  ts: "typescript",
  tsx: "typescript",
  mts: "typescript",
  cts: "typescript",
  py: "python",
  go: "go",
  c: "c",
  h: "c",
  cc: "cpp",
  cpp: "cpp",
  cxx: "cpp",
  hpp: "cpp",
  hh: "cpp",
  cs: "csharp",
  java: "java",
  kt: "kotlin",
  kts: "kotlin",
  swift: "swift",
  rb: "ruby",
  php: "php",
  pl: "perl",
  pm: "perl",
  lua: "lua",
  r: "r",
  sh: "bash",
  bash: "bash",
  zsh: "bash",
  json: "json",
  toml: "ini",
  ini: "ini",
  yml: "yaml",
  yaml: "yaml",
  md: "markdown",
  markdown: "markdown",
  html: "xml",
  htm: "xml",
  xml: "xml",
  svg: "xml",
  css: "css",
  scss: "scss",
  less: "less",
  sql: "sql",
  graphql: "graphql",
  gql: "graphql",
  mk: "makefile",
  m: "objectivec",
  mm: "objectivec",
  vb: "vbnet",
  makefile: "makefile",
  gnumakefile: "makefile",
  dockerfile: "dockerfile",
  "cmakelists.txt": "cmake",
  "cargo.lock": "ini",
};

/** The highlight.js language of a file, by its extension or name ("" when none is known). */
export function languageFor(path) {
  const name = String(path || "").split("/").pop().toLowerCase();
  if (Object.hasOwn(LANGUAGES, name)) return LANGUAGES[name];
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return "";
  const ext = name.slice(dot + 1);
  return Object.hasOwn(LANGUAGES, ext) ? LANGUAGES[ext] : "";
}
