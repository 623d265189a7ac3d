/* mem_waiters.c - how much memory N threads cost while they all wait on one
 * Shared-mode connection (default N = 1000, K = 1).
 *
 * A forked child runs the project's fake server (tests/fakeserver.c); after
 * a warm-up it is switched to SLOW (every call answered only after
 * SLOW_MS), so the calls stay in progress: max_inflight of them sent and
 * waiting for their replies, the rest queued in the client.  The child is a
 * separate process so that the server's memory is not counted.
 *
 * Three RSS readings of this process:
 *   before   the handle is open and warm (a few calls made)
 *   threads  N threads started (stack size -k KiB via pthread_attr), each
 *            waiting on a condition variable: the threads' own cost
 *            (stack pages touched, TLS, guard), which any application pays
 *   waiting  the same N threads each inside one lvrpc call, blocked
 * library = waiting - threads is what the library adds per waiting call
 * (its per-call state, the deeper stack a call uses, malloc arenas of the
 * threads' first allocations, the queue); total = waiting - before.
 * RSS comes from /proc/self/smaps_rollup (Rss: exact, walks the page
 * tables); VmRSS of /proc/self/status is printed too.  library_kib is
 * split into library_stack_kib (the waiters' stack mappings, TLS included:
 * the call's frames) and library_heap_kib (everything else: malloc).
 *
 * Then lvrpc_close() wakes every waiter with LVRPC_ECLOSED, and every
 * thread is joined.
 *
 * usage: mem_waiters [-t N] [-k STACK_KIB] [-K POOL] [-S SLOW_MS]
 * Output: one line of key=value pairs; exit 1 when the threads did not all
 * wait or did not all return LVRPC_ECLOSED.
 */
#define _GNU_SOURCE
#include <lvrpc.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fakeserver.h"

typedef struct shared_state {
    lvrpc_client *client;
    pthread_mutex_t lock;
    pthread_cond_t gate;
    int go;
    atomic_int ready;   /* threads started and at the gate */
    atomic_int entered; /* threads about to call */
    atomic_int closed;  /* calls that returned LVRPC_ECLOSED */
    atomic_int other;   /* calls that returned anything else */
} shared_state;

static shared_state st;

/* An address inside each waiter's stack mapping ([lo, lo + 1)). */
typedef struct range {
    uintptr_t lo, hi;
} range;
static range *stacks;
static atomic_int nstacks;

/* Records an address inside the calling thread's stack mapping.  (Not
 * pthread_getattr_np(): it calls malloc, which would create the thread's
 * malloc arena here instead of in the library's first allocation.) */
static void note_stack(void)
{
    volatile char here = 0;
    int i = atomic_fetch_add(&nstacks, 1);

    stacks[i].lo = (uintptr_t)&here;
    stacks[i].hi = (uintptr_t)&here + 1;
}

static void *waiter_main(void *arg)
{
    lvrpc_connect_get_lib_version_ret *r = NULL;
    int rc;

    (void)arg;
    note_stack();
    pthread_mutex_lock(&st.lock);
    atomic_fetch_add(&st.ready, 1);
    while (!st.go)
        pthread_cond_wait(&st.gate, &st.lock);
    pthread_mutex_unlock(&st.lock);
    atomic_fetch_add(&st.entered, 1);
    rc = lvrpc_connect_get_lib_version(st.client, &r);
    lvrpc_reply_free(r);
    atomic_fetch_add(rc == LVRPC_ECLOSED ? &st.closed : &st.other, 1);
    return NULL;
}

/* Rss of /proc/self/smaps_rollup (exact) and VmRSS of /proc/self/status,
 * in KiB. */
