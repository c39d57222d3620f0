/* rc_rule — see rc_rule.h.  Indicators are read through the codec's index
 * functions, so a rule may name any indicator of the proto. */
#include "rc_rule.h"
#include "rc_level.h"
#include "rc_report.h"

#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = {"threshold", "missing_after_deadline", "zero_after",
                                         "copied"};

int rc_rule_kind_parse(const char *s, rc_rule_kind *out)
{
    for (size_t i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++) {
        if (s && strcmp(s, kind_names[i]) == 0) {
            *out = (rc_rule_kind)i;
            return 0;
        }
    }
    return -1;
}

const char *rc_rule_kind_name(rc_rule_kind kind)
{
    return (size_t)kind < sizeof kind_names / sizeof kind_names[0] ? kind_names[kind] : "unknown";
}

static bool snake_case(const char *s)
{
    if (!*s || !(*s >= 'a' && *s <= 'z'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

int rc_rule_check(rc_rule *rule, const char *op, char *errbuf, size_t errlen)
{
    if (!rule->name[0]) {
        snprintf(errbuf, errlen, "rule without a name");
        return -1;
    }
    if (rule->kind == RC_RULE_THRESHOLD || rule->kind == RC_RULE_ZERO_AFTER) {
        if (!snake_case(rule->indicator)) {
            snprintf(errbuf, errlen, "rule %s: indicator '%s' is not an indicator name",
                     rule->name, rule->indicator);
            return -1;
        }
    }
    if (rule->kind == RC_RULE_THRESHOLD) {
        if (!op || (strcmp(op, ">") != 0 && strcmp(op, ">=") != 0)) {
            snprintf(errbuf, errlen, "rule %s: op '%s' must be > or >=", rule->name, op ? op : "");
            return -1;
        }
        rule->inclusive = op[1] == '=';
    }
    if (rule->kind == RC_RULE_COPIED && (rule->days < 2 || rule->days > 60)) {
        snprintf(errbuf, errlen, "rule %s: days %d must be 2..60", rule->name, rule->days);
        return -1;
    }
    if (rule->threshold < 0) {
        snprintf(errbuf, errlen, "rule %s: negative threshold", rule->name);
        return -1;
    }
    return 0;
}

bool rc_rule_applies(const rc_rule *rule, int level)
{
    return level >= 0 && level < 32 && (rule->levels & (1u << level));
}

int rc_rule_raise_to(const rc_rule *rule, int level)
{
    int parent;

    if (rule->raise_to > 0)
        return rule->raise_to;
    parent = rc_level_parent(level);
    return parent ? parent : level;
}

int64_t rc_rule_value(const Rollcall__Report *r, const char *indicator)
{
    int i = rc_indicator_index(indicator);

    if (i >= 0)
        return rc_indicator_get(r->indicators, (size_t)i);
    for (size_t k = 0; k < r->n_extra; k++)
        if (r->extra[k]->key && strcmp(r->extra[k]->key, indicator) == 0)
            return r->extra[k]->value;
    return 0;
}

bool rc_rule_all_zero(const Rollcall__Report *r)
{
    for (size_t i = 0; i < rc_indicator_count(); i++)
        if (rc_indicator_get(r->indicators, i) != 0)
            return false;
    for (size_t k = 0; k < r->n_extra; k++)
        if (r->extra[k]->value != 0)
            return false;
    return true;
}

bool rc_rule_eval_threshold(const rc_rule *rule, const Rollcall__Report *agg, int64_t *value)
{
    int64_t v;

    if (rule->kind != RC_RULE_THRESHOLD)
        return false;
    v = rc_rule_value(agg, rule->indicator);
    if (rule->inclusive ? v >= rule->threshold : v > rule->threshold) {
        *value = v;
        return true;
    }
    return false;
}

bool rc_rule_eval_missing(const rc_rule *rule, const Rollcall__Report *agg, bool past_deadline,
                          int64_t *value)
{
    const Rollcall__Completeness *c = agg->completeness;
    int64_t missing;

    if (rule->kind != RC_RULE_MISSING_AFTER_DEADLINE || !past_deadline || !c)
        return false;
    /* The list is authoritative; expected - reported covers an aggregate
     * that only carries the counts. */
    missing = c->n_missing ? (int64_t)c->n_missing : (int64_t)c->expected - c->reported;
    if (missing > rule->threshold) {
        *value = missing;
        return true;
    }
    return false;
}

bool rc_rule_eval_zero_after(const rc_rule *rule, const Rollcall__Report *today,
                             const Rollcall__Report *yesterday, int64_t *value)
{
    int64_t before;

    if (rule->kind != RC_RULE_ZERO_AFTER || !yesterday)
        return false;
    /* "Reported zero" needs a report: an aggregate nobody reported into is
     * missing, not zero — that is the missing rule's business. */
    if (!today->completeness || today->completeness->reported <= 0 || !rc_rule_all_zero(today))
        return false;
    before = rc_rule_value(yesterday, rule->indicator);
    if (before > rule->threshold) {
        *value = before;
        return true;
    }
    return false;
}

static bool same_indicators(const Rollcall__Report *a, const Rollcall__Report *b)
{
    for (size_t i = 0; i < rc_indicator_count(); i++)
        if (rc_indicator_get(a->indicators, i) != rc_indicator_get(b->indicators, i))
            return false;
    return true;
}

bool rc_rule_eval_copied(const rc_rule *rule, const Rollcall__Report *const *days, size_t ndays,
                         int64_t *value)
{
    if (rule->kind != RC_RULE_COPIED || rule->days < 2 || ndays < (size_t)rule->days || !days[0])
        return false;
    if (rc_rule_all_zero(days[0]))
        return false;   /* zero every day is what a quiet unit looks like */
    for (int i = 1; i < rule->days; i++)
        if (!days[i] || !same_indicators(days[0], days[i]))
            return false;
    *value = rule->days;
    return true;
}
