/* rc_kafka — the producer and consumer every service uses, with Rollcall's
 * safety defaults, librdkafka logs routed into rc_log, and a health probe.
 *
 * Property lists are librdkafka's own names as "key=value" strings (kcat
 * style): they are the configuration schema for the Kafka part, and they
 * override the defaults listed at each constructor. */
#ifndef RC_KAFKA_H
#define RC_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* How long rc_producer_free() waits for outstanding deliveries. */
#define RC_PRODUCER_CLOSE_TIMEOUT_MS 5000

/* ---------------------------------------------------------------- producer */

typedef struct rc_producer rc_producer;

/* Called exactly once for every message rc_producer_send() accepted, from
 * inside rc_producer_poll()/_flush()/_send()/_free() on the caller's thread.
 * err == RD_KAFKA_RESP_ERR_NO_ERROR means the broker acknowledged it (acks=all)
 * and `offset` is its offset; anything else means it was NOT delivered
 * (timed out, purged at shutdown, rejected).  `topic` is borrowed for the
 * call only. */
typedef void rc_delivery_fn(void *fn_opaque, void *msg_opaque,
                            rd_kafka_resp_err_t err, const char *topic,
                            int32_t partition, int64_t offset);

/* Creates an idempotent producer for `brokers` (a bootstrap list).
 * Defaults: enable.idempotence=true, acks=all, compression.type=lz4,
 * linger.ms=5; `props` ("key=value", may be NULL when nprops is 0) override
 * them.  `fn` may be NULL (failed deliveries are then logged).
 * Returns NULL and fills errbuf (naming the offending property) on a bad
 * property or when librdkafka refuses the configuration. */
rc_producer *rc_producer_new(const char *brokers, const char *const *props,
                             size_t nprops, rc_delivery_fn *fn, void *fn_opaque,
                             char *errbuf, size_t errlen);

/* Queues a copy of key/value for `topic` (partition RD_KAFKA_PARTITION_UA lets
 * the partitioner hash the key).  When the local queue is full it serves
 * delivery reports and retries for up to queue_full_timeout_ms (0: no retry).
 * Returns 0 when queued — the delivery callback will then report the outcome —
 * or -1 (logged with the topic) and the callback will NOT be called. */
int rc_producer_send(rc_producer *p, const char *topic, int32_t partition,
                     const void *key, size_t keylen, const void *value,
                     size_t len, void *msg_opaque, int queue_full_timeout_ms);

/* Serves waiting delivery reports, waiting up to timeout_ms for the first.
 * Returns the number of events served. */
int rc_producer_poll(rc_producer *p, int timeout_ms);

/* A non-blocking file descriptor that becomes readable when delivery reports
 * (or client error events, which share the queue) are waiting, for an event
 * loop (EV_READ|EV_PERSIST).  It is edge-like:
 * librdkafka writes one byte when its queue goes from empty to non-empty, so
 * the reader must drain the fd (read until EAGAIN) and THEN call
 * rc_producer_poll(p, 0), which serves everything queued.  A periodic
 * rc_producer_poll(p, 0) on a timer is a cheap safety net.  Owned by the
 * producer; valid until rc_producer_free(). */
int rc_producer_event_fd(rc_producer *p);

/* Waits up to timeout_ms for every queued and in-flight message to be
 * acknowledged or failed (serving delivery reports meanwhile: the callback is
 * where each message's success or failure is decided).  Returns 0 when
 * nothing is outstanding, else -1 and logs how many were not delivered. */
int rc_producer_flush(rc_producer *p, int timeout_ms);

/* Flushes for up to RC_PRODUCER_CLOSE_TIMEOUT_MS, then purges what is left —
 * each purged message still gets its delivery callback with an error, so
 * msg_opaque owners can free them — logs how many were lost, and destroys the
 * producer.  NULL is a no-op. */
void rc_producer_free(rc_producer *p);

/* Messages and requests not yet acknowledged (rd_kafka_outq_len). */
int64_t rc_producer_outq_len(rc_producer *p);

/* The underlying handle, borrowed (for rc_kafka_ping, metadata, stats). */
rd_kafka_t *rc_producer_handle(rc_producer *p);

/* ---------------------------------------------------------------- consumer */

typedef struct rc_consumer rc_consumer;

