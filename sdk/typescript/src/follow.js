// follow(): a session's records as an async iterator over its SSE stream, reconnecting
// with Last-Event-ID after any disconnect, daemon restarts included, and yielding
// every seq exactly once, in order.

import { setTimeout as sleep } from 'node:timers/promises';

import { R1Error, fromResponse, protocolError, unreachable } from './errors.js';
import { readBody } from './transport.js';
import { readFrames } from './sse.js';

/** How long a follower keeps trying to reach a daemon that is gone (a restart takes a second or two). */
const RECONNECT_TIMEOUT_MS = 60_000;
/**
 * How long a stream may be silent before it is taken for dead: three of the daemon's
 * 15 s heartbeats.
 */
const IDLE_TIMEOUT_MS = 45_000;
/** The pause between reconnect attempts, doubling up to the maximum. */
const BACKOFF_MIN_MS = 50;
const BACKOFF_MAX_MS = 1_000;
/** How many times in a row a gap at the same seq is retried before it is an error. */
const GAP_RETRIES = 3;

/**
 * @typedef {import('./index.js').SessionRecord} EventRecord
 * @typedef {import('./client.js').R1Client} R1Client
 */

/**
 * The iterator `client.follow()` returns. `for await` over it; `return()` (or `break`)
 * closes the stream, also while a `next()` is waiting.
 * @implements {AsyncIterableIterator<EventRecord>}
 */
export class FollowStream {
  #ac = new AbortController();
  /** @type {AsyncGenerator<EventRecord, void, void>} */
  #gen;
  #state;

  /**
   * @param {R1Client} client
   * @param {string} sessionId
   * @param {number} sinceSeq
   * @param {import('./index.js').FollowOptions} options
   */
  constructor(client, sessionId, sinceSeq, options) {
    if (!Number.isSafeInteger(sinceSeq) || sinceSeq < 0) {
      throw new R1Error('validation', 'sinceSeq must be a non-negative integer', { reason: 'protocol' });
    }
    this.#state = { next: Math.max(1, sinceSeq), reconnects: 0 };
    this.#gen = records(client, sessionId, this.#state, {
      reconnectTimeoutMs: options.reconnectTimeoutMs ?? RECONNECT_TIMEOUT_MS,
      idleTimeoutMs: options.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
      signal: this.#ac.signal,
    });
  }

  /** The seq the next record will have. */
  get nextSeq() {
    return this.#state.next;
  }

  /** How many times the stream was opened again after the first. */
  get reconnects() {
    return this.#state.reconnects;
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /** @returns {Promise<IteratorResult<EventRecord, void>>} */
  next() {
    return this.#gen.next();
  }

  /**
   * Closes the stream; pending and later `next()` calls end.
   * @returns {Promise<IteratorResult<EventRecord, void>>}
   */
  async return() {
    this.#ac.abort();
    return this.#gen.return(undefined);
  }
}

/**
 * @param {R1Client} client
 * @param {string} id
 * @param {{ next: number, reconnects: number }} st
 * @param {{ reconnectTimeoutMs: number, idleTimeoutMs: number, signal: AbortSignal }} o
 * @returns {AsyncGenerator<EventRecord, void, void>}
 */
