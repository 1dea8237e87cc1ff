/*
 * test_lifecycle.c -- exhaustive check of the ticket state machine.
 *
 * The expected transitions are written out here a second time, as (state, event, next) triples in
 * plain text, independently of the table in rd_lifecycle.c. Every one of the 10 x 14 (state,
 * event) pairs -- invalid ones included -- is checked: a pair listed below must give its next
 * state, every other pair must give RD_STATE_INVALID. A transition added to or dropped from the
 * implementation without updating this list fails the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rd_lifecycle.h"

/* The stored names, spelled out again rather than taken from the module under test. */
static const struct {
    rd_state s;
    const char *name;
} states[] = {
    {RD_STATE_INVALID, "invalid"},
    {RD_STATE_NEW, "new"},
    {RD_STATE_CLASSIFIED, "classified"},
    {RD_STATE_ASSIGNED, "assigned"},
    {RD_STATE_ACCEPTED, "accepted"},
    {RD_STATE_IN_PROGRESS, "in_progress"},
    {RD_STATE_WAITING_CUSTOMER, "waiting_customer"},
    {RD_STATE_RESOLVED, "resolved"},
    {RD_STATE_CLOSED, "closed"},
    {RD_STATE_RETURNED, "returned"},
};

static const struct {
    rd_event e;
    const char *name;
} events[] = {
    {RD_EV_INVALID, "invalid"},
    {RD_EV_CLASSIFY, "classify"},
    {RD_EV_ASSIGN, "assign"},
    {RD_EV_ACCEPT, "accept"},
    {RD_EV_REPLY, "reply"},
    {RD_EV_TRANSFER, "transfer"},
    {RD_EV_RETURN, "return"},
    {RD_EV_RESOLVE, "resolve"},
    {RD_EV_CLOSE, "close"},
    {RD_EV_REOPEN, "reopen"},
    {RD_EV_WAIT_CUSTOMER, "wait_customer"},
    {RD_EV_RESUME, "resume"},
    {RD_EV_CHASE, "chase"},
    {RD_EV_RETURN_VISIT, "return_visit"},
};

#define NSTATES (sizeof(states) / sizeof(states[0]))
#define NEVENTS (sizeof(events) / sizeof(events[0]))

/* Every allowed transition; anything absent is forbidden. */
static const char *const allowed[][3] = {
    {"new", "classify", "classified"},
    {"classified", "assign", "assigned"},
    {"returned", "assign", "assigned"},
    {"assigned", "assign", "assigned"},
    {"assigned", "accept", "accepted"},
    {"accepted", "reply", "in_progress"},
    {"in_progress", "reply", "in_progress"},
    {"assigned", "transfer", "assigned"},
    {"accepted", "transfer", "assigned"},
    {"in_progress", "transfer", "assigned"},
    {"assigned", "return", "returned"},
    {"accepted", "return", "returned"},
    {"in_progress", "return", "returned"},
    {"accepted", "resolve", "resolved"},
    {"in_progress", "resolve", "resolved"},
    {"resolved", "close", "closed"},
    {"resolved", "reopen", "in_progress"},
    {"closed", "reopen", "in_progress"},
    {"accepted", "wait_customer", "waiting_customer"},
    {"in_progress", "wait_customer", "waiting_customer"},
    {"waiting_customer", "resume", "in_progress"},
    {"new", "chase", "new"},
    {"classified", "chase", "classified"},
    {"assigned", "chase", "assigned"},
    {"accepted", "chase", "accepted"},
    {"in_progress", "chase", "in_progress"},
    {"waiting_customer", "chase", "waiting_customer"},
    {"returned", "chase", "returned"},
    {"resolved", "return_visit", "resolved"},
    {"closed", "return_visit", "closed"},
};

#define NALLOWED (sizeof(allowed) / sizeof(allowed[0]))

static rd_state state_by_test_name(const char *name)
{
    for (size_t i = 0; i < NSTATES; i++)
        if (strcmp(states[i].name, name) == 0)
            return states[i].s;
    fail_msg("test table names unknown state %s", name);
    return RD_STATE_INVALID;
}

static rd_state expected_next(size_t si, size_t ei)
{
    for (size_t i = 0; i < NALLOWED; i++)
        if (strcmp(allowed[i][0], states[si].name) == 0 && strcmp(allowed[i][1], events[ei].name) == 0)
            return state_by_test_name(allowed[i][2]);
    return RD_STATE_INVALID;
}

