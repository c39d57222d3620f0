/* rc_report — see rc_report.h.  The JSON codec is generic over the
 * protobuf-c descriptors: a field added to the .proto is decoded, encoded
 * and round-trip tested without touching this file. */
#include "rc_report.h"
#include "rc_dlq.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEMBER(type, msg, off) (*(type *)((char *)(msg) + (off)))
#define CMEMBER(type, msg, off) (*(const type *)((const char *)(msg) + (off)))

#define MAX_EXTRA 64                     /* extra indicators per report */
#define CLOCK_SKEW_US (300LL * 1000000)  /* tolerated client clock skew for occurred_at */
/* Bounds every stage after the intake relies on (the rollup's staging row,
 * PostgreSQL's text, timestamptz and smallint): what passes them is stored. */
#define MAX_SUBMITTER 200                /* bytes */
#define MAX_NOTE 2000
#define MAX_INCIDENT_TYPE 64
#define MAX_DESCRIPTION 4000
#define MAX_HOPS 8                       /* one per level, with room */
#define MAX_MISSING 100000               /* completeness.missing codes */
#define MAX_TIME_US 253402300799999999LL /* 9999-12-31T23:59:59.999999Z */

/* ---- errors ---- */

void rc_errors_add(rc_errors *errs, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (errs->n < RC_ERRORS_MAX) {
        rc_field_error *e = &errs->e[errs->n];

        char raw[sizeof e->reason];

        /* Both may quote the offending bytes: kept valid UTF-8, so the
         * JSON answer and the dead letter's reason can carry them. */
        rc_utf8_sanitize(e->field, sizeof e->field, field);
        va_start(ap, fmt);
        vsnprintf(raw, sizeof raw, fmt, ap);
        va_end(ap);
        rc_utf8_sanitize(e->reason, sizeof e->reason, raw);
    }
    errs->n++;
}

json_t *rc_errors_to_json(const rc_errors *errs)
{
    json_t *o = json_object(), *arr = json_array();
    size_t kept = errs->n < RC_ERRORS_MAX ? errs->n : RC_ERRORS_MAX;

    if (!o || !arr)
        goto fail;
    for (size_t i = 0; i < kept; i++) {
        if (json_array_append_new(arr, json_pack("{s:s, s:s}", "field", errs->e[i].field,
                                                 "reason", errs->e[i].reason)) < 0)
            goto fail;
    }
    if (json_object_set_new(o, "error", json_string("invalid report")) < 0 ||
        json_object_set_new(o, "fields", arr) < 0)
        goto fail_o;
    if (errs->n > kept && json_object_set_new(o, "more", json_integer((json_int_t)(errs->n - kept))) < 0)
        goto fail_o;
    return o;
fail:
    json_decref(arr);
fail_o:
    json_decref(o);
    return NULL;
}

void rc_errors_format(const rc_errors *errs, char *buf, size_t len)
{
    size_t kept = errs->n < RC_ERRORS_MAX ? errs->n : RC_ERRORS_MAX, used = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < kept && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s%s%s", i ? "; " : "", errs->e[i].field,
                         errs->e[i].field[0] ? ": " : "", errs->e[i].reason);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (errs->n > kept && used < len)
        snprintf(buf + used, len - used, "; and %zu more", errs->n - kept);
}

/* ---- descriptor helpers ---- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);

    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

bool rc_report_field_is_timestamp(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_INT64 && (strcmp(f->name, "at") == 0 || ends_with(f->name, "_at"));
}

bool rc_report_field_is_map(const ProtobufCFieldDescriptor *f)
{
    const ProtobufCMessageDescriptor *d = f->descriptor;

    return f->label == PROTOBUF_C_LABEL_REPEATED && f->type == PROTOBUF_C_TYPE_MESSAGE &&
           d->n_fields == 2 && ends_with(d->short_name, "Entry") &&
           strcmp(d->fields[0].name, "key") == 0 && strcmp(d->fields[1].name, "value") == 0;
}

static size_t elt_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;   /* 32-bit ints, float, enum, protobuf_c_boolean */
    }
}

/* Prefix of an enum's value names: ZoneStatus -> "ZONE_STATUS_". */
static void enum_prefix(const ProtobufCEnumDescriptor *e, char *out, size_t len)
{
    size_t o = 0;

    for (const char *p = e->short_name; *p && o + 3 < len; p++) {
        if (isupper((unsigned char)*p) && p != e->short_name)
            out[o++] = '_';
        out[o++] = (char)toupper((unsigned char)*p);
    }
    out[o++] = '_';
    out[o] = '\0';
}

