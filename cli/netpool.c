/* netpool.c - net-list, pool-list and vol-list, laid out as virsh does.
 *
 * Where virsh shows a fallback text for a query that failed ("no autostart",
 * "unknown") or reads a failed yes/no query as "yes", so does this. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* VIR_CONNECT_LIST_NETWORKS_* and VIR_CONNECT_LIST_STORAGE_POOLS_* */
#define LIST_INACTIVE 1u
#define LIST_ACTIVE 2u

static unsigned list_flags(const char *all, const char *inactive)
{
    if (all)
        return LIST_ACTIVE | LIST_INACTIVE;
    return inactive ? LIST_INACTIVE : LIST_ACTIVE;
}

/* Prints and frees t; returns 0 or -1. */
static int table_done(cli_ctx *ctx, cli_table *t, int rc)
{
    if (rc == 0 && cli_table_print(t, stdout) < 0)
        rc = cli_fail(ctx, "out of memory");
    cli_table_free(t);
    return rc;
}

/* ------------------------------------------------------------ net-list */

static int net_order(const void *a, const void *b)
{
    return cli_name_cmp(((const lvrpc_network_ref *)a)->name,
                        ((const lvrpc_network_ref *)b)->name);
}

static int net_row(cli_ctx *ctx, cli_table *t, lvrpc_network_ref *n)
{
    lvrpc_network_get_autostart_args aa = {*n};
    lvrpc_network_get_autostart_ret *as = NULL;
    lvrpc_network_is_active_args ia = {*n};
    lvrpc_network_is_active_ret *act = NULL;
    lvrpc_network_is_persistent_args pa = {*n};
    lvrpc_network_is_persistent_ret *per = NULL;
    const char *autostart = "no autostart";
    int rc;

    if (lvrpc_network_get_autostart(ctx->client, &aa, &as) == LVRPC_OK)
        autostart = as->autostart ? "yes" : "no";
    lvrpc_network_is_active(ctx->client, &ia, &act);
    lvrpc_network_is_persistent(ctx->client, &pa, &per);
    const char *cells[] = {n->name, !act || act->active ? "active" : "inactive", autostart,
                           !per || per->persistent ? "yes" : "no"};
    rc = cli_table_add(t, cells);
    lvrpc_reply_free(as);
    lvrpc_reply_free(act);
    lvrpc_reply_free(per);
    return rc < 0 ? cli_fail(ctx, "out of memory") : 0;
}

int cli_cmd_net_list(cli_ctx *ctx, int argc, char **argv)
{
    static const char *const header[] = {"Name", "State", "Autostart", "Persistent"};
    const char *all = NULL, *inactive = NULL;
    const cli_opt opts[] = {{"all", 0, CLI_FLAG, &all},
                            {"inactive", 0, CLI_FLAG, &inactive},
                            {NULL, 0, 0, NULL}};
    lvrpc_connect_list_all_networks_args a = {1, 0};
    lvrpc_connect_list_all_networks_ret *r = NULL;
    cli_table *t;
    int rc = 0;

    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 || cli_connect(ctx) < 0)
        return -1;
    a.flags = list_flags(all, inactive);
    if (lvrpc_connect_list_all_networks(ctx->client, &a, &r) != LVRPC_OK)
        return cli_fail_lvrpc(ctx);
    if (!(t = cli_table_new(4, header))) {
        lvrpc_reply_free(r);
        return cli_fail(ctx, "out of memory");
    }
    cli_sort(r->nets.nets_val, r->nets.nets_len, sizeof(lvrpc_network_ref), net_order);
    for (u_int i = 0; rc == 0 && i < r->nets.nets_len; i++)
        rc = net_row(ctx, t, &r->nets.nets_val[i]);
    lvrpc_reply_free(r);
    return table_done(ctx, t, rc);
}

/* ------------------------------------------------------------ pool-list */

static int pool_order(const void *a, const void *b)
{
    return cli_name_cmp(((const lvrpc_pool_ref *)a)->name, ((const lvrpc_pool_ref *)b)->name);
}

/* "active"/"inactive", or "unknown" when the pool's info cannot be read. */
static const char *pool_state(cli_ctx *ctx, lvrpc_pool_ref *p)
{
    lvrpc_storage_pool_get_info_args ga = {*p};
    lvrpc_storage_pool_get_info_ret *info = NULL;
    lvrpc_storage_pool_is_active_args ia = {*p};
    lvrpc_storage_pool_is_active_ret *act = NULL;
    const char *state;

    if (lvrpc_storage_pool_get_info(ctx->client, &ga, &info) != LVRPC_OK)
        return "unknown";
    lvrpc_reply_free(info);
    lvrpc_storage_pool_is_active(ctx->client, &ia, &act);
    state = !act || act->active ? "active" : "inactive";
    lvrpc_reply_free(act);
    return state;
}

static int pool_row(cli_ctx *ctx, cli_table *t, lvrpc_pool_ref *p)
{
    lvrpc_storage_pool_get_autostart_args aa = {*p};
    lvrpc_storage_pool_get_autostart_ret *as = NULL;
    const char *autostart = "no autostart";
    int rc;

    if (lvrpc_storage_pool_get_autostart(ctx->client, &aa, &as) == LVRPC_OK)
        autostart = as->autostart ? "yes" : "no";
    const char *cells[] = {p->name, pool_state(ctx, p), autostart};
    rc = cli_table_add(t, cells);
    lvrpc_reply_free(as);
    return rc < 0 ? cli_fail(ctx, "out of memory") : 0;
}

