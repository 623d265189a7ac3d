/* tls_openssl.c - the TLS transport (OpenSSL), behind the same vtable as
 * plain sockets, so Direct and Shared mode run over it unchanged.
 *
 * Setup, once per handle (lvrpci_tls_setup, from lvrpc_open): find the files
 * as libvirt's client does (pkipath, $HOME/.pki/libvirt for non-root, the
 * system paths), load them into one SSL_CTX shared by every connection of
 * the handle, or take a reference on the caller's SSL_CTX.
 *
 * Connect: a plain TCP connection (lvrpci_sock_open_fd), the handshake (TLS
 * >= 1.2, our certificate presented, the daemon's certificate checked:
 * chain, dates, usage, host name or IP against its subject alternative
 * names), then the one byte libvirtd sends once it has accepted our
 * certificate.  A daemon that rejects us closes instead: LVRPC_ETLS.
 *
 * Threads.  An SSL object is not safe for an SSL_read and an SSL_write at
 * the same time, but Shared mode has a reader thread in read_some while
 * writers (serialised among themselves by the pool) are in write_all, and
 * shutdown may come from any thread.  So the socket is non-blocking, every
 * SSL_* call on a connection is made under the transport's mutex and never
 * blocks, and the waiting (poll() until readable or writable, with the
 * deadline) happens outside the mutex.  A reader only polls when OpenSSL has
 * nothing buffered (SSL_has_pending) or has just asked for more input, so no
 * wake-up is lost: nothing but the reader takes bytes from the socket.
 * shutdown() sets a flag and shuts the socket down, which wakes both sides'
 * poll(); it never touches the SSL object.
 *
 * SIGPIPE.  OpenSSL's socket BIO writes with write(), which raises SIGPIPE on
 * a peer that has gone.  The connection's BIO is our own (bio_write /
 * bio_read below): send() with MSG_NOSIGNAL and recv(), so the application
 * never has to ignore SIGPIPE.
 *
 * Reading: read-ahead is on, so one recv() brings in every record waiting
 * (a whole reply, usually) instead of two per record.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lvrpc_internal.h"
#include "tls_internal.h"

#define SYSCONFDIR "/etc"

/* The handle's TLS context (lvrpci_target.tls). */
struct lvrpci_tls_ctx {
    SSL_CTX *ctx;
    int verify;          /* check the daemon's certificate */
    char *ca_desc;       /* the CA file, for messages */
    char *cert_desc;     /* "'subject' from FILE", or NULL: none presented */
    char *no_cert_why;   /* why none is presented */
};

typedef struct tls_transport {
    lvrpci_transport base; /* first: the engines see a lvrpci_transport */
    SSL *ssl;
    pthread_mutex_t lock;  /* every SSL_* call on ssl */
    int shut;              /* atomic: shutdown() was called */
    int fatal;             /* a fatal TLS or I/O error: no close_notify */
    int established;       /* handshake and confirmation done */
    int rpending;          /* reader's own: OpenSSL held more input after its
                            * last SSL_read (so no poll() before the next) */
    /* set by the BIO, under lock */
    int io_errno;
    int eof;
    /* the first verification failure (handshake only) */
    int verr;
    int vdepth;
    char vcert[512];
} tls_transport;

/* ------------------------------------------------------------ global init */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_meth;
static int init_ok;

static int bio_write(BIO *b, const char *buf, int len)
{
    tls_transport *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do
        n = send(t->base.fd, buf, (size_t)len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_write(b);
        else
            t->io_errno = errno;
        return -1;
    }
    return (int)n;
}

static int bio_read(BIO *b, char *buf, int len)
{
    tls_transport *t = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do
        n = recv(t->base.fd, buf, (size_t)len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_read(b);
        else
            t->io_errno = errno;
        return -1;
    }
    if (n == 0)
        t->eof = 1;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* unbuffered: nothing else applies */
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void global_init(void)
{
    if (!OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS,
                          NULL))
        return;
    bio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lvrpc socket");
    if (!bio_meth || !BIO_meth_set_write(bio_meth, bio_write) ||
        !BIO_meth_set_read(bio_meth, bio_read) || !BIO_meth_set_ctrl(bio_meth, bio_ctrl) ||
        !BIO_meth_set_create(bio_meth, bio_create))
        return;
    init_ok = 1;
}

