// View-without-API: every actionable control of every view carries a data-testid and
// names the catalog operation it triggers (data-api; its MCP tool is the catalog's for
// that operation), or a client-side action (data-local). A control planted without
// one fails the walk. Catalog tools that no view (web or TUI) offers are reported as
// warnings unless docs/headless-only.txt lists them. Also: "Always allow" on an
// approval card makes the tool's later calls run without asking.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import {
  freshHome,
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  journal,
  tempDir,
  until,
  startSessionUI,
  sendUI,
  operations,
  walkDataApi,
} from "./lib.mjs";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Catalog method → MCP tool name, from the catalog's source. */
async function mcpTools() {
  const src = await readFile(join(repo, "crates/r1-proto/src/catalog.rs"), "utf8");
  const tools = new Map();
  // One entry per `method:`; its `mcp:` line comes before the next entry's method.
  const parts = src.split(/\bmethod:\s*"/).slice(1);
  for (const part of parts) {
    const method = part.slice(0, part.indexOf('"'));
    const tool = part.match(/mcp:\s*(?:mcp|mcp_destructive)\("([^"]+)"/);
    if (tool) tools.set(method, tool[1]);
  }
  return tools;
}

/** The catalog methods the TUI's elements and calls name, from its source. */
async function tuiMethods(ops) {
  const found = new Set();
  for (const f of ["view.rs", "update.rs"]) {
    const src = await readFile(join(repo, "crates/r1-tui/src", f), "utf8");
    for (const m of src.matchAll(/"([a-z_]+\.[a-z_]+)"/g)) if (ops.has(m[1])) found.add(m[1]);
  }
  return found;
}

test("view-without-API: every control names an operation, planted ones fail, uncovered tools are listed", async (t) => {
  const ops = await operations();
  const { base, home } = await freshHome();
  const d = await startDaemon({ home, base });
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await (await browser.newContext()).newPage();
  const problems = await watchPage(page);
  await login(page, d);
  const seen = new Set();
  const walk = async () => {
    for (const e of await walkDataApi(page, ops)) if (e.api) seen.add(e.api);
  };
  await walk();
  const id = await startSessionUI(page, await tempDir());
  await sendUI(page, "/run ls");
  await page.waitForSelector('[data-testid="approval"][data-status="pending"]');
  await walk();

  // "Always allow": allowed now, and the next call of the tool does not ask.
  await page.click('[data-testid="approval"][data-status="pending"] [data-testid="approval-always"]');
  await until(async () => (await journal(d, id)).some((r) => r.kind === "tool.completed"), { what: "the first run" });
  await page.waitForSelector('#chat-state[data-state="idle"]');
  await sendUI(page, "/run ls");
  await until(async () => (await journal(d, id)).filter((r) => r.kind === "tool.completed").length === 2, { what: "the second run" });
  const recs = await journal(d, id);
  assert.equal(recs.filter((r) => r.kind === "approval.requested").length, 1, "the second call asked again");
  assert.equal(recs.find((r) => r.kind === "approval.resolved").data.remember, true);

  for (const open of ['[data-testid="action-rename"]', '[data-testid="action-delete"]']) {
    await page.click(open);
    await walk();
    await page.keyboard.press("Escape");
  }
  await page.click('[data-testid="open-search"]');
  await walk();
  await page.keyboard.press("Escape");
  await page.click('[data-testid="open-missions"]');
  await walk();
  await page.click('[data-testid="new-session"]');
  await walk();

  // Planted controls fail the walk: no operation, one the catalog lacks, no test id.
  for (const [html, why] of [
    ['<button data-testid="planted-no-tool">Do it</button>', "planted-no-tool"],
    ['<button data-testid="planted-bad" data-api="session.nope">Do it</button>', "session.nope"],
    ['<button data-api="session.get">No id</button>', "No id"],
  ]) {
    await page.evaluate((h) => {
      const box = document.createElement("div");
      box.id = "planted";
      box.innerHTML = h;
      document.getElementById("app").append(box);
    }, html);
    await assert.rejects(walkDataApi(page, ops), (e) => e.message.includes(why));
    await page.evaluate(() => document.getElementById("planted").remove());
  }
  await walkDataApi(page, ops);

  // Tools no view offers: warnings, unless the allowlist says they are headless-only.
  const tools = await mcpTools();
  const allow = (await readFile(join(repo, "docs/headless-only.txt"), "utf8"))
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim())
    .filter(Boolean);
  const known = new Set(tools.values());
  for (const name of allow) assert.ok(known.has(name), `docs/headless-only.txt names ${name}, which is not a catalog tool`);
  const viewed = new Set([...seen, ...(await tuiMethods(ops))]);
  const uncovered = [...tools].filter(([method, tool]) => !viewed.has(method) && !allow.includes(tool)).map(([, tool]) => tool);
  // A warning, not a failure: some views appear only in states this walk does not
  // reach (a mission's card, an archived session), and some tools wait for their view.
  if (uncovered.length) console.log(`# warning: catalog tools no view offers (add a view, or list them in docs/headless-only.txt): ${uncovered.join(", ")}`);
  // The headless-only ones are not offered by any view (that is what the list says).
  for (const [method, tool] of tools) if (allow.includes(tool)) assert.ok(!seen.has(method), `${tool} is listed headless-only but the web UI offers it`);

  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
