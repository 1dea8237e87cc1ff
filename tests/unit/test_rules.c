/*
 * test_rules.c -- operator rules: the shipped default ruleset and the rule engine itself.
 *
 * The first half holds deploy/config/rules.default.json to the policies it encodes: every
 * severity rule fires on an English and on a Chinese complaint (or on its field), ordinary
 * complaints and the usual near misses ("fired", "credit repair", account numbers holding 12345)
 * stay general, and business types follow the precedence written in the file's description.
 *
 * The second half tests the engine with small rulesets written here: evaluation order, keyword
 * and regex semantics, "not", one test per class of parse error (the message must say where and
 * what), version stability, and concurrent evaluation from several threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rd_rules.h"

#ifndef RD_TEST_RULES_FILE
#error "RD_TEST_RULES_FILE must name deploy/config/rules.default.json"
#endif

/* ------------------------------------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static rd_ruleset *load_default(void)
{
    size_t len;
    char err[512];
    char *json = slurp(RD_TEST_RULES_FILE, &len);
    rd_ruleset *rs = rd_rules_parse(json, len, err, sizeof(err));
    free(json);
    if (rs == NULL)
        fail_msg("%s: %s", RD_TEST_RULES_FILE, err);
    return rs;
}

static rd_ruleset *parse_ok(const char *json)
{
    char err[512];
    rd_ruleset *rs = rd_rules_parse(json, strlen(json), err, sizeof(err));
    if (rs == NULL)
        fail_msg("unexpected parse error: %s\n  in: %s", err, json);
    return rs;
}

/* A ticket with just a body (and a channel nobody has a rule for). */
static rd_rule_input body_only(const char *body)
{
    rd_rule_input in;
    memset(&in, 0, sizeof(in));
    in.body = body;
    in.channel = "web";
    return in;
}

static void eval_body(const rd_ruleset *rs, const char *body, rd_rule_result *r)
{
    rd_rule_input in = body_only(body);
    rd_rules_eval(rs, &in, r);
}

static bool has_reason(const rd_rule_result *r, const char *name)
{
    for (int i = 0; i < r->nreasons; i++)
        if (strcmp(r->reasons[i], name) == 0)
            return true;
    return false;
}

/* The text is major for exactly the one rule named, and for no other. */
static void assert_major_only(const rd_ruleset *rs, const char *text, const char *rule)
{
    rd_rule_result r;
    eval_body(rs, text, &r);
    if (!r.major || r.nreasons != 1 || strcmp(r.reasons[0], rule) != 0)
        fail_msg("'%s': expected major by %s only, got major=%d with %d reason(s), first %s", text, rule, r.major,
                 r.nreasons, r.nreasons ? r.reasons[0] : "-");
}

static void assert_general(const rd_ruleset *rs, const char *text)
{
    rd_rule_result r;
    eval_body(rs, text, &r);
    if (r.major || r.nreasons != 0)
        fail_msg("'%s': expected general, got major=%d by %s", text, r.major, r.nreasons ? r.reasons[0] : "-");
}

static void assert_type(const rd_ruleset *rs, const char *text, const char *type)
{
    rd_rule_result r;
    eval_body(rs, text, &r);
    if (type == NULL && r.business_type != NULL)
        fail_msg("'%s': expected no business type, got %s (%s)", text, r.business_type, r.business_type_rule);
    if (type != NULL && (r.business_type == NULL || strcmp(r.business_type, type) != 0))
        fail_msg("'%s': expected %s, got %s", text, type, r.business_type ? r.business_type : "none");
}

/* rd_rules_parse must refuse json, with every one of the fragments in its message. */
static void assert_parse_error(const char *json, const char *frag1, const char *frag2)
{
    char err[512];
    memset(err, 'x', sizeof(err));
    rd_ruleset *rs = rd_rules_parse(json, strlen(json), err, sizeof(err));
    if (rs != NULL) {
        rd_rules_destroy(&rs);
        fail_msg("expected an error for: %s", json);
    }
    assert_non_null(memchr(err, '\0', sizeof(err)));
    if (strstr(err, frag1) == NULL || (frag2 != NULL && strstr(err, frag2) == NULL))
        fail_msg("error '%s' lacks '%s'%s%s\n  for: %s", err, frag1, frag2 ? " / " : "", frag2 ? frag2 : "", json);
}

/* ------------------------------------------------------------------------------------------------
 * The default ruleset: severity
 * --------------------------------------------------------------------------------------------- */

static void test_default_parses(void **state)
{
    (void)state;
    rd_ruleset *rs = load_default();
    assert_int_equal(rd_rules_count(rs), 15);
    const char *v = rd_rules_version(rs);
    assert_int_equal(strlen(v), 18);
    assert_memory_equal(v, "rules-", 6);
    assert_int_equal(strspn(v + 6, "0123456789abcdef"), 12);
    rd_rules_destroy(&rs);
    assert_null(rs);
}

static void test_default_severity_text(void **state)
{
    (void)state;
    static const struct {
        const char *rule, *en, *zh;
    } cases[] = {
        {"media-exposure", "If this is not fixed by Friday I will go to the newspapers and the TV station.",
         "再不解决我就找电视台记者来曝光你们"},
        {"media-exposure", "A journalist from the local paper is already asking me about it.",
         "我已经发到微博和抖音上了"},
        {"mayor-hotline", "I already called the Mayor's hotline about this last week.",
         "我上周已经打过12345反映，一直没人处理"},
        {"mayor-hotline", "I wrote to the mayor's office twice.", "我已经给市长信箱写信了"},
        {"regulator", "I have sent a copy of this letter to the CFPB.", "我要向银保监会和消协反映这个问题"},
        {"regulator", "The Better Business Bureau will hear about this.", "我已经打了12398能源监管热线"},
        {"lawyer-lawsuit", "My lawyer will file a lawsuit if you do not refund me.",
         "我已经请了律师，准备去法院起诉你们"},
        {"lawyer-lawsuit", "I am ready to sue your company.", "不解决的话我们就申请仲裁"},
        {"injury-safety", "The exposed cable is a safety hazard: my son got an electric shock.",
         "电线裸露有安全隐患，孩子触电了"},
        {"injury-safety", "There was a fire in the meter box and the kitchen smells of a gas leak.",
         "楼道里有燃气泄漏的味道，差点起火"},
    };
    rd_ruleset *rs = load_default();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_major_only(rs, cases[i].en, cases[i].rule);
        assert_major_only(rs, cases[i].zh, cases[i].rule);
    }
    rd_rules_destroy(&rs);
}

