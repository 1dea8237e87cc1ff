/*
 * redress-escalation end to end: a real service against the private PostgreSQL and Redis of
 * tests/lib/with-stack.sh, on a test clock (escalation.clock_file) that the test moves.
 *
 * The tests write tickets (created_at = receipt) and ticket_history rows with explicit `at` times,
 * as intake, the classifier and the dispatcher would, moving the test clock to each row's instant
 * first and waiting until the service has applied it (sla_queue empty) before moving on, so the
 * service always sees history in its own present. Then they move the clock across the stages and
 * check sla_clocks, sla_events, sla_escalations, tickets and ticket_assignments, and the exact
 * instants: nothing one millisecond before a stage, the stage at its instant exactly.
 *
 * The last test goes through a real intake (real clock): a REPLY action meets the first_response
 * clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "etest.h"
#include "rd_calendar.h"
#include "rd_time.h"

#define E(x)   REDRESS__V1__ERROR_CODE__ERROR_##x
#define K(x)   REDRESS__V1__ACTION_KIND__ACTION_##x
#define WAIT_S 10000 /* generous timeout (ms) for things that take well under a second */
#define QUIET  500   /* "nothing happens" is watched this long (25 polls of the service) */

/* 2026-03-02T00:00:00Z: the base instant of the calendar-time scenarios */
#define BASE INT64_C(1772409600000)

static PGconn *pg;
static redisContext *rd;
static itest_intake in;
static rd_client *cli;
static etest_service esc;
static etest_sub sub;

/* Fails with the service's log when cond is false. */
#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            etest_tail(&esc, 60);                                                                                      \
            fail_msg("%s", #cond);                                                                                     \
        }                                                                                                              \
    } while (0)

static void start(int64_t clock_ms, const char *extra)
{
    if (!etest_start(&esc, 0, clock_ms, extra))
        fail_msg("redress-escalation did not start");
}

/* Moves the test clock to at_ms and writes a history row there, then waits until it is applied. */
static void at(int64_t at_ms, const char *tid, const char *kind, const char *from, const char *to)
{
    etest_set_clock(&esc, at_ms);
    etest_hist(pg, tid, kind, from, to, at_ms, NULL);
    CHECK(etest_settle(pg, WAIT_S));
}

/* A ticket received at received_ms and classified a minute later (the clock moved there). */
static void classified(const char *business_type, const char *severity, int priority, int64_t received_ms, char id[37])
{
    dtest_ticket t = {.business_type = business_type, .severity = severity, .priority = priority};
    etest_ticket(pg, &t, received_ms, id);
    at(received_ms + ETEST_MIN, id, "classify", "new", "classified");
}

/* Columns (cols, an SQL list) of a ticket's clock in one cycle, joined by commas (NULLs left out). */
static const char *clockRow(const char *tid, const char *clock, int cycle, const char *cols)
{
    return dtest_str(pg,
                     "SELECT concat_ws(',', %s) FROM sla_clocks WHERE ticket_id = '%s' AND clock = '%s' AND cycle = %d",
                     cols, tid, clock, cycle);
}

/* A timestamp column of a ticket's clock in Unix ms; -1 for NULL. */
static int64_t clockMs(const char *tid, const char *clock, int cycle, const char *col)
{
    return dtest_num(pg,
                     "SELECT COALESCE(round(extract(epoch FROM %s) * 1000)::bigint, -1) FROM sla_clocks"
                     " WHERE ticket_id = '%s' AND clock = '%s' AND cycle = %d",
                     col, tid, clock, cycle);
}

/* Waits for one event of a ticket's clock in one cycle and returns its instant in ms. level < 0:
 * any. */
static int64_t waitEvent(const char *tid, const char *clock, int cycle, const char *kind, int level)
{
    char lv[32] = "";
    if (level >= 0)
        snprintf(lv, sizeof(lv), " AND e.level = %d", level);
    CHECK(dtest_wait(pg, 1, WAIT_S,
                     "SELECT count(*) FROM sla_events e JOIN sla_clocks c ON c.id = e.clock_id WHERE c.ticket_id = '%s'"
                     " AND c.clock = '%s' AND c.cycle = %d AND e.kind = '%s'%s",
                     tid, clock, cycle, kind, lv));
    return dtest_num(pg,
                     "SELECT round(extract(epoch FROM e.at) * 1000)::bigint FROM sla_events e"
                     " JOIN sla_clocks c ON c.id = e.clock_id WHERE c.ticket_id = '%s' AND c.clock = '%s'"
                     " AND c.cycle = %d AND e.kind = '%s'%s",
                     tid, clock, cycle, kind, lv);
}

