/* test_tls.c - the TLS transport against a real libvirtd's TLS listener.
 *
 * Certificates are made at test time by tests/make-certs.sh --variants in a
 * private directory (ECDSA P-256; one suite uses RSA-2048), and each suite
 * starts its own libvirtd (tests/libvirtd-up.sh) with PKI_DIR pointing
 * there:
 *   tls            the good server certificate: success in Direct and Shared
 *                  mode (by name and by IP, concurrent calls on one TLS
 *                  connection, close under load, no socket churn), and every
 *                  failure that is the client's or its certificates' fault:
 *                  wrong CA, missing client certificate, a client certificate
 *                  of another CA, a certificate without its key, a missing CA
 *                  (also with no_verify), plaintext <-> TLS port mix-ups, a
 *                  silent peer, the API's explicit paths and SSL_CTX, bad
 *                  options
 *   tls-expired    the daemon serves an expired certificate
 *   tls-wronghost  the daemon's certificate names another host
 *   tls-rsa        RSA-2048 certificates, both modes
 *   tls-paths      libvirt's certificate search (pkipath, $HOME, /etc), as a
 *                  unit test of lvrpci_tls_locate (no daemon; the tests run as
 *                  root, for which libvirt never looks in $HOME)
 * Every failure must come back with the right code, a message naming the
 * cause, and within its timeout.
 *
 * Built without OpenSSL, the program checks instead that a tls URI fails
 * with LVRPC_ENOTSUP and the "built without TLS" message.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "harness.h"

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Opens uri with o (NULL: defaults, Direct) and expects code want, a
 * message containing needle (and needle2 unless NULL), within max_ms. */
static void expect_fail(const char *uri, const lvrpc_options *o, int want, const char *needle,
                        const char *needle2, int64_t max_ms, const char *file, unsigned line)
{
    lvrpc_client *c = (lvrpc_client *)0x1;
    int64_t t0 = now_ms(), took;
    int rc = lvrpc_open(uri, o, &c);
    const char *msg = lvrpc_last_message();

    took = now_ms() - t0;
    printf("\n    %s -> %s: %s (%lld ms)", uri, lvrpc_strerror(rc), rc ? msg : "",
           (long long)took);
    lvrpct_assert(rc == want, file, line, "lvrpc_open(%s) -> %d %s (want %d %s): %s", uri, rc,
                  lvrpc_strerror(rc), want, lvrpc_strerror(want), msg);
    lvrpct_assert(c == NULL, file, line, "*out is NULL after a failed open");
    lvrpct_assert(!needle || strstr(msg, needle) != NULL, file, line,
                  "message names the cause \"%s\": %s", needle ? needle : "", msg);
    lvrpct_assert(!needle2 || strstr(msg, needle2) != NULL, file, line,
                  "message names the cause \"%s\": %s", needle2 ? needle2 : "", msg);
    lvrpct_assert(took <= max_ms, file, line, "failed within %lld ms (took %lld)",
                  (long long)max_ms, (long long)took);
    if (rc == LVRPC_OK)
        lvrpc_close(c);
}
#define EXPECT_FAIL(uri, o, want, n1, n2, max_ms) \
    expect_fail((uri), (o), (want), (n1), (n2), (max_ms), __FILE__, __LINE__)

#ifdef HAVE_OPENSSL

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls_internal.h"

#define NTHREADS 16

static unsigned scale = 1;       /* LVRPCT_SCALE divides the call counts */
static int64_t slack_ms = 0;     /* LVRPC_TEST_SLACK_MS widens time bounds */
static char pki[256];            /* make-certs.sh --variants, shared by the suites */
static char pki_rsa[300];        /* KEY_TYPE=rsa */
static lvrpct_daemon dmn;        /* the current suite's daemon */

/* ------------------------------------------------------------ fixtures */

static int run_make_certs(const char *dir, const char *env)
{
    char cmd[1024];
    int rc;

    snprintf(cmd, sizeof(cmd), "%s bash '%s/make-certs.sh' --variants '%s'", env ? env : "",
             lvrpct_tests_dir(), dir);
    rc = system(cmd);
    if (rc != 0) {
        lvrpct_hard_error("%s failed (status %d)", cmd, rc);
        return -1;
    }
    return 0;
}

