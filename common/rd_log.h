/*
 * rd_log.h -- structured logging.
 *
 * One line per record on stderr, logfmt (key=value, values quoted when needed), so a person can
 * read it and a log shipper can parse it without a schema:
 *
 *   ts=2026-11-23T09:12:01.123Z level=info svc=intake msg="batch committed" events=128 ms=2.1
 *
 * rd_log() takes the message and then alternating key/value string pairs ended by NULL. Thread
 * safe: every record is formatted into one buffer and written with a single write(2).
 */
#ifndef RD_LOG_H
#define RD_LOG_H

typedef enum { RD_LOG_DEBUG = 0, RD_LOG_INFO, RD_LOG_WARN, RD_LOG_ERROR } rd_log_level;

void rd_log_init(const char *service, rd_log_level min_level);
rd_log_level rd_log_level_parse(const char *name); /* "debug".."error"; RD_LOG_INFO if unknown */

/* rd_log(RD_LOG_INFO, "batch committed", "events", "128", NULL); */
void rd_log(rd_log_level level, const char *msg, ...) __attribute__((sentinel));

/* printf-style convenience for a message with no fields. */
void rd_logf(rd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
