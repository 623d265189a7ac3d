/* lvrpc_internal.h - the call core shared by both engines.
 *
 * Layers, bottom up:
 *   transport  (src/transport_sock.c, tls/)  bytes in and out of one socket
 *   conn       (src/conn.c)    framing, serials, handshake, a synchronous call
 *   packet     (src/packet.c)  header and body encoding, reply decoding
 *   engine     (src/direct.c, pool/shared.c)  how a call finds a connection
 *   client     (src/client.c)  the public handle, dispatching to its engine
 */
#ifndef LVRPC_INTERNAL_H
#define LVRPC_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <sys/uio.h>
#include <stdint.h>
#include <sys/types.h>

#include "lvrpc.h"

#define LVRPCI_LEN_WORD 4u
#define LVRPCI_HEADER_LEN 24u
/* Largest packet we accept, length word included (libvirt's MAX + 4). */
#define LVRPCI_PACKET_MAX (33554432u + LVRPCI_LEN_WORD)
#define LVRPCI_PACKET_MIN (LVRPCI_LEN_WORD + LVRPCI_HEADER_LEN)
/* Size a connection's read buffer starts at and shrinks back to. */
#define LVRPCI_RBUF_INITIAL 65536u

#define LVRPCI_FEATURE_PROGRAM_KEEPALIVE 10

/* ------------------------------------------------------------------ time */

/* Monotonic clock in nanoseconds. */
int64_t lvrpci_now_ns(void);
/* now + ms, or 0 ("no deadline") when ms is 0. */
int64_t lvrpci_deadline_after_ms(unsigned ms);

/* ------------------------------------------------------------------ errors */

/* Records a local failure in the calling thread's error record and returns
 * code, so that callers can write `return lvrpci_fail(...)`. */
