#!/usr/bin/env bash
# Kafka security settings reach librdkafka.  The development broker speaks
# PLAINTEXT only, so a client configured for SASL cannot get in: each
# service started with kafka.security.protocol and kafka.sasl.* (on the
# command line, or in a --config file as docker secrets carry them) must fail
# with librdkafka's authentication or TLS error naming the protocol and
# mechanism, on EVERY Kafka client it creates (producer, consumers, urgent
# relay), and report unhealthy.  A client that silently ignored the settings
# would connect in plaintext and never log such an error.  The same for the
# operator commands: `rollcall topics create` and `rollcall status` with the
# settings from ROLLCALL_CONFIG / --config.
set -euo pipefail
cd "$(dirname "$0")/../.."
set -a; . var/stack.env; set +a
BUILD=${ROLLCALL_BUILD:-build}
BASE=${ROLLCALL_PORT_BASE:-25400}
PORT=$((BASE + 91))
TMP=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
failed=0
fail() { echo "FAIL: $*"; failed=$((failed+1)); }

cat >"$TMP/sasl.conf" <<CONF
# what a docker secret carries for one service
kafka.security.protocol = SASL_PLAINTEXT
kafka.sasl.mechanism = SCRAM-SHA-512
kafka.sasl.username = rollcall-rollup
kafka.sasl.password = not-the-password
CONF

# probe NAME EXPECTED_CLIENTS HEALTH PATTERN ARGS...: starts the service,
# waits for every client to log the error, checks /healthz is not 200 when
# HEALTH is "kafka" (the service probes Kafka in its health check), stops it.
probe() {
    local name=$1 want=$2 health=$3 pattern=$4; shift 4
    local log=$TMP/$name.log clients=0
    "$BUILD/rollcall-$name" --http_port=$PORT "$@" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do
        clients=$(grep -E "$pattern" "$log" | grep -o 'client=[^ ]*' | sort -u | wc -l || true)
        [ "$clients" -ge "$want" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    local code; code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz" || true)
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=
    if [ "$clients" -lt "$want" ]; then
        fail "rollcall-$name $*: $clients of $want Kafka clients logged /$pattern/"
        grep -i kafka "$log" | head -5
    elif [ "$health" = kafka ] && [ "$code" = 200 ]; then
        fail "rollcall-$name reports healthy with a broker it cannot authenticate to"
    else
        echo "ok: rollcall-$name: all $want Kafka clients refused ($(grep -Eo "$pattern" "$log" | head -1 | cut -c1-120)), /healthz $code"
    fi
    # Never the password, in any line.
    if grep -q 'not-the-password' "$log"; then fail "rollcall-$name logged the SASL password"; fi
}

SCRAM='sasl_plaintext://[^ ]*: Failed to initialize SASL authentication: .*SCRAM-SHA-512'
TLS='sasl_ssl://[^ ]*: SSL handshake failed'
SASL_ARGS=(--kafka.security.protocol=SASL_PLAINTEXT --kafka.sasl.mechanism=SCRAM-SHA-512
           --kafka.sasl.username=rollcall-intake --kafka.sasl.password=not-the-password)
# village: two producers (daily, urgent).
probe village 2 kafka "$SCRAM" "${SASL_ARGS[@]}"
probe village 2 kafka "$TLS" --kafka.security.protocol=SASL_SSL --kafka.sasl.mechanism=SCRAM-SHA-512 \
    --kafka.sasl.username=rollcall-intake --kafka.sasl.password=not-the-password
# rollup: producer (outbox), daily consumer, urgent consumer; settings from a file.
probe rollup 3 kafka "$SCRAM" --config "$TMP/sasl.conf" --group=sasl-probe-rollup
# a level desk: desk producer and consumer, urgent relay producer and
# consumer, and the health probe's own handle.
probe township 5 kafka "$SCRAM" "${SASL_ARGS[@]}" --group=sasl-probe-township
probe county 5 kafka "$TLS" --kafka.security.protocol=SASL_SSL --kafka.sasl.mechanism=PLAIN \
    --kafka.sasl.username=rollcall-level --kafka.sasl.password=not-the-password --group=sasl-probe-county

# The operator commands.
cp "$TMP/sasl.conf" "$TMP/topics.conf"
echo "timeout = 5s" >>"$TMP/topics.conf"
if out=$(ROLLCALL_LOG_LEVEL=error "$BUILD/rollcall" topics create --config "$TMP/topics.conf" 2>&1); then
    fail "rollcall topics create succeeded against a broker it cannot authenticate to"
elif grep -Eq "$SCRAM" <<<"$out" && grep -q 'kafka.sasl' <<<"$out"; then
    echo "ok: rollcall topics create: SASL refused, told to check kafka.security.protocol / kafka.sasl.*"
else
    fail "rollcall topics create: unexpected output: $out"
fi
if out=$(ROLLCALL_CONFIG=$TMP/sasl.conf timeout 60 "$BUILD/rollcall" status --group rollcall-rollup 2>&1); then
    fail "rollcall status succeeded against a broker it cannot authenticate to"
elif grep -Eq "$SCRAM" <<<"$out"; then
    echo "ok: rollcall status: ROLLCALL_CONFIG's SASL settings reached librdkafka"
else
    fail "rollcall status: unexpected output: $(head -5 <<<"$out")"
fi
if grep -q 'not-the-password' "$TMP"/*.log; then fail "a password was logged"; fi

echo "kafka security: $failed failed"
[ "$failed" -eq 0 ]
