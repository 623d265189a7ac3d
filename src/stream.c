/* stream.c - the stream logic both engines share: packets of data, holes,
 * the end of data, finish and abort.  The engines only move packets
 * (lvrpci_stream_ops).
 *
 * lvrpc_stream_send_fd hands a regular file's data to the engine's
 * send_file, packet by packet, so that plain sockets send it from a mapping
 * of the file, never read into a buffer (TLS, pipes and files whose size
 * means nothing, like /proc's, are read into a buffer and sent as
 * lvrpc_stream_send does).
 * A packet's length goes out before its body, so it is taken from the
 * file's size just before: a file found shorter is an error with the
 * stream still in step (it is aborted); one cut while a packet is on its
 * way leaves that packet unfinishable, and the connection is dropped.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lvrpc_internal.h"

/* How long abort waits for the daemon's last word before giving up on it. */
#define ABORT_WAIT_MS 2000
/* Read size of the fd pumps. */
#define PUMP_CHUNK (1024u * 1024)
/* The packets one mapped window of an uploaded file holds (16 MiB): enough
 * that mapping costs little per packet, little enough not to map a whole
 * large file at once.  The packets are LVRPC_STREAM_CHUNK, as libvirt's own
 * client sends them: libvirtd takes larger ones (go-libvirt sends 4 MiB -
 * 28), and 1 MiB ones cut the client's CPU by a sixth, but the daemon then
 * spent 40 % more CPU per MiB receiving them and uploads ran 30 % slower
 * (6 interleaved rounds of 1 GiB, downloads between them). */
#define FILE_WINDOW_PACKETS 64

static int64_t deadline_of(lvrpc_stream *st)
{
    return lvrpci_deadline_after_ms(__atomic_load_n(&st->client->call_timeout_ms,
                                                    __ATOMIC_RELAXED));
}

static void close_stream(lvrpc_stream *st, int reusable)
{
    if (st->state == LVRPCI_ST_CLOSED)
        return;
    st->state = LVRPCI_ST_CLOSED;
    st->rx = NULL;
    st->rx_len = st->rx_off = 0;
    st->ops->release(st, reusable);
}

/* Fills hdr with the length word and header of a packet of the stream
 * whose body is len bytes. */
static void put_prefix(lvrpc_stream *st, unsigned char hdr[LVRPCI_PACKET_MIN], int type,
                       int status, size_t len)
{
    lvrpci_header h = {st->prog, st->vers, st->proc, type, st->serial, status};
    uint32_t n = htonl((uint32_t)(LVRPCI_PACKET_MIN + len));

    memcpy(hdr, &n, 4);
    lvrpci_header_put(hdr + LVRPCI_LEN_WORD, &h);
}

/* Sends one stream packet: header + body. */
static int send_packet(lvrpc_stream *st, int type, int status, const void *body, size_t len)
{
    unsigned char hdr[LVRPCI_PACKET_MIN];
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)body, len}};

    put_prefix(st, hdr, type, status, len);
    return st->ops->send(st, iov, len ? 2 : 1, deadline_of(st));
}

static int decode_stream_error(const unsigned char *body, size_t len)
{
    lvrpci_header h = {0, 0, 0, LVRPC_STREAM, 0, LVRPC_STATUS_ERROR};
    lvrpci_call none = {0};

    return lvrpci_decode_reply(&none, &h, body, len);
}

