#!/usr/bin/env bash
# The Python peer (python_pipeline.py) on one county, in seconds: the check
# that the peer works, without a national run.  On the embedded stack of this
# checkout: Rollcall's consumers and the broker are stopped, a fresh broker
# started, and bench/lib/peer.sh plays the county's day (loadgen --direct
# --unit) into it while the peer consumes — the path bench/national-day.sh
# --direct takes for the nation.  The peer's own check (its province totals
# against a SUM over its latest table) decides the exit status; it also says
# whether its province rows agree with rollcall.aggregate, which holds the
# county's day only if Rollcall has been given it (e.g. `rollcall loadgen
# --direct --unit 130102 --wait 60` with the same seed, before).  The
# services are started again at the end.  The county must be in the registry:
# 130102, the stack's sample county, is imported from
# tests/data/registry-130102.csv when it is not.
#
#   bench/peers/county.sh [--unit CODE] [--seed N] [--period YYYY-MM-DD]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export ROLLCALL_PORT_BASE=${ROLLCALL_PORT_BASE:-25400}
OUT=var/bench
RUN=var/run
UNIT=130102
SEED=1
PERIOD=$(TZ=Asia/Shanghai date -d yesterday +%F)
while [ $# -gt 0 ]; do
    case $1 in
        --unit) UNIT=$2; shift ;;
        --seed) SEED=$2; shift ;;
        --period) PERIOD=$2; shift ;;
        *) echo "usage: $0 [--unit CODE] [--seed N] [--period YYYY-MM-DD]" >&2; exit 2 ;;
    esac
    shift
done
SAY_AS=peer-county
. scripts/lib.sh

[ -x "$BUILD/rollcall" ] || die "$BUILD/rollcall is not built (make)"
mkdir -p "$OUT"
BUILD=$BUILD deploy/stack.sh up >&2
stack_env
if [ "$(psql_at "$ROLLCALL_PG_DSN" -c "SELECT count(*) FROM rollcall.unit WHERE code = '$UNIT'")" = 0 ]; then
    [ "$UNIT" = 130102 ] || die "unit $UNIT is not in the registry (rollcall registry import)"
    "$BUILD/rollcall" registry import --csv tests/data/registry-130102.csv >&2
fi

CONSUMERS=(village rollup township county province)
stop_pidfiles "$RUN" "${CONSUMERS[@]}" devbroker
BUILD=$BUILD deploy/stack.sh up >&2
stack_env
stop_pidfiles "$RUN" "${CONSUMERS[@]}"
status=0
if peer=$(BUILD=$BUILD bench/lib/peer.sh "$ROLLCALL_PG_DSN" "$PERIOD" "$SEED" "$OUT" "$UNIT" \
              --compare-rollcall --idle 5); then
    read -r peer_s consume_s rollup_s msgs verdict <<<"$peer"
    echo "python peer, county $UNIT day $PERIOD: ${peer_s} s (consume ${consume_s} + rollups ${rollup_s}; ${msgs} messages; its check ${verdict})"
    [ "$verdict" = ok ] || status=1
else
    echo "python peer, county $UNIT day $PERIOD: FAILED (see $OUT/peer.log)"
    status=1
fi
# The stack as it was found: up (a fresh broker: the county's messages go).
stop_pidfiles "$RUN" devbroker
BUILD=$BUILD deploy/stack.sh up >&2
exit $status
