/*
 * rd_time.h -- clocks. Wall time for timestamps we store, monotonic time for intervals.
 */
#ifndef RD_TIME_H
#define RD_TIME_H

#include <stdint.h>

int64_t rd_now_ms(void);      /* wall clock, Unix epoch milliseconds */
int64_t rd_mono_us(void);     /* monotonic microseconds, for latencies and deadlines */
void rd_sleep_ms(int64_t ms); /* sleeps, restarting after signals until the time has passed */

#endif