int lvrpc_stream_open(lvrpc_client *c, int proc, xdrproc_t xdr_args, const void *args,
                      xdrproc_t xdr_ret, size_t ret_size, void **ret, unsigned flags,
                      lvrpc_stream **out)
{
    lvrpci_call call = LVRPCI_CALL_INIT(LVRPC_PROGRAM_REMOTE, LVRPC_PROGRAM_REMOTE_VERSION,
                                        proc, xdr_args, args, xdr_ret, ret_size);
    lvrpc_stream *st;
    int rc;

    if (ret)
        *ret = NULL;
    if (!out || !c)
        return lvrpci_fail(LVRPC_EINVAL, 0, "lvrpc_stream_open: NULL argument");
    *out = NULL;
    if (xdr_ret && (!ret || !ret_size))
        return lvrpci_fail(LVRPC_EINVAL, 0, "lvrpc_stream_open: a reply routine needs ret");
    if (!(st = calloc(1, sizeof(*st))))
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    st->client = c;
    st->ops = c->ops->streams;
    st->engine = c->engine;
    st->prog = call.prog;
    st->vers = call.vers;
    st->proc = proc;
    st->flags = flags;
    rc = st->ops->open(c->engine, &call, lvrpci_deadline_after_ms(c->call_timeout_ms), st);
    if (rc != LVRPC_OK) {
        lvrpc_reply_free(call.ret);
        free(st);
        return rc;
    }
    if (ret)
        *ret = call.ret;
    else
        lvrpc_reply_free(call.ret);
    *out = st;
    return LVRPC_OK;
}

int lvrpc_storage_vol_upload_stream(lvrpc_client *c, const lvrpc_storage_vol_upload_args *args,
                                    unsigned flags, lvrpc_stream **out)
{
    return lvrpc_stream_open(c, LVRPC_PROC_STORAGE_VOL_UPLOAD,
                             (xdrproc_t)xdr_lvrpc_storage_vol_upload_args, args, NULL, 0, NULL,
                             flags, out);
}

int lvrpc_storage_vol_download_stream(lvrpc_client *c,
                                      const lvrpc_storage_vol_download_args *args,
                                      unsigned flags, lvrpc_stream **out)
{
    return lvrpc_stream_open(c, LVRPC_PROC_STORAGE_VOL_DOWNLOAD,
                             (xdrproc_t)xdr_lvrpc_storage_vol_download_args, args, NULL, 0,
                             NULL, flags, out);
}

int lvrpc_domain_screenshot_stream(lvrpc_client *c, const lvrpc_domain_screenshot_args *args,
                                   lvrpc_domain_screenshot_ret **ret, lvrpc_stream **out)
{
    void *r = NULL;
    int rc = lvrpc_stream_open(c, LVRPC_PROC_DOMAIN_SCREENSHOT,
                               (xdrproc_t)xdr_lvrpc_domain_screenshot_args, args,
                               (xdrproc_t)xdr_lvrpc_domain_screenshot_ret,
                               sizeof(lvrpc_domain_screenshot_ret), &r, 0, out);

    if (ret)
        *ret = r;
    else
        lvrpc_reply_free(r);
    return rc;
}

int lvrpc_domain_open_console_stream(lvrpc_client *c,
                                     const lvrpc_domain_open_console_args *args,
                                     lvrpc_stream **out)
{
    return lvrpc_stream_open(c, LVRPC_PROC_DOMAIN_OPEN_CONSOLE,
                             (xdrproc_t)xdr_lvrpc_domain_open_console_args, args, NULL, 0,
                             NULL, 0, out);
}

int lvrpc_domain_open_channel_stream(lvrpc_client *c,
                                     const lvrpc_domain_open_channel_args *args,
                                     lvrpc_stream **out)
{
    return lvrpc_stream_open(c, LVRPC_PROC_DOMAIN_OPEN_CHANNEL,
                             (xdrproc_t)xdr_lvrpc_domain_open_channel_args, args, NULL, 0,
                             NULL, 0, out);
}

static int check_open(lvrpc_stream *st)
{
    if (!st)
        return lvrpci_fail(LVRPC_EINVAL, 0, "stream is NULL");
    if (st->state == LVRPCI_ST_CLOSED)
        return lvrpci_fail(LVRPC_ECLOSED, 0, "the stream is already finished or aborted");
    return LVRPC_OK;
}

