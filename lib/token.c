/* rc_token — see rc_token.h.  Tokens and their hashes come from libcrypto;
 * the map is a linear-probing table keyed by the first 16 bytes of SHA-256,
 * which are uniformly random whatever the clients send. */
#include "rc_token.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int rc_token_generate(char out[RC_TOKEN_LEN + 1])
{
    unsigned char raw[32];
    unsigned char std[48];
    int n;

    out[0] = '\0';
    if (RAND_bytes(raw, sizeof raw) != 1)
        return -1;
    /* EVP_EncodeBlock writes standard base64; map it to the URL alphabet
     * and drop the padding. */
    n = EVP_EncodeBlock(std, raw, sizeof raw);
    if (n < RC_TOKEN_LEN)
        return -1;
    for (int i = 0; i < RC_TOKEN_LEN; i++) {
        unsigned char c = std[i];
        if (c == '+')
            c = '-';
        else if (c == '/')
            c = '_';
        out[i] = (char)c;
    }
    out[RC_TOKEN_LEN] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void rc_token_hash(const char *token, size_t len, uint8_t out[RC_TOKEN_HASH_LEN])
{
    /* OpenSSL 3's SHA256() looks the algorithm up on every call; fetched
     * once, a hash costs a fraction of that (one per request). */
    pthread_once(&sha256_once, fetch_sha256);
    if (!sha256_md || !EVP_Digest(token, len, out, NULL, sha256_md, NULL))
        SHA256((const unsigned char *)token, len, out);
}

void rc_token_hash_hex(const char *token, size_t len, char out[RC_TOKEN_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t h[RC_TOKEN_HASH_LEN];

    rc_token_hash(token, len, h);
    for (int i = 0; i < RC_TOKEN_HASH_LEN; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[RC_TOKEN_HEX_LEN] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int rc_token_hash_from_hex(const char *hex, uint8_t out[RC_TOKEN_HASH_LEN])
{
    for (int i = 0; i < RC_TOKEN_HASH_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo;
        if (hi < 0)
            return -1;
        lo = hexval(hex[2 * i + 1]);
        if (lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return hex[RC_TOKEN_HEX_LEN] == '\0' ? 0 : -1;
}

bool rc_token_covers(const char *scope, const char *unit)
{
    size_t n = strlen(scope);
    return n > 0 && strncmp(scope, unit, n) == 0;
}

/* ---------------------------------------------------------------- the map */

/* An entry's value packs the unit code: bits 4..43 the code as a number,
 * bits 0..3 its number of digits (2..12, so 0 marks an empty slot), bit 63
 * the reload generation that last put it. */
typedef struct {
    uint64_t k0, k1;
    uint64_t v;
} slot;

#define GEN_BIT (1ULL << 63)
#define EMPTY(s) (((s)->v & 15) == 0)
#define MIN_CAP 1024

struct rc_token_map {
    slot *slots;
    size_t cap;   /* power of two */
    size_t size;
    uint64_t gen; /* 0 or GEN_BIT */
};

static void key_of(const uint8_t hash[RC_TOKEN_HASH_LEN], uint64_t *k0, uint64_t *k1)
{
    memcpy(k0, hash, 8);
    memcpy(k1, hash + 8, 8);
}

static int pack_unit(const char *unit, uint64_t *v)
{
    size_t n = strlen(unit);
    uint64_t num = 0;

    if (n < 2 || n > 12)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (unit[i] < '0' || unit[i] > '9')
            return -1;
        num = num * 10 + (uint64_t)(unit[i] - '0');
    }
    *v = num << 4 | n;
    return 0;
}

static void unpack_unit(uint64_t v, char unit[13])
{
    int n = (int)(v & 15);
    uint64_t num = (v & ~GEN_BIT) >> 4;

    unit[n] = '\0';
    for (int i = n - 1; i >= 0; i--) {
        unit[i] = (char)('0' + num % 10);
        num /= 10;
    }
}

rc_token_map *rc_token_map_new(void)
{
    rc_token_map *m = calloc(1, sizeof *m);

    if (!m)
        return NULL;
    m->slots = calloc(MIN_CAP, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    m->cap = MIN_CAP;
    return m;
}

void rc_token_map_free(rc_token_map *m)
{
    if (!m)
        return;
    free(m->slots);
    free(m);
}

static size_t find(const rc_token_map *m, uint64_t k0, uint64_t k1, bool *found)
{
    size_t mask = m->cap - 1, i = (size_t)k0 & mask;

    for (;;) {
        const slot *s = &m->slots[i];
        if (EMPTY(s)) {
            *found = false;
            return i;
        }
        if (s->k0 == k0 && s->k1 == k1) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static int resize(rc_token_map *m, size_t ncap)
{
    size_t mask = ncap - 1;
    slot *ns = calloc(ncap, sizeof *ns);

    if (!ns)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        const slot *s = &m->slots[i];
        size_t j;
        if (EMPTY(s))
            continue;
        j = (size_t)s->k0 & mask;
        while (!EMPTY(&ns[j]))
            j = (j + 1) & mask;
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

int rc_token_map_put(rc_token_map *m, const uint8_t hash[RC_TOKEN_HASH_LEN], const char *unit)
{
    uint64_t k0, k1, v;
    size_t i;
    bool found;

    if (pack_unit(unit, &v) < 0)
        return -1;
    key_of(hash, &k0, &k1);
    /* Keep the load under 70 %: probes stay short. */
    if ((m->size + 1) * 10 > m->cap * 7 && resize(m, m->cap * 2) < 0)
        return -1;
    i = find(m, k0, k1, &found);
    m->slots[i].k0 = k0;
    m->slots[i].k1 = k1;
    m->slots[i].v = v | m->gen;
    if (!found)
        m->size++;
    return 0;
}

int rc_token_map_reserve(rc_token_map *m, size_t n)
{
    size_t cap = m->cap;

    while (n * 10 > cap * 7)
        cap *= 2;
    return cap == m->cap ? 0 : resize(m, cap);
}

/* Empties slot i and shifts the rest of its cluster back so that every
 * entry stays reachable from its home slot (no tombstones). */
static void remove_at(rc_token_map *m, size_t i)
{
    size_t mask = m->cap - 1, j = i;

    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (EMPTY(&m->slots[j]))
            break;
        home = (size_t)m->slots[j].k0 & mask;
        /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
        if ((i <= j) ? (i < home && home <= j) : (i < home || home <= j))
            continue;
        m->slots[i] = m->slots[j];
        i = j;
    }
    memset(&m->slots[i], 0, sizeof m->slots[i]);
    m->size--;
}

bool rc_token_map_del(rc_token_map *m, const uint8_t hash[RC_TOKEN_HASH_LEN])
{
    uint64_t k0, k1;
    bool found;
    size_t i;

    key_of(hash, &k0, &k1);
    i = find(m, k0, k1, &found);
    if (found)
        remove_at(m, i);
    return found;
}

bool rc_token_map_get(const rc_token_map *m, const uint8_t hash[RC_TOKEN_HASH_LEN],
                      char unit[13])
{
    uint64_t k0, k1;
    bool found;
    size_t i;

    key_of(hash, &k0, &k1);
    i = find(m, k0, k1, &found);
    if (found && unit)
        unpack_unit(m->slots[i].v, unit);
    return found;
}

size_t rc_token_map_size(const rc_token_map *m)
{
    return m->size;
}

void rc_token_map_mark(rc_token_map *m)
{
    m->gen ^= GEN_BIT;
}

size_t rc_token_map_sweep(rc_token_map *m)
{
    size_t removed = 0, i = 0;

    /* A removal may shift a later entry into slot i: look at i again. */
    while (i < m->cap) {
        slot *s = &m->slots[i];
        if (!EMPTY(s) && (s->v & GEN_BIT) != m->gen) {
            remove_at(m, i);
            removed++;
            continue;
        }
        i++;
    }
    return removed;
}
