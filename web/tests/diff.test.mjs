// The worktree pane's diff model (web/diff.js): files, paths and line kinds, line numbers,
// side-by-side pairing, files described in words, languages by extension.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";

// Loaded from source as a data: module, so no package.json "type" is needed in web/.
const src = await readFile(new URL("../diff.js", import.meta.url), "utf8");
const { parseUnifiedDiff, hunkStart, lineNumbers, sideBySide, fileInfo, describeFile, languageFor } = await import("data:text/javascript;base64," + Buffer.from(src).toString("base64"));

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

/** A side-by-side row as a compact string: "old:text | new:text", "·" for an empty cell. */
const row = (r) => {
  if (r.type === "hunk") return r.text;
  const side = (c) => (c ? `${c.no}${c.kind === "ctx" ? " " : c.kind === "del" ? "-" : "+"}${c.text}${c.noEol ? "⏎̸" : ""}` : "·");
  return `${side(r.left)} | ${side(r.right)}`;
};

test("hunk starts and line numbers", () => {
  assert.deepEqual(hunkStart("@@ -10,7 +12,9 @@ fn main() {"), [10, 12]);
  assert.deepEqual(hunkStart("@@ -1 +1 @@"), [1, 1]);
  assert.deepEqual(hunkStart("@@ -0,0 +1,3 @@"), [0, 1]);
  assert.deepEqual(hunkStart("not a hunk"), [0, 0]);
  const [f] = parseUnifiedDiff(
    ["diff --git a/x b/x", "--- a/x", "+++ b/x", "@@ -4,3 +4,4 @@", " a", "-b", "+B", "+C", " d", "@@ -20 +21 @@", "-e", "+E"].join("\n"),
  );
  assert.deepEqual(lineNumbers(f.lines), [
    [null, null],
    [null, null],
    [null, null],
    [null, null],
    [4, 4],
    [5, null],
    [null, 5],
    [null, 6],
    [6, 7],
    [null, null],
    [20, null],
    [null, 21],
  ]);
});

test("side by side: removed and added lines paired row by row, empty cells for the rest", () => {
  const [f] = parseUnifiedDiff(
    [
      "diff --git a/x.rs b/x.rs",
      "index 1111111..2222222 100644",
      "--- a/x.rs",
      "+++ b/x.rs",
      "@@ -1,8 +1,7 @@",
      " fn main() {",
      "-    one();",
      "-    two();",
      "-    three();",
      "+    ONE();",
      "     keep();",
      "+    added();",
      "+    again();",
      " }",
      "-gone",
      "-also gone",
      "",
      "@@ -30,2 +29,2 @@",
      "-a",
      "+A",
      "-b",
      "+B",
    ].join("\n"),
  );
  assert.deepEqual(sideBySide(f.lines).map(row), [
    "@@ -1,8 +1,7 @@",
    "1 fn main() { | 1 fn main() {",
    "2-    one(); | 2+    ONE();",
    "3-    two(); | ·",
    "4-    three(); | ·",
    "5     keep(); | 3     keep();",
    "· | 4+    added();",
    "· | 5+    again();",
    "6 } | 6 }",
    "7-gone | ·",
    "8-also gone | ·",
    // An empty line inside a hunk (a context line whose space was stripped) is context.
    "9  | 7 ",
    "@@ -30,2 +29,2 @@",
    "30-a | 29+A",
    // A removed line after added ones starts a new pair.
    "31-b | 30+B",
  ]);
  // Each cell knows its line in the parsed file (for highlighting and focus).
  const rows = sideBySide(f.lines);
  assert.equal(f.lines[rows[2].left.index].text, "-    one();");
  assert.equal(f.lines[rows[2].right.index].text, "+    ONE();");
  assert.equal(rows[0].index, 4);
});