static void rss_kib(long *exact, long *vmrss)
{
    char line[256];
    FILE *f;

    *exact = *vmrss = -1;
    if ((f = fopen("/proc/self/smaps_rollup", "r"))) {
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "Rss: %ld kB", exact) == 1)
                break;
        fclose(f);
    }
    if ((f = fopen("/proc/self/status", "r"))) {
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "VmRSS: %ld kB", vmrss) == 1)
                break;
        fclose(f);
    }
}

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;

    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Splits the exact Rss (/proc/self/smaps) into the waiters' stack mappings
 * (which hold their TLS too) and everything else (heap, arenas, ...). */
static void rss_split_kib(long *stack_kib, long *other_kib)
{
    char line[512];
    FILE *f = fopen("/proc/self/smaps", "r");
    int n = atomic_load(&nstacks), in_stack = 0;
    unsigned long lo, hi;
    long kb;

    *stack_kib = *other_kib = 0;
    if (!f)
        return;
    qsort(stacks, (size_t)n, sizeof(*stacks), cmp_range);
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            int a = 0, b = n; /* the first stack with hi > lo */

            while (a < b) {
                int m = (a + b) / 2;
                if (stacks[m].hi <= lo)
                    a = m + 1;
                else
                    b = m;
            }
            in_stack = a < n && stacks[a].lo < hi;
        } else if (sscanf(line, "Rss: %ld kB", &kb) == 1) {
            *(in_stack ? stack_kib : other_kib) += kb;
        }
    }
    fclose(f);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The child: a fake server, NORMAL until it reads 's' on ctl, then SLOW for
 * every call; stops at EOF.  Writes its port to portfd first. */
