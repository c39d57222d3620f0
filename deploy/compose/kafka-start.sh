#!/bin/bash
# Starts the Kafka broker of docker-compose.yml with the admin's password
# read from its docker secret (the PLAIN login the broker and the admin
# jobs use; services authenticate with SCRAM users created by
# kafka-init.sh), then hands over to the image's own start script.
set -euo pipefail
pw=$(cat /run/secrets/kafka_admin_password)
case $pw in *[!A-Za-z0-9_-]*|'') echo "kafka_admin_password: use letters, digits, - and _ only" >&2; exit 1;; esac
export KAFKA_LISTENER_NAME_SASL__PLAINTEXT_PLAIN_SASL_JAAS_CONFIG="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"$pw\" user_admin=\"$pw\";"
export KAFKA_LISTENER_NAME_SASL__PLAINTEXT_SCRAM___SHA___512_SASL_JAAS_CONFIG="org.apache.kafka.common.security.scram.ScramLoginModule required;"
# For the health check and the admin tools inside this container.
umask 077
cat >/tmp/admin.properties <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$pw";
PROPS
exec /etc/kafka/docker/run