typedef struct {
    /* Called with the partitions about to be assigned, before the wrapper
     * assigns them.  It may set each element's .offset (e.g. the next offset
     * recorded in PostgreSQL, or RD_KAFKA_OFFSET_BEGINNING for a partition
     * never consumed); RD_KAFKA_OFFSET_INVALID (as given) means "the group's
     * committed offset".  Returns 0, or -1: then nothing is assigned.  With
     * the eager protocol (the default) the hook is called again from
     * rc_consumer_poll, every 250 ms doubling to 5 s, and the partitions are
     * assigned once it succeeds: a database outage during a rebalance is
     * waited out.  With the cooperative protocol rc_consumer_failed() turns
     * true instead — the service should exit and restart.  May be NULL. */
    int (*on_assign)(void *opaque, rd_kafka_topic_partition_list_t *parts);
    /* Called BEFORE the partitions are taken away (rebalance, close, group
     * error): flush and commit the work done for them.  May be NULL. */
    void (*on_revoke)(void *opaque, const rd_kafka_topic_partition_list_t *parts);
    void *opaque;
} rc_consumer_hooks;

/* Creates a consumer in `group` subscribed to `topics`.  Defaults:
 * enable.auto.commit=false, enable.auto.offset.store=false,
 * auto.offset.reset=error (a partition with no committed offset and no offset
 * from on_assign, or an offset that fell out of retention, is a loud error,
 * never a silent skip), partition.assignment.strategy left at librdkafka's
 * eager default.  `props` override them.  `hooks` is copied; may be NULL.
 * Returns NULL and fills errbuf (naming the offending property) on failure. */
rc_consumer *rc_consumer_new(const char *brokers, const char *group,
                             const char *const *topics, size_t ntopics,
                             const char *const *props, size_t nprops,
                             const rc_consumer_hooks *hooks, char *errbuf,
                             size_t errlen);

/* Returns the next message (the caller owns it: rd_kafka_message_destroy) or
 * NULL on timeout.  Rebalance hooks run inside this call.  Errors come back as
 * messages with ->err set; see rc_consumer_fatal(). */
rd_kafka_message_t *rc_consumer_poll(rc_consumer *c, int timeout_ms);

/* True for an error message after which consuming cannot safely go on:
 * offset out of range / auto.offset.reset=error (data was lost or never
 * positioned), a fatal client error, authorization failures.  False for
 * informational errors (partition EOF, transient transport errors). */
bool rc_consumer_fatal(const rd_kafka_message_t *msg);

/* True once an on_assign hook failed under the cooperative protocol (see
 * rc_consumer_hooks). */
bool rc_consumer_failed(const rc_consumer *c);

/* Commits `offsets` (each .offset = the NEXT offset to read, i.e. last
 * processed + 1); NULL commits the offsets stored with rd_kafka_offsets_store.
 * async=false waits for the broker.  Returns 0, or -1 and logs the error (for
 * async, -1 only when the request could not be queued). */
int rc_consumer_commit(rc_consumer *c, const rd_kafka_topic_partition_list_t *offsets,
                       bool async);

/* Leaves the group (rd_kafka_consumer_close, which runs on_revoke), then
 * destroys the consumer.  Nothing is committed implicitly.  NULL is a no-op. */
void rc_consumer_free(rc_consumer *c);

rd_kafka_t *rc_consumer_handle(rc_consumer *c);

/* ------------------------------------------------------------------ common */

/* Routes librdkafka's logs (and client errors) for a handle built from
 * `conf` into rc_log, with the client name as context.  For code that
 * creates its own rd_kafka_t; the constructors above already do this. */
void rc_kafka_conf_set_logger(rd_kafka_conf_t *conf);

/* A configuration for code that creates its own rd_kafka_t (admin clients,
 * status probes): bootstrap.servers, then `props` ("key=value", overriding),
 * with the logger above.  The caller owns the result (rd_kafka_new takes it,
 * or rd_kafka_conf_destroy).  Returns NULL with the offending property named
 * in errbuf. */
rd_kafka_conf_t *rc_kafka_conf_new(const char *brokers, const char *const *props,
                                   size_t nprops, char *errbuf, size_t errlen);

/* Health probe for /healthz: a metadata request to any broker.  Returns 0 when
 * a broker answered within timeout_ms, else -1 with the reason in errbuf. */
int rc_kafka_ping(rd_kafka_t *rk, int timeout_ms, char *errbuf, size_t errlen);

#endif