static void test_tables_cover_enums(void **state)
{
    (void)state;
    assert_int_equal(NSTATES, RD_STATE__COUNT);
    assert_int_equal(NEVENTS, RD_EV__COUNT);
    for (size_t i = 0; i < NSTATES; i++)
        assert_int_equal(states[i].s, (rd_state)i);
    for (size_t i = 0; i < NEVENTS; i++)
        assert_int_equal(events[i].e, (rd_event)i);
}

static void test_every_pair(void **state)
{
    (void)state;
    int checked = 0, legal = 0;
    for (size_t si = 0; si < NSTATES; si++) {
        for (size_t ei = 0; ei < NEVENTS; ei++) {
            rd_state want = expected_next(si, ei);
            rd_state got = rd_lifecycle_next(states[si].s, events[ei].e);
            if (got != want)
                fail_msg("%s + %s: got %s, want %s", states[si].name, events[ei].name, rd_state_name(got),
                         rd_state_name(want));
            checked++;
            legal += want != RD_STATE_INVALID;
        }
    }
    assert_int_equal(checked, 10 * 14);
    assert_int_equal(legal, (int)NALLOWED); /* no triple in the list is unreachable or duplicated */
}

static void test_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(rd_lifecycle_next(RD_STATE__COUNT, RD_EV_CHASE), RD_STATE_INVALID);
    assert_int_equal(rd_lifecycle_next((rd_state)-1, RD_EV_CHASE), RD_STATE_INVALID);
    assert_int_equal(rd_lifecycle_next((rd_state)1000, RD_EV_CLASSIFY), RD_STATE_INVALID);
    assert_int_equal(rd_lifecycle_next(RD_STATE_NEW, RD_EV__COUNT), RD_STATE_INVALID);
    assert_int_equal(rd_lifecycle_next(RD_STATE_NEW, (rd_event)-1), RD_STATE_INVALID);
    assert_int_equal(rd_lifecycle_next(RD_STATE_NEW, (rd_event)-14), RD_STATE_INVALID);
    assert_string_equal(rd_state_name((rd_state)-1), "invalid");
    assert_string_equal(rd_state_name(RD_STATE__COUNT), "invalid");
    assert_string_equal(rd_event_name((rd_event)-3), "invalid");
    assert_string_equal(rd_event_name(RD_EV__COUNT), "invalid");
    assert_false(rd_state_is_open((rd_state)-1));
    assert_false(rd_state_is_open(RD_STATE__COUNT));
}

static void test_names_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSTATES; i++) {
        assert_string_equal(rd_state_name(states[i].s), states[i].name);
        assert_int_equal(rd_state_parse(states[i].name), states[i].s);
    }
    for (size_t i = 0; i < NEVENTS; i++) {
        assert_string_equal(rd_event_name(events[i].e), events[i].name);
        assert_int_equal(rd_event_parse(events[i].name), events[i].e);
    }
}

static void test_parse_unknown(void **state)
{
    (void)state;
    const char *bad[] = {"",     "New",     "NEW",          "in-progress", "in_progress ",
                         " new", "closedx", "return-visit", "resolve",     "classify"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rd_state_parse(bad[i]), RD_STATE_INVALID);
    assert_int_equal(rd_state_parse(NULL), RD_STATE_INVALID);
    const char *bad_ev[] = {"", "Chase", "returnvisit", "return_visit ", "wait", "new", "closed", "reopened"};
    for (size_t i = 0; i < sizeof(bad_ev) / sizeof(bad_ev[0]); i++)
        assert_int_equal(rd_event_parse(bad_ev[i]), RD_EV_INVALID);
    assert_int_equal(rd_event_parse(NULL), RD_EV_INVALID);
}

static void test_is_open(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSTATES; i++) {
        const char *n = states[i].name;
        bool want = strcmp(n, "invalid") != 0 && strcmp(n, "resolved") != 0 && strcmp(n, "closed") != 0;
        if (rd_state_is_open(states[i].s) != want)
            fail_msg("rd_state_is_open(%s) != %d", n, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_cover_enums), cmocka_unit_test(test_every_pair),
        cmocka_unit_test(test_out_of_range),       cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_parse_unknown),      cmocka_unit_test(test_is_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
