// 1. The golden path, 6. zero CSP violations (and no console errors) along it.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  startDaemon,
  launchBrowser,
  watchPage,
  loginUrl,
  tempDir,
  startSessionUI,
  sendUI,
  waitAssistant,
  messages,
  journal,
  api,
} from "./lib.mjs";

test("golden path: login, start, chat, streamed reply, markdown, approval, lane output, end", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = await watchPage(page);

  // Login: the code in the fragment is exchanged and scrubbed.
  const url = await loginUrl(d);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/#code=[0-9a-f]+$/);
  const resp = await page.goto(url);
  // The page's headers: strict CSP, no framing, no referrer, no sniffing.
  const h = resp.headers();
  assert.equal(
    h["content-security-policy"],
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  );
  assert.equal(h["referrer-policy"], "no-referrer");
  assert.equal(h["x-content-type-options"], "nosniff");
  assert.match(h["content-type"], /^text\/html/);
  await page.waitForSelector('body[data-view="list"]');
  await page.waitForSelector('#conn[data-state="connected"]');
  assert.equal(page.url(), d.url + "/");
  assert.equal(await page.evaluate(() => location.href), d.url + "/");
  assert.equal(await page.evaluate(() => location.hash), "");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("r1.token")), d.token);
  // No history entry keeps the code.
  const back = await page.goBack().catch(() => null);
  assert.ok(!page.url().includes("code="), `history kept the code: ${page.url()}`);
  if (back !== null || page.url() !== d.url + "/") {
    await page.goForward();
  }
  // Reloaded from sessionStorage, without a code.
  await page.waitForSelector('body[data-view="list"]');
  await page.waitForSelector('#conn[data-state="connected"]');
  // The same code again (new tab, no stored token) fails clearly.
  const page2 = await (await browser.newContext()).newPage();
  await page2.goto(url);
  await page2.waitForSelector('body[data-view="login"]');
  const err = await page2.textContent('[data-testid="login-error"]');
  assert.match(err, /already been used or has expired/);
  assert.equal(page2.url(), d.url + "/");
  await page2.context().close();

  // Start an echo session through the form.
  const wd = await tempDir();
  const sid = await startSessionUI(page, wd);
  assert.match(sid, /^ses_/);
  await page.waitForSelector(`[data-testid="session-item"][data-session-id="${sid}"]`);
  // A session started elsewhere shows up live (daemon bus), with its state.
  const other = await api(d, "POST", "/v1/sessions", { workdir: wd, title: "started from the CLI" });
  assert.equal(other.status, 201, other.text);
  await page.waitForSelector(`[data-testid="session-item"][data-session-id="${other.json.id}"] [data-state="idle"]`);
  assert.equal(await page.getAttribute(`[data-testid="session-item"][data-session-id="${sid}"]`, "aria-current"), "true");
  await api(d, "POST", `/v1/sessions/${other.json.id}/pause`, {});
  await page.waitForSelector(`[data-testid="session-item"][data-session-id="${other.json.id}"] [data-state="paused"]`);
  // "Resume all" shows only while some session is paused, and resumes them.
  await page.waitForSelector('[data-testid="resume-all"]', { state: "visible" });
  await page.click('[data-testid="resume-all"]');
  await page.waitForSelector(`[data-testid="session-item"][data-session-id="${other.json.id}"] [data-state="idle"]`);
  await page.waitForSelector('[data-testid="resume-all"]', { state: "hidden" });
  assert.equal((await api(d, "GET", `/v1/sessions/${other.json.id}`)).json.state, "idle");

  // Send "hello" with Enter; the reply streams in.
  await page.evaluate(() => {
    window.__sawStreaming = false;
    new MutationObserver(() => {
      if (document.querySelector('#log [data-streaming="true"]')) window.__sawStreaming = true;
    }).observe(document.getElementById("log"), { subtree: true, childList: true, attributes: true, characterData: true });
  });
  const usageText = () => page.textContent('[data-testid="chat-usage"]');
  assert.equal(await usageText(), "Tokens: none yet");
  await sendUI(page, "hello");
  await waitAssistant(page, "echo: hello");
  assert.equal(await page.evaluate(() => window.__sawStreaming), true, "the reply did not stream");
  // The header counts the model call's tokens as its message arrives (echo: one word
  // in, two out), and agrees with the session's view.
  await page.waitForFunction(
    () => document.querySelector('[data-testid="chat-usage"]').textContent === "Tokens: 1 in · 2 out",
    null,
    { timeout: 5000 },
  ).catch(async () => assert.fail(`usage in the header: ${await usageText()}`));
  assert.deepEqual((await api(d, "GET", `/v1/sessions/${sid}`)).json.usage, {
    input_tokens: 1,
    output_tokens: 2,
    cached_input_tokens: 0,
    model_calls: 1,
  });
  assert.equal(await page.inputValue('[data-testid="composer-input"]'), "");
  assert.deepEqual(
    (await messages(page)).map(([r, t]) => [r, t]),
    [
      ["user", "hello"],
      ["assistant", "echo: hello"],
    ],
  );

  // No layout shift while a slow reply streams.
  await page.evaluate(() => {
    window.__cls = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (!e.hadRecentInput) window.__cls += e.value;
    }).observe({ type: "layout-shift", buffered: false });
  });
  await sendUI(page, "/slow streaming without moving the rest of the page around, one delta at a time");
  await waitAssistant(page, "echo: streaming without moving the rest of the page around, one delta at a time", 20000);
  const cls = await page.evaluate(() => window.__cls);
  assert.ok(cls < 0.01, `layout shift while streaming: ${cls}`);
  // Live, turn after turn: the header shows the session's totals.
  const u = (await api(d, "GET", `/v1/sessions/${sid}`)).json.usage;
  assert.equal(u.model_calls, 2);
  const want = `Tokens: ${u.input_tokens} in · ${u.output_tokens} out`;
  await page.waitForFunction(
    (w) => document.querySelector('[data-testid="chat-usage"]').textContent === w,
    want,
    { timeout: 5000 },
  ).catch(async () => assert.fail(`usage in the header: ${await usageText()}, want ${want}`));

  // Shift+Enter adds a line; Enter sends.
  const input = page.locator('[data-testid="composer-input"]');
  await input.fill("");
  await input.type("line one");
  await input.press("Shift+Enter");
  await input.type("line two");
  assert.equal(await input.inputValue(), "line one\nline two");
  assert.equal((await messages(page)).length, 4, "Shift+Enter must not send");
  await input.press("Enter");
  await waitAssistant(page, "echo: line oneline two"); // the line break renders as <br>

  // Markdown is rendered, HTML in messages is not.
  await sendUI(page, "**bold** and `code <b>x</b>` <img src=x onerror=window.__xss=1>\n```\n<script>window.__xss=2</script>\n```");
  await page.waitForFunction(() => {
    const a = Array.from(document.querySelectorAll('#log [data-role="assistant"]')).pop();
    return a && a.dataset.streaming === "false" && a.textContent.includes("window.__xss=2");
  });
  const md = await page.evaluate(() => {
    const a = Array.from(document.querySelectorAll('#log [data-role="assistant"]')).pop();
    return {
      strong: a.querySelector("strong")?.textContent,
      code: a.querySelector("p code")?.textContent,
      pre: a.querySelector("pre code")?.textContent,
      img: document.querySelectorAll("#log img").length,
      script: document.querySelectorAll("#log script").length,
      b: document.querySelectorAll("#log b").length,
      xss: window.__xss,
    };
  });
  assert.equal(md.strong, "bold");
  assert.equal(md.code, "code <b>x</b>");
  assert.equal(md.pre, "<script>window.__xss=2</script>");
  assert.equal(md.img, 0);
  assert.equal(md.script, 0);
  assert.equal(md.b, 0);
  assert.equal(md.xss, undefined);

  // A tool call: approval card, Allow, live lane output, the final answer.
  await sendUI(page, "/run echo hi");
  await page.waitForSelector('[data-testid="approval"][data-status="pending"]');
  await page.waitForSelector('#chat-state[data-state="waiting_on_approval"]');
  await page.waitForSelector(`[data-testid="session-item"][data-session-id="${sid}"] [data-state="waiting_on_approval"]`);
  assert.equal(await page.textContent('[data-testid="approval-args"]'), "echo hi");
  await page.click('[data-testid="approval-allow"]');
  await page.waitForSelector('[data-testid="approval"][data-status="allow"]');
  await page.waitForFunction(() => {
    const o = document.querySelector('[data-testid="lane-output"]');
    return o && /\bhi\b/.test(o.textContent);
  });
  await page.waitForSelector('[data-testid="lane"][data-status="done"]');
  await page.waitForFunction(() =>
    Array.from(document.querySelectorAll('#log [data-role="assistant"]')).some((e) =>
      e.textContent.includes("echo: run_command returned:"),
    ),
  );
  await page.waitForSelector('#chat-state[data-state="idle"]');
  // The lane collapses and expands (and refreshes its status from lanes.list).
  await page.click('[data-testid="lane-toggle"]');
  assert.equal(await page.$eval('[data-testid="lane"]', (e) => e.open), false);
  await page.click('[data-testid="lane-toggle"]');
  assert.equal(await page.$eval('[data-testid="lane"]', (e) => e.open), true);

  // End the session.
  await page.click('[data-testid="action-end"]');
  await page.waitForSelector('#chat-state[data-state="ended"]');
  await page.waitForSelector(`[data-testid="session-item"][data-session-id="${sid}"] [data-state="ended"]`);
  assert.equal(await page.isDisabled('[data-testid="composer-send"]'), true);
  const view = await api(d, "GET", `/v1/sessions/${sid}`);
  assert.equal(view.json.state, "ended");

  // The view shows exactly the journal's messages, once each.
  const recs = await journal(d, sid);
  const jm = recs.filter((r) => r.kind === "session.message" && (r.data.role === "user" || r.data.text));
  const shown = await messages(page);
  assert.equal(shown.length, jm.length);
  assert.deepEqual(
    shown.map(([r]) => r),
    jm.map((r) => r.data.role),
  );

  // 6. Zero CSP violations, console errors or page errors along the whole path.
  assert.deepEqual(await problems.csp(), []);
  assert.deepEqual(problems.pageErrors, []);
  assert.deepEqual(problems.console, []);
});
