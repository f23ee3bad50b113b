// Sessions through the SDK against the real daemon: start, send, read the reply,
// approvals, policies, idempotent sends, long polls, and errors with their codes.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { connect, R1Error } from '../src/index.js';
import { journal, startDaemon, tempRoot, waitFor } from './helpers.mjs';

const t = tempRoot('sessions');
const work = join(t.root, 'work');
mkdirSync(work, { mode: 0o700 });
let daemon;
let r1;

before(async () => {
  daemon = await startDaemon(t.home);
  r1 = await connect({ home: t.home });
});
after(async () => {
  await daemon?.stop();
  t.cleanup();
});

/**
 * Follows `sessionId` from `since` until `until(record)` is true; every record seen.
 * Bounded: a follow that does not get there in time fails the test.
 */
async function readUntil(sessionId, since, until, timeoutMs = 15_000) {
  const f = r1.follow(sessionId, since);
  const seen = [];
  const timer = setTimeout(() => f.return(), timeoutMs);
  try {
    for await (const rec of f) {
      seen.push(rec);
      if (until(rec)) return seen;
    }
  } finally {
    clearTimeout(timer);
    await f.return();
  }
  assert.fail(`no matching record within ${timeoutMs} ms; saw ${seen.map((r) => r.kind).join(', ')}`);
}

const assistant = (rec) => rec.kind === 'session.message' && rec.data.role === 'assistant' && rec.data.text !== '';

describe('sessions', () => {
  test('start, send, and read the reply', async () => {
    const s = await r1.session.start({ workdir: work, title: 'sdk test' });
    assert.match(s.id, /^ses_/);
    assert.equal(s.state, 'idle');
    assert.equal(s.engine, 'echo');
    const sent = await r1.session.send({ session_id: s.id, text: 'hello from the sdk' });
    assert.match(sent.message_id, /^msg_/);
    assert.equal(sent.duplicate, false);
    const seen = await readUntil(s.id, sent.seq, assistant);
    assert.equal(seen[0].seq, sent.seq);
    assert.equal(seen[0].data.text, 'hello from the sdk');
    assert.equal(seen.at(-1).data.text, 'echo: hello from the sdk');
    assert.equal(seen.at(-1).data.reply_to, sent.message_id);
    const listed = await r1.session.list();
    assert.ok(listed.sessions.some((x) => x.id === s.id && x.title === 'sdk test'));
  });

  test('the reply streams as deltas (/slow)', async () => {
    const s = await r1.session.start({ workdir: work });
    const sent = await r1.session.send({ session_id: s.id, text: '/slow one two three four' });
    const seen = await readUntil(s.id, 1, assistant);
    const deltas = seen.filter((r) => r.kind === 'session.delta');
    assert.ok(deltas.length >= 2, `only ${deltas.length} deltas`);
    assert.equal(deltas.map((d) => d.data.text).join(''), 'echo: one two three four');
    assert.deepEqual(seen.map((r) => r.seq), seen.map((_, i) => i + 1));
    assert.ok(seen.some((r) => r.seq === sent.seq));
  });

  test('an approval answered through the SDK', async () => {
    const s = await r1.session.start({ workdir: work });
    const sent = await r1.session.send({ session_id: s.id, text: '/run echo approved-$((40+2))' });
    const asked = await readUntil(s.id, sent.seq, (r) => r.kind === 'session.state' && r.data.state === 'waiting_on_approval');
    const req = asked.find((r) => r.kind === 'approval.requested');
    assert.equal(req.data.tool, 'run_command');
    const view = await r1.session.get({ session_id: s.id });
    assert.equal(view.state, 'waiting_on_approval');
    assert.deepEqual(view.pending_approvals, [req.data.approval_id]);
    // Nothing ran before the decision.
    assert.ok(!asked.some((r) => r.kind === 'tool.started'));

    const after = await r1.session.approve({ session_id: s.id, approval_id: req.data.approval_id, decision: 'allow' });
    assert.deepEqual(after.pending_approvals, []);
    const rest = await readUntil(s.id, req.seq + 1, assistant);
    const resolved = rest.find((r) => r.kind === 'approval.resolved');
    assert.equal(resolved.data.decision, 'allow');
    const done = rest.find((r) => r.kind === 'tool.completed');
    assert.match(done.data.content, /approved-42/);
    assert.match(rest.at(-1).data.text, /approved-42/);
  });

  test('a denied approval does not run the tool', async () => {
    const s = await r1.session.start({ workdir: work });
    await r1.session.send({ session_id: s.id, text: '/run touch denied-marker' });
    const asked = await readUntil(s.id, 1, (r) => r.kind === 'approval.requested');
    await r1.session.approve({ session_id: s.id, approval_id: asked.at(-1).data.approval_id, decision: 'deny' });
    const rest = await readUntil(s.id, asked.at(-1).seq + 1, assistant);
    assert.ok(!rest.some((r) => r.kind === 'tool.started'), 'the tool ran');
    assert.equal(rest.find((r) => r.kind === 'approval.resolved').data.decision, 'deny');
  });

  test('policy run_command=allow runs without asking', async () => {
    const s = await r1.session.start({ workdir: work, policy: { run_command: 'allow' } });
    await r1.session.send({ session_id: s.id, text: '/run echo allowed-by-policy' });
    const seen = await readUntil(s.id, 1, assistant);
    assert.ok(!seen.some((r) => r.kind === 'approval.requested'), 'it asked for approval');
    assert.match(seen.find((r) => r.kind === 'tool.completed').data.content, /allowed-by-policy/);
  });

  test('a send with a client_message_id is idempotent', async () => {
    const s = await r1.session.start({ workdir: work });
    const a = await r1.session.send({ session_id: s.id, text: 'once', client_message_id: 'k-1' });
    const b = await r1.session.send({ session_id: s.id, text: 'once', client_message_id: 'k-1' });
    assert.equal(b.message_id, a.message_id);
    assert.equal(b.duplicate, true);
    await readUntil(s.id, 1, assistant);
    const users = (await journal(r1, s.id)).filter((r) => r.kind === 'session.message' && r.data.role === 'user');
    assert.equal(users.length, 1);
  });

  test('a long poll waits longer than the request timeout', async () => {
    const short = await connect({ home: t.home, requestTimeoutMs: 300 });
    const s = await short.session.start({ workdir: work });
    const started = Date.now();
    const page = await short.session.tail({ session_id: s.id, since_seq: s.last_seq + 1, wait_ms: 800 });
    assert.deepEqual(page.records, []);
    assert.ok(Date.now() - started >= 700, 'the long poll did not wait');
    // Query fields: integers and arrays go on the query string the daemon's way.
    await short.session.send({ session_id: s.id, text: 'pelican' });
    const found = await waitFor(async () => {
      const r = await short.search.query({ q: 'pelican', kind: ['message', 'approval'], session_id: s.id, limit: 5 });
      return r.hits.length > 0 && r;
    }, { what: 'the message in the search index' });
    assert.ok(found.hits.every((h) => h.kind === 'message' && h.session_id === s.id));
  });

  test('a call that runs out of time is a timeout error', async () => {
    const short = await connect({ home: t.home, requestTimeoutMs: 300 });
    const s = await short.session.start({ workdir: work });
    await assert.rejects(short.call('session.tail', { session_id: s.id, since_seq: 99, wait_ms: 5000 }, { timeoutMs: 200 }), (e) => {
      assert.ok(e instanceof R1Error);
      assert.equal(e.code, 'timeout');
      return true;
    });
  });
});

