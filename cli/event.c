/* event.c - `lvrpc event`: domain events, printed as virsh's `event` does.
 *
 *   lvrpc event [--all | --event NAME] [--loop] [--timeout SECONDS] [--timestamp]
 *
 * Without --loop the command ends after the first event; with --timeout it
 * ends after that many seconds ("event loop timed out").  Like virsh it then
 * prints "events received: N" and a blank line.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"

/* virsh's names of the domain event ids, in id order. */
static const char *const event_names[] = {
    "lifecycle", "reboot", "rtc-change", "watchdog", "io-error", "graphics",
    "io-error-reason", "control-error", "block-job", "disk-change", "tray-change",
    "pm-wakeup", "pm-suspend", "balloon-change", "pm-suspend-disk", "device-removed",
    "block-job-2", "tunable", "agent-lifecycle", "device-added", "migration-iteration",
    "job-completed", "device-removal-failed", "metadata-change", "block-threshold",
    "memory-failure", "memory-device-size-change",
};
#define NEVENTS (sizeof(event_names) / sizeof(event_names[0]))

/* Lifecycle event types and their details, as virsh words them. */
static const char *const lifecycle_types[] = {
    "Defined", "Undefined", "Started", "Suspended", "Resumed", "Stopped", "Shutdown",
    "PMSuspended", "Crashed",
};
static const char *const lifecycle_details[][9] = {
    {"Added", "Updated", "Renamed", "Snapshot"},
    {"Removed", "Renamed"},
    {"Booted", "Migrated", "Restored", "Snapshot", "Event wakeup", "Recreated"},
    {"Paused", "Migrated", "I/O Error", "Watchdog", "Restored", "Snapshot", "API error",
     "Post-copy", "Post-copy Error"},
    {"Unpaused", "Migrated", "Snapshot", "Post-copy", "Post-copy Error"},
    {"Shutdown", "Destroyed", "Crashed", "Migrated", "Saved", "Failed", "Snapshot",
     "Recreated"},
    {"Finished", "Finished after guest request", "Finished after host request"},
    {"Memory", "Disk"},
    {"Core Dump"},
};

typedef struct event_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned count;
    int loop;
    int timestamp;
} event_state;

static const char *lifecycle_word(int type, int detail, int want_detail)
{
    if (type < 0 || (size_t)type >= sizeof(lifecycle_types) / sizeof(lifecycle_types[0]))
        return "unknown";
    if (!want_detail)
        return lifecycle_types[type];
    if (detail < 0 || detail >= 9 || !lifecycle_details[type][detail])
        return "unknown";
    return lifecycle_details[type][detail];
}

static void print_prefix(const event_state *st)
{
    if (st->timestamp) {
        char buf[64];
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
        printf("%s.%03ld%s: ", buf, ts.tv_nsec / 1000000, "+0000");
    }
}

/* The callback-style domain messages all begin {int callbackID; dom; ...}
 * except lifecycle, whose domain sits inside msg. */
static void on_event(lvrpc_client *c, const lvrpc_event *ev, void *opaque)
{
    event_state *st = opaque;
    const char *name = (size_t)ev->event_id < NEVENTS ? event_names[ev->event_id] : "unknown";

    (void)c;
    pthread_mutex_lock(&st->lock);
    print_prefix(st);
    if (ev->proc == LVRPC_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE) {
        const lvrpc_domain_event_callback_lifecycle_msg *m = ev->msg;
        printf("event 'lifecycle' for domain '%s': %s %s\n", m->msg.dom.name,
               lifecycle_word(m->msg.event, 0, 0),
               lifecycle_word(m->msg.event, m->msg.detail, 1));
    } else {
        const struct { int callbackID; lvrpc_domain_ref dom; } *m = ev->msg;
        printf("event '%s' for domain '%s'\n", name, m->dom.name);
    }
    fflush(stdout);
    st->count++;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

static int parse_event_name(cli_ctx *ctx, const char *s, int *id)
{
    for (size_t i = 0; i < NEVENTS; i++)
        if (strcmp(event_names[i], s) == 0) {
            *id = (int)i;
            return 0;
        }
    return cli_fail(ctx, "unknown event type: '%s'", s);
}

/* Waits for the first event (or forever with --loop), until the timeout. */
static void wait_events(event_state *st, double timeout)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (timeout > 0) {
        ts.tv_sec += (time_t)timeout;
        ts.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&st->lock);
    while (st->loop || st->count == 0) {
        int rc = timeout > 0 ? pthread_cond_timedwait(&st->cond, &st->lock, &ts)
                             : pthread_cond_wait(&st->cond, &st->lock);
        if (rc != 0) {
            printf("event loop timed out\n");
            break;
        }
    }
    pthread_mutex_unlock(&st->lock);
}

int cli_cmd_event(cli_ctx *ctx, int argc, char **argv)
{
    const char *all = NULL, *event = NULL, *loop = NULL, *timeout_s = NULL, *stamp = NULL;
    const cli_opt opts[] = {{"all", 0, CLI_FLAG, &all},
                            {"event", 0, CLI_VALUE, &event},
                            {"loop", 0, CLI_FLAG, &loop},
                            {"timeout", 0, CLI_VALUE, &timeout_s},
                            {"timestamp", 0, CLI_FLAG, &stamp},
                            {NULL, 0, 0, NULL}};
    event_state st;
    double timeout = 0;
    int id = 0, first = 0, last = 0;

    if (cli_parse(ctx, argc - 1, argv + 1, opts, 0) < 0)
        return -1;
    if (!all && !event)
        return cli_fail(ctx, "either --all or --event NAME is required");
    if (all && event)
        return cli_fail(ctx, "--all and --event are mutually exclusive");
    if (event && parse_event_name(ctx, event, &first) < 0)
        return -1;
    if (timeout_s) {
        char *end;
        timeout = strtod(timeout_s, &end);
        if (end == timeout_s || *end || !(timeout > 0))
            return cli_fail(ctx, "--timeout must be a number of seconds above 0");
    }
    last = all ? (int)NEVENTS - 1 : first;
    if (cli_connect(ctx) < 0)
        return -1;
    memset(&st, 0, sizeof(st));
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.cond, NULL);
    st.loop = loop != NULL;
    st.timestamp = stamp != NULL;
    for (int e = first; e <= last; e++) {
        if (lvrpc_event_register(ctx->client, LVRPC_EVENT_DOMAIN, e, NULL, on_event, &st, NULL,
                                 &id) != LVRPC_OK) {
            /* an older daemon lacks the newest events: with --all skip them */
            if (all && lvrpc_last_error(NULL) == LVRPC_EREMOTE)
                continue;
            return cli_fail_lvrpc(ctx);
        }
    }
    wait_events(&st, timeout);
    /* Closing the handle (by the caller) stops delivery before st goes. */
    lvrpc_close(ctx->client);
    ctx->client = NULL;
    printf("events received: %u\n", st.count);
    pthread_cond_destroy(&st.cond);
    pthread_mutex_destroy(&st.lock);
    return 0;
}
