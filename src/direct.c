/* direct.c - Direct mode: every call in progress has a socket of its own.
 *
 * Choice: a per-handle free list of idle, handshaken sockets.  A call pops an
 * idle socket (most recently used first), or opens and handshakes a new one
 * when none is idle, runs its call on it alone and pushes it back.  So:
 *   - sockets open = the peak number of calls in progress (at most
 *     max_sockets; beyond that calls wait for a socket, within their timeout),
 *     never the number of threads: 1,000 short-lived threads making calls one
 *     after another share a handful of sockets, and a thread exiting costs
 *     nothing because no socket belongs to a thread;
 *   - at most max_idle sockets are kept when calls end; extra ones are closed;
 *   - a socket whose call timed out or broke is closed, never reused (a late
 *     reply would be read by the next call); an idle socket the daemon has
 *     closed meanwhile is noticed with a non-blocking peek and replaced;
 *   - Direct sockets do not advertise keepalive, so the daemon never pings
 *     them and idle sockets stay open.
 * Closing the handle shuts down the sockets of the calls in progress (their
 * calls return LVRPC_ECLOSED at once), waits until every call has left, then
 * sends CONNECT_CLOSE on the idle sockets and frees everything.
 *
 * Locking: one mutex guards the idle stack, the busy list and the counters;
 * it is never held during I/O.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lvrpc_internal.h"

typedef struct direct {
    lvrpc_client *client;
    pthread_mutex_t lock;
    pthread_cond_t changed;  /* a socket was freed, or a call left */
    lvrpci_conn **idle;      /* stack of max_idle */
    unsigned nidle;
    lvrpci_conn *busy;       /* sockets with a call on them */
    unsigned nopen;          /* idle + busy + being opened */
    unsigned active;         /* calls inside direct_call */
    unsigned streams;        /* open streams, each holding a busy socket */
    int closing;
    uint64_t opened;
    uint64_t dropped;
    uint64_t calls, errors;
    void *evpool;            /* the event connection, made on first use */
} direct;

static void busy_add(direct *d, lvrpci_conn *c)
{
    c->prev = NULL;
    c->next = d->busy;
    if (d->busy)
        d->busy->prev = c;
    d->busy = c;
}

