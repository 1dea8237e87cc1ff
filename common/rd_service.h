/*
 * rd_service.h -- what every Redress service's main() does the same way: the standard options
 * (--config FILE, --check-config, --help, --version), configuration (file + REDRESS_* environment),
 * logging, SIGTERM/SIGINT handling, ZeroMQ sockets from comma-separated endpoint lists, and a
 * process name for logs and rows ("host:pid").
 */
#ifndef RD_SERVICE_H
#define RD_SERVICE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "rd_config.h"

typedef struct {
    const char *name;         /* "dispatcher": logs say component=dispatcher, binary redress-<name> */
    void (*usage)(FILE *out); /* the service's --help text */
    rd_config *cfg;           /* loaded configuration (owned) */
    bool check_only;          /* --check-config given */
    char who[128];            /* "host:pid" */
} rd_service;

/*
 * Parses the standard options and loads the configuration; initialises logging from log.level.
 * Returns -1 when the service should go on, otherwise the exit status main() should return
 * (0 after --help/--version, 2 after a usage or configuration error, message printed).
 */
int rd_service_init(rd_service *s, int argc, char **argv);

/* Installs SIGTERM/SIGINT handlers (and ignores SIGPIPE). */
void rd_service_signals(void);
/* The signal that asked us to stop, 0 while running. */
int rd_service_stopping(void);

/* A socket bound or connected to every endpoint of a comma-separated list, with linger 0 and
 * high-water marks of hwm messages; NULL (logged) on failure. */
void *rd_service_socket(void *zctx, int type, const char *endpoints, bool bind, int hwm);

/* Reads a whole file (or what is left of a stream); NULL when it cannot (errno says why). Caller
 * frees. NUL-terminated; *len excludes the NUL. */
char *rd_read_file(const char *path, size_t *len);
char *rd_read_stream(FILE *f, size_t *len);

void rd_service_done(rd_service *s);

#endif
