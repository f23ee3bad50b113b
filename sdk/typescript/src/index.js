// @r1/client: a zero-dependency client of the r1 daemon for Node 20 and later.

export { R1Client, connect, connectOrSpawn, probe } from './client.js';
export { FollowStream } from './follow.js';
export { ERROR_CODES, R1Error } from './errors.js';
export { checkHome, defaultHome, discover, readToken } from './discovery.js';
export { OPERATIONS, PROTOCOL } from './ops.js';