async function* records(client, id, st, o) {
  const path = `/v1/sessions/${encodeURIComponent(id)}/events`;
  let first = true;
  /** @type {number | null} */
  let downSince = null;
  let backoff = BACKOFF_MIN_MS;
  let gapAt = 0;
  let gaps = 0;
  const signal = o.signal;
  while (!signal.aborted) {
    if (!first) st.reconnects += 1;
    // The first request says where to start; every reconnect says what it has.
    const req = first
      ? { method: 'GET', path: `${path}?since_seq=${st.next}` }
      : { method: 'GET', path, headers: { 'last-event-id': String(st.next - 1) } };
    first = false;
    let res;
    try {
      res = await client.open({ ...req, signal, headers: { accept: 'text/event-stream', ...req.headers } });
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        const err = fromResponse(status, await readBody(res, 5_000));
        // 503 is a daemon that is still loading or recovering: wait for it.
        if (status !== 503) throw err;
        res = null;
      }
    } catch (e) {
      if (signal.aborted) return;
      if (!(e instanceof R1Error) || (e.reason !== 'unreachable' && e.code !== 'crash_recovery')) throw e;
      res = null;
    }
    if (res) {
      downSince = null;
      const before = st.next;
      let broke = false;
      try {
        for await (const frame of readFrames(res, { idleMs: o.idleTimeoutMs, signal })) {
          if (frame.event === 'error') {
            const err = streamError(frame.data);
            if (err) throw err;
            break; // Dropped as too slow: read on from the journal.
          }
          let rec;
          try {
            rec = JSON.parse(frame.data);
          } catch {
            throw protocolError(`an event of ${id} is not JSON`);
          }
          if (rec.kind === 'session.resync') {
            // The journal's head is behind what this follower has (it was repaired):
            // say so, and go on from where the daemon says it continues.
            st.next = Number(rec.data?.next_seq ?? rec.seq + 1);
            yield rec;
            continue;
          }
          if (typeof rec.seq !== 'number') throw protocolError(`an event of ${id} has no seq`);
          if (rec.seq < st.next) continue; // Already yielded.
          if (rec.seq > st.next) {
            // Never yield past a hole: read again from the first missing seq.
            gaps = gapAt === st.next ? gaps + 1 : 1;
            gapAt = st.next;
            if (gaps > GAP_RETRIES) {
              throw new R1Error('internal', `the event stream of ${id} skips from ${st.next - 1} to ${rec.seq}`, { reason: 'protocol' });
            }
            break;
          }
          st.next = rec.seq + 1;
          yield rec;
          if (rec.kind === 'session.ended') return;
        }
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof R1Error) throw e;
        // The connection broke (daemon stopped or killed, idle watchdog): reconnect.
        broke = true;
      }
      // Back off afresh only after progress, so a stream that keeps ending empty is
      // not reopened in a tight loop.
      if (st.next !== before) backoff = BACKOFF_MIN_MS;
      if (!broke && st.next === before && !signal.aborted) {
        // A stream that ended by itself with nothing new: the daemon stopping, or a
        // quarantined session, which yields its valid prefix and ends each time.
        await quarantined(client, id);
      }
    }
    if (signal.aborted) return;
    downSince ??= Date.now();
    if (Date.now() - downSince > o.reconnectTimeoutMs) {
      throw unreachable(`the event stream of ${id} could not be reopened within ${o.reconnectTimeoutMs} ms`);
    }
    try {
      await sleep(backoff, undefined, { signal });
    } catch {
      return;
    }
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    // The daemon may have restarted on another socket or port: read daemon.json again.
    try {
      await client.refresh();
    } catch (e) {
      if (!(e instanceof R1Error) || e.reason !== 'unreachable') throw e;
    }
  }
}

/**
 * Throws `crash_recovery` when the session is in `error` (its journal is quarantined:
 * nothing more will come until `session.repair`).
 * @param {R1Client} client
 * @param {string} id
 */
async function quarantined(client, id) {
  let view;
  try {
    view = await client.call('session.get', { session_id: id }, { timeoutMs: 5_000 });
  } catch {
    return; // The daemon is going away; the reconnect loop handles that.
  }
  if (view && view.state === 'error') {
    throw new R1Error('crash_recovery', `session ${id} is in error (${view.error ?? 'journal quarantined'}); repair it with session.repair`, { reason: 'api' });
  }
}

/**
 * The error an `event: error` frame ends a stream with, or null for a subscriber
 * dropped as too slow (reconnecting is the cure).
 * @param {string} data
 */
function streamError(data) {
  let v;
  try {
    v = JSON.parse(data);
  } catch {
    return protocolError(`the event stream ended with: ${data}`);
  }
  if (v && v.code === 'stream.dropped') return null;
  if (v && typeof v.error_code === 'string') return new R1Error(v.error_code, v.error_message, { status: undefined, reason: 'api', links: v.links });
  return protocolError(`the event stream ended with: ${data}`);
}