test("side by side: a missing newline at the end marks its side only", () => {
  const [f] = parseUnifiedDiff(
    [
      "diff --git a/x b/x",
      "--- a/x",
      "+++ b/x",
      "@@ -1,2 +1,2 @@",
      " same",
      "-last",
      "\\ No newline at end of file",
      "+last",
    ].join("\n"),
  );
  assert.deepEqual(sideBySide(f.lines).map(row), ["@@ -1,2 +1,2 @@", "1 same | 1 same", "2-last⏎̸ | 2+last"]);
  const [g] = parseUnifiedDiff(["diff --git a/y b/y", "@@ -1 +1,2 @@", " tail", "\\ No newline at end of file", "+more"].join("\n"));
  // (git would write this differently; a note after context marks both sides.)
  assert.deepEqual(sideBySide(g.lines).map(row), ["@@ -1 +1,2 @@", "1 tail⏎̸ | 1 tail⏎̸", "· | 2+more"]);
  assert.deepEqual(sideBySide([]), []);
  // A cut diff (a hunk without its end) keeps what it has.
  const [h] = parseUnifiedDiff("diff --git a/x b/x\n@@ -1,5 +1,5 @@\n-a\n-b\n+A");
  assert.deepEqual(sideBySide(h.lines).map(row), ["@@ -1,5 +1,5 @@", "1-a | 1+A", "2-b | ·"]);
});

test("files described in words: new, deleted, binary, mode-only", () => {
  const files = parseUnifiedDiff(
    [
      "diff --git a/new.txt b/new.txt",
      "new file mode 100644",
      "index 0000000..3333333",
      "--- /dev/null",
      "+++ b/new.txt",
      "@@ -0,0 +1 @@",
      "+hello",
      "diff --git a/img.png b/img.png",
      "new file mode 100644",
      "index 0000000..4444444",
      "Binary files /dev/null and b/img.png differ",
      "diff --git a/run.sh b/run.sh",
      "old mode 100644",
      "new mode 100755",
      "diff --git a/empty b/empty",
      "new file mode 100644",
      "index 0000000..e69de29",
      "diff --git a/gone.txt b/gone.txt",
      "deleted file mode 100644",
      "index 5555555..0000000",
      "--- a/gone.txt",
      "+++ /dev/null",
      "@@ -1 +0,0 @@",
      "-bye",
      "diff --git a/blob.bin b/blob.bin",
      "index 6666666..7777777 100644",
      "Binary files a/blob.bin and b/blob.bin differ",
      "",
    ].join("\n"),
  );
  const info = files.map(fileInfo);
  assert.deepEqual(info[0], { status: "added", binary: false, oldMode: "", newMode: "100644", hunks: 1 });
  assert.deepEqual(info[2], { status: "modified", binary: false, oldMode: "100644", newMode: "100755", hunks: 0 });
  assert.deepEqual(
    info.map(describeFile),
    [
      { tags: ["new file"], body: "" },
      { tags: ["new file", "binary"], body: "Binary file added: its contents are not shown." },
      {
        tags: ["mode 100644 → 100755"],
        body: "Only the file mode changed, from 100644 to 100755 (a regular file became an executable file); the contents are the same.",
      },
      { tags: ["new file"], body: "New empty file." },
      { tags: ["deleted"], body: "" },
      { tags: ["binary"], body: "Binary file changed: its contents are not shown." },
    ],
  );
  // A mode change with changed lines: the header says so, the lines are shown.
  const [both] = parseUnifiedDiff("diff --git a/x b/x\nold mode 100755\nnew mode 100644\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n");
  assert.deepEqual(describeFile(fileInfo(both)), { tags: ["mode 100755 → 100644"], body: "" });
});

test("languages by extension or file name", () => {
  assert.equal(languageFor("crates/r1/src/main.rs"), "rust");
  assert.equal(languageFor("web/app.js"), "javascript");
  assert.equal(languageFor("web/tests/lib.MJS"), "javascript");
  assert.equal(languageFor("a/b.tsx"), "typescript");
  assert.equal(languageFor("Cargo.toml"), "ini");
  assert.equal(languageFor("Cargo.lock"), "ini");
  assert.equal(languageFor("sub/Makefile"), "makefile");
  assert.equal(languageFor("notes.txt"), "");
  assert.equal(languageFor("README"), "");
  assert.equal(languageFor(".gitignore"), "");
  assert.equal(languageFor("weird.constructor"), "");
  assert.equal(languageFor("x.toString"), "");
  assert.equal(languageFor(""), "");
});
