// The transport: one WebSocket per tab to the daemon (JSON-RPC 2.0 on /v1/ws, the
// token in the subprotocol), reconnecting with backoff, and the login that gets the
// token. It knows nothing of the views: the app gives it hooks.

const TOKEN_KEY = "r1.token";
const PROTOCOL = "r1.proto.v1";
const BEARER = "r1.bearer";
/** Reconnect delays (ms); the last one repeats. */
const BACKOFF = [250, 500, 1000, 2000, 3000, 5000];
/** Failed attempts in a row before the banner says offline (~20 s). */
const OFFLINE_AFTER = 7;
/** While offline, a slow retry keeps going in the background. */
const OFFLINE_RETRY_MS = 10000;

/** A client-made id (`web-…`), e.g. a message's idempotency key. */
export function newId() {
  if (crypto.randomUUID) return "web-" + crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return "web-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------
// Transport

export class RpcError extends Error {
  constructor(err) {
    super((err && err.message) || "request failed");
    this.code = err && err.code;
    this.errorCode = err && err.data && err.data.error_code;
  }
}

/**
 * One WebSocket to the daemon, reconnecting with backoff. `hooks`: onOpen, onClose,
 * onEvent (each `$/event`'s params), onStatus(state, detail), onAuthFailed. After a
 * reconnect the app resubscribes each stream from the seq after the last it saw.
 */
export class Connection {
  constructor(token, hooks) {
    this.token = token;
    this.hooks = hooks;
    this.ws = null;
    this.nextId = 0;
    this.pending = new Map();
    this.attempts = 0;
    this.everOpen = false;
    this.timer = null;
    this.stopped = false;
    this.state = "idle";
  }

  setState(state, detail = "") {
    this.state = state;
    this.hooks.onStatus(state, detail);
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "bye");
  }

  retryNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (this.ws) return;
    this.attempts = Math.min(this.attempts, OFFLINE_AFTER - 1);
    this.connect();
  }

  connect() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.timer);
    if (this.attempts >= OFFLINE_AFTER) this.setState("offline");
    else if (this.everOpen || this.attempts > 0) this.setState("reconnecting", `attempt ${this.attempts + 1}`);
    else this.setState("connecting");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let ws;
    try {
      ws = new WebSocket(scheme + location.host + "/v1/ws", [PROTOCOL, BEARER, this.token]);
    } catch (e) {
      this.attempts++;
      this.schedule();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
      this.attempts = 0;
      this.everOpen = true;
      this.setState("connected");
      this.hooks.onOpen();
    });
    ws.addEventListener("message", (ev) => this.dispatch(ev.data));
    ws.addEventListener("close", (ev) => {
      if (this.ws === ws) this.ws = null;
      for (const p of this.pending.values()) {
        p.reject(new RpcError({ message: "the connection to the daemon closed", data: { error_code: "offline" } }));
      }
      this.pending.clear();
      if (this.stopped) return;
      this.hooks.onClose(ev);
      if (ev.code === 1002) {
        // The daemon speaks another protocol version: retrying will not help.
        this.stopped = true;
        this.setState("offline", ev.reason || "protocol mismatch: reload the page");
        return;
      }
      this.attempts++;
      if (!opened && (this.attempts <= 2 || this.attempts % 5 === 0)) this.checkCredential();
      this.schedule();
    });
  }

  schedule() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    let delay;
    if (this.attempts >= OFFLINE_AFTER) {
      this.setState("offline");
      delay = OFFLINE_RETRY_MS;
    } else {
      this.setState("reconnecting", `attempt ${this.attempts + 1}`);
      delay = BACKOFF[Math.min(this.attempts - 1, BACKOFF.length - 1)] || BACKOFF[0];
    }
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** After a refused handshake: is the daemon up but the token wrong? */
  async checkCredential() {
    try {
      const r = await fetch("/v1/handshake", {
        headers: { Authorization: "Bearer " + this.token },
        cache: "no-store",
        credentials: "omit",
      });
      if (r.status === 401) {
        this.stop();
        this.hooks.onAuthFailed();
      }
    } catch {
      // The daemon is down: keep reconnecting.
    }
  }

  dispatch(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg && msg.method === "$/event" && msg.params) {
      this.hooks.onEvent(msg.params);
      return;
    }
    if (msg && msg.id !== undefined && this.pending.has(msg.id)) {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new RpcError(msg.error));
      else p.resolve(msg.result);
    }
  }

  call(method, params = {}) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new RpcError({ message: "not connected to the daemon", data: { error_code: "offline" } }));
    }
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
    });
  }
}

// ---------------------------------------------------------------------------
// Login

/** The token: from a `#code=` login link (exchanged once), else from this tab's storage. */
export async function obtainToken() {
  const hash = location.hash.startsWith("#") ? location.hash.slice(1) : "";
  const code = new URLSearchParams(hash).get("code");
  if (location.hash) {
    // Scrub the fragment from the address bar and from history before anything else.
    history.replaceState(null, "", location.pathname + location.search);
  }
  let error = null;
  if (code) {
    try {
      const r = await fetch("/v1/auth/exchange", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code }),
        cache: "no-store",
        credentials: "omit",
      });
      const body = await r.json().catch(() => null);
      if (r.ok && body && typeof body.token === "string" && body.token) {
        sessionStorage.setItem(TOKEN_KEY, body.token);
        return { token: body.token };
      }
      if (r.status === 401 || r.status === 403) {
        error = "This login link has already been used or has expired. Run r1 open again for a new one.";
      } else {
        error = "The daemon refused the login link" + (body && body.error_message ? ": " + body.error_message : ` (HTTP ${r.status}).`);
      }
    } catch {
      error = "Could not reach the r1 daemon. Start it (r1 serve), then run r1 open again.";
    }
  }
  const stored = sessionStorage.getItem(TOKEN_KEY);
  if (stored) return { token: stored };
  return { token: null, error };
}

/** Forgets this tab's token (the daemon refused it). */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}
