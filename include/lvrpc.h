/* lvrpc.h - libvirt's remote RPC protocol, spoken directly from C.
 *
 * One opaque handle (lvrpc_client) opened from a libvirt URI.  Every call is
 * synchronous for the calling thread and may be made from any number of
 * threads at once on the same handle.  How a call reaches the daemon is chosen
 * when the handle is opened (lvrpc_mode); nothing else in the API depends on it.
 *
 * Error convention (the same for every function that returns int):
 *   - the return value is LVRPC_OK (0) on success, else an lvrpc_err code;
 *   - the details of the calling thread's last failure are kept in a
 *     thread-local record, copied out with lvrpc_last_error().  A failing
 *     call overwrites it; a successful call leaves it alone.
 *
 * Ownership: replies are allocated by the library and belong to the caller,
 * who frees each one, nested parts included, with lvrpc_reply_free().
 */
#ifndef LVRPC_H
#define LVRPC_H

#include <stddef.h>
#include <stdint.h>
#include <rpc/rpc.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LVRPC_API __attribute__((visibility("default")))
#else
#define LVRPC_API
#endif

/* Version of this library, as major * 10000 + minor * 100 + micro. */
#define LVRPC_VERSION 100

/* ------------------------------------------------------------------ errors */

/* Error codes.  LVRPC_OK is 0; codes are only ever appended. */
typedef enum lvrpc_err {
    LVRPC_OK = 0,
    LVRPC_ENOMEM = 1,       /* out of memory */
    LVRPC_EINVAL = 2,       /* bad argument or malformed URI */
    LVRPC_EREFUSED = 3,     /* the peer refused the connection */
    LVRPC_EUNREACHABLE = 4, /* unknown host, no route, no such socket path */
    LVRPC_ETIMEDOUT = 5,    /* the call or connect did not finish in time */
    LVRPC_EPROTO = 6,       /* the peer broke the protocol (bad length, serial, ...) */
    LVRPC_ECLOSED = 7,      /* the connection or handle was closed */
    LVRPC_EREMOTE = 8,      /* the daemon answered with an error (see remote_*) */
    LVRPC_EAUTH = 9,        /* the daemon asks for an auth method lvrpc lacks */
    LVRPC_ENOTSUP = 10,     /* feature, transport or mode not supported */
    LVRPC_ESYS = 11,        /* another operating-system error (see sys_errno) */
    LVRPC_ETLS = 12         /* TLS handshake or certificate failure */
} lvrpc_err;

/* The detail record of one failure.  For LVRPC_EREMOTE, remote_code,
 * remote_domain and remote_level are libvirt's virErrorNumber, virErrorDomain
 * and virErrorLevel, and message is the daemon's own message.  For local
 * causes remote_* are 0 and message says what happened. */
typedef struct lvrpc_error {
    int code;          /* lvrpc_err */
    int sys_errno;     /* errno behind the failure, or 0 */
    int remote_code;   /* libvirt error number (e.g. 42 = VIR_ERR_NO_DOMAIN) */
    int remote_domain; /* libvirt error domain */
    int remote_level;  /* libvirt error level (1 warning, 2 error) */
    char message[1024]; /* NUL-terminated; long messages are truncated */
} lvrpc_error;

/* A static English description of an error code.  Never NULL. */
LVRPC_API const char *lvrpc_strerror(int code);

/* Copies the calling thread's last error into *out and returns its code
 * (LVRPC_OK, with an empty message, if nothing has failed on this thread). */
LVRPC_API int lvrpc_last_error(lvrpc_error *out);

/* The calling thread's last error message (valid until the thread's next
 * lvrpc call).  Never NULL. */
LVRPC_API const char *lvrpc_last_message(void);

/* ------------------------------------------------------------ the handle */

typedef struct lvrpc_client lvrpc_client;

typedef enum lvrpc_mode {
    /* Every call in progress has a socket of its own: an idle socket is taken
     * from the handle's free list, or a new one is opened and handshaken, and
     * it goes back to the list when the call ends.  Calls never wait on each
     * other until max_sockets calls are in progress. */
    LVRPC_MODE_DIRECT = 0,
    /* A pool of pool_size connections, each with a reader thread; callers
     * share them and at most max_inflight calls are in flight per connection. */
    LVRPC_MODE_SHARED = 1
} lvrpc_mode;

/* Open flags. */
#define LVRPC_OPEN_READONLY 0x1u /* VIR_CONNECT_RO: open read-only */

