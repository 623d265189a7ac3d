/* packet.c - packet encoding, reply decoding, reply ownership. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lvrpc_internal.h"

/* A reply is handed out as a pointer just past this header, so that
 * lvrpc_reply_free() can find the routine that frees its nested parts. */
typedef union reply_hdr {
    struct {
        xdrproc_t xdr_ret;
        uint32_t magic;
    } h;
    max_align_t align;
} reply_hdr;

#define REPLY_MAGIC 0x6c767270u /* "lvrp" */

void *lvrpci_reply_alloc(xdrproc_t xdr_ret, size_t size)
{
    reply_hdr *r;

    if (size > LVRPCI_PACKET_MAX * 8u) /* no reply type is anywhere near this */
        return NULL;
    r = calloc(1, sizeof(*r) + (size ? size : 1));
    if (!r)
        return NULL;
    r->h.xdr_ret = xdr_ret;
    r->h.magic = REPLY_MAGIC;
    return r + 1;
}

void lvrpc_reply_free(void *ret)
{
    reply_hdr *r;

    if (!ret)
        return;
    r = (reply_hdr *)ret - 1;
    if (r->h.magic != REPLY_MAGIC)
        abort(); /* not a reply of ours: freeing it would corrupt the heap */
    r->h.magic = 0;
    if (r->h.xdr_ret)
        xdr_free(r->h.xdr_ret, (char *)ret);
    free(r);
}

int lvrpci_buf_reserve(lvrpci_buf *b, size_t cap)
{
    unsigned char *p;

    if (b->cap >= cap)
        return LVRPC_OK;
    p = realloc(b->data, cap);
    if (!p)
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory (%zu bytes)", cap);
    b->data = p;
    b->cap = cap;
    return LVRPC_OK;
}

