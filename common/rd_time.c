/*
 * rd_time.c -- clocks.
 *
 * Two clocks on purpose: CLOCK_REALTIME for timestamps that leave the process (stored rows, log
 * lines), CLOCK_MONOTONIC for anything measured between two points in this process (latencies,
 * deadlines, backoff), because the wall clock can jump when NTP steps it. Sleeping is done against
 * an absolute monotonic deadline so that a signal interrupting the sleep never shortens or
 * stretches it.
 */
#include "rd_time.h"

#include <errno.h>
#include <time.h>

int64_t rd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rd_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void rd_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(ms / 1000);
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    /* clock_nanosleep returns the error number itself rather than setting errno. With an absolute
     * deadline, restarting after EINTR needs no remaining-time bookkeeping. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR)
        ;
}