/* OpenSSL's SSL_CTX, declared here so that this header never needs
 * <openssl/ssl.h> and never changes with configure flags. */
struct ssl_ctx_st;

/* TLS settings for tls URIs (lvrpc_options.tls); ignored for tcp and unix.
 * Zeroed (or no struct at all) means what libvirt's own client does:
 *
 * Files.  With pkipath=DIR in the URI: DIR/cacert.pem, DIR/clientcert.pem,
 * DIR/clientkey.pem (and DIR/cacrl.pem if present).  Without it, a non-root
 * process first looks in $HOME/.pki/libvirt/ (same names; cacert.pem and
 * cacrl.pem each fall back to the system path on their own, the certificate
 * and key as a pair), then in the system paths /etc/pki/CA/cacert.pem,
 * /etc/pki/CA/cacrl.pem, /etc/pki/libvirt/clientcert.pem and
 * /etc/pki/libvirt/private/clientkey.pem.  The CA certificate must exist.
 * A missing client certificate and key are not an error here (the daemon
 * decides, and lvrpc_open then fails with LVRPC_ETLS saying so), but one of
 * the two without the other is.
 *
 * Verification, on by default: the daemon's certificate must chain to the
 * CA, be within its validity dates, be meant for a server (extended key
 * usage) and name the URI's host (a DNS name or an IP address) in its
 * subject alternative names (or, without DNS names there, in its common
 * name).  Then libvirtd checks our certificate and sends one confirmation
 * byte; a daemon that closes instead gives LVRPC_ETLS "the daemon rejected
 * our client certificate".  TLS 1.2 is the oldest version offered.
 *
 * no_verify=1 in the URI, or LVRPC_TLS_NO_VERIFY here, does what libvirt's
 * no_verify does and nothing more: failures of the daemon's certificate
 * (chain, dates, host name, usage) are ignored.  The CA file must still
 * exist and load, our certificate is still presented, and the daemon still
 * checks it.  The connection is then open to a man in the middle; use it
 * for tests only.
 *
 * All of this is read only by lvrpc_open(): paths are copied and the files
 * are loaded once, into one SSL_CTX per handle that every connection of the
 * handle shares (the struct and the strings may be freed afterwards). */
typedef struct lvrpc_tls_options {
    const char *ca_file;    /* PEM CA certificate(s); replaces cacert.pem */
    const char *cert_file;  /* PEM client certificate (chain allowed);
                             * replaces clientcert.pem */
    const char *key_file;   /* PEM private key; replaces clientkey.pem.
                             * With cert_file set and key_file NULL, the key
                             * is read from cert_file. */
    /* A TLS context the caller has set up (certificates, trust store,
     * ciphers, minimum version).  When set, the three paths above, pkipath
     * and the default paths are not used.  lvrpc takes a reference
     * (SSL_CTX_up_ref) that lvrpc_close() drops, never changes the context,
     * and still sets on each of its connections: peer verification with its
     * own callback (unless no_verify), the host name check, TLS >= 1.2. */
    struct ssl_ctx_st *ctx;
    unsigned flags;         /* LVRPC_TLS_* */
    unsigned reserved[7];   /* must be 0 */
} lvrpc_tls_options;

#define LVRPC_TLS_NO_VERIFY 0x1u /* as no_verify=1 in the URI (see above) */

/* Options for lvrpc_open().  A zeroed struct ({0}) means the documented
 * defaults; new fields are only ever added at the end. */
typedef struct lvrpc_options {
    lvrpc_mode mode;           /* default LVRPC_MODE_DIRECT */
    unsigned flags;            /* LVRPC_OPEN_* */
    unsigned call_timeout_ms;  /* per call; 0 = 30000 (30 s) */
    unsigned connect_timeout_ms; /* connect + handshake; 0 = 10000 */
    /* Direct mode */
    unsigned max_sockets;      /* sockets open at once; 0 = 64 */
    unsigned max_idle;         /* idle sockets kept; 0 = 8 */
    /* Shared mode */
    unsigned pool_size;        /* connections; 0 = 1 */
    unsigned max_inflight;     /* calls in flight per connection; 0 = 5 */
    unsigned reconnect_min_ms; /* first reconnect delay; 0 = 100 */
    unsigned reconnect_max_ms; /* backoff cap; 0 = 5000 */
    /* TLS: certificates, an SSL_CTX, no_verify (see lvrpc_tls_options);
     * NULL = the URI's parameters and libvirt's default paths.  Read only
     * by lvrpc_open().  Builds without OpenSSL ignore it: tls URIs fail
     * there with LVRPC_ENOTSUP. */
    const lvrpc_tls_options *tls;
    /* Keepalive (Shared mode, and the event connection of Direct mode):
     * after keepalive_interval_ms with nothing received a PING is sent;
     * after keepalive_count unanswered intervals the connection is declared
     * dead ("keepalive timeout", LVRPC_ETIMEDOUT) and re-established.
     * Defaults as libvirt's client: 0 = 5000 ms and 0 = 5.
     * LVRPC_KEEPALIVE_OFF turns client pings off (the daemon's PINGs are
     * still answered).  Direct-mode call sockets never ask for keepalive. */
    unsigned keepalive_interval_ms;
    unsigned keepalive_count;
    /* must be 0; the struct's size is the same as before tls was added */
    unsigned reserved[6 - sizeof(void *) / sizeof(unsigned)];
} lvrpc_options;

