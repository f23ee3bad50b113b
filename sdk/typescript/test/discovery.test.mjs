// Discovery, trust checks, the unix socket, TCP, a pinned (forwarded) socket, and
// connect-or-spawn from nothing, against the real daemon.

import assert from 'node:assert/strict';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { checkHome, connect, connectOrSpawn, discover, R1Error, readToken } from '../src/index.js';
import { R1_BIN, alive, forwardSocket, startDaemon, stopPid, tempRoot, tokenOf } from './helpers.mjs';

const t = tempRoot('discovery');
let daemon;

before(async () => {
  daemon = await startDaemon(t.home);
});
after(async () => {
  await daemon?.stop();
  t.cleanup();
});

/** A state directory of its own (0700) under the test root. */
function dir(name, mode = 0o700) {
  const d = join(t.root, name);
  mkdirSync(d, { mode });
  chmodSync(d, mode);
  return d;
}

/** Asserts `p` rejects with an R1Error of `code` whose message matches `re`. */
async function rejectsWith(p, code, re, reason) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof R1Error, `not an R1Error: ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    if (reason) assert.equal(e.reason, reason);
    return true;
  });
}

describe('discovery and trust', () => {
  test('reads the registration the daemon wrote', () => {
    const reg = discover(t.home);
    assert.equal(reg.pid, daemon.pid);
    assert.equal(reg.protocol, 'r1.proto.v1');
    assert.equal(reg.sock, join(t.home, 'r1.sock'));
    assert.equal(readToken(t.home), tokenOf(t.home).trim());
  });

  test('refuses a group-readable token, and sends nothing', async () => {
    const h = dir('groupread');
    copyFileSync(join(t.home, 'daemon.json'), join(h, 'daemon.json'));
    writeFileSync(join(h, 'token'), tokenOf(t.home), { mode: 0o640 });
    chmodSync(join(h, 'token'), 0o640);
    assert.throws(() => readToken(h), (e) => e instanceof R1Error && e.code === 'permission_denied' && /token/.test(e.message) && /mode 640/.test(e.message));
    // The probe needs no token, so connecting works; the first call refuses to read it.
    const c = await connect({ home: h });
    await rejectsWith(c.daemon.health(), 'permission_denied', /refusing .*token/, 'untrusted');
    chmodSync(join(h, 'token'), 0o600);
    assert.equal((await c.daemon.health()).status, 'ok');
  });

  test('refuses a symlinked daemon.json', async () => {
    const h = dir('symlinked');
    copyFileSync(join(t.home, 'daemon.json'), join(h, 'real.json'));
    symlinkSync(join(h, 'real.json'), join(h, 'daemon.json'));
    copyFileSync(join(t.home, 'token'), join(h, 'token'));
    await rejectsWith(connect({ home: h }), 'permission_denied', /refusing .*daemon\.json.*symlink/, 'untrusted');
    await rejectsWith(connectOrSpawn({ home: h, r1Bin: R1_BIN }), 'permission_denied', /daemon\.json/);
  });

  test('refuses a symlinked token', async () => {
    const h = dir('symtoken');
    copyFileSync(join(t.home, 'daemon.json'), join(h, 'daemon.json'));
    symlinkSync(join(t.home, 'token'), join(h, 'token'));
    const c = await connect({ home: h });
    await rejectsWith(c.session.list(), 'permission_denied', /token.*symlink/);
  });

  test('refuses a state directory open to others, or a symlink to one', async () => {
    const open = dir('open', 0o755);
    await rejectsWith(connect({ home: open }), 'permission_denied', /has mode 755.*chmod 700/);
    assert.throws(() => checkHome(open), R1Error);
    const link = join(t.root, 'homelink');
    symlinkSync(t.home, link);
    await rejectsWith(connect({ home: link }), 'permission_denied', /is a symlink/);
  });

  test('refuses files owned by another user', { skip: process.geteuid() !== 0 && 'needs root to chown' }, async () => {
    const h = dir('otheruid');
    copyFileSync(join(t.home, 'daemon.json'), join(h, 'daemon.json'));
    chownSync(join(h, 'daemon.json'), 65534, 65534);
    await rejectsWith(connect({ home: h }), 'permission_denied', /owned by uid 0.*uid 65534/);
  });

  test('no daemon: connect says so instead of spawning', async () => {
    const h = dir('empty');
    await rejectsWith(connect({ home: h }), 'crash_recovery', /no r1 daemon is running/, 'unreachable');
    await rejectsWith(connectOrSpawn({ home: h, spawn: false }), 'crash_recovery', /no r1 daemon is running/);
    assert.equal(existsSync(join(h, 'daemon.json')), false);
  });

  test('a daemon speaking another protocol is schema_version', async () => {
    const h = dir('incompatible');
    const sock = join(h, 'r1.sock');
    const server = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ protocol: 'r1.proto.v0', version: '0.0.1', pid: 4242, daemon_id: 'd_x', started_at: '' }));
    });
    await new Promise((r) => server.listen(sock, r));
    try {
      const reg = { ...JSON.parse(readFileSync(join(t.home, 'daemon.json'), 'utf8')), sock };
      writeFileSync(join(h, 'daemon.json'), JSON.stringify(reg), { mode: 0o600 });
      await rejectsWith(connect({ home: h }), 'schema_version', /speaks r1\.proto\.v0.*kill 4242/, 'incompatible');
    } finally {
      server.close();
    }
  });
});

describe('transports', () => {
  test('unix socket by default', async () => {
    const c = await connect({ home: t.home });
    assert.equal(c.transport, 'unix');
    assert.equal(c.address, join(t.home, 'r1.sock'));
    const h = await c.daemon.health();
    assert.equal(h.status, 'ok');
    assert.equal(c.registration.pid, daemon.pid);
  });

  test('loopback TCP with the token', async () => {
    const c = await connect({ home: t.home, tcp: true });
    assert.equal(c.transport, 'tcp');
    assert.equal(`http://${c.address}`, discover(t.home).url);
    const s = await c.daemon.status();
    assert.equal(s.pid, daemon.pid);
  });

  test('a pinned socket (sock option and R1_SOCK), as forwarded over SSH', async () => {
    // A client machine: a forwarded socket and a state dir holding only the token.
    const fwd = dir('forward');
    const local = join(fwd, 'r1.sock');
    const forward = await forwardSocket(local, join(t.home, 'r1.sock'));
    try {
      const remote = dir('remote-token');
      writeFileSync(join(remote, 'token'), tokenOf(t.home), { mode: 0o600 });
      const c = await connect({ home: remote, sock: local });
      assert.equal(c.transport, 'unix');
      assert.equal(c.address, local);
      assert.equal(c.registration, null);
      assert.equal((await c.daemon.status()).pid, daemon.pid);

      process.env.R1_SOCK = local;
      try {
        const viaEnv = await connectOrSpawn({ home: remote, r1Bin: '/nonexistent/r1' });
        assert.equal(viaEnv.address, local);
        assert.equal((await viaEnv.daemon.health()).status, 'ok');
      } finally {
        delete process.env.R1_SOCK;
      }

      // The token is still the one in `home`, checked the same way.
      const noToken = dir('remote-none');
      const c2 = await connect({ home: noToken, sock: local });
      await rejectsWith(c2.daemon.health(), 'crash_recovery', /no token in/);

      // A symlink to the socket is not followed.
      const link = join(fwd, 'link.sock');
      symlinkSync(local, link);
      await rejectsWith(connect({ home: remote, sock: link }), 'permission_denied', /symlink/);
    } finally {
      await forward.close();
    }
  });
});

describe('connect-or-spawn', () => {
  test('starts a daemon from nothing and waits for it', async () => {
    const home = join(t.root, 'fresh', 'r1');
    mkdirSync(join(t.root, 'fresh'), { mode: 0o700 });
    assert.equal(existsSync(home), false);
    const c = await connectOrSpawn({ home, r1Bin: R1_BIN, spawnTimeoutMs: 15_000 });
    const pid = c.registration.pid;
    try {
      assert.equal(statSync(home).mode & 0o777, 0o700);
      assert.ok(alive(pid));
      assert.equal((await c.daemon.health()).status, 'ok');
      // A second client finds the same daemon and starts nothing.
      const again = await connectOrSpawn({ home, r1Bin: '/nonexistent/r1' });
      assert.equal(again.registration.pid, pid);
    } finally {
      await stopPid(pid);
    }
  });

  test('a missing r1 binary is a clear error', async () => {
    const h = dir('nobin');
    await assert.rejects(connectOrSpawn({ home: h, r1Bin: join(t.root, 'no-such-r1') }), (e) => {
      assert.equal(e.code, 'crash_recovery');
      assert.match(e.message, /no r1 executable at .*no-such-r1/);
      return true;
    });
  });
});
