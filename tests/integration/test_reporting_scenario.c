/*
 * test_reporting_scenario.c -- 20,000 tickets through the whole stack (intake, classifier,
 * dispatcher, escalation, reporting) in a randomized but seeded scenario: chases, transfers,
 * returns (退单), pauses (waiting for the customer), resolutions, closures, reopens, return visits
 * (回访), then the escalation clock moved five days on so open clocks breach and escalate.
 *
 * Then every rollup row (hour, day and month; every dimension and every metric column) must equal
 * the same KPI recomputed from the raw tables (tickets, ticket_history, ticket_classifications,
 * sla_clocks, sla_escalations) by plain SQL written here, independently of reporting.fact_source
 * and reporting.contrib. Business time is recomputed as the overlap with the calendar's working
 * intervals (reporting.work_intervals, checked against rd_calendar by a unit test).
 *
 * REDRESS_SCENARIO_TICKETS overrides the size (default 20000) and REDRESS_SCENARIO_SEED the seed.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "etest.h"
#include "rd_time.h"

static itest_intake in;
static rd_client *cli;
static PGconn *pg;
static redisContext *rd;
static pid_t classifier, reporting;
static dtest_dispatcher disp;
static etest_service esc;
static char dir[512];
static uint64_t rng;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static double unit(void)
{
    return (rnd() % 1000000) / 1000000.0;
}

/* ---- one wave of envelopes: built up front, sent as one pipelined stream ---------------------- */

typedef struct {
    uint8_t **buf;
    size_t *len;
    char (*eid)[48];
    int n, cap, next;
    int ok, failed;
} wave;

static void wave_add(wave *w, const Redress__V1__Envelope *e)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 4096;
        w->buf = realloc(w->buf, sizeof(*w->buf) * (size_t)w->cap);
        w->len = realloc(w->len, sizeof(*w->len) * (size_t)w->cap);
        w->eid = realloc(w->eid, sizeof(*w->eid) * (size_t)w->cap);
        assert_non_null(w->buf);
        assert_non_null(w->len);
        assert_non_null(w->eid);
    }
    w->buf[w->n] = itest_pack(e, &w->len[w->n]);
    snprintf(w->eid[w->n], sizeof(w->eid[0]), "%s", e->event_id);
    w->n++;
}

static bool wave_next(void *arg, uint8_t **buf, size_t *len, char *event_id, size_t event_id_len)
{
    wave *w = arg;
    if (w->next == w->n)
        return false;
    *buf = w->buf[w->next];
    *len = w->len[w->next];
    w->buf[w->next] = NULL; /* the stream frees it */
    snprintf(event_id, event_id_len, "%s", w->eid[w->next]);
    w->next++;
    return true;
}

static void wave_done(void *arg, const char *event_id, const Redress__V1__Reply *reply, int64_t latency_us)
{
    (void)latency_us;
    wave *w = arg;
    if (reply && reply->error == REDRESS__V1__ERROR_CODE__ERROR_NONE) {
        w->ok++;
        return;
    }
    if (w->failed++ < 5)
        fprintf(stderr, "event %s: %s\n", event_id, reply ? (reply->message ? reply->message : "error") : "no answer");
}

/* Sends the wave; every event must be accepted. */
static void wave_run(wave *w, const char *what)
{
    rd_stream_opts o = {.window = 256, .attempt_timeout_ms = 10000, .deadline_ms = 300000};
    rd_stream_stats st;
    int64_t t0 = rd_now_ms();
    assert_true(rd_client_stream(cli, &o, wave_next, w, wave_done, w, &st));
    fprintf(stderr, "wave %-10s %6d events in %lld ms (%d refused)\n", what, w->n, (long long)(rd_now_ms() - t0),
            w->failed);
    for (int i = 0; i < w->n; i++)
        free(w->buf[i]);
    free(w->buf);
    free(w->len);
    free(w->eid);
    int failed = w->failed, ok = w->ok, n = w->n;
    memset(w, 0, sizeof(*w));
    assert_int_equal(failed, 0);
    assert_int_equal(ok, n);
}

static int evseq;

