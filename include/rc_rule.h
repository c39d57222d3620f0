/* rc_rule — escalation rules (rows of rollcall.escalation_rule) and their
 * evaluation against a unit's aggregates: pure functions, no I/O.
 *
 * Kinds:
 *   threshold               INDICATOR > or >= THRESHOLD on the live aggregate
 *                           ("confirmed > 0", "fever_referred >= 10");
 *                           INDICATOR is a core indicator or an extra name
 *   missing_after_deadline  at or after the deadline, more than THRESHOLD
 *                           children missing (value = how many)
 *   zero_after              the unit reported zero today (every indicator 0,
 *                           at least one child in) while INDICATOR was
 *                           > THRESHOLD the day before (瞒报: home_observation)
 *   copied                  the same non-zero indicators DAYS days running
 *                           (value = DAYS) */
#ifndef RC_RULE_H
#define RC_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollcall.pb-c.h"

typedef enum {
    RC_RULE_THRESHOLD,
    RC_RULE_MISSING_AFTER_DEADLINE,
    RC_RULE_ZERO_AFTER,
    RC_RULE_COPIED,
} rc_rule_kind;

typedef struct {
    char name[64];          /* written to rollcall.escalation.rule */
    rc_rule_kind kind;
    char indicator[64];     /* threshold, zero_after */
    bool inclusive;         /* threshold: >= instead of > */
    int64_t threshold;
    int days;               /* copied: >= 2 */
    unsigned levels;        /* bit (1 << level) for each level it applies to */
    int raise_to;           /* 0: the parent level (a province raises to itself) */
} rc_rule;

/* "threshold", "missing_after_deadline", "zero_after", "copied".  Returns 0,
 * or -1 and leaves *out unchanged. */
int rc_rule_kind_parse(const char *s, rc_rule_kind *out);
const char *rc_rule_kind_name(rc_rule_kind kind);

/* Checks a rule read from the table (indicator known where one is needed,
 * op ">" or ">=", days >= 2 for copied) and fills `op`-derived fields.
 * Returns 0, or -1 with the reason in errbuf (the rule is then skipped). */
int rc_rule_check(rc_rule *rule, const char *op, char *errbuf, size_t errlen);

bool rc_rule_applies(const rc_rule *rule, int level);

/* The level an escalation raised by `level` goes to. */
int rc_rule_raise_to(const rc_rule *rule, int level);

/* An indicator's value in a report: a core indicator by name, else the
 * extra entry of that name, else 0. */
int64_t rc_rule_value(const Rollcall__Report *r, const char *indicator);

/* True when every core and extra indicator of r is 0. */
bool rc_rule_all_zero(const Rollcall__Report *r);

/* Each returns true when the rule fires and stores the escalation's value. */
bool rc_rule_eval_threshold(const rc_rule *rule, const Rollcall__Report *agg, int64_t *value);
bool rc_rule_eval_missing(const rc_rule *rule, const Rollcall__Report *agg, bool past_deadline,
                          int64_t *value);
/* `yesterday` may be NULL (no report the day before: never fires). */
bool rc_rule_eval_zero_after(const rc_rule *rule, const Rollcall__Report *today,
                             const Rollcall__Report *yesterday, int64_t *value);
/* days[0] is today, days[i] the report i days before (NULL where none). */
bool rc_rule_eval_copied(const rc_rule *rule, const Rollcall__Report *const *days, size_t ndays,
                         int64_t *value);

#endif
