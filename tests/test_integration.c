/* test_integration.c - every procedure family against a real libvirtd.
 *
 * Each suite starts its own private libvirtd (tests/libvirtd-up.sh, test
 * driver only) in its init and stops it in its cleanup, opens the handle
 * under test in the suite's mode over the suite's transport, and keeps a
 * second "anchor" handle open for its whole run: the test driver's state
 * (test:///default) is shared by all connections but reset when the last one
 * closes.
 *
 * The families (connect, domains, networks, storage, errors) are written
 * once, as functions that use only the thread-safe T_* checks, and run
 *   - one CUnit test per family in the single-thread suites
 *     {direct,shared} x {tcp,unix,tls} (tls: built with OpenSSL);
 *   - all at once from 16 threads on ONE handle in the *-16threads suites,
 *     every thread with its own object names; each thread must pass.
 * A family creates its own objects (unique names per thread), checks that
 * states really change, and removes what it created.
 *
 * Shared mode is not optional: if lvrpc_open() refuses LVRPC_MODE_SHARED,
 * the shared suites fail (loudly, in their init), they are not skipped.
 * A libvirtd that cannot be started is a hard error (exit 99).
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "harness.h"

#define NTHREADS 16
#define USE_TLS 2 /* suite_cfg.use_unix: the daemon's TLS listener */

/* libvirt's constants used below (virterror.h, libvirt-domain.h, ...). */
enum {
    VIR_ERR_INTERNAL_ERROR = 1,
    VIR_ERR_OPERATION_FAILED = 9,
    VIR_ERR_XML_ERROR = 27,
    VIR_ERR_OPERATION_DENIED = 29,
    VIR_ERR_RPC = 39,
    VIR_ERR_NO_DOMAIN = 42,
    VIR_ERR_NO_NETWORK = 43,
    VIR_ERR_NO_STORAGE_POOL = 49,
    VIR_ERR_NO_STORAGE_VOL = 50,
    VIR_ERR_OPERATION_INVALID = 55,
    VIR_FROM_TEST = 12,
};
enum {
    VIR_DOMAIN_RUNNING = 1,
    VIR_DOMAIN_PAUSED = 3,
    VIR_DOMAIN_SHUTOFF = 5,
    VIR_DOMAIN_RUNNING_BOOTED = 1,
    VIR_DOMAIN_RUNNING_UNPAUSED = 5,
    VIR_DOMAIN_PAUSED_USER = 1,
    VIR_DOMAIN_SHUTOFF_SHUTDOWN = 1,
    VIR_DOMAIN_SHUTOFF_DESTROYED = 2,
    VIR_CONNECT_LIST_DOMAINS_ACTIVE = 1,
    VIR_CONNECT_LIST_DOMAINS_INACTIVE = 2,
    VIR_CONNECT_LIST_NETWORKS_INACTIVE = 1,
    VIR_CONNECT_LIST_NETWORKS_ACTIVE = 2,
    VIR_STORAGE_POOL_RUNNING = 2,
    VIR_STORAGE_VOL_FILE = 0,
    VIR_DRV_FEATURE_MIGRATION_V1 = 1,
    VIR_DRV_FEATURE_FD_PASSING = 8,
    VIR_DRV_FEATURE_TYPED_PARAM_STRING = 9,
};

/* ------------------------------------------------------------------ suite state */

typedef struct suite_cfg {
    const char *name;
    lvrpc_mode mode;
    int use_unix; /* 0 tcp, 1 unix, USE_TLS */
    int threads; /* 0: one CUnit test per family; else that many threads */
} suite_cfg;

typedef struct suite_state {
    const suite_cfg *cfg;
    lvrpct_daemon daemon;
    const char *uri;
    lvrpc_client *c;      /* the handle under test */
    lvrpc_client *anchor; /* keeps the test driver's state alive; also a second view */
    unsigned long lib_version; /* from libvirtd --version, 0 if unknown */
} suite_state;

static suite_state cur; /* the suite running now (CUnit runs one at a time) */

static int suite_init(const suite_cfg *cfg)
{
    int rc;

    memset(&cur, 0, sizeof(cur));
    cur.cfg = cfg;
    if (lvrpct_daemon_start(&cur.daemon) != 0)
        return 1; /* a hard error: lvrpct_main exits 99 */
    cur.uri = cfg->use_unix == USE_TLS ? cur.daemon.uri_tls
              : cfg->use_unix          ? cur.daemon.uri_unix : cur.daemon.uri_tcp;
    cur.lib_version = lvrpct_version_number(cur.daemon.version);
    rc = lvrpct_open(cur.uri, LVRPC_MODE_DIRECT, &cur.anchor);
    if (rc != LVRPC_OK) {
        fprintf(stderr, "suite %s: the anchor connection (Direct mode) failed\n", cfg->name);
        lvrpct_daemon_stop(&cur.daemon);
        return 1;
    }
    rc = lvrpct_open(cur.uri, cfg->mode, &cur.c);
    if (rc != LVRPC_OK) {
        fprintf(stderr,
                "\n*** SUITE %s FAILED: lvrpc_open(%s, %s mode) -> %s: %s\n"
                "*** %s mode must work against a real libvirtd; this is a failure, "
                "not a skip.\n\n",
                cfg->name, cur.uri, lvrpct_mode_name(cfg->mode), lvrpc_strerror(rc),
                lvrpc_last_message(), lvrpct_mode_name(cfg->mode));
        lvrpc_close(cur.anchor);
        lvrpct_daemon_stop(&cur.daemon);
        return 1;
    }
    printf("\n  [%s: libvirtd %s pid %ld, %s]", cfg->name, cur.daemon.version,
           (long)cur.daemon.pid, cur.uri);
    return 0;
}

static int suite_cleanup(void)
{
    lvrpc_close(cur.c);
    lvrpc_close(cur.anchor);
    if (CU_get_number_of_failures() > 0 && getenv("LVRPCT_VERBOSE"))
        lvrpct_daemon_dump_log(&cur.daemon, 40);
    lvrpct_daemon_stop(&cur.daemon);
    memset(&cur, 0, sizeof(cur));
    return 0;
}

/* ------------------------------------------------------------------ helpers */

/* A UUID that depends only on s, as 16 bytes and as text. */
static void uuid_for(const char *s, unsigned char u[16], char text[37])
{
    uint64_t h1 = 1469598103934665603ull, h2 = 1099511628211ull * 7;

    for (const char *p = s; *p; p++) {
        h1 = (h1 ^ (unsigned char)*p) * 1099511628211ull;
        h2 = (h2 ^ (unsigned char)*p) * 1469598103934665603ull + 0x9e3779b97f4a7c15ull;
    }
    for (int i = 0; i < 8; i++) {
        u[i] = (unsigned char)(h1 >> (8 * i));
        u[8 + i] = (unsigned char)(h2 >> (8 * i));
    }
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* variant */
    snprintf(text, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
             u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
             u[14], u[15]);
}

static int domain_listed(const lvrpc_connect_list_all_domains_ret *l, const char *name,
                         const unsigned char *uuid, int *id)
{
    for (unsigned i = 0; i < l->domains.domains_len; i++) {
        const lvrpc_domain_ref *d = &l->domains.domains_val[i];
        if (strcmp(d->name, name) == 0 && (!uuid || memcmp(d->uuid, uuid, 16) == 0)) {
            if (id)
                *id = d->id;
            return 1;
        }
    }
    return 0;
}

/* The domain's state and reason, or -1 with the check failed. */
static int get_state(lvrpc_client *c, lvrpct_ctx *t, const lvrpc_domain_ref *dom, int *reason)
{
    lvrpc_domain_get_state_args a;
    lvrpc_domain_get_state_ret *r = NULL;
    int state = -1;

    a.dom = *dom;
    a.flags = 0;
    T_OK(lvrpc_domain_get_state(c, &a, &r));
    state = r->state;
    if (reason)
        *reason = r->reason;
out:
    lvrpc_reply_free(r);
    return state;
}

#define T_STATE(dom, want_state, want_reason) do { \
        int reason_t_ = -1, st_t_ = get_state(c, t, (dom), &reason_t_); \
        if (t->failed) \
            goto out; \
        T_CHECKF(st_t_ == (want_state) && ((want_reason) < 0 || reason_t_ == (want_reason)), \
                 "domain %s: state %d reason %d, want %d reason %d", (dom)->name, st_t_, \
                 reason_t_, (want_state), (want_reason)); \
    } while (0)

/* ------------------------------------------------------------------ connect family */

