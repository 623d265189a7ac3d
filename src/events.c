/* events.c - event registrations, the dispatch thread, re-registration
 * after reconnection.
 *
 * The reader of the pool connection that carries events copies each event
 * message into this engine's queue (lvrpci_events_push, pool lock held) and
 * reports connection deaths and reconnections (lvrpci_events_conn_state, no
 * lock held).  One dispatch thread per handle takes items off the queue and,
 * with no library lock held:
 *   - an event: finds the registration by the daemon's callbackID (the first
 *     word of every callback-style message), decodes the message with the
 *     procedure table's routine and runs the callback;
 *   - a death: forgets the daemon's callbackIDs and tells the state callback;
 *   - a reconnection: registers every live registration again, from the
 *     encoded arguments kept since the first registration, then tells the
 *     state callback.
 * ev->lock guards the queue and the registrations.  Lock order: the pool's
 * lock may be held when ev->lock is taken, never the other way round.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lvrpc_internal.h"

/* The "callback register any" procedures of each family.  Every family's
 * register arguments are {int eventID; optional object}, its reply
 * {int callbackID}, its deregister arguments {int callbackID}. */
static const struct family_procs {
    int reg, dereg;
    xdrproc_t xdr_reg_args;
} families[] = {
    [LVRPC_EVENT_DOMAIN] = {LVRPC_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
                            LVRPC_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
                            (xdrproc_t)xdr_lvrpc_connect_domain_event_callback_register_any_args},
    [LVRPC_EVENT_NETWORK] = {LVRPC_PROC_CONNECT_NETWORK_EVENT_REGISTER_ANY,
                             LVRPC_PROC_CONNECT_NETWORK_EVENT_DEREGISTER_ANY,
                             (xdrproc_t)xdr_lvrpc_connect_network_event_register_any_args},
    [LVRPC_EVENT_STORAGE_POOL] = {LVRPC_PROC_CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY,
                                  LVRPC_PROC_CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY,
                                  (xdrproc_t)xdr_lvrpc_connect_storage_pool_event_register_any_args},
    [LVRPC_EVENT_NODE_DEVICE] = {LVRPC_PROC_CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY,
                                 LVRPC_PROC_CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY,
                                 (xdrproc_t)xdr_lvrpc_connect_node_device_event_register_any_args},
    [LVRPC_EVENT_SECRET] = {LVRPC_PROC_CONNECT_SECRET_EVENT_REGISTER_ANY,
                            LVRPC_PROC_CONNECT_SECRET_EVENT_DEREGISTER_ANY,
                            (xdrproc_t)xdr_lvrpc_connect_secret_event_register_any_args},
};
#define NFAMILIES (sizeof(families) / sizeof(families[0]))

/* The C shape shared by every family's register arguments. */
typedef struct reg_args {
    int eventID;
    const void *object;
} reg_args;

typedef struct ereg {
    struct ereg *next;
    int id;
    lvrpc_event_family family;
    int event_id;
    lvrpci_buf args;     /* encoded register arguments, for re-registration */
    int cbid;            /* the daemon's callbackID; -1 while unknown */
    lvrpc_event_cb cb;
    void *opaque;
    lvrpc_free_cb free_opaque;
    int dead;            /* deregistered while its callback ran */
    int running;
} ereg;

enum { ITEM_EVENT, ITEM_STATE };

typedef struct eitem {
    struct eitem *next;
    int kind;
    int state;            /* ITEM_STATE: lvrpc_conn_state */
    lvrpc_error why;      /* ITEM_STATE, CLOSED */
    lvrpci_header h;      /* ITEM_EVENT */
    size_t len;
    unsigned char body[];
} eitem;

struct lvrpci_events {
    lvrpc_client *client;
    void *pool;
    pthread_mutex_t lock;
    pthread_cond_t cond;  /* queue not empty; a registration settled */
    eitem *head, *tail;
    unsigned queued;
    unsigned pending;     /* registrations waiting for their callbackID */
    int stopping;
    ereg *regs;
    int next_id;
    pthread_t thread;
    lvrpc_conn_cb conn_cb;
    void *conn_opaque;
    lvrpc_event_stats stats;
};

