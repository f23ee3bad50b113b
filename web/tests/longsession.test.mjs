// A long session: 100,000 journal records (turns of messages streamed as deltas, tool
// lanes with multi-line output, approvals, hook notes) written into a real session's
// journal while the daemon is stopped, then opened in the browser. The open (from the
// session list click to the last message on screen) must take under 2 s, and the chat
// log's DOM stays bounded however far it is scrolled, because the timeline renders only
// the items in and near the viewport. A closed lane and a focused control survive being
// scrolled out and back, a jump to a far record draws it in view (a search hit too, on a
// record older than the ones the session opens on), and records arriving leave a reader
// up in the history where they are, and keep one at the bottom there.
//
// The quickest of three opens is asserted (the machine may be busy); all three are
// printed. docs/BENCHMARKS.md has the numbers and the command:
//   R1_BIN=target/debug/r1 bash web/tests/run.sh --test-name-pattern=longsession

import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { startDaemon, launchBrowser, watchPage, login, api, tempDir, until, operations, walkDataApi, axe, seriousOnly } from "./lib.mjs";

/** Records in the session's journal once the synthetic turns are appended. */
const RECORDS = 100000;
/** The open must take less than this (the quickest of OPENS). */
const OPEN_MS = 2000;
const OPENS = 3;
/** Elements under #log, at most, wherever the log is scrolled. */
const DOM_BOUND = 2000;

const FINAL = "All turns are done: the last answer of the long session.";