/* The subject counts as much as the body. */
static void test_default_severity_subject(void **state)
{
    (void)state;
    rd_ruleset *rs = load_default();
    rd_rule_input in = body_only("Nothing in the body.");
    rd_rule_result r;
    in.subject = "Injured by a falling meter cover";
    rd_rules_eval(rs, &in, &r);
    assert_true(r.major);
    assert_true(has_reason(&r, "injury-safety"));
    in.subject = "记者曝光";
    rd_rules_eval(rs, &in, &r);
    assert_true(has_reason(&r, "media-exposure"));
    rd_rules_destroy(&rs);
}

static void test_default_severity_fields(void **state)
{
    (void)state;
    static const char *const texts[] = {"My bill is wrong.", "我的电费账单不对"};
    rd_ruleset *rs = load_default();
    rd_rule_result r;

    for (int i = 0; i < 2; i++) {
        rd_rule_input in = body_only(texts[i]);
        rd_rules_eval(rs, &in, &r);
        assert_false(r.major);

        in.channel = "mayor_hotline";
        rd_rules_eval(rs, &in, &r);
        assert_true(r.major);
        assert_int_equal(r.nreasons, 1);
        assert_string_equal(r.reasons[0], "mayor-hotline");

        in.channel = "regulator";
        rd_rules_eval(rs, &in, &r);
        assert_int_equal(r.nreasons, 1);
        assert_string_equal(r.reasons[0], "regulator");

        in = body_only(texts[i]);
        in.vip = true;
        rd_rules_eval(rs, &in, &r);
        assert_int_equal(r.nreasons, 1);
        assert_string_equal(r.reasons[0], "vip");

        in = body_only(texts[i]);
        in.repeat = true;
        rd_rules_eval(rs, &in, &r);
        assert_int_equal(r.nreasons, 1);
        assert_string_equal(r.reasons[0], "repeat-complaint");
    }

    /* every condition at once: all listed, in file order (equal priorities) */
    rd_rule_input in = body_only("记者 律师 injured");
    in.channel = "regulator";
    in.vip = in.repeat = true;
    rd_rules_eval(rs, &in, &r);
    assert_int_equal(r.nreasons, 6);
    const char *want[] = {"media-exposure", "regulator", "lawyer-lawsuit", "injury-safety", "vip", "repeat-complaint"};
    for (int i = 0; i < 6; i++)
        assert_string_equal(r.reasons[i], want[i]);
    rd_rules_destroy(&rs);
}

/* Injury and safety are priority 1; other major reasons leave the priority to the classifier. */
static void test_default_priority(void **state)
{
    (void)state;
    rd_ruleset *rs = load_default();
    rd_rule_result r;

    eval_body(rs, "My neighbour was injured by the falling line.", &r);
    assert_int_equal(r.priority, 1);
    assert_string_equal(r.priority_rule, "injury-safety-priority");
    eval_body(rs, "变压器爆炸，有人受伤", &r);
    assert_int_equal(r.priority, 1);
    eval_body(rs, "I will call a journalist.", &r);
    assert_true(r.major);
    assert_int_equal(r.priority, 0);
    assert_null(r.priority_rule);
    rd_rules_destroy(&rs);
}

static void test_default_negatives(void **state)
{
    (void)state;
    static const char *const general[] = {
        "My bill is too high this month and nobody answers the phone.",
        "这个月电费太高了，客服电话一直打不通",
        "I was fired from my job and cannot pay the bill.",       /* not "fire" */
        "This late payment hurt my credit score badly.",          /* not "hurt" as in injured */
        "Incorrect information on my credit reporting file.",     /* not "reporter" */
        "My account number is 1234567890 and the bill is wrong.", /* not 12345 */
        "我的户号是 9912345678，账单有误",
        "这个月煤气费太贵了",                                       /* 煤气费: a bill, not a leak */
        "I have an issue with my invoice and want to pursue it.",   /* not "sue" */
        "The firefighter training centre sent me a wrong invoice.", /* not "fire" */
        "Please send me a paper copy of the statement.",
    };
    rd_ruleset *rs = load_default();
    for (size_t i = 0; i < sizeof(general) / sizeof(general[0]); i++)
        assert_general(rs, general[i]);

    rd_rule_result r;
    eval_body(rs, "I was fired from my job and cannot pay the bill.", &r);
    assert_int_equal(r.priority, 0);
    rd_rules_destroy(&rs);
}

/* ------------------------------------------------------------------------------------------------
 * The default ruleset: business types
 * --------------------------------------------------------------------------------------------- */

