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
shown_dirs=""
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
        if [ -e "$D$f" ]; then nchecked=$((nchecked+1)); else fail "the guide shows $f, make install did not lay it out"; fi
        # A folder shown with its slash stands for everything under it.
        [[ $f == */ ]] && shown_dirs+="$f "
    done
done
# Nothing installed that the guide does not show.
while read -r f; do
    f=${f#"$D"}
    under=no
    for dir in $shown_dirs; do [[ $f == "$dir"* ]] && under=yes; done
    [[ $shown == *" $f "* ]] || [[ $f == */migrations/* ]] || [ $under = yes ] || fail "installed but not in the guide: $f"
done < <(find "$D" -type f)
for c in "$D"/etc/rollcall/*.conf; do
    [ "$(stat -c %a "$c")" = 600 ] || fail "$c is mode $(stat -c %a "$c"), expected 600 (it holds passwords)"
    name=$(basename "$c" .conf)
    if [ "$name" = topics ]; then
        # Its partition counts are the plan's defaults, topic by topic.
        while read -r topic n _; do
            grep -qx "#partitions.$topic = $n" "$c" || fail "$c: partitions.$topic is not the plan's $n"
        done < <("$BUILD/rollcall" topics plan | tail -n +2)
        continue
    fi
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

# ---- metric names: what the rules and the dashboard use, the services export
exported=$(grep -rhoE '"rollcall_[a-z_]+"' lib services | tr -d '"' | sort -u)
used=$( { cat deploy/prometheus/rules.yml deploy/grafana/provisioning/dashboards/*.json; } |
        grep -oE 'rollcall_[a-z_]+' | grep -vE '^rollcall_(grafana|dashboard|intake|rollup|level|ops)$' |
        sed -E 's/_(bucket|sum|count)$//' | sort -u)
for m in $used; do
    # rollcall_(rollup|level)_dead_letters_total is a name regex in a rule
    grep -qx "$m" <<<"$exported" || [[ $m == rollcall_ ]] || fail "metric $m is used but no service exports it"
done
grep -q 'rollcall_(rollup|level)_dead_letters_total' deploy/prometheus/rules.yml &&
    for m in rollcall_rollup_dead_letters_total rollcall_level_dead_letters_total; do
        grep -qx "$m" <<<"$exported" || fail "metric $m is used but no service exports it"
    done
echo "ok: $(wc -w <<<"$used") metric names used by rules and dashboard, all exported"

# ---- Prometheus
if command -v promtool >/dev/null; then
    promtool check config deploy/prometheus/prometheus.yml >"$TMP/p.log" 2>&1 || { cat "$TMP/p.log"; fail "promtool check config"; }
    promtool check rules deploy/prometheus/rules.yml >"$TMP/p.log" 2>&1 || { cat "$TMP/p.log"; fail "promtool check rules"; }
    promtool test rules tests/deploy/rules_test.yml >"$TMP/p.log" 2>&1 || { cat "$TMP/p.log"; fail "promtool test rules"; }
    echo "ok: promtool check config, check rules, test rules (tests/deploy/rules_test.yml)"
else
    skip "promtool not installed: deploy/prometheus was NOT checked"
fi

# ---- docker-compose.yml
if command -v docker-compose >/dev/null; then
    if docker-compose -f docker-compose.yml config >"$TMP/compose.yml" 2>"$TMP/compose.err"; then
        echo "ok: docker-compose config"
        if python3 - "$TMP/compose.yml" <<'PY'; then
import re, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
svc = c["services"]
bad = []
def mib(v):
    v = str(v).lower()
    n = float(re.match(r"[0-9.]+", v).group())
    return n * {"k": 1/1024, "m": 1, "g": 1024}.get(v[len(str(int(n))):][:1], 1/1048576)
for name, port in [("village", 8080), ("rollup", 8081), ("township", 8082), ("county", 8083),
                   ("province", 8084), ("dashboard", 8086)]:
    s = svc.get(name)
    if not s:
        bad.append(f"{name}: missing"); continue
    if s.get("restart") != "unless-stopped": bad.append(f"{name}: restart is {s.get('restart')}")
    hc = " ".join(s.get("healthcheck", {}).get("test", []))
    if f"127.0.0.1:{port}/healthz" not in hc: bad.append(f"{name}: no /healthz health check")
    if not (64 <= mib(s.get("mem_limit", 0)) <= 128): bad.append(f"{name}: mem_limit {s.get('mem_limit')}")
    env = s.get("environment", {})
    role = env.get("RC_PG_ROLE", "")
    if role in ("", "rollcall", "postgres"): bad.append(f"{name}: connects to PostgreSQL as {role!r}")
    if name != "dashboard" and not env.get("RC_KAFKA_USER"): bad.append(f"{name}: no Kafka principal")
    for k in ("RC_PG_PASSWORD_FILE", "RC_KAFKA_PASSWORD_FILE"):
        if k in env and not env[k].startswith("/run/secrets/"): bad.append(f"{name}: {k} not a secret")
k = svc["kafka"]["environment"]
if "SASL" not in k["KAFKA_LISTENERS"] or "PLAINTEXT://:" in k["KAFKA_LISTENERS"].replace("SASL_PLAINTEXT", ""):
    bad.append("kafka: a client listener without SASL")
if k.get("KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND") != "false": bad.append("kafka: allows everyone without ACLs")
if not k.get("KAFKA_AUTHORIZER_CLASS_NAME"): bad.append("kafka: no authorizer")
for job in ("kafka-init", "topics", "migrate", "db-roles"):
    if job not in svc: bad.append(f"one-shot job {job} missing")
if "topics" in svc and svc["topics"]["command"][:3] != ["rollcall", "topics", "create"]:
    bad.append("topics job does not run rollcall topics create")
# No secret in the file: every value that looks like one is a file path.
text = open(sys.argv[1]).read()
for m in re.finditer(r"(?m)^\s*([A-Z_]*(PASSWORD|SECRET)[A-Z_]*):\s*(\S+)", text):
    if not m.group(3).startswith("/run/secrets/"): bad.append(f"{m.group(1)} has a value in the compose file")
for name, sec in c.get("secrets", {}).items():
    import os
    f = sec["file"]
    if not os.path.exists(f + ".example"): bad.append(f"secret {name}: no {f}.example")
for b in bad: print("compose: " + b)
sys.exit(1 if bad else 0)
PY
            echo "ok: compose services restart, health-check /healthz, 64-128m, own roles and principals, secrets from files"
        else
            fail "docker-compose.yml does not have the production shape"
        fi
    else
        cat "$TMP/compose.err"; fail "docker-compose config"
    fi
else
    skip "docker-compose not installed: docker-compose.yml was NOT validated"
fi

# ---- Grafana provisioning
if python3 - <<'PY'; then
import glob, json, sys, yaml
bad = []
uids = {}
for f in glob.glob("deploy/grafana/provisioning/datasources/*.yml"):
    for ds in yaml.safe_load(open(f))["datasources"]:
        uids[ds["uid"]] = ds
        if ds["type"] == "postgres":
            if ds.get("user") in (None, "rollcall", "postgres"): bad.append(f"{f}: PostgreSQL as {ds.get('user')}")
            if not str(ds.get("secureJsonData", {}).get("password", "")).startswith("$__file{/run/secrets/"):
                bad.append(f"{f}: PostgreSQL password not from a secret file")
if not any(d["type"] == "postgres" for d in uids.values()): bad.append("no PostgreSQL data source")
provs = [p for f in glob.glob("deploy/grafana/provisioning/dashboards/*.yml") for p in yaml.safe_load(open(f))["providers"]]
if not provs: bad.append("no dashboard provider")
dashes = glob.glob("deploy/grafana/provisioning/dashboards/*.json")
if not dashes: bad.append("no dashboard JSON")
sql = []
for f in dashes:
    d = json.load(open(f))
    for p in d["panels"]:
        for t in p.get("targets", []) + [p]:
            uid = t.get("datasource", {}).get("uid")
            if uid and uid not in uids: bad.append(f"{f}: panel {p['title']!r} uses unknown data source {uid}")
        for t in p.get("targets", []):
            if "rawSql" in t: sql.append(t["rawSql"])
json.dump(sql, open("/tmp/rollcall-grafana-sql.json", "w"))
for b in bad: print("grafana: " + b)
sys.exit(1 if bad else 0)
PY
    echo "ok: Grafana provisioning parses (data sources, provider, dashboards)"
else
    fail "Grafana provisioning"
fi
# The dashboard's SQL against the real schema (the stack's PostgreSQL).
if [ -f var/stack.env ] && command -v psql >/dev/null; then
    set -a; . var/stack.env; set +a
    python3 -c 'import json; [print(q.replace("\n", " ") + ";") for q in json.load(open("/tmp/rollcall-grafana-sql.json"))]' |
        sed 's/^/EXPLAIN /' >"$TMP/explain.sql"
    psql "$ROLLCALL_PG_DSN" -X -q -v ON_ERROR_STOP=1 -f "$TMP/explain.sql" >/dev/null 2>"$TMP/psql.err" &&
        echo "ok: the dashboard's SQL plans against the schema" || { cat "$TMP/psql.err"; fail "dashboard SQL"; }
else
    skip "no embedded stack (var/stack.env) or psql: the dashboard's SQL was NOT checked against the schema"
fi
rm -f /tmp/rollcall-grafana-sql.json

echo "deploy: $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
