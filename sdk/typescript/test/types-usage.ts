// Compiled (never run) by test/types.test.mjs with `tsc --strict`: what a TypeScript
// user writes against @r1/client must type-check, and misuse must not.

import { connectOrSpawn, R1Error, type SessionRecord, type SessionView, type SendMessageResult, type events } from '../src/index.js';

export async function usage(): Promise<string> {
  const r1 = await connectOrSpawn({ home: '/tmp/r1-home', tcp: false });
  const s: SessionView = await r1.session.start({ workdir: '/tmp', policy: { run_command: 'allow' } });
  const sent: SendMessageResult = await r1.session.send({ session_id: s.id, text: 'hi' });
  const page = await r1.session.journal({ session_id: s.id, since_seq: sent.seq, limit: 10 });
  const hits = await r1.search.query({ q: 'hi', kind: ['message', 'tool'] });
  const view = await r1.call('session.get', { session_id: s.id });
  await r1.session.approve({ session_id: s.id, approval_id: 'apr_1', decision: 'allow' });
  const health = await r1.daemon.health();
  let text = `${page.next_seq} ${hits.hits.length} ${view.state} ${health.status}`;
  for await (const rec of r1.follow(s.id, 1)) {
    const r: SessionRecord = rec;
    if (r.kind === 'session.delta') text += r.data.text;
    if (r.kind === 'session.message' && r.data.role === 'assistant') text += r.data.tool_calls.length;
    if (r.kind === 'approval.requested') {
      const req: events.ApprovalRequested = r.data;
      await r1.session.approve({ session_id: s.id, approval_id: req.approval_id, decision: 'deny' });
    }
    // @ts-expect-error: a delta has no approval_id.
    if (r.kind === 'session.delta') text += r.data.approval_id;
    if (r.kind === 'session.ended') break;
  }
  try {
    await r1.session.get({ session_id: 'nope' });
  } catch (e) {
    if (e instanceof R1Error && e.code === 'not_found' && e.status === 404) text += e.message;
  }
  // @ts-expect-error: `text` is required.
  await r1.session.send({ session_id: s.id });
  // @ts-expect-error: not a decision.
  await r1.session.approve({ session_id: s.id, approval_id: 'apr_1', decision: 'maybe' });
  // @ts-expect-error: no such operation.
  await r1.call('session.explode', {});
  return text;
}