static void remove_pki(void)
{
    char cmd[600];

    if (!pki[0])
        return;
    if (getenv("LVRPCT_KEEP")) {
        fprintf(stderr, "LVRPCT_KEEP: keeping %s\n", pki);
        return;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", pki);
}

static int ensure_pki(void)
{
    const char *tmp = getenv("TMPDIR");

    if (pki[0])
        return 0;
    if (!tmp || !*tmp || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(pki, sizeof(pki), "%s/lvrpct-pki-XXXXXX", tmp);
    if (!mkdtemp(pki)) {
        lvrpct_hard_error("mkdtemp %s failed", pki);
        pki[0] = '\0';
        return -1;
    }
    atexit(remove_pki);
    snprintf(pki_rsa, sizeof(pki_rsa), "%s/rsa", pki);
    if (run_make_certs(pki, NULL) != 0 || run_make_certs(pki_rsa, "KEY_TYPE=rsa") != 0)
        return -1;
    return 0;
}

/* Starts the suite's daemon on the PKI in dir, serving server_variant's
 * certificate ("" = the good one). */
static int start_daemon(const char *dir, const char *server_variant)
{
    char cert[400], key[400];
    int rc;

    if (ensure_pki() != 0)
        return 1;
    setenv("PKI_DIR", dir, 1);
    if (server_variant[0]) {
        snprintf(cert, sizeof(cert), "%s/%s/servercert.pem", dir, server_variant);
        snprintf(key, sizeof(key), "%s/%s/private/serverkey.pem", dir, server_variant);
        setenv("TLS_SERVER_CERT", cert, 1);
        setenv("TLS_SERVER_KEY", key, 1);
        setenv("TLS_NO_SANITY", "1", 1); /* libvirtd refuses to serve it otherwise */
    }
    rc = lvrpct_daemon_start(&dmn);
    unsetenv("PKI_DIR");
    unsetenv("TLS_SERVER_CERT");
    unsetenv("TLS_SERVER_KEY");
    unsetenv("TLS_NO_SANITY");
    if (rc != 0)
        return 1;
    if (!dmn.tls_port || !dmn.uri_tls[0]) {
        lvrpct_hard_error("the daemon has no TLS listener (see tests/libvirtd-up.sh)");
        lvrpct_daemon_stop(&dmn);
        return 1;
    }
    printf("\n  [libvirtd %s pid %ld, %s]", dmn.version, (long)dmn.pid, dmn.uri_tls);
    return 0;
}

static int init_main(void)
{
    return ensure_pki() ? 1 : start_daemon(pki, "");
}
static int init_expired(void)
{
    return ensure_pki() ? 1 : start_daemon(pki, "expired");
}
static int init_wronghost(void)
{
    return ensure_pki() ? 1 : start_daemon(pki, "wronghost");
}
static int init_rsa(void)
{
    return ensure_pki() ? 1 : start_daemon(pki_rsa, "");
}

static int cleanup_daemon(void)
{
    if (CU_get_number_of_failures() > 0 && getenv("LVRPCT_VERBOSE"))
        lvrpct_daemon_dump_log(&dmn, 40);
    lvrpct_daemon_stop(&dmn);
    return 0;
}

/* test+tls://HOST:PORT/default?pkipath=DIR[&extra] (DIR NULL: no pkipath) */
static const char *tls_uri(char *buf, size_t cap, const char *host, int port, const char *dir,
                           const char *extra)
{
    snprintf(buf, cap, "test+tls://%s:%d/default%s%s%s%s", host, port,
             dir || extra ? "?" : "", dir ? "pkipath=" : "", dir ? dir : "",
             extra ? extra : "");
    return buf;
}

static void pkisub(char *buf, size_t cap, const char *sub)
{
    snprintf(buf, cap, "%s/%s", pki, sub);
}

/* One lookup of the test driver's domain "test" and a hostname. */
static int one_round(lvrpc_client *c)
{
    lvrpc_domain_lookup_by_name_args a = {"test"};
    lvrpc_domain_lookup_by_name_ret *r = NULL;
    lvrpc_connect_get_hostname_ret *h = NULL;
    int rc = lvrpc_domain_lookup_by_name(c, &a, &r);

    if (rc == LVRPC_OK && (strcmp(r->dom.name, "test") != 0 || r->dom.id != 1))
        rc = LVRPC_EPROTO;
    lvrpc_reply_free(r);
    if (rc == LVRPC_OK)
        rc = lvrpc_connect_get_hostname(c, &h);
    if (rc == LVRPC_OK && (!h->hostname || !h->hostname[0]))
        rc = LVRPC_EPROTO;
    lvrpc_reply_free(h);
    return rc;
}

static void open_and_call(const char *uri, lvrpc_mode mode, const lvrpc_tls_options *to)
{
    lvrpc_options o;
    lvrpc_client *c = NULL;

    memset(&o, 0, sizeof(o));
    o.mode = mode;
    o.tls = to;
    LVRPCT_ASSERT_OK(lvrpc_open(uri, &o, &c));
    if (!c)
        return;
    LVRPCT_ASSERT_OK(one_round(c));
    LVRPCT_ASSERT_OK(one_round(c));
    lvrpc_close(c);
}

/* ------------------------------------------------------------ success */

typedef struct worker {
    lvrpc_client *c;
    lvrpct_ctx t;
    unsigned calls;
    volatile int *stop; /* NULL: run calls rounds */
    unsigned ok, closed;
    int calling;        /* about to call, or in a call (close_worker) */
} worker;

/* Threads mix calls whose replies differ in type and outcome (a domain, a
 * host name, a version, an error), so a reply handed to the wrong caller
 * shows. */
static void *call_worker(void *arg)
{
    worker *w = arg;
    lvrpct_ctx *t = &w->t;
    char name[64];

    snprintf(name, sizeof(name), "no-such-domain-%s", t->tag);
    for (unsigned i = 0; i < w->calls; i++) {
        lvrpc_domain_lookup_by_name_args a = {name};
        lvrpc_domain_lookup_by_name_ret *r = NULL;
        lvrpc_connect_get_lib_version_ret *v = NULL;
        lvrpc_error e;
        int rc;

        switch ((i + (unsigned)t->index) % 3) {
        case 0:
            rc = lvrpc_domain_lookup_by_name(w->c, &a, &r);
            lvrpc_reply_free(r);
            lvrpc_last_error(&e);
            T_CHECKF(rc == LVRPC_EREMOTE && e.remote_code == 42, "call %u: %d %s: %s", i, rc,
                     lvrpc_strerror(rc), e.message);
            break;
        case 1:
            rc = lvrpc_connect_get_lib_version(w->c, &v);
            T_CHECKF(rc == LVRPC_OK && v->lib_ver >= 1000000, "call %u: %d %s: %s", i, rc,
                     lvrpc_strerror(rc), lvrpc_last_message());
            lvrpc_reply_free(v);
            break;
        default:
            T_OK(one_round(w->c));
            break;
        }
    }
out:
    return NULL;
}

static void run_threads(lvrpc_client *c, unsigned calls, const char *what)
{
    worker w[NTHREADS];
    pthread_t th[NTHREADS];

    for (int i = 0; i < NTHREADS; i++) {
        char tag[16];
        memset(&w[i], 0, sizeof(w[i]));
        snprintf(tag, sizeof(tag), "t%d", i);
        lvrpct_ctx_init(&w[i].t, tag, i, 0);
        w[i].c = c;
        w[i].calls = calls;
        pthread_create(&th[i], NULL, call_worker, &w[i]);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        lvrpct_ctx_report(&w[i].t, what);
    }
}

static void test_direct(void)
{
    lvrpc_options o = {0};
    lvrpc_client *c = NULL;
    lvrpc_stats st;

    o.mode = LVRPC_MODE_DIRECT;
    /* keep every socket: with the default of 8 idle ones, a socket past the
     * eighth is closed when its call ends and another opened by the next
     * burst, and sockets opened would exceed the threads by chance */
    o.max_idle = NTHREADS;
    LVRPCT_ASSERT_OK(lvrpc_open(dmn.uri_tls, &o, &c));
    if (!c)
        return;
    /* calls one after another reuse the one TLS socket: nothing the TLS
     * layer leaves behind makes an idle socket look stale */
    for (int i = 0; i < 50; i++)
        LVRPCT_ASSERT_OK(one_round(c));
    lvrpc_get_stats(c, &st);
    LVRPCT_ASSERT_INT(st.sockets_opened, 1);
    /* 16 threads: as many TLS sockets as calls in flight, each kept and
     * reused (an idle one wrongly taken for stale would be replaced) */
    run_threads(c, 200 / scale, "direct over TLS, 16 threads");
    lvrpc_get_stats(c, &st);
    LVRPCT_ASSERT(st.sockets_opened >= 2 && st.sockets_opened <= NTHREADS);
    printf("\n    direct: %llu calls, %llu sockets", (unsigned long long)st.calls,
           (unsigned long long)st.sockets_opened);
    lvrpc_close(c);
}

static void test_shared(void)
{
    lvrpc_options o = {0};
    lvrpc_client *c = NULL;
    lvrpc_stats st;

    o.mode = LVRPC_MODE_SHARED; /* one connection: its reader and 16 writers share the SSL */
    LVRPCT_ASSERT_OK(lvrpc_open(dmn.uri_tls, &o, &c));
    if (!c)
        return;
    LVRPCT_ASSERT_OK(one_round(c));
    run_threads(c, 400 / scale, "shared over TLS, 16 threads on one connection");
    lvrpc_get_stats(c, &st);
    LVRPCT_ASSERT_INT(st.sockets_opened, 1);
    LVRPCT_ASSERT_INT(st.reconnects, 0);
    printf("\n    shared: %llu calls on %llu connection", (unsigned long long)st.calls,
           (unsigned long long)st.sockets_opened);
    lvrpc_close(c);
}

static void test_by_ip(void)
{
    char uri[600];

    tls_uri(uri, sizeof(uri), "127.0.0.1", dmn.tls_port, pki, NULL);
    open_and_call(uri, LVRPC_MODE_DIRECT, NULL);
    open_and_call(uri, LVRPC_MODE_SHARED, NULL);
}

static void *close_worker(void *arg)
{
    worker *w = arg;
    lvrpct_ctx *t = &w->t;

    while (!__atomic_load_n(w->stop, __ATOMIC_ACQUIRE)) {
        lvrpc_connect_get_lib_version_ret *v = NULL;
        int rc;
        __atomic_store_n(&w->calling, 1, __ATOMIC_RELEASE);
        rc = lvrpc_connect_get_lib_version(w->c, &v);
        __atomic_store_n(&w->calling, 0, __ATOMIC_RELEASE);
        lvrpc_reply_free(v);
        if (rc == LVRPC_ECLOSED) {
            w->closed++;
            break; /* the handle is going: no new call may start */
        }
        T_OK(rc);
        __atomic_fetch_add(&w->ok, 1, __ATOMIC_RELEASE);
    }
out:
    return NULL;
}

/* lvrpc_close while calls are in flight wakes them (shutdown from another
 * thread while the reader is in poll/SSL_read and writers in SSL_write).
 * A call must not start once close has begun (the handle is freed), so
 * the daemon is frozen first: every worker's call then stays in flight,
 * and close comes when all eight are in one. */
static void test_close_under_load(void)
{
    for (int m = 0; m < 2; m++) {
        worker w[8];
        pthread_t th[8];
        volatile int stop = 0;
        lvrpc_options o = {0};
        lvrpc_client *c = NULL;
        int64_t t0;
        unsigned woken = 0;

        o.mode = m ? LVRPC_MODE_SHARED : LVRPC_MODE_DIRECT;
        o.call_timeout_ms = 5000;
        LVRPCT_ASSERT_OK(lvrpc_open(dmn.uri_tls, &o, &c));
        if (!c)
            return;
        for (int i = 0; i < 8; i++) {
            memset(&w[i], 0, sizeof(w[i]));
            lvrpct_ctx_init(&w[i].t, "close", i, 0);
            w[i].c = c;
            w[i].stop = &stop;
            pthread_create(&th[i], NULL, close_worker, &w[i]);
        }
        /* until every thread has had a call answered (each Direct thread has
         * its own TLS socket to open first; slow under valgrind) */
        for (int i = 0, waited = 0; i < 8 && waited < 10000; i++)
            while (!__atomic_load_n(&w[i].ok, __ATOMIC_ACQUIRE) && waited < 10000) {
                usleep(10000);
                waited += 10;
            }
        kill(dmn.pid, SIGSTOP);
        usleep(100000); /* replies already sent are taken meanwhile */
        for (int i = 0, waited = 0; i < 8 && waited < 10000; i++)
            while (!__atomic_load_n(&w[i].calling, __ATOMIC_ACQUIRE) && waited < 10000) {
                usleep(10000);
                waited += 10;
            }
        __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
        usleep(200000); /* from "calling" to inside the library */
        t0 = now_ms();
        lvrpc_close(c);
        LVRPCT_ASSERT(now_ms() - t0 < 3000 + slack_ms);
        kill(dmn.pid, SIGCONT);
        for (int i = 0; i < 8; i++) {
            pthread_join(th[i], NULL);
            lvrpct_ctx_report(&w[i].t, m ? "shared close under load" : "direct close under load");
            LVRPCT_ASSERT(w[i].ok > 0);
            woken += w[i].closed;
        }
        LVRPCT_ASSERT(woken > 0); /* calls in flight were woken by the close */
    }
}

/* ------------------------------------------------------------ certificates */

static void test_wrong_ca(void)
{
    char dir[400], uri[800];

    pkisub(dir, sizeof(dir), "client-wrongca");
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, dir, NULL);
    EXPECT_FAIL(uri, NULL, LVRPC_ETLS, "not signed by our CA", "client-wrongca/cacert.pem",
                3000 + slack_ms);
}

static void test_no_verify(void)
{
    char dir[400], uri[800];
    lvrpc_tls_options to = {0};

    /* no_verify=1 accepts a daemon our CA did not sign ... */
    pkisub(dir, sizeof(dir), "client-wrongca");
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, dir, "&no_verify=1");
    open_and_call(uri, LVRPC_MODE_DIRECT, NULL);
    open_and_call(uri, LVRPC_MODE_SHARED, NULL);
    /* ... so does the API's flag ... */
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, dir, NULL);
    to.flags = LVRPC_TLS_NO_VERIFY;
    open_and_call(uri, LVRPC_MODE_DIRECT, &to);
    /* ... and no_verify=0 is verification */
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, dir, "&no_verify=0");
    EXPECT_FAIL(uri, NULL, LVRPC_ETLS, "not signed by our CA", NULL, 3000 + slack_ms);
    /* but the CA file is still required, */
    pkisub(dir, sizeof(dir), "no-such-dir");
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, dir, "&no_verify=1");
    EXPECT_FAIL(uri, NULL, LVRPC_ETLS, "cannot read the CA certificate", "no-such-dir/cacert.pem",
                1000 + slack_ms);
    /* and our certificate is still presented and checked by the daemon */
    pkisub(dir, sizeof(dir), "client-otherca");
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, dir, "&no_verify=1");
    EXPECT_FAIL(uri, NULL, LVRPC_ETLS, "rejected our client certificate", "we presented '",
                3000 + slack_ms);
}

