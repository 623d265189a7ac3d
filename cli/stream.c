/* stream.c - the commands that move data through streams:
 *
 *   vol-upload POOL VOL FILE [--sparse] [--offset N] [--length N]
 *   vol-download POOL VOL FILE [--sparse] [--offset N] [--length N]
 *   screenshot DOMAIN FILE [--screen N]
 *   console DOMAIN [--devname NAME] [--force] [--safe]
 *
 * The volume transfers draw a progress bar on stderr (bytes, rate, time
 * left) when stderr is a terminal, and nothing otherwise.  Messages follow
 * virsh's where virsh has one.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* libvirt's flag values (libvirt-storage.h, libvirt-domain.h). */
#define VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM 1u
#define VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM 1u
#define VIR_DOMAIN_CONSOLE_FORCE 1u
#define VIR_DOMAIN_CONSOLE_SAFE 2u

/* virsh's escape character, ^] */
#define CONSOLE_ESCAPE 0x1d
/* How long one console recv waits before looking at the quit flag. */
#define CONSOLE_POLL_MS 250

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------ progress bar */

typedef struct progress {
    int on;          /* stderr is a terminal */
    int64_t t0;      /* start */
    int64_t last;    /* last drawn */
    int drawn;
} progress;

static void human(char *buf, size_t size, double v)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;

    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%.0f %s", v, unit[u]);
    else
        snprintf(buf, size, "%.1f %s", v, unit[u]);
}

static void hms(char *buf, size_t size, double sec)
{
    unsigned long s = sec > 0 && sec < 360000.0 ? (unsigned long)(sec + 0.5) : 0;

    if (sec >= 360000.0)
        snprintf(buf, size, "--:--");
    else if (s >= 3600)
        snprintf(buf, size, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, size, "%lu:%02lu", s / 60, s % 60);
}

/* One line, redrawn in place:
 *  42% [########            ] 27.0 MiB / 64.0 MiB  812.3 MiB/s  0:03 left */
static void progress_draw(progress *pg, uint64_t done, uint64_t total, int final)
{
    double secs = (double)(mono_ns() - pg->t0) / 1e9, rate = secs > 0 ? done / secs : 0;
    char d[32], t[32], r[32], eta[32], bar[21];
    int pct = total ? (int)(done * 100 / total) : 0, fill;

    if (pct > 100)
        pct = 100;
    fill = total ? pct / 5 : 0;
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, ' ', (size_t)(20 - fill));
    bar[20] = '\0';
    human(d, sizeof(d), (double)done);
    human(r, sizeof(r), rate);
    if (final) {
        hms(eta, sizeof(eta), secs);
        fprintf(stderr, "\r%3d%% [%s] %s  %s/s  %s total  \033[K\n", total ? pct : 100, bar,
                d, r, eta);
    } else if (total) {
        human(t, sizeof(t), (double)total);
        hms(eta, sizeof(eta), rate > 0 && total > done ? (double)(total - done) / rate : 0);
        fprintf(stderr, "\r%3d%% [%s] %s / %s  %s/s  %s left\033[K", pct, bar, d, t, r, eta);
    } else {
        fprintf(stderr, "\r%s  %s/s\033[K", d, r);
    }
    fflush(stderr);
    pg->drawn = 1;
}

static int progress_cb(uint64_t done, uint64_t total, void *opaque)
{
    progress *pg = opaque;
    int64_t now = mono_ns();

    if (pg->on && (now - pg->last >= 100000000 || (total && done >= total))) {
        pg->last = now;
        progress_draw(pg, done, total, 0);
    }
    return 0;
}

static void progress_start(progress *pg)
{
    memset(pg, 0, sizeof(*pg));
    pg->on = isatty(STDERR_FILENO);
    pg->t0 = mono_ns();
}

static void progress_end(progress *pg, uint64_t done, uint64_t total, int ok)
{
    if (!pg->on)
        return;
    if (ok)
        progress_draw(pg, done, total, 1);
    else if (pg->drawn)
        fputc('\n', stderr); /* keep the bar; the error goes below it */
}

