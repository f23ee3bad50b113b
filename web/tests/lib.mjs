// Shared helpers of the browser suite: the real daemon, the real Chromium, and the
// checks every view goes through (data-api walk, axe, screenshots, CSP watch).

import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { mkdtemp, mkdir, chmod, readFile, writeFile, rm, access, realpath } from "node:fs/promises";
import { rmSync } from "node:fs";
import { createServer } from "node:http";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

export const REPO = resolve(here, "..", "..");
export const R1_BIN = process.env.R1_BIN || join(REPO, "target", "debug", "r1");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const ARTIFACTS = process.env.R1_WEB_ARTIFACTS || join(here, "artifacts");

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--host-resolver-rules=MAP rebind.test 127.0.0.1, MAP foreign.test 127.0.0.1",
];

/** Every session record kind (the closed enum of r1-proto), for SSE listeners. */
export const RECORD_KINDS = [
  "session.created",
  "session.message",
  "session.delta",
  "session.state",
  "tool.started",
  "tool.completed",
  "approval.requested",
  "approval.resolved",
  "lane.created",
  "lane.delta",
  "lane.status",
  "lane.killed",
  "session.paused",
  "session.resumed",
  "session.cancelled",
  "session.ended",
  "session.error",
  "daemon.reloaded",
  "session.resync",
];

// ---------------------------------------------------------------------------
// Daemon

/** A fresh state directory: a 0700 temp dir with the home in its subdir `h`. */
export async function freshHome() {
  const base = await mkdtemp(join(tmpdir(), "r1-web-"));
  await chmod(base, 0o700);
  const home = join(base, "h");
  await mkdir(home, { mode: 0o700 });
  await chmod(home, 0o700);
  return { base, home };
}

