#!/usr/bin/env bash
# The CLI in a fresh venv holding only the declared dependencies (`pip install .`, no
# extras): a dependency the full dev venv happens to have (click, which typer stopped
# installing) can no longer hide. Checks: --help works; a usage error and a command that
# needs a missing extra each print one `error:` line and exit 2.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q . >"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log"; exit 1; }
cli="$tmp/venv/bin/tinykws"

"$cli" --help >/dev/null
expect_error() {  # expect_error PATTERN ARGS...: exit 2, one stderr line `error: ...PATTERN`
  local pattern=$1 rc=0
  shift
  "$cli" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$rc" != 2 ] || [ "$(wc -l <"$tmp/err")" != 1 ] || ! grep -q "^error: .*$pattern" "$tmp/err"; then
    echo "fresh-venv CLI: 'tinykws $*' gave exit $rc, expected exit 2 and one line 'error: ...$pattern':"
    cat "$tmp/err"
    exit 1
  fi
}
expect_error "No such command" bogus
expect_error "Missing argument" detect
expect_error "tinykws\[train\]" train --features "$tmp/none" --out "$tmp/run"
echo "fresh-venv CLI: ok (declared dependencies only)"