static void busy_remove(direct *d, lvrpci_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        d->busy = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Opens a new socket for a call; the slot was reserved in nopen. */
static int open_socket(direct *d, int64_t deadline, lvrpci_conn **out)
{
    lvrpc_client *cl = d->client;
    int64_t cdl = lvrpci_deadline_after_ms(cl->opts.connect_timeout_ms);
    int rc;

    if (deadline && (!cdl || deadline < cdl))
        cdl = deadline;
    rc = lvrpci_conn_open(&cl->target, 0, cdl, out);
    pthread_mutex_lock(&d->lock);
    if (rc == LVRPC_OK) {
        d->opened++;
        if (d->closing) { /* close began while we were connecting */
            lvrpci_conn_free(*out);
            *out = NULL;
            rc = lvrpci_fail(LVRPC_ECLOSED, 0, "the handle was closed");
        }
    }
    if (rc != LVRPC_OK) {
        d->nopen--;
        pthread_cond_broadcast(&d->changed);
    } else {
        busy_add(d, *out);
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* Takes an idle socket (which may be stale), or reserves a slot for a new
 * one (*out NULL), or waits.  Called and returns with the lock held. */
static int take_socket(direct *d, int64_t deadline, lvrpci_conn **out)
{
    for (;;) {
        if (d->closing)
            return lvrpci_fail(LVRPC_ECLOSED, 0, "the handle is being closed");
        if (d->nidle > 0) { /* the caller checks it (not under the lock) */
            lvrpci_conn *c = d->idle[--d->nidle];
            busy_add(d, c);
            *out = c;
            return LVRPC_OK;
        }
        if (d->nopen < d->client->opts.max_sockets) {
            d->nopen++;
            *out = NULL;
            return LVRPC_OK;
        }
        if (!deadline) {
            pthread_cond_wait(&d->changed, &d->lock);
        } else {
            struct timespec ts;
            int64_t now_rt;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            now_rt = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
            if (deadline <= now_rt)
                return lvrpci_fail(LVRPC_ETIMEDOUT, 0,
                                   "timed out waiting for a free socket (max_sockets=%u)",
                                   d->client->opts.max_sockets);
            ts.tv_sec = (time_t)(deadline / 1000000000);
            ts.tv_nsec = (long)(deadline % 1000000000);
            pthread_cond_timedwait(&d->changed, &d->lock, &ts);
        }
    }
}

/* Returns a socket after its call: back to the idle stack if it is healthy
 * and there is room, else closed. */
static void give_back(direct *d, lvrpci_conn *c, int rc)
{
    int reuse = !c->broken && rc != LVRPC_ETIMEDOUT && rc != LVRPC_ECLOSED &&
                rc != LVRPC_EPROTO;

    pthread_mutex_lock(&d->lock);
    busy_remove(d, c);
    if (reuse && !d->closing && d->nidle < d->client->opts.max_idle) {
        d->idle[d->nidle++] = c;
        c = NULL;
    } else {
        d->nopen--;
    }
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
    if (c) {
        if (reuse)
            lvrpci_conn_close(c);
        else
            lvrpci_conn_free(c);
    }
}

/* Enters the engine (counted in active) with a socket of its own: an idle
 * one, or a new one when none is idle.  *c is NULL on failure. */
static int enter_with_socket(direct *d, int64_t deadline, lvrpci_conn **c)
{
    int rc;

    *c = NULL;
    pthread_mutex_lock(&d->lock);
    d->active++;
    for (;;) {
        rc = take_socket(d, deadline, c);
        if (rc != LVRPC_OK || !*c)
            break;
        /* The peek is a system call: made without the lock, which every
         * call takes three times. */
        pthread_mutex_unlock(&d->lock);
        if (!lvrpci_conn_is_stale(*c))
            return LVRPC_OK;
        pthread_mutex_lock(&d->lock); /* the daemon closed it while idle */
        busy_remove(d, *c);
        d->nopen--; /* this thread goes on with another socket or this slot */
        lvrpci_conn_free(*c);
        *c = NULL;
    }
    pthread_mutex_unlock(&d->lock);
    if (rc == LVRPC_OK)
        rc = open_socket(d, deadline, c);
    return rc;
}

/* Leaves the engine, counting the call. */
static void leave(direct *d, int rc, int stream_opened)
{
    pthread_mutex_lock(&d->lock);
    d->calls++;
    d->errors += rc != LVRPC_OK;
    d->streams += stream_opened;
    d->active--;
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
}

static int direct_call(void *engine, lvrpci_call *call, int64_t deadline)
{
    direct *d = engine;
    lvrpci_conn *c = NULL;
    int rc;

    rc = enter_with_socket(d, deadline, &c);
    if (rc == LVRPC_OK) {
        rc = lvrpci_conn_call(c, call, deadline);
        if (rc != LVRPC_OK && rc != LVRPC_EREMOTE && __atomic_load_n(&d->closing, __ATOMIC_ACQUIRE))
            rc = lvrpci_fail(LVRPC_ECLOSED, 0, "the handle was closed during the call");
        give_back(d, c, rc);
    }
    leave(d, rc, 0);
    return rc;
}

/* ------------------------------------------------------------ streams */

/* A stream keeps the socket of its opening call until it is released. */
static int direct_stream_open(void *engine, lvrpci_call *call, int64_t deadline,
                              lvrpc_stream *st)
{
    direct *d = engine;
    lvrpci_conn *c = NULL;
    int rc;

    rc = enter_with_socket(d, deadline, &c);
    if (rc == LVRPC_OK) {
        st->serial = c->next_serial; /* the serial lvrpci_conn_call will use */
        rc = lvrpci_conn_call(c, call, deadline);
        if (rc != LVRPC_OK)
            give_back(d, c, rc);
        else
            st->impl = c;
    }
    leave(d, rc, rc == LVRPC_OK);
    return rc;
}

static int direct_stream_send(lvrpc_stream *st, const struct iovec *iov, int n,
                              int64_t deadline)
{
    lvrpci_conn *c = st->impl;

    return lvrpci_transport_writev(c->t, iov, n, deadline);
}

static int direct_stream_send_file(lvrpc_stream *st, const struct iovec *iov, int n,
                                   const lvrpci_file_span *body, int64_t deadline)
{
    lvrpci_conn *c = st->impl;

    if (!c->t->ops->send_file_all)
        return LVRPCI_NO_SEND_FILE;
    return c->t->ops->send_file_all(c->t, iov, n, body, deadline);
}

static int direct_stream_next(lvrpc_stream *st, int64_t deadline, lvrpci_header *h,
                              const unsigned char **body, size_t *len)
{
    lvrpci_conn *c = st->impl;

    if (lvrpci_conn_take_early(c, h, body, len))
        return LVRPC_OK; /* it came before the reply, already checked as ours */
    for (;;) {
        const unsigned char *pkt;
        size_t plen;
        int rc = lvrpci_conn_read_packet(c, deadline, &pkt, &plen);
        if (rc != LVRPC_OK)
            return rc;
        lvrpci_header_get(pkt + LVRPCI_LEN_WORD, h);
        if (h->prog == LVRPC_KEEPALIVE_PROGRAM || h->type == LVRPC_MESSAGE)
            continue; /* Direct sockets ask for neither */
        if ((h->type != LVRPC_STREAM && h->type != LVRPC_STREAM_HOLE) ||
            h->serial != st->serial || h->prog != st->prog || h->proc != st->proc)
            return lvrpci_fail(LVRPC_EPROTO, 0,
                               "unexpected packet on a stream (type %d, serial %u, expected "
                               "stream data for serial %u)", h->type, h->serial, st->serial);
        *body = pkt + LVRPCI_PACKET_MIN;
        *len = plen - LVRPCI_PACKET_MIN;
        return LVRPC_OK;
    }
}

static void direct_stream_release(lvrpc_stream *st, int reusable)
{
    direct *d = st->engine;

    give_back(d, st->impl, reusable ? LVRPC_OK : LVRPC_ECLOSED);
    st->impl = NULL;
    pthread_mutex_lock(&d->lock);
    d->streams--;
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
}

static const lvrpci_stream_ops direct_stream_ops = {
    .open = direct_stream_open,
    .send = direct_stream_send,
    .send_file = direct_stream_send_file,
    .next = direct_stream_next,
    .release = direct_stream_release,
};

/* Events need a connection that is read while nobody calls: a pool of one
 * connection with its reader (and keepalive), made at the first
 * registration and used for events only. */
static void *direct_event_pool(void *engine)
{
    direct *d = engine;
    void *p = NULL;

    pthread_mutex_lock(&d->lock);
    p = d->evpool;
    pthread_mutex_unlock(&d->lock);
    if (p)
        return p;
    if (lvrpci_pool_start(d->client, 1, &p) != LVRPC_OK)
        return NULL;
    pthread_mutex_lock(&d->lock);
    if (d->evpool) { /* another thread won the race */
        pthread_mutex_unlock(&d->lock);
        lvrpci_pool_stop(p);
        pthread_mutex_lock(&d->lock);
    } else {
        d->evpool = p;
    }
    p = d->evpool;
    pthread_mutex_unlock(&d->lock);
    return p;
}

static void direct_stop(void *engine)
{
    direct *d = engine;

    if (!d)
        return;
    if (d->evpool)
        lvrpci_pool_stop(d->evpool);
    pthread_mutex_lock(&d->lock);
    __atomic_store_n(&d->closing, 1, __ATOMIC_RELEASE);
    for (lvrpci_conn *c = d->busy; c; c = c->next)
        c->t->ops->shutdown(c->t); /* wakes the call blocked on it */
    while (d->active > 0 || d->streams > 0) /* streams: their owners must free them */
        pthread_cond_wait(&d->changed, &d->lock);
    pthread_mutex_unlock(&d->lock);
    for (unsigned i = 0; i < d->nidle; i++)
        lvrpci_conn_close(d->idle[i]);
    free(d->idle);
    pthread_cond_destroy(&d->changed);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static int direct_start(lvrpc_client *cl, void **engine)
{
    direct *d = calloc(1, sizeof(*d));
    lvrpci_conn *first = NULL;
    int rc;

    *engine = NULL;
    if (!d || !(d->idle = calloc(cl->opts.max_idle ? cl->opts.max_idle : 1, sizeof(*d->idle)))) {
        free(d);
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    }
    d->client = cl;
    pthread_mutex_init(&d->lock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&d->changed, &ca);
        pthread_condattr_destroy(&ca);
    }
    /* The first socket is opened now, so that a bad URI or an unreachable
     * daemon is reported by lvrpc_open(). */
    rc = lvrpci_conn_open(&cl->target, 0, lvrpci_deadline_after_ms(cl->opts.connect_timeout_ms),
                          &first);
    if (rc != LVRPC_OK) {
        direct_stop(d);
        return rc;
    }
    d->opened = 1;
    d->nopen = 1;
    if (cl->opts.max_idle > 0) {
        d->idle[d->nidle++] = first;
    } else {
        d->nopen = 0;
        lvrpci_conn_close(first);
    }
    *engine = d;
    return LVRPC_OK;
}

static void direct_stats(void *engine, lvrpc_stats *out)
{
    direct *d = engine;

    pthread_mutex_lock(&d->lock);
    out->sockets_opened = d->opened;
    out->sockets_open = d->nopen;
    out->dropped_replies = d->dropped;
    out->calls = d->calls;
    out->errors = d->errors;
    pthread_mutex_unlock(&d->lock);
}

const lvrpci_engine_ops lvrpci_direct_engine = {
    .name = "direct",
    .start = direct_start,
    .call = direct_call,
    .stop = direct_stop,
    .stats = direct_stats,
    .streams = &direct_stream_ops,
    .event_pool = direct_event_pool,
};
