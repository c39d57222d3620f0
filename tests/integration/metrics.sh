#!/usr/bin/env bash
# Every running Rollcall service answers /healthz and its /metrics passes
# `promtool check metrics`.  Reads the stack's pid files and ports.
set -euo pipefail
cd "$(dirname "$0")/../.."
SAY_AS=metrics
. scripts/lib.sh
stack_env
BASE=${ROLLCALL_PORT_BASE:-25400}
command -v promtool >/dev/null || { echo "SKIP: promtool not installed"; exit 0; }
checked=0; failed=0
for entry in village:80 rollup:81 township:82 county:83 province:84 dashboard:86; do
    name=${entry%%:*}; port=$((BASE + ${entry##*:}))
    [ -f "var/run/$name.pid" ] && kill -0 "$(cat "var/run/$name.pid")" 2>/dev/null || continue
    if ! curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null; then
        echo "FAIL: rollcall-$name /healthz"; failed=$((failed+1)); continue
    fi
    if out=$(curl -fsS "http://127.0.0.1:$port/metrics" | promtool check metrics 2>&1); then
        echo "ok: rollcall-$name /metrics passes promtool"
    else
        echo "FAIL: rollcall-$name /metrics: $out"; failed=$((failed+1))
    fi
    checked=$((checked+1))
done
echo "$checked services checked, $failed failed"
[ "$failed" -eq 0 ]