static int fam_connect(lvrpc_client *c, lvrpct_ctx *t)
{
    lvrpc_connect_get_type_ret *type = NULL;
    lvrpc_connect_get_version_ret *ver = NULL;
    lvrpc_connect_get_lib_version_ret *lib = NULL;
    lvrpc_connect_get_hostname_ret *host = NULL;
    lvrpc_connect_get_capabilities_ret *caps = NULL;
    lvrpc_connect_get_sysinfo_ret *sys = NULL;
    lvrpc_connect_get_uri_ret *uri = NULL;
    lvrpc_connect_supports_feature_ret *feat = NULL;
    lvrpc_connect_is_secure_ret *sec = NULL;
    lvrpc_connect_get_max_vcpus_ret *vcpus = NULL;
    lvrpc_connect_get_sysinfo_args sa = {0};
    lvrpc_connect_get_max_vcpus_args va = {NULL};
    char local[256];

    T_STREQ(lvrpc_get_name(c), "test:///default");
    T_OK(lvrpc_connect_get_type(c, &type));
    T_STREQ(type->type, "TEST");
    T_OK(lvrpc_connect_get_version(c, &ver));
    T_INTEQ(ver->hv_ver, 2); /* the test driver's fixed hypervisor version */
    T_OK(lvrpc_connect_get_lib_version(c, &lib));
    if (cur.lib_version)
        T_INTEQ(lib->lib_ver, cur.lib_version); /* what `libvirtd --version` says */
    else
        T_CHECK(lib->lib_ver >= 1000000);
    T_OK(lvrpc_connect_get_hostname(c, &host));
    T_CHECK(gethostname(local, sizeof(local)) == 0);
    local[sizeof(local) - 1] = '\0';
    /* the daemon runs here: the same host name (libvirt may add the domain) */
    T_CHECKF(strncmp(host->hostname, local, strlen(local)) == 0 &&
                 (host->hostname[strlen(local)] == '\0' || host->hostname[strlen(local)] == '.'),
             "daemon host name '%s', local '%s'", host->hostname, local);
    T_OK(lvrpc_connect_get_capabilities(c, &caps));
    T_CHECK(strstr(caps->capabilities, "<capabilities>") != NULL);
    T_CHECK(strstr(caps->capabilities, "<host>") != NULL);
    T_CHECK(strstr(caps->capabilities, "<guest>") != NULL);
    T_CHECK(strstr(caps->capabilities, "</capabilities>") != NULL);
    T_OK(lvrpc_connect_get_sysinfo(c, &sa, &sys));
    T_CHECK(strncmp(sys->sysinfo, "<sysinfo", 8) == 0);
    T_CHECK(strstr(sys->sysinfo, "</sysinfo>") != NULL);
    T_OK(lvrpc_connect_get_uri(c, &uri));
    T_STREQ(uri->uri, "test:///default");
    {
        static const struct {
            int feature, supported;
        } fs[] = {
            {VIR_DRV_FEATURE_FD_PASSING, 1},         /* answered by the daemon itself */
            {VIR_DRV_FEATURE_TYPED_PARAM_STRING, 1}, /* by the test driver */
            {VIR_DRV_FEATURE_MIGRATION_V1, 0},
        };
        for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++) {
            lvrpc_connect_supports_feature_args fa = {fs[i].feature};
            T_OK(lvrpc_connect_supports_feature(c, &fa, &feat));
            T_CHECKF(feat->supported == fs[i].supported, "feature %d: supported %d, want %d",
                     fs[i].feature, feat->supported, fs[i].supported);
            lvrpc_reply_free(feat);
            feat = NULL;
        }
    }
    T_OK(lvrpc_connect_is_secure(c, &sec));
    T_INTEQ(sec->secure, 1);
    T_OK(lvrpc_connect_get_max_vcpus(c, &va, &vcpus));
    T_INTEQ(vcpus->max_vcpus, 32);
out:
    lvrpc_reply_free(type);
    lvrpc_reply_free(ver);
    lvrpc_reply_free(lib);
    lvrpc_reply_free(host);
    lvrpc_reply_free(caps);
    lvrpc_reply_free(sys);
    lvrpc_reply_free(uri);
    lvrpc_reply_free(feat);
    lvrpc_reply_free(sec);
    lvrpc_reply_free(vcpus);
    return t->failed ? -1 : 0;
}

static int fam_node(lvrpc_client *c, lvrpct_ctx *t)
{
    lvrpc_node_get_info_ret *ni = NULL;
    lvrpc_node_get_free_memory_ret *fm = NULL;

    T_OK(lvrpc_node_get_info(c, &ni));
    T_STREQ(ni->model, "i686");
    T_CHECK(ni->memory > 0 && ni->mhz > 0);
    T_CHECKF(ni->cpus == ni->nodes * ni->sockets * ni->cores * ni->threads,
             "cpus %d != %d nodes * %d sockets * %d cores * %d threads", ni->cpus, ni->nodes,
             ni->sockets, ni->cores, ni->threads);
    T_OK(lvrpc_node_get_free_memory(c, &fm));
    T_CHECK(fm->freeMem > 0);
out:
    lvrpc_reply_free(ni);
    lvrpc_reply_free(fm);
    return t->failed ? -1 : 0;
}

/* Listing and counting domains; exact counts only when no other thread
 * changes them meanwhile. */
static int fam_connect_lists(lvrpc_client *c, lvrpct_ctx *t)
{
    lvrpc_connect_list_all_domains_args la = {1, 0};
    lvrpc_connect_list_all_domains_ret *all = NULL, *active = NULL, *inactive = NULL,
                                       *count = NULL;
    lvrpc_connect_num_of_domains_ret *num = NULL;
    lvrpc_connect_num_of_defined_domains_ret *ndef = NULL;
    lvrpc_connect_list_domains_args ida = {1000};
    lvrpc_connect_list_domains_ret *ids = NULL;
    int id = 0, found = 0;

    T_OK(lvrpc_connect_list_all_domains(c, &la, &all));
    T_CHECK(all->ret == all->domains.domains_len);
    /* the test driver's own running domain "test", id 1 */
    T_CHECK(domain_listed(all, "test", NULL, &id));
    T_INTEQ(id, 1);
    la.need_results = 0;
    T_OK(lvrpc_connect_list_all_domains(c, &la, &count));
    T_INTEQ(count->domains.domains_len, 0);
    la.need_results = 1;
    la.flags = VIR_CONNECT_LIST_DOMAINS_ACTIVE;
    T_OK(lvrpc_connect_list_all_domains(c, &la, &active));
    T_CHECK(domain_listed(active, "test", NULL, NULL));
    /* Only when no other thread changes domains meanwhile: libvirtd may list
     * a domain as active that another thread is destroying (id already -1). */
    for (unsigned i = 0; t->exclusive && i < active->domains.domains_len; i++)
        T_CHECK(active->domains.domains_val[i].id > 0);
    la.flags = VIR_CONNECT_LIST_DOMAINS_INACTIVE;
    T_OK(lvrpc_connect_list_all_domains(c, &la, &inactive));
    T_CHECK(!domain_listed(inactive, "test", NULL, NULL));
    for (unsigned i = 0; t->exclusive && i < inactive->domains.domains_len; i++)
        T_CHECK(inactive->domains.domains_val[i].id == -1);
    T_OK(lvrpc_connect_num_of_domains(c, &num));
    T_OK(lvrpc_connect_num_of_defined_domains(c, &ndef));
    T_OK(lvrpc_connect_list_domains(c, &ida, &ids));
    for (unsigned i = 0; i < ids->ids.ids_len; i++)
        found |= ids->ids.ids_val[i] == 1;
    T_CHECK(found);
    T_CHECK(num->num >= 1);
    if (t->exclusive) {
        T_INTEQ(count->ret, all->ret);
        T_INTEQ(num->num, active->ret);
        T_INTEQ(ndef->num, inactive->ret);
        T_INTEQ(all->ret, active->ret + inactive->ret);
        T_INTEQ(ids->ids.ids_len, num->num);
    }
out:
    lvrpc_reply_free(all);
    lvrpc_reply_free(active);
    lvrpc_reply_free(inactive);
    lvrpc_reply_free(count);
    lvrpc_reply_free(num);
    lvrpc_reply_free(ndef);
    lvrpc_reply_free(ids);
    return t->failed ? -1 : 0;
}

/* ------------------------------------------------------------------ domains */

static void domain_xml(char *buf, size_t size, const char *name, const char *uuid)
{
    snprintf(buf, size,
             "<domain type='test'>\n"
             "  <name>%s</name>\n"
             "  <uuid>%s</uuid>\n"
             "  <memory unit='KiB'>131072</memory>\n"
             "  <currentMemory unit='KiB'>65536</currentMemory>\n"
             "  <vcpu>2</vcpu>\n"
             "  <os><type arch='i686'>hvm</type></os>\n"
             "</domain>\n",
             name, uuid);
}

