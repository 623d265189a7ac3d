/* harness.c - see harness.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "harness.h"

#ifndef LVRPCT_SRCDIR
#define LVRPCT_SRCDIR "."
#endif

static int hard_error;

void lvrpct_hard_error(const char *fmt, ...)
{
    va_list ap;

    hard_error = 1;
    fputs("HARD ERROR (test setup): ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

int lvrpct_had_hard_error(void)
{
    return hard_error;
}

const char *lvrpct_tests_dir(void)
{
    static char dir[PATH_MAX - 64];
    const char *src = getenv("srcdir");

    if (!dir[0]) {
        /* automake exports the top srcdir; a test run by hand falls back to
         * the source tree it was configured from */
        snprintf(dir, sizeof(dir), "%s/tests", src && *src ? src : LVRPCT_SRCDIR);
    }
    return dir;
}

unsigned long lvrpct_version_number(const char *s)
{
    unsigned long major = 0, minor = 0, micro = 0;

    if (!s || sscanf(s, "%lu.%lu.%lu", &major, &minor, &micro) < 2)
        return 0;
    return major * 1000000 + minor * 1000 + micro;
}

/* ------------------------------------------------------------- libvirtd */

/* Runs `bash SCRIPT DIR` with stdout to out_path (or /dev/null) and the
 * extra environment variable var (NAME=VALUE, or NULL).  Returns the exit
 * status, or -1 if it could not run or was killed.  posix_spawn, not fork:
 * the callers may have threads running (a daemon restarted under load). */
