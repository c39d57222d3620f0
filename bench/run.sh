#!/usr/bin/env bash
# Runs every benchmark in bench/ (each prints its own figures) and appends
# the run to bench/RESULTS.md: date, commit, machine, and each benchmark's
# standard output.  A benchmark that fails is reported (and recorded as
# failed) and the others still run.  BENCH=name runs only the matching ones.
set -u
cd "$(dirname "$0")/.."
. scripts/lib.sh
SAY_AS=bench
export BUILD=${BUILD:-build}
RESULTS=bench/RESULTS.md
OUT=$(mktemp -d /tmp/rollcall-bench.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
status=0
ran=()
for b in bench/*.sh; do
    [ "$b" = bench/run.sh ] && continue
    [ -x "$b" ] || continue
    if [ -n "${BENCH:-}" ] && [[ "$b" != *"$BENCH"* ]]; then continue; fi
    echo "== $b"
    name=$(basename "$b" .sh)
    if "$b" | tee "$OUT/$name.out"; then
        ran+=("$name")
    else
        echo "benchmark $b failed"
        ran+=("$name (failed)")
        status=1
    fi
done
[ ${#ran[@]} -gt 0 ] || exit $status

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- 2>/dev/null || commit="$commit (with local changes)"
{
    printf '\n### %s, commit %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$commit"
    printf -- '- machine: %s, %s CPUs (%s), %s MiB RAM, %s\n' "$(hostname)" "$(nproc)" \
        "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
        "$(awk '/^MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)" "$(uname -sr)"
    printf -- '- load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    for name in "${ran[@]}"; do
        f=$OUT/${name%% *}.out
        printf '\n%s:\n\n```\n' "$name"
        [ -s "$f" ] && cat "$f"
        printf '```\n'
    done
} >>"$RESULTS"
say "appended to $RESULTS"
exit $status
