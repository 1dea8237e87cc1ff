/*
 * test_escalation_clock.c -- the SLA clock engine of redress-escalation (services/escalation/
 * escalation.h): clocks armed from the default policies seeded by deploy/sql/0005_escalation.sql,
 * run in business time on the shipped "cn-mainland" calendar (Asia/Shanghai, 08:30-12:00 and
 * 13:30-17:30, the 2026 holidays and make-up working days) and on New York calendars across the
 * 2026 spring-forward day.
 *
 * Every expected instant was worked out by hand from the header's rules and is written as local
 * wall time in the calendar's zone ("2026-10-10 17:30", converted with rd_calendar_from_local);
 * none is computed by calling the engine again. Nothing reads the clock: weeks of SLA time run in
 * microseconds.
 *
 * cn-mainland around the dates used here (2026):
 *   Fri 09-25 .. Sun 09-27  中秋节 holiday;  Sun 09-20 make-up working day (国庆节调休)
 *   Mon 09-28 .. Wed 09-30  working days
 *   Thu 10-01 .. Wed 10-07  国庆节 holiday
 *   Thu 10-08, Fri 10-09    working days;  Sat 10-10 make-up working day;  Sun 10-11 off
 *   Mon 10-12 ..            ordinary weeks (Fri 10-16, Tue 10-20 ...)
 * A working day holds 7.5 h: 3.5 h in the morning, 4 h in the afternoon.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "escalation.h"
#include "rd_calendar.h"

#define MIN_MS  INT64_C(60000)
#define HOUR_MS INT64_C(3600000)
#define REC_CAP 16
#define FAR_MS  INT64_C(4102444800000) /* 2100-01-01T00:00:00Z: every stage is due by then */

static rd_calendar_set *g_cals;
static const rd_calendar *g_cn; /* "cn-mainland" from calendars.example.json */
static const rd_calendar *g_ny; /* "us-ny" from calendars.example.json */
static esc_policy g_pol[8];     /* the eight default policies of 0005_escalation.sql */
static int g_npol;
static int64_t g_seq;

/* ---- instants ------------------------------------------------------------------------------ */