/** CRC-32C (Castagnoli, reflected), as the journal seals its lines. */
const CRC32C = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32c(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC32C[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A journal line as the daemon writes it: the record, sealed with its checksum
 * (crates/r1-journal/src/parse.rs: once a journal has sealed lines, every line must be). */
function sealed(record) {
  const body = JSON.stringify(record).slice(0, -1);
  return body + `,"crc":"${crc32c(Buffer.from(body, "utf8")).toString(16).padStart(8, "0")}"}`;
}

/**
 * Journal lines continuing `seq` up to `total` records: realistic turns, and a final
 * answer with text `FINAL`.
 */
function longJournal(seq, total) {
  const lines = [];
  const t0 = Date.parse("2026-12-01T08:00:00.000Z");
  const push = (kind, data, lane = "main") => {
    seq += 1;
    const at = new Date(t0 + seq * 250).toISOString();
    lines.push(sealed({ v: 1, seq, at, kind, lane, data }));
  };
  const words = "the parser reads each line and keeps a sparse index of offsets so a reader can seek".split(" ");
  const prose = (n, k) => Array.from({ length: n }, (_, i) => words[(i * 7 + k) % words.length]).join(" ");
  let turn = 0;
  let middle = 0;
  let early = 0;
  // Each turn is about 70 records; stop with room for the last one.
  while (seq + 120 < total) {
    turn += 1;
    const m = `msg_${turn}`;
    if (turn === 700) middle = seq + 1;
    if (turn === 3) early = seq + 1;
    const aside = turn === 3 ? " Mind the quetzalcoatl fixture." : "";
    push("session.message", { role: "user", text: `Turn ${turn}: look at \`src/file_${turn}.rs\` and run the tests.${aside}`, message_id: m, client_message_id: null });
    push("session.state", { state: "busy", message_id: m });
    const plan = `I will **read** \`src/file_${turn}.rs\` first, then run the tests.\n\n- ${prose(9, turn)}\n- ${prose(7, turn + 1)}`;
    for (let i = 0; i < plan.length; i += 8) push("session.delta", { text: plan.slice(i, i + 8), reply_to: m });
    const call = `call_${turn}`;
    push("session.message", {
      role: "assistant",
      text: plan,
      reply_to: m,
      tool_calls: [{ id: call, name: "run_command", arguments: { command: "cargo test -p parser" } }],
      usage: { input_tokens: 1200, output_tokens: 40, cached_input_tokens: 800 },
    });
    if (turn % 5 === 0) {
      push("approval.requested", { approval_id: `apr_${turn}`, tool: "run_command", args: { command: "cargo test -p parser" }, call_id: call, reply_to: m });
      push("session.state", { state: "waiting_on_approval" });
      push("approval.resolved", { approval_id: `apr_${turn}`, decision: "allow" });
      push("session.state", { state: "busy" });
    }
    const lane = `tool_${turn}`;
    push("lane.created", { lane, tool: "run_command", call_id: call }, lane);
    push("tool.started", { call_id: call, tool: "run_command", args: { command: "cargo test -p parser" }, lane }, lane);
    const tests = 4 + (turn % 30);
    push("lane.delta", { lane, text: `running ${tests} tests\n` }, lane);
    for (let i = 0; i < tests; i++) push("lane.delta", { lane, text: `test parse::case_${i} ... ok\n` }, lane);
    push("lane.delta", { lane, text: `\ntest result: ok. ${tests} passed; 0 failed\n` }, lane);
    push("lane.status", { lane, status: "done" }, lane);
    push("tool.completed", { call_id: call, tool: "run_command", content: "exit code: 0", is_error: false, lane }, lane);
    const answer =
      `### Turn ${turn}\n\nThe ${tests} tests pass. ${prose(14, turn + 2)}.\n\n` +
      "```rust\nfn parse(line: &str) -> Option<Record> {\n    let v: Record = serde_json::from_str(line).ok()?;\n    Some(v)\n}\n```\n\n" +
      `1. ${prose(6, turn + 3)}\n2. ${prose(5, turn + 4)}`;
    for (let i = 0; i < answer.length; i += 12) push("session.delta", { text: answer.slice(i, i + 12), reply_to: m });
    push("session.message", { role: "assistant", text: answer, reply_to: m, tool_calls: [], usage: { input_tokens: 1500, output_tokens: 120 } });
    push("session.state", { state: "idle" });
    if (turn % 10 === 0) push("hook.ran", { hook: "on-turn-end", event: "on-turn-end", exit_code: 0, duration_ms: 3 });
  }
  const m = `msg_${turn + 1}`;
  push("session.message", { role: "user", text: "Is everything done?", message_id: m, client_message_id: null });
  push("session.state", { state: "busy", message_id: m });
  while (seq < total - 2) push("session.delta", { text: ".", reply_to: m });
  push("session.message", { role: "assistant", text: FINAL, reply_to: m, tool_calls: [], usage: { input_tokens: 10, output_tokens: 10 } });
  push("session.state", { state: "idle" });
  return { lines, turns: turn + 1, middle, early };
}

test("longsession: a 100,000-record session opens in under 2 s with a bounded DOM", { timeout: 300000 }, async (t) => {
  const ops = await operations();
  let d = await startDaemon();
  const { home, base } = d;
  t.after(() => d.cleanup());
  const wd = await tempDir();
  const s = await api(d, "POST", "/v1/sessions", { workdir: wd, title: "long session" });
  assert.equal(s.status, 201, s.text);
  const id = s.json.id;
  await d.stop();

  // Continue the journal from its last record.
  const file = join(home, "sessions", id, "journal.ndjson");
  const existing = (await readFile(file, "utf8")).trimEnd().split("\n");
  const last = JSON.parse(existing[existing.length - 1]).seq;
  const { lines, turns, middle, early } = longJournal(last, RECORDS);
  await appendFile(file, lines.join("\n") + "\n");
  assert.equal(last + lines.length, RECORDS);

  d = await startDaemon({ home, base });
  const view = await api(d, "GET", `/v1/sessions/${id}`);
  assert.equal(view.status, 200, view.text);
  assert.ok(view.json.last_seq >= RECORDS, `the daemon reads the journal to ${view.json.last_seq}`);

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = await watchPage(page);
  await login(page, d);
  await page.waitForSelector(`.session-item[data-session-id="${id}"]`);

  /** Clicks the session in the list; resolves (in the page) when FINAL is on screen. */
  const open = () =>
    page.evaluate(
      ({ id, text }) =>
        new Promise((resolve) => {
          const log = document.getElementById("log");
          const shown = () => {
            const ms = log.querySelectorAll('[data-testid="message"][data-role="assistant"]');
            const m = ms[ms.length - 1];
            if (!m || m.dataset.streaming !== "false" || m.querySelector(".msg-body").textContent.trim() !== text) return false;
            const r = m.getBoundingClientRect();
            const box = log.getBoundingClientRect();
            return r.height > 0 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
          };
          const t0 = performance.now();
          document.querySelector(`.session-item[data-session-id="${CSS.escape(id)}"]`).click();
          // With the time, whether the page says it is still reading the history.
          const history = () => !document.getElementById("log-history").hidden;
          const tick = () => (shown() ? resolve([performance.now() - t0, history()]) : requestAnimationFrame(tick));
          tick();
        }),
      { id, text: FINAL },
    );
  const nodes = () => page.evaluate(() => document.querySelectorAll("#log *").length);

  const times = [];
  for (let i = 0; i < OPENS; i++) {
    if (i > 0) {
      // Away from the session (the start form closes it), so the next click opens it anew.
      await page.click('[data-testid="new-session"]');
      await page.waitForSelector('body[data-view="start"]');
    }
    const [ms, reading] = await open();
    times.push(ms);
    assert.ok(reading, "the page says it is loading earlier messages while it reads the history");
    await page.waitForSelector('#chat-state[data-state="paused"], #chat-state[data-state="idle"]');
  }
  const best = Math.min(...times);
  console.log(`longsession: ${RECORDS} records, ${turns} turns; opens took ${times.map((x) => Math.round(x) + " ms").join(", ")} (quickest ${Math.round(best)} ms)`);
  assert.ok(best < OPEN_MS, `opening took ${times.map(Math.round).join(", ")} ms; the quickest should be under ${OPEN_MS} ms`);

  // Open: bounded, and every control still carries its operation.
  let n = await nodes();
  assert.ok(n < DOM_BOUND, `${n} elements under #log after the open`);
  assert.ok(n > 20, `${n} elements under #log: the conversation is drawn`);
  await walkDataApi(page, ops);

  // Scrolling up through items never drawn: what is on screen moves by the scroll and no
  // more (each item drawn above is measured and the scroll corrected before a paint).
  const drift = await page.evaluate(async () => {
    const log = document.getElementById("log");
    const frame = () => new Promise((r) => requestAnimationFrame(r));
    const off = [];
    for (let i = 0; i < 30; i++) {
      const top = log.getBoundingClientRect().top;
      const e = Array.from(log.children).find((c) => c.dataset.testid && c.getBoundingClientRect().bottom > top + 10);
      const y0 = e.getBoundingClientRect().top;
      log.scrollTop -= 400;
      await frame();
      await frame();
      if (e.isConnected) off.push(Math.abs(e.getBoundingClientRect().top - y0 - 400));
    }
    return off;
  });
  assert.ok(drift.length > 20 && Math.max(...drift) < 2, `the content jumped while scrolling up: ${drift.map(Math.round).join(" ")}`);

  // To the very top: the first message is drawn and on screen, the DOM still bounded.
  await until(
    () =>
      page.evaluate(() => {
        const log = document.getElementById("log");
        log.scrollTop = 0;
        const m = log.querySelector('[data-testid="message"][data-role="user"]');
        if (!m || log.scrollTop !== 0) return false;
        const r = m.getBoundingClientRect();
        const box = log.getBoundingClientRect();
        return m.textContent.includes("Turn 1:") && r.top >= box.top && r.bottom <= box.bottom;
      }),
    // The history before the last records is read in the background first.
    { what: "the first message at the top", timeout: 60000 },
  );
  n = await nodes();
  assert.ok(n < DOM_BOUND, `${n} elements under #log at the top`);
  assert.equal(await page.isHidden('[data-testid="log-history"]'), true, "the history is read: no more notice");
  // It stays put there (no jump back to the bottom).
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  assert.equal(await page.evaluate(() => document.getElementById("log").scrollTop), 0);

  // View state outlives the nodes: the first lane, closed, and a focused control stay so
  // while the log is scrolled to the bottom and back.
  const firstLane = await page.$eval('#log [data-testid="lane"]', (l) => l.dataset.lane);
  await page.click(`#log [data-testid="lane"][data-lane="${firstLane}"] [data-testid="lane-toggle"]`);
  await until(() => page.$eval(`#log [data-testid="lane"][data-lane="${firstLane}"]`, (l) => !l.open), { what: "the lane closed" });
  await page.focus('#log [data-testid="message"] [data-testid="message-copy"]');
  const focusedSeq = await page.evaluate(() => document.activeElement.closest('[data-testid="message"]').dataset.seq);

  // Through the middle with the wheel, then back to the bottom.
  await page.hover("#log");
  for (let i = 0; i < 10; i++) await page.mouse.wheel(0, 2000);
  n = await nodes();
  assert.ok(n < DOM_BOUND, `${n} elements under #log while scrolling`);
  await until(
    () =>
      page.evaluate((text) => {
        const log = document.getElementById("log");
        log.scrollTop = log.scrollHeight;
        const ms = log.querySelectorAll('[data-testid="message"][data-role="assistant"]');
        const m = ms[ms.length - 1];
        if (!m || !m.textContent.includes(text)) return false;
        const r = m.getBoundingClientRect();
        const box = log.getBoundingClientRect();
        return r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
      }, FINAL),
    { what: "the last message back at the bottom", timeout: 10000 },
  );
  n = await nodes();
  assert.ok(n < DOM_BOUND, `${n} elements under #log back at the bottom`);
  assert.equal(
    await page.evaluate(() => document.activeElement.isConnected && document.activeElement.closest('[data-testid="message"]')?.dataset.seq),
    focusedSeq,
    "the focused control keeps its node and its focus",
  );
  await until(
    () =>
      page.evaluate((lane) => {
        const log = document.getElementById("log");
        log.scrollTop = 0;
        const l = log.querySelector(`[data-testid="lane"][data-lane="${lane}"]`);
        return l && log.scrollTop === 0 && !l.open;
      }, firstLane),
    { what: "the first lane, still closed, back at the top" },
  );

  // A jump to a record far from the viewport (as a search hit does) draws it, in view.
  await until(
    () =>
      page.evaluate((seq) => {
        const log = document.getElementById("log");
        log.dispatchEvent(new CustomEvent("timeline:reveal", { detail: { seq } }));
        const m = log.querySelector(`[data-seq="${seq}"]`);
        if (!m) return false;
        const r = m.getBoundingClientRect();
        const box = log.getBoundingClientRect();
        return r.top >= box.top && r.top < box.bottom && m.textContent.includes("Turn 700:");
      }, middle),
    { what: `record ${middle} drawn and in view` },
  );
  n = await nodes();
  assert.ok(n < DOM_BOUND, `${n} elements under #log after the jump`);

  // Records arriving while the reader is up in the history leave the view where it is…
  const offset = () =>
    page.evaluate((seq) => {
      const log = document.getElementById("log");
      return log.querySelector(`[data-seq="${seq}"]`).getBoundingClientRect().top - log.getBoundingClientRect().top;
    }, middle);
  const answered = (text) =>
    page.waitForFunction(
      (t) => Array.from(document.querySelectorAll('#log [data-testid="message"][data-role="assistant"]')).some((m) => m.dataset.streaming === "false" && m.textContent.includes(t)),
      text,
    );
  const before = await offset();
  let sent = await api(d, "POST", `/v1/sessions/${id}/messages`, { text: "one more question" });
  assert.equal(sent.status, 202, sent.text);
  await answered("echo: one more question");
  const after = await offset();
  assert.ok(Math.abs(after - before) < 2, `the record in view moved from ${before} to ${after} px`);
  // A narrower window reflows every item; the reader stays on the same record.
  for (const width of [360, 1280]) {
    await page.setViewportSize({ width, height: 800 });
    await until(
      () =>
        page.evaluate((seq) => {
          const log = document.getElementById("log");
          const m = log.querySelector(`[data-seq="${seq}"]`);
          if (!m) return false;
          const r = m.getBoundingClientRect();
          const box = log.getBoundingClientRect();
          return r.bottom > box.top && r.top < box.bottom;
        }, middle),
      { what: `record ${middle} still in view at ${width} px` },
    );
  }
  // …and at the bottom, the log follows them.
  await until(
    () =>
      page.evaluate(() => {
        const log = document.getElementById("log");
        log.scrollTop = log.scrollHeight;
        return log.scrollHeight - log.scrollTop - log.clientHeight < 2;
      }),
    { what: "the log at the bottom" },
  );
  sent = await api(d, "POST", `/v1/sessions/${id}/messages`, { text: "and the last one" });
  assert.equal(sent.status, 202, sent.text);
  await answered("echo: and the last one");
  await until(
    () =>
      page.evaluate(() => {
        const log = document.getElementById("log");
        const ms = log.querySelectorAll('[data-testid="message"][data-role="assistant"]');
        const r = ms[ms.length - 1].getBoundingClientRect();
        const box = log.getBoundingClientRect();
        return ms[ms.length - 1].textContent.includes("echo: and the last one") && r.bottom <= box.bottom + 1 && r.top >= box.top - 1;
      }),
    { what: "the new answer in view at the bottom" },
  );

  // A search hit on a record from the session's start, opened afresh: the session opens
  // on its last records, and the jump waits for the history before them and lands there.
  await page.click('[data-testid="new-session"]');
  await page.waitForSelector('body[data-view="start"]');
  await page.click('[data-testid="open-search"]');
  await page.waitForSelector('[data-testid="search-dialog"][open]');
  await page.fill('[data-testid="search-input"]', "quetzalcoatl");
  await until(
    async () => {
      if (await page.$(`[data-testid="search-hit"][data-seq="${early}"]`)) return true;
      await page.fill('[data-testid="search-input"]', "");
      await page.fill('[data-testid="search-input"]', "quetzalcoatl");
      return false;
    },
    { what: `a search hit on record ${early}`, timeout: 60000, interval: 1000 },
  );
  await page.click(`[data-testid="search-hit"][data-seq="${early}"]`);
  await page.waitForSelector(`[data-testid="message"][data-seq="${early}"].search-target`, { timeout: 30000 });
  assert.ok(
    await page.$eval(`[data-testid="message"][data-seq="${early}"]`, (e) => {
      const r = e.getBoundingClientRect();
      const box = document.getElementById("log").getBoundingClientRect();
      return r.bottom > box.top && r.top < box.bottom && e.textContent.includes("quetzalcoatl");
    }),
    "the hit's message is in view",
  );
  n = await nodes();
  assert.ok(n < DOM_BOUND, `${n} elements under #log after the search jump`);

  await walkDataApi(page, ops);
  const serious = seriousOnly(await axe(page));
  assert.deepEqual(serious, [], JSON.stringify(serious, null, 2));
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
