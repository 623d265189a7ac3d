/* test_shared.c - Shared mode under concurrency and failure.
 *
 *   answers     64 threads x 2,000 lookups on ONE connection against the real
 *               libvirtd; each thread looks up a domain of its own and checks
 *               that every answer carries that domain's name and uuid.
 *   errors      4 threads on one connection alternate a failing lookup of a
 *               network of their own with a call that succeeds: after each
 *               success the thread's error record still holds its own error.
 *   restart     the daemon is restarted (same port) under load: every call
 *               returns within its timeout, and the pool reconnects and
 *               serves calls again.
 *   timeout     a fake server that never answers: every caller times out on
 *               time; a late reply (slow server) is dropped and counted and
 *               the next call gets its own answer.
 *   close       lvrpc_close() while calls wait: they return LVRPC_ECLOSED
 *               at once and everything is freed (valgrind/ASan check that).
 *   queue       max_inflight bounds the calls on the wire; the rest wait in
 *               order and all complete.
 * LVRPCT_SCALE (default 1) divides the call counts, for sanitizer builds.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakeserver.h"
#include "harness.h"
#include "lvrpc.h"

#define NTHREADS 64
#define NCALLS 2000

static lvrpct_daemon daemon_;
static unsigned scale = 1;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ answers */

typedef struct answer_job {
    lvrpc_client *c;
    lvrpct_ctx ctx;
    char name[32];
    unsigned char uuid[16];
    unsigned calls;
} answer_job;

static void *answer_worker(void *arg)
{
    answer_job *j = arg;
    lvrpct_ctx *t = &j->ctx;
    lvrpc_domain_lookup_by_name_args a = {j->name};
    lvrpc_domain_lookup_by_name_ret *r = NULL;

    for (unsigned i = 0; i < j->calls; i++) {
        T_OK(lvrpc_domain_lookup_by_name(j->c, &a, &r));
        T_STREQ(r->dom.name, j->name);
        T_CHECKF(memcmp(r->dom.uuid, j->uuid, 16) == 0, "%s: call %u got another uuid",
                 j->name, i);
        lvrpc_reply_free(r);
        r = NULL;
    }
out:
    lvrpc_reply_free(r);
    return NULL;
}

static int define_domain(lvrpc_client *c, const char *name, unsigned char uuid[16])
{
    char xml[512];
    lvrpc_domain_define_xml_flags_args a = {xml, 0};
    lvrpc_domain_define_xml_flags_ret *r = NULL;
    int rc;

    snprintf(xml, sizeof(xml),
             "<domain type='test'><name>%s</name><memory>8192</memory>"
             "<os><type>hvm</type></os></domain>", name);
    rc = lvrpc_domain_define_xml_flags(c, &a, &r);
    if (rc == LVRPC_OK)
        memcpy(uuid, r->dom.uuid, 16);
    lvrpc_reply_free(r);
    return rc;
}

static void test_answers_are_their_own(void)
{
    static answer_job jobs[NTHREADS];
    pthread_t th[NTHREADS];
    lvrpc_options o = {0};
    lvrpc_client *c = NULL;
    lvrpc_stats st;

    o.mode = LVRPC_MODE_SHARED;
    o.pool_size = 1;
    LVRPCT_ASSERT_OK(lvrpc_open(daemon_.uri_tcp, &o, &c));
    if (!c)
        return;
    for (int i = 0; i < NTHREADS; i++) {
        answer_job *j = &jobs[i];
        memset(j, 0, sizeof(*j));
        j->c = c;
        j->calls = NCALLS / scale;
        snprintf(j->name, sizeof(j->name), "shared-%02d", i);
        lvrpct_ctx_init(&j->ctx, j->name, i, 0);
        LVRPCT_ASSERT_OK(define_domain(c, j->name, j->uuid));
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, answer_worker, &jobs[i]);
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        lvrpct_ctx_report(&jobs[i].ctx, jobs[i].name);
    }
    lvrpc_get_stats(c, &st);
    LVRPCT_ASSERT_INT(st.sockets_opened, 1);
    LVRPCT_ASSERT_INT(st.errors, 0);
    LVRPCT_ASSERT_INT(st.dropped_replies, 0);
    for (int i = 0; i < NTHREADS; i++) {
        lvrpc_domain_lookup_by_name_args a = {jobs[i].name};
        lvrpc_domain_lookup_by_name_ret *r = NULL;
        if (lvrpc_domain_lookup_by_name(c, &a, &r) == LVRPC_OK) {
            lvrpc_domain_undefine_flags_args u = {r->dom, 0};
            LVRPCT_ASSERT_OK(lvrpc_domain_undefine_flags(c, &u));
        }
        lvrpc_reply_free(r);
    }
    lvrpc_close(c);
}