static void test_missing_client_cert(void)
{
    char dir[400], uri[800];
    lvrpc_options o = {0};

    pkisub(dir, sizeof(dir), "client-nocert");
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, dir, NULL);
    EXPECT_FAIL(uri, NULL, LVRPC_ETLS, "rejected our client certificate (no confirmation byte)",
                "we presented none", 3000 + slack_ms);
    o.mode = LVRPC_MODE_SHARED;
    EXPECT_FAIL(uri, &o, LVRPC_ETLS, "rejected our client certificate", "clientcert.pem",
                3000 + slack_ms);
}

static void test_client_cert_other_ca(void)
{
    char dir[400], uri[800];
    lvrpc_options o = {0};

    pkisub(dir, sizeof(dir), "client-otherca");
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, dir, NULL);
    EXPECT_FAIL(uri, NULL, LVRPC_ETLS, "rejected our client certificate (no confirmation byte)",
                "client-otherca/clientcert.pem", 3000 + slack_ms);
    o.mode = LVRPC_MODE_SHARED;
    EXPECT_FAIL(uri, &o, LVRPC_ETLS, "rejected our client certificate", NULL, 3000 + slack_ms);
}

/* A certificate without its key (or the reverse) is a local error, before
 * anything is sent. */
static void test_cert_without_key(void)
{
    char dir[400], cmd[2400], uri[800];

    pkisub(dir, sizeof(dir), "client-nokey");
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/cacert.pem' '%s/clientcert.pem' '%s/'",
             dir, pki, pki, dir);
    LVRPCT_ASSERT(system(cmd) == 0);
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, dir, NULL);
    EXPECT_FAIL(uri, NULL, LVRPC_ETLS, "client-nokey/clientkey.pem' does not exist", NULL,
                1000 + slack_ms);
    /* a key that is not the certificate's */
    snprintf(cmd, sizeof(cmd), "cp '%s/otherca/clientkey.pem' '%s/clientkey.pem'", pki, dir);
    LVRPCT_ASSERT(system(cmd) == 0);
    EXPECT_FAIL(uri, NULL, LVRPC_ETLS, "does not belong to the certificate", NULL,
                1000 + slack_ms);
}

