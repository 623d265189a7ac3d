/* shared.c - Shared mode (placeholder until the pool engine lands). */
#include "config.h"

#include "lvrpc_internal.h"

static int shared_start(lvrpc_client *c, void **engine)
{
    (void)c;
    *engine = NULL;
    return lvrpci_fail(LVRPC_ENOTSUP, 0, "Shared mode is not available in this build");
}

static int shared_call(void *e, lvrpci_call *call, int64_t deadline)
{
    (void)e; (void)call; (void)deadline;
    return lvrpci_fail(LVRPC_ENOTSUP, 0, "Shared mode is not available in this build");
}

static void shared_stop(void *e) { (void)e; }
static void shared_stats(void *e, lvrpc_stats *o) { (void)e; (void)o; }

const lvrpci_engine_ops lvrpci_shared_engine = {
    "shared", shared_start, shared_call, shared_stop, shared_stats,
};
