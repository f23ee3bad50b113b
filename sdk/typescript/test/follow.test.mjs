// follow(): across daemon restarts (unix socket, and TCP with the port changing),
// closing with return(), and the Last-Event-ID, dedupe and gap logic against a
// scripted event stream.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { connect, R1Error } from '../src/index.js';
import { freePort, journal, startDaemon, tempRoot, waitFor } from './helpers.mjs';

const t = tempRoot('follow');
const work = join(t.root, 'work');
mkdirSync(work, { mode: 0o700 });
const daemons = [];
after(async () => {
  for (const d of daemons) await d.stop();
  t.cleanup();
});

async function start(home, args) {
  const d = await startDaemon(home, args);
  daemons.push(d);
  return d;
}

/**
 * Consumes `f` in the background into `seen`; `done` settles when it ends.
 */
function consume(f) {
  const seen = [];
  const done = (async () => {
    for await (const rec of f) seen.push(rec);
  })();
  done.catch(() => {});
  return { seen, done };
}

const isAssistant = (text) => (r) => r.kind === 'session.message' && r.data.role === 'assistant' && r.data.text === text;

/** Asserts `recs` are seqs 1..N with none missing or repeated, and equal the journal's. */
async function assertContiguous(client, sessionId, recs) {
  const seqs = recs.map((r) => r.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => i + 1), `not contiguous: ${seqs.join(',')}`);
  const truth = await journal(client, sessionId);
  assert.deepEqual(recs, truth.slice(0, recs.length), 'what follow yielded is not the journal');
}

/**
 * The restart scenario: follow while a /slow turn streams, stop the daemon, start it
 * again (`restartArgs`), resume, send again, and read on to the new reply.
 */
async function followAcrossRestart(home, { tcp, restartArgs, crash = false }) {
  let d = await start(home, tcp ? ['--port', String(await freePort())] : []);
  const r1 = await connect({ home, tcp });
  const s = await r1.session.start({ workdir: work });
  await r1.session.send({ session_id: s.id, text: `/slow ${'a slow reply that streams for a while '.repeat(4)}` });
  const f = r1.follow(s.id, 1, { reconnectTimeoutMs: 30_000 });
  const { seen, done } = consume(f);
  await waitFor(() => seen.filter((r) => r.kind === 'session.delta').length >= 3, { what: 'three deltas' });
  const before = r1.address;
  const exit = await d.stop(crash ? 'SIGKILL' : 'SIGTERM');
  if (crash) assert.equal(exit.signal, 'SIGKILL');
  else assert.equal(exit.code, 0, `the daemon exited with ${JSON.stringify(exit)}`);
  const cut = seen.length;
  d = await start(home, await restartArgs());
  // The follower finds the new daemon by itself and reads on: the restart journals
  // at least the session's reload.
  await waitFor(() => seen.some((r) => r.kind === 'daemon.reloaded'), { what: 'daemon.reloaded through the follower', timeoutMs: 20_000 });
  assert.ok(f.reconnects >= 1);
  const view = await r1.session.get({ session_id: s.id });
  if (view.state === 'paused') await r1.session.resume({ session_id: s.id });
  await r1.session.send({ session_id: s.id, text: 'after the restart' });
  await waitFor(() => seen.some(isAssistant('echo: after the restart')), { what: 'the reply after the restart', timeoutMs: 20_000 });
  await f.return();
  await done;
  assert.ok(seen.length > cut + 2);
  await assertContiguous(r1, s.id, seen);
  return { r1, before, seen };
}