/* Counts what the pumps moved, for the final line. */
typedef struct counted {
    progress pg;
    uint64_t done;
} counted;

static int counted_cb(uint64_t done, uint64_t total, void *opaque)
{
    counted *c = opaque;

    c->done = done;
    return progress_cb(done, total, &c->pg);
}

/* ------------------------------------------------------------ lookups */

/* The volume VOL of pool POOL (by name; the pool by name or UUID).
 * *reply holds *vol; free it with lvrpc_reply_free(). */
static int vol_get(cli_ctx *ctx, const char *pool, const char *vol, lvrpc_vol_ref **out,
                   void **reply)
{
    lvrpc_storage_pool_lookup_by_name_args pa = {(char *)pool};
    lvrpc_storage_pool_lookup_by_name_ret *pr = NULL;
    lvrpc_storage_pool_lookup_by_uuid_args ua;
    lvrpc_storage_pool_lookup_by_uuid_ret *ur = NULL;
    lvrpc_storage_vol_lookup_by_name_ret *vr = NULL;
    lvrpc_pool_ref *p;
    int rc;

    *out = NULL;
    *reply = NULL;
    if (strlen(pool) == 36 && cli_uuid_parse(pool, ua.uuid) == 0 &&
        lvrpc_storage_pool_lookup_by_uuid(ctx->client, &ua, &ur) == LVRPC_OK)
        p = &ur->pool;
    else if (lvrpc_storage_pool_lookup_by_name(ctx->client, &pa, &pr) == LVRPC_OK)
        p = &pr->pool;
    else
        return cli_fail_lvrpc(ctx);
    lvrpc_storage_vol_lookup_by_name_args va = {*p, (char *)vol};
    rc = lvrpc_storage_vol_lookup_by_name(ctx->client, &va, &vr);
    if (rc != LVRPC_OK)
        cli_fail_lvrpc(ctx);
    lvrpc_reply_free(pr);
    lvrpc_reply_free(ur);
    if (rc != LVRPC_OK)
        return -1;
    *out = &vr->vol;
    *reply = vr;
    return 0;
}

static int parse_u64(cli_ctx *ctx, const char *what, const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    *out = 0;
    if (!s)
        return 0;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (end == s || *end || errno || *s == '-')
        return cli_fail(ctx, "%s must be a number of bytes, not '%s'", what, s);
    *out = v;
    return 0;
}

/* ------------------------------------------------------------ volumes */

typedef struct vol_args {
    const char *pool, *vol, *file, *sparse, *offset, *length;
    uint64_t off, len;
} vol_args;

static int vol_parse(cli_ctx *ctx, int argc, char **argv, vol_args *a)
{
    const cli_opt opts[] = {{"pool", 0, CLI_POSITIONAL, &a->pool},
                            {"vol", 0, CLI_POSITIONAL, &a->vol},
                            {"file", 0, CLI_POSITIONAL, &a->file},
                            {"sparse", 0, CLI_FLAG, &a->sparse},
                            {"offset", 0, CLI_VALUE, &a->offset},
                            {"length", 0, CLI_VALUE, &a->length},
                            {NULL, 0, 0, NULL}};

    memset(a, 0, sizeof(*a));
    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 ||
        parse_u64(ctx, "--offset", a->offset, &a->off) < 0 ||
        parse_u64(ctx, "--length", a->length, &a->len) < 0)
        return -1;
    return 0;
}