/* JSON spelling of an enum value: "LEVEL_VILLAGE" -> "village". */
static void enum_json_name(const ProtobufCEnumDescriptor *e, const ProtobufCEnumValue *v,
                           char *out, size_t len)
{
    char prefix[64];
    const char *s = v->name;
    size_t o = 0;

    enum_prefix(e, prefix, sizeof prefix);
    if (strncmp(s, prefix, strlen(prefix)) == 0)
        s += strlen(prefix);
    for (; *s && o + 1 < len; s++)
        out[o++] = (char)tolower((unsigned char)*s);
    out[o] = '\0';
}

static void enum_choices(const ProtobufCEnumDescriptor *e, char *out, size_t len)
{
    size_t used = 0;

    out[0] = '\0';
    for (unsigned i = 0; i < e->n_values && used < len; i++) {
        char name[64];

        if (e->values[i].value == 0)
            continue;   /* "unspecified" is accepted but not advertised */
        enum_json_name(e, &e->values[i], name, sizeof name);
        used += (size_t)snprintf(out + used, len - used, "%s%s", used ? ", " : "", name);
    }
}

static const ProtobufCEnumValue *enum_lookup(const ProtobufCEnumDescriptor *e, const char *s)
{
    for (unsigned i = 0; i < e->n_values; i++) {
        char name[64];

        if (strcmp(s, e->values[i].name) == 0)
            return &e->values[i];
        enum_json_name(e, &e->values[i], name, sizeof name);
        if (strcmp(s, name) == 0)
            return &e->values[i];
    }
    return NULL;
}

/* ---- JSON -> protobuf ---- */

static ProtobufCMessage *msg_from_json(const ProtobufCMessageDescriptor *d, const json_t *obj,
                                       const char *path, rc_errors *errs);

static void join_path(char *out, size_t len, const char *path, const char *name)
{
    /* Runs for every key decoded: plain copies, not snprintf.  A truncated
     * path still names the field well enough to find it. */
    size_t n = 0, k;

    for (k = 0; path[k] && n + 1 < len; k++)
        out[n++] = path[k];
    if (path[0] && n + 1 < len)
        out[n++] = '.';
    for (k = 0; name[k] && n + 1 < len; k++)
        out[n++] = name[k];
    out[n] = '\0';
}

static int int_from_json(const json_t *v, int64_t lo, int64_t hi, int64_t *out, const char *path,
                         rc_errors *errs)
{
    json_int_t x;

    if (!json_is_integer(v)) {
        rc_errors_add(errs, path, "must be an integer");
        return -1;
    }
    x = json_integer_value(v);
    if (x < lo || x > hi) {
        rc_errors_add(errs, path, "integer out of range %lld..%lld", (long long)lo, (long long)hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* Decodes one value of field f into slot.  Returns 0, or -1 with an error
 * added and slot untouched (or NULL for a message). */
static int value_from_json(const ProtobufCFieldDescriptor *f, const json_t *v, void *slot,
                           const char *path, rc_errors *errs)
{
    int64_t x;

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        if (int_from_json(v, INT32_MIN, INT32_MAX, &x, path, errs) < 0)
            return -1;
        *(int32_t *)slot = (int32_t)x;
        return 0;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        if (int_from_json(v, 0, UINT32_MAX, &x, path, errs) < 0)
            return -1;
        *(uint32_t *)slot = (uint32_t)x;
        return 0;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        if (int_from_json(v, 0, INT64_MAX, &x, path, errs) < 0)
            return -1;
        *(uint64_t *)slot = (uint64_t)x;
        return 0;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        if (rc_report_field_is_timestamp(f)) {
            if (!json_is_string(v) || rc_time_parse_rfc3339(json_string_value(v), &x) < 0) {
                rc_errors_add(errs, path,
                              "must be an RFC 3339 timestamp like 2021-08-01T09:30:00+08:00");
                return -1;
            }
        } else if (int_from_json(v, INT64_MIN, INT64_MAX, &x, path, errs) < 0) {
            return -1;
        }
        *(int64_t *)slot = x;
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v)) {
            rc_errors_add(errs, path, "must be true or false");
            return -1;
        }
        *(protobuf_c_boolean *)slot = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE: case PROTOBUF_C_TYPE_FLOAT:
        if (!json_is_number(v)) {
            rc_errors_add(errs, path, "must be a number");
            return -1;
        }
        if (f->type == PROTOBUF_C_TYPE_DOUBLE)
            *(double *)slot = json_number_value(v);
        else
            *(float *)slot = (float)json_number_value(v);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        const ProtobufCEnumValue *ev = json_is_string(v) ? enum_lookup(e, json_string_value(v)) : NULL;

        if (!ev) {
            char choices[160];

            enum_choices(e, choices, sizeof choices);
            rc_errors_add(errs, path, "must be one of %s", choices);
            return -1;
        }
        *(int *)slot = ev->value;
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        char *s;

        if (!json_is_string(v)) {
            rc_errors_add(errs, path, "must be a string");
            return -1;
        }
        if (!(s = strdup(json_string_value(v)))) {
            rc_errors_add(errs, path, "out of memory");
            return -1;
        }
        *(char **)slot = s;
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        *(ProtobufCMessage **)slot = msg_from_json(f->descriptor, v, path, errs);
        return *(ProtobufCMessage **)slot ? 0 : -1;
    case PROTOBUF_C_TYPE_BYTES:
    default:
        rc_errors_add(errs, path, "field type not supported in JSON");
        return -1;
    }
}

