/* domain.c - finding a domain, and the commands that act on one:
 * dumpxml, define, undefine, start, destroy, suspend, resume, shutdown,
 * reboot.  Messages are virsh's, word for word. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* virsh refuses XML files larger than this (VSH_MAX_XML_FILE). */
#define MAX_XML_FILE (10 * 1024 * 1024)

/* ------------------------------------------------------------ lookup */

static int parse_id(const char *s, int *id)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < 0 || v > INT_MAX)
        return -1;
    *id = (int)v;
    return 0;
}

static int by_id(cli_ctx *ctx, int id, cli_domain *out)
{
    lvrpc_domain_lookup_by_id_args a = {id};
    lvrpc_domain_lookup_by_id_ret *r = NULL;

    if (lvrpc_domain_lookup_by_id(ctx->client, &a, &r) != LVRPC_OK)
        return -1;
    out->reply = r;
    out->dom = &r->dom;
    return 0;
}

static int by_uuid(cli_ctx *ctx, const char *uuid, cli_domain *out)
{
    lvrpc_domain_lookup_by_uuid_args a;
    lvrpc_domain_lookup_by_uuid_ret *r = NULL;

    memcpy(a.uuid, uuid, sizeof(a.uuid));
    if (lvrpc_domain_lookup_by_uuid(ctx->client, &a, &r) != LVRPC_OK)
        return -1;
    out->reply = r;
    out->dom = &r->dom;
    return 0;
}

static int by_name(cli_ctx *ctx, const char *name, cli_domain *out)
{
    lvrpc_domain_lookup_by_name_args a = {(char *)name};
    lvrpc_domain_lookup_by_name_ret *r = NULL;

    if (lvrpc_domain_lookup_by_name(ctx->client, &a, &r) != LVRPC_OK)
        return -1;
    out->reply = r;
    out->dom = &r->dom;
    return 0;
}

int cli_domain_get(cli_ctx *ctx, const char *arg, unsigned by, cli_domain *out)
{
    char uuid[LVRPC_UUID_LEN];
    int id;

    out->reply = NULL;
    out->dom = NULL;
    if ((by & CLI_BYID) && parse_id(arg, &id) == 0 && by_id(ctx, id, out) == 0)
        return 0;
    if ((by & CLI_BYUUID) && strlen(arg) == 36 && cli_uuid_parse(arg, uuid) == 0 &&
        by_uuid(ctx, uuid, out) == 0)
        return 0;
    if ((by & CLI_BYNAME) && by_name(ctx, arg, out) == 0)
        return 0;
    cli_fail_lvrpc(ctx);
    return -1;
}

void cli_domain_clear(cli_domain *d)
{
    lvrpc_reply_free(d->reply);
    d->reply = NULL;
    d->dom = NULL;
}

const char *cli_domain_state_name(int state)
{
    static const char *const names[] = {"no state", "running", "idle",     "paused",
                                        "in shutdown", "shut off", "crashed", "pmsuspended"};

    if (state < 0 || (size_t)state >= sizeof(names) / sizeof(names[0]))
        return "no state";
    return names[state];
}

/* ------------------------------------------------------------ actions */

static int do_undefine(lvrpc_client *c, lvrpc_domain_ref *d)
{
    lvrpc_domain_undefine_args a = {*d};
    return lvrpc_domain_undefine(c, &a);
}

static int do_destroy(lvrpc_client *c, lvrpc_domain_ref *d)
{
    lvrpc_domain_destroy_args a = {*d};
    return lvrpc_domain_destroy(c, &a);
}

static int do_suspend(lvrpc_client *c, lvrpc_domain_ref *d)
{
    lvrpc_domain_suspend_args a = {*d};
    return lvrpc_domain_suspend(c, &a);
}

static int do_resume(lvrpc_client *c, lvrpc_domain_ref *d)
{
    lvrpc_domain_resume_args a = {*d};
    return lvrpc_domain_resume(c, &a);
}

static int do_shutdown(lvrpc_client *c, lvrpc_domain_ref *d)
{
    lvrpc_domain_shutdown_args a = {*d};
    return lvrpc_domain_shutdown(c, &a);
}

static int do_reboot(lvrpc_client *c, lvrpc_domain_ref *d)
{
    lvrpc_domain_reboot_args a = {*d, 0};
    return lvrpc_domain_reboot(c, &a);
}

/* Runs one action on the domain named by the command's argument and, on
 * success, prints virsh's message with that argument as the user wrote it
 * (virsh names the domain by its argument for these commands). */
static int run_action(cli_ctx *ctx, int argc, char **argv,
                      int (*action)(lvrpc_client *, lvrpc_domain_ref *), const char *done)
{
    const char *name = NULL;
    const cli_opt opts[] = {{"domain", 0, CLI_POSITIONAL, &name}, {NULL, 0, 0, NULL}};
    cli_domain d;
    int rc;

    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 || cli_connect(ctx) < 0)
        return -1;
    if (cli_domain_get(ctx, name, CLI_BYID | CLI_BYUUID | CLI_BYNAME, &d) < 0)
        return -1;
    rc = action(ctx->client, d.dom) == LVRPC_OK ? 0 : cli_fail_lvrpc(ctx);
    cli_domain_clear(&d);
    if (rc == 0)
        printf("Domain '%s' %s\n", name, done);
    return rc;
}

