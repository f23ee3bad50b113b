// r1's MCP server through the MCP Inspector CLI (`@modelcontextprotocol/inspector
// --cli`, from this directory's node_modules), over stdio (`r1 mcp serve`) and
// streamable HTTP (`/mcp`): tools/list gives the catalog, and tools/call works with
// `--tool-arg key=value` pairs, which the Inspector converts by each property's schema
// `type`. An optional integer such as `limit` is sent as a number only when its type is
// the single "integer" (with ["integer","null"] it went out as a string and failed).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

import { HERE, R1_BIN, printedTools, startDaemon } from "./lib.mjs";

const INSPECTOR = join(HERE, "node_modules", ".bin", "mcp-inspector");

let daemon;
let config;
before(async () => {
  daemon = await startDaemon();
  // The stdio server as a client config names it: command, args and env.
  config = join(daemon.home, "..", "mcp.json");
  const server = { command: R1_BIN, args: ["mcp", "serve", "--caps", "write"], env: { R1_HOME: daemon.home } };
  await writeFile(config, JSON.stringify({ mcpServers: { r1: server } }));
});
after(async () => {
  await daemon?.cleanup();
});

/** Runs the Inspector CLI and returns its JSON output; fails on a non-zero exit. */
function inspector(args, env = {}) {
  return new Promise((res, rej) => {
    execFile(
      INSPECTOR,
      ["--cli", ...args],
      // 30 s: two node processes and the server start per call, on a busy CI box.
      { env: { ...process.env, ...env }, timeout: 30000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) return rej(new Error(`mcp-inspector ${args.join(" ")} failed: ${err.message}\n${stdout}\n${stderr}`));
        try {
          res(JSON.parse(stdout));
        } catch {
          rej(new Error(`mcp-inspector ${args.join(" ")} printed no JSON:\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}

const targets = {
  stdio: () => ({ args: ["--config", config, "--server", "r1"], env: {} }),
  http: () => ({
    args: [`${daemon.url}/mcp`, "--transport", "http"],
    env: {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import=${join(HERE, "auth-fetch.mjs")}`,
      R1_MCP_URL: `${daemon.url}/mcp`,
      R1_MCP_TOKEN: daemon.token,
    },
  }),
};

/** `tools/call` of `name` with `--tool-arg` pairs; returns the envelope. */
async function call(kind, name, args) {
  const { args: target, env } = targets[kind]();
  const pairs = Object.entries(args).map(([k, v]) => `${k}=${v}`);
  const flags = ["--method", "tools/call", "--tool-name", name];
  if (pairs.length) flags.push("--tool-arg", ...pairs);
  const result = await inspector([...target, ...flags], env);
  const envelope = result.structuredContent;
  assert.ok(envelope, `${name}: no structuredContent in ${JSON.stringify(result)}`);
  assert.equal(Boolean(result.isError), envelope.ok !== true, JSON.stringify(result));
  return envelope;
}

for (const kind of Object.keys(targets)) {
  test(`Inspector CLI over ${kind}: tools/list is the catalog`, async () => {
    const { args, env } = targets[kind]();
    const listed = await inspector([...args, "--method", "tools/list"], env);
    assert.deepEqual(
      listed.tools.map((t) => t.name),
      printedTools("write").map((t) => t.name),
    );
    assert.ok(listed.tools.every((t) => t.outputSchema));
  });

  test(`Inspector CLI over ${kind}: tools/call, with optional integers`, async () => {
    const engines = await call(kind, "r1_engines_list", {});
    assert.ok(engines.data.engines.some((e) => e.name === "echo"), JSON.stringify(engines));

    const started = await call(kind, "r1_session_start", {
      workdir: daemon.workdir,
      engine: "echo",
      title: `inspector ${kind}`,
    });
    assert.equal(started.ok, true, JSON.stringify(started));
    const session_id = started.data.id;

    const got = await call(kind, "r1_session_get", { session_id });
    assert.equal(got.data.title, `inspector ${kind}`);

    // `since_seq` and `limit` are optional integers of the replay tool.
    const replay = await call(kind, "r1_bus_replay", { session_id, since_seq: 1, limit: 1 });
    assert.equal(replay.ok, true, JSON.stringify(replay));
    assert.equal(replay.data.records.length, 1);
    assert.equal(replay.data.records[0].kind, "session.created");
    assert.equal(replay.data.next_seq, 2);

    const missing = await call(kind, "r1_session_get", { session_id: "ses_nope" });
    assert.equal(missing.error_code, "not_found", JSON.stringify(missing));
  });
}
