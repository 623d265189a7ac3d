/* test_headers.c - lvrpc.h on its own.
 *
 * lvrpc.h is the first include, with nothing before it (no config.h), so it
 * must bring everything it needs.  Every public macro of lvrpc.h is
 * expanded once and checked, and every public function is referenced, so
 * the program only links if the shared library exports them all.
 * No CUnit, no harness: plain checks, exit 0 or 1.
 */
#include "lvrpc.h"

#include <stdio.h>
#include <string.h>

/* LVRPC_API on a declaration of our own, as the library uses it. */
LVRPC_API int lvrpct_headers_probe(void);
int lvrpct_headers_probe(void)
{
    return LVRPC_VERSION;
}

static int failures, checks;

#define CHECK(cond) do { \
        checks++; \
        if (!(cond)) { \
            failures++; \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        } \
    } while (0)

#ifndef LVRPC_H
#error "LVRPC_H (the include guard) is not defined by lvrpc.h"
#endif

/* The guard works: a second inclusion changes nothing. */
#include "lvrpc.h"

int main(void)
{
    lvrpc_options o = {0};
    lvrpc_error e;
    size_t n = 0;
    /* every public function of lvrpc.h, so that linking proves the exports */
    void (*const fns[])(void) = {
        (void (*)(void))lvrpc_strerror,      (void (*)(void))lvrpc_last_error,
        (void (*)(void))lvrpc_last_message,  (void (*)(void))lvrpc_open,
        (void (*)(void))lvrpc_close,         (void (*)(void))lvrpc_set_timeout,
        (void (*)(void))lvrpc_get_mode,      (void (*)(void))lvrpc_get_name,
        (void (*)(void))lvrpc_get_stats,     (void (*)(void))lvrpc_call,
        (void (*)(void))lvrpc_reply_free,    (void (*)(void))lvrpc_proc_by_number,
        (void (*)(void))lvrpc_proc_by_name,  (void (*)(void))lvrpc_proc_table,
        /* and a sample of the generated typed calls */
        (void (*)(void))lvrpc_connect_get_lib_version,
        (void (*)(void))lvrpc_domain_lookup_by_name,
        (void (*)(void))lvrpc_storage_vol_get_path,
    };

    /* version */
    CHECK(LVRPC_VERSION == 100);
    CHECK(lvrpct_headers_probe() == 100);
    /* open flags: VIR_CONNECT_RO */
    CHECK(LVRPC_OPEN_READONLY == 0x1u);
    o.flags = LVRPC_OPEN_READONLY;
    CHECK(o.flags == 1);
    /* defaults */
    CHECK(LVRPC_DEFAULT_CALL_TIMEOUT_MS == 30000u);
    CHECK(LVRPC_DEFAULT_CONNECT_TIMEOUT_MS == 10000u);
    CHECK(LVRPC_DEFAULT_CALL_TIMEOUT_MS > LVRPC_DEFAULT_CONNECT_TIMEOUT_MS);
    /* the remote program */
    CHECK(LVRPC_PROGRAM_REMOTE == 0x20008086u);
    CHECK(LVRPC_PROGRAM_REMOTE_VERSION == 1u);
    /* the other programs, and the procedure table's flags */
    CHECK(LVRPC_PROGRAM_QEMU == 0x20008087u && LVRPC_PROGRAM_QEMU_VERSION == 1u);
    CHECK(LVRPC_PROGRAM_LXC == 0x00068000u && LVRPC_PROGRAM_LXC_VERSION == 1u);
    CHECK(LVRPC_PROGRAM_ADMIN == 0x06900690u && LVRPC_PROGRAM_ADMIN_VERSION == 1u);
    CHECK((LVRPC_PROCF_EVENT | LVRPC_PROCF_STREAM_RECV | LVRPC_PROCF_STREAM_SEND |
           LVRPC_PROCF_FDS_IN | LVRPC_PROCF_FDS_OUT) == 0x1fu);

    /* the error enum: codes are only ever appended */
    CHECK(LVRPC_OK == 0 && LVRPC_ENOMEM == 1 && LVRPC_EINVAL == 2 && LVRPC_EREFUSED == 3 &&
          LVRPC_EUNREACHABLE == 4 && LVRPC_ETIMEDOUT == 5 && LVRPC_EPROTO == 6 &&
          LVRPC_ECLOSED == 7 && LVRPC_EREMOTE == 8 && LVRPC_EAUTH == 9 &&
          LVRPC_ENOTSUP == 10 && LVRPC_ESYS == 11 && LVRPC_ETLS == 12);
    CHECK(LVRPC_MODE_DIRECT == 0 && LVRPC_MODE_SHARED == 1);
    for (int code = -1; code <= 40; code++) {
        const char *s = lvrpc_strerror(code);
        CHECK(s != NULL && s[0] != '\0');
    }
    CHECK(strcmp(lvrpc_strerror(LVRPC_OK), "success") == 0);
    CHECK(strcmp(lvrpc_strerror(9999), lvrpc_strerror(LVRPC_EREMOTE)) != 0);

    /* a zeroed options struct is the documented defaults; reserved stays 0;
     * the tls pointer took reserved slots, the size did not change */
    CHECK(sizeof(lvrpc_options) == 18 * sizeof(unsigned));
    CHECK(o.tls == NULL);
    {
        lvrpc_tls_options to = {0};
        struct ssl_ctx_st *ctx = NULL; /* declared by lvrpc.h alone */
        to.flags = LVRPC_TLS_NO_VERIFY;
        to.ctx = ctx;
        o.tls = &to;
        CHECK(LVRPC_TLS_NO_VERIFY == 0x1u && o.tls->flags == 1 && o.tls->ctx == NULL);
        o.tls = NULL;
    }

    /* a fresh thread's error record is empty */
    memset(&e, 0x7f, sizeof(e));
    CHECK(lvrpc_last_error(&e) == LVRPC_OK);
    CHECK(e.code == LVRPC_OK && e.message[0] == '\0');
    CHECK(lvrpc_last_error(NULL) == LVRPC_OK);
    CHECK(lvrpc_last_message() != NULL);
    CHECK(sizeof(e.message) == 1024);

    /* types and constants the generated headers bring along */
    CHECK(LVRPC_PROC_CONNECT_OPEN == 1 && LVRPC_PROC_CONNECT_CLOSE == 2 &&
          LVRPC_PROC_AUTH_LIST == 66 && LVRPC_PROC_CONNECT_GET_LIB_VERSION == 157);
    CHECK(LVRPC_KEEPALIVE_PROGRAM == 0x6b656570 && LVRPC_KEEPALIVE_PING == 1 &&
          LVRPC_KEEPALIVE_PONG == 2);
    CHECK(LVRPC_UUID_LEN == 16 && sizeof(lvrpc_uuid) == 16);
    CHECK(LVRPC_MESSAGE_MAX == 33554432 && LVRPC_STRING_MAX == 4194304);
    CHECK(LVRPC_CALL == 0 && LVRPC_REPLY == 1 && LVRPC_MESSAGE == 2 && LVRPC_STREAM == 3 &&
          LVRPC_STREAM_HOLE == 6);
    CHECK(LVRPC_STATUS_OK == 0 && LVRPC_STATUS_ERROR == 1 && LVRPC_STATUS_CONTINUE == 2);

    /* the procedure table matches the generated constants */
    CHECK(lvrpc_proc_table(&n) != NULL && n > 0);
    for (size_t i = 0; i < n; i++) {
        const lvrpc_proc_info *p = &lvrpc_proc_table(NULL)[i];
        CHECK(p->prog == LVRPC_PROGRAM_REMOTE || p->prog == LVRPC_PROGRAM_QEMU ||
              p->prog == LVRPC_PROGRAM_LXC || p->prog == LVRPC_PROGRAM_ADMIN);
        CHECK(lvrpc_proc_by_number(p->prog, p->proc) == p);
        CHECK(lvrpc_proc_by_name(p->name) == p);
        CHECK((p->xdr_args == NULL) == (p->args_size == 0));
        CHECK((p->xdr_ret == NULL) == (p->ret_size == 0));
    }
    CHECK(lvrpc_proc_by_name("DOMAIN_LOOKUP_BY_NAME")->proc == LVRPC_PROC_DOMAIN_LOOKUP_BY_NAME);

    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
        CHECK(fns[i] != NULL);
    /* NULL is allowed */
    lvrpc_close(NULL);
    lvrpc_reply_free(NULL);

    printf("test_headers: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
