#!/usr/bin/env bash
# A dead-letter storm: STORM (600,000) village reports for a period the
# rollup refuses (DAYS_AGO, default 500, days old: beyond its max_past_days,
# 400 by default) produced straight into reports.village on the stack's
# broker with kcat while the stack's rollup consumes, then one good report
# for today through the intake.  Prints the messages sent, the dead letters
# stored for them (rollcall.dead_letter), how many the broker dropped before
# the rollup read them (the development broker keeps only ~5 MiB a
# partition), the rollup's peak RSS during the storm (VmHWM, reset first;
# target <= 64 MB), the rollup log lines the storm produced (target:
# bounded, a count per reason per interval, not a line per message), the
# seconds to drain, and whether the good report was archived.
#
# The payloads: one Report encoded by protoc, its report_id and unit_code
# rewritten in place for each message (same lengths, so the wire format
# holds); keys "storm-N" over 1,024 values, which spread the storm over every
# partition.  Environment: STORM, DAYS_AGO, DRAIN_S (the longest wait for
# the dead letters, default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
STORM=${STORM:-600000}
DAYS_AGO=${DAYS_AGO:-500}
DRAIN_S=${DRAIN_S:-600}
SAY_AS=dlq-storm
. scripts/lib.sh
command -v kcat >/dev/null || die "kcat is not installed"
command -v protoc >/dev/null || die "protoc is not installed"
command -v python3 >/dev/null || die "python3 is not installed"

