/*
 * rd_service.c -- the shared skeleton of a service's main().
 */
#include "rd_service.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "rd_log.h"

static volatile sig_atomic_t stopSignal;

static void onSignal(int sig)
{
    stopSignal = sig;
}

int rd_service_init(rd_service *s, int argc, char **argv)
{
    const char *path = NULL;
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            s->check_only = true;
            break;
        case 'h':
            s->usage(stdout);
            return 0;
        case 'V':
            printf("redress-%s 0.1.0\n", s->name);
            return 0;
        default:
            s->usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "redress-%s: unexpected argument '%s' (try --help)\n", s->name, argv[optind]);
        return 2;
    }
    char err[512];
    s->cfg = rd_config_load(path, err, sizeof(err));
    if (s->cfg == NULL) {
        fprintf(stderr, "redress-%s: %s\n", s->name, err);
        return 2;
    }
    rd_log_init(s->name, rd_log_level_parse(rd_config_str(s->cfg, "log.level", "info")));
    char host[64] = "";
    gethostname(host, sizeof(host) - 1);
    snprintf(s->who, sizeof(s->who), "%s:%d", host, (int)getpid());
    return -1;
}

void rd_service_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = onSignal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int rd_service_stopping(void)
{
    return stopSignal;
}

void *rd_service_socket(void *zctx, int type, const char *endpoints, bool bind, int hwm)
{
    void *s = zmq_socket(zctx, type);
    if (s == NULL)
        return NULL;
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    if (type == ZMQ_SUB)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    char *eps = strdup(endpoints);
    char *save = NULL;
    bool ok = eps != NULL;
    for (char *e = eps ? strtok_r(eps, ",", &save) : NULL; e && ok; e = strtok_r(NULL, ",", &save)) {
        if ((bind ? zmq_bind(s, e) : zmq_connect(s, e)) != 0) {
            rd_log(RD_LOG_ERROR, bind ? "cannot bind" : "cannot connect", "endpoint", e, "error",
                   zmq_strerror(zmq_errno()), NULL);
            ok = false;
        }
    }
    free(eps);
    if (!ok) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

char *rd_read_stream(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL)
            return NULL;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap *= 2);
            if (nb == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *rd_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = rd_read_stream(f, len);
    fclose(f);
    return buf;
}

void rd_service_done(rd_service *s)
{
    rd_config_destroy(&s->cfg);
}