/* ------------------------------------------------------------ errors */

#define ERR_THREADS 4
#define ERR_ROUNDS 5000

typedef struct error_job {
    lvrpc_client *c;
    lvrpct_ctx ctx;
    char missing[32];
    unsigned rounds;
} error_job;

/* Each round: a lookup of this thread's own missing network fails with its
 * own message; then a call that succeeds leaves that error in the
 * thread's record, whoever read the socket meanwhile (a caller reading for
 * others decodes their error replies too). */
static void *error_worker(void *arg)
{
    error_job *j = arg;
    lvrpct_ctx *t = &j->ctx;
    lvrpc_network_lookup_by_name_args a = {j->missing};
    lvrpc_network_lookup_by_name_ret *r = NULL;
    lvrpc_connect_get_lib_version_ret *v = NULL;
    lvrpc_error e;

    for (unsigned i = 0; i < j->rounds; i++) {
        T_REMOTE_ERR(lvrpc_network_lookup_by_name(j->c, &a, &r), 43, j->missing);
        T_OK(lvrpc_connect_get_lib_version(j->c, &v));
        lvrpc_reply_free(v);
        v = NULL;
        lvrpc_last_error(&e);
        T_CHECKF(e.remote_code == 43 && strstr(e.message, j->missing), "round %u: "
                 "after a success the record holds \"%s\", not %s's error", i,
                 e.message, j->missing);
    }
out:
    lvrpc_reply_free(r);
    lvrpc_reply_free(v);
    return NULL;
}

static void test_errors_are_their_own(void)
{
    static error_job jobs[ERR_THREADS];
    pthread_t th[ERR_THREADS];
    lvrpc_options o = {0};
    lvrpc_client *c = NULL;

    o.mode = LVRPC_MODE_SHARED;
    o.pool_size = 1;
    LVRPCT_ASSERT_OK(lvrpc_open(daemon_.uri_tcp, &o, &c));
    if (!c)
        return;
    for (int i = 0; i < ERR_THREADS; i++) {
        error_job *j = &jobs[i];
        memset(j, 0, sizeof(*j));
        j->c = c;
        j->rounds = ERR_ROUNDS / scale;
        snprintf(j->missing, sizeof(j->missing), "missing-%02d", i);
        lvrpct_ctx_init(&j->ctx, j->missing, i, 0);
    }
    for (int i = 0; i < ERR_THREADS; i++)
        pthread_create(&th[i], NULL, error_worker, &jobs[i]);
    for (int i = 0; i < ERR_THREADS; i++) {
        pthread_join(th[i], NULL);
        lvrpct_ctx_report(&jobs[i].ctx, jobs[i].missing);
    }
    lvrpc_close(c);
}

/* ------------------------------------------------------------ restart */

typedef struct load_job {
    lvrpc_client *c;
    volatile int *stop;
    volatile int *restarted;   /* set once the new daemon listens */
    unsigned ok, errors, late; /* late: a call that outlived its timeout */
    unsigned ok_after_restart;
} load_job;

#define LOAD_TIMEOUT_MS 2000