/* Decodes a JSON object into a map field (repeated XEntry). */
static void map_from_json(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v,
                          const char *path, rc_errors *errs)
{
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    ProtobufCMessage **arr;
    const char *key;
    json_t *val;

    if (!json_is_object(v)) {
        rc_errors_add(errs, path, "must be an object");
        return;
    }
    if (!(arr = calloc(json_object_size(v) + 1, sizeof *arr))) {
        rc_errors_add(errs, path, "out of memory");
        return;
    }
    MEMBER(ProtobufCMessage **, m, f->offset) = arr;
    json_object_foreach((json_t *)v, key, val) {
        char sub[128];
        ProtobufCMessage *entry = malloc(ed->sizeof_message);
        char *k = strdup(key);

        join_path(sub, sizeof sub, path, key);
        if (!entry || !k || kf->type != PROTOBUF_C_TYPE_STRING) {
            rc_errors_add(errs, sub, entry && k ? "map key type not supported" : "out of memory");
            free(entry);
            free(k);
            continue;
        }
        protobuf_c_message_init(ed, entry);
        MEMBER(char *, entry, kf->offset) = k;
        if (value_from_json(vf, val, (char *)entry + vf->offset, sub, errs) < 0) {
            protobuf_c_message_free_unpacked(entry, NULL);
            continue;
        }
        arr[MEMBER(size_t, m, f->quantifier_offset)++] = entry;
    }
}

static void array_from_json(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v,
                            const char *path, rc_errors *errs)
{
    size_t size = elt_size(f->type), i;
    char *arr;
    json_t *el;

    if (!json_is_array(v)) {
        rc_errors_add(errs, path, "must be an array");
        return;
    }
    if (!(arr = calloc(json_array_size(v) + 1, size))) {
        rc_errors_add(errs, path, "out of memory");
        return;
    }
    MEMBER(void *, m, f->offset) = arr;
    json_array_foreach(v, i, el) {
        char sub[128];
        size_t *n = &MEMBER(size_t, m, f->quantifier_offset);

        if (snprintf(sub, sizeof sub, "%s[%zu]", path, i) >= (int)sizeof sub)
            sub[sizeof sub - 1] = '\0';
        /* Only successes are counted, so the message stays freeable. */
        if (value_from_json(f, el, arr + *n * size, sub, errs) == 0)
            (*n)++;
    }
}

