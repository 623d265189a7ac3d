/* shared.c - Shared mode: a pool of K connections, each with a reader
 * thread that hands replies to the threads waiting for them, unless a
 * caller reads its own reply because nobody else is reading.
 *
 * THE ALGORITHM
 *
 * Structures.  A pool (struct pool) owns K slots (struct pconn), one per
 * connection.  A call in progress is a struct waiter on the caller's stack.
 * Each pconn has a pending table: an array of 2^n waiter pointers indexed by
 * serial & mask.  Serials are handed out so that the slot is free (skip
 * ahead while it is taken), so finding the waiter of a reply is one index and
 * one compare.
 *
 * States of a call:
 *   QUEUED   every UP connection has max_inflight calls in flight: the
 *            waiter sits in the pool's FIFO queue (in arrival order).
 *   PENDING  it has a serial and is in its pconn's table; its thread writes
 *            the packet (under the pconn's write lock), then reads the
 *            socket itself if nobody does (see Reading), else sleeps on its
 *            own semaphore.
 *   CLAIMED  the thread reading the socket found the reply, removed the
 *            waiter from the table and is decoding the reply into the
 *            waiter's call (no lock held).
 *   DONE     rc and result set, the waiter's semaphore posted (once).
 *
 * Locks.  pool->lock guards everything shared: each pconn's state, conn
 * pointer, table, inflight and writers counts, serial counter, read role,
 * the FIFO queue, closing, counters.  pc->wlock serialises writes to one
 * socket so that packets are never interleaved (caller packets and the
 * reader's PONGs); it is taken without pool->lock held and never the other
 * way round.  Only the holder of the read role (below) reads the socket and
 * its read buffer; the reader thread alone frees the connection.
 *
 * Reading (buck passing, as libvirt's client does it).  pc->role says who
 * may read the socket: R_FREE (nobody), R_READER (the reader thread),
 * R_CALLER (one caller), R_DEAD (a caller found the connection dead).  It
 * changes under pool->lock, which orders the read buffer's hand-over.  A
 * caller that has sent its call and finds the role free takes it and reads
 * until its own reply is in, dispatching everything that comes exactly as
 * the reader thread would (other callers' replies, events, PINGs, queued
 * calls to send), then frees it: a lone caller gets its reply with no
 * thread hand-off, as in Direct mode.  Callers read only when the
 * transport can tell the reader thread of input that poll() does not show
 * (has_input: TLS bytes OpenSSL holds), and no stream is registered
 * (stream packets and their backpressure stay on the reader thread); they
 * give the socket back after a keepalive interval of silence.
 * The reader thread keeps the role while calls are in flight and frees it
 * when none is; with the role free and nothing in flight it waits in
 * poll() without the role (unless input is held: buffered bytes of ours
 * or the transport's), and takes it when data comes (events, PINGs, the
 * peer's close).  While a caller reads, the reader parks on pc->rwake
 * for at most its park time (1 ms after an idle spell, doubling while
 * callers keep reading, up to 100 ms: see PARK_MIN_NS); a caller that
 * leaves calls in flight (or finds the connection closing) signals it, so
 * no waiter is left without a reader, and one that leaves the connection
 * idle does not, saving a wake-up per call (events then wait at most the
 * park time).  A caller's read error other
 * than its own deadline marks the connection down and the role R_DEAD;
 * the reader thread then buries it (see Death).
 *
 * Waking.  The reading thread claims the waiters of every reply that one
 * read brought in under pool->lock (so a timing-out waiter and the reader
 * cannot both own one), and in the same hold gives the places they free to
 * the head of the FIFO queue (those become PENDING; their callers sleep
 * on).  With the lock released it first sends the packets of those calls,
 * so the daemon works meanwhile, then decodes each reply, sets DONE and
 * posts that waiter's semaphore: exactly one thread wakes per reply, and
 * none when the reader is the waiter itself.  A waiter whose deadline
 * passes while still PENDING or QUEUED removes itself and returns
 * LVRPC_ETIMEDOUT (a freed place goes to the queue, sent by that caller);
 * the late reply finds no waiter and is dropped and counted.  If it was
 * already CLAIMED it waits the few microseconds until DONE.  A caller
 * reading the socket whose deadline passes gives the socket back (waking
 * the reader thread, its own call being in flight) and times out the same
 * way.
 *
 * Death.  When a connection fails (peer closed, read error, protocol
 * violation, or a writer's failed write, which shuts the socket down so the
 * reader notices), the reader marks it DOWN, shuts the socket down (so
 * blocked writers and a reading caller return), waits until no caller
 * holds the read role, fails every PENDING waiter with the cause, wakes
 * the queue so those callers move to healthy connections, waits until no
 * writer still uses the socket, frees it, and then re-opens it in the
 * background, repeating the handshake, with exponential backoff between
 * reconnect_min_ms and reconnect_max_ms.  New calls go to UP connections
 * only; when none is UP they wait in the queue, within their timeout, and
 * the reader that re-opens a connection sends them first.
 *
 * Close.  lvrpc_close sets closing, fails every PENDING and QUEUED waiter
 * with LVRPC_ECLOSED, shuts every socket down, wakes readers sleeping in
 * backoff or parked, joins the reader threads (which free their
 * connections once no caller reads them), and
 * waits until no caller is still inside the engine before freeing it (a
 * caller's last act is an atomic decrement of callers, so close polls it).
 *
 * Streams.  A stream-creating call carries a registration (struct sreg)
 * that make_pending links into pc->streams under the serial it assigns, so
 * stream packets that follow the reply at once are already routed.  The
 * reader copies each stream packet into its stream's queue; when a queue
 * holds LVRPC_STREAM_QUEUE_MAX bytes the reader waits (on sreg.room, pool
 * lock released) until the consumer has taken half of it: backpressure on
 * that connection only, and pick() sends new calls to the pool's other
 * connections meanwhile.  A bulk consumer (lvrpc_stream_recv_fd) is woken
 * per STREAM_BATCH bytes rather than per packet.  A queue that cannot
 * grow (out of memory) kills its stream: data is never dropped silently.
 * Packets of unknown streams are dropped.  Death and
 * close kill the registered streams with the cause; their owners free them.
 * While a stream that sends data (upload, console) is open on a connection,
 * its reader never writes itself: libvirtd counts every stream packet it
 * has read as a request until a (zero-length) completion has gone through
 * its output queue, and stops reading at max_client_requests; if the
 * reader then blocked in a write (or on pc->wlock, held by a sender blocked
 * in one), nobody would read the daemon's output and both sides would wait
 * for ever.  So the reader appends its packets (PONGs, PINGs, queued calls)
 * to pc->deferred and the connection's writer thread, started the first
 * time it is needed, writes them.  A file upload's packets (send_file:
 * header, then the body from a mapping of the file) are written like any
 * other, under pc->wlock and counted in pc->writers, whole or not at all:
 * a packet the file cannot complete shuts the socket down, as any failed
 * write does.
 *
 * Descriptors.  A call that passes file descriptors (CALL_WITH_FDS, UNIX
 * sockets only) is never queued: it is placed at once on the UP connection
 * with the fewest calls in flight, even one at max_inflight (libvirtd then
 * merely reads it later), and its own thread writes the packet and then
 * the descriptors under one hold of pc->wlock, so that nothing comes
 * between them and no other thread needs the caller's descriptors.  The
 * reader takes a REPLY_WITH_FDS's descriptors with the packet (the conn
 * layer reads the dummy bytes that carry them) and claims them with the
 * reply; they become the call's after decoding, or are closed.
 *
 * Events.  Event messages of connection 0 are copied by route_message()
 * into the events engine's queue (src/events.c), whose dispatch thread runs
 * the callbacks: none ever runs on a reader thread.  The reader of
 * connection 0 also reports its death and its reconnection to that engine
 * under pool->lock (the order pool->lock, then the engine's lock, as for
 * pushed events), which registers the events again.  lvrpc_close detaches
 * the engine under pool->lock before freeing it, so no reader reaches a
 * freed engine.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lvrpc_internal.h"

typedef enum wstate { W_QUEUED, W_PENDING, W_CLAIMED, W_DONE } wstate;

/* Who reads a connection's socket (pc->role; see "Reading" at the top). */
typedef enum rrole {
    R_FREE,   /* nobody: the reader thread waits in poll() for data */
    R_READER, /* the reader thread */
    R_CALLER, /* a caller, for its own reply */
    R_DEAD    /* a caller found the connection dead: the reader buries it */
} rrole;