static void *load_worker(void *arg)
{
    load_job *j = arg;
    while (!__atomic_load_n(j->stop, __ATOMIC_ACQUIRE)) {
        lvrpc_connect_get_lib_version_ret *v = NULL;
        int64_t t0 = now_ms();
        int rc = lvrpc_connect_get_lib_version(j->c, &v);
        int64_t took = now_ms() - t0;
        if (took > LOAD_TIMEOUT_MS + 500)
            j->late++;
        if (rc == LVRPC_OK && v->lib_ver > 0) {
            j->ok++;
            j->ok_after_restart += __atomic_load_n(j->restarted, __ATOMIC_ACQUIRE);
        } else {
            j->errors++;
            usleep(20000);
        }
        lvrpc_reply_free(v);
    }
    return NULL;
}

static void test_daemon_restart_under_load(void)
{
    enum { N = 16 };
    load_job jobs[N];
    pthread_t th[N];
    volatile int stop = 0, restarted = 0;
    lvrpc_options o = {0};
    lvrpc_client *c = NULL;
    lvrpc_stats st;
    unsigned ok = 0, errors = 0, late = 0, recovered = 0;
    char port[16];
    lvrpc_connect_get_lib_version_ret *v = NULL;

    o.mode = LVRPC_MODE_SHARED;
    o.pool_size = 2;
    o.call_timeout_ms = LOAD_TIMEOUT_MS;
    o.reconnect_min_ms = 50;
    o.reconnect_max_ms = 400;
    LVRPCT_ASSERT_OK(lvrpc_open(daemon_.uri_tcp, &o, &c));
    if (!c)
        return;
    memset(jobs, 0, sizeof(jobs));
    for (int i = 0; i < N; i++) {
        jobs[i].c = c;
        jobs[i].stop = &stop;
        jobs[i].restarted = &restarted;
        pthread_create(&th[i], NULL, load_worker, &jobs[i]);
    }
    usleep(300000);
    snprintf(port, sizeof(port), "%d", daemon_.tcp_port);
    lvrpct_daemon_stop(&daemon_);
    usleep(200000);
    setenv("TCP_PORT", port, 1); /* the new daemon on the same port */
    CU_ASSERT_EQUAL_FATAL(lvrpct_daemon_start(&daemon_), 0);
    unsetenv("TCP_PORT");
    __atomic_store_n(&restarted, 1, __ATOMIC_RELEASE);
    usleep(1500000);
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += jobs[i].ok;
        errors += jobs[i].errors;
        late += jobs[i].late;
        recovered += jobs[i].ok_after_restart > 0;
    }
    lvrpc_get_stats(c, &st);
    /* The calls in flight when the daemon went away fail with the cause;
     * calls made while the pool reconnects wait for it (within their
     * timeout) and go through. */
    lvrpct_assert(errors > 0, __FILE__, __LINE__, "the restart was seen (%u errors)", errors);
    lvrpct_assert(late == 0, __FILE__, __LINE__, "no call outlived its timeout (%u did)", late);
    lvrpct_assert(recovered == N, __FILE__, __LINE__,
                  "every thread got answers again after the restart (%u of %d)", recovered, N);
    lvrpct_assert(st.reconnects >= 2, __FILE__, __LINE__, "both connections reconnected (%llu)",
                  (unsigned long long)st.reconnects);
    LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(c, &v));
    lvrpc_reply_free(v);
    printf("\n    restart: %u ok, %u errors, %llu reconnects ", ok, errors,
           (unsigned long long)st.reconnects);
    lvrpc_close(c);
}

/* ------------------------------------------------------------ keepalive */

typedef struct ka_job {
    lvrpc_client *c;
    int rc;
    int64_t took_ms;
    char msg[256];
} ka_job;

static void *ka_worker(void *arg)
{
    ka_job *j = arg;
    lvrpc_connect_get_lib_version_ret *v = NULL;
    int64_t t0 = now_ms();

    j->rc = lvrpc_connect_get_lib_version(j->c, &v);
    j->took_ms = now_ms() - t0;
    snprintf(j->msg, sizeof(j->msg), "%s", lvrpc_last_message());
    lvrpc_reply_free(v);
    return NULL;
}

