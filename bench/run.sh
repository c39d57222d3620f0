#!/usr/bin/env bash
# Runs every benchmark in bench/ (each prints its own figures).  A benchmark
# that fails is reported and the others still run.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
status=0
for b in bench/*.sh; do
    [ "$b" = bench/run.sh ] && continue
    [ -x "$b" ] || continue
    if [ -n "${BENCH:-}" ] && [[ "$b" != *"$BENCH"* ]]; then continue; fi
    echo "== $b"
    "$b" || { echo "benchmark $b failed"; status=1; }
done
exit $status
