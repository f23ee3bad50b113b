// A git unified diff, split into files and classified lines. Pure: no DOM, so it is
// unit-tested in node (web/tests/diff.test.mjs); the worktree pane renders the result
// with text nodes only.

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
