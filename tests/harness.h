/* harness.h - shared helpers of lvrpc's test programs.
 *
 * - A private libvirtd per test (lvrpct_daemon_start/stop), run by
 *   tests/libvirtd-up.sh and tests/libvirtd-down.sh from $srcdir.
 * - A CUnit runner (lvrpct_main) with automake's exit codes: 0 pass,
 *   1 failure, 99 hard error (the test could not be set up, e.g. libvirtd
 *   missing; never a silent skip).
 * - Assertion macros for CUnit tests that print lvrpc's error record, and a
 *   thread-safe check context (lvrpct_ctx + T_* macros) for code that runs
 *   on several threads, where CUnit's asserts must not be called.
 *
 * Threads: everything here is meant for the main thread, except the
 * lvrpct_ctx functions and T_* macros, which each thread uses on a context of
 * its own.
 */
#ifndef LVRPC_TESTS_HARNESS_H
#define LVRPC_TESTS_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <CUnit/CUnit.h>

#include "lvrpc.h"

#define LVRPCT_EXIT_PASS 0
#define LVRPCT_EXIT_FAIL 1
#define LVRPCT_EXIT_HARD 99

/* ------------------------------------------------------------- libvirtd */

/* A private libvirtd: test driver only, TCP on 127.0.0.1 (auth none) and a
 * UNIX socket, everything in dir (a mkdtemp directory). */
typedef struct lvrpct_daemon {
    char dir[256];         /* "" when not started */
    pid_t pid;
    int tcp_port;
    char uri_tcp[320];     /* test+tcp://127.0.0.1:PORT/default */
    char uri_unix[320];    /* test+unix:///default?socket=DIR/sock/libvirt-sock */
    char unix_sock[300];   /* DIR/sock/libvirt-sock */
    char log_path[300];    /* the daemon's log file */
    char version[32];      /* "9.0.0", from libvirtd --version ("" if unknown) */
    /* TLS listener (tests/make-certs.sh certificates; 0 / "" without openssl) */
    int tls_port;
    char uri_tls[400];     /* test+tls://localhost:PORT/default?pkipath=PKI */
    char pki_dir[300];     /* cacert.pem, clientcert.pem, clientkey.pem, ... */
} lvrpct_daemon;

/* Starts a daemon (tests/libvirtd-up.sh in a new mkdtemp dir) and fills *d.
 * The script's knobs (PKI_DIR, TLS_SERVER_CERT, ...) are taken from this
 * process's environment.
 * Returns 0, or -1 after printing why on stderr and setting the hard-error
 * flag (lvrpct_main then exits 99). */
int lvrpct_daemon_start(lvrpct_daemon *d);

/* Stops the daemon by its PID (tests/libvirtd-down.sh, SIGKILL as a last
 * resort) and removes its dir, unless LVRPCT_KEEP is set in the
 * environment.  Safe on a daemon that was never started or already stopped. */
void lvrpct_daemon_stop(lvrpct_daemon *d);

/* Runs `bash NAME DIR`, NAME a script in lvrpct_tests_dir(), with stdout to
 * out_path (or /dev/null) and WATCH_PID set to this process, so that a daemon
 * it starts stops if this test dies.  Returns its exit status, or -1. */
int lvrpct_run_test_script(const char *name, const char *dir, const char *out_path);

/* Removes dir and everything below it (a warning on stderr if it cannot). */
void lvrpct_remove_tree(const char *dir);

/* Prints the last lines of the daemon's log to stderr (for failures). */
void lvrpct_daemon_dump_log(const lvrpct_daemon *d, int lines);

/* Where the test scripts live: $srcdir/tests, else the source dir this
 * program was built from.  Never NULL. */
const char *lvrpct_tests_dir(void);

/* libvirt's encoding of a version string ("9.0.0" -> 9000000); 0 if bad. */
unsigned long lvrpct_version_number(const char *s);

/* ------------------------------------------------------------- setup errors */

/* Records a setup failure (prints the message on stderr): the program will
 * exit 99 whatever the tests say. */
