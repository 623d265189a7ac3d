/* conn.c - one connection: framing, serials, the handshake, a synchronous call. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lvrpc_internal.h"

/* libvirt's VIR_ERR_NO_SUPPORT: an old daemon without AUTH_LIST. */
#define VIR_ERR_NO_SUPPORT 3
#define CLOSE_TIMEOUT_MS 1000
#define RBUF_SHRINK_ABOVE (1u << 20)

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return ntohl(v);
}

/* Makes sure [rpos, rpos + want) is in the buffer, reading as much as the
 * socket has (so that one recv() usually brings a whole reply). */
static int fill(lvrpci_conn *c, size_t want, int64_t deadline)
{
    lvrpci_buf *b = &c->rbuf;

    if (b->len - c->rpos >= want)
        return LVRPC_OK;
    if (c->rpos > 0) { /* compact: unread bytes to the front */
        memmove(b->data, b->data + c->rpos, b->len - c->rpos);
        b->len -= c->rpos;
        c->rpos = 0;
    }
    if (b->cap < want) {
        int rc = lvrpci_buf_reserve(b, want < LVRPCI_RBUF_INITIAL ? LVRPCI_RBUF_INITIAL : want);
        if (rc != LVRPC_OK)
            return rc;
    }
    while (b->len < want) {
        ssize_t n = c->t->ops->read_some(c->t, b->data + b->len, b->cap - b->len, deadline);
        if (n < 0) {
            c->broken = 1;
            if (-n == LVRPC_ECLOSED && b->len > 0)
                return lvrpci_fail(LVRPC_ECLOSED, 0,
                                   "connection closed by the daemon in the middle of a packet "
                                   "(%zu of %zu bytes)", b->len, want);
            return (int)-n;
        }
        b->len += (size_t)n;
    }
    return LVRPC_OK;
}

/* How many descriptors a complete packet at p (plen bytes) announces:
 * REPLY_WITH_FDS puts their count before its body.  -1 when the count is
 * out of the protocol's bounds (error set). */
static long announced_fds(const unsigned char *p, uint32_t plen)
{
    uint32_t n;

    if ((int32_t)get32(p + LVRPCI_LEN_WORD + 12) != LVRPC_REPLY_WITH_FDS)
        return 0;
    if (plen < LVRPCI_PACKET_MIN + 4) {
        lvrpci_fail(LVRPC_EPROTO, 0, "a reply with file descriptors has no count");
        return -1;
    }
    n = get32(p + LVRPCI_PACKET_MIN);
    if (n > LVRPC_NUM_FDS_MAX) {
        lvrpci_fail(LVRPC_EPROTO, 0, "the daemon announced %u file descriptors (at most %u)",
                    n, LVRPC_NUM_FDS_MAX);
        return -1;
    }
    return (long)n;
}

/* Removes the first n queued descriptors, closing them when close_them. */
static void unqueue_fds(lvrpci_transport *t, unsigned n, int close_them)
{
    for (unsigned i = 0; close_them && i < n; i++)
        close(t->rx_fds[i]);
    t->nrx_fds -= n;
    memmove(t->rx_fds, t->rx_fds + n, t->nrx_fds * sizeof(int));
    memmove(t->rx_fd_at, t->rx_fd_at + n, t->nrx_fds * sizeof(uint64_t));
}

/* Consumes the packet at rpos (plen bytes) and the nfds dummy bytes after
 * it.  Descriptor k must have come on dummy byte k; any that came on an
 * earlier byte were not announced and are closed (libvirt's plain reads
 * make the kernel discard such ones).  The packet's descriptors replace
 * (and close) any the previous packet left untaken. */
