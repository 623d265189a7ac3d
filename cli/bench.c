/* bench.c - the bench command: one kind of call from N threads at once.
 *
 *   lvrpc [-c URI] [--mode direct|shared] [--pool K] bench [--threads N]
 *         [--seconds S | --calls M] [--call libversion|lookup|listall]
 *         [--domain NAME]
 *
 * Every answer is checked.  The result is one line:
 *   calls=… errors=… seconds=… calls_per_s=… p50_us=… p99_us=… cpu_us_per_call=…
 * where latencies are per call (CLOCK_MONOTONIC around the call, recorded
 * per thread and merged for the percentiles) and client CPU is the process's
 * user + system time (getrusage) over the run divided by the calls made.
 * With any error the line is still printed, and the command then fails
 * with the first error seen.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"

#define DEFAULT_SECONDS 5.0
#define MAX_THREADS 4096

enum bench_call { CALL_LIBVERSION, CALL_LOOKUP, CALL_LISTALL };

typedef struct bench bench;

/* One thread's share of the run; only that thread writes it until joined. */
typedef struct worker {
    bench *b;
    pthread_t tid;
    uint64_t quota;  /* calls to make; 0 = until the deadline */
    uint64_t *lat;   /* latency of each call, in ns */
    size_t n, cap;
    uint64_t errors;
    char first_error[512];
} worker;

struct bench {
    lvrpc_client *client;
    int call;             /* enum bench_call */
    const char *domain;   /* for lookup */
    int64_t deadline_ns;  /* seconds mode */
    pthread_mutex_t lock; /* guards go and abort */
    pthread_cond_t gate;
    int go, abort;
};

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

/* ------------------------------------------------------------ the calls */

static int call_libversion(worker *w)
{
    lvrpc_connect_get_lib_version_ret *r = NULL;
    int bad;

    if (lvrpc_connect_get_lib_version(w->b->client, &r) != LVRPC_OK)
        return -1;
    bad = r->lib_ver == 0;
    lvrpc_reply_free(r);
    if (bad)
        snprintf(w->first_error, sizeof(w->first_error), "CONNECT_GET_LIB_VERSION returned 0");
    return bad ? -2 : 0;
}

static int call_lookup(worker *w)
{
    lvrpc_domain_lookup_by_name_args a = {(char *)w->b->domain};
    lvrpc_domain_lookup_by_name_ret *r = NULL;
    int bad;

    if (lvrpc_domain_lookup_by_name(w->b->client, &a, &r) != LVRPC_OK)
        return -1;
    bad = !r->dom.name || strcmp(r->dom.name, w->b->domain) != 0;
    if (bad)
        snprintf(w->first_error, sizeof(w->first_error),
                 "DOMAIN_LOOKUP_BY_NAME('%s') returned domain '%s'", w->b->domain,
                 r->dom.name ? r->dom.name : "(null)");
    lvrpc_reply_free(r);
    return bad ? -2 : 0;
}

static int call_listall(worker *w)
{
    lvrpc_connect_list_all_domains_args a = {1, 0};
    lvrpc_connect_list_all_domains_ret *r = NULL;
    int bad;

    if (lvrpc_connect_list_all_domains(w->b->client, &a, &r) != LVRPC_OK)
        return -1;
    bad = r->domains.domains_len < 1 || r->ret < 1;
    if (bad)
        snprintf(w->first_error, sizeof(w->first_error),
                 "CONNECT_LIST_ALL_DOMAINS returned %u domains", r->domains.domains_len);
    lvrpc_reply_free(r);
    return bad ? -2 : 0;
}

/* Makes one call and checks its answer; counts an error and keeps the
 * first message. */
static void one_call(worker *w)
{
    char saved[sizeof(w->first_error)];
    int rc;

    if (w->errors) /* the calls may overwrite it; only the first counts */
        memcpy(saved, w->first_error, sizeof(saved));
    if (w->b->call == CALL_LIBVERSION)
        rc = call_libversion(w);
    else if (w->b->call == CALL_LOOKUP)
        rc = call_lookup(w);
    else
        rc = call_listall(w);
    if (rc == 0)
        return;
    if (w->errors++ > 0) /* keep only the first message */
        memcpy(w->first_error, saved, sizeof(saved));
    else if (rc == -1)
        snprintf(w->first_error, sizeof(w->first_error), "%s", lvrpc_last_message());
}

