/* tls_none.c - the TLS entry points of a build without OpenSSL
 * (configure --without-openssl, or no OpenSSL found): the public API is the
 * same, and tls URIs fail in lvrpc_open with LVRPC_ENOTSUP. */
#include "config.h"

#include "lvrpc_internal.h"

static int no_tls(void)
{
    return lvrpci_fail(LVRPC_ENOTSUP, 0, "lvrpc was built without TLS (OpenSSL); "
                       "use a tcp or unix URI");
}

int lvrpci_tls_setup(lvrpci_target *tg, const lvrpc_tls_options *o)
{
    (void)tg;
    (void)o;
    return no_tls();
}

void lvrpci_tls_release(lvrpci_target *tg)
{
    (void)tg;
}

int lvrpci_tls_connect(const lvrpci_target *tg, int64_t deadline, lvrpci_transport **out)
{
    (void)tg;
    (void)deadline;
    *out = NULL;
    return no_tls();
}
