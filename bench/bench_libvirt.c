/* bench_libvirt.c - libvirt's own client (libvirt.so) under the same load as
 * `lvrpc bench`, for the side-by-side comparison of bench/run.sh.
 *
 * usage: bench_libvirt -u URI [-m shared|own] [-t THREADS]
 *                      [-s SECONDS | -n CALLS] [-c libversion|lookup|listall]
 *                      [-d DOMAIN]
 *   -m shared  all threads share ONE virConnectPtr (libvirt multiplexes
 *              their calls on one socket)                       (default)
 *   -m own     every thread opens its own virConnectPtr (a socket each)
 *   -s         run for SECONDS (default 5); -n: CALLS in all, split
 *              evenly between the threads
 *   -c         libversion = virConnectGetLibVersion (proc 157)
 *              lookup     = virDomainLookupByName(DOMAIN) + virDomainFree (23)
 *              listall    = virConnectListAllDomains + free (273)
 *   -d         the domain of lookup (default "test")
 *
 * The connections are opened before the timed phase, as `lvrpc bench`
 * opens its handle first.  Output: the one line of bench.h.  Exit
 * status 1 when any call failed (the line is printed anyway).
 */
#define _GNU_SOURCE
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

enum call { C_LIBVERSION, C_LOOKUP, C_LISTALL };

typedef struct bench {
    enum call call;
    const char *domain;
    int64_t deadline_ns; /* seconds mode */
    pthread_mutex_t lock;
    pthread_cond_t gate;
    int go;
} bench;

typedef struct worker {
    bench *b;
    pthread_t tid;
    virConnectPtr conn;
    uint64_t quota; /* 0: until the deadline */
    bench_lat lat;
    uint64_t errors;
    char first_error[512];
} worker;

/* One call; 0 when it succeeded and its answer looks right. */
static int do_call(worker *w)
{
    switch (w->b->call) {
    case C_LIBVERSION: {
        unsigned long v = 0;

        if (virConnectGetLibVersion(w->conn, &v) < 0)
            return -1;
        return v ? 0 : -2;
    }
    case C_LOOKUP: {
        virDomainPtr d = virDomainLookupByName(w->conn, w->b->domain);

        if (!d)
            return -1;
        virDomainFree(d);
        return 0;
    }
    case C_LISTALL: {
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(w->conn, &doms, 0);

        if (n < 0)
            return -1;
        for (int i = 0; i < n; i++)
            virDomainFree(doms[i]);
        free(doms);
        return n >= 1 ? 0 : -2;
    }
    }
    return -1;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    bench *b = w->b;

    pthread_mutex_lock(&b->lock);
    while (!b->go)
        pthread_cond_wait(&b->gate, &b->lock);
    pthread_mutex_unlock(&b->lock);
    for (;;) {
        int64_t t0 = bench_now_ns(), t1;
        int rc = do_call(w);

        t1 = bench_now_ns();
        if (rc != 0 && w->errors++ == 0) {
            const char *m = rc == -1 ? virGetLastErrorMessage() : "unexpected answer";
            snprintf(w->first_error, sizeof(w->first_error), "%s", m ? m : "?");
        }
        if (bench_lat_add(&w->lat, (uint64_t)(t1 - t0)) < 0) {
            w->errors++;
            break;
        }
        if (w->quota ? w->lat.n >= w->quota : t1 >= b->deadline_ns)
            break;
    }
    return NULL;
}