/* ------------------------------------------------------------ from readers */

static void enqueue(lvrpci_events *ev, eitem *it)
{
    it->next = NULL;
    if (ev->tail)
        ev->tail->next = it;
    else
        ev->head = it;
    ev->tail = it;
    ev->queued++;
    pthread_cond_broadcast(&ev->cond);
}

void lvrpci_events_push(lvrpci_events *ev, const lvrpci_header *h, const unsigned char *body,
                        size_t len)
{
    eitem *it;

    pthread_mutex_lock(&ev->lock);
    if (ev->stopping || ev->queued >= LVRPC_EVENT_QUEUE_MAX ||
        !(it = malloc(sizeof(*it) + len))) {
        ev->stats.dropped++;
        pthread_mutex_unlock(&ev->lock);
        return;
    }
    it->kind = ITEM_EVENT;
    it->h = *h;
    it->len = len;
    memcpy(it->body, body, len);
    enqueue(ev, it);
    pthread_mutex_unlock(&ev->lock);
}

void lvrpci_events_conn_state(lvrpci_events *ev, int state, const lvrpc_error *why)
{
    eitem *it = calloc(1, sizeof(*it));

    if (!it)
        return;
    it->kind = ITEM_STATE;
    it->state = state;
    if (why)
        it->why = *why;
    pthread_mutex_lock(&ev->lock);
    if (ev->stopping)
        free(it);
    else
        enqueue(ev, it);
    pthread_mutex_unlock(&ev->lock);
}

/* ------------------------------------------------------------ calls */

/* Writes pre-encoded XDR bytes: the arguments kept for re-registration. */
static bool_t xdr_prebuilt(XDR *x, void *p, ...)
{
    lvrpci_buf *b = p;

    return x->x_op != XDR_ENCODE || XDR_PUTBYTES(x, (char *)b->data, (u_int)b->len);
}

static int encode_args(lvrpc_event_family family, int event_id, const void *object,
                       lvrpci_buf *out)
{
    reg_args a = {event_id, object};
    xdrproc_t xa = families[family].xdr_reg_args;
    unsigned long size = xdr_sizeof(xa, &a);
    XDR x;
    int ok;

    if (size == 0)
        return lvrpci_fail(LVRPC_EINVAL, 0, "the event filter object cannot be encoded");
    if (lvrpci_buf_reserve(out, size) != LVRPC_OK)
        return LVRPC_ENOMEM;
    xdrmem_create(&x, (char *)out->data, (u_int)size, XDR_ENCODE);
    ok = xa(&x, &a, 0);
    out->len = xdr_getpos(&x);
    xdr_destroy(&x);
    return ok ? LVRPC_OK : lvrpci_fail(LVRPC_EINVAL, 0, "cannot encode the event registration");
}

static int64_t call_deadline(lvrpci_events *ev)
{
    return lvrpci_deadline_after_ms(__atomic_load_n(&ev->client->call_timeout_ms,
                                                    __ATOMIC_RELAXED));
}

/* Registers on the daemon; returns its callbackID in *cbid. */
static int register_on_daemon(lvrpci_events *ev, ereg *r, int *cbid)
{
    lvrpci_call call = LVRPCI_CALL_INIT(LVRPC_PROGRAM_REMOTE, LVRPC_PROGRAM_REMOTE_VERSION,
                                        families[r->family].reg, (xdrproc_t)xdr_prebuilt,
                                        &r->args, (xdrproc_t)xdr_int, sizeof(int));
    int rc = lvrpci_pool_call_on(ev->pool, 0, &call, call_deadline(ev));

    if (rc == LVRPC_OK) {
        *cbid = *(int *)call.ret; /* every family's reply is {int callbackID} */
        lvrpc_reply_free(call.ret);
    }
    return rc;
}