static void act(wave *w, const char *tid, Redress__V1__ActionKind kind, const char *actor, const char *target,
                unsigned satisfaction)
{
    char eid[48];
    snprintf(eid, sizeof(eid), "scn-%d-%d", (int)getpid(), ++evseq);
    Redress__V1__Envelope e;
    Redress__V1__TicketAction a;
    itest_action(&e, &a, eid, tid, kind);
    a.actor = (char *)actor;
    a.target_unit = (char *)(target ? target : "");
    if (kind == REDRESS__V1__ACTION_KIND__ACTION_TRANSFER || kind == REDRESS__V1__ACTION_KIND__ACTION_RETURN ||
        kind == REDRESS__V1__ACTION_KIND__ACTION_REOPEN)
        a.reason = "场景测试 / scenario";
    a.satisfaction = satisfaction;
    wave_add(w, &e);
}

/* ---- the stack -------------------------------------------------------------------------------- */

static const char *const depts[] = {"d-power", "d-service", "d-billing"};

static void org(void)
{
    dtest_dept(pg, "centre", NULL, true, "t-centre");
    dtest_team(pg, "t-centre", "centre", NULL, NULL, 300, 1);
    dtest_agent(pg, "a-centre", "t-centre", 100000);
    dtest_presence(pg, rd, "a-centre", "online", 3600 * 1000);
    for (int d = 0; d < 3; d++) {
        char team[2][32];
        for (int t = 0; t < 2; t++)
            snprintf(team[t], sizeof(team[t]), "t-%s-%d", depts[d] + 2, t);
        dtest_dept(pg, depts[d], "centre", false, team[0]);
        for (int t = 0; t < 2; t++) {
            dtest_team(pg, team[t], depts[d], t ? "round_robin" : NULL, NULL, 300, 2);
            for (int a = 0; a < 3; a++) {
                char agent[48];
                snprintf(agent, sizeof(agent), "a-%s-%d-%d", depts[d] + 2, t, a);
                dtest_agent(pg, agent, team[t], 100000);
                dtest_presence(pg, rd, agent, "online", 3600 * 1000);
            }
        }
    }
    dtest_rule(pg, "repair", 1, "t-power-0", "business_type=fault_repair");
    dtest_rule(pg, "major", 2, "t-power-1", "severity=major");
    dtest_rule(pg, "service", 3, "t-service-0", "business_type=service_application");
    dtest_rule(pg, "consult", 4, "t-service-1", "business_type=consultation");
    dtest_rule(pg, "web", 5, "t-billing-1", "channel=web");
    dtest_rule(pg, "rest", 6, "t-billing-0", NULL);
    /* acceptance limits far beyond the test's length: re-dispatch must not move tickets while the
     * numbers are compared */
    dtest_sql(pg, "UPDATE accept_limits SET seconds = 86400, transferred_s = 86400");
}

static pid_t spawn_classifier(void)
{
    char env[1024], log[600];
    snprintf(env, sizeof(env),
             "REDRESS_CLASSIFIER_INTAKE_ENDPOINT=tcp://127.0.0.1:%d;REDRESS_CLASSIFIER_PUSH_BIND=tcp://127.0.0.1:%d;"
             "REDRESS_CLASSIFIER_PUB_BIND=tcp://127.0.0.1:%d;REDRESS_CLASSIFIER_HTTP_PORT=0;"
             "REDRESS_CLASSIFIER_REDRIVE_INTERVAL_MS=300;REDRESS_CLASSIFIER_REDRIVE_MIN_AGE_MS=200",
             in.push_port, itest_free_port(), itest_free_port());
    snprintf(log, sizeof(log), "%s/classifier.log", dir);
    return itest_spawn(REDRESS_CLASSIFIER_BIN, env, log);
}

static pid_t spawn_reporting(void)
{
    char env[1024], log[600];
    snprintf(env, sizeof(env),
             "REDRESS_REPORTING_HTTP_PORT=%d;REDRESS_REPORTING_CALENDAR=cn-mainland;"
             "REDRESS_REPORTING_TIME_ZONE=Asia/Shanghai;REDRESS_REPORTING_POLL_MS=50;"
             "REDRESS_REPORTING_SWEEP_INTERVAL_MS=1000",
             itest_free_port());
    snprintf(log, sizeof(log), "%s/reporting.log", dir);
    return itest_spawn(REDRESS_REPORTING_BIN, env, log);
}

