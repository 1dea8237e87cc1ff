/*
 * The classifier's decision as a pure function: duplicate and repeat links with their windows and
 * tie-breaks, rules over defaults, derived priorities, determinism, and text similarity.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "classifier.h"

#define DAY  (86400LL * 1000000)
#define HOUR (3600LL * 1000000)

static cl_ticket mk(const char *id, const char *cust, int64_t at, const char *subject, const char *body,
                    const char *product)
{
    cl_ticket t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", id);
    snprintf(t.customer_id, sizeof(t.customer_id), "%s", cust);
    t.created_us = at;
    t.subject = (char *)subject;
    t.body = (char *)body;
    t.product = (char *)product;
    t.channel = "web";
    return t;
}

static cl_context ctx0(void)
{
    cl_context c = {.repeat_window_us = 30 * DAY, .duplicate_window_us = 24 * HOUR, .duplicate_similarity = 0.9};
    return c;
}

static void test_similarity(void **state)
{
    assert_true(cl_similarity("The bill is wrong", "the  bill is\nwrong ") == 1.0);
    const char *a = "I was charged twice for the same month and nobody answers my calls about it.";
    const char *b = "I was charged twice for the same month and nobody answers my calls about it!";
    assert_true(cl_similarity(a, b) >= 0.9);
    assert_true(cl_similarity(a, "My card was stolen and the bank refuses to refund the charges.") < 0.2);
    assert_true(
        cl_similarity("小区停电三天了，一直没人来修，请尽快处理", "小区停电三天了，一直没人来修，请尽快处理。") >= 0.9);
    assert_true(cl_similarity("小区停电三天了", "营业厅服务态度很差") < 0.1);
    assert_true(cl_similarity("ab", "ab") == 1.0);
    assert_true(cl_similarity("ab", "ac") == 0.0);
    assert_true(cl_similarity("", "") == 1.0);
    assert_true(cl_similarity("\xff\xfe invalid \xc3", "\xff\xfe invalid \xc3") == 1.0);
}

static void test_links(void **state)
{
    cl_context c = ctx0();
    const char *text = "Charged twice for March; please refund the second payment.";
    cl_ticket h[] = {
        mk("00000000-0000-7000-8000-000000000001", "cust-a", 0, "Billing", text, "card"),
        mk("00000000-0000-7000-8000-000000000002", "cust-a", 10 * DAY, "Billing", "A different problem entirely.",
           "card"),
        mk("00000000-0000-7000-8000-000000000003", "cust-b", 10 * DAY, "Billing", text, "card"),
        mk("00000000-0000-7000-8000-000000000009", "cust-a", 50 * DAY, "Billing", text, "card"), /* later */
    };
    cl_decision d;

    /* #1 has the same text but is 20 days old (no duplicate); #1 and #2 share the product: repeat of #2 */
    cl_ticket t = mk("00000000-0000-7000-8000-000000000005", "cust-a", 20 * DAY, "Billing", text, "card");
    cl_decide(&c, &t, h, 4, &d);
    assert_string_equal(d.duplicate_of, "");
    assert_string_equal(d.repeat_of, h[1].id); /* the most recent earlier one on the same issue */
    assert_string_equal(d.business_type, "complaint");
    assert_string_equal(d.business_type_source, "default");
    assert_false(d.major); /* no rules: a repeat alone does not make it major */
    assert_int_equal(d.priority, 3);

    /* within 24 h and near-identical: a duplicate of the earliest such, not a repeat */
    t = mk("00000000-0000-7000-8000-000000000006", "cust-a", 10 * DAY + 3 * HOUR, "Billing", text, "card");
    cl_ticket h2[] = {h[0], h[1],
                      mk("00000000-0000-7000-8000-000000000004", "cust-a", 10 * DAY + HOUR, "Billing", text, "card")};
    cl_decide(&c, &t, h2, 3, &d);
    assert_string_equal(d.duplicate_of, h2[2].id);
    assert_string_equal(d.repeat_of, "");

    /* windows are inclusive and measured from the ticket's own time */
    t = mk("00000000-0000-7000-8000-000000000007", "cust-a", 30 * DAY, "Other", "Something else", "card");
    cl_decide(&c, &t, h, 1, &d);
    assert_string_equal(d.repeat_of, h[0].id);
    t.created_us = 30 * DAY + 1;
    cl_decide(&c, &t, h, 1, &d);
    assert_string_equal(d.repeat_of, "");

    /* other product, other customer, itself, and the future never link */
    t = mk("00000000-0000-7000-8000-000000000008", "cust-a", 11 * DAY, "Other", "Something else", "mortgage");
    cl_decide(&c, &t, h, 4, &d);
    assert_string_equal(d.repeat_of, "");
    assert_string_equal(d.duplicate_of, "");
    t = mk(h[2].id, "cust-b", 10 * DAY, "Billing", text, "card");
    cl_decide(&c, &t, h, 4, &d);
    assert_string_equal(d.repeat_of, "");
    assert_string_equal(d.duplicate_of, "");

    /* same instant: the smaller id is the earlier one, so two tickets never point at each other */
    cl_ticket x = mk("00000000-0000-7000-8000-00000000000a", "cust-c", DAY, "S", text, "p");
    cl_ticket y = mk("00000000-0000-7000-8000-00000000000b", "cust-c", DAY, "S", text, "p");
    cl_ticket both[] = {x, y};
    cl_decide(&c, &y, both, 2, &d);
    assert_string_equal(d.duplicate_of, x.id);
    cl_decide(&c, &x, both, 2, &d);
    assert_string_equal(d.duplicate_of, "");

    /* an earlier ticket's stored category wins over recomputing it */
    cl_ticket e = mk("00000000-0000-7000-8000-00000000000c", "cust-d", 0, "S", "x y z", "p1");
    e.classified = true;
    e.category = "";
    t = mk("00000000-0000-7000-8000-00000000000d", "cust-d", DAY, "S", "a b c d", "p1");
    cl_decide(&c, &t, &e, 1, &d);
    assert_string_equal(d.repeat_of, e.id); /* no categories anywhere: the product decides */
}