/* ------------------------------------------------------------ wrong ports */

static void test_tls_on_plain_port(void)
{
    char uri[800];
    lvrpc_options o = {0};

    o.connect_timeout_ms = 3000;
    tls_uri(uri, sizeof(uri), "127.0.0.1", dmn.tcp_port, pki, NULL);
    EXPECT_FAIL(uri, &o, LVRPC_ETLS, "TLS handshake", "is it a TLS port", 3000 + slack_ms);
    o.mode = LVRPC_MODE_SHARED;
    EXPECT_FAIL(uri, &o, LVRPC_ETLS, "TLS handshake", NULL, 3000 + slack_ms);
}

static void test_plain_on_tls_port(void)
{
    char uri[800];
    lvrpc_options o = {0};
    lvrpc_client *c = NULL;
    int64_t t0;
    int rc;

    o.connect_timeout_ms = 3000;
    snprintf(uri, sizeof(uri), "test+tcp://127.0.0.1:%d/default", dmn.tls_port);
    for (int m = 0; m < 2; m++) {
        o.mode = m ? LVRPC_MODE_SHARED : LVRPC_MODE_DIRECT;
        t0 = now_ms();
        rc = lvrpc_open(uri, &o, &c);
        printf("\n    %s -> %s: %s (%lld ms)", uri, lvrpc_strerror(rc), lvrpc_last_message(),
               (long long)(now_ms() - t0));
        LVRPCT_ASSERT(rc != LVRPC_OK && c == NULL);
        LVRPCT_ASSERT(rc == LVRPC_ECLOSED || rc == LVRPC_EPROTO || rc == LVRPC_ETIMEDOUT);
        LVRPCT_ASSERT(now_ms() - t0 <= 3000 + 500 + slack_ms);
        if (c)
            lvrpc_close(c);
    }
}