static int consume_packet(lvrpci_conn *c, uint32_t plen, unsigned nfds)
{
    lvrpci_transport *t = c->t;
    /* the stream offset of the first byte after the packet: every byte in
     * rbuf is among the last rbuf.len the transport read */
    uint64_t first = t->rx_total - c->rbuf.len + c->rpos + plen;
    unsigned stray = 0;

    lvrpci_fds_discard(c->pkt_fds, c->npkt_fds);
    c->pkt_fds = NULL;
    c->npkt_fds = 0;
    while (stray < t->nrx_fds && t->rx_fd_at[stray] < first)
        stray++;
    unqueue_fds(t, stray, 1);
    c->rpos += plen + nfds;
    if (!nfds)
        return LVRPC_OK;
    for (unsigned k = 0; k < nfds; k++)
        if (k >= t->nrx_fds || t->rx_fd_at[k] != first + k || t->rx_fds_bad) {
            c->broken = 1;
            return lvrpci_fail(LVRPC_EPROTO, 0,
                               "the daemon announced %u file descriptors but passed %u with "
                               "them", nfds, k);
        }
    if (!(c->pkt_fds = malloc(nfds * sizeof(int)))) {
        c->broken = 1; /* the descriptors are lost to the call: do not go on */
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    }
    memcpy(c->pkt_fds, t->rx_fds, nfds * sizeof(int));
    c->npkt_fds = nfds;
    unqueue_fds(t, nfds, 0);
    return LVRPC_OK;
}

int lvrpci_conn_read_packet(lvrpci_conn *c, int64_t deadline, const unsigned char **pkt,
                            size_t *len)
{
    uint32_t plen;
    long nfds;
    int rc;

    if (c->rpos == c->rbuf.len) {
        c->rpos = c->rbuf.len = 0;
        if (c->rbuf.cap > RBUF_SHRINK_ABOVE) { /* give back a big packet's buffer */
            lvrpci_buf_clear(&c->rbuf);
        }
    }
    if ((rc = fill(c, LVRPCI_LEN_WORD, deadline)) != LVRPC_OK)
        return rc;
    plen = get32(c->rbuf.data + c->rpos);
    /* The length word is checked before anything is allocated for it. */
    if (plen < LVRPCI_PACKET_MIN || plen > LVRPCI_PACKET_MAX) {
        c->broken = 1;
        return lvrpci_fail(LVRPC_EPROTO, 0,
                           "the daemon sent a packet length of %u bytes (allowed: %u to %u)",
                           plen, LVRPCI_PACKET_MIN, LVRPCI_PACKET_MAX);
    }
    if ((rc = fill(c, plen, deadline)) != LVRPC_OK)
        return rc;
    if ((nfds = announced_fds(c->rbuf.data + c->rpos, plen)) < 0) {
        c->broken = 1;
        return LVRPC_EPROTO;
    }
    if (nfds && (rc = fill(c, plen + (size_t)nfds, deadline)) != LVRPC_OK)
        return rc; /* the dummy bytes that carry them */
    *pkt = c->rbuf.data + c->rpos;
    *len = plen;
    return consume_packet(c, plen, (unsigned)nfds);
}

int lvrpci_conn_take_buffered(lvrpci_conn *c, const unsigned char **pkt, size_t *len)
{
    size_t avail = c->rbuf.len - c->rpos;
    uint32_t plen;
    long nfds;

    if (avail < LVRPCI_LEN_WORD)
        return 0;
    plen = get32(c->rbuf.data + c->rpos);
    if (plen < LVRPCI_PACKET_MIN || plen > LVRPCI_PACKET_MAX || avail < plen)
        return 0; /* incomplete, or bad: lvrpci_conn_read_packet reports it */
    nfds = announced_fds(c->rbuf.data + c->rpos, plen);
    if (nfds < 0 || avail < plen + (size_t)nfds)
        return 0; /* likewise */
    if (consume_packet(c, plen, (unsigned)nfds) != LVRPC_OK) {
        /* Reported by the next read: put the packet back. */
        c->rpos -= plen + (size_t)nfds;
        return 0;
    }
    *pkt = c->rbuf.data + c->rpos - plen - (size_t)nfds;
    *len = plen;
    return 1;
}

void lvrpci_conn_take_fds(lvrpci_conn *c, int **fds, unsigned *n)
{
    *fds = c->pkt_fds;
    *n = c->npkt_fds;
    c->pkt_fds = NULL;
    c->npkt_fds = 0;
}

int lvrpci_conn_send_fds(lvrpci_conn *c, const lvrpci_call *call, int64_t deadline)
{
    int rc;

    if (!call->nfds)
        return LVRPC_OK;
    /* The daemon waits for every announced descriptor: a failure part way
     * leaves it out of step with us. */
    rc = c->t->ops->send_fds(c->t, call->fds, call->nfds, deadline);
    if (rc != LVRPC_OK)
        c->broken = 1;
    return rc;
}

int lvrpci_conn_buffered(const lvrpci_conn *c)
{
    return c->rpos < c->rbuf.len;
}

