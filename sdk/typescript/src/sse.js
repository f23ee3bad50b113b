// A reader of text/event-stream bodies: the daemon's event streams.

/**
 * One server-sent event.
 * @typedef {{ id: string | undefined, event: string, data: string }} SseFrame
 */

/**
 * Parses one frame (the text between blank lines); null for a frame with nothing in
 * it (a heartbeat comment).
 * @param {string} raw
 * @returns {SseFrame | null}
 */
export function parseFrame(raw) {
  /** @type {string | undefined} */
  let id;
  let event = '';
  const data = [];
  for (const line of raw.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (id === undefined && event === '' && data.length === 0) return null;
  return { id, event: event || 'message', data: data.join('\n') };
}

/**
 * The frames of a streaming response, skipping heartbeats. The body is destroyed
 * when `signal` aborts or when nothing at all (not even a heartbeat) arrives for
 * `idleMs`: the daemon sends a heartbeat every 15 s, so a longer silence means the
 * connection is dead without having been closed (a suspended laptop, a dropped SSH
 * forward). Ends when the body ends; throws when it breaks.
 * @param {import('node:http').IncomingMessage} res
 * @param {{ idleMs: number, signal?: AbortSignal }} opts
 * @returns {AsyncGenerator<SseFrame, void, void>}
 */
export async function* readFrames(res, { idleMs, signal }) {
  res.setEncoding('utf8');
  let timer = setTimeout(() => res.destroy(new Error(`no data for ${idleMs} ms`)), idleMs);
  const onAbort = () => res.destroy();
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  let buf = '';
  try {
    for await (const chunk of res) {
      clearTimeout(timer);
      timer = setTimeout(() => res.destroy(new Error(`no data for ${idleMs} ms`)), idleMs);
      buf += String(chunk).replace(/\r\n?/g, '\n');
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const frame = parseFrame(buf.slice(0, end));
        buf = buf.slice(end + 2);
        if (frame) yield frame;
      }
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    res.destroy();
  }
}