/* A peer that accepts TCP and never says a word: the handshake times out. */
static void test_silent_peer(void)
{
    char cmd[300], uri[800];
    lvrpc_options o = {0};
    FILE *p;
    int port = 0;

    /* a listening socket nobody accepts on: the kernel completes the TCP
     * handshake, the ClientHello is never answered */
    snprintf(cmd, sizeof(cmd),
             "exec python3 -c 'import socket,sys,time\n"
             "s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen(8)\n"
             "print(s.getsockname()[1]); sys.stdout.flush(); time.sleep(6)'");
    p = popen(cmd, "r");
    if (!p || fscanf(p, "%d", &port) != 1 || port <= 0) {
        printf("\n    (python3 not available: silent peer not tested)");
        if (p)
            pclose(p);
        return;
    }
    o.connect_timeout_ms = 800;
    tls_uri(uri, sizeof(uri), "127.0.0.1", port, pki, NULL);
    EXPECT_FAIL(uri, &o, LVRPC_ETIMEDOUT, "timed out in the TLS handshake", NULL,
                1500 + slack_ms);
    pclose(p);
}

/* ------------------------------------------------------------ the API */

static void test_api_paths(void)
{
    char uri[800], ca[400], cert[400], key[400], both[400], cmd[1400];
    lvrpc_tls_options to = {0};
    lvrpc_options o = {0};

    snprintf(ca, sizeof(ca), "%s/cacert.pem", pki);
    snprintf(cert, sizeof(cert), "%s/clientcert.pem", pki);
    snprintf(key, sizeof(key), "%s/clientkey.pem", pki);
    /* no pkipath in the URI: everything from the options */
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, NULL, NULL);
    to.ca_file = ca;
    to.cert_file = cert;
    to.key_file = key;
    open_and_call(uri, LVRPC_MODE_DIRECT, &to);
    open_and_call(uri, LVRPC_MODE_SHARED, &to);
    /* the key in the certificate's file */
    snprintf(both, sizeof(both), "%s/client-both.pem", pki);
    snprintf(cmd, sizeof(cmd), "cat '%s' '%s' > '%s'", cert, key, both);
    LVRPCT_ASSERT(system(cmd) == 0);
    to.cert_file = both;
    to.key_file = NULL;
    open_and_call(uri, LVRPC_MODE_DIRECT, &to);
    /* explicit files override the URI's pkipath */
    {
        char dir[400], uri2[800];
        pkisub(dir, sizeof(dir), "client-nocert");
        tls_uri(uri2, sizeof(uri2), "localhost", dmn.tls_port, dir, NULL);
        open_and_call(uri2, LVRPC_MODE_DIRECT, &to);
    }
    /* an explicit file that is missing is an error of its own */
    to.cert_file = "/nonexistent/lvrpc-cert.pem";
    o.tls = &to;
    EXPECT_FAIL(uri, &o, LVRPC_ETLS, "cannot read the client certificate",
                "/nonexistent/lvrpc-cert.pem", 1000 + slack_ms);
    /* bad options */
    memset(&to, 0, sizeof(to));
    to.flags = 0x80;
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, pki, NULL);
    EXPECT_FAIL(uri, &o, LVRPC_EINVAL, "unknown TLS flags", NULL, 1000);
    to.flags = 0;
    to.key_file = key;
    EXPECT_FAIL(uri, &o, LVRPC_EINVAL, "key_file needs cert_file", NULL, 1000);
    /* TLS options on a tcp URI are ignored */
    open_and_call(dmn.uri_tcp, LVRPC_MODE_DIRECT, &to);
}