/* How many events of these kinds a ticket's clock has. */
static const char *const EVENTS_SQL = "SELECT count(*) FROM sla_events e JOIN sla_clocks c ON c.id = e.clock_id"
                                      " WHERE c.ticket_id = '%s' AND c.clock = '%s' AND e.kind IN (%s)";

/* Nothing of these kinds happens to the ticket's clock for QUIET ms (the count stays want). */
static void quiet(const char *tid, const char *clock, const char *kinds, int64_t want)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    CHECK(etest_stays(pg, want, QUIET, EVENTS_SQL, tid, clock, kinds));
#pragma GCC diagnostic pop
}

static int64_t events(const char *tid, const char *clock, const char *kinds)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    return dtest_num(pg, EVENTS_SQL, tid, clock, kinds);
#pragma GCC diagnostic pop
}

/* "level,role,action,target_unit,at_ms" of a clock's escalation row at that level ("" if none). */
static const char *escalation(const char *tid, const char *clock, int cycle, int level)
{
    return dtest_str(pg,
                     "SELECT concat_ws(',', s.level, s.role, s.action, s.target_unit,"
                     " round(extract(epoch FROM s.at) * 1000)::bigint) FROM sla_escalations s"
                     " JOIN sla_clocks c ON c.id = s.clock_id WHERE c.ticket_id = '%s' AND c.clock = '%s'"
                     " AND c.cycle = %d AND s.level = %d",
                     tid, clock, cycle, level);
}

static const char *sfmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static const char *sfmt(const char *f, ...)
{
    static char bufs[4][512];
    static int next;
    char *out = bufs[next++ % 4];
    va_list ap;
    va_start(ap, f);
    vsnprintf(out, sizeof(bufs[0]), f, ap);
    va_end(ap);
    return out;
}

/* ---- a) fault-repair acceptance: warned, breached, escalated with reroute; accepted in time ---- */

