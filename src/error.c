/* error.c - the thread-local error record and error-code texts. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lvrpc_internal.h"

/* One record per thread: many threads share a handle, so a per-handle
 * "last error" would be overwritten by other threads' calls.  A fixed-size
 * record needs no allocation and nothing to free when a thread exits. */
static __thread lvrpc_error tls_error;

static const char *const error_texts[] = {
    [LVRPC_OK] = "success",
    [LVRPC_ENOMEM] = "out of memory",
    [LVRPC_EINVAL] = "invalid argument",
    [LVRPC_EREFUSED] = "connection refused",
    [LVRPC_EUNREACHABLE] = "daemon unreachable",
    [LVRPC_ETIMEDOUT] = "timed out",
    [LVRPC_EPROTO] = "protocol violation",
    [LVRPC_ECLOSED] = "connection closed",
    [LVRPC_EREMOTE] = "error reported by the daemon",
    [LVRPC_EAUTH] = "unsupported authentication",
    [LVRPC_ENOTSUP] = "not supported",
    [LVRPC_ESYS] = "system error",
    [LVRPC_ETLS] = "TLS error",
};

const char *lvrpc_strerror(int code)
{
    if (code < 0 || (size_t)code >= sizeof(error_texts) / sizeof(error_texts[0]) ||
        !error_texts[code])
        return "unknown error";
    return error_texts[code];
}

int lvrpc_last_error(lvrpc_error *out)
{
    if (out)
        *out = tls_error;
    return tls_error.code;
}

const char *lvrpc_last_message(void)
{
    return tls_error.message;
}

const lvrpc_error *lvrpci_error(void)
{
    return &tls_error;
}

__attribute__((format(printf, 4, 0)))
static void make_error(lvrpc_error *e, int code, int sys_errno, const char *fmt, va_list ap)
{
    memset(e, 0, sizeof(*e));
    e->code = code;
    e->sys_errno = sys_errno;
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
}

void lvrpci_error_make(lvrpc_error *e, int code, int sys_errno, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    make_error(e, code, sys_errno, fmt, ap);
    va_end(ap);
}

int lvrpci_fail(int code, int sys_errno, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    make_error(&tls_error, code, sys_errno, fmt, ap);
    va_end(ap);
    return code;
}

int lvrpci_fail_remote(const lvrpc_remote_error *e)
{
    const char *msg = e->message && *e->message ? *e->message : NULL;

    memset(&tls_error, 0, sizeof(tls_error));
    tls_error.code = LVRPC_EREMOTE;
    tls_error.remote_code = e->code;
    tls_error.remote_domain = e->domain;
    tls_error.remote_level = e->level;
    snprintf(tls_error.message, sizeof(tls_error.message), "%s",
             msg ? msg : "the daemon reported an error without a message");
    return LVRPC_EREMOTE;
}

int lvrpci_set_error(const lvrpc_error *e)
{
    tls_error = *e;
    return e->code;
}

int lvrpci_errno_code(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return LVRPC_EREFUSED;
    case ENOENT:
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EADDRNOTAVAIL:
    case ENOTDIR:
        return LVRPC_EUNREACHABLE;
    case ETIMEDOUT:
    case EAGAIN:
        return LVRPC_ETIMEDOUT;
    case EPIPE:
    case ECONNRESET:
    case ESHUTDOWN:
    case ENOTCONN:
        return LVRPC_ECLOSED;
    case ENOMEM:
        return LVRPC_ENOMEM;
    default:
        return LVRPC_ESYS;
    }
}

int64_t lvrpci_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t lvrpci_deadline_after_ms(unsigned ms)
{
    if (ms == 0)
        return 0;
    return lvrpci_now_ns() + (int64_t)ms * 1000000;
}