static SSL_CTX *make_ctx(int with_cert)
{
    char ca[400], cert[400], key[400];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    snprintf(ca, sizeof(ca), "%s/cacert.pem", pki);
    snprintf(cert, sizeof(cert), "%s/clientcert.pem", pki);
    snprintf(key, sizeof(key), "%s/clientkey.pem", pki);
    if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
        (with_cert && (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
                       SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1))) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static void test_api_ssl_ctx(void)
{
    char uri[800], dir[400], uri2[800];
    lvrpc_tls_options to = {0};
    lvrpc_options o = {0};
    lvrpc_client *c = NULL;
    SSL_CTX *ctx = make_ctx(1), *bare = make_ctx(0);

    LVRPCT_ASSERT(ctx != NULL && bare != NULL);
    if (!ctx || !bare)
        goto out;
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, NULL, NULL);
    to.ctx = ctx;
    open_and_call(uri, LVRPC_MODE_DIRECT, &to);
    open_and_call(uri, LVRPC_MODE_SHARED, &to);
    /* the handle holds its own reference: the caller may drop hers at once */
    o.tls = &to;
    SSL_CTX_up_ref(ctx);
    LVRPCT_ASSERT_OK(lvrpc_open(uri, &o, &c));
    SSL_CTX_free(ctx);
    if (c) {
        LVRPCT_ASSERT_OK(one_round(c));
        lvrpc_close(c);
    }
    /* the context's files win over pkipath (here: one without a client cert) */
    pkisub(dir, sizeof(dir), "client-otherca");
    tls_uri(uri2, sizeof(uri2), "localhost", dmn.tls_port, dir, NULL);
    open_and_call(uri2, LVRPC_MODE_DIRECT, &to);
    /* a context without a certificate: the daemon rejects us */
    to.ctx = bare;
    EXPECT_FAIL(uri, &o, LVRPC_ETLS, "rejected our client certificate",
                "the caller's SSL_CTX has none", 3000 + slack_ms);
out:
    SSL_CTX_free(ctx);
    SSL_CTX_free(bare);
}

/* ------------------------------------------------------------ faulty daemons */

static void test_expired(void)
{
    char uri[800];
    lvrpc_options o = {0};

    EXPECT_FAIL(dmn.uri_tls, NULL, LVRPC_ETLS, "the daemon's certificate has expired",
                "valid from", 3000 + slack_ms);
    o.mode = LVRPC_MODE_SHARED;
    EXPECT_FAIL(dmn.uri_tls, &o, LVRPC_ETLS, "has expired", NULL, 3000 + slack_ms);
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, pki, "&no_verify=1");
    open_and_call(uri, LVRPC_MODE_DIRECT, NULL);
    open_and_call(uri, LVRPC_MODE_SHARED, NULL);
}

