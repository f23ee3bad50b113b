// The transport's reactions to a daemon that changed, in node with a fake WebSocket and
// fetch: the close codes a browser test cannot provoke from a real daemon (1002 needs
// a daemon speaking another protocol), and the wording of an upgrade.
//   node --test web/tests/rpc.unit.test.mjs

import { test } from "node:test";
import assert from "node:assert/strict";

class FakeSocket extends EventTarget {
  static all = [];
  constructor(url, protocols) {
    super();
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    FakeSocket.all.push(this);
  }
  open() {
    this.readyState = 1;
    this.dispatchEvent(new Event("open"));
  }
  close() {
    this.serverClose(1000, "");
  }
  serverClose(code, reason) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    const ev = new Event("close");
    ev.code = code;
    ev.reason = reason;
    this.dispatchEvent(ev);
  }
}
FakeSocket.OPEN = 1;

globalThis.location = { protocol: "http:", host: "127.0.0.1:1" };
globalThis.WebSocket = FakeSocket;
let handshake = { status: 200, body: { protocol: "r1.proto.v1", version: "0.1.0", build_id: "10-1000000000" } };
let handshakes = 0;
globalThis.fetch = async (url) => {
  assert.equal(url, "/v1/handshake");
  handshakes++;
  return { status: handshake.status, ok: handshake.status === 200, json: async () => handshake.body };
};

const { Connection, upgradeText } = await import("../rpc.js");

function connection() {
  const seen = { states: [], auth: 0, incompatible: [], upgraded: [], opens: 0 };
  const c = new Connection("t0k3n", {
    onOpen: () => seen.opens++,
    onClose: () => {},
    onEvent: () => {},
    onStatus: (state, detail) => seen.states.push([state, detail]),
    onAuthFailed: () => seen.auth++,
    onIncompatible: (theirs, message) => seen.incompatible.push([theirs, message]),
    onUpgraded: (before, now) => seen.upgraded.push([before, now]),
  });
  return { c, seen };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

test("a 4001 close (token rotated) goes to sign-in at once and never reconnects", async () => {
  handshake = { status: 200, body: { protocol: "r1.proto.v1", version: "0.1.0" } };
  const { c, seen } = connection();
  c.start();
  const ws = FakeSocket.all.at(-1);
  ws.open();
  await settle();
  assert.equal(seen.opens, 1);
  const before = FakeSocket.all.length;
  ws.serverClose(4001, "token rotated");
  assert.equal(seen.auth, 1);
  assert.equal(c.stopped, true);
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(FakeSocket.all.length, before, "it reconnected");
  assert.equal(seen.states.at(-1)[0], "signed-out");
});

test("a 1002 close says which protocol the daemon speaks and stops", async () => {
  handshake = { status: 200, body: { protocol: "r1.proto.v2", version: "0.2.0" } };
  const { c, seen } = connection();
  c.start();
  const before = FakeSocket.all.length;
  FakeSocket.all.at(-1).serverClose(1002, "this daemon speaks r1.proto.v2, not r1.proto.v1; upgrade the client");
  await settle();
  await settle();
  assert.deepEqual(seen.incompatible, [
    ["r1.proto.v2", "This page speaks r1.proto.v1 but the daemon speaks r1.proto.v2: reload the page."],
  ]);
  assert.equal(seen.states.at(-1)[0], "incompatible");
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(FakeSocket.all.length, before, "it reconnected");
});

test("a 1002 close names the protocol from its reason when the handshake cannot be read", async () => {
  const real = globalThis.fetch;
  globalThis.fetch = async () => {
    throw new TypeError("Failed to fetch");
  };
  try {
    const { c, seen } = connection();
    c.start();
    FakeSocket.all.at(-1).serverClose(1002, "this daemon speaks r1.proto.v3, not r1.proto.v1; upgrade");
    await settle();
    await settle();
    assert.equal(seen.incompatible.length, 1);
    assert.equal(seen.incompatible[0][0], "r1.proto.v3");
  } finally {
    globalThis.fetch = real;
  }
});

test("another build after a reconnect is reported once; the same build is not", async () => {
  handshake = { status: 200, body: { protocol: "r1.proto.v1", version: "0.1.0", build_id: "10-1000000000" } };
  const { c, seen } = connection();
  c.start();
  FakeSocket.all.at(-1).open();
  await settle();
  // The same daemon build comes back (a plain restart): nothing to say.
  c.ws.serverClose(1001, "daemon shutting down");
  await new Promise((r) => setTimeout(r, 300));
  FakeSocket.all.at(-1).open();
  await settle();
  assert.deepEqual(seen.upgraded, []);
  // Another build: reported, and not again for the same one.
  handshake = { status: 200, body: { protocol: "r1.proto.v1", version: "0.1.0", build_id: "10-2000000000000000000" } };
  for (let i = 0; i < 2; i++) {
    c.ws.serverClose(1001, "daemon shutting down");
    await new Promise((r) => setTimeout(r, 300));
    FakeSocket.all.at(-1).open();
    await settle();
  }
  assert.equal(seen.upgraded.length, 1);
  assert.equal(seen.opens, 4);
  c.stop();
  assert.ok(handshakes > 0);
});

test("upgradeText: versions when they differ, else the builds' times, else their ids", () => {
  assert.equal(upgradeText({ version: "0.1.0" }, { version: "0.2.0" }), "0.1.0 → 0.2.0");
  assert.equal(
    upgradeText({ version: "0.1.0", build_id: "10-1000000000" }, { version: "0.1.0", build_id: "10-61000000000" }),
    "0.1.0, built 1970-01-01 00:00:01 UTC → built 1970-01-01 00:01:01 UTC",
  );
  assert.equal(
    upgradeText({ version: "0.1.0", build_id: "10-1000000000" }, { version: "0.1.0", build_id: "11-1000000000" }),
    "0.1.0, 10-1000000000 → 11-1000000000",
  );
});