/* "YYYY-MM-DD HH:MM[:SS]" local wall time in the zone of c -> Unix ms. */
static int64_t local_(const rd_calendar *c, const char *s, const char *file, int line)
{
    int y, mo, d, h, mi, sec = 0;
    if (sscanf(s, "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &sec) < 5) {
        print_error("%s:%d: bad test instant \"%s\"\n", file, line, s);
        _fail(file, line);
    }
    int64_t t = rd_calendar_from_local(c, y, mo, d, h, mi, sec);
    if (t == RD_CALENDAR_NEVER) {
        print_error("%s:%d: no such local time \"%s\"\n", file, line, s);
        _fail(file, line);
    }
    return t;
}
#define CN(s) local_(g_cn, s, __FILE__, __LINE__) /* Asia/Shanghai */
#define NY(s) local_(g_ny, s, __FILE__, __LINE__) /* America/New_York */

static void fmt_local(const rd_calendar *c, int64_t t, char *buf, size_t n)
{
    rd_local_time lt;
    if (t == ESC_NONE) {
        snprintf(buf, n, "ESC_NONE");
        return;
    }
    if (!rd_calendar_to_local(c, t, &lt)) {
        snprintf(buf, n, "(out of range: %lld)", (long long)t);
        return;
    }
    int off = lt.utc_offset_ms / 60000;
    snprintf(buf, n, "%04d-%02d-%02d %02d:%02d:%02d.%03d %c%02d:%02d", lt.year, lt.month, lt.day, lt.hour, lt.minute,
             lt.second, lt.millisecond, off < 0 ? '-' : '+', abs(off) / 60, abs(off) % 60);
}

static void assert_at_(const rd_calendar *c, int64_t got, int64_t want, const char *file, int line)
{
    if (got != want) {
        char g[64], w[64];
        fmt_local(c, got, g, sizeof g);
        fmt_local(c, want, w, sizeof w);
        print_error("%s:%d: got %s, expected %s\n", file, line, g, w);
        _fail(file, line);
    }
}
#define assert_at(got, want)    assert_at_(g_cn, got, want, __FILE__, __LINE__)
#define assert_at_ny(got, want) assert_at_(g_ny, got, want, __FILE__, __LINE__)
#define assert_none(got)        assert_at_(g_cn, got, ESC_NONE, __FILE__, __LINE__)

/* ---- stages -------------------------------------------------------------------------------- */

typedef struct {
    int code;
    int64_t off; /* business ms from the start */
} stage_off;

/* The clock's stage table (codes and business offsets), exactly. */
static void assert_stages_(const esc_clock *c, const stage_off *want, int n, const char *file, int line)
{
    bool ok = c->nstages == n;
    for (int i = 0; ok && i < n; i++)
        ok = c->stage_code[i] == want[i].code && c->stage_at[i] == want[i].off;
    if (!ok) {
        print_error("%s:%d: stage table differs\n  got     ", file, line);
        for (int i = 0; i < c->nstages && i < ESC_MAX_STAGES; i++)
            print_error(" %d@%lldmin", c->stage_code[i], (long long)(c->stage_at[i] / MIN_MS));
        print_error("\n  expected");
        for (int i = 0; i < n; i++)
            print_error(" %d@%lldmin", want[i].code, (long long)(want[i].off / MIN_MS));
        print_error("\n");
        _fail(file, line);
    }
}
#define assert_stages(c, ...)                                                                                          \
    assert_stages_(c, (const stage_off[]){__VA_ARGS__}, (int)(sizeof((stage_off[]){__VA_ARGS__}) / sizeof(stage_off)), \
                   __FILE__, __LINE__)

/* esc_fire(c, now) returns exactly these stages, in this order, with these instants. */
static void assert_fires_(const rd_calendar *z, esc_clock *c, int64_t now, const esc_fired *want, int n,
                          const char *file, int line)
{
    esc_fired got[ESC_MAX_STAGES];
    memset(got, 0, sizeof got);
    int k = esc_fire(c, now, got);
    bool ok = k == n;
    for (int i = 0; ok && i < n; i++)
        ok = got[i].code == want[i].code && got[i].at_ms == want[i].at_ms;
    if (!ok) {
        char buf[64];
        fmt_local(z, now, buf, sizeof buf);
        print_error("%s:%d: esc_fire at %s\n  got %d:", file, line, buf, k);
        for (int i = 0; i < k && i < ESC_MAX_STAGES; i++) {
            fmt_local(z, got[i].at_ms, buf, sizeof buf);
            print_error(" [%d %s]", got[i].code, buf);
        }
        print_error("\n  expected %d:", n);
        for (int i = 0; i < n; i++) {
            fmt_local(z, want[i].at_ms, buf, sizeof buf);
            print_error(" [%d %s]", want[i].code, buf);
        }
        print_error("\n");
        _fail(file, line);
    }
}
#define FIRED(...)                   (const esc_fired[]){__VA_ARGS__}, (int)(sizeof((esc_fired[]){__VA_ARGS__}) / sizeof(esc_fired))
#define assert_fires(c, now, ...)    assert_fires_(g_cn, c, now, FIRED(__VA_ARGS__), __FILE__, __LINE__)
#define assert_fires_ny(c, now, ...) assert_fires_(g_ny, c, now, FIRED(__VA_ARGS__), __FILE__, __LINE__)
#define assert_fires_none(c, now)    assert_fires_(g_cn, c, now, NULL, 0, __FILE__, __LINE__)

/* The whole schedule of a clock as it stands (fired on a copy, the clock itself is unchanged). */
#define assert_schedule(c, ...)                                                                                        \
    do {                                                                                                               \
        esc_clock copy_ = *(c);                                                                                        \
        assert_fires_(g_cn, &copy_, FAR_MS, FIRED(__VA_ARGS__), __FILE__, __LINE__);                                   \
    } while (0)
#define assert_schedule_ny(c, ...)                                                                                     \
    do {                                                                                                               \
        esc_clock copy_ = *(c);                                                                                        \
        assert_fires_(g_ny, &copy_, FAR_MS, FIRED(__VA_ARGS__), __FILE__, __LINE__);                                   \
    } while (0)

/* ---- policies ------------------------------------------------------------------------------ */

static esc_policy policy(const char *id, esc_kind kind, const char *business_type, const char *severity,
                         int transferred, int target, esc_unit unit)
{
    esc_policy p;
    memset(&p, 0, sizeof p);
    snprintf(p.id, sizeof p.id, "%s", id);
    p.kind = kind;
    snprintf(p.business_type, sizeof p.business_type, "%s", business_type);
    snprintf(p.severity, sizeof p.severity, "%s", severity);
    p.transferred = transferred;
    p.target = target;
    p.unit = unit;
    p.cal = unit == ESC_UNIT_MINUTES ? NULL : g_cn;
    return p;
}

static void add_warn(esc_policy *p, int pct)
{
    p->warn_pct[p->nwarn++] = pct;
}

static void add_level(esc_policy *p, int level, int after, esc_role role, esc_action action)
{
    p->levels[p->nlevels++] = (esc_level){.level = level, .after = after, .role = role, .action = action};
}

/* One default policy exactly as 0005_escalation.sql seeds it (NULL columns: "" / "*" / -1). */
static esc_policy seed_policy(const char *id)
{
    esc_policy p;
    if (strcmp(id, "repair-accept") == 0) {
        p = policy(id, ESC_ACCEPT, "fault_repair", "", 0, 5, ESC_UNIT_MINUTES);
        add_warn(&p, 80);
        add_level(&p, 1, 5, ESC_TEAM_LEAD, ESC_REROUTE);
        add_level(&p, 2, 15, ESC_DEPARTMENT_HEAD, ESC_NOTIFY);
    } else if (strcmp(id, "transfer-accept") == 0) {
        p = policy(id, ESC_ACCEPT, "*", "", 1, 30, ESC_UNIT_MINUTES);
        add_warn(&p, 50);
        add_warn(&p, 80);
        add_level(&p, 1, 30, ESC_TEAM_LEAD, ESC_NOTIFY);
        add_level(&p, 2, 60, ESC_DEPARTMENT_HEAD, ESC_NOTIFY);
    } else if (strcmp(id, "service-contact") == 0) {
        p = policy(id, ESC_FIRST_RESPONSE, "service_application", "", -1, 3, ESC_UNIT_WORKING_DAYS);
        add_warn(&p, 50);
        add_warn(&p, 80);
        add_level(&p, 1, 3, ESC_TEAM_LEAD, ESC_NOTIFY);
        add_level(&p, 2, 4, ESC_DEPARTMENT_HEAD, ESC_NOTIFY);
    } else if (strcmp(id, "consultation-reply") == 0) {
        p = policy(id, ESC_FIRST_RESPONSE, "consultation", "", -1, 3, ESC_UNIT_WORKING_DAYS);
        add_warn(&p, 50);
        add_warn(&p, 80);
        add_level(&p, 1, 3, ESC_TEAM_LEAD, ESC_NOTIFY);
        add_level(&p, 2, 4, ESC_DEPARTMENT_HEAD, ESC_NOTIFY);
    } else if (strcmp(id, "suggestion-reply") == 0) {
        p = policy(id, ESC_FIRST_RESPONSE, "suggestion", "", -1, 3, ESC_UNIT_WORKING_DAYS);
        add_warn(&p, 50);
        add_warn(&p, 80);
        add_level(&p, 1, 3, ESC_TEAM_LEAD, ESC_NOTIFY);
    } else if (strcmp(id, "major-resolve") == 0) {
        p = policy(id, ESC_RESOLUTION, "*", "major", -1, 12 * 60, ESC_UNIT_MINUTES);
        add_warn(&p, 50);
        add_warn(&p, 80);
        add_level(&p, 1, 12 * 60, ESC_TEAM_LEAD, ESC_RAISE_PRIORITY);
        add_level(&p, 2, 18 * 60, ESC_DEPARTMENT_HEAD, ESC_NOTIFY);
        add_level(&p, 3, 24 * 60, ESC_LEADERSHIP, ESC_NOTIFY);
    } else if (strcmp(id, "general-resolve") == 0) {
        p = policy(id, ESC_RESOLUTION, "*", "general", -1, 24 * 60, ESC_UNIT_MINUTES);
        add_warn(&p, 50);
        add_warn(&p, 80);
        add_level(&p, 1, 24 * 60, ESC_TEAM_LEAD, ESC_RAISE_PRIORITY);
        add_level(&p, 2, 48 * 60, ESC_DEPARTMENT_HEAD, ESC_NOTIFY);
    } else if (strcmp(id, "chase-update") == 0) {
        p = policy(id, ESC_CHASE_UPDATE, "*", "", -1, 24 * 60, ESC_UNIT_MINUTES);
        add_warn(&p, 50);
        add_level(&p, 1, 24 * 60, ESC_TEAM_LEAD, ESC_RAISE_PRIORITY);
        add_level(&p, 2, 48 * 60, ESC_DEPARTMENT_HEAD, ESC_NOTIFY);
        add_level(&p, 3, 72 * 60, ESC_LEADERSHIP, ESC_NOTIFY);
    } else {
        fail_msg("no seeded policy \"%s\"", id);
    }
    return p;
}

static int group_setup(void **state)
{
    (void)state;
    char err[512] = "";
    g_cals = rd_calendar_set_load(RD_TEST_CALENDARS_FILE, err, sizeof err);
    if (g_cals == NULL) {
        fprintf(stderr, "%s: %s\n", RD_TEST_CALENDARS_FILE, err);
        return -1;
    }
    g_cn = rd_calendar_set_find(g_cals, "cn-mainland");
    g_ny = rd_calendar_set_find(g_cals, "us-ny");
    if (g_cn == NULL || g_ny == NULL)
        return -1;
    static const char *const ids[] = {"repair-accept",    "transfer-accept", "service-contact", "consultation-reply",
                                      "suggestion-reply", "major-resolve",   "general-resolve", "chase-update"};
    for (g_npol = 0; g_npol < 8; g_npol++)
        g_pol[g_npol] = seed_policy(ids[g_npol]);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    rd_calendar_set_free(g_cals);
    return 0;
}

/* ---- tickets and events -------------------------------------------------------------------- */

static esc_event event(const char *kind, int64_t at, int64_t received, const char *business_type, const char *severity)
{
    esc_event e;
    memset(&e, 0, sizeof e);
    e.seq = ++g_seq;
    e.kind = kind;
    e.from_state = "";
    e.reason = "";
    e.at_ms = at;
    e.received_ms = received;
    e.facts.business_type = business_type;
    e.facts.severity = severity;
    e.facts.channel = "";
    return e;
}

static int apply_(esc_ticket *t, const esc_event *e, esc_record *rec, const char *file, int line)
{
    memset(rec, 0, REC_CAP * sizeof *rec);
    int n = esc_apply(t, e, g_pol, g_npol, rec, REC_CAP);
    if (n < 0) {
        print_error("%s:%d: esc_apply(\"%s\") failed\n", file, line, e->kind);
        _fail(file, line);
    }
    return n;
}
#define apply(t, e, rec) apply_(t, e, rec, __FILE__, __LINE__)

/* The ticket's clock of this kind and cycle, or NULL. */
static esc_clock *clock_of(esc_ticket *t, esc_kind kind, int cycle)
{
    for (int i = 0; i < t->n; i++)
        if (t->v[i].kind == kind && t->v[i].cycle == cycle)
            return &t->v[i];
    return NULL;
}

static int index_of(const esc_ticket *t, const esc_clock *c)
{
    return (int)(c - t->v);
}

/* rec[0..n) holds a record of this kind for this clock (at its instant unless at == ESC_NONE). */
static void assert_rec_(const esc_record *rec, int n, esc_evkind kind, int clock, int64_t at, const char *file,
                        int line)
{
    for (int i = 0; i < n; i++) {
        if (rec[i].kind == kind && rec[i].clock == clock) {
            if (at != ESC_NONE)
                assert_at_(g_cn, rec[i].at_ms, at, file, line);
            return;
        }
    }
    print_error("%s:%d: no \"%s\" record for clock %d among %d:", file, line, esc_evkind_name(kind), clock, n);
    for (int i = 0; i < n; i++)
        print_error(" [%s clock %d]", esc_evkind_name(rec[i].kind), rec[i].clock);
    print_error("\n");
    _fail(file, line);
}
#define assert_rec(rec, n, kind, clock, at) assert_rec_(rec, n, kind, clock, at, __FILE__, __LINE__)

static void assert_stopped_(const esc_clock *c, int outcome, int64_t at, const char *file, int line)
{
    _assert_int_equal(c->state, ESC_STOPPED, file, line);
    _assert_int_equal(c->outcome, outcome, file, line);
    assert_at_(g_cn, c->stopped_ms, at, file, line);
    assert_at_(g_cn, esc_due(c), ESC_NONE, file, line);
    assert_at_(g_cn, esc_next_fire(c), ESC_NONE, file, line);
    assert_at_(g_cn, esc_instant(c, 0), ESC_NONE, file, line);
}
#define assert_met(c, at)       assert_stopped_(c, 1, at, __FILE__, __LINE__)
#define assert_cancelled(c, at) assert_stopped_(c, 2, at, __FILE__, __LINE__)

/* ---- the tests ----------------------------------------------------------------------------- */

/* Stored names are stable lower-case words and parse back; unknown names parse to -1. */
static void test_names_round_trip(void **state)
{
    (void)state;
    static const char *const kinds[] = {"accept", "first_response", "chase_update", "resolution"};
    static const char *const units[] = {"minutes", "business_minutes", "working_days"};
    static const char *const actions[] = {"notify", "raise_priority", "reroute"};
    static const char *const roles[] = {"team_lead", "department_head", "leadership"};
    static const char *const evkinds[] = {"armed",  "warned",  "breached",  "met",
                                          "paused", "resumed", "escalated", "cancelled"};
    assert_int_equal(ESC__KINDS, 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(esc_kind_name((esc_kind)i), kinds[i]);
        assert_int_equal(esc_kind_parse(kinds[i]), i);
    }
    for (int i = 0; i < 3; i++) {
        assert_string_equal(esc_unit_name((esc_unit)i), units[i]);
        assert_int_equal(esc_unit_parse(units[i]), i);
        assert_string_equal(esc_action_name((esc_action)i), actions[i]);
        assert_int_equal(esc_action_parse(actions[i]), i);
        assert_string_equal(esc_role_name((esc_role)i), roles[i]);
        assert_int_equal(esc_role_parse(roles[i]), i);
    }
    for (int i = 0; i < 8; i++)
        assert_string_equal(esc_evkind_name((esc_evkind)i), evkinds[i]);
    assert_int_equal(esc_kind_parse(""), -1);
    assert_int_equal(esc_kind_parse("resolve"), -1);
    assert_int_equal(esc_kind_parse("accepted"), -1);
    assert_int_equal(esc_unit_parse("hours"), -1);
    assert_int_equal(esc_unit_parse(""), -1);
    assert_int_equal(esc_action_parse("escalate"), -1);
    assert_int_equal(esc_action_parse(""), -1);
    assert_int_equal(esc_role_parse("ceo"), -1);
    assert_int_equal(esc_role_parse(""), -1);
}

/* Fault repair: accept within 5 minutes; 80 % warning, breach + level 1 (reroute) at 5 min, level 2 at 15. */
static void test_repair_accept(void **state)
{
    (void)state;
    esc_record rec[REC_CAP];
    esc_ticket t = {0};
    esc_event e = event("assign", CN("2026-10-20 10:00:00"), CN("2026-10-20 09:58"), "fault_repair", "major");
    assert_int_equal(apply(&t, &e, rec), 1);
    assert_int_equal(t.n, 1);
    assert_rec(rec, 1, ESC_EV_ARMED, 0, ESC_NONE);
    esc_clock *c = &t.v[0];
    assert_int_equal(c->kind, ESC_ACCEPT);
    assert_int_equal(c->cycle, 1);
    assert_string_equal(c->policy_id, "repair-accept");
    assert_null(c->cal);
    assert_int_equal(c->target_ms, 5 * MIN_MS);
    assert_at(c->started_ms, CN("2026-10-20 10:00"));
    assert_at(c->running_since_ms, CN("2026-10-20 10:00"));
    assert_int_equal(c->elapsed_ms, 0);
    assert_int_equal(c->state, ESC_RUNNING);
    assert_int_equal(c->outcome, 0);
    assert_none(c->breached_ms);
    assert_none(c->stopped_ms);
    assert_int_equal(c->next_stage, 0);
    assert_true(t.dirty[0]);
    assert_stages(c, {80, 4 * MIN_MS}, {100, 5 * MIN_MS}, {101, 5 * MIN_MS}, {102, 15 * MIN_MS});
    assert_at(esc_due(c), CN("2026-10-20 10:05"));
    assert_at(esc_next_fire(c), CN("2026-10-20 10:04"));

    assert_fires_none(c, CN("2026-10-20 10:03:59") + 999);
    assert_fires(c, CN("2026-10-20 10:04"), {80, CN("2026-10-20 10:04")});
    assert_at(esc_next_fire(c), CN("2026-10-20 10:05"));
    assert_fires_none(c, CN("2026-10-20 10:04:59") + 999);
    assert_none(c->breached_ms);
    assert_fires(c, CN("2026-10-20 10:05"), {100, CN("2026-10-20 10:05")}, {101, CN("2026-10-20 10:05")});
    assert_at(c->breached_ms, CN("2026-10-20 10:05"));
    assert_at(esc_next_fire(c), CN("2026-10-20 10:15"));
    assert_fires_none(c, CN("2026-10-20 10:14:59"));
    assert_fires(c, CN("2026-10-20 10:15"), {102, CN("2026-10-20 10:15")});
    assert_none(esc_next_fire(c));
    assert_at(esc_due(c), CN("2026-10-20 10:05")); /* still running: the due instant stays known */
    assert_int_equal(c->state, ESC_RUNNING);

    /* the reroute: the dispatcher assigns again -> cycle 1 cancelled, cycle 2 from the new assignment */
    e = event("assign", CN("2026-10-20 10:05:30"), CN("2026-10-20 09:58"), "fault_repair", "major");
    int n = apply(&t, &e, rec);
    assert_int_equal(n, 2);
    assert_int_equal(t.n, 2);
    esc_clock *c1 = clock_of(&t, ESC_ACCEPT, 1), *c2 = clock_of(&t, ESC_ACCEPT, 2);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_rec(rec, n, ESC_EV_CANCELLED, index_of(&t, c1), CN("2026-10-20 10:05:30"));
    assert_rec(rec, n, ESC_EV_ARMED, index_of(&t, c2), ESC_NONE);
    assert_cancelled(c1, CN("2026-10-20 10:05:30"));
    assert_at(c1->breached_ms, CN("2026-10-20 10:05")); /* history stays */
    assert_string_equal(c2->policy_id, "repair-accept");
    assert_at(esc_due(c2), CN("2026-10-20 10:10:30"));
    assert_schedule(c2, {80, CN("2026-10-20 10:09:30")}, {100, CN("2026-10-20 10:10:30")},
                    {101, CN("2026-10-20 10:10:30")}, {102, CN("2026-10-20 10:20:30")});
    esc_ticket_free(&t);

    /* accepted at 10:03 -> met; nothing fires later */
    esc_ticket u = {0};
    e = event("assign", CN("2026-10-20 10:00:00"), CN("2026-10-20 09:58"), "fault_repair", "general");
    assert_int_equal(apply(&u, &e, rec), 1);
    e = event("accept", CN("2026-10-20 10:03"), CN("2026-10-20 09:58"), "fault_repair", "general");
    assert_int_equal(apply(&u, &e, rec), 1);
    assert_rec(rec, 1, ESC_EV_MET, 0, CN("2026-10-20 10:03"));
    c = &u.v[0];
    assert_met(c, CN("2026-10-20 10:03"));
    assert_int_equal(esc_elapsed(c, CN("2026-10-20 12:00")), 3 * MIN_MS);
    assert_fires_none(c, CN("2026-10-20 10:04"));
    assert_fires_none(c, CN("2026-10-20 10:05"));
    assert_fires_none(c, CN("2026-10-20 10:15"));
    assert_fires_none(c, CN("2026-10-21 10:00"));
    assert_none(c->breached_ms);
    /* a second accept changes nothing */
    e = event("accept", CN("2026-10-20 10:04"), CN("2026-10-20 09:58"), "fault_repair", "general");
    assert_int_equal(apply(&u, &e, rec), 0);
    assert_at(c->stopped_ms, CN("2026-10-20 10:03"));
    esc_ticket_free(&u);
}

/* A transfer arms accept with the "transferred" policy (30 min); the assign that follows keeps it. */
static void test_transfer_accept(void **state)
{
    (void)state;
    esc_record rec[REC_CAP];
    esc_ticket t = {0};
    int64_t rx = CN("2026-10-20 09:55");
    esc_event e = event("assign", CN("2026-10-20 10:00"), rx, "fault_repair", "general");
    assert_int_equal(apply(&t, &e, rec), 1);
    assert_string_equal(t.v[0].policy_id, "repair-accept");

    e = event("transfer", CN("2026-10-20 10:02"), rx, "fault_repair", "general");
    e.facts.transferred = true;
    int n = apply(&t, &e, rec);
    assert_int_equal(n, 2);
    assert_int_equal(t.n, 2);
    esc_clock *c1 = clock_of(&t, ESC_ACCEPT, 1), *c2 = clock_of(&t, ESC_ACCEPT, 2);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_rec(rec, n, ESC_EV_CANCELLED, index_of(&t, c1), CN("2026-10-20 10:02"));
    assert_rec(rec, n, ESC_EV_ARMED, index_of(&t, c2), ESC_NONE);
    assert_cancelled(c1, CN("2026-10-20 10:02"));
    assert_string_equal(c2->policy_id, "transfer-accept");
    assert_int_equal(c2->target_ms, 30 * MIN_MS);
    assert_at(c2->started_ms, CN("2026-10-20 10:02"));
    assert_stages(c2, {50, 15 * MIN_MS}, {80, 24 * MIN_MS}, {100, 30 * MIN_MS}, {101, 30 * MIN_MS}, {102, 60 * MIN_MS});

    /* the new unit's dispatcher assigns the transferred ticket: the transfer's clock stays */
    e = event("assign", CN("2026-10-20 10:03"), rx, "fault_repair", "general");
    e.facts.transferred = true;
    assert_int_equal(apply(&t, &e, rec), 0);
    assert_int_equal(t.n, 2);
    c2 = clock_of(&t, ESC_ACCEPT, 2);
    assert_int_equal(c2->state, ESC_RUNNING);
    assert_string_equal(c2->policy_id, "transfer-accept");
    assert_at(c2->started_ms, CN("2026-10-20 10:02"));
    assert_at(esc_due(c2), CN("2026-10-20 10:32"));
    assert_schedule(c2, {50, CN("2026-10-20 10:17")}, {80, CN("2026-10-20 10:26")}, {100, CN("2026-10-20 10:32")},
                    {101, CN("2026-10-20 10:32")}, {102, CN("2026-10-20 11:02")});

    assert_fires(c2, CN("2026-10-20 10:20"), {50, CN("2026-10-20 10:17")});
    e = event("accept", CN("2026-10-20 10:21"), rx, "fault_repair", "general");
    assert_int_equal(apply(&t, &e, rec), 1);
    c2 = clock_of(&t, ESC_ACCEPT, 2);
    assert_rec(rec, 1, ESC_EV_MET, index_of(&t, c2), CN("2026-10-20 10:21"));
    assert_met(c2, CN("2026-10-20 10:21"));
    assert_fires_none(c2, CN("2026-10-20 12:00"));
    assert_none(c2->breached_ms);
    esc_ticket_free(&t);

    /* a consultation has no first-assignment accept policy; its transfer still arms the transfer policy */
    esc_ticket u = {0};
    e = event("transfer", CN("2026-10-20 16:00"), rx, "consultation", "general");
    e.facts.transferred = true;
    assert_int_equal(apply(&u, &e, rec), 1);
    assert_string_equal(u.v[0].policy_id, "transfer-accept");
    assert_int_equal(u.v[0].cycle, 1);
    assert_at(esc_due(&u.v[0]), CN("2026-10-20 16:30"));
    esc_ticket_free(&u);
}

/* Contact a service applicant within 3 working days: end of the 3rd working day after the day of receipt. */
static void test_service_contact_working_days(void **state)
{
    (void)state;
    esc_policy p = seed_policy("service-contact");
    esc_clock c;

    /* Wed 09-30 10:00, the last working day before 国庆节: 10-08, 10-09 and the make-up Saturday 10-10 count.
     * Business time: 6 h left on 09-30 + 3 x 7.5 h = 28.5 h; 50 % = 14.25 h, 80 % = 22.8 h; level 2 = 36 h. */
    assert_true(esc_arm(&p, ESC_FIRST_RESPONSE, 1, CN("2026-09-30 10:00"), &c));
    assert_int_equal(c.kind, ESC_FIRST_RESPONSE);
    assert_int_equal(c.cycle, 1);
    assert_string_equal(c.policy_id, "service-contact");
    assert_ptr_equal(c.cal, g_cn);
    assert_int_equal(c.target_ms, 1710 * MIN_MS);
    assert_stages(&c, {50, 855 * MIN_MS}, {80, 1368 * MIN_MS}, {100, 1710 * MIN_MS}, {101, 1710 * MIN_MS},
                  {102, 2160 * MIN_MS});
    assert_at(esc_due(&c), CN("2026-10-10 17:30"));
    assert_schedule(&c, {50, CN("2026-10-09 09:15")}, {80, CN("2026-10-10 10:18")}, {100, CN("2026-10-10 17:30")},
                    {101, CN("2026-10-10 17:30")}, {102, CN("2026-10-12 17:30")});
    /* nothing is due during the holiday */
    assert_fires_none(&c, CN("2026-10-07 23:59"));
    assert_int_equal(esc_elapsed(&c, CN("2026-10-07 23:59")), 6 * HOUR_MS);

    /* received on Sat 10-03, inside the holiday: 10-08, 10-09, 10-10 -> 22.5 h from 10-08 08:30 */
    assert_true(esc_arm(&p, ESC_FIRST_RESPONSE, 1, CN("2026-10-03 10:00"), &c));
    assert_int_equal(c.target_ms, 1350 * MIN_MS);
    assert_at(esc_instant(&c, 0), CN("2026-10-08 08:30"));
    assert_int_equal(esc_elapsed(&c, CN("2026-10-08 09:00")), 30 * MIN_MS);
    assert_schedule(&c, {50, CN("2026-10-09 13:45")}, {80, CN("2026-10-10 11:30")}, {100, CN("2026-10-10 17:30")},
                    {101, CN("2026-10-10 17:30")}, {102, CN("2026-10-12 17:30")});

    /* Fri 10-16 15:00 across an ordinary weekend: Mon, Tue, Wed -> 2.5 h + 22.5 h = 25 h */
    assert_true(esc_arm(&p, ESC_FIRST_RESPONSE, 1, CN("2026-10-16 15:00"), &c));
    assert_int_equal(c.target_ms, 25 * HOUR_MS);
    assert_schedule(&c, {50, CN("2026-10-20 11:00")}, {80, CN("2026-10-21 11:00")}, {100, CN("2026-10-21 17:30")},
                    {101, CN("2026-10-21 17:30")}, {102, CN("2026-10-22 17:30")});

    /* Tue 10-20 12:30, in the lunch break: the clock starts at 13:30; Wed, Thu, Fri -> 4 h + 22.5 h = 26.5 h */
    assert_true(esc_arm(&p, ESC_FIRST_RESPONSE, 1, CN("2026-10-20 12:30"), &c));
    assert_int_equal(c.target_ms, 1590 * MIN_MS);
    assert_at(esc_instant(&c, 0), CN("2026-10-20 13:30"));
    assert_int_equal(esc_elapsed(&c, CN("2026-10-20 13:15")), 0);
    assert_schedule(&c, {50, CN("2026-10-22 10:15")}, {80, CN("2026-10-23 10:42")}, {100, CN("2026-10-23 17:30")},
                    {101, CN("2026-10-23 17:30")}, {102, CN("2026-10-26 17:30")});

    /* Tue 10-20 19:00, after hours: Tuesday is the day of receipt -> Wed, Thu, Fri; 22.5 h from Wed 08:30 */
    assert_true(esc_arm(&p, ESC_FIRST_RESPONSE, 1, CN("2026-10-20 19:00"), &c));
    assert_int_equal(c.target_ms, 1350 * MIN_MS);
    assert_at(esc_instant(&c, 0), CN("2026-10-21 08:30"));
    assert_schedule(&c, {50, CN("2026-10-22 13:45")}, {80, CN("2026-10-23 11:30")}, {100, CN("2026-10-23 17:30")},
                    {101, CN("2026-10-23 17:30")}, {102, CN("2026-10-26 17:30")});

    /* Tue 10-20 07:00, before hours: the day of receipt is still not counted -> Fri 17:30, 7.5 h + 22.5 h = 30 h;
     * the 50 % warning (15 h) falls exactly on the end of Wednesday's afternoon: 17:30, not Thursday 08:30 */
    assert_true(esc_arm(&p, ESC_FIRST_RESPONSE, 1, CN("2026-10-20 07:00"), &c));
    assert_int_equal(c.target_ms, 30 * HOUR_MS);
    assert_schedule(&c, {50, CN("2026-10-21 17:30")}, {80, CN("2026-10-23 10:00")}, {100, CN("2026-10-23 17:30")},
                    {101, CN("2026-10-23 17:30")}, {102, CN("2026-10-26 17:30")});

    /* Sun 09-20, a make-up working day, 16:00: 1.5 h that day, then Mon, Tue, Wed (09-21..09-23) */
    assert_true(esc_arm(&p, ESC_FIRST_RESPONSE, 1, CN("2026-09-20 16:00"), &c));
    assert_int_equal(c.target_ms, 24 * HOUR_MS);
    assert_at(esc_due(&c), CN("2026-09-23 17:30"));
    /* level 2: Thu 09-24 (the Mid-Autumn holiday starts Fri 09-25) */
    assert_schedule(&c, {50, CN("2026-09-22 11:30")}, {80, CN("2026-09-23 11:12")}, {100, CN("2026-09-23 17:30")},
                    {101, CN("2026-09-23 17:30")}, {102, CN("2026-09-24 17:30")});
}

/* Consultations and suggestions: first response within 3 working days, armed on classify from receipt. */
static void test_consultation_and_suggestion_reply(void **state)
{
    (void)state;
    esc_record rec[REC_CAP];

    /* consultation received Fri 10-16 15:00, classified 15:10: due Wed 10-21 17:30 (see service contact) */
    esc_ticket t = {0};
    int64_t rx = CN("2026-10-16 15:00");
    esc_event e = event("created", rx, rx, "", "");
    assert_int_equal(apply(&t, &e, rec), 0);
    assert_int_equal(t.n, 0);
    e = event("classify", CN("2026-10-16 15:10"), rx, "consultation", "general");
    int n = apply(&t, &e, rec);
    assert_int_equal(n, 2);
    assert_int_equal(t.n, 2);
    esc_clock *fr = clock_of(&t, ESC_FIRST_RESPONSE, 1), *res = clock_of(&t, ESC_RESOLUTION, 1);
    assert_non_null(fr);
    assert_non_null(res);
    assert_rec(rec, n, ESC_EV_ARMED, index_of(&t, fr), ESC_NONE);
    assert_rec(rec, n, ESC_EV_ARMED, index_of(&t, res), ESC_NONE);
    assert_string_equal(fr->policy_id, "consultation-reply");
    assert_ptr_equal(fr->cal, g_cn);
    assert_at(fr->started_ms, rx);
    assert_int_equal(fr->target_ms, 25 * HOUR_MS);
    assert_schedule(fr, {50, CN("2026-10-20 11:00")}, {80, CN("2026-10-21 11:00")}, {100, CN("2026-10-21 17:30")},
                    {101, CN("2026-10-21 17:30")}, {102, CN("2026-10-22 17:30")});
    assert_string_equal(res->policy_id, "general-resolve");
    assert_at(res->started_ms, rx);
    assert_at(esc_due(res), CN("2026-10-17 15:00"));

    /* classified again (re-classification): clocks are armed once per ticket */
    e = event("classify", CN("2026-10-16 15:20"), rx, "consultation", "general");
    assert_int_equal(apply(&t, &e, rec), 0);
    assert_int_equal(t.n, 2);

    /* the 50 % warning fired, then the reply on Tue 10:30 meets the first response only */
    fr = clock_of(&t, ESC_FIRST_RESPONSE, 1);
    assert_fires(fr, CN("2026-10-20 11:00"), {50, CN("2026-10-20 11:00")});
    e = event("reply", CN("2026-10-20 11:30"), rx, "consultation", "general");
    n = apply(&t, &e, rec);
    assert_int_equal(n, 1);
    fr = clock_of(&t, ESC_FIRST_RESPONSE, 1);
    res = clock_of(&t, ESC_RESOLUTION, 1);
    assert_rec(rec, n, ESC_EV_MET, index_of(&t, fr), CN("2026-10-20 11:30"));
    assert_met(fr, CN("2026-10-20 11:30"));
    assert_none(fr->breached_ms);
    assert_fires_none(fr, CN("2026-10-30 00:00"));
    assert_int_equal(res->state, ESC_RUNNING);
    /* a second reply changes nothing */
    e = event("reply", CN("2026-10-20 12:30"), rx, "consultation", "general");
    assert_int_equal(apply(&t, &e, rec), 0);
    esc_ticket_free(&t);

    /* suggestion received Tue 10-20 19:00 (after hours), classified 19:05: Wed, Thu, Fri -> Fri 10-23 17:30;
     * one level only (team lead at the breach). Answered late on Mon 10-26 09:00: met, the breach stays */
    esc_ticket u = {0};
    rx = CN("2026-10-20 19:00");
    e = event("classify", CN("2026-10-20 19:05"), rx, "suggestion", "general");
    assert_int_equal(apply(&u, &e, rec), 2);
    fr = clock_of(&u, ESC_FIRST_RESPONSE, 1);
    assert_non_null(fr);
    assert_string_equal(fr->policy_id, "suggestion-reply");
    assert_at(fr->started_ms, rx);
    assert_stages(fr, {50, 675 * MIN_MS}, {80, 1080 * MIN_MS}, {100, 1350 * MIN_MS}, {101, 1350 * MIN_MS});
    assert_fires(fr, CN("2026-10-24 09:00"), {50, CN("2026-10-22 13:45")}, {80, CN("2026-10-23 11:30")},
                 {100, CN("2026-10-23 17:30")}, {101, CN("2026-10-23 17:30")});
    assert_at(fr->breached_ms, CN("2026-10-23 17:30"));
    e = event("reply", CN("2026-10-26 09:00"), rx, "suggestion", "general");
    n = apply(&u, &e, rec);
    assert_int_equal(n, 1);
    fr = clock_of(&u, ESC_FIRST_RESPONSE, 1);
    assert_rec(rec, n, ESC_EV_MET, index_of(&u, fr), CN("2026-10-26 09:00"));
    assert_met(fr, CN("2026-10-26 09:00"));
    assert_at(fr->breached_ms, CN("2026-10-23 17:30"));
    /* business time elapsed: Wed + Thu + Fri + Mon 08:30-09:00 */
    assert_int_equal(esc_elapsed(fr, CN("2026-10-27 09:00")), 1380 * MIN_MS);
    esc_ticket_free(&u);
}

/* Resolution in 12 h (major) / 24 h (general) of calendar time from receipt, not from the classify time. */
static void test_resolve_major_and_general(void **state)
{
    (void)state;
    esc_record rec[REC_CAP];

    /* the policies' actions: level 1 raises the priority, the last level of major reaches leadership */
    esc_facts f = {.business_type = "fault_repair", .severity = "major", .channel = ""};
    const esc_policy *p = esc_policy_pick(g_pol, g_npol, ESC_RESOLUTION, &f);
    assert_non_null(p);
    assert_string_equal(p->id, "major-resolve");
    assert_int_equal(p->levels[0].action, ESC_RAISE_PRIORITY);
    assert_int_equal(p->levels[0].role, ESC_TEAM_LEAD);
    assert_int_equal(p->levels[2].role, ESC_LEADERSHIP);

    /* major fault received Tue 10:00, classified 10:30: no first-response policy for fault_repair */
    esc_ticket t = {0};
    int64_t rx = CN("2026-10-20 10:00");
    esc_event e = event("classify", CN("2026-10-20 10:30"), rx, "fault_repair", "major");
    assert_int_equal(apply(&t, &e, rec), 1);
    assert_int_equal(t.n, 1);
    esc_clock *c = clock_of(&t, ESC_RESOLUTION, 1);
    assert_non_null(c);
    assert_rec(rec, 1, ESC_EV_ARMED, 0, ESC_NONE);
    assert_string_equal(c->policy_id, "major-resolve");
    assert_null(c->cal);
    assert_int_equal(c->target_ms, 12 * HOUR_MS);
    assert_at(c->started_ms, rx);
    assert_int_equal(esc_elapsed(c, CN("2026-10-20 10:30")), 30 * MIN_MS);
    assert_stages(c, {50, 6 * HOUR_MS}, {80, 576 * MIN_MS}, {100, 12 * HOUR_MS}, {101, 12 * HOUR_MS},
                  {102, 18 * HOUR_MS}, {103, 24 * HOUR_MS});
    assert_at(esc_due(c), CN("2026-10-20 22:00"));
    /* calendar time: the lunch break and the night count */
    assert_fires(c, CN("2026-10-20 16:00"), {50, CN("2026-10-20 16:00")});
    assert_fires(c, CN("2026-10-20 21:59:59"), {80, CN("2026-10-20 19:36")});
    assert_fires(c, CN("2026-10-20 22:00"), {100, CN("2026-10-20 22:00")}, {101, CN("2026-10-20 22:00")});
    assert_at(c->breached_ms, CN("2026-10-20 22:00"));
    assert_fires(c, CN("2026-10-21 04:00"), {102, CN("2026-10-21 04:00")});
    assert_at(esc_next_fire(c), CN("2026-10-21 10:00"));
    /* resolved at 05:00 the next morning: the leadership level never fires */
    e = event("resolve", CN("2026-10-21 05:00"), rx, "fault_repair", "major");
    assert_int_equal(apply(&t, &e, rec), 1);
    c = clock_of(&t, ESC_RESOLUTION, 1);
    assert_rec(rec, 1, ESC_EV_MET, 0, CN("2026-10-21 05:00"));
    assert_met(c, CN("2026-10-21 05:00"));
    assert_fires_none(c, CN("2026-10-21 10:00"));
    esc_ticket_free(&t);

    /* general complaint received Tue 10:00, classified at 14:00 */
    esc_ticket u = {0};
    e = event("classify", CN("2026-10-20 14:00"), rx, "complaint", "general");
    assert_int_equal(apply(&u, &e, rec), 1);
    c = clock_of(&u, ESC_RESOLUTION, 1);
    assert_non_null(c);
    assert_string_equal(c->policy_id, "general-resolve");
    assert_int_equal(c->target_ms, 24 * HOUR_MS);
    assert_at(c->started_ms, rx);
    assert_at(esc_due(c), CN("2026-10-21 10:00"));
    assert_stages(c, {50, 12 * HOUR_MS}, {80, 1152 * MIN_MS}, {100, 24 * HOUR_MS}, {101, 24 * HOUR_MS},
                  {102, 48 * HOUR_MS});
    assert_fires(c, CN("2026-10-22 10:00"), {50, CN("2026-10-20 22:00")}, {80, CN("2026-10-21 05:12")},
                 {100, CN("2026-10-21 10:00")}, {101, CN("2026-10-21 10:00")}, {102, CN("2026-10-22 10:00")});
    esc_ticket_free(&u);

    /* severity not known yet at classify: no resolution policy applies, nothing is armed */
    esc_ticket w = {0};
    e = event("classify", CN("2026-10-20 14:00"), rx, "complaint", "");
    assert_int_equal(apply(&w, &e, rec), 0);
    assert_int_equal(w.n, 0);
    esc_ticket_free(&w);
}

/* A chase (催办) must be answered in 24 h; levels at 24/48/72 h; only the first unanswered chase counts. */
static void test_chase_unanswered(void **state)
{
    (void)state;
    esc_record rec[REC_CAP];
    esc_ticket t = {0};
    int64_t rx = CN("2026-10-14 09:00");
    esc_event e = event("chase", CN("2026-10-16 10:00"), rx, "complaint", "general");
    assert_int_equal(apply(&t, &e, rec), 1);
    esc_clock *c = clock_of(&t, ESC_CHASE_UPDATE, 1);
    assert_non_null(c);
    assert_rec(rec, 1, ESC_EV_ARMED, index_of(&t, c), ESC_NONE);
    assert_string_equal(c->policy_id, "chase-update");
    assert_null(c->cal);
    assert_at(c->started_ms, CN("2026-10-16 10:00"));
    assert_at(esc_due(c), CN("2026-10-17 10:00"));

    /* chased again Friday afternoon: the first chase's clock runs on */
    e = event("chase", CN("2026-10-16 15:00"), rx, "complaint", "general");
    assert_int_equal(apply(&t, &e, rec), 0);
    assert_int_equal(t.n, 1);
    c = clock_of(&t, ESC_CHASE_UPDATE, 1);
    assert_at(c->started_ms, CN("2026-10-16 10:00"));

    assert_fires(c, CN("2026-10-18 10:00"), {50, CN("2026-10-16 22:00")}, {100, CN("2026-10-17 10:00")},
                 {101, CN("2026-10-17 10:00")}, {102, CN("2026-10-18 10:00")});
    assert_at(esc_next_fire(c), CN("2026-10-19 10:00"));
    assert_fires_none(c, CN("2026-10-19 09:59:59"));
    assert_fires(c, CN("2026-10-19 10:00"), {103, CN("2026-10-19 10:00")});
    assert_none(esc_next_fire(c));

    /* the reply meets it */
    e = event("reply", CN("2026-10-19 11:00"), rx, "complaint", "general");
    assert_int_equal(apply(&t, &e, rec), 1);
    c = clock_of(&t, ESC_CHASE_UPDATE, 1);
    assert_rec(rec, 1, ESC_EV_MET, index_of(&t, c), CN("2026-10-19 11:00"));
    assert_met(c, CN("2026-10-19 11:00"));
    assert_at(c->breached_ms, CN("2026-10-17 10:00"));

    /* a new chase after the answer: a new cycle */
    e = event("chase", CN("2026-10-20 09:00"), rx, "complaint", "general");
    assert_int_equal(apply(&t, &e, rec), 1);
    assert_int_equal(t.n, 2);
    c = clock_of(&t, ESC_CHASE_UPDATE, 2);
    assert_non_null(c);
    assert_schedule(c, {50, CN("2026-10-20 21:00")}, {100, CN("2026-10-21 09:00")}, {101, CN("2026-10-21 09:00")},
                    {102, CN("2026-10-22 09:00")}, {103, CN("2026-10-23 09:00")});
    /* answered within the day: met before anything but the warning */
    e = event("reply", CN("2026-10-20 16:00"), rx, "complaint", "general");
    assert_int_equal(apply(&t, &e, rec), 1);
    c = clock_of(&t, ESC_CHASE_UPDATE, 2);
    assert_met(c, CN("2026-10-20 16:00"));
    assert_fires_none(c, CN("2026-10-25 00:00"));
    esc_ticket_free(&t);
}

/* Pause banks the business time; resume moves every remaining instant by exactly the paused business time. */
static void test_pause_resume(void **state)
{
    (void)state;
    /* 4 business hours, warning at 50 %, levels at 4 h and 8 h, on cn-mainland */
    esc_policy p = policy("bm-resolve", ESC_RESOLUTION, "*", "", -1, 240, ESC_UNIT_BUSINESS_MINUTES);
    add_warn(&p, 50);
    add_level(&p, 1, 240, ESC_TEAM_LEAD, ESC_NOTIFY);
    add_level(&p, 2, 480, ESC_DEPARTMENT_HEAD, ESC_NOTIFY);
    esc_clock c;
    assert_true(esc_arm(&p, ESC_RESOLUTION, 1, CN("2026-10-20 09:00"), &c));
    assert_int_equal(c.target_ms, 4 * HOUR_MS);
    assert_stages(&c, {50, 2 * HOUR_MS}, {100, 4 * HOUR_MS}, {101, 4 * HOUR_MS}, {102, 8 * HOUR_MS});
    /* Tue 09:00 + 4 h: 09:00-12:00, 13:30-14:30; + 8 h: Wed 09:30 */
    assert_schedule(&c, {50, CN("2026-10-20 11:00")}, {100, CN("2026-10-20 14:30")}, {101, CN("2026-10-20 14:30")},
                    {102, CN("2026-10-21 09:30")});
    assert_int_equal(esc_elapsed(&c, CN("2026-10-20 09:00")), 0);
    assert_int_equal(esc_elapsed(&c, CN("2026-10-20 12:45")), 3 * HOUR_MS);

    /* paused Tue 10:30 (1.5 h elapsed) */
    assert_false(esc_resume(&c, CN("2026-10-20 10:00"))); /* running: no-op */
    assert_true(esc_pause(&c, CN("2026-10-20 10:30")));
    assert_int_equal(c.state, ESC_PAUSED);
    assert_none(c.running_since_ms);
    assert_int_equal(c.elapsed_ms, 90 * MIN_MS);
    assert_false(esc_pause(&c, CN("2026-10-20 11:00"))); /* paused twice: no-op */
    assert_int_equal(c.elapsed_ms, 90 * MIN_MS);
    assert_none(esc_due(&c));
    assert_none(esc_next_fire(&c));
    assert_none(esc_instant(&c, 0));
    assert_int_equal(esc_elapsed(&c, CN("2026-10-21 09:00")), 90 * MIN_MS);
    assert_fires_none(&c, CN("2026-10-21 09:59"));
    assert_int_equal(c.next_stage, 0);

    /* resumed Wed 10:00: paused business time = 1.5 h (Tue morning) + 4 h (Tue afternoon) + 1.5 h (Wed) = 7 h;
     * 11:00 + 7 h = Wed 10:30; 14:30 + 7 h = Wed 14:00; Wed 09:30 + 7 h = Thu 09:00 */
    assert_true(esc_resume(&c, CN("2026-10-21 10:00")));
    assert_int_equal(c.state, ESC_RUNNING);
    assert_at(c.running_since_ms, CN("2026-10-21 10:00"));
    assert_false(esc_resume(&c, CN("2026-10-21 10:01")));
    assert_at(esc_due(&c), CN("2026-10-21 14:00"));
    assert_at(esc_next_fire(&c), CN("2026-10-21 10:30"));
    assert_int_equal(esc_elapsed(&c, CN("2026-10-21 11:00")), 150 * MIN_MS);
    assert_stages(&c, {50, 2 * HOUR_MS}, {100, 4 * HOUR_MS}, {101, 4 * HOUR_MS}, {102, 8 * HOUR_MS});
    assert_schedule(&c, {50, CN("2026-10-21 10:30")}, {100, CN("2026-10-21 14:00")}, {101, CN("2026-10-21 14:00")},
                    {102, CN("2026-10-22 09:00")});

    /* paused and resumed inside the lunch break: no business time passes, nothing moves */
    assert_true(esc_pause(&c, CN("2026-10-21 12:10")));
    assert_int_equal(c.elapsed_ms, 210 * MIN_MS); /* 1.5 h + Wed 10:00-12:00 */
    assert_true(esc_resume(&c, CN("2026-10-21 13:20")));
    assert_at(esc_due(&c), CN("2026-10-21 14:00"));

    /* stopped while paused is fine; then nothing applies any more */
    assert_true(esc_pause(&c, CN("2026-10-21 13:45")));
    assert_true(esc_stop(&c, CN("2026-10-21 15:00"), true));
    assert_met(&c, CN("2026-10-21 15:00"));
    assert_int_equal(esc_elapsed(&c, CN("2026-10-22 15:00")), 225 * MIN_MS);
    assert_false(esc_pause(&c, CN("2026-10-21 16:00")));
    assert_false(esc_resume(&c, CN("2026-10-21 16:00")));
    assert_false(esc_stop(&c, CN("2026-10-21 16:00"), false));
    assert_int_equal(c.outcome, 1);
    assert_at(c.stopped_ms, CN("2026-10-21 15:00"));
}

/* wait_customer pauses every running clock of the ticket and resume resumes them; stopped ones stay. */
static void test_wait_customer_events(void **state)
{
    (void)state;
    esc_record rec[REC_CAP];
    esc_ticket t = {0};
    int64_t rx = CN("2026-10-20 09:00");
    esc_event e = event("classify", CN("2026-10-20 09:05"), rx, "consultation", "general");
    assert_int_equal(apply(&t, &e, rec), 2);
    e = event("transfer", CN("2026-10-20 09:10"), rx, "consultation", "general");
    e.facts.transferred = true;
    assert_int_equal(apply(&t, &e, rec), 1);
    e = event("accept", CN("2026-10-20 09:15"), rx, "consultation", "general");
    assert_int_equal(apply(&t, &e, rec), 1);
    assert_int_equal(t.n, 3);
    /* first response: Tue 09:00 -> Wed, Thu, Fri: 7 h + 22.5 h = 29.5 h, due Fri 17:30 */
    esc_clock *fr = clock_of(&t, ESC_FIRST_RESPONSE, 1);
    assert_int_equal(fr->target_ms, 1770 * MIN_MS);
    assert_at(esc_due(fr), CN("2026-10-23 17:30"));

    e = event("wait_customer", CN("2026-10-20 10:30"), rx, "consultation", "general");
    int n = apply(&t, &e, rec);
    assert_int_equal(n, 2);
    fr = clock_of(&t, ESC_FIRST_RESPONSE, 1);
    esc_clock *res = clock_of(&t, ESC_RESOLUTION, 1), *acc = clock_of(&t, ESC_ACCEPT, 1);
    assert_rec(rec, n, ESC_EV_PAUSED, index_of(&t, fr), CN("2026-10-20 10:30"));
    assert_rec(rec, n, ESC_EV_PAUSED, index_of(&t, res), CN("2026-10-20 10:30"));
    assert_int_equal(fr->state, ESC_PAUSED);
    assert_int_equal(res->state, ESC_PAUSED);
    assert_int_equal(acc->state, ESC_STOPPED);
    assert_int_equal(fr->elapsed_ms, 90 * MIN_MS);
    assert_int_equal(res->elapsed_ms, 90 * MIN_MS);
    /* waiting twice: nothing more */
    e = event("wait_customer", CN("2026-10-20 11:00"), rx, "consultation", "general");
    assert_int_equal(apply(&t, &e, rec), 0);

    e = event("resume", CN("2026-10-21 10:00"), rx, "consultation", "general");
    n = apply(&t, &e, rec);
    assert_int_equal(n, 2);
    fr = clock_of(&t, ESC_FIRST_RESPONSE, 1);
    res = clock_of(&t, ESC_RESOLUTION, 1);
    acc = clock_of(&t, ESC_ACCEPT, 1);
    assert_rec(rec, n, ESC_EV_RESUMED, index_of(&t, fr), CN("2026-10-21 10:00"));
    assert_rec(rec, n, ESC_EV_RESUMED, index_of(&t, res), CN("2026-10-21 10:00"));
    assert_int_equal(acc->state, ESC_STOPPED);
    /* business: paused 7 h -> Fri 17:30 + 7 h = Mon 10-26 17:00 (08:30-12:00, 13:30-17:00) */
    assert_at(esc_due(fr), CN("2026-10-26 17:00"));
    assert_schedule(fr, {50, CN("2026-10-22 17:15")}, {80, CN("2026-10-26 09:36")}, {100, CN("2026-10-26 17:00")},
                    {101, CN("2026-10-26 17:00")}, {102, CN("2026-10-27 17:00")});
    /* calendar time: paused 23.5 h -> Wed 09:00 + 23.5 h = Thu 08:30 */
    assert_at(esc_due(res), CN("2026-10-22 08:30"));
    e = event("resume", CN("2026-10-21 10:05"), rx, "consultation", "general");
    assert_int_equal(apply(&t, &e, rec), 0);
    esc_ticket_free(&t);
}

/* Reopen arms a new resolution cycle from the reopen with the full target; cycle 1 stays as it ended. */
static void test_reopen(void **state)
{
    (void)state;
    esc_record rec[REC_CAP];
    esc_ticket t = {0};
    int64_t rx = CN("2026-10-20 09:00");
    esc_event e = event("classify", CN("2026-10-20 09:05"), rx, "complaint", "general");
    assert_int_equal(apply(&t, &e, rec), 1);
    e = event("resolve", CN("2026-10-20 15:00"), rx, "complaint", "general");
    assert_int_equal(apply(&t, &e, rec), 1);
    assert_rec(rec, 1, ESC_EV_MET, 0, CN("2026-10-20 15:00"));
    e = event("close", CN("2026-10-20 16:00"), rx, "complaint", "general");
    assert_int_equal(apply(&t, &e, rec), 0); /* nothing still going */

    e = event("reopen", CN("2026-10-22 10:00"), rx, "complaint", "general");
    int n = apply(&t, &e, rec);
    assert_int_equal(n, 1);
    assert_int_equal(t.n, 2);
    esc_clock *c1 = clock_of(&t, ESC_RESOLUTION, 1), *c2 = clock_of(&t, ESC_RESOLUTION, 2);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_rec(rec, n, ESC_EV_ARMED, index_of(&t, c2), ESC_NONE);
    assert_met(c1, CN("2026-10-20 15:00"));
    assert_int_equal(esc_elapsed(c1, CN("2026-10-22 10:00")), 6 * HOUR_MS);
    assert_string_equal(c2->policy_id, "general-resolve");
    assert_int_equal(c2->state, ESC_RUNNING);
    assert_at(c2->started_ms, CN("2026-10-22 10:00"));
    assert_int_equal(c2->target_ms, 24 * HOUR_MS);
    assert_int_equal(c2->elapsed_ms, 0);
    assert_at(esc_due(c2), CN("2026-10-23 10:00"));
    assert_fires(c2, CN("2026-10-23 10:00"), {50, CN("2026-10-22 22:00")}, {80, CN("2026-10-23 05:12")},
                 {100, CN("2026-10-23 10:00")}, {101, CN("2026-10-23 10:00")});
    assert_fires_none(c1, CN("2026-10-30 00:00"));
    /* resolved again: cycle 2 met, cycle 1 untouched */
    e = event("resolve", CN("2026-10-23 11:00"), rx, "complaint", "general");
    assert_int_equal(apply(&t, &e, rec), 1);
    c1 = clock_of(&t, ESC_RESOLUTION, 1);
    c2 = clock_of(&t, ESC_RESOLUTION, 2);
    assert_rec(rec, 1, ESC_EV_MET, index_of(&t, c2), CN("2026-10-23 11:00"));
    assert_met(c2, CN("2026-10-23 11:00"));
    assert_at(c2->breached_ms, CN("2026-10-23 10:00"));
    assert_met(c1, CN("2026-10-20 15:00"));
    assert_none(c1->breached_ms);
    esc_ticket_free(&t);
}

/* A clock keeps the stages snapshotted at arming; a policy change applies to clocks armed after it. */
static void test_policy_change(void **state)
{
    (void)state;
    esc_policy p = seed_policy("general-resolve");
    esc_clock old, fresh;
    assert_true(esc_arm(&p, ESC_RESOLUTION, 1, CN("2026-10-20 09:00"), &old));
    /* the operator shortens the target to 8 h, warnings at 75 %, one level at 10 h */
    p.target = 8 * 60;
    p.nwarn = 0;
    add_warn(&p, 75);
    p.nlevels = 0;
    add_level(&p, 1, 10 * 60, ESC_DEPARTMENT_HEAD, ESC_NOTIFY);
    assert_int_equal(old.target_ms, 24 * HOUR_MS);
    assert_at(esc_due(&old), CN("2026-10-21 09:00"));
    assert_schedule(&old, {50, CN("2026-10-20 21:00")}, {80, CN("2026-10-21 04:12")}, {100, CN("2026-10-21 09:00")},
                    {101, CN("2026-10-21 09:00")}, {102, CN("2026-10-22 09:00")});
    assert_true(esc_arm(&p, ESC_RESOLUTION, 1, CN("2026-10-20 10:00"), &fresh));
    assert_int_equal(fresh.target_ms, 8 * HOUR_MS);
    assert_schedule(&fresh, {75, CN("2026-10-20 16:00")}, {100, CN("2026-10-20 18:00")}, {101, CN("2026-10-20 20:00")});

    /* the same through esc_apply: a clock armed before the change keeps its stages */
    esc_record rec[REC_CAP];
    esc_ticket t = {0};
    int64_t rx = CN("2026-10-20 09:00");
    esc_event e = event("classify", rx, rx, "complaint", "general");
    assert_int_equal(apply(&t, &e, rec), 1);
    esc_policy changed[8];
    memcpy(changed, g_pol, sizeof changed);
    assert_string_equal(changed[6].id, "general-resolve");
    changed[6] = p;
    snprintf(changed[6].id, sizeof changed[6].id, "general-resolve");
    assert_at(esc_due(&t.v[0]), CN("2026-10-21 09:00"));
    e = event("resolve", CN("2026-10-20 15:00"), rx, "complaint", "general");
    assert_int_equal(esc_apply(&t, &e, changed, 8, rec, REC_CAP), 1);
    e = event("reopen", CN("2026-10-22 10:00"), rx, "complaint", "general");
    assert_int_equal(esc_apply(&t, &e, changed, 8, rec, REC_CAP), 1);
    esc_clock *c2 = clock_of(&t, ESC_RESOLUTION, 2);
    assert_non_null(c2);
    assert_int_equal(c2->target_ms, 8 * HOUR_MS);
    assert_at(esc_due(c2), CN("2026-10-22 18:00"));
    esc_clock *c1 = clock_of(&t, ESC_RESOLUTION, 1);
    assert_int_equal(c1->target_ms, 24 * HOUR_MS);
    assert_stages(c1, {50, 12 * HOUR_MS}, {80, 1152 * MIN_MS}, {100, 24 * HOUR_MS}, {101, 24 * HOUR_MS},
                  {102, 48 * HOUR_MS});
    esc_ticket_free(&t);
}

/* esc_fire: every passed stage once, in order, at its exact instant; the breach is recorded once. */
static void test_fire_idempotent(void **state)
{
    (void)state;
    esc_policy p = seed_policy("repair-accept");
    esc_clock c;
    assert_true(esc_arm(&p, ESC_ACCEPT, 1, CN("2026-10-20 10:00"), &c));
    /* the timer was late by two hours */
    assert_fires(&c, CN("2026-10-20 12:00"), {80, CN("2026-10-20 10:04")}, {100, CN("2026-10-20 10:05")},
                 {101, CN("2026-10-20 10:05")}, {102, CN("2026-10-20 10:15")});
    assert_int_equal(c.next_stage, 4);
    assert_at(c.breached_ms, CN("2026-10-20 10:05"));
    assert_fires_none(&c, CN("2026-10-20 12:00"));
    assert_fires_none(&c, CN("2026-10-20 13:00"));
    assert_at(c.breached_ms, CN("2026-10-20 10:05"));
    assert_none(esc_next_fire(&c));

    /* fired in pieces: the same instants, the breach once */
    assert_true(esc_arm(&p, ESC_ACCEPT, 1, CN("2026-10-20 10:00"), &c));
    assert_fires(&c, CN("2026-10-20 10:05"), {80, CN("2026-10-20 10:04")}, {100, CN("2026-10-20 10:05")},
                 {101, CN("2026-10-20 10:05")});
    assert_fires_none(&c, CN("2026-10-20 10:05"));
    assert_fires_none(&c, CN("2026-10-20 10:04")); /* a clock going backwards fires nothing again */
    assert_fires(&c, CN("2026-10-20 10:20"), {102, CN("2026-10-20 10:15")});
    assert_at(c.breached_ms, CN("2026-10-20 10:05"));

    /* a paused clock fires nothing; after the resume its stages fire at the moved instants */
    assert_true(esc_arm(&p, ESC_ACCEPT, 1, CN("2026-10-20 10:00"), &c));
    assert_true(esc_pause(&c, CN("2026-10-20 10:02")));
    assert_fires_none(&c, CN("2026-10-20 11:00"));
    assert_true(esc_resume(&c, CN("2026-10-20 11:00")));
    assert_fires(&c, CN("2026-10-20 11:03"), {80, CN("2026-10-20 11:02")}, {100, CN("2026-10-20 11:03")},
                 {101, CN("2026-10-20 11:03")});
    assert_at(c.breached_ms, CN("2026-10-20 11:03"));
    /* stopped (cancelled): the last level never fires */
    assert_true(esc_stop(&c, CN("2026-10-20 11:05"), false));
    assert_cancelled(&c, CN("2026-10-20 11:05"));
    assert_fires_none(&c, CN("2026-10-20 12:00"));
}

/* esc_policy_pick: the most specific matching policy of the kind; ties go to the smaller id. */
static void test_policy_pick(void **state)
{
    (void)state;
    esc_facts f = {.business_type = "fault_repair", .severity = "major", .channel = "95598"};
    const esc_policy *p;

    /* the defaults */
    f.transferred = false;
    p = esc_policy_pick(g_pol, g_npol, ESC_ACCEPT, &f);
    assert_non_null(p);
    assert_string_equal(p->id, "repair-accept");
    f.transferred = true;
    p = esc_policy_pick(g_pol, g_npol, ESC_ACCEPT, &f);
    assert_non_null(p);
    assert_string_equal(p->id, "transfer-accept");
    f.business_type = "consultation";
    f.transferred = false;
    assert_null(esc_policy_pick(g_pol, g_npol, ESC_ACCEPT, &f));
    p = esc_policy_pick(g_pol, g_npol, ESC_FIRST_RESPONSE, &f);
    assert_non_null(p);
    assert_string_equal(p->id, "consultation-reply");
    f.business_type = "service_application";
    assert_string_equal(esc_policy_pick(g_pol, g_npol, ESC_FIRST_RESPONSE, &f)->id, "service-contact");
    f.business_type = "suggestion";
    assert_string_equal(esc_policy_pick(g_pol, g_npol, ESC_FIRST_RESPONSE, &f)->id, "suggestion-reply");
    f.business_type = "fault_repair";
    assert_null(esc_policy_pick(g_pol, g_npol, ESC_FIRST_RESPONSE, &f));
    assert_string_equal(esc_policy_pick(g_pol, g_npol, ESC_RESOLUTION, &f)->id, "major-resolve");
    f.severity = "general";
    assert_string_equal(esc_policy_pick(g_pol, g_npol, ESC_RESOLUTION, &f)->id, "general-resolve");
    f.severity = "";
    assert_null(esc_policy_pick(g_pol, g_npol, ESC_RESOLUTION, &f));
    assert_string_equal(esc_policy_pick(g_pol, g_npol, ESC_CHASE_UPDATE, &f)->id, "chase-update");
    assert_null(esc_policy_pick(g_pol, 0, ESC_CHASE_UPDATE, &f));

    /* specificity: business type 8, severity 4, channel 2, tier 1, transferred 1 */
    esc_policy v[9];
    v[0] = policy("any", ESC_RESOLUTION, "*", "", -1, 60, ESC_UNIT_MINUTES);
    v[1] = policy("sev", ESC_RESOLUTION, "*", "major", -1, 60, ESC_UNIT_MINUTES);
    v[2] = policy("sev-chan-tier", ESC_RESOLUTION, "*", "major", -1, 60, ESC_UNIT_MINUTES);
    snprintf(v[2].channel, sizeof v[2].channel, "95598");
    snprintf(v[2].tier, sizeof v[2].tier, "vip");
    v[3] = policy("type", ESC_RESOLUTION, "fault_repair", "", -1, 60, ESC_UNIT_MINUTES);
    v[4] = policy("chan", ESC_RESOLUTION, "*", "", -1, 60, ESC_UNIT_MINUTES);
    snprintf(v[4].channel, sizeof v[4].channel, "95598");
    v[5] = policy("type-accept", ESC_ACCEPT, "fault_repair", "major", -1, 60, ESC_UNIT_MINUTES);
    v[6] = policy("std", ESC_RESOLUTION, "*", "", -1, 60, ESC_UNIT_MINUTES);
    snprintf(v[6].tier, sizeof v[6].tier, "standard");
    v[7] = policy("other-type", ESC_RESOLUTION, "consultation", "major", -1, 60, ESC_UNIT_MINUTES);
    v[8] = policy("sev-general", ESC_RESOLUTION, "*", "general", -1, 60, ESC_UNIT_MINUTES);

    esc_facts g = {.business_type = "fault_repair", .severity = "major", .channel = "95598", .vip = true};
    /* type (8) beats severity + channel + tier (7), which beats severity (4) */
    assert_string_equal(esc_policy_pick(v, 9, ESC_RESOLUTION, &g)->id, "type");
    v[3].business_type[0] = 'X'; /* no longer matches */
    assert_string_equal(esc_policy_pick(v, 9, ESC_RESOLUTION, &g)->id, "sev-chan-tier");
    /* not a VIP: sev-chan-tier and std are out of play/in play; severity (4) beats channel (2), tier (1) */
    g.vip = false;
    assert_string_equal(esc_policy_pick(v, 9, ESC_RESOLUTION, &g)->id, "sev");
    /* another channel, unknown severity: standard tier (1) beats the catch-all (0) */
    g.channel = "web";
    g.severity = "";
    assert_string_equal(esc_policy_pick(v, 9, ESC_RESOLUTION, &g)->id, "std");
    g.vip = true;
    assert_string_equal(esc_policy_pick(v, 9, ESC_RESOLUTION, &g)->id, "any");
    /* channel (2) beats tier (1) */
    g.vip = false;
    g.channel = "95598";
    assert_string_equal(esc_policy_pick(v, 9, ESC_RESOLUTION, &g)->id, "chan");
    /* only the kind asked for */
    g.severity = "major";
    assert_string_equal(esc_policy_pick(v, 9, ESC_ACCEPT, &g)->id, "type-accept");
    assert_null(esc_policy_pick(v, 9, ESC_FIRST_RESPONSE, &g));
    /* only the policies passed count */
    assert_string_equal(esc_policy_pick(v, 1, ESC_RESOLUTION, &g)->id, "any");
    assert_null(esc_policy_pick(v + 5, 1, ESC_RESOLUTION, &g));

    /* transferred given (1): for a transfer, "transferred = true" beats "any"; not for a first assignment */
    esc_policy a[4];
    a[0] = policy("acc-any", ESC_ACCEPT, "*", "", -1, 60, ESC_UNIT_MINUTES);
    a[1] = policy("acc-first", ESC_ACCEPT, "*", "", 0, 60, ESC_UNIT_MINUTES);
    a[2] = policy("acc-transfer", ESC_ACCEPT, "*", "", 1, 60, ESC_UNIT_MINUTES);
    a[3] = policy("acc-sev", ESC_ACCEPT, "*", "general", -1, 60, ESC_UNIT_MINUTES);
    esc_facts h = {.business_type = "complaint", .severity = "major", .channel = "", .transferred = true};
    assert_string_equal(esc_policy_pick(a, 4, ESC_ACCEPT, &h)->id, "acc-transfer");
    h.transferred = false;
    assert_string_equal(esc_policy_pick(a, 4, ESC_ACCEPT, &h)->id, "acc-first");
    assert_string_equal(esc_policy_pick(a, 1, ESC_ACCEPT, &h)->id, "acc-any");
    h.transferred = true;
    assert_string_equal(esc_policy_pick(a, 2, ESC_ACCEPT, &h)->id, "acc-any");
    /* severity (4) beats transferred (1) */
    h.severity = "general";
    assert_string_equal(esc_policy_pick(a, 4, ESC_ACCEPT, &h)->id, "acc-sev");

    /* ties go to the smaller id, wherever it sits in the array */
    esc_policy tie[3];
    tie[0] = policy("tie-b", ESC_CHASE_UPDATE, "*", "major", -1, 60, ESC_UNIT_MINUTES);
    tie[1] = policy("tie-a", ESC_CHASE_UPDATE, "*", "major", -1, 60, ESC_UNIT_MINUTES);
    tie[2] = policy("tie-c", ESC_CHASE_UPDATE, "*", "major", -1, 60, ESC_UNIT_MINUTES);
    h.severity = "major";
    assert_string_equal(esc_policy_pick(tie, 3, ESC_CHASE_UPDATE, &h)->id, "tie-a");
    esc_policy tmp = tie[0];
    tie[0] = tie[1];
    tie[1] = tmp;
    assert_string_equal(esc_policy_pick(tie, 3, ESC_CHASE_UPDATE, &h)->id, "tie-a");
    /* severity + tier (5) vs severity + channel (6): the channel wins, regardless of id order */
    snprintf(tie[0].tier, sizeof tie[0].tier, "standard");    /* tie-a: 4 + 1 */
    snprintf(tie[2].channel, sizeof tie[2].channel, "12345"); /* tie-c: 4 + 2 */
    h.channel = "12345";
    h.vip = false;
    assert_string_equal(esc_policy_pick(tie, 3, ESC_CHASE_UPDATE, &h)->id, "tie-c");
}

/* Business minutes and working days on New York calendars across the spring-forward day (2026-03-08). */
static void test_dst_new_york(void **state)
{
    (void)state;
    char err[256] = "";
    static const char ny24[] =
        "{\"id\": \"ny-24x7\", \"time_zone\": \"America/New_York\", \"week\": {\"mon\": [\"00:00-24:00\"], "
        "\"tue\": [\"00:00-24:00\"], \"wed\": [\"00:00-24:00\"], \"thu\": [\"00:00-24:00\"], \"fri\": "
        "[\"00:00-24:00\"], \"sat\": [\"00:00-24:00\"], \"sun\": [\"00:00-24:00\"]}}";
    rd_calendar *all = rd_calendar_parse(ny24, strlen(ny24), err, sizeof err);
    if (all == NULL)
        fail_msg("%s", err);

    /* 24/7 in New York: 24 business hours from Sat 12:00 EST are 24 real hours -> Sun 13:00 EDT (not 12:00) */
    esc_policy p = policy("ny-bm", ESC_RESOLUTION, "*", "", -1, 24 * 60, ESC_UNIT_BUSINESS_MINUTES);
    p.cal = all;
    add_warn(&p, 50);
    add_level(&p, 1, 24 * 60, ESC_TEAM_LEAD, ESC_NOTIFY);
    add_level(&p, 2, 48 * 60, ESC_DEPARTMENT_HEAD, ESC_NOTIFY);
    esc_clock c;
    assert_true(esc_arm(&p, ESC_RESOLUTION, 1, NY("2026-03-07 12:00"), &c));
    assert_int_equal(c.target_ms, 24 * HOUR_MS);
    assert_at_ny(NY("2026-03-07 12:00"), INT64_C(1772902800000)); /* 17:00Z: the zone is right */
    assert_at_ny(esc_due(&c), NY("2026-03-08 13:00"));
    assert_at_ny(esc_due(&c), INT64_C(1772989200000)); /* Sun 17:00Z */
    assert_schedule_ny(&c, {50, NY("2026-03-08 00:00")}, {100, NY("2026-03-08 13:00")}, {101, NY("2026-03-08 13:00")},
                       {102, NY("2026-03-09 13:00")});

    /* us-ny office hours (09:00-17:00): Fri 15:00 EST + 10 business hours = Fri 2 h + Mon 09:00-17:00 EDT */
    esc_policy q = policy("ny-office", ESC_RESOLUTION, "*", "", -1, 600, ESC_UNIT_BUSINESS_MINUTES);
    q.cal = g_ny;
    add_warn(&q, 50);
    add_level(&q, 1, 600, ESC_TEAM_LEAD, ESC_NOTIFY);
    assert_true(esc_arm(&q, ESC_RESOLUTION, 1, NY("2026-03-06 15:00"), &c));
    assert_at_ny(esc_due(&c), NY("2026-03-09 17:00"));
    assert_at_ny(esc_due(&c), INT64_C(1773090000000)); /* Mon 21:00Z */
    assert_schedule_ny(&c, {50, NY("2026-03-09 12:00")}, {100, NY("2026-03-09 17:00")}, {101, NY("2026-03-09 17:00")});
    /* paused Fri 16:00 EST (1 h elapsed), resumed Mon 10:00 EDT: 2 business hours paused -> Tue 11:00 EDT */
    assert_true(esc_pause(&c, NY("2026-03-06 16:00")));
    assert_int_equal(c.elapsed_ms, HOUR_MS);
    assert_true(esc_resume(&c, NY("2026-03-09 10:00")));
    assert_at_ny(esc_due(&c), NY("2026-03-10 11:00"));
    assert_schedule_ny(&c, {50, NY("2026-03-09 14:00")}, {100, NY("2026-03-10 11:00")}, {101, NY("2026-03-10 11:00")});

    /* working days on us-ny: Fri 15:00 EST, 1 working day -> end of Monday 17:00 EDT; 2 h + 8 h */
    esc_policy w = policy("ny-wd", ESC_FIRST_RESPONSE, "*", "", -1, 1, ESC_UNIT_WORKING_DAYS);
    w.cal = g_ny;
    add_warn(&w, 50);
    add_level(&w, 1, 2, ESC_TEAM_LEAD, ESC_NOTIFY);
    assert_true(esc_arm(&w, ESC_FIRST_RESPONSE, 1, NY("2026-03-06 15:00"), &c));
    assert_int_equal(c.target_ms, 10 * HOUR_MS);
    assert_schedule_ny(&c, {50, NY("2026-03-09 12:00")}, {100, NY("2026-03-09 17:00")}, {101, NY("2026-03-10 17:00")});
    /* and across the fall-back weekend (Sun 2026-11-01, 25 hours): Fri 10-30 15:00 EDT -> Mon 11-02 17:00 EST */
    assert_true(esc_arm(&w, ESC_FIRST_RESPONSE, 1, NY("2026-10-30 15:00"), &c));
    assert_int_equal(c.target_ms, 10 * HOUR_MS);
    assert_at_ny(esc_due(&c), INT64_C(1793656800000)); /* Mon 22:00Z */
    assert_schedule_ny(&c, {50, NY("2026-11-02 12:00")}, {100, NY("2026-11-02 17:00")}, {101, NY("2026-11-03 17:00")});
    /* 24/7 across the fall-back day: 24 business hours from Sat 12:00 EDT are 24 real hours -> Sun 11:00 EST */
    assert_true(esc_arm(&p, ESC_RESOLUTION, 1, NY("2026-10-31 12:00"), &c));
    assert_at_ny(esc_due(&c), NY("2026-11-01 11:00"));
    rd_calendar_free(all);
}

/* The rest of the history: resolve meets / cancels, close cancels everything, return cancels accept. */
static void test_history_events(void **state)
{
    (void)state;
    esc_record rec[REC_CAP];
    int64_t rx = CN("2026-10-20 09:00");

    /* resolve: first response, resolution and chase met; accept cancelled */
    esc_ticket t = {0};
    esc_event e = event("classify", CN("2026-10-20 09:05"), rx, "consultation", "general");
    assert_int_equal(apply(&t, &e, rec), 2);
    e = event("transfer", CN("2026-10-20 09:10"), rx, "consultation", "general");
    e.facts.transferred = true;
    assert_int_equal(apply(&t, &e, rec), 1);
    e = event("chase", CN("2026-10-20 09:20"), rx, "consultation", "general");
    assert_int_equal(apply(&t, &e, rec), 1);
    assert_int_equal(t.n, 4);
    for (int i = 0; i < t.n; i++)
        t.dirty[i] = false; /* as if stored */
    e = event("return_visit", CN("2026-10-20 09:25"), rx, "consultation", "general");
    assert_int_equal(apply(&t, &e, rec), 0);
    for (int i = 0; i < t.n; i++)
        assert_false(t.dirty[i]);
    e = event("resolve", CN("2026-10-20 09:30"), rx, "consultation", "general");
    int n = apply(&t, &e, rec);
    assert_int_equal(n, 4);
    int64_t at = CN("2026-10-20 09:30");
    esc_clock *fr = clock_of(&t, ESC_FIRST_RESPONSE, 1), *res = clock_of(&t, ESC_RESOLUTION, 1);
    esc_clock *acc = clock_of(&t, ESC_ACCEPT, 1), *ch = clock_of(&t, ESC_CHASE_UPDATE, 1);
    assert_rec(rec, n, ESC_EV_MET, index_of(&t, fr), at);
    assert_rec(rec, n, ESC_EV_MET, index_of(&t, res), at);
    assert_rec(rec, n, ESC_EV_MET, index_of(&t, ch), at);
    assert_rec(rec, n, ESC_EV_CANCELLED, index_of(&t, acc), at);
    assert_met(fr, at);
    assert_met(res, at);
    assert_met(ch, at);
    assert_cancelled(acc, at);
    for (int i = 0; i < t.n; i++)
        assert_true(t.dirty[i]);
    esc_ticket_free(&t);

    /* close: everything still going cancelled, paused clocks included; the met accept stays met */
    esc_ticket u = {0};
    e = event("classify", CN("2026-10-20 09:05"), rx, "consultation", "general");
    assert_int_equal(apply(&u, &e, rec), 2);
    e = event("transfer", CN("2026-10-20 09:10"), rx, "consultation", "general");
    e.facts.transferred = true;
    assert_int_equal(apply(&u, &e, rec), 1);
    e = event("accept", CN("2026-10-20 09:20"), rx, "consultation", "general");
    assert_int_equal(apply(&u, &e, rec), 1);
    e = event("wait_customer", CN("2026-10-20 10:00"), rx, "consultation", "general");
    assert_int_equal(apply(&u, &e, rec), 2);
    e = event("chase", CN("2026-10-20 10:10"), rx, "consultation", "general");
    assert_int_equal(apply(&u, &e, rec), 1);
    assert_int_equal(u.n, 4);
    e = event("close", CN("2026-10-20 11:00"), rx, "consultation", "general");
    n = apply(&u, &e, rec);
    assert_int_equal(n, 3);
    at = CN("2026-10-20 11:00");
    fr = clock_of(&u, ESC_FIRST_RESPONSE, 1);
    res = clock_of(&u, ESC_RESOLUTION, 1);
    ch = clock_of(&u, ESC_CHASE_UPDATE, 1);
    acc = clock_of(&u, ESC_ACCEPT, 1);
    assert_rec(rec, n, ESC_EV_CANCELLED, index_of(&u, fr), at);
    assert_rec(rec, n, ESC_EV_CANCELLED, index_of(&u, res), at);
    assert_rec(rec, n, ESC_EV_CANCELLED, index_of(&u, ch), at);
    assert_cancelled(fr, at);
    assert_cancelled(res, at);
    assert_cancelled(ch, at);
    assert_met(acc, CN("2026-10-20 09:20"));
    esc_ticket_free(&u);

    /* return (退单): the accept clock is cancelled; the next assignment arms cycle 2 */
    esc_ticket w = {0};
    e = event("assign", CN("2026-10-20 10:00"), rx, "fault_repair", "general");
    assert_int_equal(apply(&w, &e, rec), 1);
    e = event("return", CN("2026-10-20 10:02"), rx, "fault_repair", "general");
    assert_int_equal(apply(&w, &e, rec), 1);
    assert_rec(rec, 1, ESC_EV_CANCELLED, 0, CN("2026-10-20 10:02"));
    assert_cancelled(&w.v[0], CN("2026-10-20 10:02"));
    e = event("assign", CN("2026-10-20 10:30"), rx, "fault_repair", "general");
    assert_int_equal(apply(&w, &e, rec), 1);
    esc_clock *c2 = clock_of(&w, ESC_ACCEPT, 2);
    assert_non_null(c2);
    assert_at(esc_due(c2), CN("2026-10-20 10:35"));
    esc_ticket_free(&w);

    /* too little room for the records: -1 */
    esc_ticket x = {0};
    e = event("classify", CN("2026-10-20 09:05"), rx, "consultation", "general");
    assert_int_equal(esc_apply(&x, &e, g_pol, g_npol, rec, 1), -1);
    esc_ticket_free(&x);
}

/* An assign after a transfer keeps the transfer's clock even when the policy that armed it is a catch-all. */
static void test_transfer_clock_kept_catch_all(void **state)
{
    (void)state;
    /* a deployment without a transferred-only accept policy: a catch-all accept policy of 20 minutes */
    esc_policy pol[8];
    memcpy(pol, g_pol, sizeof pol);
    assert_string_equal(pol[1].id, "transfer-accept");
    pol[1] = policy("accept-any", ESC_ACCEPT, "*", "", -1, 20, ESC_UNIT_MINUTES);
    esc_record rec[REC_CAP];
    esc_ticket t = {0};
    int64_t rx = CN("2026-10-20 09:55");
    esc_event e = event("assign", CN("2026-10-20 10:00"), rx, "fault_repair", "general");
    assert_int_equal(esc_apply(&t, &e, pol, 8, rec, REC_CAP), 1);
    assert_string_equal(t.v[0].policy_id, "repair-accept");
    e = event("transfer", CN("2026-10-20 10:02"), rx, "fault_repair", "general");
    e.facts.transferred = true;
    assert_int_equal(esc_apply(&t, &e, pol, 8, rec, REC_CAP), 2);
    esc_clock *c2 = clock_of(&t, ESC_ACCEPT, 2);
    assert_non_null(c2);
    assert_string_equal(c2->policy_id, "accept-any"); /* the policy picked for a transfer */
    assert_at(esc_due(c2), CN("2026-10-20 10:22"));
    /* the new unit assigns: the running accept clock was armed by a transfer -> unchanged */
    e = event("assign", CN("2026-10-20 10:03"), rx, "fault_repair", "general");
    e.facts.transferred = true;
    assert_int_equal(esc_apply(&t, &e, pol, 8, rec, REC_CAP), 0);
    assert_int_equal(t.n, 2);
    c2 = clock_of(&t, ESC_ACCEPT, 2);
    assert_int_equal(c2->state, ESC_RUNNING);
    assert_at(esc_due(c2), CN("2026-10-20 10:22"));
    esc_ticket_free(&t);
}

/* An assign after a transfer keeps the transfer's clock even when its policy was deactivated meanwhile. */
static void test_transfer_clock_kept_policy_gone(void **state)
{
    (void)state;
    esc_record rec[REC_CAP];
    esc_ticket t = {0};
    int64_t rx = CN("2026-10-20 09:55");
    esc_event e = event("transfer", CN("2026-10-20 10:02"), rx, "fault_repair", "general");
    e.facts.transferred = true;
    assert_int_equal(apply(&t, &e, rec), 1);
    assert_string_equal(t.v[0].policy_id, "transfer-accept");
    /* transfer-accept is deactivated: only the active policies are passed from now on */
    esc_policy active[7];
    int n = 0;
    for (int i = 0; i < g_npol; i++)
        if (strcmp(g_pol[i].id, "transfer-accept") != 0)
            active[n++] = g_pol[i];
    assert_int_equal(n, 7);
    e = event("assign", CN("2026-10-20 10:03"), rx, "fault_repair", "general");
    e.facts.transferred = true;
    assert_int_equal(esc_apply(&t, &e, active, n, rec, REC_CAP), 0);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.v[0].state, ESC_RUNNING);
    assert_string_equal(t.v[0].policy_id, "transfer-accept");
    assert_at(esc_due(&t.v[0]), CN("2026-10-20 10:32"));
    esc_ticket_free(&t);
}