/* The test driver's own domain "test": lookups by name, uuid and id agree. */
static int fam_domain_lookup(lvrpc_client *c, lvrpct_ctx *t)
{
    lvrpc_domain_lookup_by_name_args na = {"test"};
    lvrpc_domain_lookup_by_name_ret *byname = NULL;
    lvrpc_domain_lookup_by_uuid_args ua;
    lvrpc_domain_lookup_by_uuid_ret *byuuid = NULL;
    lvrpc_domain_lookup_by_id_args ia = {1};
    lvrpc_domain_lookup_by_id_ret *byid = NULL;
    lvrpc_domain_get_info_args gi;
    lvrpc_domain_get_info_ret *info = NULL;
    lvrpc_domain_get_xml_desc_args xa;
    lvrpc_domain_get_xml_desc_ret *xml = NULL;
    lvrpc_domain_get_os_type_args oa;
    lvrpc_domain_get_os_type_ret *os = NULL;
    lvrpc_domain_is_active_args aa;
    lvrpc_domain_is_active_ret *act = NULL;

    T_OK(lvrpc_domain_lookup_by_name(c, &na, &byname));
    T_STREQ(byname->dom.name, "test");
    T_INTEQ(byname->dom.id, 1);
    memcpy(ua.uuid, byname->dom.uuid, 16);
    T_OK(lvrpc_domain_lookup_by_uuid(c, &ua, &byuuid));
    T_STREQ(byuuid->dom.name, "test");
    T_OK(lvrpc_domain_lookup_by_id(c, &ia, &byid));
    T_STREQ(byid->dom.name, "test");
    T_CHECK(memcmp(byid->dom.uuid, byname->dom.uuid, 16) == 0);
    gi.dom = byname->dom;
    T_OK(lvrpc_domain_get_info(c, &gi, &info));
    T_INTEQ(info->state, VIR_DOMAIN_RUNNING);
    T_INTEQ(info->nrVirtCpu, 2);
    T_INTEQ(info->maxMem, 8388608);
    T_CHECK(info->memory > 0 && info->memory <= info->maxMem);
    T_STATE(&byname->dom, VIR_DOMAIN_RUNNING, -1);
    xa.dom = byname->dom;
    xa.flags = 0;
    T_OK(lvrpc_domain_get_xml_desc(c, &xa, &xml));
    T_CHECK(strstr(xml->xml, "<name>test</name>") != NULL);
    T_CHECK(strstr(xml->xml, "6695eb01-f6a4-8304-79aa-97f2502e193f") != NULL);
    oa.dom = byname->dom;
    T_OK(lvrpc_domain_get_os_type(c, &oa, &os));
    T_STREQ(os->type, "linux"); /* the test driver's answer, whatever the XML says */
    aa.dom = byname->dom;
    T_OK(lvrpc_domain_is_active(c, &aa, &act));
    T_INTEQ(act->active, 1);
out:
    lvrpc_reply_free(byname);
    lvrpc_reply_free(byuuid);
    lvrpc_reply_free(byid);
    lvrpc_reply_free(info);
    lvrpc_reply_free(xml);
    lvrpc_reply_free(os);
    lvrpc_reply_free(act);
    return t->failed ? -1 : 0;
}

/* A persistent domain through its whole life: define (flags), lookups,
 * create with flags, suspend, resume, shutdown, create, reboot, destroy,
 * undefine (flags); every step's state is checked with GET_STATE and
 * GET_INFO, and the domain is seen by the anchor connection too. */
static int fam_domain_lifecycle(lvrpc_client *c, lvrpct_ctx *t)
{
    char name[64], uuid_text[37], xml[1024];
    unsigned char uuid[16];
    lvrpc_domain_define_xml_flags_args da;
    lvrpc_domain_define_xml_flags_ret *def = NULL;
    lvrpc_domain_lookup_by_name_args na;
    lvrpc_domain_lookup_by_name_ret *byname = NULL, *seen = NULL;
    lvrpc_domain_lookup_by_uuid_args ua;
    lvrpc_domain_lookup_by_uuid_ret *byuuid = NULL;
    lvrpc_domain_lookup_by_id_args ia;
    lvrpc_domain_lookup_by_id_ret *byid = NULL;
    lvrpc_domain_create_with_flags_args ca;
    lvrpc_domain_create_with_flags_ret *created = NULL;
    lvrpc_domain_get_info_args gi;
    lvrpc_domain_get_info_ret *info = NULL;
    lvrpc_domain_get_xml_desc_args xa;
    lvrpc_domain_get_xml_desc_ret *desc = NULL;
    lvrpc_domain_is_persistent_args pa;
    lvrpc_domain_is_persistent_ret *pers = NULL;
    lvrpc_connect_list_all_domains_args la = {1, 0};
    lvrpc_connect_list_all_domains_ret *list = NULL;
    lvrpc_domain_ref dom;
    int defined = 0, id = 0;

    memset(&dom, 0, sizeof(dom));
    snprintf(name, sizeof(name), "lvrpct-%s-life", t->tag);
    uuid_for(name, uuid, uuid_text);
    domain_xml(xml, sizeof(xml), name, uuid_text);

    /* define: persistent, inactive, id -1 */
    da.xml = xml;
    da.flags = 0;
    T_OK(lvrpc_domain_define_xml_flags(c, &da, &def));
    defined = 1;
    T_STREQ(def->dom.name, name);
    T_CHECK(memcmp(def->dom.uuid, uuid, 16) == 0);
    T_INTEQ(def->dom.id, -1);
    dom = def->dom;
    T_STATE(&dom, VIR_DOMAIN_SHUTOFF, -1);
    gi.dom = dom;
    T_OK(lvrpc_domain_get_info(c, &gi, &info));
    T_INTEQ(info->state, VIR_DOMAIN_SHUTOFF);
    T_INTEQ(info->maxMem, 131072);
    T_INTEQ(info->memory, 65536);
    T_INTEQ(info->nrVirtCpu, 2);
    lvrpc_reply_free(info);
    info = NULL;
    pa.dom = dom;
    T_OK(lvrpc_domain_is_persistent(c, &pa, &pers));
    T_INTEQ(pers->persistent, 1);

    /* lookups agree, on this handle and on another connection */
    na.name = name;
    T_OK(lvrpc_domain_lookup_by_name(c, &na, &byname));
    T_CHECK(memcmp(byname->dom.uuid, uuid, 16) == 0);
    T_INTEQ(byname->dom.id, -1);
    memcpy(ua.uuid, uuid, 16);
    T_OK(lvrpc_domain_lookup_by_uuid(c, &ua, &byuuid));
    T_STREQ(byuuid->dom.name, name);
    if (cur.anchor && cur.anchor != c) {
        T_OK(lvrpc_domain_lookup_by_name(cur.anchor, &na, &seen));
        T_CHECK(memcmp(seen->dom.uuid, uuid, 16) == 0);
    }
    T_OK(lvrpc_connect_list_all_domains(c, &la, &list));
    T_CHECK(domain_listed(list, name, uuid, &id));
    T_INTEQ(id, -1);
    lvrpc_reply_free(list);
    list = NULL;

    /* XML round trip */
    xa.dom = dom;
    xa.flags = 0;
    T_OK(lvrpc_domain_get_xml_desc(c, &xa, &desc));
    T_CHECK(strstr(desc->xml, name) != NULL);
    T_CHECK(strstr(desc->xml, uuid_text) != NULL);
    T_CHECK(strstr(desc->xml, "<memory unit='KiB'>131072</memory>") != NULL);

    /* start: a new id, running, found by id */
    ca.dom = dom;
    ca.flags = 0;
    T_OK(lvrpc_domain_create_with_flags(c, &ca, &created));
    T_STREQ(created->dom.name, name);
    T_CHECK(created->dom.id > 1);
    dom.id = created->dom.id;
    T_STATE(&dom, VIR_DOMAIN_RUNNING, VIR_DOMAIN_RUNNING_BOOTED);
    ia.id = dom.id;
    T_OK(lvrpc_domain_lookup_by_id(c, &ia, &byid));
    T_STREQ(byid->dom.name, name);
    gi.dom = dom;
    T_OK(lvrpc_domain_get_info(c, &gi, &info));
    T_INTEQ(info->state, VIR_DOMAIN_RUNNING);
    lvrpc_reply_free(info);
    info = NULL;

    /* suspend / resume */
    {
        lvrpc_domain_suspend_args sa = {dom};
        lvrpc_domain_resume_args ra = {dom};
        T_OK(lvrpc_domain_suspend(c, &sa));
        T_STATE(&dom, VIR_DOMAIN_PAUSED, VIR_DOMAIN_PAUSED_USER);
        T_OK(lvrpc_domain_get_info(c, &gi, &info));
        T_INTEQ(info->state, VIR_DOMAIN_PAUSED);
        lvrpc_reply_free(info);
        info = NULL;
        /* suspending twice is refused by the driver, the state is kept */
        T_REMOTE_ERR(lvrpc_domain_suspend(c, &sa), VIR_ERR_INTERNAL_ERROR, "not running");
        T_STATE(&dom, VIR_DOMAIN_PAUSED, VIR_DOMAIN_PAUSED_USER);
        T_OK(lvrpc_domain_resume(c, &ra));
        T_STATE(&dom, VIR_DOMAIN_RUNNING, VIR_DOMAIN_RUNNING_UNPAUSED);
        T_REMOTE_ERR(lvrpc_domain_resume(c, &ra), VIR_ERR_INTERNAL_ERROR, "not paused");
    }
    /* shutdown: the test driver's guest powers off at once */
    {
        lvrpc_domain_shutdown_args sa = {dom};
        lvrpc_domain_create_args cra;
        T_OK(lvrpc_domain_shutdown(c, &sa));
        T_STATE(&dom, VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_SHUTDOWN);
        /* DOMAIN_CREATE (without flags) boots it again */
        cra.dom = dom;
        cra.dom.id = -1;
        T_OK(lvrpc_domain_create(c, &cra));
        T_STATE(&dom, VIR_DOMAIN_RUNNING, VIR_DOMAIN_RUNNING_BOOTED);
        T_REMOTE_ERR(lvrpc_domain_create(c, &cra), VIR_ERR_INTERNAL_ERROR, "already running");
    }
    /* reboot: still running */
    {
        lvrpc_domain_reboot_args rb = {dom, 0};
        T_OK(lvrpc_domain_reboot(c, &rb));
        T_STATE(&dom, VIR_DOMAIN_RUNNING, VIR_DOMAIN_RUNNING_BOOTED);
    }
    /* destroy: shut off, id gone */
    {
        lvrpc_domain_destroy_args ds = {dom};
        T_OK(lvrpc_domain_destroy(c, &ds));
        T_STATE(&dom, VIR_DOMAIN_SHUTOFF, VIR_DOMAIN_SHUTOFF_DESTROYED);
        lvrpc_reply_free(byid);
        byid = NULL;
        T_REMOTE_ERR(lvrpc_domain_lookup_by_id(c, &ia, &byid), VIR_ERR_NO_DOMAIN, NULL);
        T_CHECK(byid == NULL); /* on failure the reply pointer is NULL */
    }
    /* undefine (flags): gone everywhere */
    {
        lvrpc_domain_undefine_flags_args uf = {dom, 0};
        lvrpc_domain_get_state_ret *gone = NULL;
        lvrpc_reply_free(byname);
        byname = NULL;
        lvrpc_reply_free(byuuid);
        byuuid = NULL;
        T_OK(lvrpc_domain_undefine_flags(c, &uf));
        defined = 0;
        T_REMOTE_ERR(lvrpc_domain_lookup_by_name(c, &na, &byname), VIR_ERR_NO_DOMAIN,
                     "Domain not found");
        T_CHECK(byname == NULL);
        T_REMOTE_ERR(lvrpc_domain_lookup_by_uuid(c, &ua, &byuuid), VIR_ERR_NO_DOMAIN, NULL);
        T_REMOTE_ERR(lvrpc_domain_get_state(c, &(lvrpc_domain_get_state_args){dom, 0}, &gone),
                     VIR_ERR_NO_DOMAIN, NULL);
        T_CHECK(gone == NULL);
        T_OK(lvrpc_connect_list_all_domains(c, &la, &list));
        T_CHECK(!domain_listed(list, name, NULL, NULL));
    }
out:
    if (defined && t->failed) { /* leave nothing behind for the other families */
        lvrpc_domain_destroy_args ds = {dom};
        lvrpc_domain_undefine_flags_args uf = {dom, 0};
        lvrpc_domain_destroy(c, &ds);
        lvrpc_domain_undefine_flags(c, &uf);
    }
    lvrpc_reply_free(def);
    lvrpc_reply_free(byname);
    lvrpc_reply_free(seen);
    lvrpc_reply_free(byuuid);
    lvrpc_reply_free(byid);
    lvrpc_reply_free(created);
    lvrpc_reply_free(info);
    lvrpc_reply_free(desc);
    lvrpc_reply_free(pers);
    lvrpc_reply_free(list);
    return t->failed ? -1 : 0;
}