static void tail(const char *name)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "tail -n 30 '%s/%s' >&2", dir, name);
    itest_run(cmd);
}

static int setup(void **state)
{
    (void)state;
    const char *d = getenv("REDRESS_TEST_DIR");
    snprintf(dir, sizeof(dir), "%s", d ? d : "/tmp");
    const char *seed = getenv("REDRESS_SCENARIO_SEED");
    rng = seed ? strtoull(seed, NULL, 10) : (uint64_t)rd_now_ms();
    if (rng == 0)
        rng = 1;
    fprintf(stderr, "scenario seed %llu (REDRESS_SCENARIO_SEED to replay)\n", (unsigned long long)rng);
    pg = itest_pg();
    rd = dtest_redis();
    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "'%s' calendar load '%s/deploy/config/calendars.example.json' >&2 && '%s' rules load "
             "'%s/deploy/config/rules.default.json' >&2",
             REDRESS_REDRESSCTL_BIN, REDRESS_SOURCE_DIR, REDRESS_REDRESSCTL_BIN, REDRESS_SOURCE_DIR);
    if (itest_run(cmd) != 0)
        return -1;
    org();
    if (!itest_intake_start(&in, "REDRESS_INTAKE_MAX_PENDING=20000"))
        return -1;
    char err[256];
    cli = rd_client_new(in.endpoint, err, sizeof(err));
    if (cli == NULL)
        return -1;
    classifier = spawn_classifier();
    if (!dtest_start(&disp, in.pub_port, "REDRESS_DISPATCHER_REDRIVE_INTERVAL_MS=200"))
        return -1;
    if (!etest_start(&esc, in.pub_port, rd_now_ms(), "REDRESS_ESCALATION_CALENDAR=cn-mainland"))
        return -1;
    reporting = spawn_reporting();
    return classifier > 0 && reporting > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    itest_reap(&reporting, SIGTERM);
    etest_stop(&esc);
    dtest_stop(&disp);
    itest_reap(&classifier, SIGTERM);
    rd_client_destroy(&cli);
    itest_intake_stop(&in);
    if (rd)
        redisFree(rd);
    PQfinish(pg);
    return 0;
}

/* Waits until neither the classifier nor the dispatcher has anything left to do. */
static void settle_dispatch(const char *after)
{
    const char *sql = "SELECT count(*) FROM tickets WHERE state IN ('new', 'classified', 'returned')"
                      " OR (state = 'assigned' AND owner_agent IS NULL)";
    if (!itest_wait_count(pg, sql, 0, 180000)) {
        tail("classifier.log");
        dtest_tail(&disp, 30);
        fail_msg("after %s: %lld tickets still waiting for the classifier or dispatcher", after,
                 (long long)itest_count(pg, sql));
    }
}

/* ---- the scenario ----------------------------------------------------------------------------- */

static const struct {
    const char *subject, *body;
    Redress__V1__Channel ch;
} texts[] = {
    {"停电三天无人处理", "我家从周一开始停电，打了三次95598都没有人来修，请尽快处理！",
     REDRESS__V1__CHANNEL__CHANNEL_HOTLINE},
    {"电费账单有误", "本月电费比上月高出三倍，怀疑电表故障，要求核实并退还多收的费用。",
     REDRESS__V1__CHANNEL__CHANNEL_WEB},
    {"咨询峰谷电价", "请问居民峰谷分时电价怎么申请？需要带什么材料？", REDRESS__V1__CHANNEL__CHANNEL_APP},
    {"Billing error on my account", "I was charged twice for the same payment and nobody answers my emails.",
     REDRESS__V1__CHANNEL__CHANNEL_EMAIL},
    {"申请新装电表", "新房需要办理低压居民新装业务，请安排上门勘察。", REDRESS__V1__CHANNEL__CHANNEL_WALK_IN},
    {"市长热线转来：抢修不及时", "市民反映小区变压器故障两天未修复，媒体已经报道，请立即处理。",
     REDRESS__V1__CHANNEL__CHANNEL_MAYOR_HOTLINE},
    {"建议增加缴费网点", "建议在我们镇上增加一个缴费网点，老人去县城缴费很不方便。",
     REDRESS__V1__CHANNEL__CHANNEL_HOTLINE},
    {"Power outage for two days", "Our whole street has had no power since Sunday and the repair crew never came.",
     REDRESS__V1__CHANNEL__CHANNEL_WEB},
};