int lvrpci_conn_write(lvrpci_conn *c, const void *pkt, size_t len, int64_t deadline)
{
    int rc = c->t->ops->write_all(c->t, pkt, len, deadline);

    if (rc != LVRPC_OK)
        c->broken = 1;
    return rc;
}

int lvrpci_conn_send_pong(lvrpci_conn *c, int64_t deadline)
{
    return lvrpci_conn_send_keepalive(c, LVRPC_KEEPALIVE_PONG, deadline);
}

int lvrpci_conn_send_keepalive(lvrpci_conn *c, int proc, int64_t deadline)
{
    unsigned char pkt[LVRPCI_PACKET_MIN];
    lvrpci_header h = {LVRPC_KEEPALIVE_PROGRAM, LVRPC_KEEPALIVE_VERSION, proc,
                       LVRPC_MESSAGE, 0, LVRPC_STATUS_OK};
    uint32_t n = htonl(LVRPCI_PACKET_MIN);

    memcpy(pkt, &n, 4);
    lvrpci_header_put(pkt + 4, &h);
    return lvrpci_conn_write(c, pkt, sizeof(pkt), deadline);
}

/* Handles a packet that is not the reply being waited for.  Returns 1 if
 * it was consumed, 0 if it is a reply, or an error. */
static int handle_other(lvrpci_conn *c, const lvrpci_header *h, int64_t deadline)
{
    if (h->prog == LVRPC_KEEPALIVE_PROGRAM) {
        if (h->type == LVRPC_MESSAGE && h->proc == LVRPC_KEEPALIVE_PING)
            return lvrpci_conn_send_pong(c, deadline) == LVRPC_OK ? 1 : -1;
        return 1;
    }
    switch (h->type) {
    case LVRPC_REPLY:
    case LVRPC_REPLY_WITH_FDS:
        return 0;
    case LVRPC_MESSAGE:      /* an event nobody on this socket asked for */
    case LVRPC_STREAM:       /* data for a stream this socket does not carry */
    case LVRPC_STREAM_HOLE:
        return 1;
    default:
        c->broken = 1;
        lvrpci_fail(LVRPC_EPROTO, 0, "unexpected message type %d from the daemon", h->type);
        return -1;
    }
}

static void clear_early(lvrpci_conn *c)
{
    lvrpci_pktq_clear(&c->early);
    free(c->early_cur);
    c->early_cur = NULL;
}

/* Keeps a stream packet that came before its stream's reply. */
static int keep_early(lvrpci_conn *c, const lvrpci_header *h, const unsigned char *body,
                      size_t len)
{
    lvrpci_pkt *p;

    if (c->early.bytes + len > LVRPCI_EARLY_STREAM_MAX) {
        c->broken = 1;
        return lvrpci_fail(LVRPC_EPROTO, 0, LVRPCI_EARLY_STREAM_TOO_MUCH,
                           LVRPCI_EARLY_STREAM_MAX);
    }
    if (!(p = lvrpci_pkt_alloc(len))) {
        c->broken = 1; /* the stream would miss data: never go on silently */
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory keeping stream data");
    }
    lvrpci_pktq_push(&c->early, p, h, body, len);
    return LVRPC_OK;
}

int lvrpci_conn_take_early(lvrpci_conn *c, lvrpci_header *h, const unsigned char **body,
                           size_t *len)
{
    free(c->early_cur);
    if (!(c->early_cur = lvrpci_pktq_pop(&c->early)))
        return 0;
    *h = c->early_cur->h;
    *body = c->early_cur->body;
    *len = c->early_cur->len;
    return 1;
}

