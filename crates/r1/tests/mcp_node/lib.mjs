// Shared helpers of the Node MCP suite: a real daemon on a private R1_HOME, the
// catalog as `r1 mcp serve --print-tools` prints it, and small waits.

import { spawn, execFileSync } from "node:child_process";
import { mkdtemp, mkdir, chmod, readFile, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

const here = dirname(fileURLToPath(import.meta.url));

export const HERE = here;
export const REPO = resolve(here, "..", "..", "..", "..");
export const R1_BIN = process.env.R1_BIN || join(REPO, "target", "debug", "r1");

/** The tools `r1 mcp serve --caps <caps>` offers, from `--print-tools` (no daemon). */
export function printedTools(caps) {
  const out = execFileSync(R1_BIN, ["mcp", "serve", "--caps", caps, "--print-tools"], {
    encoding: "utf8",
    env: { ...process.env, R1_HOME: "/nonexistent-r1-home" },
  });
  return JSON.parse(out).tools;
}

/**
 * Starts `r1 serve` on a fresh 0700 R1_HOME whose daemon.toml gives `/mcp` write caps,
 * and waits for its registration (`logLevel`: its R1_LOG, default warn; `config`: more
 * daemon.toml). Returns the home, URL, token, a scratch workdir and `cleanup()`.
 */
export async function startDaemon({ logLevel = process.env.R1_LOG || "warn", config = "" } = {}) {
  const base = await mkdtemp(join(tmpdir(), "r1-mcp-node-"));
  await chmod(base, 0o700);
  const home = join(base, "h");
  const workdir = join(base, "w");
  await mkdir(home, { mode: 0o700 });
  await chmod(home, 0o700);
  await mkdir(workdir);
  await writeFile(join(home, "daemon.toml"), '[mcp]\ncaps = "write"\n' + config, { mode: 0o600 });

  const child = spawn(R1_BIN, ["serve"], {
    env: { ...process.env, R1_HOME: home, R1_LOG: logLevel },
    stdio: ["ignore", "pipe", "pipe"],
  });
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
      const j = JSON.parse(await readFile(join(home, "daemon.json"), "utf8"));
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
  const token = (await readFile(join(home, "token"), "utf8")).trim();
  return {
    home,
    workdir,
    url: info.url.replace(/\/$/, ""),
    token,
    log: () => log,
    async cleanup() {
      if (!exited) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5000);
        await done;
        clearTimeout(t);
      }
      await rm(base, { recursive: true, force: true });
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
