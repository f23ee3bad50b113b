#!/usr/bin/env bash
# Re-vendors the view library of the web UI: Preact, its hooks, htm and Preact Signals,
# at the versions pinned below, from npm. The browser imports them as ES modules with
# no build step and no import map (an inline import map would need a CSP exception), so
# the one change made to the published files is that their bare import specifiers
# ("preact", "preact/hooks", "@preact/signals-core") are rewritten to the sibling files.
# README.md (one level up) lists the upstream and vendored sha256 of each file.
#
#   bash web/vendor/preact/update.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREACT=10.29.8
HTM=3.1.1
SIGNALS=2.11.4
SIGNALS_CORE=1.14.5
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
for spec in "preact@$PREACT" "htm@$HTM" "@preact/signals@$SIGNALS" "@preact/signals-core@$SIGNALS_CORE"; do
  tgz="$(npm pack --silent "$spec")"
  dir="${tgz%.tgz}"
  mkdir -p "$dir"
  tar xzf "$tgz" -C "$dir"
done
copy() { # copy SRC DEST: one published file, bare specifiers made relative
  sed -e 's#from"preact/hooks"#from"./hooks.module.js"#g' \
      -e 's#from"preact"#from"./preact.module.js"#g' \
      -e 's#from"@preact/signals-core"#from"./signals-core.module.js"#g' \
      "$1" >"$here/$2"
  echo "$2: upstream $(sha256sum <"$1" | cut -c1-64) vendored $(sha256sum <"$here/$2" | cut -c1-64)"
}
copy "preact-$PREACT/package/dist/preact.module.js" preact.module.js
copy "preact-$PREACT/package/hooks/dist/hooks.module.js" hooks.module.js
copy "htm-$HTM/package/dist/htm.module.js" htm.module.js
copy "preact-signals-core-$SIGNALS_CORE/package/dist/signals-core.module.js" signals-core.module.js
copy "preact-signals-$SIGNALS/package/dist/signals.module.js" signals.module.js
cp "preact-$PREACT/package/LICENSE" "$here/LICENSE-preact"
cp "htm-$HTM/package/LICENSE" "$here/LICENSE-htm"
cp "preact-signals-$SIGNALS/package/LICENSE" "$here/LICENSE-signals"
# Nothing bare may be left: the browser could not resolve it.
if grep -l 'from"[^.][^"]*"' "$here"/*.module.js; then
  echo "a bare import specifier is left in the files above" >&2
  exit 1
fi