int cli_cmd_vol_upload(cli_ctx *ctx, int argc, char **argv)
{
    vol_args a;
    lvrpc_vol_ref *vol = NULL;
    lvrpc_stream *st = NULL;
    void *reply = NULL;
    struct stat sb;
    counted cnt;
    uint64_t total = 0;
    int fd = -1, rc = -1;

    if (vol_parse(ctx, argc, argv, &a) < 0)
        return -1;
    if ((fd = open(a.file, O_RDONLY | O_CLOEXEC)) < 0)
        return cli_fail(ctx, "cannot read %s: %s", a.file, strerror(errno));
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
        total = (uint64_t)sb.st_size;
    if (a.len && (!total || a.len < total))
        total = a.len;
    if (cli_connect(ctx) < 0 || vol_get(ctx, a.pool, a.vol, &vol, &reply) < 0)
        goto out;
    {
        lvrpc_storage_vol_upload_args ua = {*vol, a.off, a.len,
                                            a.sparse ? VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM : 0};
        if (lvrpc_storage_vol_upload_stream(ctx->client, &ua,
                                            a.sparse ? LVRPC_STREAM_SPARSE : 0, &st) != LVRPC_OK) {
            cli_fail_lvrpc(ctx);
            goto out;
        }
    }
    progress_start(&cnt.pg);
    cnt.done = 0;
    rc = lvrpc_stream_send_fd(st, fd, total, counted_cb, &cnt) == LVRPC_OK ? 0 : -1;
    progress_end(&cnt.pg, cnt.done, total, rc == 0);
    if (rc < 0)
        cli_fail_lvrpc(ctx);
out:
    lvrpc_stream_free(st);
    lvrpc_reply_free(reply);
    close(fd);
    return rc;
}

int cli_cmd_vol_download(cli_ctx *ctx, int argc, char **argv)
{
    vol_args a;
    lvrpc_vol_ref *vol = NULL;
    lvrpc_stream *st = NULL;
    void *reply = NULL;
    counted cnt;
    uint64_t total = 0;
    int fd = -1, rc = -1, created = 0;

    if (vol_parse(ctx, argc, argv, &a) < 0)
        return -1;
    if (cli_connect(ctx) < 0 || vol_get(ctx, a.pool, a.vol, &vol, &reply) < 0)
        goto out;
    {
        lvrpc_storage_vol_get_info_args ia = {*vol};
        lvrpc_storage_vol_get_info_ret *info = NULL;
        if (lvrpc_storage_vol_get_info(ctx->client, &ia, &info) == LVRPC_OK &&
            info->capacity > a.off)
            total = info->capacity - a.off;
        lvrpc_reply_free(info);
        if (a.len && (!total || a.len < total))
            total = a.len;
    }
    /* as virsh: a new file, else an existing one truncated; a file we
     * created is removed again when the download fails */
    if ((fd = open(a.file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) >= 0)
        created = 1;
    else if (errno != EEXIST ||
             (fd = open(a.file, O_WRONLY | O_TRUNC | O_CLOEXEC, 0666)) < 0) {
        cli_fail(ctx, "cannot create %s: %s", a.file, strerror(errno));
        goto out;
    }
    {
        lvrpc_storage_vol_download_args da = {
            *vol, a.off, a.len, a.sparse ? VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM : 0};
        if (lvrpc_storage_vol_download_stream(ctx->client, &da,
                                              a.sparse ? LVRPC_STREAM_SPARSE : 0,
                                              &st) != LVRPC_OK) {
            cli_fail_lvrpc(ctx);
            goto out;
        }
    }
    progress_start(&cnt.pg);
    cnt.done = 0;
    rc = lvrpc_stream_recv_fd(st, fd, total, counted_cb, &cnt) == LVRPC_OK ? 0 : -1;
    progress_end(&cnt.pg, cnt.done, total, rc == 0);
    if (rc < 0)
        cli_fail_lvrpc(ctx);
    else if (close(fd) < 0)
        rc = cli_fail(ctx, "cannot write %s: %s", a.file, strerror(errno));
    fd = -1;
out:
    lvrpc_stream_free(st);
    lvrpc_reply_free(reply);
    if (fd >= 0)
        close(fd);
    if (rc < 0 && created)
        unlink(a.file);
    return rc;
}

/* ------------------------------------------------------------ screenshot */

int cli_cmd_screenshot(cli_ctx *ctx, int argc, char **argv)
{
    const char *name = NULL, *file = NULL, *screen = NULL;
    const cli_opt opts[] = {{"domain", 0, CLI_POSITIONAL, &name},
                            {"file", 0, CLI_POSITIONAL, &file},
                            {"screen", 0, CLI_VALUE, &screen},
                            {NULL, 0, 0, NULL}};
    lvrpc_domain_screenshot_ret *mime = NULL;
    lvrpc_stream *st = NULL;
    unsigned long nscreen = 0;
    cli_domain d = {NULL, NULL};
    int fd = -1, rc = -1, created = 0;

    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 ||
        (screen && cli_parse_uint(ctx, "--screen", screen, 0, 0xffffffffu, &nscreen) < 0) ||
        cli_connect(ctx) < 0 ||
        cli_domain_get(ctx, name, CLI_BYID | CLI_BYUUID | CLI_BYNAME, &d) < 0)
        return -1;
    lvrpc_domain_screenshot_args a = {*d.dom, (u_int)nscreen, 0};
    if (lvrpc_domain_screenshot_stream(ctx->client, &a, &mime, &st) != LVRPC_OK) {
        cli_fail_lvrpc(ctx);
        goto out;
    }
    if ((fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666)) >= 0)
        created = 1;
    else if (errno != EEXIST || (fd = open(file, O_WRONLY | O_TRUNC | O_CLOEXEC, 0666)) < 0) {
        cli_fail(ctx, "cannot create file %s: %s", file, strerror(errno));
        goto out;
    }
    if (lvrpc_stream_recv_fd(st, fd, 0, NULL, NULL) != LVRPC_OK) {
        cli_fail_lvrpc(ctx);
        goto out;
    }
    rc = close(fd) == 0 ? 0 : cli_fail(ctx, "cannot write %s: %s", file, strerror(errno));
    fd = -1;
    if (rc == 0)
        printf("Screenshot saved to %s, with type of %s\n", file,
               mime->mime && *mime->mime ? *mime->mime : "unknown");
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0 && created)
        unlink(file);
    lvrpc_stream_free(st);
    lvrpc_reply_free(mime);
    cli_domain_clear(&d);
    return rc;
}