/* The last OpenSSL error of this thread as text ("" if none). */
static const char *ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r;

    buf[0] = '\0';
    if (!e)
        return buf;
    r = ERR_reason_error_string(e);
    if (r)
        snprintf(buf, len, "%s", r);
    else
        ERR_error_string_n(e, buf, len);
    return buf;
}

/* ------------------------------------------------------------ files */

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);

    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int file_exists(const char *path)
{
    struct stat st;

    return path && stat(path, &st) == 0;
}

void lvrpci_tls_paths_clear(lvrpci_tls_paths *p)
{
    free(p->ca);
    free(p->crl);
    free(p->cert);
    free(p->key);
    memset(p, 0, sizeof(*p));
}

int lvrpci_tls_locate(const char *pkipath, int try_user, const char *home,
                      const char *sysconfdir, lvrpci_tls_paths *out)
{
    char *dir = NULL;

    memset(out, 0, sizeof(*out));
    if (pkipath) {
        /* explicit: used whether the files exist or not */
        out->ca = path_join(pkipath, "cacert.pem");
        out->crl = path_join(pkipath, "cacrl.pem");
        out->cert = path_join(pkipath, "clientcert.pem");
        out->key = path_join(pkipath, "clientkey.pem");
        if (!out->ca || !out->crl || !out->cert || !out->key)
            goto oom;
        return LVRPC_OK;
    }
    if (try_user && home && *home) {
        if (!(dir = path_join(home, ".pki/libvirt")))
            goto oom;
        out->ca = path_join(dir, "cacert.pem");
        out->crl = path_join(dir, "cacrl.pem");
        out->cert = path_join(dir, "clientcert.pem");
        out->key = path_join(dir, "clientkey.pem");
        free(dir);
        if (!out->ca || !out->crl || !out->cert || !out->key)
            goto oom;
        /* each CA file falls back on its own; certificate and key as a pair */
        if (!file_exists(out->ca)) {
            free(out->ca);
            out->ca = NULL;
        }
        if (!file_exists(out->crl)) {
            free(out->crl);
            out->crl = NULL;
        }
        if (!file_exists(out->cert) || !file_exists(out->key)) {
            free(out->cert);
            free(out->key);
            out->cert = out->key = NULL;
        }
    }
    if (!sysconfdir)
        sysconfdir = SYSCONFDIR;
    if (!out->ca && !(out->ca = path_join(sysconfdir, "pki/CA/cacert.pem")))
        goto oom;
    if (!out->crl && !(out->crl = path_join(sysconfdir, "pki/CA/cacrl.pem")))
        goto oom;
    if (!out->cert && !out->key) {
        out->cert = path_join(sysconfdir, "pki/libvirt/clientcert.pem");
        out->key = path_join(sysconfdir, "pki/libvirt/private/clientkey.pem");
        if (!out->cert || !out->key)
            goto oom;
    }
    return LVRPC_OK;
oom:
    lvrpci_tls_paths_clear(out);
    return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
}

