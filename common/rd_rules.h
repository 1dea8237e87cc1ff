/*
 * rd_rules.h -- operator-editable classification rules.
 *
 * A ruleset is a JSON document (see deploy/config/rules.default.json and docs/classifier.md):
 *
 *   {"rules": [
 *     {"name": "media-exposure", "target": "severity", "value": "major", "priority": 100,
 *      "when": [{"field": "text", "keywords": ["记者", "曝光", "媒体", "journalist", "media"]}]},
 *     {"name": "outage-is-repair", "target": "business_type", "value": "fault_repair", "priority": 50,
 *      "when": [{"field": "text", "regex": "停电|断电|\\bpower (cut|outage)\\b"}]},
 *     {"name": "vip", "target": "severity", "value": "major", "when": [{"field": "vip", "equals": "true"}]}
 *   ]}
 *
 * A rule fires when every condition in "when" holds. Conditions test one field with one matcher:
 * "keywords" (any of them, as a substring; ASCII letters case-insensitive), "regex" (PCRE2, UTF-8,
 * case-insensitive), or "equals" (the whole value, ASCII case-insensitive); "not": true inverts it.
 * {"any": [conditions...]} holds when at least one of its conditions holds (nesting up to 4 deep).
 * A "text" condition tests subject and body separately ("equals" on text is refused). A regex that
 * hits PCRE2's backtracking limit counts as "does not hold", even under "not"; invalid UTF-8 input
 * never matches. Optional "description" strings (document and rule) are part of the content.
 * Fields: text (subject + body), subject, body, channel, organisation, product, region, language,
 * external_case_no, customer_ref, vip ("true"/"false"), repeat ("true" when the classifier found an
 * earlier ticket of the same customer on the same category).
 *
 * Targets and how conflicts resolve (higher "priority" first, then file order):
 *   business_type, category, priority: the first rule that fires decides;
 *   severity: "major" from ANY rule that fires makes the ticket major, and every such rule is
 *   listed as a reason; when none does, the "general" rules that fired are the reasons.
 * Rules override the model: the classifier asks the model only for what no rule decided.
 *
 * A parsed ruleset is immutable and safe to share between threads.
 */
#ifndef RD_RULES_H
#define RD_RULES_H

#include <stdbool.h>
#include <stddef.h>

#define RD_RULES_MAX_REASONS 16

typedef struct rd_ruleset rd_ruleset;

typedef struct {
    const char *subject, *body, *channel, *organisation, *product, *region, *language, *external_case_no,
        *customer_ref; /* NULL is treated as "" */
    bool vip;
    bool repeat;
} rd_rule_input;

typedef struct {
    const char *business_type, *business_type_rule; /* NULL when no rule decided */
    const char *category, *category_rule;
    bool major;                                /* some severity rule said major */
    const char *reasons[RD_RULES_MAX_REASONS]; /* names of the severity rules that fired */
    int nreasons;
    int priority; /* 1..4, 0 when no rule decided */
    const char *priority_rule;
} rd_rule_result;

/* Parses and compiles a ruleset. NULL with a precise reason (rule name/index, field) on error. */
rd_ruleset *rd_rules_parse(const char *json, size_t len, char *err, int errlen);
void rd_rules_destroy(rd_ruleset **rs);

/* A stable identifier of the ruleset's content ("rules-" + 12 hex digits of its SHA-256). */
const char *rd_rules_version(const rd_ruleset *rs);
int rd_rules_count(const rd_ruleset *rs);

/* Evaluates every rule; strings in out point into the ruleset (valid while it lives). */
void rd_rules_eval(const rd_ruleset *rs, const rd_rule_input *in, rd_rule_result *out);

#endif