static void test_wronghost(void)
{
    char uri[800];
    lvrpc_options o = {0};

    EXPECT_FAIL(dmn.uri_tls, NULL, LVRPC_ETLS,
                "the daemon's certificate does not match the host name 'localhost'",
                "DNS:wrong-host.invalid", 3000 + slack_ms);
    tls_uri(uri, sizeof(uri), "127.0.0.1", dmn.tls_port, pki, NULL);
    o.mode = LVRPC_MODE_SHARED;
    EXPECT_FAIL(uri, &o, LVRPC_ETLS, "does not match the host name '127.0.0.1'", NULL,
                3000 + slack_ms);
    tls_uri(uri, sizeof(uri), "localhost", dmn.tls_port, pki, "&no_verify=1");
    open_and_call(uri, LVRPC_MODE_DIRECT, NULL);
    open_and_call(uri, LVRPC_MODE_SHARED, NULL);
}

static void test_rsa(void)
{
    lvrpc_options o = {0};
    lvrpc_client *c = NULL;

    open_and_call(dmn.uri_tls, LVRPC_MODE_DIRECT, NULL);
    o.mode = LVRPC_MODE_SHARED;
    LVRPCT_ASSERT_OK(lvrpc_open(dmn.uri_tls, &o, &c));
    if (c) {
        run_threads(c, 100 / scale, "shared over TLS (RSA), 16 threads");
        lvrpc_close(c);
    }
}

/* ------------------------------------------------------------ paths */

static void touch(const char *dir, const char *name)
{
    char path[600];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    LVRPCT_ASSERT(f != NULL);
    if (f)
        fclose(f);
}

static void test_locate(void)
{
    char home[300], user[400], cmd[800];
    lvrpci_tls_paths p;

    /* pkipath: everything there, existing or not */
    LVRPCT_ASSERT_OK(lvrpci_tls_locate("/x/pki", 1, "/home/u", "/etc", &p));
    LVRPCT_ASSERT_STR(p.ca, "/x/pki/cacert.pem");
    LVRPCT_ASSERT_STR(p.crl, "/x/pki/cacrl.pem");
    LVRPCT_ASSERT_STR(p.cert, "/x/pki/clientcert.pem");
    LVRPCT_ASSERT_STR(p.key, "/x/pki/clientkey.pem");
    lvrpci_tls_paths_clear(&p);

    /* root (no user path) or nothing in $HOME: the system paths */
    LVRPCT_ASSERT_OK(lvrpci_tls_locate(NULL, 0, "/nonexistent-home", "/etc", &p));
    LVRPCT_ASSERT_STR(p.ca, "/etc/pki/CA/cacert.pem");
    LVRPCT_ASSERT_STR(p.crl, "/etc/pki/CA/cacrl.pem");
    LVRPCT_ASSERT_STR(p.cert, "/etc/pki/libvirt/clientcert.pem");
    LVRPCT_ASSERT_STR(p.key, "/etc/pki/libvirt/private/clientkey.pem");
    lvrpci_tls_paths_clear(&p);
    LVRPCT_ASSERT_OK(lvrpci_tls_locate(NULL, 1, "/nonexistent-home", "/etc", &p));
    LVRPCT_ASSERT_STR(p.ca, "/etc/pki/CA/cacert.pem");
    LVRPCT_ASSERT_STR(p.key, "/etc/pki/libvirt/private/clientkey.pem");
    lvrpci_tls_paths_clear(&p);

    /* $HOME/.pki/libvirt: each CA file on its own, cert and key as a pair */
    snprintf(home, sizeof(home), "%s/home", pki);
    snprintf(user, sizeof(user), "%s/.pki/libvirt", home);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", home, user);
    LVRPCT_ASSERT(system(cmd) == 0);
    touch(user, "cacert.pem");
    touch(user, "clientcert.pem"); /* without its key */
    LVRPCT_ASSERT_OK(lvrpci_tls_locate(NULL, 1, home, "/etc", &p));
    LVRPCT_ASSERT(p.ca && strstr(p.ca, "/.pki/libvirt/cacert.pem"));
    LVRPCT_ASSERT_STR(p.crl, "/etc/pki/CA/cacrl.pem");
    LVRPCT_ASSERT_STR(p.cert, "/etc/pki/libvirt/clientcert.pem");
    LVRPCT_ASSERT_STR(p.key, "/etc/pki/libvirt/private/clientkey.pem");
    lvrpci_tls_paths_clear(&p);
    touch(user, "clientkey.pem");
    touch(user, "cacrl.pem");
    LVRPCT_ASSERT_OK(lvrpci_tls_locate(NULL, 1, home, "/etc", &p));
    LVRPCT_ASSERT(p.crl && strstr(p.crl, "/.pki/libvirt/cacrl.pem"));
    LVRPCT_ASSERT(p.cert && strstr(p.cert, "/.pki/libvirt/clientcert.pem"));
    LVRPCT_ASSERT(p.key && strstr(p.key, "/.pki/libvirt/clientkey.pem"));
    lvrpci_tls_paths_clear(&p);
    /* root never looks in $HOME (libvirt: euid != 0) */
    LVRPCT_ASSERT_OK(lvrpci_tls_locate(NULL, 0, home, "/etc", &p));
    LVRPCT_ASSERT_STR(p.ca, "/etc/pki/CA/cacert.pem");
    LVRPCT_ASSERT_STR(p.cert, "/etc/pki/libvirt/clientcert.pem");
    lvrpci_tls_paths_clear(&p);
}

