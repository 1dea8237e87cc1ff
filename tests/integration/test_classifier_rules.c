/*
 * The classifier end to end with the default bilingual ruleset loaded by redressctl: severity
 * rules in English and Chinese, repeat and duplicate links, rules hot-reloaded without a
 * restart, and rules taking precedence over a trained model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <signal.h>

#include "itest.h"
#include "rd_textmodel.h"
#include "rd_time.h"

static itest_intake in;
static rd_client *cli;
static PGconn *pg;
static pid_t classifier;
static char logPath[512];
static int seq;

static pid_t startClassifier(const char *extra)
{
    char env[2048];
    snprintf(env, sizeof(env),
             "REDRESS_CLASSIFIER_INTAKE_ENDPOINT=tcp://127.0.0.1:%d;REDRESS_CLASSIFIER_PUSH_BIND=tcp://127.0.0.1:%d;"
             "REDRESS_CLASSIFIER_PUB_BIND=tcp://127.0.0.1:%d;REDRESS_CLASSIFIER_HTTP_PORT=0;"
             "REDRESS_CLASSIFIER_REDRIVE_INTERVAL_MS=300;REDRESS_CLASSIFIER_RULES_POLL_MS=60000;%s",
             in.push_port, itest_free_port(), itest_free_port(), extra ? extra : "");
    pid_t p = itest_spawn(REDRESS_CLASSIFIER_BIN, env, logPath);
    assert_true(p > 0);
    return p;
}

/* Submits a complaint and returns its ticket id (static buffer per call site is the caller's). */
static void submit(const char *customer, Redress__V1__Channel ch, const char *subject, const char *body, bool vip,
                   const char *product, char out[40])
{
    Redress__V1__Envelope e;
    Redress__V1__NewTicket t;
    char id[32];
    snprintf(id, sizeof(id), "cls-%d", ++seq);
    itest_new_ticket(&e, &t, id);
    e.gateway_id = "cls-gw";
    t.customer_ref = (char *)customer;
    t.channel = ch;
    t.subject = (char *)subject;
    t.body = (char *)body;
    t.vip = vip;
    t.product = (char *)(product ? product : "");
    Redress__V1__Reply *r = itest_call(cli, &e);
    assert_non_null(r);
    if (r->error != REDRESS__V1__ERROR_CODE__ERROR_NONE)
        fail_msg("submit: %s", r->message);
    snprintf(out, 40, "%s", r->ticket_id);
    redress__v1__reply__free_unpacked(r, NULL);
}

static void waitClassified(const char *tid)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM ticket_classifications WHERE ticket_id = '%s'", tid);
    if (!itest_wait_count(pg, sql, 1, 20000)) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "tail -n 20 '%s' >&2", logPath);
        itest_run(cmd);
        fail_msg("ticket %s was not classified", tid);
    }
}

/* A column of the ticket's classification, as text ("" for NULL). */
static char *cls(const char *tid, const char *expr)
{
    static char out[1024];
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT coalesce((%s)::text, '') FROM ticket_classifications WHERE ticket_id = '%s'",
             expr, tid);
    PGresult *r = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    snprintf(out, sizeof(out), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

static void loadRules(const char *path)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' rules load '%s' >&2", REDRESS_REDRESSCTL_BIN, path);
    assert_int_equal(itest_run(cmd), 0);
}

static int setup(void **state)
{
    const char *dir = getenv("REDRESS_TEST_DIR");
    snprintf(logPath, sizeof(logPath), "%s/classifier.log", dir ? dir : "/tmp");
    if (!itest_intake_start(&in, NULL))
        return -1;
    char err[256];
    cli = rd_client_new(in.endpoint, err, sizeof(err));
    pg = itest_pg();
    loadRules(REDRESS_SOURCE_DIR "/deploy/config/rules.default.json");
    return cli ? 0 : -1;
}

static int teardown(void **state)
{
    itest_reap(&classifier, SIGTERM);
    rd_client_destroy(&cli);
    PQfinish(pg);
    itest_intake_stop(&in);
    return 0;
}

static void expectMajor(const char *tid, const char *reason)
{
    waitClassified(tid);
    assert_string_equal(cls(tid, "severity"), "major");
    char expr[128];
    snprintf(expr, sizeof(expr), "'%s' = ANY(severity_reasons)", reason);
    if (strcmp(cls(tid, expr), "true") != 0)
        fail_msg("%s: reasons %s, want %s", tid, cls(tid, "severity_reasons"), reason);
}