int lvrpci_fail(int code, int sys_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fills e as lvrpci_fail fills the thread's record, for a failure handed to
 * others (waiters, streams) without touching the calling thread's. */
void lvrpci_error_make(lvrpc_error *e, int code, int sys_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Records a daemon's error reply; returns LVRPC_EREMOTE. */
int lvrpci_fail_remote(const lvrpc_remote_error *e);
/* Copies a whole record into the calling thread's (to hand one failure to
 * several waiting threads); returns its code. */
int lvrpci_set_error(const lvrpc_error *e);
/* The calling thread's record, for reading and copying. */
const lvrpc_error *lvrpci_error(void);
/* Maps a connect()/getaddrinfo-style errno to an lvrpc_err. */
int lvrpci_errno_code(int err);

/* ------------------------------------------------------------------ URIs */

typedef enum lvrpci_transport_kind {
    LVRPCI_UNIX = 0,
    LVRPCI_TCP = 1,
    LVRPCI_TLS = 2
} lvrpci_transport_kind;

/* Where and how to connect, derived from a URI. */
typedef struct lvrpci_target {
    lvrpci_transport_kind kind;
    char *host;        /* tcp/tls */
    char *port;        /* tcp/tls, as text for getaddrinfo */
    char *socket_path; /* unix */
    char *name;        /* URI sent in CONNECT_OPEN; "" lets the daemon choose */
    unsigned open_flags; /* VIR_CONNECT_* sent in CONNECT_OPEN */
    /* TLS parameters */
    char *pkipath;
    int no_verify;
    /* an admin URI (scheme = a daemon's name, e.g. libvirtd:///system): the
     * daemon's admin socket and the admin program's handshake */
    int admin;
    /* the handle's TLS context (tls/): made by lvrpci_tls_setup() in
     * lvrpc_open, shared by all its connections, freed by
     * lvrpci_target_clear() */
    struct lvrpci_tls_ctx *tls;
} lvrpci_target;

/* Parses a libvirt URI.  flags: LVRPC_OPEN_*.  On failure returns an error
 * code (LVRPC_EINVAL / LVRPC_ENOTSUP / LVRPC_ENOMEM) with the error set. */
int lvrpci_uri_parse(const char *uri, unsigned flags, lvrpci_target *out);
void lvrpci_target_clear(lvrpci_target *t);

/* ------------------------------------------------------------------ buffers */

typedef struct lvrpci_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
} lvrpci_buf;

int lvrpci_buf_reserve(lvrpci_buf *b, size_t cap);
void lvrpci_buf_clear(lvrpci_buf *b);

/* ------------------------------------------------------------------ packets */

typedef struct lvrpci_header {
    uint32_t prog;
    uint32_t vers;
    int32_t proc;
    int32_t type;
    uint32_t serial;
    int32_t status;
} lvrpci_header;

/* One call, as both engines see it. */
typedef struct lvrpci_call {
    uint32_t prog;
    uint32_t vers;
    int32_t proc;
    xdrproc_t xdr_args; /* NULL: no arguments */
    const void *args;
    xdrproc_t xdr_ret;  /* NULL: empty reply expected */
    size_t ret_size;
    void *ret;          /* out: decoded reply (lvrpc_reply_free) */
    /* File descriptors (UNIX sockets only).  fds[0..nfds) are sent with the
     * call (CALL_WITH_FDS when nfds > 0); the caller keeps them.  Those of
     * the reply go to rfds (malloc, nrfds) when want_fds, else are closed. */
    const int *fds;
    unsigned nfds;
    int want_fds;
    int *rfds;
    unsigned nrfds;
} lvrpci_call;

/* An initializer for a call without descriptors. */
#define LVRPCI_CALL_INIT(prog_, vers_, proc_, xa, a, xr, rsize)                         \
    {.prog = (prog_), .vers = (vers_), .proc = (proc_), .xdr_args = (xa), .args = (a), \
     .xdr_ret = (xr), .ret_size = (rsize)}

/* Encodes a complete packet (length word, header, body) into b, replacing
 * its contents.  xdr_body may be NULL for an empty body. */
int lvrpci_encode_packet(lvrpci_buf *b, const lvrpci_header *h,
                         xdrproc_t xdr_body, const void *body);
/* Encodes call as a CALL packet, or as CALL_WITH_FDS (the count of
 * call->fds before the arguments) when it carries descriptors. */
int lvrpci_encode_call(lvrpci_buf *b, const lvrpci_call *call, uint32_t serial);

/* Checks, before anything is sent, that call's descriptors are open,
 * within the protocol's limit, and that the transport can pass them
 * (can_pass: a UNIX socket). */
int lvrpci_check_call_fds(const lvrpci_call *call, int can_pass);
/* Closes fds[0..n) and frees the array (NULL-safe). */
void lvrpci_fds_discard(int *fds, unsigned n);
/* Hands a reply's descriptors to call (call->rfds) when it wants them,
 * else closes them; the array is the call's or freed either way. */
void lvrpci_call_take_fds(lvrpci_call *call, int *fds, unsigned n);
/* Writes the header fields big-endian into 24 bytes. */
void lvrpci_header_put(unsigned char *p, const lvrpci_header *h);
/* Reads 24 header bytes. */
void lvrpci_header_get(const unsigned char *p, lvrpci_header *h);

/* Checks that a REPLY header belongs to call and serial: returns LVRPC_OK or
 * LVRPC_EPROTO with the error set. */
int lvrpci_check_reply_header(const lvrpci_header *h, const lvrpci_call *call,
                              uint32_t serial);
/* Decodes a reply body (status OK: into a new call->ret; status ERROR: the
 * daemon's error, returned as LVRPC_EREMOTE). */
int lvrpci_decode_reply(lvrpci_call *call, const lvrpci_header *h,
                        const unsigned char *body, size_t len);

/* Allocates a zeroed reply of size bytes whose later lvrpc_reply_free()
 * releases it with xdr_free(xdr_ret, ...). */
void *lvrpci_reply_alloc(xdrproc_t xdr_ret, size_t size);

/* ------------------------------------------------------------------ transport */

typedef struct lvrpci_transport lvrpci_transport;

/* A window of a file that send_file_all maps once for many packets:
 * mapping and unmapping every 256 KiB packet's body cost more of an
 * upload's client CPU than the copy itself (bench/stream.sh, perf).
 * All zero: nothing mapped.  Its owner releases it. */
typedef struct lvrpci_file_window {
    void *map;
    off_t base; /* the file offset of map (page-aligned) */
    size_t len;
} lvrpci_file_window;

/* Unmaps w's window, if any, and leaves w empty. */
void lvrpci_file_window_release(lvrpci_file_window *w);

/* A packet body taken from a file: len bytes of fd from offset off, sent
 * from win, a window of that file (of fd only) that is mapped anew, from
 * the body's page up to win_end, when it does not hold the body (win_end
 * is where the caller's next packets end: past it the file may not reach). */
typedef struct lvrpci_file_span {
    int fd;
    off_t off;
    size_t len;
    lvrpci_file_window *win;
    off_t win_end;
    int more; /* another packet of the file follows at once (MSG_MORE) */
} lvrpci_file_span;

/* The operations beneath a connection.  deadline is a monotonic time in ns,
 * 0 for none.  read/write report failures through the error record. */
typedef struct lvrpci_transport_ops {
    /* Writes all len bytes.  Returns LVRPC_OK or an error code. */
    int (*write_all)(lvrpci_transport *t, const void *buf, size_t len,
                     int64_t deadline);
    /* Reads between 1 and len bytes.  Returns the count, or -code. */
    ssize_t (*read_some)(lvrpci_transport *t, void *buf, size_t len,
                         int64_t deadline);
    /* Optional: writes all of iov[0..n) as one packet (NULL: the caller
     * copies into one buffer and uses write_all). */
    int (*writev_all)(lvrpci_transport *t, const struct iovec *iov, int n, int64_t deadline);
    /* Optional: writes iov[0..n) (a packet's length word and header) and
     * then the body span, as one packet, the kernel reading the body from
     * the file (NULL: the transport would read it in user space, e.g. TLS,
     * where a file truncated meanwhile would raise SIGBUS).  A file that
     * cannot be mapped is read and sent instead.  On failure part of the
     * packet may be out (the file shrank or failed mid-packet, or the socket
     * did): the connection is unusable. */
    int (*send_file_all)(lvrpci_transport *t, const struct iovec *iov, int n,
                        const lvrpci_file_span *body, int64_t deadline);
    /* Makes blocked and later reads and writes fail at once.  May be called
     * from any thread while another thread is inside read/write. */
    void (*shutdown)(lvrpci_transport *t);
    /* Closes and frees. */
    void (*destroy)(lvrpci_transport *t);
    /* Optional (UNIX sockets): sends each of fds[0..n) with SCM_RIGHTS on
     * a dummy byte, right after the packet that announced them.  NULL: the
     * transport cannot pass descriptors. */
    int (*send_fds)(lvrpci_transport *t, const int *fds, unsigned n, int64_t deadline);
    /* Whether input is held in the transport, beyond what poll() on fd
     * shows (TLS: decrypted bytes OpenSSL keeps).  Called only by the one
     * thread allowed to read.  NULL: a thread other than the reader can
     * not tell when to read (Shared mode then keeps reading on its reader
     * thread). */
    int (*has_input)(lvrpci_transport *t);
} lvrpci_transport_ops;

/* Descriptors a UNIX socket may hold received but not yet claimed by a
 * packet: two packets' worth (a read may run past one packet's last
 * dummy byte into the next one's). */
#define LVRPCI_RX_FDS_MAX 64u

struct lvrpci_transport {
    const lvrpci_transport_ops *ops;
    int fd;
    int64_t rcv_timeout_ns; /* SO_RCVTIMEO currently set, -1 = unknown */
    int64_t snd_timeout_ns;
    /* Descriptors received (read_some of a UNIX socket), oldest first,
     * until a packet that announced them claims them, each with the
     * stream offset of the byte it came on; rx_total counts the bytes
     * read so far (UNIX sockets only). */
    int rx_fds[LVRPCI_RX_FDS_MAX];
    uint64_t rx_fd_at[LVRPCI_RX_FDS_MAX];
    unsigned nrx_fds;
    int rx_fds_bad;         /* more arrived than fit, or were truncated */
    uint64_t rx_total;
};

/* Connects a plain socket (unix or tcp) to the target. */
int lvrpci_sock_connect(const lvrpci_target *tg, int64_t deadline,
                        lvrpci_transport **out);
/* Wraps a connected socket in TLS (tls/); LVRPC_ENOTSUP when built
 * without OpenSSL. */
int lvrpci_tls_connect(const lvrpci_target *tg, int64_t deadline,
                       lvrpci_transport **out);
/* Loads a tls target's certificates (or takes the caller's SSL_CTX) into
 * tg->tls, once per handle; o may be NULL.  LVRPC_ENOTSUP without OpenSSL. */
int lvrpci_tls_setup(lvrpci_target *tg, const lvrpc_tls_options *o);
/* Frees tg->tls (NULL-safe); called by lvrpci_target_clear(). */
void lvrpci_tls_release(lvrpci_target *tg);
/* Writes iov[0..n) as one packet: with the transport's writev_all, or by
 * copying into one buffer for write_all when it has none (TLS). */
int lvrpci_transport_writev(lvrpci_transport *t, const struct iovec *iov, int n,
                            int64_t deadline);
/* Shared helpers for socket-based transports. */
int lvrpci_sock_set_timeout(lvrpci_transport *t, int which, int64_t deadline);
int lvrpci_sock_open_fd(const lvrpci_target *tg, int64_t deadline, int *fd_out);
extern const lvrpci_transport_ops lvrpci_sock_ops;

/* ------------------------------------------------------------------ conn */

/* One handshaken connection to the daemon.  Not thread-safe by itself: in
 * Direct mode one call owns it at a time; in Shared mode the reader thread
 * owns the read side and writers hold the pool's write lock. */
/* A received stream packet kept for its stream's consumer, and a FIFO of
 * them: Shared mode's per-stream queues, and in both modes the data that
 * came before the reply to the call that opened its stream (libvirtd may
 * send it first), bounded by LVRPCI_EARLY_STREAM_MAX bytes. */
typedef struct lvrpci_pkt {
    struct lvrpci_pkt *next;
    lvrpci_header h;
    size_t len;
    size_t cap;           /* bytes body can hold */
    unsigned char body[];
} lvrpci_pkt;

typedef struct lvrpci_pktq {
    lvrpci_pkt *head, *tail;
    size_t bytes;         /* body bytes queued */
} lvrpci_pktq;

#define LVRPCI_EARLY_STREAM_MAX (4u * LVRPC_STREAM_QUEUE_MAX)
/* The error of a daemon that sends more than that (format: the bound). */
#define LVRPCI_EARLY_STREAM_TOO_MUCH                                           \
    "the daemon sent more than %u bytes of stream data before its reply to " \
    "the call that opens the stream"

/* A packet buffer whose body holds cap bytes, or NULL. */
lvrpci_pkt *lvrpci_pkt_alloc(size_t cap);
/* Copies a packet into p (len <= p->cap) and appends it to q. */
void lvrpci_pktq_push(lvrpci_pktq *q, lvrpci_pkt *p, const lvrpci_header *h,
                      const unsigned char *body, size_t len);
/* Takes the oldest packet, or NULL when q is empty. */
lvrpci_pkt *lvrpci_pktq_pop(lvrpci_pktq *q);
/* Frees every packet in q. */
void lvrpci_pktq_clear(lvrpci_pktq *q);

typedef struct lvrpci_conn {
    lvrpci_transport *t;
    uint32_t next_serial;
    lvrpci_buf rbuf;      /* bytes read: [rpos, rbuf.len) not yet consumed */
    size_t rpos;
    lvrpci_buf wbuf;      /* packet being sent */
    int keepalive;        /* the daemon may send us PINGs */
    int admin;            /* speaks the admin program (open/close differ) */
    int broken;           /* a transport or protocol error: do not reuse */
    /* the descriptors of the last packet read (REPLY_WITH_FDS), until
     * taken with lvrpci_conn_take_fds(); closed when the next is read */
    int *pkt_fds;
    unsigned npkt_fds;
    /* stream packets of the call in progress that came before its reply */
    lvrpci_pktq early;
    lvrpci_pkt *early_cur;
    struct lvrpci_conn *prev, *next; /* engine-owned list links */
} lvrpci_conn;

/* Connects and performs libvirt's handshake: AUTH_LIST (none and polkit
 * accepted), optionally SUPPORTS_FEATURE(keepalive), CONNECT_OPEN. */
int lvrpci_conn_open(const lvrpci_target *tg, int want_keepalive,
                     int64_t deadline, lvrpci_conn **out);
/* Sends CONNECT_CLOSE (best effort, short timeout) and frees. */
void lvrpci_conn_close(lvrpci_conn *c);
/* Frees without a word to the daemon. */
void lvrpci_conn_free(lvrpci_conn *c);

/* Runs one call synchronously: encode, write, read packets until the reply
 * arrives (answering PINGs, dropping events and other streams' data
 * meanwhile).  Stream packets under the call's own serial that come before
 * the reply (the daemon may send a new stream's first data first) are kept
 * for lvrpci_conn_take_early(). */
int lvrpci_conn_call(lvrpci_conn *c, lvrpci_call *call, int64_t deadline);
/* Takes the oldest kept stream packet: 1 with h, body and len (valid until
 * the next take or call), or 0 when none is left. */
int lvrpci_conn_take_early(lvrpci_conn *c, lvrpci_header *h, const unsigned char **body,
                           size_t *len);

/* Reads the next whole packet.  On success *pkt points into the
 * connection's buffer (valid until the next read) and *len is its length
 * including the length word.  Every length is checked before allocating. */
int lvrpci_conn_read_packet(lvrpci_conn *c, int64_t deadline,
                            const unsigned char **pkt, size_t *len);
/* Takes the next packet if it is already complete in the buffer (no
 * system call).  Returns 1 and sets pkt and len, or 0. */
int lvrpci_conn_take_buffered(lvrpci_conn *c, const unsigned char **pkt, size_t *len);
/* True if bytes read are not consumed yet (a whole packet or part of one). */
int lvrpci_conn_buffered(const lvrpci_conn *c);
/* Writes a whole encoded packet. */
int lvrpci_conn_write(lvrpci_conn *c, const void *pkt, size_t len,
                      int64_t deadline);
/* Takes the descriptors that came with the packet just read (a
 * REPLY_WITH_FDS): *fds (malloc, caller closes and frees) and *n, or NULL
 * and 0. */
void lvrpci_conn_take_fds(lvrpci_conn *c, int **fds, unsigned *n);
/* Sends the descriptors of a CALL_WITH_FDS just written. */
int lvrpci_conn_send_fds(lvrpci_conn *c, const lvrpci_call *call, int64_t deadline);
/* Sends a keepalive PONG; or a PING or PONG (proc). */
int lvrpci_conn_send_pong(lvrpci_conn *c, int64_t deadline);
int lvrpci_conn_send_keepalive(lvrpci_conn *c, int proc, int64_t deadline);
/* True if an idle connection has been closed by the peer (or has unexpected
 * bytes waiting), so it must not be reused. */
int lvrpci_conn_is_stale(lvrpci_conn *c);

/* ------------------------------------------------------------------ streams */

/* send_file's "not on this transport": not an lvrpc_err (those are >= 0). */
#define LVRPCI_NO_SEND_FILE (-1)

/* What an engine provides for streams.  The common logic (chunking, holes,
 * end, finish, abort) is in src/stream.c. */
typedef struct lvrpci_stream_ops {
    /* Makes the stream-creating call; on success the stream is pinned to
     * its connection (Direct) or registered for routing (Shared). */
    int (*open)(void *engine, lvrpci_call *call, int64_t deadline, lvrpc_stream *st);
    /* Sends one whole packet given as iovecs (header first). */
    int (*send)(lvrpc_stream *st, const struct iovec *iov, int n, int64_t deadline);
    /* Sends one data packet whose body is read from a file (iov: the length
     * word and header), with the transport's send_file_all and the same
     * locking as send.  Returns LVRPCI_NO_SEND_FILE, having sent nothing and
     * recorded no error, when the stream's transport has no send_file_all. */
    int (*send_file)(lvrpc_stream *st, const struct iovec *iov, int n,
                     const lvrpci_file_span *body, int64_t deadline);
    /* The next packet of this stream; body stays valid until the next call. */
    int (*next)(lvrpc_stream *st, int64_t deadline, lvrpci_header *h,
                const unsigned char **body, size_t *len);
    /* Ends the engine's part; reusable says the connection is in a clean state. */
    void (*release)(lvrpc_stream *st, int reusable);
} lvrpci_stream_ops;

enum lvrpci_stream_state {
    LVRPCI_ST_OPEN = 0,  /* data may flow both ways */
    LVRPCI_ST_RX_END,    /* the daemon sent its end of data */
    LVRPCI_ST_CLOSED     /* finished, aborted or failed; engine released */
};

struct lvrpc_stream {
    lvrpc_client *client;
    const lvrpci_stream_ops *ops;
    void *engine;
    void *impl;                 /* the engine's: pinned conn or registration */
    uint32_t prog, vers, serial;
    int32_t proc;
    unsigned flags;             /* LVRPC_STREAM_* */
    int bulk;                   /* an fd pump receives: the consumer wants data
                                 * in batches (Shared wakes it per batch) */
    int state;
    int rx_end;                 /* the daemon's end of data was received */
    const unsigned char *rx;    /* data packet being handed out */
    size_t rx_len, rx_off;
};

/* ------------------------------------------------------------------ events */

typedef struct lvrpci_events lvrpci_events;

/* From a pool's reader, pool lock held: queues an event message. */
void lvrpci_events_push(lvrpci_events *ev, const lvrpci_header *h, const unsigned char *body,
                        size_t len);
/* From a pool's reader, pool lock held (so that lvrpci_events_stop, which
 * detaches the engine under that lock, never frees an engine a reader is
 * using): the event connection died (LVRPC_CONN_CLOSED, why) or came back
 * (LVRPC_CONN_RECONNECTED). */
void lvrpci_events_conn_state(lvrpci_events *ev, int state, const lvrpc_error *why);
/* Stops the dispatch thread and frees the engine (lvrpc_close). */
void lvrpci_events_stop(lvrpci_events *ev);

/* The Shared-mode pool, as the events engine and Direct mode use it. */
int lvrpci_pool_start(lvrpc_client *c, unsigned nconns, void **pool);
void lvrpci_pool_stop(void *pool);
/* A call on one given connection of the pool (event registrations). */
int lvrpci_pool_call_on(void *pool, unsigned conn, lvrpci_call *call, int64_t deadline);
/* Where connection 0's event messages and state changes go (NULL: none). */
void lvrpci_pool_set_events(void *pool, lvrpci_events *ev);

/* ------------------------------------------------------------------ engines */

typedef struct lvrpci_engine_ops {
    const char *name;
    /* Creates the engine and opens its first connection(s). */
    int (*start)(lvrpc_client *c, void **engine);
    /* Runs one call; deadline is absolute (ns).  Counts it in the engine's
     * stats before leaving: once it returns, the handle may be freed. */
    int (*call)(void *engine, lvrpci_call *call, int64_t deadline);
    /* Wakes every call in progress with LVRPC_ECLOSED, waits until they have
     * returned, closes the connections and frees the engine. */
    void (*stop)(void *engine);
    void (*stats)(void *engine, lvrpc_stats *out);
    const lvrpci_stream_ops *streams;
    /* The pool that carries events: Shared mode's own, or Direct mode's
     * event connection (made on first use).  NULL with the error set. */
    void *(*event_pool)(void *engine);
} lvrpci_engine_ops;

extern const lvrpci_engine_ops lvrpci_direct_engine;
extern const lvrpci_engine_ops lvrpci_shared_engine;

struct lvrpc_client {
    lvrpc_options opts;        /* with defaults filled in */
    lvrpci_target target;
    const lvrpci_engine_ops *ops;
    void *engine;
    unsigned call_timeout_ms;  /* atomic access */
    pthread_mutex_t events_lock; /* guards the making of events */
    lvrpci_events *events;     /* NULL until the first registration */
};

#endif /* LVRPC_INTERNAL_H */
