/*
 * rd_rules.c -- parsing, validating and evaluating operator rules (the format is in rd_rules.h).
 *
 * A ruleset is parsed once (at start-up and on every reload) and evaluated for every ticket by
 * every classifier thread, so all the work that can be done early is done at parse time:
 *
 *  - every mistake an operator can make is caught here, with the rule's number and name, the
 *    condition's number and what was expected; unknown keys are errors so that a typo ("keyword"
 *    for "keywords") is not silently a rule that never fires. Nothing is half-accepted: a ruleset
 *    either parses completely or not at all, and the caller keeps the one it had;
 *  - rules are sorted once into evaluation order (higher priority first, then file order);
 *  - keywords are folded to ASCII lower case and indexed by their first byte, so one pass over
 *    the text tests all the keywords of a condition; regular expressions are compiled (and JIT
 *    compiled when PCRE2 can) with UTF, caseless and Unicode-property semantics;
 *  - the version is the SHA-256 of the canonical document (keys sorted, no whitespace), so the
 *    same rules written differently have the same version and a reload of unchanged rules can be
 *    recognised without comparing documents.
 *
 * Two additions to the format in rd_rules.h, both optional: a "description" string at the top and
 * in each rule (documentation for the people who edit the file; part of the content, so of the
 * version), and the condition {"any": [conditions...]} (with optional "not"), which holds when at
 * least one of its conditions does. "when" is AND, "any" is OR: one rule can then say "the
 * channel is the mayor's hotline OR the text mentions it", or test Chinese keywords OR an English
 * regex with word boundaries, and still be one named reason.
 *
 * Evaluation only reads the ruleset. The one piece of per-call state PCRE2 needs, its match
 * data, is created per call (once, and only if a regular expression is actually tried), which
 * keeps evaluation thread-safe without locks or thread-local caches to tear down.
 *
 * Text fields are tested as given: "text" means the subject or the body (each tested on its own,
 * so nothing needs to be concatenated and a match never spans the two). Input that is not valid
 * UTF-8 cannot crash or confuse a regular expression (PCRE2_MATCH_INVALID_UTF: invalid bytes
 * simply never match). A regular expression that gives up (its backtracking limit) counts as a
 * condition that does not hold, even under "not": a rule never fires on a test it could not do.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "rd_rules.h"

#include <jansson.h>
#include <pcre2.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits: a document an operator could write by hand is far below all of them; a hostile or
 * broken one gets an error instead of eating the classifier's memory or time. */
#define MAX_DOC_BYTES         (1024 * 1024)
#define MAX_RULES             10000
#define MAX_CONDITIONS        32 /* in one "when" or one "any" */
#define MAX_ANY_DEPTH         4  /* "any" inside "any" inside ... */
#define MAX_KEYWORDS          1000
#define MAX_KEYWORD_BYTES     256
#define MAX_REGEX_BYTES       (64 * 1024)
#define MAX_NAME_BYTES        64
#define MAX_VALUE_BYTES       256
#define MAX_DESCRIPTION_BYTES (16 * 1024)
#define MAX_ABS_PRIORITY      1000000
#define MATCH_LIMIT           1000000 /* PCRE2 backtracking steps per match attempt */

typedef enum {
    FLD_TEXT,
    FLD_SUBJECT,
    FLD_BODY,
    FLD_CHANNEL,
    FLD_ORGANISATION,
    FLD_PRODUCT,
    FLD_REGION,
    FLD_LANGUAGE,
    FLD_EXTERNAL_CASE_NO,
    FLD_CUSTOMER_REF,
    FLD_VIP,
    FLD_REPEAT,
    FLD_COUNT
} rule_field;

static const char *const field_names[FLD_COUNT] = {
    "text",     "subject",          "body",         "channel", "organisation", "product", "region",
    "language", "external_case_no", "customer_ref", "vip",     "repeat",
};
#define FIELD_LIST                                                                                                     \
    "text, subject, body, channel, organisation, product, region, language, external_case_no, "                        \
    "customer_ref, vip, repeat"

