#!/usr/bin/env bash
# The Makefile's set-up with and without pip's byte-compiling, each into a new venv.
#
#     bash bench/setup_speed.sh [ROUNDS]
#
# Each round makes a venv and runs the Makefile's two pip commands (the torch wheel, then
# `-e .[all]`) once as they were (pip byte-compiles every installed module) and once with
# --no-compile (the Makefile's now), alternating. pip's download cache is shared, so every
# venv after the first installs from the same cached wheels. Prints the seconds of each,
# the best of each, and their ratio. Time it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
torch=$(sed -n 's/^TORCH ?= //p' Makefile)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
best_compile=""; best_nocompile=""
for r in $(seq "$rounds"); do
  for mode in compile nocompile; do
    flag=""; [ "$mode" = nocompile ] && flag=--no-compile
    rm -rf "$tmp/venv"
    start=$(date +%s.%N)
    python3 -m venv "$tmp/venv"
    "$tmp/venv/bin/pip" install -q $flag "$torch" 2>/dev/null
    "$tmp/venv/bin/pip" install -q $flag -e ".[all]" 2>/dev/null
    secs=$(python3 -c "print($(date +%s.%N) - $start)")
    printf 'round %s: %-9s %6.1f s\n' "$r" "$mode" "$secs"
    if [ "$mode" = compile ]; then
      best_compile=$(echo "$secs ${best_compile:-$secs}" | awk '{print ($1 < $2) ? $1 : $2}')
    else
      best_nocompile=$(echo "$secs ${best_nocompile:-$secs}" | awk '{print ($1 < $2) ? $1 : $2}')
    fi
  done
done
printf 'byte-compiling %.1f s, --no-compile %.1f s, ratio %.2fx\n' "$best_compile" "$best_nocompile" \
  "$(python3 -c "print($best_compile / $best_nocompile)")"
