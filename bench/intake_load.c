/*
 * redress-intake-load -- drives intake with real CFPB complaints over several gateway connections
 * and prints what it got: ACKed events per second and the ACK latency distribution.
 *
 * Each connection is one thread with its own rd_client (its own DEALER socket) running
 * rd_client_stream() with a window of requests in flight and, optionally, a paced offered rate.
 * Event ids are <prefix>-<conn>-<seq>-<Complaint ID>: every event is new (run the same prefix twice
 * to measure replays instead), and the CSV rows are cycled so --events may exceed the row count.
 * Connection c starts at row c * rows / connections, so concurrent batches rarely touch the same
 * customer (customer_ref is derived from the Complaint ID, so a row is always the same customer).
 *
 * Envelopes are packed before the clock starts: on a small machine the load generator shares the
 * CPUs with intake and PostgreSQL, and what it spends packing is taken from them (about 0.6 KiB of
 * memory per event for the CFPB sample).
 *
 * Latency is from the event's first send -- with --rate, from the time it was *scheduled* to be
 * sent, so a server that falls behind is charged for the queueing it causes -- to its final
 * answer (rd_client_stream's definition). Every event's latency is kept; the percentiles are
 * exact (nearest rank over the sorted, merged arrays).
 *
 * Output: progress and errors on stderr; on stdout one machine-readable line
 *   SUMMARY events=N acked=N nacked=N replays=N gave_up=N resends=N busy_retries=N elapsed_s=X
 *           acked_per_s=X offered_per_s=X p50_ms=X p90_ms=X p99_ms=X p999_ms=X max_ms=X
 *           connections=C window=W
 * followed by one line for people. Exit status: 0 when every event was ACKed, 1 when some were
 * not (NACKs or gave up), 2 on usage or setup errors.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rd_cfpb.h"
#include "rd_client.h"
#include "rd_time.h"

#ifndef REDRESS_SOURCE_DIR
#define REDRESS_SOURCE_DIR "."
#endif
#define DEFAULT_CSV REDRESS_SOURCE_DIR "/../shared/datasets/cfpb/complaints_sample.csv"

#define MAX_CONNECTIONS 256

typedef struct {
    const char *endpoint, *csv, *prefix, *gateway;
    int connections, window, attempt_ms, deadline_ms, progress_s;
    long long events;
    double rate;
} options;

typedef struct {
    uint8_t *buf;
    size_t len;
    char event_id[128 + 1];
} packed;

typedef struct conn {
    int idx;
    const options *o;
    const rd_cfpb *csv;
    pthread_t th;
    /* this connection's events, packed before the start */
    packed *ev;
    size_t nev, next;
    /* results */
    int64_t *lat_us; /* one per answered event */
    size_t nlat;
    rd_stream_stats st;
    bool ok;
    char err[256];
    atomic_llong answered; /* for --progress */
    atomic_bool finished;
} conn;

static pthread_barrier_t startLine;
static int64_t startUs;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: redress-intake-load [options]\n"
            "\n"
            "Sends CFPB complaints to intake as NewTicket events over several gateway connections and\n"
            "prints ACKed events/s and ACK latency percentiles (see bench/README.md).\n"
            "\n"
            "Options:\n"
            "  -e, --endpoint EP      intake ROUTER endpoint                  [tcp://127.0.0.1:7401]\n"
            "  -f, --csv PATH         CFPB complaints CSV   [<source>/../shared/datasets/cfpb/complaints_sample.csv]\n"
            "  -c, --connections C    concurrent gateway connections (threads)  [4]\n"
            "  -n, --events N         events in total, split over the connections [10000]\n"
            "  -r, --rate R           offered events/s in total, split over the connections; 0 = as fast\n"
            "                         as the windows allow                      [0]\n"
            "  -w, --window W         requests in flight per connection          [256]\n"
            "  -p, --prefix P         run id: event ids are P-<conn>-<seq>-<Complaint ID>  [load<unix time>]\n"
            "  -g, --gateway G        gateway id                                  [bench-gw]\n"
            "      --attempt-ms MS    resend an unanswered event after MS         [5000]\n"
            "      --deadline-ms MS   give up on an event after MS                [120000]\n"
            "      --progress S       print ACKs so far every S seconds on stderr [0 = never]\n"
            "  -h, --help             this text\n"
            "\n"
            "stdout: one line 'SUMMARY key=value ...' (events acked nacked replays gave_up resends\n"
            "busy_retries elapsed_s acked_per_s offered_per_s p50_ms p90_ms p99_ms p999_ms max_ms connections\n"
            "window), then a line for people. Exit 0 when every event was ACKed, 1 otherwise, 2 on errors.\n");
}