typedef enum { TGT_SEVERITY, TGT_BUSINESS_TYPE, TGT_CATEGORY, TGT_PRIORITY, TGT_COUNT } rule_target;

static const char *const target_names[TGT_COUNT] = {"severity", "business_type", "category", "priority"};
#define TARGET_LIST "severity, business_type, category, priority"

typedef enum { MATCH_KEYWORDS, MATCH_REGEX, MATCH_EQUALS, MATCH_ANY } match_kind;

typedef struct {
    char *s; /* folded to ASCII lower case */
    size_t len;
} keyword;

typedef struct rule_cond rule_cond;

struct rule_cond {
    rule_field field; /* unused by MATCH_ANY */
    match_kind kind;
    bool negate;
    keyword *kw; /* MATCH_KEYWORDS */
    int nkw;
    uint8_t first[32]; /* bitmap of the keywords' first bytes */
    pcre2_code *re;    /* MATCH_REGEX */
    char *equals;      /* MATCH_EQUALS on a text field: folded */
    size_t equals_len;
    bool flag;      /* MATCH_EQUALS on vip / repeat */
    rule_cond *any; /* MATCH_ANY: holds when one of these does */
    int nany;
};

typedef struct {
    char *name, *value;
    rule_target target;
    bool major; /* severity rules: value is "major" */
    int level;  /* priority rules: 1..4 */
    long long priority;
    int index; /* position in the file, breaks priority ties */
    rule_cond *conds;
    int nconds;
} rule;

struct rd_ruleset {
    rule *rules; /* in evaluation order */
    int n;
    pcre2_match_context *mctx; /* read-only once built: shared by every thread */
    char version[6 + 12 + 1];
};

/* ------------------------------------------------------------------------------------------------
 * Small helpers
 * --------------------------------------------------------------------------------------------- */