static int run_script(const char *script, const char *dir, const char *out_path, const char *var)
{
    extern char **environ;
    posix_spawn_file_actions_t fa;
    char *argv[] = {"bash", (char *)script, (char *)dir, NULL};
    char **envp;
    size_t n = 0;
    pid_t pid;
    int status, err;

    while (environ[n])
        n++;
    envp = calloc(n + 2, sizeof(*envp));
    if (!envp)
        return -1;
    memcpy(envp, environ, n * sizeof(*envp));
    if (var)
        envp[n] = (char *)var;
    fflush(stdout);
    fflush(stderr);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out_path ? out_path : "/dev/null",
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    err = posix_spawnp(&pid, "bash", &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    if (err) {
        fprintf(stderr, "cannot run bash %s: %s\n", script, strerror(err));
        return -1;
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int lvrpct_run_test_script(const char *name, const char *dir, const char *out_path)
{
    char path[PATH_MAX], watch[64];

    snprintf(path, sizeof(path), "%s/%s", lvrpct_tests_dir(), name);
    snprintf(watch, sizeof(watch), "WATCH_PID=%ld", (long)getpid());
    return run_script(path, dir, out_path, watch);
}

static int read_env_file(lvrpct_daemon *d)
{
    char path[PATH_MAX], line[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/env", d->dir);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        char *eq = strchr(line, '='), *val;
        if (!eq)
            continue;
        *eq = '\0';
        val = eq + 1;
        val[strcspn(val, "\n")] = '\0';
        if (strcmp(line, "LIBVIRTD_PID") == 0)
            d->pid = (pid_t)atol(val);
        else if (strcmp(line, "LIBVIRTD_TCP_PORT") == 0)
            d->tcp_port = atoi(val);
        else if (strcmp(line, "LIBVIRTD_URI_TCP") == 0)
            snprintf(d->uri_tcp, sizeof(d->uri_tcp), "%s", val);
        else if (strcmp(line, "LIBVIRTD_URI_UNIX") == 0)
            snprintf(d->uri_unix, sizeof(d->uri_unix), "%s", val);
        else if (strcmp(line, "LIBVIRTD_UNIX_SOCK") == 0)
            snprintf(d->unix_sock, sizeof(d->unix_sock), "%s", val);
        else if (strcmp(line, "LIBVIRTD_LOG") == 0)
            snprintf(d->log_path, sizeof(d->log_path), "%s", val);
        else if (strcmp(line, "LIBVIRTD_VERSION") == 0)
            snprintf(d->version, sizeof(d->version), "%s", val);
        else if (strcmp(line, "LIBVIRTD_TLS_PORT") == 0)
            d->tls_port = atoi(val);
        else if (strcmp(line, "LIBVIRTD_URI_TLS") == 0)
            snprintf(d->uri_tls, sizeof(d->uri_tls), "%s", val);
        else if (strcmp(line, "LIBVIRTD_PKI") == 0)
            snprintf(d->pki_dir, sizeof(d->pki_dir), "%s", val);
    }
    fclose(f);
    return d->pid > 0 && d->tcp_port > 0 && d->uri_tcp[0] && d->uri_unix[0] ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
    return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

void lvrpct_remove_tree(const char *dir)
{
    if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
        fprintf(stderr, "warning: could not remove %s: %s\n", dir, strerror(errno));
}

int lvrpct_daemon_start(lvrpct_daemon *d)
{
    char script[PATH_MAX], out[PATH_MAX], watch[64];
    const char *tmp = getenv("TMPDIR");
    int rc;

    memset(d, 0, sizeof(*d));
    /* UNIX socket paths are limited to 108 bytes: keep the dir short */
    if (!tmp || !*tmp || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(d->dir, sizeof(d->dir), "%s/lvrpct-XXXXXX", tmp);
    if (!mkdtemp(d->dir)) {
        lvrpct_hard_error("mkdtemp %s: %s", d->dir, strerror(errno));
        d->dir[0] = '\0';
        return -1;
    }
    snprintf(script, sizeof(script), "%s/libvirtd-up.sh", lvrpct_tests_dir());
    if (access(script, R_OK) != 0) {
        lvrpct_hard_error("cannot find %s (set srcdir to the source tree): %s", script,
                          strerror(errno));
        lvrpct_daemon_stop(d);
        return -1;
    }
    snprintf(out, sizeof(out), "%s/up.out", d->dir);
    /* the script's watchdog stops the daemon if this process dies first */
    snprintf(watch, sizeof(watch), "WATCH_PID=%ld", (long)getpid());
    rc = run_script(script, d->dir, out, watch);
    if (rc == 99) {
        lvrpct_hard_error("%s could not start libvirtd (see the message above)", script);
        lvrpct_daemon_stop(d);
        return -1;
    }
    if (rc != 0 || read_env_file(d) != 0) {
        lvrpct_hard_error("%s %s failed (exit status %d)", script, d->dir, rc);
        lvrpct_daemon_stop(d);
        return -1;
    }
    return 0;
}

/* True while pid runs (a zombie does not count: the daemon is not our
 * child and is reaped by whoever adopted it). */
static int pid_running(pid_t pid)
{
    char path[64], buf[512];
    FILE *f;
    char *p, st = 0;

    if (pid <= 0 || kill(pid, 0) < 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] == ' ')
        st = p[2];
    fclose(f);
    return st && st != 'Z' && st != 'X';
}

static int pid_is_daemon_of(pid_t pid, const char *dir)
{
    char path[64], buf[4096], conf[PATH_MAX];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    snprintf(conf, sizeof(conf), "%s/libvirtd.conf", dir);
    return strstr(buf, conf) != NULL;
}

void lvrpct_daemon_stop(lvrpct_daemon *d)
{
    char script[PATH_MAX];

    if (!d->dir[0])
        return;
    snprintf(script, sizeof(script), "%s/libvirtd-down.sh", lvrpct_tests_dir());
    if (d->pid > 0) {
        if (run_script(script, d->dir, NULL, NULL) != 0)
            fprintf(stderr, "warning: %s %s failed\n", script, d->dir);
        /* last resort, by PID and only if it still is our daemon */
        if (pid_running(d->pid) && pid_is_daemon_of(d->pid, d->dir)) {
            fprintf(stderr, "warning: libvirtd %ld still running: SIGKILL\n", (long)d->pid);
            kill(d->pid, SIGKILL);
        }
    }
    if (getenv("LVRPCT_KEEP"))
        fprintf(stderr, "LVRPCT_KEEP: keeping %s\n", d->dir);
    else
        lvrpct_remove_tree(d->dir);
    memset(d, 0, sizeof(*d));
}

void lvrpct_daemon_dump_log(const lvrpct_daemon *d, int lines)
{
    char cmd[PATH_MAX + 64];

    if (!d->log_path[0] || access(d->log_path, R_OK) != 0)
        return;
    fprintf(stderr, "--- last %d lines of %s:\n", lines, d->log_path);
    fflush(stderr);
    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' >&2", lines, d->log_path);
    if (system(cmd) != 0)
        fprintf(stderr, "(tail failed)\n");
}

/* ------------------------------------------------------------- clients */

const char *lvrpct_mode_name(lvrpc_mode mode)
{
    switch (mode) {
    case LVRPC_MODE_DIRECT:
        return "direct";
    case LVRPC_MODE_SHARED:
        return "shared";
    default:
        return "?";
    }
}

int lvrpct_open(const char *uri, lvrpc_mode mode, lvrpc_client **out)
{
    lvrpc_options o;
    int rc;

    memset(&o, 0, sizeof(o));
    o.mode = mode;
    rc = lvrpc_open(uri, &o, out);
    if (rc != LVRPC_OK)
        fprintf(stderr, "lvrpc_open(%s, mode %s) failed: %d %s: %s\n", uri,
                lvrpct_mode_name(mode), rc, lvrpc_strerror(rc), lvrpc_last_message());
    return rc;
}

/* ------------------------------------------------------------- asserts */

void lvrpct_assert(int ok, const char *file, unsigned line, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    if (ok) {
        CU_assertImplementation(CU_TRUE, line, "", file, "", CU_FALSE);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    CU_assertImplementation(CU_FALSE, line, msg, file, "", CU_FALSE);
}

static void dump_words(const unsigned char *p, size_t len, size_t mark)
{
    for (size_t i = 0; i < len; i += 4) {
        fprintf(stderr, "  %4zu:", i);
        for (size_t j = i; j < i + 4 && j < len; j++)
            fprintf(stderr, " %02x", p[j]);
        fprintf(stderr, "%s\n", mark >= i && mark < i + 4 ? "   <--" : "");
    }
}

int lvrpct_bytes_equal(const void *got, size_t got_len, const void *want, size_t want_len,
                       const char *what)
{
    const unsigned char *g = got, *w = want;
    size_t i, n = got_len < want_len ? got_len : want_len;

    if (got && got_len == want_len && memcmp(got, want, want_len) == 0)
        return 1;
    for (i = 0; got && i < n && g[i] == w[i]; i++)
        ;
    fprintf(stderr, "%s: %zu bytes, want %zu; first difference at byte %zu\n", what, got_len,
            want_len, i);
    if (got) {
        fprintf(stderr, " got:\n");
        dump_words(g, got_len, i);
    }
    fprintf(stderr, " want:\n");
    dump_words(w, want_len, i);
    return 0;
}

/* ------------------------------------------------------------- thread-safe checks */

void lvrpct_ctx_init(lvrpct_ctx *t, const char *tag, int index, int exclusive)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->tag, sizeof(t->tag), "%s", tag);
    t->index = index;
    t->exclusive = exclusive;
}

int lvrpct_ctx_fail(lvrpct_ctx *t, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    if (t->failed++)
        return -1;
    t->file = file;
    t->line = line;
    snprintf(t->where, sizeof(t->where), "%s:%d", file, line);
    va_start(ap, fmt);
    vsnprintf(t->msg, sizeof(t->msg), fmt, ap);
    va_end(ap);
    return -1;
}

void lvrpct_ctx_report(const lvrpct_ctx *t, const char *what)
{
    /* the checks that passed count as CUnit assertions too */
    for (unsigned i = 0; i < t->checks; i++)
        CU_assertImplementation(CU_TRUE, __LINE__, "", __FILE__, "", CU_FALSE);
    if (t->failed)
        fprintf(stderr, "FAILED %s [%s]: at %s: %s\n", what, t->tag, t->where, t->msg);
    lvrpct_assert(!t->failed, t->failed ? t->file : __FILE__,
                  t->failed ? (unsigned)t->line : __LINE__, "%s [%s]: %s", what, t->tag, t->msg);
}

/* ------------------------------------------------------------- runner */

CU_pSuite lvrpct_add_suite(const char *name, CU_InitializeFunc init, CU_CleanupFunc cleanup,
                           const lvrpct_test *tests)
{
    CU_pSuite s = CU_add_suite(name, init, cleanup);

    if (!s) {
        lvrpct_hard_error("CU_add_suite(%s): %s", name, CU_get_error_msg());
        return NULL;
    }
    for (const lvrpct_test *t = tests; t && t->name; t++)
        if (!CU_add_test(s, t->name, t->func))
            lvrpct_hard_error("CU_add_test(%s): %s", t->name, CU_get_error_msg());
    return s;
}

static int selected(const char *suite, int argc, char **argv)
{
    const char *env = getenv("LVRPCT_SUITES");

    if (argc <= 1 && (!env || !*env))
        return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(suite, argv[i]))
            return 1;
    if (env && *env) {
        char buf[1024], *save = NULL;
        snprintf(buf, sizeof(buf), "%s", env);
        for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save))
            if (strstr(suite, p))
                return 1;
    }
    return 0;
}

