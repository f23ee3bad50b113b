// Unit tests of web/store.js in node (no daemon, no browser): every record kind of the
// schema has a case, recorded journals fold to what the views must show, reduce never
// mutates its input, and a 100,000-record journal folds into a bounded state.
//
//   node --test web/tests/store.unit.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

// web/ has no package.json, so node would read store.js as CommonJS: import a copy as .mjs.
const dir = await mkdtemp(join(tmpdir(), "r1-store-"));
await writeFile(join(dir, "store.mjs"), await readFile(new URL("../store.js", import.meta.url)));
const store = await import(join(dir, "store.mjs"));
const { initialState, reduce, reduceAll, withLaneStatuses, laneText, KINDS, LANE_HEAD_CHARS, LANE_TAIL_CHARS } = store;

const schema = JSON.parse(await readFile(new URL("../../docs/events.schema.json", import.meta.url), "utf8"));

async function fixture(name) {
  const text = await readFile(new URL(`./fixtures/${name}`, import.meta.url), "utf8");
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** Freezes `v` and everything reachable from it (a Map's entries are checked apart). */
function deepFreeze(v) {
  if (v && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** Folds `records` one reduce at a time, checking that no reduce touches its input. */
function foldChecked(records, state = initialState()) {
  for (const rec of records) {
    const index = [...state.index];
    deepFreeze(state);
    const next = reduce(state, rec);
    assert.deepEqual([...state.index], index, `reduce changed the index of its input state at seq ${rec.seq}`);
    state = next;
  }
  return state;
}

/** A compact view of the timeline: what each item shows. */
function shown(state) {
  return state.items.map((it) => {
    switch (it.type) {
      case "message":
        return [it.role, it.text, ...(it.streaming ? ["streaming"] : []), ...(it.interrupted ? ["interrupted"] : [])];
      case "lane":
        return ["lane", it.tool, it.status, laneText(it), it.result];
      case "approval":
        return ["approval", it.tool, it.status];
      case "note":
        return ["note", it.text, it.tone];
      case "cortex":
        return ["cortex", it.source, it.text, it.critical];
      default:
        return [it.type];
    }
  });
}

let seq = 0;
const rec = (kind, data, lane = "main") => ({ v: 1, seq: ++seq, at: `2026-12-04T10:00:00.${String(seq % 1000).padStart(3, "0")}Z`, kind, lane, data });

test("store: handles exactly the record kinds of docs/events.schema.json", () => {
  const kinds = Object.keys(schema.records).sort();
  assert.deepEqual([...KINDS].sort(), kinds);
  // The closed enum of the envelope agrees.
  const enumKinds = schema.$defs.EventKind.oneOf.map((o) => o.const).sort();
  assert.deepEqual(enumKinds, kinds);
});

test("store: every record kind, one at a time", async (t) => {
  const cases = {
    "session.created": () => {
      const s = reduce(initialState(), rec("session.created", { id: "ses_1", workdir: "/w", engine: "echo", model: null, title: null, created_at: "x", policy: {}, token_budget: null }));
      assert.equal(s.info.workdir, "/w");
      assert.deepEqual(shown(s), [["note", "Session started in /w.", ""]]);
    },
    "session.message": () => {
      let s = reduce(initialState(), rec("session.message", { role: "user", text: "hi", message_id: "msg_1", client_message_id: null }));
      s = reduce(s, rec("session.message", { role: "assistant", text: "", reply_to: "msg_1", tool_calls: [{ id: "c", name: "t", arguments: {} }], usage: { input_tokens: 5, output_tokens: 1 } }));
      s = reduce(s, rec("session.message", { role: "assistant", text: "hello", reply_to: "msg_1", tool_calls: [], usage: { input_tokens: 7, output_tokens: 2, cached_input_tokens: 3, cost_usd: 0.5 } }));
      // A step with only tool calls shows nothing; its usage counts.
      assert.deepEqual(shown(s), [["user", "hi"], ["assistant", "hello"]]);
      assert.equal(s.items[0].messageId, "msg_1");
      assert.deepEqual(s.usage, { input_tokens: 12, output_tokens: 3, cached_input_tokens: 3, model_calls: 2, cost_usd: 0.5 });
      assert.deepEqual(s.turns.msg_1, s.usage);
      assert.deepEqual(s.items[1].turnUsage, s.usage);
    },
    "session.delta": () => {
      let s = reduce(initialState(), rec("session.delta", { text: "ab", reply_to: "m" }));
      s = reduce(s, rec("session.delta", { text: "cd", reply_to: "m" }));
      assert.deepEqual(shown(s), [["assistant", "abcd", "streaming"]]);
      const first = s.items[0].seq;
      s = reduce(s, rec("session.message", { role: "assistant", text: "abcd!", reply_to: "m", tool_calls: [], usage: null }));
      assert.deepEqual(shown(s), [["assistant", "abcd!"]]);
      assert.equal(s.streamPos, -1);
      assert.ok(s.items[0].seq > first, "the finished message carries its final record's seq");
    },
    "session.state": () => {
      const s = reduce(initialState(), rec("session.state", { state: "busy", message_id: "m" }));
      assert.equal(s.status, "busy");
      assert.equal(s.items.length, 0);
    },
    "session.paused": () => {
      const s = reduce(initialState(), rec("session.paused", { reason: "shutdown" }));
      assert.equal(s.status, "paused");
      assert.deepEqual(shown(s), [["note", "Paused.", ""]]);
    },
    "session.resumed": () => assert.deepEqual(shown(reduce(initialState(), rec("session.resumed", {}))), [["note", "Resumed.", ""]]),
    "session.cancelled": () => {
      let s = reduce(initialState(), rec("session.delta", { text: "half", reply_to: "m" }));
      s = reduce(s, rec("session.cancelled", { message_id: "m" }));
      assert.deepEqual(shown(s), [["assistant", "half", "interrupted"], ["note", "Turn cancelled.", ""]]);
    },
    "session.ended": () => {
      const s = reduce(initialState(), rec("session.ended", {}));
      assert.equal(s.status, "ended");
      assert.deepEqual(shown(s), [["note", "Session ended.", ""]]);
    },
    "session.error": () => {
      let s = reduce(initialState(), rec("session.delta", { text: "x", reply_to: "m" }));
      s = reduce(s, rec("session.error", { message: "boom", message_id: "m" }));
      assert.deepEqual(shown(s), [["assistant", "x", "interrupted"], ["note", "Error: boom", "error"]]);
    },
    "session.resync": () => {
      const s0 = reduce(initialState(), rec("session.state", { state: "idle" }));
      const s = reduce(s0, { v: 1, seq: 0, at: "x", kind: "session.resync", lane: "main", data: { next_seq: 1, last_seq: 0, reason: "repaired" } });
      assert.deepEqual(s.resync, { next_seq: 1, last_seq: 0, reason: "repaired" });
      assert.equal(s.lastSeq, s0.lastSeq);
    },
    "daemon.reloaded": () =>
      assert.deepEqual(shown(reduce(initialState(), rec("daemon.reloaded", { daemon_id: "d", pending_approvals: 0 }))), [
        ["note", "The daemon restarted. Tool calls that were running were closed.", ""],
      ]),
    "session.compacted": () => {
      let s = reduce(initialState(), rec("session.compacted", { upto_seq: 1, method: "summary", summary: "s", tokens_before: 900, tokens_after: 100, kept: 2, reason: "forced", usage: { input_tokens: 9, output_tokens: 1 } }));
      s = reduce(s, rec("session.compacted", { upto_seq: 1, method: "dropped", summary: "", tokens_before: 900, tokens_after: 400, kept: 2, reason: "overflow" }));
      assert.deepEqual(shown(s), [
        ["note", "The earlier conversation was summarized to fit the model's context (900 → 100 tokens).", ""],
        ["note", "The oldest turns were dropped to fit the model's context (900 → 400 tokens).", ""],
      ]);
      assert.equal(s.items[0].kind, "session.compacted");
      assert.deepEqual(s.usage, { input_tokens: 9, output_tokens: 1, cached_input_tokens: 0, model_calls: 1 });
    },
    "hook.ran": () => {
      let s = reduce(initialState(), rec("hook.ran", { hook: "on-turn-end", event: "on-turn-end", exit_code: 0, duration_ms: 7 }));
      s = reduce(s, rec("hook.ran", { hook: "pre-send.sh", event: "pre-send", exit_code: 0, duration_ms: 3, action: "deny", reason: "no" }));
      assert.deepEqual(shown(s), [
        ["note", "Hook on-turn-end ran in 7 ms.", ""],
        ["note", "Hook pre-send.sh (pre-send) ran in 3 ms: deny (no).", ""],
      ]);
    },
    "hook.failed": () =>
      assert.deepEqual(shown(reduce(initialState(), rec("hook.failed", { hook: "h.sh", event: "on-message", reason: "timed out" }))), [["note", "Hook h.sh failed: timed out", "error"]]),
    "hook.blocked": () =>
      assert.deepEqual(shown(reduce(initialState(), rec("hook.blocked", { hook: "pre-send.sh", reason: "no secrets", text: "s" }))), [
        ["note", "Hook pre-send.sh blocked a message: no secrets", "error"],
      ]),
    "cortex.note": () => {
      const s = reduce(initialState(), rec("cortex.note", { note_id: "note_1", text: "<b>x</b>", tags: ["a"], critical: true, source: "client" }));
      assert.deepEqual(shown(s), [["cortex", "client", "<b>x</b>", true]]);
      assert.deepEqual(s.items[0].tags, ["a"]);
    },
    "cortex.lobe": () => {
      const s = reduce(initialState(), rec("cortex.lobe", { lobe: "loop", paused: true }));
      assert.deepEqual(s.lobes, { loop: true });
      assert.deepEqual(shown(s), [["note", "Lobe loop paused for this session.", ""]]);
    },
    "approval.requested": () => {
      let s = reduce(initialState(), rec("session.delta", { text: "let me", reply_to: "m" }));
      s = reduce(s, rec("approval.requested", { approval_id: "apr_1", tool: "run_command", args: { command: "ls" }, call_id: "c", reply_to: "m" }));
      // The same approval twice (a replay across a reconnect) is one card.
      s = reduce(s, rec("approval.requested", { approval_id: "apr_1", tool: "run_command", args: { command: "ls" }, call_id: "c", reply_to: "m" }));
      assert.deepEqual(shown(s), [["assistant", "let me"], ["approval", "run_command", "pending"]]);
      assert.deepEqual(s.items[1].args, { command: "ls" });
    },
    "approval.resolved": () => {
      let s = reduce(initialState(), rec("approval.requested", { approval_id: "apr_1", tool: "t", args: null, call_id: "c", reply_to: "m" }));
      s = reduce(s, rec("approval.resolved", { approval_id: "apr_1", decision: "deny", reason: "the turn was cancelled" }));
      s = reduce(s, rec("approval.resolved", { approval_id: "apr_unknown", decision: "allow" }));
      assert.deepEqual(shown(s), [["approval", "t", "deny"]]);
      assert.equal(s.items[0].reason, "the turn was cancelled");
    },
    "lane.created": () => {
      const s = reduce(initialState(), rec("lane.created", { lane: "tool_1", tool: "run_command", call_id: "c" }, "tool_1"));
      assert.deepEqual(shown(s), [["lane", "run_command", "running", "", ""]]);
    },
    "tool.started": () => {
      let s = reduce(initialState(), rec("lane.created", { lane: "tool_1", tool: "run_command", call_id: "c" }, "tool_1"));
      s = reduce(s, rec("tool.started", { call_id: "c", tool: "run_command", args: { command: "ls" }, lane: "tool_1" }, "tool_1"));
      // An external tool (the provider runs it) has a lane of its own, keyed by call id.
      s = reduce(s, rec("tool.started", { call_id: "ext_1", tool: "Bash", args: "ls", external: true }));
      assert.equal(s.items.length, 2);
      assert.deepEqual(s.items[0].args, { command: "ls" });
      assert.equal(s.items[1].lane, "ext_1");
    },
    "lane.delta": () => {
      let s = reduce(initialState(), rec("lane.delta", { lane: "tool_1", text: "a  b\n" }, "tool_1"));
      s = reduce(s, rec("lane.delta", { lane: "tool_1", text: "\tc\n" }, "tool_1"));
      assert.deepEqual(shown(s), [["lane", "", "running", "a  b\n\tc\n", ""]]);
    },
    "lane.status": () => {
      let s = reduce(initialState(), rec("lane.created", { lane: "tool_1", tool: "t", call_id: "c" }, "tool_1"));
      s = reduce(s, rec("lane.status", { lane: "tool_1", status: "done" }, "tool_1"));
      s = reduce(s, rec("lane.status", { lane: "tool_9", status: "done" }, "tool_9"));
      assert.deepEqual(shown(s), [["lane", "t", "done", "", ""]]);
    },
    "lane.killed": () => {
      let s = reduce(initialState(), rec("lane.created", { lane: "tool_1", tool: "t", call_id: "c" }, "tool_1"));
      s = reduce(s, rec("lane.killed", { lane: "tool_1" }, "tool_1"));
      // The tool's own completion does not hide that it was killed.
      s = reduce(s, rec("tool.completed", { call_id: "c", tool: "t", content: "killed", is_error: true, lane: "tool_1" }, "tool_1"));
      assert.deepEqual(shown(s), [["lane", "t", "killed", "", "killed"]]);
    },
    "tool.completed": () => {
      let s = reduce(initialState(), rec("lane.created", { lane: "tool_1", tool: "t", call_id: "c" }, "tool_1"));
      // No output streamed: the result is the output.
      s = reduce(s, rec("tool.completed", { call_id: "c", tool: "t", content: "x  y", is_error: false, lane: "tool_1" }, "tool_1"));
      s = reduce(s, rec("tool.completed", { call_id: "d", tool: "write_file", content: "the policy denies it", denied: true, is_error: true }));
      s = reduce(s, rec("tool.completed", { call_id: "e", tool: "read_file", content: "bad args", is_error: true }));
      s = reduce(s, rec("tool.completed", { call_id: "f", content: "ok", is_error: false, external: true }));
      assert.deepEqual(shown(s), [
        ["lane", "t", "done", "x  y", ""],
        ["note", "write_file did not run: the policy denies it", ""],
        ["note", "read_file did not run: bad args", "error"],
        ["lane", "", "done", "ok", ""],
      ]);
    },
    "verify.completed": () => {
      let s = reduce(initialState(), rec("lane.delta", { lane: "verify_1", text: "running\n" }, "verify_1"));
      s = reduce(s, rec("verify.completed", { step: "test", ok: false, duration_ms: 1, command: "cargo test", summary: "1 test failed: b", failures: [], session_id: "s", lane: "verify_1" }));
      assert.deepEqual(shown(s), [
        ["lane", "", "failed", "running\n", ""],
        ["note", "Verify test: 1 test failed: b", "error"],
      ]);
    },
  };
  assert.deepEqual(Object.keys(cases).sort(), [...KINDS].sort(), "a case for every kind");
  for (const [kind, fn] of Object.entries(cases)) await t.test(kind, fn);
});

test("store: records already folded in, and unknown kinds, change nothing but the seq", () => {
  let s = reduce(initialState(), rec("session.message", { role: "user", text: "a", message_id: "m", client_message_id: null }));
  const again = { ...rec("session.resumed", {}), seq: s.lastSeq };
  assert.equal(reduce(s, again), s, "a repeated seq returns the same state");
  assert.equal(reduce(s, null), s);
  assert.equal(reduce(s, { kind: "session.resumed" }), s, "no seq");
  const items = s.items;
  s = reduce(s, rec("some.future_kind", { x: 1 }));
  assert.equal(s.items, items);
  assert.equal(s.lastSeq, seq);
  // A record without data is read as empty data.
  s = reduce(s, { v: 1, seq: ++seq, at: "x", kind: "session.error", lane: "main" });
  assert.deepEqual(shown(s).pop(), ["note", "Error: the turn failed", "error"]);
});

test("store: lane statuses from the daemon", () => {
  let s = reduce(initialState(), rec("lane.created", { lane: "tool_1", tool: "t", call_id: "c" }, "tool_1"));
  deepFreeze(s);
  const same = withLaneStatuses(s, [{ lane: "tool_1", status: "running" }, { lane: "nope", status: "done" }]);
  assert.equal(same.items[0], s.items[0], "an unchanged lane keeps its item");
  const next = withLaneStatuses(s, [{ lane: "tool_1", status: "killed" }]);
  assert.equal(next.items[0].status, "killed");
  assert.equal(s.items[0].status, "running");
});

test("store: a lane keeps the head and the tail of a long output", () => {
  let s = initialState();
  const chunk = "0123456789abcdef".repeat(64) + "\n"; // 1,025 characters
  const n = 300;
  s = reduceAll(s, Array.from({ length: n }, () => rec("lane.delta", { lane: "tool_1", text: chunk }, "tool_1")));
  const l = s.items[0];
  assert.equal(l.output.length, LANE_HEAD_CHARS);
  assert.equal(l.tail.length, LANE_TAIL_CHARS);
  assert.equal(l.dropped, n * chunk.length - LANE_HEAD_CHARS - LANE_TAIL_CHARS);
  assert.ok(l.tail.endsWith(chunk));
  assert.match(laneText(l), /\n… [\d,]+ characters not shown …\n/);
});

test("store: the recorded echo session (real daemon journal)", async () => {
  const records = await fixture("echo-session.ndjson");
  const s = foldChecked(records);
  // One fold of the whole journal is the same as one record at a time.
  assert.deepEqual(reduceAll(initialState(), records), s);
  assert.equal(s.lastSeq, records.length);
  assert.equal(s.status, "ended");
  assert.equal(s.streamPos, -1);
  const view = shown(s);
  const kinds = view.map((v) => (v[0] === "note" ? "note" : v[0]));
  assert.deepEqual(
    kinds.filter((k) => k !== "note"),
    ["user", "assistant", "user", "approval", "lane", "assistant", "user", "approval", "assistant", "cortex", "user", "approval", "lane", "assistant", "user", "assistant"],
  );
  const msgs = view.filter((v) => v[0] === "user" || v[0] === "assistant");
  assert.deepEqual(msgs[0], ["user", "hello **world**"]);
  assert.deepEqual(msgs[1], ["assistant", "echo: hello **world**"]);
  // The tool's answer comes back fenced, whitespace intact.
  assert.match(msgs[3][1], /^echo: run_command returned:\n```\nexit code: 0\ntotal \d+\n[\s\S]*big\.bin\n```$/);
  assert.match(msgs[3][1], /-rw-r--r-- +1 \S+ +\S+ +12345 /);
  assert.deepEqual(msgs.at(-1), ["assistant", "echo: a ", "interrupted"]);
  const lanes = s.items.filter((i) => i.type === "lane");
  assert.deepEqual(lanes.map((l) => l.status), ["done", "killed"]);
  assert.match(lanes[0].output, /a\.txt\n.*big\.bin\n$/s);
  assert.equal(lanes[1].output, "started\n");
  assert.match(lanes[1].result, /command cancelled/);
  assert.deepEqual(
    s.items.filter((i) => i.type === "approval").map((a) => [a.args.command, a.status]),
    [["ls -la", "allow"], ["rm -rf nothing", "deny"], ["echo started; sleep 30", "allow"]],
  );
  const notes = view.filter((v) => v[0] === "note").map((v) => v[1]);
  assert.ok(notes[0].startsWith("Session started in /"));
  for (const want of [
    "Hook pre-send.sh blocked a message: no secrets here",
    "Lobe loop paused for this session.",
    "Turn cancelled.",
    "Paused.",
    "Resumed.",
    "Session ended.",
  ]) {
    assert.ok(notes.includes(want), `${want} in ${JSON.stringify(notes)}`);
  }
  assert.ok(notes.some((n) => /^The earlier conversation was summarized to fit the model's context \(\d+ → \d+ tokens\)\.$/.test(n)));
  assert.ok(notes.some((n) => /^Hook on-turn-end ran in \d+ ms\.$/.test(n)));
  // Usage: every journaled call, as the daemon sums it.
  const calls = records.filter((r) => (r.kind === "session.message" && r.data.usage) || (r.kind === "session.compacted" && r.data.usage));
  const sum = (k) => calls.reduce((a, r) => a + (r.data.usage[k] || 0), 0);
  assert.deepEqual(s.usage, { input_tokens: sum("input_tokens"), output_tokens: sum("output_tokens"), cached_input_tokens: 0, model_calls: calls.length });
  // Per turn: the final answer of each turn shows its turn's tokens.
  const hello = s.items.find((i) => i.type === "message" && i.role === "assistant");
  assert.deepEqual(hello.turnUsage, { input_tokens: 2, output_tokens: 3, cached_input_tokens: 0, model_calls: 1 });
});

test("store: the hand-written journal of every kind", async () => {
  const records = await fixture("every-kind.ndjson");
  const inFixture = new Set(records.map((r) => r.kind));
  for (const k of KINDS) if (k !== "session.resync") assert.ok(inFixture.has(k), `every-kind.ndjson has no ${k}`);
  const s = foldChecked(records);
  assert.deepEqual(shown(s), [
    ["note", "Session started in /home/you/project.", ""],
    ["user", "run the verify step"],
    ["assistant", "Running `cargo test`"],
    ["approval", "run_command", "allow"],
    ["lane", "run_command", "failed", "running 2 tests\ntest a ... ok\ntest b ... FAILED\n", "exit code: 101"],
    ["note", "Verify test: 1 test failed: b", "error"],
    ["lane", "", "killed", "verify output\n", ""],
    ["lane", "Bash", "done", "a.txt\n", ""],
    ["note", "write_file did not run: the policy denies write_file", ""],
    ["note", "read_file did not run: no such tool", "error"],
    ["assistant", "One test failed: `b`."],
    ["note", "Hook on-turn-end ran in 7 ms.", ""],
    ["note", "Hook pre-send.sh (pre-send) ran in 12 ms: rewrite (house style).", ""],
    ["note", "Hook on-message.sh failed: timed out after 10 s", "error"],
    ["note", "Hook pre-send.sh blocked a message: no secrets here", "error"],
    ["cortex", "verify", "tests in io.rs fail", true],
    ["cortex", "client", "<b>not bold</b>", false],
    ["note", "Lobe loop paused for this session.", ""],
    ["note", "Lobe loop resumed for this session.", ""],
    ["note", "The earlier conversation was summarized to fit the model's context (9000 → 1200 tokens).", ""],
    ["note", "The oldest turns were dropped to fit the model's context (9000 → 4000 tokens).", ""],
    ["user", "again"],
    ["assistant", "Half a rep", "interrupted"],
    ["note", "Error: the provider answered 500", "error"],
    ["note", "Paused.", ""],
    ["note", "The daemon restarted. Tool calls that were running were closed.", ""],
    ["note", "Resumed.", ""],
    ["user", "one more"],
    ["assistant", "partial", "interrupted"],
    ["note", "Turn cancelled.", ""],
    ["note", "Session ended.", ""],
  ]);
  assert.equal(s.status, "ended");
  assert.equal(s.info.engine, "anthropic");
  assert.deepEqual(s.lobes, { loop: false });
  assert.deepEqual(s.usage, { input_tokens: 11200, output_tokens: 250, cached_input_tokens: 1600, model_calls: 3, cost_usd: 0.015 });
  assert.deepEqual(s.turns.msg_1, { input_tokens: 2200, output_tokens: 50, cached_input_tokens: 1600, model_calls: 2, cost_usd: 0.015 });
  const final = s.items.find((i) => i.type === "message" && i.text.startsWith("One test failed"));
  assert.deepEqual(final.turnUsage, s.turns.msg_1);
  assert.equal(s.items.find((i) => i.type === "approval").status, "allow");
});

test("store: a 100,000-record journal folds into a bounded state", { timeout: 120000 }, () => {
  // Turns of a busy agent, and a few runaway tools that print megabytes.
  const records = [];
  let n = 0;
  const push = (kind, data, lane = "main") => records.push({ v: 1, seq: ++n, at: "2026-12-04T10:00:00.000Z", kind, lane, data });
  const line = "-rw-r--r--  1 you you  4096 Dec  4 10:00 file.txt\n";
  let turns = 0;
  let runaway = 0;
  for (;;) {
    const t = turns + 1;
    // Every 100th tool runs away: 2,000 deltas of ~2 KiB.
    const deltas = t % 100 === 0 ? 2000 : 5;
    if (n + 42 + deltas > 100000) break;
    turns = t;
    const m = `msg_${t}`;
    push("session.message", { role: "user", text: `turn ${t}`, message_id: m, client_message_id: null });
    push("session.state", { state: "busy", message_id: m });
    for (let i = 0; i < 20; i++) push("session.delta", { text: "thinking ", reply_to: m });
    push("session.message", { role: "assistant", text: "thinking ".repeat(20), reply_to: m, tool_calls: [{ id: `c${t}`, name: "run_command", arguments: {} }], usage: { input_tokens: 100, output_tokens: 10 } });
    push("approval.requested", { approval_id: `apr_${t}`, tool: "run_command", args: { command: "ls -la" }, call_id: `c${t}`, reply_to: m });
    push("approval.resolved", { approval_id: `apr_${t}`, decision: "allow" });
    const lane = `tool_${t}`;
    push("lane.created", { lane, tool: "run_command", call_id: `c${t}` }, lane);
    push("tool.started", { call_id: `c${t}`, tool: "run_command", args: { command: "ls -la" }, lane }, lane);
    if (deltas > 5) runaway++;
    for (let i = 0; i < deltas; i++) push("lane.delta", { lane, text: deltas > 5 ? line.repeat(40) : line }, lane);
    push("lane.status", { lane, status: "done" }, lane);
    push("tool.completed", { call_id: `c${t}`, tool: "run_command", content: "exit code: 0", is_error: false, lane }, lane);
    for (let i = 0; i < 10; i++) push("session.delta", { text: "done ", reply_to: m });
    push("session.message", { role: "assistant", text: "done ".repeat(10), reply_to: m, tool_calls: [], usage: { input_tokens: 200, output_tokens: 20 } });
    push("session.state", { state: "idle" });
    push("hook.ran", { hook: "on-turn-end", event: "on-turn-end", exit_code: 0, duration_ms: 1 });
  }
  while (n < 100000) push("session.state", { state: "idle" });
  assert.equal(records.length, 100000);
  assert.ok(runaway >= 10, `${runaway} runaway lanes`);
  const input = records.reduce((a, r) => a + (r.data.text ? r.data.text.length : 0), 0);

  const s = reduceAll(initialState(), records);
  assert.equal(s.lastSeq, 100000);
  // Deltas fold into their messages: six items a turn, whatever the records.
  assert.equal(s.items.length, turns * 6);
  assert.equal(s.usage.model_calls, turns * 2);
  // Every lane is capped, and the runaways dropped their middle.
  const lanes = s.items.filter((i) => i.type === "lane");
  assert.equal(lanes.length, turns);
  for (const l of lanes) {
    assert.ok(l.output.length <= LANE_HEAD_CHARS && l.tail.length <= LANE_TAIL_CHARS, `lane ${l.lane} is over its cap`);
  }
  assert.equal(lanes.filter((l) => l.dropped > 0).length, runaway);
  // The whole state is a fraction of the journal's text.
  const size = JSON.stringify({ ...s, index: [...s.index] }).length;
  const bound = runaway * (LANE_HEAD_CHARS + LANE_TAIL_CHARS) + turns * 4096;
  assert.ok(input > 4 * bound, `the journal (${input} chars) should dwarf the bound (${bound})`);
  assert.ok(size < bound, `state is ${size} characters, over ${bound}`);
});