void lvrpct_hard_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int lvrpct_had_hard_error(void);

/* ------------------------------------------------------------- clients */

/* Opens a handle in the given mode with default options.  On failure prints
 * the URI, mode and lvrpc's error on stderr and returns its code. */
int lvrpct_open(const char *uri, lvrpc_mode mode, lvrpc_client **out);
const char *lvrpct_mode_name(lvrpc_mode mode);

/* ------------------------------------------------------------- runner */

/* Registers suites with add_suites(), runs them verbosely and returns the
 * exit status for automake: 99 after a hard error, 1 if any test failed or
 * any suite's init/cleanup failed, else 0.  argv[1..] (or $LVRPCT_SUITES,
 * comma separated) restrict the run to suites whose name contains one of
 * them.  Ignores SIGPIPE for the whole program. */
int lvrpct_main(int argc, char **argv, void (*add_suites)(void));

/* Adds a suite and its tests, aborting (hard error) if CUnit fails. */
typedef struct lvrpct_test {
    const char *name;
    CU_TestFunc func;
} lvrpct_test;
CU_pSuite lvrpct_add_suite(const char *name, CU_InitializeFunc init, CU_CleanupFunc cleanup,
                           const lvrpct_test *tests);

/* ------------------------------------------------------------- CUnit asserts */

/* Reports a CUnit assertion with a formatted message (CUnit copies it). */
void lvrpct_assert(int ok, const char *file, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A plain condition. */
#define LVRPCT_ASSERT(cond) \
    lvrpct_assert(!!(cond), __FILE__, __LINE__, "%s", #cond)

/* expr must return LVRPC_OK; the failure message carries the error record. */
#define LVRPCT_ASSERT_OK(expr) do { \
        int rc_a_ = (expr); \
        lvrpct_assert(rc_a_ == LVRPC_OK, __FILE__, __LINE__, "%s -> %d %s: %s", #expr, \
                      rc_a_, lvrpc_strerror(rc_a_), rc_a_ ? lvrpc_last_message() : ""); \
    } while (0)

/* expr must return the error code want. */
#define LVRPCT_ASSERT_RC(expr, want) do { \
        int rc_a_ = (expr), want_a_ = (want); \
        lvrpct_assert(rc_a_ == want_a_, __FILE__, __LINE__, "%s -> %d %s (want %d %s): %s", \
                      #expr, rc_a_, lvrpc_strerror(rc_a_), want_a_, \
                      lvrpc_strerror(want_a_), lvrpc_last_message()); \
    } while (0)

/* Two strings must be equal (NULL only equals NULL). */
#define LVRPCT_ASSERT_STR(got, want) do { \
        const char *g_a_ = (got), *w_a_ = (want); \
        lvrpct_assert((!g_a_ && !w_a_) || (g_a_ && w_a_ && strcmp(g_a_, w_a_) == 0), \
                      __FILE__, __LINE__, "%s == \"%s\" (got \"%s\")", #got, \
                      w_a_ ? w_a_ : "(null)", g_a_ ? g_a_ : "(null)"); \
    } while (0)

/* Two integers must be equal. */
#define LVRPCT_ASSERT_INT(got, want) do { \
        long long g_a_ = (long long)(got), w_a_ = (long long)(want); \
        lvrpct_assert(g_a_ == w_a_, __FILE__, __LINE__, "%s == %lld (got %lld)", #got, w_a_, \
                      g_a_); \
    } while (0)

/* len bytes at got must equal the golden bytes; a mismatch prints both in
 * 4-byte words with the first differing offset. */
int lvrpct_bytes_equal(const void *got, size_t got_len, const void *want, size_t want_len,
                       const char *what);
