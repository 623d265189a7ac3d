/* tls_none.c - the TLS entry point of a build without OpenSSL. */
#include "config.h"

#include "lvrpc_internal.h"

int lvrpci_tls_connect(const lvrpci_target *tg, int64_t deadline, lvrpci_transport **out)
{
    (void)tg;
    (void)deadline;
    *out = NULL;
    return lvrpci_fail(LVRPC_ENOTSUP, 0, "lvrpc was built without TLS (OpenSSL); "
                       "use a tcp or unix URI");
}
