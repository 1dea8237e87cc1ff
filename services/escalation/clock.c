/*
 * clock.c -- SLA clocks in business time (see escalation.h). Pure: no clock, no I/O.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escalation.h"

/* ---- names ------------------------------------------------------------------------------------ */

static const char *const KIND_NAMES[] = {"accept", "first_response", "chase_update", "resolution"};
static const char *const UNIT_NAMES[] = {"minutes", "business_minutes", "working_days"};
static const char *const ACTION_NAMES[] = {"notify", "raise_priority", "reroute"};
static const char *const ROLE_NAMES[] = {"team_lead", "department_head", "leadership"};
static const char *const EV_NAMES[] = {"armed",  "warned",  "breached",  "met",
                                       "paused", "resumed", "escalated", "cancelled"};

#define NAMEOF(tab, i) ((i) >= 0 && (size_t)(i) < sizeof(tab) / sizeof(tab[0]) ? tab[i] : "invalid")

static int parseName(const char *const *tab, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(tab[i], s) == 0)
            return (int)i;
    return -1;
}

const char *esc_kind_name(esc_kind k)
{
    return NAMEOF(KIND_NAMES, (int)k);
}
int esc_kind_parse(const char *s)
{
    return parseName(KIND_NAMES, 4, s);
}
const char *esc_unit_name(esc_unit u)
{
    return NAMEOF(UNIT_NAMES, (int)u);
}
int esc_unit_parse(const char *s)
{
    return parseName(UNIT_NAMES, 3, s);
}
const char *esc_action_name(esc_action a)
{
    return NAMEOF(ACTION_NAMES, (int)a);
}
int esc_action_parse(const char *s)
{
    return parseName(ACTION_NAMES, 3, s);
}
const char *esc_role_name(esc_role r)
{
    return NAMEOF(ROLE_NAMES, (int)r);
}
int esc_role_parse(const char *s)
{
    return parseName(ROLE_NAMES, 3, s);
}
const char *esc_evkind_name(esc_evkind k)
{
    return NAMEOF(EV_NAMES, (int)k);
}

/* ---- policies --------------------------------------------------------------------------------- */

const esc_policy *esc_policy_pick(const esc_policy *p, int n, esc_kind kind, const esc_facts *f)
{
    const esc_policy *best = NULL;
    int bestScore = -1;
    const char *bt = f->business_type ? f->business_type : "";
    const char *sev = f->severity ? f->severity : "";
    const char *ch = f->channel ? f->channel : "";
    const char *tier = f->vip ? "vip" : "standard";
    for (int i = 0; i < n; i++) {
        const esc_policy *q = &p[i];
        if (q->kind != kind)
            continue;
        int score = 0;
        if (strcmp(q->business_type, "*") != 0) {
            if (strcmp(q->business_type, bt) != 0)
                continue;
            score += 8;
        }
        if (q->severity[0]) {
            if (strcmp(q->severity, sev) != 0)
                continue;
            score += 4;
        }
        if (q->channel[0]) {
            if (strcmp(q->channel, ch) != 0)
                continue;
            score += 2;
        }
        if (q->tier[0]) {
            if (strcmp(q->tier, tier) != 0)
                continue;
            score += 1;
        }
        if (q->transferred >= 0) {
            if (q->transferred != (f->transferred ? 1 : 0))
                continue;
            score += 1;
        }
        if (score > bestScore || (score == bestScore && strcmp(q->id, best->id) < 0)) {
            best = q;
            bestScore = score;
        }
    }
    return best;
}

/* ---- arithmetic ------------------------------------------------------------------------------- */

static int64_t addBusiness(const rd_calendar *cal, int64_t from, int64_t ms)
{
    if (cal == NULL)
        return from + ms;
    int64_t r = rd_calendar_add(cal, from, ms);
    return r == RD_CALENDAR_NEVER ? ESC_NONE : r;
}

static int64_t betweenBusiness(const rd_calendar *cal, int64_t a, int64_t b)
{
    if (b <= a)
        return 0;
    if (cal == NULL)
        return b - a;
    int64_t r = rd_calendar_between(cal, a, b);
    return r < 0 ? 0 : r;
}

/* The end of the working day that is n working days after start's own day (n == 0: start). With
 * no calendar every day is a working day of 24 hours: start + n days. */