static bool parseLong(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parseOptions(int argc, char **argv, options *o)
{
    static char defaultPrefix[64];
    snprintf(defaultPrefix, sizeof(defaultPrefix), "load%lld", (long long)time(NULL));
    *o = (options){.endpoint = "tcp://127.0.0.1:7401",
                   .csv = DEFAULT_CSV,
                   .prefix = defaultPrefix,
                   .gateway = "bench-gw",
                   .connections = 4,
                   .window = 256,
                   .attempt_ms = 5000,
                   .deadline_ms = 120000,
                   .events = 10000};
    enum { OPT_ATTEMPT = 1000, OPT_DEADLINE, OPT_PROGRESS };
    static const struct option opts[] = {{"endpoint", required_argument, NULL, 'e'},
                                         {"csv", required_argument, NULL, 'f'},
                                         {"connections", required_argument, NULL, 'c'},
                                         {"events", required_argument, NULL, 'n'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"window", required_argument, NULL, 'w'},
                                         {"prefix", required_argument, NULL, 'p'},
                                         {"gateway", required_argument, NULL, 'g'},
                                         {"attempt-ms", required_argument, NULL, OPT_ATTEMPT},
                                         {"deadline-ms", required_argument, NULL, OPT_DEADLINE},
                                         {"progress", required_argument, NULL, OPT_PROGRESS},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    long long v;
    while ((c = getopt_long(argc, argv, "e:f:c:n:r:w:p:g:h", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            o->endpoint = optarg;
            break;
        case 'f':
            o->csv = optarg;
            break;
        case 'c':
            if (!parseLong(optarg, 1, MAX_CONNECTIONS, &v))
                goto bad;
            o->connections = (int)v;
            break;
        case 'n':
            if (!parseLong(optarg, 1, 100000000LL, &v))
                goto bad;
            o->events = v;
            break;
        case 'r': {
            char *end;
            o->rate = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(o->rate >= 0) || isinf(o->rate))
                goto bad;
            break;
        }
        case 'w':
            if (!parseLong(optarg, 1, 100000, &v))
                goto bad;
            o->window = (int)v;
            break;
        case 'p':
            o->prefix = optarg;
            break;
        case 'g':
            o->gateway = optarg;
            break;
        case OPT_ATTEMPT:
            if (!parseLong(optarg, 1, 3600000, &v))
                goto bad;
            o->attempt_ms = (int)v;
            break;
        case OPT_DEADLINE:
            if (!parseLong(optarg, 1, 86400000, &v))
                goto bad;
            o->deadline_ms = (int)v;
            break;
        case OPT_PROGRESS:
            if (!parseLong(optarg, 0, 3600, &v))
                goto bad;
            o->progress_s = (int)v;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return false;
        }
        continue;
    bad:
        fprintf(stderr, "redress-intake-load: bad value '%s' for %s (try --help)\n", optarg, argv[optind - 1]);
        return false;
    }
    if (optind < argc) {
        fprintf(stderr, "redress-intake-load: unexpected argument '%s' (try --help)\n", argv[optind]);
        return false;
    }
    if (o->events < o->connections)
        o->connections = (int)o->events;
    return true;
}

/* ---- one connection -------------------------------------------------------------------------- */

static bool connNext(void *arg, uint8_t **buf, size_t *len, char *event_id, size_t event_id_len)
{
    conn *c = arg;
    if (c->next >= c->nev)
        return false;
    packed *p = &c->ev[c->next++];
    *buf = p->buf; /* the stream owns and frees it from here on */
    *len = p->len;
    p->buf = NULL;
    snprintf(event_id, event_id_len, "%s", p->event_id);
    return true;
}

static void connDone(void *arg, const char *event_id, const Redress__V1__Reply *reply, int64_t latency_us)
{
    conn *c = arg;
    if (reply != NULL)
        c->lat_us[c->nlat++] = latency_us;
    atomic_fetch_add_explicit(&c->answered, 1, memory_order_relaxed);
}

static bool connPack(conn *c, size_t count)
{
    const options *o = c->o;
    size_t rows = rd_cfpb_count(c->csv);
    size_t offset = (size_t)c->idx * rows / (size_t)o->connections;
    c->ev = calloc(count ? count : 1, sizeof(*c->ev));
    c->lat_us = malloc((count ? count : 1) * sizeof(*c->lat_us));
    if (c->ev == NULL || c->lat_us == NULL) {
        snprintf(c->err, sizeof(c->err), "out of memory packing %zu events", count);
        return false;
    }
    for (size_t k = 0; k < count; k++) {
        char prefix[128];
        snprintf(prefix, sizeof(prefix), "%s-%d-%zu-", o->prefix, c->idx, k);
        size_t row = (offset + k) % rows;
        if (!rd_cfpb_pack(c->csv, row, o->gateway, prefix, &c->ev[k].buf, &c->ev[k].len, c->ev[k].event_id,
                          sizeof(c->ev[k].event_id))) {
            snprintf(c->err, sizeof(c->err), "cannot pack row %zu with prefix '%s' (event id too long?)", row, prefix);
            return false;
        }
    }
    c->nev = count;
    return true;
}

static void *connMain(void *arg)
{
    conn *c = arg;
    const options *o = c->o;
    rd_client *cl = rd_client_new_env(o->endpoint, c->err, sizeof(c->err));
    pthread_barrier_wait(&startLine);
    if (cl == NULL) {
        atomic_store(&c->finished, true);
        return NULL;
    }
    rd_stream_opts so = {.window = o->window,
                         .attempt_timeout_ms = o->attempt_ms,
                         .deadline_ms = o->deadline_ms,
                         .rate_per_s = o->rate > 0 ? o->rate / o->connections : 0};
    c->ok = rd_client_stream(cl, &so, connNext, c, connDone, c, &c->st);
    if (!c->ok)
        snprintf(c->err, sizeof(c->err), "socket error: %s", strerror(errno));
    rd_client_destroy(&cl);
    atomic_store(&c->finished, true);
    return NULL;
}

/* ---- results --------------------------------------------------------------------------------- */

static int cmpI64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p of the samples at or below it. */
static double pctMs(const int64_t *v, size_t n, double p)
{
    if (n == 0)
        return NAN;
    size_t rank = (size_t)ceil(p * (double)n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1000.0;
}

int main(int argc, char **argv)
{
    options o;
    if (!parseOptions(argc, argv, &o))
        return 2;
    char err[512];
    rd_cfpb *csv = rd_cfpb_load(o.csv, err, sizeof(err));
    if (csv == NULL) {
        fprintf(stderr, "redress-intake-load: %s: %s\n", o.csv, err);
        return 2;
    }
    if (rd_cfpb_count(csv) == 0) {
        fprintf(stderr, "redress-intake-load: %s has no rows\n", o.csv);
        return 2;
    }

    conn *cs = calloc((size_t)o.connections, sizeof(*cs));
    if (cs == NULL)
        return 2;
    size_t per = (size_t)(o.events / o.connections), extra = (size_t)(o.events % o.connections);
    for (int i = 0; i < o.connections; i++) {
        cs[i].idx = i;
        cs[i].o = &o;
        cs[i].csv = csv;
        size_t count = per + ((size_t)i < extra ? 1 : 0);
        if (!connPack(&cs[i], count)) {
            fprintf(stderr, "redress-intake-load: %s\n", cs[i].err);
            return 2;
        }
    }

    pthread_barrier_init(&startLine, NULL, (unsigned)o.connections + 1);
    for (int i = 0; i < o.connections; i++) {
        if (pthread_create(&cs[i].th, NULL, connMain, &cs[i]) != 0) {
            fprintf(stderr, "redress-intake-load: cannot start thread %d\n", i);
            return 2;
        }
    }
    pthread_barrier_wait(&startLine);
    startUs = rd_mono_us();

    if (o.progress_s > 0) {
        long long last = 0;
        int64_t lastUs = startUs;
        for (;;) {
            bool all = true;
            for (int i = 0; i < o.connections; i++)
                all = all && atomic_load(&cs[i].finished);
            long long now = 0;
            for (int i = 0; i < o.connections; i++)
                now += atomic_load_explicit(&cs[i].answered, memory_order_relaxed);
            int64_t t = rd_mono_us();
            if (t - lastUs >= (int64_t)o.progress_s * 1000000 || all) {
                fprintf(stderr, "redress-intake-load: t=%.1fs answered=%lld (%.0f/s in the last %.1fs)\n",
                        (double)(t - startUs) / 1e6, now, (double)(now - last) * 1e6 / (double)(t - lastUs),
                        (double)(t - lastUs) / 1e6);
                last = now;
                lastUs = t;
            }
            if (all)
                break;
            rd_sleep_ms(50);
        }
    }
    for (int i = 0; i < o.connections; i++)
        pthread_join(cs[i].th, NULL);
    int64_t elapsedUs = rd_mono_us() - startUs;

    uint64_t acked = 0, nacked = 0, replays = 0, gaveUp = 0, resends = 0, busy = 0, sent = 0;
    size_t nlat = 0;
    bool failed = false;
    for (int i = 0; i < o.connections; i++) {
        conn *c = &cs[i];
        if (!c->ok) {
            fprintf(stderr, "redress-intake-load: connection %d: %s\n", i, c->err[0] ? c->err : "failed");
            failed = true;
        }
        acked += c->st.acked;
        nacked += c->st.nacked;
        replays += c->st.replays;
        gaveUp += c->st.gave_up;
        resends += c->st.resends;
        busy += c->st.retried_busy;
        sent += c->st.sent;
        nlat += c->nlat;
    }
    int64_t *all = malloc((nlat ? nlat : 1) * sizeof(*all));
    if (all == NULL)
        return 2;
    size_t k = 0;
    for (int i = 0; i < o.connections; i++) {
        memcpy(all + k, cs[i].lat_us, cs[i].nlat * sizeof(*all));
        k += cs[i].nlat;
    }
    qsort(all, nlat, sizeof(*all), cmpI64);

    double secs = (double)elapsedUs / 1e6;
    double p50 = pctMs(all, nlat, 0.50), p90 = pctMs(all, nlat, 0.90), p99 = pctMs(all, nlat, 0.99),
           p999 = pctMs(all, nlat, 0.999), mx = nlat ? (double)all[nlat - 1] / 1000.0 : NAN;
    printf("SUMMARY events=%lld acked=%llu nacked=%llu replays=%llu gave_up=%llu resends=%llu busy_retries=%llu "
           "elapsed_s=%.3f acked_per_s=%.0f offered_per_s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f "
           "max_ms=%.3f connections=%d window=%d\n",
           o.events, (unsigned long long)acked, (unsigned long long)nacked, (unsigned long long)replays,
           (unsigned long long)gaveUp, (unsigned long long)resends, (unsigned long long)busy, secs,
           secs > 0 ? (double)acked / secs : 0.0, o.rate, p50, p90, p99, p999, mx, o.connections, o.window);
    printf("%llu of %lld events ACKed in %.2f s over %d connection%s (window %d%s): %.0f ACKed/s; "
           "latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms%s\n",
           (unsigned long long)acked, o.events, secs, o.connections, o.connections == 1 ? "" : "s", o.window,
           o.rate > 0 ? ", paced" : "", secs > 0 ? (double)acked / secs : 0.0, p50, p90, p99, mx,
           nacked || gaveUp ? " -- NOT ALL ACKED" : "");
    fflush(stdout);
    (void)sent;

    for (int i = 0; i < o.connections; i++) {
        for (size_t j = cs[i].next; j < cs[i].nev; j++)
            free(cs[i].ev[j].buf);
        free(cs[i].ev);
        free(cs[i].lat_us);
    }
    free(cs);
    free(all);
    rd_cfpb_destroy(&csv);
    if (failed)
        return 2;
    return (acked == (uint64_t)o.events) ? 0 : 1;
}
