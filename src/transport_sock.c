/* transport_sock.c - plain TCP and UNIX sockets.
 *
 * Sockets stay blocking: a call is then one send() and usually one recv(),
 * the fewest system calls per round trip.  Deadlines are enforced with
 * SO_RCVTIMEO/SO_SNDTIMEO, which are only changed when the time left is
 * clearly shorter than the value already set, so the fast path makes no
 * extra setsockopt() call.
 *
 * File uploads (send_file_all): a stream packet's body is mapped from the
 * file (mmap) and written with its 28-byte prefix in one sendmsg(): the
 * kernel copies it from the page cache into the socket, and the client
 * never reads the file into a buffer of its own.  An upload maps a window
 * of many packets at a time (lvrpci_file_window): one mapping per packet
 * spent more CPU filling and tearing down page tables than the copy took.
 * A packet that another follows at once goes with MSG_MORE: a 262148-byte
 * packet is four 64 KiB segments and 4 bytes, which would otherwise go out
 * as a segment of their own (an eighth of an upload's client CPU).
 * Not sendfile(), which copies nothing at all: its socket buffers hold
 * the file's pages, one 4 KiB page per fragment, which the receiving
 * socket cannot merge, and libvirtd then spent about 30 % more CPU per MiB
 * receiving an upload
 * (TcpExtTCPRcvCoalesce: 700 merges per GiB instead of 6,000).  The daemon
 * is what limits an upload's speed: sendfile() made it 15-25 % slower than
 * this copy, for about 0.15 ms/MiB less client CPU (bench/stream.sh).
 * Only the kernel reads the mapping, so a file truncated meanwhile makes
 * the write fail with EFAULT (no SIGBUS): the packet cannot be finished and
 * the caller must drop the connection.  A file that cannot be mapped is
 * read and sent instead.
 *
 * File descriptors (UNIX sockets only, unix_ops): each goes on a dummy
 * byte of its own after the packet that announced it; reads use recvmsg()
 * and queue what arrives, with the stream offset of the byte it came on,
 * for the conn layer to match against the packet's dummy bytes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lvrpc_internal.h"

/* A timeout already set may overshoot the deadline by this much. */
#define TIMEOUT_SLACK_NS 10000000 /* 10 ms */

/* Applies a deadline to SO_RCVTIMEO (which = 0) or SO_SNDTIMEO (1).
 * Returns LVRPC_ETIMEDOUT if it has passed. */
int lvrpci_sock_set_timeout(lvrpci_transport *t, int which, int64_t deadline)
{
    int64_t *cur = which ? &t->snd_timeout_ns : &t->rcv_timeout_ns;
    int64_t left = 0;
    struct timeval tv;

    if (deadline) {
        left = deadline - lvrpci_now_ns();
        if (left <= 0)
            return LVRPC_ETIMEDOUT;
        /* Keep the value set when it cannot overshoot much and is not so
         * short that reads would spin: a shorter one only makes us loop. */
        if (*cur > 0 && *cur <= left + TIMEOUT_SLACK_NS && *cur * 2 >= left)
            return LVRPC_OK;
    } else if (*cur == 0) {
        return LVRPC_OK;
    }
    tv.tv_sec = (time_t)(left / 1000000000);
    tv.tv_usec = (suseconds_t)((left % 1000000000) / 1000);
    if (deadline && tv.tv_sec == 0 && tv.tv_usec == 0)
        tv.tv_usec = 1;
    if (setsockopt(t->fd, SOL_SOCKET, which ? SO_SNDTIMEO : SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        return lvrpci_fail(LVRPC_ESYS, errno, "setsockopt: %s", strerror(errno));
    *cur = left;
    return LVRPC_OK;
}

static int io_error(int err, const char *what)
{
    int code = lvrpci_errno_code(err);

    if (code == LVRPC_ECLOSED)
        return lvrpci_fail(code, err, "connection closed by the daemon (%s: %s)", what,
                           strerror(err));
    return lvrpci_fail(code, err, "%s failed: %s", what, strerror(err));
}

static int sock_write_all(lvrpci_transport *t, const void *buf, size_t len, int64_t deadline)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n;
        if (lvrpci_sock_set_timeout(t, 1, deadline) != LVRPC_OK)
            return lvrpci_fail(LVRPC_ETIMEDOUT, ETIMEDOUT, "timed out sending to the daemon");
        n = send(t->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return io_error(errno, "send");
        }
        p += n;
        len -= (size_t)n;
    }
    return LVRPC_OK;
}

