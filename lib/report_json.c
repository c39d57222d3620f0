/* A direct decoder for the common JSON report: one pass over the text into
 * the protobuf message, no intermediate tree.  It decides only what it is
 * sure of — plain ASCII strings without escapes, integers, booleans, enum
 * names, nested objects and string-keyed maps, each key once — and gives
 * up on anything else, leaving the text to rc_report_from_json_text's
 * jansson path, which then gives the same answer or the exact error.  So a
 * report decoded here is the one jansson would have produced, and no check
 * is skipped: validation runs on the message as before.
 *
 * Why: jansson builds a hash table per object and a string per key and
 * value before the message is filled; for a single report that was about a
 * third of the intake's instructions. */
#include "rc_report.h"
#include "rc_time.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MEMBER(type, m, off) (*(type *)((char *)(m) + (off)))
#define MAX_DEPTH 4
#define MAX_KEY 64

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

static bool eat(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A string of printable ASCII without escapes: its bytes in place.
 * Returns -1 for anything else (escapes, UTF-8, control bytes). */
static int plain_string(cursor *c, const char **s, size_t *n)
{
    const char *b;

    skip_ws(c);
    if (c->p >= c->end || *c->p != '"')
        return -1;
    b = ++c->p;
    for (; c->p < c->end; c->p++) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            *s = b;
            *n = (size_t)(c->p - b);
            c->p++;
            return 0;
        }
        if (ch == '\\' || ch < 0x20 || ch >= 0x7f)
            return -1;
    }
    return -1;
}

/* A JSON integer of at most 18 digits (so no overflow), not followed by a
 * fraction or exponent. */
static int plain_integer(cursor *c, int64_t *out)
{
    bool neg = false;
    int digits = 0;
    int64_t v = 0;

    skip_ws(c);
    if (c->p < c->end && *c->p == '-') {
        neg = true;
        c->p++;
    }
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return -1;
    if (*c->p == '0' && c->p + 1 < c->end && c->p[1] >= '0' && c->p[1] <= '9')
        return -1;                                  /* leading zero: invalid JSON */
    for (; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++) {
        if (++digits > 18)
            return -1;
        v = v * 10 + (*c->p - '0');
    }
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
        return -1;
    *out = neg ? -v : v;
    return 0;
}

