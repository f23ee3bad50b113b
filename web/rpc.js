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
/** The daemon closes a socket opened with a token it no longer accepts (`r1 ctl rotate-token`). */
const CLOSE_TOKEN_ROTATED = 4001;
/** The daemon speaks another protocol version (WebSocket "protocol error"). */
const CLOSE_PROTOCOL_ERROR = 1002;

/** The protocol this page speaks. */
export { PROTOCOL };

/** Which build of r1 answered a handshake: its version and build id (`<bytes>-<mtime ns>`). */
function buildIdentity(h) {
  return `${h.version}|${h.build_id || ""}`;
}

/**
 * The daemon builds `before` and `now` for people, as "A → B": the versions when they
 * differ, else each build's time (from its build id), else the build ids.
 */
export function upgradeText(before, now) {
  if (before.version !== now.version) return `${before.version} → ${now.version}`;
  const built = (h) => {
    const m = /^\d+-(\d+)$/.exec(h.build_id || "");
    if (!m) return h.build_id || "unknown build";
    const t = new Date(Number(m[1]) / 1e6);
    return Number.isNaN(t.getTime()) ? h.build_id : "built " + t.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  };
  let a = built(before);
  let b = built(now);
  if (a === b) [a, b] = [before.build_id, now.build_id];
  return `${now.version}, ${a} → ${b}`;
}

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
 * onEvent (each `$/event`'s params), onStatus(state, detail), onAuthFailed, and
 * (optional) onIncompatible(theirs, message) and onUpgraded(before, now) (two
 * handshakes). After a reconnect the app resubscribes each stream from the seq after
 * the last it saw.
 *
 * After each (re)connect the daemon's handshake (GET /v1/handshake) is read before
 * the app is told the connection is open: a daemon that speaks another protocol
 * stops the transport for good (state "incompatible", no more retries: reloading
 * the page is the way on), and one whose version or build differs from the one this
 * page first met (upgraded and restarted under the open tab) is reported once per
 * change. A close with 4001 (the token was rotated) goes to sign-in at once.
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
    /** The first handshake this page read, and the build last reported as new. */
    this.firstSeen = null;
    this.reported = null;
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
    ws.addEventListener("open", async () => {
      this.attempts = 0;
      this.everOpen = true;
      const verdict = await this.checkDaemon();
      // The socket may have closed (or the transport stopped) while the handshake was read.
      if (verdict !== "ok" || this.ws !== ws || this.stopped) return;
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
      if (ev.code === CLOSE_TOKEN_ROTATED) {
        // The token this tab holds was rotated: only a new sign-in helps.
        this.authFailed();
        return;
      }
      if (ev.code === CLOSE_PROTOCOL_ERROR) {
        // The daemon speaks another protocol version: retrying will not help. Its
        // handshake names the version; the close reason does when that cannot be read.
        this.stopped = true;
        const named = (/speaks (r1\.proto\.[^\s,;]+)/.exec(ev.reason || "") || [])[1] || "";
        const theirs = (r) => {
          const p = r && r.handshake && r.handshake.protocol;
          return p && p !== PROTOCOL ? p : named;
        };
        this.readHandshake().then(
          (r) => this.incompatible(theirs(r)),
          () => this.incompatible(named),
        );
        return;
      }
      this.attempts++;
      // A refused socket, or one that was open and closed: ask the daemon at once
      // whether the token is still good, so a rotation never waits for backoff rounds.
      if (this.attempts <= 2 || this.attempts % 5 === 0) this.checkCredential();
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

  /** GET /v1/handshake with this tab's token: `{status, handshake}`; throws when the daemon is down. */
  async readHandshake() {
    const r = await fetch("/v1/handshake", {
      headers: { Authorization: "Bearer " + this.token },
      cache: "no-store",
      credentials: "omit",
    });
    const handshake = r.ok ? await r.json().catch(() => null) : null;
    return { status: r.status, handshake };
  }

  /** After a refused or closed socket: is the daemon up but the token wrong, or the protocol? */
  async checkCredential() {
    try {
      const { status, handshake } = await this.readHandshake();
      if (this.stopped) return;
      if (status === 401) this.authFailed();
      else if (handshake && handshake.protocol !== PROTOCOL) this.incompatible(handshake.protocol);
    } catch {
      // The daemon is down: keep reconnecting.
    }
  }

  /**
   * Right after a socket opened: the daemon's handshake decides whether this page can
   * talk to it. "ok", "auth" (token refused), or "incompatible"; a handshake that
   * cannot be read (the socket is open, so the daemon is up) does not stop the page.
   */
  async checkDaemon() {
    let status, handshake;
    try {
      ({ status, handshake } = await this.readHandshake());
    } catch {
      return "ok";
    }
    if (this.stopped) return "stopped";
    if (status === 401) {
      this.authFailed();
      return "auth";
    }
    if (!handshake) return "ok";
    if (handshake.protocol !== PROTOCOL) {
      this.incompatible(handshake.protocol);
      return "incompatible";
    }
    if (!this.firstSeen) this.firstSeen = handshake;
    const now = buildIdentity(handshake);
    if (now !== buildIdentity(this.firstSeen) && now !== this.reported) {
      this.reported = now;
      if (this.hooks.onUpgraded) this.hooks.onUpgraded(this.firstSeen, handshake);
    }
    return "ok";
  }

  /** The token was refused: stop for good and let the app ask for a new sign-in. */
  authFailed() {
    if (this.stopped && this.state === "signed-out") return;
    this.stop();
    this.setState("signed-out", "the daemon refused this tab's token");
    this.hooks.onAuthFailed();
  }

  /** The daemon speaks `theirs`, not this page's protocol: stop for good and say so. */
  incompatible(theirs) {
    this.stop();
    const msg = `This page speaks ${PROTOCOL} but the daemon speaks ${theirs || "another protocol"}: reload the page.`;
    this.setState("incompatible", msg);
    if (this.hooks.onIncompatible) this.hooks.onIncompatible(theirs, msg);
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