static void deregister_on_daemon(lvrpci_events *ev, lvrpc_event_family family, int cbid)
{
    lvrpci_call call = LVRPCI_CALL_INIT(LVRPC_PROGRAM_REMOTE, LVRPC_PROGRAM_REMOTE_VERSION,
                                        families[family].dereg, (xdrproc_t)xdr_int, &cbid,
                                        NULL, 0);
    lvrpc_error saved = *lvrpci_error();

    lvrpci_pool_call_on(ev->pool, 0, &call, call_deadline(ev));
    lvrpci_set_error(&saved); /* best effort: a lost connection forgets it anyway */
}

static void free_reg(ereg *r)
{
    if (r->free_opaque)
        r->free_opaque(r->opaque);
    lvrpci_buf_clear(&r->args);
    free(r);
}

/* ------------------------------------------------------------ dispatch */

static ereg *find_by_cbid(lvrpci_events *ev, int cbid)
{
    for (ereg *r = ev->regs; r; r = r->next)
        if (r->cbid == cbid)
            return r;
    return NULL;
}

static uint32_t first_word(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return ntohl(v);
}

static void deliver(lvrpci_events *ev, eitem *it)
{
    const lvrpc_proc_info *info = lvrpc_proc_by_number(it->h.prog, it->h.proc);
    int cbid = it->len >= 4 ? (int)first_word(it->body) : -1;
    lvrpc_event e;
    void *msg = NULL;
    ereg *r;
    XDR x;
    int ok;

    if (!info || !info->xdr_msg || cbid < 0 || !(msg = calloc(1, info->msg_size))) {
        pthread_mutex_lock(&ev->lock);
        ev->stats.dropped++;
        pthread_mutex_unlock(&ev->lock);
        return;
    }
    xdrmem_create(&x, (char *)it->body, (u_int)it->len, XDR_DECODE);
    ok = info->xdr_msg(&x, msg, 0);
    xdr_destroy(&x);
    pthread_mutex_lock(&ev->lock);
    /* A registration whose reply is still on its way may own this event. */
    while (ok && !(r = find_by_cbid(ev, cbid)) && ev->pending > 0 && !ev->stopping)
        pthread_cond_wait(&ev->cond, &ev->lock);
    r = ok ? find_by_cbid(ev, cbid) : NULL;
    if (!r) {
        ev->stats.dropped++;
        pthread_mutex_unlock(&ev->lock);
    } else {
        r->running = 1;
        e.family = r->family;
        e.event_id = r->event_id;
        e.registration = r->id;
        e.proc = it->h.proc;
        e.name = info->name;
        e.msg = msg;
        pthread_mutex_unlock(&ev->lock);
        r->cb(ev->client, &e, r->opaque);
        pthread_mutex_lock(&ev->lock);
        r->running = 0;
        ev->stats.delivered++;
        if (r->dead) {
            pthread_mutex_unlock(&ev->lock);
            free_reg(r);
        } else {
            pthread_mutex_unlock(&ev->lock);
        }
    }
    xdr_free(info->xdr_msg, msg);
    free(msg);
}

/* Registers every live registration again on the re-opened connection. */
static void reregister_all(lvrpci_events *ev)
{
    for (;;) {
        ereg *r;
        int cbid = -1, rc;

        pthread_mutex_lock(&ev->lock);
        for (r = ev->regs; r && r->cbid != -1; r = r->next)
            ;
        if (!r || ev->stopping) {
            pthread_mutex_unlock(&ev->lock);
            return;
        }
        ev->pending++;
        r->cbid = -2; /* being renewed: not picked again */
        pthread_mutex_unlock(&ev->lock);
        rc = register_on_daemon(ev, r, &cbid);
        pthread_mutex_lock(&ev->lock);
        ev->pending--;
        /* r may have been deregistered meanwhile: it is then off the list */
        for (ereg *q = ev->regs; q; q = q->next)
            if (q == r)
                r->cbid = rc == LVRPC_OK ? cbid : -3; /* -3: failed; next reconnection */
        ev->stats.reregistered += rc == LVRPC_OK;
        pthread_cond_broadcast(&ev->cond);
        pthread_mutex_unlock(&ev->lock);
    }
}