int lvrpc_stream_send(lvrpc_stream *st, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    int rc = check_open(st);

    while (rc == LVRPC_OK && len > 0) {
        size_t n = len < LVRPC_STREAM_CHUNK ? len : LVRPC_STREAM_CHUNK;
        rc = send_packet(st, LVRPC_STREAM, LVRPC_STATUS_CONTINUE, p, n);
        p += n;
        len -= n;
    }
    if (rc != LVRPC_OK && rc != LVRPC_EINVAL && st)
        close_stream(st, 0);
    return rc;
}

int lvrpc_stream_send_hole(lvrpc_stream *st, int64_t length)
{
    lvrpc_stream_hole hole = {length, 0};
    unsigned char body[12];
    XDR x;
    int rc = check_open(st);

    if (rc != LVRPC_OK)
        return rc;
    if (!(st->flags & LVRPC_STREAM_SPARSE))
        return lvrpci_fail(LVRPC_EINVAL, 0, "holes need a stream opened with LVRPC_STREAM_SPARSE");
    if (length <= 0)
        return lvrpci_fail(LVRPC_EINVAL, 0, "a hole must be longer than 0 bytes");
    xdrmem_create(&x, (char *)body, sizeof(body), XDR_ENCODE);
    xdr_lvrpc_stream_hole(&x, &hole);
    xdr_destroy(&x);
    rc = send_packet(st, LVRPC_STREAM_HOLE, LVRPC_STATUS_CONTINUE, body, sizeof(body));
    if (rc != LVRPC_OK)
        close_stream(st, 0);
    return rc;
}

/* Takes the next packet and handles what ends or breaks the stream.
 * Returns LVRPC_OK with a data packet in st->rx, a hole in *hole, or the
 * end (st->state RX_END). */
static int next_item(lvrpc_stream *st, int64_t *hole)
{
    lvrpci_header h;
    const unsigned char *body;
    size_t len;
    int rc = st->ops->next(st, deadline_of(st), &h, &body, &len);

    /* A timeout consumed nothing (Direct keeps a partial packet in the
     * connection's buffer, Shared leaves it queued): the stream stays open
     * and recv may be called again, e.g. on a console that is idle. */
    if (rc == LVRPC_ETIMEDOUT)
        return rc;
    if (rc != LVRPC_OK) {
        close_stream(st, 0);
        return rc;
    }
    if (h.status == LVRPC_STATUS_ERROR) {
        rc = decode_stream_error(body, len);
        close_stream(st, rc == LVRPC_EREMOTE);
        return rc;
    }
    if (h.type == LVRPC_STREAM && h.status == LVRPC_STATUS_CONTINUE) {
        if (len == 0) {
            st->state = LVRPCI_ST_RX_END;
            st->rx_end = 1;
        }
        st->rx = body;
        st->rx_len = len;
        st->rx_off = 0;
        return LVRPC_OK;
    }
    if (h.type == LVRPC_STREAM_HOLE && h.status == LVRPC_STATUS_CONTINUE) {
        lvrpc_stream_hole sh = {0, 0};
        XDR x;
        int ok;
        xdrmem_create(&x, (char *)body, (u_int)len, XDR_DECODE);
        ok = xdr_lvrpc_stream_hole(&x, &sh) && xdr_getpos(&x) == len;
        xdr_destroy(&x);
        if (!(st->flags & LVRPC_STREAM_SPARSE) || !ok || sh.length < 0) {
            close_stream(st, 0);
            return lvrpci_fail(LVRPC_EPROTO, 0, ok ? "the daemon sent a hole on a stream that "
                               "is not sparse" : "malformed stream hole packet");
        }
        *hole = sh.length;
        return LVRPC_OK;
    }
    if (h.type == LVRPC_STREAM && h.status == LVRPC_STATUS_OK) {
        /* The daemon closed the stream on its own: treat as the end. */
        st->rx_end = 1;
        close_stream(st, 1);
        return LVRPC_OK;
    }
    close_stream(st, 0);
    return lvrpci_fail(LVRPC_EPROTO, 0, "unexpected stream packet (type %d, status %d)",
                       h.type, h.status);
}

