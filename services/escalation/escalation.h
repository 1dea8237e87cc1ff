/*
 * escalation.h -- SLA clocks in business time: the pure part of redress-escalation.
 *
 * Everything here is a function of its arguments (no clock, no I/O), so the tests run weeks of
 * SLA time in microseconds; the service (main.c, store.c, timers.c) only feeds it rows and the
 * time. Instants are Unix epoch milliseconds (UTC); durations are business milliseconds of the
 * clock's calendar (NULL calendar = calendar time, 24/7).
 *
 * A clock measures one promise to one ticket: accept (an assignment), first_response, chase_update
 * (answer after the customer chases, 催办) or resolution. It is armed from a policy (esc_arm): the
 * policy's target and escalation levels become stages at business-time offsets from the start:
 *   warnings (code = percentage 1..99), the breach (code 100), escalation levels (code 100 + k).
 * While running, a stage's instant is rd_calendar_add(cal, running_since, offset - elapsed): a
 * pause (the ticket waits on the customer) banks the business time elapsed so far, and on resume
 * every remaining instant moves by exactly the paused business time. A stopped clock (met or
 * cancelled) fires nothing more.
 */
#ifndef ESCALATION_H
#define ESCALATION_H

#include <stdbool.h>
#include <stdint.h>

#include "rd_calendar.h"

#define ESC_MAX_STAGES 12 /* 4 warnings + breach + 4 levels, with room */
#define ESC_MAX_LEVELS 4
#define ESC_BREACH     100
#define ESC_NONE       INT64_MIN /* "no instant": paused, stopped, or nothing left to fire */

typedef enum { ESC_ACCEPT = 0, ESC_FIRST_RESPONSE, ESC_CHASE_UPDATE, ESC_RESOLUTION, ESC__KINDS } esc_kind;
typedef enum { ESC_RUNNING = 0, ESC_PAUSED, ESC_STOPPED } esc_state;
typedef enum { ESC_UNIT_MINUTES = 0, ESC_UNIT_BUSINESS_MINUTES, ESC_UNIT_WORKING_DAYS } esc_unit;
typedef enum { ESC_NOTIFY = 0, ESC_RAISE_PRIORITY, ESC_REROUTE } esc_action;
typedef enum { ESC_TEAM_LEAD = 0, ESC_DEPARTMENT_HEAD, ESC_LEADERSHIP } esc_role;

/* Stable lower-case names as stored in PostgreSQL; parse returns -1 when unknown. */
const char *esc_kind_name(esc_kind k);
int esc_kind_parse(const char *s);
const char *esc_unit_name(esc_unit u);
int esc_unit_parse(const char *s);
const char *esc_action_name(esc_action a);
int esc_action_parse(const char *s);
const char *esc_role_name(esc_role r);
int esc_role_parse(const char *s);

typedef struct {
    int level; /* 1..ESC_MAX_LEVELS */
    int after; /* in the policy's unit, counted from the clock's start */
    esc_role role;
    esc_action action;
} esc_level;

typedef struct {
    char id[65];
    esc_kind kind;
    char business_type[64]; /* "*" = any */
    char severity[16];      /* "" = any, else "major" / "general" */
    char channel[32];       /* "" = any */
    char tier[16];          /* "" = any, else "vip" / "standard" */
    int transferred;        /* -1 = any, 0 = first assignment only, 1 = after a transfer only */
    int target;
    esc_unit unit;
    const rd_calendar *cal; /* business units: the calendar (resolved by the caller); NULL = 24/7 */
    int warn_pct[4], nwarn;
    esc_level levels[ESC_MAX_LEVELS];
    int nlevels; /* sorted by level */
} esc_policy;

/* What a policy is chosen by. */
typedef struct {
    const char *business_type, *severity, *channel; /* "" when not known yet */
    bool vip;
    bool transferred; /* accept clocks: the assignment follows a transfer */
} esc_facts;

/* The most specific active policy for a clock kind, or NULL. Specificity: business type (8),
 * severity (4), channel (2), tier (1), transferred given (1); ties go to the smaller id. */
const esc_policy *esc_policy_pick(const esc_policy *p, int n, esc_kind kind, const esc_facts *f);

typedef struct {
    int64_t id; /* 0 until stored */
    esc_kind kind;
    int cycle;
    char policy_id[65];
    const rd_calendar *cal; /* NULL = calendar time */
    int64_t target_ms;      /* business ms from start to breach */
    int64_t started_ms;
    int64_t running_since_ms; /* ESC_NONE unless running */
    int64_t elapsed_ms;       /* business ms banked before running_since */
    esc_state state;
    int outcome;         /* 0 = none, 1 = met, 2 = cancelled */
    int64_t breached_ms; /* ESC_NONE until breached */
    int nstages;
    int stage_code[ESC_MAX_STAGES];
    int64_t stage_at[ESC_MAX_STAGES]; /* business ms from start, non-decreasing */
    int next_stage;
    int64_t stopped_ms; /* ESC_NONE unless stopped */
    bool by_transfer;   /* accept clocks: armed by a transfer (an assignment that follows keeps it) */
} esc_clock;