static const char *const regions[] = {"CN-44-01", "CN-44-03", "CN-11-01", "CN-31-01", "US-NY"};

typedef struct {
    char id[40];
    char state[24];
    char owner_unit[72];
    char agent[72];
} tk;

static void create_tickets(tk *t, int n)
{
    wave w = {0};
    int customers = n / 4 > 0 ? n / 4 : 1; /* about four contacts per customer: repeats and duplicates */
    for (int i = 0; i < n; i++) {
        char eid[48], cust[32], subject[128];
        snprintf(eid, sizeof(eid), "scn-new-%d-%d", (int)getpid(), i);
        snprintf(cust, sizeof(cust), "SCN-%d", (int)(rnd() % (uint32_t)customers));
        int k = (int)(rnd() % (sizeof(texts) / sizeof(texts[0])));
        /* most subjects unique so that only some contacts are duplicates of earlier ones */
        if (unit() < 0.7)
            snprintf(subject, sizeof(subject), "%s #%d", texts[k].subject, i);
        else
            snprintf(subject, sizeof(subject), "%s", texts[k].subject);
        Redress__V1__Envelope e;
        Redress__V1__NewTicket nt;
        itest_new_ticket(&e, &nt, eid);
        e.gateway_id = "scn-gw";
        nt.customer_ref = cust;
        nt.channel = texts[k].ch;
        nt.subject = subject;
        nt.body = (char *)texts[k].body;
        nt.region = (char *)regions[rnd() % (sizeof(regions) / sizeof(regions[0]))];
        nt.vip = unit() < 0.05;
        wave_add(&w, &e);
    }
    wave_run(&w, "new");
    PGresult *r = PQexec(pg, "SELECT id FROM tickets WHERE gateway_id = 'scn-gw' ORDER BY event_id");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), n);
    for (int i = 0; i < n; i++)
        snprintf(t[i].id, sizeof(t[i].id), "%s", PQgetvalue(r, i, 0));
    PQclear(r);
}

static void load_states(tk *t, int n)
{
    PGresult *r = PQexec(pg, "SELECT id, state, COALESCE(owner_unit, ''), COALESCE(owner_agent, '') FROM tickets"
                             " WHERE gateway_id = 'scn-gw'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), n);
    /* ids are unique; match by a linear scan per row would be O(n^2): sort both by id instead */
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        int lo = 0, hi = n - 1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2;
            int c = strcmp(t[mid].id, id);
            if (c == 0) {
                snprintf(t[mid].state, sizeof(t[mid].state), "%s", PQgetvalue(r, i, 1));
                snprintf(t[mid].owner_unit, sizeof(t[mid].owner_unit), "%s", PQgetvalue(r, i, 2));
                snprintf(t[mid].agent, sizeof(t[mid].agent), "%s", PQgetvalue(r, i, 3));
                break;
            }
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid - 1;
        }
        assert_true(lo <= hi);
    }
    PQclear(r);
}

static int cmp_tk(const void *a, const void *b)
{
    return strcmp(((const tk *)a)->id, ((const tk *)b)->id);
}

static const char *other_dept(const char *unit)
{
    int d = (int)(rnd() % 3);
    if (strcmp(depts[d], unit) == 0)
        d = (d + 1) % 3;
    return depts[d];
}