void lvrpci_buf_clear(lvrpci_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static void put32(unsigned char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return ntohl(v);
}

void lvrpci_header_put(unsigned char *p, const lvrpci_header *h)
{
    put32(p, h->prog);
    put32(p + 4, h->vers);
    put32(p + 8, (uint32_t)h->proc);
    put32(p + 12, (uint32_t)h->type);
    put32(p + 16, h->serial);
    put32(p + 20, (uint32_t)h->status);
}

void lvrpci_header_get(const unsigned char *p, lvrpci_header *h)
{
    h->prog = get32(p);
    h->vers = get32(p + 4);
    h->proc = (int32_t)get32(p + 8);
    h->type = (int32_t)get32(p + 12);
    h->serial = get32(p + 16);
    h->status = (int32_t)get32(p + 20);
}

/* Encodes the body at offset `at` of the buffer; returns the body length,
 * or -1 when it does not fit in the buffer's capacity. */
static long encode_body(lvrpci_buf *b, size_t at, xdrproc_t xdr_body, const void *body)
{
    XDR x;
    long n = -1;

    xdrmem_create(&x, (char *)b->data + at, (u_int)(b->cap - at), XDR_ENCODE);
    if (xdr_body(&x, (void *)body, 0))
        n = (long)xdr_getpos(&x);
    xdr_destroy(&x);
    return n;
}

/* Encodes a packet whose body starts with `pre` bytes the caller fills in
 * (0, or 4 for a descriptor count). */
static int encode(lvrpci_buf *b, const lvrpci_header *h, size_t pre, xdrproc_t xdr_body,
                  const void *body)
{
    size_t at = LVRPCI_PACKET_MIN + pre;
    long body_len = 0;
    int rc;

    /* Most calls are small; bigger ones are measured and re-encoded. */
    if ((rc = lvrpci_buf_reserve(b, 256)) != LVRPC_OK)
        return rc;
    if (xdr_body) {
        body_len = encode_body(b, at, xdr_body, body);
        if (body_len < 0) {
            /* Too big for the buffer, or not encodable at all (e.g. a NULL
             * where the protocol wants a string): xdr_sizeof tells which. */
            unsigned long need = xdr_sizeof(xdr_body, (void *)body);
            if (need == 0)
                return lvrpci_fail(LVRPC_EINVAL, 0,
                                   "the arguments of procedure %d cannot be encoded "
                                   "(a required string or pointer is NULL?)", h->proc);
            if (need > LVRPCI_PACKET_MAX - at)
                return lvrpci_fail(LVRPC_EINVAL, 0,
                                   "the arguments of procedure %d take %lu bytes, "
                                   "more than the protocol's limit", h->proc, need);
            if ((rc = lvrpci_buf_reserve(b, need + at)) != LVRPC_OK)
                return rc;
            body_len = encode_body(b, at, xdr_body, body);
            if (body_len < 0)
                return lvrpci_fail(LVRPC_EINVAL, 0,
                                   "the arguments of procedure %d cannot be encoded",
                                   h->proc);
        }
    }
    b->len = at + (size_t)body_len;
    put32(b->data, (uint32_t)b->len);
    lvrpci_header_put(b->data + LVRPCI_LEN_WORD, h);
    return LVRPC_OK;
}

int lvrpci_encode_packet(lvrpci_buf *b, const lvrpci_header *h,
                         xdrproc_t xdr_body, const void *body)
{
    return encode(b, h, 0, xdr_body, body);
}

int lvrpci_encode_call(lvrpci_buf *b, const lvrpci_call *call, uint32_t serial)
{
    lvrpci_header h = {call->prog, call->vers, call->proc,
                       call->nfds ? LVRPC_CALL_WITH_FDS : LVRPC_CALL, serial, LVRPC_STATUS_OK};
    int rc = encode(b, &h, call->nfds ? 4 : 0, call->xdr_args, call->args);

    if (rc == LVRPC_OK && call->nfds)
        put32(b->data + LVRPCI_PACKET_MIN, call->nfds);
    return rc;
}

int lvrpci_check_call_fds(const lvrpci_call *call, int can_pass)
{
    if (!call->nfds)
        return LVRPC_OK;
    if (call->nfds > LVRPC_NUM_FDS_MAX)
        return lvrpci_fail(LVRPC_EINVAL, 0, "%u file descriptors: at most %u per call",
                           call->nfds, LVRPC_NUM_FDS_MAX);
    if (!can_pass)
        return lvrpci_fail(LVRPC_ENOTSUP, 0,
                           "file descriptors can only be passed over a UNIX socket");
    /* Once the call is out, the daemon waits for every descriptor it
     * announces: a bad one must be caught now. */
    for (unsigned i = 0; i < call->nfds; i++)
        if (fcntl(call->fds[i], F_GETFD) < 0)
            return lvrpci_fail(LVRPC_EINVAL, errno, "file descriptor %d cannot be passed: %s",
                               call->fds[i], strerror(errno));
    return LVRPC_OK;
}

void lvrpci_fds_discard(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
}

void lvrpci_call_take_fds(lvrpci_call *call, int *fds, unsigned n)
{
    if (call->want_fds && n) {
        call->rfds = fds;
        call->nrfds = n;
    } else {
        lvrpci_fds_discard(fds, n);
    }
}

int lvrpci_check_reply_header(const lvrpci_header *h, const lvrpci_call *call,
                              uint32_t serial)
{
    if (h->prog != call->prog || h->vers != call->vers)
        return lvrpci_fail(LVRPC_EPROTO, 0,
                           "reply for program 0x%x version %u, expected 0x%x version %u",
                           h->prog, h->vers, call->prog, call->vers);
    if (h->serial != serial)
        return lvrpci_fail(LVRPC_EPROTO, 0, "reply with serial %u, expected %u",
                           h->serial, serial);
    if (h->proc != call->proc)
        return lvrpci_fail(LVRPC_EPROTO, 0, "reply for procedure %d, expected %d",
                           h->proc, call->proc);
    if (h->status != LVRPC_STATUS_OK && h->status != LVRPC_STATUS_ERROR)
        return lvrpci_fail(LVRPC_EPROTO, 0, "reply with invalid status %d", h->status);
    return LVRPC_OK;
}

static int decode_error(const lvrpci_header *h, const unsigned char *body, size_t len)
{
    lvrpc_remote_error e;
    XDR x;
    int ok;

    memset(&e, 0, sizeof(e));
    xdrmem_create(&x, (char *)body, (u_int)len, XDR_DECODE);
    ok = xdr_lvrpc_remote_error(&x, &e) && xdr_getpos(&x) == len;
    xdr_destroy(&x);
    if (ok)
        lvrpci_fail_remote(&e);
    else
        lvrpci_fail(LVRPC_EPROTO, 0, "malformed error reply to procedure %d", h->proc);
    xdr_free((xdrproc_t)xdr_lvrpc_remote_error, (char *)&e);
    return ok ? LVRPC_EREMOTE : LVRPC_EPROTO;
}

int lvrpci_decode_reply(lvrpci_call *call, const lvrpci_header *h,
                        const unsigned char *body, size_t len)
{
    XDR x;
    void *ret;
    int ok;

    if (h->type == LVRPC_REPLY_WITH_FDS) { /* the count, read by the conn */
        body += 4;
        len -= 4;
    }
    if (h->status == LVRPC_STATUS_ERROR)
        return decode_error(h, body, len);
    if (!call->xdr_ret) {
        if (len != 0)
            return lvrpci_fail(LVRPC_EPROTO, 0,
                               "reply to procedure %d has %zu unexpected bytes",
                               h->proc, len);
        return LVRPC_OK;
    }
    ret = lvrpci_reply_alloc(call->xdr_ret, call->ret_size);
    if (!ret)
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory for a reply");
    /* The decoder bounds every string and array by the limits in the
     * definitions before it allocates. */
    xdrmem_create(&x, (char *)body, (u_int)len, XDR_DECODE);
    ok = call->xdr_ret(&x, ret, 0);
    if (ok && xdr_getpos(&x) != len)
        ok = -1;
    xdr_destroy(&x);
    if (ok != 1) {
        lvrpc_reply_free(ret);
        return lvrpci_fail(LVRPC_EPROTO, 0,
                           ok == 0 ? "malformed reply to procedure %d (a length or count "
                                     "out of bounds, or the packet ends early)"
                                   : "reply to procedure %d has trailing bytes",
                           h->proc);
    }
    call->ret = ret;
    return LVRPC_OK;
}

/* ------------------------------------------------------------ packet queues */

lvrpci_pkt *lvrpci_pkt_alloc(size_t cap)
{
    lvrpci_pkt *p = malloc(sizeof(*p) + cap);

    if (p)
        p->cap = cap;
    return p;
}

void lvrpci_pktq_push(lvrpci_pktq *q, lvrpci_pkt *p, const lvrpci_header *h,
                      const unsigned char *body, size_t len)
{
    p->next = NULL;
    p->h = *h;
    p->len = len;
    memcpy(p->body, body, len);
    if (q->tail)
        q->tail->next = p;
    else
        q->head = p;
    q->tail = p;
    q->bytes += len;
}

lvrpci_pkt *lvrpci_pktq_pop(lvrpci_pktq *q)
{
    lvrpci_pkt *p = q->head;

    if (!p)
        return NULL;
    q->head = p->next;
    if (!q->head)
        q->tail = NULL;
    q->bytes -= p->len;
    return p;
}

void lvrpci_pktq_clear(lvrpci_pktq *q)
{
    lvrpci_pkt *p;

    while ((p = lvrpci_pktq_pop(q)))
        free(p);
}