#define LVRPCT_ASSERT_BYTES(got, got_len, want, want_len) \
    lvrpct_assert(lvrpct_bytes_equal((got), (got_len), (want), (want_len), #got), __FILE__, \
                  __LINE__, "%s matches %s (%zu bytes)", #got, #want, (size_t)(want_len))

/* ------------------------------------------------------------- thread-safe checks */

/* One thread's checks: the first failure is kept with where it happened. */
typedef struct lvrpct_ctx {
    char tag[24];       /* makes the thread's object names unique */
    int index;          /* thread number, 0 in single-thread runs */
    int exclusive;      /* no other thread changes the daemon meanwhile:
                         * global counts may be checked exactly */
    unsigned checks;    /* checks passed */
    int failed;
    const char *file;   /* where the first failure happened */
    int line;
    char where[160];    /* "file:line" */
    char msg[1200];
} lvrpct_ctx;

void lvrpct_ctx_init(lvrpct_ctx *t, const char *tag, int index, int exclusive);
/* Records a failure (the first one wins); returns -1. */
int lvrpct_ctx_fail(lvrpct_ctx *t, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Reports the context's outcome as one CUnit assertion (main thread only). */
void lvrpct_ctx_report(const lvrpct_ctx *t, const char *what);

/* In a function with `lvrpct_ctx *t` and an `out:` cleanup label. */
#define T_CHECK(cond) do { \
        if (!(cond)) { \
            lvrpct_ctx_fail(t, __FILE__, __LINE__, "check failed: %s", #cond); \
            goto out; \
        } \
        t->checks++; \
    } while (0)
#define T_CHECKF(cond, ...) do { \
        if (!(cond)) { \
            lvrpct_ctx_fail(t, __FILE__, __LINE__, __VA_ARGS__); \
            goto out; \
        } \
        t->checks++; \
    } while (0)
#define T_OK(expr) do { \
        int rc_t_ = (expr); \
        if (rc_t_ != LVRPC_OK) { \
            lvrpct_ctx_fail(t, __FILE__, __LINE__, "%s -> %d %s: %s", #expr, rc_t_, \
                            lvrpc_strerror(rc_t_), lvrpc_last_message()); \
            goto out; \
        } \
        t->checks++; \
    } while (0)
#define T_STREQ(got, want) do { \
        const char *g_t_ = (got), *w_t_ = (want); \
        if (!g_t_ || !w_t_ || strcmp(g_t_, w_t_) != 0) { \
            lvrpct_ctx_fail(t, __FILE__, __LINE__, "%s == \"%s\" (got \"%s\")", #got, \
                            w_t_ ? w_t_ : "(null)", g_t_ ? g_t_ : "(null)"); \
            goto out; \
        } \
        t->checks++; \
    } while (0)
#define T_INTEQ(got, want) do { \
        long long g_t_ = (long long)(got), w_t_ = (long long)(want); \
        if (g_t_ != w_t_) { \
            lvrpct_ctx_fail(t, __FILE__, __LINE__, "%s == %lld (got %lld)", #got, w_t_, g_t_); \
            goto out; \
        } \
        t->checks++; \
    } while (0)
/* expr must fail with LVRPC_EREMOTE and libvirt error number want_code, and
 * the daemon's message must contain want_needle (NULL: any non-empty one). */
#define T_REMOTE_ERR(expr, want_code, want_needle) do { \
        int rc_t_ = (expr), code_t_ = (want_code); \
        const char *needle_t_ = (want_needle); \
        lvrpc_error e_t_; \
        lvrpc_last_error(&e_t_); \
        if (rc_t_ != LVRPC_EREMOTE || e_t_.code != LVRPC_EREMOTE || \
            e_t_.remote_code != code_t_ || !e_t_.message[0] || \
            (needle_t_ && !strstr(e_t_.message, needle_t_))) { \
            lvrpct_ctx_fail(t, __FILE__, __LINE__, \
                            "%s -> %d %s, remote_code %d (want EREMOTE, %d, \"%s\"): %s", \
                            #expr, rc_t_, lvrpc_strerror(rc_t_), e_t_.remote_code, code_t_, \
                            needle_t_ ? needle_t_ : "", e_t_.message); \
            goto out; \
        } \
        t->checks++; \
    } while (0)

#endif /* LVRPC_TESTS_HARNESS_H */