describe('follow', () => {
  test('across a daemon restart on the unix socket: no gap, no duplicate', async () => {
    const home = join(t.root, 'unix');
    mkdirSync(home, { mode: 0o700 });
    const { r1, seen } = await followAcrossRestart(home, { tcp: false, restartArgs: async () => [] });
    assert.equal(r1.transport, 'unix');
    assert.ok(seen.some((r) => r.kind === 'session.paused'), 'the stop paused the streaming turn');
  });

  test('across a crash (SIGKILL) and a new daemon: no gap, no duplicate', async () => {
    const home = join(t.root, 'crash');
    mkdirSync(home, { mode: 0o700 });
    const { seen } = await followAcrossRestart(home, { tcp: false, crash: true, restartArgs: async () => [] });
    assert.ok(seen.filter((r) => r.kind === 'session.delta').length >= 3);
  });

  test('across a restart on TCP onto another port: daemon.json is read again', async () => {
    const home = join(t.root, 'tcp');
    mkdirSync(home, { mode: 0o700 });
    let newPort;
    const { r1, before } = await followAcrossRestart(home, {
      tcp: true,
      restartArgs: async () => ['--port', String((newPort = await freePort()))],
    });
    assert.equal(r1.transport, 'tcp');
    assert.notEqual(r1.address, before);
    assert.equal(r1.address, `127.0.0.1:${newPort}`);
  });

  test('a call after a restart onto another port finds the new daemon', async () => {
    const home = join(t.root, 'moved');
    mkdirSync(home, { mode: 0o700 });
    const first = await start(home, ['--port', String(await freePort())]);
    const r1 = await connect({ home, tcp: true });
    assert.equal((await r1.daemon.status()).pid, first.pid);
    const before = r1.address;
    await first.stop();
    const second = await start(home, ['--port', String(await freePort())]);
    assert.equal((await r1.daemon.status()).pid, second.pid);
    assert.notEqual(r1.address, before);
  });

  test('return() closes the stream, also while next() waits', async () => {
    const home = join(t.root, 'close');
    mkdirSync(home, { mode: 0o700 });
    await start(home);
    const r1 = await connect({ home });
    const s = await r1.session.start({ workdir: work });
    const f = r1.follow(s.id);
    const first = await f.next();
    assert.equal(first.value.kind, 'session.created');
    await waitFor(async () => (await r1.daemon.status()).subscribers === 1, { what: 'one subscriber' });
    const pending = f.next(); // Nothing more comes: it waits.
    const closed = await f.return();
    assert.equal(closed.done, true);
    assert.deepEqual(await pending, { value: undefined, done: true });
    assert.equal((await f.next()).done, true);
    await waitFor(async () => (await r1.daemon.status()).subscribers === 0, { what: 'the subscriber to go' });
  });

  test('ends after session.ended', async () => {
    const home = join(t.root, 'ended');
    mkdirSync(home, { mode: 0o700 });
    await start(home);
    const r1 = await connect({ home });
    const s = await r1.session.start({ workdir: work });
    const { seen, done } = consume(r1.follow(s.id));
    await r1.session.kill({ session_id: s.id });
    await Promise.race([done, waitFor(() => false, { what: 'follow to end', timeoutMs: 10_000 })]);
    assert.equal(seen.at(-1).kind, 'session.ended');
    await assertContiguous(r1, s.id, seen);
  });
});