static void test_severity_rules(void **state)
{
    classifier = startClassifier(NULL);
    struct {
        const char *subject, *body, *reason;
        Redress__V1__Channel ch;
        bool vip;
    } cases[] = {
        {"停电投诉", "如果今天还不处理，我就联系记者曝光。", "media-exposure", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE,
         0},
        {"Outage", "If this is not fixed I will go to the newspaper and the TV station.", "media-exposure",
         REDRESS__V1__CHANNEL__CHANNEL_WEB, 0},
        {"转办件", "市民通过12345热线反映小区供暖不热。", "mayor-hotline", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, 0},
        {"Referral", "Heating is off.", "mayor-hotline", REDRESS__V1__CHANNEL__CHANNEL_MAYOR_HOTLINE, 0},
        {"多收费", "我已经向银保监会反映了这个问题。", "regulator", REDRESS__V1__CHANNEL__CHANNEL_WEB, 0},
        {"Fees", "I have filed a complaint with the CFPB about these fees.", "regulator",
         REDRESS__V1__CHANNEL__CHANNEL_EMAIL, 0},
        {"违约", "我已经请了律师，准备起诉你们。", "lawyer-lawsuit", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, 0},
        {"Breach", "My attorney will file a lawsuit next week.", "lawyer-lawsuit", REDRESS__V1__CHANNEL__CHANNEL_WEB,
         0},
        {"电线垂落", "小区电线垂到地面，有安全隐患，昨天有孩子受伤了。", "injury-safety",
         REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, 0},
        {"Gas", "There is a gas leak near the meter, it is a safety hazard.", "injury-safety",
         REDRESS__V1__CHANNEL__CHANNEL_APP, 0},
        {"账户问题", "我的账户被冻结了。", "vip", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, 1},
        {"Account", "My account was frozen.", "vip", REDRESS__V1__CHANNEL__CHANNEL_WEB, 1},
    };
    char tid[40];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char cust[32];
        snprintf(cust, sizeof(cust), "sev-%zu", i);
        submit(cust, cases[i].ch, cases[i].subject, cases[i].body, cases[i].vip, NULL, tid);
        expectMajor(tid, cases[i].reason);
    }
    /* an ordinary complaint is general, and priority follows from type and severity */
    submit("sev-plain", REDRESS__V1__CHANNEL__CHANNEL_WEB, "Billing", "My bill seems higher than usual this month.", 0,
           NULL, tid);
    waitClassified(tid);
    assert_string_equal(cls(tid, "severity"), "general");
    assert_string_equal(cls(tid, "cardinality(severity_reasons)"), "0");
    /* the ticket itself moved to classified, with the decision copied and a history row */
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM tickets t JOIN ticket_classifications k ON k.ticket_id = t.id"
             " WHERE t.id = '%s' AND t.state = 'classified' AND t.severity = k.severity AND t.priority = k.priority"
             " AND t.business_type = k.business_type",
             tid);
    assert_int_equal(itest_count(pg, sql), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM ticket_history WHERE ticket_id = '%s' AND kind = 'classify'", tid);
    assert_int_equal(itest_count(pg, sql), 1);
    itest_reap(&classifier, SIGTERM);
}

static void test_repeat_and_duplicate(void **state)
{
    classifier = startClassifier(NULL);
    char first[40], second[40], dup[40], other[40];
    submit("rep-1", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, "电费异常", "这个月电费比上个月多了三倍，请核查。", 0,
           "居民电费", first);
    waitClassified(first);
    assert_string_equal(cls(first, "repeat_of"), "");
    assert_string_equal(cls(first, "duplicate_of"), "");
    /* the very same complaint again: a duplicate, linked, not a second complaint */
    submit("rep-1", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, "电费异常", "这个月电费比上个月多了三倍，请核查。 \n", 0,
           "居民电费", dup);
    waitClassified(dup);
    assert_string_equal(cls(dup, "duplicate_of"), first);
    assert_string_equal(cls(dup, "repeat_of"), "");
    /* a second complaint on the same issue, in other words: a repeat, and therefore major */
    submit("rep-1", REDRESS__V1__CHANNEL__CHANNEL_WEB, "还是没有解决",
           "上次反映的电费问题到现在没人处理，营业厅也说不清楚。", 0, "居民电费", second);
    waitClassified(second);
    assert_string_equal(cls(second, "repeat_of"), dup);
    assert_string_equal(cls(second, "duplicate_of"), "");
    expectMajor(second, "repeat-complaint");
    /* another customer with the same text is neither */
    submit("rep-2", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, "电费异常", "这个月电费比上个月多了三倍，请核查。", 0,
           "居民电费", other);
    waitClassified(other);
    assert_string_equal(cls(other, "repeat_of"), "");
    assert_string_equal(cls(other, "duplicate_of"), "");
    itest_reap(&classifier, SIGTERM);
}

