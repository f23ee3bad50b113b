// The client: connect (discovery, probe, protocol gate), connect-or-spawn, typed calls
// for every catalog operation, and follow().

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';

import { checkHome, defaultHome, discover, readToken } from './discovery.js';
import { R1Error, fromResponse, protocolError, unreachable } from './errors.js';
import { FollowStream } from './follow.js';
import { OPERATIONS, PROTOCOL, operationGroups } from './ops.js';
import { checkTarget, readBody, send, tcpTarget } from './transport.js';

/** How long one call waits for its answer unless told otherwise. */
const REQUEST_TIMEOUT_MS = 30_000;
/** How long one probe (the handshake) may take: a live daemon answers in milliseconds. */
const PROBE_TIMEOUT_MS = 1_000;
/** How long connect-or-spawn waits for a started daemon to register and answer. */
const SPAWN_TIMEOUT_MS = 10_000;
/** How often a wait for a registration polls daemon.json. */
const POLL_MS = 20;

/**
 * @typedef {import('./transport.js').Target} Target
 * @typedef {import('./index.js').ConnectOptions} ConnectOptions
 * @typedef {import('./index.js').Registration} Registration
 * @typedef {import('./index.js').Handshake} Handshake
 */

/**
 * Percent-encodes a path segment or query part (RFC 3986 unreserved kept).
 * @param {string} s
 */
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * The daemon's handshake over `target`, without a token, within `timeoutMs`, and the
 * protocol gate: a daemon that speaks another protocol is `schema_version`.
 * @param {Target} target
 * @param {number} [timeoutMs]
 * @returns {Promise<Handshake>}
 */
export async function probe(target, timeoutMs = PROBE_TIMEOUT_MS) {
  checkTarget(target);
  const res = await send(target, { method: 'GET', path: '/v1/handshake', timeoutMs });
  const text = await readBody(res, timeoutMs);
  if (res.statusCode !== 200) throw fromResponse(res.statusCode ?? 0, text);
  let hs;
  try {
    hs = JSON.parse(text);
  } catch {
    throw protocolError('the handshake is not JSON');
  }
  if (hs.protocol !== PROTOCOL) {
    throw new R1Error(
      'schema_version',
      `the r1 daemon (pid ${hs.pid}, version ${hs.version}) speaks ${hs.protocol}, but this client speaks ${PROTOCOL}; stop it with \`kill ${hs.pid}\` (or upgrade this client) and try again`,
      { reason: 'incompatible' },
    );
  }
  return hs;
}

/**
 * The options with their defaults filled in.
 * @param {ConnectOptions} [opts]
 */
function resolve(opts = {}) {
  const sock = opts.sock ?? (process.env.R1_SOCK || undefined);
  return {
    home: opts.home ?? defaultHome(),
    sock,
    tcp: Boolean(opts.tcp),
    spawn: opts.spawn !== false && sock === undefined,
    r1Bin: opts.r1Bin ?? (process.env.R1_BIN || 'r1'),
    spawnTimeoutMs: opts.spawnTimeoutMs ?? SPAWN_TIMEOUT_MS,
    probeTimeoutMs: opts.probeTimeoutMs ?? PROBE_TIMEOUT_MS,
    requestTimeoutMs: opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
  };
}

/** @typedef {ReturnType<typeof resolve>} Resolved */

/**
 * Where the daemon of `o` is now: the pinned socket, or daemon.json read afresh and
 * probed. Null when nothing answers (no registration, or a stale one); an untrusted
 * file or an incompatible daemon is an error.
 * @param {Resolved} o
 * @returns {Promise<{ target: Target, registration: Registration | null } | null>}
 */
async function locate(o) {
  if (o.sock !== undefined) {
    /** @type {Target} */
    const target = { kind: 'unix', path: o.sock };
    try {
      await probe(target, o.probeTimeoutMs);
    } catch (e) {
      if (e instanceof R1Error && e.reason !== 'unreachable') throw e;
      return null;
    }
    return { target, registration: null };
  }
  const reg = discover(o.home);
  if (!reg) return null;
  try {
    await probe({ kind: 'unix', path: reg.sock }, o.probeTimeoutMs);
  } catch (e) {
    if (e instanceof R1Error && (e.reason === 'incompatible' || e.reason === 'untrusted')) throw e;
    return null;
  }
  return { target: o.tcp ? tcpTarget(reg.url) : { kind: 'unix', path: reg.sock }, registration: reg };
}

/**
 * Connects to the running daemon of `opts.home` (or the socket `opts.sock` /
 * `$R1_SOCK`) without starting one.
 * @param {ConnectOptions} [opts]
 * @returns {Promise<R1Client>}
 */