const scratch = [];
process.on("exit", () => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

/** A temp directory (a session's workdir), removed when the test process exits. */
export async function tempDir(prefix = "r1-web-wd-") {
  const d = await mkdtemp(join(tmpdir(), prefix));
  scratch.push(d);
  return d;
}

async function exists(p) {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts `r1 serve` on `home` (fresh unless given) and waits for its registration.
 * `config` is written to daemon.toml first; `bin` runs another r1 binary than R1_BIN
 * (a copy, which the daemon reports as another build).
 */
export async function startDaemon({ home, port, config, base, bin = R1_BIN } = {}) {
  if (!(await exists(bin))) {
    throw new Error(`r1 binary not found at ${R1_BIN}: build it (cargo build -p r1) or set R1_BIN`);
  }
  if (!home) ({ base, home } = await freshHome());
  if (config !== undefined) await writeFile(join(home, "daemon.toml"), config, { mode: 0o600 });
  const args = ["serve"];
  if (port) args.push("--port", String(port));
  const child = spawn(bin, args, {
    env: { ...process.env, R1_HOME: home, R1_LOG: process.env.R1_LOG || "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout.on("data", (b) => (log += b));
  child.stderr.on("data", (b) => (log += b));
  const exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  let done = false;
  exited.then(() => (done = true));
  const deadline = Date.now() + 15000;
  let info;
  for (;;) {
    if (done) throw new Error(`r1 serve exited early:\n${log}`);
    try {
      const j = JSON.parse(await readFile(join(home, "daemon.json"), "utf8"));
      if (j.pid === child.pid) {
        info = j;
        break;
      }
    } catch {
      // not written yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`r1 serve did not register within 15 s:\n${log}`);
    }
    await sleep(50);
  }
  const token = (await readFile(join(home, "token"), "utf8")).trim();
  const d = {
    home,
    base,
    child,
    info,
    url: info.url,
    port: Number(new URL(info.url).port),
    token,
    exited,
    log: () => log,
    /** Stops the daemon (SIGTERM, then SIGKILL) and waits for it. */
    async stop() {
      if (!done) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(t);
      }
    },
    /** Stops the daemon and removes its state directory. */
    async cleanup() {
      await d.stop();
      if (base) await rm(base, { recursive: true, force: true });
    },
  };
  return d;
}

/** An authenticated request to the daemon's HTTP API (from node: no Origin header). */
export async function api(d, method, path, body) {
  const headers = { Authorization: `Bearer ${d.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(d.url + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: r.status, json, text, headers: r.headers };
}

export async function sessionCount(d) {
  const r = await api(d, "GET", "/v1/sessions");
  if (r.status !== 200) throw new Error(`GET /v1/sessions: ${r.status} ${r.text}`);
  return r.json.sessions.length;
}

/** All journal records of a session. */
export async function journal(d, id) {
  const r = await api(d, "GET", `/v1/sessions/${id}/journal?since_seq=1&limit=10000`);
  if (r.status !== 200) throw new Error(`journal: ${r.status} ${r.text}`);
  return r.json.records;
}

/** Waits until `pred()` is truthy (polling), returning its value. */
export async function until(pred, { timeout = 10000, interval = 50, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(interval);
  }
}

/** The perimeter's rejection counters, by reason, from /v1/metrics. */
export async function rejections(d) {
  const r = await api(d, "GET", "/v1/metrics");
  const out = {};
  for (const m of r.text.matchAll(/^r1_perimeter_rejections_total\{reason="([^"]+)"\}\s+(\d+)/gm)) {
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/** The single-use login URL, minted by `r1 open --print-url`. */
export function loginUrl(d) {
  return new Promise((res, rej) => {
    execFile(R1_BIN, ["open", "--print-url"], { env: { ...process.env, R1_HOME: d.home } }, (err, stdout, stderr) => {
      if (err) return rej(new Error(`r1 open --print-url failed: ${err.message}\n${stderr}`));
      const url = stdout.trim().split("\n").find((l) => l.includes("#code="));
      if (!url) return rej(new Error(`r1 open --print-url printed no login URL: ${stdout}`));
      res(url.trim());
    });
  });
}

/** A raw HTTP request with arbitrary headers (Host, Origin, Upgrade…). */
export function rawRequest(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((res, rej) => {
    const u = new URL(url);
    const req = httpRequest(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers, setHost: !("Host" in headers) },
      (r) => {
        let data = "";
        r.on("data", (c) => (data += c));
        r.on("end", () => res({ status: r.statusCode, headers: r.headers, body: data }));
      },
    );
    req.on("upgrade", (r, socket) => {
      socket.destroy();
      res({ status: r.statusCode, headers: r.headers, body: "", upgraded: true });
    });
    req.on("error", rej);
    if (body) req.write(body);
    req.end();
  });
}

/** The operation names valid for data-api: the catalog's methods plus the login and transport. */
export async function operations() {
  const src = await readFile(join(REPO, "crates", "r1-proto", "src", "catalog.rs"), "utf8");
  const ops = new Set([...src.matchAll(/^\s*method:\s*"([^"]+)",/gm)].map((x) => x[1]));
  if (ops.size === 0) throw new Error("no operations found in crates/r1-proto/src/catalog.rs");
  ops.add("auth.exchange");
  ops.add("subscribe");
  return ops;
}

// ---------------------------------------------------------------------------
// Test pages on another loopback port

/** An HTTP server on 127.0.0.1 serving a blank page (and `pages[path]` when given). */
export async function testServer(pages = {}) {
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    const body = pages[path] ?? "<!doctype html><html lang=en><head><title>test page</title></head><body><p>test page</p></body></html>";
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    foreign: `http://foreign.test:${port}`,
    close: () => new Promise((r) => server.close(r)),
  };
}

// ---------------------------------------------------------------------------
// Browser

export async function launchBrowser() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/**
 * Records CSP violations (a listener installed before any page script), console errors
 * and page errors of `page`.
 */
export async function watchPage(page) {
  const problems = { console: [], pageErrors: [] };
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__csp.push({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample, source: e.sourceFile });
    });
  });
  page.on("console", (m) => {
    if (m.type() === "error") problems.console.push(m.text());
  });
  page.on("pageerror", (e) => problems.pageErrors.push(String(e)));
  problems.csp = () => page.evaluate(() => window.__csp || []);
  return problems;
}