static void test_rules_decide(void **state)
{
    const char *json = "{\"rules\": ["
                       "{\"name\": \"repeat-complaint\", \"target\": \"severity\", \"value\": \"major\","
                       " \"when\": [{\"field\": \"repeat\", \"equals\": \"true\"}]},"
                       "{\"name\": \"gas\", \"target\": \"priority\", \"value\": \"1\", \"priority\": 10,"
                       " \"when\": [{\"field\": \"text\", \"keywords\": [\"gas leak\", \"燃气泄漏\"]}]},"
                       "{\"name\": \"gas-major\", \"target\": \"severity\", \"value\": \"major\","
                       " \"when\": [{\"field\": \"text\", \"keywords\": [\"gas leak\", \"燃气泄漏\"]}]},"
                       "{\"name\": \"thanks\", \"target\": \"business_type\", \"value\": \"praise\","
                       " \"when\": [{\"field\": \"text\", \"keywords\": [\"thank you\", \"感谢\"]}]}"
                       "]}";
    char err[256];
    rd_ruleset *rs = rd_rules_parse(json, strlen(json), err, sizeof(err));
    if (rs == NULL)
        fail_msg("%s", err);
    cl_context c = ctx0();
    c.rules = rs;
    cl_decision d, d2;

    cl_ticket t = mk("00000000-0000-7000-8000-000000000011", "u", DAY, "燃气", "楼道里有燃气泄漏的味道", "gas");
    cl_decide(&c, &t, NULL, 0, &d);
    assert_true(d.major);
    assert_int_equal(d.nreasons, 1);
    assert_string_equal(d.reasons[0], "gas-major");
    assert_int_equal(d.priority, 1);
    assert_string_equal(d.priority_source, "rule:gas");

    t = mk("00000000-0000-7000-8000-000000000012", "u", DAY, "Thanks", "Thank you for the quick fix", "svc");
    cl_decide(&c, &t, NULL, 0, &d);
    assert_string_equal(d.business_type, "praise");
    assert_string_equal(d.business_type_source, "rule:thanks");
    assert_false(d.major);
    assert_int_equal(d.priority, 4); /* derived: praise is not urgent */

    /* a repeat fires the repeat rule, and the decision is the same every time */
    cl_ticket h = mk("00000000-0000-7000-8000-000000000013", "u", 0, "Bill", "first", "power");
    t = mk("00000000-0000-7000-8000-000000000014", "u", DAY, "Bill", "second, different words", "power");
    cl_decide(&c, &t, &h, 1, &d);
    cl_decide(&c, &t, &h, 1, &d2);
    assert_memory_equal(&d, &d2, sizeof(d));
    assert_string_equal(d.repeat_of, h.id);
    assert_true(d.major);
    assert_string_equal(d.reasons[0], "repeat-complaint");
    assert_int_equal(d.priority, 2);
    rd_rules_destroy(&rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_similarity),
        cmocka_unit_test(test_links),
        cmocka_unit_test(test_rules_decide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
