/* util.c - the tool's error record, argument parser and small formatters. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

/* ------------------------------------------------------------ errors */

int cli_fail(cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;

    if (ctx->msg[0])
        return -1;
    va_start(ap, fmt);
    vsnprintf(ctx->msg, sizeof(ctx->msg), fmt, ap);
    va_end(ap);
    return -1;
}

int cli_fail_lvrpc(cli_ctx *ctx)
{
    lvrpc_error e;
    int code = lvrpc_last_error(&e);

    if (code == LVRPC_OK)
        return cli_fail(ctx, "internal error: a call failed without an error record");
    if (!e.message[0])
        return cli_fail(ctx, "%s", lvrpc_strerror(code));
    return cli_fail(ctx, "%s", e.message);
}

/* ------------------------------------------------------------ arguments */

static const cli_opt *find_long(const cli_opt *opts, const char *name, size_t len)
{
    for (; opts->name; opts++)
        if (strlen(opts->name) == len && strncmp(opts->name, name, len) == 0)
            return opts;
    return NULL;
}

static const cli_opt *find_short(const cli_opt *opts, char c)
{
    for (; opts->name; opts++)
        if (opts->short_name && opts->short_name == c)
            return opts;
    return NULL;
}

/* The next positional that has no value yet. */
static const cli_opt *next_positional(const cli_opt *opts)
{
    for (; opts->name; opts++)
        if (opts->kind == CLI_POSITIONAL && !*opts->value)
            return opts;
    return NULL;
}

/* Gives opt its value: inline (after '=' or a short option's letter) or
 * the next word.  Returns how many extra words were used, or -1. */
static int take_value(cli_ctx *ctx, const cli_opt *opt, const char *inl, int i, int argc,
                      char **argv)
{
    if (opt->kind == CLI_FLAG) {
        if (inl)
            return cli_fail(ctx, "option --%s takes no value", opt->name);
        *opt->value = opt->name;
        return 0;
    }
    if (inl) {
        *opt->value = inl;
        return 0;
    }
    if (i + 1 >= argc)
        return cli_fail(ctx, "option --%s needs a value", opt->name);
    *opt->value = argv[i + 1];
    return 1;
}

/* Handles the option word argv[i]; returns the extra words used, or -1. */
static int parse_option(cli_ctx *ctx, int argc, char **argv, int i, const cli_opt *opts)
{
    const char *arg = argv[i];
    const cli_opt *opt;
    const char *inl = NULL;

    if (arg[1] == '-') {
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        opt = find_long(opts, name, len);
        if (!opt)
            return cli_fail(ctx, "unknown option --%.*s", (int)len, name);
        inl = eq ? eq + 1 : NULL;
    } else {
        opt = find_short(opts, arg[1]);
        if (!opt)
            return cli_fail(ctx, "unknown option %s", arg);
        inl = arg[2] ? arg + 2 : NULL;
    }
    return take_value(ctx, opt, inl, i, argc, argv);
}

static int check_positionals(cli_ctx *ctx, const cli_opt *opts)
{
    const cli_opt *missing = next_positional(opts);

    if (missing)
        return cli_fail(ctx, "command '%s' requires <%s> option", ctx->cmd ? ctx->cmd : "lvrpc",
                        missing->name);
    return 0;
}

int cli_parse(cli_ctx *ctx, int argc, char **argv, const cli_opt *opts, int stop)
{
    int only_words = 0;

    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_words && strcmp(arg, "--") == 0) {
            only_words = 1;
            if (stop)
                return i + 1;
        } else if (!only_words && arg[0] == '-' && arg[1]) {
            int used = parse_option(ctx, argc, argv, i, opts);
            if (used < 0)
                return -1;
            i += used;
        } else if (stop) {
            return i;
        } else {
            const cli_opt *pos = next_positional(opts);
            if (!pos)
                return cli_fail(ctx, "unexpected argument '%s'", arg);
            *pos->value = arg;
        }
    }
    if (!stop && check_positionals(ctx, opts) < 0)
        return -1;
    return argc;
}

int cli_parse_uint(cli_ctx *ctx, const char *what, const char *s, unsigned long min,
                   unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (!isdigit((unsigned char)s[0]) || *end || errno || v < min || v > max)
        return cli_fail(ctx, "%s must be a whole number from %lu to %lu, not '%s'", what, min,
                        max, s);
    *out = v;
    return 0;
}

/* ------------------------------------------------------------ formatting */

void cli_uuid_format(const char *uuid, char *buf)
{
    const unsigned char *u = (const unsigned char *)uuid;

    snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
             u[13], u[14], u[15]);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int cli_uuid_parse(const char *s, char *uuid)
{
    size_t n = 0;

    while (*s == ' ')
        s++;
    while (n < 16) {
        int hi, lo;
        if (*s == '-') {
            s++;
            continue;
        }
        hi = hexval(s[0]);
        lo = hi < 0 ? -1 : hexval(s[1]);
        if (lo < 0)
            return -1;
        uuid[n++] = (char)(hi * 16 + lo);
        s += 2;
    }
    while (*s == ' ')
        s++;
    return *s ? -1 : 0;
}

void cli_bytes_str(char *dst, size_t dstsz, const char *val, unsigned len)
{
    size_t n = val ? len : 0;

    if (n >= dstsz)
        n = dstsz - 1;
    if (n)
        memcpy(dst, val, n);
    dst[n] = '\0';
}

void cli_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

int cli_name_cmp(const char *a, const char *b)
{
    return strcasecmp(a, b);
}
