/* fakeserver.c - an in-process, scripted fake libvirtd (see fakeserver.h).
 *
 * Structure: an acceptor thread polls the listening sockets and a stop pipe;
 * every accepted connection gets a thread of its own that reads as many bytes
 * as the socket has, answers every complete packet into an output buffer and
 * writes that buffer in one go once the input holds no further complete
 * packet (so pipelined calls get batched replies, in order).  All sockets are
 * non-blocking and every wait also polls the stop pipe: writing one byte to
 * it wakes every thread for fake_server_stop().
 *
 * Streams: each connection keeps a small table of its open streams.  A
 * download's data is written right after its reply, by the connection's
 * thread, before it reads further packets (blocking writes, so a client
 * that does not read holds the fake up, as TCP would hold libvirtd up).
 *
 * When the fake closes a connection on purpose (TRUNCATED, CLOSE_MID_REPLY) it
 * shuts down its write side and drains the socket until the client closes:
 * closing with unread input would send a TCP reset, which may discard the
 * partial reply before the client has read it.
 *
 * Descriptors (fakeserver.h): a UNIX connection's reads are recvmsg()s whose
 * descriptors are queued in c->rx_fds; a complete CALL_WITH_FDS moves its
 * share into c->call_fds for handle_packet(), which closes whatever the
 * procedure did not use.  Descriptors a reply carries wait in c->tx_fds
 * until the reply is flushed, then go one per dummy byte (send_tx_fds()).
 */
#define _GNU_SOURCE
#include "fakeserver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FK_PROG_REMOTE 0x20008086u
#define FK_PROG_KEEPALIVE 0x6b656570u
#define FK_PROG_LXC 0x00068000u
#define FK_VERS 1u

#define FK_TYPE_CALL 0
#define FK_TYPE_REPLY 1
#define FK_TYPE_MESSAGE 2
#define FK_TYPE_STREAM 3
#define FK_TYPE_CALL_WITH_FDS 4
#define FK_TYPE_REPLY_WITH_FDS 5
#define FK_TYPE_STREAM_HOLE 6

#define FK_STATUS_OK 0
#define FK_STATUS_ERROR 1
#define FK_STATUS_CONTINUE 2

#define FK_PROC_CONNECT_OPEN 1
#define FK_PROC_CONNECT_CLOSE 2
#define FK_PROC_DOMAIN_LOOKUP_BY_NAME 23
#define FK_PROC_CONNECT_GET_HOSTNAME 59
#define FK_PROC_CONNECT_SUPPORTS_FEATURE 60
#define FK_PROC_AUTH_LIST 66
#define FK_PROC_CONNECT_GET_LIB_VERSION 157
#define FK_PROC_CONNECT_LIST_ALL_DOMAINS 273
#define FK_PROC_DOMAIN_OPEN_CONSOLE 201
#define FK_PROC_STORAGE_VOL_UPLOAD 208
#define FK_PROC_STORAGE_VOL_DOWNLOAD 209
#define FK_PROC_DOMAIN_SCREENSHOT 211
#define FK_PROC_DOMAIN_OPEN_CHANNEL 296
#define FK_PROC_DOMAIN_OPEN_GRAPHICS 249
#define FK_LXC_PROC_OPEN_NAMESPACE 1

/* Descriptors per packet (REMOTE_MESSAGE_NUM_FDS_MAX). */
#define FK_NUM_FDS_MAX 32u

#define FK_PROC_PING 1
#define FK_PROC_PONG 2

#define FK_HEADER_LEN 24u
#define FK_PACKET_MIN 28u
#define FK_PACKET_MAX (33554432u + 4u)

#define FK_IN_INITIAL 65536u
#define FK_OUT_FLUSH 262144u
/* Streams open at once on one connection. */
#define FK_MAX_STREAMS 16
#define FK_DEFAULT_STREAM_BYTES (1u << 20)
/* How long a deliberately closed connection waits for the client's EOF. */
#define FK_LINGER_MS 3000

/* ------------------------------------------------------------------ types */

typedef struct fk_buf {
    unsigned char *p;
    size_t len;
    size_t cap;
} fk_buf;

/* An open stream of a connection. */
typedef struct fk_stream {
    int used;
    uint32_t serial;
    int32_t proc;
    fake_stream_fault fault;
    uint64_t after;
    uint64_t bytes;  /* data bytes sent (echo) or received (upload) */
    int quiet;       /* stalled or ended: sends nothing more */
} fk_stream;

typedef struct fake_conn {
    fake_server *srv;
    int fd;
    pthread_t thread;
    atomic_int done;
    int opened;             /* CONNECT_OPEN answered */
    uint64_t ncalls;        /* CALL packets on this connection */
    uint64_t ncalls_other;  /* of which not handshake */
    fk_buf in;
    size_t in_pos;
    fk_buf out;
    fk_buf scratch;
    fk_stream streams[FK_MAX_STREAMS];
    int is_unix;            /* descriptors may pass */
    int rx_fds[FAKE_RX_FDS_MAX]; /* received, oldest first, not yet claimed */
    unsigned nrx_fds;
    int rx_fds_bad;         /* some were dropped (queue full, truncated) */
    int call_fds[FK_NUM_FDS_MAX]; /* those of the call being handled */
    unsigned ncall_fds;
    int tx_fds[FK_NUM_FDS_MAX];   /* to send after the reply being built */
    unsigned ntx_fds;
    struct fake_conn *next;
} fake_conn;

struct fake_server {
    int tcp_fd;
    int unix_fd;
    int stop_pipe[2];
    int port;
    char dir[64];
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    pthread_t acceptor;
    int acceptor_started;

    pthread_mutex_t lock; /* conns, last_name */
    fake_conn *conns;
    char last_name[256];

    atomic_uint mode; /* behaviour | flags << 8 */
    atomic_uint slow_ms;
    atomic_uint list_count;
    atomic_uint garbage_seq;
    atomic_uint stream_fault;
    atomic_uint_fast64_t stream_after;
    atomic_uint_fast64_t stream_bytes;

    atomic_uint_fast64_t accepted;
    atomic_uint_fast64_t active;
    atomic_uint_fast64_t closed_by_peer;
    atomic_uint_fast64_t calls;
    atomic_uint_fast64_t handshake_calls;
    atomic_uint_fast64_t calls_before_open;
    atomic_uint_fast64_t faults;
    atomic_uint_fast64_t pings;
    atomic_uint_fast64_t pongs;
    atomic_uint_fast64_t bad_packets;
    atomic_uint_fast64_t open_flags;
    atomic_uint_fast64_t stream_opens;
    atomic_uint_fast64_t stream_tx_bytes;
    atomic_uint_fast64_t stream_rx_bytes;
    atomic_uint_fast64_t stream_rx_holes;
    atomic_uint_fast64_t stream_rx_mismatch;
    atomic_uint_fast64_t stream_finishes;
    atomic_uint_fast64_t stream_aborts;
    atomic_uint_fast64_t stream_dropped;
    atomic_uint_fast64_t fds_calls;
    atomic_uint_fast64_t fds_received;
    atomic_uint_fast64_t fds_sent;
};

/* What the connection loop does after a packet. */
enum fk_next { FK_CONTINUE = 0, FK_CLOSE = 1, FK_ABORT = -1 };

#define CTR_ADD(s, f) atomic_fetch_add_explicit(&(s)->f, 1, memory_order_relaxed)
#define CTR_GET(s, f) atomic_load_explicit(&(s)->f, memory_order_relaxed)
#define CTR_ADDN(s, f, n) atomic_fetch_add_explicit(&(s)->f, (n), memory_order_relaxed)

/* ------------------------------------------------------------------ names */

