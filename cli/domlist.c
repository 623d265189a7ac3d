/* domlist.c - list and dominfo, laid out as virsh lays them out. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* VIR_CONNECT_LIST_DOMAINS_* */
#define LIST_ACTIVE 1u
#define LIST_INACTIVE 2u

/* ------------------------------------------------------------ list */

/* virsh's order: running domains by id, then inactive ones by name. */
static int domain_order(const void *pa, const void *pb)
{
    const lvrpc_domain_ref *a = pa, *b = pb;
    unsigned ida = (unsigned)a->id, idb = (unsigned)b->id;
    const unsigned inactive = (unsigned)-1;

    if (ida == inactive && idb == inactive)
        return cli_name_cmp(a->name, b->name);
    if (ida != inactive && idb != inactive && ida != idb)
        return ida > idb ? 1 : -1;
    return ida != inactive ? -1 : 1;
}

/* Adds a domain's row; a domain whose state cannot be read (it went away
 * meanwhile) is left out, as virsh does. */
static int list_row(cli_ctx *ctx, cli_table *t, lvrpc_domain_ref *d)
{
    lvrpc_domain_get_state_args a = {*d, 0};
    lvrpc_domain_get_state_ret *st = NULL;
    char id[16];
    int rc;

    if (lvrpc_domain_get_state(ctx->client, &a, &st) != LVRPC_OK)
        return 0;
    if (d->id == -1)
        snprintf(id, sizeof(id), "-");
    else
        snprintf(id, sizeof(id), "%d", d->id);
    const char *cells[] = {id, d->name, cli_domain_state_name(st->state)};
    rc = cli_table_add(t, cells);
    lvrpc_reply_free(st);
    return rc < 0 ? cli_fail(ctx, "out of memory") : 0;
}

static int list_print(cli_ctx *ctx, lvrpc_connect_list_all_domains_ret *r)
{
    static const char *const header[] = {"Id", "Name", "State"};
    cli_table *t = cli_table_new(3, header);
    int rc = 0;

    if (!t)
        return cli_fail(ctx, "out of memory");
    cli_sort(r->domains.domains_val, r->domains.domains_len, sizeof(lvrpc_domain_ref),
          domain_order);
    for (u_int i = 0; rc == 0 && i < r->domains.domains_len; i++)
        rc = list_row(ctx, t, &r->domains.domains_val[i]);
    if (rc == 0 && cli_table_print(t, stdout) < 0)
        rc = cli_fail(ctx, "out of memory");
    cli_table_free(t);
    return rc;
}

int cli_cmd_list(cli_ctx *ctx, int argc, char **argv)
{
    const char *all = NULL, *inactive = NULL;
    const cli_opt opts[] = {{"all", 0, CLI_FLAG, &all},
                            {"inactive", 0, CLI_FLAG, &inactive},
                            {NULL, 0, 0, NULL}};
    lvrpc_connect_list_all_domains_args a = {1, LIST_ACTIVE};
    lvrpc_connect_list_all_domains_ret *r = NULL;
    int rc;

    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 || cli_connect(ctx) < 0)
        return -1;
    if (inactive)
        a.flags = LIST_INACTIVE;
    if (all)
        a.flags = LIST_ACTIVE | LIST_INACTIVE;
    if (lvrpc_connect_list_all_domains(ctx->client, &a, &r) != LVRPC_OK)
        return cli_fail_lvrpc(ctx);
    rc = list_print(ctx, r);
    lvrpc_reply_free(r);
    return rc;
}

/* ------------------------------------------------------------ dominfo */

#define ROW "%-15s %s\n"

static void info_head(cli_ctx *ctx, lvrpc_domain_ref *d)
{
    lvrpc_domain_get_os_type_args a = {*d};
    lvrpc_domain_get_os_type_ret *os = NULL;
    char uuid[37];

    if (d->id == -1)
        printf(ROW, "Id:", "-");
    else
        printf("%-15s %d\n", "Id:", d->id);
    printf(ROW, "Name:", d->name);
    cli_uuid_format(d->uuid, uuid);
    printf(ROW, "UUID:", uuid);
    if (lvrpc_domain_get_os_type(ctx->client, &a, &os) == LVRPC_OK)
        printf(ROW, "OS Type:", os->type);
    lvrpc_reply_free(os);
}

/* State, CPUs, CPU time and memory; a failure is reported once the rest
 * has been printed, as virsh does. */