/* What lvrpc_stream_recv does, without the copy: *p points at up to max
 * bytes of the packet being handed out, valid until the next receive on the
 * stream (the fd pump writes from there directly). */
static int recv_ref(lvrpc_stream *st, size_t max, const unsigned char **p, size_t *got,
                    int64_t *hole)
{
    int64_t h = 0;
    int rc;

    while (st->rx_off >= st->rx_len) {
        if (st->rx_end)
            return LVRPC_OK; /* the end: *got 0, *hole 0 */
        if (st->state == LVRPCI_ST_CLOSED)
            return lvrpci_fail(LVRPC_ECLOSED, 0, "the stream is closed");
        st->rx_len = st->rx_off = 0;
        if ((rc = next_item(st, &h)) != LVRPC_OK)
            return rc;
        if (h) {
            if (!hole)
                return lvrpci_fail(LVRPC_EINVAL, 0, "a hole arrived but hole is NULL");
            *hole = h;
            return LVRPC_OK;
        }
    }
    {
        size_t n = st->rx_len - st->rx_off;
        if (n > max)
            n = max;
        *p = st->rx + st->rx_off;
        st->rx_off += n;
        *got = n;
    }
    return LVRPC_OK;
}

int lvrpc_stream_recv(lvrpc_stream *st, void *buf, size_t cap, size_t *got, int64_t *hole)
{
    const unsigned char *p = NULL;
    int rc;

    if (got)
        *got = 0;
    if (hole)
        *hole = 0;
    if (!st || !got || (!buf && cap))
        return lvrpci_fail(LVRPC_EINVAL, 0, "lvrpc_stream_recv: NULL argument");
    rc = recv_ref(st, cap, &p, got, hole);
    if (rc == LVRPC_OK && *got)
        memcpy(buf, p, *got);
    return rc;
}

/* Reads until the daemon's final OK (or error), dropping data still in
 * flight. */
static int await_final(lvrpc_stream *st, int64_t deadline)
{
    for (;;) {
        lvrpci_header h;
        const unsigned char *body;
        size_t len;
        int rc = st->ops->next(st, deadline, &h, &body, &len);
        if (rc != LVRPC_OK)
            return rc;
        if (h.type == LVRPC_STREAM && h.status == LVRPC_STATUS_OK)
            return LVRPC_OK;
        if (h.status == LVRPC_STATUS_ERROR)
            return decode_stream_error(body, len);
    }
}

int lvrpc_stream_finish(lvrpc_stream *st)
{
    int rc;

    if (st && st->state == LVRPCI_ST_CLOSED && st->rx_end)
        return LVRPC_OK; /* the daemon already closed it cleanly */
    rc = check_open(st);

    if (rc != LVRPC_OK)
        return rc;
    st->rx = NULL;
    st->rx_len = st->rx_off = 0;
    rc = send_packet(st, LVRPC_STREAM, LVRPC_STATUS_OK, NULL, 0);
    if (rc == LVRPC_OK)
        rc = await_final(st, deadline_of(st));
    close_stream(st, rc == LVRPC_OK || rc == LVRPC_EREMOTE);
    return rc;
}

int lvrpc_stream_abort(lvrpc_stream *st)
{
    int rc = check_open(st);

    if (rc != LVRPC_OK)
        return rc;
    st->rx = NULL;
    st->rx_len = st->rx_off = 0;
    rc = send_packet(st, LVRPC_STREAM, LVRPC_STATUS_ERROR, NULL, 0);
    if (rc == LVRPC_OK) {
        /* The daemon answers an abort with its own end (an error naming the
         * abort, or OK); after that the connection is clean again. */
        int fin = await_final(st, lvrpci_deadline_after_ms(ABORT_WAIT_MS));
        close_stream(st, fin == LVRPC_OK || fin == LVRPC_EREMOTE);
        return LVRPC_OK;
    }
    close_stream(st, 0);
    return rc;
}

