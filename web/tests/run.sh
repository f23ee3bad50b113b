#!/usr/bin/env bash
# The web UI's browser suite: real daemon, real Chromium (Debian's /usr/bin/chromium,
# never a downloaded browser), playwright-core + axe-core from web/tests/package-lock.json.
#
#   web/tests/run.sh                      # builds target/debug/r1 if needed, runs everything
#   R1_BIN=/path/to/r1 web/tests/run.sh   # against a given binary (no build)
#   web/tests/run.sh --test-name-pattern=perimeter   # extra args go to `node --test`
#
# Screenshots of every view (360 px and 1280 px, light and dark) land in
# web/tests/artifacts/ (or $R1_WEB_ARTIFACTS). The store's unit tests
# (store.unit.test.mjs) run with the rest; alone they need only node:
#   node --test web/tests/store.unit.test.mjs
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

# Chromium from the distribution.
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "web tests: installing Debian's chromium" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "web tests: $CHROMIUM not found. Install Chromium (Debian/Ubuntu: sudo apt-get install chromium)" >&2
    echo "           or point CHROMIUM at a Chromium/Chrome binary." >&2
    exit 2
  fi
fi

# Node 20+ and the locked test packages.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "web tests: node (20 or later) and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 2
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "web tests: node $(node --version) is too old; node 20 or later is needed" >&2
  exit 2
fi
if [ ! -f "$here/node_modules/.package-lock.json" ] ||
  [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ] ||
  [ ! -d "$here/node_modules/playwright-core" ] || [ ! -d "$here/node_modules/axe-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
fi

# The daemon binary.
if [ -z "${R1_BIN:-}" ]; then
  export R1_BIN="$repo/target/debug/r1"
  if [ "${R1_WEB_BUILD:-1}" != 0 ]; then
    (cd "$repo" && cargo build -q -p r1)
  fi
fi
if [ ! -x "$R1_BIN" ]; then
  echo "web tests: no r1 binary at $R1_BIN (cargo build -p r1, or set R1_BIN)" >&2
  exit 2
fi
export R1_BIN

cd "$repo"
exec node --test --test-concurrency="${R1_WEB_TEST_CONCURRENCY:-2}" "$@" web/tests/
