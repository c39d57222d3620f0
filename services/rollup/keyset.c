/* keyset — a set of non-zero 64-bit keys with open addressing and linear
 * probing; the batch's (unit, period) and parent sets. */
#include "rollup.h"

#include <stdlib.h>
#include <string.h>

static inline size_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k;
}

void keyset_init(keyset *s)
{
    s->slots = NULL;
    s->cap = s->n = 0;
}

void keyset_free(keyset *s)
{
    free(s->slots);
    keyset_init(s);
}

void keyset_clear(keyset *s)
{
    /* Big sets shrink back so one backlog batch does not pin memory. */
    if (s->cap > (1u << 16)) {
        keyset_free(s);
        return;
    }
    if (s->slots)
        memset(s->slots, 0, s->cap * sizeof *s->slots);
    s->n = 0;
}

static int grow(keyset *s)
{
    size_t cap = s->cap ? s->cap * 2 : 256;
    uint64_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < s->cap; i++) {
        uint64_t k = s->slots[i];
        if (!k)
            continue;
        size_t j = mix(k) & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = k;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

int keyset_add(keyset *s, uint64_t k)
{
    if ((s->n + 1) * 4 > s->cap * 3 && grow(s) < 0)
        return -1;
    size_t j = mix(k) & (s->cap - 1);
    while (s->slots[j]) {
        if (s->slots[j] == k)
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = k;
    s->n++;
    return 1;
}

void keyset_each(const keyset *s, void (*fn)(uint64_t k, void *opaque), void *opaque)
{
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i])
            fn(s->slots[i], opaque);
}

bool keyset_has(const keyset *s, uint64_t k)
{
    if (!s->cap)
        return false;
    size_t j = mix(k) & (s->cap - 1);
    while (s->slots[j]) {
        if (s->slots[j] == k)
            return true;
        j = (j + 1) & (s->cap - 1);
    }
    return false;
}