describe('errors', () => {
  const rejects = (p, check) => assert.rejects(p, (e) => {
    assert.ok(e instanceof R1Error, `not an R1Error: ${e}`);
    check(e);
    return true;
  });

  test('not_found for an unknown session', async () => {
    await rejects(r1.session.get({ session_id: 'ses_0000000000000000' }), (e) => {
      assert.equal(e.code, 'not_found');
      assert.equal(e.status, 404);
      assert.equal(e.reason, 'api');
      assert.match(e.message, /ses_0000000000000000/);
      assert.equal(e.links.self, '/v1/sessions/ses_0000000000000000');
    });
    await rejects(r1.session.send({ session_id: 'ses_0000000000000000', text: 'x' }), (e) => assert.equal(e.code, 'not_found'));
    // follow reports it too, instead of retrying forever.
    const f = r1.follow('ses_0000000000000000');
    await rejects(f.next(), (e) => assert.equal(e.code, 'not_found'));
  });

  test('validation for a bad request', async () => {
    await rejects(r1.session.start({ workdir: 'relative/dir' }), (e) => {
      assert.equal(e.code, 'validation');
      assert.equal(e.status, 400);
      assert.match(e.message, /absolute/);
    });
    await rejects(r1.call('session.start', { workdir: work, bogus: 1 }), (e) => {
      assert.equal(e.code, 'validation');
      assert.match(e.message, /bogus/);
    });
    const s = await r1.session.start({ workdir: work });
    await rejects(r1.session.approve({ session_id: s.id, approval_id: 'apr_x', decision: 'maybe' }), (e) => {
      assert.equal(e.code, 'validation');
      assert.equal(e.status, 400);
    });
  });

  test('conflict for a send to a paused session', async () => {
    const s = await r1.session.start({ workdir: work });
    const paused = await r1.session.pause({ session_id: s.id });
    assert.equal(paused.state, 'paused');
    await rejects(r1.session.send({ session_id: s.id, text: 'x' }), (e) => {
      assert.equal(e.code, 'conflict');
      assert.equal(e.status, 409);
    });
  });

  test('the SDK refuses a call without its path fields before sending it', async () => {
    await rejects(r1.session.get({}), (e) => {
      assert.equal(e.code, 'validation');
      assert.equal(e.status, undefined);
      assert.match(e.message, /session_id/);
    });
  });
});
