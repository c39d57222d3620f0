#!/usr/bin/env bash
# The Python peer (bench/peers/python_pipeline.py) on one reporting day, on
# the running broker and PostgreSQL: the peer starts first, and once it holds
# its partitions `rollcall loadgen --direct` produces the day into
# reports.village, so that the peer consumes while the day is produced, as
# the rollup does (the development broker keeps only the newest ~5 MiB of a
# partition: a national day read afterwards would have lost its start).
# The day is the one `loadgen --seed SEED --period PERIOD` plays: the message
# count the peer waits for comes from a dry run of the same plan.
#
# The caller provides a broker whose reports.village holds nothing else (a
# fresh development broker) and stops Rollcall's consumers, which would
# otherwise take the day a second time beside the peer.  Prints the peer's
# check lines on stderr and one line on stdout: elapsed seconds (first message
# consumed -> rollups committed), consume seconds, rollup seconds, messages,
# and ok or FAILED.  Extra arguments go to the peer (e.g. --compare-rollcall).
#
#   bench/lib/peer.sh CONNINFO PERIOD SEED OUTDIR UNIT|all [PEER_OPTIONS...]
#
# ROLLCALL_KAFKA_BROKERS names the broker; PYTHON the interpreter with
# Debian's python3-confluent-kafka, python3-psycopg2 and python3-protobuf
# (default /usr/bin/python3).
set -euo pipefail
[ $# -ge 5 ] || { echo "usage: $0 CONNINFO PERIOD SEED OUTDIR UNIT|all [PEER_OPTIONS...]" >&2; exit 2; }
dsn=$1 period=$2 seed=$3 out=$4 unit=$5
shift 5
cd "$(dirname "$0")/../.."
RC=${BUILD:-build}/rollcall
PYTHON=${PYTHON:-/usr/bin/python3}
SAY_AS=peer
. scripts/lib.sh

[ -n "${ROLLCALL_KAFKA_BROKERS:-}" ] || die "ROLLCALL_KAFKA_BROKERS is not set" >&2
"$PYTHON" -c 'import confluent_kafka, psycopg2, google.protobuf' 2>/dev/null \
    || die "$PYTHON lacks confluent_kafka, psycopg2 or google.protobuf (deploy/install-deps.sh)" >&2
mkdir -p "$out"
day=(--period "$period" --seed "$seed" --dsn "$dsn")
[ "$unit" = all ] || day+=(--unit "$unit")

plan=$("$RC" loadgen --dry-run "${day[@]}" --quiet)
expect=$(echo "$plan" | sed -n 's/.* messages=\([0-9]*\).*/\1/p')
[ -n "$expect" ] && [ "$expect" -gt 0 ] || die "loadgen --dry-run planned no messages: $plan" >&2

ready=$out/peer.ready
rm -f "$ready"
"$PYTHON" bench/peers/python_pipeline.py --brokers "$ROLLCALL_KAFKA_BROKERS" --dsn "$dsn" \
    --expect "$expect" --ready-file "$ready" "$@" >"$out/peer.out" 2>"$out/peer.log" &
peer_pid=$!
for _ in $(seq 1 600); do
    [ -s "$ready" ] && break
    kill -0 "$peer_pid" 2>/dev/null || break
    sleep 0.1
done
if [ ! -s "$ready" ]; then
    kill "$peer_pid" 2>/dev/null || true
    wait "$peer_pid" 2>/dev/null || true
    cat "$out/peer.log" >&2
    die "the peer did not get its partitions (see $out/peer.log)" >&2
fi

say "$expect messages: loadgen --direct ${day[*]} beside the peer"
"$RC" loadgen --direct "${day[@]}" --quiet >"$out/peer-loadgen.txt" \
    || say "loadgen failed: $(cat "$out/peer-loadgen.txt")"
peer_status=0
wait "$peer_pid" || peer_status=$?
grep -v '^peer=' "$out/peer.out" >&2 || true
summary=$(grep '^peer=' "$out/peer.out" || true)
[ -n "$summary" ] || { cat "$out/peer.log" >&2; die "the peer printed no summary (exit $peer_status)" >&2; }
field() { echo "$summary" | sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p"; }
verdict=ok
[ "$peer_status" = 0 ] && [ "$(field check)" = ok ] || verdict=FAILED
echo "$(field elapsed_s) $(field consume_s) $(field rollup_s) $(field messages | sed 's/^$/0/') $verdict"