static void test_default_business_types(void **state)
{
    (void)state;
    static const struct {
        const char *text, *type;
    } cases[] = {
        {"There has been a power outage on our street since noon.", "fault_repair"},
        {"小区停电了，什么时候恢复？", "fault_repair"},
        {"My boiler is broken and there is no heating.", "fault_repair"},
        {"How do I read my smart meter?", "consultation"},
        {"请问如何办理过户？", "consultation"}, /* asking how, not applying */
        {"I would like to apply for a new connection at my new house.", "service_application"},
        {"我要申请新装一块电表", "service_application"},
        {"It would be better if the office opened on Saturdays.", "suggestion"},
        {"建议增加营业网点", "suggestion"},
        {"I want to praise the engineer who came yesterday.", "praise"},
        {"我要表扬抢修班的师傅，送面锦旗", "praise"}, /* names the repair crew, still praise */
        {"I want to report illegal power theft by my neighbour.", "report"},
        {"我要举报有人窃电", "report"},
        {"I want to complain about the rude staff.", "complaint"},
        {"我要投诉营业厅工作人员态度差", "complaint"},
        /* precedence, as documented in the file */
        {"I want to complain about the outage.", "complaint"},
        {"投诉停电时间太长", "complaint"},
        {"我要举报抄表员乱收费，非常不满", "report"},
        {"The repair crew was rude; I complain.", "complaint"},
        {"Thank you in advance for fixing the outage.", "fault_repair"},
        {"How do I complain about my bill?", "complaint"},
        {"请问停电什么时候恢复", "fault_repair"},
        /* near misses */
        {"The credit repair company took my money.", NULL},
        {"My bill is higher than last month.", NULL},
    };
    rd_ruleset *rs = load_default();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_type(rs, cases[i].text, cases[i].type);

    rd_rule_result r;
    eval_body(rs, "I want to complain about the outage.", &r);
    assert_string_equal(r.business_type_rule, "type-complaint");
    assert_false(r.major);
    rd_rules_destroy(&rs);
}

/* A body near intake's 64 KiB limit: the keyword at the very end is still found. */
static void test_default_long_text(void **state)
{
    (void)state;
    size_t n = 64 * 1024;
    char *body = malloc(n + 1);
    assert_non_null(body);
    for (size_t i = 0; i < n; i++)
        body[i] = "abc def ghi, "[i % 13];
    memcpy(body + n - 12, " journalist.", 12);
    body[n] = '\0';
    rd_ruleset *rs = load_default();
    assert_major_only(rs, body, "media-exposure");
    memcpy(body + n - 12, "   记者.", strlen("   记者."));
    body[n - 12 + strlen("   记者.")] = '\0';
    assert_major_only(rs, body, "media-exposure");
    rd_rules_destroy(&rs);
    free(body);
}

/* ------------------------------------------------------------------------------------------------
 * The engine
 * --------------------------------------------------------------------------------------------- */

static void test_first_match_by_priority(void **state)
{
    (void)state;
    rd_ruleset *rs = parse_ok("{\"rules\": ["
                              "{\"name\": \"low\", \"target\": \"business_type\", \"value\": \"complaint\","
                              " \"priority\": 10, \"when\": [{\"field\": \"text\", \"keywords\": [\"x\"]}]},"
                              "{\"name\": \"high\", \"target\": \"business_type\", \"value\": \"fault_repair\","
                              " \"priority\": 20, \"when\": [{\"field\": \"text\", \"keywords\": [\"x\"]}]},"
                              "{\"name\": \"tie-first\", \"target\": \"category\", \"value\": \"billing / 电费\","
                              " \"when\": [{\"field\": \"text\", \"keywords\": [\"x\"]}]},"
                              "{\"name\": \"tie-second\", \"target\": \"category\", \"value\": \"other\","
                              " \"when\": [{\"field\": \"text\", \"keywords\": [\"x\"]}]},"
                              "{\"name\": \"p3\", \"target\": \"priority\", \"value\": 3, \"priority\": -5,"
                              " \"when\": [{\"field\": \"text\", \"keywords\": [\"x\"]}]},"
                              "{\"name\": \"p2\", \"target\": \"priority\", \"value\": \"2\", \"priority\": -5,"
                              " \"when\": [{\"field\": \"text\", \"keywords\": [\"y\"]}]}"
                              "]}");
    rd_rule_result r;
    eval_body(rs, "x", &r);
    assert_string_equal(r.business_type, "fault_repair");
    assert_string_equal(r.business_type_rule, "high");
    assert_string_equal(r.category, "billing / 电费");
    assert_string_equal(r.category_rule, "tie-first");
    assert_int_equal(r.priority, 3);
    assert_string_equal(r.priority_rule, "p3");
    eval_body(rs, "y x", &r);
    assert_int_equal(r.priority, 3); /* same priority: file order */
    eval_body(rs, "y", &r);
    assert_int_equal(r.priority, 2);
    assert_null(r.business_type);
    assert_null(r.category);
    assert_false(r.major);
    rd_rules_destroy(&rs);
}

/* "general" rules are reasons only while no "major" rule fires; reasons are capped, major is not. */
static void test_severity_reasons(void **state)
{
    (void)state;
    char json[8192] = "{\"rules\": [{\"name\": \"calm\", \"target\": \"severity\", \"value\": \"general\","
                      " \"priority\": 50, \"when\": [{\"field\": \"text\", \"keywords\": [\"calm\"]}]}";
    for (int i = 0; i < RD_RULES_MAX_REASONS + 4; i++) {
        size_t n = strlen(json);
        snprintf(json + n, sizeof(json) - n,
                 ", {\"name\": \"m%d\", \"target\": \"severity\", \"value\": \"major\","
                 " \"when\": [{\"field\": \"text\", \"keywords\": [\"k%d\", \"all\"]}]}",
                 i, i);
    }
    strcat(json, "]}");
    rd_ruleset *rs = parse_ok(json);
    rd_rule_result r;

    eval_body(rs, "calm", &r);
    assert_false(r.major);
    assert_int_equal(r.nreasons, 1);
    assert_string_equal(r.reasons[0], "calm");
    eval_body(rs, "calm k3", &r);
    assert_true(r.major);
    assert_int_equal(r.nreasons, 1);
    assert_string_equal(r.reasons[0], "m3");
    eval_body(rs, "all", &r);
    assert_true(r.major);
    assert_int_equal(r.nreasons, RD_RULES_MAX_REASONS);
    assert_string_equal(r.reasons[RD_RULES_MAX_REASONS - 1], "m15");
    eval_body(rs, "nothing", &r);
    assert_false(r.major);
    assert_int_equal(r.nreasons, 0);
    rd_rules_destroy(&rs);
}

