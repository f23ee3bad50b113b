// r1's `/mcp` endpoint against the official MCP conformance suite
// (@modelcontextprotocol/conformance, pinned in package-lock.json): its generic server
// scenarios, run against a real `r1 serve` through a loopback proxy that adds the
// daemon's bearer token (the suite has no auth option) and pins the Host header the
// daemon's perimeter expects. Exits non-zero when any scenario fails.
//
//   node run.mjs            # R1_BIN: the r1 binary (default: target/debug/r1)

import { spawn } from "node:child_process";
import http from "node:http";
import { join } from "node:path";

import { startDaemon, HERE } from "../lib.mjs";

const SCENARIOS = [
  "server-initialize",
  "ping",
  "tools-list",
  "logging-set-level",
  "resources-list",
  "server-sse-multiple-streams",
];
/** The longest one scenario may take before it counts as failed. */
const SCENARIO_TIMEOUT_MS = 120000;

/** A loopback proxy to `target` (the daemon's URL) that adds `Authorization`. */
function startProxy(target, token) {
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers, host: upstream.host, authorization: `Bearer ${token}` };
    const out = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      },
    );
    out.on("error", (e) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end(`proxy: ${e.message}`);
    });
    // A client that goes away (a closed SSE stream) ends the upstream request too.
    res.on("close", () => out.destroy());
    req.pipe(out);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function runScenario(url, scenario) {
  const cli = join(HERE, "conformance", "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js");
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, "server", "--url", url, "--scenario", scenario], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (b) => (out += b));
    child.stderr.on("data", (b) => (out += b));
    const timer = setTimeout(() => {
      out += `\n(killed after ${SCENARIO_TIMEOUT_MS} ms)`;
      child.kill("SIGKILL");
    }, SCENARIO_TIMEOUT_MS);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ scenario, ok: code === 0, out });
    });
  });
}

const daemon = await startDaemon();
let failed = 0;
try {
  const proxy = await startProxy(daemon.url, daemon.token);
  const url = `http://127.0.0.1:${proxy.address().port}/mcp`;
  for (const scenario of SCENARIOS) {
    const r = await runScenario(url, scenario);
    const passed = r.out.match(/Passed: [^\n]*/)?.[0] ?? "no result line";
    process.stdout.write(`${r.ok ? "ok" : "FAILED"} - conformance ${scenario} (${passed})\n`);
    if (!r.ok) {
      failed += 1;
      process.stdout.write(r.out.replace(/^/gm, "    ") + "\n");
    }
  }
  proxy.closeAllConnections();
  proxy.close();
} finally {
  await daemon.cleanup();
}
process.stdout.write(`conformance: ${SCENARIOS.length - failed} of ${SCENARIOS.length} scenarios passed\n`);
process.exit(failed ? 1 : 0);