static void run_server(int portfd, int ctl, unsigned slow_ms)
{
    fake_config cfg;
    fake_server *s;
    int port;
    char c;

    memset(&cfg, 0, sizeof(cfg));
    cfg.slow_ms = slow_ms;
    if (fake_server_start(&cfg, &s) < 0)
        _exit(1);
    port = fake_server_port(s);
    if (write(portfd, &port, sizeof(port)) != (ssize_t)sizeof(port))
        _exit(1);
    close(portfd);
    for (;;) {
        ssize_t n = read(ctl, &c, 1);

        if (n == 1 && c == 's')
            fake_server_set_behavior(s, FAKE_SLOW, FAKE_ALL_CALLS);
        else if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    fake_server_stop(s);
    _exit(0);
}

static void usage(void)
{
    fprintf(stderr, "usage: mem_waiters [-t THREADS] [-k STACK_KIB] [-K POOL] [-S SLOW_MS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned nthreads = 1000, stack_kib = 64, pool = 1, slow_ms = 30000;
    int opt, portpipe[2], ctlpipe[2], port = 0, started = 0, rc = 0;
    lvrpc_options o;
    pthread_attr_t attr;
    pthread_t *tids;
    pid_t child;
    long before, before_vm, threads, threads_vm, waiting, waiting_vm;
    long stk1, oth1, stk2, oth2;
    lvrpc_stats stats;
    char uri[128];

    while ((opt = getopt(argc, argv, "t:k:K:S:")) != -1) {
        switch (opt) {
        case 't': nthreads = (unsigned)atoi(optarg); break;
        case 'k': stack_kib = (unsigned)atoi(optarg); break;
        case 'K': pool = (unsigned)atoi(optarg); break;
        case 'S': slow_ms = (unsigned)atoi(optarg); break;
        default: usage();
        }
    }
    if (nthreads < 1 || nthreads > 100000 || stack_kib * 1024u < PTHREAD_STACK_MIN || pool < 1)
        usage();
    signal(SIGPIPE, SIG_IGN);

    /* The server process, forked before this one has any thread. */
    if (pipe(portpipe) < 0 || pipe(ctlpipe) < 0)
        return 1;
    if ((child = fork()) < 0)
        return 1;
    if (child == 0) {
        close(portpipe[0]);
        close(ctlpipe[1]);
        run_server(portpipe[1], ctlpipe[0], slow_ms);
    }
    close(portpipe[1]);
    close(ctlpipe[0]);
    if (read(portpipe[0], &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        fprintf(stderr, "mem_waiters: the fake server did not start\n");
        return 1;
    }
    close(portpipe[0]);
    snprintf(uri, sizeof(uri), "test+tcp://127.0.0.1:%d/default", port);

    memset(&o, 0, sizeof(o));
    o.mode = LVRPC_MODE_SHARED;
    o.pool_size = pool;
    o.call_timeout_ms = slow_ms * 4 + 60000;
    if (lvrpc_open(uri, &o, &st.client) != LVRPC_OK) {
        fprintf(stderr, "mem_waiters: lvrpc_open(%s): %s\n", uri, lvrpc_last_message());
        return 1;
    }
    /* Warm: the handle's buffers, the reader, this thread's malloc arena. */
    for (int i = 0; i < 100; i++) {
        lvrpc_connect_get_lib_version_ret *r = NULL;

        if (lvrpc_connect_get_lib_version(st.client, &r) != LVRPC_OK) {
            fprintf(stderr, "mem_waiters: warm-up call: %s\n", lvrpc_last_message());
            return 1;
        }
        lvrpc_reply_free(r);
    }
    if (write(ctlpipe[1], "s", 1) != 1)
        return 1;
    sleep_ms(50);

    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.gate, NULL);
    tids = calloc(nthreads, sizeof(*tids));
    stacks = calloc(nthreads, sizeof(*stacks));
    if (!tids || !stacks)
        return 1;
    rss_kib(&before, &before_vm);

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)stack_kib * 1024);
    for (; started < (int)nthreads; started++)
        if (pthread_create(&tids[started], &attr, waiter_main, NULL) != 0)
            break;
    pthread_attr_destroy(&attr);
    while (atomic_load(&st.ready) < started)
        sleep_ms(5);
    sleep_ms(100);
    rss_kib(&threads, &threads_vm);
    rss_split_kib(&stk1, &oth1);

    pthread_mutex_lock(&st.lock);
    st.go = 1;
    pthread_cond_broadcast(&st.gate);
    pthread_mutex_unlock(&st.lock);
    while (atomic_load(&st.entered) < started)
        sleep_ms(5);
    sleep_ms(500); /* let every thread get from "entered" to its wait */
    rss_kib(&waiting, &waiting_vm);
    rss_split_kib(&stk2, &oth2);
    memset(&stats, 0, sizeof(stats));
    lvrpc_get_stats(st.client, &stats);
    if (atomic_load(&st.closed) + atomic_load(&st.other) > 0) {
        fprintf(stderr, "mem_waiters: %d calls returned before close (SLOW_MS too small?)\n",
                atomic_load(&st.closed) + atomic_load(&st.other));
        rc = 1;
    }

    lvrpc_close(st.client);
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    close(ctlpipe[1]);
    waitpid(child, NULL, 0);

    printf("waiters=%d stack_kib=%u pool=%u rss_before_kib=%ld threads_kib=%ld library_kib=%ld "
           "total_kib=%ld library_bytes_per_waiter=%.0f library_stack_kib=%ld library_heap_kib=%ld "
           "vmrss_threads_kib=%ld "
           "vmrss_library_kib=%ld vmrss_total_kib=%ld returned_closed=%d returned_other=%d\n",
           started, stack_kib, pool, before, threads - before, waiting - threads, waiting - before,
           started ? (double)(waiting - threads) * 1024.0 / started : 0.0, stk2 - stk1,
           oth2 - oth1, threads_vm - before_vm,
           waiting_vm - threads_vm, waiting_vm - before_vm, atomic_load(&st.closed),
           atomic_load(&st.other));
    if (started < (int)nthreads) {
        fprintf(stderr, "mem_waiters: only %d of %u threads started\n", started, nthreads);
        rc = 1;
    }
    if (atomic_load(&st.closed) != started) {
        fprintf(stderr, "mem_waiters: %d calls returned something else than LVRPC_ECLOSED\n",
                atomic_load(&st.other));
        rc = 1;
    }
    free(tids);
    free(stacks);
    return rc;
}