static void test_keywords(void **state)
{
    (void)state;
    rd_ruleset *rs =
        parse_ok("{\"rules\": ["
                 "{\"name\": \"k\", \"target\": \"business_type\", \"value\": \"fault_repair\","
                 " \"when\": [{\"field\": \"text\", \"keywords\": [\"Power Outage\", \"停电\", \"école\"]}]},"
                 "{\"name\": \"subj\", \"target\": \"category\", \"value\": \"s\","
                 " \"when\": [{\"field\": \"subject\", \"keywords\": [\"meter\"]}]}"
                 "]}");
    rd_rule_result r;
    eval_body(rs, "there is a POWER outage here", &r);
    assert_non_null(r.business_type);
    eval_body(rs, "a pOwEr OuTaGe", &r);
    assert_non_null(r.business_type);
    eval_body(rs, "小区停电", &r);
    assert_non_null(r.business_type);
    eval_body(rs, "power  outage", &r); /* a substring, not words: two spaces do not match */
    assert_null(r.business_type);
    eval_body(rs, "停", &r); /* half a keyword */
    assert_null(r.business_type);
    eval_body(rs, "ÉCOLE", &r); /* ASCII only: É is not folded */
    assert_null(r.business_type);
    eval_body(rs, "Outage Power", &r);
    assert_null(r.business_type);
    eval_body(rs, "power outag", &r); /* the text ends inside the keyword */
    assert_null(r.business_type);

    /* subject, body and text are different fields */
    rd_rule_input in = body_only("my meter");
    rd_rules_eval(rs, &in, &r);
    assert_null(r.category);
    in.subject = "Meter broken";
    rd_rules_eval(rs, &in, &r);
    assert_string_equal(r.category, "s");
    in.body = NULL; /* NULL is "" */
    in.subject = "power outage";
    rd_rules_eval(rs, &in, &r);
    assert_non_null(r.business_type);
    rd_rules_destroy(&rs);
}

static void test_not_and_equals(void **state)
{
    (void)state;
    rd_ruleset *rs = parse_ok("{\"rules\": [{\"name\": \"refund-not-thanks\", \"target\": \"category\","
                              " \"value\": \"refund\", \"when\": ["
                              "  {\"field\": \"text\", \"keywords\": [\"refund\", \"退款\"]},"
                              "  {\"field\": \"text\", \"keywords\": [\"thank\"], \"not\": true},"
                              "  {\"field\": \"channel\", \"equals\": \"Hotline\", \"not\": true},"
                              "  {\"field\": \"region\", \"equals\": \"cn-44-03\"},"
                              "  {\"field\": \"vip\", \"equals\": false},"
                              "  {\"field\": \"repeat\", \"equals\": \"false\"}]}]}");
    rd_rule_input in = body_only("I want a refund");
    rd_rule_result r;
    in.region = "CN-44-03";
    rd_rules_eval(rs, &in, &r);
    assert_string_equal(r.category, "refund");
    in.body = "请退款";
    rd_rules_eval(rs, &in, &r);
    assert_non_null(r.category);
    in.body = "Thank you for the refund";
    rd_rules_eval(rs, &in, &r);
    assert_null(r.category);
    in.body = "refund";
    in.channel = "hotline";
    rd_rules_eval(rs, &in, &r);
    assert_null(r.category);
    in.channel = "hotline_x"; /* equals is the whole value */
    rd_rules_eval(rs, &in, &r);
    assert_non_null(r.category);
    in.region = "CN-44";
    rd_rules_eval(rs, &in, &r);
    assert_null(r.category);
    in.region = "CN-44-03";
    in.vip = true;
    rd_rules_eval(rs, &in, &r);
    assert_null(r.category);
    in.vip = false;
    in.repeat = true;
    rd_rules_eval(rs, &in, &r);
    assert_null(r.category);
    rd_rules_destroy(&rs);
}

/* "when" is AND, "any" is OR; "not" applies to an "any" as a whole. */
static void test_any(void **state)
{
    (void)state;
    rd_ruleset *rs =
        parse_ok("{\"rules\": ["
                 "{\"name\": \"either\", \"target\": \"severity\", \"value\": \"major\", \"when\": ["
                 "  {\"any\": [{\"field\": \"channel\", \"equals\": \"regulator\"},"
                 "           {\"field\": \"text\", \"keywords\": [\"监管\"]},"
                 "           {\"any\": [{\"field\": \"text\", \"regex\": \"\\\\bcfpb\\\\b\"}]}]},"
                 "  {\"field\": \"region\", \"equals\": \"x\", \"not\": true}]},"
                 "{\"name\": \"neither\", \"target\": \"category\", \"value\": \"plain\", \"when\": ["
                 "  {\"any\": [{\"field\": \"vip\", \"equals\": true}, {\"field\": \"repeat\", \"equals\": true}],"
                 "   \"not\": true}]}"
                 "]}");
    rd_rule_input in = body_only("nothing");
    rd_rule_result r;
    rd_rules_eval(rs, &in, &r);
    assert_false(r.major);
    assert_string_equal(r.category, "plain");
    in.channel = "regulator";
    rd_rules_eval(rs, &in, &r);
    assert_true(r.major);
    in.region = "x"; /* the other condition of "when" fails */
    rd_rules_eval(rs, &in, &r);
    assert_false(r.major);
    in = body_only("我向金融监管部门反映了");
    rd_rules_eval(rs, &in, &r);
    assert_true(r.major);
    in = body_only("I wrote to the CFPB.");
    rd_rules_eval(rs, &in, &r);
    assert_true(r.major);
    in = body_only("I wrote to the CFPBs.");
    rd_rules_eval(rs, &in, &r);
    assert_false(r.major);
    in.repeat = true;
    rd_rules_eval(rs, &in, &r);
    assert_null(r.category);
    in.repeat = false;
    in.vip = true;
    rd_rules_eval(rs, &in, &r);
    assert_null(r.category);
    rd_rules_destroy(&rs);
}

