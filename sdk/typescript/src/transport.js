// HTTP/1.1 to the daemon over its unix socket or loopback TCP, one connection per
// request (like the Rust client: a call makes one, a follower holds one open).

import http from 'node:http';

import { checkSocket, euid, tcpListenerOwnedBy } from './discovery.js';
import { R1Error, unreachable, untrusted } from './errors.js';

/**
 * Where requests go.
 * @typedef {{ kind: 'unix', path: string } | { kind: 'tcp', host: string, port: number }} Target
 */

/**
 * The target of a registration's `url` (`http://127.0.0.1:PORT`).
 * @param {string} url
 * @returns {Target}
 */
export function tcpTarget(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    u = null;
  }
  if (!u || u.protocol !== 'http:' || !u.port) {
    throw new R1Error('internal', `bad url in daemon.json: ${url}`, { reason: 'protocol' });
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (host !== '127.0.0.1' && host !== '::1') {
    throw untrusted(`refusing ${url}: r1 listens on loopback only`);
  }
  return { kind: 'tcp', host, port: Number(u.port) };
}

/**
 * Checks that the target belongs to the user before anything (the token) is sent.
 * @param {Target} target
 */
export function checkTarget(target) {
  if (target.kind === 'unix') {
    checkSocket(target.path);
  } else if (!tcpListenerOwnedBy(target.port, euid())) {
    throw untrusted(`the listener on ${target.host}:${target.port} does not belong to you; not sending the token to it`);
  }
}

/**
 * Sends one request and resolves with the response once its head arrived (the body is
 * the caller's to read). Failures to connect are `unreachable` errors with
 * `connectFailed` set: nothing reached the daemon, so the request may be sent again.
 * @param {Target} target
 * @param {{ method: string, path: string, headers?: Record<string, string>, body?: string,
 *   timeoutMs: number, signal?: AbortSignal }} req `timeoutMs` bounds the wait for the head.
 * @returns {Promise<http.IncomingMessage>}
 */
export function send(target, req) {
  return new Promise((resolve, reject) => {
    /** @type {Record<string, string>} */
    const headers = { ...req.headers };
    if (req.body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(req.body));
    }
    /** @type {http.RequestOptions} */
    const base = { method: req.method, path: req.path, headers, agent: false };
    const opts =
      target.kind === 'unix'
        ? { ...base, socketPath: target.path, headers: { ...headers, host: 'localhost' } }
        : { ...base, host: target.host, port: target.port };
    let connected = false;
    let settled = false;
    const r = http.request(opts, (res) => {
      settled = true;
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      resolve(res);
    });
    const where = target.kind === 'unix' ? target.path : `${target.host}:${target.port}`;
    const timer = setTimeout(() => {
      r.destroy(new R1Error('timeout', `no answer from the r1 daemon within ${req.timeoutMs} ms`, { reason: 'unreachable' }));
    }, req.timeoutMs);
    const onAbort = () => r.destroy(new R1Error('timeout', 'the request was aborted', { reason: 'unreachable', cause: req.signal?.reason }));
    if (req.signal?.aborted) onAbort();
    else req.signal?.addEventListener('abort', onAbort, { once: true });
    r.on('socket', (s) => s.once('connect', () => (connected = true)));
    r.on('error', (e) => {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      if (settled) return;
      settled = true;
      if (e instanceof R1Error) return reject(e);
      const err = unreachable(connected ? `request to ${where} failed: ${e.message}` : `cannot connect to ${where}: ${e.message}`, e);
      /** @type {any} */ (err).connectFailed = !connected;
      reject(err);
    });
    if (req.body !== undefined) r.write(req.body);
    r.end();
  });
}

/**
 * The whole body of a response as text, within `timeoutMs`.
 * @param {http.IncomingMessage} res
 * @param {number} timeoutMs
 * @returns {Promise<string>}
 */
export function readBody(res, timeoutMs) {
  return new Promise((resolve, reject) => {
    const chunks = /** @type {Buffer[]} */ ([]);
    const timer = setTimeout(() => {
      res.destroy();
      reject(new R1Error('timeout', `the daemon's answer did not arrive within ${timeoutMs} ms`, { reason: 'unreachable' }));
    }, timeoutMs);
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    res.on('error', (e) => {
      clearTimeout(timer);
      reject(unreachable(`reading the answer failed: ${e.message}`, e));
    });
  });
}
