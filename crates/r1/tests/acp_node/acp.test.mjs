// `r1 acp` driven by the real TypeScript ACP client (`@agentclientprotocol/sdk`),
// against a real daemon running the built-in `echo` engine. Every message r1 sends (each
// `session/update`, `session/request_permission` and answer) is also checked against
// the protocol's JSON Schema shipped in the SDK package, strictly (the SDK itself is
// lenient); any mismatch fails the test that caused it.
// - `r1 acp` on a state directory with no daemon starts one (connect-or-spawn);
// - initialize advertises loading, embedded context and no images;
// - session/new gives the r1 session id itself, which the CLI sees;
// - a prompt streams agent_message_chunk updates and ends with end_turn;
// - a tool call (`/run`) is tool_call then tool_call_update (in_progress, output,
//   completed), after a permission request answered allow-once (asked again next time),
//   allow-always (not asked again in that session, still asked in another) or reject
//   (the tool is denied and fails);
// - session/cancel during `/slow` ends the prompt with `cancelled`;
// - session/load from a second `r1 acp` replays a session's history before answering;
// - bad input gets ACP errors (-32002 unknown session, -32602 bad cwd).

import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";

import { R1_BIN, freshHome, startAcp, startDaemon, until, within } from "./lib.mjs";

let daemon;
let acp;
/** What the next permission request is answered with. */
let answer = "allow_once";

before(async () => {
  daemon = await startDaemon();
  acp = startAcp(daemon.env, () => answer);
});
afterEach(() => {
  assert.deepEqual(acp.invalid.splice(0), [], "r1 sent something the ACP schema refuses");
});
after(async () => {
  await acp?.close();
  await daemon?.cleanup();
});

/** The updates of `sessionId` received so far, from index `from`. */
function updatesOf(sessionId, from = 0) {
  return acp.updates.slice(from).filter((u) => u.sessionId === sessionId).map((u) => u.update);
}

/** Sends `text` and returns the stop reason and the updates the turn produced. */
async function prompt(sessionId, text) {
  const from = acp.updates.length;
  const r = await within(
    30000,
    acp.call("session/prompt", { sessionId, prompt: [{ type: "text", text }] }, "PromptResponse"),
    `the prompt ${JSON.stringify(text)}`,
  );
  return { stopReason: r.stopReason, updates: updatesOf(sessionId, from) };
}

const agentText = (updates) =>
  updates
    .filter((u) => u.sessionUpdate === "agent_message_chunk")
    .map((u) => u.content.text)
    .join("");

async function newSession() {
  const s = await acp.call("session/new", { cwd: daemon.workdir, mcpServers: [] }, "NewSessionResponse");
  return s.sessionId;
}

test("initialize advertises what r1 does", async () => {
  const init = await acp.call(
    "initialize",
    {
      protocolVersion: 1,
      clientCapabilities: { fs: { readTextFile: false, writeTextFile: false }, terminal: false },
    },
    "InitializeResponse",
  );
  assert.equal(init.protocolVersion, 1);
  assert.equal(init.agentCapabilities.loadSession, true);
  assert.equal(init.agentCapabilities.promptCapabilities.embeddedContext, true);
  assert.equal(init.agentCapabilities.promptCapabilities.image, false);
  assert.equal(init.agentInfo.name, "r1");
  assert.deepEqual(init.authMethods, []);
});

test("the ACP session is the r1 session, seen by the CLI and over HTTP", async () => {
  const id = await newSession();
  assert.match(id, /^ses_[0-9a-f]+$/);
  const view = daemon.ctl(["sessions", "get", id]);
  assert.equal(view.id, id);
  assert.equal(view.workdir, daemon.workdir);
  assert.equal(view.engine, "echo");
  const res = await fetch(`${daemon.url}/v1/sessions/${id}`, {
    headers: { Authorization: `Bearer ${daemon.token}` },
  });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).id, id);
});

test("a prompt streams agent_message_chunk updates and ends the turn", async () => {
  const id = await newSession();
  const { stopReason, updates } = await prompt(id, "hello from the editor");
  assert.equal(stopReason, "end_turn");
  const chunks = updates.filter((u) => u.sessionUpdate === "agent_message_chunk");
  assert.ok(chunks.length >= 2, `the answer streams in pieces: ${JSON.stringify(chunks)}`);
  assert.equal(agentText(updates), "echo: hello from the editor");
});

