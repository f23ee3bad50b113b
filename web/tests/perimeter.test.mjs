// 3. The perimeter, proven from real pages in Chromium. Each check is its own test with
// its own daemon; test pages come from a node server on another loopback port, reached
// as http://127.0.0.1:T (allowlisted) or http://foreign.test:T (not allowlisted).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startDaemon,
  launchBrowser,
  testServer,
  tempDir,
  api,
  sessionCount,
  rejections,
  rawRequest,
  journal,
  until,
  RECORD_KINDS,
} from "./lib.mjs";
import { writeFile } from "node:fs/promises";

let browser;
let server;

before(async () => {
  server = await testServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** A daemon whose allowlist holds the test server's 127.0.0.1 origin (never foreign.test). */
async function daemon(t) {
  const d = await startDaemon({ config: `[perimeter]\nallowed_origins = ["${server.url}"]\n` });
  t.after(() => d.cleanup());
  return d;
}

async function pageAt(t, origin) {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  await page.goto(origin + "/");
  return page;
}

/** The authenticated, preflighted fetch a page would make to start a session. */
function startSessionFromPage(page, d, workdir) {
  return page.evaluate(
    async ({ url, token, workdir }) => {
      try {
        const r = await fetch(url + "/v1/sessions", {
          method: "POST",
          headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
          body: JSON.stringify({ workdir }),
        });
        return { status: r.status, body: await r.json() };
      } catch (e) {
        return { error: String(e) };
      }
    },
    { url: d.url, token: d.token, workdir },
  );
}

test("allowlisted origin: a preflighted, authenticated fetch succeeds", async (t) => {
  const d = await daemon(t);
  const page = await pageAt(t, server.url);
  const wd = await tempDir();
  const n0 = await sessionCount(d);
  const r = await startSessionFromPage(page, d, wd);
  assert.equal(r.error, undefined, r.error);
  assert.equal(r.status, 201);
  assert.match(r.body.id, /^ses_/);
  assert.equal(await sessionCount(d), n0 + 1);
});

test("non-allowlisted origin: the same fetch is blocked by CORS and never reaches a handler", async (t) => {
  const d = await daemon(t);
  const page = await pageAt(t, server.foreign);
  const wd = await tempDir();
  const n0 = await sessionCount(d);
  const rej0 = await rejections(d);
  const r = await startSessionFromPage(page, d, wd);
  assert.match(r.error || "", /TypeError|Failed to fetch/, JSON.stringify(r));
  assert.equal(await sessionCount(d), n0);
  const rej1 = await rejections(d);
  assert.ok((rej1.origin || 0) > (rej0.origin || 0), "the preflight was not refused on its Origin");
});

test("foreign page: no-cors text/plain POST, form POST and <img> GET change nothing", async (t) => {
  const d = await daemon(t);
  const page = await pageAt(t, server.foreign);
  const wd = await tempDir();
  const n0 = await sessionCount(d);
  const rej0 = await rejections(d);
  await page.evaluate(
    async ({ url, workdir }) => {
      // A "simple" request: no preflight, opaque response.
      await fetch(url + "/v1/sessions", {
        method: "POST",
        mode: "no-cors",
        headers: { "Content-Type": "text/plain" },
        body: JSON.stringify({ workdir }),
      }).catch(() => {});
      await fetch(url + "/v1/shutdown", { method: "POST", mode: "no-cors", body: "{}" }).catch(() => {});
      // Form posts (text/plain smuggling a JSON body), into a sink frame.
      const sink = document.createElement("iframe");
      sink.name = "sink";
      document.body.append(sink);
      for (const path of ["/v1/sessions", "/v1/shutdown"]) {
        const f = document.createElement("form");
        f.method = "POST";
        f.enctype = "text/plain";
        f.action = url + path;
        f.target = "sink";
        const i = document.createElement("input");
        i.name = JSON.stringify({ workdir }).slice(0, -1) + ',"x":"';
        i.value = '"}';
        f.append(i);
        document.body.append(f);
        const loaded = new Promise((r) => sink.addEventListener("load", r, { once: true }));
        f.submit();
        await Promise.race([loaded, new Promise((r) => setTimeout(r, 2000))]);
      }
      // Image GETs (no Origin header, no credential).
      for (const path of ["/v1/sessions", "/v1/health", "/v1/shutdown"]) {
        await new Promise((r) => {
          const img = new Image();
          img.onload = img.onerror = r;
          img.src = url + path;
        });
      }
    },
    { url: d.url, workdir: wd },
  );
  assert.equal(await sessionCount(d), n0);
  const health = await api(d, "GET", "/v1/health");
  assert.equal(health.status, 200, "the daemon must still be up");
  const rej1 = await rejections(d);
  // They all reached the perimeter and were refused there: on Origin (POSTs) or on the
  // missing credential (image GETs carry no Origin).
  assert.ok((rej1.origin || 0) - (rej0.origin || 0) >= 4, `origin rejections: ${JSON.stringify([rej0, rej1])}`);
  assert.ok((rej1.token || 0) - (rej0.token || 0) >= 3, `token rejections: ${JSON.stringify([rej0, rej1])}`);
});

/** Opens a WebSocket from the page with the real token; reports which callbacks ran. */
function wsFromPage(page, d) {
  return page.evaluate(
    ({ url, token }) =>
      new Promise((resolve) => {
        const seen = [];
        const ws = new WebSocket(url.replace("http://", "ws://") + "/v1/ws", ["r1.proto.v1", "r1.bearer", token]);
        ws.onopen = () => seen.push("open");
        ws.onerror = () => seen.push("error");
        ws.onclose = (e) => {
          seen.push("close:" + e.code);
          resolve(seen);
        };
        setTimeout(() => resolve([...seen, "timeout"]), 5000);
      }),
    { url: d.url, token: d.token },
  );
}

test("foreign page: new WebSocket is refused at the handshake", async (t) => {
  const d = await daemon(t);
  const page = await pageAt(t, server.foreign);
  const rej0 = await rejections(d);
  const seen = await wsFromPage(page, d);
  assert.ok(!seen.includes("open"), `the socket opened: ${seen}`);
  assert.ok(seen.includes("error") && seen.some((s) => s.startsWith("close:")), `${seen}`);
  const rej1 = await rejections(d);
  assert.ok((rej1.origin || 0) > (rej0.origin || 0), "the upgrade was not refused on its Origin");
  // The same upgrade from node, to see the status: 403 before any upgrade.
  const raw = await rawRequest(d.url + "/v1/ws", {
    headers: {
      Origin: server.foreign,
      Connection: "Upgrade",
      Upgrade: "websocket",
      "Sec-WebSocket-Version": "13",
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Protocol": `r1.proto.v1, r1.bearer, ${d.token}`,
    },
  });
  assert.equal(raw.status, 403);
  assert.ok(!raw.upgraded);
});

test("a rebound hostname (rebind.test -> 127.0.0.1) gets 403", async (t) => {
  const d = await daemon(t);
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  const rej0 = await rejections(d);
  for (const path of ["/v1/health", "/"]) {
    const resp = await page.goto(`http://rebind.test:${d.port}${path}`);
    assert.equal(resp.status(), 403, `rebind.test${path}`);
  }
  const rej1 = await rejections(d);
  assert.ok((rej1.host || 0) - (rej0.host || 0) >= 2, "not refused on the Host header");
  // From node, with the token and a forged Host: still 403.
  const raw = await rawRequest(d.url + "/v1/health", {
    headers: { Host: `rebind.test:${d.port}`, Authorization: `Bearer ${d.token}` },
  });
  assert.equal(raw.status, 403);
});

test("a sandboxed iframe (Origin: null) gets 403 for fetch and WebSocket", async (t) => {
  const d = await daemon(t);
  // The parent is even an allowlisted origin: the frame's opaque origin still is not.
  const page = await pageAt(t, server.url);
  const rej0 = await rejections(d);
  const result = await page.evaluate(
    ({ url, token }) =>
      new Promise((resolve) => {
        const script = `
          (async () => {
            const out = {};
            try { const r = await fetch(${JSON.stringify(url)} + "/v1/health"); out.plain = r.status; }
            catch (e) { out.plain = "blocked"; }
            try { const r = await fetch(${JSON.stringify(url)} + "/v1/health", { headers: { Authorization: "Bearer " + ${JSON.stringify(token)} } }); out.auth = r.status; }
            catch (e) { out.auth = "blocked"; }
            out.origin = self.origin;
            out.ws = await new Promise((res) => {
              const seen = [];
              const ws = new WebSocket(${JSON.stringify(url.replace("http://", "ws://"))} + "/v1/ws", ["r1.proto.v1", "r1.bearer", ${JSON.stringify(token)}]);
              ws.onopen = () => seen.push("open");
              ws.onerror = () => seen.push("error");
              ws.onclose = (e) => { seen.push("close:" + e.code); res(seen); };
              setTimeout(() => res(seen.concat("timeout")), 5000);
            });
            parent.postMessage(out, "*");
          })();`;
        window.addEventListener("message", (e) => resolve(e.data), { once: true });
        const f = document.createElement("iframe");
        f.setAttribute("sandbox", "allow-scripts");
        f.srcdoc = "<!doctype html><script>" + script + "</" + "script>";
        document.body.append(f);
      }),
    { url: d.url, token: d.token },
  );
  assert.equal(result.origin, "null");
  assert.equal(result.plain, "blocked", JSON.stringify(result));
  assert.equal(result.auth, "blocked", JSON.stringify(result));
  assert.ok(!result.ws.includes("open"), `the socket opened: ${result.ws}`);
  const rej1 = await rejections(d);
  // The frame cannot read a status (the responses are CORS failures to it; the frame is
  // an out-of-process iframe), so the daemon's counters say what happened: the plain GET,
  // the preflight of the authenticated GET and the WebSocket upgrade were each refused
  // on their Origin, which the perimeter answers with 403 (checked from node below).
  assert.ok((rej1.origin || 0) - (rej0.origin || 0) >= 3, `origin rejections: ${JSON.stringify([rej0, rej1])}`);
  // From node: Origin: null is 403 even with the token, for HTTP and the upgrade.
  const h = await rawRequest(d.url + "/v1/health", { headers: { Origin: "null", Authorization: `Bearer ${d.token}` } });
  assert.equal(h.status, 403);
  const w = await rawRequest(d.url + "/v1/ws", {
    headers: {
      Origin: "null",
      Connection: "Upgrade",
      Upgrade: "websocket",
      "Sec-WebSocket-Version": "13",
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Protocol": `r1.proto.v1, r1.bearer, ${d.token}`,
    },
  });
  assert.equal(w.status, 403);
});

test("SSE with ?token= from the daemon's own page: ordered frames, then reattach with Last-Event-ID and no gap", async (t) => {
  const d = await daemon(t);
  const wd = await tempDir();
  const s = await api(d, "POST", "/v1/sessions", { workdir: wd });
  assert.equal(s.status, 201);
  const sid = s.json.id;
  const say = async (text) => {
    assert.equal((await api(d, "POST", `/v1/sessions/${sid}/messages`, { text })).status, 202);
    await until(async () => (await journal(d, sid)).some((r) => r.kind === "session.message" && r.data.text === "echo: " + text), {
      what: "echo: " + text,
    });
    return (await journal(d, sid)).at(-1).seq;
  };
  const firstHead = await say("first");
  const page = await pageAt(t, d.url);
  const path = `/v1/sessions/${sid}/events?token=${d.token}`;

  // Header-less EventSource: every frame from seq 1 to the head, in order.
  const frames = await page.evaluate(
    ({ path, kinds, want }) =>
      new Promise((resolve) => {
        const got = [];
        const es = new EventSource(path);
        const on = (ev) => {
          const rec = JSON.parse(ev.data);
          got.push({ id: ev.lastEventId, type: ev.type, seq: rec.seq, kind: rec.kind });
          if (rec.seq >= want) {
            es.close();
            resolve(got);
          }
        };
        for (const k of kinds) es.addEventListener(k, on);
        es.onmessage = on;
        setTimeout(() => {
          es.close();
          resolve(got);
        }, 8000);
      }),
    { path, kinds: RECORD_KINDS, want: firstHead },
  );
  assert.equal(frames.length, firstHead, JSON.stringify(frames));
  frames.forEach((f, i) => {
    assert.equal(f.seq, i + 1);
    assert.equal(f.id, String(i + 1));
    assert.equal(f.type, f.kind);
  });

  // Detached: more happens meanwhile.
  const secondHead = await say("second");
  assert.ok(secondHead > firstHead);

  // Reattach with Last-Event-ID (fetch, since EventSource cannot set it): the stream
  // continues right after the last frame seen.
  const more = await page.evaluate(
    async ({ path, last, want }) => {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 8000);
      const got = [];
      try {
        const r = await fetch(path, { headers: { "Last-Event-ID": String(last) }, signal: ac.signal });
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const f = {};
            for (const line of frame.split("\n")) {
              const m = /^(id|event|data): ?(.*)$/.exec(line);
              if (m) f[m[1]] = m[2];
            }
            if (!f.data) continue; // heartbeat
            const rec = JSON.parse(f.data);
            got.push({ id: f.id, type: f.event, seq: rec.seq });
            if (rec.seq >= want) {
              ac.abort();
              return { status: r.status, got };
            }
          }
        }
        return { status: r.status, got };
      } catch (e) {
        return { error: String(e), got };
      } finally {
        clearTimeout(timer);
      }
    },
    { path, last: frames.at(-1).seq, want: secondHead },
  );
  assert.equal(more.error, undefined, more.error);
  assert.equal(more.status, 200);
  assert.deepEqual(
    more.got.map((f) => f.seq),
    Array.from({ length: secondHead - firstHead }, (_, i) => firstHead + 1 + i),
  );
  more.got.forEach((f) => assert.equal(f.id, String(f.seq)));
});