static void test_regex_utf8(void **state)
{
    (void)state;
    rd_ruleset *rs =
        parse_ok("{\"rules\": ["
                 "{\"name\": \"nth\", \"target\": \"severity\", \"value\": \"major\","
                 " \"when\": [{\"field\": \"text\", \"regex\": \"第[二三四五六七八九十]次(?:投诉|反映)\"}]},"
                 "{\"name\": \"han\", \"target\": \"category\", \"value\": \"han\","
                 " \"when\": [{\"field\": \"body\", \"regex\": \"^\\\\p{Han}{2}停电$\"}]},"
                 "{\"name\": \"dot\", \"target\": \"business_type\", \"value\": \"dot\","
                 " \"when\": [{\"field\": \"subject\", \"regex\": \"^停.$\"}]},"
                 "{\"name\": \"fold\", \"target\": \"priority\", \"value\": \"2\","
                 " \"when\": [{\"field\": \"text\", \"regex\": \"\\\\bécole\\\\b\"}]}"
                 "]}");
    rd_rule_result r;
    eval_body(rs, "这是我第三次投诉了", &r);
    assert_true(r.major);
    eval_body(rs, "这是我第一次投诉", &r);
    assert_false(r.major);
    eval_body(rs, "小区停电", &r);
    assert_string_equal(r.category, "han");
    eval_body(rs, "ab停电", &r);
    assert_null(r.category);
    eval_body(rs, "小区大面积停电", &r);
    assert_null(r.category);
    eval_body(rs, "L'ÉCOLE est fermée", &r); /* Unicode caseless */
    assert_int_equal(r.priority, 2);
    eval_body(rs, "écoles", &r);
    assert_int_equal(r.priority, 0);

    rd_rule_input in = body_only("");
    in.subject = "停电"; /* "." is one character, three bytes */
    rd_rules_eval(rs, &in, &r);
    assert_string_equal(r.business_type, "dot");
    in.subject = "停电了";
    rd_rules_eval(rs, &in, &r);
    assert_null(r.business_type);

    /* invalid UTF-8 in the input: the valid part still matches, nothing breaks */
    in = body_only("\xff\xfe第五次反映\xc3");
    rd_rules_eval(rs, &in, &r);
    assert_true(r.major);
    in = body_only("\xe5\xb0\x8f\xe5\x8c\xba\xe5\x81\x9c\xe7\x94\xb5\xe7"); /* 小区停电 + half a character */
    rd_rules_eval(rs, &in, &r);
    assert_null(r.category);
    rd_rules_destroy(&rs);
}

/* A pattern that backtracks for ever gives up at the limit, as "does not hold" even under not. */
static void test_regex_limit(void **state)
{
    (void)state;
    rd_ruleset *rs = parse_ok("{\"rules\": ["
                              "{\"name\": \"evil\", \"target\": \"category\", \"value\": \"evil\","
                              " \"when\": [{\"field\": \"body\", \"regex\": \"^(?:a|aa)+$\"}]},"
                              "{\"name\": \"not-evil\", \"target\": \"business_type\", \"value\": \"x\","
                              " \"when\": [{\"field\": \"body\", \"regex\": \"^(?:a|aa)+$\", \"not\": true}]}"
                              "]}");
    char body[200];
    rd_rule_result r;
    memset(body, 'a', sizeof(body));
    body[sizeof(body) - 2] = 'b';
    body[sizeof(body) - 1] = '\0';
    eval_body(rs, body, &r);
    assert_null(r.category);
    assert_null(r.business_type);
    eval_body(rs, "aaaa", &r); /* a short one is answered */
    assert_string_equal(r.category, "evil");
    eval_body(rs, "aab", &r);
    assert_string_equal(r.business_type, "x");
    rd_rules_destroy(&rs);
}

static void test_null_inputs(void **state)
{
    (void)state;
    rd_rule_result r;
    memset(&r, 0x5a, sizeof(r));
    rd_rules_eval(NULL, NULL, &r);
    assert_false(r.major);
    assert_null(r.business_type);
    assert_int_equal(r.nreasons, 0);
    rd_ruleset *rs = load_default();
    memset(&r, 0x5a, sizeof(r));
    rd_rules_eval(rs, NULL, &r);
    assert_false(r.major);
    assert_null(r.business_type);
    assert_int_equal(r.priority, 0);
    rd_rules_destroy(&rs);
    rd_rules_destroy(&rs); /* twice is harmless */
    rd_rules_destroy(NULL);
    assert_int_equal(rd_rules_count(NULL), 0);
    assert_string_equal(rd_rules_version(NULL), "");
    rs = parse_ok("{\"rules\": []}");
    assert_int_equal(rd_rules_count(rs), 0);
    rd_rules_destroy(&rs);
}

/* ------------------------------------------------------------------------------------------------
 * Parse errors: one case per class of mistake, each naming where it is
 * --------------------------------------------------------------------------------------------- */

#define RULE(extra) "{\"rules\": [{\"name\": \"r1\", \"target\": \"severity\", \"value\": \"major\"" extra "}]}"
#define WHEN(cond)  RULE(", \"when\": [" cond "]")
#define TEXTKW      "{\"field\": \"text\", \"keywords\": [\"k\"]}"