/* A daemon that stops answering (SIGSTOP) is declared dead by keepalive
 * within interval x (count + 1), long before the call's own timeout, and
 * the pool reconnects once it answers again. */
static void test_keepalive_declares_silent_peer_dead(void)
{
    enum { INTERVAL = 200, COUNT = 2 };
    lvrpc_options o = {0};
    lvrpc_client *c = NULL;
    lvrpc_connect_get_lib_version_ret *v = NULL;
    ka_job j = {0};
    pthread_t th;
    lvrpc_stats st;
    int rc = -1;

    o.mode = LVRPC_MODE_SHARED;
    o.call_timeout_ms = 20000;
    o.connect_timeout_ms = 1000;
    o.keepalive_interval_ms = INTERVAL;
    o.keepalive_count = COUNT;
    o.reconnect_min_ms = 50;
    o.reconnect_max_ms = 200;
    LVRPCT_ASSERT_OK(lvrpc_open(daemon_.uri_tcp, &o, &c));
    if (!c)
        return;
    LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(c, &v));
    lvrpc_reply_free(v);
    v = NULL;
    CU_ASSERT_EQUAL_FATAL(kill(daemon_.pid, SIGSTOP), 0);
    j.c = c;
    pthread_create(&th, NULL, ka_worker, &j);
    pthread_join(th, NULL);
    kill(daemon_.pid, SIGCONT);
    LVRPCT_ASSERT_INT(j.rc, LVRPC_ETIMEDOUT);
    lvrpct_assert(strstr(j.msg, "keepalive") != NULL, __FILE__, __LINE__,
                  "the error names keepalive: %s", j.msg);
    lvrpct_assert(j.took_ms <= INTERVAL * (COUNT + 1) + 1000, __FILE__, __LINE__,
                  "declared dead after %lld ms (interval %d x (count %d + 1) = %d)",
                  (long long)j.took_ms, INTERVAL, COUNT, INTERVAL * (COUNT + 1));
    for (int i = 0; i < 100 && rc != LVRPC_OK; i++) { /* the pool comes back */
        rc = lvrpc_connect_get_lib_version(c, &v);
        lvrpc_reply_free(v);
        v = NULL;
        if (rc != LVRPC_OK)
            usleep(100000);
    }
    LVRPCT_ASSERT_OK(rc);
    lvrpc_get_stats(c, &st);
    lvrpct_assert(st.reconnects >= 1, __FILE__, __LINE__, "reconnected (%llu)",
                  (unsigned long long)st.reconnects);
    lvrpc_close(c);
}

/* The daemon's own PINGs are answered: with client pings off, an idle
 * connection outlives the daemon's keepalive window (1 s x (1 + 1)). */
static void test_keepalive_daemon_pings_answered(void)
{
    lvrpct_daemon d2;
    lvrpc_options o = {0};
    lvrpc_client *c = NULL;
    lvrpc_connect_get_lib_version_ret *v = NULL;
    lvrpc_stats st;

    memset(&d2, 0, sizeof(d2));
    setenv("KEEPALIVE_INTERVAL", "1", 1);
    setenv("KEEPALIVE_COUNT", "1", 1);
    CU_ASSERT_EQUAL_FATAL(lvrpct_daemon_start(&d2), 0);
    unsetenv("KEEPALIVE_INTERVAL");
    unsetenv("KEEPALIVE_COUNT");
    o.mode = LVRPC_MODE_SHARED;
    o.keepalive_interval_ms = LVRPC_KEEPALIVE_OFF;
    LVRPCT_ASSERT_OK(lvrpc_open(d2.uri_tcp, &o, &c));
    if (c) {
        usleep(3500000);
        LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(c, &v));
        lvrpc_reply_free(v);
        lvrpc_get_stats(c, &st);
        LVRPCT_ASSERT_INT(st.reconnects, 0);
        LVRPCT_ASSERT_INT(st.errors, 0);
        lvrpc_close(c);
    }
    lvrpct_daemon_stop(&d2);
}