/* How long the reader thread stays parked while a caller reads, unless
 * that caller leaves calls in flight (then it wakes the reader at once):
 * the most an event, a PING or the peer's close waits on a connection that
 * a caller has just left idle.  Each park that ends with a caller reading
 * (or that a caller's reply ends) doubles the next one, from PARK_MIN_NS
 * up to PARK_MAX_NS; an idle spell of PARK_RESET_NS in poll() starts again
 * from the minimum.  So a connection used now and then answers events
 * within a millisecond, and a lone caller calling all the time is not
 * disturbed: the reader's wake-ups are what cost it.  Against libvirtd, a
 * fixed 1 ms park made a lone caller's p50 89 us instead of 51, and a
 * fixed 10 ms park 10.6 us slower than Direct mode (12 paired rounds),
 * 100 ms 0.8 us (the reader's wake-ups on the other vCPU). */
#define PARK_MIN_NS 1000000
#define PARK_MAX_NS 100000000
#define PARK_RESET_NS 10000000

/* A waiter's state changes under the pool lock, except CLAIMED -> DONE,
 * which the reader makes after releasing it: state is read and written
 * atomically. */
#define WSTATE(w) ((wstate)__atomic_load_n(&(w)->state, __ATOMIC_ACQUIRE))
#define WSET(w, v) __atomic_store_n(&(w)->state, (v), __ATOMIC_RELEASE)

typedef struct waiter {
    lvrpci_call *call;
    lvrpci_buf pkt;       /* the encoded call; its serial is patched in */
    uint32_t serial;
    int state;            /* wstate: see WSTATE/WSET */
    int rc;
    lvrpc_error *err;     /* when rc is not OK (heap: keeps waiters small,
                           * 1,000 waiting threads should cost little) */
    sem_t done;           /* posted exactly once, when state becomes DONE */
    struct waiter *qnext; /* FIFO queue link */
    struct sreg *reg;     /* a stream-creating call: its registration */
    struct pconn *pin;    /* a call for one given connection */
} waiter;

/* Packet buffers a stream keeps for reuse once its consumer is done with
 * them.  Data packets (256 KiB) are above glibc's mmap threshold: without
 * reuse each one cost an mmap, 64 page faults and a munmap, a fifth of a
 * Shared download's CPU. */
#define SPARE_MAX 4
/* Buffers for packets at least this big are made to hold the largest. */
#define SPARE_MIN_LEN 65536u

/* A stream's registration on its connection: the reader appends the
 * stream's packets to its queue (pool lock held). */
typedef struct sreg {
    struct sreg *next;        /* in pc->streams, while linked */
    struct pconn *pc;
    uint32_t serial;
    int linked;
    lvrpci_pktq q;            /* packets waiting for the consumer */
    lvrpci_pkt *cur;          /* handed to the consumer, freed on its next call */
    lvrpci_pkt *spare;        /* buffers for reuse (at most SPARE_MAX) */
    unsigned nspare;
    int dead;
    int sending;              /* has sent data: counted in pc->senders */
    int waiting;              /* the reader waits for room in this queue */
    int batch;                /* the consumer is a bulk pump: wake it per batch */
    int urgent;               /* the queue holds something besides data (the
                               * end, an error, a hole): no batching */
    int draining;             /* a batch is being handed out: until empty */
    int replied;              /* the opening call's reply has been read: until
                               * then its data is queued without backpressure
                               * (the consumer needs the reply first) */
    lvrpc_error cause;
    pthread_cond_t ready;     /* a packet arrived, or the stream died */
    pthread_cond_t room;      /* the consumer took packets (backpressure) */
} sreg;

typedef struct pool pool;

typedef struct pconn {
    pool *pool;
    unsigned index;
    lvrpci_conn *conn;   /* NULL while DOWN */
    int up;
    unsigned inflight;   /* PENDING + CLAIMED waiters */
    unsigned writers;    /* threads between reserving and finishing a write */
    int draining;        /* the reader waits for writers to reach 0 (atomic) */
    uint32_t next_serial;
    waiter **table;
    uint32_t mask;
    pthread_mutex_t wlock;
    pthread_cond_t writers_gone;
    pthread_t reader;
    int reader_started;
    sreg *streams;       /* registered streams */
    int held;            /* the reader waits for a stream's consumer (streams:
                          * backpressure); pick() avoids the connection */
    unsigned senders;    /* linked streams that have sent data (atomic reads) */
    lvrpci_buf deferred; /* the reader's writes while senders > 0 */
    pthread_cond_t wwake;/* deferred bytes for the writer thread, or close */
    pthread_t writer;    /* writes the deferred bytes (started when needed) */
    int writer_started;
    lvrpc_error cause;   /* why it went DOWN */
    int role;            /* rrole: who reads the socket */
    int parked;          /* the reader thread waits on rwake */
    int64_t park_ns;     /* its next park's length (reader thread only) */
    pthread_cond_t rwake;/* a caller gave the socket back */
    uint64_t rounds;     /* dispatch rounds so far (keepalive: was anything read?) */
    lvrpc_error dead_cause; /* R_DEAD: what the caller found */
    int quiet;           /* a caller read nothing for a keepalive interval */
} pconn;

struct pool {
    lvrpc_client *client;
    pthread_mutex_t lock;
    pthread_cond_t wake;  /* readers in backoff; close waiting for callers */
    pconn *conns;
    unsigned nconns;
    waiter *qhead, *qtail;
    unsigned callers;     /* threads inside pool_call */
    int closing;
    uint64_t opened, dropped, reconnects, event_msgs, stream_packets;
    uint64_t calls, errors; /* atomic */
    lvrpci_events *events;  /* connection 0's events go there (or NULL) */
    unsigned nstreams;      /* open streams (atomic) */
};

/* The pool lock and the write locks are held for a few hundred ns by many
 * threads at once: glibc's adaptive mutex spins that long before it sleeps,
 * instead of a futex sleep and wake-up per contended acquisition (16
 * threads against the instant server: 5 % more calls/s). */
static void adaptive_mutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t ma;

    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(m, &ma);
    pthread_mutexattr_destroy(&ma);
}

static void cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}

/* Waits on cond until deadline (0 = forever); returns ETIMEDOUT when it
 * has passed. */
static int wait_until(pthread_cond_t *cond, pthread_mutex_t *m, int64_t deadline)
{
    struct timespec ts;

    if (!deadline)
        return pthread_cond_wait(cond, m);
    if (lvrpci_now_ns() >= deadline)
        return ETIMEDOUT;
    ts.tv_sec = (time_t)(deadline / 1000000000);
    ts.tv_nsec = (long)(deadline % 1000000000);
    return pthread_cond_timedwait(cond, m, &ts);
}

/* ------------------------------------------------------------ under lock */

/* Completes a waiter.  The post is the last touch: the waiter may return
 * (and its stack frame go) as soon as it sees it. */
static void finish(waiter *w, int rc, const lvrpc_error *err)
{
    w->rc = rc;
    if (rc != LVRPC_OK && err && !w->err && (w->err = malloc(sizeof(*w->err))))
        *w->err = *err;
    WSET(w, W_DONE);
    sem_post(&w->done);
}

static void queue_remove(pool *p, waiter *w)
{
    waiter **pp = &p->qhead, *prev = NULL;

    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    if (!*pp)
        return;
    *pp = w->qnext;
    if (p->qtail == w)
        p->qtail = prev;
    w->qnext = NULL;
}

static void queue_append(pool *p, waiter *w)
{
    WSET(w, W_QUEUED);
    w->qnext = NULL;
    if (p->qtail)
        p->qtail->qnext = w;
    else
        p->qhead = w;
    p->qtail = w;
}

static void put32(unsigned char *at, uint32_t v)
{
    v = htonl(v);
    memcpy(at, &v, 4);
}

/* The UP connection with the fewest calls in flight and room for one more.
 * A connection whose reader is held back by a stream's full queue would
 * not answer until that stream's consumer reads, so it takes new calls only
 * when every UP connection is held back; otherwise calls wait in the queue
 * for a place on one that is not. */
static pconn *pick(pool *p)
{
    pconn *best = NULL;
    int unheld = 0;

    for (unsigned i = 0; i < p->nconns; i++)
        unheld |= p->conns[i].up && !p->conns[i].held;
    for (unsigned i = 0; i < p->nconns; i++) {
        pconn *pc = &p->conns[i];
        if (pc->up && !(unheld && pc->held) && pc->inflight < p->client->opts.max_inflight &&
            (!best || pc->inflight < best->inflight))
            best = pc;
    }
    return best;
}

/* The UP connection with the fewest calls in flight, room or not. */
static pconn *pick_any_up(pool *p)
{
    pconn *best = NULL;

    for (unsigned i = 0; i < p->nconns; i++) {
        pconn *pc = &p->conns[i];
        if (pc->up && (!best || pc->inflight < best->inflight))
            best = pc;
    }
    return best;
}

static int any_up(pool *p)
{
    for (unsigned i = 0; i < p->nconns; i++)
        if (p->conns[i].up)
            return 1;
    return 0;
}