/* Never prompt on a terminal for a key's passphrase: fail instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static int cant_read(const char *what, const char *path)
{
    int err = errno;

    return lvrpci_fail(LVRPC_ETLS, err, "cannot read the %s '%s': %s", what, path,
                       strerror(err));
}

static int load_fail(const char *what, const char *path)
{
    char r[256];
    int rc = lvrpci_fail(LVRPC_ETLS, 0, "cannot load the %s '%s': %s", what, path,
                         ossl_reason(r, sizeof(r)));
    ERR_clear_error();
    return rc;
}

static int ossl_fail(const char *what)
{
    char r[256];
    int rc = lvrpci_fail(LVRPC_ETLS, 0, "%s failed: %s", what, ossl_reason(r, sizeof(r)));
    ERR_clear_error();
    return rc;
}

static char *describe_subject(X509 *x)
{
    char buf[300];

    if (!x)
        return NULL;
    X509_NAME_oneline(X509_get_subject_name(x), buf, sizeof(buf));
    return strdup(buf);
}

/* Loads our certificate and key into ctx, or notes why we have none. */
static int load_identity(struct lvrpci_tls_ctx *tc, const char *cert, const char *key,
                         int explicit_files)
{
    char desc[PATH_MAX + 400], *subj;
    int have_cert = file_exists(cert), have_key = file_exists(key);

    if (!explicit_files && !have_cert && !have_key) {
        /* as libvirt's client: go on without one and let the daemon decide */
        snprintf(desc, sizeof(desc), "neither %s nor %s exists", cert, key);
        tc->no_cert_why = strdup(desc);
        return tc->no_cert_why ? LVRPC_OK : lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    }
    if (!have_cert)
        return explicit_files ? cant_read("client certificate", cert)
                              : lvrpci_fail(LVRPC_ETLS, ENOENT,
                                            "the client certificate '%s' does not exist, "
                                            "but its key '%s' does", cert, key);
    if (!have_key)
        return explicit_files ? cant_read("client key", key)
                              : lvrpci_fail(LVRPC_ETLS, ENOENT,
                                            "the client key '%s' does not exist, but its "
                                            "certificate '%s' does", key, cert);
    if (SSL_CTX_use_certificate_chain_file(tc->ctx, cert) != 1)
        return access(cert, R_OK) ? cant_read("client certificate", cert)
                                  : load_fail("client certificate", cert);
    if (SSL_CTX_use_PrivateKey_file(tc->ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(tc->ctx) != 1) {
        int reason = ERR_GET_REASON(ERR_peek_last_error());
        if (access(key, R_OK))
            return cant_read("client key", key);
        if (reason == X509_R_KEY_VALUES_MISMATCH || reason == SSL_R_NO_PRIVATE_KEY_ASSIGNED) {
            ERR_clear_error();
            return lvrpci_fail(LVRPC_ETLS, 0, "the client key '%s' does not belong to the "
                               "certificate '%s'", key, cert);
        }
        if (reason == PEM_R_BAD_PASSWORD_READ || reason == PEM_R_PROBLEMS_GETTING_PASSWORD ||
            reason == PEM_R_BAD_DECRYPT) {
            ERR_clear_error();
            return lvrpci_fail(LVRPC_ETLS, 0, "the client key '%s' is encrypted: lvrpc never "
                               "asks for a passphrase; pass an SSL_CTX holding the key "
                               "(lvrpc_tls_options.ctx)", key);
        }
        return load_fail("client key", key);
    }
    subj = describe_subject(SSL_CTX_get0_certificate(tc->ctx));
    snprintf(desc, sizeof(desc), "'%s' from %s", subj ? subj : "?", cert);
    free(subj);
    tc->cert_desc = strdup(desc);
    return tc->cert_desc ? LVRPC_OK : lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
}

static int load_files(struct lvrpci_tls_ctx *tc, const lvrpci_target *tg,
                      const lvrpc_tls_options *o)
{
    lvrpci_tls_paths p;
    const char *ca, *cert, *key;
    int explicit_id = o && o->cert_file;
    int rc;

    rc = lvrpci_tls_locate(tg->pkipath, geteuid() != 0, getenv("HOME"), SYSCONFDIR, &p);
    if (rc != LVRPC_OK)
        return rc;
    ca = o && o->ca_file ? o->ca_file : p.ca;
    cert = explicit_id ? o->cert_file : p.cert;
    key = explicit_id ? (o->key_file ? o->key_file : o->cert_file) : p.key;

    tc->ctx = SSL_CTX_new(TLS_client_method());
    if (!tc->ctx) {
        rc = ossl_fail("SSL_CTX_new");
        goto out;
    }
    /* The CA must exist even with no_verify, as for libvirt's client. */
    if (!file_exists(ca) || access(ca, R_OK) != 0) {
        rc = cant_read("CA certificate", ca);
        goto out;
    }
    if (SSL_CTX_load_verify_locations(tc->ctx, ca, NULL) != 1) {
        rc = load_fail("CA certificate", ca);
        goto out;
    }
    if (!(tc->ca_desc = strdup(ca))) {
        rc = lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
        goto out;
    }
    if (!(o && o->ca_file) && file_exists(p.crl)) {
        X509_STORE *st = SSL_CTX_get_cert_store(tc->ctx);
        X509_LOOKUP *lk = X509_STORE_add_lookup(st, X509_LOOKUP_file());
        if (!lk || X509_load_crl_file(lk, p.crl, X509_FILETYPE_PEM) <= 0) {
            rc = load_fail("certificate revocation list", p.crl);
            goto out;
        }
        X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
    }
    SSL_CTX_set_default_passwd_cb(tc->ctx, no_passphrase);
    rc = load_identity(tc, cert, key, explicit_id);
    if (rc != LVRPC_OK)
        goto out;
    SSL_CTX_set_min_proto_version(tc->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(tc->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(tc->ctx, 1);
out:
    lvrpci_tls_paths_clear(&p);
    return rc;
}

static void tls_ctx_free(struct lvrpci_tls_ctx *tc)
{
    if (!tc)
        return;
    SSL_CTX_free(tc->ctx);
    free(tc->ca_desc);
    free(tc->cert_desc);
    free(tc->no_cert_why);
    free(tc);
}

int lvrpci_tls_setup(lvrpci_target *tg, const lvrpc_tls_options *o)
{
    struct lvrpci_tls_ctx *tc;
    int rc = LVRPC_OK;

    pthread_once(&once, global_init);
    if (!init_ok)
        return lvrpci_fail(LVRPC_ETLS, 0, "cannot initialise OpenSSL");
    if (o && (o->flags & ~LVRPC_TLS_NO_VERIFY))
        return lvrpci_fail(LVRPC_EINVAL, 0, "unknown TLS flags 0x%x", o->flags);
    if (o && o->key_file && !o->cert_file)
        return lvrpci_fail(LVRPC_EINVAL, 0, "TLS options: key_file needs cert_file");
    tc = calloc(1, sizeof(*tc));
    if (!tc)
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    tc->verify = !tg->no_verify && !(o && (o->flags & LVRPC_TLS_NO_VERIFY));
    if (o && o->ctx) {
        char *subj = describe_subject(SSL_CTX_get0_certificate(o->ctx));
        SSL_CTX_up_ref(o->ctx);
        tc->ctx = o->ctx;
        tc->ca_desc = strdup("the trust store of the caller's SSL_CTX");
        if (subj) {
            size_t n = strlen(subj) + 40;
            if ((tc->cert_desc = malloc(n)))
                snprintf(tc->cert_desc, n, "'%s' from the caller's SSL_CTX", subj);
        } else {
            tc->no_cert_why = strdup("the caller's SSL_CTX has none");
        }
        free(subj);
        if (!tc->ca_desc || (!tc->cert_desc && !tc->no_cert_why))
            rc = lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    } else {
        rc = load_files(tc, tg, o);
    }
    if (rc != LVRPC_OK) {
        tls_ctx_free(tc);
        return rc;
    }
    tg->tls = tc;
    return LVRPC_OK;
}

void lvrpci_tls_release(lvrpci_target *tg)
{
    tls_ctx_free(tg->tls);
    tg->tls = NULL;
}

/* ------------------------------------------------------------ verification */

static void append(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;

    if (len + 1 >= cap)
        return;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

static void asn1_time_text(const ASN1_TIME *tm, char *buf, size_t cap)
{
    BIO *mem = BIO_new(BIO_s_mem());
    char *p;
    long n;

    buf[0] = '\0';
    if (!mem)
        return;
    if (tm && ASN1_TIME_print(mem, tm) == 1 && (n = BIO_get_mem_data(mem, &p)) > 0)
        snprintf(buf, cap, "%.*s", (int)n, p);
    BIO_free(mem);
}

/* "subject ..., names DNS:a IP:b, valid from ... to ..." */
static void describe_cert(X509 *x, char *buf, size_t cap)
{
    GENERAL_NAMES *names;
    char subj[256], from[64], to[64];

    buf[0] = '\0';
    if (!x)
        return;
    X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
    append(buf, cap, "subject '%s'", subj);
    names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (names) {
        append(buf, cap, ", names");
        for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
            if (g->type == GEN_DNS) {
                const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
                append(buf, cap, " DNS:%.*s", ASN1_STRING_length(g->d.dNSName), (const char *)d);
            } else if (g->type == GEN_IPADD) {
                char ip[INET6_ADDRSTRLEN] = "?";
                int len = ASN1_STRING_length(g->d.iPAddress);
                const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
                if (len == 4 || len == 16)
                    inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ip, sizeof(ip));
                append(buf, cap, " IP:%s", ip);
            }
        }
        GENERAL_NAMES_free(names);
    } else {
        append(buf, cap, ", no subject alternative names");
    }
    asn1_time_text(X509_get0_notBefore(x), from, sizeof(from));
    asn1_time_text(X509_get0_notAfter(x), to, sizeof(to));
    append(buf, cap, ", valid from %s to %s", from, to);
}

/* Keeps the first failure, with the certificate it concerns, so that the
 * error can name the cause; OpenSSL then stops the handshake. */
static int verify_cb(int ok, X509_STORE_CTX *sctx)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    tls_transport *t = ssl ? SSL_get_app_data(ssl) : NULL;

    if (!ok && t && !t->verr) {
        t->verr = X509_STORE_CTX_get_error(sctx);
        t->vdepth = X509_STORE_CTX_get_error_depth(sctx);
        describe_cert(X509_STORE_CTX_get_current_cert(sctx), t->vcert, sizeof(t->vcert));
    }
    return ok;
}

static int verify_failed(const tls_transport *t, const lvrpci_target *tg)
{
    const char *why = X509_verify_cert_error_string(t->verr);
    const char *ca = tg->tls->ca_desc;
    char cause[600];

    switch (t->verr) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        snprintf(cause, sizeof(cause), "%s certificate has expired",
                 t->vdepth ? "a CA" : "the daemon's");
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        snprintf(cause, sizeof(cause), "%s certificate is not valid yet",
                 t->vdepth ? "a CA" : "the daemon's");
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        snprintf(cause, sizeof(cause), "the daemon's certificate does not match the host "
                 "name '%s'", tg->host);
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        snprintf(cause, sizeof(cause), "the daemon's certificate is not signed by our CA "
                 "(%s): %s", ca, why);
        break;
    case X509_V_ERR_CERT_REVOKED:
        snprintf(cause, sizeof(cause), "the daemon's certificate has been revoked");
        break;
    case X509_V_ERR_INVALID_PURPOSE:
        snprintf(cause, sizeof(cause), "the daemon's certificate is not meant for a TLS "
                 "server (extended key usage)");
        break;
    default:
        snprintf(cause, sizeof(cause), "the daemon's certificate failed verification: %s",
                 why);
        break;
    }
    return lvrpci_fail(LVRPC_ETLS, 0, "TLS verification of the daemon at %s port %s failed: "
                       "%s (%s; no_verify=1 skips this check)", tg->host, tg->port, cause,
                       t->vcert[0] ? t->vcert : "no certificate");
}