int cli_cmd_undefine(cli_ctx *ctx, int argc, char **argv)
{
    return run_action(ctx, argc, argv, do_undefine, "has been undefined");
}

int cli_cmd_destroy(cli_ctx *ctx, int argc, char **argv)
{
    return run_action(ctx, argc, argv, do_destroy, "destroyed");
}

int cli_cmd_suspend(cli_ctx *ctx, int argc, char **argv)
{
    return run_action(ctx, argc, argv, do_suspend, "suspended");
}

int cli_cmd_resume(cli_ctx *ctx, int argc, char **argv)
{
    return run_action(ctx, argc, argv, do_resume, "resumed");
}

int cli_cmd_shutdown(cli_ctx *ctx, int argc, char **argv)
{
    return run_action(ctx, argc, argv, do_shutdown, "is being shutdown");
}

int cli_cmd_reboot(cli_ctx *ctx, int argc, char **argv)
{
    return run_action(ctx, argc, argv, do_reboot, "is being rebooted");
}

/* start differs from the others as in virsh: no lookup by id, a refusal
 * when the domain already runs, and the domain's own name in the message. */
int cli_cmd_start(cli_ctx *ctx, int argc, char **argv)
{
    const char *name = NULL;
    const cli_opt opts[] = {{"domain", 0, CLI_POSITIONAL, &name}, {NULL, 0, 0, NULL}};
    cli_domain d;
    int rc;

    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 || cli_connect(ctx) < 0)
        return -1;
    if (cli_domain_get(ctx, name, CLI_BYUUID | CLI_BYNAME, &d) < 0)
        return -1;
    if (d.dom->id != -1) {
        rc = cli_fail(ctx, "Domain is already active");
    } else {
        lvrpc_domain_create_args a = {*d.dom};
        rc = lvrpc_domain_create(ctx->client, &a) == LVRPC_OK ? 0 : cli_fail_lvrpc(ctx);
    }
    if (rc == 0)
        printf("Domain '%s' started\n", d.dom->name);
    cli_domain_clear(&d);
    return rc;
}

/* ------------------------------------------------------------ XML */

int cli_cmd_dumpxml(cli_ctx *ctx, int argc, char **argv)
{
    const char *name = NULL;
    const cli_opt opts[] = {{"domain", 0, CLI_POSITIONAL, &name}, {NULL, 0, 0, NULL}};
    lvrpc_domain_get_xml_desc_ret *xml = NULL;
    cli_domain d;
    int rc;

    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 || cli_connect(ctx) < 0)
        return -1;
    if (cli_domain_get(ctx, name, CLI_BYID | CLI_BYUUID | CLI_BYNAME, &d) < 0)
        return -1;
    lvrpc_domain_get_xml_desc_args a = {*d.dom, 0};
    rc = lvrpc_domain_get_xml_desc(ctx->client, &a, &xml) == LVRPC_OK ? 0 : cli_fail_lvrpc(ctx);
    if (rc == 0)
        fputs(xml->xml, stdout);
    lvrpc_reply_free(xml);
    cli_domain_clear(&d);
    return rc;
}

/* Reads up to MAX_XML_FILE bytes of f into a growing buffer; returns it
 * NUL-terminated, or NULL with errno set (EFBIG when the file is larger). */
static char *read_all(FILE *f)
{
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    do {
        if (len == cap) {
            char *nb;
            if (cap > MAX_XML_FILE) {
                free(buf);
                errno = EFBIG;
                return NULL;
            }
            cap = cap ? cap * 2 : 16384;
            if (!(nb = realloc(buf, cap + 1))) {
                free(buf);
                errno = ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    if (ferror(f) || len > MAX_XML_FILE) {
        int err = ferror(f) ? errno : EFBIG;
        free(buf);
        errno = err;
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* Reads a whole file into a new NUL-terminated buffer. */
static char *read_file(cli_ctx *ctx, const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;

    if (!f) {
        cli_fail(ctx, "Failed to open file '%s': %s", path, strerror(errno));
        return NULL;
    }
    buf = read_all(f);
    if (!buf)
        cli_fail(ctx, "Failed to read file '%s': %s", path, strerror(errno));
    fclose(f);
    return buf;
}

int cli_cmd_define(cli_ctx *ctx, int argc, char **argv)
{
    const char *file = NULL;
    const cli_opt opts[] = {{"file", 0, CLI_POSITIONAL, &file}, {NULL, 0, 0, NULL}};
    lvrpc_domain_define_xml_ret *r = NULL;
    char *xml;
    int rc;

    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 || cli_connect(ctx) < 0)
        return -1;
    if (!(xml = read_file(ctx, file)))
        return -1;
    lvrpc_domain_define_xml_args a = {xml};
    rc = lvrpc_domain_define_xml(ctx->client, &a, &r) == LVRPC_OK ? 0 : cli_fail_lvrpc(ctx);
    if (rc == 0)
        printf("Domain '%s' defined from %s\n", r->dom.name, file);
    lvrpc_reply_free(r);
    free(xml);
    return rc;
}