test("a tool call asks permission; allow-once runs it and asks again next time", async () => {
  const id = await newSession();
  answer = "allow_once";
  const asked = acp.permissions.length;
  const { stopReason, updates } = await prompt(id, "/run echo acp-once");
  assert.equal(stopReason, "end_turn");
  assert.equal(acp.permissions.length, asked + 1, "one permission request");
  const req = acp.permissions[asked];
  assert.equal(req.sessionId, id);
  assert.deepEqual(
    req.options.map((o) => o.kind),
    ["allow_once", "allow_always", "reject_once"],
  );
  assert.equal(req.toolCall.kind, "execute");
  assert.match(req.toolCall.title, /echo acp-once/);

  const call = updates.find((u) => u.sessionUpdate === "tool_call");
  assert.ok(call, `a tool_call: ${JSON.stringify(updates)}`);
  assert.equal(call.toolCallId, req.toolCall.toolCallId);
  assert.equal(call.status, "pending");
  assert.deepEqual(call.rawInput, { command: "echo acp-once" });
  const later = updates.filter(
    (u) => u.sessionUpdate === "tool_call_update" && u.toolCallId === call.toolCallId,
  );
  assert.ok(later.some((u) => u.status === "in_progress"), JSON.stringify(later));
  const done = later.find((u) => u.status === "completed");
  assert.ok(done, `completed: ${JSON.stringify(later)}`);
  assert.match(done.content[0].content.text, /acp-once/);
  // The tool_call came before its updates, and the answer after the result.
  assert.ok(updates.indexOf(call) < updates.indexOf(done));
  assert.match(agentText(updates), /run_command returned/);

  const again = await prompt(id, "/run echo acp-twice");
  assert.equal(again.stopReason, "end_turn");
  assert.equal(acp.permissions.length, asked + 2, "allow-once is not remembered");
});

test("allow-always makes the session's policy allow: the next call does not ask", async () => {
  const id = await newSession();
  answer = "allow_always";
  const asked = acp.permissions.length;
  const first = await prompt(id, "/run echo always-1");
  assert.equal(first.stopReason, "end_turn");
  assert.equal(acp.permissions.length, asked + 1);
  assert.ok(first.updates.some((u) => u.status === "completed"));

  answer = "reject_once"; // would deny, if it were asked
  const second = await prompt(id, "/run echo always-2");
  assert.equal(second.stopReason, "end_turn");
  assert.equal(acp.permissions.length, asked + 1, "not asked again in this session");
  const done = second.updates.find((u) => u.status === "completed");
  assert.ok(done, JSON.stringify(second.updates));
  assert.match(done.content[0].content.text, /always-2/);

  // The decision was journaled as remembered.
  const res = await fetch(`${daemon.url}/v1/sessions/${id}/journal`, {
    headers: { Authorization: `Bearer ${daemon.token}` },
  });
  const records = (await res.json()).records;
  const resolved = records.filter((r) => r.kind === "approval.resolved");
  assert.equal(resolved.length, 1);
  assert.equal(resolved[0].data.remember, true);
  assert.equal(resolved[0].data.decision, "allow");

  // Only that session: another one still asks.
  const other = await newSession();
  answer = "allow_once";
  await prompt(other, "/run echo other-session");
  assert.equal(acp.permissions.length, asked + 2, "another session still asks");
});

test("reject denies the tool call, which fails", async () => {
  const id = await newSession();
  answer = "reject_once";
  const asked = acp.permissions.length;
  const { stopReason, updates } = await prompt(id, "/run echo never-runs");
  assert.equal(stopReason, "end_turn");
  assert.equal(acp.permissions.length, asked + 1);
  const failed = updates.find((u) => u.sessionUpdate === "tool_call_update" && u.status === "failed");
  assert.ok(failed, JSON.stringify(updates));
  assert.match(failed.content[0].content.text, /denied/);
  assert.ok(!updates.some((u) => u.status === "in_progress"), "the tool never ran");
  assert.match(agentText(updates), /failed/);
});

test("session/cancel during a slow answer ends the prompt with cancelled", async () => {
  const id = await newSession();
  const from = acp.updates.length;
  const text = "/slow " + "a slow answer that takes many deltas to stream ".repeat(4);
  const pending = acp.agent.request("session/prompt", { sessionId: id, prompt: [{ type: "text", text }] });
  await until(() => updatesOf(id, from).some((u) => u.sessionUpdate === "agent_message_chunk"), {
    what: "the first chunk of the slow answer",
  });
  await acp.agent.notify("session/cancel", { sessionId: id });
  const r = await within(20000, pending, "the cancelled prompt");
  assert.equal(r.stopReason, "cancelled");
  assert.ok(agentText(updatesOf(id, from)).length < text.length, "cut short");
  const view = await until(
    () => {
      const v = daemon.ctl(["sessions", "get", id]);
      return v.state === "idle" && v;
    },
    { what: "the session to be idle" },
  );
  assert.equal(view.state, "idle");
});