/* A transient domain (CREATE_XML) runs at once and vanishes when destroyed;
 * the older DEFINE_XML / UNDEFINE pair works too. */
static int fam_domain_transient(lvrpc_client *c, lvrpct_ctx *t)
{
    char name[64], name2[64], uuid_text[37], xml[1024];
    unsigned char uuid[16];
    lvrpc_domain_create_xml_args ca;
    lvrpc_domain_create_xml_ret *cr = NULL;
    lvrpc_domain_is_persistent_args pa;
    lvrpc_domain_is_persistent_ret *pers = NULL;
    lvrpc_domain_define_xml_args da;
    lvrpc_domain_define_xml_ret *dr = NULL;
    lvrpc_domain_lookup_by_name_args na;
    lvrpc_domain_lookup_by_name_ret *ln = NULL;
    int running = 0, defined = 0;

    snprintf(name, sizeof(name), "lvrpct-%s-transient", t->tag);
    uuid_for(name, uuid, uuid_text);
    domain_xml(xml, sizeof(xml), name, uuid_text);
    ca.xml_desc = xml;
    ca.flags = 0;
    T_OK(lvrpc_domain_create_xml(c, &ca, &cr));
    running = 1;
    T_STREQ(cr->dom.name, name);
    T_CHECK(cr->dom.id > 1);
    T_STATE(&cr->dom, VIR_DOMAIN_RUNNING, -1);
    pa.dom = cr->dom;
    T_OK(lvrpc_domain_is_persistent(c, &pa, &pers));
    T_INTEQ(pers->persistent, 0);
    {
        lvrpc_domain_destroy_args ds = {cr->dom};
        T_OK(lvrpc_domain_destroy(c, &ds));
        running = 0;
    }
    na.name = name;
    T_REMOTE_ERR(lvrpc_domain_lookup_by_name(c, &na, &ln), VIR_ERR_NO_DOMAIN, NULL);

    snprintf(name2, sizeof(name2), "lvrpct-%s-legacy", t->tag);
    uuid_for(name2, uuid, uuid_text);
    domain_xml(xml, sizeof(xml), name2, uuid_text);
    da.xml = xml;
    T_OK(lvrpc_domain_define_xml(c, &da, &dr));
    defined = 1;
    T_STREQ(dr->dom.name, name2);
    T_STATE(&dr->dom, VIR_DOMAIN_SHUTOFF, -1);
    {
        lvrpc_domain_undefine_args ud = {dr->dom};
        T_OK(lvrpc_domain_undefine(c, &ud));
        defined = 0;
    }
    na.name = name2;
    T_REMOTE_ERR(lvrpc_domain_lookup_by_name(c, &na, &ln), VIR_ERR_NO_DOMAIN, NULL);
out:
    if (running) {
        lvrpc_domain_destroy_args ds = {cr->dom};
        lvrpc_domain_destroy(c, &ds);
    }
    if (defined) {
        lvrpc_domain_undefine_args ud = {dr->dom};
        lvrpc_domain_undefine(c, &ud);
    }
    lvrpc_reply_free(cr);
    lvrpc_reply_free(pers);
    lvrpc_reply_free(dr);
    lvrpc_reply_free(ln);
    return t->failed ? -1 : 0;
}

/* ------------------------------------------------------------------ networks */

static int net_listed(const lvrpc_connect_list_all_networks_ret *l, const char *name)
{
    for (unsigned i = 0; i < l->nets.nets_len; i++)
        if (strcmp(l->nets.nets_val[i].name, name) == 0)
            return 1;
    return 0;
}