static void test_parse_errors_document(void **state)
{
    (void)state;
    assert_parse_error("", "not valid JSON", NULL);
    assert_parse_error("{\"rules\": [}", "not valid JSON", "line 1");
    assert_parse_error("[]", "must be a JSON object", NULL);
    assert_parse_error("{}", "\"rules\" is required", NULL);
    assert_parse_error("{\"rules\": {}}", "\"rules\" must be an array", NULL);
    assert_parse_error("{\"rules\": [], \"rule\": []}", "unknown key 'rule'", "expected rules, description");
    assert_parse_error("{\"rules\": [], \"description\": 5}", "description must be a string", NULL);
    assert_parse_error("{\"rules\": [], \"rules\": []}", "not valid JSON", "duplicate");
    assert_parse_error("{\"rules\": [7]}", "rule 1: must be an object", NULL);

    char err[256];
    assert_null(rd_rules_parse(NULL, 0, err, sizeof(err)));
    assert_null(rd_rules_parse("{", 1, NULL, 0)); /* no room for a message: still refused */
    assert_null(rd_rules_parse("{\"rules\": []} trailing", 22, err, sizeof(err)));
    assert_null(rd_rules_parse("{\"rules\": []}\0", 14, err, sizeof(err))); /* a NUL byte */
    {
        const char *nul = "{\"rules\": [{\"name\": \"a\\u0000b\"}]}";
        assert_null(rd_rules_parse(nul, strlen(nul), err, sizeof(err)));
    }
}

static void test_parse_errors_rule(void **state)
{
    (void)state;
    assert_parse_error("{\"rules\": [{\"target\": \"severity\"}]}", "rule 1: name is required", NULL);
    assert_parse_error("{\"rules\": [{\"nmae\": \"x\"}]}", "rule 1: unknown key 'nmae' in a rule", NULL);
    assert_parse_error("{\"rules\": [{\"name\": \"has space\"}]}", "rule 1: name must be", NULL);
    assert_parse_error("{\"rules\": [{\"name\": 5}]}", "rule 1: name must be", NULL);
    assert_parse_error("{\"rules\": [" TEXTKW "]}", "rule 1: unknown key 'field'", NULL);
    assert_parse_error(
        "{\"rules\": [{\"name\": \"a\", \"target\": \"severity\", \"value\": \"major\", \"when\": [" TEXTKW
        "]}, {\"name\": \"a\", \"target\": \"severity\", \"value\": \"major\", \"when\": [" TEXTKW "]}]}",
        "rule 2 'a': duplicate name 'a' (also rule 1)", NULL);
    assert_parse_error(RULE(", \"colour\": \"red\""), "rule 1 'r1': unknown key 'colour' in a rule", NULL);
    assert_parse_error("{\"rules\": [{\"name\": \"media\", \"target\": \"sevrity\", \"value\": \"major\"}]}",
                       "rule 1 'media': target must be one of severity, business_type, category, priority", NULL);
    assert_parse_error("{\"rules\": [{\"name\": \"m\", \"value\": \"major\"}]}", "target must be one of", NULL);
    assert_parse_error("{\"rules\": [{\"name\": \"m\", \"target\": \"severity\"}]}", "rule 1 'm': value is required",
                       NULL);
    assert_parse_error("{\"rules\": [{\"name\": \"m\", \"target\": \"severity\", \"value\": \"urgent\"}]}",
                       "value for target severity must be", NULL);
    assert_parse_error("{\"rules\": [{\"name\": \"m\", \"target\": \"priority\", \"value\": \"5\"}]}",
                       "value for target priority must be 1..4", NULL);
    assert_parse_error("{\"rules\": [{\"name\": \"m\", \"target\": \"priority\", \"value\": 0}]}",
                       "value for target priority must be 1..4", NULL);
    assert_parse_error("{\"rules\": [{\"name\": \"m\", \"target\": \"priority\", \"value\": \"12\"}]}",
                       "value for target priority must be 1..4", NULL);
    assert_parse_error("{\"rules\": [{\"name\": \"m\", \"target\": \"business_type\", \"value\": \"Fault Repair\"}]}",
                       "value for target business_type must be a code", "[a-z0-9_]");
    assert_parse_error("{\"rules\": [{\"name\": \"m\", \"target\": \"business_type\", \"value\": \"\"}]}",
                       "value for target business_type must be a code", NULL);
    assert_parse_error("{\"rules\": [{\"name\": \"m\", \"target\": \"category\", \"value\": \"\"}]}",
                       "value for target category must be a non-empty line", NULL);
    assert_parse_error("{\"rules\": [{\"name\": \"m\", \"target\": \"category\", \"value\": \"a\\nb\"}]}",
                       "value for target category must be a non-empty line", NULL);
    assert_parse_error("{\"rules\": [{\"name\": \"m\", \"target\": \"category\", \"value\": 3}]}",
                       "value must be a string", NULL);
    assert_parse_error(RULE(", \"priority\": 1.5"), "rule 1 'r1': priority must be an integer", NULL);
    assert_parse_error(RULE(", \"priority\": \"1\""), "priority must be an integer", NULL);
    assert_parse_error(RULE(", \"priority\": 99999999"), "priority must be between", NULL);
    assert_parse_error(RULE(", \"description\": []"), "rule 1 'r1': description must be a string", NULL);
    assert_parse_error(RULE(""), "rule 1 'r1': when is required", NULL);
    assert_parse_error(RULE(", \"when\": []"), "when must be a non-empty array", NULL);
    assert_parse_error(RULE(", \"when\": {}"), "when must be a non-empty array", NULL);
}