test("session/load replays a session's history from another client", async () => {
  const id = await newSession();
  answer = "allow_once";
  assert.equal((await prompt(id, "remember me")).stopReason, "end_turn");
  assert.equal((await prompt(id, "/run echo replayed-tool")).stopReason, "end_turn");

  const second = startAcp(daemon.env, () => "allow_once");
  try {
    await second.call("initialize", { protocolVersion: 1 }, "InitializeResponse");
    const r = await within(
      20000,
      second.call("session/load", { sessionId: id, cwd: daemon.workdir, mcpServers: [] }, "LoadSessionResponse"),
      "session/load",
    );
    assert.deepEqual(r ?? {}, {});
    // Every update arrived before the answer.
    const replay = second.updates.filter((u) => u.sessionId === id).map((u) => u.update);
    const users = replay.filter((u) => u.sessionUpdate === "user_message_chunk").map((u) => u.content.text);
    assert.deepEqual(users, ["remember me", "/run echo replayed-tool"]);
    assert.match(agentText(replay), /^echo: remember me/);
    const call = replay.find((u) => u.sessionUpdate === "tool_call");
    assert.ok(call, JSON.stringify(replay));
    assert.equal(call.kind, "execute");
    const done = replay.find((u) => u.toolCallId === call.toolCallId && u.status === "completed");
    assert.match(done.content[0].content.text, /replayed-tool/);
    // The loaded session takes prompts like a new one.
    const next = await within(
      30000,
      second.call("session/prompt", { sessionId: id, prompt: [{ type: "text", text: "after load" }] }, "PromptResponse"),
      "a prompt after load",
    );
    assert.equal(next.stopReason, "end_turn");
    assert.deepEqual(second.invalid, [], "r1 sent something the ACP schema refuses");
  } finally {
    await second.close();
  }
});

test("bad input gets ACP errors, and r1 acp keeps serving", async () => {
  const code = async (p) => {
    try {
      await p;
    } catch (e) {
      return { code: e.code, message: e.message };
    }
    assert.fail("the request should fail");
  };
  const unknown = await code(
    acp.agent.request("session/load", { sessionId: "ses_00000000", cwd: daemon.workdir, mcpServers: [] }),
  );
  assert.equal(unknown.code, -32002, JSON.stringify(unknown));
  const relative = await code(acp.agent.request("session/new", { cwd: "relative/dir", mcpServers: [] }));
  assert.equal(relative.code, -32602);
  assert.match(relative.message, /absolute/);
  const missing = await code(
    acp.agent.request("session/new", { cwd: daemon.workdir + "/missing", mcpServers: [] }),
  );
  assert.equal(missing.code, -32602);
  const prompt = await code(
    acp.agent.request("session/prompt", { sessionId: "ses_00000000", prompt: [{ type: "text", text: "x" }] }),
  );
  assert.equal(prompt.code, -32002);
  const image = await code(
    acp.agent.request("session/prompt", {
      sessionId: await newSession(),
      prompt: [{ type: "image", data: "AAAA", mimeType: "image/png" }],
    }),
  );
  assert.equal(image.code, -32602);
  // Still serving.
  assert.match(await newSession(), /^ses_/);
});

test("r1 acp starts the daemon when none runs, like every r1 client", async () => {
  const h = await freshHome();
  const own = startAcp(h.env, () => "allow_once");
  try {
    assert.ok(!existsSync(join(h.home, "daemon.json")), "no daemon before");
    await own.call("initialize", { protocolVersion: 1 }, "InitializeResponse");
    const s = await within(
      30000,
      own.call("session/new", { cwd: h.workdir, mcpServers: [] }, "NewSessionResponse"),
      "session/new with no daemon running",
    );
    assert.match(s.sessionId, /^ses_/);
    assert.ok(existsSync(join(h.home, "daemon.json")), "a daemon registered");
    const view = JSON.parse(
      execFileSync(R1_BIN, ["ctl", "sessions", "get", s.sessionId, "--json", "--no-spawn"], {
        env: h.env,
        encoding: "utf8",
        timeout: 20000,
      }),
    );
    assert.equal(view.id, s.sessionId);
    assert.deepEqual(own.invalid, []);
  } finally {
    await own.close();
    execFileSync(R1_BIN, ["ctl", "shutdown", "--no-spawn"], { env: h.env, timeout: 20000 });
    await rm(h.base, { recursive: true, force: true });
  }
});
