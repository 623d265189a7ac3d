/* lvrpc.c - the lvrpc command-line tool: a small virsh work-alike that
 * talks to libvirtd through liblvrpc.
 *
 *   lvrpc [-c URI] [--mode direct|shared] [--pool K] [--inflight N] [--timeout SECONDS]
 *         COMMAND [ARGS]
 *
 * Output follows virsh byte for byte (each virsh-style command's output ends
 * with the blank line virsh prints after a command).  On failure the tool
 * prints one line, "lvrpc: error: <message>", on stderr and exits with 1.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct cli_command {
    const char *name;
    cli_cmd_fn fn;
    int blank_line; /* end the output with virsh's blank line */
    const char *usage;
} cli_command;

static const cli_command commands[] = {
    {"version", cli_cmd_version, 1, "versions of lvrpc, the daemon and the hypervisor"},
    {"hostname", cli_cmd_hostname, 1, "the daemon's host name"},
    {"uri", cli_cmd_uri, 1, "the URI the daemon opened"},
    {"list", cli_cmd_list, 1, "[--all | --inactive]  list domains"},
    {"dominfo", cli_cmd_dominfo, 1, "DOMAIN  domain information"},
    {"dumpxml", cli_cmd_dumpxml, 1, "DOMAIN  domain XML"},
    {"define", cli_cmd_define, 1, "FILE  define a domain from an XML file"},
    {"undefine", cli_cmd_undefine, 1, "DOMAIN  undefine a domain"},
    {"start", cli_cmd_start, 1, "DOMAIN  start an inactive domain"},
    {"destroy", cli_cmd_destroy, 1, "DOMAIN  stop a domain at once"},
    {"suspend", cli_cmd_suspend, 1, "DOMAIN  pause a domain"},
    {"resume", cli_cmd_resume, 1, "DOMAIN  resume a paused domain"},
    {"shutdown", cli_cmd_shutdown, 1, "DOMAIN  ask a domain to shut down"},
    {"reboot", cli_cmd_reboot, 1, "DOMAIN  ask a domain to reboot"},
    {"net-list", cli_cmd_net_list, 1, "[--all | --inactive]  list networks"},
    {"pool-list", cli_cmd_pool_list, 1, "[--all | --inactive]  list storage pools"},
    {"vol-list", cli_cmd_vol_list, 1, "POOL  list the volumes of a pool"},
    {"vol-upload", cli_cmd_vol_upload, 1,
     "POOL VOL FILE [--sparse] [--offset N] [--length N]\n"
     "                upload a file into a volume (progress bar on a terminal)"},
    {"vol-download", cli_cmd_vol_download, 1,
     "POOL VOL FILE [--sparse] [--offset N] [--length N]\n"
     "                download a volume into a file (progress bar on a terminal)"},
    {"screenshot", cli_cmd_screenshot, 0, "DOMAIN FILE [--screen N]  save a screenshot"},
    {"console", cli_cmd_console, 0,
     "DOMAIN [--devname NAME] [--force] [--safe]\n"
     "                the domain's console on stdin/stdout (^] quits)"},
    {"event", cli_cmd_event, 1,
     "[--all | --event NAME] [--loop] [--timeout SECONDS] [--timestamp]\n"
     "                domain events, as virsh prints them"},
    {"bench", cli_cmd_bench, 0,
     "[--threads N] [--seconds S | --calls M] [--call libversion|lookup|listall]\n"
     "                [--domain NAME]  measure calls per second and latency"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(void)
{
    printf("usage: lvrpc [-c URI] [--mode direct|shared] [--pool K] [--inflight N] [--timeout SECONDS]\n"
           "             COMMAND [ARGS]\n"
           "\n"
           "options:\n"
           "  -c, --connect URI    daemon to talk to (default: $LIBVIRT_DEFAULT_URI)\n"
           "  --mode direct|shared how calls reach the daemon (default: direct)\n"
           "  --pool K             connections in shared mode (default: 1)\n"
           "  --inflight N         calls in flight per shared connection (default: 5,\n"
           "                       libvirtd's max_client_requests)\n"
           "  --timeout SECONDS    per-call timeout (default: 30)\n"
           "  -h, --help           this text\n"
           "  --version            the version of lvrpc\n"
           "\n"
           "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        printf("  %-13s %s\n", commands[i].name, commands[i].usage);
}

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* The global options, as given. */
typedef struct globals {
    const char *uri, *mode, *pool, *inflight, *timeout, *help, *version;
} globals;

static int set_timeout(cli_ctx *ctx, const char *s, lvrpc_options *o)
{
    char *end;
    double sec = strtod(s, &end);

    if (end == s || *end || !(sec > 0) || sec > 4000000.0)
        return cli_fail(ctx, "--timeout must be a number of seconds above 0, not '%s'", s);
    o->call_timeout_ms = (unsigned)(sec * 1000.0 + 0.5);
    if (o->call_timeout_ms == 0)
        o->call_timeout_ms = 1;
    return 0;
}

/* Turns the global options into lvrpc_options. */
static int make_options(cli_ctx *ctx, const globals *g, lvrpc_options *o)
{
    unsigned long pool, inflight;

    memset(o, 0, sizeof(*o));
    if (g->mode && strcmp(g->mode, "direct") == 0)
        o->mode = LVRPC_MODE_DIRECT;
    else if (g->mode && strcmp(g->mode, "shared") == 0)
        o->mode = LVRPC_MODE_SHARED;
    else if (g->mode)
        return cli_fail(ctx, "--mode must be 'direct' or 'shared', not '%s'", g->mode);
    if (g->pool) {
        if (cli_parse_uint(ctx, "--pool", g->pool, 1, 1024, &pool) < 0)
            return -1;
        o->pool_size = (unsigned)pool;
    }
    if (g->inflight) {
        if (cli_parse_uint(ctx, "--inflight", g->inflight, 1, 65536, &inflight) < 0)
            return -1;
        o->max_inflight = (unsigned)inflight;
    }
    if (g->timeout && set_timeout(ctx, g->timeout, o) < 0)
        return -1;
    return 0;
}

int cli_connect(cli_ctx *ctx)
{
    if (ctx->client)
        return 0;
    if (lvrpc_open(ctx->uri, &ctx->opts, &ctx->client) != LVRPC_OK)
        return cli_fail_lvrpc(ctx);
    return 0;
}

/* Runs the command, then closes the handle if it opened one. */
static int run(cli_ctx *ctx, const globals *g, const cli_command *cmd, int argc, char **argv)
{
    int rc;

    if (make_options(ctx, g, &ctx->opts) < 0)
        return -1;
    ctx->uri = g->uri;
    rc = cmd->fn(ctx, argc, argv);
    lvrpc_close(ctx->client);
    ctx->client = NULL;
    if (rc == 0 && cmd->blank_line)
        putchar('\n');
    return rc;
}

/* Parses the global options; returns the index of the command word, argc
 * when there is none, or -1. */
static int parse_globals(cli_ctx *ctx, int argc, char **argv, globals *g)
{
    const cli_opt opts[] = {{"connect", 'c', CLI_VALUE, &g->uri},
                            {"mode", 0, CLI_VALUE, &g->mode},
                            {"pool", 0, CLI_VALUE, &g->pool},
                            {"inflight", 0, CLI_VALUE, &g->inflight},
                            {"timeout", 0, CLI_VALUE, &g->timeout},
                            {"help", 'h', CLI_FLAG, &g->help},
                            {"version", 0, CLI_FLAG, &g->version},
                            {NULL, 0, 0, NULL}};
    int i = cli_parse(ctx, argc - 1, argv + 1, opts, 1);

    return i < 0 ? -1 : i + 1;
}

/* Reports a failure (one line) and returns the exit status. */
static int finish(cli_ctx *ctx, int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        rc = cli_fail(ctx, "cannot write the output");
    if (rc == 0)
        return 0;
    fprintf(stderr, "lvrpc: error: %s\n", ctx->msg[0] ? ctx->msg : "unknown failure");
    return 1;
}

int main(int argc, char **argv)
{
    cli_ctx ctx;
    globals g;
    const cli_command *cmd;
    int i;

    setlocale(LC_CTYPE, ""); /* table widths count characters, as in virsh */
    memset(&ctx, 0, sizeof(ctx));
    memset(&g, 0, sizeof(g));
    if ((i = parse_globals(&ctx, argc, argv, &g)) < 0)
        return finish(&ctx, -1);
    if (g.help) {
        usage();
        return finish(&ctx, 0);
    }
    if (g.version) {
        printf("lvrpc %d.%d.%d\n", LVRPC_VERSION / 10000, LVRPC_VERSION / 100 % 100,
               LVRPC_VERSION % 100);
        return finish(&ctx, 0);
    }
    if (i >= argc)
        return finish(&ctx, cli_fail(&ctx, "no command given (try 'lvrpc --help')"));
    if (!(cmd = find_command(argv[i])))
        return finish(&ctx, cli_fail(&ctx, "unknown command: '%s' (try 'lvrpc --help')",
                                     argv[i]));
    ctx.cmd = cmd->name;
    return finish(&ctx, run(&ctx, &g, cmd, argc - i, argv + i));
}
