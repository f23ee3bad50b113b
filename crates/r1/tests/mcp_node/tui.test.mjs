// A headless `r1 tui` inside the daemon, driven through the `r1_tui_*` tools by the
// TypeScript MCP SDK over `/mcp`, as an agent would: open one, start a session from
// the workdir prompt, type and send a message key by key, read the echo on the
// screen, then `/run ls` → the approval card → `y` → the lane's output.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

import { startDaemon, until } from "./lib.mjs";

let daemon;
before(async () => {
  daemon = await startDaemon();
});
after(async () => {
  await daemon?.cleanup();
});

test("SDK drives a headless TUI: a session, a message, an approval card and a lane", async () => {
  writeFileSync(join(daemon.workdir, "marker-file.txt"), "x");
  const client = new Client({ name: "r1-tui-node-tests", version: "0.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${daemon.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${daemon.token}` } },
    }),
  );
  try {
    const names = (await client.listTools()).tools.map((t) => t.name);
    for (const n of ["r1_tui_open", "r1_tui_press_key", "r1_tui_snapshot", "r1_tui_focus_lane", "r1_tui_close"]) {
      assert.ok(names.includes(n), `${n} is not listed: ${names}`);
    }
    // Debug only: `/mcp` has write caps here.
    assert.ok(!names.includes("r1_tui_get_model"), `${names}`);

    /** Calls a tool (the SDK checks the result against its outputSchema). */
    async function call(name, args) {
      const r = await client.callTool({ name, arguments: args });
      const env = r.structuredContent;
      assert.ok(env, `${name}: no structuredContent`);
      return env;
    }
    const screen = (snap) => snap.data.lines.join("\n");

    const opened = await call("r1_tui_open", { width: 100, height: 30 });
    assert.equal(opened.ok, true, JSON.stringify(opened));
    const tui_session_id = opened.data.tui_session_id;
    assert.match(tui_session_id, /^tui_/);

    async function press(key) {
      const r = await call("r1_tui_press_key", { tui_session_id, key });
      assert.equal(r.ok, true, `${key}: ${JSON.stringify(r)}`);
      return r;
    }
    async function type(text) {
      for (const c of text) await press(c === " " ? "space" : c);
    }
    async function waitFor(what, pred) {
      let last;
      try {
        return await until(
          async () => {
            last = await call("r1_tui_snapshot", { tui_session_id });
            assert.equal(last.ok, true, JSON.stringify(last));
            return pred(screen(last)) && last;
          },
          { what },
        );
      } catch (e) {
        throw new Error(`${e.message}; the screen:\n${last && screen(last)}`);
      }
    }

    // No session yet: the workdir prompt, as in the terminal.
    await waitFor("the workdir prompt", (s) => s.includes("new session"));
    await press("ctrl+u");
    await type(daemon.workdir);
    await press("enter");
    await waitFor("the session", (s) => s.includes(`session started in ${daemon.workdir}`));

    // A message typed key by key and sent; the echo engine's reply shows.
    await type("hello from node");
    let snap = await press("enter");
    assert.ok(
      snap.data.elements.some((e) => e.id === "input.send" && e.method === "session.send"),
      JSON.stringify(snap.data.elements),
    );
    await waitFor("the echo", (s) => s.includes("echo: hello from node"));

    // `/run ls` asks on the approval card; its elements name session.approve.
    await type("/run ls");
    await press("enter");
    snap = await waitFor("the approval card", (s) => s.includes("approval needed"));
    const allow = snap.data.elements.find((e) => e.id === "approval.allow");
    assert.ok(allow, JSON.stringify(snap.data.elements));
    assert.equal(allow.method, "session.approve");
    assert.equal(allow.key, "y");
    await press("y");
    snap = await waitFor(
      "the lane output",
      (s) => s.includes("marker-file.txt") && s.includes("echo: run_command returned"),
    );
    assert.ok(!screen(snap).includes("approval needed"), screen(snap));

    // Focus the lane by id.
    const lane = snap.data.elements.find((e) => e.id.startsWith("lanes.item."));
    assert.ok(lane, JSON.stringify(snap.data.elements));
    const focused = await call("r1_tui_focus_lane", {
      tui_session_id,
      lane_id: lane.id.slice("lanes.item.".length),
    });
    assert.equal(focused.ok, true, JSON.stringify(focused));
    assert.ok(screen(focused).includes("k kill"), screen(focused));

    // Closing ends it; it is gone afterwards.
    const closed = await call("r1_tui_close", { tui_session_id });
    assert.equal(closed.ok, true, JSON.stringify(closed));
    const gone = await call("r1_tui_snapshot", { tui_session_id });
    assert.equal(gone.ok, false);
    assert.equal(gone.error_code, "not_found", JSON.stringify(gone));
  } finally {
    await client.close();
  }
});