static void writeFile(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_hot_reload_and_model_precedence(void **state)
{
    const char *dir = getenv("REDRESS_TEST_DIR");
    char model[512], rulesA[512], rulesB[512];
    snprintf(model, sizeof(model), "%s/bt.model", dir);
    snprintf(rulesA, sizeof(rulesA), "%s/a.json", dir);
    snprintf(rulesB, sizeof(rulesB), "%s/b.json", dir);
    /* a small model that says "consultation" for questions and "praise" for thanks */
    const char *texts[] = {
        "how do I pay my bill", "what are your opening hours",    "how can I change my plan", "请问怎么交电费",
        "营业厅几点开门",       "thank you for the quick repair", "great service thanks",     "感谢师傅及时抢修",
        "非常满意，谢谢"};
    const char *labels[] = {"consultation", "consultation", "consultation", "consultation", "consultation",
                            "praise",       "praise",       "praise",       "praise"};
    size_t lens[9];
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(texts[i]);
    char err[256];
    rd_train_opts o;
    rd_train_opts_default(&o);
    o.calibration_folds = 0; /* nine documents are too few to calibrate on */
    rd_model *m = rd_model_train(texts, lens, labels, 9, &o, err, sizeof(err));
    assert_non_null(m);
    assert_true(rd_model_save(m, model, err, sizeof(err)));
    rd_model_destroy(&m);

    writeFile(rulesA, "{\"rules\": [{\"name\": \"urgent-is-complaint\", \"target\": \"business_type\","
                      " \"value\": \"complaint\", \"when\": [{\"field\": \"text\", \"keywords\": [\"urgent\"]}]}]}");
    writeFile(rulesB, "{\"rules\": [{\"name\": \"urgent-is-report\", \"target\": \"business_type\","
                      " \"value\": \"report\", \"when\": [{\"field\": \"text\", \"keywords\": [\"urgent\"]}]}]}");
    loadRules(rulesA);
    char env[600];
    snprintf(env, sizeof(env), "REDRESS_CLASSIFIER_MODEL_BUSINESS_TYPE=%s", model);
    classifier = startClassifier(env);
    pid_t pid = classifier;

    char t1[40], t2[40], t3[40];
    submit("mdl-1", REDRESS__V1__CHANNEL__CHANNEL_WEB, "Question", "how do I pay my bill online", 0, NULL, t1);
    waitClassified(t1);
    assert_string_equal(cls(t1, "business_type"), "consultation");
    assert_true(strncmp(cls(t1, "business_type_source"), "model:", 6) == 0);
    /* the rule overrides what the model would say for the same question */
    submit("mdl-2", REDRESS__V1__CHANNEL__CHANNEL_WEB, "Question", "urgent: how do I pay my bill online", 0, NULL, t2);
    waitClassified(t2);
    assert_string_equal(cls(t2, "business_type"), "complaint");
    assert_string_equal(cls(t2, "business_type_source"), "rule:urgent-is-complaint");

    /* a new ruleset reaches the running classifier through NOTIFY: no restart */
    loadRules(rulesB);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM classifier_rulesets WHERE active AND body::text LIKE '%%report%%'");
    assert_int_equal(itest_count(pg, sql), 1);
    rd_sleep_ms(500);
    submit("mdl-3", REDRESS__V1__CHANNEL__CHANNEL_WEB, "Question", "urgent: how do I pay my bill online", 0, NULL, t3);
    waitClassified(t3);
    assert_string_equal(cls(t3, "business_type"), "report");
    char used[128];
    snprintf(used, sizeof(used), "%s", cls(t3, "rules_version"));
    assert_true(strncmp(used, "rules-", 6) == 0);
    assert_string_equal(used, cls(t3, "(SELECT version FROM classifier_rulesets WHERE active)"));
    assert_string_not_equal(used, cls(t2, "rules_version"));
    assert_int_equal(classifier, pid);
    assert_int_equal(kill(pid, 0), 0); /* still the same process */
    itest_reap(&classifier, SIGTERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_severity_rules),
        cmocka_unit_test(test_repeat_and_duplicate),
        cmocka_unit_test(test_hot_reload_and_model_precedence),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