static int fam_network(lvrpc_client *c, lvrpct_ctx *t)
{
    char name[64], bridge[16], uuid_text[37], xml[512];
    unsigned char uuid[16];
    lvrpc_connect_list_all_networks_args la = {1, 0};
    lvrpc_connect_list_all_networks_ret *before = NULL, *after = NULL, *active = NULL;
    lvrpc_network_define_xml_args da;
    lvrpc_network_define_xml_ret *def = NULL;
    lvrpc_network_lookup_by_name_args na;
    lvrpc_network_lookup_by_name_ret *byname = NULL;
    lvrpc_network_lookup_by_uuid_args ua;
    lvrpc_network_lookup_by_uuid_ret *byuuid = NULL;
    lvrpc_network_is_active_ret *act = NULL;
    lvrpc_network_is_persistent_ret *pers = NULL;
    lvrpc_network_get_xml_desc_ret *desc = NULL;
    lvrpc_network_get_bridge_name_ret *br = NULL;
    lvrpc_network_ref net;
    int defined = 0, started = 0;

    memset(&net, 0, sizeof(net));
    snprintf(name, sizeof(name), "lvrpct-%s-net", t->tag);
    snprintf(bridge, sizeof(bridge), "lvb-%.11s", t->tag); /* IFNAMSIZ */
    uuid_for(name, uuid, uuid_text);
    snprintf(xml, sizeof(xml),
             "<network>\n  <name>%s</name>\n  <uuid>%s</uuid>\n  <bridge name='%s'/>\n"
             "</network>\n",
             name, uuid_text, bridge);

    T_OK(lvrpc_connect_list_all_networks(c, &la, &before));
    T_CHECK(before->ret == before->nets.nets_len);
    T_CHECK(net_listed(before, "default")); /* the test driver's own network */
    T_CHECK(!net_listed(before, name));

    da.xml = xml;
    T_OK(lvrpc_network_define_xml(c, &da, &def));
    defined = 1;
    T_STREQ(def->net.name, name);
    T_CHECK(memcmp(def->net.uuid, uuid, 16) == 0);
    net = def->net;
    na.name = name;
    T_OK(lvrpc_network_lookup_by_name(c, &na, &byname));
    T_CHECK(memcmp(byname->net.uuid, uuid, 16) == 0);
    memcpy(ua.uuid, uuid, 16);
    T_OK(lvrpc_network_lookup_by_uuid(c, &ua, &byuuid));
    T_STREQ(byuuid->net.name, name);
    T_OK(lvrpc_connect_list_all_networks(c, &la, &after));
    T_CHECK(net_listed(after, name));
    if (t->exclusive)
        T_INTEQ(after->ret, before->ret + 1);
    T_OK(lvrpc_network_is_active(c, &(lvrpc_network_is_active_args){net}, &act));
    T_INTEQ(act->active, 0);
    lvrpc_reply_free(act);
    act = NULL;
    T_OK(lvrpc_network_is_persistent(c, &(lvrpc_network_is_persistent_args){net}, &pers));
    T_INTEQ(pers->persistent, 1);
    T_OK(lvrpc_network_get_bridge_name(c, &(lvrpc_network_get_bridge_name_args){net}, &br));
    T_STREQ(br->name, bridge);
    T_OK(lvrpc_network_get_xml_desc(c, &(lvrpc_network_get_xml_desc_args){net, 0}, &desc));
    T_CHECK(strstr(desc->xml, name) != NULL);
    T_CHECK(strstr(desc->xml, uuid_text) != NULL);
    T_CHECK(strstr(desc->xml, bridge) != NULL);

    /* start: active, listed as active */
    T_OK(lvrpc_network_create(c, &(lvrpc_network_create_args){net}));
    started = 1;
    T_OK(lvrpc_network_is_active(c, &(lvrpc_network_is_active_args){net}, &act));
    T_INTEQ(act->active, 1);
    lvrpc_reply_free(act);
    act = NULL;
    la.flags = VIR_CONNECT_LIST_NETWORKS_ACTIVE;
    T_OK(lvrpc_connect_list_all_networks(c, &la, &active));
    T_CHECK(net_listed(active, name));
    lvrpc_reply_free(active);
    active = NULL;
    /* stop: inactive again */
    T_OK(lvrpc_network_destroy(c, &(lvrpc_network_destroy_args){net}));
    started = 0;
    T_OK(lvrpc_network_is_active(c, &(lvrpc_network_is_active_args){net}, &act));
    T_INTEQ(act->active, 0);
    T_OK(lvrpc_connect_list_all_networks(c, &la, &active));
    T_CHECK(!net_listed(active, name));
    /* undefine: gone */
    T_OK(lvrpc_network_undefine(c, &(lvrpc_network_undefine_args){net}));
    defined = 0;
    lvrpc_reply_free(byname);
    byname = NULL;
    T_REMOTE_ERR(lvrpc_network_lookup_by_name(c, &na, &byname), VIR_ERR_NO_NETWORK, name);
out:
    if (started)
        lvrpc_network_destroy(c, &(lvrpc_network_destroy_args){net});
    if (defined)
        lvrpc_network_undefine(c, &(lvrpc_network_undefine_args){net});
    lvrpc_reply_free(before);
    lvrpc_reply_free(after);
    lvrpc_reply_free(active);
    lvrpc_reply_free(def);
    lvrpc_reply_free(byname);
    lvrpc_reply_free(byuuid);
    lvrpc_reply_free(act);
    lvrpc_reply_free(pers);
    lvrpc_reply_free(desc);
    lvrpc_reply_free(br);
    return t->failed ? -1 : 0;
}

/* ------------------------------------------------------------------ storage */

static int pool_listed(const lvrpc_connect_list_all_storage_pools_ret *l, const char *name)
{
    for (unsigned i = 0; i < l->pools.pools_len; i++)
        if (strcmp(l->pools.pools_val[i].name, name) == 0)
            return 1;
    return 0;
}

