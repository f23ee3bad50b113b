// r1's MCP server through the TypeScript MCP SDK (`@modelcontextprotocol/sdk`), over
// stdio (`r1 mcp serve`) and streamable HTTP (`/mcp`):
// - every tool's inputSchema and outputSchema compiles with the validator the SDK's
//   Client uses (AjvJsonSchemaValidator) and with a strict draft 2020-12 Ajv, which
//   refuses union types such as ["integer","null"] and Rust formats such as uint64;
// - a session's life (engines, start, send, tail, get, replay, lanes, pause, resume,
//   kill, an unknown session) runs through Client.callTool, which checks every
//   structuredContent against the tool's outputSchema; a counting validator proves it
//   did, and a tightened schema proves a mismatch fails the call.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { R1_BIN, printedTools, startDaemon, until } from "./lib.mjs";

let daemon;
before(async () => {
  daemon = await startDaemon();
});
after(async () => {
  await daemon?.cleanup();
});

/** The SDK's own validator, counting the structured results it checks. */
class CountingValidator {
  constructor() {
    this.inner = new AjvJsonSchemaValidator();
    this.checked = 0;
  }
  getValidator(schema) {
    const check = this.inner.getValidator(schema);
    return (value) => {
      this.checked += 1;
      return check(value);
    };
  }
}

/** The SDK's validator, on schemas that also demand a field r1 never sends. */
class TighteningValidator {
  constructor() {
    this.inner = new AjvJsonSchemaValidator();
  }
  getValidator(schema) {
    const required = [...(schema.required ?? []), "never_sent"];
    return this.inner.getValidator({ ...schema, required });
  }
}

/** A strict draft 2020-12 validator: unknown formats and keywords fail to compile. */
function strictAjv() {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  return ajv;
}

/**
 * The places in `schema` where `type` is a list (such as ["integer","null"]): Ajv
 * accepts them even when strict, but clients that read a property's `type` to convert
 * arguments (the MCP Inspector) do not.
 */
function unionTypes(schema, path = "#") {
  if (Array.isArray(schema)) return schema.flatMap((s, i) => unionTypes(s, `${path}/${i}`));
  if (!schema || typeof schema !== "object") return [];
  const here = Array.isArray(schema.type) ? [`${path}: type ${JSON.stringify(schema.type)}`] : [];
  return here.concat(Object.entries(schema).flatMap(([k, v]) => unionTypes(v, `${path}/${k}`)));
}

test("the strict validator refuses a Rust integer format", () => {
  const schema = { type: "object", properties: { limit: { type: "integer", format: "uint64" } } };
  assert.throws(() => strictAjv().compile(schema), /unknown format "uint64"/);
  assert.deepEqual(unionTypes({ properties: { limit: { type: ["integer", "null"] } } }), [
    '#/properties/limit: type ["integer","null"]',
  ]);
});

const transports = {
  stdio: (d) =>
    new StdioClientTransport({
      command: R1_BIN,
      args: ["mcp", "serve", "--caps", "write"],
      env: { ...process.env, R1_HOME: d.home, R1_LOG: "warn" },
      stderr: "inherit",
    }),
  http: (d) =>
    new StreamableHTTPClientTransport(new URL(`${d.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${d.token}` } },
    }),
};

async function connect(kind, jsonSchemaValidator) {
  const client = new Client({ name: "r1-mcp-node-tests", version: "0.0.0" }, { jsonSchemaValidator });
  await client.connect(transports[kind](daemon));
  return client;
}