export async function connect(opts) {
  const o = resolve(opts);
  checkHome(o.home);
  const found = await locate(o);
  if (!found) {
    throw unreachable(
      o.sock !== undefined
        ? `nothing answers on ${o.sock}`
        : `no r1 daemon is running for ${o.home}; start one with \`r1 serve\``,
    );
  }
  return new R1Client(o, found.target, found.registration);
}

/**
 * Connects to the daemon of `opts.home`, starting one when none answers. The start is
 * `r1 ctl health`: the Rust client's own connect-or-spawn, which serialises racing
 * clients on `spawn.lock` (an flock Node cannot take) and starts `r1 serve` detached
 * in its own session with null stdio. Then this waits, up to `spawnTimeoutMs`, for
 * the registration to appear and answer the probe. With a pinned socket there is
 * nothing to start: that daemon lives elsewhere.
 * @param {ConnectOptions} [opts]
 * @returns {Promise<R1Client>}
 */
export async function connectOrSpawn(opts) {
  const o = resolve(opts);
  checkHome(o.home);
  const found = await locate(o);
  if (found) return new R1Client(o, found.target, found.registration);
  if (!o.spawn) return connect(opts);
  const deadline = Date.now() + o.spawnTimeoutMs;
  await startDaemon(o, o.spawnTimeoutMs);
  for (;;) {
    checkHome(o.home);
    const f = await locate(o);
    if (f) return new R1Client(o, f.target, f.registration);
    if (Date.now() >= deadline) {
      throw unreachable(
        `started \`${o.r1Bin} serve\` but it did not answer within ${o.spawnTimeoutMs} ms; see ${join(o.home, 'logs')}`,
      );
    }
    await sleep(POLL_MS);
  }
}

/**
 * Runs `r1 ctl health` for `o.home`, which starts the daemon when none runs.
 * @param {Resolved} o
 * @param {number} timeoutMs
 * @returns {Promise<void>}
 */
function startDaemon(o, timeoutMs) {
  return new Promise((resolvePromise, reject) => {
    execFile(
      o.r1Bin,
      ['ctl', 'health', '--json'],
      {
        env: { ...process.env, R1_HOME: o.home, R1_BIN: o.r1Bin },
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 1 << 20,
      },
      (err, _stdout, stderr) => {
        if (!err) return resolvePromise();
        const e = /** @type {NodeJS.ErrnoException & { killed?: boolean }} */ (err);
        const why =
          e.code === 'ENOENT'
            ? `there is no r1 executable at ${o.r1Bin} (set R1_BIN or the r1Bin option)`
            : e.killed
              ? `\`${o.r1Bin} ctl health\` did not finish within ${timeoutMs} ms`
              : `\`${o.r1Bin} ctl health\` failed: ${String(stderr).trim() || e.message}`;
        reject(unreachable(why, err));
      },
    );
  });
}

/**
 * A client of one daemon. Every catalog operation is a method of its group
 * (`client.session.send({session_id, text})`), generated from docs/openapi.json.
 */
export class R1Client {
  /** @type {Resolved} */
  #o;
  /** @type {Target} */
  #target;
  /** @type {Registration | null} */
  #registration;
  /** @type {string | null} */
  #token = null;

  /**
   * Use {@link connect} or {@link connectOrSpawn} rather than this.
   * @param {Resolved} o
   * @param {Target} target
   * @param {Registration | null} registration
   */
  constructor(o, target, registration) {
    this.#o = o;
    this.#target = target;
    this.#registration = registration;
    Object.assign(this, operationGroups((id, params, options) => this.call(id, /** @type {Record<string, unknown>} */ (params), options)));
  }

  /** The state directory (where the token is read from). */
  get home() {
    return this.#o.home;
  }

  /** `unix` or `tcp`. */
  get transport() {
    return this.#target.kind;
  }

  /** The socket path, or `host:port` for TCP. */
  get address() {
    const t = this.#target;
    return t.kind === 'unix' ? t.path : `${t.host}:${t.port}`;
  }

  /** The registration (daemon.json) this client is connected by; null for a pinned socket. */
  get registration() {
    return this.#registration;
  }

  /**
   * @param {boolean} reload
   */
  #tokenFor(reload) {
    if (reload || this.#token === null) this.#token = readToken(this.#o.home);
    return this.#token;
  }

