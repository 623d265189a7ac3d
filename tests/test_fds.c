/* test_fds.c - file-descriptor passing (CALL_WITH_FDS / REPLY_WITH_FDS)
 * against tests/fakeserver.c, end to end.
 *
 * Each case runs in three configurations, one suite each: "fds/direct"
 * (LVRPC_MODE_DIRECT), "fds/shared1" and "fds/shared2" (LVRPC_MODE_SHARED
 * with pool_size 1 and 2), over the fake's UNIX socket unless it says TCP:
 *   fds in     DOMAIN_OPEN_GRAPHICS with the write ends of pipes, typed and
 *              through lvrpc_call_fds(): the fake writes "fake-fd-<i>\n"
 *              into each and closes it, so the read ends give exactly that,
 *              then EOF once the test closes its own write ends;
 *   fds out    LXC_DOMAIN_OPEN_NAMESPACE, typed and generic: FAKE_NS_FDS
 *              descriptors, close-on-exec, reading "ns-<i>\n" then EOF;
 *              with rfds NULL the library closes them (the process's open
 *              descriptor count does not move);
 *   parallel   8 threads x 50 calls on one handle mixing both procedures
 *              and plain calls: every answer right, the fake's descriptor
 *              counters exact, no descriptor left once the handle is closed;
 *   errors     33 descriptors and a closed one (LVRPC_EINVAL), descriptors
 *              over TCP (LVRPC_ENOTSUP): nothing reaches the fake; the
 *              fake's FDS_MISSING, FDS_TOO_MANY, FDS_NO_COUNT replies
 *              (LVRPC_EPROTO at once, about file descriptors, then a new
 *              socket), FDS_UNANNOUNCED (the call succeeds and the stray
 *              descriptor is closed with the handle), FDS_MISSING over TCP.
 *
 * Descriptor counts are taken from /proc/self/fd once the fake has seen
 * every client socket close (its own sockets live in this process too).
 *
 * LVRPCT_SCALE (default 1) divides the parallel test's call count;
 * LVRPC_TEST_SLACK_MS (default 400) widens the timing bounds.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lvrpc.h"
#include "harness.h"
#include "fakeserver.h"

#define CALL_TIMEOUT_MS 2000u
#define CONNECT_TIMEOUT_MS 2000u
/* How long a Shared handle may take to reconnect after a protocol error
 * (reconnect_min_ms defaults to 100 ms); meanwhile calls fail with
 * LVRPC_ECLOSED. */
#define RECONNECT_WINDOW_MS 1500
#define PAR_THREADS 8
#define PAR_CALLS 50

static unsigned g_slack_ms = 400;
static unsigned g_scale = 1;

/* ------------------------------------------------------------------ configurations */

typedef struct fds_cfg {
    const char *name;
    lvrpc_mode mode;
    unsigned pool_size;
} fds_cfg;

static const fds_cfg cfg_direct = { "direct", LVRPC_MODE_DIRECT, 0 };
static const fds_cfg cfg_shared1 = { "shared1", LVRPC_MODE_SHARED, 1 };
static const fds_cfg cfg_shared2 = { "shared2", LVRPC_MODE_SHARED, 2 };

/* ------------------------------------------------------------------ helpers */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The process's open descriptors (entries of /proc/self/fd), or -1. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Waits until the fake has no connection open (each one's socket is
 * closed by then). */
static int wait_fake_idle(fake_server *s, unsigned timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    for (;;) {
        fake_stats st;

        fake_server_get_stats(s, &st);
        if (st.active == 0)
            return 1;
        if (now_ms() >= end)
            return 0;
        usleep(2000);
    }
}

/* Waits until the fake has accepted n connections. */
static int wait_accepted(fake_server *s, uint64_t n, unsigned timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    while (fake_server_connections(s) < n) {
        if (now_ms() >= end)
            return 0;
        usleep(2000);
    }
    return 1;
}

/* Waits until the fake has sent (and closed its copies of) n descriptors:
 * they live in this process too. */
static uint64_t wait_fds_sent(fake_server *s, uint64_t n, unsigned timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    for (;;) {
        fake_stats st;

        fake_server_get_stats(s, &st);
        if (st.fds_sent >= n || now_ms() >= end)
            return st.fds_sent;
        usleep(1000);
    }
}

static uint64_t other_calls(fake_server *s)
{
    fake_stats st;

    fake_server_get_stats(s, &st);
    return st.calls - st.handshake_calls;
}

