/* test_events.c - events against a real libvirtd (test driver), both modes.
 *
 *   lifecycle   define, start, suspend, resume, destroy, undefine a domain:
 *               exactly these lifecycle events, in order, for that domain;
 *   filter      a registration for one domain sees none of another's;
 *   network     define, start, destroy, undefine a network;
 *   pool        define, start, destroy, undefine a storage pool;
 *   deregister  no delivery after deregistration, also from inside the
 *               callback;
 *   reconnect   the daemon restarted under a live registration: the state
 *               callback hears CLOSED then RECONNECTED and events flow again.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "lvrpc.h"

static lvrpct_daemon daemon_;
static lvrpc_mode mode_;

/* What a callback saw: (object name, event type) pairs, in order. */
typedef struct seen {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n;
    char names[64][48];
    int types[64];
    int deregister_self; /* the callback deregisters itself on its first event */
    int self_id;
    lvrpc_client *c;
    int states[8];
    int nstates;
} seen;

static void seen_init(seen *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
}

static void seen_add(seen *s, const char *name, int type)
{
    pthread_mutex_lock(&s->lock);
    if (s->n < 64) {
        snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
        s->types[s->n] = type;
        s->n++;
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* How many events were seen (under the lock: the dispatch thread adds). */
static int seen_count(seen *s)
{
    int n;

    pthread_mutex_lock(&s->lock);
    n = s->n;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static void seen_reset(seen *s)
{
    pthread_mutex_lock(&s->lock);
    s->n = 0;
    pthread_mutex_unlock(&s->lock);
}

/* Waits until n events were seen (or 5 s), returns how many there are. */
static int seen_wait(seen *s, int n)
{
    struct timespec ts;
    int got;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&s->lock);
    while (s->n < n && pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
        ;
    got = s->n;
    pthread_mutex_unlock(&s->lock);
    return got;
}

static void on_domain(lvrpc_client *c, const lvrpc_event *ev, void *opaque)
{
    const lvrpc_domain_event_callback_lifecycle_msg *m = ev->msg;
    seen *s = opaque;

    (void)c;
    if (ev->proc != LVRPC_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE)
        return;
    seen_add(s, m->msg.dom.name, m->msg.event);
    if (s->deregister_self && s->self_id) {
        lvrpc_event_deregister(s->c, s->self_id); /* allowed from the callback */
        s->self_id = 0;
    }
}

static void on_network(lvrpc_client *c, const lvrpc_event *ev, void *opaque)
{
    const lvrpc_network_event_lifecycle_msg *m = ev->msg;

    (void)c;
    seen_add(opaque, m->net.name, m->event);
}

static void on_pool(lvrpc_client *c, const lvrpc_event *ev, void *opaque)
{
    const lvrpc_storage_pool_event_lifecycle_msg *m = ev->msg;

    (void)c;
    seen_add(opaque, m->pool.name, m->event);
}

static void on_state(lvrpc_client *c, lvrpc_conn_state state, const lvrpc_error *why,
                     void *opaque)
{
    seen *s = opaque;

    (void)c;
    (void)why;
    pthread_mutex_lock(&s->lock);
    if (s->nstates < 8)
        s->states[s->nstates++] = (int)state;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static lvrpc_client *open_client(void)
{
    lvrpc_options o = {0};
    lvrpc_client *c = NULL;

    o.mode = mode_;
    o.reconnect_min_ms = 50;
    o.reconnect_max_ms = 300;
    o.keepalive_interval_ms = 500;
    o.keepalive_count = 3;
    LVRPCT_ASSERT_OK(lvrpc_open(daemon_.uri_tcp, &o, &c));
    return c;
}

static int define_domain(lvrpc_client *c, const char *name, lvrpc_domain_ref *out)
{
    char xml[512];
    lvrpc_domain_define_xml_flags_args a = {xml, 0};
    lvrpc_domain_define_xml_flags_ret *r = NULL;
    int rc;

    snprintf(xml, sizeof(xml),
             "<domain type='test'><name>%s</name><memory>8192</memory>"
             "<os><type>hvm</type></os></domain>", name);
    rc = lvrpc_domain_define_xml_flags(c, &a, &r);
    if (rc == LVRPC_OK) {
        *out = r->dom;
        out->name = strdup(r->dom.name);
    }
    lvrpc_reply_free(r);
    return rc;
}

/* define, start, suspend, resume, destroy, undefine */
static void domain_cycle(lvrpc_client *c, const char *name)
{
    lvrpc_domain_ref d;

    LVRPCT_ASSERT_OK(define_domain(c, name, &d));
    {
        lvrpc_domain_create_args a = {d};
        lvrpc_domain_suspend_args s = {d};
        lvrpc_domain_resume_args r = {d};
        lvrpc_domain_destroy_args x = {d};
        lvrpc_domain_undefine_args u = {d};
        LVRPCT_ASSERT_OK(lvrpc_domain_create(c, &a));
        LVRPCT_ASSERT_OK(lvrpc_domain_suspend(c, &s));
        LVRPCT_ASSERT_OK(lvrpc_domain_resume(c, &r));
        LVRPCT_ASSERT_OK(lvrpc_domain_destroy(c, &x));
        LVRPCT_ASSERT_OK(lvrpc_domain_undefine(c, &u));
    }
    free(d.name);
}

static void test_lifecycle_in_order(void)
{
    /* virDomainEventType: DEFINED 0, STARTED 2, SUSPENDED 3, RESUMED 4,
     * STOPPED 5, UNDEFINED 1 */
    static const int want[] = {0, 2, 3, 4, 5, 1};
    char name[32];
    seen s;
    lvrpc_client *c = open_client();
    int id = 0;

    if (!c)
        return;
    seen_init(&s);
    snprintf(name, sizeof(name), "ev-%s", lvrpct_mode_name(mode_));
    LVRPCT_ASSERT_OK(lvrpc_event_register(c, LVRPC_EVENT_DOMAIN, 0, NULL, on_domain, &s, NULL,
                                          &id));
    CU_ASSERT(id > 0);
    domain_cycle(c, name);
    LVRPCT_ASSERT_INT(seen_wait(&s, 6), 6);
    usleep(200000); /* nothing more may come */
    LVRPCT_ASSERT_INT(seen_count(&s), 6);
    for (int i = 0, n = seen_count(&s); i < 6 && i < n; i++) {
        LVRPCT_ASSERT_STR(s.names[i], name);
        LVRPCT_ASSERT_INT(s.types[i], want[i]);
    }
    LVRPCT_ASSERT_OK(lvrpc_event_deregister(c, id));
    /* no delivery after deregistration */
    seen_reset(&s);
    domain_cycle(c, name);
    usleep(300000);
    LVRPCT_ASSERT_INT(seen_count(&s), 0);
    lvrpc_close(c);
}

static void test_filter_one_domain(void)
{
    seen s;
    lvrpc_client *c = open_client();
    lvrpc_domain_ref mine;
    int id = 0;

    if (!c)
        return;
    seen_init(&s);
    LVRPCT_ASSERT_OK(define_domain(c, "ev-mine", &mine));
    LVRPCT_ASSERT_OK(lvrpc_event_register(c, LVRPC_EVENT_DOMAIN, 0, &mine, on_domain, &s, NULL,
                                          &id));
    domain_cycle(c, "ev-other");
    {
        lvrpc_domain_undefine_args u = {mine};
        LVRPCT_ASSERT_OK(lvrpc_domain_undefine(c, &u));
    }
    LVRPCT_ASSERT_INT(seen_wait(&s, 1), 1);
    usleep(200000);
    LVRPCT_ASSERT_INT(seen_count(&s), 1);
    LVRPCT_ASSERT_STR(s.names[0], "ev-mine");
    LVRPCT_ASSERT_INT(s.types[0], 1); /* UNDEFINED */
    free(mine.name);
    lvrpc_close(c);
}

static void test_deregister_from_callback(void)
{
    seen s;
    lvrpc_client *c = open_client();

    if (!c)
        return;
    seen_init(&s);
    s.deregister_self = 1;
    s.c = c;
    LVRPCT_ASSERT_OK(lvrpc_event_register(c, LVRPC_EVENT_DOMAIN, 0, NULL, on_domain, &s, NULL,
                                          &s.self_id));
    domain_cycle(c, "ev-self");
    usleep(400000);
    LVRPCT_ASSERT_INT(seen_count(&s), 1); /* the first event only */
    lvrpc_close(c);
}

static void test_network_events(void)
{
    static const int want[] = {0, 2, 3, 1}; /* DEFINED STARTED STOPPED UNDEFINED */
    const char *xml = "<network><name>evnet</name><bridge name='evbr0'/>"
                      "<ip address='192.168.199.1' netmask='255.255.255.0'/></network>";
    lvrpc_network_define_xml_args da = {(char *)xml};
    lvrpc_network_define_xml_ret *dr = NULL;
    seen s;
    lvrpc_client *c = open_client();

    if (!c)
        return;
    seen_init(&s);
    LVRPCT_ASSERT_OK(lvrpc_event_register(c, LVRPC_EVENT_NETWORK, 0, NULL, on_network, &s,
                                          NULL, NULL));
    LVRPCT_ASSERT_OK(lvrpc_network_define_xml(c, &da, &dr));
    if (dr) {
        lvrpc_network_create_args cr = {dr->net};
        lvrpc_network_destroy_args ds = {dr->net};
        lvrpc_network_undefine_args un = {dr->net};
        LVRPCT_ASSERT_OK(lvrpc_network_create(c, &cr));
        LVRPCT_ASSERT_OK(lvrpc_network_destroy(c, &ds));
        LVRPCT_ASSERT_OK(lvrpc_network_undefine(c, &un));
    }
    lvrpc_reply_free(dr);
    LVRPCT_ASSERT_INT(seen_wait(&s, 4), 4);
    for (int i = 0, n = seen_count(&s); i < 4 && i < n; i++) {
        LVRPCT_ASSERT_STR(s.names[i], "evnet");
        LVRPCT_ASSERT_INT(s.types[i], want[i]);
    }
    lvrpc_close(c);
}

static void test_pool_events(void)
{
    static const int want[] = {0, 2, 3, 1}; /* DEFINED STARTED STOPPED UNDEFINED */
    const char *xml = "<pool type='dir'><name>evpool</name>"
                      "<target><path>/tmp/lvrpc-evpool</path></target></pool>";
    lvrpc_storage_pool_define_xml_args da = {(char *)xml, 0};
    lvrpc_storage_pool_define_xml_ret *dr = NULL;
    seen s;
    lvrpc_client *c = open_client();

    if (!c)
        return;
    seen_init(&s);
    LVRPCT_ASSERT_OK(lvrpc_event_register(c, LVRPC_EVENT_STORAGE_POOL, 0, NULL, on_pool, &s,
                                          NULL, NULL));
    LVRPCT_ASSERT_OK(lvrpc_storage_pool_define_xml(c, &da, &dr));
    if (dr) {
        lvrpc_storage_pool_create_args cr = {dr->pool, 0};
        lvrpc_storage_pool_destroy_args ds = {dr->pool};
        lvrpc_storage_pool_undefine_args un = {dr->pool};
        LVRPCT_ASSERT_OK(lvrpc_storage_pool_create(c, &cr));
        LVRPCT_ASSERT_OK(lvrpc_storage_pool_destroy(c, &ds));
        LVRPCT_ASSERT_OK(lvrpc_storage_pool_undefine(c, &un));
    }
    lvrpc_reply_free(dr);
    LVRPCT_ASSERT_INT(seen_wait(&s, 4), 4);
    for (int i = 0, n = seen_count(&s); i < 4 && i < n; i++) {
        LVRPCT_ASSERT_STR(s.names[i], "evpool");
        LVRPCT_ASSERT_INT(s.types[i], want[i]);
    }
    lvrpc_close(c);
}

static void test_reregistered_after_restart(void)
{
    seen s, st;
    lvrpc_client *c = open_client();
    lvrpc_event_stats es;
    char port[16];
    int reconnected = 0;

    if (!c)
        return;
    seen_init(&s);
    seen_init(&st);
    LVRPCT_ASSERT_OK(lvrpc_set_connection_callback(c, on_state, &st));
    LVRPCT_ASSERT_OK(lvrpc_event_register(c, LVRPC_EVENT_DOMAIN, 0, NULL, on_domain, &s, NULL,
                                          NULL));
    snprintf(port, sizeof(port), "%d", daemon_.tcp_port);
    lvrpct_daemon_stop(&daemon_);
    setenv("TCP_PORT", port, 1);
    CU_ASSERT_EQUAL_FATAL(lvrpct_daemon_start(&daemon_), 0);
    unsetenv("TCP_PORT");
    for (int i = 0; i < 100 && !reconnected; i++) { /* up to 10 s */
        pthread_mutex_lock(&st.lock);
        reconnected = st.nstates >= 2;
        pthread_mutex_unlock(&st.lock);
        if (!reconnected)
            usleep(100000);
    }
    lvrpct_assert(reconnected, __FILE__, __LINE__, "the state callback heard both moments");
    if (reconnected) {
        LVRPCT_ASSERT_INT(st.states[0], LVRPC_CONN_CLOSED);
        LVRPCT_ASSERT_INT(st.states[1], LVRPC_CONN_RECONNECTED);
    }
    domain_cycle(c, "ev-after");
    LVRPCT_ASSERT_INT(seen_wait(&s, 6), 6);
    lvrpc_event_stats_get(c, &es);
    lvrpct_assert(es.reregistered >= 1, __FILE__, __LINE__, "re-registered (%llu)",
                  (unsigned long long)es.reregistered);
    lvrpc_close(c);
}

/* ------------------------------------------------------------ suites */

static int daemon_init(void)
{
    return lvrpct_daemon_start(&daemon_) == 0 ? 0 : -1;
}

static int direct_init(void)
{
    mode_ = LVRPC_MODE_DIRECT;
    return daemon_init();
}

static int shared_init(void)
{
    mode_ = LVRPC_MODE_SHARED;
    return daemon_init();
}

static int daemon_cleanup(void)
{
    lvrpct_daemon_stop(&daemon_);
    return 0;
}

static void add_suites(void)
{
    static const lvrpct_test tests[] = {
        {"domain lifecycle events in order", test_lifecycle_in_order},
        {"a filter on one domain", test_filter_one_domain},
        {"deregister from inside the callback", test_deregister_from_callback},
        {"network lifecycle events", test_network_events},
        {"storage pool lifecycle events", test_pool_events},
        {"registrations survive a daemon restart", test_reregistered_after_restart},
        {NULL, NULL},
    };
    lvrpct_add_suite("events/direct", direct_init, daemon_cleanup, tests);
    lvrpct_add_suite("events/shared", shared_init, daemon_cleanup, tests);
}

int main(int argc, char **argv)
{
    return lvrpct_main(argc, argv, add_suites);
}
