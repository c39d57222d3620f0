/* rc_report — the Report codec (JSON <-> protobuf, pack/unpack), indicator
 * access by index, and validation with every problem named by field.
 *
 * The JSON codec walks the protobuf-c descriptors, so every field of
 * proto/rollcall.proto is covered by construction and JSON names are the
 * proto names.  JSON house rules: enums are lower case without their prefix
 * ("village", "daily", "lockdown"; the full proto name "KIND_DAILY" is also
 * accepted); int64 fields named *_at and Hop.at are RFC 3339 strings; every
 * other integer is a JSON integer; null means "default". */
#ifndef RC_REPORT_H
#define RC_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rc_registry.h"
#include "rc_time.h"
#include "rollcall.pb-c.h"

/* ---- field errors ---- */

/* field is 96 bytes, not 64: "extra." plus a 63-character extra name must fit. */
typedef struct { char field[96]; char reason[192]; } rc_field_error;
#define RC_ERRORS_MAX 32
typedef struct { size_t n; rc_field_error e[RC_ERRORS_MAX]; } rc_errors;

/* Records a problem with a field (a dotted proto path: "indicators.confirmed",
 * "extra.my_indicator", "incident.hops[1].at"; "" for the whole document).
 * Beyond RC_ERRORS_MAX the error is dropped but still counted in n. */
void rc_errors_add(rc_errors *errs, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* {"error":"invalid report","fields":[{"field":..,"reason":..},..]}, with
 * "more": N when errors were dropped.  New reference; NULL on out of memory. */
json_t *rc_errors_to_json(const rc_errors *errs);

/* "field: reason; field: reason" (truncated to len) for logs and DLQ reasons. */
void rc_errors_format(const rc_errors *errs, char *buf, size_t len);

/* ---- codec ---- */

/* Decodes a JSON object into a new Report.  Returns NULL with the problems
 * appended to errs (unknown key, wrong type, bad enum, bad timestamp,
 * integer out of range), nothing allocated.  The result is freed with
 * rc_report_free (or rollcall__report__free_unpacked(r, NULL)). */
Rollcall__Report *rc_report_from_json(const json_t *obj, rc_errors *errs);

/* As rc_report_from_json from JSON text; a syntax error (or a duplicate
 * key) is reported on field "" with jansson's line and column. */
Rollcall__Report *rc_report_from_json_text(const char *buf, size_t len, rc_errors *errs);

/* The JSON mapping's two descriptor rules, shared by both JSON decoders:
 * int64 fields named *_at (and Hop.at) are instants, RFC 3339 text in JSON;
 * protobuf-c represents map<K,V> as repeated KEntry {key = 1; value = 2}. */
bool rc_report_field_is_timestamp(const ProtobufCFieldDescriptor *f);
bool rc_report_field_is_map(const ProtobufCFieldDescriptor *f);

/* The common case of rc_report_from_json_text in one pass (lib/report_json.c):
 * the report, or NULL when the text holds anything it leaves to jansson
 * (escapes, non-ASCII text, doubles, nulls, arrays, unknown or repeated keys,
 * any error).  Never an answer jansson's path would not give. */
Rollcall__Report *rc_report_from_json_plain(const char *buf, size_t len);

/* Encodes a Report as JSON, omitting default values like the proto3 JSON
 * mapping, except that `indicators` (when present) always carries all its
 * names and `completeness` (when present) every field, zero or not.
 * New reference; NULL on out of memory. */
json_t *rc_report_to_json(const Rollcall__Report *r);

/* Compact JSON text of rc_report_to_json; the caller frees it.  NULL on out
 * of memory. */
char *rc_report_to_json_text(const Rollcall__Report *r);

/* Decodes protobuf bytes.  Returns NULL with an error on field "" when the
 * bytes do not decode. */
Rollcall__Report *rc_report_unpack(const uint8_t *buf, size_t len, rc_errors *errs);

/* Encodes a Report; returns a malloc'ed buffer (caller frees) and its
 * length in *len, NULL on out of memory. */
uint8_t *rc_report_pack(const Rollcall__Report *r, size_t *len);

/* Length-delimited stream (varint length + Report bytes, repeated), as
 * POST /v1/reports:batch takes it: the item at *off into *item / *item_len,
 * *off moved past it.  Returns 1 for an item, 0 at the end of buf, -1 when
 * the stream is malformed there (a varint longer than 10 bytes or cut
 * short, a length past the end); *off then points at the bad byte. */
int rc_report_stream_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **item,
                          size_t *item_len);

/* Frees a Report from any of the functions above; NULL is a no-op. */
void rc_report_free(Rollcall__Report *r);

/* ---- indicators, by index in proto order (field number order) ---- */

#define RC_INDICATORS_MAX 64   /* room to grow; rc_indicator_count() is the real number */

size_t rc_indicator_count(void);
/* NULL when i is out of range. */
const char *rc_indicator_name(size_t i);
/* 0 when ind is NULL or i is out of range. */
int64_t rc_indicator_get(const Rollcall__Indicators *ind, size_t i);
/* No-op when i is out of range. */
void rc_indicator_set(Rollcall__Indicators *ind, size_t i, int64_t v);
/* Index of a core indicator name, -1 when unknown. */
int rc_indicator_index(const char *name);

/* ---- validation ---- */

typedef struct {
    int64_t now_us;               /* "today" and "the future" are measured from here */
    int max_past_days;            /* period may be at most this many days before today */
    int max_future_days;          /* ... and at most this many after */
    int64_t max_value[RC_INDICATORS_MAX];  /* per indicator, by index */
    int64_t max_extra_value;
    bool require_report_id;
} rc_validate_opts;

/* Defaults for a village report: now, 7 days back, 0 ahead, report_id
 * optional; value bounds catch absurd numbers (a typo, an overflow), not
 * unlikely ones: 1,000,000 for most counts; 10,000,000 for persons_screened,
 * temperature_checks, nucleic_acid_sampled, vaccinated and disinfectant_kg;
 * 100,000,000 for masks and for extra indicators.  Raise them before
 * validating aggregates. */
void rc_validate_opts_default(rc_validate_opts *opts);

/* The part of rc_report_validate that is about storing, not meaning: free
 * text valid UTF-8 and within its size, times within 1970-9999, at most a
 * few hops, each a known level with a code of that level, each level once.
 * What fails here PostgreSQL would refuse; a service that passes a report
 * on (an urgent forward) checks it so as not to pass on poison.  Returns 0,
 * or -1 with the problems appended to errs. */
int rc_report_validate_storable(const Rollcall__Report *r, rc_errors *errs);

/* Checks a report against the schema rules (see lib/report.c) and, when reg
 * is not NULL, the registry.  Returns 0 when valid, or -1 with every problem
 * appended to errs.  Village-only and token rules belong to the intake. */
int rc_report_validate(const Rollcall__Report *r, const rc_validate_opts *opts,
                       const rc_registry *reg, rc_errors *errs);

/* The rules of a village report entering the system (the intake, and
 * `rollcall replay --file`), on top of rc_report_validate: the unit is a
 * village (by reg when it knows the unit, else by the code's length), kind
 * DAILY, ZERO or URGENT, and nothing the system assigns — version,
 * received_at, completeness, revised, incident hops — nor a protobuf field
 * the schema does not have.  Appends each problem to errs; a field that
 * rc_report_validate already named is not named again.  A LEVEL_UNSPECIFIED
 * report counts as a village's (the caller sets the level). */
void rc_report_check_submission(const Rollcall__Report *r, const rc_registry *reg, rc_errors *errs);

#endif
