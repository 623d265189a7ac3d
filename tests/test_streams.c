/* test_streams.c - data streams in both modes, against real daemons and
 * against the project's fake server.
 *
 * streams/storage  a private, unprivileged libvirtd with the storage driver
 *                  and a directory pool (tests/libvirtd-storage-up.sh):
 *   roundtrip      a 64 MiB random file uploaded to a volume and downloaded
 *                  again, byte for byte equal, Direct and Shared, over TCP,
 *                  UNIX and TLS (TLS when the build and the daemon have it);
 *                  over TCP and UNIX all of it went through mappings of the
 *                  file, over TLS none (the mmap() hook below counts)
 *   sparse         a file with holes uploaded and downloaded as a sparse
 *                  stream keeps its holes (st_blocks) and its content; its
 *                  data ranges went through mappings
 *   pipe source    an upload read from a pipe takes the copy path, intact,
 *                  both modes, TCP and UNIX
 *   concurrency    4 streams (2 uploads, 2 downloads) and 16 threads of
 *                  ordinary calls at once on ONE Shared connection
 *   slow consumer  a Shared download left unread: memory stays bounded
 *                  (~LVRPC_STREAM_QUEUE_MAX) while calls on the pool's other
 *                  connection keep working; then all the data is read, intact
 *   abort          client aborts of a download and of an upload, Direct and
 *                  Shared: the abort is answered and the handle stays usable
 *   daemon error   an upload longer than the length asked for: the daemon
 *                  aborts the stream, lvrpc returns libvirt's error and the
 *                  handle stays usable
 * streams/test-driver  the test driver of a private libvirtd
 *   screenshot     equal to what `virsh screenshot` saves, both modes
 * streams/fake     tests/fakeserver.c (the project's own server)
 *   console        echo round trip, both directions at once from two
 *                  threads; an idle recv times out and the stream goes on;
 *                  the server hanging up ends the stream cleanly
 *   faults         the server's STREAM/ERROR mid-download and mid-upload,
 *                  a connection closed between packets and in the middle of
 *                  one (errors, never a short read), a hole on a stream that
 *                  is not sparse, a stream whose connection dies fails
 *                  promptly, lvrpc_close() wakes a blocked recv
 *   growing file   an upload whose file grows past its mapped windows: sent
 *                  whole and in order, both modes
 *   broken files   an upload whose file shrinks between packets: an error,
 *                  the stream aborted, the connection kept; one cut in the
 *                  middle of a packet being sent (the mmap() hook
 *                  truncates it there): an error, the connection dropped,
 *                  no partial packet reaches the server, the handle goes
 *                  on; a socket failing mid-packet raises no SIGPIPE
 *
 * LVRPCT_SCALE (default 1; 8 under valgrind) divides the transfer sizes.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fakeserver.h"
#include "harness.h"
#include "lvrpc.h"

#define MIB (1024u * 1024u)
#define VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM 1u
#define VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM 1u

static unsigned scale = 1;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const lvrpc_mode modes[] = {LVRPC_MODE_DIRECT, LVRPC_MODE_SHARED};

static int open_mode(const char *uri, lvrpc_mode mode, unsigned pool, unsigned timeout_ms,
                     lvrpc_client **out)
{
    lvrpc_options o;
    int rc;

    memset(&o, 0, sizeof(o));
    o.mode = mode;
    o.pool_size = pool;
    o.call_timeout_ms = timeout_ms;
    rc = lvrpc_open(uri, &o, out);
    if (rc != LVRPC_OK)
        fprintf(stderr, "lvrpc_open(%s, %s) failed: %s: %s\n", uri, lvrpct_mode_name(mode),
                lvrpc_strerror(rc), lvrpc_last_message());
    return rc;
}

/* ------------------------------------------------------------ file mappings */

/* This program defines mmap() and sendmsg(): the library's calls resolve to
 * them (the executable comes first in symbol lookup).  mmap() makes the
 * system call itself and counts the bytes of the read-only shared file
 * mappings, which the library makes only to send a file's data (a
 * window of whole packets, from the page of its first one), so that the
 * tests can tell the mapped upload path from the copy path; it keeps the
 * thread's latest such mapping.  Both break an upload at an exact offset
 * in the middle of a packet: the sendmsg() whose data from that mapping
 * holds that offset first truncates the file there (MAP_CUT), as a truncate
 * racing with the upload would, or shuts its socket's sending side down
 * (MAP_SHUT).  sendmsg() passes every call on to the next definition
 * (libc's, or a sanitizer's). */
enum { MAP_CUT, MAP_SHUT };
static uint64_t mapped_bytes;     /* atomic */
static int map_fault = MAP_CUT;   /* what map_fault_at does (set before it) */
static int64_t map_fault_at = -1; /* >= 0: armed (atomic) */
static __thread struct {
    const char *addr;
    size_t len;
    off_t off;
    int fd;
} last_map;

/* Not instrumented: sanitizer runtimes map memory through it while they
 * start, before instrumented code may run. */
__attribute__((no_sanitize("address", "thread"))) void *mmap(void *addr, size_t len, int prot,
                                                             int flags, int fd, off_t off)
{
    long m = syscall(SYS_mmap, addr, len, prot, flags, fd, off);

    if (m == -1 || fd < 0 || prot != PROT_READ || (flags & MAP_TYPE) != MAP_SHARED)
        return (void *)m;
    __atomic_add_fetch(&mapped_bytes, (uint64_t)len, __ATOMIC_RELAXED);
    last_map.addr = (const char *)m;
    last_map.len = len;
    last_map.off = off;
    last_map.fd = fd;
    return (void *)m;
}

/* Whether iov sends the byte of the thread's latest mapping at file offset at. */
static int sends_offset(const struct iovec *iov, int64_t at)
{
    const char *p = iov->iov_base;
    off_t fo;

    if (!last_map.addr || p < last_map.addr || p >= last_map.addr + last_map.len)
        return 0;
    fo = last_map.off + (p - last_map.addr);
    return fo <= at && at < fo + (off_t)iov->iov_len;
}

/* Fires the armed fault when this sendmsg carries its offset (once). */
static void map_fault_check(int sock, const struct msghdr *mh)
{
    int64_t at = __atomic_load_n(&map_fault_at, __ATOMIC_ACQUIRE);

    for (size_t i = 0; at >= 0 && i < mh->msg_iovlen; i++) {
        if (!sends_offset(&mh->msg_iov[i], at) ||
            !__atomic_compare_exchange_n(&map_fault_at, &at, -1, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            continue;
        if (map_fault == MAP_SHUT ? shutdown(sock, SHUT_WR) < 0
                                  : ftruncate(last_map.fd, (off_t)at) < 0)
            fprintf(stderr, "sendmsg test hook: %s\n", strerror(errno));
        return;
    }
}

ssize_t sendmsg(int fd, const struct msghdr *mh, int flags)
{
    static ssize_t (*next)(int, const struct msghdr *, int);

    if (!__atomic_load_n(&next, __ATOMIC_ACQUIRE))
        __atomic_store_n(&next, (ssize_t (*)(int, const struct msghdr *, int))
                                    dlsym(RTLD_NEXT, "sendmsg"), __ATOMIC_RELEASE);
    map_fault_check(fd, mh);
    return next(fd, mh, flags);
}

static void map_fault_arm(int kind, int64_t at)
{
    map_fault = kind;
    __atomic_store_n(&map_fault_at, at, __ATOMIC_RELEASE);
}

static uint64_t mapped(void)
{
    return __atomic_load_n(&mapped_bytes, __ATOMIC_RELAXED);
}

/* Whether an upload of size bytes went whole through mappings: each
 * window maps whole packets and at most the page before the first. */
static int all_mapped(uint64_t got, uint64_t size)
{
    uint64_t packets = (size + LVRPC_STREAM_CHUNK - 1) / LVRPC_STREAM_CHUNK;

    return got >= size && got < size + packets * 4096;
}

/* ------------------------------------------------------------ files */

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void fill_random(unsigned char *p, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t v = rng_next(&x);
        memcpy(p + i, &v, 8);
    }
    for (; i < len; i++)
        p[i] = (unsigned char)rng_next(&x);
}

static int write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const unsigned char *p = data;

    if (fd < 0)
        return -1;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return close(fd);
}

/* A random file of len bytes. */
static int make_random_file(const char *path, size_t len, uint64_t seed)
{
    unsigned char *buf = malloc(len ? len : 1);
    int rc;

    if (!buf)
        return -1;
    fill_random(buf, len, seed);
    rc = write_file(path, buf, len);
    free(buf);
    return rc;
}

/* Compares two files: 1 equal, 0 different (where printed), -1 error. */
static int files_equal(const char *a, const char *b)
{
    enum { CHUNK = 1 << 20 };
    unsigned char *ba = malloc(CHUNK), *bb = malloc(CHUNK);
    int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY), rc = -1;
    uint64_t off = 0;

    if (!ba || !bb || fa < 0 || fb < 0)
        goto out;
    for (;;) {
        ssize_t na = read(fa, ba, CHUNK), nb = read(fb, bb, CHUNK);
        if (na < 0 || nb < 0)
            goto out;
        if (na != nb || memcmp(ba, bb, (size_t)na) != 0) {
            ssize_t i = 0;
            while (i < na && i < nb && ba[i] == bb[i])
                i++;
            fprintf(stderr, "%s and %s differ at byte %llu\n", a, b,
                    (unsigned long long)(off + (uint64_t)i));
            rc = 0;
            goto out;
        }
        if (na == 0) {
            rc = 1;
            goto out;
        }
        off += (uint64_t)na;
    }
out:
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    free(ba);
    free(bb);
    return rc;
}

/* Bytes allocated on disk for path, or -1. */
static long long allocated(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? (long long)sb.st_blocks * 512 : -1;
}

