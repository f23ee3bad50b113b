#!/usr/bin/env bash
# The Python SDK's suite: install sdk/python into a throwaway venv (proving that
# `pip install ./sdk/python` works), then run its unittest suite against the real
# daemon, importing the installed package, never the source tree.
#   R1_BIN=/path/to/r1 bash sdk/python/run-tests.sh     (default: target/debug/r1)
set -euo pipefail
sdk="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$sdk/../.." && pwd)"
export R1_BIN="${R1_BIN:-$repo/target/debug/r1}"
[ -x "$R1_BIN" ] || { echo "no r1 binary at $R1_BIN: build it (cargo build) or set R1_BIN" >&2; exit 1; }
python="${PYTHON:-python3}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# A venv when the interpreter can make one (Debian needs python3-venv for that);
# otherwise pip's --target into a directory put on PYTHONPATH.
# pip builds the package with setuptools fetched from PyPI; without a network it falls
# back on a setuptools already installed (--no-build-isolation).
install() {
  "$@" -q --disable-pip-version-check "$sdk" 2>"$tmp/pip.err" ||
    "$@" -q --disable-pip-version-check --no-build-isolation "$sdk" 2>>"$tmp/pip.err" ||
    { cat "$tmp/pip.err" >&2; echo "pip install ./sdk/python failed" >&2; exit 1; }
}
if "$python" -m venv "$tmp/venv" >/dev/null 2>&1 && [ -x "$tmp/venv/bin/python" ]; then
  py="$tmp/venv/bin/python"
  install "$py" -m pip install
else
  py="$python"
  install "$py" -m pip install --target "$tmp/site"
  export PYTHONPATH="$tmp/site"
fi

# The generator's own check, as a developer would run it.
"$python" "$sdk/gen.py" --check

# From the tests directory, so `import r1client` finds the installed copy.
cd "$sdk/tests"
"$py" -c 'import r1client, sys; sys.exit(0 if r1client.__file__.startswith(sys.argv[1]) else 1)' "$tmp" || {
  echo "r1client was not imported from the fresh install" >&2; exit 1; }
PYTHONDONTWRITEBYTECODE=1 timeout 900 "$py" -m unittest discover -v -s . -p 'test_*.py'