for (const kind of Object.keys(transports)) {
  test(`SDK over ${kind}: every schema compiles and every result matches its outputSchema`, async () => {
    const validator = new CountingValidator();
    const client = await connect(kind, validator);
    try {
      assert.equal(client.getServerVersion().name, "r1");

      // The listing is the catalog, and each schema compiles with both validators.
      const { tools } = await client.listTools();
      const catalog = printedTools("write");
      assert.deepEqual(
        tools.map((t) => t.name),
        catalog.map((t) => t.name),
      );
      const sdk = new AjvJsonSchemaValidator();
      const strict = strictAjv();
      const failures = [];
      const inputCheck = {};
      const strictOutput = {};
      for (const t of tools) {
        assert.ok(t.outputSchema, `${t.name} declares no outputSchema`);
        for (const [which, schema] of [
          ["inputSchema", t.inputSchema],
          ["outputSchema", t.outputSchema],
        ]) {
          try {
            const check = sdk.getValidator(schema);
            if (which === "inputSchema") inputCheck[t.name] = check;
          } catch (e) {
            failures.push(`${t.name} ${which} (SDK validator): ${e.message}`);
          }
          try {
            const check = strict.compile(schema);
            if (which === "outputSchema") strictOutput[t.name] = check;
          } catch (e) {
            failures.push(`${t.name} ${which} (strict 2020-12): ${e.message}`);
          }
          for (const u of unionTypes(schema)) failures.push(`${t.name} ${which} ${u}`);
        }
      }
      assert.deepEqual(failures, [], `schemas that do not compile:\n${failures.join("\n")}`);

      /**
       * Calls a tool through the SDK (which checks structuredContent against the
       * outputSchema), after checking the arguments against its inputSchema; then
       * checks the result again strictly and returns its envelope.
       */
      async function call(name, args) {
        const input = inputCheck[name](args);
        assert.ok(input.valid, `${name} arguments rejected by its inputSchema: ${input.errorMessage}`);
        const before = validator.checked;
        const result = await client.callTool({ name, arguments: args });
        assert.equal(validator.checked, before + 1, `${name}: the SDK did not validate the result`);
        const env = result.structuredContent;
        assert.ok(env, `${name}: no structuredContent`);
        assert.ok(strictOutput[name](env), `${name}: ${JSON.stringify(strictOutput[name].errors)}`);
        assert.deepEqual(JSON.parse(result.content[0].text), env);
        assert.equal(Boolean(result.isError), env.ok !== true, JSON.stringify(env));
        return env;
      }

      const engines = await call("r1_engines_list", {});
      assert.equal(engines.ok, true, JSON.stringify(engines));
      assert.ok(
        engines.data.engines.some((e) => e.name === "echo"),
        JSON.stringify(engines.data),
      );

      const started = await call("r1_session_start", {
        workdir: daemon.workdir,
        engine: "echo",
        title: `node ${kind}`,
      });
      assert.equal(started.ok, true, JSON.stringify(started));
      const session_id = started.data.id;
      assert.match(session_id, /^ses_/);
      assert.equal(started.links.self, `/v1/sessions/${session_id}`);

      const send = { session_id, text: `hello ${kind}`, client_message_id: `node-${kind}` };
      const sent = await call("r1_session_send", send);
      const again = await call("r1_session_send", send);
      assert.equal(sent.ok, true, JSON.stringify(sent));
      assert.equal(again.data.message_id, sent.data.message_id);

      let since = sent.data.seq + 1;
      const reply = await until(
        async () => {
          const page = await call("r1_bus_tail", { session_id, since_seq: since, wait_ms: 2000, limit: 50 });
          assert.equal(page.ok, true, JSON.stringify(page));
          since = page.data.next_seq;
          return page.data.records.find((r) => r.kind === "session.message" && r.data.role === "assistant");
        },
        { what: "the echo engine's reply" },
      );
      assert.equal(reply.data.text, `echo: hello ${kind}`);

      const got = await call("r1_session_get", { session_id });
      assert.equal(got.data.id, session_id);
      assert.equal(got.data.title, `node ${kind}`);

      const replay = await call("r1_bus_replay", { session_id, since_seq: 1, limit: 2 });
      assert.equal(replay.data.records.length, 2);
      assert.equal(replay.data.records[0].kind, "session.created");

      const listed = await call("r1_session_list", {});
      assert.ok(listed.data.sessions.some((s) => s.id === session_id));
      const lanes = await call("r1_lanes_list", { session_id });
      assert.equal(lanes.ok, true, JSON.stringify(lanes));

      const paused = await call("r1_session_pause", { session_id });
      assert.equal(paused.ok, true, JSON.stringify(paused));
      const resumed = await call("r1_session_resume", { session_id });
      assert.equal(resumed.ok, true, JSON.stringify(resumed));
      const killed = await call("r1_session_kill", { session_id });
      assert.equal(killed.ok, true, JSON.stringify(killed));

      // A failure is a tool result with isError and the not_found envelope, and it
      // matches the outputSchema too.
      const missing = await call("r1_session_get", { session_id: "ses_nope" });
      assert.equal(missing.ok, false);
      assert.equal(missing.error_code, "not_found", JSON.stringify(missing));
      assert.equal(typeof missing.error_message, "string");
    } finally {
      await client.close();
    }
  });
}

