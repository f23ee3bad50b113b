#!/usr/bin/env bash
# r1's MCP server driven by the real Node clients: the TypeScript MCP SDK and the MCP
# Inspector CLI, pinned in package-lock.json, over stdio (`r1 mcp serve`) and `/mcp`
# (tools, r1_lanes_subscribe, resources, logging, completion, a headless TUI, r1.web.*
# with the pinned @playwright/mcp and Debian's Chromium); then the official MCP
# conformance suite's server scenarios against `/mcp` (conformance.sh).
#
#   crates/r1/tests/mcp_node/run.sh                     # builds target/debug/r1 if needed
#   R1_BIN=/path/to/r1 crates/r1/tests/mcp_node/run.sh  # against a given binary (no build)
#   crates/r1/tests/mcp_node/run.sh --test-name-pattern=Inspector   # extra args go to `node --test`
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"

# Node 20+ (what CI has; Inspector 0.15.0 is the newest release that supports it) and
# the locked packages.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "MCP node tests: node (20 or later) and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 2
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "MCP node tests: node $(node --version) is too old; node 20 or later is needed" >&2
  exit 2
fi
if [ ! -f "$here/node_modules/.package-lock.json" ] ||
  [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ] ||
  [ ! -d "$here/node_modules/@modelcontextprotocol/sdk" ] ||
  [ ! -d "$here/node_modules/@modelcontextprotocol/inspector" ] ||
  [ ! -d "$here/node_modules/@playwright/mcp" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
fi

# The binary under test.
if [ -z "${R1_BIN:-}" ]; then
  export R1_BIN="$repo/target/debug/r1"
  (cd "$repo" && cargo build -q -p r1)
fi
if [ ! -x "$R1_BIN" ]; then
  echo "MCP node tests: no r1 binary at $R1_BIN (cargo build -p r1, or set R1_BIN)" >&2
  exit 2
fi
export R1_BIN

cd "$here"
status=0
# tui.test.mjs web.test.mjs: r1.web.* runs the @playwright/mcp installed here with Debian's Chromium
# ($CHROMIUM, default /usr/bin/chromium; .ci/test's web suite installs it first).
node --test --test-concurrency=2 "$@" sdk.test.mjs inspector.test.mjs subscribe.test.mjs resources.test.mjs tui.test.mjs web.test.mjs || status=$?
# The official MCP conformance suite's server scenarios against /mcp (Node 22, which
# conformance.sh installs from npm). Skipped when only some tests were asked for.
if [ "$#" -eq 0 ]; then
  bash "$here/conformance.sh" || status=$?
fi
exit "$status"