/* ASCII only: Chinese and every other non-ASCII byte compare as themselves. */
static inline unsigned char foldByte(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool foldEqual(const char *text, const char *folded, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (foldByte((unsigned char)text[i]) != (unsigned char)folded[i])
            return false;
    return true;
}

static char *foldDup(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        d[i] = (char)foldByte((unsigned char)s[i]);
    d[len] = '\0';
    return d;
}

static bool hasControl(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

static int lookup(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------------------------------------------
 * Errors: every message says where ("rule 3 'media': condition 2: ") and what was expected.
 * --------------------------------------------------------------------------------------------- */

typedef struct {
    char *err;
    int errlen;
    int rule;         /* 1-based; 0 outside the rules */
    const char *name; /* the rule's name, once it is known to be valid */
    char cond[48];    /* "2", or "2.1" inside an "any"; "" outside the conditions */
    int depth;        /* of "any" nesting */
} parser;

static bool fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(parser *p, const char *fmt, ...)
{
    char where[160] = "", msg[768];
    va_list ap;
    size_t n = 0;

    if (p->err == NULL || p->errlen <= 0)
        return false;
    if (p->rule > 0) {
        if (p->name != NULL)
            snprintf(where, sizeof(where), "rule %d '%s': ", p->rule, p->name);
        else
            snprintf(where, sizeof(where), "rule %d: ", p->rule);
        n = strlen(where);
    }
    if (p->cond[0] != '\0')
        snprintf(where + n, sizeof(where) - n, "condition %s: ", p->cond);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(p->err, (size_t)p->errlen, "%s%s", where, msg);
    return false;
}

/* Unknown keys are errors: a misspelt key would otherwise be a rule that silently never fires. */
static bool checkKeys(parser *p, json_t *obj, const char *const *allowed, int nallowed, const char *what)
{
    const char *key;
    json_t *v;

    json_object_foreach (obj, key, v) {
        if (lookup(key, allowed, nallowed) >= 0)
            continue;
        char list[160] = "";
        for (int i = 0; i < nallowed; i++) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", allowed[i]);
        }
        return fail(p, "unknown key '%.64s' in %s (expected %s)", key, what, list);
    }
    return true;
}

/* An optional free-text "description": documentation only, but it must be sane text. */
static bool checkDescription(parser *p, json_t *obj)
{
    json_t *d = json_object_get(obj, "description");

    if (d == NULL)
        return true;
    if (!json_is_string(d))
        return fail(p, "description must be a string");
    if (json_string_length(d) > MAX_DESCRIPTION_BYTES)
        return fail(p, "description is longer than %d bytes", MAX_DESCRIPTION_BYTES);
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Parsing conditions
 * --------------------------------------------------------------------------------------------- */

static bool parseKeywords(parser *p, rule_cond *c, json_t *arr)
{
    size_t i;
    json_t *k;

    if (!json_is_array(arr))
        return fail(p, "keywords must be an array of strings");
    if (json_array_size(arr) == 0)
        return fail(p, "keywords is empty (give at least one)");
    if (json_array_size(arr) > MAX_KEYWORDS)
        return fail(p, "too many keywords (%zu; at most %d)", json_array_size(arr), MAX_KEYWORDS);
    c->kind = MATCH_KEYWORDS;
    c->kw = calloc(json_array_size(arr), sizeof(*c->kw));
    if (c->kw == NULL)
        return fail(p, "out of memory");
    json_array_foreach (arr, i, k) {
        if (!json_is_string(k))
            return fail(p, "keyword %zu is not a string", i + 1);
        size_t len = json_string_length(k);
        if (len == 0)
            return fail(p, "keyword %zu is empty (it would match every text)", i + 1);
        if (len > MAX_KEYWORD_BYTES)
            return fail(p, "keyword %zu is longer than %d bytes", i + 1, MAX_KEYWORD_BYTES);
        keyword *kw = &c->kw[c->nkw];
        if ((kw->s = foldDup(json_string_value(k), len)) == NULL)
            return fail(p, "out of memory");
        kw->len = len;
        c->nkw++;
        unsigned char b = (unsigned char)kw->s[0];
        c->first[b >> 3] |= (uint8_t)(1u << (b & 7));
    }
    return true;
}

static bool parseRegex(parser *p, rule_cond *c, json_t *re)
{
    int code;
    PCRE2_SIZE off;
    const uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C;

    if (!json_is_string(re))
        return fail(p, "regex must be a string");
    size_t len = json_string_length(re);
    if (len == 0)
        return fail(p, "regex is empty (it would match every text)");
    if (len > MAX_REGEX_BYTES)
        return fail(p, "regex is longer than %d bytes", MAX_REGEX_BYTES);
    c->kind = MATCH_REGEX;
    c->re = pcre2_compile((PCRE2_SPTR)json_string_value(re), len, opts, &code, &off, NULL);
    if (c->re == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", code);
        return fail(p, "bad regex at offset %zu: %s", (size_t)off, (const char *)msg);
    }
    /* JIT is an optimisation only: where it is unavailable the interpreter gives the same answers. */
    (void)pcre2_jit_compile(c->re, PCRE2_JIT_COMPLETE);
    return true;
}

static bool parseFlag(parser *p, rule_cond *c, json_t *eq)
{
    const char *s = json_is_string(eq) ? json_string_value(eq) : NULL;

    c->kind = MATCH_EQUALS;
    if (json_is_boolean(eq))
        c->flag = json_is_true(eq);
    else if (s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0))
        c->flag = strcmp(s, "true") == 0;
    else
        return fail(p, "field '%s' can only equal \"true\" or \"false\"", field_names[c->field]);
    return true;
}

static bool parseEquals(parser *p, rule_cond *c, json_t *eq)
{
    if (c->field == FLD_VIP || c->field == FLD_REPEAT)
        return parseFlag(p, c, eq);
    if (c->field == FLD_TEXT)
        return fail(p, "field 'text' (subject and body) cannot use equals; use keywords or regex, or equals on "
                       "subject or body");
    if (!json_is_string(eq))
        return fail(p, "equals must be a string");
    c->kind = MATCH_EQUALS;
    c->equals_len = json_string_length(eq);
    if ((c->equals = foldDup(json_string_value(eq), c->equals_len)) == NULL)
        return fail(p, "out of memory");
    return true;
}

static bool parseConditions(parser *p, json_t *arr, rule_cond **out, int *n);

/* {"any": [conditions], "not": bool}: holds when at least one of the conditions does. */
static bool parseAny(parser *p, rule_cond *c, json_t *o)
{
    static const char *const keys[] = {"any", "not"};
    json_t *neg = json_object_get(o, "not");

    if (!checkKeys(p, o, keys, 2, "a condition with any"))
        return false;
    if (neg != NULL && !json_is_boolean(neg))
        return fail(p, "not must be true or false");
    if (p->depth >= MAX_ANY_DEPTH)
        return fail(p, "any is nested more than %d deep", MAX_ANY_DEPTH);
    c->kind = MATCH_ANY;
    c->negate = json_is_true(neg);
    p->depth++;
    bool ok = parseConditions(p, json_object_get(o, "any"), &c->any, &c->nany);
    p->depth--;
    return ok;
}

static bool parseCondition(parser *p, rule_cond *c, json_t *o)
{
    static const char *const keys[] = {"field", "keywords", "regex", "equals", "not"};
    json_t *f = json_object_get(o, "field"), *neg = json_object_get(o, "not");
    json_t *kw = json_object_get(o, "keywords"), *re = json_object_get(o, "regex"), *eq = json_object_get(o, "equals");

    if (!json_is_object(o))
        return fail(p, "must be an object like {\"field\": \"text\", \"keywords\": [...]}");
    if (json_object_get(o, "any") != NULL)
        return parseAny(p, c, o);
    if (!checkKeys(p, o, keys, 5, "a condition"))
        return false;
    if (f == NULL)
        return fail(p, "field is required (one of " FIELD_LIST ")");
    int fi = json_is_string(f) ? lookup(json_string_value(f), field_names, FLD_COUNT) : -1;
    if (fi < 0)
        return fail(p, "field must be one of " FIELD_LIST);
    c->field = (rule_field)fi;
    if ((kw != NULL) + (re != NULL) + (eq != NULL) != 1)
        return fail(p, "give exactly one of keywords, regex, equals");
    if (neg != NULL && !json_is_boolean(neg))
        return fail(p, "not must be true or false");
    c->negate = json_is_true(neg);
    if ((c->field == FLD_VIP || c->field == FLD_REPEAT) && eq == NULL)
        return fail(p, "field '%s' takes equals \"true\" or \"false\"", field_names[c->field]);
    if (kw != NULL)
        return parseKeywords(p, c, kw);
    if (re != NULL)
        return parseRegex(p, c, re);
    return parseEquals(p, c, eq);
}

/* A list of conditions: a rule's "when" (all must hold) or an "any" (one must). Numbers in
 * messages are paths: condition 2.1 is the first inside the "any" that is condition 2. */
static bool parseConditions(parser *p, json_t *arr, rule_cond **out, int *n)
{
    const char *what = p->depth > 0 ? "any" : "when";
    size_t i, plen = strlen(p->cond);
    json_t *o;

    if (arr == NULL)
        return fail(p, "%s is required (a list of conditions)", what);
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return fail(p, "%s must be a non-empty array of conditions", what);
    if (json_array_size(arr) > MAX_CONDITIONS)
        return fail(p, "too many conditions in %s (%zu; at most %d)", what, json_array_size(arr), MAX_CONDITIONS);
    if ((*out = calloc(json_array_size(arr), sizeof(**out))) == NULL)
        return fail(p, "out of memory");
    json_array_foreach (arr, i, o) {
        snprintf(p->cond + plen, sizeof(p->cond) - plen, "%s%zu", plen ? "." : "", i + 1);
        (*n)++; /* counted first, so a half-built condition is still freed */
        if (!parseCondition(p, &(*out)[i], o))
            return false;
    }
    p->cond[plen] = '\0';
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * Parsing rules
 * --------------------------------------------------------------------------------------------- */

static bool validName(const char *s, size_t len)
{
    if (len == 0 || len > MAX_NAME_BYTES)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return false;
    }
    return true;
}

static bool validCode(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* The priority target takes 1..4, as a string ("1") or a number (1). */
static bool parsePriorityValue(parser *p, rule *r, json_t *v)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;

    if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 4)
        r->level = (int)json_integer_value(v);
    else if (s != NULL && s[0] >= '1' && s[0] <= '4' && s[1] == '\0')
        r->level = s[0] - '0';
    else
        return fail(p, "value for target priority must be 1..4");
    char buf[2] = {(char)('0' + r->level), '\0'};
    r->value = strdup(buf);
    return r->value != NULL || fail(p, "out of memory");
}

static bool parseValue(parser *p, rule *r, json_t *v)
{
    if (v == NULL)
        return fail(p, "value is required");
    if (r->target == TGT_PRIORITY)
        return parsePriorityValue(p, r, v);
    if (!json_is_string(v))
        return fail(p, "value must be a string");
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    switch (r->target) {
    case TGT_SEVERITY:
        if (strcmp(s, "major") != 0 && strcmp(s, "general") != 0)
            return fail(p, "value for target severity must be \"major\" or \"general\"");
        r->major = strcmp(s, "major") == 0;
        break;
    case TGT_BUSINESS_TYPE:
        if (!validCode(s, len))
            return fail(p, "value for target business_type must be a code of 1..64 characters [a-z0-9_] "
                           "(e.g. complaint, fault_repair)");
        break;
    default: /* TGT_CATEGORY */
        if (len == 0 || len > MAX_VALUE_BYTES || hasControl(s, len))
            return fail(p, "value for target category must be a non-empty line of at most %d bytes", MAX_VALUE_BYTES);
        break;
    }
    r->value = strdup(s);
    return r->value != NULL || fail(p, "out of memory");
}

static bool parsePriority(parser *p, rule *r, json_t *v)
{
    if (v == NULL)
        return true; /* default 0 */
    if (!json_is_integer(v))
        return fail(p, "priority must be an integer (higher is evaluated first)");
    if (json_integer_value(v) < -MAX_ABS_PRIORITY || json_integer_value(v) > MAX_ABS_PRIORITY)
        return fail(p, "priority must be between %d and %d", -MAX_ABS_PRIORITY, MAX_ABS_PRIORITY);
    r->priority = json_integer_value(v);
    return true;
}

/* names is a JSON object used as a set, to find duplicate names in one pass. */
static bool parseName(parser *p, rule *r, json_t *v, json_t *names)
{
    if (v == NULL)
        return fail(p, "name is required");
    if (!json_is_string(v) || !validName(json_string_value(v), json_string_length(v)))
        return fail(p, "name must be 1..%d characters of [A-Za-z0-9_.-]", MAX_NAME_BYTES);
    const char *s = json_string_value(v);
    json_t *seen = json_object_get(names, s);
    if (seen != NULL) {
        p->name = s; /* valid while the document is: long enough for the message */
        return fail(p, "duplicate name '%s' (also rule %d)", s, (int)json_integer_value(seen));
    }
    if (json_object_set_new(names, s, json_integer(p->rule)) != 0 || (r->name = strdup(s)) == NULL)
        return fail(p, "out of memory");
    p->name = r->name;
    return true;
}

static bool parseRule(parser *p, rule *r, json_t *o, json_t *names)
{
    static const char *const keys[] = {"name", "target", "value", "priority", "when", "description"};

    if (!json_is_object(o))
        return fail(p, "must be an object");
    /* The name first, so that every later message can say which rule it is about; but a
     * misspelt "name" key is better reported as such than as a missing name. */
    if (json_object_get(o, "name") == NULL && !checkKeys(p, o, keys, 6, "a rule"))
        return false;
    if (!parseName(p, r, json_object_get(o, "name"), names) || !checkKeys(p, o, keys, 6, "a rule") ||
        !checkDescription(p, o))
        return false;
    json_t *t = json_object_get(o, "target");
    int ti = json_is_string(t) ? lookup(json_string_value(t), target_names, TGT_COUNT) : -1;
    if (ti < 0)
        return fail(p, "target must be one of " TARGET_LIST);
    r->target = (rule_target)ti;
    return parseValue(p, r, json_object_get(o, "value")) && parsePriority(p, r, json_object_get(o, "priority")) &&
           parseConditions(p, json_object_get(o, "when"), &r->conds, &r->nconds);
}

static int ruleOrder(const void *a, const void *b)
{
    const rule *x = a, *y = b;

    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static bool parseRules(parser *p, rd_ruleset *rs, json_t *root)
{
    static const char *const keys[] = {"rules", "description"};
    json_t *arr = json_object_get(root, "rules"), *o, *names;
    size_t i;
    bool ok = true;

    if (!checkKeys(p, root, keys, 2, "the document") || !checkDescription(p, root))
        return false;
    if (arr == NULL)
        return fail(p, "\"rules\" is required (an array of rules)");
    if (!json_is_array(arr))
        return fail(p, "\"rules\" must be an array");
    if (json_array_size(arr) > MAX_RULES)
        return fail(p, "too many rules (%zu; at most %d)", json_array_size(arr), MAX_RULES);
    if (json_array_size(arr) > 0 && (rs->rules = calloc(json_array_size(arr), sizeof(*rs->rules))) == NULL)
        return fail(p, "out of memory");
    if ((names = json_object()) == NULL)
        return fail(p, "out of memory");
    json_array_foreach (arr, i, o) {
        p->rule = (int)i + 1;
        p->name = NULL;
        rs->rules[i].index = (int)i;
        rs->n++;
        if (!(ok = parseRule(p, &rs->rules[i], o, names)))
            break;
    }
    json_decref(names);
    p->rule = 0;
    p->name = NULL;
    if (ok && rs->n > 1)
        qsort(rs->rules, (size_t)rs->n, sizeof(*rs->rules), ruleOrder);
    return ok;
}

/* "rules-" + the first 12 hex digits of the SHA-256 of the canonical document. */
static bool computeVersion(parser *p, rd_ruleset *rs, json_t *root)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char *canon = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);

    if (canon == NULL)
        return fail(p, "out of memory");
    crypto_hash_sha256(h, (const unsigned char *)canon, strlen(canon));
    free(canon);
    memcpy(rs->version, "rules-", 6);
    for (int i = 0; i < 6; i++)
        snprintf(rs->version + 6 + 2 * i, 3, "%02x", h[i]);
    return true;
}