void lvrpc_stream_free(lvrpc_stream *st)
{
    if (!st)
        return;
    if (st->state != LVRPCI_ST_CLOSED) {
        lvrpc_error saved = *lvrpci_error();
        lvrpc_stream_abort(st);
        lvrpci_set_error(&saved);
    }
    free(st);
}

/* ------------------------------------------------------------ fd pumps */

/* How an fd pump ends: a finished transfer is finished with the daemon
 * (its confirmation awaited); a failed one aborts the stream, keeping the
 * error that stopped it. */
static int end_pump(lvrpc_stream *st, int rc)
{
    if (rc == LVRPC_OK)
        return lvrpc_stream_finish(st);
    if (st->state != LVRPCI_ST_CLOSED) {
        lvrpc_error saved = *lvrpci_error();
        lvrpc_stream_abort(st);
        lvrpci_set_error(&saved);
    }
    return rc;
}

static int progress(lvrpc_progress_cb cb, void *opaque, uint64_t done, uint64_t total,
                    lvrpc_stream *st)
{
    if (cb && cb(done, total, opaque) != 0) {
        lvrpc_stream_abort(st);
        return lvrpci_fail(LVRPC_ECLOSED, 0, "the transfer was cancelled");
    }
    return LVRPC_OK;
}

/* The state of one lvrpc_stream_send_fd. */
typedef struct send_pump {
    lvrpc_stream *st;
    int fd;
    int from_file;        /* a readable regular file: try the engine's send_file */
    unsigned char *buf;   /* the copy path's buffer, made on first use */
    lvrpci_file_window win; /* the file path's mapped window */
    uint64_t done, total;
    lvrpc_progress_cb cb;
    void *opaque;
} send_pump;

static int pump_moved(send_pump *p, uint64_t n)
{
    p->done += n;
    return progress(p->cb, p->opaque, p->done, p->total, p->st);
}

/* Where a window mapped for the packet at off ends: FILE_WINDOW_PACKETS
 * whole packets on, or at lim (the file's size, or the range's end). */
static off_t window_end(off_t off, off_t lim)
{
    off_t w = (off_t)FILE_WINDOW_PACKETS * LVRPC_STREAM_CHUNK;

    return lim - off < w ? lim : off + w;
}

/* One data packet of len bytes of the file at off, sent by the engine
 * straight from the file.  LVRPCI_NO_SEND_FILE: the stream's transport
 * cannot (nothing sent). */
static int send_file_packet(send_pump *p, off_t off, size_t len, off_t lim)
{
    unsigned char hdr[LVRPCI_PACKET_MIN];
    struct iovec iov = {hdr, sizeof(hdr)};
    lvrpci_file_span body = {p->fd, off, len, &p->win, window_end(off, lim),
                             off + (off_t)len < lim};
    int rc;

    put_prefix(p->st, hdr, LVRPC_STREAM, LVRPC_STATUS_CONTINUE, len);
    rc = p->st->ops->send_file(p->st, &iov, 1, &body, deadline_of(p->st));
    if (rc != LVRPC_OK && rc != LVRPCI_NO_SEND_FILE)
        close_stream(p->st, 0); /* as lvrpc_stream_send: the packet may be cut */
    return rc;
}

/* Whether a read at off finds the end of the file. */
static int at_eof(int fd, off_t off)
{
    unsigned char byte;
    ssize_t n;

    while ((n = pread(fd, &byte, 1, off)) < 0 && errno == EINTR)
        ;
    return n == 0;
}

