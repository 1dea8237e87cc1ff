/*
 * redress-dp-feed -- plays the classifier for bench/dispatcher.sh: binds a PUSH socket where the
 * dispatchers' classifier_endpoint points, waits for them to connect, then sends one
 * TicketEvent (kind "classify", state "classified") per ticket id read from standard input, as
 * fast as the dispatchers take them. PUSH spreads the ids over the connected dispatchers.
 *
 *   redress-dp-feed --bind tcp://127.0.0.1:PORT [--wait-ms 1500] < ids.txt
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "redress.pb-c.h"

int main(int argc, char **argv)
{
    const char *bind = NULL;
    long waitMs = 1500;
    static const struct option opts[] = {{"bind", required_argument, NULL, 'b'},
                                         {"wait-ms", required_argument, NULL, 'w'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'b') {
            bind = optarg;
        } else if (o == 'w') {
            waitMs = strtol(optarg, NULL, 10);
        } else {
            fprintf(o == 'h' ? stdout : stderr,
                    "usage: redress-dp-feed --bind ENDPOINT [--wait-ms MS] < ticket-ids\n"
                    "Sends a 'classified' TicketEvent per ticket id (one per line) on a bound PUSH socket,\n"
                    "after waiting MS milliseconds [1500] for the dispatchers to connect.\n");
            return o == 'h' ? 0 : 2;
        }
    }
    if (bind == NULL) {
        fprintf(stderr, "redress-dp-feed: --bind is required (try --help)\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    int hwm = 0, linger = -1;
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_bind(push, bind) != 0) {
        fprintf(stderr, "redress-dp-feed: cannot bind %s: %s\n", bind, zmq_strerror(zmq_errno()));
        return 1;
    }
    struct timespec ts = {waitMs / 1000, (waitMs % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    char line[128];
    long sent = 0;
    while (fgets(line, sizeof(line), stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strlen(line) != 36)
            continue;
        Redress__V1__TicketEvent ev = REDRESS__V1__TICKET_EVENT__INIT;
        ev.ticket_id = line;
        ev.kind = "classify";
        ev.state = "classified";
        uint8_t buf[256];
        size_t len = redress__v1__ticket_event__get_packed_size(&ev);
        redress__v1__ticket_event__pack(&ev, buf);
        if (zmq_send(push, buf, len, 0) < 0) {
            fprintf(stderr, "redress-dp-feed: send: %s\n", zmq_strerror(zmq_errno()));
            return 1;
        }
        sent++;
    }
    zmq_close(push); /* linger -1: returns once every message is handed over */
    zmq_ctx_term(ctx);
    fprintf(stderr, "redress-dp-feed: sent %ld ticket ids\n", sent);
    return 0;
}
