// The generated operations equal what gen.mjs makes of the current docs/openapi.json
// (so a catalog change that is not regenerated fails here), cover every operation,
// and the public types compile with `tsc --strict`.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { render, renderEvents } from '../gen.mjs';
import * as sdk from '../src/index.js';
import { OPERATIONS, operationGroups } from '../src/ops.js';
import { REPO } from './helpers.mjs';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const api = JSON.parse(readFileSync(join(REPO, 'docs', 'openapi.json'), 'utf8'));
const events = JSON.parse(readFileSync(join(REPO, 'docs', 'events.schema.json'), 'utf8'));

test('src/ops.js, src/ops.d.ts and src/events.d.ts are what gen.mjs makes of docs/', () => {
  const { js, dts } = render(api);
  assert.equal(readFileSync(join(pkg, 'src', 'ops.js'), 'utf8'), js, 'src/ops.js is stale: run node sdk/typescript/gen.mjs');
  assert.equal(readFileSync(join(pkg, 'src', 'ops.d.ts'), 'utf8'), dts, 'src/ops.d.ts is stale: run node sdk/typescript/gen.mjs');
  assert.equal(readFileSync(join(pkg, 'src', 'events.d.ts'), 'utf8'), renderEvents(events), 'src/events.d.ts is stale: run node sdk/typescript/gen.mjs');
  const check = spawnSync(process.execPath, [join(pkg, 'gen.mjs'), '--check'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(check.status, 0, check.stderr);
});

test('a change to the catalog changes the output, so drift cannot go unnoticed', () => {
  const changed = structuredClone(api);
  changed.paths['/v1/sessions/{session_id}/messages'].post.requestBody.content['application/json'].schema.properties.priority = { type: 'integer' };
  changed.paths['/v1/widgets'] = { get: { ...api.paths['/v1/sessions'].get, operationId: 'widget.list' } };
  const { js, dts } = render(changed);
  assert.notEqual(js, render(api).js);
  assert.match(js, /"widget\.list"/);
  assert.match(dts, /priority\?: number;/);
  assert.notEqual(dts, readFileSync(join(pkg, 'src', 'ops.d.ts'), 'utf8'));
  const moreEvents = structuredClone(events);
  moreEvents.records['session.renamed'] = { $ref: '#/$defs/SessionDelta' };
  assert.match(renderEvents(moreEvents), /"session\.renamed": SessionDelta;/);
});

test('every record kind the daemon knows has a payload type', () => {
  const dts = readFileSync(join(pkg, 'src', 'events.d.ts'), 'utf8');
  const kinds = api.components.schemas.EventKind.oneOf.map((k) => k.const);
  for (const k of kinds) assert.match(dts, new RegExp(`^  "${k.replace('.', '\\.')}": \\w+;$`, 'm'), `no payload type for ${k}`);
});

test('every operation of the document is a client method', () => {
  const ids = Object.values(api.paths).flatMap((item) => Object.values(item).map((op) => op.operationId));
  assert.ok(ids.length >= 40, `only ${ids.length} operations`);
  assert.deepEqual(Object.keys(OPERATIONS).sort(), [...ids].sort());
  const called = [];
  const groups = operationGroups(async (id) => called.push(id));
  for (const id of ids) {
    const [group, verb] = id.split('.');
    const fn = groups[group]?.[verb.replace(/_([a-z])/g, (_, c) => c.toUpperCase())];
    assert.equal(typeof fn, 'function', `no method for ${id}`);
    fn({});
  }
  assert.deepEqual(called.sort(), [...ids].sort());
  assert.equal(sdk.PROTOCOL, api.info.version);
});

test('every value index.d.ts declares is exported by index.js', () => {
  const dts = readFileSync(join(pkg, 'src', 'index.d.ts'), 'utf8');
  const declared = [...dts.matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]);
  const fromOps = [...readFileSync(join(pkg, 'src', 'ops.d.ts'), 'utf8').matchAll(/^export declare (?:const|function) (\w+)/gm)].map((m) => m[1]);
  assert.ok(declared.length >= 10);
  for (const name of declared) assert.ok(name in sdk, `index.d.ts declares ${name}, index.js does not export it`);
  for (const name of ['OPERATIONS', 'PROTOCOL']) assert.ok(fromOps.includes(name) && name in sdk);
  for (const name of Object.keys(sdk)) {
    assert.ok(declared.includes(name) || fromOps.includes(name), `index.js exports ${name}, index.d.ts does not declare it`);
  }
});

test('the types compile with tsc --strict, and misuse does not', () => {
  const tsc = join(pkg, 'node_modules', 'typescript', 'bin', 'tsc');
  assert.ok(existsSync(tsc), 'typescript is not installed: run `npm ci` in sdk/typescript (run-tests.sh does)');
  // The program checks the JS against its JSDoc and test/types-usage.ts against
  // index.d.ts, whose @ts-expect-error lines fail the build if misuse compiles.
  try {
    execFileSync(process.execPath, [tsc, '-p', join(pkg, 'tsconfig.json')], { encoding: 'utf8', timeout: 120_000 });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
});
