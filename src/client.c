/* client.c - the public handle: options, open/close, and the call entry
 * point that both engines sit behind. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lvrpc_internal.h"

static void fill_defaults(lvrpc_options *o)
{
    if (!o->call_timeout_ms)
        o->call_timeout_ms = LVRPC_DEFAULT_CALL_TIMEOUT_MS;
    if (!o->connect_timeout_ms)
        o->connect_timeout_ms = LVRPC_DEFAULT_CONNECT_TIMEOUT_MS;
    if (!o->max_sockets)
        o->max_sockets = 64;
    if (!o->max_idle)
        o->max_idle = 8;
    if (o->max_idle > o->max_sockets)
        o->max_idle = o->max_sockets;
    if (!o->pool_size)
        o->pool_size = 1;
    if (!o->max_inflight)
        o->max_inflight = 5;
    if (!o->reconnect_min_ms)
        o->reconnect_min_ms = 100;
    if (!o->reconnect_max_ms)
        o->reconnect_max_ms = 5000;
    if (!o->keepalive_interval_ms)
        o->keepalive_interval_ms = 5000;
    if (!o->keepalive_count)
        o->keepalive_count = 5;
    if (o->reconnect_max_ms < o->reconnect_min_ms)
        o->reconnect_max_ms = o->reconnect_min_ms;
}

int lvrpc_open(const char *uri, const lvrpc_options *opts, lvrpc_client **out)
{
    lvrpc_client *c;
    int rc;

    if (!out)
        return lvrpci_fail(LVRPC_EINVAL, 0, "lvrpc_open: out is NULL");
    *out = NULL;
    if (!uri || !*uri) /* as virConnectOpen(NULL) does */
        uri = getenv("LIBVIRT_DEFAULT_URI");
    if (!uri || !*uri)
        return lvrpci_fail(LVRPC_EINVAL, 0, "no URI given and LIBVIRT_DEFAULT_URI is not set");
    c = calloc(1, sizeof(*c));
    if (!c)
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    if (opts)
        c->opts = *opts;
    fill_defaults(&c->opts);
    if (c->opts.mode == LVRPC_MODE_DIRECT)
        c->ops = &lvrpci_direct_engine;
    else if (c->opts.mode == LVRPC_MODE_SHARED)
        c->ops = &lvrpci_shared_engine;
    else {
        int mode = (int)c->opts.mode;
        free(c);
        return lvrpci_fail(LVRPC_EINVAL, 0, "unknown mode %d", mode);
    }
    __atomic_store_n(&c->call_timeout_ms, c->opts.call_timeout_ms, __ATOMIC_RELAXED);
    pthread_mutex_init(&c->events_lock, NULL);
    rc = lvrpci_uri_parse(uri, c->opts.flags, &c->target);
    if (rc == LVRPC_OK && c->target.kind == LVRPCI_TLS)
        rc = lvrpci_tls_setup(&c->target, c->opts.tls);
    c->opts.tls = NULL; /* read only here: the caller may free it */
    if (rc == LVRPC_OK)
        rc = c->ops->start(c, &c->engine);
    if (rc != LVRPC_OK) {
        lvrpci_target_clear(&c->target);
        pthread_mutex_destroy(&c->events_lock);
        free(c);
        return rc;
    }
    *out = c;
    return LVRPC_OK;
}

void lvrpc_close(lvrpc_client *c)
{
    if (!c)
        return;
    lvrpci_events_stop(c->events); /* first: its thread makes calls */
    c->ops->stop(c->engine);
    pthread_mutex_destroy(&c->events_lock);
    lvrpci_target_clear(&c->target);
    free(c);
}

void lvrpc_set_timeout(lvrpc_client *c, unsigned call_timeout_ms)
{
    if (!call_timeout_ms)
        call_timeout_ms = LVRPC_DEFAULT_CALL_TIMEOUT_MS;
    __atomic_store_n(&c->call_timeout_ms, call_timeout_ms, __ATOMIC_RELAXED);
}

lvrpc_mode lvrpc_get_mode(const lvrpc_client *c)
{
    return c->opts.mode;
}

const char *lvrpc_get_name(const lvrpc_client *c)
{
    return c->target.name;
}

void lvrpc_get_stats(lvrpc_client *c, lvrpc_stats *out)
{
    memset(out, 0, sizeof(*out));
    c->ops->stats(c->engine, out);
}

int lvrpc_call(lvrpc_client *c, unsigned prog, unsigned vers, int proc, xdrproc_t xdr_args,
               const void *args, xdrproc_t xdr_ret, size_t ret_size, void **ret)
{
    return lvrpc_call_fds(c, prog, vers, proc, xdr_args, args, NULL, 0, xdr_ret, ret_size, ret,
                          NULL, NULL);
}

int lvrpc_call_fds(lvrpc_client *c, unsigned prog, unsigned vers, int proc,
                   xdrproc_t xdr_args, const void *args, const int *fds, unsigned nfds,
                   xdrproc_t xdr_ret, size_t ret_size, void **ret, int **rfds,
                   unsigned *nrfds)
{
    lvrpci_call call = LVRPCI_CALL_INIT(prog, vers, proc, xdr_args, args, xdr_ret, ret_size);
    unsigned tmo;
    int rc;

    call.fds = fds;
    call.nfds = nfds;
    call.want_fds = rfds != NULL;
    if (ret)
        *ret = NULL;
    if (rfds)
        *rfds = NULL;
    if (nrfds)
        *nrfds = 0;
    if (!c)
        return lvrpci_fail(LVRPC_EINVAL, 0, "lvrpc_call: client is NULL");
    if (call.xdr_ret && (!ret || ret_size == 0))
        return lvrpci_fail(LVRPC_EINVAL, 0, "lvrpc_call: a reply routine needs ret and ret_size");
    if ((nfds && !fds) || (rfds && !nrfds))
        return lvrpci_fail(LVRPC_EINVAL, 0, "lvrpc_call_fds: fds or nrfds is NULL");
    tmo = __atomic_load_n(&c->call_timeout_ms, __ATOMIC_RELAXED);
    /* Once the engine returns, lvrpc_close may free c: no touching it. */
    rc = c->ops->call(c->engine, &call, lvrpci_deadline_after_ms(tmo));
    if (rc != LVRPC_OK) {
        lvrpc_reply_free(call.ret);
        lvrpci_fds_discard(call.rfds, call.nrfds);
        return rc;
    }
    if (ret)
        *ret = call.ret;
    else
        lvrpc_reply_free(call.ret);
    if (rfds) {
        *rfds = call.rfds;
        *nrfds = call.nrfds;
    }
    return LVRPC_OK;
}