static const char *const fk_names[FAKE_BEHAVIOR_COUNT] = {
    [FAKE_NORMAL] = "NORMAL",
    [FAKE_INSTANT] = "INSTANT",
    [FAKE_GARBAGE] = "GARBAGE",
    [FAKE_LEN_TOO_SMALL] = "LEN_TOO_SMALL",
    [FAKE_LEN_TOO_BIG] = "LEN_TOO_BIG",
    [FAKE_LEN_OVER_MAX] = "LEN_OVER_MAX",
    [FAKE_LEN_TOO_BIG_BARE] = "LEN_TOO_BIG_BARE",
    [FAKE_TRUNCATED] = "TRUNCATED",
    [FAKE_WRONG_SERIAL] = "WRONG_SERIAL",
    [FAKE_WRONG_PROGRAM] = "WRONG_PROGRAM",
    [FAKE_WRONG_VERSION] = "WRONG_VERSION",
    [FAKE_WRONG_TYPE] = "WRONG_TYPE",
    [FAKE_WRONG_TYPE_CALL] = "WRONG_TYPE_CALL",
    [FAKE_WRONG_STATUS] = "WRONG_STATUS",
    [FAKE_BAD_STRING_LEN] = "BAD_STRING_LEN",
    [FAKE_BAD_ARRAY_COUNT] = "BAD_ARRAY_COUNT",
    [FAKE_ERROR_REPLY] = "ERROR_REPLY",
    [FAKE_CLOSE_MID_REPLY] = "CLOSE_MID_REPLY",
    [FAKE_CLOSE_AFTER_REPLY] = "CLOSE_AFTER_REPLY",
    [FAKE_NEVER_ANSWER] = "NEVER_ANSWER",
    [FAKE_SLOW] = "SLOW",
    [FAKE_PING_FIRST] = "PING_FIRST",
    [FAKE_MAX_REPLY] = "MAX_REPLY",
    [FAKE_AUTH_SASL_ONLY] = "AUTH_SASL_ONLY",
    [FAKE_REFUSE_OPEN] = "REFUSE_OPEN",
    [FAKE_FDS_MISSING] = "FDS_MISSING",
    [FAKE_FDS_TOO_MANY] = "FDS_TOO_MANY",
    [FAKE_FDS_NO_COUNT] = "FDS_NO_COUNT",
    [FAKE_FDS_UNANNOUNCED] = "FDS_UNANNOUNCED",
};

const char *fake_behavior_name(fake_behavior b)
{
    if ((unsigned)b < FAKE_BEHAVIOR_COUNT && fk_names[b])
        return fk_names[b];
    return "?";
}

/* ------------------------------------------------------------------ buffers */