/* Gives w a serial (patched into its packet) and a place in pc's table. */
static void make_pending(pconn *pc, waiter *w)
{
    uint32_t s = pc->next_serial;

    while (s == 0 || pc->table[s & pc->mask])
        s++;
    pc->next_serial = s + 1;
    w->serial = s;
    put32(w->pkt.data + LVRPCI_LEN_WORD + 16, s);
    WSET(w, W_PENDING);
    pc->table[s & pc->mask] = w;
    pc->inflight++;
    if (w->reg) { /* its data may follow the reply at once: route it from now */
        w->reg->serial = s;
        w->reg->pc = pc;
        w->reg->linked = 1;
        w->reg->next = pc->streams;
        pc->streams = w->reg;
    }
}

static void unlink_stream(sreg *r)
{
    sreg **pp;

    if (!r->linked)
        return;
    for (pp = &r->pc->streams; *pp && *pp != r; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = r->next;
    r->linked = 0;
    if (r->sending) {
        r->sending = 0;
        __atomic_sub_fetch(&r->pc->senders, 1, __ATOMIC_RELEASE);
    }
    pthread_cond_broadcast(&r->room); /* a reader held back by it goes on */
}

static void kill_stream(sreg *r, const lvrpc_error *cause)
{
    r->dead = 1;
    r->cause = *cause;
    unlink_stream(r);
    pthread_cond_broadcast(&r->ready);
}

/* Removes a PENDING waiter from its table (it timed out or was not sent). */
static void drop_pending(pconn *pc, waiter *w)
{
    pc->table[w->serial & pc->mask] = NULL;
    pc->inflight--;
}

static void fail_all_pending(pconn *pc, const lvrpc_error *err)
{
    for (uint32_t i = 0; i <= pc->mask; i++) {
        waiter *w = pc->table[i];
        if (w) {
            pc->table[i] = NULL;
            pc->inflight--;
            finish(w, err->code, err);
        }
    }
}

/* ------------------------------------------------------------ caller side */

/* Replies claimed under the pool lock in one pass of the reader, decoded
 * and completed after it is released (callers never wait on the lock
 * while the reader decodes). */
#define CLAIM_MAX 64

typedef struct claim {
    waiter *w;
    lvrpci_header h;
    const unsigned char *body; /* in the connection's read buffer */
    size_t len;
    int *fds;                  /* a REPLY_WITH_FDS's descriptors (malloc) */
    unsigned nfds;
} claim;

typedef struct batch {
    claim c[CLAIM_MAX];
    unsigned n;
} batch;

static int take_queued(pconn *pc, lvrpci_buf *out);
static void writer_done(pool *p, pconn *pc);

/* Places the call: PENDING on the connection with the fewest calls in
 * flight when one has room and nobody is queued, else QUEUED (the reader
 * of the first connection to free a place sends it).  Lock held. */
static int place(pool *p, waiter *w, pconn **out)
{
    pconn *pc;

    *out = NULL;
    if (p->closing)
        return lvrpci_fail(LVRPC_ECLOSED, 0, "the handle is being closed");
    if (w->call->nfds) { /* rare calls: past the queue, so that only their
                          * own thread writes them (see "Descriptors") */
        if (!(pc = pick_any_up(p)))
            return lvrpci_fail(LVRPC_ECLOSED, 0, "no connection to the daemon is up: %s",
                               p->conns[0].cause.message);
    } else if (w->pin) { /* rare calls (event registrations): past the queue */
        if (!w->pin->up)
            return lvrpci_fail(LVRPC_ECLOSED, 0, "the event connection is down: %s",
                               w->pin->cause.message);
        pc = w->pin;
    } else if (p->qhead || !(pc = pick(p))) {
        /* With every connection down the call waits in the queue, within
         * its timeout, for a reconnection to send it. */
        queue_append(p, w);
        return LVRPC_OK;
    }
    make_pending(pc, w);
    __atomic_add_fetch(&pc->writers, 1, __ATOMIC_ACQ_REL);
    *out = pc;
    return LVRPC_OK;
}

/* Every write to a pooled socket: one whole packet, or a batch of whole
 * packets, under the connection's write lock so that packets never
 * interleave.  body, when not NULL, is the packet's body, sent from its
 * file after iov (the transport must have send_file_all); fds_of, when not
 * NULL, is a CALL_WITH_FDS whose descriptors follow it.  On failure part
 * of it may be out, so the socket is shut down and the reader turns that
 * into the connection's death. */
static int locked_write(pconn *pc, lvrpci_conn *conn, const struct iovec *iov, int n,
                        const lvrpci_file_span *body, const lvrpci_call *fds_of,
                        int64_t deadline)
{
    int rc;

    pthread_mutex_lock(&pc->wlock);
    if (body)
        rc = conn->t->ops->send_file_all(conn->t, iov, n, body, deadline);
    else
        rc = lvrpci_transport_writev(conn->t, iov, n, deadline);
    if (rc == LVRPC_OK && fds_of) /* a CALL_WITH_FDS: its descriptors follow it */
        rc = lvrpci_conn_send_fds(conn, fds_of, deadline);
    pthread_mutex_unlock(&pc->wlock);
    if (rc != LVRPC_OK)
        conn->t->ops->shutdown(conn->t);
    return rc;
}

static int locked_write_buf(pconn *pc, lvrpci_conn *conn, const void *data, size_t len,
                            int64_t deadline)
{
    struct iovec iov = {(void *)data, len};

    return locked_write(pc, conn, &iov, 1, NULL, NULL, deadline);
}

/* The deadline of writes no caller's call bounds (the reader's, queued
 * calls, keepalive): the call timeout. */
static int64_t write_deadline(pool *p)
{
    return lvrpci_deadline_after_ms(p->client->opts.call_timeout_ms);
}

/* Writes a call the caller placed itself.  No pool lock held; pc->conn
 * cannot be freed while pc->writers counts us. */
static void send_own(pool *p, pconn *pc, lvrpci_conn *conn, waiter *w, int64_t deadline)
{
    struct iovec iov = {w->pkt.data, w->pkt.len};
    int rc;

    rc = locked_write(pc, conn, &iov, 1, NULL, w->call->nfds ? w->call : NULL, deadline);
    if (rc != LVRPC_OK) { /* take the call back unless the reader failed it */
        lvrpc_error e = *lvrpci_error();
        pthread_mutex_lock(&p->lock);
        if (WSTATE(w) == W_PENDING) {
            drop_pending(pc, w);
            finish(w, rc, &e);
        }
        pthread_mutex_unlock(&p->lock);
    }
    writer_done(p, pc);
}

static int wait_done(waiter *w, int64_t deadline)
{
    struct timespec ts;

    if (!deadline) {
        while (sem_wait(&w->done) != 0)
            ;
        return 0;
    }
    /* sem_timedwait takes a CLOCK_REALTIME time (sem_clockwait would take
     * ours, but sanitizers do not know it): convert the time left. */
    {
        int64_t left = deadline - lvrpci_now_ns(), at;
        clock_gettime(CLOCK_REALTIME, &ts);
        at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (left > 0 ? left : 0);
        ts.tv_sec = (time_t)(at / 1000000000);
        ts.tv_nsec = (long)(at % 1000000000);
    }
    for (;;) {
        if (sem_timedwait(&w->done, &ts) == 0)
            return 0;
        if (errno == ETIMEDOUT)
            return ETIMEDOUT;
    }
}

/* Ends a write that pc->writers counted, without the pool lock unless a
 * dying connection's reader waits for the count to reach zero.  The count
 * and pc->draining are both sequentially consistent, so either that reader
 * sees the count at zero or this thread sees it draining (and wakes it under
 * the lock, which the reader holds until it waits). */
static void writer_done(pool *p, pconn *pc)
{
    if (__atomic_sub_fetch(&pc->writers, 1, __ATOMIC_SEQ_CST) == 0 &&
        __atomic_load_n(&pc->draining, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&pc->writers_gone);
        pthread_mutex_unlock(&p->lock);
    }
}

/* Sends queued calls onto pc from a caller's thread, when a place was
 * freed by something other than a reply (whose reader would do it). */
static void send_for_queue(pool *p, pconn *pc)
{
    lvrpci_buf out = {0};
    lvrpci_conn *conn = NULL;
    int rc;

    pthread_mutex_lock(&p->lock);
    rc = pc->up ? take_queued(pc, &out) : LVRPC_ECLOSED;
    if (rc == LVRPC_OK && out.len) {
        conn = pc->conn;
        __atomic_add_fetch(&pc->writers, 1, __ATOMIC_ACQ_REL);
    }
    pthread_mutex_unlock(&p->lock);
    if (conn) {
        locked_write_buf(pc, conn, out.data, out.len, write_deadline(p));
        writer_done(p, pc);
    }
    lvrpci_buf_clear(&out);
}

static int read_round(pconn *pc, lvrpci_conn *conn, const unsigned char *pkt, size_t len,
                      batch *claims, lvrpci_buf *out, int *stop);
static int64_t keepalive_deadline(pool *p, lvrpci_conn *conn);
static int input_held(lvrpci_conn *conn);
static int self_read_ok(pconn *pc, lvrpci_conn *conn);

/* A caller gives the socket back.  rc is why it stopped: LVRPC_OK or its
 * own deadline, or an error that kills the connection, which the reader
 * thread then buries (it alone frees connections). */
static void release_role(pool *p, pconn *pc, lvrpci_conn *conn, int rc, int timed_out,
                         int quiet)
{
    pthread_mutex_lock(&p->lock);
    pc->quiet = quiet;
    if (rc != LVRPC_OK && !timed_out) {
        pc->up = 0;
        pc->dead_cause = *lvrpci_error();
        pc->role = R_DEAD;
        conn->t->ops->shutdown(conn->t); /* blocked writers return */
        pthread_cond_signal(&pc->rwake);
    } else {
        pc->role = R_FREE;
        /* Calls left in flight need a reader now; an idle connection can
         * wait for the parked reader's next look. */
        if (pc->parked && (pc->inflight > 0 || !pc->up || p->closing || input_held(conn)))
            pthread_cond_signal(&pc->rwake);
    }
    pthread_mutex_unlock(&p->lock);
}

/* Buck passing: when nobody reads pc's socket, the caller reads until its
 * own reply is in, dispatching whatever comes (other callers' replies,
 * events, PINGs) as the reader thread would.  A lone caller then gets its
 * reply with no thread hand-off.  Its PENDING state proves that conn is
 * still pc's connection: a dead one's waiters are all DONE. */
static void read_own(pool *p, pconn *pc, lvrpci_conn *conn, waiter *w, int64_t deadline)
{
    lvrpci_buf out = {0};
    const unsigned char *pkt;
    size_t len;
    batch claims;
    int rc = LVRPC_OK, stop = 0, timed_out = 0;

    pthread_mutex_lock(&p->lock);
    if (pc->role != R_FREE || WSTATE(w) != W_PENDING || !self_read_ok(pc, conn)) {
        /* A call this caller may not read (a stream is registered): a
         * reader parked after an earlier caller must take it now, not
         * after its park time. */
        if (pc->role == R_FREE && pc->parked && WSTATE(w) == W_PENDING)
            pthread_cond_signal(&pc->rwake);
        pthread_mutex_unlock(&p->lock);
        return;
    }
    pc->role = R_CALLER;
    pthread_mutex_unlock(&p->lock);
    claims.n = 0;
    while (rc == LVRPC_OK && !stop && WSTATE(w) == W_PENDING) {
        /* A keepalive interval of silence: the reader thread takes over
         * the socket and the pinging. */
        int64_t ka = keepalive_deadline(p, conn);
        int64_t dl = ka && (!deadline || ka < deadline) ? ka : deadline;
        rc = lvrpci_conn_read_packet(conn, dl, &pkt, &len);
        if (rc == LVRPC_OK)
            rc = read_round(pc, conn, pkt, len, &claims, &out, &stop);
        else if (rc == LVRPC_ETIMEDOUT)
            timed_out = 1 + (dl != deadline);
    }
    lvrpci_buf_clear(&out);
    release_role(p, pc, conn, rc, timed_out != 0, timed_out == 2);
}

/* The deadline passed: withdraw the call if nobody has taken it yet, else
 * wait the moments until the reader finishes it. */
static void give_up(pool *p, pconn *pc, waiter *w)
{
    pconn *hand_over = NULL;
    wstate now;

    pthread_mutex_lock(&p->lock);
    now = WSTATE(w);

    if (now == W_QUEUED) {
        queue_remove(p, w);
    } else if (now == W_PENDING) {
        pc = NULL;
        for (unsigned i = 0; i < p->nconns && !pc; i++)
            if (p->conns[i].table[w->serial & p->conns[i].mask] == w)
                pc = &p->conns[i];
        if (pc)
            drop_pending(pc, w);
    }
    if (now == W_PENDING && pc && pc->up && p->qhead)
        hand_over = pc; /* the freed place goes to the queue, sent by us */
    if (now == W_QUEUED && !any_up(p))
        lvrpci_fail(LVRPC_ETIMEDOUT, 0,
                    "timed out waiting for the connection to the daemon to be "
                    "re-established (it was lost: %s)", p->conns[0].cause.message);
    else if (now == W_QUEUED)
        lvrpci_fail(LVRPC_ETIMEDOUT, 0,
                    "timed out waiting for a free place on a connection (max_inflight=%u)",
                    p->client->opts.max_inflight);
    else if (now == W_PENDING)
        lvrpci_fail(LVRPC_ETIMEDOUT, 0, "timed out waiting for the daemon's reply "
                    "(procedure %d)", w->call->proc);
    if (now == W_QUEUED || now == W_PENDING)
        finish(w, LVRPC_ETIMEDOUT, lvrpci_error());
    pthread_mutex_unlock(&p->lock);
    wait_done(w, 0); /* consumes our own post, or the reader's */
    if (hand_over)
        send_for_queue(p, hand_over);
}

static int pool_call_reg(pool *p, lvrpci_call *call, int64_t deadline, sreg *reg,
                         pconn *pin);

static int pool_call(void *engine, lvrpci_call *call, int64_t deadline)
{
    return pool_call_reg(engine, call, deadline, NULL, NULL);
}

int lvrpci_pool_call_on(void *engine, unsigned conn, lvrpci_call *call, int64_t deadline)
{
    pool *p = engine;

    if (conn >= p->nconns)
        return lvrpci_fail(LVRPC_EINVAL, 0, "no connection %u in the pool", conn);
    return pool_call_reg(p, call, deadline, NULL, &p->conns[conn]);
}

static int pool_call_reg(pool *p, lvrpci_call *call, int64_t deadline, sreg *reg, pconn *pin)
{
    waiter w;
    pconn *pc = NULL;
    lvrpci_conn *conn = NULL;
    int rc;

    memset(&w, 0, sizeof(w));
    w.call = call;
    w.reg = reg;
    w.pin = pin;
    /* Encoded before any lock is taken; the serial is patched in later. */
    rc = lvrpci_check_call_fds(call, p->client->target.kind == LVRPCI_UNIX);
    if (rc == LVRPC_OK)
        rc = lvrpci_encode_call(&w.pkt, call, 0);
    if (rc != LVRPC_OK) {
        lvrpci_buf_clear(&w.pkt);
        return rc;
    }
    sem_init(&w.done, 0, 0);
    pthread_mutex_lock(&p->lock);
    __atomic_add_fetch(&p->callers, 1, __ATOMIC_ACQ_REL);
    rc = place(p, &w, &pc);
    if (pc)
        conn = pc->conn;
    pthread_mutex_unlock(&p->lock);
    if (rc == LVRPC_OK) {
        if (pc) {
            send_own(p, pc, conn, &w, deadline);
            read_own(p, pc, conn, &w, deadline);
        }
        if (wait_done(&w, deadline) == ETIMEDOUT)
            give_up(p, pc, &w);
        rc = w.rc;
        if (rc != LVRPC_OK && w.err)
            lvrpci_set_error(w.err);
        else if (rc != LVRPC_OK)
            lvrpci_fail(rc, ENOMEM, "%s (no memory for the details)", lvrpc_strerror(rc));
        free(w.err);
    }
    sem_destroy(&w.done);
    lvrpci_buf_clear(&w.pkt);
    __atomic_add_fetch(&p->calls, 1, __ATOMIC_RELAXED);
    if (rc != LVRPC_OK)
        __atomic_add_fetch(&p->errors, 1, __ATOMIC_RELAXED);
    /* The last touch of the pool: lvrpc_close may free it right after. */
    __atomic_sub_fetch(&p->callers, 1, __ATOMIC_RELEASE);
    return rc;
}

/* ------------------------------------------------------------ reader side */

/* Claims the waiter of a reply (pool lock held).  Returns LVRPC_OK, or an
 * error that kills the connection (a reply nobody asked for). */
static int route_reply(pconn *pc, lvrpci_conn *conn, const lvrpci_header *h,
                       const unsigned char *body, size_t len, batch *b)
{
    pool *p = pc->pool;
    waiter *w = pc->table[h->serial & pc->mask];

    if (!w || w->serial != h->serial) {
        /* Serials below next_serial were ours: a late reply to a call that
         * timed out.  Anything else the daemon made up. */
        if (h->serial != 0 && (uint32_t)(pc->next_serial - h->serial) - 1u < 0x80000000u) {
            p->dropped++;
            return LVRPC_OK;
        }
        return lvrpci_fail(LVRPC_EPROTO, 0, "reply with serial %u, which no call has",
                           h->serial);
    }
    pc->table[h->serial & pc->mask] = NULL;
    if (w->reg)
        w->reg->replied = 1;
    WSET(w, W_CLAIMED);
    pc->inflight--;
    b->c[b->n].w = w;
    b->c[b->n].h = *h;
    b->c[b->n].body = body;
    b->c[b->n].len = len;
    lvrpci_conn_take_fds(conn, &b->c[b->n].fds, &b->c[b->n].nfds);
    b->n++;
    return LVRPC_OK;
}

/* Decodes and completes the claimed replies, without the pool lock.  A
 * reply that does not fit its call means the stream is out of step: the
 * connection is marked down before that waiter (or any later one) wakes,
 * and LVRPC_EPROTO is returned with that cause.  The other calls' errors
 * pass through this thread's error record, which is given back after: a
 * caller reading the socket for others keeps its own, as any success
 * does. */
static int complete_batch(pconn *pc, batch *b)
{
    lvrpc_error mine = *lvrpci_error(), cause;
    int killed = 0;

    for (unsigned i = 0; i < b->n; i++) {
        claim *c = &b->c[i];
        int rc = lvrpci_check_reply_header(&c->h, c->w->call, c->w->serial);
        if (rc == LVRPC_OK)
            rc = lvrpci_decode_reply(c->w->call, &c->h, c->body, c->len);
        if (rc == LVRPC_OK)
            lvrpci_call_take_fds(c->w->call, c->fds, c->nfds);
        else
            lvrpci_fds_discard(c->fds, c->nfds);
        if (rc == LVRPC_EPROTO && !killed) {
            killed = 1;
            cause = *lvrpci_error();
            pthread_mutex_lock(&pc->pool->lock);
            pc->up = 0;
            pthread_mutex_unlock(&pc->pool->lock);
        }
        finish(c->w, rc, lvrpci_error());
    }
    b->n = 0;
    lvrpci_set_error(killed ? &cause : &mine);
    return killed ? cause.code : LVRPC_OK;
}

/* Events: copied to the events engine's queue for its dispatch thread
 * (callbacks never run here); counted and dropped when nobody listens. */
static void route_message(pconn *pc, const lvrpci_header *h, const unsigned char *body,
                          size_t len)
{
    pool *p = pc->pool;

    p->event_msgs++;
    if (p->events && pc->index == 0)
        lvrpci_events_push(p->events, h, body, len);
}

void lvrpci_pool_set_events(void *engine, lvrpci_events *ev)
{
    pool *p = engine;

    pthread_mutex_lock(&p->lock);
    p->events = ev;
    pthread_mutex_unlock(&p->lock);
}

/* A bulk consumer (an fd pump) is woken once this much is queued, or after
 * STREAM_BATCH_WAIT_MS with less, instead of at every packet: a wake-up
 * costs a futex round trip on both threads, several per MiB otherwise. */
#define STREAM_BATCH (LVRPC_STREAM_QUEUE_MAX / 4)
#define STREAM_BATCH_WAIT_MS 20

/* Queues a stream packet for its stream (pool lock held).  When the
 * stream's queue is full the reader waits here for its consumer: that is the
 * backpressure, and it holds up this connection only.  Packets of unknown
 * streams (aborted, freed) are dropped, as libvirt does. */
/* A buffer for a packet of len bytes: a spare one, or a new one (pool
 * lock held). */
static lvrpci_pkt *packet_buffer(sreg *r, size_t len)
{
    lvrpci_pkt *q = r->spare;

    if (q && q->cap >= len) {
        r->spare = q->next;
        r->nspare--;
        return q;
    }
    if (len >= SPARE_MIN_LEN && len < LVRPC_STREAM_CHUNK + LVRPCI_PACKET_MIN)
        return lvrpci_pkt_alloc(LVRPC_STREAM_CHUNK + LVRPCI_PACKET_MIN);
    return lvrpci_pkt_alloc(len);
}

/* Keeps a consumed packet's buffer for reuse, or frees it (lock held). */
static void packet_done(sreg *r, lvrpci_pkt *q)
{
    if (q && q->cap >= SPARE_MIN_LEN && r->nspare < SPARE_MAX) {
        q->next = r->spare;
        r->spare = q;
        r->nspare++;
    } else {
        free(q);
    }
}

static void route_stream(pconn *pc, const lvrpci_header *h, const unsigned char *body,
                         size_t len)
{
    pool *p = pc->pool;
    sreg *r;
    lvrpci_pkt *q;

    p->stream_packets++;
    for (r = pc->streams; r && r->serial != h->serial; r = r->next)
        ;
    if (!r || h->prog != LVRPC_PROGRAM_REMOTE)
        return;
    if (!r->replied && r->q.bytes + len > LVRPCI_EARLY_STREAM_MAX) {
        lvrpc_error e;
        lvrpci_error_make(&e, LVRPC_EPROTO, 0, LVRPCI_EARLY_STREAM_TOO_MUCH,
                          LVRPCI_EARLY_STREAM_MAX);
        kill_stream(r, &e);
        return;
    }
    while (r->replied && r->linked && !p->closing && r->q.bytes >= LVRPC_STREAM_QUEUE_MAX) {
        pc->held = 1; /* pick() sends new calls elsewhere meanwhile */
        r->waiting = 1;
        pthread_cond_wait(&r->room, &p->lock);
        r->waiting = 0;
        pc->held = 0;
    }
    if (!r->linked || p->closing)
        return;
    if (!(q = packet_buffer(r, len))) {
        /* Never drop data silently: the stream fails with ENOMEM. */
        lvrpc_error e;
        lvrpci_error_make(&e, LVRPC_ENOMEM, ENOMEM, "out of memory queueing stream data");
        kill_stream(r, &e);
        return;
    }
    lvrpci_pktq_push(&r->q, q, h, body, len);
    if (len == 0 || h->type != LVRPC_STREAM || h->status != LVRPC_STATUS_CONTINUE)
        r->urgent = 1;
    if (!r->batch || r->urgent || r->q.bytes >= STREAM_BATCH)
        pthread_cond_signal(&r->ready);
}

/* The writer thread of a connection: writes what its reader deferred. */
static void *writer_main(void *arg)
{
    pconn *pc = arg;
    pool *p = pc->pool;

    pthread_mutex_lock(&p->lock);
    while (!p->closing) {
        lvrpci_buf b = pc->deferred;
        lvrpci_conn *conn = pc->conn;
        if (!b.len) {
            pthread_cond_wait(&pc->wwake, &p->lock);
            continue;
        }
        memset(&pc->deferred, 0, sizeof(pc->deferred));
        if (!pc->up || !conn) { /* the bytes were for a connection that died */
            lvrpci_buf_clear(&b);
            continue;
        }
        __atomic_add_fetch(&pc->writers, 1, __ATOMIC_ACQ_REL);
        pthread_mutex_unlock(&p->lock);
        locked_write_buf(pc, conn, b.data, b.len, write_deadline(p)); /* failure: the
                                                                      * reader fails it */
        lvrpci_buf_clear(&b);
        writer_done(p, pc);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Every write of the reader goes through here: directly, or, while a stream
 * sends on the connection, through the writer thread (see "Streams" at the
 * top), so that the reader never waits for the socket. */
static int reader_write(pconn *pc, lvrpci_conn *conn, const void *data, size_t len)
{
    pool *p = pc->pool;
    int rc;

    if (__atomic_load_n(&pc->senders, __ATOMIC_ACQUIRE) > 0) {
        pthread_mutex_lock(&p->lock);
        rc = lvrpci_buf_reserve(&pc->deferred, pc->deferred.len + len);
        if (rc == LVRPC_OK) {
            memcpy(pc->deferred.data + pc->deferred.len, data, len);
            pc->deferred.len += len;
            if (!pc->writer_started) {
                if (pthread_create(&pc->writer, NULL, writer_main, pc) == 0)
                    pc->writer_started = 1;
                else
                    rc = lvrpci_fail(LVRPC_ESYS, errno, "cannot start a writer thread");
            }
            pthread_cond_signal(&pc->wwake);
        }
        pthread_mutex_unlock(&p->lock);
        return rc;
    }
    return locked_write_buf(pc, conn, data, len, write_deadline(p));
}

static int send_keepalive(pconn *pc, lvrpci_conn *conn, int proc)
{
    unsigned char pkt[LVRPCI_PACKET_MIN];
    lvrpci_header h = {LVRPC_KEEPALIVE_PROGRAM, LVRPC_KEEPALIVE_VERSION, proc,
                       LVRPC_MESSAGE, 0, LVRPC_STATUS_OK};

    put32(pkt, LVRPCI_PACKET_MIN);
    lvrpci_header_put(pkt + LVRPCI_LEN_WORD, &h);
    return reader_write(pc, conn, pkt, sizeof(pkt));
}

/* Dispatches one packet with the pool lock held; returns an error that
 * kills the connection. */
static int dispatch(pconn *pc, lvrpci_conn *conn, const unsigned char *pkt, size_t len,
                    batch *b)
{
    lvrpci_header h;

    lvrpci_header_get(pkt + LVRPCI_LEN_WORD, &h);
    if (h.prog == LVRPC_KEEPALIVE_PROGRAM) {
        int rc = LVRPC_OK;
        if (h.type == LVRPC_MESSAGE && h.proc == LVRPC_KEEPALIVE_PING) {
            pthread_mutex_unlock(&pc->pool->lock); /* never write under the pool lock */
            rc = send_keepalive(pc, conn, LVRPC_KEEPALIVE_PONG);
            pthread_mutex_lock(&pc->pool->lock);
        }
        return rc;
    }
    switch (h.type) {
    case LVRPC_REPLY:
    case LVRPC_REPLY_WITH_FDS:
        return route_reply(pc, conn, &h, pkt + LVRPCI_PACKET_MIN, len - LVRPCI_PACKET_MIN, b);
    case LVRPC_MESSAGE:
        route_message(pc, &h, pkt + LVRPCI_PACKET_MIN, len - LVRPCI_PACKET_MIN);
        return LVRPC_OK;
    case LVRPC_STREAM:
    case LVRPC_STREAM_HOLE:
        route_stream(pc, &h, pkt + LVRPCI_PACKET_MIN, len - LVRPCI_PACKET_MIN);
        return LVRPC_OK;
    default:
        return lvrpci_fail(LVRPC_EPROTO, 0, "unexpected message type %d from the daemon",
                           h.type);
    }
}

/* Moves queued calls to pc while it has room, copying their packets into
 * out (their callers may time out and leave once the lock is released).
 * Lock held. */
static int take_queued(pconn *pc, lvrpci_buf *out)
{
    pool *p = pc->pool;

    out->len = 0;
    while (p->qhead && pc->up && pc->inflight < p->client->opts.max_inflight) {
        waiter *w = p->qhead;
        int rc = lvrpci_buf_reserve(out, out->len + w->pkt.len);
        if (rc != LVRPC_OK)
            return rc;
        queue_remove(p, w);
        make_pending(pc, w);
        memcpy(out->data + out->len, w->pkt.data, w->pkt.len);
        out->len += w->pkt.len;
    }
    return LVRPC_OK;
}

/* Sends what take_queued gathered, in one write. */
static int send_queued(pconn *pc, lvrpci_conn *conn, lvrpci_buf *out)
{
    int rc = reader_write(pc, conn, out->data, out->len);

    if (out->cap > LVRPCI_RBUF_INITIAL)
        lvrpci_buf_clear(out);
    return rc;
}

/* Marks pc DOWN with the calling (reader) thread's error as the cause,
 * fails its waiters, and frees its connection once no writer uses it. */
static void connection_died(pconn *pc, lvrpci_conn *conn)
{
    pool *p = pc->pool;
    lvrpc_error cause = *lvrpci_error();

    conn->t->ops->shutdown(conn->t);
    pthread_mutex_lock(&p->lock);
    pc->up = 0;
    while (pc->role == R_CALLER) { /* its read fails at once: shut down */
        pc->parked = 1;
        pthread_cond_wait(&pc->rwake, &p->lock);
        pc->parked = 0;
    }
    pc->role = R_FREE;
    if (p->closing || cause.code == LVRPC_OK) {
        cause.code = LVRPC_ECLOSED;
        snprintf(cause.message, sizeof(cause.message), "%s",
                 p->closing ? "the handle was closed" : "connection lost");
    }
    pc->up = 0;
    pc->conn = NULL;
    pc->cause = cause;
    fail_all_pending(pc, &cause);
    while (pc->streams)
        kill_stream(pc->streams, &cause);
    __atomic_store_n(&pc->draining, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&pc->writers, __ATOMIC_SEQ_CST) > 0)
        pthread_cond_wait(&pc->writers_gone, &p->lock);
    __atomic_store_n(&pc->draining, 0, __ATOMIC_SEQ_CST);
    lvrpci_buf_clear(&pc->deferred); /* bytes for this connection only */
    /* Reported under the pool lock, as events are pushed: lvrpc_close
     * detaches the engine under this lock before it frees it, so a report
     * made after unlocking could reach a freed engine. */
    if (pc->index == 0 && !p->closing && p->events)
        lvrpci_events_conn_state(p->events, LVRPC_CONN_CLOSED, &cause);
    pthread_mutex_unlock(&p->lock);
    lvrpci_conn_free(conn);
}

/* The reader's read deadline: the keepalive interval when pinging is on
 * and the daemon speaks keepalive, else none. */
static int64_t keepalive_deadline(pool *p, lvrpci_conn *conn)
{
    unsigned ms = p->client->opts.keepalive_interval_ms;

    return conn->keepalive && ms != LVRPC_KEEPALIVE_OFF ? lvrpci_deadline_after_ms(ms) : 0;
}

/* An idle keepalive interval passed: PING, and after keepalive_count of
 * them with nothing back the peer is dead, as libvirt decides it (interval
 * x (count + 1) after the last packet).  No lock held. */
static int keepalive_tick(pconn *pc, lvrpci_conn *conn, unsigned *unanswered)
{
    pool *p = pc->pool;

    if ((*unanswered)++ < p->client->opts.keepalive_count)
        return send_keepalive(pc, conn, LVRPC_KEEPALIVE_PING);
    return lvrpci_fail(LVRPC_ETIMEDOUT, 0,
                       "connection closed due to keepalive timeout (no answer from the "
                       "daemon for %u intervals of %u ms)", *unanswered,
                       p->client->opts.keepalive_interval_ms);
}

/* Whether a caller may read its own reply on pc (lock held): when the
 * reader thread can tell when to take over (the transport's has_input)
 * and no stream is registered (their packets and backpressure stay with
 * the reader). */
static int self_read_ok(pconn *pc, lvrpci_conn *conn)
{
    return pc->up && conn->t->ops->has_input && !pc->streams;
}

/* Input to dispatch that poll() would not show: bytes in our read buffer,
 * or held by the transport.  Only for the thread allowed to read. */
static int input_held(lvrpci_conn *conn)
{
    return lvrpci_conn_buffered(conn) ||
           (conn->t->ops->has_input && conn->t->ops->has_input(conn->t));
}

/* One round of reading, by the reader thread or a caller: dispatches the
 * packet just read and every whole one already buffered under one hold of
 * the pool lock (with calls pipelined, replies come in bunches), sends the
 * calls that the freed places take, then completes the claimed replies.  A
 * caller stops at a stream packet (*stop).  The claimed bodies are in the
 * read buffer: the role is kept until they are decoded. */
static int read_round(pconn *pc, lvrpci_conn *conn, const unsigned char *pkt, size_t len,
                      batch *claims, lvrpci_buf *out, int *stop)
{
    pool *p = pc->pool;
    int rc;

    pthread_mutex_lock(&p->lock);
    do
        rc = dispatch(pc, conn, pkt, len, claims);
    while (rc == LVRPC_OK && claims->n < CLAIM_MAX && !(stop && pc->streams) &&
           lvrpci_conn_take_buffered(conn, &pkt, &len));
    pc->rounds++;
    if (rc == LVRPC_OK)
        rc = take_queued(pc, out);
    else
        pc->up = 0; /* now, so no new call lands on a dying connection */
    if (stop)
        *stop = !self_read_ok(pc, conn) || p->closing;
    pthread_mutex_unlock(&p->lock);
    /* The freed places' calls go out first: the daemon works on them while
     * the replies are decoded and their callers woken. */
    if (rc == LVRPC_OK && out->len)
        rc = send_queued(pc, conn, out);
    if (claims->n) {
        /* complete_batch gives the record back as it found it, unless it
         * kills the connection: then an earlier failure's record is kept. */
        lvrpc_error saved;
        int crc;
        if (rc != LVRPC_OK)
            saved = *lvrpci_error();
        crc = complete_batch(pc, claims);
        if (rc == LVRPC_OK)
            rc = crc;
        else if (crc != LVRPC_OK)
            lvrpci_set_error(&saved);
    }
    return rc;
}

/* The reader waits while callers read (lock held): until a caller that
 * leaves calls in flight wakes it, or its park time passes. */
static void park(pconn *pc)
{
    pc->parked = 1;
    wait_until(&pc->rwake, &pc->pool->lock, lvrpci_now_ns() + pc->park_ns);
    pc->parked = 0;
    if (pc->park_ns < PARK_MAX_NS)
        pc->park_ns = pc->park_ns * 2 < PARK_MAX_NS ? pc->park_ns * 2 : PARK_MAX_NS;
}

/* The socket is free and nothing is in flight: waits for data without
 * taking the socket, so that the next caller can read its own reply.
 * Lock held, released while polling. */
static int idle_wait(pconn *pc, lvrpci_conn *conn, unsigned *unanswered)
{
    pool *p = pc->pool;
    uint64_t seen = pc->rounds;
    int64_t dl = keepalive_deadline(p, conn);
    struct pollfd pfd = {.fd = conn->t->fd, .events = POLLIN};
    int64_t since = lvrpci_now_ns();
    int n, rc = LVRPC_OK;

    pthread_mutex_unlock(&p->lock);
    n = poll(&pfd, 1, dl ? (int)((dl - lvrpci_now_ns()) / 1000000) : -1);
    pthread_mutex_lock(&p->lock);
    if (lvrpci_now_ns() - since >= PARK_RESET_NS)
        pc->park_ns = PARK_MIN_NS; /* an idle spell: events are prompt again */
    if (n == 0 && seen == pc->rounds && pc->role == R_FREE) {
        pthread_mutex_unlock(&p->lock);
        rc = keepalive_tick(pc, conn, unanswered);
        pthread_mutex_lock(&p->lock);
        return rc;
    }
    if (seen != pc->rounds)
        *unanswered = 0;
    if (n <= 0 || pc->role != R_FREE)
        return LVRPC_OK;
    /* Readable, unless a caller took what woke us: then callers are busy
     * with this connection, and we stay out of their way for a while. */
    pfd.revents = 0;
    if (seen == pc->rounds || input_held(conn) || poll(&pfd, 1, 0) > 0)
        pc->role = R_READER;
    else
        park(pc);
    return LVRPC_OK;
}

/* Until the reader thread holds the socket and may read: it parks while a
 * caller reads, and takes the socket when calls are in flight or bytes are
 * buffered, or when data comes on an idle connection.  Returns an error
 * when the connection must die.  Lock held. */
static int reader_turn(pconn *pc, lvrpci_conn *conn, unsigned *unanswered)
{
    pool *p = pc->pool;
    int rc = LVRPC_OK;

    /* The reader keeps the socket while calls are in flight. */
    if (pc->role == R_READER && pc->inflight == 0 && self_read_ok(pc, conn) &&
        !input_held(conn))
        pc->role = R_FREE;
    while (rc == LVRPC_OK && pc->role != R_READER) {
        if (pc->role == R_DEAD)
            return lvrpci_set_error(&pc->dead_cause);
        if (p->closing)
            return lvrpci_fail(LVRPC_ECLOSED, 0, "the handle was closed");
        if (pc->role == R_CALLER) {
            park(pc);
        } else if (!self_read_ok(pc, conn) || pc->inflight > 0 || input_held(conn)) {
            pc->role = R_READER;
        } else {
            rc = idle_wait(pc, conn, unanswered);
        }
    }
    return rc;
}

/* Reads and dispatches until the connection fails or the pool closes. */
static void serve(pconn *pc, lvrpci_conn *conn)
{
    pool *p = pc->pool;
    const unsigned char *pkt;
    lvrpci_buf out = {0};
    size_t len;
    unsigned unanswered = 0; /* keepalive intervals without a packet */
    batch claims;
    int rc;

    claims.n = 0;
    pthread_mutex_lock(&p->lock); /* calls queued while this one was down */
    rc = take_queued(pc, &out);
    pthread_mutex_unlock(&p->lock);
    if (rc == LVRPC_OK && out.len)
        rc = send_queued(pc, conn, &out);
    while (rc == LVRPC_OK) {
        int quiet;
        pthread_mutex_lock(&p->lock);
        rc = reader_turn(pc, conn, &unanswered);
        quiet = pc->quiet;
        pc->quiet = 0;
        pthread_mutex_unlock(&p->lock);
        if (rc != LVRPC_OK)
            break;
        rc = quiet ? LVRPC_ETIMEDOUT
                   : lvrpci_conn_read_packet(conn, keepalive_deadline(p, conn), &pkt, &len);
        if (rc == LVRPC_ETIMEDOUT) {
            rc = keepalive_tick(pc, conn, &unanswered);
            continue;
        }
        if (rc != LVRPC_OK)
            break;
        unanswered = 0;
        rc = read_round(pc, conn, pkt, len, &claims, &out, NULL);
    }
    lvrpci_buf_clear(&out);
    connection_died(pc, conn);
}

/* Re-opens pc with backoff; returns the new connection, or NULL on close. */
static lvrpci_conn *reconnect(pconn *pc)
{
    pool *p = pc->pool;
    const lvrpc_options *o = &p->client->opts;
    unsigned delay = o->reconnect_min_ms;

    for (;;) {
        lvrpci_conn *conn = NULL;
        int64_t until = lvrpci_deadline_after_ms(delay);

        pthread_mutex_lock(&p->lock);
        while (!p->closing && wait_until(&p->wake, &p->lock, until) != ETIMEDOUT)
            ;
        if (p->closing) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        pthread_mutex_unlock(&p->lock);
        if (lvrpci_conn_open(&p->client->target, 1,
                             lvrpci_deadline_after_ms(o->connect_timeout_ms), &conn) == LVRPC_OK) {
            pthread_mutex_lock(&p->lock);
            if (p->closing) {
                pthread_mutex_unlock(&p->lock);
                lvrpci_conn_free(conn);
                return NULL;
            }
            pc->conn = conn;
            pc->up = 1;
            p->opened++;
            p->reconnects++;
            if (pc->index == 0 && p->events) /* under the lock: see connection_died */
                lvrpci_events_conn_state(p->events, LVRPC_CONN_RECONNECTED, NULL);
            pthread_mutex_unlock(&p->lock);
            return conn;
        }
        pthread_mutex_lock(&p->lock);
        pc->cause = *lvrpci_error();
        pthread_mutex_unlock(&p->lock);
        delay = delay * 2 > o->reconnect_max_ms ? o->reconnect_max_ms : delay * 2;
    }
}

static void *reader_main(void *arg)
{
    pconn *pc = arg;
    lvrpci_conn *conn;

    pthread_mutex_lock(&pc->pool->lock);
    conn = pc->conn;
    pthread_mutex_unlock(&pc->pool->lock);
    while (conn) {
        serve(pc, conn);
        conn = reconnect(pc);
    }
    return NULL;
}

/* ------------------------------------------------------------ streams */

static int pool_stream_open(void *engine, lvrpci_call *call, int64_t deadline,
                            lvrpc_stream *st)
{
    pool *p = engine;
    sreg *r = calloc(1, sizeof(*r));
    int rc;

    if (!r)
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    cond_init_monotonic(&r->ready);
    pthread_cond_init(&r->room, NULL);
    __atomic_add_fetch(&p->nstreams, 1, __ATOMIC_ACQ_REL);
    rc = pool_call_reg(p, call, deadline, r, NULL);
    if (rc != LVRPC_OK) {
        pthread_mutex_lock(&p->lock);
        unlink_stream(r);
        pthread_mutex_unlock(&p->lock);
        st->impl = r;
        st->engine = p;
        st->ops->release(st, 0);
        return rc;
    }
    st->serial = r->serial;
    st->impl = r;
    return LVRPC_OK;
}

/* A stream's packet is written as a caller writes a call: counted in
 * pc->writers, so that the connection outlives the write, and under
 * pc->wlock (locked_write).  body as there; NULL for packets in memory.
 * Returns LVRPCI_NO_SEND_FILE, having sent nothing, when body is given and
 * the connection's transport cannot send files. */
static int stream_write(lvrpc_stream *st, const struct iovec *iov, int n,
                        const lvrpci_file_span *body, int64_t deadline)
{
    pool *p = st->engine;
    sreg *r = st->impl;
    pconn *pc;
    lvrpci_conn *conn = NULL;
    int rc = LVRPC_OK;

    pthread_mutex_lock(&p->lock);
    pc = r->pc;
    if (r->dead)
        rc = lvrpci_set_error(&r->cause);
    else if (!pc || !pc->up || !pc->conn)
        rc = lvrpci_fail(LVRPC_ECLOSED, 0, "the stream's connection is gone");
    else if (body && !pc->conn->t->ops->send_file_all)
        rc = LVRPCI_NO_SEND_FILE;
    else {
        conn = pc->conn;
        __atomic_add_fetch(&pc->writers, 1, __ATOMIC_ACQ_REL);
        if (!r->sending && r->linked) { /* from now on the reader defers its writes */
            r->sending = 1;
            __atomic_add_fetch(&pc->senders, 1, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (!conn)
        return rc;
    /* Chunks are at most LVRPC_STREAM_CHUNK, so calls interleave between
     * them on the shared socket. */
    rc = locked_write(pc, conn, iov, n, body, NULL, deadline);
    writer_done(p, pc);
    return rc;
}

static int pool_stream_send(lvrpc_stream *st, const struct iovec *iov, int n, int64_t deadline)
{
    return stream_write(st, iov, n, NULL, deadline);
}

static int pool_stream_send_file(lvrpc_stream *st, const struct iovec *iov, int n,
                                 const lvrpci_file_span *body, int64_t deadline)
{
    return stream_write(st, iov, n, body, deadline);
}

static int pool_stream_next(lvrpc_stream *st, int64_t deadline, lvrpci_header *h,
                            const unsigned char **body, size_t *len)
{
    pool *p = st->engine;
    sreg *r = st->impl;
    int64_t until = 0;
    int rc = LVRPC_OK;

    pthread_mutex_lock(&p->lock);
    packet_done(r, r->cur);
    r->cur = NULL;
    r->batch = st->bulk;
    while (!r->dead && !p->closing && rc == LVRPC_OK) {
        if (r->q.head && (!r->batch || r->urgent || r->draining || r->q.bytes >= STREAM_BATCH)) {
            r->draining = 1;
            break;
        }
        if (r->q.head) { /* a bulk consumer: less than a batch, wait a little */
            int64_t dl;
            if (!until)
                until = lvrpci_deadline_after_ms(STREAM_BATCH_WAIT_MS);
            dl = deadline && deadline < until ? deadline : until;
            if (wait_until(&r->ready, &p->lock, dl) == ETIMEDOUT) {
                r->draining = 1; /* deliver what there is */
                break;
            }
            continue;
        }
        if (wait_until(&r->ready, &p->lock, deadline) == ETIMEDOUT && !r->q.head)
            rc = lvrpci_fail(LVRPC_ETIMEDOUT, 0, "timed out waiting for stream data");
    }
    if (r->q.head) {
        lvrpci_pkt *q = lvrpci_pktq_pop(&r->q);
        if (!r->q.head) {
            r->urgent = 0;
            r->draining = 0;
        }
        /* The reader waits at the maximum and goes on at half of it: one
         * wake-up per half queue, not one per packet (each costs a futex
         * round trip on both sides). */
        if (r->waiting && r->q.bytes <= LVRPC_STREAM_QUEUE_MAX / 2)
            pthread_cond_broadcast(&r->room);
        r->cur = q;
        *h = q->h;
        *body = q->body;
        *len = q->len;
        rc = LVRPC_OK;
    } else if (rc == LVRPC_OK) {
        rc = r->dead ? lvrpci_set_error(&r->cause)
                     : lvrpci_fail(LVRPC_ECLOSED, 0, "the handle was closed");
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

static void pool_stream_release(lvrpc_stream *st, int reusable)
{
    pool *p = st->engine;
    sreg *r = st->impl;

    (void)reusable; /* the shared connection stays; late packets are dropped */
    pthread_mutex_lock(&p->lock);
    unlink_stream(r);
    pthread_mutex_unlock(&p->lock);
    free(r->cur);
    lvrpci_pktq_clear(&r->q);
    while (r->spare) {
        lvrpci_pkt *q = r->spare;
        r->spare = q->next;
        free(q);
    }
    pthread_cond_destroy(&r->ready);
    pthread_cond_destroy(&r->room);
    free(r);
    st->impl = NULL;
    __atomic_sub_fetch(&p->nstreams, 1, __ATOMIC_RELEASE); /* last touch of p */
}

static const lvrpci_stream_ops pool_stream_ops = {
    .open = pool_stream_open,
    .send = pool_stream_send,
    .send_file = pool_stream_send_file,
    .next = pool_stream_next,
    .release = pool_stream_release,
};

/* ------------------------------------------------------------ lifecycle */

static void pool_stop(void *engine)
{
    pool *p = engine;
    lvrpc_error e;

    if (!p)
        return;
    lvrpci_error_make(&e, LVRPC_ECLOSED, 0, "the handle was closed during the call");
    pthread_mutex_lock(&p->lock);
    p->closing = 1;
    for (unsigned i = 0; i < p->nconns; i++) {
        pconn *pc = &p->conns[i];
        if (pc->table)
            fail_all_pending(pc, &e);
        while (pc->streams)
            kill_stream(pc->streams, &e);
        if (pc->conn)
            pc->conn->t->ops->shutdown(pc->conn->t);
        pthread_cond_broadcast(&pc->wwake);
        pthread_cond_broadcast(&pc->rwake);
    }
    while (p->qhead) {
        waiter *w = p->qhead;
        queue_remove(p, w);
        finish(w, LVRPC_ECLOSED, &e);
    }
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    for (unsigned i = 0; i < p->nconns; i++)
        if (p->conns[i].reader_started)
            pthread_join(p->conns[i].reader, NULL);
    for (unsigned i = 0; i < p->nconns; i++)
        if (p->conns[i].writer_started)
            pthread_join(p->conns[i].writer, NULL);

    /* Callers leave without taking the lock (their last act is the
     * decrement), so close polls; they are all awake by now. */
    while (__atomic_load_n(&p->callers, __ATOMIC_ACQUIRE) > 0 ||
           __atomic_load_n(&p->nstreams, __ATOMIC_ACQUIRE) > 0) /* owners free streams */
        usleep(500);

    for (unsigned i = 0; i < p->nconns; i++) {
        pconn *pc = &p->conns[i];
        if (!pc->reader_started) /* opened, but start failed before its reader ran */
            lvrpci_conn_free(pc->conn);
        free(pc->table);
        lvrpci_buf_clear(&pc->deferred);
        pthread_mutex_destroy(&pc->wlock);
        pthread_cond_destroy(&pc->writers_gone);
        pthread_cond_destroy(&pc->wwake);
        pthread_cond_destroy(&pc->rwake);
    }
    free(p->conns);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static int pconn_init(pool *p, pconn *pc, unsigned index)
{
    uint32_t size = 8;

    while (size < 2 * p->client->opts.max_inflight)
        size *= 2;
    pc->pool = p;
    pc->index = index;
    pc->next_serial = 1;
    pc->mask = size - 1;
    pc->park_ns = PARK_MIN_NS;
    adaptive_mutex_init(&pc->wlock);
    pthread_cond_init(&pc->writers_gone, NULL);
    pthread_cond_init(&pc->wwake, NULL);
    cond_init_monotonic(&pc->rwake);
    pc->table = calloc(size, sizeof(*pc->table));
    if (!pc->table)
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    return LVRPC_OK;
}

static int pool_start(lvrpc_client *cl, void **engine)
{
    return lvrpci_pool_start(cl, cl->opts.pool_size, engine);
}

void lvrpci_pool_stop(void *engine)
{
    pool_stop(engine);
}

static void *pool_event_pool(void *engine)
{
    return engine;
}

int lvrpci_pool_start(lvrpc_client *cl, unsigned nconns, void **engine)
{
    pool *p = calloc(1, sizeof(*p));
    int rc = LVRPC_OK;

    *engine = NULL;
    if (!p || !(p->conns = calloc(nconns, sizeof(*p->conns)))) {
        free(p);
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    }
    p->client = cl;
    p->nconns = nconns;
    adaptive_mutex_init(&p->lock);
    cond_init_monotonic(&p->wake);
    for (unsigned i = 0; i < p->nconns; i++)
        if ((rc = pconn_init(p, &p->conns[i], i)) != LVRPC_OK)
            break;
    /* Every connection is opened now, so that lvrpc_open() reports a bad
     * URI or an unreachable daemon. */
    for (unsigned i = 0; rc == LVRPC_OK && i < p->nconns; i++) {
        pconn *pc = &p->conns[i];
        rc = lvrpci_conn_open(&cl->target, 1,
                              lvrpci_deadline_after_ms(cl->opts.connect_timeout_ms), &pc->conn);
        if (rc != LVRPC_OK)
            break;
        pc->up = 1;
        p->opened++;
    }
    for (unsigned i = 0; rc == LVRPC_OK && i < p->nconns; i++) {
        if (pthread_create(&p->conns[i].reader, NULL, reader_main, &p->conns[i]) != 0) {
            rc = lvrpci_fail(LVRPC_ESYS, errno, "cannot start a reader thread");
            break;
        }
        p->conns[i].reader_started = 1;
    }
    if (rc != LVRPC_OK) {
        lvrpc_error saved = *lvrpci_error();
        pool_stop(p);
        return lvrpci_set_error(&saved);
    }
    *engine = p;
    return LVRPC_OK;
}

static void pool_stats(void *engine, lvrpc_stats *out)
{
    pool *p = engine;

    pthread_mutex_lock(&p->lock);
    out->sockets_opened = p->opened;
    for (unsigned i = 0; i < p->nconns; i++)
        out->sockets_open += p->conns[i].up ? 1u : 0u;
    out->dropped_replies = p->dropped;
    out->reconnects = p->reconnects;
    out->calls = __atomic_load_n(&p->calls, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&p->errors, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&p->lock);
}

const lvrpci_engine_ops lvrpci_shared_engine = {
    .name = "shared",
    .start = pool_start,
    .call = pool_call,
    .stop = pool_stop,
    .stats = pool_stats,
    .streams = &pool_stream_ops,
    .event_pool = pool_event_pool,
};