static ProtobufCMessage *msg_from_json(const ProtobufCMessageDescriptor *d, const json_t *obj,
                                       const char *path, rc_errors *errs)
{
    ProtobufCMessage *m;
    size_t before = errs->n;
    const char *key;
    json_t *v;

    if (!json_is_object(obj)) {
        rc_errors_add(errs, path, "must be an object");
        return NULL;
    }
    if (!(m = malloc(d->sizeof_message))) {
        rc_errors_add(errs, path, "out of memory");
        return NULL;
    }
    protobuf_c_message_init(d, m);
    json_object_foreach((json_t *)obj, key, v) {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
        char sub[128];

        join_path(sub, sizeof sub, path, key);
        if (!f) {
            rc_errors_add(errs, sub, "unknown field");
            continue;
        }
        if (json_is_null(v))
            continue;   /* proto3 JSON: null is the default */
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (MEMBER(void *, m, f->offset)) {
                rc_errors_add(errs, sub, "given twice");
                continue;
            }
            if (rc_report_field_is_map(f))
                map_from_json(m, f, v, sub, errs);
            else
                array_from_json(m, f, v, sub, errs);
            continue;
        }
        if (value_from_json(f, v, (char *)m + f->offset, sub, errs) < 0)
            continue;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            MEMBER(uint32_t, m, f->quantifier_offset) = f->id;
        else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                 f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
            MEMBER(protobuf_c_boolean, m, f->quantifier_offset) = 1;
    }
    if (errs->n > before) {
        protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}

Rollcall__Report *rc_report_from_json(const json_t *obj, rc_errors *errs)
{
    return (Rollcall__Report *)msg_from_json(&rollcall__report__descriptor, obj, "", errs);
}

Rollcall__Report *rc_report_from_json_text(const char *buf, size_t len, rc_errors *errs)
{
    json_error_t jerr;
    json_t *obj;
    Rollcall__Report *r = rc_report_from_json_plain(buf, len);

    if (r)
        return r;
    obj = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        rc_errors_add(errs, "", "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                      jerr.text);
        return NULL;
    }
    r = rc_report_from_json(obj, errs);
    json_decref(obj);
    return r;
}

/* ---- protobuf -> JSON ---- */

static json_t *msg_to_json(const ProtobufCMessage *m);

/* A string that jansson accepts even if the protobuf bytes were not UTF-8:
 * bytes that break UTF-8 become '?', so one bad byte never loses a report. */
static json_t *string_to_json(const char *s)
{
    json_t *v = json_string(s);
    char *copy;

    if (v || !(copy = strdup(s)))
        return v;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

static json_t *value_to_json(const ProtobufCFieldDescriptor *f, const void *slot)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)slot);
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)slot);
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        return json_integer((json_int_t)*(const uint64_t *)slot);
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        if (rc_report_field_is_timestamp(f)) {
            char ts[40];

            rc_time_format_rfc3339(*(const int64_t *)slot, ts);
            return json_string(ts);
        }
        return json_integer(*(const int64_t *)slot);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)slot);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(*(const double *)slot);
    case PROTOBUF_C_TYPE_FLOAT:
        return json_real(*(const float *)slot);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)slot);
        char name[64];

        if (!ev)
            return json_integer(*(const int *)slot);   /* unknown value: keep the number */
        enum_json_name(f->descriptor, ev, name, sizeof name);
        return json_string(name);
    }
    case PROTOBUF_C_TYPE_STRING:
        return string_to_json(*(char *const *)slot ? *(char *const *)slot : "");
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)slot ? msg_to_json(*(ProtobufCMessage *const *)slot)
                                                : json_null();
    default:
        return json_null();
    }
}

static bool is_default(const ProtobufCFieldDescriptor *f, const void *slot)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *p = *(const char *const *)slot;

        return !p || p[0] == '\0';
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(const void *const *)slot == NULL;
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)slot)->len == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)slot == 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)slot == 0;
    default:
        return elt_size(f->type) == 8 ? *(const int64_t *)slot == 0 : *(const int32_t *)slot == 0;
    }
}

/* Aggregates are read by people who expect every column: these messages
 * are emitted whole, zeros included. */
static bool emit_all_fields(const ProtobufCMessageDescriptor *d)
{
    return d == &rollcall__indicators__descriptor || d == &rollcall__completeness__descriptor;
}

