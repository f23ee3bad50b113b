// The state of one open session, as a pure function of its journal: `reduce(state,
// record)` folds one typed record (docs/events.schema.json `records`) into the state
// the views render. No DOM, no I/O, no clock: the same records always give the same
// state, and `web/tests/store.unit.test.mjs` checks it on recorded journals in node.
//
// The state is never mutated: a reduce returns a new state object and shares every
// part it did not change. `reduceAll` folds many records at once and copies each part
// it changes only once, so replaying a 100,000-record journal stays linear.
//
// Memory stays bounded by the conversation, not by the journal: streamed deltas fold
// into their message, and a lane keeps the first LANE_HEAD_CHARS and the last
// LANE_TAIL_CHARS of its output (counting what it dropped between them).

/** Characters of a lane's output kept from its start. */
export const LANE_HEAD_CHARS = 64 * 1024;
/** Characters of a lane's output kept from its end, once the head is full. */
export const LANE_TAIL_CHARS = 64 * 1024;

/** The state of a session nothing is known of yet. */
export function initialState() {
  return {
    /** The newest record folded in; older or repeated ones are ignored. */
    lastSeq: 0,
    /** `session.created`'s data: what the session was started with. */
    info: null,
    /** The session's state as its records tell it (`idle`, `busy`, …), "" before any. */
    status: "",
    /** When `status` last changed (the record's `at`). */
    statusAt: "",
    /**
     * The timeline, oldest first; items are only ever appended, and each one that
     * changes is replaced by a new object (so a view compares items by identity).
     * Every item has a `key` unique in the timeline and a `type`:
     * - `message`: {role, text, streaming, interrupted, seq, at, messageId, replyTo,
     *   usage, toolCalls, turnUsage}
     * - `lane`: {lane, tool, args, status, output, tail, dropped, result, seq, seqLast}
     * - `approval`: {approvalId, tool, args, status: pending|allow|deny, reason, seq}
     * - `note`: {kind, text, tone: ""|"error", seq} (a record said something)
     * - `cortex`: {noteId, source, text, tags, critical, seq}
     */
    items: [],
    /** `lane:<id>` and `apr:<id>` → position in `items`. */
    index: new Map(),
    /** Position of the assistant message still streaming, or -1. */
    streamPos: -1,
    /** The session's tokens and cost: every model call journaled (as the daemon sums them). */
    usage: emptyUsage(),
    /** Tokens and cost per turn, by the user message id the turn answers. */
    turns: {},
    /** Lobes paused (true) or resumed (false) for this session, by name. */
    lobes: {},
    /** Set by `session.resync`: the journal was repaired; the client must start over. */
    resync: null,
  };
}

function emptyUsage() {
  return { input_tokens: 0, output_tokens: 0, cached_input_tokens: 0, model_calls: 0 };
}

/** `u` plus one model call's usage `add` (the daemon's `SessionUsage::add`). */
export function addUsage(u, add) {
  const out = {
    input_tokens: u.input_tokens + (add.input_tokens || 0),
    output_tokens: u.output_tokens + (add.output_tokens || 0),
    cached_input_tokens: u.cached_input_tokens + (add.cached_input_tokens || 0),
    model_calls: u.model_calls + 1,
  };
  if (typeof add.cost_usd === "number") out.cost_usd = (u.cost_usd || 0) + add.cost_usd;
  else if (typeof u.cost_usd === "number") out.cost_usd = u.cost_usd;
  return out;
}

/** The next state after `record` (`state` itself when the record changes nothing: one
 * already folded in, or not a record). */
export function reduce(state, record) {
  return reduceAll(state, [record]);
}

/** The state after every record of `records`, in order. */
export function reduceAll(state, records) {
  const d = new Draft(state);
  let changed = false;
  for (const rec of records) changed = step(d, rec) || changed;
  return changed ? d.done() : state;
}

/** The state with lane statuses from the daemon (`lanes.list` or `lanes.kill`'s answer). */
export function withLaneStatuses(state, lanes) {
  const d = new Draft(state);
  for (const lv of lanes || []) {
    if (!lv || !lv.lane || !lv.status) continue;
    const key = "lane:" + lv.lane;
    if (d.get(key)?.status === String(lv.status)) continue;
    const l = d.edit(key);
    if (l) l.status = String(lv.status);
  }
  return d.done();
}