static long long file_size(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* Receives into buf until the end or an error; returns lvrpc's code. */
static int recv_all(lvrpc_stream *st, unsigned char *buf, size_t cap, size_t *have)
{
    size_t n;
    int rc;

    *have = 0;
    do {
        rc = lvrpc_stream_recv(st, buf + *have, cap - *have, &n, NULL);
        *have += n;
    } while (rc == LVRPC_OK && n > 0 && *have < cap);
    return rc;
}

/* Resident memory of this process in KiB. */
static long rss_kib(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* ------------------------------------------------------------ storage daemon */

/* A private storage libvirtd (tests/libvirtd-storage-up.sh).  The harness's
 * lvrpct_daemon is for the test driver; this is the storage counterpart. */
typedef struct storage_daemon {
    char dir[128];
    pid_t pid;
    char uri_tcp[256], uri_unix[320], uri_tls[400];
    char pool[64], pool_dir[256], log[256];
} storage_daemon;

static storage_daemon sd;
static char work_dir[160]; /* local files of the storage tests */


static void storage_stop(storage_daemon *d)
{
    if (!d->dir[0])
        return;
    if (d->pid > 0 && lvrpct_run_test_script("libvirtd-down.sh", d->dir, NULL) != 0)
        fprintf(stderr, "warning: libvirtd-down.sh %s failed\n", d->dir);
    if (getenv("LVRPCT_KEEP"))
        fprintf(stderr, "LVRPCT_KEEP: keeping %s\n", d->dir);
    else
        lvrpct_remove_tree(d->dir);
    memset(d, 0, sizeof(*d));
}

static int storage_start(storage_daemon *d)
{
    char out[PATH_MAX], line[1024];
    const char *tmp = getenv("TMPDIR");
    FILE *f;
    int rc;

    memset(d, 0, sizeof(*d));
    if (!tmp || !*tmp || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(d->dir, sizeof(d->dir), "%s/lvrpcs-XXXXXX", tmp);
    if (!mkdtemp(d->dir)) {
        lvrpct_hard_error("mkdtemp %s: %s", d->dir, strerror(errno));
        d->dir[0] = '\0';
        return -1;
    }
    chmod(d->dir, 0755); /* the daemon may run as another user */
    snprintf(out, sizeof(out), "%s/up.out", d->dir);
    rc = lvrpct_run_test_script("libvirtd-storage-up.sh", d->dir, out);
    if (rc != 0) {
        lvrpct_hard_error("libvirtd-storage-up.sh %s failed (exit status %d)", d->dir, rc);
        storage_stop(d);
        return -1;
    }
    snprintf(out, sizeof(out), "%s/env", d->dir);
    if (!(f = fopen(out, "r"))) {
        lvrpct_hard_error("no %s", out);
        storage_stop(d);
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *val = strchr(line, '=');
        if (!val)
            continue;
        *val++ = '\0';
        val[strcspn(val, "\n")] = '\0';
        if (!strcmp(line, "LIBVIRTD_PID"))
            d->pid = (pid_t)atol(val);
        else if (!strcmp(line, "LIBVIRTD_URI_TCP"))
            snprintf(d->uri_tcp, sizeof(d->uri_tcp), "%s", val);
        else if (!strcmp(line, "LIBVIRTD_URI_UNIX"))
            snprintf(d->uri_unix, sizeof(d->uri_unix), "%s", val);
        else if (!strcmp(line, "LIBVIRTD_URI_TLS"))
            snprintf(d->uri_tls, sizeof(d->uri_tls), "%s", val);
        else if (!strcmp(line, "LIBVIRTD_POOL"))
            snprintf(d->pool, sizeof(d->pool), "%s", val);
        else if (!strcmp(line, "LIBVIRTD_POOL_DIR"))
            snprintf(d->pool_dir, sizeof(d->pool_dir), "%s", val);
        else if (!strcmp(line, "LIBVIRTD_LOG"))
            snprintf(d->log, sizeof(d->log), "%s", val);
    }
    fclose(f);
    if (d->pid <= 0 || !d->uri_tcp[0] || !d->pool[0]) {
        lvrpct_hard_error("%s is incomplete", out);
        storage_stop(d);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ volumes */

/* Creates volume name (raw, capacity bytes, nothing allocated) in the pool. */
static int vol_create(lvrpc_client *c, const char *name, uint64_t capacity)
{
    lvrpc_storage_pool_lookup_by_name_args pa = {sd.pool};
    lvrpc_storage_pool_lookup_by_name_ret *pr = NULL;
    lvrpc_storage_vol_create_xml_ret *vr = NULL;
    char xml[512];
    int rc;

    snprintf(xml, sizeof(xml),
             "<volume><name>%s</name><capacity unit='bytes'>%llu</capacity>"
             "<allocation unit='bytes'>0</allocation><target><format type='raw'/>"
             "</target></volume>", name, (unsigned long long)capacity);
    if ((rc = lvrpc_storage_pool_lookup_by_name(c, &pa, &pr)) != LVRPC_OK)
        return rc;
    lvrpc_storage_vol_create_xml_args va = {pr->pool, xml, 0};
    rc = lvrpc_storage_vol_create_xml(c, &va, &vr);
    lvrpc_reply_free(vr);
    lvrpc_reply_free(pr);
    return rc;
}

/* The volume's reference (free *reply with lvrpc_reply_free). */
static int vol_get(lvrpc_client *c, const char *name, lvrpc_vol_ref **vol, void **reply)
{
    lvrpc_storage_pool_lookup_by_name_args pa = {sd.pool};
    lvrpc_storage_pool_lookup_by_name_ret *pr = NULL;
    lvrpc_storage_vol_lookup_by_name_ret *vr = NULL;
    int rc;

    *vol = NULL;
    *reply = NULL;
    if ((rc = lvrpc_storage_pool_lookup_by_name(c, &pa, &pr)) != LVRPC_OK)
        return rc;
    lvrpc_storage_vol_lookup_by_name_args va = {pr->pool, (char *)name};
    rc = lvrpc_storage_vol_lookup_by_name(c, &va, &vr);
    lvrpc_reply_free(pr);
    if (rc == LVRPC_OK) {
        *vol = &vr->vol;
        *reply = vr;
    }
    return rc;
}

static void vol_delete(lvrpc_client *c, const char *name)
{
    lvrpc_vol_ref *v;
    void *r;

    if (vol_get(c, name, &v, &r) == LVRPC_OK) {
        lvrpc_storage_vol_delete_args a = {*v, 0};
        lvrpc_storage_vol_delete(c, &a);
    }
    lvrpc_reply_free(r);
}

/* Uploads what fd holds (until EOF) into volume name. */
static int upload_fd(lvrpc_client *c, const char *name, int fd, uint64_t total, int sparse)
{
    lvrpc_stream *st = NULL;
    lvrpc_vol_ref *v;
    void *r;
    int rc;

    if ((rc = vol_get(c, name, &v, &r)) != LVRPC_OK)
        return rc;
    lvrpc_storage_vol_upload_args a = {*v, 0, 0, sparse ? VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM : 0};
    rc = lvrpc_storage_vol_upload_stream(c, &a, sparse ? LVRPC_STREAM_SPARSE : 0, &st);
    if (rc == LVRPC_OK)
        rc = lvrpc_stream_send_fd(st, fd, total, NULL, NULL);
    lvrpc_stream_free(st);
    lvrpc_reply_free(r);
    return rc;
}

/* Uploads the file at path into volume name. */
static int upload_file(lvrpc_client *c, const char *name, const char *path, int sparse)
{
    int fd = open(path, O_RDONLY), rc;

    if (fd < 0)
        return LVRPC_ESYS;
    rc = upload_fd(c, name, fd, (uint64_t)file_size(path), sparse);
    close(fd);
    return rc;
}

/* Downloads volume name into a new file at path. */
static int download_file(lvrpc_client *c, const char *name, const char *path, int sparse)
{
    lvrpc_stream *st = NULL;
    lvrpc_vol_ref *v;
    void *r;
    int fd, rc;

    if ((rc = vol_get(c, name, &v, &r)) != LVRPC_OK)
        return rc;
    lvrpc_storage_vol_download_args a = {*v, 0, 0,
                                         sparse ? VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM : 0};
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) {
        lvrpc_reply_free(r);
        return LVRPC_ESYS;
    }
    rc = lvrpc_storage_vol_download_stream(c, &a, sparse ? LVRPC_STREAM_SPARSE : 0, &st);
    if (rc == LVRPC_OK)
        rc = lvrpc_stream_recv_fd(st, fd, 0, NULL, NULL);
    lvrpc_stream_free(st);
    close(fd);
    lvrpc_reply_free(r);
    return rc;
}

/* An ordinary call that must work: the pool's lookup. */
static int ordinary_call(lvrpc_client *c)
{
    lvrpc_storage_pool_lookup_by_name_args pa = {sd.pool};
    lvrpc_storage_pool_lookup_by_name_ret *pr = NULL;
    int rc = lvrpc_storage_pool_lookup_by_name(c, &pa, &pr);

    if (rc == LVRPC_OK && (!pr->pool.name || strcmp(pr->pool.name, sd.pool) != 0))
        rc = LVRPC_EPROTO;
    lvrpc_reply_free(pr);
    return rc;
}

/* ------------------------------------------------------------ storage tests */

static size_t big_size(void)
{
    return (size_t)64 * MIB / scale;
}

static void roundtrip(const char *uri, const char *transport, lvrpc_mode mode,
                      const char *src)
{
    char vol[64], dst[PATH_MAX];
    lvrpc_client *c = NULL;
    uint64_t sf0, sent;
    int64_t t0;

    snprintf(vol, sizeof(vol), "rt-%s-%s", transport, lvrpct_mode_name(mode));
    snprintf(dst, sizeof(dst), "%s/%s.down", work_dir, vol);
    LVRPCT_ASSERT_OK(open_mode(uri, mode, 0, 0, &c));
    if (!c)
        return;
    LVRPCT_ASSERT_OK(vol_create(c, vol, big_size()));
    t0 = now_ms();
    sf0 = mapped();
    LVRPCT_ASSERT_OK(upload_file(c, vol, src, 0));
    sent = mapped() - sf0;
    LVRPCT_ASSERT_OK(download_file(c, vol, dst, 0));
    printf("\n    %s %s: %zu MiB up and down in %lld ms, %llu bytes mapped ", transport,
           lvrpct_mode_name(mode), big_size() / MIB, (long long)(now_ms() - t0),
           (unsigned long long)sent);
    /* plain sockets send the file from mappings, all of it; TLS reads it */
    if (strcmp(transport, "tls") == 0)
        LVRPCT_ASSERT_INT(sent, 0);
    else
        lvrpct_assert(all_mapped(sent, big_size()), __FILE__, __LINE__,
                      "%llu bytes mapped for %zu", (unsigned long long)sent, big_size());
    LVRPCT_ASSERT(files_equal(src, dst) == 1);
    LVRPCT_ASSERT_OK(ordinary_call(c)); /* the handle is still fine */
    vol_delete(c, vol);
    unlink(dst);
    lvrpc_close(c);
}

static void test_roundtrip(void)
{
    char src[PATH_MAX];

    snprintf(src, sizeof(src), "%s/random.src", work_dir);
    LVRPCT_ASSERT(make_random_file(src, big_size(), 1) == 0);
    for (size_t m = 0; m < 2; m++) {
        roundtrip(sd.uri_tcp, "tcp", modes[m], src);
        roundtrip(sd.uri_unix, "unix", modes[m], src);
    }
    if (sd.uri_tls[0]) {
        lvrpc_client *c = NULL;
        int rc = lvrpc_open(sd.uri_tls, NULL, &c);
        lvrpc_close(c);
        if (rc == LVRPC_ENOTSUP) {
            printf("\n    tls: not in this build (%s) ", lvrpc_last_message());
        } else {
            LVRPCT_ASSERT_OK(rc);
            for (size_t m = 0; m < 2 && rc == LVRPC_OK; m++)
                roundtrip(sd.uri_tls, "tls", modes[m], src);
        }
    } else {
        printf("\n    tls: the storage daemon has no TLS listener (openssl or "
               "tests/make-certs.sh missing) ");
    }
    unlink(src);
}

/* A sparse file: data at [0, 1 MiB), [5 MiB, 6 MiB) and the last 64 KiB
 * (scaled), holes elsewhere. */
static int make_sparse_file(const char *path, size_t size)
{
    size_t d1 = MIB, d2_at = size / 2, d2 = MIB / 2, tail = 65536;
    unsigned char *buf = malloc(MIB);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), rc = -1;

    if (!buf || fd < 0)
        goto out;
    fill_random(buf, MIB, 7);
    if (pwrite(fd, buf, d1, 0) != (ssize_t)d1 ||
        pwrite(fd, buf, d2, (off_t)d2_at) != (ssize_t)d2 ||
        pwrite(fd, buf + 4096, tail, (off_t)(size - tail)) != (ssize_t)tail)
        goto out;
    rc = 0;
out:
    if (fd >= 0 && close(fd) < 0)
        rc = -1;
    free(buf);
    return rc;
}

static void test_sparse(void)
{
    size_t size = (size_t)64 * MIB / (scale > 4 ? 4 : scale);
    long long data = (long long)(MIB + MIB / 2 + 65536);
    char src[PATH_MAX], dst[PATH_MAX], volpath[PATH_MAX];

    snprintf(src, sizeof(src), "%s/sparse.src", work_dir);
    LVRPCT_ASSERT(make_sparse_file(src, size) == 0);
    if (allocated(src) > data + (long long)MIB) {
        /* the local file system cannot make holes: nothing to check */
        printf("\n    %s is not sparse on this file system (%lld bytes allocated) ", src,
               allocated(src));
        lvrpct_assert(0, __FILE__, __LINE__, "the test file system makes no holes");
        unlink(src);
        return;
    }
    for (size_t m = 0; m < 2; m++) {
        lvrpc_client *c = NULL;
        char vol[64];
        uint64_t sf0;
        long long sent;

        snprintf(vol, sizeof(vol), "sparse-%s", lvrpct_mode_name(modes[m]));
        snprintf(dst, sizeof(dst), "%s/%s.down", work_dir, vol);
        snprintf(volpath, sizeof(volpath), "%s/%s", sd.pool_dir, vol);
        LVRPCT_ASSERT_OK(open_mode(sd.uri_tcp, modes[m], 0, 0, &c));
        if (!c)
            continue;
        LVRPCT_ASSERT_OK(vol_create(c, vol, size));
        sf0 = mapped();
        LVRPCT_ASSERT_OK(upload_file(c, vol, src, 1));
        /* the data ranges went through mappings, the holes as holes */
        sent = (long long)(mapped() - sf0);
        lvrpct_assert(sent >= data && sent < data + (long long)MIB, __FILE__, __LINE__,
                      "%lld bytes mapped, data %lld", sent, data);
        /* the daemon wrote holes as holes */
        lvrpct_assert(allocated(volpath) >= 0 && allocated(volpath) < data + 4 * (long long)MIB,
                      __FILE__, __LINE__, "volume %s: %lld bytes allocated of %zu (data %lld)",
                      volpath, allocated(volpath), size, data);
        LVRPCT_ASSERT(files_equal(src, volpath) == 1);
        LVRPCT_ASSERT_OK(download_file(c, vol, dst, 1));
        LVRPCT_ASSERT_INT(file_size(dst), (long long)size);
        lvrpct_assert(allocated(dst) >= 0 && allocated(dst) < data + 4 * (long long)MIB,
                      __FILE__, __LINE__, "download %s: %lld bytes allocated of %zu (data %lld)",
                      dst, allocated(dst), size, data);
        LVRPCT_ASSERT(files_equal(src, dst) == 1);
        printf("\n    %s: %zu MiB file, %lld KiB allocated in the volume, %lld KiB downloaded ",
               lvrpct_mode_name(modes[m]), size / MIB, allocated(volpath) / 1024,
               allocated(dst) / 1024);
        /* a download that is not sparse fills the holes with zeros */
        LVRPCT_ASSERT_OK(download_file(c, vol, dst, 0));
        LVRPCT_ASSERT(files_equal(src, dst) == 1);
        LVRPCT_ASSERT(allocated(dst) >= (long long)size - (long long)MIB);
        vol_delete(c, vol);
        unlink(dst);
        lvrpc_close(c);
    }
    unlink(src);
}

/* --- a pipe as the source: the copy path */

typedef struct pipe_feed {
    int fd;             /* the pipe's write end, closed when done */
    const char *path;   /* what to write into it */
    int rc;
} pipe_feed;

static void *feed_pipe(void *arg)
{
    pipe_feed *f = arg;
    unsigned char buf[65536];
    int in = open(f->path, O_RDONLY);
    ssize_t n = -1;

    while (in >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
        if (write(f->fd, buf, (size_t)n) != n) {
            n = -1;
            break;
        }
    f->rc = n == 0 ? 0 : -1;
    if (in >= 0)
        close(in);
    close(f->fd);
    return NULL;
}

static void pipe_upload(const char *uri, const char *transport, lvrpc_mode mode,
                        const char *src, size_t len)
{
    char vol[64], dst[PATH_MAX];
    lvrpc_client *c = NULL;
    pthread_t th;
    pipe_feed f = {-1, src, -1};
    uint64_t sf0;
    int p[2];

    snprintf(vol, sizeof(vol), "pipe-%s-%s", transport, lvrpct_mode_name(mode));
    snprintf(dst, sizeof(dst), "%s/%s.down", work_dir, vol);
    LVRPCT_ASSERT_OK(open_mode(uri, mode, 0, 0, &c));
    if (!c || pipe(p) < 0) {
        lvrpc_close(c);
        return;
    }
    LVRPCT_ASSERT_OK(vol_create(c, vol, len));
    f.fd = p[1];
    LVRPCT_ASSERT(pthread_create(&th, NULL, feed_pipe, &f) == 0);
    sf0 = mapped();
    LVRPCT_ASSERT_OK(upload_fd(c, vol, p[0], 0, 0));
    LVRPCT_ASSERT_INT(mapped() - sf0, 0);
    close(p[0]); /* a writer still blocked in write() gets EPIPE */
    pthread_join(th, NULL);
    LVRPCT_ASSERT_INT(f.rc, 0);
    LVRPCT_ASSERT_OK(download_file(c, vol, dst, 0));
    LVRPCT_ASSERT(files_equal(src, dst) == 1);
    vol_delete(c, vol);
    unlink(dst);
    lvrpc_close(c);
}

/* The source is a pipe: no mapping, the data read and copied, intact. */
static void test_pipe_source(void)
{
    size_t len = (size_t)16 * MIB / scale;
    char src[PATH_MAX];

    snprintf(src, sizeof(src), "%s/pipe.src", work_dir);
    LVRPCT_ASSERT(make_random_file(src, len, 3) == 0);
    for (size_t m = 0; m < 2; m++) {
        pipe_upload(sd.uri_tcp, "tcp", modes[m], src, len);
        pipe_upload(sd.uri_unix, "unix", modes[m], src, len);
    }
    unlink(src);
}

/* --- 4 streams and 16 threads of calls on one Shared connection */

typedef struct xfer_job {
    lvrpc_client *c;
    lvrpct_ctx ctx;
    char vol[32];
    unsigned char *data; /* upload: what to send; download: what to expect */
    size_t len;
    int upload;
} xfer_job;

static void *xfer_worker(void *arg)
{
    xfer_job *j = arg;
    lvrpct_ctx *t = &j->ctx;
    lvrpc_stream *st = NULL;
    unsigned char *got = NULL;
    lvrpc_vol_ref *v = NULL;
    void *r = NULL;

    T_OK(vol_get(j->c, j->vol, &v, &r));
    if (j->upload) {
        lvrpc_storage_vol_upload_args a = {*v, 0, 0, 0};
        T_OK(lvrpc_storage_vol_upload_stream(j->c, &a, 0, &st));
        for (size_t off = 0; off < j->len; off += 100000) /* odd sizes on purpose */
            T_OK(lvrpc_stream_send(st, j->data + off, j->len - off < 100000 ? j->len - off
                                                                            : 100000));
        T_OK(lvrpc_stream_finish(st));
    } else {
        lvrpc_storage_vol_download_args a = {*v, 0, 0, 0};
        size_t have = 0, n;
        T_CHECK((got = malloc(j->len + 1)) != NULL);
        T_OK(lvrpc_storage_vol_download_stream(j->c, &a, 0, &st));
        do {
            T_OK(lvrpc_stream_recv(st, got + have, j->len + 1 - have, &n, NULL));
            have += n;
        } while (n > 0 && have <= j->len);
        T_INTEQ(have, j->len);
        T_CHECKF(memcmp(got, j->data, j->len) == 0, "%s: downloaded data differs", j->vol);
        T_OK(lvrpc_stream_finish(st));
    }
out:
    lvrpc_stream_free(st);
    lvrpc_reply_free(r);
    free(got);
    return NULL;
}

typedef struct call_job {
    lvrpc_client *c;
    lvrpct_ctx ctx;
    volatile int *stop;
    unsigned calls;
} call_job;

static void *call_worker(void *arg)
{
    call_job *j = arg;
    lvrpct_ctx *t = &j->ctx;

    while (!__atomic_load_n(j->stop, __ATOMIC_ACQUIRE) || j->calls < 20) {
        lvrpc_connect_get_lib_version_ret *lv = NULL;
        T_OK(ordinary_call(j->c));
        T_OK(lvrpc_connect_get_lib_version(j->c, &lv));
        T_CHECK(lv->lib_ver > 0);
        lvrpc_reply_free(lv);
        j->calls += 2;
    }
out:
    return NULL;
}

static void test_concurrency(void)
{
    enum { NX = 4, NC = 16 };
    size_t len = (size_t)16 * MIB / scale;
    static xfer_job xj[NX];
    static call_job cj[NC];
    pthread_t xt[NX], ct[NC];
    volatile int stop = 0;
    unsigned total = 0;
    lvrpc_client *c = NULL;
    lvrpc_stats stats;

    LVRPCT_ASSERT_OK(open_mode(sd.uri_tcp, LVRPC_MODE_SHARED, 1, 0, &c));
    if (!c)
        return;
    for (int i = 0; i < NX; i++) {
        xfer_job *j = &xj[i];
        memset(j, 0, sizeof(*j));
        j->c = c;
        j->len = len;
        j->upload = i % 2 == 0;
        snprintf(j->vol, sizeof(j->vol), "conc-%d", i);
        lvrpct_ctx_init(&j->ctx, j->vol, i, 0);
        j->data = malloc(len);
        LVRPCT_ASSERT(j->data != NULL);
        if (!j->data)
            goto out;
        fill_random(j->data, len, 100 + (uint64_t)i);
        LVRPCT_ASSERT_OK(vol_create(c, j->vol, len));
        if (!j->upload) { /* the downloads' volumes get their data first */
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s.src", work_dir, j->vol);
            LVRPCT_ASSERT(write_file(path, j->data, len) == 0);
            LVRPCT_ASSERT_OK(upload_file(c, j->vol, path, 0));
            unlink(path);
        }
    }
    for (int i = 0; i < NC; i++) {
        memset(&cj[i], 0, sizeof(cj[i]));
        cj[i].c = c;
        cj[i].stop = &stop;
        lvrpct_ctx_init(&cj[i].ctx, "calls", i, 0);
        pthread_create(&ct[i], NULL, call_worker, &cj[i]);
    }
    for (int i = 0; i < NX; i++)
        pthread_create(&xt[i], NULL, xfer_worker, &xj[i]);
    for (int i = 0; i < NX; i++) {
        pthread_join(xt[i], NULL);
        lvrpct_ctx_report(&xj[i].ctx, xj[i].vol);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < NC; i++) {
        pthread_join(ct[i], NULL);
        lvrpct_ctx_report(&cj[i].ctx, "ordinary calls");
        total += cj[i].calls;
    }
    /* the uploads landed intact */
    for (int i = 0; i < NX; i += 2) {
        char path[PATH_MAX], mine[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", sd.pool_dir, xj[i].vol);
        snprintf(mine, sizeof(mine), "%s/%s.want", work_dir, xj[i].vol);
        LVRPCT_ASSERT(write_file(mine, xj[i].data, len) == 0);
        LVRPCT_ASSERT(files_equal(mine, path) == 1);
        unlink(mine);
    }
    lvrpc_get_stats(c, &stats);
    LVRPCT_ASSERT_INT(stats.sockets_opened, 1);
    printf("\n    4 streams of %zu MiB with %u calls from 16 threads on 1 connection ",
           len / MIB, total);
out:
    for (int i = 0; i < NX; i++) {
        vol_delete(c, xj[i].vol);
        free(xj[i].data);
        xj[i].data = NULL;
    }
    lvrpc_close(c);
}

/* --- a consumer that does not read */

static void test_slow_consumer(void)
{
    size_t len = (size_t)48 * MIB; /* not scaled: unbounded growth must show */
    char src[PATH_MAX];
    unsigned char *buf = NULL, *want = NULL;
    lvrpc_client *c = NULL;
    lvrpc_stream *st = NULL;
    lvrpc_vol_ref *v = NULL;
    void *r = NULL;
    long rss0, rss1;
    size_t have = 0, n = 0;
    int under_tool = scale > 1;

    snprintf(src, sizeof(src), "%s/slow.src", work_dir);
    LVRPCT_ASSERT_OK(open_mode(sd.uri_tcp, LVRPC_MODE_SHARED, 2, 5000, &c));
    if (!c)
        return;
    want = malloc(len);
    buf = malloc(LVRPC_STREAM_CHUNK);
    LVRPCT_ASSERT(want && buf);
    if (!want || !buf)
        goto out;
    fill_random(want, len, 42);
    LVRPCT_ASSERT(write_file(src, want, len) == 0);
    LVRPCT_ASSERT_OK(vol_create(c, "slow", len));
    LVRPCT_ASSERT_OK(upload_file(c, "slow", src, 0));
    unlink(src);
    LVRPCT_ASSERT_OK(vol_get(c, "slow", &v, &r));
    if (!v)
        goto out;
    lvrpc_storage_vol_download_args a = {*v, 0, 0, 0};
    rss0 = rss_kib();
    LVRPCT_ASSERT_OK(lvrpc_storage_vol_download_stream(c, &a, 0, &st));
    if (!st)
        goto out;
    LVRPCT_ASSERT_OK(lvrpc_stream_recv(st, buf, LVRPC_STREAM_CHUNK, &n, NULL));
    LVRPCT_ASSERT(n > 0 && memcmp(buf, want, n) == 0);
    have = n;
    /* Not reading: the reader fills the queue, then waits. */
    usleep(1500 * 1000);
    {
        /* Calls go to the pool's other connection meanwhile. */
        int64_t t0 = now_ms();
        for (int i = 0; i < 20; i++)
            LVRPCT_ASSERT_OK(ordinary_call(c));
        lvrpct_assert(now_ms() - t0 < 2000, __FILE__, __LINE__,
                      "20 calls beside a stalled stream took %lld ms",
                      (long long)(now_ms() - t0));
    }
    usleep(500 * 1000);
    rss1 = rss_kib();
    printf("\n    RSS grew by %ld KiB while a %zu MiB download waited (queue max %u KiB) ",
           rss1 - rss0, len / MIB, LVRPC_STREAM_QUEUE_MAX / 1024);
    if (!under_tool) /* sanitizers and valgrind change what RSS means */
        lvrpct_assert(rss1 - rss0 < (long)(LVRPC_STREAM_QUEUE_MAX / 1024) + 12 * 1024,
                      __FILE__, __LINE__, "RSS grew by %ld KiB with an unread %zu MiB stream",
                      rss1 - rss0, len / MIB);
    /* Everything arrives intact once the consumer reads again. */
    for (;;) {
        if (lvrpc_stream_recv(st, buf, LVRPC_STREAM_CHUNK, &n, NULL) != LVRPC_OK) {
            LVRPCT_ASSERT_OK(lvrpc_stream_recv(st, buf, LVRPC_STREAM_CHUNK, &n, NULL));
            break;
        }
        if (n == 0)
            break;
        if (have + n > len || memcmp(buf, want + have, n) != 0) {
            lvrpct_assert(0, __FILE__, __LINE__, "data differs at %zu", have);
            break;
        }
        have += n;
    }
    LVRPCT_ASSERT_INT(have, len);
    LVRPCT_ASSERT_OK(lvrpc_stream_finish(st));
out:
    lvrpc_stream_free(st);
    lvrpc_reply_free(r);
    vol_delete(c, "slow");
    lvrpc_close(c);
    free(buf);
    free(want);
}

/* --- aborts and the daemon's errors */

static void test_abort(void)
{
    char src[PATH_MAX];
    size_t len = (size_t)32 * MIB / scale;

    snprintf(src, sizeof(src), "%s/abort.src", work_dir);
    LVRPCT_ASSERT(make_random_file(src, len, 3) == 0);
    for (size_t m = 0; m < 2; m++) {
        lvrpc_client *c = NULL;
        lvrpc_stream *st = NULL;
        lvrpc_vol_ref *v = NULL;
        void *r = NULL;
        unsigned char buf[65536];
        size_t n = 0;
        int64_t t0;
        lvrpc_stats s0, s1;

        LVRPCT_ASSERT_OK(open_mode(sd.uri_tcp, modes[m], 0, 0, &c));
        if (!c)
            continue;
        LVRPCT_ASSERT_OK(vol_create(c, "abort", len));
        LVRPCT_ASSERT_OK(upload_file(c, "abort", src, 0));
        LVRPCT_ASSERT_OK(vol_get(c, "abort", &v, &r));
        lvrpc_get_stats(c, &s0);
        if (v) {
            /* download: read a little, then abort */
            lvrpc_storage_vol_download_args da = {*v, 0, 0, 0};
            LVRPCT_ASSERT_OK(lvrpc_storage_vol_download_stream(c, &da, 0, &st));
            if (st) {
                LVRPCT_ASSERT_OK(lvrpc_stream_recv(st, buf, sizeof(buf), &n, NULL));
                LVRPCT_ASSERT(n > 0);
                t0 = now_ms();
                LVRPCT_ASSERT_OK(lvrpc_stream_abort(st));
                /* answered by the daemon, not given up on after 2 s */
                lvrpct_assert(now_ms() - t0 < 1500, __FILE__, __LINE__,
                              "download abort took %lld ms", (long long)(now_ms() - t0));
                LVRPCT_ASSERT_RC(lvrpc_stream_recv(st, buf, sizeof(buf), &n, NULL),
                                 LVRPC_ECLOSED);
                lvrpc_stream_free(st);
                st = NULL;
            }
            LVRPCT_ASSERT_OK(ordinary_call(c));
            /* upload: send a little, then abort */
            lvrpc_storage_vol_upload_args ua = {*v, 0, 0, 0};
            LVRPCT_ASSERT_OK(lvrpc_storage_vol_upload_stream(c, &ua, 0, &st));
            if (st) {
                memset(buf, 0x5a, sizeof(buf));
                LVRPCT_ASSERT_OK(lvrpc_stream_send(st, buf, sizeof(buf)));
                t0 = now_ms();
                LVRPCT_ASSERT_OK(lvrpc_stream_abort(st));
                lvrpct_assert(now_ms() - t0 < 1500, __FILE__, __LINE__,
                              "upload abort took %lld ms", (long long)(now_ms() - t0));
                LVRPCT_ASSERT_RC(lvrpc_stream_send(st, buf, 1), LVRPC_ECLOSED);
                lvrpc_stream_free(st);
                st = NULL;
            }
            LVRPCT_ASSERT_OK(ordinary_call(c));
            /* lvrpc_stream_free of an open stream aborts it too */
            LVRPCT_ASSERT_OK(lvrpc_storage_vol_download_stream(c, &da, 0, &st));
            lvrpc_stream_free(st);
            st = NULL;
            LVRPCT_ASSERT_OK(ordinary_call(c));
        }
        lvrpc_get_stats(c, &s1);
        if (modes[m] == LVRPC_MODE_SHARED) /* no reconnection was needed */
            LVRPCT_ASSERT_INT(s1.sockets_opened, s0.sockets_opened);
        else /* the aborted streams' sockets were clean and reused */
            LVRPCT_ASSERT(s1.sockets_opened <= s0.sockets_opened + 1);
        lvrpc_reply_free(r);
        vol_delete(c, "abort");
        lvrpc_close(c);
    }
    unlink(src);
}

static void test_daemon_error(void)
{
    char src[PATH_MAX];

    snprintf(src, sizeof(src), "%s/error.src", work_dir);
    LVRPCT_ASSERT(make_random_file(src, 3 * MIB, 4) == 0);
    for (size_t m = 0; m < 2; m++) {
        lvrpc_client *c = NULL;
        lvrpc_stream *st = NULL;
        lvrpc_vol_ref *v = NULL;
        void *r = NULL;
        lvrpc_error e;
        int fd, rc;

        LVRPCT_ASSERT_OK(open_mode(sd.uri_tcp, modes[m], 0, 0, &c));
        if (!c)
            continue;
        LVRPCT_ASSERT_OK(vol_create(c, "error", 8 * MIB));
        LVRPCT_ASSERT_OK(vol_get(c, "error", &v, &r));
        if (v) {
            /* 1 MiB asked for, 3 MiB sent: the daemon ends the stream with
             * an error, which the finish reports */
            lvrpc_storage_vol_upload_args ua = {*v, 0, MIB, 0};
            fd = open(src, O_RDONLY);
            LVRPCT_ASSERT_OK(lvrpc_storage_vol_upload_stream(c, &ua, 0, &st));
            rc = st ? lvrpc_stream_send_fd(st, fd, 3 * MIB, NULL, NULL) : LVRPC_EINVAL;
            lvrpc_last_error(&e);
            LVRPCT_ASSERT_RC(rc, LVRPC_EREMOTE);
            lvrpct_assert(e.remote_code != 0 && e.message[0], __FILE__, __LINE__,
                          "libvirt's error: code %d, \"%s\"", e.remote_code, e.message);
            printf("\n    %s: \"%s\" (code %d) ", lvrpct_mode_name(modes[m]), e.message,
                   e.remote_code);
            lvrpc_stream_free(st);
            st = NULL;
            close(fd);
            LVRPCT_ASSERT_OK(ordinary_call(c));
            /* an error at the opening call (the volume is gone): no stream */
            lvrpc_storage_vol_delete_args del = {*v, 0};
            LVRPCT_ASSERT_OK(lvrpc_storage_vol_delete(c, &del));
            lvrpc_storage_vol_download_args da = {*v, 0, 0, 0};
            rc = lvrpc_storage_vol_download_stream(c, &da, 0, &st);
            LVRPCT_ASSERT_RC(rc, LVRPC_EREMOTE);
            LVRPCT_ASSERT(st == NULL);
            lvrpc_stream_free(st);
            st = NULL;
            LVRPCT_ASSERT_OK(ordinary_call(c));
        }
        lvrpc_reply_free(r);
        vol_delete(c, "error");
        lvrpc_close(c);
    }
    unlink(src);
}

static int storage_init(void)
{
    if (storage_start(&sd) != 0)
        return -1;
    snprintf(work_dir, sizeof(work_dir), "%s/local", sd.dir);
    if (mkdir(work_dir, 0755) != 0) {
        lvrpct_hard_error("mkdir %s: %s", work_dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int storage_cleanup(void)
{
    storage_stop(&sd);
    return 0;
}

/* ------------------------------------------------------------ test driver */

static lvrpct_daemon td;

static int test_driver_init(void)
{
    return lvrpct_daemon_start(&td) == 0 ? 0 : -1;
}

static int test_driver_cleanup(void)
{
    lvrpct_daemon_stop(&td);
    return 0;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL;
    long n;

    *len = 0;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (p = malloc((size_t)n + 1)) && fread(p, 1, (size_t)n, f) == (size_t)n)
        *len = (size_t)n;
    fclose(f);
    return p;
}

static void test_screenshot(void)
{
    char ref[PATH_MAX], cmd[PATH_MAX * 2];
    unsigned char *want;
    size_t want_len;

    /* what libvirt.so's client saves */
    snprintf(ref, sizeof(ref), "%s/virsh-shot", td.dir);
    snprintf(cmd, sizeof(cmd), "virsh -q -c '%s' screenshot test '%s' >/dev/null", td.uri_tcp,
             ref);
    if (system(cmd) != 0) {
        lvrpct_hard_error("`%s` failed: virsh (libvirt-clients) is needed to compare with", cmd);
        return;
    }
    want = read_all(ref, &want_len);
    LVRPCT_ASSERT(want && want_len > 0);
    for (size_t m = 0; m < 2 && want; m++) {
        lvrpc_client *c = NULL;
        lvrpc_domain_lookup_by_name_args la = {"test"};
        lvrpc_domain_lookup_by_name_ret *d = NULL;
        lvrpc_domain_screenshot_ret *mime = NULL;
        lvrpc_stream *st = NULL;
        unsigned char *got = malloc(want_len + 65536);
        size_t have = 0;

        LVRPCT_ASSERT_OK(lvrpct_open(td.uri_tcp, modes[m], &c));
        if (c && lvrpc_domain_lookup_by_name(c, &la, &d) == LVRPC_OK) {
            lvrpc_domain_screenshot_args a = {d->dom, 0, 0};
            for (int round = 0; round < 3; round++) { /* the socket is reused */
                LVRPCT_ASSERT_OK(lvrpc_domain_screenshot_stream(c, &a, &mime, &st));
                if (!st)
                    break;
                LVRPCT_ASSERT(mime && mime->mime && strcmp(*mime->mime, "image/png") == 0);
                LVRPCT_ASSERT_OK(recv_all(st, got, want_len + 65536, &have));
                LVRPCT_ASSERT_OK(lvrpc_stream_finish(st));
                LVRPCT_ASSERT_INT(have, want_len);
                LVRPCT_ASSERT(have == want_len && memcmp(got, want, have) == 0);
                lvrpc_stream_free(st);
                lvrpc_reply_free(mime);
                st = NULL;
                mime = NULL;
            }
            lvrpc_stats s;
            lvrpc_get_stats(c, &s);
            LVRPCT_ASSERT_INT(s.sockets_opened, 1);
        }
        lvrpc_reply_free(d);
        lvrpc_close(c);
        free(got);
    }
    free(want);
}

/* ------------------------------------------------------------ fake server */

/* A fake server on TCP and a UNIX socket. */
static fake_server *start_fake(void)
{
    fake_server *s = NULL;
    fake_config cfg = {0};

    cfg.unix_socket = 1;
    if (fake_server_start(&cfg, &s) != 0)
        lvrpct_hard_error("cannot start the fake server");
    return s;
}

static lvrpc_client *open_fake_uri(fake_server *s, int use_unix, lvrpc_mode mode,
                                   unsigned timeout_ms)
{
    char uri[256];
    lvrpc_client *c = NULL;

    fake_server_uri(s, use_unix, uri, sizeof(uri));
    LVRPCT_ASSERT_OK(open_mode(uri, mode, 0, timeout_ms, &c));
    return c;
}

static lvrpc_client *open_fake(fake_server *s, lvrpc_mode mode, unsigned timeout_ms)
{
    return open_fake_uri(s, 0, mode, timeout_ms);
}

static lvrpc_domain_ref fake_dom = {"dom-0", {0}, 1};

static int open_console(lvrpc_client *c, lvrpc_stream **st)
{
    lvrpc_domain_open_console_args a = {fake_dom, NULL, 0};
    return lvrpc_domain_open_console_stream(c, &a, st);
}

static int open_download(lvrpc_client *c, lvrpc_stream **st)
{
    lvrpc_storage_vol_download_args a = {{"pool", "vol", "key"}, 0, 0, 0};
    return lvrpc_storage_vol_download_stream(c, &a, 0, st);
}

static int open_upload(lvrpc_client *c, unsigned flags, lvrpc_stream **st)
{
    lvrpc_storage_vol_upload_args a = {{"pool", "vol", "key"}, 0, 0,
                                       flags ? VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM : 0};
    return lvrpc_storage_vol_upload_stream(c, &a, flags, st);
}

/* An ordinary call on the fake. */
static int lib_version(lvrpc_client *c)
{
    lvrpc_connect_get_lib_version_ret *lv = NULL;
    int rc = lvrpc_connect_get_lib_version(c, &lv);

    if (rc == LVRPC_OK && lv->lib_ver != FAKE_LIB_VERSION)
        rc = LVRPC_EPROTO;
    lvrpc_reply_free(lv);
    return rc;
}

/* --- console */

typedef struct echo_job {
    lvrpc_stream *st;
    const unsigned char *want;
    size_t len;
    size_t got;
    int rc;
    int mismatch;
} echo_job;

static void *echo_receiver(void *arg)
{
    echo_job *j = arg;
    unsigned char buf[70000];

    while (j->got < j->len) {
        size_t n = 0;
        j->rc = lvrpc_stream_recv(j->st, buf, sizeof(buf), &n, NULL);
        if (j->rc != LVRPC_OK || n == 0)
            break;
        if (j->got + n > j->len || memcmp(buf, j->want + j->got, n) != 0)
            j->mismatch = 1;
        j->got += n;
    }
    return NULL;
}

static void test_console_echo(void)
{
    fake_server *s = start_fake();
    size_t len = (size_t)2 * MIB / scale, sizes[] = {1, 1000, 300000, 4096};
    unsigned char *data = malloc(len);

    if (!s || !data)
        goto out;
    fill_random(data, len, 9);
    for (size_t m = 0; m < 2; m++) {
        lvrpc_client *c = open_fake(s, modes[m], 10000);
        lvrpc_stream *st = NULL;
        echo_job j = {0};
        pthread_t th;
        size_t off = 0, k = 0;
        fake_stats fs;

        if (!c)
            continue;
        LVRPCT_ASSERT_OK(open_console(c, &st));
        if (st) {
            j.st = st;
            j.want = data;
            j.len = len;
            /* one thread sends while another receives */
            pthread_create(&th, NULL, echo_receiver, &j);
            while (off < len) {
                size_t n = sizes[k++ % 4];
                if (n > len - off)
                    n = len - off;
                if (lvrpc_stream_send(st, data + off, n) != LVRPC_OK) {
                    LVRPCT_ASSERT_OK(lvrpc_stream_send(st, data + off, n));
                    break;
                }
                off += n;
            }
            pthread_join(th, NULL);
            LVRPCT_ASSERT_OK(j.rc);
            LVRPCT_ASSERT_INT(j.got, len);
            LVRPCT_ASSERT(!j.mismatch);
            LVRPCT_ASSERT_OK(lvrpc_stream_finish(st));
            lvrpc_stream_free(st);
        }
        fake_server_get_stats(s, &fs);
        LVRPCT_ASSERT_INT(fs.stream_finishes, m + 1);
        lvrpc_close(c);
    }
out:
    free(data);
    fake_server_stop(s);
}

static void test_console_idle_and_hangup(void)
{
    fake_server *s = start_fake();

    for (size_t m = 0; s && m < 2; m++) {
        lvrpc_client *c = open_fake(s, modes[m], 10000);
        lvrpc_stream *st = NULL;
        unsigned char buf[64];
        size_t n = 0;
        int64_t t0;

        if (!c)
            continue;
        /* idle: recv times out, the stream goes on */
        fake_server_set_stream(s, FAKE_STREAM_NORMAL, 0, 0);
        LVRPCT_ASSERT_OK(open_console(c, &st));
        if (st) {
            lvrpc_set_timeout(c, 200);
            t0 = now_ms();
            LVRPCT_ASSERT_RC(lvrpc_stream_recv(st, buf, sizeof(buf), &n, NULL), LVRPC_ETIMEDOUT);
            LVRPCT_ASSERT(now_ms() - t0 >= 150 && now_ms() - t0 < 2000);
            LVRPCT_ASSERT_RC(lvrpc_stream_recv(st, buf, sizeof(buf), &n, NULL), LVRPC_ETIMEDOUT);
            lvrpc_set_timeout(c, 10000);
            LVRPCT_ASSERT_OK(lvrpc_stream_send(st, "ping\r\n", 6));
            LVRPCT_ASSERT_OK(lvrpc_stream_recv(st, buf, sizeof(buf), &n, NULL));
            LVRPCT_ASSERT(n == 6 && memcmp(buf, "ping\r\n", 6) == 0);
            LVRPCT_ASSERT_OK(lvrpc_stream_finish(st));
            lvrpc_stream_free(st);
            st = NULL;
        }
        /* the server hangs up after 10 bytes: the end, cleanly */
        fake_server_set_stream(s, FAKE_STREAM_END, 10, 0);
        LVRPCT_ASSERT_OK(open_console(c, &st));
        if (st) {
            size_t have = 0;
            LVRPCT_ASSERT_OK(lvrpc_stream_send(st, "0123456789abcdef", 16));
            LVRPCT_ASSERT_OK(recv_all(st, buf, sizeof(buf), &have));
            LVRPCT_ASSERT(have == 10 && memcmp(buf, "0123456789", 10) == 0);
            LVRPCT_ASSERT_OK(lvrpc_stream_recv(st, buf, sizeof(buf), &n, NULL));
            LVRPCT_ASSERT_INT(n, 0); /* still the end */
            LVRPCT_ASSERT_OK(lvrpc_stream_finish(st));
            lvrpc_stream_free(st);
        }
        fake_server_set_stream(s, FAKE_STREAM_NORMAL, 0, 0);
        lvrpc_close(c);
    }
    fake_server_stop(s);
}

/* --- faults */

/* A download or upload that the server ends with STREAM/ERROR. */
static void test_server_error(void)
{
    fake_server *s = start_fake();
    size_t cap = 4 * MIB;
    unsigned char *buf = malloc(cap);

    for (size_t m = 0; s && buf && m < 2; m++) {
        lvrpc_client *c = open_fake(s, modes[m], 10000);
        lvrpc_stream *st = NULL;
        lvrpc_error e;
        size_t have = 0;
        int rc;

        if (!c)
            continue;
        fake_server_set_stream(s, FAKE_STREAM_ERROR, 600000, 3 * MIB);
        LVRPCT_ASSERT_OK(open_download(c, &st));
        if (st) {
            rc = recv_all(st, buf, cap, &have);
            lvrpc_last_error(&e);
            LVRPCT_ASSERT_RC(rc, LVRPC_EREMOTE);
            LVRPCT_ASSERT_INT(e.remote_code, FAKE_STREAM_ERROR_CODE);
            LVRPCT_ASSERT_INT(e.remote_domain, FAKE_STREAM_ERROR_DOMAIN);
            LVRPCT_ASSERT_STR(e.message, FAKE_STREAM_ERROR_MESSAGE);
            LVRPCT_ASSERT_INT(have, 600000); /* everything before the error */
            for (size_t i = 0; i < have; i++)
                if (buf[i] != fake_stream_byte(i)) {
                    lvrpct_assert(0, __FILE__, __LINE__, "byte %zu differs", i);
                    break;
                }
            LVRPCT_ASSERT_RC(lvrpc_stream_finish(st), LVRPC_ECLOSED);
            lvrpc_stream_free(st);
            st = NULL;
        }
        /* the same through the fd pump: an error, and the file says so */
        {
            char path[] = "/tmp/lvrpct-dl-XXXXXX";
            int fd = mkstemp(path);
            LVRPCT_ASSERT_OK(open_download(c, &st));
            if (st && fd >= 0) {
                rc = lvrpc_stream_recv_fd(st, fd, 3 * MIB, NULL, NULL);
                LVRPCT_ASSERT_RC(rc, LVRPC_EREMOTE);
            }
            lvrpc_stream_free(st);
            st = NULL;
            if (fd >= 0) {
                close(fd);
                unlink(path);
            }
        }
        LVRPCT_ASSERT_OK(lib_version(c));
        /* upload: the error arrives while we send; finish reports it */
        fake_server_set_stream(s, FAKE_STREAM_ERROR, MIB, 0);
        LVRPCT_ASSERT_OK(open_upload(c, 0, &st));
        if (st) {
            rc = LVRPC_OK;
            for (size_t off = 0; off < 4 * MIB && rc == LVRPC_OK; off += 65536) {
                for (size_t i = 0; i < 65536; i++)
                    buf[i] = fake_stream_byte(off + i);
                rc = lvrpc_stream_send(st, buf, 65536);
            }
            if (rc == LVRPC_OK)
                rc = lvrpc_stream_finish(st);
            lvrpc_last_error(&e);
            LVRPCT_ASSERT_RC(rc, LVRPC_EREMOTE);
            LVRPCT_ASSERT_STR(e.message, FAKE_STREAM_ERROR_MESSAGE);
            lvrpc_stream_free(st);
            st = NULL;
        }
        fake_server_set_stream(s, FAKE_STREAM_NORMAL, 0, 0);
        LVRPCT_ASSERT_OK(open_upload(c, 0, &st)); /* the handle goes on */
        if (st) {
            fake_stats f0, f1;
            fake_server_get_stats(s, &f0);
            for (size_t i = 0; i < 100000; i++)
                buf[i] = fake_stream_byte(i);
            LVRPCT_ASSERT_OK(lvrpc_stream_send(st, buf, 100000));
            LVRPCT_ASSERT_OK(lvrpc_stream_finish(st));
            lvrpc_stream_free(st);
            fake_server_get_stats(s, &f1);
            LVRPCT_ASSERT_INT(f1.stream_rx_bytes - f0.stream_rx_bytes, 100000);
            LVRPCT_ASSERT_INT(f1.stream_rx_mismatch, 0);
        }
        lvrpc_close(c);
    }
    free(buf);
    fake_server_stop(s);
}

/* The connection closes between packets, or in the middle of one: an
 * error, never the end of the stream. */
static void test_truncated(void)
{
    fake_server *s = start_fake();
    size_t cap = 4 * MIB;
    unsigned char *buf = malloc(cap);
    static const fake_stream_fault faults[] = {FAKE_STREAM_CLOSE, FAKE_STREAM_CUT};

    for (size_t m = 0; s && buf && m < 2; m++) {
        for (size_t f = 0; f < 2; f++) {
            lvrpc_client *c = open_fake(s, modes[m], 10000);
            lvrpc_stream *st = NULL;
            size_t have = 0;
            int rc;

            if (!c)
                continue;
            fake_server_set_stream(s, faults[f], 2 * FAKE_STREAM_CHUNK, 3 * MIB);
            LVRPCT_ASSERT_OK(open_download(c, &st));
            if (st) {
                rc = recv_all(st, buf, cap, &have);
                lvrpct_assert(rc == LVRPC_ECLOSED || rc == LVRPC_EPROTO, __FILE__, __LINE__,
                              "%s, %s: truncated stream -> %d %s: %s (%zu bytes)",
                              lvrpct_mode_name(modes[m]), f ? "cut" : "close", rc,
                              lvrpc_strerror(rc), lvrpc_last_message(), have);
                LVRPCT_ASSERT_INT(have, 2 * FAKE_STREAM_CHUNK);
                lvrpc_stream_free(st);
                st = NULL;
            }
            /* the fd pump too */
            {
                char path[] = "/tmp/lvrpct-tr-XXXXXX";
                int fd = mkstemp(path);
                LVRPCT_ASSERT_OK(open_download(c, &st));
                if (st && fd >= 0)
                    LVRPCT_ASSERT(lvrpc_stream_recv_fd(st, fd, 0, NULL, NULL) != LVRPC_OK);
                lvrpc_stream_free(st);
                if (fd >= 0) {
                    close(fd);
                    unlink(path);
                }
            }
            fake_server_set_stream(s, FAKE_STREAM_NORMAL, 0, 0);
            /* Direct: a new socket; Shared: the connection comes back */
            LVRPCT_ASSERT_OK(lib_version(c));
            lvrpc_close(c);
        }
    }
    fake_server_set_stream(s, FAKE_STREAM_NORMAL, 0, 0);
    free(buf);
    fake_server_stop(s);
}

static void test_hole_not_sparse(void)
{
    fake_server *s = start_fake();
    unsigned char buf[4096];

    for (size_t m = 0; s && m < 2; m++) {
        lvrpc_client *c = open_fake(s, modes[m], 10000);
        lvrpc_stream *st = NULL;
        size_t n;
        int64_t hole;

        if (!c)
            continue;
        fake_server_set_stream(s, FAKE_STREAM_HOLE, 0, 100000);
        LVRPCT_ASSERT_OK(open_download(c, &st));
        if (st)
            LVRPCT_ASSERT_RC(lvrpc_stream_recv(st, buf, sizeof(buf), &n, &hole), LVRPC_EPROTO);
        lvrpc_stream_free(st);
        /* a sparse upload sends holes as holes */
        fake_server_set_stream(s, FAKE_STREAM_NORMAL, 0, 0);
        {
            fake_stats f0, f1;
            fake_server_get_stats(s, &f0);
            LVRPCT_ASSERT_OK(open_upload(c, LVRPC_STREAM_SPARSE, &st));
            if (st) {
                for (size_t i = 0; i < sizeof(buf); i++)
                    buf[i] = fake_stream_byte(i);
                LVRPCT_ASSERT_OK(lvrpc_stream_send(st, buf, sizeof(buf)));
                LVRPCT_ASSERT_OK(lvrpc_stream_send_hole(st, 123456789));
                LVRPCT_ASSERT_OK(lvrpc_stream_finish(st));
                lvrpc_stream_free(st);
            }
            fake_server_get_stats(s, &f1);
            LVRPCT_ASSERT_INT(f1.stream_rx_holes - f0.stream_rx_holes, 123456789);
            LVRPCT_ASSERT_INT(f1.stream_rx_bytes - f0.stream_rx_bytes, sizeof(buf));
        }
        /* and a stream that is not sparse refuses them */
        LVRPCT_ASSERT_OK(open_upload(c, 0, &st));
        if (st)
            LVRPCT_ASSERT_RC(lvrpc_stream_send_hole(st, 4096), LVRPC_EINVAL);
        lvrpc_stream_free(st);
        lvrpc_close(c);
    }
    fake_server_stop(s);
}

/* libvirtd may send a new stream's first data before its reply to the
 * opening call: that data belongs to the stream and must not be lost (a
 * screenshot came back empty, and a download short, when it was dropped).
 * Some packets early, all of them early, and more than the library keeps
 * before a reply (an error, never a short stream). */
static void test_data_before_reply(void)
{
    fake_server *s = start_fake();
    size_t cap = 3 * MIB;
    unsigned char *buf = malloc(cap);

    for (size_t m = 0; s && buf && m < 2; m++) {
        const uint64_t sizes[2][2] = {{MIB, 3 * FAKE_STREAM_CHUNK}, {100000, 100000}};
        lvrpc_client *c = open_fake(s, modes[m], 10000);

        for (int k = 0; c && k < 2; k++) {
            lvrpc_stream *st = NULL;
            size_t have = 0, bad = 0;
            fake_server_set_stream(s, FAKE_STREAM_EARLY, sizes[k][1], sizes[k][0]);
            LVRPCT_ASSERT_OK(open_download(c, &st));
            if (!st)
                continue;
            LVRPCT_ASSERT_OK(recv_all(st, buf, cap, &have));
            LVRPCT_ASSERT_OK(lvrpc_stream_finish(st));
            LVRPCT_ASSERT_INT(have, sizes[k][0]);
            for (size_t i = 0; i < have; i++)
                bad += buf[i] != fake_stream_byte(i);
            LVRPCT_ASSERT_INT(bad, 0);
            lvrpc_stream_free(st);
        }
        if (c) {
            lvrpc_stream *st = NULL;
            size_t have = 0;
            int rc;
            fake_server_set_stream(s, FAKE_STREAM_EARLY, 17 * MIB, 18 * MIB);
            rc = open_download(c, &st);
            /* Shared: the stream was killed while queued; what was queued
             * comes first, then the error, never a clean end */
            while (rc == LVRPC_OK && st) {
                size_t n = 0;
                int64_t hole = 0;
                rc = lvrpc_stream_recv(st, buf, cap, &n, &hole);
                have += n;
                if (rc == LVRPC_OK && n == 0 && hole == 0)
                    break;
            }
            LVRPCT_ASSERT_RC(rc, LVRPC_EPROTO);
            LVRPCT_ASSERT(have <= 16 * MIB);
            LVRPCT_ASSERT(strstr(lvrpc_last_message(), "before its reply") != NULL);
            lvrpc_stream_free(st);
            fake_server_set_stream(s, FAKE_STREAM_NORMAL, 0, 0);
            LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(c, NULL)); /* the handle goes on */
        }
        lvrpc_close(c);
    }
    fake_server_set_stream(s, FAKE_STREAM_NORMAL, 0, 0);
    free(buf);
    fake_server_stop(s);
}

/* --- a stream whose connection dies, or whose handle is closed */

typedef struct blocked_job {
    lvrpc_stream *st;
    int rc;
    size_t have;
    int64_t ended_ms;
} blocked_job;

static void *blocked_receiver(void *arg)
{
    blocked_job *j = arg;
    unsigned char buf[65536];
    size_t n;

    do {
        j->rc = lvrpc_stream_recv(j->st, buf, sizeof(buf), &n, NULL);
        j->have += n;
    } while (j->rc == LVRPC_OK && n > 0);
    j->ended_ms = now_ms();
    return NULL;
}

static void test_dead_connection(void)
{
    for (size_t m = 0; m < 2; m++) {
        fake_server *s = start_fake();
        lvrpc_client *c = s ? open_fake(s, modes[m], 20000) : NULL;
        lvrpc_stream *st = NULL;
        blocked_job j = {0};
        pthread_t th;
        int64_t t0;

        if (!c) {
            fake_server_stop(s);
            continue;
        }
        fake_server_set_stream(s, FAKE_STREAM_STALL, 300000, 3 * MIB);
        LVRPCT_ASSERT_OK(open_download(c, &st));
        if (st) {
            j.st = st;
            pthread_create(&th, NULL, blocked_receiver, &j);
            usleep(300 * 1000); /* the receiver has its 300000 bytes and waits */
            t0 = now_ms();
            fake_server_stop(s); /* the connection dies */
            s = NULL;
            pthread_join(th, NULL);
            lvrpct_assert(j.rc != LVRPC_OK && j.ended_ms - t0 < 2000, __FILE__, __LINE__,
                          "%s: recv on a dead connection -> %d %s after %lld ms",
                          lvrpct_mode_name(modes[m]), j.rc, lvrpc_strerror(j.rc),
                          (long long)(j.ended_ms - t0));
            LVRPCT_ASSERT_INT(j.have, 300000);
            t0 = now_ms();
            LVRPCT_ASSERT(lvrpc_stream_send(st, "x", 1) != LVRPC_OK);
            LVRPCT_ASSERT(lvrpc_stream_finish(st) != LVRPC_OK);
            LVRPCT_ASSERT(now_ms() - t0 < 2000);
            lvrpc_stream_free(st);
        }
        lvrpc_close(c);
        fake_server_stop(s);
    }
}

typedef struct closer_job {
    lvrpc_client *c;
    int64_t done_ms;
} closer_job;

static void *closer(void *arg)
{
    closer_job *j = arg;

    lvrpc_close(j->c);
    __atomic_store_n(&j->done_ms, now_ms(), __ATOMIC_RELEASE);
    return NULL;
}

static void test_close_wakes_stream(void)
{
    fake_server *s = start_fake();

    for (size_t m = 0; s && m < 2; m++) {
        lvrpc_client *c = open_fake(s, modes[m], 20000);
        lvrpc_stream *st = NULL;
        blocked_job j = {0};
        closer_job cj = {c, 0};
        pthread_t th, ct;
        int64_t t0;

        if (!c)
            continue;
        fake_server_set_stream(s, FAKE_STREAM_STALL, 100000, 3 * MIB);
        LVRPCT_ASSERT_OK(open_download(c, &st));
        if (!st) {
            lvrpc_close(c);
            continue;
        }
        j.st = st;
        pthread_create(&th, NULL, blocked_receiver, &j);
        usleep(200 * 1000);
        t0 = now_ms();
        pthread_create(&ct, NULL, closer, &cj);
        pthread_join(th, NULL); /* woken by the close */
        lvrpct_assert(j.rc == LVRPC_ECLOSED && j.ended_ms - t0 < 2000, __FILE__, __LINE__,
                      "%s: recv during lvrpc_close -> %d %s after %lld ms",
                      lvrpct_mode_name(modes[m]), j.rc, lvrpc_strerror(j.rc),
                      (long long)(j.ended_ms - t0));
        pthread_join(ct, NULL); /* the woken stream is closed: close may end */
        lvrpc_stream_free(st);
        /* A stream open but idle: close waits until its owner frees it. */
        c = open_fake(s, modes[m], 20000);
        cj.c = c;
        cj.done_ms = 0;
        st = NULL;
        LVRPCT_ASSERT_OK(c ? open_console(c, &st) : LVRPC_EINVAL);
        if (!st) {
            lvrpc_close(c);
            continue;
        }
        pthread_create(&ct, NULL, closer, &cj);
        usleep(200 * 1000);
        LVRPCT_ASSERT(__atomic_load_n(&cj.done_ms, __ATOMIC_ACQUIRE) == 0);
        LVRPCT_ASSERT(lvrpc_stream_send(st, "x", 1) != LVRPC_OK); /* the handle is closing */
        lvrpc_stream_free(st);
        pthread_join(ct, NULL);
        LVRPCT_ASSERT(cj.done_ms > 0);
    }
    fake_server_set_stream(s, FAKE_STREAM_NORMAL, 0, 0);
    fake_server_stop(s);
}

/* A client abort is answered, and the handle goes on. */
static void test_fake_abort(void)
{
    fake_server *s = start_fake();
    unsigned char buf[65536];

    for (size_t m = 0; s && m < 2; m++) {
        lvrpc_client *c = open_fake(s, modes[m], 10000);
        lvrpc_stream *st = NULL;
        fake_stats f0, f1;
        size_t n;

        if (!c)
            continue;
        fake_server_get_stats(s, &f0);
        fake_server_set_stream(s, FAKE_STREAM_NORMAL, 0, 8 * MIB);
        LVRPCT_ASSERT_OK(open_download(c, &st));
        if (st) {
            LVRPCT_ASSERT_OK(lvrpc_stream_recv(st, buf, sizeof(buf), &n, NULL));
            LVRPCT_ASSERT_OK(lvrpc_stream_abort(st));
            lvrpc_stream_free(st);
            st = NULL;
        }
        LVRPCT_ASSERT_OK(open_console(c, &st));
        if (st) {
            LVRPCT_ASSERT_OK(lvrpc_stream_send(st, "abc", 3));
            LVRPCT_ASSERT_OK(lvrpc_stream_abort(st));
            lvrpc_stream_free(st);
        }
        fake_server_get_stats(s, &f1);
        LVRPCT_ASSERT_INT(f1.stream_aborts - f0.stream_aborts, 2);
        LVRPCT_ASSERT_INT(f1.accepted, f0.accepted); /* no new socket was needed */
        LVRPCT_ASSERT_OK(lib_version(c));
        lvrpc_close(c);
    }
    fake_server_set_stream(s, FAKE_STREAM_NORMAL, 0, 0);
    fake_server_stop(s);
}

/* --- the CLI's console against the fake: stdin in, the echo out */

/* Runs `$LVRPC -c URI --mode MODE console dom-0` with input on its stdin;
 * returns its exit status and what it printed (malloc'd, in *out). */
static int run_cli_console(const char *lvrpc, const char *uri, const char *mode,
                           const char *input, char **out)
{
    extern char **environ;
    char *argv[] = {(char *)lvrpc, "-c", (char *)uri, "--mode", (char *)mode, "console",
                    "dom-0", NULL};
    int in[2], outp[2], status = -1;
    posix_spawn_file_actions_t fa;
    size_t len = 0, cap = 65536;
    pid_t pid;

    *out = calloc(1, cap + 1);
    if (!*out || pipe(in) < 0)
        return -1;
    if (pipe(outp) < 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, outp[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, outp[0]);
    if (posix_spawn(&pid, lvrpc, &fa, NULL, argv, environ) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(outp[1]);
    if (pid > 0) {
        ssize_t n;
        if (write(in[1], input, strlen(input)) < 0)
            perror("write");
        close(in[1]); /* the end of the input: the console drains and quits */
        while ((n = read(outp[0], *out + len, cap - len)) > 0)
            len += (size_t)n;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    } else {
        close(in[1]);
    }
    close(outp[0]);
    return pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_cli_console(void)
{
    const char *lvrpc = getenv("LVRPC");
    static const char *const mode_names[] = {"direct", "shared"};
    fake_server *s;
    char uri[256];

    if (!lvrpc || !*lvrpc)
        lvrpc = "./cli/lvrpc"; /* run from the build directory (sanitize.sh) */
    if (access(lvrpc, X_OK) != 0) {
        /* make check exports LVRPC; by hand, set it to build/cli/lvrpc */
        lvrpct_hard_error("%s (the lvrpc tool, $LVRPC) is not executable", lvrpc);
        return;
    }
    if (!(s = start_fake()))
        return;
    fake_server_uri(s, 0, uri, sizeof(uri));
    for (size_t m = 0; m < 2; m++) {
        char *out = NULL;
        int rc = run_cli_console(lvrpc, uri, mode_names[m], "hello console\nline two\n", &out);
        LVRPCT_ASSERT_INT(rc, 0);
        LVRPCT_ASSERT_STR(out, "hello console\nline two\n");
        free(out);
    }
    fake_server_stop(s);
}

/* --- uploads from a file that breaks: the mapped path's failures */

/* A file of len bytes of fake_stream_byte, open for reading and writing
 * (the tests shrink it); its name is unlinked.  -1 on failure. */
static int pattern_file(size_t len)
{
    char path[] = "/tmp/lvrpct-up-XXXXXX";
    unsigned char *buf = malloc(len);
    int fd = mkstemp(path);

    if (fd >= 0)
        unlink(path);
    for (size_t i = 0; buf && i < len; i++)
        buf[i] = fake_stream_byte(i);
    if (fd >= 0 && (!buf || write(fd, buf, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET))) {
        close(fd);
        fd = -1;
    }
    free(buf);
    return fd;
}

/* A client of s in modes[m] and a 4 MiB pattern_file in *fd; NULL, with
 * nothing left open, when either fails. */
static lvrpc_client *open_with_pattern(fake_server *s, size_t m, int *fd)
{
    lvrpc_client *c = open_fake(s, modes[m], 10000);

    *fd = pattern_file(4 * MIB);
    if (c && *fd >= 0)
        return c;
    LVRPCT_ASSERT(*fd >= 0);
    if (*fd >= 0)
        close(*fd);
    lvrpc_close(c);
    return NULL;
}

static int shrink_at_1mib(uint64_t done, uint64_t total, void *opaque)
{
    int *fd = opaque;

    (void)total;
    if (*fd >= 0 && done >= MIB) {
        if (ftruncate(*fd, 2 * MIB) < 0)
            return -1;
        *fd = -1;
    }
    return 0;
}

/* A file that shrinks between two packets (a sparse upload, which must send
 * the size it found): the error, the stream aborted, the connection kept;
 * the daemon got every byte up to the new end and no other. */
static void test_shrink_between_packets(void)
{
    fake_server *s = start_fake();

    for (size_t m = 0; s && m < 2; m++) {
        int fd, cut;
        lvrpc_client *c = open_with_pattern(s, m, &fd);
        lvrpc_stream *st = NULL;
        fake_stats f0, f1;

        if (!c)
            continue;
        cut = fd;
        fake_server_get_stats(s, &f0);
        LVRPCT_ASSERT_OK(open_upload(c, LVRPC_STREAM_SPARSE, &st));
        if (st) {
            LVRPCT_ASSERT_RC(lvrpc_stream_send_fd(st, fd, 4 * MIB, shrink_at_1mib, &cut),
                             LVRPC_ESYS);
            lvrpct_assert(strstr(lvrpc_last_message(), "shrank") &&
                          !strstr(lvrpc_last_message(), "mid-packet"), __FILE__, __LINE__,
                          "message: %s", lvrpc_last_message());
        }
        lvrpc_stream_free(st);
        LVRPCT_ASSERT_OK(lib_version(c));
        fake_server_get_stats(s, &f1);
        LVRPCT_ASSERT_INT(f1.stream_rx_bytes - f0.stream_rx_bytes, 2 * MIB);
        LVRPCT_ASSERT_INT(f1.stream_rx_mismatch, 0);
        LVRPCT_ASSERT_INT(f1.stream_aborts - f0.stream_aborts, 1);
        LVRPCT_ASSERT_INT(f1.closed_by_peer - f0.closed_by_peer, 0);
        close(fd);
        lvrpc_close(c);
    }
    fake_server_stop(s);
}

/* Appends fake_stream_byte data to fd (whose size is at) up to to.  0 or -1. */
static int append_pattern(int fd, uint64_t at, uint64_t to)
{
    unsigned char buf[65536];

    while (at < to) {
        size_t n = to - at < sizeof(buf) ? (size_t)(to - at) : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = fake_stream_byte(at + i);
        if (pwrite(fd, buf, n, (off_t)at) != (ssize_t)n)
            return -1;
        at += n;
    }
    return 0;
}

/* Once 1 MiB is sent, the 4 MiB file grows to 24 MiB: past the end of the
 * window mapped first (the file's size then) and of the next one (16 MiB). */
static int grow_at_1mib(uint64_t done, uint64_t total, void *opaque)
{
    int *fd = opaque;

    (void)total;
    if (*fd >= 0 && done >= MIB) {
        if (append_pattern(*fd, 4 * MIB, 24 * MIB) < 0)
            return -1;
        *fd = -1;
    }
    return 0;
}

/* A file that grows during an upload (not sparse: sent up to where it
 * ends, as read() would): every byte reaches the daemon, in order, through
 * mapped windows mapped anew as the file grows past them. */
static void test_grow_during_upload(void)
{
    fake_server *s = start_fake();

    for (size_t m = 0; s && m < 2; m++) {
        int fd, grow;
        lvrpc_client *c = open_with_pattern(s, m, &fd);
        lvrpc_stream *st = NULL;
        fake_stats f0, f1;
        uint64_t sf0 = mapped();

        if (!c)
            continue;
        grow = fd;
        fake_server_get_stats(s, &f0);
        LVRPCT_ASSERT_OK(open_upload(c, 0, &st));
        if (st)
            LVRPCT_ASSERT_OK(lvrpc_stream_send_fd(st, fd, 0, grow_at_1mib, &grow));
        lvrpc_stream_free(st);
        LVRPCT_ASSERT_INT(grow, -1); /* it grew */
        lvrpct_assert(all_mapped(mapped() - sf0, 24 * MIB), __FILE__, __LINE__,
                      "%llu bytes mapped for 24 MiB", (unsigned long long)(mapped() - sf0));
        fake_server_get_stats(s, &f1);
        LVRPCT_ASSERT_INT(f1.stream_rx_bytes - f0.stream_rx_bytes, 24 * MIB);
        LVRPCT_ASSERT_INT(f1.stream_rx_mismatch, 0);
        LVRPCT_ASSERT_INT(f1.stream_finishes - f0.stream_finishes, 1);
        LVRPCT_ASSERT_OK(lib_version(c));
        close(fd);
        lvrpc_close(c);
    }
    fake_server_stop(s);
}

/* Runs one upload of a 4 MiB file to the fake with a mapping fault at
 * 1 MiB + 1000 bytes (inside the fifth packet), over TCP or UNIX.  The
 * packet cannot be completed: the upload fails, the daemon sees the
 * connection close and never a partial packet, and the handle goes on
 * (Shared reconnects, Direct opens another socket). */
static void broken_upload(fake_server *s, int use_unix, lvrpc_mode mode, int fault,
                          const char *want)
{
    lvrpc_client *c = open_fake_uri(s, use_unix, mode, 10000);
    lvrpc_stream *st = NULL;
    fake_stats f0, f1;
    lvrpc_stats l0, l1 = {0};
    int fd = pattern_file(4 * MIB);

    if (!c || fd < 0) {
        LVRPCT_ASSERT(fd >= 0);
        lvrpc_close(c);
        return;
    }
    fake_server_get_stats(s, &f0);
    lvrpc_get_stats(c, &l0);
    LVRPCT_ASSERT_OK(open_upload(c, 0, &st));
    if (st) {
        int rc;
        map_fault_arm(fault, MIB + 1000);
        rc = lvrpc_stream_send_fd(st, fd, 4 * MIB, NULL, NULL);
        lvrpct_assert(rc != LVRPC_OK && strstr(lvrpc_last_message(), want), __FILE__, __LINE__,
                      "%s %s: rc %d, message: %s", use_unix ? "unix" : "tcp",
                      lvrpct_mode_name(mode), rc, lvrpc_last_message());
        LVRPCT_ASSERT_INT(__atomic_load_n(&map_fault_at, __ATOMIC_ACQUIRE), -1); /* it ran */
    }
    lvrpc_stream_free(st);
    LVRPCT_ASSERT(fake_server_wait_closed_by_peer(s, f0.closed_by_peer + 1, 5000));
    fake_server_get_stats(s, &f1);
    /* the whole packets before the fault, then nothing of its packet */
    LVRPCT_ASSERT_INT(f1.stream_rx_bytes - f0.stream_rx_bytes,
                      (MIB + 1000) / LVRPC_STREAM_CHUNK * LVRPC_STREAM_CHUNK);
    LVRPCT_ASSERT_INT(f1.stream_rx_mismatch, 0);
    LVRPCT_ASSERT_INT(f1.bad_packets - f0.bad_packets, 0);
    /* Shared: a call that starts before the reader has seen the failed
     * write would still pick the dying connection (and fail with it), so
     * wait until the connection has been re-opened */
    for (int64_t t0 = now_ms(); mode == LVRPC_MODE_SHARED && now_ms() - t0 < 5000;
         usleep(10000)) {
        lvrpc_get_stats(c, &l1);
        if (l1.reconnects > l0.reconnects)
            break;
    }
    LVRPCT_ASSERT(mode != LVRPC_MODE_SHARED || l1.reconnects > l0.reconnects);
    LVRPCT_ASSERT_OK(lib_version(c));
    map_fault_arm(MAP_CUT, -1);
    close(fd);
    lvrpc_close(c);
}

/* A file cut in the middle of a packet being sent from its mapping. */
static void test_shrink_mid_packet(void)
{
    fake_server *s = start_fake();

    for (size_t m = 0; s && m < 2; m++)
        for (int u = 0; u < 2; u++)
            broken_upload(s, u, modes[m], MAP_CUT, "shrank while sending (mid-packet");
    fake_server_stop(s);
}

/* The socket fails in the middle of an upload's packet: an error, and no
 * SIGPIPE (the default action, to end the process, is in force). */
static void test_upload_no_sigpipe(void)
{
    fake_server *s = start_fake();
    void (*old)(int) = signal(SIGPIPE, SIG_DFL);

    for (size_t m = 0; s && m < 2; m++)
        for (int u = 0; u < 2; u++) {
            sigset_t pending, mask;
            broken_upload(s, u, modes[m], MAP_SHUT, "");
            LVRPCT_ASSERT(sigpending(&pending) == 0 && !sigismember(&pending, SIGPIPE));
            LVRPCT_ASSERT(pthread_sigmask(SIG_BLOCK, NULL, &mask) == 0 &&
                          !sigismember(&mask, SIGPIPE));
        }
    signal(SIGPIPE, old);
    fake_server_stop(s);
}

/* ------------------------------------------------------------ suites */

/* $LVRPCT_TESTS (comma separated) keeps only the tests whose name contains
 * one of its words; a suite left without tests is not added. */
static void add_filtered(const char *suite, CU_InitializeFunc init, CU_CleanupFunc cleanup,
                         const lvrpct_test *tests)
{
    static lvrpct_test kept[3][16];
    static int used;
    const char *f = getenv("LVRPCT_TESTS");
    lvrpct_test *k = kept[used < 3 ? used++ : 2];
    int n = 0;

    for (; tests->name && n < 15; tests++) {
        int keep = !f || !*f;
        for (const char *w = f; !keep && w && *w; w = strchr(w, ',') ? strchr(w, ',') + 1 : NULL) {
            size_t len = strcspn(w, ",");
            for (const char *p = tests->name; *p && !keep; p++)
                keep = len > 0 && strncmp(p, w, len) == 0;
        }
        if (keep)
            k[n++] = *tests;
    }
    k[n].name = NULL;
    k[n].func = NULL;
    if (n > 0)
        lvrpct_add_suite(suite, init, cleanup, k);
}

static void add_suites(void)
{
    static const lvrpct_test storage_tests[] = {
        {"64 MiB upload + download, both modes, TCP/UNIX/TLS", test_roundtrip},
        {"a sparse file keeps its holes", test_sparse},
        {"a pipe as the source: the copy path, intact", test_pipe_source},
        {"4 streams and 16 threads of calls on one Shared connection", test_concurrency},
        {"slow consumer: bounded memory, calls go on", test_slow_consumer},
        {"client abort of a download and an upload", test_abort},
        {"the daemon aborts a stream: libvirt's error", test_daemon_error},
        {NULL, NULL},
    };
    static const lvrpct_test driver_tests[] = {
        {"screenshot equals virsh screenshot", test_screenshot},
        {NULL, NULL},
    };
    static const lvrpct_test fake_tests[] = {
        {"console echo, both directions at once", test_console_echo},
        {"console: idle recv times out, server hangs up", test_console_idle_and_hangup},
        {"server error mid-download and mid-upload", test_server_error},
        {"truncated streams are errors", test_truncated},
        {"holes: refused unless sparse, sent when sparse", test_hole_not_sparse},
        {"stream data before the opening call's reply", test_data_before_reply},
        {"a stream whose connection dies fails promptly", test_dead_connection},
        {"lvrpc_close wakes a blocked stream", test_close_wakes_stream},
        {"client abort answered, handle goes on", test_fake_abort},
        {"lvrpc console: stdin in, the echo out", test_cli_console},
        {"upload: a file shrinking between packets, a clean error", test_shrink_between_packets},
        {"upload: a file growing during the upload, sent whole", test_grow_during_upload},
        {"upload: a file cut mid-packet drops the connection", test_shrink_mid_packet},
        {"upload: a socket failing mid-packet, no SIGPIPE", test_upload_no_sigpipe},
        {NULL, NULL},
    };
    add_filtered("streams/fake", NULL, NULL, fake_tests);
    add_filtered("streams/test-driver", test_driver_init, test_driver_cleanup, driver_tests);
    add_filtered("streams/storage", storage_init, storage_cleanup, storage_tests);
}

int main(int argc, char **argv)
{
    const char *sc = getenv("LVRPCT_SCALE"), *pre = getenv("LD_PRELOAD");

    if (sc && atoi(sc) > 0)
        scale = (unsigned)atoi(sc);
    else if (pre && strstr(pre, "vgpreload")) /* under valgrind */
        scale = 8;
    return lvrpct_main(argc, argv, add_suites);
}