static json_t *msg_to_json(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    bool all = emit_all_fields(d);
    json_t *o = json_object();

    if (!o)
        return NULL;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *slot = (const char *)m + f->offset;
        json_t *v;

        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = CMEMBER(size_t, m, f->quantifier_offset);
            const char *arr = *(const char *const *)slot;

            if (n == 0 && !all)
                continue;
            if (rc_report_field_is_map(f)) {
                const ProtobufCMessageDescriptor *ed = f->descriptor;

                v = json_object();
                for (size_t k = 0; v && k < n; k++) {
                    const ProtobufCMessage *e = ((ProtobufCMessage *const *)arr)[k];
                    const char *key = CMEMBER(char *, e, ed->fields[0].offset);

                    if (json_object_set_new(v, key ? key : "",
                                            value_to_json(&ed->fields[1],
                                                          (const char *)e + ed->fields[1].offset)) < 0) {
                        json_decref(v);
                        v = NULL;
                    }
                }
            } else {
                v = json_array();
                for (size_t k = 0; v && k < n; k++) {
                    if (json_array_append_new(v, value_to_json(f, arr + k * elt_size(f->type))) < 0) {
                        json_decref(v);
                        v = NULL;
                    }
                }
            }
        } else {
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                CMEMBER(uint32_t, m, f->quantifier_offset) != f->id)
                continue;
            if (f->type == PROTOBUF_C_TYPE_MESSAGE ? !*(const void *const *)slot
                                                  : (!all && is_default(f, slot)))
                continue;
            v = value_to_json(f, slot);
        }
        if (json_object_set_new(o, f->name, v) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *rc_report_to_json(const Rollcall__Report *r)
{
    return msg_to_json(&r->base);
}

char *rc_report_to_json_text(const Rollcall__Report *r)
{
    json_t *o = rc_report_to_json(r);
    char *s;

    if (!o)
        return NULL;
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* ---- protobuf ---- */

Rollcall__Report *rc_report_unpack(const uint8_t *buf, size_t len, rc_errors *errs)
{
    Rollcall__Report *r = rollcall__report__unpack(NULL, len, buf);

    if (!r)
        rc_errors_add(errs, "", "undecodable protobuf Report (%zu bytes)", len);
    return r;
}

uint8_t *rc_report_pack(const Rollcall__Report *r, size_t *len)
{
    size_t n = rollcall__report__get_packed_size(r);
    uint8_t *buf = malloc(n ? n : 1);

    if (!buf)
        return NULL;
    *len = rollcall__report__pack(r, buf);
    return buf;
}

void rc_report_free(Rollcall__Report *r)
{
    if (r)
        rollcall__report__free_unpacked(r, NULL);
}

/* ---- indicators ---- */

size_t rc_indicator_count(void)
{
    return rollcall__indicators__descriptor.n_fields;
}

const char *rc_indicator_name(size_t i)
{
    return i < rc_indicator_count() ? rollcall__indicators__descriptor.fields[i].name : NULL;
}

int64_t rc_indicator_get(const Rollcall__Indicators *ind, size_t i)
{
    if (!ind || i >= rc_indicator_count())
        return 0;
    return CMEMBER(int64_t, ind, rollcall__indicators__descriptor.fields[i].offset);
}

void rc_indicator_set(Rollcall__Indicators *ind, size_t i, int64_t v)
{
    if (ind && i < rc_indicator_count())
        MEMBER(int64_t, ind, rollcall__indicators__descriptor.fields[i].offset) = v;
}

int rc_indicator_index(const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(&rollcall__indicators__descriptor, name);

    return f ? (int)(f - rollcall__indicators__descriptor.fields) : -1;
}

/* ---- validation ---- */

void rc_validate_opts_default(rc_validate_opts *opts)
{
    static const struct { const char *name; int64_t max; } larger[] = {
        {"persons_screened", 10000000},     {"temperature_checks", 10000000},
        {"nucleic_acid_sampled", 10000000}, {"vaccinated", 10000000},
        {"disinfectant_kg", 10000000},      {"masks", 100000000},
    };

    memset(opts, 0, sizeof *opts);
    opts->now_us = rc_now_us();
    opts->max_past_days = 7;
    opts->max_future_days = 0;
    for (size_t i = 0; i < RC_INDICATORS_MAX; i++)
        opts->max_value[i] = 1000000;
    for (size_t i = 0; i < sizeof larger / sizeof larger[0]; i++) {
        int k = rc_indicator_index(larger[i].name);

        if (k >= 0)
            opts->max_value[k] = larger[i].max;
    }
    opts->max_extra_value = 100000000;
    opts->require_report_id = false;
}

static bool enum_known(const ProtobufCEnumDescriptor *e, int v)
{
    return protobuf_c_enum_descriptor_get_value(e, v) != NULL;
}

static bool extra_name_ok(const char *s)
{
    size_t n = 0;

    if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (n = 1; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
            return false;
    return n <= 63;
}

static void validate_unit(const Rollcall__Report *r, const rc_registry *reg, rc_errors *errs)
{
    const char *code = r->unit_code ? r->unit_code : "";
    int code_level = rc_code_level(code), reg_level = 0;
    char want[16];

    if (!code[0])
        rc_errors_add(errs, "unit_code", "required");
    else if (code_level == 0)
        rc_errors_add(errs, "unit_code", "must be 2, 4, 6, 9 or 12 digits");
    else if (reg && (reg_level = rc_registry_level(reg, code)) == 0)
        rc_errors_add(errs, "unit_code", "unknown unit %.20s", code);

    if (r->level == ROLLCALL__LEVEL__LEVEL_UNSPECIFIED) {
        rc_errors_add(errs, "level", "required");
    } else if (!enum_known(&rollcall__level__descriptor, (int)r->level)) {
        rc_errors_add(errs, "level", "not a valid level (%d)", (int)r->level);
    } else if (code_level && (int)r->level != code_level) {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(&rollcall__level__descriptor, code_level);

        enum_json_name(&rollcall__level__descriptor, ev, want, sizeof want);
        rc_errors_add(errs, "level", "does not match unit_code (a %zu-digit code is a %s)",
                      strlen(code), want);
    } else if (reg_level && (int)r->level != reg_level) {
        rc_errors_add(errs, "level", "does not match the registry's level %d", reg_level);
    }
}

static void validate_period(const Rollcall__Report *r, const rc_validate_opts *opts,
                            rc_errors *errs)
{
    int32_t day, today = rc_period_of(opts->now_us);
    char when[11];

    if (!r->period || !r->period[0]) {
        rc_errors_add(errs, "period", "required");
    } else if (rc_period_parse(r->period, &day) < 0) {
        rc_errors_add(errs, "period", "must be a real date YYYY-MM-DD");
    } else if (day > today + opts->max_future_days) {
        rc_period_format(today, when);
        rc_errors_add(errs, "period", "is in the future (today is %s in Asia/Shanghai)", when);
    } else if (day < today - opts->max_past_days) {
        rc_period_format(today, when);
        rc_errors_add(errs, "period", "is more than %d days before today (%s)", opts->max_past_days,
                      when);
    }
}

static void validate_values(const Rollcall__Report *r, const rc_validate_opts *opts,
                            rc_errors *errs)
{
    bool zero = r->kind == ROLLCALL__KIND__KIND_ZERO;
    char path[96];

    for (size_t i = 0; r->indicators && i < rc_indicator_count(); i++) {
        int64_t v = rc_indicator_get(r->indicators, i);
        int64_t max = i < RC_INDICATORS_MAX ? opts->max_value[i] : opts->max_extra_value;

        if (v >= 0 && v <= max && !(zero && v != 0))
            continue;           /* valid: no path to format (the hot path) */
        snprintf(path, sizeof path, "indicators.%s", rc_indicator_name(i));
        if (v < 0)
            rc_errors_add(errs, path, "must not be negative");
        else if (v > max)
            rc_errors_add(errs, path, "must not exceed %lld", (long long)max);
        else if (zero && v != 0)
            rc_errors_add(errs, path, "a zero report must have every indicator 0");
    }
    if (r->n_extra > MAX_EXTRA)
        rc_errors_add(errs, "extra", "at most %d extra indicators", MAX_EXTRA);
    for (size_t i = 0; i < r->n_extra && i < MAX_EXTRA; i++) {
        const char *name = r->extra[i]->key ? r->extra[i]->key : "";
        int64_t v = r->extra[i]->value;

        snprintf(path, sizeof path, "extra.%.80s", name);
        if (!extra_name_ok(name)) {
            rc_errors_add(errs, path, "name must be snake_case: [a-z][a-z0-9_]{0,62}");
            continue;
        }
        if (rc_indicator_index(name) >= 0) {
            rc_errors_add(errs, path, "is a core indicator; put it in indicators");
            continue;
        }
        for (size_t k = 0; k < i; k++) {
            if (r->extra[k]->key && strcmp(r->extra[k]->key, name) == 0) {
                rc_errors_add(errs, path, "given twice");
                break;
            }
        }
        if (v < 0)
            rc_errors_add(errs, path, "must not be negative");
        else if (v > opts->max_extra_value)
            rc_errors_add(errs, path, "must not exceed %lld", (long long)opts->max_extra_value);
        else if (zero && v != 0)
            rc_errors_add(errs, path, "a zero report must have every indicator 0");
    }
}

static void validate_incident(const Rollcall__Report *r, const rc_validate_opts *opts,
                              rc_errors *errs)
{
    const Rollcall__Incident *in = r->incident;

    if (r->kind != ROLLCALL__KIND__KIND_URGENT) {
        if (in)
            rc_errors_add(errs, "incident", "incident only with kind urgent");
        return;
    }
    if (!in) {
        rc_errors_add(errs, "incident", "required with kind urgent");
        return;
    }
    if (!in->type || !in->type[0])
        rc_errors_add(errs, "incident.type", "required");
    if (in->severity < 1 || in->severity > 4)
        rc_errors_add(errs, "incident.severity", "must be 1 (low) to 4 (most severe)");
    if (in->occurred_at == 0)
        rc_errors_add(errs, "incident.occurred_at", "required");
    else if (in->occurred_at > opts->now_us + CLOCK_SKEW_US)
        rc_errors_add(errs, "incident.occurred_at", "is in the future");
}

/* A free-text field: valid UTF-8 (PostgreSQL refuses anything else) and
 * at most max bytes. */
static void validate_text(const char *field, const char *s, size_t max, rc_errors *errs)
{
    size_t n = s ? strlen(s) : 0;
    if (n > max)
        rc_errors_add(errs, field, "at most %zu bytes", max);
    else if (n && !rc_utf8_valid(s, n))
        rc_errors_add(errs, field, "must be valid UTF-8");
}

static void validate_time(const char *field, int64_t us, rc_errors *errs)
{
    if (us < 0 || us > MAX_TIME_US)
        rc_errors_add(errs, field, "must be a time between 1970 and 9999");
}

/* What the stages after the intake store as text, time or smallint. */
int rc_report_validate_storable(const Rollcall__Report *r, rc_errors *errs)
{
    size_t before = errs->n;
    char path[64];

    validate_text("submitter", r->submitter, MAX_SUBMITTER, errs);
    validate_text("note", r->note, MAX_NOTE, errs);
    validate_time("submitted_at", r->submitted_at, errs);
    validate_time("received_at", r->received_at, errs);
    if (r->version < 0)
        rc_errors_add(errs, "version", "must not be negative");
    if (r->completeness) {
        const Rollcall__Completeness *c = r->completeness;
        if (c->n_missing > MAX_MISSING)
            rc_errors_add(errs, "completeness.missing", "at most %d codes", MAX_MISSING);
        for (size_t i = 0; i < c->n_missing && i < MAX_MISSING; i++) {
            if (rc_code_level(c->missing[i] ? c->missing[i] : "") == 0) {
                snprintf(path, sizeof path, "completeness.missing[%zu]", i);
                rc_errors_add(errs, path, "must be a unit code");
                break;
            }
        }
    }
    const Rollcall__Incident *in = r->incident;
    if (!in)
        return errs->n > before ? -1 : 0;
    validate_text("incident.type", in->type, MAX_INCIDENT_TYPE, errs);
    validate_text("incident.description", in->description, MAX_DESCRIPTION, errs);
    validate_time("incident.occurred_at", in->occurred_at, errs);
    if (in->n_hops > MAX_HOPS) {
        rc_errors_add(errs, "incident.hops", "at most %d hops", MAX_HOPS);
        return -1;
    }
    for (size_t i = 0; i < in->n_hops; i++) {
        const Rollcall__Hop *h = in->hops[i];
        const char *code = h->unit_code ? h->unit_code : "";
        snprintf(path, sizeof path, "incident.hops[%zu]", i);
        if (h->level == ROLLCALL__LEVEL__LEVEL_UNSPECIFIED ||
            !enum_known(&rollcall__level__descriptor, (int)h->level))
            rc_errors_add(errs, path, "level: not a valid level (%d)", (int)h->level);
        else if (rc_code_level(code) != (int)h->level)
            rc_errors_add(errs, path, "unit_code: not a code of that level");
        if (h->at <= 0 || h->at > MAX_TIME_US)
            rc_errors_add(errs, path, "at: must be a time between 1970 and 9999");
        for (size_t k = 0; k < i; k++)
            if (in->hops[k]->level == h->level) {
                rc_errors_add(errs, path, "level given twice");
                break;
            }
    }
    return errs->n > before ? -1 : 0;
}

int rc_report_validate(const Rollcall__Report *r, const rc_validate_opts *opts,
                       const rc_registry *reg, rc_errors *errs)
{
    size_t before = errs->n;

    if (!r->report_id || !r->report_id[0]) {
        if (opts->require_report_id)
            rc_errors_add(errs, "report_id", "required");
    } else if (!rc_uuid_valid(r->report_id)) {
        rc_errors_add(errs, "report_id", "must be a lower-case UUID");
    }
    validate_unit(r, reg, errs);
    validate_period(r, opts, errs);
    if (r->kind == ROLLCALL__KIND__KIND_UNSPECIFIED)
        rc_errors_add(errs, "kind", "required");
    else if (!enum_known(&rollcall__kind__descriptor, (int)r->kind))
        rc_errors_add(errs, "kind", "not a valid kind (%d)", (int)r->kind);
    if (!enum_known(&rollcall__zone_status__descriptor, (int)r->zone_status))
        rc_errors_add(errs, "zone_status", "not a valid zone status (%d)", (int)r->zone_status);
    validate_values(r, opts, errs);
    validate_incident(r, opts, errs);
    rc_report_validate_storable(r, errs);
    return errs->n > before ? -1 : 0;
}

int rc_report_stream_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **item,
                          size_t *item_len)
{
    uint64_t v = 0;
    size_t o = *off;

    if (o >= len)
        return 0;
    for (int shift = 0;; shift += 7) {
        if (shift >= 70 || o >= len)
            return -1;
        uint8_t b = buf[o++];
        v |= (uint64_t)(b & 0x7f) << (shift < 64 ? shift : 63);
        if (!(b & 0x80))
            break;
    }
    if (v > len - o)
        return -1;
    *item = buf + o;
    *item_len = (size_t)v;
    *off = o + (size_t)v;
    return 1;
}

/* ------------------------------------------------------------ submission */

static bool has_field(const rc_errors *errs, const char *field)
{
    size_t n = errs->n < RC_ERRORS_MAX ? errs->n : RC_ERRORS_MAX;
    for (size_t i = 0; i < n; i++)
        if (strcmp(errs->e[i].field, field) == 0)
            return true;
    return false;
}

/* See rc_report.h: one set of rules for every door into the system. */
void rc_report_check_submission(const Rollcall__Report *r, const rc_registry *reg, rc_errors *errs)
{
    const char *unit = r->unit_code ? r->unit_code : "";
    int level;

    if (r->version != 0)
        rc_errors_add(errs, "version", "assigned by the service (receive time); leave it out");
    if (r->received_at != 0)
        rc_errors_add(errs, "received_at", "assigned by the service; leave it out");
    if (r->completeness)
        rc_errors_add(errs, "completeness", "only aggregates and filed reports carry completeness");
    if (r->revised)
        rc_errors_add(errs, "revised", "only filed reports are revised");
    if (r->level != ROLLCALL__LEVEL__LEVEL_VILLAGE && r->level != ROLLCALL__LEVEL__LEVEL_UNSPECIFIED
        && !has_field(errs, "level"))
        rc_errors_add(errs, "level", "must be village: the intake takes village and community reports only");
    if (r->kind != ROLLCALL__KIND__KIND_DAILY && r->kind != ROLLCALL__KIND__KIND_ZERO
        && r->kind != ROLLCALL__KIND__KIND_URGENT && !has_field(errs, "kind"))
        rc_errors_add(errs, "kind", "must be daily, zero or urgent");
    if (r->incident && r->incident->n_hops > 0)
        rc_errors_add(errs, "incident.hops", "assigned by the services on the way up; leave it out");
    /* protobuf-c keeps fields it does not know and packs them again: they
     * would travel to Kafka and the archive unchecked (JSON refuses them). */
    if (r->base.n_unknown_fields > 0)
        rc_errors_add(errs, "", "unknown field number %u", (unsigned)r->base.unknown_fields[0].tag);
    if (*unit && !has_field(errs, "unit_code")) {
        level = reg ? rc_registry_level(reg, unit) : 0;
        if (level != 0 && level != ROLLCALL__LEVEL__LEVEL_VILLAGE)
            rc_errors_add(errs, "unit_code", "%s is not a village or community (level %d)", unit, level);
        else if (level == 0 && rc_code_level(unit) != ROLLCALL__LEVEL__LEVEL_VILLAGE)
            rc_errors_add(errs, "unit_code", "must be a 12-digit village or community code");
    }
}