/* libvirt prints every error on stderr by default; we print the first. */
static void quiet_errors(void *ud, virErrorPtr e)
{
    (void)ud;
    (void)e;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_libvirt -u URI [-m shared|own] [-t THREADS] "
                    "[-s SECONDS | -n CALLS] [-c libversion|lookup|listall] [-d DOMAIN]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *uri = NULL;
    int shared = 1, nthreads = 1, opt;
    double seconds = 5.0;
    unsigned long long ncalls = 0;
    bench b;
    worker *w;
    virConnectPtr shared_conn = NULL;
    uint64_t errors = 0;
    const char *first_error = NULL;
    bench_lat *lats;
    int64_t t0, cpu0, cpu1;
    double wall;

    memset(&b, 0, sizeof(b));
    b.call = C_LOOKUP;
    b.domain = "test";
    while ((opt = getopt(argc, argv, "u:m:t:s:n:c:d:")) != -1) {
        switch (opt) {
        case 'u': uri = optarg; break;
        case 'm':
            if (strcmp(optarg, "shared") == 0) shared = 1;
            else if (strcmp(optarg, "own") == 0) shared = 0;
            else usage();
            break;
        case 't': nthreads = atoi(optarg); break;
        case 's': seconds = atof(optarg); break;
        case 'n': ncalls = strtoull(optarg, NULL, 10); break;
        case 'c':
            if (strcmp(optarg, "libversion") == 0) b.call = C_LIBVERSION;
            else if (strcmp(optarg, "lookup") == 0) b.call = C_LOOKUP;
            else if (strcmp(optarg, "listall") == 0) b.call = C_LISTALL;
            else usage();
            break;
        case 'd': b.domain = optarg; break;
        default: usage();
        }
    }
    if (!uri || nthreads < 1 || nthreads > 4096 || !(seconds > 0))
        usage();
    if (virInitialize() < 0)
        return 1;
    virSetErrorFunc(NULL, quiet_errors);

    w = calloc((size_t)nthreads, sizeof(*w));
    lats = calloc((size_t)nthreads, sizeof(*lats));
    if (!w || !lats)
        return 1;
    if (shared && !(shared_conn = virConnectOpen(uri))) {
        fprintf(stderr, "bench_libvirt: virConnectOpen(%s): %s\n", uri, virGetLastErrorMessage());
        return 1;
    }
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.gate, NULL);
    for (int i = 0; i < nthreads; i++) {
        w[i].b = &b;
        w[i].quota = ncalls ? ncalls / (unsigned)nthreads + (i < (int)(ncalls % (unsigned)nthreads)) : 0;
        if (ncalls && !w[i].quota)
            w[i].quota = 1;
        w[i].conn = shared ? shared_conn : virConnectOpen(uri);
        if (!w[i].conn) {
            fprintf(stderr, "bench_libvirt: virConnectOpen(%s) #%d: %s\n", uri, i,
                    virGetLastErrorMessage());
            return 1;
        }
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0) {
            fprintf(stderr, "bench_libvirt: cannot start thread %d\n", i + 1);
            return 1;
        }
    }

    cpu0 = bench_cpu_us();
    t0 = bench_now_ns();
    pthread_mutex_lock(&b.lock);
    b.deadline_ns = t0 + (int64_t)(seconds * 1e9);
    b.go = 1;
    pthread_cond_broadcast(&b.gate);
    pthread_mutex_unlock(&b.lock);
    for (int i = 0; i < nthreads; i++)
        pthread_join(w[i].tid, NULL);
    wall = (double)(bench_now_ns() - t0) / 1e9;
    cpu1 = bench_cpu_us();

    for (int i = 0; i < nthreads; i++) {
        lats[i] = w[i].lat;
        errors += w[i].errors;
        if (!first_error && w[i].errors)
            first_error = w[i].first_error;
    }
    if (bench_report(lats, (size_t)nthreads, errors, wall, cpu1 - cpu0) < 0)
        return 1;
    if (errors)
        fprintf(stderr, "bench_libvirt: %llu calls failed; the first: %s\n",
                (unsigned long long)errors, first_error ? first_error : "?");

    for (int i = 0; i < nthreads; i++) {
        if (!shared)
            virConnectClose(w[i].conn);
        free(w[i].lat.v);
    }
    if (shared_conn)
        virConnectClose(shared_conn);
    free(lats);
    free(w);
    return errors ? 1 : 0;
}