static void test_repair_accept(void **state)
{
    (void)state;
    const int64_t T = BASE;
    char late[37], onTime[37];
    start(T - 3 * ETEST_MIN, NULL);
    etest_sub_open(&sub, &esc);
    classified("fault_repair", "general", 3, T - 3 * ETEST_MIN, late);
    classified("fault_repair", "general", 3, T - 3 * ETEST_MIN, onTime);
    /* the dispatcher's acceptance deadline is later than the SLA on purpose: the reroute pulls it in */
    etest_set_clock(&esc, T);
    etest_assign(pg, late, "a-late", "t-repair", "d-repair", T, T + 30 * ETEST_MIN);
    etest_assign(pg, onTime, "a-fast", "t-repair", "d-repair", T, T + 30 * ETEST_MIN);
    CHECK(etest_settle(pg, WAIT_S));

    /* armed at the assignment: 5 minutes, a warning at 80 % (4 min), escalation 1 at 5, 2 at 15 */
    assert_string_equal(clockRow(late, "accept", 1, "state, policy_id, target_ms, calendar_id IS NULL, next_stage"),
                        "running,repair-accept,300000,t,0");
    assert_int_equal(clockMs(late, "accept", 1, "started_at"), T);
    assert_int_equal(clockMs(late, "accept", 1, "due_at"), T + 5 * ETEST_MIN);
    assert_int_equal(clockMs(late, "accept", 1, "next_fire_at"), T + 4 * ETEST_MIN);

    /* accepted after 3 minutes: met */
    at(T + 3 * ETEST_MIN, onTime, "accept", "assigned", "accepted");
    assert_int_equal(waitEvent(onTime, "accept", 1, "met", -1), T + 3 * ETEST_MIN);
    assert_string_equal(clockRow(onTime, "accept", 1, "state, outcome, next_fire_at IS NULL, due_at IS NULL"),
                        "stopped,met,t,t");
    assert_int_equal(clockMs(onTime, "accept", 1, "stopped_at"), T + 3 * ETEST_MIN);

    /* the warning: not a millisecond early */
    etest_set_clock(&esc, T + 4 * ETEST_MIN - 1);
    quiet(late, "accept", "'warned', 'breached', 'escalated'", 0);
    etest_set_clock(&esc, T + 4 * ETEST_MIN);
    assert_int_equal(waitEvent(late, "accept", 1, "warned", 80), T + 4 * ETEST_MIN);
    assert_int_equal(events(late, "accept", "'warned', 'breached', 'escalated'"), 1);
    const etest_note *n = etest_sub_wait(&sub, late, "accept", "warned", 80, WAIT_S);
    CHECK(n != NULL);
    assert_int_equal(n->at_ms, T + 4 * ETEST_MIN);
    assert_int_equal(n->due_at_ms, T + 5 * ETEST_MIN);
    assert_string_equal(n->policy_id, "repair-accept");

    /* the breach: exactly at 5 minutes, with escalation level 1 (team lead, reroute) */
    etest_set_clock(&esc, T + 5 * ETEST_MIN - 1);
    quiet(late, "accept", "'breached', 'escalated'", 0);
    etest_set_clock(&esc, T + 5 * ETEST_MIN);
    assert_int_equal(waitEvent(late, "accept", 1, "breached", -1), T + 5 * ETEST_MIN);
    assert_int_equal(waitEvent(late, "accept", 1, "escalated", 1), T + 5 * ETEST_MIN);
    assert_string_equal(escalation(late, "accept", 1, 1),
                        sfmt("1,team_lead,reroute,t-repair,%lld", (long long)(T + 5 * ETEST_MIN)));
    assert_int_equal(clockMs(late, "accept", 1, "breached_at"), T + 5 * ETEST_MIN);
    assert_int_equal(clockMs(late, "accept", 1, "next_fire_at"), T + 15 * ETEST_MIN);
    /* reroute: the open unaccepted assignment is due at the breach, so the dispatcher re-dispatches */
    assert_int_equal(dtest_num(pg,
                               "SELECT round(extract(epoch FROM accept_due_at) * 1000)::bigint FROM ticket_assignments"
                               " WHERE ticket_id = '%s' AND ended_at IS NULL AND accepted_at IS NULL",
                               late),
                     T + 5 * ETEST_MIN);
    n = etest_sub_wait(&sub, late, "accept", "breached", -1, WAIT_S);
    CHECK(n != NULL);
    assert_int_equal(n->at_ms, T + 5 * ETEST_MIN);
    n = etest_sub_wait(&sub, late, "accept", "escalated", 1, WAIT_S);
    CHECK(n != NULL);
    assert_string_equal(n->role, "team_lead");
    assert_string_equal(n->action, "reroute");
    assert_string_equal(n->target_unit, "t-repair");
    assert_int_equal(n->at_ms, T + 5 * ETEST_MIN);

    /* level 2 at 15 minutes: the department head (the accountable unit) */
    etest_set_clock(&esc, T + 15 * ETEST_MIN);
    assert_int_equal(waitEvent(late, "accept", 1, "escalated", 2), T + 15 * ETEST_MIN);
    assert_string_equal(escalation(late, "accept", 1, 2),
                        sfmt("2,department_head,notify,d-repair,%lld", (long long)(T + 15 * ETEST_MIN)));

    /* far ahead: the accepted one never breaches; nothing fires twice */
    etest_set_clock(&esc, T + 10 * ETEST_HOUR);
    quiet(onTime, "accept", "'warned', 'breached', 'escalated'", 0);
    assert_int_equal(events(late, "accept", "'warned', 'breached', 'escalated'"), 4);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM sla_escalations WHERE ticket_id = '%s'", onTime), 0);
    etest_sub_drain(&sub, 200);
    assert_int_equal(etest_sub_count(&sub, onTime, "accept", NULL, -1), 0);
    assert_int_equal(etest_sub_count(&sub, late, "accept", "breached", -1), 1);
    assert_int_equal(etest_sub_count(&sub, late, "accept", "escalated", 1), 1);
    assert_int_equal(etest_sub_count(&sub, late, "accept", "escalated", 2), 1);
}

/* ---- b) chase (催办): unanswered for 24 / 48 / 72 hours; answered in time -------------------- */