int lvrpci_conn_call(lvrpci_conn *c, lvrpci_call *call, int64_t deadline)
{
    uint32_t serial = c->next_serial++;
    int rc;

    call->ret = NULL;
    clear_early(c);
    if (c->broken)
        return lvrpci_fail(LVRPC_ECLOSED, 0, "connection is no longer usable");
    if ((rc = lvrpci_check_call_fds(call, c->t->ops->send_fds != NULL)) != LVRPC_OK)
        return rc;
    if ((rc = lvrpci_encode_call(&c->wbuf, call, serial)) != LVRPC_OK)
        return rc;
    if ((rc = lvrpci_conn_write(c, c->wbuf.data, c->wbuf.len, deadline)) != LVRPC_OK)
        return rc;
    if ((rc = lvrpci_conn_send_fds(c, call, deadline)) != LVRPC_OK)
        return rc;
    for (;;) {
        const unsigned char *pkt;
        size_t len;
        lvrpci_header rh;
        int *fds;
        unsigned nfds;

        if ((rc = lvrpci_conn_read_packet(c, deadline, &pkt, &len)) != LVRPC_OK)
            return rc;
        lvrpci_header_get(pkt + LVRPCI_LEN_WORD, &rh);
        if ((rh.type == LVRPC_STREAM || rh.type == LVRPC_STREAM_HOLE) && rh.serial == serial &&
            rh.prog == call->prog && rh.proc == call->proc) {
            if ((rc = keep_early(c, &rh, pkt + LVRPCI_PACKET_MIN,
                                 len - LVRPCI_PACKET_MIN)) != LVRPC_OK)
                return rc;
            continue;
        }
        rc = handle_other(c, &rh, deadline);
        if (rc < 0)
            return lvrpci_error()->code;
        if (rc > 0)
            continue;
        if ((rc = lvrpci_check_reply_header(&rh, call, serial)) != LVRPC_OK) {
            c->broken = 1;
            return rc;
        }
        rc = lvrpci_decode_reply(call, &rh, pkt + LVRPCI_PACKET_MIN, len - LVRPCI_PACKET_MIN);
        lvrpci_conn_take_fds(c, &fds, &nfds);
        if (rc == LVRPC_OK)
            lvrpci_call_take_fds(call, fds, nfds);
        else
            lvrpci_fds_discard(fds, nfds);
        if (rc == LVRPC_EPROTO)
            c->broken = 1;
        return rc;
    }
}

/* Runs a handshake step on the remote program. */
static int remote_call(lvrpci_conn *c, int proc, xdrproc_t xa, const void *a, xdrproc_t xr,
                       size_t rsize, void **ret, int64_t deadline)
{
    lvrpci_call call = LVRPCI_CALL_INIT(LVRPC_PROGRAM_REMOTE, LVRPC_PROGRAM_REMOTE_VERSION,
                                        proc, xa, a, xr, rsize);
    int rc = lvrpci_conn_call(c, &call, deadline);

    if (ret)
        *ret = call.ret;
    else
        lvrpc_reply_free(call.ret);
    return rc;
}

static const char *auth_name(int type)
{
    switch (type) {
    case LVRPC_AUTH_NONE:
        return "none";
    case LVRPC_AUTH_SASL:
        return "sasl";
    case LVRPC_AUTH_POLKIT:
        return "polkit";
    default:
        return "unknown";
    }
}

/* AUTH_LIST, then what the daemon's first method needs, as libvirt's client
 * does.  lvrpc speaks none and polkit; SASL gets a clear error. */
static int authenticate(lvrpci_conn *c, int64_t deadline)
{
    lvrpc_auth_list_ret *list = NULL;
    int rc, type;

    rc = remote_call(c, LVRPC_PROC_AUTH_LIST, NULL, NULL, (xdrproc_t)xdr_lvrpc_auth_list_ret,
                     sizeof(*list), (void **)&list, deadline);
    if (rc == LVRPC_EREMOTE && lvrpci_error()->remote_code == VIR_ERR_NO_SUPPORT)
        return LVRPC_OK; /* a daemon too old to list methods wants none */
    if (rc != LVRPC_OK)
        return rc;
    type = list->types.types_len ? (int)list->types.types_val[0] : LVRPC_AUTH_NONE;
    lvrpc_reply_free(list);
    if (type == LVRPC_AUTH_NONE)
        return LVRPC_OK;
    if (type == LVRPC_AUTH_POLKIT) {
        lvrpc_auth_polkit_ret *pk = NULL;
        rc = remote_call(c, LVRPC_PROC_AUTH_POLKIT, NULL, NULL,
                         (xdrproc_t)xdr_lvrpc_auth_polkit_ret, sizeof(*pk), (void **)&pk,
                         deadline);
        if (rc == LVRPC_OK && !pk->complete)
            rc = lvrpci_fail(LVRPC_EAUTH, 0, "polkit authentication did not complete");
        lvrpc_reply_free(pk);
        return rc;
    }
    return lvrpci_fail(LVRPC_EAUTH, 0,
                       "unsupported auth: the daemon requires '%s' authentication; "
                       "lvrpc supports none and polkit", auth_name(type));
}

