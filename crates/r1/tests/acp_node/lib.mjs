// Shared helpers of the ACP suite: a real daemon on a private R1_HOME (echo engine),
// `r1 acp` as a child driven by the TypeScript ACP client, and small waits.

import { spawn, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtemp, mkdir, chmod, readFile, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

import * as acp from "@agentclientprotocol/sdk";
import Ajv2020 from "ajv/dist/2020.js";

const here = dirname(fileURLToPath(import.meta.url));

export const REPO = resolve(here, "..", "..", "..", "..");
export const R1_BIN = process.env.R1_BIN || join(REPO, "target", "debug", "r1");

// The protocol's own JSON Schema (draft 2020-12), shipped in the SDK package. The SDK
// parses what it receives leniently (an unknown enum value falls back to a default), so
// every message r1 sends is also checked here, strictly, against the schema.
const require = createRequire(import.meta.url);
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false, logger: false });
ajv.addSchema(require("@agentclientprotocol/sdk/schema/v1/schema.json"), "acp");

/** The schema errors of `value` as an ACP `def` (e.g. `SessionNotification`), or null. */
export function schemaErrors(def, value) {
  const check = ajv.getSchema(`acp#/$defs/${def}`);
  if (!check) throw new Error(`no $defs/${def} in the ACP schema`);
  return check(value) ? null : { def, value, errors: check.errors };
}

/** The child environment: no provider keys, so the daemon's default engine is `echo`. */
function cleanEnv(home) {
  const env = { ...process.env, R1_HOME: home, R1_LOG: process.env.R1_LOG || "warn" };
  for (const k of Object.keys(env)) {
    if (k.startsWith("OPENAI_") || k.startsWith("ANTHROPIC_")) delete env[k];
  }
  return env;
}

/** A fresh 0700 state directory and a scratch workdir under one temp base. */
export async function freshHome() {
  const base = await mkdtemp(join(tmpdir(), "r1-acp-node-"));
  await chmod(base, 0o700);
  const home = join(base, "h");
  const workdir = join(base, "w");
  await mkdir(home, { mode: 0o700 });
  await chmod(home, 0o700);
  await mkdir(workdir);
  await writeFile(join(home, "daemon.toml"), 'default_engine = "echo"\n', { mode: 0o600 });
  return { base, home, workdir, env: cleanEnv(home) };
}

/**
 * Starts `r1 serve` on a fresh R1_HOME and waits for its registration. Returns the
 * home, URL, token, a scratch workdir, `ctl(args)` and `cleanup()`.
 */
export async function startDaemon() {
  const h = await freshHome();
  const child = spawn(R1_BIN, ["serve"], { env: h.env, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (b) => (log += b));
  child.stderr.on("data", (b) => (log += b));
  let exited = false;
  const done = new Promise((res) => child.on("exit", () => res((exited = true))));
  // 15 s: a cold debug binary on a loaded two-core CI box takes a few seconds to bind.
  const deadline = Date.now() + 15000;
  let info;
  while (!info) {
    if (exited) throw new Error(`r1 serve exited early:\n${log}`);
    try {
      const j = JSON.parse(await readFile(join(h.home, "daemon.json"), "utf8"));
      if (j.pid === child.pid) info = j;
    } catch {
      // not written yet
    }
    if (!info && Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`r1 serve did not register within 15 s:\n${log}`);
    }
    if (!info) await sleep(50);
  }
  const token = (await readFile(join(h.home, "token"), "utf8")).trim();
  return {
    ...h,
    url: info.url.replace(/\/$/, ""),
    token,
    log: () => log,
    /** Runs `r1 ctl ARGS --json --no-spawn` against this daemon and parses its output. */
    ctl(args) {
      const out = execFileSync(R1_BIN, ["ctl", ...args, "--json", "--no-spawn"], {
        env: h.env,
        encoding: "utf8",
        timeout: 20000,
      });
      return JSON.parse(out);
    },
    async cleanup() {
      if (!exited) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5000);
        await done;
        clearTimeout(t);
      }
      await rm(h.base, { recursive: true, force: true });
    },
  };
}

/**
 * Spawns `r1 acp` with `env` and connects the ACP client to it. Every `session/update`
 * lands in `updates` (in arrival order, with its session id); every permission request
 * in `permissions`, answered by `answerPermission(params)` (an option id, or
 * "cancelled"). Whatever does not match the protocol's schema lands in `invalid`.
 * `call(method, params, responseDef)` sends a request and checks its answer too.
 * Returns `{agent, call, updates, permissions, invalid, stderr(), close()}`.
 */
export function startAcp(env, answerPermission) {
  const child = spawn(R1_BIN, ["acp"], { env, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (b) => (stderr += b));
  const exited = new Promise((res) => child.on("exit", (code, signal) => res({ code, signal })));
  const updates = [];
  const permissions = [];
  const invalid = [];
  const check = (def, value) => {
    const e = schemaErrors(def, value);
    if (e) invalid.push(e);
  };
  const app = acp
    .client({ name: "r1-acp-node-tests" })
    .onNotification(acp.methods.client.session.update, ({ params }) => {
      check("SessionNotification", params);
      updates.push(params);
    })
    .onRequest(acp.methods.client.session.requestPermission, ({ params }) => {
      check("RequestPermissionRequest", params);
      permissions.push(params);
      const choice = answerPermission(params);
      return choice === "cancelled"
        ? { outcome: { outcome: "cancelled" } }
        : { outcome: { outcome: "selected", optionId: choice } };
    });
  const stream = acp.ndJsonStream(Writable.toWeb(child.stdin), Readable.toWeb(child.stdout));
  const conn = app.connect(stream);
  return {
    agent: conn.agent,
    async call(method, params, responseDef) {
      const r = await conn.agent.request(method, params);
      check(responseDef, r ?? {});
      return r;
    },
    updates,
    permissions,
    invalid,
    stderr: () => stderr,
    exited,
    async close() {
      conn.close();
      child.stdin.end();
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Waits until `pred()` gives a truthy value and returns it. */
export async function until(pred, { timeout = 20000, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Rejects when `promise` takes longer than `ms`. */
export function within(ms, promise, what) {
  let t;
  const timeout = new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}
