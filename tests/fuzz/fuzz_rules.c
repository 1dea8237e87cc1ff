/*
 * fuzz_rules.c -- libFuzzer target for the operator rules parser (rd_rules_parse) and, whenever
 * a document parses, for evaluating it (rd_rules_eval) against a fixed set of tickets.
 *
 * Rules come from operators and from the database, so a broken or hostile document must end in
 * an error message, never in a crash, a leak, undefined behaviour or an endless regex. Beyond
 * "no crash" the target checks what every caller relies on: a refused document leaves a
 * message; an accepted one has a well-formed version; results stay within the contract (priority
 * 0..4, a rule name beside every decision, reasons within bounds, major only with a reason).
 *
 * Build and run: see tests/fuzz/CMakeLists.txt (ctest -L fuzz runs each target for 20 seconds).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rd_rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Tickets in both languages, with every field set, an empty one, and invalid UTF-8. */
static const rd_rule_input inputs[] = {
    {.subject = "Complaint",
     .body = "I want to complain about the outage; my lawyer will call a journalist.",
     .channel = "web",
     .region = "US-FL-330",
     .language = "en"},
    {.subject = "停电投诉",
     .body = "小区停电超过8小时，这是我第三次投诉，再不解决就找记者曝光",
     .channel = "mayor_hotline",
     .organisation = "供电公司",
     .product = "电费",
     .region = "CN-44-03",
     .language = "zh-CN",
     .external_case_no = "12345-0001",
     .customer_ref = "13800138000",
     .vip = true,
     .repeat = true},
    {.subject = NULL, .body = NULL},
    {.subject = "\xff\xfe\xc3",
     .body = "\xe5\xb0\x8f\xe5\x8c\xba\xe5\x81\x9c\xe7 \xed\xa0\x80 a\x01"
             "b",
     .channel = ""},
};

/* The contract every result keeps, whatever the rules say. */
static void checkResult(const rd_rule_result *r)
{
    if (r->nreasons < 0 || r->nreasons > RD_RULES_MAX_REASONS || (r->major && r->nreasons == 0))
        abort();
    for (int i = 0; i < r->nreasons; i++)
        if (r->reasons[i] == NULL || r->reasons[i][0] == '\0')
            abort();
    if (r->priority < 0 || r->priority > 4 || (r->priority != 0) != (r->priority_rule != NULL))
        abort();
    if ((r->business_type != NULL) != (r->business_type_rule != NULL) ||
        (r->category != NULL) != (r->category_rule != NULL))
        abort();
    if (r->business_type != NULL && r->business_type[0] == '\0')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    rd_rule_result r;

    memset(err, 'x', sizeof(err));
    rd_ruleset *rs = rd_rules_parse((const char *)data, size, err, sizeof(err));
    if (rs == NULL) {
        if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0')
            abort(); /* a refusal always says why */
        return 0;
    }
    const char *v = rd_rules_version(rs);
    if (strlen(v) != 18 || strncmp(v, "rules-", 6) != 0 || rd_rules_count(rs) < 0)
        abort();
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        rd_rules_eval(rs, &inputs[i], &r);
        checkResult(&r);
    }
    rd_rules_eval(rs, NULL, &r);
    checkResult(&r);
    rd_rules_destroy(&rs);
    return 0;
}
