/* cmd_host.c - commands about the connection: version, hostname, uri. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"

/* Checks that no arguments follow, then connects. */
static int no_args(cli_ctx *ctx, int argc, char **argv)
{
    const cli_opt opts[] = {{NULL, 0, 0, NULL}};

    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0)
        return -1;
    return cli_connect(ctx);
}

/* Prints a version encoded as major * 1000000 + minor * 1000 + micro. */
static void print_libvirt_version(uint64_t v)
{
    printf("%" PRIu64 ".%" PRIu64 ".%" PRIu64, v / 1000000, v / 1000 % 1000, v % 1000);
}

/* Prints the two lines about lvrpc itself (LVRPC_VERSION is
 * major * 10000 + minor * 100 + micro). */
static void print_own_version(void)
{
    unsigned v = LVRPC_VERSION;

    printf("Compiled against library: lvrpc %u.%u.%u\n", v / 10000, v / 100 % 100, v % 100);
    /* The library has no run-time version query yet, so this is the
     * version of the header the tool was built with. */
    printf("Using library: lvrpc %u.%u.%u\n", v / 10000, v / 100 % 100, v % 100);
}

static void print_daemon_versions(const char *type, uint64_t lib_ver, uint64_t hv_ver)
{
    printf("Using API: %s ", type);
    print_libvirt_version(lib_ver);
    printf("\n");
    if (hv_ver == 0) {
        printf("Cannot extract running %s hypervisor version\n", type);
        return;
    }
    printf("Running hypervisor: %s ", type);
    print_libvirt_version(hv_ver);
    printf("\n");
}

int cli_cmd_version(cli_ctx *ctx, int argc, char **argv)
{
    lvrpc_connect_get_type_ret *type = NULL;
    lvrpc_connect_get_lib_version_ret *lib = NULL;
    lvrpc_connect_get_version_ret *hv = NULL;
    int rc = -1;

    if (no_args(ctx, argc, argv) < 0)
        return -1;
    if (lvrpc_connect_get_type(ctx->client, &type) != LVRPC_OK ||
        lvrpc_connect_get_lib_version(ctx->client, &lib) != LVRPC_OK ||
        lvrpc_connect_get_version(ctx->client, &hv) != LVRPC_OK) {
        cli_fail_lvrpc(ctx);
        goto out;
    }
    print_own_version();
    print_daemon_versions(type->type, lib->lib_ver, hv->hv_ver);
    rc = 0;
out:
    lvrpc_reply_free(type);
    lvrpc_reply_free(lib);
    lvrpc_reply_free(hv);
    return rc;
}

int cli_cmd_hostname(cli_ctx *ctx, int argc, char **argv)
{
    lvrpc_connect_get_hostname_ret *ret = NULL;

    if (no_args(ctx, argc, argv) < 0)
        return -1;
    if (lvrpc_connect_get_hostname(ctx->client, &ret) != LVRPC_OK)
        return cli_fail_lvrpc(ctx);
    printf("%s\n", ret->hostname);
    lvrpc_reply_free(ret);
    return 0;
}

int cli_cmd_uri(cli_ctx *ctx, int argc, char **argv)
{
    lvrpc_connect_get_uri_ret *ret = NULL;

    if (no_args(ctx, argc, argv) < 0)
        return -1;
    if (lvrpc_connect_get_uri(ctx->client, &ret) != LVRPC_OK)
        return cli_fail_lvrpc(ctx);
    printf("%s\n", ret->uri);
    lvrpc_reply_free(ret);
    return 0;
}
