/* wake_floor.c - what one thread wake-up costs on this machine: two threads
 * pass a token back and forth on a pair of POSIX semaphores, the primitive
 * Shared mode's waiters sleep on (sem_post wakes a thread in sem_wait).
 *
 * Why it is in the benchmark: in Shared mode a call that waits costs its
 * client at least one such wake-up (the thread that read the reply posts
 * the caller's semaphore), and against a daemon that answers one reply at
 * a time another (the reader thread, asleep in recv(), woken by the reply).
 * On a small VM a wake-up that finds the other vCPU idle goes through the
 * hypervisor, and this program shows its price next to the CPU-per-call
 * figures of the same run, unpinned and (run under taskset) on one CPU.
 *
 * usage: wake_floor [-s SECONDS | -n ROUND_TRIPS]
 * Output: the one line of bench.h, where a "call" is one round trip, i.e.
 * two wake-ups (waker and woken both in this process), and latency is the
 * round trip's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

static sem_t to_peer, to_main;
static volatile int stop_peer;

static void wait_sem(sem_t *s)
{
    while (sem_wait(s) != 0 && errno == EINTR)
        ;
}

/* The other side: answers every token until told to stop. */
static void *peer_main(void *unused)
{
    (void)unused;
    for (;;) {
        wait_sem(&to_peer);
        if (stop_peer)
            return NULL;
        sem_post(&to_main);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: wake_floor [-s SECONDS | -n ROUND_TRIPS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    long quota = 0;
    bench_lat lat = {0};
    pthread_t peer;
    int64_t t0, cpu0, end, now;
    int opt;

    while ((opt = getopt(argc, argv, "s:n:")) != -1) {
        switch (opt) {
        case 's': seconds = atof(optarg); break;
        case 'n': quota = atol(optarg); break;
        default: usage();
        }
    }
    if (optind != argc || !(seconds > 0) || quota < 0)
        usage();
    if (sem_init(&to_peer, 0, 0) != 0 || sem_init(&to_main, 0, 0) != 0 ||
        pthread_create(&peer, NULL, peer_main, NULL) != 0) {
        perror("wake_floor: setup");
        return 1;
    }
    for (int i = 0; i < 1000; i++) { /* warm-up: both threads running */
        sem_post(&to_peer);
        wait_sem(&to_main);
    }
    cpu0 = bench_cpu_us();
    t0 = now = bench_now_ns();
    end = t0 + (int64_t)(seconds * 1e9);
    while (quota ? (long)lat.n < quota : now < end) {
        int64_t t1;

        sem_post(&to_peer);
        wait_sem(&to_main);
        t1 = bench_now_ns();
        if (bench_lat_add(&lat, (uint64_t)(t1 - now)) < 0) {
            fprintf(stderr, "wake_floor: out of memory\n");
            return 1;
        }
        now = t1;
    }
    stop_peer = 1;
    sem_post(&to_peer);
    pthread_join(peer, NULL);
    if (bench_report(&lat, 1, 0, (double)(bench_now_ns() - t0) / 1e9, bench_cpu_us() - cpu0) < 0)
        return 1;
    free(lat.v);
    return 0;
}
