/* The idempotency window: report_id -> (state, version, fingerprint) for the
 * most recent reports, so that a retry gets the same answer and the same
 * version and produces nothing new.  A fixed ring (memory is bounded: 64
 * bytes a slot) with a chained hash index; a slot still in flight is never
 * overwritten, the ring skips it. */
#include "village.h"

#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

typedef struct {
    uint8_t id[16];
    int64_t version;
    int64_t submitted_at;
    uint64_t fp;
    void *job;
    uint32_t next, prev; /* hash chain, both ways: evicting is O(1) */
    uint8_t state;      /* 0 = free */
} ring_slot;

struct dedupe {
    ring_slot *slots;
    uint32_t *buckets;
    size_t n, nbuckets, head, used;
    int64_t window_us;
    uint64_t seed;
};

static uint64_t mix(uint64_t x)
{
    /* splitmix64's finaliser: a client choosing its report_ids cannot pick
     * colliding buckets without knowing the seed. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static size_t bucket_of(const dedupe *d, const uint8_t id[16])
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    return (size_t)(mix(a ^ d->seed) ^ mix(b + d->seed)) & (d->nbuckets - 1);
}

dedupe *dedupe_new(size_t entries, int64_t window_us)
{
    dedupe *d = calloc(1, sizeof *d);

    if (!d)
        return NULL;
    if (entries < 16)
        entries = 16;
    d->n = entries;
    d->nbuckets = 16;
    while (d->nbuckets < entries)
        d->nbuckets <<= 1;
    d->slots = calloc(d->n, sizeof *d->slots);
    d->buckets = malloc(d->nbuckets * sizeof *d->buckets);
    if (!d->slots || !d->buckets) {
        dedupe_free(d);
        return NULL;
    }
    memset(d->buckets, 0xff, d->nbuckets * sizeof *d->buckets);
    d->window_us = window_us;
    d->seed = mix((uint64_t)(uintptr_t)d ^ (uint64_t)window_us ^ (uint64_t)rc_now_us());
    return d;
}

void dedupe_free(dedupe *d)
{
    if (!d)
        return;
    free(d->slots);
    free(d->buckets);
    free(d);
}

static void unlink_slot(dedupe *d, uint32_t i)
{
    ring_slot *s = &d->slots[i];

    if (s->prev == NIL)
        d->buckets[bucket_of(d, s->id)] = s->next;
    else
        d->slots[s->prev].next = s->next;
    if (s->next != NIL)
        d->slots[s->next].prev = s->prev;
    d->slots[i].state = 0;
    d->slots[i].job = NULL;
    d->used--;
}

bool dedupe_find(dedupe *d, const uint8_t id[16], int64_t now_us, dd_entry *out)
{
    for (uint32_t i = d->buckets[bucket_of(d, id)]; i != NIL; i = d->slots[i].next) {
        ring_slot *s = &d->slots[i];
        if (memcmp(s->id, id, 16) != 0)
            continue;
        /* Outside the window a report_id is new again (the rollup still
         * ignores a second delivery of it). */
        if (s->state != DD_INFLIGHT && now_us - s->version > d->window_us)
            return false;
        out->slot = i;
        out->state = (dd_state)s->state;
        out->version = s->version;
        out->submitted_at = s->submitted_at;
        out->fingerprint = s->fp;
        out->job = s->job;
        return true;
    }
    return false;
}

int64_t dedupe_add(dedupe *d, const uint8_t id[16], int64_t version, int64_t submitted_at,
                   uint64_t fingerprint, void *job)
{
    size_t tries = 0;
    uint32_t i;
    size_t b;

    /* The oldest slot goes, unless it is still waiting for Kafka. */
    while (d->slots[d->head].state == DD_INFLIGHT) {
        d->head = (d->head + 1) % d->n;
        if (++tries == d->n)
            return -1;
    }
    i = (uint32_t)d->head;
    d->head = (d->head + 1) % d->n;
    if (d->slots[i].state)
        unlink_slot(d, i);
    /* An older entry for the same id (outside the window) is replaced. */
    for (uint32_t j = d->buckets[bucket_of(d, id)]; j != NIL; j = d->slots[j].next) {
        if (memcmp(d->slots[j].id, id, 16) == 0 && d->slots[j].state != DD_INFLIGHT) {
            unlink_slot(d, j);
            break;
        }
    }
    memcpy(d->slots[i].id, id, 16);
    d->slots[i].version = version;
    d->slots[i].submitted_at = submitted_at;
    d->slots[i].fp = fingerprint;
    d->slots[i].job = job;
    d->slots[i].state = DD_INFLIGHT;
    b = bucket_of(d, id);
    d->slots[i].prev = NIL;
    d->slots[i].next = d->buckets[b];
    if (d->buckets[b] != NIL)
        d->slots[d->buckets[b]].prev = i;
    d->buckets[b] = i;
    d->used++;
    return i;
}

void dedupe_set(dedupe *d, uint32_t slot_index, dd_state state, void *job)
{
    d->slots[slot_index].state = (uint8_t)state;
    d->slots[slot_index].job = state == DD_INFLIGHT ? job : NULL;
}

size_t dedupe_size(const dedupe *d)
{
    return d->used;
}
