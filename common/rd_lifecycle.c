/*
 * rd_lifecycle.c -- the ticket state machine as a table.
 *
 * The legal transitions are one two-dimensional table indexed by (state, event). A table rather
 * than a switch keeps the whole machine visible on one screen, makes a missing or extra transition
 * obvious in review, and is trivially exhaustive to test. Cells left out of the initializer are
 * zero, which is RD_STATE_INVALID: anything not listed is forbidden.
 *
 * The names below are persisted in PostgreSQL (tickets.state, ticket_history.kind). Never rename
 * one; add new ones at the end of the enums instead.
 */
#include "rd_lifecycle.h"

#include <string.h>

static const char *const state_names[RD_STATE__COUNT] = {
    [RD_STATE_INVALID] = "invalid",
    [RD_STATE_NEW] = "new",
    [RD_STATE_CLASSIFIED] = "classified",
    [RD_STATE_ASSIGNED] = "assigned",
    [RD_STATE_ACCEPTED] = "accepted",
    [RD_STATE_IN_PROGRESS] = "in_progress",
    [RD_STATE_WAITING_CUSTOMER] = "waiting_customer",
    [RD_STATE_RESOLVED] = "resolved",
    [RD_STATE_CLOSED] = "closed",
    [RD_STATE_RETURNED] = "returned",
};

static const char *const event_names[RD_EV__COUNT] = {
    [RD_EV_INVALID] = "invalid",
    [RD_EV_CLASSIFY] = "classify",
    [RD_EV_ASSIGN] = "assign",
    [RD_EV_ACCEPT] = "accept",
    [RD_EV_REPLY] = "reply",
    [RD_EV_TRANSFER] = "transfer",
    [RD_EV_RETURN] = "return",
    [RD_EV_RESOLVE] = "resolve",
    [RD_EV_CLOSE] = "close",
    [RD_EV_REOPEN] = "reopen",
    [RD_EV_WAIT_CUSTOMER] = "wait_customer",
    [RD_EV_RESUME] = "resume",
    [RD_EV_CHASE] = "chase",
    [RD_EV_RETURN_VISIT] = "return_visit",
};

/* Shorthands so each row of the table fits on a line. */
#define S_NEW  RD_STATE_NEW
#define S_CLS  RD_STATE_CLASSIFIED
#define S_ASG  RD_STATE_ASSIGNED
#define S_ACC  RD_STATE_ACCEPTED
#define S_PRG  RD_STATE_IN_PROGRESS
#define S_WAIT RD_STATE_WAITING_CUSTOMER
#define S_RES  RD_STATE_RESOLVED
#define S_CLO  RD_STATE_CLOSED
#define S_RET  RD_STATE_RETURNED

/* next_state[state][event]; unsigned char keeps the whole table at 140 bytes. */
static const unsigned char next_state[RD_STATE__COUNT][RD_EV__COUNT] = {
    [S_NEW] = {[RD_EV_CLASSIFY] = S_CLS, [RD_EV_CHASE] = S_NEW},
    [S_CLS] = {[RD_EV_ASSIGN] = S_ASG, [RD_EV_CHASE] = S_CLS},
    /* assign in assigned: re-dispatch after an acceptance timeout */
    [S_ASG] = {[RD_EV_ASSIGN] = S_ASG,
               [RD_EV_ACCEPT] = S_ACC,
               [RD_EV_TRANSFER] = S_ASG,
               [RD_EV_RETURN] = S_RET,
               [RD_EV_CHASE] = S_ASG},
    [S_ACC] = {[RD_EV_REPLY] = S_PRG,
               [RD_EV_TRANSFER] = S_ASG,
               [RD_EV_RETURN] = S_RET,
               [RD_EV_RESOLVE] = S_RES,
               [RD_EV_WAIT_CUSTOMER] = S_WAIT,
               [RD_EV_CHASE] = S_ACC},
    [S_PRG] = {[RD_EV_REPLY] = S_PRG,
               [RD_EV_TRANSFER] = S_ASG,
               [RD_EV_RETURN] = S_RET,
               [RD_EV_RESOLVE] = S_RES,
               [RD_EV_WAIT_CUSTOMER] = S_WAIT,
               [RD_EV_CHASE] = S_PRG},
    [S_WAIT] = {[RD_EV_RESUME] = S_PRG, [RD_EV_CHASE] = S_WAIT},
    /* chase makes no sense once the work is done; return_visit only then */
    [S_RES] = {[RD_EV_CLOSE] = S_CLO, [RD_EV_REOPEN] = S_PRG, [RD_EV_RETURN_VISIT] = S_RES},
    [S_CLO] = {[RD_EV_REOPEN] = S_PRG, [RD_EV_RETURN_VISIT] = S_CLO},
    [S_RET] = {[RD_EV_ASSIGN] = S_ASG, [RD_EV_CHASE] = S_RET},
};

/* Enums may hold any int (a corrupt row, a cast from the wire); compare as unsigned so negative
 * values fail the range check too. */
static bool state_ok(rd_state s)
{
    return (unsigned)s < (unsigned)RD_STATE__COUNT;
}

static bool event_ok(rd_event e)
{
    return (unsigned)e < (unsigned)RD_EV__COUNT;
}

const char *rd_state_name(rd_state s)
{
    return state_ok(s) ? state_names[s] : "invalid";
}

const char *rd_event_name(rd_event e)
{
    return event_ok(e) ? event_names[e] : "invalid";
}

/* Index 0 ("invalid") is skipped: it is what parsing returns on failure, not a stored name. */
rd_state rd_state_parse(const char *name)
{
    if (name == NULL)
        return RD_STATE_INVALID;
    for (int i = 1; i < RD_STATE__COUNT; i++)
        if (strcmp(name, state_names[i]) == 0)
            return (rd_state)i;
    return RD_STATE_INVALID;
}

rd_event rd_event_parse(const char *name)
{
    if (name == NULL)
        return RD_EV_INVALID;
    for (int i = 1; i < RD_EV__COUNT; i++)
        if (strcmp(name, event_names[i]) == 0)
            return (rd_event)i;
    return RD_EV_INVALID;
}

rd_state rd_lifecycle_next(rd_state s, rd_event e)
{
    if (!state_ok(s) || !event_ok(e))
        return RD_STATE_INVALID;
    return (rd_state)next_state[s][e];
}

bool rd_state_is_open(rd_state s)
{
    return state_ok(s) && s != RD_STATE_INVALID && s != RD_STATE_RESOLVED && s != RD_STATE_CLOSED;
}