static int info_state(cli_ctx *ctx, lvrpc_domain_ref *d)
{
    lvrpc_domain_get_info_args a = {*d};
    lvrpc_domain_get_info_ret *in = NULL;

    if (lvrpc_domain_get_info(ctx->client, &a, &in) != LVRPC_OK)
        return cli_fail_lvrpc(ctx);
    printf(ROW, "State:", cli_domain_state_name(in->state));
    printf("%-15s %d\n", "CPU(s):", in->nrVirtCpu);
    if (in->cpuTime != 0)
        printf("%-15s %.1lfs\n", "CPU time:", (double)in->cpuTime / 1000000000.0);
    if (in->maxMem != UINT_MAX)
        printf("%-15s %" PRIu64 " KiB\n", "Max memory:", (uint64_t)in->maxMem);
    else
        printf(ROW, "Max memory:", "no limit");
    printf("%-15s %" PRIu64 " KiB\n", "Used memory:", (uint64_t)in->memory);
    lvrpc_reply_free(in);
    return 0;
}

static void info_flags(cli_ctx *ctx, lvrpc_domain_ref *d)
{
    lvrpc_domain_is_persistent_args pa = {*d};
    lvrpc_domain_is_persistent_ret *p = NULL;
    lvrpc_domain_get_autostart_args aa = {*d};
    lvrpc_domain_get_autostart_ret *as = NULL;
    lvrpc_domain_has_managed_save_image_args ma = {*d, 0};
    lvrpc_domain_has_managed_save_image_ret *ms = NULL;

    if (lvrpc_domain_is_persistent(ctx->client, &pa, &p) == LVRPC_OK)
        printf(ROW, "Persistent:", p->persistent ? "yes" : "no");
    else
        printf(ROW, "Persistent:", "unknown");
    if (lvrpc_domain_get_autostart(ctx->client, &aa, &as) == LVRPC_OK)
        printf(ROW, "Autostart:", as->autostart ? "enable" : "disable");
    if (lvrpc_domain_has_managed_save_image(ctx->client, &ma, &ms) == LVRPC_OK)
        printf(ROW, "Managed save:", ms->result ? "yes" : "no");
    else
        printf(ROW, "Managed save:", "unknown");
    lvrpc_reply_free(p);
    lvrpc_reply_free(as);
    lvrpc_reply_free(ms);
}

static int info_label(cli_ctx *ctx, lvrpc_domain_ref *d)
{
    lvrpc_domain_get_security_label_args a = {*d};
    lvrpc_domain_get_security_label_ret *l = NULL;
    char label[LVRPC_SECURITY_LABEL_MAX];

    if (lvrpc_domain_get_security_label(ctx->client, &a, &l) != LVRPC_OK)
        return cli_fail_lvrpc(ctx);
    cli_bytes_str(label, sizeof(label), l->label.label_val, l->label.label_len);
    if (label[0])
        printf("%-15s %s (%s)\n", "Security label:", label,
               l->enforcing ? "enforcing" : "permissive");
    lvrpc_reply_free(l);
    return 0;
}

/* Security model, DOI and label, shown only when the host has a model. */
static int info_security(cli_ctx *ctx, lvrpc_domain_ref *d)
{
    lvrpc_node_get_security_model_ret *m = NULL;
    char model[LVRPC_SECURITY_MODEL_MAX], doi[LVRPC_SECURITY_DOI_MAX];
    lvrpc_error e;

    if (lvrpc_node_get_security_model(ctx->client, &m) != LVRPC_OK) {
        lvrpc_last_error(&e);
        if (e.code == LVRPC_EREMOTE && e.remote_code == CLI_VIR_ERR_NO_SUPPORT)
            return 0;
        return cli_fail_lvrpc(ctx);
    }
    cli_bytes_str(model, sizeof(model), m->model.model_val, m->model.model_len);
    cli_bytes_str(doi, sizeof(doi), m->doi.doi_val, m->doi.doi_len);
    lvrpc_reply_free(m);
    if (!model[0])
        return 0;
    printf(ROW, "Security model:", model);
    printf(ROW, "Security DOI:", doi);
    return info_label(ctx, d);
}

int cli_cmd_dominfo(cli_ctx *ctx, int argc, char **argv)
{
    const char *name = NULL;
    const cli_opt opts[] = {{"domain", 0, CLI_POSITIONAL, &name}, {NULL, 0, 0, NULL}};
    cli_domain d;
    int rc;

    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 || cli_connect(ctx) < 0)
        return -1;
    if (cli_domain_get(ctx, name, CLI_BYID | CLI_BYUUID | CLI_BYNAME, &d) < 0)
        return -1;
    info_head(ctx, d.dom);
    rc = info_state(ctx, d.dom);
    info_flags(ctx, d.dom);
    if (info_security(ctx, d.dom) < 0)
        rc = -1;
    cli_domain_clear(&d);
    return rc;
}