int lvrpct_main(int argc, char **argv, void (*add_suites)(void))
{
    unsigned failures, suites_failed, tests_failed, asserts;
    CU_pSuite s;
    int rc;

    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "CU_initialize_registry: %s\n", CU_get_error_msg());
        return LVRPCT_EXIT_HARD;
    }
    add_suites();
    for (s = CU_get_registry()->pSuite; s; s = s->pNext)
        if (!selected(s->pName, argc, argv))
            CU_set_suite_active(s, CU_FALSE);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failures = CU_get_number_of_failures();
    suites_failed = CU_get_number_of_suites_failed();
    tests_failed = CU_get_number_of_tests_failed();
    asserts = CU_get_number_of_asserts();
    printf("\n%s: %u tests run, %u failed, %u assertions, %u failures, %u suites failed "
           "(init/cleanup)\n",
           argv[0], CU_get_number_of_tests_run(), tests_failed, asserts, failures,
           suites_failed);
    if (hard_error)
        rc = LVRPCT_EXIT_HARD;
    else if (failures || suites_failed || tests_failed || CU_get_error() != CUE_SUCCESS)
        rc = LVRPCT_EXIT_FAIL;
    else if (CU_get_number_of_tests_run() == 0)
        rc = LVRPCT_EXIT_FAIL; /* a filter that matches nothing is an error */
    else
        rc = LVRPCT_EXIT_PASS;
    CU_cleanup_registry();
    return rc;
}