/* ------------------------------------------------------------ threads */

static int record(worker *w, uint64_t ns)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4096;
        uint64_t *l = realloc(w->lat, cap * sizeof(*l));
        if (!l)
            return -1;
        w->lat = l;
        w->cap = cap;
    }
    w->lat[w->n++] = ns;
    return 0;
}

/* Waits at the gate; returns 0 to run, -1 when the run was called off. */
static int wait_gate(bench *b)
{
    int abort;

    pthread_mutex_lock(&b->lock);
    while (!b->go)
        pthread_cond_wait(&b->gate, &b->lock);
    abort = b->abort;
    pthread_mutex_unlock(&b->lock);
    return abort ? -1 : 0;
}

static void *worker_main(void *arg)
{
    worker *w = arg;

    if (wait_gate(w->b) < 0)
        return NULL;
    for (;;) {
        int64_t t0 = now_ns(), t1;
        one_call(w);
        t1 = now_ns();
        if (record(w, (uint64_t)(t1 - t0)) < 0) {
            w->errors++;
            snprintf(w->first_error, sizeof(w->first_error), "out of memory");
            break;
        }
        if (w->quota ? w->n >= w->quota : t1 >= w->b->deadline_ns)
            break;
    }
    return NULL;
}

static void open_gate(bench *b, int abort)
{
    pthread_mutex_lock(&b->lock);
    b->go = 1;
    b->abort = abort;
    pthread_cond_broadcast(&b->gate);
    pthread_mutex_unlock(&b->lock);
}

/* ------------------------------------------------------------ results */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted values, in microseconds. */
static double percentile_us(const uint64_t *v, size_t n, unsigned p)
{
    size_t rank;

    if (n == 0)
        return 0.0;
    rank = (n * p + 99) / 100;
    if (rank == 0)
        rank = 1;
    return (double)v[rank - 1] / 1000.0;
}

typedef struct totals {
    uint64_t calls, errors;
    double seconds;
    int64_t cpu_us;
    const char *first_error;
} totals;

/* Merges the threads' latencies and prints the result line. */
static int report(cli_ctx *ctx, worker *w, unsigned nthreads, totals *t)
{
    uint64_t *all = malloc((t->calls ? t->calls : 1) * sizeof(*all));
    size_t n = 0;

    if (!all)
        return cli_fail(ctx, "out of memory");
    for (unsigned i = 0; i < nthreads; i++) {
        if (w[i].n)
            memcpy(all + n, w[i].lat, w[i].n * sizeof(*all));
        n += w[i].n;
    }
    cli_sort(all, n, sizeof(*all), cmp_u64);
    printf("calls=%llu errors=%llu seconds=%.3f calls_per_s=%.1f p50_us=%.1f p99_us=%.1f "
           "cpu_us_per_call=%.2f\n",
           (unsigned long long)t->calls, (unsigned long long)t->errors, t->seconds,
           t->seconds > 0 ? (double)t->calls / t->seconds : 0.0, percentile_us(all, n, 50),
           percentile_us(all, n, 99), t->calls ? (double)t->cpu_us / (double)t->calls : 0.0);
    free(all);
    return 0;
}

static void sum_up(worker *w, unsigned nthreads, totals *t)
{
    for (unsigned i = 0; i < nthreads; i++) {
        t->calls += w[i].n;
        t->errors += w[i].errors;
        if (!t->first_error && w[i].errors)
            t->first_error = w[i].first_error;
    }
}

/* ------------------------------------------------------------ the run */

typedef struct bench_args {
    unsigned long threads;
    double seconds;
    unsigned long long calls; /* 0: run for seconds */
} bench_args;