/* Without pkipath, lvrpc_open reads the system (root) or user paths: with
 * none of them present it fails on the CA file, naming it. */
static void test_default_paths_open(void)
{
    char uri[800];
    struct stat st;

    if (stat("/etc/pki/CA/cacert.pem", &st) == 0 || geteuid() != 0) {
        printf("\n    (a CA in /etc/pki/CA or not root: not tested)");
        return;
    }
    snprintf(uri, sizeof(uri), "test+tls://localhost:%d/default", dmn.tls_port);
    EXPECT_FAIL(uri, NULL, LVRPC_ETLS, "cannot read the CA certificate '/etc/pki/CA/cacert.pem'",
                NULL, 1000 + slack_ms);
}

static int init_pki_only(void)
{
    return ensure_pki() ? 1 : 0;
}

static const lvrpct_test main_tests[] = {
    {"direct mode: sequential calls on one socket, 16 threads", test_direct},
    {"shared mode: 16 threads on one TLS connection", test_shared},
    {"by IP address (SAN IP)", test_by_ip},
    {"close while calls are in flight", test_close_under_load},
    {"wrong CA: the daemon's certificate is refused", test_wrong_ca},
    {"no_verify: what it skips and what it does not", test_no_verify},
    {"missing client certificate: rejected by the daemon", test_missing_client_cert},
    {"client certificate of another CA: rejected", test_client_cert_other_ca},
    {"certificate without its key, key of another certificate", test_cert_without_key},
    {"TLS client on the plaintext port", test_tls_on_plain_port},
    {"plaintext client on the TLS port", test_plain_on_tls_port},
    {"silent peer: the handshake times out", test_silent_peer},
    {"API: explicit certificate paths", test_api_paths},
    {"API: the caller's SSL_CTX", test_api_ssl_ctx},
    {"default paths (root, nothing in /etc/pki)", test_default_paths_open},
    {NULL, NULL},
};
static const lvrpct_test expired_tests[] = {
    {"expired server certificate", test_expired},
    {NULL, NULL},
};
static const lvrpct_test wronghost_tests[] = {
    {"server certificate for another host", test_wronghost},
    {NULL, NULL},
};
static const lvrpct_test rsa_tests[] = {
    {"RSA certificates, both modes", test_rsa},
    {NULL, NULL},
};
static const lvrpct_test paths_tests[] = {
    {"libvirt's certificate search", test_locate},
    {NULL, NULL},
};

static void add_suites(void)
{
    const char *sc = getenv("LVRPCT_SCALE"), *sl = getenv("LVRPC_TEST_SLACK_MS");

    if (sc && atoi(sc) > 0)
        scale = (unsigned)atoi(sc);
    if (sl && atoi(sl) > 0)
        slack_ms = atoi(sl);
    lvrpct_add_suite("tls", init_main, cleanup_daemon, main_tests);
    lvrpct_add_suite("tls-expired", init_expired, cleanup_daemon, expired_tests);
    lvrpct_add_suite("tls-wronghost", init_wronghost, cleanup_daemon, wronghost_tests);
    lvrpct_add_suite("tls-rsa", init_rsa, cleanup_daemon, rsa_tests);
    lvrpct_add_suite("tls-paths", init_pki_only, NULL, paths_tests);
}

#else /* !HAVE_OPENSSL */

static void test_no_tls(void)
{
    lvrpc_tls_options to = {0};
    lvrpc_options o = {0};

    EXPECT_FAIL("test+tls://localhost/default", NULL, LVRPC_ENOTSUP, "built without TLS", NULL,
                1000);
    EXPECT_FAIL("qemu://remote.example/system?pkipath=/x", NULL, LVRPC_ENOTSUP,
                "built without TLS", NULL, 1000);
    o.tls = &to;
    o.mode = LVRPC_MODE_SHARED;
    EXPECT_FAIL("test+tls://localhost:1/default?no_verify=1", &o, LVRPC_ENOTSUP,
                "built without TLS", NULL, 1000);
}

static const lvrpct_test none_tests[] = {
    {"tls URIs fail with ENOTSUP", test_no_tls},
    {NULL, NULL},
};

static void add_suites(void)
{
    lvrpct_add_suite("tls-none", NULL, NULL, none_tests);
}

#endif /* HAVE_OPENSSL */

int main(int argc, char **argv)
{
    return lvrpct_main(argc, argv, add_suites);
}