/* ------------------------------------------------------------ I/O */

/* Waits until the socket is ready for events, the deadline passes, or the
 * transport is shut down. */
static int wait_io(tls_transport *t, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd pfd = {.fd = t->base.fd, .events = events};
        int ms = -1, n;

        if (__atomic_load_n(&t->shut, __ATOMIC_ACQUIRE))
            return LVRPC_ECLOSED;
        if (deadline) {
            int64_t left = deadline - lvrpci_now_ns();
            ms = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
        }
        n = poll(&pfd, 1, ms);
        if (n > 0)
            return LVRPC_OK;
        if (n == 0 && deadline && lvrpci_now_ns() >= deadline)
            return LVRPC_ETIMEDOUT;
        if (n < 0 && errno != EINTR)
            return lvrpci_fail(LVRPC_ESYS, errno, "poll: %s", strerror(errno));
    }
}

typedef struct io_result {
    int n;          /* SSL_read/SSL_write's return */
    int pending;    /* after a read: SSL_has_pending */
    int err;        /* SSL_get_error, 0 when n > 0 */
    int io_errno;
    int eof;
    unsigned long ossl; /* the error queue's last entry */
} io_result;

/* One SSL_read or SSL_write (write != 0) under the lock. */
static void ssl_io(tls_transport *t, int write, void *buf, size_t len, io_result *r)
{
    int n = len > INT_MAX ? INT_MAX : (int)len;

    pthread_mutex_lock(&t->lock);
    if (ERR_peek_error()) /* SSL_get_error needs an empty queue; clearing costs */
        ERR_clear_error();
    t->io_errno = 0;
    r->n = write ? SSL_write(t->ssl, buf, n) : SSL_read(t->ssl, buf, n);
    r->err = r->n > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r->n);
    r->pending = !write && r->n > 0 && SSL_has_pending(t->ssl);
    r->io_errno = t->io_errno;
    r->eof = t->eof;
    r->ossl = ERR_peek_last_error();
    if (r->err == SSL_ERROR_SYSCALL || r->err == SSL_ERROR_SSL)
        t->fatal = 1;
    pthread_mutex_unlock(&t->lock);
}