/* One action per ticket, chosen from its current state. */
static void lifecycle_wave(tk *t, int n, int round)
{
    wave w = {0};
    for (int i = 0; i < n; i++) {
        const char *s = t[i].state;
        const char *who = t[i].agent[0] ? t[i].agent : "a-centre";
        double u = unit();
        if (strcmp(s, "assigned") == 0 && t[i].agent[0]) {
            if (u < 0.88)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_ACCEPT, who, NULL, 0);
            else if (u < 0.92)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_TRANSFER, who, other_dept(t[i].owner_unit), 0);
            else if (u < 0.95)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_RETURN, who, other_dept(t[i].owner_unit), 0);
            else
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_CHASE, "SCN-customer", NULL, 0);
        } else if (strcmp(s, "accepted") == 0) {
            if (u < 0.55)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_REPLY, who, NULL, 0);
            else if (u < 0.67)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_WAIT_CUSTOMER, who, NULL, 0);
            else if (u < 0.82)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_RESOLVE, who, NULL, 0);
            else if (u < 0.85)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_TRANSFER, who, other_dept(t[i].owner_unit), 0);
            else if (u < 0.90)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_CHASE, "SCN-customer", NULL, 0);
            /* else: nobody touches it this round (some stay open and breach) */
        } else if (strcmp(s, "in_progress") == 0) {
            if (u < 0.6)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_RESOLVE, who, NULL, 0);
            else if (u < 0.7)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_REPLY, who, NULL, 0);
            else if (u < 0.75)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_WAIT_CUSTOMER, who, NULL, 0);
            else if (u < 0.8)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_CHASE, "SCN-customer", NULL, 0);
        } else if (strcmp(s, "waiting_customer") == 0) {
            if (u < 0.8)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_RESUME, who, NULL, 0);
        } else if (strcmp(s, "resolved") == 0) {
            if (u < 0.45)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_CLOSE, who, NULL, 0);
            else if (u < 0.8)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_RETURN_VISIT, "visitor", NULL, 1 + rnd() % 5);
            else if (u < 0.86 && round < 6)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_REOPEN, "SCN-customer", NULL, 0);
        } else if (strcmp(s, "closed") == 0) {
            if (u < 0.3)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_RETURN_VISIT, "visitor", NULL, 1 + rnd() % 5);
            else if (u < 0.34 && round < 6)
                act(&w, t[i].id, REDRESS__V1__ACTION_KIND__ACTION_REOPEN, "SCN-customer", NULL, 0);
        }
    }
    char what[32];
    snprintf(what, sizeof(what), "round %d", round);
    wave_run(&w, what);
}

/* ---- the check -------------------------------------------------------------------------------- */

