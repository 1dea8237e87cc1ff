/*
 * rd_service.c -- the shared skeleton of a service's main().
 */
#include "rd_service.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "rd_auth.h"
#include "rd_log.h"
#include "rd_time.h"

/* internal.curve_key_file, loaded once by rd_service_init (read-only afterwards) */
static bool internalCurve;
static char internalSecret[RD_Z85_KEY_LEN + 1], internalPublic[RD_Z85_KEY_LEN + 1];
static uint8_t internalPublicBin[32];
static void *internalZapCtx; /* the context whose ZAP endpoint this process answers (main thread only) */

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
    const char *keyFile = rd_config_str(s->cfg, "internal.curve_key_file", "");
    if (keyFile[0] != '\0') {
        if (!zmq_has("curve")) {
            fprintf(stderr, "redress-%s: internal.curve_key_file is set, but this libzmq has no CURVE support\n",
                    s->name);
            return 2;
        }
        if (!rd_curve_secret_load(keyFile, internalSecret, internalPublic, err, sizeof(err))) {
            fprintf(stderr, "redress-%s: internal.curve_key_file: %s\n", s->name, err);
            return 2;
        }
        zmq_z85_decode(internalPublicBin, internalPublic);
        internalCurve = true;
    }
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
    if (!rd_internal_curve_apply(zctx, s, bind)) {
        zmq_close(s);
        return NULL;
    }
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

/* ---- internal links over CURVE ------------------------------------------------------------- */

bool rd_internal_curve_on(void)
{
    return internalCurve;
}

bool rd_internal_zap_ok(const void *domain, size_t dlen, const void *mech, size_t mlen, const void *key, size_t klen)
{
    static const char d[] = RD_INTERNAL_ZAP_DOMAIN;
    return internalCurve && dlen == sizeof(d) - 1 && memcmp(domain, d, dlen) == 0 && mlen == 5 &&
           memcmp(mech, "CURVE", 5) == 0 && klen == 32 && memcmp(key, internalPublicBin, 32) == 0;
}

/* The internal ZAP handler (RFC 27): one thread per process, until zmq_ctx_term() ends it. */
static void *internalZapMain(void *arg)
{
    void *zap = arg;
    for (;;) {
        zmq_msg_t part[8];
        int n = 0;
        bool more = true, term = false;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, zap, 0) < 0) {
                zmq_msg_close(&m);
                term = zmq_errno() == ETERM;
                break;
            }
            more = zmq_msg_more(&m);
            if (n < 8)
                part[n++] = m;
            else
                zmq_msg_close(&m);
        }
        if (term) {
            for (int i = 0; i < n; i++)
                zmq_msg_close(&part[i]);
            break;
        }
        if (n >= 2) {
            bool ok =
                n >= 7 && rd_internal_zap_ok(zmq_msg_data(&part[2]), zmq_msg_size(&part[2]), zmq_msg_data(&part[5]),
                                             zmq_msg_size(&part[5]), zmq_msg_data(&part[6]), zmq_msg_size(&part[6]));
            static int64_t lastLog; /* this thread only: at most one line per 10 s */
            if (!ok && rd_mono_us() - lastLog > 10 * 1000000LL) {
                lastLog = rd_mono_us();
                char address[64] = "";
                if (n >= 4) {
                    size_t l =
                        zmq_msg_size(&part[3]) < sizeof(address) - 1 ? zmq_msg_size(&part[3]) : sizeof(address) - 1;
                    memcpy(address, zmq_msg_data(&part[3]), l);
                }
                rd_log(RD_LOG_WARN, "internal peer refused: not the cluster key (at most one line per 10 s)", "peer",
                       address, NULL);
            }
            zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
            zmq_msg_send(&part[1], zap, ZMQ_SNDMORE);
            zmq_send(zap, ok ? "200" : "400", 3, ZMQ_SNDMORE);
            zmq_send(zap, ok ? "OK" : "not the cluster key", ok ? 2 : 19, ZMQ_SNDMORE);
            zmq_send(zap, ok ? "internal" : "", ok ? 8 : 0, ZMQ_SNDMORE);
            zmq_send(zap, "", 0, 0);
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
    }
    zmq_close(zap);
    return NULL;
}

static bool internalZapStart(void *zctx)
{
    if (internalZapCtx == zctx)
        return true;
    void *zap = zmq_socket(zctx, ZMQ_REP);
    if (zap == NULL)
        return false;
    int linger = 0;
    zmq_setsockopt(zap, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_bind(zap, "inproc://zeromq.zap.01") != 0) {
        int e = zmq_errno();
        zmq_close(zap);
        if (e == EADDRINUSE) { /* the process has its own handler (intake's); it asks rd_internal_zap_ok */
            internalZapCtx = zctx;
            return true;
        }
        rd_log(RD_LOG_ERROR, "cannot bind the internal ZAP handler", "error", zmq_strerror(e), NULL);
        return false;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, internalZapMain, zap) != 0) {
        zmq_close(zap);
        return false;
    }
    pthread_detach(t);
    internalZapCtx = zctx;
    return true;
}

bool rd_internal_curve_apply(void *zctx, void *s, bool server)
{
    if (!internalCurve)
        return true;
    bool ok;
    if (server) {
        int on = 1;
        static const char domain[] = RD_INTERNAL_ZAP_DOMAIN;
        ok = internalZapStart(zctx) && zmq_setsockopt(s, ZMQ_CURVE_SERVER, &on, sizeof(on)) == 0 &&
             zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, internalSecret, RD_Z85_KEY_LEN) == 0 &&
             zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, domain, sizeof(domain) - 1) == 0;
    } else {
        ok = zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, internalPublic, RD_Z85_KEY_LEN) == 0 &&
             zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, internalPublic, RD_Z85_KEY_LEN) == 0 &&
             zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, internalSecret, RD_Z85_KEY_LEN) == 0;
    }
    if (!ok)
        rd_log(RD_LOG_ERROR, "cannot put CURVE on an internal socket", "error", zmq_strerror(zmq_errno()), NULL);
    return ok;
}