/* Sends [*off, end) of a regular file straight from it, never read into a
 * buffer of ours (end < 0: up to its end).  A packet announces its length
 * before its body goes out, so the size is checked before each one: a file
 * found shorter than end fails with the stream still clean; one cut while
 * its packet is being sent drops the connection (send_file_packet).  *off
 * advances; returns LVRPCI_NO_SEND_FILE when the transport cannot (before
 * the first packet) or the file goes on past its size: the copy path takes
 * over at *off. */
static int send_range_from_file(send_pump *p, off_t *off, off_t end)
{
    while (end < 0 || *off < end) {
        struct stat sb;
        off_t lim;
        size_t n;
        int rc;
        if (fstat(p->fd, &sb) < 0)
            return lvrpci_fail(LVRPC_ESYS, errno, "reading the local file: %s", strerror(errno));
        lim = end >= 0 && end < sb.st_size ? end : sb.st_size;
        if (*off >= lim && end >= 0)
            return lvrpci_fail(LVRPC_ESYS, 0, "the local file shrank while sending");
        if (*off >= lim) /* the end, unless the size lied: then read the rest */
            return at_eof(p->fd, *off) ? LVRPC_OK : LVRPCI_NO_SEND_FILE;
        n = lim - *off < (off_t)LVRPC_STREAM_CHUNK ? (size_t)(lim - *off) : LVRPC_STREAM_CHUNK;
        if ((rc = send_file_packet(p, *off, n, lim)) != LVRPC_OK)
            return rc;
        *off += (off_t)n;
        if ((rc = pump_moved(p, n)) != LVRPC_OK)
            return rc;
    }
    return LVRPC_OK;
}

/* Sends [off, end) of fd by reading it into a buffer (end < 0: read()
 * until EOF, from the file position). */