/* Every KPI contribution recomputed from the raw tables: (t, dimensions, col, v). */
static const char RAW[] =
    "CREATE TEMP VIEW raw_kpi AS"
    " WITH s AS (SELECT time_zone, calendar_id FROM reporting.settings),"
    " t AS (SELECT t.id, COALESCE(t.business_type, '') AS bt, t.channel AS ch, COALESCE(t.category, '') AS cat,"
    "              COALESCE(t.owner_unit, '') AS dept, COALESCE(t.owner_team, '') AS team,"
    "              COALESCE(t.owner_agent, '') AS agent, t.region AS reg, t.severity, t.created_at,"
    "              cl.repeat_of, cl.duplicate_of,"
    "              (SELECT min(h.at) FROM ticket_history h WHERE h.ticket_id = t.id AND h.kind = 'reply') AS fr,"
    "              (SELECT CASE WHEN h.kind = 'resolve' THEN h.at END FROM ticket_history h"
    "                WHERE h.ticket_id = t.id AND h.kind IN ('resolve', 'reopen') ORDER BY h.seq DESC LIMIT 1) AS res,"
    "              (SELECT CASE WHEN h.kind = 'close' THEN h.at END FROM ticket_history h"
    "                WHERE h.ticket_id = t.id AND h.kind IN ('close', 'reopen') ORDER BY h.seq DESC LIMIT 1) AS clo,"
    "              (SELECT count(*) FROM ticket_history h WHERE h.ticket_id = t.id AND h.kind = 'reopen') AS reopens,"
    "              v.at AS visit_at, v.satisfaction"
    "         FROM tickets t LEFT JOIN ticket_classifications cl ON cl.ticket_id = t.id"
    "         LEFT JOIN LATERAL (SELECT h.at, h.satisfaction FROM ticket_history h WHERE h.ticket_id = t.id"
    "                             AND h.kind = 'return_visit' ORDER BY h.seq DESC LIMIT 1) v ON true),"
    " d AS (SELECT t.*,"
    "              floor(extract(epoch FROM t.fr - t.created_at)) AS frt,"
    "              floor(extract(epoch FROM t.res - t.created_at)) AS rt,"
    "              %2$s AS frt_b, %3$s AS rt_b"
    "         FROM t),"
    " e(id, at, col, v) AS ("
    "   SELECT id, created_at, 'received', 1::numeric FROM d"
    "   UNION ALL SELECT id, created_at, 'repeats', 1 FROM d WHERE repeat_of IS NOT NULL"
    "   UNION ALL SELECT id, created_at, 'duplicates', 1 FROM d WHERE duplicate_of IS NOT NULL"
    "   UNION ALL SELECT id, created_at, 'reopened', 1 FROM d WHERE reopens > 0"
    "   UNION ALL SELECT id, created_at, 'reopens', reopens FROM d WHERE reopens > 0"
    "   UNION ALL SELECT id, created_at, 'major', 1 FROM d WHERE severity = 'major'"
    "   UNION ALL SELECT id, fr, 'responded', 1 FROM d WHERE fr IS NOT NULL"
    "   UNION ALL SELECT id, fr, 'frt_s', frt FROM d WHERE fr IS NOT NULL"
    "   UNION ALL SELECT id, fr, 'frt_bs', frt_b FROM d WHERE fr IS NOT NULL"
    "   UNION ALL SELECT id, fr, 'frt_h' || %1$s, 1 FROM (SELECT id, fr, frt AS x FROM d) q WHERE fr IS NOT NULL"
    "   UNION ALL SELECT id, fr, 'frt_bh' || %1$s, 1 FROM (SELECT id, fr, frt_b AS x FROM d) q WHERE fr IS NOT NULL"
    "   UNION ALL SELECT id, res, 'resolved', 1 FROM d WHERE res IS NOT NULL"
    "   UNION ALL SELECT id, res, 'res_s', rt FROM d WHERE res IS NOT NULL"
    "   UNION ALL SELECT id, res, 'res_bs', rt_b FROM d WHERE res IS NOT NULL"
    "   UNION ALL SELECT id, res, 'res_h' || %1$s, 1 FROM (SELECT id, res, rt AS x FROM d) q WHERE res IS NOT NULL"
    "   UNION ALL SELECT id, res, 'res_bh' || %1$s, 1 FROM (SELECT id, res, rt_b AS x FROM d) q WHERE res IS NOT NULL"
    "   UNION ALL SELECT id, clo, 'closed', 1 FROM d WHERE clo IS NOT NULL"
    "   UNION ALL SELECT id, visit_at, 'visits', 1 FROM d WHERE visit_at IS NOT NULL"
    "   UNION ALL SELECT id, visit_at, 'satisfied', 1 FROM d WHERE visit_at IS NOT NULL AND satisfaction >= 4"
    "   UNION ALL SELECT c.ticket_id, c.breached_at, c.clock || '_breached', 1 FROM sla_clocks c"
    "              WHERE c.breached_at IS NOT NULL"
    "   UNION ALL SELECT c.ticket_id, c.stopped_at, c.clock || '_met', 1 FROM sla_clocks c"
    "              WHERE c.breached_at IS NULL AND c.outcome = 'met'"
    "   UNION ALL SELECT x.ticket_id, x.at, 'esc_l' || x.level, 1 FROM sla_escalations x)"
    " SELECT e.at AT TIME ZONE (SELECT time_zone FROM s) AS lt, d.bt, d.ch, d.cat, d.dept, d.team, d.agent, d.reg,"
    "        e.col, e.v FROM e JOIN d USING (id)";

/* Working seconds between t.created_at and t.<end>: the overlap with the calendar's working
 * intervals, or calendar time without a calendar. (No LEFT JOIN here: least()/greatest() ignore
 * NULLs, so a missing interval would count the whole span.) */
static const char BUSINESS[] =
    "(CASE WHEN (SELECT calendar_id FROM s) IS NULL THEN floor(extract(epoch FROM t.%1$s - t.created_at))"
    " ELSE floor(COALESCE((SELECT sum(extract(epoch FROM least(t.%1$s, w.ends_at) - greatest(t.created_at, "
    "w.starts_at)))"
    "                        FROM reporting.work_intervals w WHERE w.calendar_id = (SELECT calendar_id FROM s)"
    "                         AND w.starts_at < t.%1$s AND w.ends_at > t.created_at), 0)) END)";