/* A dir pool (the test driver never touches its path) with a volume in it. */
static int fam_storage(lvrpc_client *c, lvrpct_ctx *t)
{
    char name[64], path[128], vpath[160], uuid_text[37], xml[512];
    unsigned char uuid[16];
    lvrpc_connect_list_all_storage_pools_args la = {1, 0};
    lvrpc_connect_list_all_storage_pools_ret *before = NULL, *after = NULL;
    lvrpc_storage_pool_define_xml_args da;
    lvrpc_storage_pool_define_xml_ret *def = NULL;
    lvrpc_storage_pool_lookup_by_name_args na;
    lvrpc_storage_pool_lookup_by_name_ret *byname = NULL;
    lvrpc_storage_pool_lookup_by_uuid_args ua;
    lvrpc_storage_pool_lookup_by_uuid_ret *byuuid = NULL;
    lvrpc_storage_pool_is_active_ret *act = NULL;
    lvrpc_storage_pool_get_info_ret *info = NULL;
    lvrpc_storage_pool_get_xml_desc_ret *desc = NULL;
    lvrpc_storage_vol_create_xml_args vca;
    lvrpc_storage_vol_create_xml_ret *vol = NULL;
    lvrpc_storage_vol_lookup_by_name_ret *vbyname = NULL;
    lvrpc_storage_vol_lookup_by_path_ret *vbypath = NULL;
    lvrpc_storage_vol_lookup_by_key_ret *vbykey = NULL;
    lvrpc_storage_vol_get_info_ret *vinfo = NULL;
    lvrpc_storage_vol_get_path_ret *vp = NULL;
    lvrpc_storage_vol_get_xml_desc_ret *vdesc = NULL;
    lvrpc_storage_pool_list_all_volumes_ret *vols = NULL;
    lvrpc_storage_pool_lookup_by_volume_ret *pbyvol = NULL;
    lvrpc_storage_pool_num_of_volumes_ret *nvols = NULL;
    lvrpc_pool_ref pool;
    lvrpc_vol_ref vref;
    int defined = 0, started = 0, has_vol = 0;

    memset(&pool, 0, sizeof(pool));
    memset(&vref, 0, sizeof(vref));
    snprintf(name, sizeof(name), "lvrpct-%s-pool", t->tag);
    snprintf(path, sizeof(path), "/nonexistent/lvrpct/%s", name);
    snprintf(vpath, sizeof(vpath), "%s/vol1.img", path);
    uuid_for(name, uuid, uuid_text);
    snprintf(xml, sizeof(xml),
             "<pool type='dir'>\n  <name>%s</name>\n  <uuid>%s</uuid>\n"
             "  <target><path>%s</path></target>\n</pool>\n",
             name, uuid_text, path);

    T_OK(lvrpc_connect_list_all_storage_pools(c, &la, &before));
    T_CHECK(before->ret == before->pools.pools_len);
    T_CHECK(pool_listed(before, "default-pool")); /* the test driver's own pool */

    /* define: inactive */
    da.xml = xml;
    da.flags = 0;
    T_OK(lvrpc_storage_pool_define_xml(c, &da, &def));
    defined = 1;
    T_STREQ(def->pool.name, name);
    T_CHECK(memcmp(def->pool.uuid, uuid, 16) == 0);
    pool = def->pool;
    na.name = name;
    T_OK(lvrpc_storage_pool_lookup_by_name(c, &na, &byname));
    T_CHECK(memcmp(byname->pool.uuid, uuid, 16) == 0);
    memcpy(ua.uuid, uuid, 16);
    T_OK(lvrpc_storage_pool_lookup_by_uuid(c, &ua, &byuuid));
    T_STREQ(byuuid->pool.name, name);
    T_OK(lvrpc_connect_list_all_storage_pools(c, &la, &after));
    T_CHECK(pool_listed(after, name));
    if (t->exclusive)
        T_INTEQ(after->ret, before->ret + 1);
    T_OK(lvrpc_storage_pool_is_active(c, &(lvrpc_storage_pool_is_active_args){pool}, &act));
    T_INTEQ(act->active, 0);
    lvrpc_reply_free(act);
    act = NULL;
    T_OK(lvrpc_storage_pool_get_xml_desc(c, &(lvrpc_storage_pool_get_xml_desc_args){pool, 0},
                                         &desc));
    T_CHECK(strstr(desc->xml, "<pool type='dir'>") != NULL);
    T_CHECK(strstr(desc->xml, name) != NULL);
    T_CHECK(strstr(desc->xml, path) != NULL);

    /* start: running, with the test driver's fixed 100 GiB */
    T_OK(lvrpc_storage_pool_create(c, &(lvrpc_storage_pool_create_args){pool, 0}));
    started = 1;
    T_OK(lvrpc_storage_pool_is_active(c, &(lvrpc_storage_pool_is_active_args){pool}, &act));
    T_INTEQ(act->active, 1);
    T_OK(lvrpc_storage_pool_get_info(c, &(lvrpc_storage_pool_get_info_args){pool}, &info));
    T_INTEQ(info->state, VIR_STORAGE_POOL_RUNNING);
    T_CHECK(info->capacity > 0);
    T_INTEQ(info->allocation, 0);
    T_INTEQ(info->available, info->capacity);
    lvrpc_reply_free(info);
    info = NULL;

    /* a volume: created, found three ways, its info and path */
    vca.pool = pool;
    vca.xml = "<volume>\n  <name>vol1.img</name>\n"
              "  <capacity unit='bytes'>1048576</capacity>\n"
              "  <allocation unit='bytes'>4096</allocation>\n</volume>\n";
    vca.flags = 0;
    T_OK(lvrpc_storage_vol_create_xml(c, &vca, &vol));
    has_vol = 1;
    vref = vol->vol;
    T_STREQ(vref.pool, name);
    T_STREQ(vref.name, "vol1.img");
    T_STREQ(vref.key, vpath);
    T_OK(lvrpc_storage_vol_lookup_by_name(
        c, &(lvrpc_storage_vol_lookup_by_name_args){pool, "vol1.img"}, &vbyname));
    T_STREQ(vbyname->vol.key, vpath);
    T_OK(lvrpc_storage_vol_lookup_by_path(c, &(lvrpc_storage_vol_lookup_by_path_args){vpath},
                                          &vbypath));
    T_STREQ(vbypath->vol.name, "vol1.img");
    T_STREQ(vbypath->vol.pool, name);
    T_OK(lvrpc_storage_vol_lookup_by_key(c, &(lvrpc_storage_vol_lookup_by_key_args){vpath},
                                         &vbykey));
    T_STREQ(vbykey->vol.name, "vol1.img");
    T_OK(lvrpc_storage_vol_get_info(c, &(lvrpc_storage_vol_get_info_args){vref}, &vinfo));
    T_INTEQ(vinfo->type, VIR_STORAGE_VOL_FILE);
    T_INTEQ(vinfo->capacity, 1048576);
    T_INTEQ(vinfo->allocation, 4096);
    T_OK(lvrpc_storage_vol_get_path(c, &(lvrpc_storage_vol_get_path_args){vref}, &vp));
    T_STREQ(vp->name, vpath);
    T_OK(lvrpc_storage_vol_get_xml_desc(c, &(lvrpc_storage_vol_get_xml_desc_args){vref, 0},
                                        &vdesc));
    T_CHECK(strstr(vdesc->xml, "<name>vol1.img</name>") != NULL);
    T_CHECK(strstr(vdesc->xml, "<capacity unit='bytes'>1048576</capacity>") != NULL);
    T_OK(lvrpc_storage_pool_list_all_volumes(
        c, &(lvrpc_storage_pool_list_all_volumes_args){pool, 1, 0}, &vols));
    T_INTEQ(vols->ret, 1);
    T_INTEQ(vols->vols.vols_len, 1);
    T_STREQ(vols->vols.vols_val[0].name, "vol1.img");
    T_OK(lvrpc_storage_pool_num_of_volumes(
        c, &(lvrpc_storage_pool_num_of_volumes_args){pool}, &nvols));
    T_INTEQ(nvols->num, 1);
    T_OK(lvrpc_storage_pool_lookup_by_volume(
        c, &(lvrpc_storage_pool_lookup_by_volume_args){vref}, &pbyvol));
    T_STREQ(pbyvol->pool.name, name);
    /* the pool accounts for the volume */
    T_OK(lvrpc_storage_pool_get_info(c, &(lvrpc_storage_pool_get_info_args){pool}, &info));
    T_INTEQ(info->allocation, 4096);
    T_INTEQ(info->allocation + info->available, info->capacity);
    lvrpc_reply_free(info);
    info = NULL;
    /* the same volume twice is refused */
    {
        lvrpc_storage_vol_create_xml_ret *dup = NULL;
        T_REMOTE_ERR(lvrpc_storage_vol_create_xml(c, &vca, &dup), VIR_ERR_OPERATION_FAILED,
                     "already exists");
    }

    /* delete the volume: gone */
    T_OK(lvrpc_storage_vol_delete(c, &(lvrpc_storage_vol_delete_args){vref, 0}));
    has_vol = 0;
    lvrpc_reply_free(vbyname);
    vbyname = NULL;
    T_REMOTE_ERR(lvrpc_storage_vol_lookup_by_name(
                     c, &(lvrpc_storage_vol_lookup_by_name_args){pool, "vol1.img"}, &vbyname),
                 VIR_ERR_NO_STORAGE_VOL, "vol1.img");
    T_OK(lvrpc_storage_pool_get_info(c, &(lvrpc_storage_pool_get_info_args){pool}, &info));
    T_INTEQ(info->allocation, 0);

    /* an active pool cannot be undefined; destroy, then undefine */
    T_REMOTE_ERR(lvrpc_storage_pool_undefine(c, &(lvrpc_storage_pool_undefine_args){pool}),
                 VIR_ERR_OPERATION_INVALID, "is active");
    T_OK(lvrpc_storage_pool_destroy(c, &(lvrpc_storage_pool_destroy_args){pool}));
    started = 0;
    lvrpc_reply_free(act);
    act = NULL;
    T_OK(lvrpc_storage_pool_is_active(c, &(lvrpc_storage_pool_is_active_args){pool}, &act));
    T_INTEQ(act->active, 0);
    T_OK(lvrpc_storage_pool_undefine(c, &(lvrpc_storage_pool_undefine_args){pool}));
    defined = 0;
    lvrpc_reply_free(byname);
    byname = NULL;
    T_REMOTE_ERR(lvrpc_storage_pool_lookup_by_name(c, &na, &byname), VIR_ERR_NO_STORAGE_POOL,
                 name);
out:
    if (has_vol)
        lvrpc_storage_vol_delete(c, &(lvrpc_storage_vol_delete_args){vref, 0});
    if (started)
        lvrpc_storage_pool_destroy(c, &(lvrpc_storage_pool_destroy_args){pool});
    if (defined)
        lvrpc_storage_pool_undefine(c, &(lvrpc_storage_pool_undefine_args){pool});
    lvrpc_reply_free(before);
    lvrpc_reply_free(after);
    lvrpc_reply_free(def);
    lvrpc_reply_free(byname);
    lvrpc_reply_free(byuuid);
    lvrpc_reply_free(act);
    lvrpc_reply_free(info);
    lvrpc_reply_free(desc);
    lvrpc_reply_free(vol);
    lvrpc_reply_free(vbyname);
    lvrpc_reply_free(vbypath);
    lvrpc_reply_free(vbykey);
    lvrpc_reply_free(vinfo);
    lvrpc_reply_free(vp);
    lvrpc_reply_free(vdesc);
    lvrpc_reply_free(vols);
    lvrpc_reply_free(pbyvol);
    lvrpc_reply_free(nvols);
    return t->failed ? -1 : 0;
}

