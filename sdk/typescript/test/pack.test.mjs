// The published package: no runtime dependencies, only the library's files, and it
// imports from a clean project with nothing else installed.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { tempRoot } from './helpers.mjs';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', timeout: 120_000, env: { ...process.env, npm_config_loglevel: 'error' } });

test('package.json: ESM, Node 20, exports, and no runtime dependencies', () => {
  assert.equal(manifest.name, '@r1/client');
  assert.equal(manifest.type, 'module');
  assert.equal(manifest.engines.node, '>=20');
  assert.deepEqual(manifest.exports['.'], { types: './src/index.d.ts', default: './src/index.js' });
  for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies', 'bundleDependencies', 'bundledDependencies']) {
    assert.equal(manifest[field], undefined, `package.json has ${field}`);
  }
});

test('npm pack holds the library and nothing else, and it runs with no node_modules', () => {
  const t = tempRoot('pack');
  try {
    const [info] = JSON.parse(npm(['pack', '--json', '--pack-destination', t.root], pkgDir));
    const files = info.files.map((f) => f.path).sort();
    for (const f of ['package.json', 'README.md', 'src/index.js', 'src/index.d.ts', 'src/ops.js', 'src/ops.d.ts', 'src/client.js', 'src/follow.js']) {
      assert.ok(files.includes(f), `${f} is not in the package`);
    }
    for (const f of files) assert.match(f, /^(package\.json|README\.md|src\/[\w.-]+\.(js|d\.ts))$/, `${f} should not be published`);
    // The tarball's own manifest declares no dependency either.
    const app = join(t.root, 'app');
    const dest = join(app, 'node_modules', '@r1', 'client');
    mkdirSync(dest, { recursive: true });
    execFileSync('tar', ['-xzf', join(t.root, info.filename), '-C', dest, '--strip-components=1'], { timeout: 30_000 });
    const packed = JSON.parse(readFileSync(join(dest, 'package.json'), 'utf8'));
    assert.equal(packed.dependencies, undefined);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', type: 'module', private: true }));
    const out = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', "const m = await import('@r1/client'); console.log(Object.keys(m).sort().join(','), typeof m.connectOrSpawn, Object.keys(m.OPERATIONS).length)"],
      { cwd: app, encoding: 'utf8', timeout: 30_000 },
    );
    assert.match(out, /R1Error.*connectOrSpawn/);
    assert.match(out, /function \d{2}/);
  } finally {
    t.cleanup();
    rmSync(join(pkgDir, `r1-client-${manifest.version}.tgz`), { force: true });
  }
});