/* The histogram bucket of x, written out rather than with width_bucket. */
static const char BUCKET[] = "(CASE WHEN x < 300 THEN 0 WHEN x < 900 THEN 1 WHEN x < 1800 THEN 2 WHEN x < 3600 THEN 3"
                             " WHEN x < 14400 THEN 4 WHEN x < 43200 THEN 5 WHEN x < 86400 THEN 6"
                             " WHEN x < 259200 THEN 7 ELSE 8 END)";

static const char CMP[] =
    "WITH r AS (SELECT date_trunc('%1$s', lt)::%2$s AS b, bt, ch, cat, dept, team, agent, reg, col, sum(v) AS v"
    "             FROM raw_kpi GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9 HAVING sum(v) <> 0),"
    "     u AS (SELECT x.bucket AS b, x.business_type AS bt, x.channel AS ch, x.category AS cat, x.department AS dept,"
    "                  x.team, x.agent, x.region AS reg, kv.key AS col, kv.value::numeric AS v"
    "             FROM reporting.rollup_%1$s x,"
    "                  jsonb_each_text(to_jsonb(x) - ARRAY['bucket', 'business_type', 'channel', 'category',"
    "                                                     'department', 'team', 'agent', 'region']) kv"
    "            WHERE kv.value <> '0')"
    " SELECT COALESCE(r.b, u.b)::text, COALESCE(r.dept, u.dept), COALESCE(r.agent, u.agent),"
    "        COALESCE(r.col, u.col), r.v::text, u.v::text"
    "   FROM r FULL JOIN u USING (b, bt, ch, cat, dept, team, agent, reg, col)"
    "  WHERE r.v IS DISTINCT FROM u.v ORDER BY 1, 4 LIMIT 20";

static void compare(const char *grain, const char *type)
{
    char sql[4096];
    snprintf(sql, sizeof(sql), CMP, grain, type);
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", grain, PQresultErrorMessage(r));
    for (int i = 0; i < PQntuples(r); i++)
        fprintf(stderr, "MISMATCH %s %s dept=%s agent=%s %s: raw %s rollup %s\n", grain, PQgetvalue(r, i, 0),
                PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
                PQgetvalue(r, i, 5));
    int bad = PQntuples(r);
    PQclear(r);
    int64_t cells = dtest_num(pg,
                              "SELECT count(*) FROM reporting.rollup_%s x, jsonb_each_text(to_jsonb(x)) kv"
                              " WHERE kv.value <> '0'",
                              grain);
    fprintf(stderr, "rollup_%s: %lld non-zero cells, %d mismatches\n", grain, (long long)cells, bad);
    if (bad)
        fprintf(stderr, "settings: %s; %lld working intervals\n",
                dtest_str(pg, "SELECT time_zone || ' ' || COALESCE(calendar_id, '(24/7)') || ' ' || calendar_version"
                              " FROM reporting.settings"),
                (long long)dtest_num(pg, "SELECT count(*) FROM reporting.work_intervals"));
    assert_int_equal(bad, 0);
}

