// r1.web.* through the TypeScript MCP SDK, over `/mcp`: the daemon drives its own web UI
// in Playwright MCP (the pinned @playwright/mcp of package-lock.json, given to the
// daemon by `[web] playwright_mcp`) with Debian's Chromium (`[web] chromium`, never a
// downloaded browser). Navigate (logging in with a single-use code), open a session,
// fill the message box, click Send, and the snapshot shows the echo reply; another
// origin is refused; nothing matches → not_found; read caps offer no r1_web_* tool; the
// browser's process group is gone after the idle timeout and after the daemon stops.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { accessSync, constants, readdirSync, readFileSync } from "node:fs";
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

const webConfig = (extra = "") =>
  `[web]\nplaywright_mcp = ${JSON.stringify(PLAYWRIGHT_MCP)}\nchromium = ${JSON.stringify(CHROMIUM)}\n${extra}`;

/** Connects the TypeScript SDK's client to the daemon's `/mcp`. */
async function connect(d) {
  const c = new Client({ name: "r1-web-tests", version: "0.0.0" });
  await c.connect(
    new StreamableHTTPClientTransport(new URL(`${d.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${d.token}` } },
    }),
  );
  return c;
}

let daemon;
let client;
const seen = [];
before(async () => {
  if (skip) return;
  daemon = await startDaemon({ config: webConfig() });
  client = await connect(daemon);
});
after(async () => {
  await client?.close();
  await daemon?.cleanup();
});

/** Calls a tool (the SDK checks structuredContent against its outputSchema); the envelope. */
async function call(name, args, c = client) {
  const r = await c.callTool({ name, arguments: args });
  const env = r.structuredContent;
  assert.ok(env, `${name}: no structuredContent`);
  assert.equal(r.isError ?? false, !env.ok, `${name}: isError and ok disagree`);
  seen.push(JSON.stringify(r));
  return env;
}

async function ok(name, args, c = client) {
  const env = await call(name, args, c);
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

/** The processes now running: pid, parent, process group and command line. */
function processes() {
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ");
      if (fields[0] !== "Z") out.push({ pid: +name, ppid: +fields[1], pgid: +fields[2], cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * The browser's process groups for the daemon at `home`: Playwright MCP's (node leads
 * it) and those of the Chromiums it started (detached, each leading its own).
 */
function browserGroups(home) {
  const all = processes();
  const lead = all.find((p) => p.cmdline.includes(join(home, "web", "playwright-mcp.json")));
  if (!lead) return null;
  const groups = new Set([lead.pgid]);
  for (const p of all) if (p.ppid === lead.pid && p.pgid === p.pid) groups.add(p.pgid);
  return { lead: lead.pid, groups, members: all.filter((p) => groups.has(p.pgid)) };
}
const alive = (g) => processes().some((p) => g.groups.has(p.pgid));

test("the browser starts on first use, stops when idle and with the daemon, its whole group", { skip, timeout: 120000 }, async () => {
  const d = await startDaemon({ config: webConfig("idle_timeout_s = 2\n") });
  const c = await connect(d);
  try {
    assert.equal(browserGroups(d.home), null, "a browser before any web.* call");
    const nav = await ok("r1_web_navigate", { url: "/" }, c);
    assert.match(nav.snapshot, /Connected/);
    const first = browserGroups(d.home);
    assert.ok(first, "no browser after a navigation");
    assert.ok(first.members.some((p) => /chrom/.test(p.cmdline)), JSON.stringify(first.members));

    // Idle for longer than idle_timeout_s: node and every Chromium process are gone.
    await until(() => !alive(first), {
      timeout: 15000,
      what: "the idle browser's process group to end",
    });

    // The next call starts a new browser, which logs in again with a fresh code.
    const blank = await ok("r1_web_snapshot", {}, c);
    assert.equal(blank.url, "about:blank");
    const again = await ok("r1_web_navigate", { url: "/" }, c);
    assert.match(again.snapshot, /Connected/);
    const second = browserGroups(d.home);
    assert.ok(second && second.lead !== first.lead, "no new browser");
    await c.close();
    await d.cleanup();
    await until(() => !alive(second), { timeout: 5000, what: "the browser to end with the daemon" });
  } finally {
    await c.close().catch(() => {});
    await d.cleanup().catch(() => {});
  }
});
