// r1.web.* through the TypeScript MCP SDK, over `/mcp`: the daemon drives its own web UI
// in Playwright MCP (the pinned @playwright/mcp of package-lock.json, given to the
// daemon by `[web] playwright_mcp`) with Debian's Chromium (`[web] chromium`, never a
// downloaded browser). Navigate (logging in with a single-use code), open a session,
// fill the message box, click Send, and the snapshot shows the echo reply; another
// origin is refused; nothing matches → not_found; read caps offer no r1_web_* tool.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

import { HERE, printedTools, startDaemon, until } from "./lib.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const PLAYWRIGHT_MCP = join(HERE, "node_modules", "@playwright", "mcp");

function executable(p) {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
// .ci/test installs Debian's chromium (web/tests/run.sh) before this suite runs.
const skip = executable(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`;

let daemon;
let client;
const seen = [];
before(async () => {
  if (skip) return;
  daemon = await startDaemon({
    config: `[web]\nplaywright_mcp = ${JSON.stringify(PLAYWRIGHT_MCP)}\nchromium = ${JSON.stringify(CHROMIUM)}\n`,
  });
  client = new Client({ name: "r1-web-tests", version: "0.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${daemon.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${daemon.token}` } },
    }),
  );
});
after(async () => {
  await client?.close();
  await daemon?.cleanup();
});

/** Calls a tool (the SDK checks structuredContent against its outputSchema); the envelope. */
async function call(name, args) {
  const r = await client.callTool({ name, arguments: args });
  const env = r.structuredContent;
  assert.ok(env, `${name}: no structuredContent`);
  assert.equal(r.isError ?? false, !env.ok, `${name}: isError and ok disagree`);
  seen.push(JSON.stringify(r));
  return env;
}

async function ok(name, args) {
  const env = await call(name, args);
  assert.equal(env.ok, true, `${name} ${JSON.stringify(args)}: ${JSON.stringify(env)}`);
  return env.data;
}

test("r1_web_*: navigate, fill the message box, click Send, and the snapshot shows the reply", { skip, timeout: 120000 }, async () => {
  await ok("r1_session_start", { workdir: daemon.workdir, title: "driven by r1.web" });

  // The first navigation logs the browser in with a single-use code, which the page
  // trades and scrubs: the page is the app, connected, and the URL keeps no code.
  const nav = await ok("r1_web_navigate", { url: `${daemon.url}/` });
  assert.equal(nav.url, `${daemon.url}/`);
  assert.equal(nav.title, "r1");
  assert.match(nav.snapshot, /Connected/);
  assert.match(nav.snapshot, /button "driven by r1\.web/);

  // A CSS selector opens the session; accessibility names find the box and the button.
  const opened = await ok("r1_web_click", { selector: "[data-testid=session-item]" });
  assert.match(opened.snapshot, /textbox "Message"/);
  const filled = await ok("r1_web_fill", { selector: "Message", value: "hello through r1.web" });
  assert.match(filled.snapshot, /textbox "Message"[^\n]*:\n(?:[ ]+- [^\n]*\n)*?[ ]+- text: hello through r1\.web/);
  await ok("r1.web.click", { selector: "Send" });

  const page = await until(
    async () => {
      const s = await ok("r1_web_snapshot", {});
      return /echo: hello through r1\.web/.test(s.snapshot) && s;
    },
    { timeout: 30000, what: "the echo reply in the snapshot" },
  );
  assert.match(page.snapshot, /article "You"[\s\S]*hello through r1\.web[\s\S]*article "Assistant"[\s\S]*echo: hello through r1\.web/);

  // A ref from the snapshot works as a selector too.
  const ref = page.snapshot.match(/textbox "Message"[^\n]*\[ref=(e\d+)\]/)[1];
  await ok("r1_web_fill", { selector: ref, value: "by ref" });

  // The token never reaches a result.
  assert.ok(!seen.some((s) => s.includes(daemon.token)), "a result carried the token");
});

test("r1_web_navigate refuses another origin, naming the daemon's", { skip }, async () => {
  for (const url of ["https://example.com/", `${daemon.url}@evil.example/`, "file:///etc/passwd"]) {
    const env = await call("r1_web_navigate", { url });
    assert.equal(env.ok, false, url);
    assert.equal(env.error_code, "validation", url);
    assert.ok(env.error_message.includes(daemon.url), env.error_message);
  }
});

test("an element that matches nothing is not_found", { skip, timeout: 60000 }, async () => {
  await ok("r1_web_navigate", { url: "/" });
  const env = await call("r1_web_click", { selector: "[data-testid=no-such-control]" });
  assert.equal(env.ok, false);
  assert.equal(env.error_code, "not_found", JSON.stringify(env));
});

test("read caps offer no r1_web_* tool; write caps offer all four", () => {
  const read = printedTools("read").map((t) => t.name);
  assert.deepEqual(read.filter((n) => n.startsWith("r1_web_")), []);
  const write = printedTools("write").map((t) => t.name);
  assert.deepEqual(
    write.filter((n) => n.startsWith("r1_web_")).sort(),
    ["r1_web_click", "r1_web_fill", "r1_web_navigate", "r1_web_snapshot"],
  );
});
