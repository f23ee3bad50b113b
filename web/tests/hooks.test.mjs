// Hooks in the session timeline: a hook that runs shows a note in the chat, a pre-send
// hook that rewrites shows the rewritten message and its note, and one that blocks shows
// the daemon's conflict under the composer and a "blocked" note, with nothing sent.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
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
  waitAssistant,
  messages,
  axe,
  seriousOnly,
} from "./lib.mjs";

async function hook(dir, name, body) {
  await writeFile(join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o700 });
}

const notes = (page) => page.$$eval('#log [data-testid="note"]', (ns) => ns.map((n) => ({ text: n.textContent, error: n.classList.contains("note-error") })));

test("hooks: ran, rewritten and blocked messages show in the session timeline", async (t) => {
  const { base, home } = await freshHome();
  const hooks = join(home, "hooks");
  await mkdir(hooks, { mode: 0o700 });
  await hook(hooks, "on-turn-end", "cat >/dev/null");
  await hook(
    hooks,
    "pre-send.sh",
    `in=$(cat)
case "$in" in
  *secret*) echo '{"action":"block","reason":"no secrets here"}' ;;
  *shout*) echo '{"action":"rewrite","text":"REWRITTEN"}' ;;
  *) echo '{"action":"allow"}' ;;
esac`,
  );
  const d = await startDaemon({ home, base });
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await (await browser.newContext()).newPage();
  const problems = await watchPage(page);
  await login(page, d);
  const id = await startSessionUI(page, await tempDir());

  await sendUI(page, "hello hooks");
  await waitAssistant(page, "echo: hello hooks");
  await until(async () => (await notes(page)).some((n) => /^Hook on-turn-end ran in \d+ ms\.$/.test(n.text)), {
    what: `the on-turn-end note: ${JSON.stringify(await notes(page))}`,
  });
  assert.ok((await notes(page)).some((n) => /^Hook pre-send\.sh \(pre-send\) ran in \d+ ms: allow\.$/.test(n.text)), JSON.stringify(await notes(page)));

  await sendUI(page, "shout this");
  await waitAssistant(page, "echo: REWRITTEN");
  assert.ok((await messages(page)).some(([role, text]) => role === "user" && text === "REWRITTEN"));
  assert.ok((await notes(page)).some((n) => /^Hook pre-send\.sh \(pre-send\) ran in \d+ ms: rewrite\.$/.test(n.text)));

  await sendUI(page, "my secret");
  await page.waitForSelector('#composer-error:not([hidden])');
  const err = await page.textContent("#composer-error");
  assert.match(err, /pre-send\.sh/);
  assert.match(err, /no secrets here/);
  // The draft stays in the composer, unsent.
  assert.equal(await page.inputValue('[data-testid="composer-input"]'), "my secret");
  await until(async () => (await notes(page)).some((n) => n.error && n.text === "Hook pre-send.sh blocked a message: no secrets here"), {
    what: `the blocked note: ${JSON.stringify(await notes(page))}`,
  });
  const recs = await journal(d, id);
  assert.ok(!recs.some((r) => r.kind === "session.message" && r.data.text === "my secret"));
  assert.ok(recs.some((r) => r.kind === "hook.blocked" && r.data.reason === "no secrets here"));

  // A reload of the page rebuilds the same notes from the journal.
  const before = (await notes(page)).map((n) => n.text).filter((s) => s.startsWith("Hook "));
  await page.reload();
  await page.waitForSelector('#chat-state[data-state="idle"]');
  await until(async () => (await notes(page)).filter((n) => n.text.startsWith("Hook ")).length === before.length, { what: "notes after reload" });
  assert.deepEqual((await notes(page)).map((n) => n.text).filter((s) => s.startsWith("Hook ")), before);

  const v = seriousOnly(await axe(page));
  assert.deepEqual(v, [], JSON.stringify(v, null, 2));
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