static int buf_reserve(fk_buf *b, size_t extra)
{
    size_t need = b->len + extra, cap;
    unsigned char *p;

    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static void buf_free(fk_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static void set_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The put_* helpers record allocation failure in *oom instead of returning
 * it, so that encoders read straight; callers check once at the end. */
static void put_bytes(fk_buf *b, const void *p, size_t n, int *oom)
{
    if (buf_reserve(b, n) < 0) {
        *oom = 1;
        return;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_u32(fk_buf *b, uint32_t v, int *oom)
{
    unsigned char w[4];

    set_be32(w, v);
    put_bytes(b, w, 4, oom);
}

static void put_u64(fk_buf *b, uint64_t v, int *oom)
{
    put_u32(b, (uint32_t)(v >> 32), oom);
    put_u32(b, (uint32_t)v, oom);
}

static void put_string(fk_buf *b, const char *s, int *oom)
{
    static const unsigned char zero[4];
    size_t n = strlen(s);

    put_u32(b, (uint32_t)n, oom);
    put_bytes(b, s, n, oom);
    put_bytes(b, zero, (4 - n % 4) % 4, oom);
}

/* Appends a length word and header; returns the packet's start offset, to
 * be passed to end_packet() once the body is in. */
static size_t begin_packet(fk_buf *b, uint32_t prog, uint32_t vers,
                           int32_t proc, int32_t type, uint32_t serial,
                           int32_t status, int *oom)
{
    size_t start = b->len;

    put_u32(b, 0, oom);
    put_u32(b, prog, oom);
    put_u32(b, vers, oom);
    put_u32(b, (uint32_t)proc, oom);
    put_u32(b, (uint32_t)type, oom);
    put_u32(b, serial, oom);
    put_u32(b, (uint32_t)status, oom);
    return start;
}

static void end_packet(fk_buf *b, size_t start, int oom)
{
    if (!oom)
        set_be32(b->p + start, (uint32_t)(b->len - start));
}

/* ------------------------------------------------------------------ decoding */

typedef struct fk_reader {
    const unsigned char *p;
    size_t len;
    size_t pos;
    int bad;
} fk_reader;

static uint32_t get_u32(fk_reader *r)
{
    uint32_t v;

    if (r->bad || r->len - r->pos < 4) {
        r->bad = 1;
        return 0;
    }
    v = get_be32(r->p + r->pos);
    r->pos += 4;
    return v;
}

static void get_skip(fk_reader *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return;
    }
    r->pos += n;
}

/* Copies a string of at most size-1 bytes into buf (longer ones are bad). */
static void get_string(fk_reader *r, char *buf, size_t size)
{
    uint32_t n = get_u32(r);
    size_t padded;

    buf[0] = '\0';
    if (r->bad)
        return;
    padded = ((size_t)n + 3) & ~(size_t)3;
    if (n >= size || r->len - r->pos < padded) {
        r->bad = 1;
        return;
    }
    memcpy(buf, r->p + r->pos, n);
    buf[n] = '\0';
    r->pos += padded;
}

/* ------------------------------------------------------------------ uuid */

void fake_uuid_for_name(const char *name, unsigned char uuid[16])
{
    uint64_t h1 = 1469598103934665603ull, h2 = 0x9e3779b97f4a7c15ull;
    const unsigned char *p;
    int i;

    for (p = (const unsigned char *)name; *p; p++) {
        h1 = (h1 ^ *p) * 1099511628211ull;
        h2 = (h2 ^ *p) * 0x100000001b3ull + 0x7f4a7c15u;
    }
    for (i = 0; i < 8; i++) {
        uuid[i] = (unsigned char)(h1 >> (8 * i));
        uuid[8 + i] = (unsigned char)(h2 >> (8 * i));
    }
    uuid[6] = (unsigned char)((uuid[6] & 0x0f) | 0x40); /* version 4 */
    uuid[8] = (unsigned char)((uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

/* ------------------------------------------------------------------ socket I/O */

/* Waits for events on fd or the stop pipe.  Returns 1 when fd is ready,
 * 0 on timeout, -1 when stopping or on error. */
static int fk_wait(fake_server *s, int fd, short events, int timeout_ms)
{
    struct pollfd pfd[2];
    int r;

    pfd[0].fd = s->stop_pipe[0];
    pfd[0].events = POLLIN;
    pfd[1].fd = fd;
    pfd[1].events = events;
    for (;;) {
        r = poll(pfd, fd >= 0 ? 2 : 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (pfd[0].revents)
            return -1;
        return r > 0 ? 1 : 0;
    }
}

/* Sleeps ms unless the server stops first.  Returns -1 when stopping. */
static int fk_sleep(fake_server *s, unsigned ms)
{
    return fk_wait(s, -1, 0, (int)ms) < 0 ? -1 : 0;
}

static int fk_write_all(fake_conn *c, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (fk_wait(c->srv, c->fd, POLLOUT, -1) < 0)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

static int fk_flush(fake_conn *c)
{
    int r = 0;

    if (c->out.len > 0)
        r = fk_write_all(c, c->out.p, c->out.len);
    c->out.len = 0;
    return r;
}

/* Closes fds[0..*n) and empties the list. */
static void close_fds(int *fds, unsigned *n)
{
    for (unsigned i = 0; i < *n; i++)
        close(fds[i]);
    *n = 0;
}

/* Queues the descriptors a recvmsg() brought (close-on-exec), in order;
 * those that do not fit are closed and the queue marked bad. */
static void keep_rx_fds(fake_conn *c, struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        size_t n;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (c->nrx_fds < FAKE_RX_FDS_MAX) {
                c->rx_fds[c->nrx_fds++] = fd;
            } else {
                close(fd);
                c->rx_fds_bad = 1;
            }
        }
    }
    if (mh->msg_flags & MSG_CTRUNC)
        c->rx_fds_bad = 1;
}

/* One receive into buf: recv(), or on a UNIX socket recvmsg(), which takes
 * the descriptors passed (a plain recv() would have the kernel discard
 * them).  Linux ends such a read right after the byte that carried them. */
static ssize_t fk_receive(fake_conn *c, void *buf, size_t len)
{
    union {
        char space[CMSG_SPACE(sizeof(int) * FK_NUM_FDS_MAX)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { buf, len };
    struct msghdr mh;
    ssize_t n;

    if (!c->is_unix)
        return recv(c->fd, buf, len, 0);
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.space;
    mh.msg_controllen = sizeof(ctl.space);
    n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
    if (n >= 0)
        keep_rx_fds(c, &mh);
    return n;
}

/* Sends one byte with descriptor fd attached (none when fd < 0). */
static int fk_send_fd(fake_conn *c, int fd, unsigned char byte)
{
    union {
        char space[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { &byte, 1 };
    struct msghdr mh;

    memset(&mh, 0, sizeof(mh));
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (fd >= 0) {
        struct cmsghdr *cm;

        mh.msg_control = ctl.space;
        mh.msg_controllen = sizeof(ctl.space);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    for (;;) {
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

        if (n == 1)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (fk_wait(c->srv, c->fd, POLLOUT, -1) < 0)
                return -1;
            continue;
        }
        return -1;
    }
}

/* Reads what the socket has into c->in.  Returns the byte count, 0 at EOF
 * (or reset), -1 when stopping or on another error. */
static ssize_t fk_read(fake_conn *c)
{
    for (;;) {
        ssize_t n = fk_receive(c, c->in.p + c->in.len, c->in.cap - c->in.len);

        if (n > 0) {
            c->in.len += (size_t)n;
            return n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET)
            return 0;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (fk_wait(c->srv, c->fd, POLLIN, -1) < 0)
            return -1;
    }
}

/* Shuts our side and discards input until the client closes, the server
 * stops, or FK_LINGER_MS pass. */
static void fk_linger(fake_conn *c)
{
    char junk[4096];
    struct timespec t0, t;

    fk_flush(c);
    shutdown(c->fd, SHUT_WR);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        long left;
        ssize_t n = recv(c->fd, junk, sizeof(junk), 0);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR))
            return;
        if (n > 0)
            continue;
        clock_gettime(CLOCK_MONOTONIC, &t);
        left = FK_LINGER_MS - ((t.tv_sec - t0.tv_sec) * 1000 +
                               (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || fk_wait(c->srv, c->fd, POLLIN, (int)left) <= 0)
            return;
    }
}

/* ------------------------------------------------------------------ replies */

static void put_remote_error(fk_buf *b, int code, int domain, int level,
                             const char *message, int *oom)
{
    put_u32(b, (uint32_t)code, oom);
    put_u32(b, (uint32_t)domain, oom);
    put_u32(b, 1, oom); /* message present */
    put_string(b, message, oom);
    put_u32(b, (uint32_t)level, oom);
    put_u32(b, 0, oom); /* dom */
    put_u32(b, 0, oom); /* str1 */
    put_u32(b, 0, oom); /* str2 */
    put_u32(b, 0, oom); /* str3 */
    put_u32(b, 0, oom); /* int1 */
    put_u32(b, 0, oom); /* int2 */
    put_u32(b, 0, oom); /* net */
}

static void error_reply(fk_buf *b, const unsigned char *hdr, int code,
                        int domain, const char *message, int *oom)
{
    size_t st = begin_packet(b, get_be32(hdr), get_be32(hdr + 4),
                             (int32_t)get_be32(hdr + 8), FK_TYPE_REPLY,
                             get_be32(hdr + 16), FK_STATUS_ERROR, oom);

    put_remote_error(b, code, domain, 2, message, oom);
    end_packet(b, st, *oom);
}

static void put_domain(fk_buf *b, const char *name, int32_t id, int *oom)
{
    unsigned char uuid[16];

    fake_uuid_for_name(name, uuid);
    put_string(b, name, oom);
    put_bytes(b, uuid, 16, oom);
    put_u32(b, (uint32_t)id, oom);
}

static int is_handshake_proc(uint32_t prog, int32_t proc)
{
    return prog == FK_PROG_REMOTE &&
           (proc == FK_PROC_AUTH_LIST || proc == FK_PROC_CONNECT_OPEN ||
            proc == FK_PROC_CONNECT_SUPPORTS_FEATURE || proc == FK_PROC_CONNECT_CLOSE);
}

/* Decodes a domain reference (name, uuid, id) into name. */
static void get_domain(fk_reader *r, char *name, size_t size)
{
    get_string(r, name, size);
    get_skip(r, 16);
    get_u32(r);
}

/* LXC_DOMAIN_OPEN_NAMESPACE: FAKE_NS_FDS pipes whose read ends go to
 * c->tx_fds (sent after the reply), holding "ns-<i>\n" and at EOF. */
static void lxc_open_namespace(fake_conn *c, fk_buf *b, const unsigned char *hdr,
                               const unsigned char *body, size_t blen, int *oom)
{
    fk_reader r = { body, blen, 0, 0 };
    char name[256];
    size_t st;

    get_domain(&r, name, sizeof(name));
    get_u32(&r); /* flags */
    if (r.bad || r.pos != r.len) {
        error_reply(b, hdr, 39, 7, "fake: cannot decode the arguments", oom);
        return;
    }
    close_fds(c->tx_fds, &c->ntx_fds);
    for (unsigned i = 0; i < FAKE_NS_FDS; i++) {
        int p[2];
        char msg[32];
        int n = snprintf(msg, sizeof(msg), "ns-%u\n", i);

        if (pipe2(p, O_CLOEXEC) < 0) {
            close_fds(c->tx_fds, &c->ntx_fds);
            error_reply(b, hdr, 38, 7, "fake: pipe failed", oom);
            return;
        }
        if (write(p[1], msg, (size_t)n) != n) {
            close(p[0]);
            close(p[1]);
            close_fds(c->tx_fds, &c->ntx_fds);
            error_reply(b, hdr, 38, 7, "fake: write to a pipe failed", oom);
            return;
        }
        close(p[1]);
        c->tx_fds[c->ntx_fds++] = p[0];
    }
    st = begin_packet(b, FK_PROG_LXC, FK_VERS, FK_LXC_PROC_OPEN_NAMESPACE,
                      FK_TYPE_REPLY_WITH_FDS, get_be32(hdr + 16), FK_STATUS_OK, oom);
    put_u32(b, c->ntx_fds, oom);
    end_packet(b, st, *oom);
}

/* DOMAIN_OPEN_GRAPHICS's work: "fake-fd-<i>\n" into each descriptor of the
 * call, which are then closed. */
static void write_call_fds(fake_conn *c)
{
    for (unsigned i = 0; i < c->ncall_fds; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof(msg), "fake-fd-%u\n", i);

        if (write(c->call_fds[i], msg, (size_t)n) != n)
            CTR_ADD(c->srv, bad_packets); /* not writable: the test sees it */
    }
    close_fds(c->call_fds, &c->ncall_fds);
}

/* Appends to b what a correct server answers to the remote- or LXC-program
 * CALL (hdr, body: the arguments, after any descriptor count).  strict:
 * refuse non-handshake calls before CONNECT_OPEN.  A reply with descriptors
 * leaves them in c->tx_fds. */
static void normal_reply(fake_conn *c, fk_buf *b, const unsigned char *hdr,
                         const unsigned char *body, size_t blen, int strict,
                         int *oom)
{
    fake_server *s = c->srv;
    uint32_t prog = get_be32(hdr);
    int32_t proc = (int32_t)get_be32(hdr + 8);
    fk_reader r = { body, blen, 0, 0 };
    char name[256];
    size_t st;

    if (strict && !c->opened && !is_handshake_proc(prog, proc)) {
        error_reply(b, hdr, 39, 7, "fake: connection not open", oom);
        return;
    }
    if (prog == FK_PROG_LXC) {
        if (proc == FK_LXC_PROC_OPEN_NAMESPACE) {
            lxc_open_namespace(c, b, hdr, body, blen, oom);
        } else {
            snprintf(name, sizeof(name), "unknown LXC procedure: %d", proc);
            error_reply(b, hdr, 3, 7, name, oom);
        }
        return;
    }

    /* Decode the arguments first: bad ones get an error reply. */
    switch (proc) {
    case FK_PROC_CONNECT_OPEN: {
        uint32_t present = get_u32(&r), flags;

        if (present)
            get_string(&r, name, sizeof(name));
        else
            snprintf(name, sizeof(name), "(null)");
        flags = get_u32(&r);
        if (!r.bad) {
            pthread_mutex_lock(&s->lock);
            snprintf(s->last_name, sizeof(s->last_name), "%s", name);
            pthread_mutex_unlock(&s->lock);
            atomic_store(&s->open_flags, flags);
        }
        break;
    }
    case FK_PROC_DOMAIN_LOOKUP_BY_NAME:
        get_string(&r, name, sizeof(name));
        break;
    case FK_PROC_DOMAIN_OPEN_GRAPHICS:
        get_domain(&r, name, sizeof(name));
        get_u32(&r); /* idx */
        get_u32(&r); /* flags */
        break;
    case FK_PROC_CONNECT_SUPPORTS_FEATURE:
    case FK_PROC_CONNECT_LIST_ALL_DOMAINS:
        get_u32(&r);
        if (proc == FK_PROC_CONNECT_LIST_ALL_DOMAINS)
            get_u32(&r);
        break;
    default:
        break;
    }
    if (r.bad || r.pos != r.len) {
        error_reply(b, hdr, 39, 7, "fake: cannot decode the arguments", oom);
        return;
    }

    st = begin_packet(b, get_be32(hdr), get_be32(hdr + 4), proc, FK_TYPE_REPLY,
                      get_be32(hdr + 16), FK_STATUS_OK, oom);
    switch (proc) {
    case FK_PROC_AUTH_LIST:
        put_u32(b, 1, oom);
        put_u32(b, 0, oom); /* REMOTE_AUTH_NONE */
        break;
    case FK_PROC_CONNECT_OPEN:
        c->opened = 1;
        break;
    case FK_PROC_CONNECT_CLOSE:
        c->opened = 0;
        break;
    case FK_PROC_CONNECT_SUPPORTS_FEATURE:
        put_u32(b, get_be32(body) == 10 ? 1 : 0, oom);
        break;
    case FK_PROC_CONNECT_GET_LIB_VERSION:
        put_u64(b, FAKE_LIB_VERSION, oom);
        break;
    case FK_PROC_CONNECT_GET_HOSTNAME:
        put_string(b, FAKE_HOSTNAME, oom);
        break;
    case FK_PROC_DOMAIN_LOOKUP_BY_NAME:
        put_domain(b, name, 1, oom);
        break;
    case FK_PROC_DOMAIN_OPEN_GRAPHICS:
        write_call_fds(c);
        break;
    case FK_PROC_CONNECT_LIST_ALL_DOMAINS: {
        unsigned n = atomic_load_explicit(&s->list_count, memory_order_relaxed);
        unsigned i;

        if (get_be32(body) != 0) {
            put_u32(b, n, oom);
            for (i = 0; i < n && !*oom; i++) {
                snprintf(name, sizeof(name), "dom-%u", i);
                put_domain(b, name, (int32_t)(i + 1), oom);
            }
        } else {
            put_u32(b, 0, oom);
        }
        put_u32(b, n, oom);
        break;
    }
    default:
        b->len = st; /* drop the OK header */
        snprintf(name, sizeof(name), "unknown procedure: %d", proc);
        error_reply(b, hdr, 3, 7, name, oom);
        return;
    }
    end_packet(b, st, *oom);
}

static void ping_packet(fk_buf *b, int32_t proc, int *oom)
{
    size_t st = begin_packet(b, FK_PROG_KEEPALIVE, FK_VERS, proc,
                             FK_TYPE_MESSAGE, 0, FK_STATUS_OK, oom);

    end_packet(b, st, *oom);
}

static uint32_t xorshift32(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Sends the descriptors of the reply just put in c->out (c->tx_fds): the
 * output first, then one dummy byte per descriptor (over TCP the bytes
 * alone: nothing can pass); closes them either way (send 0: only closes).
 * Returns 0, or -1 when the connection failed. */
static int send_tx_fds(fake_conn *c, int send)
{
    unsigned sent = 0;
    int r = 0;

    if (c->ntx_fds && send) {
        r = fk_flush(c);
        for (unsigned i = 0; i < c->ntx_fds && r == 0; i++) {
            r = fk_send_fd(c, c->is_unix ? c->tx_fds[i] : -1, 0);
            if (r == 0 && c->is_unix)
                sent++;
        }
    }
    close_fds(c->tx_fds, &c->ntx_fds);
    /* counted once our copies are closed: a test that sees the count may
     * count the process's descriptors */
    CTR_ADDN(c->srv, fds_sent, sent);
    return r;
}

/* Appends rep (one reply packet) to o as a REPLY_WITH_FDS whose count is
 * count, or with no count at all (count < 0). */
static void put_as_fds_reply(fk_buf *o, const fk_buf *rep, long count, int *oom)
{
    size_t st = o->len;

    put_bytes(o, rep->p, FK_PACKET_MIN, oom);
    if (*oom)
        return;
    set_be32(o->p + st + 16, FK_TYPE_REPLY_WITH_FDS);
    if (count >= 0) {
        put_u32(o, (uint32_t)count, oom);
        put_bytes(o, rep->p + FK_PACKET_MIN, rep->len - FK_PACKET_MIN, oom);
    }
    end_packet(o, st, *oom);
}

/* Performs fault b for the CALL (hdr, body).  Returns an fk_next value. */
static int fault_reply(fake_conn *c, fake_behavior b, const unsigned char *hdr,
                       const unsigned char *body, size_t blen)
{
    fake_server *s = c->srv;
    fk_buf *o = &c->out, *rep = &c->scratch;
    int oom = 0, whole = 0; /* whole: rep went out as it is */
    size_t st, i;

    CTR_ADD(s, faults);
    rep->len = 0;
    normal_reply(c, rep, hdr, body, blen, 0, &oom);
    if (oom)
        return FK_ABORT;
    /* rep holds one packet: offsets 4 prog, 8 vers, 12 proc, 16 type,
     * 20 serial, 24 status */

    switch (b) {
    case FAKE_GARBAGE: {
        uint32_t x = 0x2545f491u ^ (atomic_fetch_add(&s->garbage_seq, 1) * 2654435761u);
        unsigned char g[64];

        for (i = 0; i < sizeof(g); i++)
            g[i] = (unsigned char)xorshift32(&x);
        set_be32(g, sizeof(g));
        if (get_be32(g + 4) == FK_PROG_REMOTE || get_be32(g + 4) == FK_PROG_KEEPALIVE)
            g[4] ^= 0x80;
        set_be32(g + 16, 7 + xorshift32(&x) % 1000u); /* no valid type */
        put_bytes(o, g, sizeof(g), &oom);
        break;
    }
    case FAKE_LEN_TOO_SMALL:
        put_u32(o, 16, &oom);
        put_bytes(o, rep->p + 4, 12, &oom);
        break;
    case FAKE_LEN_TOO_BIG:
    case FAKE_LEN_OVER_MAX:
        put_u32(o, b == FAKE_LEN_TOO_BIG ? 0xFFFFFFF0u : FK_PACKET_MAX + 1, &oom);
        put_bytes(o, rep->p + 4, FK_HEADER_LEN, &oom);
        put_u64(o, 0x0123456789abcdefull, &oom);
        break;
    case FAKE_LEN_TOO_BIG_BARE:
        put_u32(o, 0xFFFFFFF0u, &oom);
        break;
    case FAKE_MAX_REPLY:
        if (fk_flush(c) < 0)
            return FK_ABORT;
        if (o->cap < FAKE_MAX_PACKET) { /* exactly: buf_reserve would double */
            unsigned char *np = realloc(o->p, FAKE_MAX_PACKET);

            if (!np)
                return FK_ABORT;
            o->p = np;
            o->cap = FAKE_MAX_PACKET;
        }
        st = o->len;
        put_bytes(o, rep->p, 28, &oom);
        set_be32(o->p + st + 24, FK_STATUS_OK);
        put_u32(o, FAKE_MAX_REPLY_BYTES, &oom);
        for (i = 0; i < FAKE_MAX_REPLY_BYTES; i++)
            o->p[o->len + i] = (unsigned char)(i * 7);
        o->len += FAKE_MAX_REPLY_BYTES;
        end_packet(o, st, oom);
        /* The buffer is not kept at 32 MiB after this. */
        if (fk_flush(c) < 0)
            return FK_ABORT;
        buf_free(o);
        break;
    case FAKE_TRUNCATED:
        set_be32(rep->p, (uint32_t)rep->len + 16);
        put_bytes(o, rep->p, rep->len, &oom);
        return oom ? FK_ABORT : FK_CLOSE;
    case FAKE_CLOSE_MID_REPLY:
        put_bytes(o, rep->p, rep->len / 2, &oom);
        return oom ? FK_ABORT : FK_CLOSE;
    case FAKE_CLOSE_AFTER_REPLY:
        put_bytes(o, rep->p, rep->len, &oom);
        return oom ? FK_ABORT : FK_CLOSE;
    case FAKE_WRONG_SERIAL:
        set_be32(rep->p + 20, get_be32(rep->p + 20) ^ 0x5a5a0000u);
        put_bytes(o, rep->p, rep->len, &oom);
        whole = 1;
        break;
    case FAKE_WRONG_PROGRAM:
        set_be32(rep->p + 4, 0x12345678u);
        put_bytes(o, rep->p, rep->len, &oom);
        break;
    case FAKE_WRONG_VERSION:
        set_be32(rep->p + 8, 2);
        put_bytes(o, rep->p, rep->len, &oom);
        break;
    case FAKE_WRONG_TYPE:
    case FAKE_WRONG_TYPE_CALL:
        set_be32(rep->p + 16, b == FAKE_WRONG_TYPE ? 7 : FK_TYPE_CALL);
        put_bytes(o, rep->p, rep->len, &oom);
        break;
    case FAKE_WRONG_STATUS:
        set_be32(rep->p + 24, 9);
        put_bytes(o, rep->p, rep->len, &oom);
        break;
    case FAKE_BAD_STRING_LEN:
        st = o->len;
        put_bytes(o, rep->p, 28, &oom);
        if (oom)
            return FK_ABORT;
        set_be32(o->p + st + 24, FK_STATUS_OK);
        put_u32(o, FAKE_BAD_STRING_LENGTH, &oom);
        put_bytes(o, FAKE_HOSTNAME, 8, &oom);
        end_packet(o, st, oom);
        break;
    case FAKE_BAD_ARRAY_COUNT:
        st = o->len;
        put_bytes(o, rep->p, 28, &oom);
        if (oom)
            return FK_ABORT;
        set_be32(o->p + st + 24, FK_STATUS_OK);
        put_u32(o, FAKE_BAD_ARRAY_COUNT_VALUE, &oom);
        put_domain(o, "dom-0", 1, &oom);
        put_u32(o, 1, &oom);
        end_packet(o, st, oom);
        break;
    case FAKE_ERROR_REPLY:
        error_reply(o, hdr, FAKE_ERROR_CODE, FAKE_ERROR_DOMAIN,
                    FAKE_ERROR_MESSAGE, &oom);
        break;
    case FAKE_NEVER_ANSWER:
        break;
    case FAKE_SLOW:
        if (fk_flush(c) < 0 ||
            fk_sleep(s, atomic_load(&s->slow_ms)) < 0)
            return FK_ABORT;
        put_bytes(o, rep->p, rep->len, &oom);
        whole = 1;
        break;
    case FAKE_PING_FIRST:
        ping_packet(o, FK_PROC_PING, &oom);
        if (oom || fk_flush(c) < 0)
            return FK_ABORT;
        put_bytes(o, rep->p, rep->len, &oom);
        whole = 1;
        break;
    case FAKE_FDS_MISSING: {
        static const unsigned char dummies[2];

        put_as_fds_reply(o, rep, 2, &oom);
        put_bytes(o, dummies, sizeof(dummies), &oom); /* and no SCM_RIGHTS */
        break;
    }
    case FAKE_FDS_TOO_MANY:
        put_as_fds_reply(o, rep, (long)FK_NUM_FDS_MAX + 1, &oom);
        break;
    case FAKE_FDS_NO_COUNT:
        put_as_fds_reply(o, rep, -1, &oom);
        break;
    case FAKE_FDS_UNANNOUNCED: {
        int p[2], r;

        if (!c->is_unix) { /* nothing can pass: just the reply */
            put_bytes(o, rep->p, rep->len, &oom);
        } else {
            if (fk_flush(c) < 0 || pipe2(p, O_CLOEXEC) < 0)
                return FK_ABORT;
            r = fk_send_fd(c, p[0], rep->p[0]);
            close(p[0]);
            close(p[1]);
            if (r != 0)
                return FK_ABORT;
            put_bytes(o, rep->p + 1, rep->len - 1, &oom);
        }
        whole = 1;
        break;
    }
    default:
        put_bytes(o, rep->p, rep->len, &oom);
        whole = 1;
        break;
    }
    if (oom)
        return FK_ABORT;
    /* A reply that carries descriptors (LXC) gets them only when it went
     * out whole; a broken one's are closed. */
    return send_tx_fds(c, whole) < 0 ? FK_ABORT : FK_CONTINUE;
}

/* ------------------------------------------------------------------ streams */

static int is_stream_proc(int32_t proc)
{
    return proc == FK_PROC_DOMAIN_OPEN_CONSOLE || proc == FK_PROC_DOMAIN_OPEN_CHANNEL ||
           proc == FK_PROC_STORAGE_VOL_UPLOAD || proc == FK_PROC_STORAGE_VOL_DOWNLOAD ||
           proc == FK_PROC_DOMAIN_SCREENSHOT;
}

static fk_stream *stream_find(fake_conn *c, uint32_t serial)
{
    for (int i = 0; i < FK_MAX_STREAMS; i++)
        if (c->streams[i].used && c->streams[i].serial == serial)
            return &c->streams[i];
    return NULL;
}

/* Appends a stream packet of st (data, an end, or a status) to the output. */
static void stream_packet(fake_conn *c, const fk_stream *st, int32_t type, int32_t status,
                          const unsigned char *data, size_t len, int *oom)
{
    size_t at = begin_packet(&c->out, FK_PROG_REMOTE, FK_VERS, st->proc, type, st->serial,
                             status, oom);

    if (len > 0) /* an end or a status has no body (and data may be NULL) */
        put_bytes(&c->out, data, len, oom);
    end_packet(&c->out, at, *oom);
}

static void stream_error(fake_conn *c, const fk_stream *st, int code, int domain,
                         const char *message, int *oom)
{
    size_t at = begin_packet(&c->out, FK_PROG_REMOTE, FK_VERS, st->proc, FK_TYPE_STREAM,
                             st->serial, FK_STATUS_ERROR, oom);

    put_remote_error(&c->out, code, domain, 2, message, oom);
    end_packet(&c->out, at, *oom);
}

/* Appends a data packet of n bytes of the pattern, from offset off. */
static void pattern_packet(fake_conn *c, const fk_stream *st, uint64_t off, size_t n, int *oom)
{
    size_t at = begin_packet(&c->out, FK_PROG_REMOTE, FK_VERS, st->proc, FK_TYPE_STREAM,
                             st->serial, FK_STATUS_CONTINUE, oom);

    if (buf_reserve(&c->out, n) < 0) {
        *oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        c->out.p[c->out.len + i] = fake_stream_byte(off + i);
    c->out.len += n;
    end_packet(&c->out, at, *oom);
}

/* What a stream does once "after" bytes have gone by.  Returns an fk_next
 * value; the stream may be freed. */
static int stream_fault_now(fake_conn *c, fk_stream *st, int *oom)
{
    fake_server *s = c->srv;

    CTR_ADD(s, faults);
    switch (st->fault) {
    case FAKE_STREAM_ERROR:
        stream_error(c, st, FAKE_STREAM_ERROR_CODE, FAKE_STREAM_ERROR_DOMAIN,
                     FAKE_STREAM_ERROR_MESSAGE, oom);
        st->used = 0; /* later packets of it are dropped, as libvirtd does */
        return FK_CONTINUE;
    case FAKE_STREAM_CLOSE:
        return FK_CLOSE;
    case FAKE_STREAM_CUT: {
        size_t at = begin_packet(&c->out, FK_PROG_REMOTE, FK_VERS, st->proc, FK_TYPE_STREAM,
                                 st->serial, FK_STATUS_CONTINUE, oom);
        static const unsigned char half[512];

        put_bytes(&c->out, half, sizeof(half), oom);
        if (!*oom) /* the length word promises twice what follows */
            set_be32(c->out.p + at, (uint32_t)(c->out.len - at + sizeof(half)));
        return FK_CLOSE;
    }
    case FAKE_STREAM_END:
        stream_packet(c, st, FK_TYPE_STREAM, FK_STATUS_CONTINUE, NULL, 0, oom);
        st->quiet = 1;
        return FK_CONTINUE;
    case FAKE_STREAM_STALL:
    default:
        st->quiet = 1; /* nothing more: no echo, no data */
        return FK_CONTINUE;
    }
}

/* Sends a download's or screenshot's data after its reply. */
/* Sends the stream's data from byte off on, then its end (or its fault). */
static int stream_send_data(fake_conn *c, fk_stream *st, uint64_t off, int *oom)
{
    fake_server *s = c->srv;
    uint64_t total = atomic_load(&s->stream_bytes);
    int faulty = st->fault != FAKE_STREAM_NORMAL && st->fault != FAKE_STREAM_HOLE &&
                 st->fault != FAKE_STREAM_EARLY;

    if (!total)
        total = FK_DEFAULT_STREAM_BYTES;
    if (st->fault == FAKE_STREAM_HOLE) {
        unsigned char hole[12] = {0};

        set_be32(hole + 4, 4096);
        stream_packet(c, st, FK_TYPE_STREAM_HOLE, FK_STATUS_CONTINUE, hole, sizeof(hole), oom);
    }
    while (!*oom && off < total && !(faulty && off >= st->after)) {
        size_t n = total - off < FAKE_STREAM_CHUNK ? (size_t)(total - off) : FAKE_STREAM_CHUNK;

        if (faulty && off + n > st->after)
            n = (size_t)(st->after - off);
        pattern_packet(c, st, off, n, oom);
        off += n;
        CTR_ADDN(s, stream_tx_bytes, n);
        if (c->out.len >= FK_OUT_FLUSH && fk_flush(c) < 0)
            return FK_ABORT;
    }
    if (*oom)
        return FK_ABORT;
    if (faulty && off >= st->after)
        return stream_fault_now(c, st, oom);
    stream_packet(c, st, FK_TYPE_STREAM, FK_STATUS_CONTINUE, NULL, 0, oom); /* the end */
    return FK_CONTINUE;
}

/* Answers a stream-creating CALL and, for downloads, sends the data. */
/* FAKE_STREAM_EARLY: the first "after" bytes, in whole packets, ahead of
 * the reply.  Returns how many bytes went. */
static uint64_t send_early_data(fake_conn *c, fk_stream *st, int *oom)
{
    fake_server *s = c->srv;
    uint64_t total = atomic_load(&s->stream_bytes), off = 0;

    if (!total)
        total = FK_DEFAULT_STREAM_BYTES;
    while (!*oom && off < st->after && off < total) {
        size_t n = total - off < FAKE_STREAM_CHUNK ? (size_t)(total - off) : FAKE_STREAM_CHUNK;
        pattern_packet(c, st, off, n, oom);
        off += n;
        CTR_ADDN(s, stream_tx_bytes, n);
    }
    return off;
}

static int stream_open(fake_conn *c, const unsigned char *hdr, int *oom)
{
    fake_server *s = c->srv;
    int32_t proc = (int32_t)get_be32(hdr + 8);
    fk_stream *st = NULL;
    uint64_t early = 0;
    size_t at;

    for (int i = 0; i < FK_MAX_STREAMS && !st; i++)
        if (!c->streams[i].used)
            st = &c->streams[i];
    if (!st) {
        error_reply(&c->out, hdr, 1, 7, "fake: too many streams", oom);
        return FK_CONTINUE;
    }
    memset(st, 0, sizeof(*st));
    st->used = 1;
    st->serial = get_be32(hdr + 16);
    st->proc = proc;
    st->fault = (fake_stream_fault)atomic_load(&s->stream_fault);
    st->after = atomic_load(&s->stream_after);
    CTR_ADD(s, stream_opens);
    if (st->fault == FAKE_STREAM_EARLY &&
        (proc == FK_PROC_STORAGE_VOL_DOWNLOAD || proc == FK_PROC_DOMAIN_SCREENSHOT))
        early = send_early_data(c, st, oom);
    at = begin_packet(&c->out, FK_PROG_REMOTE, FK_VERS, proc, FK_TYPE_REPLY, st->serial,
                      FK_STATUS_OK, oom);
    if (proc == FK_PROC_DOMAIN_SCREENSHOT) {
        put_u32(&c->out, 1, oom); /* mime present */
        put_string(&c->out, FAKE_SCREENSHOT_MIME, oom);
    }
    end_packet(&c->out, at, *oom);
    if (proc == FK_PROC_STORAGE_VOL_DOWNLOAD || proc == FK_PROC_DOMAIN_SCREENSHOT)
        return stream_send_data(c, st, early, oom);
    if (st->fault != FAKE_STREAM_NORMAL && st->after == 0)
        return stream_fault_now(c, st, oom);
    return FK_CONTINUE;
}

/* A STREAM or STREAM_HOLE packet from the client. */
static int stream_input(fake_conn *c, const unsigned char *hdr, const unsigned char *body,
                        size_t blen)
{
    fake_server *s = c->srv;
    int32_t type = (int32_t)get_be32(hdr + 12), status = (int32_t)get_be32(hdr + 20);
    fk_stream *st = stream_find(c, get_be32(hdr + 16));
    int oom = 0, next = FK_CONTINUE;

    if (!st || (int32_t)get_be32(hdr + 8) != st->proc) {
        CTR_ADD(s, stream_dropped);
        return FK_CONTINUE;
    }
    if (status == FK_STATUS_OK) { /* finish */
        CTR_ADD(s, stream_finishes);
        stream_packet(c, st, FK_TYPE_STREAM, FK_STATUS_OK, NULL, 0, &oom);
        st->used = 0;
    } else if (status == FK_STATUS_ERROR) { /* abort */
        CTR_ADD(s, stream_aborts);
        stream_error(c, st, FAKE_ABORT_CODE, 7, FAKE_ABORT_MESSAGE, &oom);
        st->used = 0;
    } else if (type == FK_TYPE_STREAM_HOLE) {
        if (blen == 12)
            CTR_ADDN(s, stream_rx_holes,
                     (uint64_t)get_be32(body) << 32 | get_be32(body + 4));
        else
            CTR_ADD(s, bad_packets);
        if (st->proc == FK_PROC_STORAGE_VOL_UPLOAD && blen == 12)
            st->bytes += (uint64_t)get_be32(body) << 32 | get_be32(body + 4);
    } else if (st->proc == FK_PROC_STORAGE_VOL_UPLOAD) {
        uint64_t bad = 0;

        for (size_t i = 0; i < blen; i++)
            bad += body[i] != fake_stream_byte(st->bytes + i);
        CTR_ADDN(s, stream_rx_bytes, blen);
        CTR_ADDN(s, stream_rx_mismatch, bad);
        st->bytes += blen;
        if (st->fault != FAKE_STREAM_NORMAL && !st->quiet && st->bytes >= st->after)
            next = stream_fault_now(c, st, &oom);
    } else if (st->proc == FK_PROC_DOMAIN_OPEN_CONSOLE ||
               st->proc == FK_PROC_DOMAIN_OPEN_CHANNEL) {
        int faulty = st->fault != FAKE_STREAM_NORMAL;
        size_t n = blen;

        CTR_ADDN(s, stream_rx_bytes, blen);
        if (!st->quiet) { /* echo, up to the fault */
            if (faulty && st->bytes + n > st->after)
                n = (size_t)(st->after - st->bytes);
            if (n > 0)
                stream_packet(c, st, FK_TYPE_STREAM, FK_STATUS_CONTINUE, body, n, &oom);
            st->bytes += n;
            CTR_ADDN(s, stream_tx_bytes, n);
            if (faulty && st->bytes >= st->after)
                next = stream_fault_now(c, st, &oom);
        }
    } else {
        CTR_ADDN(s, stream_rx_bytes, blen); /* data sent to a download: ignored */
    }
    return oom ? FK_ABORT : next;
}

static int is_call_fault(fake_behavior b)
{
    return (b >= FAKE_GARBAGE && b <= FAKE_MAX_REPLY) ||
           (b >= FAKE_FDS_MISSING && b <= FAKE_FDS_UNANNOUNCED);
}

/* Handles one complete packet p[0..len) (a CALL_WITH_FDS's descriptors are
 * in c->call_fds).  Returns an fk_next value. */
static int handle_packet(fake_conn *c, const unsigned char *p, size_t len)
{
    fake_server *s = c->srv;
    const unsigned char *hdr = p + 4, *body = p + FK_PACKET_MIN;
    size_t blen = len - FK_PACKET_MIN;
    uint32_t prog = get_be32(hdr), vers = get_be32(hdr + 4);
    int32_t proc = (int32_t)get_be32(hdr + 8), type = (int32_t)get_be32(hdr + 12);
    unsigned mode = atomic_load_explicit(&s->mode, memory_order_relaxed);
    fake_behavior b = (fake_behavior)(mode & 0xffu);
    unsigned flags = mode >> 8;
    int oom = 0, hs, fault;

    if (prog == FK_PROG_KEEPALIVE && type == FK_TYPE_MESSAGE) {
        if (proc == FK_PROC_PING) {
            CTR_ADD(s, pings);
            ping_packet(&c->out, FK_PROC_PONG, &oom);
        } else if (proc == FK_PROC_PONG) {
            CTR_ADD(s, pongs);
        }
        return oom ? FK_ABORT : FK_CONTINUE;
    }
    if (prog == FK_PROG_REMOTE && vers == FK_VERS &&
        (type == FK_TYPE_STREAM || type == FK_TYPE_STREAM_HOLE))
        return stream_input(c, hdr, body, blen);
    if ((prog != FK_PROG_REMOTE && prog != FK_PROG_LXC) || vers != FK_VERS ||
        (type != FK_TYPE_CALL && type != FK_TYPE_CALL_WITH_FDS)) {
        CTR_ADD(s, bad_packets); /* events, strangers: ignored */
        return FK_CONTINUE;
    }
    if (type == FK_TYPE_CALL_WITH_FDS) { /* the count (conn_main read it) */
        body += 4;
        blen -= 4;
    }

    CTR_ADD(s, calls);
    if (b == FAKE_INSTANT) {
        normal_reply(c, &c->out, hdr, body, blen, 0, &oom);
        if (oom)
            return FK_ABORT;
        return send_tx_fds(c, 1) < 0 ? FK_ABORT : FK_CONTINUE;
    }

    hs = is_handshake_proc(prog, proc);
    if (hs)
        CTR_ADD(s, handshake_calls);
    else if (!c->opened)
        CTR_ADD(s, calls_before_open);

    fault = 0;
    if (is_call_fault(b)) {
        if (flags & FAKE_IN_HANDSHAKE)
            fault = c->ncalls == 0;
        else
            fault = !hs && ((flags & FAKE_ALL_CALLS) || c->ncalls_other == 0);
    }
    c->ncalls++;
    if (!hs)
        c->ncalls_other++;

    if (fault)
        return fault_reply(c, b, hdr, body, blen);

    if (b == FAKE_AUTH_SASL_ONLY && hs && proc == FK_PROC_AUTH_LIST) {
        size_t st = begin_packet(&c->out, prog, vers, proc, FK_TYPE_REPLY,
                                 get_be32(hdr + 16), FK_STATUS_OK, &oom);

        CTR_ADD(s, faults);
        put_u32(&c->out, 1, &oom);
        put_u32(&c->out, 1, &oom); /* REMOTE_AUTH_SASL */
        end_packet(&c->out, st, oom);
    } else if (b == FAKE_REFUSE_OPEN && hs && proc == FK_PROC_CONNECT_OPEN) {
        CTR_ADD(s, faults);
        error_reply(&c->out, hdr, FAKE_REFUSE_CODE, FAKE_REFUSE_DOMAIN,
                    FAKE_REFUSE_MESSAGE, &oom);
    } else if (c->opened && prog == FK_PROG_REMOTE && is_stream_proc(proc)) {
        int next = stream_open(c, hdr, &oom);

        return oom ? FK_ABORT : next;
    } else {
        normal_reply(c, &c->out, hdr, body, blen, 1, &oom);
        if (!oom && send_tx_fds(c, 1) < 0)
            return FK_ABORT;
    }
    return oom ? FK_ABORT : FK_CONTINUE;
}

/* ------------------------------------------------------------------ threads */

static void *conn_main(void *arg)
{
    fake_conn *c = arg;
    fake_server *s = c->srv;
    int next = FK_CONTINUE, peer_closed = 0;

    if (buf_reserve(&c->in, FK_IN_INITIAL) < 0)
        goto out;
    while (next == FK_CONTINUE) {
        ssize_t n = fk_read(c);

        if (n == 0)
            peer_closed = 1;
        if (n <= 0)
            break;
        /* Answer every complete packet, then write all answers at once. */
        while (next == FK_CONTINUE && c->in.len - c->in_pos >= 4) {
            const unsigned char *p = c->in.p + c->in_pos;
            uint32_t plen = get_be32(p), nfds = 0;
            size_t need;

            if (plen < FK_PACKET_MIN || plen > FK_PACKET_MAX) {
                CTR_ADD(s, bad_packets);
                next = FK_ABORT;
                break;
            }
            need = plen;
            if (c->in.len - c->in_pos >= FK_PACKET_MIN &&
                get_be32(p + 16) == FK_TYPE_CALL_WITH_FDS) {
                /* the count, then (after the packet) a dummy byte each */
                if (plen < FK_PACKET_MIN + 4 || !c->is_unix) {
                    CTR_ADD(s, bad_packets);
                    next = FK_ABORT;
                    break;
                }
                if (c->in.len - c->in_pos >= FK_PACKET_MIN + 4) {
                    nfds = get_be32(p + FK_PACKET_MIN);
                    if (nfds > FK_NUM_FDS_MAX) {
                        CTR_ADD(s, bad_packets);
                        next = FK_ABORT;
                        break;
                    }
                    need += nfds;
                }
            }
            if (c->in.len - c->in_pos < need) {
                size_t have = c->in.len - c->in_pos;

                memmove(c->in.p, p, have);
                c->in.len = have;
                c->in_pos = 0;
                if (need + 4 > c->in.cap && buf_reserve(&c->in, need + 4 - have) < 0)
                    next = FK_ABORT;
                break;
            }
            if (nfds) { /* their dummy bytes are in: so are they */
                if (c->rx_fds_bad || c->nrx_fds < nfds) {
                    CTR_ADD(s, bad_packets);
                    next = FK_ABORT;
                    break;
                }
                memcpy(c->call_fds, c->rx_fds, nfds * sizeof(int));
                c->ncall_fds = nfds;
                c->nrx_fds -= nfds;
                memmove(c->rx_fds, c->rx_fds + nfds, c->nrx_fds * sizeof(int));
                CTR_ADD(s, fds_calls);
                CTR_ADDN(s, fds_received, nfds);
            }
            next = handle_packet(c, p, plen);
            close_fds(c->call_fds, &c->ncall_fds); /* those not used */
            c->in_pos += need;
            if (next == FK_CONTINUE && c->out.len >= FK_OUT_FLUSH &&
                fk_flush(c) < 0)
                next = FK_ABORT;
        }
        if (c->in_pos == c->in.len)
            c->in.len = c->in_pos = 0;
        if (next == FK_CONTINUE && fk_flush(c) < 0)
            next = FK_ABORT;
    }
    if (next == FK_CLOSE)
        fk_linger(c);
out:
    if (peer_closed)
        CTR_ADD(s, closed_by_peer);
    close_fds(c->rx_fds, &c->nrx_fds);
    close_fds(c->call_fds, &c->ncall_fds);
    close_fds(c->tx_fds, &c->ntx_fds);
    close(c->fd);
    c->fd = -1;
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->scratch);
    atomic_fetch_sub(&s->active, 1);
    atomic_store(&c->done, 1);
    return NULL;
}

static void conn_free(fake_conn *c)
{
    pthread_join(c->thread, NULL);
    free(c);
}

/* Joins connections whose thread has finished. */
static void reap_done(fake_server *s)
{
    fake_conn **pp, *c;

    pthread_mutex_lock(&s->lock);
    pp = &s->conns;
    while ((c = *pp) != NULL) {
        if (atomic_load(&c->done)) {
            *pp = c->next;
            conn_free(c);
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

static void start_conn(fake_server *s, int fd, int tcp)
{
    fake_conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (!c) {
        close(fd);
        return;
    }
    if (tcp)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->srv = s;
    c->fd = fd;
    c->is_unix = !tcp;
    CTR_ADD(s, accepted);
    atomic_fetch_add(&s->active, 1);
    if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
        atomic_fetch_sub(&s->active, 1);
        close(fd);
        free(c);
        return;
    }
    pthread_mutex_lock(&s->lock);
    c->next = s->conns;
    s->conns = c;
    pthread_mutex_unlock(&s->lock);
}

static void *acceptor_main(void *arg)
{
    fake_server *s = arg;
    struct pollfd pfd[3];
    nfds_t n = 0, i;

    pfd[n].fd = s->stop_pipe[0];
    pfd[n++].events = POLLIN;
    pfd[n].fd = s->tcp_fd;
    pfd[n++].events = POLLIN;
    if (s->unix_fd >= 0) {
        pfd[n].fd = s->unix_fd;
        pfd[n++].events = POLLIN;
    }
    for (;;) {
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[0].revents)
            break;
        for (i = 1; i < n; i++) {
            int fd;

            if (!pfd[i].revents)
                continue;
            fd = accept4(pfd[i].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                    errno == ENOMEM)
                    fk_sleep(s, 10);
                continue;
            }
            reap_done(s);
            start_conn(s, fd, pfd[i].fd == s->tcp_fd);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ public */

static int listen_tcp(fake_server *s)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int one = 1;

    s->tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->tcp_fd < 0)
        return -1;
    setsockopt(s->tcp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(s->tcp_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(s->tcp_fd, 256) < 0 ||
        getsockname(s->tcp_fd, (struct sockaddr *)&sa, &sl) < 0)
        return -1;
    s->port = ntohs(sa.sin_port);
    return 0;
}

static int listen_unix(fake_server *s)
{
    struct sockaddr_un sa;

    snprintf(s->dir, sizeof(s->dir), "/tmp/lvrpc-fake-XXXXXX");
    if (!mkdtemp(s->dir)) {
        s->dir[0] = '\0';
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(s->path, sizeof(s->path), "%s/libvirt-sock", s->dir);
    memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
    s->unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->unix_fd < 0)
        return -1;
    if (bind(s->unix_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        s->path[0] = '\0';
        return -1;
    }
    return listen(s->unix_fd, 256);
}

static void release(fake_server *s)
{
    if (s->tcp_fd >= 0)
        close(s->tcp_fd);
    if (s->unix_fd >= 0)
        close(s->unix_fd);
    if (s->path[0])
        unlink(s->path);
    if (s->dir[0])
        rmdir(s->dir);
    if (s->stop_pipe[0] >= 0)
        close(s->stop_pipe[0]);
    if (s->stop_pipe[1] >= 0)
        close(s->stop_pipe[1]);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int fake_server_start(const fake_config *cfg, fake_server **out)
{
    static const fake_config defaults;
    fake_server *s;
    int err;

    *out = NULL;
    if (!cfg)
        cfg = &defaults;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    s->tcp_fd = s->unix_fd = -1;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->mode, ((unsigned)cfg->behavior & 0xffu) |
                              cfg->behavior_flags << 8);
    atomic_init(&s->slow_ms, cfg->slow_ms);
    atomic_init(&s->list_count, cfg->list_count ? cfg->list_count : 3);
    atomic_init(&s->stream_bytes, cfg->stream_bytes);

    if (pipe2(s->stop_pipe, O_CLOEXEC) < 0 || listen_tcp(s) < 0 ||
        (cfg->unix_socket && listen_unix(s) < 0))
        goto fail;
    if ((err = pthread_create(&s->acceptor, NULL, acceptor_main, s)) != 0) {
        errno = err;
        goto fail;
    }
    s->acceptor_started = 1;
    *out = s;
    return 0;

fail:
    err = errno;
    fprintf(stderr, "fake_server_start: %s\n", strerror(err));
    release(s);
    errno = err;
    return -1;
}

void fake_server_stop(fake_server *s)
{
    fake_conn *c, *next;
    char one = 1;

    if (!s)
        return;
    /* The byte is never read: the pipe stays readable and wakes every poll. */
    while (write(s->stop_pipe[1], &one, 1) < 0 && errno == EINTR)
        ;
    if (s->acceptor_started)
        pthread_join(s->acceptor, NULL);
    pthread_mutex_lock(&s->lock);
    c = s->conns;
    s->conns = NULL;
    pthread_mutex_unlock(&s->lock);
    for (; c; c = next) {
        next = c->next;
        conn_free(c);
    }
    release(s);
}

int fake_server_port(const fake_server *s)
{
    return s->port;
}

const char *fake_server_unix_path(const fake_server *s)
{
    return s->path[0] ? s->path : NULL;
}

char *fake_server_uri(const fake_server *s, int use_unix, char *buf,
                      size_t size)
{
    if (use_unix && s->path[0])
        snprintf(buf, size, "test+unix:///default?socket=%s", s->path);
    else
        snprintf(buf, size, "test+tcp://127.0.0.1:%d/default", s->port);
    return buf;
}

void fake_server_set_behavior(fake_server *s, fake_behavior b, unsigned flags)
{
    atomic_store(&s->mode, ((unsigned)b & 0xffu) | flags << 8);
}

fake_behavior fake_server_get_behavior(fake_server *s, unsigned *flags)
{
    unsigned m = atomic_load(&s->mode);

    if (flags)
        *flags = m >> 8;
    return (fake_behavior)(m & 0xffu);
}

void fake_server_set_slow_ms(fake_server *s, unsigned ms)
{
    atomic_store(&s->slow_ms, ms);
}

void fake_server_set_list_count(fake_server *s, unsigned count)
{
    atomic_store(&s->list_count, count);
}

void fake_server_set_stream(fake_server *s, fake_stream_fault fault, uint64_t after,
                            uint64_t bytes)
{
    atomic_store(&s->stream_after, after);
    atomic_store(&s->stream_bytes, bytes);
    atomic_store(&s->stream_fault, (unsigned)fault);
}

void fake_server_get_stats(fake_server *s, fake_stats *out)
{
    out->accepted = CTR_GET(s, accepted);
    out->active = CTR_GET(s, active);
    out->closed_by_peer = CTR_GET(s, closed_by_peer);
    out->calls = CTR_GET(s, calls);
    out->handshake_calls = CTR_GET(s, handshake_calls);
    out->calls_before_open = CTR_GET(s, calls_before_open);
    out->faults = CTR_GET(s, faults);
    out->pings = CTR_GET(s, pings);
    out->pongs = CTR_GET(s, pongs);
    out->bad_packets = CTR_GET(s, bad_packets);
    out->open_flags = CTR_GET(s, open_flags);
    out->stream_opens = CTR_GET(s, stream_opens);
    out->stream_tx_bytes = CTR_GET(s, stream_tx_bytes);
    out->stream_rx_bytes = CTR_GET(s, stream_rx_bytes);
    out->stream_rx_holes = CTR_GET(s, stream_rx_holes);
    out->stream_rx_mismatch = CTR_GET(s, stream_rx_mismatch);
    out->stream_finishes = CTR_GET(s, stream_finishes);
    out->stream_aborts = CTR_GET(s, stream_aborts);
    out->stream_dropped = CTR_GET(s, stream_dropped);
    out->fds_calls = CTR_GET(s, fds_calls);
    out->fds_received = CTR_GET(s, fds_received);
    out->fds_sent = CTR_GET(s, fds_sent);
}

uint64_t fake_server_connections(fake_server *s)
{
    return CTR_GET(s, accepted);
}

uint64_t fake_server_calls(fake_server *s)
{
    return CTR_GET(s, calls);
}

void fake_server_last_open_name(fake_server *s, char *buf, size_t size)
{
    pthread_mutex_lock(&s->lock);
    snprintf(buf, size, "%s", s->last_name);
    pthread_mutex_unlock(&s->lock);
}

/* Polls a counter until it reaches n; the tests only wait on rare events. */
static int wait_counter(fake_server *s, atomic_uint_fast64_t *ctr, uint64_t n,
                        unsigned timeout_ms)
{
    unsigned waited = 0;

    for (;;) {
        if (atomic_load(ctr) >= n)
            return 1;
        if (waited >= timeout_ms)
            return 0;
        if (fk_sleep(s, 2) < 0)
            return atomic_load(ctr) >= n;
        waited += 2;
    }
}

int fake_server_wait_closed_by_peer(fake_server *s, uint64_t n,
                                    unsigned timeout_ms)
{
    return wait_counter(s, &s->closed_by_peer, n, timeout_ms);
}

int fake_server_wait_calls(fake_server *s, uint64_t n, unsigned timeout_ms)
{
    return wait_counter(s, &s->calls, n, timeout_ms);
}