static int64_t workingDaysEnd(const rd_calendar *cal, int64_t start, int n)
{
    if (n <= 0)
        return start;
    if (cal == NULL)
        return start + (int64_t)n * 86400000;
    rd_local_time lt;
    if (!rd_calendar_to_local(cal, start, &lt))
        return ESC_NONE;
    int64_t day = rd_calendar_from_local(cal, lt.year, lt.month, lt.day, 0, 0, 0);
    for (int i = 0, found = 0; i < RD_CALENDAR_HORIZON_DAYS && day != RD_CALENDAR_NEVER; i++) {
        /* the next local day: 26 hours later is always inside it (DST moves at most an hour or two) */
        if (!rd_calendar_to_local(cal, day + 26 * 3600000LL, &lt))
            return ESC_NONE;
        int64_t next = rd_calendar_from_local(cal, lt.year, lt.month, lt.day, 0, 0, 0);
        if (!rd_calendar_to_local(cal, next + 26 * 3600000LL, &lt))
            return ESC_NONE;
        int64_t after = rd_calendar_from_local(cal, lt.year, lt.month, lt.day, 0, 0, 0);
        if (next == RD_CALENDAR_NEVER || after == RD_CALENDAR_NEVER)
            return ESC_NONE;
        int64_t work = rd_calendar_between(cal, next, after);
        if (work > 0 && ++found == n)
            return addBusiness(cal, next, work); /* the end of that day's last working interval */
        day = next;
    }
    return ESC_NONE;
}

/* A policy amount (target or level) as business ms from start. */
static int64_t offsetOf(const esc_policy *p, const rd_calendar *cal, int64_t start, int amount)
{
    if (p->unit == ESC_UNIT_WORKING_DAYS) {
        int64_t end = workingDaysEnd(cal, start, amount);
        return end == ESC_NONE ? ESC_NONE : betweenBusiness(cal, start, end);
    }
    return (int64_t)amount * 60000;
}

bool esc_arm(const esc_policy *p, esc_kind kind, int cycle, int64_t start_ms, esc_clock *out)
{
    memset(out, 0, sizeof(*out));
    const rd_calendar *cal = p->unit == ESC_UNIT_MINUTES ? NULL : p->cal;
    int64_t target = offsetOf(p, cal, start_ms, p->target);
    if (target == ESC_NONE || target < 0 || addBusiness(cal, start_ms, target) == ESC_NONE)
        return false; /* no working time ahead: nothing can be promised */
    out->kind = kind;
    out->cycle = cycle;
    snprintf(out->policy_id, sizeof(out->policy_id), "%s", p->id);
    out->cal = cal;
    out->target_ms = target;
    out->started_ms = start_ms;
    out->running_since_ms = start_ms;
    out->state = ESC_RUNNING;
    out->breached_ms = ESC_NONE;
    out->stopped_ms = ESC_NONE;
    int n = 0;
    for (int i = 0; i < p->nwarn && n < ESC_MAX_STAGES; i++) {
        if (p->warn_pct[i] <= 0 || p->warn_pct[i] >= 100)
            continue;
        out->stage_code[n] = p->warn_pct[i];
        out->stage_at[n++] = target * p->warn_pct[i] / 100;
    }
    if (n < ESC_MAX_STAGES) {
        out->stage_code[n] = ESC_BREACH;
        out->stage_at[n++] = target;
    }
    for (int i = 0; i < p->nlevels && n < ESC_MAX_STAGES; i++) {
        int64_t off = offsetOf(p, cal, start_ms, p->levels[i].after);
        if (off == ESC_NONE)
            continue;
        out->stage_code[n] = ESC_BREACH + p->levels[i].level;
        out->stage_at[n++] = off;
    }
    out->nstages = n;
    /* insertion sort by (offset, code): stable and tiny */
    for (int i = 1; i < n; i++) {
        int code = out->stage_code[i];
        int64_t at = out->stage_at[i];
        int j = i - 1;
        while (j >= 0 && (out->stage_at[j] > at || (out->stage_at[j] == at && out->stage_code[j] > code))) {
            out->stage_code[j + 1] = out->stage_code[j];
            out->stage_at[j + 1] = out->stage_at[j];
            j--;
        }
        out->stage_code[j + 1] = code;
        out->stage_at[j + 1] = at;
    }
    return true;
}

int64_t esc_elapsed(const esc_clock *c, int64_t at_ms)
{
    if (c->state != ESC_RUNNING || c->running_since_ms == ESC_NONE)
        return c->elapsed_ms;
    return c->elapsed_ms + betweenBusiness(c->cal, c->running_since_ms, at_ms);
}

int64_t esc_instant(const esc_clock *c, int64_t offset_ms)
{
    if (c->state != ESC_RUNNING || c->running_since_ms == ESC_NONE)
        return ESC_NONE;
    int64_t rem = offset_ms - c->elapsed_ms;
    if (rem < 0)
        return c->running_since_ms; /* reached before the clock last resumed: due at once */
    return addBusiness(c->cal, c->running_since_ms, rem);
}