static void test_chase(void **state)
{
    (void)state;
    const int64_t C = BASE;
    char quietT[37], answered[37];
    start(C - 2 * ETEST_HOUR, NULL);
    etest_sub_open(&sub, &esc);
    classified("complaint", "general", 4, C - 2 * ETEST_HOUR, quietT);
    classified("complaint", "general", 4, C - 2 * ETEST_HOUR, answered);
    etest_set_clock(&esc, C - 90 * ETEST_MIN);
    etest_assign(pg, quietT, "a-1", "t-care", "d-care", C - 90 * ETEST_MIN, C - 60 * ETEST_MIN);
    etest_assign(pg, answered, "a-2", "t-care", "d-care", C - 90 * ETEST_MIN, C - 60 * ETEST_MIN);
    CHECK(etest_settle(pg, WAIT_S));
    at(C - 80 * ETEST_MIN, quietT, "accept", "assigned", "accepted");
    at(C - 80 * ETEST_MIN, answered, "accept", "assigned", "accepted");
    at(C, quietT, "chase", "accepted", "accepted");
    at(C, answered, "chase", "accepted", "accepted");
    assert_string_equal(clockRow(quietT, "chase_update", 1, "state, policy_id, target_ms"),
                        "running,chase-update,86400000");
    assert_int_equal(clockMs(quietT, "chase_update", 1, "started_at"), C);
    assert_int_equal(clockMs(quietT, "chase_update", 1, "due_at"), C + 24 * ETEST_HOUR);

    /* the other ticket is answered after 2 hours */
    at(C + 2 * ETEST_HOUR, answered, "reply", "accepted", "in_progress");
    assert_int_equal(waitEvent(answered, "chase_update", 1, "met", -1), C + 2 * ETEST_HOUR);
    assert_string_equal(clockRow(answered, "chase_update", 1, "state, outcome"), "stopped,met");

    /* level 1 at 24 h (the breach too): team lead, priority raised. The resolution clock (24 h from
     * receipt, 2 h before the chase) raised it once already at C+22h: 4 -> 3 -> 2. */
    etest_set_clock(&esc, C + 24 * ETEST_HOUR - 1);
    quiet(quietT, "chase_update", "'breached', 'escalated'", 0);
    assert_int_equal(waitEvent(quietT, "chase_update", 1, "warned", 50), C + 12 * ETEST_HOUR);
    CHECK(dtest_wait(pg, 3, WAIT_S, "SELECT priority FROM tickets WHERE id = '%s'", quietT));
    etest_set_clock(&esc, C + 24 * ETEST_HOUR);
    assert_int_equal(waitEvent(quietT, "chase_update", 1, "escalated", 1), C + 24 * ETEST_HOUR);
    assert_int_equal(waitEvent(quietT, "chase_update", 1, "breached", -1), C + 24 * ETEST_HOUR);
    assert_string_equal(escalation(quietT, "chase_update", 1, 1),
                        sfmt("1,team_lead,raise_priority,t-care,%lld", (long long)(C + 24 * ETEST_HOUR)));
    CHECK(dtest_wait(pg, 2, WAIT_S, "SELECT priority FROM tickets WHERE id = '%s'", quietT));

    /* level 2 at 48 h: the department head */
    etest_set_clock(&esc, C + 48 * ETEST_HOUR);
    assert_int_equal(waitEvent(quietT, "chase_update", 1, "escalated", 2), C + 48 * ETEST_HOUR);
    assert_string_equal(escalation(quietT, "chase_update", 1, 2),
                        sfmt("2,department_head,notify,d-care,%lld", (long long)(C + 48 * ETEST_HOUR)));

    /* level 3 at exactly 72 h: leadership supervision (督办) */
    etest_set_clock(&esc, C + 72 * ETEST_HOUR - 1);
    quiet(quietT, "chase_update", "'escalated'", 2);
    etest_set_clock(&esc, C + 72 * ETEST_HOUR);
    assert_int_equal(waitEvent(quietT, "chase_update", 1, "escalated", 3), C + 72 * ETEST_HOUR);
    assert_string_equal(escalation(quietT, "chase_update", 1, 3),
                        sfmt("3,leadership,notify,d-care,%lld", (long long)(C + 72 * ETEST_HOUR)));
    assert_string_equal(clockRow(quietT, "chase_update", 1, "state, next_fire_at IS NULL, next_stage"),
                        "running,t,5"); /* warned 50, breach, levels 1-3: all fired */
    assert_int_equal(dtest_num(pg, "SELECT priority FROM tickets WHERE id = '%s'", quietT), 2);

    /* the notifications, one each */
    static const struct {
        int level;
        const char *role, *action;
        int64_t at;
    } want[] = {{1, "team_lead", "raise_priority", 24 * ETEST_HOUR},
                {2, "department_head", "notify", 48 * ETEST_HOUR},
                {3, "leadership", "notify", 72 * ETEST_HOUR}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const etest_note *n = etest_sub_wait(&sub, quietT, "chase_update", "escalated", want[i].level, WAIT_S);
        CHECK(n != NULL);
        assert_string_equal(n->ticket_id, quietT);
        assert_string_equal(n->kind, "escalated");
        assert_int_equal(n->level, want[i].level);
        assert_string_equal(n->role, want[i].role);
        assert_string_equal(n->action, want[i].action);
        assert_int_equal(n->at_ms, C + want[i].at);
        assert_int_equal(n->due_at_ms, C + 24 * ETEST_HOUR);
        assert_string_equal(n->policy_id, "chase-update");
    }
    CHECK(etest_sub_wait(&sub, quietT, "chase_update", "breached", -1, WAIT_S) != NULL);
    etest_sub_drain(&sub, 200);
    for (int lv = 1; lv <= 3; lv++)
        assert_int_equal(etest_sub_count(&sub, quietT, "chase_update", "escalated", lv), 1);
    assert_int_equal(etest_sub_count(&sub, quietT, "chase_update", "breached", -1), 1);

    /* the answered ticket: nothing on its chase clock, ever */
    quiet(answered, "chase_update", "'warned', 'breached', 'escalated'", 0);
    assert_int_equal(etest_sub_count(&sub, answered, "chase_update", NULL, -1), 0);
}

