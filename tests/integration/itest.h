/*
 * itest.h -- helpers for integration tests: run a real intake process against the private
 * PostgreSQL that tests/lib/with-stack.sh started (REDRESS_PG_DSN), talk to it as a gateway, and
 * look at what landed in the database.
 */
#ifndef ITEST_H
#define ITEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "rd_client.h"

typedef struct {
    pid_t pid;
    int port, push_port, pub_port, http_port;
    char endpoint[64];
    char log_path[256];
} itest_intake;

int itest_free_port(void);
/* Starts redress-intake on free ports and waits until it answers with PostgreSQL connected. */
bool itest_intake_start(itest_intake *s, const char *extra_env /* "K=V;K=V" or NULL */);
/* Same ports again (after a kill). */
bool itest_intake_restart(itest_intake *s);
void itest_intake_kill(itest_intake *s, int sig);
void itest_intake_stop(itest_intake *s); /* SIGTERM, wait; SIGKILL after 10 s */
/* Waits until intake answers and PostgreSQL is reachable (a probe action gets NOT_FOUND). */
bool itest_intake_ready(itest_intake *s, int timeout_ms);

/* Any other service binary: started with the extra environment ("K=V;K=V"), stderr to log_path.
 * Killed with the test like intake. */
pid_t itest_spawn(const char *bin, const char *extra_env, const char *log_path);
void itest_reap(pid_t *pid, int sig); /* signal, wait, forget */
/* Runs a command line through /bin/sh and returns its exit status (stdout/stderr to the log). */
int itest_run(const char *cmdline);
/* Runs redressctl (REDRESS_REDRESSCTL_BIN) with args (a shell fragment), its stdout and stderr
 * kept in dir/out.txt and dir/err.txt and echoed to the test log; returns its exit status. */
int itest_ctl(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether the last itest_ctl() in dir printed needle on stdout (which "out") or stderr ("err"). */
bool itest_ctl_printed(const char *dir, const char *which, const char *needle);
/* Polls a count query until it returns want (true) or timeout_ms passes (false). */
bool itest_wait_count(PGconn *c, const char *sql, int64_t want, int timeout_ms);

PGconn *itest_pg(void);
int64_t itest_count(PGconn *c, const char *sql); /* first column of first row as integer; -1 on error */
/* A digest of every row of every Redress table: equal before and after means nothing changed. */
char *itest_db_fingerprint(PGconn *c);

/* Packs an envelope to a malloc'd buffer. */
uint8_t *itest_pack(const Redress__V1__Envelope *e, size_t *len);
/* A valid new-ticket envelope with defaults the caller may change (strings point to statics). */
void itest_new_ticket(Redress__V1__Envelope *e, Redress__V1__NewTicket *t, const char *event_id);
void itest_action(Redress__V1__Envelope *e, Redress__V1__TicketAction *a, const char *event_id, const char *ticket_id,
                  Redress__V1__ActionKind kind);

/* Sends one raw frame and waits for the reply (timeout 10 s); NULL on timeout. */
Redress__V1__Reply *itest_call_raw(rd_client *c, const void *buf, size_t len);
Redress__V1__Reply *itest_call(rd_client *c, const Redress__V1__Envelope *e);

/* Sends one multipart message of n frames on a fresh DEALER and waits for the reply. */
Redress__V1__Reply *itest_call_frames(const char *endpoint, const void **frames, const size_t *lens, int n);

const char *itest_cfpb_path(void); /* NULL (and the test skips) when ../shared/datasets is absent */

#endif
