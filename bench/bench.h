/* bench.h - what the benchmark programs share: clocks, client CPU,
 * per-thread latency samples, and the result line.
 *
 * Every program of the benchmark prints exactly one result line, in the
 * format of `lvrpc bench` (cli/bench.c), so that bench/run.sh and
 * bench/summarize.py read them all alike:
 *
 *   calls=… errors=… seconds=… calls_per_s=… p50_us=… p99_us=… cpu_us_per_call=…
 *
 * measured the same way: latency = CLOCK_MONOTONIC around each call,
 * percentiles by nearest rank over all threads' samples; client CPU =
 * getrusage(RUSAGE_SELF) user + system over the timed phase divided by the
 * calls made; the timed phase starts when the threads are released and ends
 * when the last one has been joined.
 */
#ifndef LVRPC_BENCH_H
#define LVRPC_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static inline int64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* User + system CPU time of the whole process, in microseconds. */
static inline int64_t bench_cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

/* A growing array of latencies (ns); one per thread, no locking. */
typedef struct bench_lat {
    uint64_t *v;
    size_t n, cap;
} bench_lat;

static inline int bench_lat_add(bench_lat *l, uint64_t ns)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        uint64_t *v = realloc(l->v, cap * sizeof(*v));

        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = ns;
    return 0;
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile p of the sorted v[0..n), in microseconds. */
static inline double bench_percentile_us(const uint64_t *v, size_t n, unsigned p)
{
    size_t rank;

    if (n == 0)
        return 0.0;
    rank = (n * p + 99) / 100;
    if (rank == 0)
        rank = 1;
    return (double)v[rank - 1] / 1000.0;
}

/* Merges the samples of nlat arrays, prints the result line, frees nothing.
 * Returns -1 when out of memory. */
static inline int bench_report(const bench_lat *lat, size_t nlat, uint64_t errors, double seconds,
                               int64_t cpu_us)
{
    size_t total = 0, k = 0;
    uint64_t *all;

    for (size_t i = 0; i < nlat; i++)
        total += lat[i].n;
    all = malloc((total ? total : 1) * sizeof(*all));
    if (!all)
        return -1;
    for (size_t i = 0; i < nlat; i++) {
        memcpy(all + k, lat[i].v, lat[i].n * sizeof(*all));
        k += lat[i].n;
    }
    qsort(all, total, sizeof(*all), bench_cmp_u64);
    printf("calls=%zu errors=%llu seconds=%.3f calls_per_s=%.1f p50_us=%.1f p99_us=%.1f "
           "cpu_us_per_call=%.2f\n",
           total, (unsigned long long)errors, seconds, seconds > 0 ? (double)total / seconds : 0.0,
           bench_percentile_us(all, total, 50), bench_percentile_us(all, total, 99),
           total ? (double)cpu_us / (double)total : 0.0);
    fflush(stdout);
    free(all);
    return 0;
}

#endif /* LVRPC_BENCH_H */