#define LVRPC_KEEPALIVE_OFF 0xffffffffu

#define LVRPC_DEFAULT_CALL_TIMEOUT_MS 30000u
#define LVRPC_DEFAULT_CONNECT_TIMEOUT_MS 10000u

/* Opens a handle to the daemon named by a libvirt URI, e.g.
 *   test+tcp://127.0.0.1:16509/default   qemu+unix:///system?socket=/path
 *   test:///default (local daemon's default UNIX socket)
 * URI rules follow libvirt's client: driver[+transport]://[user@][host][:port]/path[?params];
 * transport unix when there is no host, tls when there is one; ports 16509
 * (tcp) and 16514 (tls); params socket=, name=, mode=, pkipath=, no_verify=
 * (TLS: see lvrpc_tls_options).
 * The first connection is opened and handshaken (auth list, connect open)
 * before this returns, so a bad URI or unreachable daemon fails here.
 * opts may be NULL (all defaults).  On success *out is a new handle that the
 * caller closes with lvrpc_close(); on failure *out is NULL. */
LVRPC_API int lvrpc_open(const char *uri, const lvrpc_options *opts,
                         lvrpc_client **out);

/* Closes the handle.  Calls still in progress on other threads are woken
 * with LVRPC_ECLOSED, and lvrpc_close() waits until they have returned
 * before freeing the handle; no call may be *started* after lvrpc_close()
 * has begun.  NULL is allowed. */
LVRPC_API void lvrpc_close(lvrpc_client *c);

/* Changes the per-call timeout for calls started afterwards (0 = default). */
LVRPC_API void lvrpc_set_timeout(lvrpc_client *c, unsigned call_timeout_ms);

/* The mode the handle was opened in. */
LVRPC_API lvrpc_mode lvrpc_get_mode(const lvrpc_client *c);

/* The URI sent to the daemon in connect open (e.g. "test:///default").
 * Owned by the handle. */
LVRPC_API const char *lvrpc_get_name(const lvrpc_client *c);

/* Counters of a handle, for monitoring. */
typedef struct lvrpc_stats {
    uint64_t calls;          /* calls completed (any outcome) */
    uint64_t errors;         /* calls that returned an error */
    uint64_t sockets_opened; /* connections opened and handshaken */
    unsigned sockets_open;   /* connections open now */
    uint64_t dropped_replies;/* replies to abandoned or unknown serials */
    uint64_t reconnects;     /* Shared mode: connections re-established */
} lvrpc_stats;
LVRPC_API void lvrpc_get_stats(lvrpc_client *c, lvrpc_stats *out);

/* ------------------------------------------------------------ calls */

/* The remote program (libvirt's public API) and its version. */
#define LVRPC_PROGRAM_REMOTE 0x20008086u
#define LVRPC_PROGRAM_REMOTE_VERSION 1u

/* The other programs of libvirt's daemons, all at version 1: QEMU (raw
 * monitor and guest agent commands, QMP events; QEMU drivers only), LXC
 * (LXC driver only) and admin (the daemon's own management, served only on
 * its admin socket, e.g. libvirt-admin-sock). */
#define LVRPC_PROGRAM_QEMU 0x20008087u
#define LVRPC_PROGRAM_QEMU_VERSION 1u
#define LVRPC_PROGRAM_LXC 0x00068000u
#define LVRPC_PROGRAM_LXC_VERSION 1u
#define LVRPC_PROGRAM_ADMIN 0x06900690u
#define LVRPC_PROGRAM_ADMIN_VERSION 1u