int64_t esc_next_fire(const esc_clock *c)
{
    if (c->next_stage >= c->nstages)
        return ESC_NONE;
    return esc_instant(c, c->stage_at[c->next_stage]);
}

int64_t esc_due(const esc_clock *c)
{
    return esc_instant(c, c->target_ms);
}

bool esc_pause(esc_clock *c, int64_t at_ms)
{
    if (c->state != ESC_RUNNING)
        return false;
    if (at_ms < c->running_since_ms)
        at_ms = c->running_since_ms;
    c->elapsed_ms = esc_elapsed(c, at_ms);
    c->running_since_ms = ESC_NONE;
    c->state = ESC_PAUSED;
    return true;
}

bool esc_resume(esc_clock *c, int64_t at_ms)
{
    if (c->state != ESC_PAUSED)
        return false;
    c->running_since_ms = at_ms;
    c->state = ESC_RUNNING;
    return true;
}

bool esc_stop(esc_clock *c, int64_t at_ms, bool met)
{
    if (c->state == ESC_STOPPED)
        return false;
    if (c->state == ESC_RUNNING) {
        if (at_ms < c->running_since_ms)
            at_ms = c->running_since_ms;
        c->elapsed_ms = esc_elapsed(c, at_ms);
    }
    c->running_since_ms = ESC_NONE;
    c->state = ESC_STOPPED;
    c->outcome = met ? 1 : 2;
    c->stopped_ms = at_ms;
    return true;
}

int esc_fire(esc_clock *c, int64_t now_ms, esc_fired *out)
{
    int n = 0;
    while (c->next_stage < c->nstages && n < ESC_MAX_STAGES) {
        int64_t at = esc_instant(c, c->stage_at[c->next_stage]);
        if (at == ESC_NONE || at > now_ms)
            break;
        out[n].code = c->stage_code[c->next_stage];
        out[n].at_ms = at;
        if (out[n].code == ESC_BREACH && c->breached_ms == ESC_NONE)
            c->breached_ms = at;
        n++;
        c->next_stage++;
    }
    return n;
}

/* ---- history -> clocks ------------------------------------------------------------------------ */

void esc_ticket_free(esc_ticket *t)
{
    free(t->v);
    free(t->dirty);
    memset(t, 0, sizeof(*t));
}

esc_clock *esc_ticket_push(esc_ticket *t)
{
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 4;
        esc_clock *v = realloc(t->v, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        t->v = v;
        bool *d = realloc(t->dirty, (size_t)cap * sizeof(*d));
        if (d == NULL)
            return NULL;
        t->dirty = d;
        t->cap = cap;
    }
    memset(&t->v[t->n], 0, sizeof(t->v[0]));
    t->dirty[t->n] = true;
    return &t->v[t->n++];
}

/* The clock of this kind still going (running or paused), newest cycle; -1 when none. */
static int live(const esc_ticket *t, esc_kind k)
{
    int best = -1;
    for (int i = 0; i < t->n; i++)
        if (t->v[i].kind == k && t->v[i].state != ESC_STOPPED && (best < 0 || t->v[i].cycle > t->v[best].cycle))
            best = i;
    return best;
}

static int lastCycle(const esc_ticket *t, esc_kind k)
{
    int c = 0;
    for (int i = 0; i < t->n; i++)
        if (t->v[i].kind == k && t->v[i].cycle > c)
            c = t->v[i].cycle;
    return c;
}

typedef struct {
    esc_record *rec;
    int n, cap;
    bool overflow;
} recbuf;

static void note(recbuf *b, int clock, esc_evkind kind, int level, int64_t at, const char *detail)
{
    if (b->n >= b->cap) {
        b->overflow = true;
        return;
    }
    b->rec[b->n++] = (esc_record){clock, kind, level, at, detail};
}

static bool arm(esc_ticket *t, esc_kind k, int64_t start, int64_t at, const esc_facts *f, const esc_policy *pol,
                int npol, recbuf *b)
{
    const esc_policy *p = esc_policy_pick(pol, npol, k, f);
    if (p == NULL)
        return true; /* no promise of this kind for this ticket */
    int cycle = lastCycle(t, k) + 1;
    esc_clock tmp;
    if (!esc_arm(p, k, cycle, start, &tmp))
        return true; /* a calendar without working time ahead: nothing can be promised */
    esc_clock *c = esc_ticket_push(t);
    if (c == NULL)
        return false;
    *c = tmp;
    note(b, t->n - 1, ESC_EV_ARMED, 0, at, p->id);
    return true;
}