/* ------------------------------------------------------------ fake-server cases */

typedef struct timed_job {
    lvrpc_client *c;
    int rc;
    int64_t took_ms;
} timed_job;

static void *timed_worker(void *arg)
{
    timed_job *j = arg;
    lvrpc_connect_get_lib_version_ret *v = NULL;
    int64_t t0 = now_ms();

    j->rc = lvrpc_connect_get_lib_version(j->c, &v);
    j->took_ms = now_ms() - t0;
    lvrpc_reply_free(v);
    return NULL;
}

static lvrpc_client *open_fake(fake_server *s, unsigned timeout_ms, unsigned max_inflight)
{
    char uri[256];
    lvrpc_options o = {0};
    lvrpc_client *c = NULL;

    o.mode = LVRPC_MODE_SHARED;
    o.call_timeout_ms = timeout_ms;
    o.max_inflight = max_inflight;
    LVRPCT_ASSERT_OK(lvrpc_open(fake_server_uri(s, 0, uri, sizeof(uri)), &o, &c));
    return c;
}

static void test_timeout_never_answer(void)
{
    enum { N = 8 };
    fake_config cfg = {0};
    fake_server *s = NULL;
    timed_job jobs[N];
    pthread_t th[N];
    lvrpc_client *c;
    lvrpc_connect_get_lib_version_ret *v = NULL;

    cfg.behavior = FAKE_NEVER_ANSWER;
    cfg.behavior_flags = FAKE_ALL_CALLS;
    CU_ASSERT_EQUAL_FATAL(fake_server_start(&cfg, &s), 0);
    c = open_fake(s, 300, 5);
    if (c) {
        for (int i = 0; i < N; i++) {
            jobs[i].c = c;
            pthread_create(&th[i], NULL, timed_worker, &jobs[i]);
        }
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            LVRPCT_ASSERT_INT(jobs[i].rc, LVRPC_ETIMEDOUT);
            /* 3 of the 8 wait in the queue (max_inflight 5): same deadline */
            lvrpct_assert(jobs[i].took_ms >= 290 && jobs[i].took_ms < 800, __FILE__, __LINE__,
                          "timed out on time (%lld ms)", (long long)jobs[i].took_ms);
        }
        fake_server_set_behavior(s, FAKE_NORMAL, 0);
        LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(c, &v));
        lvrpc_reply_free(v);
        lvrpc_close(c);
    }
    fake_server_stop(s);
}

static void test_late_reply_dropped(void)
{
    fake_config cfg = {0};
    fake_server *s = NULL;
    lvrpc_client *c;
    lvrpc_connect_get_hostname_ret *h = NULL;
    lvrpc_connect_get_lib_version_ret *v = NULL;
    lvrpc_stats st;

    cfg.behavior = FAKE_SLOW;
    cfg.slow_ms = 400;
    CU_ASSERT_EQUAL_FATAL(fake_server_start(&cfg, &s), 0);
    c = open_fake(s, 150, 5);
    if (c) {
        LVRPCT_ASSERT_RC(lvrpc_connect_get_lib_version(c, &v), LVRPC_ETIMEDOUT);
        usleep(500000); /* the late reply arrives and must be dropped */
        LVRPCT_ASSERT_OK(lvrpc_connect_get_hostname(c, &h));
        if (h)
            LVRPCT_ASSERT_STR(h->hostname, FAKE_HOSTNAME);
        lvrpc_reply_free(h);
        lvrpc_get_stats(c, &st);
        LVRPCT_ASSERT_INT(st.dropped_replies, 1);
        LVRPCT_ASSERT_INT(st.reconnects, 0);
        lvrpc_close(c);
    }
    fake_server_stop(s);
}