static void change_state(lvrpci_events *ev, eitem *it)
{
    lvrpc_conn_cb cb;
    void *opaque;

    pthread_mutex_lock(&ev->lock);
    if (it->state == LVRPC_CONN_CLOSED)
        for (ereg *r = ev->regs; r; r = r->next)
            r->cbid = -1; /* the daemon forgot them */
    pthread_mutex_unlock(&ev->lock);
    if (it->state == LVRPC_CONN_RECONNECTED)
        reregister_all(ev);
    pthread_mutex_lock(&ev->lock);
    cb = ev->conn_cb;
    opaque = ev->conn_opaque;
    pthread_mutex_unlock(&ev->lock);
    if (cb)
        cb(ev->client, (lvrpc_conn_state)it->state,
           it->state == LVRPC_CONN_CLOSED ? &it->why : NULL, opaque);
}

static void *dispatch_main(void *arg)
{
    lvrpci_events *ev = arg;

    pthread_mutex_lock(&ev->lock);
    while (!ev->stopping) {
        eitem *it = ev->head;
        if (!it) {
            pthread_cond_wait(&ev->cond, &ev->lock);
            continue;
        }
        ev->head = it->next;
        if (!ev->head)
            ev->tail = NULL;
        ev->queued--;
        pthread_mutex_unlock(&ev->lock);
        if (it->kind == ITEM_EVENT)
            deliver(ev, it);
        else
            change_state(ev, it);
        free(it);
        pthread_mutex_lock(&ev->lock);
    }
    pthread_mutex_unlock(&ev->lock);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

static int events_new(lvrpc_client *c, void *pool, lvrpci_events **out)
{
    lvrpci_events *ev = calloc(1, sizeof(*ev));

    if (!ev)
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    ev->client = c;
    ev->pool = pool;
    ev->next_id = 1;
    pthread_mutex_init(&ev->lock, NULL);
    pthread_cond_init(&ev->cond, NULL);
    if (pthread_create(&ev->thread, NULL, dispatch_main, ev) != 0) {
        pthread_cond_destroy(&ev->cond);
        pthread_mutex_destroy(&ev->lock);
        free(ev);
        return lvrpci_fail(LVRPC_ESYS, errno, "cannot start the event dispatch thread");
    }
    lvrpci_pool_set_events(pool, ev);
    *out = ev;
    return LVRPC_OK;
}

/* The handle's event engine, made on first use. */
static int client_events(lvrpc_client *c, lvrpci_events **out)
{
    int rc = LVRPC_OK;

    pthread_mutex_lock(&c->events_lock);
    if (!c->events) {
        void *pool = c->ops->event_pool(c->engine);
        rc = pool ? events_new(c, pool, &c->events) : lvrpci_error()->code;
    }
    *out = c->events;
    pthread_mutex_unlock(&c->events_lock);
    return rc;
}

void lvrpci_events_stop(lvrpci_events *ev)
{
    if (!ev)
        return;
    lvrpci_pool_set_events(ev->pool, NULL); /* readers push no more */
    pthread_mutex_lock(&ev->lock);
    ev->stopping = 1;
    pthread_cond_broadcast(&ev->cond);
    pthread_mutex_unlock(&ev->lock);
    pthread_join(ev->thread, NULL);
    while (ev->head) {
        eitem *it = ev->head;
        ev->head = it->next;
        free(it);
    }
    while (ev->regs) {
        ereg *r = ev->regs;
        ev->regs = r->next;
        free_reg(r);
    }
    pthread_cond_destroy(&ev->cond);
    pthread_mutex_destroy(&ev->lock);
    free(ev);
}

/* ------------------------------------------------------------ public API */

int lvrpc_event_register(lvrpc_client *c, lvrpc_event_family family, int event_id,
                         const void *object, lvrpc_event_cb cb, void *opaque,
                         lvrpc_free_cb free_opaque, int *id)
{
    lvrpci_events *ev;
    ereg *r;
    int rc, cbid = -1;

    if (id)
        *id = 0;
    if (!c || !cb || (unsigned)family >= NFAMILIES || event_id < 0)
        return lvrpci_fail(LVRPC_EINVAL, 0, "lvrpc_event_register: bad argument");
    if ((rc = client_events(c, &ev)) != LVRPC_OK)
        return rc;
    if (!(r = calloc(1, sizeof(*r))))
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    r->family = family;
    r->event_id = event_id;
    r->cb = cb;
    r->opaque = opaque;
    r->cbid = -2;
    if ((rc = encode_args(family, event_id, object, &r->args)) != LVRPC_OK) {
        lvrpci_buf_clear(&r->args);
        free(r);
        return rc;
    }
    pthread_mutex_lock(&ev->lock);
    r->id = ev->next_id++;
    r->next = ev->regs;
    ev->regs = r;
    ev->pending++;
    pthread_mutex_unlock(&ev->lock);
    rc = register_on_daemon(ev, r, &cbid);
    pthread_mutex_lock(&ev->lock);
    ev->pending--;
    if (rc == LVRPC_OK)
        r->cbid = cbid;
    else /* take it off the list: it never existed */
        for (ereg **pp = &ev->regs; *pp; pp = &(*pp)->next)
            if (*pp == r) {
                *pp = r->next;
                break;
            }
    pthread_cond_broadcast(&ev->cond);
    pthread_mutex_unlock(&ev->lock);
    if (rc != LVRPC_OK) {
        lvrpci_buf_clear(&r->args);
        free(r);
        return rc;
    }
    r->free_opaque = free_opaque; /* only a live registration owns opaque */
    if (id)
        *id = r->id;
    return LVRPC_OK;
}

int lvrpc_event_deregister(lvrpc_client *c, int id)
{
    lvrpci_events *ev = c ? c->events : NULL;
    ereg *r = NULL;
    int cbid, running;
    lvrpc_event_family family;

    if (!ev)
        return lvrpci_fail(LVRPC_EINVAL, 0, "no event registration %d", id);
    pthread_mutex_lock(&ev->lock);
    for (ereg **pp = &ev->regs; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            r = *pp;
            *pp = r->next;
            break;
        }
    if (!r) {
        pthread_mutex_unlock(&ev->lock);
        return lvrpci_fail(LVRPC_EINVAL, 0, "no event registration %d", id);
    }
    cbid = r->cbid;
    family = r->family;
    running = r->running;
    r->dead = 1;
    pthread_mutex_unlock(&ev->lock);
    if (cbid >= 0)
        deregister_on_daemon(ev, family, cbid);
    if (!running)
        free_reg(r); /* else the dispatch thread frees it after the callback */
    return LVRPC_OK;
}

int lvrpc_set_connection_callback(lvrpc_client *c, lvrpc_conn_cb cb, void *opaque)
{
    lvrpci_events *ev;
    int rc;

    if (!c)
        return lvrpci_fail(LVRPC_EINVAL, 0, "client is NULL");
    if ((rc = client_events(c, &ev)) != LVRPC_OK)
        return rc;
    pthread_mutex_lock(&ev->lock);
    ev->conn_cb = cb;
    ev->conn_opaque = opaque;
    pthread_mutex_unlock(&ev->lock);
    return LVRPC_OK;
}

void lvrpc_event_stats_get(lvrpc_client *c, lvrpc_event_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!c || !c->events)
        return;
    pthread_mutex_lock(&c->events->lock);
    *out = c->events->stats;
    pthread_mutex_unlock(&c->events->lock);
}