/* Writes iov[0..n) whole; flags adds MSG_MORE when a body follows. */
static int sock_writev_flags(lvrpci_transport *t, const struct iovec *iov_in, int n, int flags,
                             int64_t deadline)
{
    struct iovec iov[8];
    struct msghdr mh;
    int i = 0;

    if (n > 8)
        return lvrpci_fail(LVRPC_EINVAL, 0, "too many iovecs");
    memcpy(iov, iov_in, (size_t)n * sizeof(*iov));
    while (i < n) {
        ssize_t w;
        if (iov[i].iov_len == 0) {
            i++;
            continue;
        }
        if (lvrpci_sock_set_timeout(t, 1, deadline) != LVRPC_OK)
            return lvrpci_fail(LVRPC_ETIMEDOUT, ETIMEDOUT, "timed out sending to the daemon");
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = iov + i;
        mh.msg_iovlen = (size_t)(n - i);
        w = sendmsg(t->fd, &mh, MSG_NOSIGNAL | flags);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return io_error(errno, "send");
        }
        while (i < n && (size_t)w >= iov[i].iov_len) {
            w -= (ssize_t)iov[i].iov_len;
            i++;
        }
        if (i < n) {
            iov[i].iov_base = (char *)iov[i].iov_base + w;
            iov[i].iov_len -= (size_t)w;
        }
    }
    return LVRPC_OK;
}

/* Keeps the descriptors a recvmsg() brought, oldest first, with the
 * offset of the read's last byte, the one that carried them; more than the
 * queue holds, or a truncated set, marks the transport bad (the packet that
 * claims them fails) and closes the excess: nothing leaks. */
static void keep_rx_fds(lvrpci_transport *t, struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        size_t n;
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (t->nrx_fds < LVRPCI_RX_FDS_MAX) {
                t->rx_fd_at[t->nrx_fds] = t->rx_total - 1;
                t->rx_fds[t->nrx_fds++] = fd;
            } else {
                close(fd);
                t->rx_fds_bad = 1;
            }
        }
    }
    if (mh->msg_flags & MSG_CTRUNC)
        t->rx_fds_bad = 1;
}

/* One receive: recv(), or on a UNIX socket recvmsg(), which also takes the
 * descriptors the daemon passes (a plain recv() would make the kernel
 * discard them).  Linux ends such a read right after the byte that
 * carried descriptors, so they arrive in order. */