/** A lane's output as shown: the kept head, a marker for what was dropped, the tail. */
export function laneText(lane) {
  if (!lane.dropped) return lane.output + lane.tail;
  return `${lane.output}\n… ${lane.dropped.toLocaleString("en-US")} characters not shown …\n${lane.tail}`;
}

// ---------------------------------------------------------------------------
// The draft: copy-on-write over one state, for one batch of records.

class Draft {
  constructor(base) {
    this.base = base;
    this.s = { ...base };
    this.ownItems = false;
    this.ownIndex = false;
    this.ownTurns = false;
    /** Items created or copied in this batch, safe to change in place. */
    this.owned = new Set();
  }

  done() {
    return this.s;
  }

  items() {
    if (!this.ownItems) {
      this.s.items = this.s.items.slice();
      this.ownItems = true;
    }
    return this.s.items;
  }

  turns() {
    if (!this.ownTurns) {
      this.s.turns = { ...this.s.turns };
      this.ownTurns = true;
    }
    return this.s.turns;
  }

  /** Appends `item`; returns its position. */
  add(item) {
    const items = this.items();
    items.push(item);
    this.owned.add(item);
    const pos = items.length - 1;
    if (item.key.startsWith("lane:") || item.key.startsWith("apr:")) {
      if (!this.ownIndex) {
        this.s.index = new Map(this.s.index);
        this.ownIndex = true;
      }
      this.s.index.set(item.key, pos);
    }
    return pos;
  }

  /** The item with `key` (read only), or undefined. */
  get(key) {
    const pos = this.s.index.get(key);
    return pos === undefined ? undefined : this.s.items[pos];
  }

  /** A writable copy of the item at `pos`, put in its place. */
  editAt(pos) {
    const items = this.items();
    let it = items[pos];
    if (!this.owned.has(it)) {
      it = { ...it };
      items[pos] = it;
      this.owned.add(it);
    }
    return it;
  }

  /** A writable copy of the item with `key`, or undefined. */
  edit(key) {
    const pos = this.s.index.get(key);
    return pos === undefined ? undefined : this.editAt(pos);
  }
}

// ---------------------------------------------------------------------------
// The records

/** Folds `rec` into the draft; false when it was skipped. */
function step(d, rec) {
  if (!rec || typeof rec !== "object") return false;
  if (rec.kind === "session.resync") {
    // Not journaled (no seq of its own): the journal was repaired behind this view.
    d.s.resync = { ...(rec.data || {}) };
    return true;
  }
  if (typeof rec.seq !== "number" || rec.seq <= d.s.lastSeq) return false; // already folded in
  d.s.lastSeq = rec.seq;
  const handler = Object.prototype.hasOwnProperty.call(RECORDS, rec.kind) ? RECORDS[rec.kind] : null;
  if (handler) handler(d, rec.data && typeof rec.data === "object" ? rec.data : {}, rec);
  return true;
}