/* ------------------------------------------------------------------ server errors */

/* Missing objects give LVRPC_EREMOTE with libvirt's error number, domain
 * and message in the calling thread's record; the handle stays usable; a
 * later successful call leaves the record alone. */
static int fam_errors(lvrpc_client *c, lvrpct_ctx *t)
{
    char missing[64], xml[256];
    lvrpc_domain_lookup_by_name_args dn;
    lvrpc_domain_lookup_by_name_ret *d = NULL;
    lvrpc_domain_lookup_by_uuid_args du;
    lvrpc_domain_lookup_by_uuid_ret *dbu = NULL;
    lvrpc_domain_lookup_by_id_args di = {987654};
    lvrpc_domain_lookup_by_id_ret *dbi = NULL;
    lvrpc_network_lookup_by_name_ret *n = NULL;
    lvrpc_storage_pool_lookup_by_name_ret *p = NULL;
    lvrpc_storage_pool_lookup_by_name_ret *dp = NULL;
    lvrpc_storage_vol_lookup_by_name_ret *v = NULL;
    lvrpc_domain_define_xml_flags_ret *dd = NULL;
    lvrpc_connect_get_lib_version_ret *lib = NULL;
    lvrpc_error e;
    char uuid_text[37];

    snprintf(missing, sizeof(missing), "lvrpct-%s-missing", t->tag);
    dn.name = missing;
    T_REMOTE_ERR(lvrpc_domain_lookup_by_name(c, &dn, &d), VIR_ERR_NO_DOMAIN, "Domain not found");
    T_CHECK(d == NULL);
    lvrpc_last_error(&e);
    T_INTEQ(e.remote_domain, VIR_FROM_TEST);
    T_INTEQ(e.remote_level, 2);
    uuid_for(missing, (unsigned char *)du.uuid, uuid_text);
    T_REMOTE_ERR(lvrpc_domain_lookup_by_uuid(c, &du, &dbu), VIR_ERR_NO_DOMAIN, NULL);
    T_REMOTE_ERR(lvrpc_domain_lookup_by_id(c, &di, &dbi), VIR_ERR_NO_DOMAIN, NULL);
    /* the network and pool messages name the object: each thread must see
     * its own name in its own record */
    T_REMOTE_ERR(lvrpc_network_lookup_by_name(c, &(lvrpc_network_lookup_by_name_args){missing},
                                              &n),
                 VIR_ERR_NO_NETWORK, missing);
    T_CHECK(strstr(lvrpc_last_message(), "Network not found") != NULL);
    T_REMOTE_ERR(lvrpc_storage_pool_lookup_by_name(
                     c, &(lvrpc_storage_pool_lookup_by_name_args){missing}, &p),
                 VIR_ERR_NO_STORAGE_POOL, missing);
    T_CHECK(strstr(lvrpc_last_message(), "Storage pool not found") != NULL);
    T_OK(lvrpc_storage_pool_lookup_by_name(
        c, &(lvrpc_storage_pool_lookup_by_name_args){"default-pool"}, &dp));
    T_REMOTE_ERR(lvrpc_storage_vol_lookup_by_name(
                     c, &(lvrpc_storage_vol_lookup_by_name_args){dp->pool, missing}, &v),
                 VIR_ERR_NO_STORAGE_VOL, missing);
    /* bad XML */
    snprintf(xml, sizeof(xml), "<domain type='test'><name>%s</name></domain>", missing);
    T_REMOTE_ERR(lvrpc_domain_define_xml_flags(c, &(lvrpc_domain_define_xml_flags_args){xml, 0},
                                               &dd),
                 VIR_ERR_XML_ERROR, "os <type>");
    /* an unknown procedure is refused by the daemon's dispatcher */
    T_REMOTE_ERR(lvrpc_call(c, LVRPC_PROGRAM_REMOTE, LVRPC_PROGRAM_REMOTE_VERSION, 99999, NULL,
                            NULL, NULL, 0, NULL),
                 VIR_ERR_RPC, "unknown procedure");
    /* the handle still works, and success leaves the error record alone */
    T_OK(lvrpc_connect_get_lib_version(c, &lib));
    T_INTEQ(lvrpc_last_error(&e), LVRPC_EREMOTE);
    T_INTEQ(e.remote_code, VIR_ERR_RPC);
out:
    lvrpc_reply_free(d);
    lvrpc_reply_free(dbu);
    lvrpc_reply_free(dbi);
    lvrpc_reply_free(n);
    lvrpc_reply_free(p);
    lvrpc_reply_free(dp);
    lvrpc_reply_free(v);
    lvrpc_reply_free(dd);
    lvrpc_reply_free(lib);
    return t->failed ? -1 : 0;
}

/* The generic entry point, with routines from the procedure table. */
static int fam_generic_call(lvrpc_client *c, lvrpct_ctx *t)
{
    const lvrpc_proc_info *hp = lvrpc_proc_by_name("CONNECT_GET_HOSTNAME");
    const lvrpc_proc_info *lp = lvrpc_proc_by_name("DOMAIN_LOOKUP_BY_NAME");
    lvrpc_connect_get_hostname_ret *h1 = NULL, *h2 = NULL;
    lvrpc_domain_lookup_by_name_ret *d = NULL;
    lvrpc_domain_lookup_by_name_args a = {"test"};
    void *r = NULL;

    T_CHECK(hp && lp);
    T_OK(lvrpc_call(c, hp->prog, LVRPC_PROGRAM_REMOTE_VERSION, hp->proc, hp->xdr_args, NULL,
                    hp->xdr_ret, hp->ret_size, &r));
    h1 = r;
    T_OK(lvrpc_connect_get_hostname(c, &h2));
    T_STREQ(h1->hostname, h2->hostname);
    r = NULL;
    T_OK(lvrpc_call(c, lp->prog, LVRPC_PROGRAM_REMOTE_VERSION, lp->proc, lp->xdr_args, &a,
                    lp->xdr_ret, lp->ret_size, &r));
    d = r;
    T_STREQ(d->dom.name, "test");
    T_INTEQ(d->dom.id, 1);
    /* a reply routine needs somewhere to put the reply */
    T_CHECK(lvrpc_call(c, hp->prog, 1, hp->proc, NULL, NULL, hp->xdr_ret, hp->ret_size, NULL) ==
            LVRPC_EINVAL);
    /* a program the daemon does not have */
    T_REMOTE_ERR(lvrpc_call(c, 0x12345, 1, 1, NULL, NULL, NULL, 0, NULL), VIR_ERR_RPC,
                 "Cannot find program");
out:
    lvrpc_reply_free(h1);
    lvrpc_reply_free(h2);
    lvrpc_reply_free(d);
    return t->failed ? -1 : 0;
}

/* ------------------------------------------------------------------ the families */

typedef struct family {
    const char *name;
    int (*run)(lvrpc_client *c, lvrpct_ctx *t);
} family;

static const family families[] = {
    {"connect: type, versions, hostname, capabilities, sysinfo, uri, features", fam_connect},
    {"connect: node info, free memory", fam_node},
    {"connect: list all domains, num of domains", fam_connect_lists},
    {"domains: lookup by name/uuid/id, info, state, xml", fam_domain_lookup},
    {"domains: define, create, suspend, resume, shutdown, reboot, destroy, undefine",
     fam_domain_lifecycle},
    {"domains: create xml (transient), define/undefine", fam_domain_transient},
    {"networks: list, define, lookup, create, destroy, undefine, xml", fam_network},
    {"storage: pools and volumes", fam_storage},
    {"server errors: EREMOTE with libvirt's code and message", fam_errors},
    {"generic lvrpc_call", fam_generic_call},
};
#define NFAMILIES (sizeof(families) / sizeof(families[0]))

static void run_family(size_t i)
{
    lvrpct_ctx t;

    CU_ASSERT_PTR_NOT_NULL_FATAL(cur.c);
    lvrpct_ctx_init(&t, "s", 0, 1);
    families[i].run(cur.c, &t);
    lvrpct_ctx_report(&t, families[i].name);
}

#define FAMILY_TEST(i) \
    static void test_family_##i(void) { run_family(i); }
FAMILY_TEST(0)
FAMILY_TEST(1)
FAMILY_TEST(2)
FAMILY_TEST(3)
FAMILY_TEST(4)
FAMILY_TEST(5)
FAMILY_TEST(6)
FAMILY_TEST(7)
FAMILY_TEST(8)
FAMILY_TEST(9)

