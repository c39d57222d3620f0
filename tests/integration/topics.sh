#!/usr/bin/env bash
# `rollcall topics`: the plan prints every pipeline topic, and `create`
# against the development broker (which cannot create topics) fails at once
# with an error that says so, instead of waiting out the Admin API's timeout.
set -euo pipefail
cd "$(dirname "$0")/../.."
set -a; . var/stack.env; set +a
BUILD=${ROLLCALL_BUILD:-build}
failed=0
fail() { echo "FAIL: $*"; failed=$((failed+1)); }

plan=$("$BUILD/rollcall" topics plan --partitions.reports.village=48)
for t in reports.village reports.urgent reports.township reports.county reports.province \
         rollups.township rollups.county rollups.province reports.dlq reminders escalations; do
    grep -q "^$t " <<<"$plan" || fail "plan lacks $t"
done
grep -Eq '^reports.village +48 ' <<<"$plan" || fail "plan ignores --partitions.reports.village: $plan"

t0=$(date +%s%N)
rc=0; out=$("$BUILD/rollcall" topics create 2>&1) || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ "$rc" -ne 1 ]; then
    fail "topics create on the development broker: exit $rc, expected 1: $out"
elif ! grep -q 'does not support CreateTopics' <<<"$out" || ! grep -q 'development' <<<"$out"; then
    fail "topics create: the error does not name the development broker's limit: $out"
elif [ "$ms" -gt 5000 ]; then
    fail "topics create took $ms ms to say the broker cannot create topics"
else
    echo "ok: topics create on the development broker: exit 1 in $ms ms: $(head -1 <<<"$out")"
fi

rc=0; out=$("$BUILD/rollcall" topics create --kafka_brokers= 2>&1) || rc=$?
[ "$rc" -eq 2 ] && grep -q 'no Kafka brokers' <<<"$out" || fail "no brokers: exit $rc: $out"
rc=0; out=$("$BUILD/rollcall" topics frobnicate 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "unknown subcommand: exit $rc"
rc=0; out=$("$BUILD/rollcall" topics plan --partitions.reports.village=0 2>&1) || rc=$?
[ "$rc" -eq 2 ] && grep -q 'partitions.reports.village' <<<"$out" || fail "bad count: exit $rc: $out"

echo "topics: $failed failed"
[ "$failed" -eq 0 ]