static int closed_error(const char *what)
{
    return lvrpci_fail(LVRPC_ECLOSED, 0, "connection closed by the daemon (TLS %s)", what);
}

/* Maps a failed SSL_read/SSL_write to an lvrpc error. */
static int io_fail(tls_transport *t, const io_result *r, const char *what)
{
    char reason[256] = "";

    if (__atomic_load_n(&t->shut, __ATOMIC_ACQUIRE))
        return lvrpci_fail(LVRPC_ECLOSED, 0, "connection closed");
    if (r->err == SSL_ERROR_ZERO_RETURN || (r->eof && !r->io_errno))
        return closed_error(what);
    if (r->io_errno) {
        int code = lvrpci_errno_code(r->io_errno);
        if (code == LVRPC_ECLOSED)
            return lvrpci_fail(code, r->io_errno, "connection closed by the daemon (TLS %s: %s)",
                               what, strerror(r->io_errno));
        return lvrpci_fail(code, r->io_errno, "TLS %s failed: %s", what, strerror(r->io_errno));
    }
    if (r->ossl) {
        ERR_error_string_n(r->ossl, reason, sizeof(reason));
        if (ERR_GET_REASON(r->ossl) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            return closed_error(what);
        return lvrpci_fail(LVRPC_ETLS, 0, "TLS %s failed: %s", what,
                           ERR_reason_error_string(r->ossl) ? ERR_reason_error_string(r->ossl)
                                                            : reason);
    }
    if (r->err == SSL_ERROR_SYSCALL)
        return closed_error(what); /* EOF in OpenSSL 1.1.1 */
    return lvrpci_fail(LVRPC_ETLS, 0, "TLS %s failed (SSL error %d)", what, r->err);
}

static int tls_write_all(lvrpci_transport *bt, const void *buf, size_t len, int64_t deadline)
{
    tls_transport *t = (tls_transport *)bt;
    const char *p = buf;

    while (len > 0) {
        io_result r;
        short ev;
        int rc;

        if (__atomic_load_n(&t->shut, __ATOMIC_ACQUIRE))
            return lvrpci_fail(LVRPC_ECLOSED, 0, "connection closed");
        ssl_io(t, 1, (void *)p, len, &r);
        if (r.n > 0) {
            p += r.n;
            len -= (size_t)r.n;
            continue;
        }
        if (r.err == SSL_ERROR_WANT_WRITE)
            ev = POLLOUT;
        else if (r.err == SSL_ERROR_WANT_READ)
            ev = POLLIN; /* renegotiation only, which we refuse; never in TLS 1.3 */
        else
            return io_fail(t, &r, "send");
        rc = wait_io(t, ev, deadline);
        if (rc == LVRPC_ETIMEDOUT)
            return lvrpci_fail(LVRPC_ETIMEDOUT, ETIMEDOUT, "timed out sending to the daemon");
        if (rc == LVRPC_ECLOSED)
            return lvrpci_fail(LVRPC_ECLOSED, 0, "connection closed");
        if (rc != LVRPC_OK)
            return rc;
    }
    return LVRPC_OK;
}

static ssize_t tls_read_some(lvrpci_transport *bt, void *buf, size_t len, int64_t deadline)
{
    tls_transport *t = (tls_transport *)bt;
    /* Poll first when OpenSSL holds nothing: usually the reply is not there
     * yet, and an SSL_read would only cost a recv() that says EAGAIN.
     * rpending is the reader's own (only the reader takes input, and only
     * it reads the flag), so this costs no lock. */
    short ev = t->rpending ? 0 : POLLIN;

    for (;;) {
        io_result r;

        if (ev) {
            int rc = wait_io(t, ev, deadline);
            if (rc == LVRPC_ETIMEDOUT)
                return -lvrpci_fail(LVRPC_ETIMEDOUT, ETIMEDOUT,
                                    "timed out waiting for the daemon's reply");
            if (rc == LVRPC_ECLOSED)
                return -lvrpci_fail(LVRPC_ECLOSED, 0, "connection closed");
            if (rc != LVRPC_OK)
                return -rc;
        }
        if (__atomic_load_n(&t->shut, __ATOMIC_ACQUIRE))
            return -lvrpci_fail(LVRPC_ECLOSED, 0, "connection closed");
        ssl_io(t, 0, buf, len, &r);
        t->rpending = r.pending;
        if (r.n > 0)
            return r.n;
        if (r.err == SSL_ERROR_WANT_READ)
            ev = POLLIN;
        else if (r.err == SSL_ERROR_WANT_WRITE)
            ev = POLLOUT;
        else
            return -io_fail(t, &r, "receive");
    }
}

/* rpending: the reading thread's own, like the reads (no lock). */
static int tls_has_input(lvrpci_transport *bt)
{
    return ((tls_transport *)bt)->rpending;
}

static void tls_shutdown(lvrpci_transport *bt)
{
    tls_transport *t = (tls_transport *)bt;

    __atomic_store_n(&t->shut, 1, __ATOMIC_RELEASE);
    shutdown(t->base.fd, SHUT_RDWR);
}

static void tls_destroy(lvrpci_transport *bt)
{
    tls_transport *t = (tls_transport *)bt;

    if (!t)
        return;
    if (t->ssl) {
        /* One non-blocking close_notify on a healthy connection, so the
         * daemon sees a clean end; never after a fatal error. */
        pthread_mutex_lock(&t->lock);
        if (t->established && !t->fatal && !__atomic_load_n(&t->shut, __ATOMIC_ACQUIRE))
            SSL_shutdown(t->ssl);
        pthread_mutex_unlock(&t->lock);
        SSL_free(t->ssl); /* and the BIO */
    }
    ERR_clear_error();
    if (t->base.fd >= 0)
        close(t->base.fd);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static const lvrpci_transport_ops tls_ops = {
    .write_all = tls_write_all,
    .read_some = tls_read_some,
    .writev_all = NULL, /* the engines copy into one buffer: one TLS record */
    .shutdown = tls_shutdown,
    .destroy = tls_destroy,
    .has_input = tls_has_input,
};

/* ------------------------------------------------------------ connect */

static int is_ip_literal(const char *host)
{
    unsigned char a[16];

    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

static int set_up_ssl(tls_transport *t, const lvrpci_target *tg)
{
    const struct lvrpci_tls_ctx *tc = tg->tls;
    BIO *bio;

    t->ssl = SSL_new(tc->ctx);
    bio = BIO_new(bio_meth);
    if (!t->ssl || !bio) {
        BIO_free(bio);
        return ossl_fail("SSL_new");
    }
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio);
    SSL_set_app_data(t->ssl, t);
    SSL_set_connect_state(t->ssl);
    /* On the connection, not the context: a caller's SSL_CTX stays as it is. */
    if (SSL_get_min_proto_version(t->ssl) < TLS1_2_VERSION)
        SSL_set_min_proto_version(t->ssl, TLS1_2_VERSION);
    SSL_set_options(t->ssl, SSL_OP_NO_RENEGOTIATION
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
                                | SSL_OP_IGNORE_UNEXPECTED_EOF /* libvirtd closes without one */
#endif
    );
    SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_read_ahead(t->ssl, 1);
    if (!is_ip_literal(tg->host))
        SSL_set_tlsext_host_name(t->ssl, tg->host); /* SNI takes names only */
    if (tc->verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
        int ok;
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = is_ip_literal(tg->host) ? X509_VERIFY_PARAM_set1_ip_asc(param, tg->host)
                                     : X509_VERIFY_PARAM_set1_host(param, tg->host, 0);
        if (ok != 1)
            return lvrpci_fail(LVRPC_ETLS, 0, "cannot check the daemon's certificate against "
                               "the host name '%s'", tg->host);
        SSL_set_verify(t->ssl, SSL_VERIFY_PEER, verify_cb);
    } else {
        SSL_set_verify(t->ssl, SSL_VERIFY_NONE, NULL);
    }
    return LVRPC_OK;
}

static int handshake(tls_transport *t, const lvrpci_target *tg, int64_t deadline)
{
    for (;;) {
        io_result r;
        short ev;
        int rc;

        pthread_mutex_lock(&t->lock);
        ERR_clear_error();
        r.n = SSL_connect(t->ssl);
        r.err = r.n == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r.n);
        r.io_errno = t->io_errno;
        r.eof = t->eof;
        r.ossl = ERR_peek_last_error();
        pthread_mutex_unlock(&t->lock);
        if (r.n == 1)
            return LVRPC_OK;
        if (r.err == SSL_ERROR_WANT_READ)
            ev = POLLIN;
        else if (r.err == SSL_ERROR_WANT_WRITE)
            ev = POLLOUT;
        else {
            char reason[256] = "";
            t->fatal = 1;
            if (t->verr)
                return verify_failed(t, tg);
            if (r.eof || r.io_errno == ECONNRESET || r.io_errno == EPIPE)
                return lvrpci_fail(LVRPC_ETLS, r.io_errno,
                                   "TLS handshake with %s port %s failed: the peer closed the "
                                   "connection (is it a TLS port of libvirtd?)",
                                   tg->host, tg->port);
            if (r.io_errno)
                return lvrpci_fail(LVRPC_ETLS, r.io_errno, "TLS handshake with %s port %s "
                                   "failed: %s", tg->host, tg->port, strerror(r.io_errno));
            if (r.ossl)
                ERR_error_string_n(r.ossl, reason, sizeof(reason));
            return lvrpci_fail(LVRPC_ETLS, 0, "TLS handshake with %s port %s failed: %s%s",
                               tg->host, tg->port,
                               r.ossl && ERR_reason_error_string(r.ossl)
                                   ? ERR_reason_error_string(r.ossl) : reason,
                               ERR_GET_REASON(r.ossl) == SSL_R_WRONG_VERSION_NUMBER
                                   ? " (is it a TLS port of libvirtd?)" : "");
        }
        rc = wait_io(t, ev, deadline);
        if (rc == LVRPC_ETIMEDOUT)
            return lvrpci_fail(LVRPC_ETIMEDOUT, ETIMEDOUT,
                               "timed out in the TLS handshake with %s port %s", tg->host,
                               tg->port);
        if (rc != LVRPC_OK)
            return rc == LVRPC_ECLOSED ? lvrpci_fail(rc, 0, "connection closed") : rc;
    }
}

/* libvirtd sends one byte, 1, once it has accepted our certificate; a
 * daemon that rejects it closes the connection instead. */
static int read_confirmation(tls_transport *t, const lvrpci_target *tg, int64_t deadline)
{
    const struct lvrpci_tls_ctx *tc = tg->tls;
    unsigned char b = 0;
    ssize_t n = tls_read_some(&t->base, &b, 1, deadline);
    char detail[PATH_MAX + 512];

    if (n == 1 && b == 1)
        return LVRPC_OK;
    if (n == 1)
        return lvrpci_fail(LVRPC_ETLS, 0, "the daemon at %s port %s sent %u instead of the TLS "
                           "confirmation byte 1", tg->host, tg->port, b);
    if (-n == LVRPC_ETIMEDOUT)
        return lvrpci_fail(LVRPC_ETIMEDOUT, ETIMEDOUT, "timed out waiting for the TLS "
                           "confirmation byte of the daemon at %s port %s", tg->host, tg->port);
    snprintf(detail, sizeof(detail), "%s", lvrpc_last_message());
    if (tc->cert_desc)
        return lvrpci_fail(LVRPC_ETLS, 0, "the daemon rejected our client certificate (no "
                           "confirmation byte): we presented %s; it must be signed by the "
                           "daemon's CA (and match its tls_allowed_dn_list) [%s]",
                           tc->cert_desc, detail);
    return lvrpci_fail(LVRPC_ETLS, 0, "the daemon rejected our client certificate (no "
                       "confirmation byte): we presented none, since %s [%s]",
                       tc->no_cert_why ? tc->no_cert_why : "none was configured", detail);
}

int lvrpci_tls_connect(const lvrpci_target *tg, int64_t deadline, lvrpci_transport **out)
{
    tls_transport *t;
    int fd, flags, rc;

    *out = NULL;
    if (!tg->tls)
        return lvrpci_fail(LVRPC_EINVAL, 0, "TLS was not set up for this target");
    if ((rc = lvrpci_sock_open_fd(tg, deadline, &fd)) != LVRPC_OK)
        return rc;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int err = errno;
        close(fd);
        return lvrpci_fail(LVRPC_ESYS, err, "fcntl: %s", strerror(err));
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        close(fd);
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    }
    t->base.ops = &tls_ops;
    t->base.fd = fd;
    t->base.rcv_timeout_ns = t->base.snd_timeout_ns = -1;
    pthread_mutex_init(&t->lock, NULL);
    rc = set_up_ssl(t, tg);
    if (rc == LVRPC_OK)
        rc = handshake(t, tg, deadline);
    if (rc == LVRPC_OK)
        rc = read_confirmation(t, tg, deadline);
    if (rc != LVRPC_OK) {
        t->fatal = 1; /* no close_notify to a peer we gave up on */
        tls_destroy(&t->base);
        return rc;
    }
    t->established = 1;
    *out = &t->base;
    return LVRPC_OK;
}
