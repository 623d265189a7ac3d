/* lvrpc_event.h - events (domain, network, storage pool, node device,
 * secret) and the connection-state callback.  Included by lvrpc.h.
 *
 * Threads: callbacks run on the handle's dispatch thread, one per handle,
 * started by the first registration: never on a reader thread, never with a
 * library lock held, one at a time, in the order the events arrived.  A
 * callback may call the library, including lvrpc_event_deregister() of its
 * own registration; it must not call lvrpc_close() on its own handle.
 *
 * Connections: in Shared mode events arrive on the handle's first pooled
 * connection.  In Direct mode the first registration opens one extra
 * connection with its own reader thread (with keepalive), used for events
 * only.  When that connection is lost and re-established, every live
 * registration is registered again by the library and delivery resumes;
 * the connection-state callback is told of both moments.  Events that
 * happened while the connection was down are lost (the daemon does not
 * keep them).
 *
 * Bounds: at most LVRPC_EVENT_QUEUE_MAX events wait for the dispatch thread;
 * beyond that new events are dropped and counted (lvrpc_event_stats).
 */
#ifndef LVRPC_EVENT_H
#define LVRPC_EVENT_H

#ifdef __cplusplus
extern "C" {
#endif

#define LVRPC_EVENT_QUEUE_MAX 65536u

typedef enum lvrpc_event_family {
    LVRPC_EVENT_DOMAIN = 0,       /* event_id: VIR_DOMAIN_EVENT_ID_* (0..27) */
    LVRPC_EVENT_NETWORK = 1,      /* VIR_NETWORK_EVENT_ID_* */
    LVRPC_EVENT_STORAGE_POOL = 2, /* VIR_STORAGE_POOL_EVENT_ID_* */
    LVRPC_EVENT_NODE_DEVICE = 3,  /* VIR_NODE_DEVICE_EVENT_ID_* */
    LVRPC_EVENT_SECRET = 4        /* VIR_SECRET_EVENT_ID_* */
} lvrpc_event_family;

/* One delivered event. */
typedef struct lvrpc_event {
    lvrpc_event_family family;
    int event_id;      /* as registered */
    int registration;  /* the id lvrpc_event_register() gave */
    int proc;          /* the message's procedure, e.g.
                        * LVRPC_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE */
    const char *name;  /* its name, e.g. "DOMAIN_EVENT_CALLBACK_LIFECYCLE" */
    const void *msg;   /* the decoded message, an lvrpc_<name>_msg (e.g.
                        * lvrpc_domain_event_callback_lifecycle_msg, whose
                        * msg.dom names the domain); owned by the library,
                        * valid until the callback returns */
} lvrpc_event;

typedef void (*lvrpc_event_cb)(lvrpc_client *c, const lvrpc_event *ev, void *opaque);
/* Frees a registration's opaque once no callback can run any more. */
typedef void (*lvrpc_free_cb)(void *opaque);

/* Registers cb for events of one kind.  object (optional, NULL = all):
 * const lvrpc_domain_ref *, lvrpc_network_ref *, lvrpc_pool_ref *, or the
 * node device / secret reference type, by family; it is copied.  On success
 * *id is the registration's id (> 0).  free_opaque (may be NULL) is called
 * with opaque after deregistration or when the handle is closed. */
LVRPC_API int lvrpc_event_register(lvrpc_client *c, lvrpc_event_family family, int event_id,
                                   const void *object, lvrpc_event_cb cb, void *opaque,
                                   lvrpc_free_cb free_opaque, int *id);

/* Ends a registration: no callback for it starts after this returns (one
 * already running on the dispatch thread finishes). */
LVRPC_API int lvrpc_event_deregister(lvrpc_client *c, int id);

typedef enum lvrpc_conn_state {
    LVRPC_CONN_CLOSED = 0,      /* the event connection was lost; *why says why */
    LVRPC_CONN_RECONNECTED = 1  /* it is back and the registrations are live again */
} lvrpc_conn_state;

/* Runs on the dispatch thread, like event callbacks. */
typedef void (*lvrpc_conn_cb)(lvrpc_client *c, lvrpc_conn_state state, const lvrpc_error *why,
                              void *opaque);

/* Sets (or with NULL clears) the connection-state callback.  Starts the
 * dispatch thread if needed. */
LVRPC_API int lvrpc_set_connection_callback(lvrpc_client *c, lvrpc_conn_cb cb, void *opaque);

typedef struct lvrpc_event_stats {
    uint64_t delivered;  /* callbacks run */
    uint64_t dropped;    /* queue full, or no registration matched */
    uint64_t reregistered; /* registrations renewed after reconnections */
} lvrpc_event_stats;
LVRPC_API void lvrpc_event_stats_get(lvrpc_client *c, lvrpc_event_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* LVRPC_EVENT_H */
