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

/*
 * Internal links over CURVE (docs/security.md). internal.curve_key_file names the cluster's secret
 * key file (`redressctl keys generate`, the same file on every host, mode 600); rd_service_init
 * loads it. Then every socket rd_service_socket makes is encrypted and authenticated: a bound
 * socket is a CURVE server with the cluster key and admits only peers holding that same key
 * (a ZAP handler, ZAP domain "redress-internal"); a connecting socket is its client. Without the
 * setting the internal links are plaintext, as before.
 */
bool rd_internal_curve_on(void);
/* Applies the above to s before it binds (server) or connects; true when the setting is off. A
 * server socket starts the process' internal ZAP handler in zctx on first use, unless a handler
 * is bound there already (intake with intake.auth = curve answers internal requests itself, with
 * rd_internal_zap_ok). */
bool rd_internal_curve_apply(void *zctx, void *s, bool server);
/* For a ZAP handler: is this request (domain, mechanism, 32-byte client key) an internal peer? */
bool rd_internal_zap_ok(const void *domain, size_t dlen, const void *mech, size_t mlen, const void *key, size_t klen);
#define RD_INTERNAL_ZAP_DOMAIN "redress-internal"

/* Reads a whole file (or what is left of a stream); NULL when it cannot (errno says why). Caller
 * frees. NUL-terminated; *len excludes the NUL. */
char *rd_read_file(const char *path, size_t *len);
char *rd_read_stream(FILE *f, size_t *len);

void rd_service_done(rd_service *s);

#endif