/* ---- c) waiting on the customer pauses the clock ---------------------------------------------- */

static void test_pause_resume(void **state)
{
    (void)state;
    const int64_t T = BASE;
    char id[37];
    start(T, NULL);
    dtest_ticket t = {.business_type = "complaint", .severity = "general"};
    etest_ticket(pg, &t, T, id);
    at(T, id, "classify", "new", "classified");
    assert_string_equal(clockRow(id, "resolution", 1, "state, policy_id, target_ms, calendar_id IS NULL"),
                        "running,general-resolve,86400000,t");
    assert_int_equal(clockMs(id, "resolution", 1, "started_at"), T);
    assert_int_equal(clockMs(id, "resolution", 1, "due_at"), T + 24 * ETEST_HOUR);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM sla_clocks WHERE ticket_id = '%s'", id), 1);

    etest_set_clock(&esc, T + 10 * ETEST_MIN);
    etest_assign(pg, id, "a-1", "t-1", "d-1", T + 10 * ETEST_MIN, T + 40 * ETEST_MIN);
    CHECK(etest_settle(pg, WAIT_S));
    at(T + 20 * ETEST_MIN, id, "accept", "assigned", "accepted");

    /* paused after 1 hour */
    at(T + ETEST_HOUR, id, "wait_customer", "accepted", "waiting_customer");
    assert_int_equal(waitEvent(id, "resolution", 1, "paused", -1), T + ETEST_HOUR);
    assert_string_equal(clockRow(id, "resolution", 1,
                                 "state, elapsed_ms, running_since IS NULL, due_at IS NULL,"
                                 " next_fire_at IS NULL"),
                        "paused,3600000,t,t,t");

    /* 4 hours later the customer answers: every instant moves by 4 hours */
    at(T + 5 * ETEST_HOUR, id, "resume", "waiting_customer", "in_progress");
    assert_int_equal(waitEvent(id, "resolution", 1, "resumed", -1), T + 5 * ETEST_HOUR);
    assert_string_equal(clockRow(id, "resolution", 1, "state, elapsed_ms"), "running,3600000");
    assert_int_equal(clockMs(id, "resolution", 1, "running_since"), T + 5 * ETEST_HOUR);
    assert_int_equal(clockMs(id, "resolution", 1, "due_at"), T + 28 * ETEST_HOUR);
    assert_int_equal(clockMs(id, "resolution", 1, "next_fire_at"), T + 16 * ETEST_HOUR); /* 50 %: 12 h */

    /* at 25 h of calendar time only 21 h of SLA time have passed */
    etest_set_clock(&esc, T + 25 * ETEST_HOUR);
    assert_int_equal(waitEvent(id, "resolution", 1, "warned", 50), T + 16 * ETEST_HOUR);
    assert_int_equal(waitEvent(id, "resolution", 1, "warned", 80), T + 5 * ETEST_HOUR + (192 - 10) * ETEST_HOUR / 10);
    quiet(id, "resolution", "'breached', 'escalated'", 0);
    etest_set_clock(&esc, T + 28 * ETEST_HOUR - 1);
    quiet(id, "resolution", "'breached', 'escalated'", 0);
    etest_set_clock(&esc, T + 28 * ETEST_HOUR);
    assert_int_equal(waitEvent(id, "resolution", 1, "breached", -1), T + 28 * ETEST_HOUR);
    assert_int_equal(waitEvent(id, "resolution", 1, "escalated", 1), T + 28 * ETEST_HOUR);
    assert_int_equal(clockMs(id, "resolution", 1, "breached_at"), T + 28 * ETEST_HOUR);
}

