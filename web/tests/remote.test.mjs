// Remote use: a daemon reached only through a forwarded unix socket (socat, as
// `ssh -L` gives), its web UI served by `r1 open --via-socket` on a local port of a
// second state directory. The page logs in with the single-use code, lists the
// daemon's sessions, chats over the relayed WebSocket; a foreign page is refused.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFile, chmod, access } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import {
  R1_BIN,
  freshHome,
  startDaemon,
  launchBrowser,
  watchPage,
  api,
  tempDir,
  until,
  sendUI,
  waitAssistant,
  journal,
} from "./lib.mjs";

/** Spawns a child that is killed when the test ends. */
function child(t, cmd, args, env = {}) {
  const c = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  c.stderr.on("data", (b) => (err += b));
  t.after(() => c.kill("SIGKILL"));
  c.stderrText = () => err;
  return c;
}

test("r1 open --via-socket: the UI of a daemon behind a forwarded socket", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const { base, home } = await freshHome();
  const local = home;
  await copyFile(join(d.home, "token"), join(local, "token"));
  await chmod(join(local, "token"), 0o600);
  const fwd = join(base, "fwd.sock");
  const socat = child(t, "socat", [`UNIX-LISTEN:${fwd},fork,mode=600`, `UNIX-CONNECT:${d.info.sock}`]);
  socat.on("error", (e) => assert.fail(`socat is needed (Debian: apt-get install socat): ${e}`));
  await until(async () => access(fwd).then(() => true, () => false), { what: "socat to listen" });

  const wd = await tempDir();
  const s = await api(d, "POST", "/v1/sessions", { workdir: wd, title: "made on the remote" });
  assert.equal(s.status, 201, s.text);

  const open = child(t, R1_BIN, ["open", "--via-socket", "--print-url"], { R1_HOME: local, R1_SOCK: fwd });
  const url = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: open.stdout });
    rl.once("line", resolve);
    open.once("exit", (code) => reject(new Error(`r1 open exited ${code}: ${open.stderrText()}`)));
  });
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/#code=/);
  const origin = new URL(url).origin;
  assert.notEqual(origin, d.url);

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await (await browser.newContext()).newPage();
  const problems = await watchPage(page);
  await page.goto(url);
  await page.waitForSelector('#conn[data-state="connected"]');
  // The remote daemon's session is listed, and a chat works over the relayed socket.
  await page.waitForSelector('[data-testid="session-list"] li');
  await page.click(`[data-testid="session-list"] li:has-text("made on the remote")`);
  await page.waitForSelector('#chat-state[data-state="idle"]');
  await sendUI(page, "hello through the relay");
  await waitAssistant(page, "echo: hello through the relay");
  assert.ok((await journal(d, s.json.id)).some((r) => r.data?.text === "echo: hello through the relay"));
  // Nothing was started in the second state directory.
  await assert.rejects(access(join(local, "daemon.json")));

  // A foreign page cannot use the relay's port, even knowing the token.
  const foreign = await (await browser.newContext()).newPage();
  await foreign.goto("about:blank");
  const n0 = (await api(d, "GET", "/v1/sessions")).json.sessions.length;
  const r = await foreign.evaluate(
    async ({ origin, token, workdir }) => {
      try {
        await fetch(origin + "/v1/sessions", { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ workdir }) });
        const r = await fetch(origin + "/v1/sessions", {
          method: "POST",
          headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
          body: JSON.stringify({ workdir }),
        });
        return { status: r.status };
      } catch (e) {
        return { error: String(e) };
      }
    },
    { origin, token: d.token, workdir: wd },
  );
  assert.match(r.error || "", /TypeError|Failed to fetch/, JSON.stringify(r));
  assert.equal((await api(d, "GET", "/v1/sessions")).json.sessions.length, n0);
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
});
