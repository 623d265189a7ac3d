/* instant_server.c - the project's fake libvirtd (tests/fakeserver.c) in its
 * INSTANT mode, as a process of its own, for the benchmark.
 *
 * It answers every call at once (pipelined calls in order, in batches), so
 * that a client measured against it shows its own cost rather than the
 * daemon's.  It serves what lvrpc's and libvirt.so's clients send to open,
 * use and close a connection: AUTH_LIST (-> none), CONNECT_SUPPORTS_FEATURE
 * (keepalive yes, everything else no, so libvirt.so does not ask for close
 * callbacks or event filters), CONNECT_OPEN, CONNECT_CLOSE, keepalive PING,
 * and the benchmark's calls CONNECT_GET_LIB_VERSION, DOMAIN_LOOKUP_BY_NAME
 * (any name: domain of that name, id 1) and CONNECT_LIST_ALL_DOMAINS
 * (3 domains).  Other procedures get an error reply.
 *
 * It listens on 127.0.0.1, on a port the kernel picks, and once listening
 * prints
 *   PORT=NNNNN
 *   URI=test+tcp://127.0.0.1:NNNNN/default
 *   PID=NNNN
 * then serves until SIGTERM, SIGINT or SIGHUP (with -e: also until its
 * standard input reaches end of file).
 *
 * usage: instant_server [-e] [-s SLOW_MS]
 *   -s MS  answer every call only after MS milliseconds (the fake's SLOW
 *          mode) instead of at once
 */
#include "fakeserver.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    fake_config cfg;
    fake_server *s;
    sigset_t set, old;
    struct sigaction sa;
    int opt, watch_stdin = 0;
    char uri[256];

    memset(&cfg, 0, sizeof(cfg));
    cfg.behavior = FAKE_INSTANT;
    while ((opt = getopt(argc, argv, "es:")) != -1) {
        switch (opt) {
        case 'e':
            watch_stdin = 1;
            break;
        case 's':
            cfg.behavior = FAKE_SLOW;
            cfg.behavior_flags = FAKE_ALL_CALLS;
            cfg.slow_ms = (unsigned)atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: instant_server [-e] [-s SLOW_MS]\n");
            return 2;
        }
    }

    /* The fake's threads inherit this mask: only the main thread takes the
     * signals, and its read()/pause() returns with EINTR. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    if (fake_server_start(&cfg, &s) < 0)
        return 1;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    printf("PORT=%d\nURI=%s\nPID=%ld\n", fake_server_port(s),
           fake_server_uri(s, 0, uri, sizeof(uri)), (long)getpid());
    fflush(stdout);

    while (!stop) {
        if (watch_stdin) {
            char c;
            ssize_t n = read(0, &c, 1);

            if (n == 0 || (n < 0 && errno != EINTR))
                break;
        } else {
            pause();
        }
    }
    fake_server_stop(s);
    return 0;
}