/* ---- d) reopen: a new resolution cycle --------------------------------------------------------- */

static void test_reopen(void **state)
{
    (void)state;
    const int64_t T = BASE, R = BASE + 3 * ETEST_HOUR;
    char id[37];
    start(T, NULL);
    dtest_ticket t = {.business_type = "complaint", .severity = "general"};
    etest_ticket(pg, &t, T, id);
    at(T, id, "classify", "new", "classified");
    etest_set_clock(&esc, T + 10 * ETEST_MIN);
    etest_assign(pg, id, "a-1", "t-1", "d-1", T + 10 * ETEST_MIN, T + 40 * ETEST_MIN);
    CHECK(etest_settle(pg, WAIT_S));
    at(T + 20 * ETEST_MIN, id, "accept", "assigned", "accepted");
    at(T + 2 * ETEST_HOUR, id, "resolve", "accepted", "resolved");
    assert_int_equal(waitEvent(id, "resolution", 1, "met", -1), T + 2 * ETEST_HOUR);
    assert_string_equal(clockRow(id, "resolution", 1, "state, outcome, due_at IS NULL, next_fire_at IS NULL"),
                        "stopped,met,t,t");

    at(R, id, "reopen", "resolved", "in_progress");
    CHECK(dtest_wait(pg, 1, WAIT_S,
                     "SELECT count(*) FROM sla_clocks WHERE ticket_id = '%s' AND clock = 'resolution'"
                     " AND cycle = 2",
                     id));
    assert_string_equal(clockRow(id, "resolution", 2, "state, policy_id, target_ms"),
                        "running,general-resolve,86400000");
    assert_int_equal(clockMs(id, "resolution", 2, "started_at"), R);
    assert_int_equal(clockMs(id, "resolution", 2, "due_at"), R + 24 * ETEST_HOUR);
    /* the first cycle stays as it ended */
    assert_string_equal(clockRow(id, "resolution", 1, "state, outcome"), "stopped,met");

    /* 24 h after receipt: nothing (cycle 1 met, cycle 2 not due); 24 h after the reopen: breached */
    etest_set_clock(&esc, T + 24 * ETEST_HOUR);
    quiet(id, "resolution", "'breached'", 0);
    etest_set_clock(&esc, R + 24 * ETEST_HOUR);
    assert_int_equal(waitEvent(id, "resolution", 2, "breached", -1), R + 24 * ETEST_HOUR);
    assert_int_equal(
        dtest_num(pg,
                  "SELECT count(*) FROM sla_events e JOIN sla_clocks c ON c.id = e.clock_id"
                  " WHERE c.ticket_id = '%s' AND c.cycle = 1 AND e.kind IN ('warned', 'breached', 'escalated')",
                  id),
        0);
}

/* ---- e) business time: a consultation answered within 3 working days (cn-mainland) ------------ */

/*
 * The date: Friday 2026-04-03, 15:00 in Shanghai (07:00Z), the afternoon before the Qingming
 * holiday (Saturday 04-04 to Monday 04-06 in the example calendar). The receipt's own day does not
 * count; working days 1, 2, 3 are Tuesday 04-07, Wednesday 04-08 and Thursday 04-09, so the first
 * response is due at the end of Thursday's working hours: 2026-04-09 17:30 +08:00 =
 * 1775727000000 ms. Escalation level 2 (4 working days) is Friday 2026-04-10 17:30 +08:00 =
 * 1775813400000 ms.
 */
