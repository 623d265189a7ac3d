/* tls_internal.h - pieces of the OpenSSL transport that tests call directly.
 * Not installed; only built with OpenSSL. */
#ifndef LVRPC_TLS_INTERNAL_H
#define LVRPC_TLS_INTERNAL_H

/* The files libvirt's client would use (virNetTLSContextLocateCredentials):
 * each is a malloc'd path (to be checked for existence by the caller) or
 * NULL when that search found none. */
typedef struct lvrpci_tls_paths {
    char *ca;
    char *crl;
    char *cert;
    char *key;
} lvrpci_tls_paths;

/* Fills *out following libvirt's rules:
 *   - pkipath set: everything in pkipath, whether the files exist or not;
 *   - else, if try_user (libvirt: euid != 0) and home is set:
 *     home/.pki/libvirt/{cacert,cacrl,clientcert,clientkey}.pem, keeping
 *     each CA file that exists and the certificate and key only as a pair;
 *   - whatever is still unset: sysconfdir/pki/CA/cacert.pem,
 *     sysconfdir/pki/CA/cacrl.pem, sysconfdir/pki/libvirt/clientcert.pem and
 *     sysconfdir/pki/libvirt/private/clientkey.pem (sysconfdir is "/etc").
 * Returns LVRPC_OK or LVRPC_ENOMEM (error set). */
int lvrpci_tls_locate(const char *pkipath, int try_user, const char *home,
                      const char *sysconfdir, lvrpci_tls_paths *out);
void lvrpci_tls_paths_clear(lvrpci_tls_paths *p);

#endif /* LVRPC_TLS_INTERNAL_H */
