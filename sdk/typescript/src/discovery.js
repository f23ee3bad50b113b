// Discovery: where the state directory is, and reading the registration (daemon.json)
// and the token only when they are private to the user, with the same checks as the
// Rust client (crates/r1-client/src/discovery.rs).

import { lstatSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import process from 'node:process';

import { unreachable, untrusted } from './errors.js';

/**
 * An `unreachable` error for a listener that is not there, marked `connectFailed`:
 * nothing was sent, so the caller may look for the daemon again and retry.
 * @param {string} message
 */
function notThere(message) {
  const e = unreachable(message);
  /** @type {any} */ (e).connectFailed = true;
  return e;
}

/** `$R1_HOME`, else `~/.r1`. */
export function defaultHome() {
  const h = process.env.R1_HOME;
  if (h) return h;
  return join(homedir() || '/', '.r1');
}

/** The effective uid (the owner every state file must have). */
export function euid() {
  // process.geteuid exists on every POSIX platform; r1 itself runs only there.
  return /** @type {() => number} */ (process.geteuid)();
}

/**
 * lstat that answers null for a missing path and throws `untrusted` for anything else.
 * @param {string} path
 */
function lstatOrNull(path) {
  try {
    return lstatSync(path);
  } catch (e) {
    if (/** @type {NodeJS.ErrnoException} */ (e).code === 'ENOENT') return null;
    throw untrusted(`cannot stat ${path}: ${/** @type {Error} */ (e).message}`);
  }
}

/**
 * Reads a file only when it is a regular file (not a symlink) owned by the user with
 * no group or other permission bits; null when it does not exist.
 * @param {string} path
 * @returns {Buffer | null}
 */
export function readPrivate(path) {
  const st = lstatOrNull(path);
  if (!st) return null;
  const mode = st.mode & 0o777;
  if (!st.isFile() || st.uid !== euid() || (st.mode & 0o077) !== 0) {
    const what = st.isSymbolicLink() ? 'a symlink' : st.isFile() ? `mode ${mode.toString(8)}, uid ${st.uid}` : 'not a regular file';
    throw untrusted(
      `refusing ${path}: it must be a regular file owned by uid ${euid()} with mode 0600 (it is ${what}); remove it and start the daemon again`,
    );
  }
  try {
    return readFileSync(path);
  } catch (e) {
    if (/** @type {NodeJS.ErrnoException} */ (e).code === 'ENOENT') return null;
    throw untrusted(`cannot read ${path}: ${/** @type {Error} */ (e).message}`);
  }
}

/**
 * Refuses a state directory that is a symlink, someone else's, or open to others. A
 * missing one is fine (connect-or-spawn creates it).
 * @param {string} home
 */
export function checkHome(home) {
  const st = lstatOrNull(home);
  if (!st) return;
  if (st.isSymbolicLink()) throw untrusted(`state dir ${home} is a symlink; point R1_HOME at the real directory`);
  if (!st.isDirectory()) throw untrusted(`state dir ${home} is not a directory`);
  if (st.uid !== euid()) {
    throw untrusted(`state dir ${home} is owned by uid ${st.uid}, not you (uid ${euid()}); use a directory you own`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw untrusted(`state dir ${home} has mode ${(st.mode & 0o777).toString(8)}; fix it with \`chmod 700 ${home}\``);
  }
}

/**
 * The registration in `home/daemon.json`, or null when there is none (or it is not
 * JSON: a daemon may be writing it).
 * @param {string} home
 * @returns {import('./index.js').Registration | null}
 */
export function discover(home) {
  const bytes = readPrivate(join(home, 'daemon.json'));
  if (!bytes) return null;
  try {
    const reg = JSON.parse(bytes.toString('utf8'));
    return reg && typeof reg.sock === 'string' && typeof reg.url === 'string' ? reg : null;
  } catch {
    return null;
  }
}

/**
 * The token in `$R1_TOKEN_FILE` when set (as the `r1` CLI reads it, for a daemon
 * reached through a forwarded socket), else in `home/token`.
 * @param {string} home
 */
export function readToken(home) {
  const env = process.env.R1_TOKEN_FILE;
  const bytes = readPrivate(env ? env : join(home, 'token'));
  if (!bytes) {
    if (env) throw unreachable(`no token at ${env} (R1_TOKEN_FILE)`);
    throw unreachable(`no token in ${home}; start the daemon with \`r1 serve\``);
  }
  return bytes.toString('utf8').trim();
}

/**
 * Checks a unix socket before the token is sent to it. Node cannot read the peer's
 * credentials (SO_PEERCRED) as the Rust client does, so it checks the socket file
 * instead: a socket (not a symlink) owned by the user, in a directory that only the
 * user (or root, with the sticky bit, as /tmp) can change, so no one else can have
 * put it there or swapped it.
 * @param {string} path
 */
export function checkSocket(path) {
  const st = lstatOrNull(path);
  if (!st) throw notThere(`no socket at ${path}`);
  if (st.isSymbolicLink()) throw untrusted(`refusing ${path}: it is a symlink; point at the socket itself`);
  if (!st.isSocket()) throw untrusted(`refusing ${path}: it is not a unix socket`);
  if (st.uid !== euid()) {
    throw untrusted(`the socket ${path} belongs to uid ${st.uid}, not you (uid ${euid()}); not sending the token to it`);
  }
  const dir = dirname(path);
  const d = lstatOrNull(dir);
  if (!d) throw unreachable(`no directory ${dir}`);
  const sticky = (d.mode & 0o1000) !== 0;
  const othersWrite = (d.mode & 0o022) !== 0;
  if ((d.uid !== euid() && d.uid !== 0) || (othersWrite && !sticky)) {
    throw untrusted(`refusing ${path}: its directory ${dir} can be changed by other users`);
  }
}

/**
 * On Linux, whether the loopback TCP listener on `port` belongs to `uid`, read from
 * /proc/net/tcp{,6}: the token goes only to a port the user's own process listens on
 * (another user may have taken a stale port over). As in the Rust client, a listener
 * that cannot be checked (no such port, no /proc) is not sent anything.
 * @param {number} port
 * @param {number} uid
 */
export function tcpListenerOwnedBy(port, uid) {
  let found = false;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 8 || cols[3] !== '0A') continue; // 0A: LISTEN
      const p = cols[1].split(':').pop();
      if (p === undefined || parseInt(p, 16) !== port) continue;
      found = true;
      if (Number(cols[7]) !== uid) return false;
    }
  }
  if (!found) throw notThere(`nothing listens on port ${port}`);
  return true;
}