static void test_close_wakes_waiters(void)
{
    enum { N = 8 };
    fake_config cfg = {0};
    fake_server *s = NULL;
    timed_job jobs[N];
    pthread_t th[N];
    lvrpc_client *c;

    cfg.behavior = FAKE_NEVER_ANSWER;
    cfg.behavior_flags = FAKE_ALL_CALLS;
    CU_ASSERT_EQUAL_FATAL(fake_server_start(&cfg, &s), 0);
    c = open_fake(s, 20000, 5);
    if (c) {
        for (int i = 0; i < N; i++) {
            jobs[i].c = c;
            pthread_create(&th[i], NULL, timed_worker, &jobs[i]);
        }
        fake_server_wait_calls(s, 5 + 3 /* handshake */, 2000);
        usleep(100000);
        lvrpc_close(c); /* returns once every caller has left */
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            LVRPCT_ASSERT_INT(jobs[i].rc, LVRPC_ECLOSED);
            lvrpct_assert(jobs[i].took_ms < 2000, __FILE__, __LINE__,
                          "woken promptly (%lld ms)", (long long)jobs[i].took_ms);
        }
    }
    fake_server_stop(s);
}

static void test_queue_in_order(void)
{
    enum { N = 12 };
    fake_config cfg = {0};
    fake_server *s = NULL;
    timed_job jobs[N];
    pthread_t th[N];
    lvrpc_client *c;
    int64_t t0;

    cfg.behavior = FAKE_SLOW;
    cfg.behavior_flags = FAKE_ALL_CALLS;
    cfg.slow_ms = 100;
    CU_ASSERT_EQUAL_FATAL(fake_server_start(&cfg, &s), 0);
    c = open_fake(s, 5000, 2); /* 2 in flight: 12 calls take >= 6 rounds */
    if (c) {
        t0 = now_ms();
        for (int i = 0; i < N; i++) {
            jobs[i].c = c;
            pthread_create(&th[i], NULL, timed_worker, &jobs[i]);
        }
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            LVRPCT_ASSERT_OK(jobs[i].rc);
        }
        /* The fake answers one connection's calls one after another, so
         * this bounds what was in flight only loosely; what matters is that
         * no call was lost and the limit made callers wait. */
        lvrpct_assert(now_ms() - t0 >= 550, __FILE__, __LINE__,
                      "max_inflight=2 made calls wait (%lld ms)", (long long)(now_ms() - t0));
        lvrpc_close(c);
    }
    fake_server_stop(s);
}

/* ------------------------------------------------------------ suites */

static int daemon_init(void)
{
    return lvrpct_daemon_start(&daemon_) == 0 ? 0 : -1;
}

static int daemon_cleanup(void)
{
    lvrpct_daemon_stop(&daemon_);
    return 0;
}

static void add_suites(void)
{
    static const lvrpct_test daemon_tests[] = {
        {"64 threads x 2000 calls, every answer its own", test_answers_are_their_own},
        {"4 threads, failing and succeeding calls: every error record its own",
         test_errors_are_their_own},
        {"daemon restarted under load", test_daemon_restart_under_load},
        {"keepalive declares a silent daemon dead", test_keepalive_declares_silent_peer_dead},
        {"the daemon's keepalive PINGs are answered", test_keepalive_daemon_pings_answered},
        {NULL, NULL},
    };
    static const lvrpct_test fake_tests[] = {
        {"timeout against a server that never answers", test_timeout_never_answer},
        {"late reply dropped and counted", test_late_reply_dropped},
        {"close wakes waiting calls", test_close_wakes_waiters},
        {"max_inflight queues calls in order", test_queue_in_order},
        {NULL, NULL},
    };
    lvrpct_add_suite("shared/real-libvirtd", daemon_init, daemon_cleanup, daemon_tests);
    lvrpct_add_suite("shared/fake-server", NULL, NULL, fake_tests);
}

int main(int argc, char **argv)
{
    const char *sc = getenv("LVRPCT_SCALE");

    if (sc && atoi(sc) > 0)
        scale = (unsigned)atoi(sc);
    return lvrpct_main(argc, argv, add_suites);
}