int cli_cmd_pool_list(cli_ctx *ctx, int argc, char **argv)
{
    static const char *const header[] = {"Name", "State", "Autostart"};
    const char *all = NULL, *inactive = NULL;
    const cli_opt opts[] = {{"all", 0, CLI_FLAG, &all},
                            {"inactive", 0, CLI_FLAG, &inactive},
                            {NULL, 0, 0, NULL}};
    lvrpc_connect_list_all_storage_pools_args a = {1, 0};
    lvrpc_connect_list_all_storage_pools_ret *r = NULL;
    cli_table *t;
    int rc = 0;

    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 || cli_connect(ctx) < 0)
        return -1;
    a.flags = list_flags(all, inactive);
    if (lvrpc_connect_list_all_storage_pools(ctx->client, &a, &r) != LVRPC_OK)
        return cli_fail_lvrpc(ctx);
    if (!(t = cli_table_new(3, header))) {
        lvrpc_reply_free(r);
        return cli_fail(ctx, "out of memory");
    }
    cli_sort(r->pools.pools_val, r->pools.pools_len, sizeof(lvrpc_pool_ref), pool_order);
    for (u_int i = 0; rc == 0 && i < r->pools.pools_len; i++)
        rc = pool_row(ctx, t, &r->pools.pools_val[i]);
    lvrpc_reply_free(r);
    return table_done(ctx, t, rc);
}

/* ------------------------------------------------------------ vol-list */

/* Finds a pool by UUID (when the argument looks like one), then by name.
 * On success *out is a reply holding the pool at its start. */
static int pool_get(cli_ctx *ctx, const char *arg, lvrpc_pool_ref **out, void **reply)
{
    lvrpc_storage_pool_lookup_by_uuid_args ua;
    lvrpc_storage_pool_lookup_by_uuid_ret *ur = NULL;
    lvrpc_storage_pool_lookup_by_name_args na = {(char *)arg};
    lvrpc_storage_pool_lookup_by_name_ret *nr = NULL;

    if (strlen(arg) == 36 && cli_uuid_parse(arg, ua.uuid) == 0 &&
        lvrpc_storage_pool_lookup_by_uuid(ctx->client, &ua, &ur) == LVRPC_OK) {
        *out = &ur->pool;
        *reply = ur;
        return 0;
    }
    if (lvrpc_storage_pool_lookup_by_name(ctx->client, &na, &nr) != LVRPC_OK) {
        cli_fail_lvrpc(ctx);
        return -1;
    }
    *out = &nr->pool;
    *reply = nr;
    return 0;
}

static int vol_order(const void *a, const void *b)
{
    return cli_name_cmp(((const lvrpc_vol_ref *)a)->name, ((const lvrpc_vol_ref *)b)->name);
}

static int vol_row(cli_ctx *ctx, cli_table *t, lvrpc_vol_ref *v)
{
    lvrpc_storage_vol_get_path_args a = {*v};
    lvrpc_storage_vol_get_path_ret *p = NULL;
    int rc;

    lvrpc_storage_vol_get_path(ctx->client, &a, &p);
    const char *cells[] = {v->name, p ? p->name : "unknown"};
    rc = cli_table_add(t, cells);
    lvrpc_reply_free(p);
    return rc < 0 ? cli_fail(ctx, "out of memory") : 0;
}

static int vol_print(cli_ctx *ctx, lvrpc_storage_pool_list_all_volumes_ret *r)
{
    static const char *const header[] = {"Name", "Path"};
    cli_table *t = cli_table_new(2, header);
    int rc = 0;

    if (!t)
        return cli_fail(ctx, "out of memory");
    cli_sort(r->vols.vols_val, r->vols.vols_len, sizeof(lvrpc_vol_ref), vol_order);
    for (u_int i = 0; rc == 0 && i < r->vols.vols_len; i++)
        rc = vol_row(ctx, t, &r->vols.vols_val[i]);
    return table_done(ctx, t, rc);
}

int cli_cmd_vol_list(cli_ctx *ctx, int argc, char **argv)
{
    const char *name = NULL;
    const cli_opt opts[] = {{"pool", 0, CLI_POSITIONAL, &name}, {NULL, 0, 0, NULL}};
    lvrpc_storage_pool_list_all_volumes_ret *r = NULL;
    lvrpc_pool_ref *pool = NULL;
    void *pool_reply = NULL;
    int rc;

    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0 || cli_connect(ctx) < 0)
        return -1;
    if (pool_get(ctx, name, &pool, &pool_reply) < 0)
        return -1;
    lvrpc_storage_pool_list_all_volumes_args a = {*pool, 1, 0};
    if (lvrpc_storage_pool_list_all_volumes(ctx->client, &a, &r) == LVRPC_OK)
        rc = vol_print(ctx, r);
    else
        rc = cli_fail_lvrpc(ctx);
    lvrpc_reply_free(r);
    lvrpc_reply_free(pool_reply);
    return rc;
}
