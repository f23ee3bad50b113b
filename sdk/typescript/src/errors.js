// R1Error: every failure the SDK reports, with one of the daemon's ten wire codes.

/**
 * The ten wire codes of r1's error taxonomy (`r1_proto::ErrorCode`).
 * @type {readonly import('./index.js').ErrorCode[]}
 */
export const ERROR_CODES = Object.freeze([
  'validation',
  'not_found',
  'conflict',
  'append_only_violation',
  'permission_denied',
  'budget_exceeded',
  'timeout',
  'crash_recovery',
  'schema_version',
  'internal',
]);

/**
 * An error from the daemon (its envelope: `code`, `message`, and the HTTP `status`
 * it came with), or one the SDK raised before any answer, mapped onto the same codes
 * as the Rust client maps them: an untrusted file or listener is `permission_denied`,
 * an unreachable daemon `crash_recovery`, one speaking another protocol
 * `schema_version`, an answer this SDK cannot read `internal`. Those have no
 * `status`; `reason` tells every case apart.
 */
export class R1Error extends Error {
  /**
   * @param {import('./index.js').ErrorCode} code
   * @param {string} message
   * @param {{ status?: number, reason?: import('./index.js').ErrorReason, cause?: unknown, links?: object }} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'R1Error';
    /** One of the ten wire codes. */
    this.code = code;
    /** The HTTP status of the daemon's answer; undefined when the SDK raised it. */
    this.status = extra.status;
    /** Why: `api` (the daemon answered), `untrusted`, `unreachable`, `incompatible`, `protocol`. */
    this.reason = extra.reason ?? (extra.status === undefined ? 'protocol' : 'api');
    /** The envelope's `links`, when the daemon sent one. */
    this.links = extra.links;
  }
}

/** @param {string} message */
export const untrusted = (message) => new R1Error('permission_denied', message, { reason: 'untrusted' });

/** @param {string} message @param {unknown} [cause] */
export const unreachable = (message, cause) =>
  new R1Error('crash_recovery', `cannot reach the r1 daemon: ${message}`, { reason: 'unreachable', cause });

/** @param {string} message */
export const protocolError = (message) =>
  new R1Error('internal', `unexpected answer from the daemon: ${message}`, { reason: 'protocol' });

/**
 * The error of a non-2xx answer: its envelope, or a protocol error when the body is not one.
 * @param {number} status
 * @param {string} body
 */
export function fromResponse(status, body) {
  let env;
  try {
    env = JSON.parse(body);
  } catch {
    env = undefined;
  }
  if (env && env.ok === false && typeof env.error_code === 'string' && typeof env.error_message === 'string') {
    return new R1Error(env.error_code, env.error_message, { status, reason: 'api', links: env.links });
  }
  const e = protocolError(`status ${status} without an error envelope`);
  e.status = status;
  return e;
}
