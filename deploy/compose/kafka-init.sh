#!/bin/bash
# One-shot job of docker-compose.yml: creates each service's SCRAM user and
# exactly the ACLs it needs — its own topics and its own consumer groups,
# nothing else — with kafka-configs and kafka-acls.  Idempotent (users are
# upserted, ACLs are sets).  The reference for any other Kafka: the table in
# deploy/README.md ("Roles") says the same.
set -euo pipefail
BS=${KAFKA_BOOTSTRAP:-kafka:9092}
BIN=/opt/kafka/bin
umask 077
pw=$(cat /run/secrets/kafka_admin_password)
cat >/tmp/admin.properties <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$pw";
PROPS
ADMIN=(--bootstrap-server "$BS" --command-config /tmp/admin.properties)

for i in $(seq 1 60); do
    "$BIN/kafka-broker-api-versions.sh" "${ADMIN[@]}" >/dev/null 2>&1 && break
    [ "$i" = 60 ] && { echo "kafka-init: broker $BS not reachable" >&2; exit 1; }
    sleep 2
done

user() {  # user NAME SECRET_FILE
    local p; p=$(cat "/run/secrets/$2")
    case $p in *[!A-Za-z0-9_-]*|'') echo "kafka-init: $2: use letters, digits, - and _ only" >&2; exit 1;; esac
    "$BIN/kafka-configs.sh" "${ADMIN[@]}" --alter --entity-type users --entity-name "$1" \
        --add-config "SCRAM-SHA-512=[iterations=8192,password=$p]"
}
acl() {  # acl PRINCIPAL OPERATION RESOURCE-ARGS...
    local who=$1 op=$2; shift 2
    "$BIN/kafka-acls.sh" "${ADMIN[@]}" --add --allow-principal "User:$who" --operation "$op" "$@" >/dev/null
}
topic_rw() {  # topic_rw PRINCIPAL read|write TOPIC...
    local who=$1 how=$2; shift 2
    for t in "$@"; do
        acl "$who" Describe --topic "$t"
        if [ "$how" = read ]; then acl "$who" Read --topic "$t"; else acl "$who" Write --topic "$t"; fi
    done
}
group() {  # group PRINCIPAL PREFIX: the groups whose names start with PREFIX
    acl "$1" Read --group "$2" --resource-pattern-type prefixed
    acl "$1" Describe --group "$2" --resource-pattern-type prefixed
}

user rollcall-village kafka_village_password
topic_rw rollcall-village write reports.village reports.urgent
acl rollcall-village IdempotentWrite --cluster

user rollcall-rollup kafka_rollup_password
topic_rw rollcall-rollup read reports.village reports.urgent reports.township reports.county reports.province
topic_rw rollcall-rollup write rollups.township rollups.county rollups.province reports.dlq
group rollcall-rollup rollcall-rollup
acl rollcall-rollup IdempotentWrite --cluster

for level in township county province; do
    user "rollcall-$level" "kafka_${level}_password"
    topic_rw "rollcall-$level" read "rollups.$level" reports.urgent
    topic_rw "rollcall-$level" write "reports.$level" reports.urgent reminders escalations
    group "rollcall-$level" "rollcall-$level"
    acl "rollcall-$level" IdempotentWrite --cluster
done

# Operators: read everything (status, dlq), re-publish reports (replay).
user rollcall-ops kafka_ops_password
topic_rw rollcall-ops read reports.village reports.urgent reports.township reports.county \
    reports.province rollups.township rollups.county rollups.province reports.dlq reminders escalations
topic_rw rollcall-ops write reports.village reports.urgent reports.township reports.county reports.province
acl rollcall-ops Describe --group '*'
group rollcall-ops rollcall-status
acl rollcall-ops IdempotentWrite --cluster

"$BIN/kafka-acls.sh" "${ADMIN[@]}" --list
echo "kafka-init: users and ACLs in place"