const INTERACTIVE = "button, a, input, select, textarea, summary, [role=button], [tabindex], [contenteditable]";

/**
 * The client-side controls that call no operation, named in `data-local` instead of
 * `data-api`: copying a code block, expanding a lane's output, a code block that
 * takes focus to scroll, a diff's layout switch (unified or side by side: the diff
 * already loaded, drawn again), opening or closing a dialog of the page itself (the
 * command palette, the shortcut list), asking the browser for notification permission.
 * Links in messages lead away from the UI and carry neither.
 */
export const LOCAL_ACTIONS = new Set([
  "clipboard",
  "expand",
  "scroll",
  "view",
  "dialog",
  "notify",
  // Reloading the page to pick up the one that matches an upgraded daemon (web/compat.js).
  "reload",
]);

/**
 * Every interactive element of the current DOM (hidden ones included) must carry
 * data-testid and a data-api naming a real operation (or a data-local naming a
 * client-side action); a link in a rendered message must open outside the page.
 * Returns the elements seen.
 */
export async function walkDataApi(page, ops) {
  const els = await page.evaluate((sel) => {
    return Array.from(document.querySelectorAll(sel)).map((e) => ({
      tag: e.tagName.toLowerCase(),
      testid: e.getAttribute("data-testid"),
      api: e.getAttribute("data-api"),
      local: e.getAttribute("data-local"),
      messageLink: e.tagName === "A" && !!e.closest(".msg-body"),
      rel: e.getAttribute("rel"),
      target: e.getAttribute("target"),
      html: e.outerHTML.slice(0, 160),
    }));
  }, INTERACTIVE);
  const bad = els.filter((e) => {
    if (e.messageLink) return e.rel !== "noopener noreferrer" || e.target !== "_blank";
    if (!e.testid) return true;
    if (e.local) return !LOCAL_ACTIONS.has(e.local) || e.api;
    return !e.api || !ops.has(e.api);
  });
  if (bad.length) {
    throw new Error(
      "interactive elements without data-testid or with a data-api that is not an operation:\n" +
        bad.map((b) => `  data-api=${JSON.stringify(b.api)} data-local=${JSON.stringify(b.local)} data-testid=${JSON.stringify(b.testid)}: ${b.html}`).join("\n"),
    );
  }
  return els;
}

let axeSource;
/** axe-core on the page (evaluated over CDP, so the page's CSP does not apply). */
export async function axe(page) {
  axeSource ??= await readFile(require.resolve("axe-core/axe.min.js"), "utf8");
  const loaded = await page.evaluate(() => typeof window.axe !== "undefined");
  if (!loaded) await page.evaluate(axeSource);
  const res = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => n.target.join(" ") + " :: " + (n.failureSummary || "").replace(/\s+/g, " ")).slice(0, 5),
    }));
  });
  return res;
}

export function seriousOnly(violations) {
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/**
 * One view's checks: the data-api walk (at least one interactive element unless
 * `interactive` is false), axe with no serious or critical violations in light and in
 * dark, and screenshots of each (`before()` runs before each, e.g. to scroll).
 */
export async function checkView(page, ops, name, { interactive = true, before = async () => {} } = {}) {
  const els = await walkDataApi(page, ops);
  if (interactive) assert.ok(els.length > 0, `${name}: no interactive elements found`);
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    const v = seriousOnly(await axe(page));
    assert.deepEqual(v, [], `${name} (${scheme}): axe violations:\n${JSON.stringify(v, null, 2)}`);
    await before();
    await screenshots(page, `${name}-${scheme}`);
  }
  await page.emulateMedia({ colorScheme: "light" });
}