test("SIGHUP after adding an origin to daemon.toml: a page from that origin then connects, no restart", async (t) => {
  const d = await daemon(t);
  const page = await pageAt(t, server.foreign);
  const wd = await tempDir();
  // Before: foreign.test is not allowlisted, so both the fetch and the upgrade are refused.
  const before = await startSessionFromPage(page, d, wd);
  assert.match(before.error || "", /TypeError|Failed to fetch/, JSON.stringify(before));
  assert.ok(!(await wsFromPage(page, d)).includes("open"), "the socket opened before the reload");

  const pid = d.child.pid;
  await writeFile(
    `${d.home}/daemon.toml`,
    `[perimeter]\nallowed_origins = ["${server.url}", "${server.foreign}"]\n`,
    { mode: 0o600 },
  );
  process.kill(pid, "SIGHUP");
  // The reload is asynchronous to the signal: poll the page's own fetch until it is let in.
  const n0 = await sessionCount(d);
  const r = await until(
    async () => {
      const r = await startSessionFromPage(page, d, wd);
      return r.status === 201 ? r : false;
    },
    { what: "the foreign page's fetch to succeed after SIGHUP", timeout: 10000 },
  );
  assert.match(r.body.id, /^ses_/);
  assert.equal(await sessionCount(d), n0 + 1);
  const seen = await wsFromPage(page, d);
  assert.ok(seen.includes("open"), `the socket did not open after the reload: ${seen}`);
  // Same daemon process throughout: nothing was restarted.
  const disc = await api(d, "GET", "/v1/discover");
  assert.equal(disc.status, 200, disc.text);
  assert.equal(disc.json.pid, pid);
});