BUILD=$BUILD deploy/stack.sh up >/dev/null 2>&1 || die "the stack did not start"
stack_env
WORK=$(mktemp -d /tmp/rollcall-bench-storm.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PIDF=var/run/rollup.pid
LOG=var/log/rollup.log
rollup_pid() { cat "$PIDF"; }
status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$(rollup_pid)/status"; }

"$BUILD/rollcall" registry import --csv tests/data/registry-130102.csv >/dev/null 2>&1 \
    || die "registry import failed"
PERIOD=$(TZ=Asia/Shanghai date -d "$DAYS_AGO days ago" +%F)
TODAY=$(TZ=Asia/Shanghai date +%F)
RUN=$(printf '%08x' $(( $(date +%s) & 0xffffffff )))

# ---- the payloads
now_us=$(date +%s%6N)
cat >"$WORK/report.txt" <<TXT
report_id: "00000000-0000-4000-8000-000000000000"
unit_code: "130102001001"
level: LEVEL_VILLAGE
period: "$PERIOD"
kind: KIND_DAILY
version: $now_us
received_at: $now_us
submitter: "storm"
indicators { households_visited: 3 persons_screened: 9 }
zone_status: ZONE_STATUS_NORMAL
TXT
protoc --encode=rollcall.Report -I proto proto/rollcall.proto \
    <"$WORK/report.txt" >"$WORK/report.bin" || die "protoc could not encode the report"
awk -F, '$4 == "village" { print $1 }' tests/data/registry-130102.csv >"$WORK/villages"
# One message a record: key, KEY_SEP, payload, MSG_SEP (neither separator
# can occur in a key or a payload: no payload byte is 0x01 followed by 0x02).
KEY_SEP=$'\x01\x02KEY\x02\x01'
MSG_SEP=$'\x01\x02END\x02\x01'
python3 - "$WORK/report.bin" "$WORK/villages" "$STORM" "$RUN" "$WORK/storm.in" <<'PY'
import sys
tpl = open(sys.argv[1], 'rb').read()
villages = [v.encode() for v in open(sys.argv[2]).read().split()]
n, run, out = int(sys.argv[3]), sys.argv[4], sys.argv[5]
rid0 = b'00000000-0000-4000-8000-000000000000'
i_rid, i_unit = tpl.index(rid0), tpl.index(b'130102001001')
a, b, c = tpl[:i_rid], tpl[i_rid + 36:i_unit], tpl[i_unit + 12:]
ksep, msep = b'\x01\x02KEY\x02\x01', b'\x01\x02END\x02\x01'
with open(out, 'wb') as f:
    for i in range(n):
        rid = ('%s-%04x-4000-8000-%012x' % (run, (i >> 48) & 0xffff, i & 0xffffffffffff)).encode()
        f.write(b'storm-%d' % (i % 1024) + ksep + a + rid + b + villages[i % len(villages)] + c + msep)
PY
say "$STORM reports for $PERIOD ($(wc -c <"$WORK/report.bin") bytes each) ready"

# ---- before
SINCE=$(psql_at "$ROLLCALL_PG_DSN" -c "SELECT now()")
dead_count() {
    psql_at "$ROLLCALL_PG_DSN" -c "SELECT count(*) FROM rollcall.dead_letter
        WHERE topic = 'reports.village' AND received_at >= '$SINCE'
          AND reason LIKE 'invalid: period:%'"
}
high_sum() {
    kcat -Q -b "$ROLLCALL_KAFKA_BROKERS" $(for p in $(seq 0 31); do printf -- '-t reports.village:%d:-1 ' "$p"; done) 2>/dev/null \
        | awk '{ s += $NF } END { print s + 0 }'
}
# The peak counts from here (writing 5 to clear_refs resets VmHWM).
echo 5 >"/proc/$(rollup_pid)/clear_refs" 2>/dev/null || say "could not reset VmHWM: the peak is the process's"
rss0=$(status_kb VmRSS)
lines0=$(wc -l <"$LOG")
hw0=$(high_sum)

# ---- the storm, and a sampler of the rollup's RSS meanwhile
( peak=0; while :; do r=$(status_kb VmRSS 2>/dev/null || echo 0); [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" >"$WORK/peak"; sleep 0.5; done ) &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null; rm -rf "$WORK"' EXIT
t0=$(now)
kcat -P -b "$ROLLCALL_KAFKA_BROKERS" -t reports.village -K "$KEY_SEP" -D "$MSG_SEP" \
    -X linger.ms=20 -X batch.num.messages=10000 -X queue.buffering.max.messages=500000 \
    -X message.timeout.ms=120000 <"$WORK/storm.in" 2>"$WORK/kcat.err" || say "kcat: $(tail -2 "$WORK/kcat.err")"
t1=$(now)
hw1=$(high_sum)
sent=$((hw1 - hw0))
failed=$(grep -c 'Delivery failed' "$WORK/kcat.err" || true)
say "produced $sent messages in $(secs "$t0" "$t1") s ($failed delivery failures)"

# ---- drained: every storm message dead-lettered, or no progress for 30 s
dead=0; last=-1; still=$(now); t2=$t1
deadline=$(( $(date +%s) + DRAIN_S ))
while [ "$(date +%s)" -lt "$deadline" ]; do
    dead=$(dead_count)
    if [ "$dead" != "$last" ]; then last=$dead; still=$(now); t2=$still; fi
    [ "$dead" -ge "$sent" ] && break
    [ "$(secs "$still" "$(now)" | cut -d. -f1)" -ge 30 ] && break
    sleep 1
done
kill $SAMPLER 2>/dev/null || true
hwm=$(status_kb VmHWM)
rss1=$(status_kb VmRSS)
peak=$(cat "$WORK/peak" 2>/dev/null || echo 0)
[ "$peak" -gt "$hwm" ] && hwm=$peak
lines=$(( $(wc -l <"$LOG") - lines0 ))
dl_lines=$(tail -n +"$((lines0 + 1))" "$LOG" | grep -c 'dead letter' || true)

# ---- one good report for today, after the storm in the same topic
"$BUILD/rollcall" token issue 130102001001 >"$WORK/token" 2>/dev/null \
    && [ -s "$WORK/token" ] || die "token issue failed"
TOKEN=$(head -1 "$WORK/token")
GOOD=$(python3 -c 'import uuid; print(uuid.uuid4())')
tg=$(now)
"$BUILD/rollcall" submit --unit 130102001001 --period "$TODAY" --report-id "$GOOD" \
    --indicator households_visited=1 --token "$TOKEN" --url "$ROLLCALL_HTTP" >"$WORK/submit" 2>&1 \
    || die "the good report was refused: $(cat "$WORK/submit")"
counted=no
for _ in $(seq 1 120); do
    if [ "$(psql_at "$ROLLCALL_PG_DSN" -c "SELECT count(*) FROM rollcall.report_archive WHERE report_id = '$GOOD'")" = 1 ]; then
        counted="yes, archived $(secs "$tg" "$(now)") s after it was sent"; break
    fi
    sleep 0.5
done

dropped=$((sent - dead))
echo "dlq-storm: period $PERIOD ($DAYS_AGO days ago), rollup pid $(rollup_pid), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %s\n' "messages sent" "$sent (kcat: $(secs "$t0" "$t1") s, $failed delivery failures)" \
    "dead letters stored" "$dead" \
    "not dead-lettered (broker dropped)" "$dropped" \
    "rollup RSS before / after (MB)" "$((rss0 / 1024)) / $((rss1 / 1024))" \
    "rollup peak RSS (MB, target <= 64)" "$((hwm / 1024))" \
    "rollup log lines (dead-letter lines)" "$lines ($dl_lines)" \
    "drain (s from the first send)" "$(secs "$t0" "$t2")" \
    "good report for $TODAY counted" "$counted"
ok=1
[ "$hwm" -le $((64 * 1024)) ] || { fail "peak RSS $((hwm / 1024)) MB > 64 MB"; ok=0; }
[ "$dl_lines" -le 1000 ] || { fail "$dl_lines dead-letter log lines: not bounded"; ok=0; }
[ "$dropped" = 0 ] || { fail "$dropped storm messages were not dead-lettered"; ok=0; }
[ "$counted" != no ] || { fail "the good report was not archived"; ok=0; }
[ "$ok" = 1 ]
