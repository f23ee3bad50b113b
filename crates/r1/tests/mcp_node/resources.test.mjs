// MCP beyond tools, through the TypeScript MCP SDK over stdio and streamable HTTP
// (where server-initiated notifications travel on the session's GET stream):
// sessions as resources and resource templates, resources/subscribe with
// notifications/resources/updated, logging/setLevel with the daemon's log lines about
// this client's sessions as notifications/message, and completion/complete.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  LoggingMessageNotificationSchema,
  McpError,
  ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

import { R1_BIN, startDaemon, until } from "./lib.mjs";

let daemon;
before(async () => {
  // INFO, so the daemon logs "session started" lines for the logging test.
  daemon = await startDaemon({ logLevel: "info" });
});
after(async () => {
  await daemon?.cleanup();
});

const transports = {
  stdio: (d) =>
    new StdioClientTransport({
      command: R1_BIN,
      args: ["mcp", "serve", "--caps", "write"],
      env: { ...process.env, R1_HOME: d.home, R1_LOG: "warn" },
      stderr: "ignore",
    }),
  http: (d) =>
    new StreamableHTTPClientTransport(new URL(`${d.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${d.token}` } },
    }),
};

/** Starts a session through the daemon's HTTP API, outside any MCP client. */
async function startOutside() {
  const r = await fetch(`${daemon.url}/v1/sessions`, {
    method: "POST",
    headers: { Authorization: `Bearer ${daemon.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ workdir: daemon.workdir, engine: "echo" }),
  });
  assert.equal(r.status, 201);
  return (await r.json()).id;
}

for (const kind of Object.keys(transports)) {
  test(`SDK over ${kind}: sessions as resources, subscriptions, logging and completion`, async () => {
    const client = new Client({ name: `r1-resources-${kind}`, version: "0.0.0" });
    const updates = [];
    const logs = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => updates.push(n.params.uri));
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
    await client.connect(transports[kind](daemon));
    try {
      const caps = client.getServerCapabilities();
      assert.equal(caps.resources.subscribe, true);
      assert.ok(caps.logging && caps.completions);

      const start = async () => {
        const r = await client.callTool({ name: "r1_session_start", arguments: { workdir: daemon.workdir, engine: "echo" } });
        assert.equal(r.structuredContent.ok, true, JSON.stringify(r.structuredContent));
        return r.structuredContent.data.id;
      };
      const id = await start();

      // Resources and templates.
      const { resources } = await client.listResources();
      assert.deepEqual(resources.map((r) => r.uri), ["r1://sessions"]);
      const { resourceTemplates } = await client.listResourceTemplates();
      assert.deepEqual(
        resourceTemplates.map((t) => t.uriTemplate),
        ["r1://sessions/{id}", "r1://sessions/{id}/journal", "r1://sessions/{id}/lanes/{lane}", "r1://engines/{name}"],
      );
      const read = async (uri) => JSON.parse((await client.readResource({ uri })).contents[0].text);
      assert.ok((await read("r1://sessions")).sessions.some((s) => s.id === id));
      const view = await read(`r1://sessions/${id}`);
      assert.equal(view.id, id);
      assert.equal(view.state, "idle");
      assert.equal((await read(`r1://sessions/${id}/journal`)).records[0].kind, "session.created");
      assert.equal((await read(`r1://sessions/${id}/lanes/main`)).lane, "main");
      assert.equal((await read("r1://engines/echo")).name, "echo");
      await assert.rejects(
        client.readResource({ uri: "r1://sessions/ses_nope" }),
        (e) => e instanceof McpError && e.code === -32002,
      );
      await assert.rejects(client.readResource({ uri: "file:///etc/passwd" }), McpError);

      // A subscribed session's resource is updated when its journal grows.
      const uri = `r1://sessions/${id}`;
      await client.subscribeResource({ uri });
      assert.deepEqual(updates, []);
      await client.callTool({ name: "r1_session_send", arguments: { session_id: id, text: "hello resources" } });
      await until(() => updates.includes(uri), { what: "notifications/resources/updated" });
      // The first update comes with the first new record (the message sent); the answer
      // follows: the journal read through the resource shows it once it is written.
      await until(
        async () =>
          (await read(`r1://sessions/${id}/journal`)).records.some((r) => r.kind === "session.message" && r.data.text === "echo: hello resources"),
        { what: "the answer in the journal resource" },
      );
      await client.unsubscribeResource({ uri });

      // Log lines about this client's sessions, and only those.
      await client.setLoggingLevel("info");
      const other = await startOutside();
      const mine = await start();
      const line = await until(() => logs.find((l) => l.data.session === mine), {
        what: "the log line of this client's session",
      });
      assert.equal(line.level, "info");
      assert.equal(line.data.message, "session started");
      assert.ok(!logs.some((l) => l.data.session === other), JSON.stringify(logs));
      assert.ok(logs.every((l) => [id, mine].includes(l.data.session)), JSON.stringify(logs));

      // Completion of template arguments.
      const complete = async (uri, name, value, args) =>
        (
          await client.complete({
            ref: { type: "ref/resource", uri },
            argument: { name, value },
            ...(args ? { context: { arguments: args } } : {}),
          })
        ).completion.values;
      const ids = await complete("r1://sessions/{id}", "id", "ses_");
      assert.ok(ids.includes(id) && ids.includes(mine), JSON.stringify(ids));
      assert.deepEqual(await complete("r1://sessions/{id}", "id", id.slice(0, 12)), [id]);
      assert.deepEqual(await complete("r1://sessions/{id}", "id", "ses_zzzz"), []);
      assert.deepEqual(await complete("r1://engines/{name}", "name", "ec"), ["echo"]);
      assert.ok((await complete("r1://sessions/{id}/lanes/{lane}", "lane", "", { id })).includes("main"));
    } finally {
      await client.close();
    }
  });
}
