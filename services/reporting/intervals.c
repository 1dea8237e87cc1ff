/*
 * intervals.c -- the working intervals of a business calendar, for reporting.work_intervals.
 *
 * The reporting SQL measures business time as the difference of a running total of working
 * seconds (reporting.work_s), so the calendar is written out once as a list of working intervals
 * with their cumulative sums. rd_calendar answers "the next working instant" (rd_calendar_add with
 * 0) and "working time between two instants" (rd_calendar_between); the end of a working interval
 * is the first instant e after its start with between(start, e) < e - start, found by galloping
 * then bisecting to the millisecond, so time zones, DST, holidays and make-up days come out exactly
 * as the SLA clocks see them.
 */
#include <stdlib.h>
#include <string.h>

#include "reporting.h"

static bool push(rp_intervals *out, int64_t s, int64_t e, int64_t cum)
{
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 1024;
        rp_interval *nv = realloc(out->v, cap * sizeof(*nv));
        if (nv == NULL)
            return false;
        out->v = nv;
        out->cap = cap;
    }
    out->v[out->n++] = (rp_interval){s, e, cum};
    return true;
}

/* Whether [s, e) is all working time. -1 when the calendar library fails. */
static int allWorking(const rd_calendar *c, int64_t s, int64_t e)
{
    int64_t w = rd_calendar_between(c, s, e);
    if (w < 0)
        return -1;
    return w == e - s;
}

/* The end of the working interval starting at s (a working instant): the first instant after s
 * that is not working time, at most cap. -1 on failure.
 *
 * Fast path: probe t = s + 1 h, 2 h, 4 h ... while [s, t) is all working time. At the first t
 * that is not, w = between(s, t) = (e - s) + the working time after the gap that follows e, so
 * cand = s + w >= e, with equality when t fell inside that gap -- which [s, cand) being all working
 * time proves. Otherwise cand is past the gap and the next round probes t = cand: each round
 * moves cand back by at least one gap, so this ends in a few rounds (usually one). About 6 calls
 * of rd_calendar_between per interval instead of 30 for bisection to the millisecond, which
 * remains as the fallback. */
static int64_t intervalEnd(const rd_calendar *c, int64_t s, int64_t cap)
{
    int64_t t = s + 3600000 < cap ? s + 3600000 : cap;
    for (int round = 0; round < 64; round++) {
        int64_t w = rd_calendar_between(c, s, t);
        if (w < 0)
            return -1;
        if (w == t - s) { /* all working: further out */
            if (t == cap)
                return cap;
            t = s + 2 * (t - s) < cap ? s + 2 * (t - s) : cap;
            continue;
        }
        int64_t cand = s + w;
        int k = allWorking(c, s, cand);
        if (k < 0)
            return -1;
        if (k && cand > s && !rd_calendar_is_working(c, cand))
            return cand;
        if (k || cand <= s)
            break; /* the calendar contradicts itself: bisect */
        t = cand;
    }
    int k = allWorking(c, s, cap);
    if (k != 0)
        return k < 0 ? -1 : cap;
    /* [s, lo) is working time, [s, hi) is not: gallop from 15 minutes, then bisect */
    int64_t lo = s, hi = cap, step = 15 * 60000;
    while (s + step < hi) {
        k = allWorking(c, s, s + step);
        if (k < 0)
            return -1;
        if (!k) {
            hi = s + step;
            break;
        }
        lo = s + step;
        step *= 2;
    }
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        k = allWorking(c, s, mid);
        if (k < 0)
            return -1;
        if (k)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

long rp_intervals_build(const rd_calendar *c, int64_t from_ms, int64_t to_ms, int64_t cum0_ms, rp_intervals *out)
{
    long added = 0;
    int64_t t = from_ms, cum = cum0_ms;
    if (to_ms > RD_CALENDAR_MAX_MS)
        to_ms = RD_CALENDAR_MAX_MS;
    while (t < to_ms) {
        int64_t s = rd_calendar_add(c, t, 0);
        if (s == RD_CALENDAR_NEVER || s >= to_ms)
            break; /* no more working time (within rd_calendar's horizon) */
        if (s < t)
            return -1; /* cannot happen: the calendar contradicts itself */
        int64_t cap = s + RP_MAX_INTERVAL;
        if (cap > RD_CALENDAR_MAX_MS)
            cap = RD_CALENDAR_MAX_MS;
        if (cap <= s)
            break;
        int64_t e = intervalEnd(c, s, cap);
        if (e < 0)
            return -1;
        if (e <= s) /* s is not working time after all: step over it */
            e = s + 1;
        else if (!push(out, s, e, cum))
            return -1;
        else {
            cum += e - s;
            added++;
        }
        t = e;
    }
    return added;
}

void rp_intervals_free(rp_intervals *iv)
{
    free(iv->v);
    memset(iv, 0, sizeof(*iv));
}

int64_t rp_intervals_epoch(const rd_calendar *c)
{
    return rd_calendar_from_local(c, 2015, 1, 1, 0, 0, 0);
}

/* work(t): working ms from the first interval up to t. */
static int64_t workAt(const rp_intervals *iv, int64_t t)
{
    size_t lo = 0, hi = iv->n; /* the first interval starting after t */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (iv->v[mid].start_ms <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    const rp_interval *w = &iv->v[lo - 1];
    return w->cum_ms + ((t < w->end_ms ? t : w->end_ms) - w->start_ms);
}

int64_t rp_intervals_between(const rp_intervals *iv, int64_t a_ms, int64_t b_ms)
{
    if (b_ms <= a_ms)
        return 0;
    return workAt(iv, b_ms) - workAt(iv, a_ms);
}