/* Reads what fd holds without blocking (it is made non-blocking): up to
 * size-1 bytes into buf, NUL-terminated.  *eof: the writers are all gone.
 * Returns the byte count, or -1 on a read error. */
static int read_nb(int fd, char *buf, size_t size, int *eof)
{
    size_t got = 0;

    *eof = 0;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        return -1;
    for (;;) {
        ssize_t n = read(fd, buf + got, size - 1 - got);

        if (n > 0) {
            got += (size_t)n;
            if (got == size - 1)
                break;
        } else if (n == 0) {
            *eof = 1;
            break;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            return -1;
        }
    }
    buf[got] = '\0';
    return (int)got;
}

static int open_pipe(int p[2])
{
    return pipe2(p, O_CLOEXEC);
}

static void close_pipe(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

static void graphics_args(lvrpc_domain_open_graphics_args *a, unsigned idx)
{
    memset(a, 0, sizeof(*a));
    a->dom.name = (char *)"dom-0";
    fake_uuid_for_name("dom-0", (unsigned char *)a->dom.uuid);
    a->dom.id = 1;
    a->idx = idx;
}

static void namespace_args(lvrpc_lxc_domain_open_namespace_args *a)
{
    memset(a, 0, sizeof(*a));
    a->dom.name = (char *)"dom-0";
    fake_uuid_for_name("dom-0", (unsigned char *)a->dom.uuid);
    a->dom.id = 1;
}

/* CONNECT_GET_LIB_VERSION; *ver gets the version. */
static int call_libver(lvrpc_client *c, uint64_t *ver)
{
    lvrpc_connect_get_lib_version_ret *r = NULL;
    int rc = lvrpc_connect_get_lib_version(c, &r);

    *ver = rc == LVRPC_OK && r ? r->lib_ver : 0;
    lvrpc_reply_free(r);
    return rc;
}

/* ------------------------------------------------------------------ fixture */

typedef struct fx {
    const fds_cfg *cfg;
    fake_server *srv;
    lvrpc_client *c;
    char uri[512];
    int fds0; /* open descriptors before the handle was opened */
} fx;

/* Starts a fake (UNIX socket too) and opens a handle on it (use_unix: its
 * UNIX socket, else TCP).  Returns 1 when both are ready. */
static int fx_start(fx *f, const fds_cfg *cfg, int use_unix)
{
    fake_config fc = { 0 };
    lvrpc_options o;
    int rc;

    memset(f, 0, sizeof(*f));
    f->cfg = cfg;
    fc.unix_socket = 1;
    if (fake_server_start(&fc, &f->srv) != 0) {
        lvrpct_assert(0, __FILE__, __LINE__, "the fake server did not start: %s",
                      strerror(errno));
        return 0;
    }
    fake_server_uri(f->srv, use_unix, f->uri, sizeof(f->uri));
    f->fds0 = count_fds();
    memset(&o, 0, sizeof(o));
    o.mode = cfg->mode;
    o.pool_size = cfg->pool_size;
    o.call_timeout_ms = CALL_TIMEOUT_MS;
    o.connect_timeout_ms = CONNECT_TIMEOUT_MS;
    rc = lvrpc_open(f->uri, &o, &f->c);
    lvrpct_assert(rc == LVRPC_OK, __FILE__, __LINE__, "lvrpc_open(%s) %s: %s (%s)", f->uri,
                  cfg->name, lvrpc_strerror(rc), lvrpc_last_message());
    if (rc != LVRPC_OK) {
        fake_server_stop(f->srv);
        f->srv = NULL;
        return 0;
    }
    lvrpc_set_timeout(f->c, CALL_TIMEOUT_MS);
    return 1;
}

/* Closes the handle; with check_fds, asserts that the process holds as many
 * descriptors as before it was opened. */
static void fx_close_handle(fx *f, int check_fds)
{
    int n;

    lvrpc_close(f->c);
    f->c = NULL;
    if (!check_fds)
        return;
    LVRPCT_ASSERT(wait_fake_idle(f->srv, 3000 + g_slack_ms));
    n = count_fds();
    lvrpct_assert(n == f->fds0 && n >= 0, __FILE__, __LINE__,
                  "%s: %d descriptors open after lvrpc_close, %d before lvrpc_open",
                  f->cfg->name, n, f->fds0);
}

static void fx_stop(fx *f)
{
    if (f->c)
        fx_close_handle(f, 0);
    fake_server_stop(f->srv);
    f->srv = NULL;
}

/* One good call: the handle works (a Shared handle may still be
 * reconnecting for a while: LVRPC_ECLOSED is retried). */
static void check_works(fx *f, const char *what)
{
    int64_t end = now_ms() + RECONNECT_WINDOW_MS + g_slack_ms;
    uint64_t ver = 0;
    int rc;

    for (;;) {
        rc = call_libver(f->c, &ver);
        if (rc != LVRPC_ECLOSED || f->cfg->mode != LVRPC_MODE_SHARED || now_ms() >= end)
            break;
        usleep(10 * 1000);
    }
    lvrpct_assert(rc == LVRPC_OK && ver == FAKE_LIB_VERSION, __FILE__, __LINE__,
                  "%s/%s: the next call: %s (%s), version %llu", f->cfg->name, what,
                  lvrpc_strerror(rc), rc ? lvrpc_last_message() : "",
                  (unsigned long long)ver);
}

/* Checks a pipe's read end after a call wrote into its write end, which
 * the test has closed: exactly want, then EOF (no other writer left). */
static void check_pipe(int rd, const char *want, const char *what)
{
    char buf[128];
    int eof = 0, n = read_nb(rd, buf, sizeof(buf), &eof);

    lvrpct_assert(n >= 0 && strcmp(buf, want) == 0, __FILE__, __LINE__,
                  "%s: read \"%s\" (%d bytes), want \"%s\"", what, n >= 0 ? buf : "?", n,
                  want);
    lvrpct_assert(eof, __FILE__, __LINE__,
                  "%s: no EOF: another copy of the write end is still open", what);
}

/* ------------------------------------------------------------------ 1. fds in */

static void fds_in_case(const fds_cfg *cfg, int generic)
{
    enum { N = 3 };
    lvrpc_domain_open_graphics_args a;
    fake_stats st0, st1;
    int p[N][2], fds[N], n = generic ? N : 2, i;
    char want[32], what[64];
    fx f;

    for (i = 0; i < N; i++)
        p[i][0] = p[i][1] = -1;
    if (!fx_start(&f, cfg, 1))
        return;
    for (i = 0; i < n; i++) {
        LVRPCT_ASSERT(open_pipe(p[i]) == 0);
        fds[i] = p[i][1];
    }
    graphics_args(&a, 0);
    fake_server_get_stats(f.srv, &st0);
    if (generic) {
        int *rfds = (int *)&a; /* must be reset */
        unsigned nr = 77;

        LVRPCT_ASSERT_OK(lvrpc_call_fds(f.c, LVRPC_PROGRAM_REMOTE, LVRPC_PROGRAM_REMOTE_VERSION,
                                        LVRPC_PROC_DOMAIN_OPEN_GRAPHICS,
                                        (xdrproc_t)xdr_lvrpc_domain_open_graphics_args, &a,
                                        fds, (unsigned)n, NULL, 0, NULL, &rfds, &nr));
        LVRPCT_ASSERT(rfds == NULL);
        LVRPCT_ASSERT_INT(nr, 0);
    } else {
        LVRPCT_ASSERT_OK(lvrpc_domain_open_graphics(f.c, &a, fds, (unsigned)n));
    }
    fake_server_get_stats(f.srv, &st1);
    LVRPCT_ASSERT_INT(st1.fds_received - st0.fds_received, n);
    LVRPCT_ASSERT_INT(st1.fds_calls - st0.fds_calls, 1);
    LVRPCT_ASSERT_INT(st1.bad_packets, 0);
    for (i = 0; i < n; i++) { /* ours: the fake had duplicates */
        close(p[i][1]);
        p[i][1] = -1;
    }
    for (i = 0; i < n; i++) {
        snprintf(want, sizeof(want), "fake-fd-%d\n", i);
        snprintf(what, sizeof(what), "%s: descriptor %d", cfg->name, i);
        check_pipe(p[i][0], want, what);
    }
    /* nfds 0 on the typed call: a plain CALL, which still works */
    LVRPCT_ASSERT_OK(lvrpc_domain_open_graphics(f.c, &a, NULL, 0));
    fake_server_get_stats(f.srv, &st0);
    LVRPCT_ASSERT_INT(st0.fds_calls, st1.fds_calls);
    check_works(&f, "fds in");
    for (i = 0; i < N; i++)
        close_pipe(p[i]);
    fx_close_handle(&f, 1);
    fx_stop(&f);
}

/* ------------------------------------------------------------------ 2. fds out */

/* Checks and closes the descriptors of a namespace reply. */
static void check_ns_fds(int *rfds, unsigned n, const char *what)
{
    char want[32], w[96];

    lvrpct_assert(n == FAKE_NS_FDS && rfds != NULL, __FILE__, __LINE__,
                  "%s: %u descriptors (%p), want %u", what, n, (void *)rfds, FAKE_NS_FDS);
    for (unsigned i = 0; rfds && i < n; i++) {
        int fl = fcntl(rfds[i], F_GETFD);

        lvrpct_assert(fl >= 0 && (fl & FD_CLOEXEC), __FILE__, __LINE__,
                      "%s: descriptor %u (%d): F_GETFD %d, close-on-exec not set", what, i,
                      rfds[i], fl);
        snprintf(want, sizeof(want), "ns-%u\n", i);
        snprintf(w, sizeof(w), "%s: descriptor %u", what, i);
        check_pipe(rfds[i], want, w);
        close(rfds[i]);
    }
    free(rfds);
}

static void fds_out_case(const fds_cfg *cfg, int generic)
{
    lvrpc_lxc_domain_open_namespace_args a;
    fake_stats st0;
    int *rfds = NULL;
    unsigned n = 0;
    fx f;

    if (!fx_start(&f, cfg, 1))
        return;
    namespace_args(&a);
    fake_server_get_stats(f.srv, &st0);
    if (generic)
        LVRPCT_ASSERT_OK(lvrpc_call_fds(f.c, LVRPC_PROGRAM_LXC, LVRPC_PROGRAM_LXC_VERSION,
                                        LVRPC_LXC_PROC_DOMAIN_OPEN_NAMESPACE,
                                        (xdrproc_t)xdr_lvrpc_lxc_domain_open_namespace_args,
                                        &a, NULL, 0, NULL, 0, NULL, &rfds, &n));
    else
        LVRPCT_ASSERT_OK(lvrpc_lxc_domain_open_namespace(f.c, &a, &rfds, &n));
    LVRPCT_ASSERT_INT(wait_fds_sent(f.srv, st0.fds_sent + FAKE_NS_FDS, 2000) - st0.fds_sent,
                      FAKE_NS_FDS);
    check_ns_fds(rfds, n, cfg->name);
    check_works(&f, "fds out");
    fx_close_handle(&f, 1);
    fx_stop(&f);
}

/* rfds NULL: the library closes what came. */
static void fds_out_discard_case(const fds_cfg *cfg)
{
    lvrpc_lxc_domain_open_namespace_args a;
    fake_stats st0;
    int n0, n1, i;
    fx f;

    if (!fx_start(&f, cfg, 1))
        return;
    namespace_args(&a);
    check_works(&f, "warm-up"); /* the sockets are open: they are counted */
    n0 = count_fds();
    fake_server_get_stats(f.srv, &st0);
    for (i = 0; i < 10; i++)
        LVRPCT_ASSERT_OK(lvrpc_lxc_domain_open_namespace(f.c, &a, NULL, NULL));
    LVRPCT_ASSERT_INT(wait_fds_sent(f.srv, st0.fds_sent + 10 * FAKE_NS_FDS, 2000) -
                          st0.fds_sent, 10 * FAKE_NS_FDS);
    n1 = count_fds();
    lvrpct_assert(n1 == n0, __FILE__, __LINE__,
                  "%s: %d descriptors open after 10 calls with rfds NULL, %d before",
                  cfg->name, n1, n0);
    /* also through the generic call, and a reply's fds with rfds NULL */
    LVRPCT_ASSERT_OK(lvrpc_call_fds(f.c, LVRPC_PROGRAM_LXC, LVRPC_PROGRAM_LXC_VERSION,
                                    LVRPC_LXC_PROC_DOMAIN_OPEN_NAMESPACE,
                                    (xdrproc_t)xdr_lvrpc_lxc_domain_open_namespace_args, &a,
                                    NULL, 0, NULL, 0, NULL, NULL, NULL));
    LVRPCT_ASSERT_INT(wait_fds_sent(f.srv, st0.fds_sent + 11 * FAKE_NS_FDS, 2000) -
                          st0.fds_sent, 11 * FAKE_NS_FDS);
    LVRPCT_ASSERT_INT(count_fds(), n0);
    fx_close_handle(&f, 1);
    fx_stop(&f);
}

/* ------------------------------------------------------------------ 3. parallel */

typedef struct par_arg {
    lvrpc_client *c;
    unsigned calls;
    unsigned n_in, n_out; /* descriptors passed each way */
    lvrpct_ctx ctx;
} par_arg;

static void *par_main(void *arg)
{
    par_arg *pa = arg;
    lvrpct_ctx *t = &pa->ctx;
    lvrpc_domain_open_graphics_args ga;
    lvrpc_lxc_domain_open_namespace_args na;
    int p[2][2] = { { -1, -1 }, { -1, -1 } };
    int *rfds = NULL;
    unsigned nr = 0;

    graphics_args(&ga, (unsigned)t->index);
    namespace_args(&na);
    for (unsigned i = 0; i < pa->calls; i++) {
        switch ((i + (unsigned)t->index) % 3) {
        case 0: {
            int fds[2];
            char buf[64];
            int eof;

            T_CHECKF(open_pipe(p[0]) == 0 && open_pipe(p[1]) == 0, "pipe: %s",
                     strerror(errno));
            fds[0] = p[0][1];
            fds[1] = p[1][1];
            T_OK(lvrpc_domain_open_graphics(pa->c, &ga, fds, 2));
            pa->n_in += 2;
            for (int k = 0; k < 2; k++) {
                char want[32];

                close(p[k][1]);
                p[k][1] = -1;
                snprintf(want, sizeof(want), "fake-fd-%d\n", k);
                T_CHECKF(read_nb(p[k][0], buf, sizeof(buf), &eof) >= 0 && eof, "call %u "
                         "descriptor %d: no EOF (\"%s\")", i, k, buf);
                T_STREQ(buf, want);
                close(p[k][0]);
                p[k][0] = -1;
            }
            break;
        }
        case 1:
            T_OK(lvrpc_lxc_domain_open_namespace(pa->c, &na, &rfds, &nr));
            T_INTEQ(nr, FAKE_NS_FDS);
            T_CHECK(rfds != NULL);
            pa->n_out += nr;
            for (unsigned k = 0; k < nr; k++) {
                char buf[64], want[32];
                int eof;

                T_CHECK(fcntl(rfds[k], F_GETFD) & FD_CLOEXEC);
                snprintf(want, sizeof(want), "ns-%u\n", k);
                T_CHECKF(read_nb(rfds[k], buf, sizeof(buf), &eof) >= 0 && eof,
                         "call %u namespace descriptor %u: no EOF", i, k);
                T_STREQ(buf, want);
            }
            for (unsigned k = 0; k < nr; k++)
                close(rfds[k]);
            free(rfds);
            rfds = NULL;
            nr = 0;
            break;
        default: {
            uint64_t ver = 0;

            T_OK(call_libver(pa->c, &ver));
            T_INTEQ(ver, FAKE_LIB_VERSION);
            break;
        }
        }
    }
out:
    for (unsigned k = 0; k < nr; k++)
        close(rfds[k]);
    free(rfds);
    close_pipe(p[0]);
    close_pipe(p[1]);
    return NULL;
}

static void parallel_case(const fds_cfg *cfg)
{
    par_arg pa[PAR_THREADS];
    pthread_t th[PAR_THREADS];
    int started[PAR_THREADS];
    unsigned in = 0, out = 0, calls = PAR_CALLS / g_scale ? PAR_CALLS / g_scale : 1;
    fake_stats st;
    fx f;

    if (!fx_start(&f, cfg, 1))
        return;
    for (int i = 0; i < PAR_THREADS; i++) {
        char tag[24];

        memset(&pa[i], 0, sizeof(pa[i]));
        pa[i].c = f.c;
        pa[i].calls = calls;
        snprintf(tag, sizeof(tag), "%s-t%d", cfg->name, i);
        lvrpct_ctx_init(&pa[i].ctx, tag, i, 0);
        started[i] = pthread_create(&th[i], NULL, par_main, &pa[i]) == 0;
        LVRPCT_ASSERT(started[i]);
    }
    for (int i = 0; i < PAR_THREADS; i++) {
        if (!started[i])
            continue;
        pthread_join(th[i], NULL);
        lvrpct_ctx_report(&pa[i].ctx, "parallel fds calls");
        in += pa[i].n_in;
        out += pa[i].n_out;
    }
    LVRPCT_ASSERT_INT(wait_fds_sent(f.srv, out, 2000 + g_slack_ms), out);
    fake_server_get_stats(f.srv, &st);
    LVRPCT_ASSERT_INT(st.fds_received, in);
    LVRPCT_ASSERT_INT(st.bad_packets, 0);
    LVRPCT_ASSERT(in > 0 && out > 0);
    fx_close_handle(&f, 1);
    fx_stop(&f);
}

/* ------------------------------------------------------------------ 4. errors */

/* A call the library must refuse before sending anything. */
static void refused_call(fx *f, const int *fds, unsigned n, int want, const char *what)
{
    lvrpc_domain_open_graphics_args a;
    uint64_t calls0 = other_calls(f->srv), calls1;
    fake_stats st0, st1;

    graphics_args(&a, 0);
    fake_server_get_stats(f->srv, &st0);
    LVRPCT_ASSERT_RC(lvrpc_domain_open_graphics(f->c, &a, fds, n), want);
    lvrpct_assert(lvrpc_last_message()[0] != '\0', __FILE__, __LINE__,
                  "%s/%s: no error message", f->cfg->name, what);
    usleep(50 * 1000); /* anything sent would reach the fake by now */
    calls1 = other_calls(f->srv);
    fake_server_get_stats(f->srv, &st1);
    lvrpct_assert(calls1 == calls0, __FILE__, __LINE__,
                  "%s/%s: the fake received %llu calls", f->cfg->name, what,
                  (unsigned long long)(calls1 - calls0));
    LVRPCT_ASSERT_INT(st1.fds_received, st0.fds_received);
    LVRPCT_ASSERT_INT(st1.bad_packets, 0);
    check_works(f, what);
    LVRPCT_ASSERT_INT(other_calls(f->srv), calls0 + 1);
}

static void too_many_case(const fds_cfg *cfg)
{
    int p[2] = { -1, -1 }, fds[LVRPC_NUM_FDS_MAX + 1], eof = 0;
    char buf[64];
    fx f;

    if (!fx_start(&f, cfg, 1))
        return;
    LVRPCT_ASSERT(open_pipe(p) == 0);
    for (unsigned i = 0; i < LVRPC_NUM_FDS_MAX + 1; i++)
        fds[i] = p[1];
    refused_call(&f, fds, LVRPC_NUM_FDS_MAX + 1, LVRPC_EINVAL, "33 descriptors");
    close(p[1]);
    p[1] = -1;
    LVRPCT_ASSERT_INT(read_nb(p[0], buf, sizeof(buf), &eof), 0);
    LVRPCT_ASSERT(eof);
    close_pipe(p);
    /* 32, the limit, pass */
    LVRPCT_ASSERT(open_pipe(p) == 0);
    if (p[1] >= 0) {
        lvrpc_domain_open_graphics_args a;
        fake_stats st0, st1;

        for (unsigned i = 0; i < LVRPC_NUM_FDS_MAX; i++)
            fds[i] = p[1];
        graphics_args(&a, 0);
        fake_server_get_stats(f.srv, &st0);
        LVRPCT_ASSERT_OK(lvrpc_domain_open_graphics(f.c, &a, fds, LVRPC_NUM_FDS_MAX));
        fake_server_get_stats(f.srv, &st1);
        LVRPCT_ASSERT_INT(st1.fds_received - st0.fds_received, LVRPC_NUM_FDS_MAX);
    }
    close_pipe(p);
    fx_close_handle(&f, 1);
    fx_stop(&f);
}

static void closed_fd_case(const fds_cfg *cfg)
{
    int good[2] = { -1, -1 }, gone[2] = { -1, -1 }, fds[2], eof = 0;
    char buf[64];
    fx f;

    if (!fx_start(&f, cfg, 1))
        return;
    LVRPCT_ASSERT(open_pipe(good) == 0);
    LVRPCT_ASSERT(open_pipe(gone) == 0);
    fds[0] = good[1];
    fds[1] = gone[0];
    close_pipe(gone);
    LVRPCT_ASSERT(fcntl(fds[1], F_GETFD) < 0 && errno == EBADF);
    refused_call(&f, fds, 2, LVRPC_EINVAL, "a closed descriptor");
    close(good[1]);
    good[1] = -1;
    LVRPCT_ASSERT_INT(read_nb(good[0], buf, sizeof(buf), &eof), 0); /* nothing written */
    LVRPCT_ASSERT(eof);
    /* fds NULL with nfds > 0 */
    refused_call(&f, NULL, 1, LVRPC_EINVAL, "fds NULL");
    close_pipe(good);
    fx_close_handle(&f, 1);
    fx_stop(&f);
}

static void tcp_enotsup_case(const fds_cfg *cfg)
{
    int p[2] = { -1, -1 }, eof = 0;
    char buf[64];
    fx f;

    if (!fx_start(&f, cfg, 0))
        return;
    LVRPCT_ASSERT(strncmp(f.uri, "test+tcp://", 11) == 0);
    LVRPCT_ASSERT(open_pipe(p) == 0);
    refused_call(&f, &p[1], 1, LVRPC_ENOTSUP, "descriptors over TCP");
    close(p[1]);
    p[1] = -1;
    LVRPCT_ASSERT_INT(read_nb(p[0], buf, sizeof(buf), &eof), 0);
    LVRPCT_ASSERT(eof);
    close_pipe(p);
    fx_close_handle(&f, 1);
    fx_stop(&f);
}

/* A reply whose descriptors do not add up: LVRPC_EPROTO at once, then the
 * handle works again on a new socket. */
static void bad_reply_case(const fds_cfg *cfg, fake_behavior b, int use_unix)
{
    char what[96];
    fake_stats st0, st1;
    uint64_t ver = 0;
    int64_t t0, el;
    lvrpc_error e;
    fx f;
    int rc;

    snprintf(what, sizeof(what), "%s/%s%s", cfg->name, fake_behavior_name(b),
             use_unix ? "" : "/tcp");
    if (!fx_start(&f, cfg, use_unix))
        return;
    check_works(&f, "warm-up"); /* the first call is the fault's */
    fake_server_get_stats(f.srv, &st0);
    fake_server_set_behavior(f.srv, b, FAKE_ALL_CALLS);
    t0 = now_ms();
    rc = call_libver(f.c, &ver);
    el = now_ms() - t0;
    fake_server_set_behavior(f.srv, FAKE_NORMAL, 0);
    lvrpc_last_error(&e);
    fake_server_get_stats(f.srv, &st1);
    lvrpct_assert(st1.faults > st0.faults, __FILE__, __LINE__,
                  "%s: the fake did not misbehave (test bug)", what);
    lvrpct_assert(rc == LVRPC_EPROTO && e.code == LVRPC_EPROTO, __FILE__, __LINE__,
                  "%s: %s (%d) \"%s\", want LVRPC_EPROTO", what, lvrpc_strerror(rc), rc,
                  e.message);
    lvrpct_assert(strstr(e.message, "file descriptors") != NULL, __FILE__, __LINE__,
                  "%s: the message does not mention file descriptors: \"%s\"", what,
                  e.message);
    lvrpct_assert(el < (int64_t)CALL_TIMEOUT_MS, __FILE__, __LINE__,
                  "%s: took %lld ms to fail (call timeout %u ms)", what, (long long)el,
                  CALL_TIMEOUT_MS);
    /* the socket it came on is dropped, and the next call has a new one */
    lvrpct_assert(fake_server_wait_closed_by_peer(f.srv, st0.closed_by_peer + 1,
                                                  2000 + g_slack_ms),
                  __FILE__, __LINE__, "%s: the client kept the socket open", what);
    check_works(&f, what);
    /* Direct mode needed a new socket for that call; a Shared pool of 2 may
     * have used its other connection, and reconnects in the background */
    lvrpct_assert(wait_accepted(f.srv, st0.accepted + 1, RECONNECT_WINDOW_MS + g_slack_ms),
                  __FILE__, __LINE__, "%s: no new connection after the fault (%llu before)",
                  what, (unsigned long long)st0.accepted);
    check_works(&f, what);
    fx_close_handle(&f, 1);
    fx_stop(&f);
}

/* A descriptor nobody asked for, on a correct reply: the call succeeds
 * and the descriptor is closed (at the latest with the handle).
 * then_fds: a reply with descriptors follows on the same socket, and must
 * bring its own descriptors, not the stray one. */
static void unannounced_case(const fds_cfg *cfg, int then_fds)
{
    fake_stats st0, st1;
    uint64_t ver = 0;
    fx f;

    if (!fx_start(&f, cfg, 1))
        return;
    check_works(&f, "warm-up");
    fake_server_get_stats(f.srv, &st0);
    fake_server_set_behavior(f.srv, FAKE_FDS_UNANNOUNCED, FAKE_ALL_CALLS);
    LVRPCT_ASSERT_OK(call_libver(f.c, &ver));
    fake_server_set_behavior(f.srv, FAKE_NORMAL, 0);
    LVRPCT_ASSERT_INT(ver, FAKE_LIB_VERSION);
    fake_server_get_stats(f.srv, &st1);
    LVRPCT_ASSERT(st1.faults > st0.faults);
    check_works(&f, "after an unannounced descriptor");
    if (then_fds) {
        lvrpc_lxc_domain_open_namespace_args a;
        int *rfds = NULL;
        unsigned n = 0;

        LVRPCT_ASSERT_INT(st1.accepted, st0.accepted); /* the same socket(s) */
        namespace_args(&a);
        LVRPCT_ASSERT_OK(lvrpc_lxc_domain_open_namespace(f.c, &a, &rfds, &n));
        check_ns_fds(rfds, n, "namespace after an unannounced descriptor");
    }
    fx_close_handle(&f, 1);
    fx_stop(&f);
}

/* ------------------------------------------------------------------ suites */

#define FDS_CASES(X, cfg)                                                                \
    X(cfg, in_typed, fds_in_case(&cfg_##cfg, 0))                                         \
    X(cfg, in_generic, fds_in_case(&cfg_##cfg, 1))                                       \
    X(cfg, out_typed, fds_out_case(&cfg_##cfg, 0))                                       \
    X(cfg, out_generic, fds_out_case(&cfg_##cfg, 1))                                     \
    X(cfg, out_discarded, fds_out_discard_case(&cfg_##cfg))                              \
    X(cfg, parallel, parallel_case(&cfg_##cfg))                                          \
    X(cfg, too_many, too_many_case(&cfg_##cfg))                                          \
    X(cfg, closed_fd, closed_fd_case(&cfg_##cfg))                                        \
    X(cfg, tcp_enotsup, tcp_enotsup_case(&cfg_##cfg))                                    \
    X(cfg, missing, bad_reply_case(&cfg_##cfg, FAKE_FDS_MISSING, 1))                     \
    X(cfg, too_many_in_reply, bad_reply_case(&cfg_##cfg, FAKE_FDS_TOO_MANY, 1))          \
    X(cfg, no_count, bad_reply_case(&cfg_##cfg, FAKE_FDS_NO_COUNT, 1))                   \
    X(cfg, missing_tcp, bad_reply_case(&cfg_##cfg, FAKE_FDS_MISSING, 0))                 \
    X(cfg, unannounced, unannounced_case(&cfg_##cfg, 0))                                 \
    X(cfg, unannounced_then_fds, unannounced_case(&cfg_##cfg, 1))

#define DEFINE_TEST(cfg, name, body) \
    static void t_##cfg##_##name(void) { body; }
#define TEST_ENTRY(cfg, name, body) { #name, t_##cfg##_##name },

FDS_CASES(DEFINE_TEST, direct)
FDS_CASES(DEFINE_TEST, shared1)
FDS_CASES(DEFINE_TEST, shared2)

static void add_suites(void)
{
    static const lvrpct_test direct_tests[] = { FDS_CASES(TEST_ENTRY, direct) { NULL, NULL } };
    static const lvrpct_test shared1_tests[] = { FDS_CASES(TEST_ENTRY, shared1) { NULL, NULL } };
    static const lvrpct_test shared2_tests[] = { FDS_CASES(TEST_ENTRY, shared2) { NULL, NULL } };

    lvrpct_add_suite("fds/direct", NULL, NULL, direct_tests);
    lvrpct_add_suite("fds/shared1", NULL, NULL, shared1_tests);
    lvrpct_add_suite("fds/shared2", NULL, NULL, shared2_tests);
}

int main(int argc, char **argv)
{
    const char *sc = getenv("LVRPCT_SCALE"), *slack = getenv("LVRPC_TEST_SLACK_MS");

    if (sc && atoi(sc) > 0)
        g_scale = (unsigned)atoi(sc);
    if (slack && atoi(slack) > 0)
        g_slack_ms = (unsigned)atoi(slack);
    return lvrpct_main(argc, argv, add_suites);
}