/** A git repository with one commit, in the daemon's scratch area. */
function gitRepo(name) {
  const repo = join(daemon.workdir, name);
  mkdirSync(repo);
  const git = (...args) => execFileSync("git", ["-C", repo, ...args], { encoding: "utf8" });
  git("init", "-q", "-b", "main");
  git("config", "user.name", "Test");
  git("config", "user.email", "test@example.com");
  writeFileSync(join(repo, "README.md"), "hello\n");
  git("add", "README.md");
  git("commit", "-q", "-m", "first");
  return repo;
}

for (const kind of Object.keys(transports)) {
  test(`SDK over ${kind}: legacy build_from_sow queues a mission and says what replaces it`, async () => {
    const client = await connect(kind, new AjvJsonSchemaValidator());
    try {
      const repo = gitRepo(`legacy-${kind}`);
      // The legacy names are not listed, but they answer under both spellings.
      const { tools } = await client.listTools();
      assert.ok(!tools.some((t) => t.name.includes("build_from_sow")));
      const ids = [];
      for (const name of ["build_from_sow", "stoke_build_from_sow"]) {
        const r = await client.callTool({ name, arguments: { repo_root: repo, sow: `changelog ${kind}` } });
        const env = r.structuredContent;
        assert.equal(env.ok, true, JSON.stringify(env));
        assert.match(env.data.id, /^ms_/);
        assert.equal(env.data.executor, "local");
        assert.equal(env.links.self, `/v1/missions/${env.data.id}`);
        assert.match(env.links.deprecations[0], /r1\.mission\.create/);
        ids.push(env.data.id);
      }
      // The replacement tools (listed, validated against their outputSchema) follow it.
      for (const mission_id of ids) {
        const done = await until(
          async () => {
            const r = await client.callTool({ name: "r1_mission_get", arguments: { mission_id } });
            const m = r.structuredContent.data;
            return m.state === "succeeded" && m;
          },
          { what: `mission ${mission_id} to succeed` },
        );
        assert.match(done.worktree_id, /^wt_/);
        assert.ok(done.log_tail.some((l) => l.includes(`changelog ${kind}`)), JSON.stringify(done));
      }
      const status = await client.callTool({ name: "get_mission_status", arguments: { mission_id: ids[0] } });
      assert.equal(status.structuredContent.data.state, "succeeded");
      assert.match(status.structuredContent.links.deprecations[0], /r1\.mission\.get/);
      const bad = await client.callTool({ name: "build_from_sow", arguments: { sow: "x" } });
      assert.equal(bad.isError, true);
      assert.equal(bad.structuredContent.error_code, "validation");
      assert.match(bad.structuredContent.error_message, /repo_root/);
    } finally {
      await client.close();
    }
  });
}

test("SDK over stdio: a result that does not match its outputSchema fails the call", async () => {
  const client = await connect("stdio", new TighteningValidator());
  try {
    await client.listTools();
    await assert.rejects(
      client.callTool({ name: "r1_engines_list", arguments: {} }),
      (e) => e instanceof McpError && /does not match the tool's output schema/.test(e.message),
    );
  } finally {
    await client.close();
  }
});