/** Screenshots of the page at 360 px and 1280 px wide, saved as artifacts. */
export async function screenshots(page, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  const before = page.viewportSize();
  const files = [];
  for (const [w, h] of [
    [360, 740],
    [1280, 800],
  ]) {
    await page.setViewportSize({ width: w, height: h });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const file = join(ARTIFACTS, `${name}-${w}.png`);
    await page.screenshot({ path: file });
    files.push(file);
  }
  if (before) await page.setViewportSize(before);
  return files;
}

/** Text of the message elements of the chat log, as [role, text] pairs. */
export async function messages(page) {
  return page.$$eval('#log [data-testid="message"]', (els) =>
    els.map((e) => [e.dataset.role, e.querySelector(".msg-body").textContent.trim(), e.dataset.streaming || ""]),
  );
}

export async function login(page, d) {
  const url = await loginUrl(d);
  await page.goto(url);
  await page.waitForSelector('body[data-view="list"], body[data-view="chat"]');
  await page.waitForSelector('#conn[data-state="connected"]');
}

/** Starts a session through the UI's form and waits for its chat view. */
export async function startSessionUI(page, workdir) {
  await page.click('[data-testid="new-session"]');
  await page.waitForSelector('body[data-view="start"]');
  await page.fill('[data-testid="start-workdir"]', workdir);
  await page.waitForSelector('[data-testid="start-engine"] option[value="echo"]', { state: "attached" });
  await page.selectOption('[data-testid="start-engine"]', "echo");
  await page.click('[data-testid="start-submit"]');
  await page.waitForSelector('body[data-view="chat"]');
  await page.waitForSelector('#chat-state[data-state="idle"]');
  return page.$eval("#view-chat", (e) => e.dataset.sessionId);
}

/** Types a message and sends it with Enter. */
export async function sendUI(page, text) {
  await page.fill('[data-testid="composer-input"]', text);
  await page.press('[data-testid="composer-input"]', "Enter");
}

/** Waits for an assistant message with exactly `text`, finished streaming. */
export async function waitAssistant(page, text, timeout = 10000) {
  await page.waitForFunction(
    (t) =>
      Array.from(document.querySelectorAll('#log [data-testid="message"][data-role="assistant"]')).some(
        (e) => e.dataset.streaming !== "true" && e.querySelector(".msg-body").textContent.trim() === t,
      ),
    text,
    { timeout },
  );
}

// ---------------------------------------------------------------------------
// Git

/** Runs git in `dir`, resolving to its trimmed stdout (rejecting on a non-zero exit). */
export function git(dir, ...args) {
  return new Promise((res, rej) => {
    execFile("git", ["-C", dir, ...args], { env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } }, (err, stdout, stderr) => {
      if (err) return rej(new Error(`git ${args.join(" ")} in ${dir}: ${stderr || err.message}`));
      res(stdout.trim());
    });
  });
}

/**
 * A repository with one commit on `main` (README.md) and its own identity, plus
 * `files` ({path: text}) committed in a second commit when given.
 */
export async function gitRepo(files = {}) {
  const repo = await realpath(await tempDir("r1-web-repo-"));
  await git(repo, "init", "-q", "-b", "main");
  await git(repo, "config", "user.name", "Test");
  await git(repo, "config", "user.email", "test@example.com");
  await writeFile(join(repo, "README.md"), "one\ntwo\nthree\n");
  await git(repo, "add", "README.md");
  await git(repo, "commit", "-q", "-m", "first");
  if (Object.keys(files).length) {
    for (const [p, text] of Object.entries(files)) {
      await mkdir(dirname(join(repo, p)), { recursive: true });
      await writeFile(join(repo, p), text);
    }
    await git(repo, "add", ".");
    await git(repo, "commit", "-q", "-m", "setup");
  }
  return repo;
}