static void test_scenario(void **state)
{
    (void)state;
    const char *ns = getenv("REDRESS_SCENARIO_TICKETS");
    int n = ns ? atoi(ns) : 20000;
    assert_true(n > 0);
    tk *t = calloc((size_t)n, sizeof(*t));
    assert_non_null(t);
    int64_t t0 = rd_now_ms();
    create_tickets(t, n);
    qsort(t, (size_t)n, sizeof(*t), cmp_tk);
    settle_dispatch("creation");
    for (int round = 1; round <= 8; round++) {
        load_states(t, n);
        lifecycle_wave(t, n, round);
        settle_dispatch("a round");
    }
    fprintf(stderr, "lifecycle done in %lld ms\n", (long long)(rd_now_ms() - t0));

    /* Five days on for the escalation service: the open clocks breach and escalate. */
    if (!etest_settle(pg, 120000)) {
        etest_tail(&esc, 30);
        fail_msg("escalation did not apply the history");
    }
    fprintf(stderr, "escalation caught up at %lld ms\n", (long long)(rd_now_ms() - t0));
    int64_t later = rd_now_ms() + 5 * 24 * ETEST_HOUR;
    etest_set_clock(&esc, later);
    char due[256];
    snprintf(due, sizeof(due),
             "SELECT count(*) FROM sla_clocks WHERE state = 'running' AND breached_at IS NULL"
             " AND due_at <= to_timestamp(%lld / 1000.0)",
             (long long)later);
    if (!itest_wait_count(pg, due, 0, 180000)) {
        etest_tail(&esc, 30);
        fail_msg("%lld clocks due but not breached", (long long)itest_count(pg, due));
    }

    fprintf(stderr, "clocks breached at %lld ms\n", (long long)(rd_now_ms() - t0));
    /* The reporting service has applied everything: its queue is empty and no fact is behind. */
    const char *behind = "SELECT (SELECT count(*) FROM reporting.queue)"
                         " + (SELECT count(*) FROM tickets t LEFT JOIN reporting.ticket_facts f ON f.ticket_id = t.id"
                         "     WHERE f.ticket_id IS NULL"
                         "        OR f.last_seq <> (SELECT max(seq) FROM ticket_history h WHERE h.ticket_id = t.id))";
    if (!itest_wait_count(pg, behind, 0, 300000)) {
        tail("reporting.log");
        fail_msg("reporting is behind by %lld", (long long)itest_count(pg, behind));
    }
    fprintf(stderr, "reporting caught up at %lld ms\n", (long long)(rd_now_ms() - t0));
    /* Quiesce: only the reporting service keeps running, and it catches up with the last changes. */
    itest_reap(&classifier, SIGTERM);
    dtest_stop(&disp);
    etest_stop(&esc);
    if (!itest_wait_count(pg, behind, 0, 300000)) {
        tail("reporting.log");
        fail_msg("reporting is behind by %lld", (long long)itest_count(pg, behind));
    }
    fprintf(stderr, "everything applied %lld ms after the start\n", (long long)(rd_now_ms() - t0));

    /* The scenario did exercise what it claims to. */
    struct {
        const char *what, *sql;
        int64_t min;
    } seen[] = {
        {"transfers", "SELECT count(*) FROM ticket_history WHERE kind = 'transfer'", 1},
        {"returns", "SELECT count(*) FROM ticket_history WHERE kind = 'return'", 1},
        {"pauses", "SELECT count(*) FROM ticket_history WHERE kind = 'wait_customer'", 1},
        {"chases", "SELECT count(*) FROM ticket_history WHERE kind = 'chase'", 1},
        {"reopens", "SELECT count(*) FROM ticket_history WHERE kind = 'reopen'", 1},
        {"return visits", "SELECT count(*) FROM ticket_history WHERE kind = 'return_visit'", 1},
        {"breaches", "SELECT count(*) FROM sla_clocks WHERE breached_at IS NOT NULL", 1},
        {"clocks met", "SELECT count(*) FROM sla_clocks WHERE breached_at IS NULL AND outcome = 'met'", 1},
        {"escalations", "SELECT count(*) FROM sla_escalations", 1},
        {"repeats", "SELECT count(*) FROM ticket_classifications WHERE repeat_of IS NOT NULL", 1},
        {"departments", "SELECT count(DISTINCT owner_unit) FROM tickets", 3},
    };
    for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
        int64_t v = itest_count(pg, seen[i].sql);
        fprintf(stderr, "  %-14s %lld\n", seen[i].what, (long long)v);
        if (v < seen[i].min)
            fail_msg("the scenario produced too few %s (%lld)", seen[i].what, (long long)v);
    }

    char bfr[1024], bres[1024], raw[sizeof(RAW) + 8192];
    snprintf(bfr, sizeof(bfr), BUSINESS, "fr");
    snprintf(bres, sizeof(bres), BUSINESS, "res");
    snprintf(raw, sizeof(raw), RAW, BUCKET, bfr, bres);
    dtest_sql(pg, "%s", raw);
    compare("hour", "timestamp");
    compare("day", "date");
    compare("month", "date");
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM reporting.ticket_facts"), n);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenario),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