static void stopKind(esc_ticket *t, esc_kind k, int64_t at, bool met, recbuf *b)
{
    int i = live(t, k);
    if (i >= 0 && esc_stop(&t->v[i], at, met)) {
        t->dirty[i] = true;
        note(b, i, met ? ESC_EV_MET : ESC_EV_CANCELLED, 0, at, "");
    }
}

int esc_apply(esc_ticket *t, const esc_event *ev, const esc_policy *pol, int npol, esc_record *rec, int cap)
{
    recbuf b = {rec, 0, cap, false};
    const char *k = ev->kind ? ev->kind : "";
    esc_facts f = ev->facts;
    bool ok = true;
    if (strcmp(k, "classify") == 0) {
        f.transferred = false;
        if (lastCycle(t, ESC_FIRST_RESPONSE) == 0)
            ok = arm(t, ESC_FIRST_RESPONSE, ev->received_ms, ev->at_ms, &f, pol, npol, &b);
        if (ok && lastCycle(t, ESC_RESOLUTION) == 0)
            ok = arm(t, ESC_RESOLUTION, ev->received_ms, ev->at_ms, &f, pol, npol, &b);
    } else if (strcmp(k, "assign") == 0) {
        int a = live(t, ESC_ACCEPT);
        if (a < 0 || !t->v[a].by_transfer) {
            stopKind(t, ESC_ACCEPT, ev->at_ms, false, &b);
            f.transferred = false;
            ok = arm(t, ESC_ACCEPT, ev->at_ms, ev->at_ms, &f, pol, npol, &b);
        }
    } else if (strcmp(k, "transfer") == 0) {
        stopKind(t, ESC_ACCEPT, ev->at_ms, false, &b);
        f.transferred = true;
        int before = t->n;
        ok = arm(t, ESC_ACCEPT, ev->at_ms, ev->at_ms, &f, pol, npol, &b);
        if (ok && t->n > before)
            t->v[t->n - 1].by_transfer = true;
    } else if (strcmp(k, "accept") == 0) {
        stopKind(t, ESC_ACCEPT, ev->at_ms, true, &b);
    } else if (strcmp(k, "reply") == 0) {
        stopKind(t, ESC_FIRST_RESPONSE, ev->at_ms, true, &b);
        stopKind(t, ESC_CHASE_UPDATE, ev->at_ms, true, &b);
    } else if (strcmp(k, "return") == 0) {
        stopKind(t, ESC_ACCEPT, ev->at_ms, false, &b);
    } else if (strcmp(k, "resolve") == 0) {
        stopKind(t, ESC_RESOLUTION, ev->at_ms, true, &b);
        stopKind(t, ESC_FIRST_RESPONSE, ev->at_ms, true, &b);
        stopKind(t, ESC_CHASE_UPDATE, ev->at_ms, true, &b);
        stopKind(t, ESC_ACCEPT, ev->at_ms, false, &b);
    } else if (strcmp(k, "close") == 0) {
        for (int kk = 0; kk < ESC__KINDS; kk++)
            stopKind(t, (esc_kind)kk, ev->at_ms, false, &b);
    } else if (strcmp(k, "reopen") == 0) {
        f.transferred = false;
        stopKind(t, ESC_RESOLUTION, ev->at_ms, false, &b); /* none should be going; be sure */
        ok = arm(t, ESC_RESOLUTION, ev->at_ms, ev->at_ms, &f, pol, npol, &b);
    } else if (strcmp(k, "wait_customer") == 0) {
        for (int i = 0; i < t->n; i++)
            if (esc_pause(&t->v[i], ev->at_ms)) {
                t->dirty[i] = true;
                note(&b, i, ESC_EV_PAUSED, 0, ev->at_ms, "");
            }
    } else if (strcmp(k, "resume") == 0) {
        for (int i = 0; i < t->n; i++)
            if (esc_resume(&t->v[i], ev->at_ms)) {
                t->dirty[i] = true;
                note(&b, i, ESC_EV_RESUMED, 0, ev->at_ms, "");
            }
    } else if (strcmp(k, "chase") == 0) {
        f.transferred = false;
        if (live(t, ESC_CHASE_UPDATE) < 0)
            ok = arm(t, ESC_CHASE_UPDATE, ev->at_ms, ev->at_ms, &f, pol, npol, &b);
    }
    if (!ok || b.overflow)
        return -1;
    return b.n;
}