/** One handler per record kind of the schema; a kind not here is skipped (after its seq). */
const RECORDS = {
  "session.created"(d, data, rec) {
    d.s.info = { ...data };
    note(d, rec, `Session started in ${data.workdir || "its working directory"}.`);
  },
  "session.message"(d, data, rec) {
    if (data.role === "user") {
      finishStream(d, { interrupted: true });
      d.add({
        type: "message",
        key: "m" + rec.seq,
        role: "user",
        text: String(data.text ?? ""),
        streaming: false,
        interrupted: false,
        seq: rec.seq,
        at: rec.at || "",
        messageId: data.message_id || "",
        replyTo: "",
        usage: null,
        toolCalls: [],
        turnUsage: null,
      });
      return;
    }
    // An assistant step: its usage counts for the session and its turn.
    const replyTo = data.reply_to || "";
    const toolCalls = Array.isArray(data.tool_calls) ? data.tool_calls : [];
    let turnUsage = null;
    if (data.usage) {
      d.s.usage = addUsage(d.s.usage, data.usage);
      if (replyTo) {
        d.turns()[replyTo] = addUsage(d.s.turns[replyTo] || emptyUsage(), data.usage);
      }
    }
    // The last step of a turn (no tool calls) shows what the whole turn cost.
    if (!toolCalls.length && replyTo && d.s.turns[replyTo]) turnUsage = d.s.turns[replyTo];
    const fields = { usage: data.usage || null, toolCalls, turnUsage, replyTo };
    if (d.s.streamPos >= 0) {
      const m = d.editAt(d.s.streamPos);
      Object.assign(m, fields, { text: data.text ?? m.text, streaming: false, seq: rec.seq });
      d.s.streamPos = -1;
    } else if (data.text) {
      d.add({
        type: "message",
        key: "m" + rec.seq,
        role: "assistant",
        text: String(data.text),
        streaming: false,
        interrupted: false,
        seq: rec.seq,
        at: rec.at || "",
        messageId: "",
        ...fields,
      });
    }
  },
  "session.delta"(d, data, rec) {
    if (d.s.streamPos < 0) {
      d.s.streamPos = d.add({
        type: "message",
        key: "m" + rec.seq,
        role: "assistant",
        text: "",
        streaming: true,
        interrupted: false,
        seq: rec.seq,
        at: rec.at || "",
        messageId: "",
        replyTo: data.reply_to || "",
        usage: null,
        toolCalls: [],
        turnUsage: null,
      });
    }
    const m = d.editAt(d.s.streamPos);
    m.text += String(data.text ?? "");
  },
  "session.state"(d, data, rec) {
    setStatus(d, data.state, rec);
  },
  "session.paused"(d, data, rec) {
    note(d, rec, "Paused.");
    setStatus(d, "paused", rec);
  },
  "session.resumed"(d, data, rec) {
    note(d, rec, "Resumed.");
  },
  "session.cancelled"(d, data, rec) {
    finishStream(d, { interrupted: true });
    note(d, rec, "Turn cancelled.");
  },
  "session.ended"(d, data, rec) {
    finishStream(d, { interrupted: true });
    note(d, rec, "Session ended.");
    setStatus(d, "ended", rec);
  },
  "session.error"(d, data, rec) {
    finishStream(d, { interrupted: true });
    note(d, rec, "Error: " + (data.message || "the turn failed"), "error");
  },
  "session.resync"() {
    // Handled before the seq check in `step` (it has none of its own).
  },
  "daemon.reloaded"(d, data, rec) {
    note(d, rec, "The daemon restarted. Tool calls that were running were closed.");
  },
  "session.compacted"(d, data, rec) {
    if (data.usage) d.s.usage = addUsage(d.s.usage, data.usage);
    note(
      d,
      rec,
      (data.method === "summary" ? "The earlier conversation was summarized" : "The oldest turns were dropped") +
        ` to fit the model's context (${data.tokens_before} → ${data.tokens_after} tokens).`,
    );
  },
  "hook.ran"(d, data, rec) {
    // `event` is the hook's own name without an extension; say it only when they differ.
    note(
      d,
      rec,
      `Hook ${data.hook}` +
        (data.hook === data.event ? "" : ` (${data.event})`) +
        ` ran in ${data.duration_ms} ms` +
        (data.action ? `: ${data.action}` : "") +
        (data.reason ? ` (${data.reason})` : "") +
        ".",
    );
  },
  "hook.failed"(d, data, rec) {
    note(d, rec, `Hook ${data.hook} failed: ${data.reason}`, "error");
  },
  "hook.blocked"(d, data, rec) {
    note(d, rec, `Hook ${data.hook} blocked a message: ${data.reason}`, "error");
  },
  "cortex.note"(d, data, rec) {
    d.add({
      type: "cortex",
      key: "c" + rec.seq,
      noteId: data.note_id || "",
      source: String(data.source ?? ""),
      text: String(data.text ?? ""),
      tags: Array.isArray(data.tags) ? data.tags.map(String) : [],
      critical: !!data.critical,
      seq: rec.seq,
      at: rec.at || "",
    });
  },
  "cortex.lobe"(d, data, rec) {
    d.s.lobes = { ...d.s.lobes, [data.lobe]: !!data.paused };
    note(d, rec, `Lobe ${data.lobe} ${data.paused ? "paused" : "resumed"} for this session.`);
  },
  "approval.requested"(d, data, rec) {
    finishStream(d, { interrupted: false });
    const key = "apr:" + data.approval_id;
    if (d.get(key)) return;
    d.add({
      type: "approval",
      key,
      approvalId: String(data.approval_id ?? ""),
      tool: data.tool || "tool",
      args: data.args ?? null,
      status: "pending",
      reason: "",
      seq: rec.seq,
      at: rec.at || "",
    });
  },
  "approval.resolved"(d, data) {
    const a = d.edit("apr:" + data.approval_id);
    if (!a) return;
    a.status = data.decision === "allow" ? "allow" : "deny";
    a.reason = data.reason || "";
  },
  "lane.created"(d, data, rec) {
    lane(d, data.lane || rec.lane, rec, data.tool);
  },
  "tool.started"(d, data, rec) {
    const l = lane(d, data.lane || (rec.lane !== "main" ? rec.lane : data.call_id), rec, data.tool);
    l.args = data.args ?? null;
  },
  "lane.delta"(d, data, rec) {
    appendOutput(lane(d, data.lane || rec.lane, rec), String(data.text ?? ""));
  },
  "lane.status"(d, data, rec) {
    const l = d.edit("lane:" + (data.lane || rec.lane));
    if (l) l.status = String(data.status || "");
  },
  "lane.killed"(d, data, rec) {
    const l = d.edit("lane:" + (data.lane || rec.lane));
    if (l) l.status = "killed";
  },
  "tool.completed"(d, data, rec) {
    const key = data.lane || (rec.lane !== "main" ? rec.lane : data.external ? data.call_id : null);
    if (!key) {
      // A call that never ran in a lane: denied, or refused before it started.
      if (data.denied || data.is_error) {
        note(d, rec, `${data.tool || "The tool"} did not run: ${data.content || "denied"}`, data.denied ? "" : "error");
      }
      return;
    }
    const l = lane(d, key, rec, data.tool);
    if (data.external || !["killed", "cancelled", "failed"].includes(l.status)) {
      l.status = data.is_error ? "failed" : "done";
    }
    const content = String(data.content ?? "");
    if (data.is_error && content) l.result = content;
    else if (!l.output && !l.tail && content) appendOutput(l, content);
  },
  "verify.completed"(d, data, rec) {
    const l = data.lane ? d.edit("lane:" + data.lane) : undefined;
    if (l && l.status === "running") l.status = data.ok ? "done" : "failed";
    note(d, rec, `Verify ${data.step}: ${data.summary || (data.ok ? "ok" : "failed")}`, data.ok ? "" : "error");
  },
};