/* A generic call: sends procedure proc of program prog/vers with args encoded
 * by xdr_args (NULL for no arguments), waits for the
 * reply and decodes it with xdr_ret into a new zeroed buffer of ret_size
 * bytes.  On success, if ret is not NULL, *ret is that buffer: the caller
 * frees it with lvrpc_reply_free().  With xdr_ret NULL the reply body must be
 * empty and *ret is left NULL.  On failure *ret is NULL. */
LVRPC_API int lvrpc_call(lvrpc_client *c, unsigned prog, unsigned vers,
                         int proc, xdrproc_t xdr_args, const void *args,
                         xdrproc_t xdr_ret, size_t ret_size, void **ret);

/* lvrpc_call() with file descriptors, for the procedures flagged
 * LVRPC_PROCF_FDS_IN / LVRPC_PROCF_FDS_OUT in the procedure table.  They
 * travel only over UNIX sockets: giving fds on a TCP or TLS handle fails
 * with LVRPC_ENOTSUP before anything is sent.
 *   fds[0..nfds), at most 32, are passed with the call (nfds 0: none).
 *     They remain the caller's: the daemon receives duplicates, so the
 *     caller may close them as soon as the call returns.
 *   If rfds is not NULL, on success *rfds is a new array of the *nrfds
 *     descriptors that came with the reply (close-on-exec set; NULL and 0
 *     when none came): the caller closes each one and frees the array
 *     with free().  With rfds NULL they are closed.  On failure *rfds is
 *     NULL and *nrfds 0, and no descriptor is left open.
 * Everything else is as for lvrpc_call(). */
LVRPC_API int lvrpc_call_fds(lvrpc_client *c, unsigned prog, unsigned vers, int proc,
                             xdrproc_t xdr_args, const void *args, const int *fds,
                             unsigned nfds, xdrproc_t xdr_ret, size_t ret_size, void **ret,
                             int **rfds, unsigned *nrfds);

/* Frees a reply returned by lvrpc_call() or by a typed call, with every
 * string, array and optional part it holds.  NULL is allowed. */
LVRPC_API void lvrpc_reply_free(void *ret);

/* ------------------------------------------------------------ procedures */

/* lvrpc_proc_info.flags */
#define LVRPC_PROCF_EVENT 0x1u       /* an event: sent by the daemon, never called */
#define LVRPC_PROCF_STREAM_RECV 0x2u /* the call opens a stream of data from the daemon */
#define LVRPC_PROCF_STREAM_SEND 0x4u /* the call opens a stream of data to the daemon */
#define LVRPC_PROCF_FDS_IN 0x8u      /* the call may carry file descriptors */
#define LVRPC_PROCF_FDS_OUT 0x10u    /* the reply carries file descriptors */

/* One procedure of a program, as the definitions describe it. */
typedef struct lvrpc_proc_info {
    unsigned prog;         /* LVRPC_PROGRAM_* */
    int proc;
    const char *name;      /* e.g. "DOMAIN_LOOKUP_BY_NAME"; other programs'
                            * names start with "QEMU_", "LXC_" or "ADMIN_" */
    xdrproc_t xdr_args;    /* NULL when the call takes no arguments */
    size_t args_size;
    xdrproc_t xdr_ret;     /* NULL when the reply is empty */
    size_t ret_size;
    unsigned flags;        /* LVRPC_PROCF_* */
    xdrproc_t xdr_msg;     /* events: the message body; NULL otherwise */
    size_t msg_size;
} lvrpc_proc_info;

/* Looks a procedure up by number or by name: the table's name or the
 * constant's name (LVRPC_PROC_..., LVRPC_QEMU_PROC_...), case-insensitive.
 * Returns a static record, or NULL. */
LVRPC_API const lvrpc_proc_info *lvrpc_proc_by_number(unsigned prog, int proc);
LVRPC_API const lvrpc_proc_info *lvrpc_proc_by_name(const char *name);

/* The table of all procedures the library knows (calls and events of the
 * remote, QEMU, LXC and admin programs, in that order, each by number), and
 * its length. */
LVRPC_API const lvrpc_proc_info *lvrpc_proc_table(size_t *count);

#ifdef __cplusplus
}
#endif

/* The protocol's types (generated from the project's XDR definitions) and
 * a typed call for every procedure they contain. */
#include <lvrpc_remote.h>
#include <lvrpc_calls.h>
#include <lvrpc_stream.h>
#include <lvrpc_event.h>

#endif /* LVRPC_H */
