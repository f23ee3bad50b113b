// The worktree pane's diff parser (web/diff.js): files, paths and line kinds.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";

// Loaded from source as a data: module, so no package.json "type" is needed in web/.
const src = await readFile(new URL("../diff.js", import.meta.url), "utf8");
const { parseUnifiedDiff } = await import("data:text/javascript;base64," + Buffer.from(src).toString("base64"));

const kinds = (f) => f.lines.map((l) => l.kind).join(" ");

test("files, paths and line kinds", () => {
  const diff = [
    "diff --git a/src/a.rs b/src/a.rs",
    "index 1111111..2222222 100644",
    "--- a/src/a.rs",
    "+++ b/src/a.rs",
    "@@ -1,3 +1,3 @@ fn main() {",
    " one",
    "-two",
    "+TWO",
    "--- not a header inside a hunk",
    "+++ nor this",
    "",
    "\\ No newline at end of file",
    "diff --git a/new.txt b/new.txt",
    "new file mode 100644",
    "index 0000000..3333333",
    "--- /dev/null",
    "+++ b/new.txt",
    "@@ -0,0 +1 @@",
    "+hello",
    "diff --git a/gone.txt b/gone.txt",
    "deleted file mode 100644",
    "--- a/gone.txt",
    "+++ /dev/null",
    "@@ -1 +0,0 @@",
    "-bye",
    "diff --git a/img.png b/img.png",
    "Binary files a/img.png and b/img.png differ",
    "diff --git a/old name.txt b/new name.txt",
    "similarity index 100%",
    "rename from old name.txt",
    "rename to new name.txt",
    "",
  ].join("\n");
  const files = parseUnifiedDiff(diff);
  assert.deepEqual(
    files.map((f) => f.path),
    ["src/a.rs", "new.txt", "gone.txt", "img.png", "new name.txt"],
  );
  assert.equal(kinds(files[0]), "meta meta meta meta hunk ctx del add del add ctx note");
  assert.equal(kinds(files[1]), "meta meta meta meta meta hunk add");
  assert.equal(kinds(files[2]), "meta meta meta meta hunk del");
  assert.equal(kinds(files[3]), "meta meta");
  assert.equal(kinds(files[4]), "meta meta meta meta");
  assert.equal(files[0].lines[7].text, "+TWO");
});

test("empty and cut diffs", () => {
  assert.deepEqual(parseUnifiedDiff(""), []);
  assert.deepEqual(parseUnifiedDiff(undefined), []);
  // A diff cut in the middle of a line keeps what it has.
  const cut = parseUnifiedDiff("diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b");
  assert.equal(kinds(cut[0]), "meta meta meta hunk del add");
  // CRLF files: the carriage return is not part of the line.
  const crlf = parseUnifiedDiff("diff --git a/x b/x\r\n@@ -1 +1 @@\r\n+b\r\n");
  assert.equal(crlf[0].lines[2].text, "+b");
});