static ssize_t receive(lvrpci_transport *t, void *buf, size_t len)
{
    union {
        char space[CMSG_SPACE(sizeof(int) * LVRPC_NUM_FDS_MAX)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {buf, len};
    struct msghdr mh;
    ssize_t n;

    if (t->ops->send_fds == NULL)
        return recv(t->fd, buf, len, 0);
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.space;
    mh.msg_controllen = sizeof(ctl.space);
    n = recvmsg(t->fd, &mh, MSG_CMSG_CLOEXEC);
    if (n > 0) {
        t->rx_total += (uint64_t)n;
        keep_rx_fds(t, &mh);
    } else if (n == 0 && mh.msg_controllen) {
        keep_rx_fds(t, &mh); /* nothing to claim them: queued to be closed */
    }
    return n;
}

static int sock_writev_all(lvrpci_transport *t, const struct iovec *iov, int n,
                           int64_t deadline)
{
    return sock_writev_flags(t, iov, n, 0, deadline);
}

/* The file lost bytes of a packet already announced: it cannot be finished. */
static int file_cut_mid_packet(void)
{
    return lvrpci_fail(LVRPC_ESYS, 0, "the local file shrank while sending (mid-packet: "
                       "the connection is dropped)");
}

/* A body that cannot be mapped: read and sent with send().  The error
 * that stops it is the file's (it shrank, or a read failed) or the
 * socket's; either way the packet is cut. */
static int body_by_copy(lvrpci_transport *t, const lvrpci_file_span *b, int64_t deadline)
{
    size_t cap = b->len < 65536 ? b->len : 65536, left = b->len;
    unsigned char *buf = malloc(cap);
    off_t off = b->off;
    int rc = LVRPC_OK;

    if (!buf)
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    while (rc == LVRPC_OK && left > 0) {
        ssize_t n = pread(b->fd, buf, left < cap ? left : cap, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = lvrpci_fail(LVRPC_ESYS, errno, "reading the local file: %s (mid-packet: "
                             "the connection is dropped)", strerror(errno));
        else if (n == 0)
            rc = file_cut_mid_packet();
        else
            rc = sock_write_all(t, buf, (size_t)n, deadline);
        if (n > 0) {
            off += n;
            left -= (size_t)n;
        }
    }
    free(buf);
    return rc;
}

void lvrpci_file_window_release(lvrpci_file_window *w)
{
    if (w->map)
        munmap(w->map, w->len);
    memset(w, 0, sizeof(*w));
}

static int window_holds(const lvrpci_file_window *w, const lvrpci_file_span *b)
{
    return w->map && w->base <= b->off && b->off + (off_t)b->len <= w->base + (off_t)w->len;
}

/* The address of body's bytes in its window, mapped anew when it does not
 * hold them.  NULL: the file cannot be mapped. */
static const char *map_body(const lvrpci_file_span *b)
{
    long page = sysconf(_SC_PAGESIZE);
    lvrpci_file_window *w = b->win;
    off_t base = b->off - b->off % page, end = b->off + (off_t)b->len;
    void *m;

    if (window_holds(w, b))
        return (const char *)w->map + (b->off - w->base);
    lvrpci_file_window_release(w);
    if (b->win_end > end)
        end = b->win_end;
    /* Not MAP_POPULATE: its page-by-page walk cost more than the faults
     * the copy takes instead, each of which maps 16 pages. */
    m = mmap(NULL, (size_t)(end - base), PROT_READ, MAP_SHARED, b->fd, base);
    if (m == MAP_FAILED)
        return NULL;
    *w = (lvrpci_file_window){m, base, (size_t)(end - base)};
    return (const char *)m + (b->off - base);
}

/* The prefix and the mapped body in one sendmsg (see the top). */
static int sock_send_file_all(lvrpci_transport *t, const struct iovec *iov, int n,
                              const lvrpci_file_span *body, int64_t deadline)
{
    struct iovec v[8];
    const char *at;
    int rc;

    if (n > 7)
        return lvrpci_fail(LVRPC_EINVAL, 0, "too many iovecs");
    if (body->len == 0)
        return sock_writev_flags(t, iov, n, 0, deadline);
    if (!(at = map_body(body))) {
        rc = sock_writev_flags(t, iov, n, MSG_MORE, deadline);
        return rc == LVRPC_OK ? body_by_copy(t, body, deadline) : rc;
    }
    memcpy(v, iov, (size_t)n * sizeof(*v));
    v[n].iov_base = (void *)at;
    v[n].iov_len = body->len;
    rc = sock_writev_flags(t, v, n + 1, body->more ? MSG_MORE : 0, deadline);
    if (rc != LVRPC_OK && lvrpci_error()->sys_errno == EFAULT) /* cut under the mapping */
        rc = file_cut_mid_packet();
    return rc;
}

static ssize_t sock_read_some(lvrpci_transport *t, void *buf, size_t len, int64_t deadline)
{
    for (;;) {
        ssize_t n;
        if (lvrpci_sock_set_timeout(t, 0, deadline) != LVRPC_OK)
            return -lvrpci_fail(LVRPC_ETIMEDOUT, ETIMEDOUT,
                                "timed out waiting for the daemon's reply");
        n = receive(t, buf, len);
        if (n > 0)
            return n;
        if (n == 0)
            return -lvrpci_fail(LVRPC_ECLOSED, 0, "connection closed by the daemon");
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            continue;
        return -io_error(errno, "recv");
    }
}

static void sock_shutdown(lvrpci_transport *t)
{
    shutdown(t->fd, SHUT_RDWR);
}

/* The kernel holds all of a plain socket's input: poll() shows it. */
static int sock_has_input(lvrpci_transport *t)
{
    (void)t;
    return 0;
}

static void sock_destroy(lvrpci_transport *t)
{
    if (!t)
        return;
    if (t->fd >= 0)
        close(t->fd);
    for (unsigned i = 0; i < t->nrx_fds; i++)
        close(t->rx_fds[i]);
    free(t);
}

/* Sends one descriptor on one dummy byte, as libvirt's daemon reads them. */
static int send_one_fd(lvrpci_transport *t, int fd, int64_t deadline)
{
    union {
        char space[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    char dummy = 0;
    struct iovec iov = {&dummy, 1};
    struct msghdr mh;
    struct cmsghdr *cm;

    memset(&mh, 0, sizeof(mh));
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.space;
    mh.msg_controllen = sizeof(ctl.space);
    cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    for (;;) {
        ssize_t n;
        if (lvrpci_sock_set_timeout(t, 1, deadline) != LVRPC_OK)
            return lvrpci_fail(LVRPC_ETIMEDOUT, ETIMEDOUT, "timed out sending to the daemon");
        n = sendmsg(t->fd, &mh, MSG_NOSIGNAL);
        if (n == 1)
            return LVRPC_OK;
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n < 0 && errno == EBADF)
            return lvrpci_fail(LVRPC_EINVAL, errno, "cannot pass file descriptor %d: %s", fd,
                               strerror(errno));
        return io_error(n < 0 ? errno : EIO, "sendmsg (passing a file descriptor)");
    }
}

static int sock_send_fds(lvrpci_transport *t, const int *fds, unsigned n, int64_t deadline)
{
    for (unsigned i = 0; i < n; i++) {
        int rc = send_one_fd(t, fds[i], deadline);
        if (rc != LVRPC_OK)
            return rc;
    }
    return LVRPC_OK;
}

const lvrpci_transport_ops lvrpci_sock_ops = {
    .write_all = sock_write_all,
    .read_some = sock_read_some,
    .writev_all = sock_writev_all,
    .send_file_all = sock_send_file_all,
    .shutdown = sock_shutdown,
    .destroy = sock_destroy,
    .has_input = sock_has_input,
};

/* UNIX sockets: the same, and descriptors pass both ways. */
static const lvrpci_transport_ops unix_ops = {
    .write_all = sock_write_all,
    .read_some = sock_read_some,
    .writev_all = sock_writev_all,
    .send_file_all = sock_send_file_all,
    .shutdown = sock_shutdown,
    .destroy = sock_destroy,
    .has_input = sock_has_input,
    .send_fds = sock_send_fds,
};

/* connect() with a deadline: non-blocking connect, poll, then back to
 * blocking mode. */
static int connect_fd(int fd, const struct sockaddr *sa, socklen_t salen, int64_t deadline)
{
    int flags = fcntl(fd, F_GETFL);
    int err = 0;
    socklen_t elen = sizeof(err);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return errno;
    if (connect(fd, sa, salen) < 0) {
        if (errno != EINPROGRESS && errno != EAGAIN)
            return errno;
        for (;;) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int64_t left = deadline ? deadline - lvrpci_now_ns() : -1;
            int ms = left < 0 ? (deadline ? 0 : -1) : (int)((left + 999999) / 1000000);
            int n;
            if (deadline && left <= 0)
                return ETIMEDOUT;
            n = poll(&pfd, 1, ms);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return errno;
            if (n > 0)
                break;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
            return errno;
        if (err)
            return err;
    }
    if (fcntl(fd, F_SETFL, flags) < 0)
        return errno;
    return 0;
}

static int open_unix(const lvrpci_target *tg, int64_t deadline, int *out)
{
    struct sockaddr_un sa;
    int fd, err;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(tg->socket_path) >= sizeof(sa.sun_path))
        return lvrpci_fail(LVRPC_EINVAL, 0, "socket path too long: %s", tg->socket_path);
    strcpy(sa.sun_path, tg->socket_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return lvrpci_fail(lvrpci_errno_code(errno), errno, "socket: %s", strerror(errno));
    err = connect_fd(fd, (struct sockaddr *)&sa, sizeof(sa), deadline);
    if (err) {
        close(fd);
        return lvrpci_fail(lvrpci_errno_code(err), err, "cannot connect to socket '%s': %s",
                           tg->socket_path, strerror(err));
    }
    *out = fd;
    return LVRPC_OK;
}

static int open_tcp(const lvrpci_target *tg, int64_t deadline, int *out)
{
    struct addrinfo hints, *res = NULL;
    int rc, err = 0, one = 1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    rc = getaddrinfo(tg->host, tg->port, &hints, &res);
    if (rc == EAI_ADDRFAMILY || rc == EAI_NONAME) {
        hints.ai_flags = 0; /* AI_ADDRCONFIG hides ::1 on hosts with only loopback v6 */
        rc = getaddrinfo(tg->host, tg->port, &hints, &res);
    }
    if (rc != 0)
        return lvrpci_fail(rc == EAI_MEMORY ? LVRPC_ENOMEM : LVRPC_EUNREACHABLE, 0,
                           "unknown host '%s': %s", tg->host, gai_strerror(rc));
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        err = connect_fd(fd, ai->ai_addr, ai->ai_addrlen, deadline);
        if (err == 0) {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            freeaddrinfo(res);
            *out = fd;
            return LVRPC_OK;
        }
        close(fd);
        if (err == ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return lvrpci_fail(lvrpci_errno_code(err), err, "cannot connect to %s port %s: %s",
                       tg->host, tg->port, strerror(err));
}

int lvrpci_transport_writev(lvrpci_transport *t, const struct iovec *iov, int n,
                            int64_t deadline)
{
    lvrpci_buf b = {0};
    int rc = LVRPC_OK;

    if (t->ops->writev_all)
        return t->ops->writev_all(t, iov, n, deadline);
    for (int i = 0; i < n && rc == LVRPC_OK; i++) {
        rc = lvrpci_buf_reserve(&b, b.len + iov[i].iov_len);
        if (rc == LVRPC_OK) {
            memcpy(b.data + b.len, iov[i].iov_base, iov[i].iov_len);
            b.len += iov[i].iov_len;
        }
    }
    if (rc == LVRPC_OK)
        rc = t->ops->write_all(t, b.data, b.len, deadline);
    lvrpci_buf_clear(&b);
    return rc;
}

int lvrpci_sock_open_fd(const lvrpci_target *tg, int64_t deadline, int *fd_out)
{
    return tg->kind == LVRPCI_UNIX ? open_unix(tg, deadline, fd_out)
                                   : open_tcp(tg, deadline, fd_out);
}

int lvrpci_sock_connect(const lvrpci_target *tg, int64_t deadline, lvrpci_transport **out)
{
    lvrpci_transport *t;
    int fd, rc;

    *out = NULL;
    if ((rc = lvrpci_sock_open_fd(tg, deadline, &fd)) != LVRPC_OK)
        return rc;
    t = calloc(1, sizeof(*t));
    if (!t) {
        close(fd);
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    }
    t->ops = tg->kind == LVRPCI_UNIX ? &unix_ops : &lvrpci_sock_ops;
    t->fd = fd;
    *out = t;
    return LVRPC_OK;
}