static void test_business_time(void **state)
{
    (void)state;
    const char *dir = getenv("REDRESS_TEST_DIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/deploy/config/calendars.example.json", REDRESS_SOURCE_DIR);
    assert_int_equal(itest_ctl(dir, "calendar load %s", path), 0);

    char err[256];
    rd_calendar_set *set = rd_calendar_set_load(path, err, sizeof(err));
    if (set == NULL)
        fail_msg("%s: %s", path, err);
    const rd_calendar *cal = rd_calendar_set_find(set, "cn-mainland");
    assert_non_null(cal);
    const int64_t receipt = rd_calendar_from_local(cal, 2026, 4, 3, 15, 0, 0);
    const int64_t due = rd_calendar_from_local(cal, 2026, 4, 9, 17, 30, 0);
    const int64_t level2 = rd_calendar_from_local(cal, 2026, 4, 10, 17, 30, 0);
    rd_local_time lt;
    assert_true(rd_calendar_to_local(cal, receipt, &lt));
    rd_calendar_set_free(set);
    assert_int_equal(lt.weekday, 5); /* a Friday */
    assert_int_equal(receipt, INT64_C(1775199600000));
    assert_int_equal(due, INT64_C(1775727000000));
    assert_int_equal(level2, INT64_C(1775813400000));

    start(receipt, "REDRESS_ESCALATION_CALENDAR=cn-mainland");
    char id[37];
    dtest_ticket t = {.business_type = "consultation", .severity = "general"};
    etest_ticket(pg, &t, receipt, id);
    at(receipt + 5 * ETEST_MIN, id, "classify", "new", "classified");
    assert_string_equal(clockRow(id, "first_response", 1, "state, policy_id, calendar_id"),
                        "running,consultation-reply,cn-mainland");
    assert_int_equal(clockMs(id, "first_response", 1, "started_at"), receipt);
    assert_int_equal(clockMs(id, "first_response", 1, "due_at"), due);
    /* the resolution clock counts calendar time (minutes): 24 h from receipt, no calendar */
    assert_string_equal(clockRow(id, "resolution", 1, "state, policy_id, calendar_id IS NULL"),
                        "running,general-resolve,t");
    assert_int_equal(clockMs(id, "resolution", 1, "due_at"), receipt + 24 * ETEST_HOUR);

    etest_set_clock(&esc, due - 1);
    quiet(id, "first_response", "'breached', 'escalated'", 0);
    etest_set_clock(&esc, due);
    assert_int_equal(waitEvent(id, "first_response", 1, "breached", -1), due);
    assert_int_equal(waitEvent(id, "first_response", 1, "escalated", 1), due);
    assert_int_equal(clockMs(id, "first_response", 1, "next_fire_at"), level2);
    etest_set_clock(&esc, level2 - 1);
    quiet(id, "first_response", "'escalated'", 1);
    etest_set_clock(&esc, level2);
    assert_int_equal(waitEvent(id, "first_response", 1, "escalated", 2), level2);
}

/* ---- f) a policy change applies to clocks armed after it -------------------------------------- */

static void test_policy_change(void **state)
{
    (void)state;
    const int64_t T = BASE;
    char before[37], after[37];
    start(T, NULL);
    dtest_ticket t = {.business_type = "complaint", .severity = "general"};
    etest_ticket(pg, &t, T, before);
    at(T, before, "classify", "new", "classified");
    assert_int_equal(clockMs(before, "resolution", 1, "due_at"), T + 24 * ETEST_HOUR);

    dtest_sql(pg, "UPDATE sla_policies SET target = 600, updated_at = now() WHERE id = 'general-resolve'");
    dtest_sql(pg, "NOTIFY redress_sla");

    /* The service LISTENs (policy_poll_ms is 30 s, so only the NOTIFY can make it reload in time):
     * probe tickets classified one after the other until one gets the new target (5 s at most). */
    etest_set_clock(&esc, T + ETEST_HOUR);
    char probe[37];
    int64_t deadline = rd_mono_us() + 5000000, target = 0;
    int probes = 0;
    while (target != 36000000 && rd_mono_us() < deadline) {
        etest_ticket(pg, &t, T + ETEST_HOUR, probe);
        at(T + ETEST_HOUR, probe, "classify", "new", "classified");
        target =
            dtest_num(pg, "SELECT target_ms FROM sla_clocks WHERE ticket_id = '%s' AND clock = 'resolution'", probe);
        probes++;
    }
    fprintf(stderr, "policy change seen after %d probe ticket(s)\n", probes);
    CHECK(target == 36000000);

    etest_ticket(pg, &t, T + ETEST_HOUR, after);
    at(T + ETEST_HOUR, after, "classify", "new", "classified");
    assert_string_equal(clockRow(after, "resolution", 1, "policy_id, target_ms"), "general-resolve,36000000");
    assert_int_equal(clockMs(after, "resolution", 1, "due_at"), T + 11 * ETEST_HOUR);
    assert_string_equal(clockRow(before, "resolution", 1, "policy_id, target_ms"), "general-resolve,86400000");
    assert_int_equal(clockMs(before, "resolution", 1, "due_at"), T + 24 * ETEST_HOUR);

    etest_set_clock(&esc, T + 11 * ETEST_HOUR);
    assert_int_equal(waitEvent(after, "resolution", 1, "breached", -1), T + 11 * ETEST_HOUR);
    quiet(before, "resolution", "'breached'", 0);
    assert_int_equal(clockMs(before, "resolution", 1, "due_at"), T + 24 * ETEST_HOUR);
}