/* The admin program's handshake: its own CONNECT_OPEN {flags}, no auth. */
static int admin_handshake(lvrpci_conn *c, int64_t deadline)
{
    unsigned flags = 0;
    lvrpci_call call = LVRPCI_CALL_INIT(LVRPC_PROGRAM_ADMIN, LVRPC_PROGRAM_ADMIN_VERSION,
                                        LVRPC_ADMIN_PROC_CONNECT_OPEN, (xdrproc_t)xdr_u_int,
                                        &flags, NULL, 0);

    c->admin = 1;
    return lvrpci_conn_call(c, &call, deadline);
}

static int handshake(lvrpci_conn *c, const lvrpci_target *tg, int want_keepalive,
                     int64_t deadline)
{
    lvrpc_connect_open_args open_args;
    char *name = tg->name;
    int rc;

    if (tg->admin)
        return admin_handshake(c, deadline);
    if ((rc = authenticate(c, deadline)) != LVRPC_OK)
        return rc;
    if (want_keepalive) {
        lvrpc_connect_supports_feature_args fa = {LVRPCI_FEATURE_PROGRAM_KEEPALIVE};
        lvrpc_connect_supports_feature_ret *fr = NULL;
        rc = remote_call(c, LVRPC_PROC_CONNECT_SUPPORTS_FEATURE,
                         (xdrproc_t)xdr_lvrpc_connect_supports_feature_args, &fa,
                         (xdrproc_t)xdr_lvrpc_connect_supports_feature_ret, sizeof(*fr),
                         (void **)&fr, deadline);
        if (rc != LVRPC_OK)
            return rc;
        c->keepalive = fr->supported != 0;
        lvrpc_reply_free(fr);
    }
    open_args.name = &name;
    open_args.flags = tg->open_flags;
    return remote_call(c, LVRPC_PROC_CONNECT_OPEN, (xdrproc_t)xdr_lvrpc_connect_open_args,
                       &open_args, NULL, 0, NULL, deadline);
}

int lvrpci_conn_open(const lvrpci_target *tg, int want_keepalive, int64_t deadline,
                     lvrpci_conn **out)
{
    lvrpci_conn *c;
    int rc;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    c->next_serial = 1;
    rc = tg->kind == LVRPCI_TLS ? lvrpci_tls_connect(tg, deadline, &c->t)
                                : lvrpci_sock_connect(tg, deadline, &c->t);
    if (rc == LVRPC_OK)
        rc = handshake(c, tg, want_keepalive, deadline);
    if (rc != LVRPC_OK) {
        lvrpci_conn_free(c);
        return rc;
    }
    *out = c;
    return LVRPC_OK;
}

void lvrpci_conn_free(lvrpci_conn *c)
{
    if (!c)
        return;
    if (c->t)
        c->t->ops->destroy(c->t);
    lvrpci_buf_clear(&c->rbuf);
    lvrpci_buf_clear(&c->wbuf);
    lvrpci_fds_discard(c->pkt_fds, c->npkt_fds);
    clear_early(c);
    free(c);
}

void lvrpci_conn_close(lvrpci_conn *c)
{
    if (!c)
        return;
    if (!c->broken) {
        lvrpc_error saved = *lvrpci_error(); /* closing must not clobber the caller's error */
        lvrpci_call call = LVRPCI_CALL_INIT(LVRPC_PROGRAM_ADMIN, LVRPC_PROGRAM_ADMIN_VERSION,
                                            LVRPC_ADMIN_PROC_CONNECT_CLOSE, NULL, NULL, NULL,
                                            0);
        if (c->admin)
            lvrpci_conn_call(c, &call, lvrpci_deadline_after_ms(CLOSE_TIMEOUT_MS));
        else
            remote_call(c, LVRPC_PROC_CONNECT_CLOSE, NULL, NULL, NULL, 0, NULL,
                        lvrpci_deadline_after_ms(CLOSE_TIMEOUT_MS));
        lvrpci_set_error(&saved);
    }
    lvrpci_conn_free(c);
}

int lvrpci_conn_is_stale(lvrpci_conn *c)
{
    char b;
    ssize_t n;

    if (c->broken || c->rpos != c->rbuf.len)
        return 1;
    n = recv(c->t->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}