  /**
   * Re-reads daemon.json and probes the daemon it names, moving this client to it (a
   * restarted daemon may have another socket or port). A pinned socket is probed again.
   * Throws `crash_recovery` when nothing answers.
   */
  async refresh() {
    checkHome(this.#o.home);
    const found = await locate(this.#o);
    if (!found) throw unreachable(`no r1 daemon answers for ${this.#o.sock ?? this.#o.home}`);
    this.#target = found.target;
    this.#registration = found.registration;
  }

  /**
   * Sends one request with the token and resolves with the response head. A 401
   * re-reads the token once (it may have been rotated); a failed connect re-reads
   * daemon.json once and tries again when the daemon moved.
   * @param {{ method: string, path: string, body?: string, headers?: Record<string, string>,
   *   timeoutMs?: number, signal?: AbortSignal }} req
   * @returns {Promise<import('node:http').IncomingMessage>}
   */
  async open(req) {
    const timeoutMs = req.timeoutMs ?? this.#o.requestTimeoutMs;
    let reload = false;
    let moved = false;
    for (;;) {
      const token = this.#tokenFor(reload);
      let res;
      try {
        checkTarget(this.#target);
        res = await send(this.#target, {
          ...req,
          timeoutMs,
          headers: { ...req.headers, authorization: `Bearer ${token}` },
        });
      } catch (e) {
        if (!moved && /** @type {any} */ (e).connectFailed && this.#o.sock === undefined) {
          moved = true;
          const before = this.address;
          try {
            await this.refresh();
          } catch {
            throw e;
          }
          if (this.address !== before) continue;
        }
        throw e;
      }
      if (res.statusCode === 401 && !reload) {
        res.resume();
        reload = true;
        continue;
      }
      return res;
    }
  }

  /**
   * Sends a request and decodes its JSON answer, or throws the error envelope as an
   * {@link R1Error}.
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @param {{ timeoutMs?: number, signal?: AbortSignal, headers?: Record<string, string> }} [options]
   * @returns {Promise<any>}
   */
  async request(method, path, body, options = {}) {
    const timeoutMs = options.timeoutMs ?? this.#o.requestTimeoutMs;
    const started = Date.now();
    const res = await this.open({
      method,
      path,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: options.headers,
      timeoutMs,
      signal: options.signal,
    });
    const text = await readBody(res, Math.max(1, timeoutMs - (Date.now() - started)));
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) throw fromResponse(status, text);
    try {
      return JSON.parse(text);
    } catch {
      throw protocolError(`the answer (${status}) is not JSON`);
    }
  }

  /**
   * Calls the catalog operation `id` with `params`: path fields fill its path, the rest
   * go as the query string (GET, DELETE) or the JSON body (POST). A call with
   * `wait_ms` (a long poll) waits that much longer for its answer.
   * @param {string} id
   * @param {Record<string, unknown>} [params]
   * @param {import('./ops.js').CallOptions} [options]
   */
  async call(id, params = {}, options = {}) {
    const op = /** @type {Record<string, import('./ops.js').OperationInfo>} */ (OPERATIONS)[id];
    if (!op) throw new R1Error('validation', `no operation ${id}`, { reason: 'protocol' });
    if (params === null || typeof params !== 'object' || Array.isArray(params)) {
      throw new R1Error('validation', `the params of ${id} must be an object`, { reason: 'protocol' });
    }
    const fields = { ...params };
    let path = op.path;
    for (const f of op.pathFields) {
      const v = fields[f];
      if (typeof v !== 'string' || v === '') {
        throw new R1Error('validation', `${id} needs \`${f}\` (a string)`, { reason: 'protocol' });
      }
      path = path.replace(`{${f}}`, enc(v));
      delete fields[f];
    }
    let timeoutMs = options.timeoutMs ?? this.#o.requestTimeoutMs;
    if (typeof fields.wait_ms === 'number' && options.timeoutMs === undefined) timeoutMs += fields.wait_ms;
    const o = { timeoutMs, signal: options.signal };
    if (op.method === 'POST') return this.request('POST', path, fields, o);
    const query = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => {
        const text = typeof v === 'string' ? v : Array.isArray(v) && v.every((x) => typeof x === 'string') ? v.join(',') : JSON.stringify(v);
        return `${enc(k)}=${enc(text)}`;
      });
    return this.request(op.method, query.length ? `${path}?${query.join('&')}` : path, undefined, o);
  }

  /**
   * The records of a session from `sinceSeq` (inclusive) on, live, as an async
   * iterator over its event stream that survives disconnects and daemon restarts.
   * @param {string} sessionId
   * @param {number} [sinceSeq]
   * @param {import('./index.js').FollowOptions} [options]
   * @returns {FollowStream}
   */
  follow(sessionId, sinceSeq = 1, options = {}) {
    return new FollowStream(this, sessionId, sinceSeq, options);
  }
}