/* The handle itself: mode, name, counters, a read-only handle. */
static void test_handle(void)
{
    lvrpc_stats s0, s1;
    lvrpc_client *ro = NULL;
    lvrpc_options o;
    lvrpc_connect_get_lib_version_ret *lib = NULL;
    lvrpc_domain_lookup_by_name_ret *d = NULL;
    lvrpc_domain_define_xml_flags_ret *dd = NULL;
    lvrpc_error e;

    CU_ASSERT_PTR_NOT_NULL_FATAL(cur.c);
    LVRPCT_ASSERT_INT(lvrpc_get_mode(cur.c), cur.cfg->mode);
    LVRPCT_ASSERT_STR(lvrpc_get_name(cur.c), "test:///default");
    lvrpc_get_stats(cur.c, &s0);
    LVRPCT_ASSERT(s0.sockets_open >= 1);
    LVRPCT_ASSERT(s0.sockets_opened >= 1);
    LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(cur.c, &lib));
    lvrpc_reply_free(lib);
    LVRPCT_ASSERT_RC(lvrpc_domain_lookup_by_name(
                         cur.c, &(lvrpc_domain_lookup_by_name_args){"lvrpct-no-such"}, &d),
                     LVRPC_EREMOTE);
    lvrpc_get_stats(cur.c, &s1);
    LVRPCT_ASSERT_INT(s1.calls, s0.calls + 2);
    LVRPCT_ASSERT_INT(s1.errors, s0.errors + 1);
    /* a daemon error does not cost a connection */
    LVRPCT_ASSERT_INT(s1.sockets_opened, s0.sockets_opened);
    /* a timeout setting that leaves calls working */
    lvrpc_set_timeout(cur.c, 5000);
    LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(cur.c, &lib));
    lvrpc_reply_free(lib);
    lvrpc_set_timeout(cur.c, 0);

    /* read-only: reads work, writes are refused by the daemon */
    memset(&o, 0, sizeof(o));
    o.mode = cur.cfg->mode;
    o.flags = LVRPC_OPEN_READONLY;
    LVRPCT_ASSERT_OK(lvrpc_open(cur.uri, &o, &ro));
    if (ro) {
        LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(ro, &lib));
        lvrpc_reply_free(lib);
        LVRPCT_ASSERT_RC(lvrpc_domain_define_xml_flags(
                             ro,
                             &(lvrpc_domain_define_xml_flags_args){
                                 "<domain type='test'><name>lvrpct-ro</name></domain>", 0},
                             &dd),
                         LVRPC_EREMOTE);
        lvrpc_last_error(&e);
        LVRPCT_ASSERT_INT(e.remote_code, VIR_ERR_OPERATION_DENIED);
        LVRPCT_ASSERT(strstr(e.message, "read only") != NULL);
        LVRPCT_ASSERT(dd == NULL);
        lvrpc_close(ro);
    }
}

/* ------------------------------------------------------------------ threads */

typedef struct worker {
    pthread_t thread;
    pthread_barrier_t *start;
    lvrpc_client *c;
    lvrpct_ctx t;
    unsigned families_passed;
    int64_t usec;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    struct timespec a, b;

    pthread_barrier_wait(w->start);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (size_t i = 0; i < NFAMILIES; i++) {
        if (families[i].run(w->c, &w->t) != 0)
            break;
        w->families_passed++;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    w->usec = (b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000;
    return NULL;
}

/* Every family from NTHREADS threads at once on the one handle. */
static void test_threads(void)
{
    worker *w = calloc(NTHREADS, sizeof(*w));
    pthread_barrier_t start;
    unsigned passed = 0, checks = 0;
    int started = 0;
    lvrpc_stats st;

    CU_ASSERT_PTR_NOT_NULL_FATAL(cur.c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    /* the workers and this thread: all start together */
    pthread_barrier_init(&start, NULL, NTHREADS + 1);
    for (int i = 0; i < NTHREADS; i++) {
        char tag[16];
        snprintf(tag, sizeof(tag), "t%02d", i);
        lvrpct_ctx_init(&w[i].t, tag, i, 0);
        w[i].c = cur.c;
        w[i].start = &start;
        if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
            lvrpct_hard_error("pthread_create failed");
            exit(LVRPCT_EXIT_HARD); /* the others wait at the barrier forever */
        }
        started++;
    }
    pthread_barrier_wait(&start);
    for (int i = 0; i < started; i++)
        pthread_join(w[i].thread, NULL);
    for (int i = 0; i < started; i++) {
        char what[96];
        snprintf(what, sizeof(what), "thread %d (%u of %zu families passed, %lld ms)", i,
                 w[i].families_passed, NFAMILIES, (long long)(w[i].usec / 1000));
        lvrpct_ctx_report(&w[i].t, what);
        passed += !w[i].t.failed && w[i].families_passed == NFAMILIES;
        checks += w[i].t.checks;
    }
    LVRPCT_ASSERT_INT(passed, NTHREADS);
    lvrpc_get_stats(cur.c, &st);
    printf("\n    %u of %d threads passed every family (%u checks); handle: %llu calls, "
           "%llu errors, %llu sockets opened, %u open\n",
           passed, NTHREADS, checks, (unsigned long long)st.calls,
           (unsigned long long)st.errors, (unsigned long long)st.sockets_opened,
           st.sockets_open);
    pthread_barrier_destroy(&start);
    free(w);

    /* the state is consistent afterwards: every thread removed its objects */
    {
        lvrpct_ctx t;
        lvrpct_ctx_init(&t, "after", 0, 1);
        fam_connect_lists(cur.c, &t);
        lvrpct_ctx_report(&t, "lists after the threads");
    }
}

/* ------------------------------------------------------------------ suites */

static const suite_cfg cfgs[] = {
    {"direct-tcp", LVRPC_MODE_DIRECT, 0, 0},
    {"direct-unix", LVRPC_MODE_DIRECT, 1, 0},
    {"shared-tcp", LVRPC_MODE_SHARED, 0, 0},
    {"shared-unix", LVRPC_MODE_SHARED, 1, 0},
    {"direct-tcp-16threads", LVRPC_MODE_DIRECT, 0, NTHREADS},
    {"direct-unix-16threads", LVRPC_MODE_DIRECT, 1, NTHREADS},
    {"shared-tcp-16threads", LVRPC_MODE_SHARED, 0, NTHREADS},
#ifdef HAVE_OPENSSL
    {"direct-tls", LVRPC_MODE_DIRECT, USE_TLS, 0},
    {"shared-tls", LVRPC_MODE_SHARED, USE_TLS, 0},
    {"direct-tls-16threads", LVRPC_MODE_DIRECT, USE_TLS, NTHREADS},
    {"shared-tls-16threads", LVRPC_MODE_SHARED, USE_TLS, NTHREADS},
#endif
};

#define SUITE_FUNCS(i) \
    static int init_##i(void) { return suite_init(&cfgs[i]); }
SUITE_FUNCS(0)
SUITE_FUNCS(1)
SUITE_FUNCS(2)
SUITE_FUNCS(3)
SUITE_FUNCS(4)
SUITE_FUNCS(5)
SUITE_FUNCS(6)
#ifdef HAVE_OPENSSL
SUITE_FUNCS(7)
SUITE_FUNCS(8)
SUITE_FUNCS(9)
SUITE_FUNCS(10)
#endif

static const CU_InitializeFunc inits[] = {init_0, init_1, init_2, init_3, init_4, init_5,
                                          init_6,
#ifdef HAVE_OPENSSL
                                          init_7, init_8, init_9, init_10,
#endif
};

static const lvrpct_test thread_tests[] = {
    {"every family from 16 threads on one handle", test_threads},
    {NULL, NULL},
};

static const CU_TestFunc family_funcs[] = {
    test_family_0, test_family_1, test_family_2, test_family_3, test_family_4,
    test_family_5, test_family_6, test_family_7, test_family_8, test_family_9,
};

static lvrpct_test family_tests[NFAMILIES + 2];

static void add_suites(void)
{
    _Static_assert(sizeof(cfgs) / sizeof(cfgs[0]) == sizeof(inits) / sizeof(inits[0]),
                   "one init per suite");
    _Static_assert(sizeof(family_funcs) / sizeof(family_funcs[0]) == NFAMILIES,
                   "one FAMILY_TEST per family");
    family_tests[0] = (lvrpct_test){"handle: mode, name, stats, read-only", test_handle};
    for (size_t i = 0; i < NFAMILIES; i++)
        family_tests[i + 1] = (lvrpct_test){families[i].name, family_funcs[i]};
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
        lvrpct_add_suite(cfgs[i].name, inits[i], suite_cleanup,
                         cfgs[i].threads ? thread_tests : family_tests);
}

int main(int argc, char **argv)
{
    return lvrpct_main(argc, argv, add_suites);
}