/* ---- g) through the real intake: a REPLY meets the first response ----------------------------- */

static void test_intake_reply(void **state)
{
    (void)state;
    if (!etest_start(&esc, in.pub_port, ETEST_REAL, NULL))
        fail_msg("redress-escalation did not start");
    char eid[64];
    snprintf(eid, sizeof(eid), "etest-new-%d-%lld", (int)getpid(), (long long)rd_now_ms());
    Redress__V1__Envelope e;
    Redress__V1__NewTicket nt;
    itest_new_ticket(&e, &nt, eid);
    Redress__V1__Reply *r = itest_call(cli, &e);
    assert_non_null(r);
    assert_int_equal(r->error, E(NONE));
    char id[37];
    snprintf(id, sizeof(id), "%s", r->ticket_id);
    redress__v1__reply__free_unpacked(r, NULL);

    /* classified as the classifier would, assigned as the dispatcher would */
    dtest_sql(pg, "UPDATE tickets SET business_type = 'consultation', severity = 'general' WHERE id = '%s'", id);
    etest_hist(pg, id, "classify", "new", "classified", rd_now_ms(), "etest");
    etest_assign(pg, id, "a-1", "t-1", "d-1", rd_now_ms(), rd_now_ms() + 30 * ETEST_MIN);
    CHECK(dtest_wait(pg, 1, WAIT_S,
                     "SELECT count(*) FROM sla_clocks WHERE ticket_id = '%s' AND clock = 'first_response'"
                     " AND state = 'running'",
                     id));
    assert_int_equal(dtest_num(pg,
                               "SELECT round(extract(epoch FROM c.started_at - t.created_at) * 1000)::bigint"
                               " FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id"
                               " WHERE c.ticket_id = '%s' AND c.clock = 'first_response'",
                               id),
                     0);

    char st[32];
    assert_int_equal(dtest_act(cli, id, K(ACCEPT), NULL, NULL, st, sizeof(st)), E(NONE));
    assert_string_equal(st, "accepted");
    assert_int_equal(dtest_act(cli, id, K(REPLY), "answered", NULL, st, sizeof(st)), E(NONE));
    assert_string_equal(st, "in_progress");

    assert_int_equal(
        waitEvent(id, "first_response", 1, "met", -1),
        dtest_num(pg,
                  "SELECT round(extract(epoch FROM at) * 1000)::bigint FROM ticket_history WHERE ticket_id = '%s'"
                  " AND kind = 'reply'",
                  id));
    assert_string_equal(clockRow(id, "first_response", 1, "state, outcome"), "stopped,met");
    assert_string_equal(clockRow(id, "resolution", 1, "state"), "running");
    CHECK(etest_settle(pg, WAIT_S));
}

/* ---- fixtures ---------------------------------------------------------------------------------------- */

static int groupSetup(void **state)
{
    (void)state;
    pg = itest_pg();
    rd = dtest_redis();
    if (!itest_intake_start(&in, NULL))
        return -1;
    char err[256];
    cli = rd_client_new(in.endpoint, err, sizeof(err));
    return cli ? 0 : -1;
}

static int groupTeardown(void **state)
{
    (void)state;
    etest_stop(&esc);
    rd_client_destroy(&cli);
    itest_intake_stop(&in);
    redisFree(rd);
    PQfinish(pg);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    etest_reset(pg, rd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    etest_sub_close(&sub);
    etest_stop(&esc);
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_repair_accept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_business_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intake_reply, setup, teardown),
    };
    return cmocka_run_group_tests(tests, groupSetup, groupTeardown);
}