/** The record kinds `reduce` understands (each has a handler). */
export const KINDS = Object.freeze(Object.keys(RECORDS));

function note(d, rec, text, tone = "") {
  d.add({ type: "note", key: "n" + rec.seq, kind: rec.kind, text, tone, seq: rec.seq, at: rec.at || "" });
}

function setStatus(d, state, rec) {
  if (!state) return;
  d.s.status = String(state);
  d.s.statusAt = rec.at || "";
}

/** Ends the streaming message, if any: `interrupted` when no final message will come. */
function finishStream(d, { interrupted }) {
  if (d.s.streamPos < 0) return;
  const m = d.editAt(d.s.streamPos);
  m.streaming = false;
  if (interrupted) m.interrupted = true;
  d.s.streamPos = -1;
}

/** The writable lane `id`, opened (running) when it is new; `rec` is its newest record. */
function lane(d, id, rec, tool) {
  const key = "lane:" + id;
  let l = d.edit(key);
  if (!l) {
    const pos = d.add({
      type: "lane",
      key,
      lane: String(id),
      tool: tool || "",
      args: undefined,
      status: "running",
      output: "",
      tail: "",
      dropped: 0,
      result: "",
      seq: rec.seq,
      seqLast: rec.seq,
      at: rec.at || "",
    });
    l = d.s.items[pos];
  }
  if (tool && !l.tool) l.tool = tool;
  l.seqLast = rec.seq;
  return l;
}

function appendOutput(l, text) {
  if (!text) return;
  if (l.output.length < LANE_HEAD_CHARS) {
    const room = LANE_HEAD_CHARS - l.output.length;
    l.output += text.slice(0, room);
    text = text.slice(room);
    if (!text) return;
  }
  let tail = l.tail + text;
  if (tail.length > LANE_TAIL_CHARS) {
    l.dropped += tail.length - LANE_TAIL_CHARS;
    tail = tail.slice(tail.length - LANE_TAIL_CHARS);
  }
  l.tail = tail;
}