/* ------------------------------------------------------------ console */

/* The console: stdin goes to the stream from the main thread while a
 * second thread writes what the stream brings to stdout.  ^] on a terminal
 * quits; at the end of stdin (not a terminal) the console drains what is
 * still coming (until it has been quiet for CONSOLE_POLL_MS) and quits. */
enum { RUN = 0, DRAIN = 1, QUIT = 2 };

typedef struct console {
    lvrpc_stream *st;
    int quit;          /* RUN, DRAIN, QUIT (atomic) */
    int done;          /* the receiving thread has stopped (atomic) */
    int ended;         /* the daemon ended the stream */
    int rc;            /* the receiving thread's failure, or LVRPC_OK */
    lvrpc_error err;
} console;

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *console_rx(void *arg)
{
    console *cs = arg;
    unsigned char buf[65536];

    for (;;) {
        size_t n = 0;
        int rc = lvrpc_stream_recv(cs->st, buf, sizeof(buf), &n, NULL), q;

        q = __atomic_load_n(&cs->quit, __ATOMIC_ACQUIRE);
        if (rc == LVRPC_ETIMEDOUT) {
            if (q != RUN)
                break; /* quiet: the drain is over */
            continue;
        }
        if (rc != LVRPC_OK) {
            cs->rc = rc;
            lvrpc_last_error(&cs->err);
            break;
        }
        if (n == 0) {
            cs->ended = 1;
            break;
        }
        if (write_all(STDOUT_FILENO, buf, n) < 0) {
            cs->rc = LVRPC_ESYS;
            memset(&cs->err, 0, sizeof(cs->err));
            snprintf(cs->err.message, sizeof(cs->err.message), "cannot write the output: %s",
                     strerror(errno));
            break;
        }
        if (q == QUIT)
            break;
    }
    __atomic_store_n(&cs->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

int cli_cmd_console(cli_ctx *ctx, int argc, char **argv)
{
    const char *name = NULL, *devname = NULL, *force = NULL, *safe = NULL;
    const cli_opt opts[] = {{"domain", 0, CLI_POSITIONAL, &name},
                            {"devname", 0, CLI_VALUE, &devname},
                            {"force", 0, CLI_FLAG, &force},
                            {"safe", 0, CLI_FLAG, &safe},
                            {NULL, 0, 0, NULL}};
    int tty = isatty(STDIN_FILENO), raw = 0, rc = 0, sent_err = 0;
    struct termios saved;
    cli_domain d = {NULL, NULL};
    console cs;
    pthread_t th;
    char *dev = (char *)devname;

    memset(&cs, 0, sizeof(cs));
    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 || cli_connect(ctx) < 0 ||
        cli_domain_get(ctx, name, CLI_BYID | CLI_BYUUID | CLI_BYNAME, &d) < 0)
        return -1;
    lvrpc_domain_open_console_args a = {*d.dom, devname ? &dev : NULL,
                                        (force ? VIR_DOMAIN_CONSOLE_FORCE : 0) |
                                            (safe ? VIR_DOMAIN_CONSOLE_SAFE : 0)};
    if (lvrpc_domain_open_console_stream(ctx->client, &a, &cs.st) != LVRPC_OK) {
        cli_domain_clear(&d);
        return cli_fail_lvrpc(ctx);
    }
    if (tty) {
        struct termios t;
        fprintf(stderr, "Connected to domain '%s'\nEscape character is ^] (Ctrl + ])\n",
                d.dom->name);
        if (tcgetattr(STDIN_FILENO, &saved) == 0) {
            t = saved;
            cfmakeraw(&t);
            raw = tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0;
        }
    }
    /* A recv waits this long, then looks whether we are quitting. */
    lvrpc_set_timeout(ctx->client, CONSOLE_POLL_MS);
    if (pthread_create(&th, NULL, console_rx, &cs) != 0) {
        rc = cli_fail(ctx, "cannot start a thread");
        goto out;
    }
    while (!__atomic_load_n(&cs.done, __ATOMIC_ACQUIRE) &&
           __atomic_load_n(&cs.quit, __ATOMIC_ACQUIRE) == RUN) {
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        unsigned char buf[4096], *esc;
        ssize_t n;
        int r = poll(&pfd, 1, 100);

        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) { /* the end of the input */
            __atomic_store_n(&cs.quit, DRAIN, __ATOMIC_RELEASE);
            break;
        }
        esc = tty ? memchr(buf, CONSOLE_ESCAPE, (size_t)n) : NULL;
        if (esc)
            n = esc - buf;
        if (n > 0 && lvrpc_stream_send(cs.st, buf, (size_t)n) != LVRPC_OK) {
            sent_err = 1;
            cli_fail_lvrpc(ctx);
            __atomic_store_n(&cs.quit, QUIT, __ATOMIC_RELEASE);
            break;
        }
        if (esc)
            __atomic_store_n(&cs.quit, QUIT, __ATOMIC_RELEASE);
    }
    pthread_join(th, NULL);
    if (sent_err)
        rc = -1;
    else if (cs.rc != LVRPC_OK)
        rc = cli_fail(ctx, "%s", cs.err.message);
    lvrpc_set_timeout(ctx->client, ctx->opts.call_timeout_ms);
    if (rc == 0 && lvrpc_stream_finish(cs.st) != LVRPC_OK && !cs.ended)
        rc = cli_fail_lvrpc(ctx);
out:
    if (raw) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fputc('\n', stderr);
    }
    lvrpc_stream_free(cs.st);
    cli_domain_clear(&d);
    return rc;
}