static bool literal(cursor *c, const char *word)
{
    size_t n = strlen(word);

    skip_ws(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* An enum value by its proto name or its JSON name (the name without the
 * enum's prefix, lower case: ZONE_STATUS_NORMAL -> "normal"), as
 * lib/report.c's enum_lookup. */
static const ProtobufCEnumValue *enum_by_name(const ProtobufCEnumDescriptor *e, const char *s, size_t n)
{
    char prefix[64];
    size_t o = 0;

    for (const char *p = e->short_name; *p && o + 3 < sizeof prefix; p++) {
        if (*p >= 'A' && *p <= 'Z' && p != e->short_name)
            prefix[o++] = '_';
        prefix[o++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    }
    prefix[o++] = '_';
    for (unsigned i = 0; i < e->n_values; i++) {
        const char *name = e->values[i].name;
        size_t k;

        if (strlen(name) == n && memcmp(name, s, n) == 0)
            return &e->values[i];
        if (strncmp(name, prefix, o) == 0)
            name += o;
        for (k = 0; k < n && name[k]; k++) {
            char lc = name[k] >= 'A' && name[k] <= 'Z' ? (char)(name[k] - 'A' + 'a') : name[k];
            if (lc != s[k])
                break;
        }
        if (k == n && name[k] == '\0')
            return &e->values[i];
    }
    return NULL;
}

static ProtobufCMessage *object(cursor *c, const ProtobufCMessageDescriptor *d, int depth);

/* One value of field f into slot.  Returns 0, or -1: give up. */
static int value(cursor *c, const ProtobufCFieldDescriptor *f, void *slot, int depth)
{
    int64_t x;
    const char *s;
    size_t n;

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        if (plain_integer(c, &x) < 0 || x < INT32_MIN || x > INT32_MAX)
            return -1;
        *(int32_t *)slot = (int32_t)x;
        return 0;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        if (plain_integer(c, &x) < 0 || x < 0 || x > UINT32_MAX)
            return -1;
        *(uint32_t *)slot = (uint32_t)x;
        return 0;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        if (plain_integer(c, &x) < 0 || x < 0)
            return -1;
        *(uint64_t *)slot = (uint64_t)x;
        return 0;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        if (rc_report_field_is_timestamp(f)) {
            char text[64];
            if (plain_string(c, &s, &n) < 0 || n >= sizeof text)
                return -1;
            memcpy(text, s, n);
            text[n] = '\0';
            if (rc_time_parse_rfc3339(text, &x) < 0)
                return -1;
        } else if (plain_integer(c, &x) < 0) {
            return -1;
        }
        *(int64_t *)slot = x;
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (literal(c, "true"))
            *(protobuf_c_boolean *)slot = 1;
        else if (literal(c, "false"))
            *(protobuf_c_boolean *)slot = 0;
        else
            return -1;
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev;
        if (plain_string(c, &s, &n) < 0 || !(ev = enum_by_name(f->descriptor, s, n)))
            return -1;
        *(int *)slot = ev->value;
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        char *copy;
        if (plain_string(c, &s, &n) < 0 || !(copy = malloc(n + 1)))
            return -1;
        memcpy(copy, s, n);
        copy[n] = '\0';
        *(char **)slot = copy;
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        *(ProtobufCMessage **)slot = object(c, f->descriptor, depth + 1);
        return *(ProtobufCMessage **)slot ? 0 : -1;
    default:
        return -1;                                  /* doubles, bytes: jansson's */
    }
}

/* A map<string, V> field: a JSON object, each key once. */
static int map(cursor *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, int depth)
{
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    size_t *count = &MEMBER(size_t, m, f->quantifier_offset), cap = 0;
    ProtobufCMessage ***arr = &MEMBER(ProtobufCMessage **, m, f->offset);

    if (kf->type != PROTOBUF_C_TYPE_STRING || !eat(c, '{'))
        return -1;
    if (eat(c, '}'))
        return (*arr = calloc(1, sizeof **arr)) ? 0 : -1;   /* as jansson: an empty array */
    do {
        const char *k;
        size_t kn;
        ProtobufCMessage *entry, **grown;
        char *key;

        if (plain_string(c, &k, &kn) < 0 || !eat(c, ':'))
            return -1;
        for (size_t i = 0; i < *count; i++) {
            const char *seen = MEMBER(char *, (*arr)[i], kf->offset);
            if (strlen(seen) == kn && memcmp(seen, k, kn) == 0)
                return -1;                          /* a duplicate: jansson says so */
        }
        if (*count + 1 >= cap) {
            cap = cap ? cap * 2 : 8;
            if (!(grown = realloc(*arr, cap * sizeof *grown)))
                return -1;
            *arr = grown;
        }
        if (!(entry = malloc(ed->sizeof_message)))
            return -1;
        protobuf_c_message_init(ed, entry);
        if (!(key = malloc(kn + 1))) {
            free(entry);
            return -1;
        }
        memcpy(key, k, kn);
        key[kn] = '\0';
        MEMBER(char *, entry, kf->offset) = key;
        if (value(c, vf, (char *)entry + vf->offset, depth) < 0) {
            protobuf_c_message_free_unpacked(entry, NULL);
            return -1;
        }
        (*arr)[(*count)++] = entry;
    } while (eat(c, ','));
    return eat(c, '}') ? 0 : -1;
}

static ProtobufCMessage *object(cursor *c, const ProtobufCMessageDescriptor *d, int depth)
{
    ProtobufCMessage *m;
    uint64_t seen = 0;

    if (depth > MAX_DEPTH || d->n_fields > 64 || !eat(c, '{') || !(m = malloc(d->sizeof_message)))
        return NULL;
    protobuf_c_message_init(d, m);
    if (eat(c, '}'))
        return m;
    do {
        const ProtobufCFieldDescriptor *f;
        const char *k;
        size_t kn;
        char key[MAX_KEY];
        uint64_t bit;

        if (plain_string(c, &k, &kn) < 0 || kn >= sizeof key || !eat(c, ':'))
            goto give_up;
        memcpy(key, k, kn);
        key[kn] = '\0';
        if (!(f = protobuf_c_message_descriptor_get_field_by_name(d, key)))
            goto give_up;                           /* unknown field: jansson's path says so */
        bit = (uint64_t)1 << (f - d->fields);
        if (seen & bit)
            goto give_up;                           /* a duplicate key */
        seen |= bit;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!rc_report_field_is_map(f) || map(c, m, f, depth) < 0)
                goto give_up;
            continue;
        }
        if (value(c, f, (char *)m + f->offset, depth) < 0)
            goto give_up;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            MEMBER(uint32_t, m, f->quantifier_offset) = f->id;
        else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                 f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
            MEMBER(protobuf_c_boolean, m, f->quantifier_offset) = 1;
    } while (eat(c, ','));
    if (eat(c, '}'))
        return m;
give_up:
    protobuf_c_message_free_unpacked(m, NULL);
    return NULL;
}

Rollcall__Report *rc_report_from_json_plain(const char *buf, size_t len)
{
    cursor c = {buf, buf + len};
    ProtobufCMessage *m = object(&c, &rollcall__report__descriptor, 0);

    skip_ws(&c);
    if (m && c.p != c.end) {                        /* trailing bytes: jansson's error */
        protobuf_c_message_free_unpacked(m, NULL);
        m = NULL;
    }
    return (Rollcall__Report *)m;
}
