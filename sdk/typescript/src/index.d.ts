// The public types of @r1/client. Written by hand over the generated ./ops.d.ts;
// test/types.test.mjs compiles a program against them with `tsc --strict`, and checks
// that every value declared here is exported by index.js.

import type { SessionRecord } from './events.js';
import type { CallOptions, Handshake, OperationGroups, OperationId, OperationTypes } from './ops.js';

export * from './ops.js';
// The record types, typed by kind (docs/events.schema.json). Some payload names are
// also operation types (`SessionState`…), so the payloads come as one namespace.
export type { RecordData, RecordKind, SessionRecord } from './events.js';
export type * as events from './events.js';

/** One of the ten wire codes of r1's error taxonomy. */
export type ErrorCode =
  | 'validation'
  | 'not_found'
  | 'conflict'
  | 'append_only_violation'
  | 'permission_denied'
  | 'budget_exceeded'
  | 'timeout'
  | 'crash_recovery'
  | 'schema_version'
  | 'internal';

/**
 * Why an {@link R1Error} happened: `api` the daemon answered with an error envelope;
 * the others were raised by the SDK before any answer: `untrusted` a state file,
 * socket or port that is not the user's (code `permission_denied`), `unreachable` no
 * daemon answered (`crash_recovery`, or `timeout` for a call that ran out of time),
 * `incompatible` the daemon speaks another protocol (`schema_version`), `protocol`
 * an answer or an argument the SDK cannot use (`internal` or `validation`).
 */
export type ErrorReason = 'api' | 'untrusted' | 'unreachable' | 'incompatible' | 'protocol';

/** The ten wire codes. */
export declare const ERROR_CODES: readonly ErrorCode[];

/** Every failure the SDK reports. */
export declare class R1Error extends Error {
  constructor(
    code: ErrorCode,
    message: string,
    extra?: { status?: number; reason?: ErrorReason; cause?: unknown; links?: object },
  );
  readonly name: 'R1Error';
  /** One of the ten wire codes. */
  code: ErrorCode;
  /** The HTTP status of the daemon's answer; undefined when the SDK raised the error. */
  status: number | undefined;
  /** Why it happened. */
  reason: ErrorReason;
  /** The envelope's `links`, when the daemon sent one. */
  links: object | undefined;
}

/** What `daemon.json` holds: where the daemon listens. */
export interface Registration {
  id: string;
  pid: number;
  version: string;
  protocol: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** The unix socket's path. */
  sock: string;
  started_at: string;
  exe?: string;
  build_id?: string;
}

/** Where requests go. */
export type Target = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** How to reach the daemon. */
export interface ConnectOptions {
  /** The state directory (default `$R1_HOME`, else `~/.r1`): daemon.json and the token. */
  home?: string;
  /**
   * A unix socket to use instead of the one daemon.json names (default `$R1_SOCK`),
   * e.g. one forwarded over SSH. The token is still read from `home`; nothing is spawned.
   */
  sock?: string;
  /** Use loopback TCP with the token instead of the unix socket. */
  tcp?: boolean;
  /** Start a daemon when none answers (connectOrSpawn only; default true). */
  spawn?: boolean;
  /** The `r1` executable that starts the daemon (default `$R1_BIN`, else `r1` on PATH). */
  r1Bin?: string;
  /** How long connectOrSpawn waits for a started daemon to answer (default 10000). */
  spawnTimeoutMs?: number;
  /** How long the handshake probe may take (default 1000). */
  probeTimeoutMs?: number;
  /** How long a call waits for its answer (default 30000; long polls add their `wait_ms`). */
  requestTimeoutMs?: number;
}

/** How `follow` rides out disconnects. */
export interface FollowOptions {
  /** How long to keep trying to reach a daemon that went away (default 60000). */
  reconnectTimeoutMs?: number;
  /** A stream silent this long (no record, no heartbeat) is reopened (default 45000). */
  idleTimeoutMs?: number;
}

/**
 * A session's records, live, each typed by its `kind` (narrow on `rec.kind` to read
 * `rec.data`). Every seq is yielded once, in order, across reconnects
 * and daemon restarts; a `session.resync` record (not a journal record) says the
 * journal was cut back and where it goes on. Ends after `session.ended`.
 */
export declare class FollowStream implements AsyncIterableIterator<SessionRecord> {
  private constructor();
  /** The seq the next record will have. */
  readonly nextSeq: number;
  /** How many times the stream was reopened. */
  readonly reconnects: number;
  [Symbol.asyncIterator](): FollowStream;
  next(): Promise<IteratorResult<SessionRecord, void>>;
  /** Closes the stream, also while a `next()` waits. */
  return(): Promise<IteratorResult<SessionRecord, void>>;
}

/** The low-level request of {@link R1Client.request}. */
export interface RequestOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

/** A client of one daemon; every catalog operation is a method of its group. */
export interface R1Client extends OperationGroups {}
export declare class R1Client {
  private constructor();
  /** The state directory the token is read from. */
  readonly home: string;
  /** `unix` or `tcp`. */
  readonly transport: 'unix' | 'tcp';
  /** The socket path, or `host:port`. */
  readonly address: string;
  /** The registration connected by; null for a pinned socket. */
  readonly registration: Registration | null;
  /** Re-reads daemon.json and moves to the daemon it names (or probes the pinned socket again). */
  refresh(): Promise<void>;
  /** Calls an operation by its id. */
  call<K extends OperationId>(id: K, params?: OperationTypes[K]['params'], options?: CallOptions): Promise<OperationTypes[K]['result']>;
  /** Sends any request with the token and decodes the JSON answer. */
  request(method: string, path: string, body?: unknown, options?: RequestOptions): Promise<unknown>;
  /** A session's records from `sinceSeq` (inclusive, default 1) on, live. */
  follow(sessionId: string, sinceSeq?: number, options?: FollowOptions): FollowStream;
}

/** Connects to the running daemon (or the socket `sock` / `$R1_SOCK`) without starting one. */
export declare function connect(options?: ConnectOptions): Promise<R1Client>;
/** Connects to the daemon, starting one with `r1` when none answers. */
export declare function connectOrSpawn(options?: ConnectOptions): Promise<R1Client>;
/** The handshake of the daemon at `target`, without a token, and the protocol gate. */
export declare function probe(target: Target, timeoutMs?: number): Promise<Handshake>;

/** `$R1_HOME`, else `~/.r1`. */
export declare function defaultHome(): string;
/** Refuses a state directory that is a symlink, someone else's, or open to others. */
export declare function checkHome(home: string): void;
/** The registration in `home/daemon.json`, if there is a trusted, readable one. */
export declare function discover(home: string): Registration | null;
/** The token in `home/token`, after the same checks. */
export declare function readToken(home: string): string;