/* esc_arm refuses a calendar without working time; a push gives a zeroed, dirty clock. */
static void test_arm_edge_cases(void **state)
{
    (void)state;
    static const char never[] = "{\"id\": \"never\", \"time_zone\": \"Asia/Shanghai\", \"week\": {\"mon\": [], "
                                "\"tue\": [], \"wed\": [], \"thu\": [], \"fri\": [], \"sat\": [], \"sun\": []}}";
    char err[256] = "";
    rd_calendar *cal = rd_calendar_parse(never, strlen(never), err, sizeof err);
    if (cal == NULL)
        fail_msg("%s", err);
    esc_clock c;
    esc_policy p = policy("never-bm", ESC_RESOLUTION, "*", "", -1, 60, ESC_UNIT_BUSINESS_MINUTES);
    p.cal = cal;
    assert_false(esc_arm(&p, ESC_RESOLUTION, 1, CN("2026-10-20 09:00"), &c));
    p.unit = ESC_UNIT_WORKING_DAYS;
    p.target = 1;
    assert_false(esc_arm(&p, ESC_RESOLUTION, 1, CN("2026-10-20 09:00"), &c));
    rd_calendar_free(cal);

    /* a policy without warnings or levels: the breach alone */
    esc_policy b = policy("bare", ESC_ACCEPT, "*", "", -1, 10, ESC_UNIT_MINUTES);
    assert_true(esc_arm(&b, ESC_ACCEPT, 3, CN("2026-10-20 09:00"), &c));
    assert_int_equal(c.cycle, 3);
    assert_int_equal(c.id, 0);
    assert_stages(&c, {100, 10 * MIN_MS});
    assert_at(esc_next_fire(&c), CN("2026-10-20 09:10"));

    esc_ticket t = {0};
    esc_clock *k = esc_ticket_push(&t);
    assert_non_null(k);
    assert_int_equal(t.n, 1);
    assert_true(t.dirty[0]);
    assert_int_equal(k->id, 0);
    assert_int_equal(k->nstages, 0);
    esc_ticket_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_repair_accept),
        cmocka_unit_test(test_transfer_accept),
        cmocka_unit_test(test_service_contact_working_days),
        cmocka_unit_test(test_consultation_and_suggestion_reply),
        cmocka_unit_test(test_resolve_major_and_general),
        cmocka_unit_test(test_chase_unanswered),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_wait_customer_events),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_policy_change),
        cmocka_unit_test(test_fire_idempotent),
        cmocka_unit_test(test_policy_pick),
        cmocka_unit_test(test_dst_new_york),
        cmocka_unit_test(test_history_events),
        cmocka_unit_test(test_transfer_clock_kept_catch_all),
        cmocka_unit_test(test_transfer_clock_kept_policy_gone),
        cmocka_unit_test(test_arm_edge_cases),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