/* Arms a clock from a policy at start_ms (the stages are the policy's warnings, breach and levels
 * converted to business ms). working_days: the breach is the end of the working day that is
 * `target` working days after the start's day (the start's own day is not counted); levels in
 * working days likewise. false when the calendar has no working time ahead (RD_CALENDAR_NEVER). */
bool esc_arm(const esc_policy *p, esc_kind kind, int cycle, int64_t start_ms, esc_clock *out);

/* The instant of business offset `offset_ms` while running; ESC_NONE when not running. */
int64_t esc_instant(const esc_clock *c, int64_t offset_ms);
/* The instant of the next stage to fire, ESC_NONE when none (paused, stopped, all fired). */
int64_t esc_next_fire(const esc_clock *c);
/* The breach instant while running; ESC_NONE otherwise. */
int64_t esc_due(const esc_clock *c);
/* Business ms elapsed at `at_ms` (banked + running). */
int64_t esc_elapsed(const esc_clock *c, int64_t at_ms);

/* State changes at instant at_ms; each returns false (and changes nothing) when it does not apply
 * (pausing a paused clock, resuming a running one, anything on a stopped clock). */
bool esc_pause(esc_clock *c, int64_t at_ms);
bool esc_resume(esc_clock *c, int64_t at_ms);
bool esc_stop(esc_clock *c, int64_t at_ms, bool met); /* met or cancelled */

/* One stage that came due. */
typedef struct {
    int code;      /* 1..99 warning %, 100 breach, 100+k level k */
    int64_t at_ms; /* its exact instant */
} esc_fired;

/* Fires every stage whose instant is <= now_ms, in order; returns how many (out holds them, at
 * most ESC_MAX_STAGES) and advances next_stage (and breached_ms). A paused or stopped clock fires
 * nothing. */
int esc_fire(esc_clock *c, int64_t now_ms, esc_fired *out);

/* ---- what a ticket's history does to its clocks ---------------------------------------------- */

/* One ticket_history row as the escalation service sees it, with the ticket's current facts. */
typedef struct {
    int64_t seq;
    const char *kind;       /* "created", "classify", "assign", "accept", "reply", ... */
    const char *from_state; /* "" when none */
    const char *reason;
    int64_t at_ms;
    int64_t received_ms; /* the ticket's created_at: resolution and first response count from receipt */
    esc_facts facts;
} esc_event;

/* What applying an event did, for the caller to store: clocks it armed (appended to the ticket's
 * clock array), and the SLA events to record. */
typedef enum {
    ESC_EV_ARMED = 0,
    ESC_EV_WARNED,
    ESC_EV_BREACHED,
    ESC_EV_MET,
    ESC_EV_PAUSED,
    ESC_EV_RESUMED,
    ESC_EV_ESCALATED,
    ESC_EV_CANCELLED
} esc_evkind;
const char *esc_evkind_name(esc_evkind k);

typedef struct {
    int clock; /* index into the ticket's clock array */
    esc_evkind kind;
    int level; /* warned: %, escalated: level, else 0 */
    int64_t at_ms;
    const char *detail; /* static text */
} esc_record;

/* The clocks of one ticket, as loaded (all cycles) plus whatever esc_apply arms. */
typedef struct {
    esc_clock *v;
    int n, cap;
    bool *dirty; /* parallel to v: changed (or new, id == 0) since loaded */
} esc_ticket;

void esc_ticket_free(esc_ticket *t);
esc_clock *esc_ticket_push(esc_ticket *t); /* a zeroed new clock (dirty), or NULL on OOM */

/*
 * Applies one history event to a ticket's clocks, using the policies to arm new ones:
 *   classify       arm first_response and resolution, started at receipt (once per ticket)
 *   assign         arm accept (a new cycle; a running accept clock of an earlier assignment is
 *                  cancelled) -- unless the running accept clock was armed by a transfer
 *   transfer       arm accept with the "transferred" policy (cancelling a running one)
 *   accept         accept met
 *   reply          first_response met, chase_update met
 *   return         accept cancelled
 *   resolve        resolution, first_response and chase_update met; accept cancelled
 *   close          everything still going cancelled
 *   reopen         a new resolution cycle from the reopen (the previous one stays as it ended)
 *   wait_customer  every running clock paused;  resume: every paused clock resumed
 *   chase          arm chase_update unless one is already running (the first unanswered chase
 *                  counts)
 * Appends what happened to rec (up to cap; returns how many were appended, or -1 if cap was too
 * small or memory ran out). Events that do not concern SLAs append nothing.
 */
int esc_apply(esc_ticket *t, const esc_event *ev, const esc_policy *pol, int npol, esc_record *rec, int cap);

#endif