rd_ruleset *rd_rules_parse(const char *json, size_t len, char *err, int errlen)
{
    parser p = {.err = err, .errlen = errlen};
    json_error_t jerr;
    json_t *root;
    rd_ruleset *rs;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (json == NULL) {
        fail(&p, "no document");
        return NULL;
    }
    if (len > MAX_DOC_BYTES) {
        fail(&p, "document is larger than %d bytes", MAX_DOC_BYTES);
        return NULL;
    }
    /* Duplicate keys are refused: which of the two would win is not obvious to the reader. */
    if ((root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        fail(&p, "not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    rs = calloc(1, sizeof(*rs));
    bool ok = rs != NULL || fail(&p, "out of memory");
    if (ok && !json_is_object(root))
        ok = fail(&p, "the document must be a JSON object like {\"rules\": [...]}");
    if (ok && (rs->mctx = pcre2_match_context_create(NULL)) == NULL)
        ok = fail(&p, "out of memory");
    if (ok)
        ok = pcre2_set_match_limit(rs->mctx, MATCH_LIMIT) == 0 && parseRules(&p, rs, root) &&
             computeVersion(&p, rs, root);
    json_decref(root);
    if (!ok)
        rd_rules_destroy(&rs);
    return rs;
}

static void condFree(rule_cond *c)
{
    for (int i = 0; i < c->nkw; i++)
        free(c->kw[i].s);
    free(c->kw);
    pcre2_code_free(c->re);
    free(c->equals);
    for (int i = 0; i < c->nany; i++)
        condFree(&c->any[i]);
    free(c->any);
}

void rd_rules_destroy(rd_ruleset **rsp)
{
    rd_ruleset *rs = rsp ? *rsp : NULL;

    if (rs == NULL)
        return;
    for (int i = 0; i < rs->n; i++) {
        for (int j = 0; j < rs->rules[i].nconds; j++)
            condFree(&rs->rules[i].conds[j]);
        free(rs->rules[i].conds);
        free(rs->rules[i].name);
        free(rs->rules[i].value);
    }
    free(rs->rules);
    pcre2_match_context_free(rs->mctx);
    free(rs);
    *rsp = NULL;
}

const char *rd_rules_version(const rd_ruleset *rs)
{
    return rs != NULL ? rs->version : "";
}

int rd_rules_count(const rd_ruleset *rs)
{
    return rs != NULL ? rs->n : 0;
}

/* ------------------------------------------------------------------------------------------------
 * Evaluation
 * --------------------------------------------------------------------------------------------- */

typedef struct {
    const char *s;
    size_t len;
} span;

/* Per-call state: the input's fields measured once, and PCRE2's match data, made on first use. */
typedef struct {
    const rd_ruleset *rs;
    span f[FLD_COUNT]; /* FLD_TEXT unused: it is subject and body */
    bool vip, repeat;
    pcre2_match_data *md;
    bool md_failed;
} eval_state;

static span spanOf(const char *s)
{
    span sp = {s ? s : "", s ? strlen(s) : 0};
    return sp;
}

static void evalInit(eval_state *st, const rd_ruleset *rs, const rd_rule_input *in)
{
    static const rd_rule_input none;

    memset(st, 0, sizeof(*st));
    st->rs = rs;
    if (in == NULL)
        in = &none;
    st->f[FLD_SUBJECT] = spanOf(in->subject);
    st->f[FLD_BODY] = spanOf(in->body);
    st->f[FLD_CHANNEL] = spanOf(in->channel);
    st->f[FLD_ORGANISATION] = spanOf(in->organisation);
    st->f[FLD_PRODUCT] = spanOf(in->product);
    st->f[FLD_REGION] = spanOf(in->region);
    st->f[FLD_LANGUAGE] = spanOf(in->language);
    st->f[FLD_EXTERNAL_CASE_NO] = spanOf(in->external_case_no);
    st->f[FLD_CUSTOMER_REF] = spanOf(in->customer_ref);
    st->vip = in->vip;
    st->repeat = in->repeat;
}

/* One pass over the text: only positions whose byte starts some keyword are looked at closely. */
static bool keywordsFound(const rule_cond *c, span t)
{
    for (size_t i = 0; i < t.len; i++) {
        unsigned char b = foldByte((unsigned char)t.s[i]);
        if (!(c->first[b >> 3] & (1u << (b & 7))))
            continue;
        for (int k = 0; k < c->nkw; k++) {
            const keyword *kw = &c->kw[k];
            if ((unsigned char)kw->s[0] == b && kw->len <= t.len - i && foldEqual(t.s + i, kw->s, kw->len))
                return true;
        }
    }
    return false;
}

/* 1 match, 0 no match, -1 could not tell (out of memory, or the backtracking limit). */
static int regexFound(eval_state *st, const rule_cond *c, span t)
{
    if (st->md == NULL && !st->md_failed) {
        /* One pair is enough: we ask whether it matches, not where. */
        st->md = pcre2_match_data_create(1, NULL);
        st->md_failed = st->md == NULL;
    }
    if (st->md == NULL)
        return -1;
    int rc = pcre2_match(c->re, (PCRE2_SPTR)t.s, t.len, 0, 0, st->md, st->rs->mctx);
    if (rc >= 0) /* 0: matched, the ovector was too small for the groups, which we do not read */
        return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

/* One matcher on one piece of text: 1, 0 or -1 as above. */
static int matchSpan(eval_state *st, const rule_cond *c, span t)
{
    switch (c->kind) {
    case MATCH_KEYWORDS:
        return keywordsFound(c, t);
    case MATCH_REGEX:
        return regexFound(st, c, t);
    default:
        return t.len == c->equals_len && foldEqual(t.s, c->equals, t.len);
    }
}

static int condHolds(eval_state *st, const rule_cond *c);

/* One that holds is enough; when none does, one that could not be decided makes it undecided. */
static int anyHolds(eval_state *st, const rule_cond *c)
{
    int r = 0;

    for (int i = 0; i < c->nany; i++) {
        int one = condHolds(st, &c->any[i]);
        if (one == 1)
            return 1;
        if (one < 0)
            r = -1;
    }
    return r;
}

/* Whether a condition holds: 1, 0, or -1 when it could not be decided. */
static int condHolds(eval_state *st, const rule_cond *c)
{
    int r;

    if (c->kind == MATCH_ANY) {
        r = anyHolds(st, c);
    } else if (c->field == FLD_VIP || c->field == FLD_REPEAT) {
        r = (c->field == FLD_VIP ? st->vip : st->repeat) == c->flag;
    } else if (c->field == FLD_TEXT) {
        r = matchSpan(st, c, st->f[FLD_SUBJECT]);
        if (r != 1) {
            int rb = matchSpan(st, c, st->f[FLD_BODY]);
            r = rb == 1 ? 1 : (r < 0 || rb < 0) ? -1 : 0;
        }
    } else {
        r = matchSpan(st, c, st->f[c->field]);
    }
    if (r < 0)
        return -1;
    return c->negate ? !r : r;
}

static bool ruleFires(eval_state *st, const rule *r)
{
    for (int i = 0; i < r->nconds; i++)
        if (condHolds(st, &r->conds[i]) != 1)
            return false;
    return true;
}

/* Rules whose target is already decided need not be tried (severity rules always are). */
static bool decided(const rd_rule_result *out, rule_target t)
{
    switch (t) {
    case TGT_BUSINESS_TYPE:
        return out->business_type != NULL;
    case TGT_CATEGORY:
        return out->category != NULL;
    case TGT_PRIORITY:
        return out->priority != 0;
    default:
        return false;
    }
}

/*
 * Severity reasons are the rules that decided the severity: the "major" rules when any fired,
 * otherwise the "general" ones (collected aside meanwhile). A ticket is never major with a
 * "general" rule for a reason.
 */
void rd_rules_eval(const rd_ruleset *rs, const rd_rule_input *in, rd_rule_result *out)
{
    eval_state st;
    const char *general[RD_RULES_MAX_REASONS] = {NULL};
    int ngeneral = 0;

    memset(out, 0, sizeof(*out));
    if (rs == NULL)
        return;
    evalInit(&st, rs, in);
    for (int i = 0; i < rs->n; i++) {
        const rule *r = &rs->rules[i];
        if (decided(out, r->target) || !ruleFires(&st, r))
            continue;
        switch (r->target) {
        case TGT_SEVERITY:
            if (r->major) {
                out->major = true;
                if (out->nreasons < RD_RULES_MAX_REASONS)
                    out->reasons[out->nreasons++] = r->name;
            } else if (ngeneral < RD_RULES_MAX_REASONS) {
                general[ngeneral++] = r->name;
            }
            break;
        case TGT_BUSINESS_TYPE:
            out->business_type = r->value;
            out->business_type_rule = r->name;
            break;
        case TGT_CATEGORY:
            out->category = r->value;
            out->category_rule = r->name;
            break;
        default: /* TGT_PRIORITY */
            out->priority = r->level;
            out->priority_rule = r->name;
            break;
        }
    }
    if (!out->major) {
        memcpy(out->reasons, general, (size_t)ngeneral * sizeof(general[0]));
        out->nreasons = ngeneral;
    }
    pcre2_match_data_free(st.md);
}
