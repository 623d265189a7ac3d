/* cli.h - shared parts of the lvrpc command-line tool.
 *
 * Error convention inside the tool: a function that can fail returns 0 on
 * success or -1 after recording ONE message in the context with cli_fail()
 * or cli_fail_lvrpc(); main() prints it as the single stderr line
 * "lvrpc: error: <message>" and exits with status 1.  The first message
 * recorded wins, so a later failure while cleaning up cannot hide the cause.
 */
#ifndef LVRPC_CLI_H
#define LVRPC_CLI_H

#include <stdio.h>

#include <lvrpc.h>

/* libvirt error numbers the tool needs to tell apart. */
#define CLI_VIR_ERR_NO_SUPPORT 3

typedef struct cli_ctx {
    const char *uri;       /* NULL: LIBVIRT_DEFAULT_URI */
    lvrpc_options opts;
    lvrpc_client *client;  /* opened by cli_connect(), closed by main() */
    const char *cmd;       /* the command's name, for messages */
    char msg[1100];        /* the failure to report ("" while none) */
} cli_ctx;

/* ------------------------------------------------------------ errors */

/* Records a local failure (printf format); returns -1. */
int cli_fail(cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records the calling thread's last lvrpc failure: for daemon errors that
 * is libvirt's own message.  Returns -1. */
int cli_fail_lvrpc(cli_ctx *ctx);

/* Opens ctx->client from ctx->uri and ctx->opts.  A command calls it once
 * its arguments have been checked, so that usage errors need no daemon.
 * Returns 0 or -1. */
int cli_connect(cli_ctx *ctx);

/* ------------------------------------------------------------ arguments */

enum cli_opt_kind {
    CLI_FLAG,       /* --name */
    CLI_VALUE,      /* --name VALUE or --name=VALUE */
    CLI_POSITIONAL  /* VALUE in order, or --name VALUE */
};

/* One option of the tool or of a command.  *value receives the argument
 * (for a flag, the option itself); it is left alone when not given. */
typedef struct cli_opt {
    const char *name;  /* long name, without the dashes */
    char short_name;   /* -x form, or 0 */
    int kind;          /* enum cli_opt_kind */
    const char **value;
} cli_opt;

/* Parses argv[0..argc) against opts (ended by a NULL name).  With stop set,
 * parsing ends at the first non-option word and its index is returned;
 * otherwise every positional must be given and argc is returned.  On a
 * usage error returns -1 with the message recorded. */
int cli_parse(cli_ctx *ctx, int argc, char **argv, const cli_opt *opts, int stop);

/* Parses a whole decimal number in [min, max] into *out. */
int cli_parse_uint(cli_ctx *ctx, const char *what, const char *s, unsigned long min,
                   unsigned long max, unsigned long *out);

/* ------------------------------------------------------------ output */

/* Formats a raw UUID as 8-4-4-4-12 lower-case hex (buf: 37 bytes). */
void cli_uuid_format(const char *uuid, char *buf);

/* Parses a UUID string (32 hex digits, dashes allowed between them) as
 * libvirt does; returns 0, or -1 when s is not one. */
int cli_uuid_parse(const char *s, char *uuid);

/* Copies a counted byte string that should carry its own NUL into dst
 * (size dstsz), always NUL-terminating it. */
void cli_bytes_str(char *dst, size_t dstsz, const char *val, unsigned len);

/* qsort() that accepts an empty array given as NULL. */
void cli_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));

/* virsh's case-insensitive name order. */
int cli_name_cmp(const char *a, const char *b);

/* A table laid out like virsh's vshTable: every column padded to its
 * widest cell, the header underlined with dashes. */
typedef struct cli_table cli_table;

cli_table *cli_table_new(size_t ncols, const char *const *header);
/* Appends a row of ncols cells (copied).  Returns 0, or -1 out of memory. */
int cli_table_add(cli_table *t, const char *const *cells);
/* Prints the table; returns 0, or -1 out of memory. */
int cli_table_print(cli_table *t, FILE *out);
void cli_table_free(cli_table *t);

/* ------------------------------------------------------------ lookups */

/* How cli_domain_get() may read its argument (virsh's VIRSH_BY*). */
#define CLI_BYID 0x1u
#define CLI_BYUUID 0x2u
#define CLI_BYNAME 0x4u

/* A domain found by cli_domain_get(): dom points into reply. */
typedef struct cli_domain {
    void *reply;
    lvrpc_domain_ref *dom;
} cli_domain;

/* Finds a domain the way virsh does: by id when arg is a number >= 0, then
 * by UUID when it looks like one, then by name; the error reported is that
 * of the last try.  Returns 0 (free with cli_domain_clear()) or -1. */
int cli_domain_get(cli_ctx *ctx, const char *arg, unsigned by, cli_domain *out);
void cli_domain_clear(cli_domain *d);

/* virsh's name for a virDomainState value. */
const char *cli_domain_state_name(int state);

/* ------------------------------------------------------------ commands */

/* A command: argv[0] is the command's name. */
typedef int (*cli_cmd_fn)(cli_ctx *ctx, int argc, char **argv);

int cli_cmd_version(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_hostname(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_uri(cli_ctx *ctx, int argc, char **argv);

int cli_cmd_list(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_dominfo(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_dumpxml(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_define(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_undefine(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_start(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_destroy(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_suspend(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_resume(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_shutdown(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_reboot(cli_ctx *ctx, int argc, char **argv);

int cli_cmd_net_list(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_pool_list(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_vol_list(cli_ctx *ctx, int argc, char **argv);

int cli_cmd_bench(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_event(cli_ctx *ctx, int argc, char **argv);

/* stream.c */
int cli_cmd_vol_upload(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_vol_download(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_screenshot(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_console(cli_ctx *ctx, int argc, char **argv);

#endif /* LVRPC_CLI_H */