describe('follow against a scripted stream', () => {
  const HANG = Symbol('hang');
  /**
   * A fake daemon: the handshake, and an event stream that plays `script[n]` on the
   * n-th connection, recording what each request asked for.
   */
  async function fake(script) {
    const home = join(t.root, `fake-${Math.random().toString(16).slice(2)}`);
    mkdirSync(home, { mode: 0o700 });
    const sock = join(home, 'r1.sock');
    const asked = [];
    const server = http.createServer(async (req, res) => {
      if (req.url === '/v1/handshake') {
        res.setHeader('content-type', 'application/json');
        return res.end(JSON.stringify({ protocol: 'r1.proto.v1', version: 'test', pid: process.pid, daemon_id: 'd_fake', started_at: '' }));
      }
      if (req.url.startsWith('/v1/sessions/ses_f/events')) {
        asked.push({ url: req.url, lastEventId: req.headers['last-event-id'], auth: req.headers.authorization });
        const play = script[asked.length - 1];
        if (!play) return res.writeHead(500).end();
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (const step of play) {
          if (typeof step === 'number') {
            const rec = { v: 1, seq: step, at: '', kind: step === 7 ? 'session.ended' : 'session.delta', lane: 'main', data: { text: `r${step}` } };
            res.write(`id: ${step}\nevent: ${rec.kind}\ndata: ${JSON.stringify(rec)}\n\n`);
          } else if (step === HANG) {
            return; // Holds the connection open and silent.
          } else {
            res.write(step);
          }
        }
        return res.end();
      }
      if (req.url === '/v1/sessions/ses_f') {
        res.setHeader('content-type', 'application/json');
        return res.end(JSON.stringify({ id: 'ses_f', state: 'idle' }));
      }
      res.writeHead(404).end();
    });
    await new Promise((r) => server.listen(sock, r));
    writeFileSync(join(home, 'daemon.json'), JSON.stringify({ id: 'd_fake', pid: process.pid, version: 'test', protocol: 'r1.proto.v1', url: 'http://127.0.0.1:1', sock, started_at: '' }), { mode: 0o600 });
    writeFileSync(join(home, 'token'), 'fake-token\n', { mode: 0o600 });
    return { home, asked, close: () => new Promise((r) => server.close(r)) };
  }

  test('reconnects with Last-Event-ID, drops duplicates, never yields past a gap', async () => {
    const f = await fake([
      [': keep-alive\n\n', 1, 2, 3, 2], // a duplicate, then the connection ends
      [3, 4, 'event: error\ndata: {"code":"stream.dropped","reason":"too slow; reconnect with Last-Event-ID"}\n\n'],
      [5, 6, 3, 8], // a duplicate, then a gap: 7 is missing
      [': keep-alive\n\n', 7],
    ]);
    try {
      const r1 = await connect({ home: f.home });
      const stream = r1.follow('ses_f', 1, { reconnectTimeoutMs: 5_000 });
      const seqs = [];
      for await (const rec of stream) seqs.push(rec.seq);
      assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7]);
      assert.equal(stream.reconnects, 3);
      assert.deepEqual(f.asked.map((a) => [a.url, a.lastEventId]), [
        ['/v1/sessions/ses_f/events?since_seq=1', undefined],
        ['/v1/sessions/ses_f/events', '3'],
        ['/v1/sessions/ses_f/events', '4'],
        ['/v1/sessions/ses_f/events', '6'],
      ]);
      assert.ok(f.asked.every((a) => a.auth === 'Bearer fake-token'));
    } finally {
      await f.close();
    }
  });

  test('a gap that does not heal is an error, not a skipped record', async () => {
    const f = await fake([[1, 3], [3], [3], [3], [3]]);
    try {
      const r1 = await connect({ home: f.home });
      const seqs = [];
      await assert.rejects(
        (async () => {
          for await (const rec of r1.follow('ses_f', 1, { reconnectTimeoutMs: 5_000 })) seqs.push(rec.seq);
        })(),
        (e) => e instanceof R1Error && /skips from 1 to 3/.test(e.message),
      );
      assert.deepEqual(seqs, [1]);
    } finally {
      await f.close();
    }
  });

  test('a stream silent past idleTimeoutMs is reopened', async () => {
    const f = await fake([[1, HANG], [2, 3, 4, 5, 6, 7]]);
    try {
      const r1 = await connect({ home: f.home });
      const stream = r1.follow('ses_f', 1, { idleTimeoutMs: 300 });
      const seqs = [];
      const started = Date.now();
      for await (const rec of stream) seqs.push(rec.seq);
      assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7]);
      assert.equal(f.asked[1].lastEventId, '1');
      assert.ok(Date.now() - started >= 300);
    } finally {
      await f.close();
    }
  });

  test('starts where asked and takes a resync', async () => {
    const resync = { v: 1, seq: 4, at: '', kind: 'session.resync', lane: 'main', data: { next_seq: 5, last_seq: 4 } };
    const f = await fake([[`id: 4\nevent: session.resync\ndata: ${JSON.stringify(resync)}\n\n`, 5, 6, 7]]);
    try {
      const r1 = await connect({ home: f.home });
      const got = [];
      for await (const rec of r1.follow('ses_f', 9)) got.push(`${rec.kind}:${rec.seq}`);
      assert.deepEqual(got, ['session.resync:4', 'session.delta:5', 'session.delta:6', 'session.ended:7']);
      assert.equal(f.asked[0].url, '/v1/sessions/ses_f/events?since_seq=9');
    } finally {
      await f.close();
    }
  });
});