static void test_parse_errors_condition(void **state)
{
    (void)state;
    assert_parse_error(WHEN("5"), "rule 1 'r1': condition 1: must be an object", NULL);
    assert_parse_error(WHEN(TEXTKW ", {\"field\": \"text\", \"keyword\": [\"k\"]}"),
                       "rule 1 'r1': condition 2: unknown key 'keyword' in a condition", NULL);
    assert_parse_error(WHEN("{\"keywords\": [\"k\"]}"), "condition 1: field is required", NULL);
    assert_parse_error(WHEN("{\"field\": \"txt\", \"keywords\": [\"k\"]}"), "condition 1: field must be one of text,",
                       NULL);
    assert_parse_error(WHEN("{\"field\": \"text\"}"), "give exactly one of keywords, regex, equals", NULL);
    assert_parse_error(WHEN("{\"field\": \"text\", \"keywords\": [\"k\"], \"regex\": \"k\"}"), "give exactly one of",
                       NULL);
    assert_parse_error(WHEN("{\"field\": \"text\", \"keywords\": []}"), "condition 1: keywords is empty", NULL);
    assert_parse_error(WHEN("{\"field\": \"text\", \"keywords\": \"k\"}"), "keywords must be an array", NULL);
    assert_parse_error(WHEN("{\"field\": \"text\", \"keywords\": [\"k\", \"\"]}"), "keyword 2 is empty", NULL);
    assert_parse_error(WHEN("{\"field\": \"text\", \"keywords\": [\"k\", 3]}"), "keyword 2 is not a string", NULL);
    assert_parse_error(WHEN("{\"field\": \"text\", \"regex\": \"(unclosed\"}"), "rule 1 'r1': condition 1: bad regex",
                       "offset 9: missing closing parenthesis");
    assert_parse_error(WHEN("{\"field\": \"text\", \"regex\": \"a{2,1}\"}"), "bad regex at offset", NULL);
    assert_parse_error(WHEN("{\"field\": \"text\", \"regex\": \"\"}"), "regex is empty", NULL);
    assert_parse_error(WHEN("{\"field\": \"text\", \"regex\": [\"a\"]}"), "regex must be a string", NULL);
    assert_parse_error(WHEN("{\"field\": \"text\", \"equals\": \"a\"}"), "field 'text'", "cannot use equals");
    assert_parse_error(WHEN("{\"field\": \"channel\", \"equals\": 3}"), "equals must be a string", NULL);
    assert_parse_error(WHEN("{\"field\": \"vip\", \"keywords\": [\"true\"]}"), "field 'vip' takes equals", NULL);
    assert_parse_error(WHEN("{\"field\": \"repeat\", \"equals\": \"yes\"}"), "field 'repeat' can only equal", NULL);
    assert_parse_error(WHEN("{\"field\": \"text\", \"keywords\": [\"k\"], \"not\": \"true\"}"),
                       "not must be true or false", NULL);
    /* any: its own keys, a non-empty list, paths in messages, bounded nesting */
    assert_parse_error(WHEN("{\"any\": [" TEXTKW "], \"field\": \"text\"}"),
                       "condition 1: unknown key 'field' in a condition with any (expected any, not)", NULL);
    assert_parse_error(WHEN("{\"any\": []}"), "condition 1: any must be a non-empty array", NULL);
    assert_parse_error(WHEN("{\"any\": " TEXTKW "}"), "any must be a non-empty array", NULL);
    assert_parse_error(WHEN("{\"any\": [" TEXTKW "], \"not\": 1}"), "not must be true or false", NULL);
    assert_parse_error(WHEN(TEXTKW ", {\"any\": [" TEXTKW ", {\"field\": \"text\", \"regex\": \"(\"}]}"),
                       "rule 1 'r1': condition 2.2: bad regex at offset 1", NULL);
    assert_parse_error(WHEN("{\"any\": [{\"any\": [{\"any\": [{\"any\": [{\"any\": [" TEXTKW "]}]}]}]}]}"),
                       "condition 1.1.1.1.1: any is nested more than 4 deep", NULL);
    char json[4096] =
        "{\"rules\": [{\"name\": \"r1\", \"target\": \"severity\", \"value\": \"major\", \"when\": [{\"any\": [";
    for (int i = 0; i < 33; i++)
        strcat(json, i ? ", " TEXTKW : TEXTKW);
    strcat(json, "]}]}]}");
    assert_parse_error(json, "condition 1: too many conditions in any (33; at most 32)", NULL);
}

/* Limits are errors, not crashes or hour-long parses. */
static void test_parse_limits(void **state)
{
    (void)state;
    size_t cap = 1100 * 1024;
    char *json = malloc(cap);
    assert_non_null(json);

    /* too many rules */
    strcpy(json, "{\"rules\": [");
    size_t n = strlen(json);
    for (int i = 0; i <= 10000; i++)
        n += (size_t)snprintf(json + n, cap - n, "%s{\"name\": \"r%d\"}", i ? "," : "", i);
    strcpy(json + n, "]}");
    assert_parse_error(json, "too many rules (10001; at most 10000)", NULL);

    /* a document over 1 MiB, whatever it holds */
    memset(json, ' ', cap - 1);
    json[cap - 1] = '\0';
    memcpy(json, "{\"rules\": []}", 13);
    assert_parse_error(json, "document is larger than 1048576 bytes", NULL);

    /* a regex over 64 KiB */
    n = (size_t)snprintf(json, cap, "%s",
                         "{\"rules\": [{\"name\": \"big\", \"target\": \"severity\", \"value\": "
                         "\"major\", \"when\": [{\"field\": \"text\", \"regex\": \"");
    memset(json + n, 'a', 64 * 1024 + 1);
    n += 64 * 1024 + 1;
    strcpy(json + n, "\"}]}]}");
    assert_parse_error(json, "rule 1 'big': condition 1: regex is longer than 65536 bytes", NULL);

    /* deep nesting is refused by the JSON reader, not the stack */
    n = 0;
    for (int i = 0; i < 100000; i++)
        json[n++] = '[';
    json[n] = '\0';
    assert_parse_error(json, "not valid JSON", NULL);
    free(json);
}