static int send_range_copy(send_pump *p, off_t off, off_t end)
{
    if (!p->buf && !(p->buf = malloc(PUMP_CHUNK)))
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    while (end < 0 || off < end) {
        size_t want = PUMP_CHUNK;
        ssize_t n;
        int rc;
        if (end >= 0 && (off_t)want > end - off)
            want = (size_t)(end - off);
        n = end >= 0 ? pread(p->fd, p->buf, want, off) : read(p->fd, p->buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return lvrpci_fail(LVRPC_ESYS, errno, "reading the local file: %s", strerror(errno));
        if (n == 0)
            return end < 0 ? LVRPC_OK
                           : lvrpci_fail(LVRPC_ESYS, 0, "the local file shrank while sending");
        if ((rc = lvrpc_stream_send(p->st, p->buf, (size_t)n)) != LVRPC_OK)
            return rc;
        off += n;
        if ((rc = pump_moved(p, (uint64_t)n)) != LVRPC_OK)
            return rc;
    }
    return LVRPC_OK;
}

/* Sends [off, end) of fd as data (end < 0: from the file position to
 * EOF): straight from the file when the file and the transport allow it. */
static int send_range(send_pump *p, off_t off, off_t end)
{
    off_t pos = off;
    int rc;

    if (!p->from_file || (end < 0 && (pos = lseek(p->fd, 0, SEEK_CUR)) < 0))
        return send_range_copy(p, off, end);
    rc = send_range_from_file(p, &pos, end);
    /* Reading to EOF leaves the file position at the end, as read() does,
     * and the copy path (when the transport cannot) goes on from there. */
    if (end < 0 && lseek(p->fd, pos, SEEK_SET) < 0 && (rc == LVRPC_OK || rc == LVRPCI_NO_SEND_FILE))
        rc = lvrpci_fail(LVRPC_ESYS, errno, "seeking the local file: %s", strerror(errno));
    if (rc != LVRPCI_NO_SEND_FILE)
        return rc;
    p->from_file = 0;
    return send_range_copy(p, pos, end);
}

/* A sparse regular file: data ranges as data, the rest as holes. */
static int send_sparse(send_pump *p, off_t size)
{
    off_t pos = 0;

    while (pos < size) {
        off_t data = lseek(p->fd, pos, SEEK_DATA), hole;
        int rc;
        if (data < 0)
            data = size; /* no more data: the rest is a hole */
        if (data > pos) {
            if ((rc = lvrpc_stream_send_hole(p->st, data - pos)) != LVRPC_OK)
                return rc;
            if ((rc = pump_moved(p, (uint64_t)(data - pos))) != LVRPC_OK)
                return rc;
            pos = data;
            continue;
        }
        hole = lseek(p->fd, pos, SEEK_HOLE);
        if (hole < 0 || hole > size)
            hole = size;
        if ((rc = send_range(p, pos, hole)) != LVRPC_OK)
            return rc;
        pos = hole;
    }
    return LVRPC_OK;
}

/* Whether the engine may send fd straight from the file: a regular file
 * open for reading (a write-only fd fails in the copy path, cleanly) whose
 * size can be trusted.  The pseudo-files of /proc and /sys occupy no blocks and
 * their size says nothing about their content, so they are read. */
static int file_source(int fd, const struct stat *sb)
{
    int fl = fcntl(fd, F_GETFL);

    return S_ISREG(sb->st_mode) && sb->st_blocks > 0 && fl >= 0 &&
           (fl & O_ACCMODE) != O_WRONLY;
}

int lvrpc_stream_send_fd(lvrpc_stream *st, int fd, uint64_t total, lvrpc_progress_cb cb,
                         void *opaque)
{
    send_pump p = {st, fd, 0, NULL, {0}, 0, total, cb, opaque};
    struct stat sb;
    int rc = check_open(st), have_stat;

    if (rc != LVRPC_OK)
        return rc;
    have_stat = fstat(fd, &sb) == 0;
    p.from_file = have_stat && st->ops->send_file && file_source(fd, &sb);
    if ((st->flags & LVRPC_STREAM_SPARSE) && have_stat && S_ISREG(sb.st_mode))
        rc = send_sparse(&p, sb.st_size);
    else
        rc = send_range(&p, 0, -1);
    free(p.buf);
    lvrpci_file_window_release(&p.win);
    return end_pump(st, rc);
}

static int write_all_fd(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return lvrpci_fail(LVRPC_ESYS, errno, "writing the local file: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return LVRPC_OK;
}

int lvrpc_stream_recv_fd(lvrpc_stream *st, int fd, uint64_t total, lvrpc_progress_cb cb,
                         void *opaque)
{
    uint64_t done = 0;
    int rc = check_open(st), seeked = 0;

    if (rc != LVRPC_OK)
        return rc;
    st->bulk = 1;
    for (;;) {
        const unsigned char *data = NULL;
        size_t got = 0;
        int64_t hole = 0;
        /* straight from the received packet to the file: no copy between */
        if ((rc = recv_ref(st, SIZE_MAX, &data, &got, &hole)) != LVRPC_OK)
            break;
        if (got) {
            rc = write_all_fd(fd, data, got);
            done += got;
            seeked = 0;
        } else if (hole) {
            rc = lseek(fd, (off_t)hole, SEEK_CUR) < 0
                     ? lvrpci_fail(LVRPC_ESYS, errno, "seeking the local file: %s", strerror(errno))
                     : LVRPC_OK;
            done += (uint64_t)hole;
            seeked = 1;
        } else {
            break; /* the end */
        }
        if (rc == LVRPC_OK)
            rc = progress(cb, opaque, done, total, st);
        if (rc != LVRPC_OK)
            break;
    }
    /* A trailing hole: give the file its full length. */
    if (rc == LVRPC_OK && seeked) {
        off_t end = lseek(fd, 0, SEEK_CUR);
        if (end < 0 || ftruncate(fd, end) < 0)
            rc = lvrpci_fail(LVRPC_ESYS, errno, "extending the local file: %s", strerror(errno));
    }
    st->bulk = 0;
    return end_pump(st, rc);
}
