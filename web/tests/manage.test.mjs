// Session management in the UI: rename (dialog), archive / unarchive, delete (confirm
// dialog), each also done over MCP by another client and reflected live in the open tab.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  freshHome,
  startDaemon,
  launchBrowser,
  watchPage,
  login,
  api,
  tempDir,
  until,
  startSessionUI,
  axe,
  seriousOnly,
} from "./lib.mjs";

/** One MCP tools/call over the daemon's /mcp, as another agent would make it. */
async function mcp(d, name, args) {
  const r = await fetch(d.url + "/mcp", {
    method: "POST",
    headers: {
      Authorization: `Bearer ${d.token}`,
      "Content-Type": "application/json",
      Accept: "application/json, text/event-stream",
      "MCP-Protocol-Version": "2025-11-25",
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: args } }),
  });
  const text = await r.text();
  const line = text.split("\n").find((l) => l.startsWith("data: "));
  const msg = JSON.parse(line ? line.slice(6) : text);
  return msg.result.structuredContent;
}

const listTitles = (page) => page.$$eval('[data-testid="session-item"] .session-name', (ns) => ns.map((n) => n.textContent));

test("sessions: rename, archive and delete in the UI and over MCP, live in the tab", async (t) => {
  const { base, home } = await freshHome();
  const d = await startDaemon({ home, base, config: '[mcp]\ncaps = "write"\n' });
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await (await browser.newContext()).newPage();
  const problems = await watchPage(page);
  await login(page, d);
  const id = await startSessionUI(page, await tempDir());

  // Rename through the dialog; an empty title is refused in place.
  await page.click('[data-testid="action-rename"]');
  await page.fill('[data-testid="rename-input"]', "   ");
  await page.click('[data-testid="rename-save"]');
  await page.waitForSelector('[data-testid="rename-error"]:not([hidden])');
  await page.fill('[data-testid="rename-input"]', "fix the OOM");
  await page.press('[data-testid="rename-input"]', "Enter");
  await until(async () => (await page.textContent('[data-testid="chat-title"]')) === "fix the OOM", { what: "the new title" });
  assert.ok((await listTitles(page)).includes("fix the OOM"));
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.dataset.testid), "action-rename");
  assert.equal((await api(d, "GET", `/v1/sessions/${id}`)).json.title, "fix the OOM");

  // Renamed by another client over MCP: the open tab follows.
  let v = await mcp(d, "r1_session_rename", { session_id: id, title: "renamed over MCP" });
  assert.equal(v.ok, true, JSON.stringify(v));
  await until(async () => (await page.textContent('[data-testid="chat-title"]')) === "renamed over MCP", { what: "the MCP rename in the tab" });

  // Archive in the UI: the button turns into Unarchive, the list hides it unless asked.
  await page.click('[data-testid="action-archive"]');
  await until(async () => (await page.textContent('[data-testid="action-archive"]')) === "Unarchive", { what: "the unarchive button" });
  assert.equal(await page.getAttribute('[data-testid="action-archive"]', "data-api"), "session.unarchive");
  assert.equal((await api(d, "GET", `/v1/sessions/${id}`)).json.archived, true);
  await until(async () => (await listTitles(page)).length === 0, { what: "the archived session to leave the list" });
  await page.check('[data-testid="show-archived"]');
  await until(async () => (await listTitles(page)).includes("renamed over MCP (archived)"), { what: "the archived session under Show archived" });
  await page.uncheck('[data-testid="show-archived"]');
  await until(async () => (await listTitles(page)).length === 0, { what: "hidden again" });

  // Unarchived over MCP: it comes back into the list live.
  v = await mcp(d, "r1_session_unarchive", { session_id: id });
  assert.equal(v.data.archived, false, JSON.stringify(v));
  await until(async () => (await listTitles(page)).includes("renamed over MCP"), { what: "the unarchived session back in the list" });

  // Delete asks first; "Keep it" keeps it.
  await page.click(`[data-testid="session-item"][data-session-id="${id}"]`);
  await page.click('[data-testid="action-delete"]');
  await page.waitForSelector('[data-testid="delete-dialog"][open]');
  const v1 = seriousOnly(await axe(page));
  assert.deepEqual(v1, [], JSON.stringify(v1, null, 2));
  await page.click('[data-testid="delete-cancel"]');
  assert.equal((await api(d, "GET", `/v1/sessions/${id}`)).status, 200);
  await page.click('[data-testid="action-delete"]');
  await page.click('[data-testid="delete-confirm"]');
  await until(async () => (await api(d, "GET", `/v1/sessions/${id}`)).status === 404, { what: "the session deleted" });
  await until(async () => (await listTitles(page)).length === 0, { what: "the deleted session to leave the list" });

  // Deleted by another client while open: the tab goes back to the list and says why.
  const other = (await api(d, "POST", "/v1/sessions", { workdir: await tempDir(), title: "doomed" })).json.id;
  await until(async () => (await listTitles(page)).includes("doomed"), { what: "the new session in the list" });
  await page.click(`[data-testid="session-item"][data-session-id="${other}"]`);
  await page.waitForSelector('[data-testid="view-chat"]:not([hidden])');
  v = await mcp(d, "r1_session_delete", { session_id: other });
  assert.equal(v.ok, true, JSON.stringify(v));
  await page.waitForSelector('[data-testid="view-chat"][hidden]', { state: "attached" });
  assert.match(await page.textContent('[data-testid="list-error"]'), /was deleted/);

  const v2 = seriousOnly(await axe(page));
  assert.deepEqual(v2, [], JSON.stringify(v2, null, 2));
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