/* ------------------------------------------------------------------------------------------------
 * Versions
 * --------------------------------------------------------------------------------------------- */

static void test_version_stability(void **state)
{
    (void)state;
    rd_ruleset *a = parse_ok("{\"rules\": [{\"name\": \"r\", \"target\": \"severity\", \"value\": \"major\","
                             " \"when\": [{\"field\": \"text\", \"keywords\": [\"记者\", \"media\"]}]}]}");
    rd_ruleset *b =
        parse_ok("{\n  \"rules\" : [ {\"when\":[{\"keywords\":[\"\\u8bb0\\u8005\",\"media\"],"
                 "\"field\":\"text\"}],\n\t\"value\":\"major\",\"target\":\"severity\",\"name\":\"r\"} ]\n}\n");
    rd_ruleset *c = parse_ok("{\"rules\": [{\"name\": \"r\", \"target\": \"severity\", \"value\": \"major\","
                             " \"when\": [{\"field\": \"text\", \"keywords\": [\"记者\", \"medias\"]}]}]}");
    rd_ruleset *d = parse_ok("{\"rules\": [{\"name\": \"r\", \"target\": \"severity\", \"value\": \"major\","
                             " \"when\": [{\"field\": \"text\", \"keywords\": [\"media\", \"记者\"]}]}]}");
    assert_string_equal(rd_rules_version(a), rd_rules_version(b));
    assert_string_not_equal(rd_rules_version(a), rd_rules_version(c));
    assert_string_not_equal(rd_rules_version(a), rd_rules_version(d)); /* list order is content */

    rd_ruleset *e = load_default(), *f = load_default();
    assert_string_equal(rd_rules_version(e), rd_rules_version(f));
    assert_string_not_equal(rd_rules_version(a), rd_rules_version(e));
    rd_rules_destroy(&a);
    rd_rules_destroy(&b);
    rd_rules_destroy(&c);
    rd_rules_destroy(&d);
    rd_rules_destroy(&e);
    rd_rules_destroy(&f);
}

/* ------------------------------------------------------------------------------------------------
 * Threads: one ruleset, four threads, the same answers as one thread
 * --------------------------------------------------------------------------------------------- */

static const char *const thread_texts[] = {
    "I want to complain about the outage.",
    "楼道里有燃气泄漏的味道，差点起火",
    "My lawyer will call the CFPB and a journalist.",
    "请问如何办理过户？",
    "I was fired from my job.",
    "这是我第三次投诉了，再不解决就找记者",
    "",
    "\xff\xfe invalid bytes 停电",
};
#define NTEXTS  (sizeof(thread_texts) / sizeof(thread_texts[0]))
#define NROUNDS 2000

typedef struct {
    const rd_ruleset *rs;
    rd_rule_result expected[NTEXTS];
    int mismatches;
} thread_job;

static bool same_result(const rd_rule_result *a, const rd_rule_result *b)
{
    /* strings point into the one ruleset, so pointers compare */
    if (a->business_type != b->business_type || a->business_type_rule != b->business_type_rule ||
        a->category != b->category || a->category_rule != b->category_rule || a->major != b->major ||
        a->nreasons != b->nreasons || a->priority != b->priority || a->priority_rule != b->priority_rule)
        return false;
    for (int i = 0; i < a->nreasons; i++)
        if (a->reasons[i] != b->reasons[i])
            return false;
    return true;
}

static void *thread_main(void *arg)
{
    thread_job *job = arg;
    for (int round = 0; round < NROUNDS; round++) {
        size_t i = (size_t)round % NTEXTS;
        rd_rule_input in = body_only(thread_texts[i]);
        rd_rule_result r;
        in.vip = (i % 3) == 0;
        rd_rules_eval(job->rs, &in, &r);
        if (!same_result(&r, &job->expected[i]))
            job->mismatches++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    rd_ruleset *rs = load_default();
    thread_job jobs[4];
    pthread_t tids[4];

    memset(jobs, 0, sizeof(jobs));
    for (int t = 0; t < 4; t++) {
        jobs[t].rs = rs;
        for (size_t i = 0; i < NTEXTS; i++) {
            rd_rule_input in = body_only(thread_texts[i]);
            in.vip = (i % 3) == 0;
            rd_rules_eval(rs, &in, &jobs[t].expected[i]);
        }
    }
    assert_true(jobs[0].expected[1].major); /* the texts do exercise the rules */
    assert_int_equal(jobs[0].expected[1].priority, 1);
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_create(&tids[t], NULL, thread_main, &jobs[t]), 0);
    for (int t = 0; t < 4; t++) {
        assert_int_equal(pthread_join(tids[t], NULL), 0);
        assert_int_equal(jobs[t].mismatches, 0);
    }
    rd_rules_destroy(&rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_parses),
        cmocka_unit_test(test_default_severity_text),
        cmocka_unit_test(test_default_severity_subject),
        cmocka_unit_test(test_default_severity_fields),
        cmocka_unit_test(test_default_priority),
        cmocka_unit_test(test_default_negatives),
        cmocka_unit_test(test_default_business_types),
        cmocka_unit_test(test_default_long_text),
        cmocka_unit_test(test_first_match_by_priority),
        cmocka_unit_test(test_severity_reasons),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_not_and_equals),
        cmocka_unit_test(test_any),
        cmocka_unit_test(test_regex_utf8),
        cmocka_unit_test(test_regex_limit),
        cmocka_unit_test(test_null_inputs),
        cmocka_unit_test(test_parse_errors_document),
        cmocka_unit_test(test_parse_errors_rule),
        cmocka_unit_test(test_parse_errors_condition),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_version_stability),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
