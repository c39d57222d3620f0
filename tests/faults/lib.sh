# Shared by the fault tests (tests/faults/*.sh): one county day (130102,
# 174 villages) through the intake while a fault is injected mid-way, then
# `rollcall verify` must find the day exact and the archive must hold each
# report_id once.  Source it, then: fault_setup NAME DAYS_AGO; fault_start_day;
# (inject the fault); fault_finish.  Needs the stack (tests/run.sh brings it
# up and sources var/stack.env).  Faults at hand below: kill_service and
# restart_service, report_encode and produce_raw (messages straight into
# Kafka), submit_counted (a report the test files, counted by verify),
# forget_unit.
set -uo pipefail
BUILD=${ROLLCALL_BUILD:-${BUILD:-build}}
BASE=${ROLLCALL_PORT_BASE:-25400}
UNIT=130102
RATE=${FAULT_RATE:-12}          # reports a second: the day lasts ~20 s
RECOVER_S=${FAULT_RECOVER_S:-120}
LOADGEN_ARGS=()

skip() { echo "SKIP $NAME: $*"; exit 0; }
fail() { echo "FAIL $NAME: $*"; [ -n "${LOADGEN_PID:-}" ] && kill "$LOADGEN_PID" 2>/dev/null; exit 1; }
now_ms() { date +%s%3N; }
# /healthz must answer at once whatever the service's workers are waiting
# for: an answer slower than 2 s counts as none (code 000).
healthz() { curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((BASE + $1))/healthz"; }
healthz_body() { curl -s -m 2 "http://127.0.0.1:$((BASE + $1))/healthz"; }

# Polls /healthz of the services on the offsets $4... together until each
# has answered status $1 once, for up to $2 s; fills AWAITED[offset] with
# the seconds (one decimal) from $3 (ms) to that answer, and returns the
# number of services that never gave it.
declare -A AWAITED
await_status() {
    local code=$1 limit_ms=$(($2 * 1000)) since=$3 off left; shift 3
    local start; start=$(now_ms)
    AWAITED=()
    while :; do
        left=0
        for off in "$@"; do
            [ -n "${AWAITED[$off]:-}" ] && continue
            if [ "$(healthz "$off")" = "$code" ]; then
                AWAITED[$off]=$(awk "BEGIN{printf \"%.1f\", ($(now_ms) - $since)/1000}")
            else
                left=$((left + 1))
            fi
        done
        [ "$left" = 0 ] && return 0
        [ $(( $(now_ms) - start )) -ge "$limit_ms" ] && return "$left"
        sleep 0.25
    done
}

# Waits up to $2 s for the service on offset $1 to be healthy.
wait_healthy() { await_status 200 "$2" "$(now_ms)" "$1"; }

# Every service on the offsets $3... answers /healthz 503 naming $2 (an
# extended pattern, case-insensitive) within OUTAGE_HEALTH_S (15) seconds of
# $1 (ms, when the fault began); prints the seconds each took, fails
# otherwise.
expect_unhealthy() {
    local since=$1 cause=$2 off body; shift 2
    await_status 503 "${OUTAGE_HEALTH_S:-15}" "$since" "$@"
    for off in "$@"; do
        [ -n "${AWAITED[$off]:-}" ] \
            || fail "service on port $((BASE + off)) still answers /healthz $(healthz "$off"), not 503, ${OUTAGE_HEALTH_S:-15}s into the fault"
        body=$(healthz_body "$off")
        grep -Eqi "$cause" <<<"$body" || fail "service on port $((BASE + off)) answers /healthz without naming /$cause/: $body"
        echo "$NAME: port $((BASE + off)) /healthz 503 after ${AWAITED[$off]}s: $(head -1 <<<"$body" | cut -c1-160)"
    done
}

# Every service on the offsets $2... answers /healthz 200 within
# RECOVER_HEALTH_S (60) seconds of $1 (ms, when the fault ended); prints the
# seconds each took, fails otherwise.
expect_healthy_again() {
    local since=$1 off; shift
    await_status 200 "${RECOVER_HEALTH_S:-60}" "$since" "$@"
    for off in "$@"; do
        [ -n "${AWAITED[$off]:-}" ] \
            || fail "service on port $((BASE + off)) did not recover: $(healthz_body "$off")"
        echo "$NAME: port $((BASE + off)) /healthz 200 ${AWAITED[$off]}s after the fault ended"
    done
}

fault_setup() {
    NAME=$1
    [ -x "$BUILD/rollcall-rollup" ] && [ -x "$BUILD/rollcall-village" ] || skip "services not built"
    [ -n "${ROLLCALL_PG_DSN:-}" ] && [ -n "${ROLLCALL_HTTP:-}" ] || skip "run it through tests/run.sh (var/stack.env)"
    WORK=var/faults/$NAME
    mkdir -p "$WORK"
    rm -f "$WORK"/ledger.jsonl "$WORK"/ledger.more.jsonl "$WORK"/loadgen.out
    PERIOD=$(TZ=Asia/Shanghai date -d "$2 days ago" +%F)
    SEED=${FAULT_SEED:-$(date +%s%N | cut -c1-12)}
    # Dead letters are counted from here (the database's clock).
    SINCE=$(psql -qAt "$ROLLCALL_PG_DSN" -c "SELECT now()") || fail "PostgreSQL does not answer"
    for off in 80 81; do
        wait_healthy $off 60 || fail "service on port $((BASE + off)) not healthy before the test"
    done
    out=$("$BUILD/rollcall" registry import --csv tests/data/registry-130102.csv 2>&1) \
        || fail "registry import: $out"
    deploy/clear-day.sh "$UNIT" "$PERIOD" || fail "could not clear $PERIOD"
    echo "$NAME: county $UNIT, day $PERIOD, seed $SEED, $RATE reports/s"
}

# The day, in the background, through the intake; LOADGEN_ARGS (an array)
# adds to loadgen's options.
fault_start_day() {
    "$BUILD/rollcall" loadgen --unit "$UNIT" --period "$PERIOD" --seed "$SEED" \
        --http "$ROLLCALL_HTTP" --tokens var/faults/tokens.tsv --connections 4 --rate "$RATE" \
        --ledger "$WORK/ledger.jsonl" --quiet "${LOADGEN_ARGS[@]}" >"$WORK/loadgen.out" 2>&1 &
    LOADGEN_PID=$!
}

# Waits for the day to have been sent, then for verify to pass (up to
# RECOVER_S); prints the seconds from $1 (ms, e.g. when the fault ended) to
# the first exact verify, and the counts.
fault_finish() {
    local since=$1
    wait "$LOADGEN_PID" || fail "loadgen: $(tail -3 "$WORK/loadgen.out")"
    LOADGEN_PID=
    # What the test filed itself (submit_counted) joins the ledger only now:
    # loadgen writes the file at its own offset while it runs.
    if [ -s "$WORK/ledger.more.jsonl" ]; then
        cat "$WORK/ledger.more.jsonl" >>"$WORK/ledger.jsonl"
    fi
    local deadline=$(( $(date +%s) + RECOVER_S )) ok=
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if "$BUILD/rollcall" verify --ledger "$WORK/ledger.jsonl" --quiet >"$WORK/verify.out" 2>&1; then
            ok=1; break
        fi
        sleep 2
    done
    local recovered_ms=$(( $(now_ms) - since ))
    if [ -z "$ok" ]; then
        # What tells a stall from a loss: the rest of verify's account, what
        # the rollup says of itself, and its last complaints.
        echo "$NAME: verify after ${RECOVER_S}s:"; tail -4 "$WORK/verify.out"
        echo "$NAME: rollup /healthz: $(healthz_body 81)"
        grep -E 'level=(warn|error)' var/log/rollup.log 2>/dev/null | tail -8 | cut -c1-300
        fail "verify still finds differences after ${RECOVER_S}s: $(head -5 "$WORK/verify.out")"
    fi
    local twice
    twice=$(psql -qAt "$ROLLCALL_PG_DSN" -c "SELECT count(*) FROM (SELECT report_id FROM rollcall.report_archive
              WHERE period = '$PERIOD' AND unit_code LIKE '$UNIT%' GROUP BY report_id HAVING count(*) > 1) d") \
        || fail "archive query"
    [ "$twice" = 0 ] || fail "$twice report_ids archived more than once"
    local sent acked archived dead summary
    summary=$(grep '^mode=' "$WORK/loadgen.out" | tail -1)
    sent=$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' <<<"$summary")
    acked=$(sed -n 's/.* accepted=\([0-9]*\).*/\1/p' <<<"$summary")
    archived=$(psql -qAt "$ROLLCALL_PG_DSN" -c "SELECT count(*) FROM rollcall.report_archive
              WHERE period = '$PERIOD' AND unit_code LIKE '$UNIT%' AND level = 1")
    dead=$(psql -qAt "$ROLLCALL_PG_DSN" -c "SELECT count(*) FROM rollcall.dead_letter
              WHERE received_at >= '$SINCE'")
    echo "$NAME: sent=$sent acknowledged=$acked archived=$archived dead_lettered=$dead" \
         "lost=0 double_counted=0 recovered_s=$(awk "BEGIN{printf \"%.1f\", $recovered_ms/1000}")"
    echo "ok: $NAME"
}

# ---- services killed and restarted

# SIGKILLs rollcall-$1 (pid from var/run/$1.pid) and waits until it is gone.
# Nothing may reap it at once (its parent, stack.sh, has exited), and
# stack.sh takes a zombie for a live service: the pid file goes with it.
kill_service() {
    local pidf=var/run/$1.pid pid state
    pid=$(cat "$pidf" 2>/dev/null) || fail "no pid file for $1"
    kill -KILL "$pid" 2>/dev/null || fail "rollcall-$1 (pid $pid) was not running"
    for _ in $(seq 1 50); do
        state=$(ps -o stat= -p "$pid" 2>/dev/null)
        [ -z "$state" ] || [ "${state:0:1}" = Z ] && break
        sleep 0.1
    done
    rm -f "$pidf"
}

# Starts rollcall-$1 again, the way the stack starts it.
restart_service() {
    BUILD=$BUILD deploy/stack.sh start "$1" >>"$WORK/stack.out" 2>&1 \
        || fail "deploy/stack.sh start $1: $(tail -3 "$WORK/stack.out")"
}

# ---- messages produced straight into Kafka

# Encodes the protobuf text format on stdin as one rollcall.Report into the
# file $1.  The schema's string fields are declared bytes in a copy of it, so
# that the text may hold what an honest encoder refuses (invalid UTF-8); the
# wire format is the same.
report_encode() {
    local dir=$WORK/proto
    if [ ! -s "$dir/raw.proto" ]; then
        mkdir -p "$dir"
        sed -E 's/^(\s*)(repeated )?string /\1\2bytes /' proto/rollcall.proto >"$dir/raw.proto"
    fi
    protoc --encode=rollcall.Report -I "$dir" "$dir/raw.proto" >"$1" || fail "protoc could not encode $1"
}

# Produces the file $3 as one message to topic $1 with key $2, bypassing the
# intake; kcat returns once the broker has it.
produce_raw() {
    kcat -P -b "$ROLLCALL_KAFKA_BROKERS" -t "$1" -k "$2" -X message.timeout.ms=15000 "$3" \
        >>"$WORK/kcat.out" 2>&1 || fail "kcat could not produce $3 to $1: $(tail -2 "$WORK/kcat.out")"
}

# ---- reports filed by the test itself

# Files one daily report with the running intake (curl: a client that
# starts in milliseconds): token $1, unit $2, ledger role $3 (first or
# correction), report_id $4, households_visited $5.  Answered 202, it goes
# to the ledger as loadgen would write it (fault_finish adds it), so that
# verify counts it, SUBMIT_VERSION holds the version the intake gave it
# (its receive time, µs) and it returns 0; otherwise 1, with the answer in
# SUBMIT_ANSWER.
submit_counted() {
    local out version secs
    out=$(curl -s -m 5 -w ' %{http_code}' -X POST -H "Authorization: Bearer $1" \
              -H 'Content-Type: application/json' "$ROLLCALL_HTTP/v1/reports" \
              -d "{\"report_id\":\"$4\",\"unit_code\":\"$2\",\"period\":\"$PERIOD\",\"kind\":\"daily\",\"indicators\":{\"households_visited\":$5}}")
    SUBMIT_ANSWER=$out
    [ "${out##* }" = 202 ] || return 1
    version=$(jq -er '.version' <<<"${out% *}") || return 1
    SUBMIT_VERSION=$version
    secs=$(printf '%d.%06d' $((version / 1000000)) $((version % 1000000)))
    printf '{"report_id":"%s","unit":"%s","period":"%s","kind":"daily","role":"%s","version":%s,"received_at":"%s","indicators":[%s],"status":"accepted","http":202}\n' \
        "$4" "$2" "$PERIOD" "$3" "$version" "$(TZ=Asia/Shanghai date -d "@$secs" +%FT%T.%6N%:z)" "$5" \
        >>"$WORK/ledger.more.jsonl"
}

# Removes unit $1 and whatever is recorded for it, in any period, so that a
# unit a test added leaves the registry as the test found it.
forget_unit() {
    psql -q -v ON_ERROR_STOP=1 "$ROLLCALL_PG_DSN" >/dev/null <<SQL || fail "could not remove unit $1"
DO \$\$
DECLARE t text;
BEGIN
  FOR t IN SELECT c.table_name FROM information_schema.columns c
             JOIN information_schema.tables b USING (table_schema, table_name)
            WHERE c.table_schema = 'rollcall' AND b.table_type = 'BASE TABLE'
              AND c.column_name = 'unit_code'
  LOOP
    EXECUTE format('DELETE FROM rollcall.%I WHERE unit_code = %L', t, '$1');
  END LOOP;
  DELETE FROM rollcall.unit WHERE code = '$1';
END \$\$;
SQL
}
