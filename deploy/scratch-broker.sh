# Sourced by tests and benchmarks: a development broker of their own, whose
# topics the embedded stack's services never see (its rollup would otherwise
# consume the caller's reports into the stack's database, or fall behind and
# stop on "offset out of range").
#
#   . deploy/scratch-broker.sh
#   scratch_broker DIR   starts rollcall-devbroker (from $BUILD, default
#                        build), exports ROLLCALL_KAFKA_BROKERS, and sets
#                        SCRATCH_BROKER_PID for the caller to kill at exit
scratch_broker() {
    local dir=$1 bin=${BUILD:-build}/rollcall-devbroker
    [ -x "$bin" ] || { echo "$bin is not built (make)" >&2; return 1; }
    rm -f "$dir/broker.addr"
    "$bin" --bootstrap-file "$dir/broker.addr" >/dev/null 2>"$dir/devbroker.log" </dev/null &
    SCRATCH_BROKER_PID=$!
    for _ in $(seq 1 100); do
        [ -s "$dir/broker.addr" ] && break
        kill -0 "$SCRATCH_BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -s "$dir/broker.addr" ]; then
        echo "the development broker did not start, see $dir/devbroker.log" >&2
        return 1
    fi
    ROLLCALL_KAFKA_BROKERS=$(cat "$dir/broker.addr")
    export ROLLCALL_KAFKA_BROKERS
}
