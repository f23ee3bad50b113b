// Test support: a fresh state directory per test file, the real daemon started and
// stopped by pid, and polling with a deadline instead of sleeps.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { discover, probe } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const REPO = resolve(here, '..', '..', '..');
/** The r1 binary under test. */
export const R1_BIN = process.env.R1_BIN || join(REPO, 'target', 'debug', 'r1');

// The tests say where the daemon is; nothing from the caller's environment may.
delete process.env.R1_SOCK;
delete process.env.R1_HOME;

/**
 * A fresh directory for one test file (mode 0700, as mkdtemp makes it), with `home`
 * inside it (0700 too), removed by `cleanup()`.
 */
export function tempRoot(name) {
  const root = mkdtempSync(join(tmpdir(), `r1-sdkts-${name}-`));
  const home = join(root, 'home');
  mkdirSync(home, { mode: 0o700 });
  return { root, home, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/**
 * Polls `check` until it returns a truthy value, and returns it; fails after
 * `timeoutMs` naming `what`.
 * @template T
 * @param {() => T | Promise<T>} check
 * @param {{ what: string, timeoutMs?: number, intervalMs?: number }} o
 * @returns {Promise<T>}
 */
export async function waitFor(check, { what, timeoutMs = 10_000, intervalMs = 20 }) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/** Whether process `pid` exists. */
export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts `r1 serve` in the foreground for `home` and waits until it registered and
 * answers the handshake. `stop()` sends SIGTERM (a graceful shutdown) and waits for
 * the exit.
 * @param {string} home
 * @param {string[]} [args]
 */
export async function startDaemon(home, args = []) {
  const child = spawn(R1_BIN, ['serve', ...args], {
    env: { ...process.env, R1_HOME: home, R1_LOG: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  let gone = false;
  exited.then(() => (gone = true));
  const reg = await waitFor(
    async () => {
      if (gone) throw new Error(`r1 serve exited: ${stderr}`);
      const r = discover(home);
      if (!r || r.pid !== child.pid) return null;
      await probe({ kind: 'unix', path: r.sock });
      return r;
    },
    { what: `r1 serve (${R1_BIN}) to register in ${home}`, timeoutMs: 15_000 },
  ).catch((e) => {
    child.kill('SIGKILL');
    throw new Error(`${e.message}\n${stderr}`);
  });
  return {
    pid: child.pid,
    registration: reg,
    stderr: () => stderr,
    /** Stops it: SIGTERM (a graceful shutdown), or `SIGKILL` (a crash). */
    async stop(signal = 'SIGTERM') {
      if (!gone) child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

/**
 * Stops a daemon this test did not start as a child (one connect-or-spawn started):
 * SIGTERM by its pid from daemon.json, then wait until it is gone.
 * @param {number} pid
 */
export async function stopPid(pid) {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  try {
    await waitFor(() => !alive(pid), { what: `pid ${pid} to exit`, timeoutMs: 15_000 });
  } catch (e) {
    process.kill(pid, 'SIGKILL');
    throw e;
  }
}

/** A loopback TCP port that was free a moment ago. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (s.address());
      s.close(() => res(port));
    });
  });
}

/**
 * What `ssh -L local:remote` does: a unix socket at `local` whose every connection is
 * piped to the socket `remote`. `close()` stops it.
 */
export function forwardSocket(local, remote) {
  const conns = new Set();
  const server = net.createServer((c) => {
    const up = net.connect(remote);
    conns.add(c).add(up);
    c.pipe(up).pipe(c);
    const end = () => {
      c.destroy();
      up.destroy();
    };
    c.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  return new Promise((res, rej) => {
    server.once('error', rej);
    server.listen(local, () =>
      res({
        close: () =>
          new Promise((r) => {
            for (const c of conns) c.destroy();
            server.close(() => r(undefined));
          }),
      }),
    );
  });
}

/** The records of a session's whole journal, read through the API. */
export async function journal(client, sessionId) {
  const out = [];
  let since = 1;
  for (;;) {
    const page = await client.session.journal({ session_id: sessionId, since_seq: since });
    out.push(...page.records);
    if (page.records.length === 0 || page.next_seq === since) return out;
    since = page.next_seq;
  }
}

/** The token of `home`. */
export const tokenOf = (home) => readFileSync(join(home, 'token'), 'utf8');
