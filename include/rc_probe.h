/* rc_probe — whether PostgreSQL and Kafka answer, kept by a thread of its
 * own for /healthz.  A service's workers may be blocked for tens of seconds
 * in rc_pg's reconnect backoff or a Kafka flush; the health answer must not
 * wait for them, nor stay 200 because they have not noticed yet.
 *
 * The thread probes every 2 s while both answer and every 250 ms while one
 * does not, so a recovery shows at once.  PostgreSQL is probed on the
 * probe's own connection (SELECT 1, one reconnection attempt, never a
 * backoff), Kafka with a metadata request (rc_kafka_ping) on a handle the
 * caller lends.  Each change is logged once. */
#ifndef RC_PROBE_H
#define RC_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "rc_pg.h"

typedef struct rc_probe rc_probe;

/* Called on the probe thread after each round in which both answered, with
 * the probe's live connection (borrowed for the call): for a service's own
 * periodic checks that must not block its workers either.  Returns 0, or
 * non-zero with msg filled: /healthz then fails with that message until a
 * later round returns 0. */
typedef int rc_probe_round_fn(void *opaque, rc_pg *pg, char *msg, size_t len);

/* Probes PostgreSQL at `pg_dsn` (NULL: not probed; "" is libpq's environment)
 * and Kafka through `rk` (NULL: not probed; borrowed, and must outlive the
 * probe).  `round` may be NULL.  One round runs before the call returns, so
 * /healthz is right from the start; a dependency that does not answer then is
 * not an error.  Returns NULL with errbuf filled when the thread cannot be
 * started. */
rc_probe *rc_probe_new(const char *pg_dsn, const char *application_name, rd_kafka_t *rk,
                       rc_probe_round_fn *round, void *opaque, char *errbuf, size_t errlen);

/* Stops the thread (waiting for a round in progress) and frees everything.
 * NULL is a no-op. */
void rc_probe_free(rc_probe *p);

/* A health check for rc_service_add_health_check (opaque: the rc_probe).
 * Never blocks on a dependency.  Returns 0 when the last round found
 * everything answering, else 1 with msg naming the first cause:
 * "postgresql: ...", "kafka: ..." or the round function's message. */
int rc_probe_check(void *probe, char *msg, size_t len);

/* Whether the last round found PostgreSQL / Kafka answering (true when not
 * probed). */
bool rc_probe_pg_ok(const rc_probe *p);
bool rc_probe_kafka_ok(const rc_probe *p);

#endif
