#!/usr/bin/env bash
# The tests of @r1/client (sdk/typescript) against the real r1 daemon.
#
#   sdk/typescript/run-tests.sh                        # against $repo/target/debug/r1
#   R1_BIN=/path/to/r1 sdk/typescript/run-tests.sh     # against a given binary
#   sdk/typescript/run-tests.sh --test-name-pattern=follow   # extra args go to `node --test`
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "sdk/typescript tests: node (20 or later) and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 2
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "sdk/typescript tests: node $(node --version) is too old; node 20 or later is needed" >&2
  exit 2
fi

# The development tools (typescript, @types/node) as locked; the package has no
# runtime dependencies.
if node -e 'process.exit(Object.keys(require(process.argv[1]).devDependencies || {}).length ? 0 : 1)' "$here/package.json"; then
  if [ ! -f "$here/node_modules/.package-lock.json" ] ||
    [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
  fi
fi

export R1_BIN="${R1_BIN:-$repo/target/debug/r1}"
if [ ! -x "$R1_BIN" ]; then
  echo "sdk/typescript tests: no r1 binary at $R1_BIN (cargo build -p r1, or set R1_BIN)" >&2
  exit 2
fi

cd "$here"
exec node --test --test-concurrency=2 "$@" test/*.test.mjs
