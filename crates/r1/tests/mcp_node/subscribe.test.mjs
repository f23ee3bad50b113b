// r1_lanes_subscribe through the TypeScript MCP SDK over stdio: a command printing
// thousands of lines, each journaled as its own lane.delta, reaches the client as
// progress notifications coalesced to at most 10 a second, and every byte of the
// output arrives, in order; the call ends when the turn ends.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

import { R1_BIN, startDaemon } from "./lib.mjs";

let daemon;
before(async () => {
  daemon = await startDaemon();
});
after(async () => {
  await daemon?.cleanup();
});

const LINES = 6000;
// Node writes to a pipe synchronously; the busy wait paces the lines (about 4,000 a
// second) so most are read, and journaled, one lane.delta each.
const PRODUCER =
  `node -e "for(let i=1;i<=${LINES};i++){process.stdout.write('line '+i+'\\n');` +
  `const t=process.hrtime.bigint();while(process.hrtime.bigint()-t<250000n){}}"`;

async function connect() {
  const client = new Client({ name: "r1-subscribe-test", version: "0.0.0" });
  await client.connect(
    new StdioClientTransport({
      command: R1_BIN,
      args: ["mcp", "serve", "--caps", "write"],
      env: { ...process.env, R1_HOME: daemon.home, R1_LOG: "warn" },
      stderr: "inherit",
    }),
  );
  return client;
}

test("SDK over stdio: r1_lanes_subscribe coalesces a fast lane to at most 10 notifications a second", async () => {
  const client = await connect();
  try {
    const started = (
      await client.callTool({
        name: "r1_session_start",
        arguments: { workdir: daemon.workdir, engine: "echo", policy: { run_command: "allow" } },
      })
    ).structuredContent;
    assert.equal(started.ok, true, JSON.stringify(started));
    const session_id = started.data.id;

    const notes = [];
    const subscription = client.callTool(
      {
        name: "r1_lanes_subscribe",
        arguments: { session_id, since_seq: started.data.last_seq + 1, max_duration_ms: 120000 },
      },
      undefined,
      {
        onprogress: (p) => notes.push({ at: performance.now(), p }),
        timeout: 120000,
        resetTimeoutOnProgress: true,
      },
    );
    const sent = await client.callTool({
      name: "r1_session_send",
      arguments: { session_id, text: `/run ${PRODUCER}` },
    });
    assert.equal(sent.structuredContent.ok, true, JSON.stringify(sent.structuredContent));

    const result = (await subscription).structuredContent;
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.data.ended, "turn_ended");
    // The last notification is written before the result, but the SDK may hand it to
    // `onprogress` a tick after it resolves the call: wait for it (bounded).
    for (let i = 0; i < 100 && notes.length < result.data.notifications; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(result.data.notifications, notes.length);

    // Every line, once, in order.
    const events = notes.flatMap((n) => JSON.parse(n.p.message).events);
    const text = events
      .filter((e) => e.kind === "lane.delta")
      .map((e) => e.text)
      .join("");
    const expected = Array.from({ length: LINES }, (_, i) => `line ${i + 1}\n`).join("");
    assert.equal(text.length, expected.length);
    assert.ok(text === expected, "the lane's text arrived changed or out of order");
    assert.ok(events.some((e) => e.kind === "lane.created"));
    assert.ok(events.some((e) => e.kind === "lane.status"));
    // progress increases with every notification.
    notes.forEach((n, i) => assert.equal(n.p.progress, i + 1));

    // How many lane.delta records the daemon journaled, and how fast.
    const journal = (
      await client.callTool({ name: "r1_bus_replay", arguments: { session_id, since_seq: 1, limit: 10000 } })
    ).structuredContent.data.records;
    const deltas = journal.filter((r) => r.kind === "lane.delta");
    const span = (Date.parse(deltas.at(-1).at) - Date.parse(deltas[0].at)) / 1000;
    const rate = deltas.length / Math.max(span, 0.001);
    console.log(
      `lane.delta records: ${deltas.length} in ${span.toFixed(2)} s (${rate.toFixed(0)}/s); ` +
        `notifications: ${notes.length}`,
    );
    assert.ok(deltas.length >= 1000, `only ${deltas.length} lane.delta records`);
    assert.ok(notes.length * 20 < deltas.length, "the deltas were not coalesced");

    // At most 10 notifications in any one-second window.
    let worst = 0;
    for (let i = 0; i < notes.length; i++) {
      let j = i;
      while (j < notes.length && notes[j].at - notes[i].at < 1000) j++;
      worst = Math.max(worst, j - i);
    }
    assert.ok(worst <= 10, `${worst} notifications within one second`);
  } finally {
    await client.close();
  }
});

test("SDK over stdio: r1_lanes_subscribe needs a progress token and ends at max_duration_ms", async () => {
  const client = await connect();
  try {
    const started = (
      await client.callTool({ name: "r1_session_start", arguments: { workdir: daemon.workdir, engine: "echo" } })
    ).structuredContent;
    const session_id = started.data.id;
    const args = { session_id, since_seq: 1, max_duration_ms: 300 };
    const bare = await client.callTool({ name: "r1_lanes_subscribe", arguments: args });
    assert.equal(bare.structuredContent.error_code, "validation");
    assert.match(bare.structuredContent.error_message, /progressToken/);
    const t0 = performance.now();
    const idle = await client.callTool({ name: "r1.lanes.subscribe", arguments: args }, undefined, {
      onprogress: () => {},
    });
    assert.equal(idle.structuredContent.data.ended, "max_duration", JSON.stringify(idle.structuredContent));
    assert.ok(performance.now() - t0 >= 250);
    const missing = await client.callTool(
      { name: "r1_lanes_subscribe", arguments: { ...args, session_id: "ses_nope" } },
      undefined,
      { onprogress: () => {} },
    );
    assert.equal(missing.structuredContent.error_code, "not_found");
  } finally {
    await client.close();
  }
});