/* Starts the threads, opens the gate and waits for them all. */
static int run_threads(cli_ctx *ctx, bench *b, worker *w, const bench_args *ba, totals *t)
{
    unsigned started = 0;
    int64_t t0, cpu0;

    for (; started < ba->threads; started++) {
        w[started].b = b;
        w[started].quota = ba->calls ? ba->calls / ba->threads +
                                           (started < ba->calls % ba->threads ? 1 : 0)
                                     : 0;
        if (ba->calls && w[started].quota == 0)
            continue; /* more threads than calls: nothing to do */
        if (pthread_create(&w[started].tid, NULL, worker_main, &w[started]) != 0)
            break;
    }
    cpu0 = cpu_us();
    t0 = now_ns();
    b->deadline_ns = t0 + (int64_t)(ba->seconds * 1e9);
    open_gate(b, started < ba->threads);
    for (unsigned i = 0; i < started; i++)
        if (w[i].quota || !ba->calls)
            pthread_join(w[i].tid, NULL);
    t->seconds = (double)(now_ns() - t0) / 1e9;
    t->cpu_us = cpu_us() - cpu0;
    if (started < ba->threads)
        return cli_fail(ctx, "cannot start thread %u of %lu", started + 1, ba->threads);
    return 0;
}

static int bench_run(cli_ctx *ctx, bench *b, const bench_args *ba)
{
    worker *w = calloc(ba->threads, sizeof(*w));
    totals t;
    int rc;

    if (!w)
        return cli_fail(ctx, "out of memory");
    memset(&t, 0, sizeof(t));
    rc = run_threads(ctx, b, w, ba, &t);
    if (rc == 0) {
        sum_up(w, (unsigned)ba->threads, &t);
        rc = report(ctx, w, (unsigned)ba->threads, &t);
    }
    if (rc == 0 && t.errors)
        rc = cli_fail(ctx, "%llu of %llu calls failed; the first: %s",
                      (unsigned long long)t.errors, (unsigned long long)t.calls,
                      t.first_error ? t.first_error : "?");
    for (unsigned long i = 0; i < ba->threads; i++)
        free(w[i].lat);
    free(w);
    return rc;
}

/* ------------------------------------------------------------ options */

static int parse_call(cli_ctx *ctx, const char *s, int *call)
{
    if (!s || strcmp(s, "libversion") == 0)
        *call = CALL_LIBVERSION;
    else if (strcmp(s, "lookup") == 0)
        *call = CALL_LOOKUP;
    else if (strcmp(s, "listall") == 0)
        *call = CALL_LISTALL;
    else
        return cli_fail(ctx, "--call must be libversion, lookup or listall, not '%s'", s);
    return 0;
}

static int parse_seconds(cli_ctx *ctx, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end || !(v > 0) || v > 1e6)
        return cli_fail(ctx, "--seconds must be a number of seconds above 0, not '%s'", s);
    *out = v;
    return 0;
}

static int parse_bench(cli_ctx *ctx, int argc, char **argv, bench *b, bench_args *ba)
{
    const char *threads = NULL, *seconds = NULL, *calls = NULL, *call = NULL;
    const cli_opt opts[] = {{"threads", 0, CLI_VALUE, &threads},
                            {"seconds", 0, CLI_VALUE, &seconds},
                            {"calls", 0, CLI_VALUE, &calls},
                            {"call", 0, CLI_VALUE, &call},
                            {"domain", 0, CLI_VALUE, &b->domain},
                            {NULL, 0, 0, NULL}};
    unsigned long v;

    ba->threads = 1;
    ba->seconds = DEFAULT_SECONDS;
    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 || parse_call(ctx, call, &b->call) < 0)
        return -1;
    if (seconds && calls)
        return cli_fail(ctx, "--seconds and --calls cannot be used together");
    if (threads && cli_parse_uint(ctx, "--threads", threads, 1, MAX_THREADS, &ba->threads) < 0)
        return -1;
    if (seconds && parse_seconds(ctx, seconds, &ba->seconds) < 0)
        return -1;
    if (calls) {
        if (cli_parse_uint(ctx, "--calls", calls, 1, 1000000000UL, &v) < 0)
            return -1;
        ba->calls = v;
    }
    if (!b->domain)
        b->domain = "test";
    return 0;
}

int cli_cmd_bench(cli_ctx *ctx, int argc, char **argv)
{
    bench b;
    bench_args ba;
    int rc;

    memset(&b, 0, sizeof(b));
    memset(&ba, 0, sizeof(ba));
    if (parse_bench(ctx, argc, argv, &b, &ba) < 0 || cli_connect(ctx) < 0)
        return -1;
    b.client = ctx->client;
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.gate, NULL);
    rc = bench_run(ctx, &b, &ba);
    pthread_cond_destroy(&b.gate);
    pthread_mutex_destroy(&b.lock);
    return rc;
}
