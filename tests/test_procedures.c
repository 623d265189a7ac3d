/* test_procedures.c - the typed calls against a real libvirtd.
 *
 * A private libvirtd (test driver, tests/libvirtd-up.sh) is started for the
 * program.  Each CUnit test drives one family of procedures through the
 * generated typed calls and checks what comes back, so every procedure that
 * libvirt 9.0's test driver implements is called at least once with a
 * checked result; the last test compares the procedures reached with that
 * list (test_driver_procs[] below) and fails if one was missed without a
 * reason given in not_reached[].
 *
 * Also here:
 *   - the procedure table: counts per program, names, numbers, flags;
 *   - a procedure the daemon does not know (DOMAIN_SET_THROTTLE_GROUP, 451,
 *     newer than libvirt 9.0) fails with LVRPC_EREMOTE "unknown procedure"
 *     and the handle keeps working;
 *   - the QEMU and LXC programs reach the daemon (the test driver answers
 *     "not supported");
 *   - the procedures only the real storage driver implements (volume
 *     resize, wipe, info flags, pool capabilities, ...), against a second
 *     libvirtd with that driver (tests/libvirtd-storage-up.sh);
 *   - the admin program over the daemon's admin socket
 *     (DIR/sock/libvirt-admin-sock): servers, clients, thread pools,
 *     client limits, logging settings.  lvrpc_open() speaks the remote
 *     program's handshake, which the admin server rejects, so this part
 *     talks to the socket directly with the generated XDR routines.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "harness.h"

/* libvirt's numbers used below (virterror.h, libvirt-*.h). */
enum {
    VIR_ERR_INTERNAL_ERROR = 1,
    VIR_ERR_NO_SUPPORT = 3,
    VIR_ERR_INVALID_ARG = 8,
    VIR_ERR_RPC = 39,
    VIR_ERR_NO_DOMAIN = 42,
    VIR_ERR_NO_NETWORK = 43,
    VIR_ERR_OPERATION_INVALID = 55,
    VIR_ERR_NO_INTERFACE = 57,
    VIR_ERR_NO_DOMAIN_SNAPSHOT = 72,
    VIR_ERR_NO_DOMAIN_METADATA = 80,
    VIR_ERR_NO_DOMAIN_CHECKPOINT = 103,
};
enum {
    VIR_DOMAIN_RUNNING = 1,
    VIR_DOMAIN_PAUSED = 3,
    VIR_DOMAIN_SHUTOFF = 5,
    VIR_DOMAIN_AFFECT_CONFIG = 2,
    VIR_DOMAIN_VCPU_MAXIMUM = 4,
    VIR_DOMAIN_METADATA_DESCRIPTION = 0,
    VIR_DOMAIN_METADATA_TITLE = 1,
    VIR_DOMAIN_EVENT_ID_LIFECYCLE = 0,
    VIR_DOMAIN_EVENT_ID_REBOOT = 1,
    VIR_NETWORK_EVENT_ID_LIFECYCLE = 0,
    VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE = 0,
    VIR_NODE_DEVICE_EVENT_ID_LIFECYCLE = 0,
    VIR_DRV_FEATURE_TYPED_PARAM_STRING = 9,
    VIR_NETWORK_UPDATE_COMMAND_ADD_LAST = 3,
    VIR_NETWORK_SECTION_IP_DHCP_HOST = 4,
    VIR_NETWORK_UPDATE_AFFECT_LIVE = 1,
    VIR_NETWORK_UPDATE_AFFECT_CONFIG = 2,
    VIR_DOMAIN_CORE_DUMP_FORMAT_RAW = 0,
    VIR_DOMAIN_LIFECYCLE_POWEROFF = 0,
    VIR_DOMAIN_LIFECYCLE_ACTION_DESTROY = 0,
    VIR_KEYCODE_SET_LINUX = 0,
    VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE = 0,
    VIR_DOMAIN_PROCESS_SIGNAL_NOP = 0,
};

/* ------------------------------------------------------------------ state */

static lvrpct_daemon daemon_;
static lvrpc_client *c;
static unsigned long lib_version;

/* Remote procedures answered by the daemon (a reply or an error reply). */
static unsigned char reached[LVRPC_PROC_COUNT_REMOTE + 1];

/* Marks the procedure behind typed call lvrpc_<fn> as reached when the
 * daemon answered it, and passes rc on. */
static int mark(const char *fn, int rc)
{
    const lvrpc_proc_info *p = lvrpc_proc_by_name(fn);
    if (!p)
        lvrpct_assert(0, __FILE__, __LINE__, "no procedure for typed call lvrpc_%s", fn);
    else if (p->prog == LVRPC_PROGRAM_REMOTE && (rc == LVRPC_OK || rc == LVRPC_EREMOTE) &&
             p->proc > 0 && p->proc <= LVRPC_PROC_COUNT_REMOTE)
        reached[p->proc] = 1;
    return rc;
}

/* CALL(fn, args...) is lvrpc_<fn>(c, args...), recorded with mark(). */
#define CALL(fn, ...) mark(#fn, lvrpc_##fn(c, __VA_ARGS__))
#define CALL0(fn) mark(#fn, lvrpc_##fn(c))
#define OK(fn, ...) LVRPCT_ASSERT_OK(CALL(fn, __VA_ARGS__))
#define OK0(fn) LVRPCT_ASSERT_OK(CALL0(fn))

/* The call must fail with LVRPC_EREMOTE and libvirt error number code. */
static void expect_remote(int rc, int code, const char *what, unsigned line)
{
    lvrpc_error e;
    lvrpc_last_error(&e);
    lvrpct_assert(rc == LVRPC_EREMOTE && e.remote_code == code && e.message[0], __FILE__, line,
                  "%s -> %d %s, remote_code %d (want EREMOTE, %d): %s", what, rc,
                  lvrpc_strerror(rc), e.remote_code, code, e.message);
}
#define ERR(code, fn, ...) expect_remote(CALL(fn, __VA_ARGS__), (code), #fn, __LINE__)

#define FREE(p) do { lvrpc_reply_free(p); (p) = NULL; } while (0)

/* A fixed UUID per small integer, in raw and text form. */
static void uuid_of(int n, lvrpc_uuid raw, char text[37])
{
    for (int i = 0; i < 16; i++)
        raw[i] = (char)(i == 15 ? n : 0x40 + i);
    snprintf(text, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             (unsigned char)raw[0], (unsigned char)raw[1], (unsigned char)raw[2],
             (unsigned char)raw[3], (unsigned char)raw[4], (unsigned char)raw[5],
             (unsigned char)raw[6], (unsigned char)raw[7], (unsigned char)raw[8],
             (unsigned char)raw[9], (unsigned char)raw[10], (unsigned char)raw[11],
             (unsigned char)raw[12], (unsigned char)raw[13], (unsigned char)raw[14],
             (unsigned char)raw[15]);
}

static char *dom_xml(char *buf, size_t size, const char *name, int uuid_n)
{
    lvrpc_uuid raw;
    char text[37];
    uuid_of(uuid_n, raw, text);
    snprintf(buf, size,
             "<domain type='test'><name>%s</name><uuid>%s</uuid>"
             "<memory unit='KiB'>131072</memory><currentMemory unit='KiB'>65536</currentMemory>"
             "<vcpu placement='static' current='1'>2</vcpu>"
             "<os><type arch='i686'>hvm</type></os>"
             "<devices><disk type='file' device='disk'><source file='/guest/%s.img'/>"
             "<target dev='vda' bus='virtio'/></disk><memballoon model='virtio'/></devices>"
             "</domain>",
             name, text, name);
    return buf;
}

/* A typed parameter of each kind (field names are the caller's). */
static lvrpc_typed_param tp_ullong(char *field, uint64_t v)
{
    lvrpc_typed_param p;
    memset(&p, 0, sizeof(p));
    p.field = field;
    p.value.type = LVRPC_TYPED_PARAM_ULLONG;
    p.value.lvrpc_typed_value_u.ul = v;
    return p;
}

static lvrpc_typed_param tp_uint(char *field, unsigned v)
{
    lvrpc_typed_param p;
    memset(&p, 0, sizeof(p));
    p.field = field;
    p.value.type = LVRPC_TYPED_PARAM_UINT;
    p.value.lvrpc_typed_value_u.ui = v;
    return p;
}

static lvrpc_typed_param tp_string(char *field, char *v)
{
    lvrpc_typed_param p;
    memset(&p, 0, sizeof(p));
    p.field = field;
    p.value.type = LVRPC_TYPED_PARAM_STRING;
    p.value.lvrpc_typed_value_u.s = v;
    return p;
}

static const lvrpc_typed_param *find_param(const lvrpc_typed_param *p, unsigned n,
                                           const char *field)
{
    for (unsigned i = 0; i < n; i++)
        if (strcmp(p[i].field, field) == 0)
            return &p[i];
    return NULL;
}

/* The test driver's own running domain "test", looked up by name. */
static lvrpc_domain_lookup_by_name_ret *lookup_test(void)
{
    lvrpc_domain_lookup_by_name_args a = {"test"};
    lvrpc_domain_lookup_by_name_ret *r = NULL;
    OK(domain_lookup_by_name, &a, &r);
    return r;
}

/* ------------------------------------------------------------------ suite */

static int suite_init(void)
{
    if (lvrpct_daemon_start(&daemon_) != 0)
        return 1;
    lib_version = lvrpct_version_number(daemon_.version);
    if (lvrpct_open(daemon_.uri_unix, LVRPC_MODE_DIRECT, &c) != LVRPC_OK) {
        lvrpct_daemon_stop(&daemon_);
        return 1;
    }
    return 0;
}

static int suite_cleanup(void)
{
    lvrpc_close(c);
    c = NULL;
    lvrpct_daemon_stop(&daemon_);
    return 0;
}

/* ------------------------------------------------------------------ table */

static void test_table(void)
{
    size_t n = 0, counts[4] = {0, 0, 0, 0}, events = 0;
    const unsigned progs[4] = {LVRPC_PROGRAM_REMOTE, LVRPC_PROGRAM_QEMU, LVRPC_PROGRAM_LXC,
                               LVRPC_PROGRAM_ADMIN};
    const lvrpc_proc_info *t = lvrpc_proc_table(&n), *p;

    LVRPCT_ASSERT_INT(n, 453 + 7 + 1 + 19);
    LVRPCT_ASSERT_INT(LVRPC_PROC_COUNT_REMOTE, 453);
    LVRPCT_ASSERT_INT(LVRPC_PROC_COUNT_QEMU, 7);
    LVRPCT_ASSERT_INT(LVRPC_PROC_COUNT_LXC, 1);
    LVRPCT_ASSERT_INT(LVRPC_PROC_COUNT_ADMIN, 19);
    for (size_t i = 0; i < n; i++) {
        int k = -1;
        for (int j = 0; j < 4; j++)
            if (t[i].prog == progs[j])
                k = j;
        LVRPCT_ASSERT(k >= 0);
        if (k < 0)
            continue;
        counts[k]++;
        /* numbered 1..N within each program, in order */
        LVRPCT_ASSERT_INT(t[i].proc, (long long)counts[k]);
        LVRPCT_ASSERT(lvrpc_proc_by_number(t[i].prog, t[i].proc) == &t[i]);
        LVRPCT_ASSERT(lvrpc_proc_by_name(t[i].name) == &t[i]);
        if (t[i].flags & LVRPC_PROCF_EVENT) {
            events++;
            LVRPCT_ASSERT(t[i].xdr_msg && t[i].msg_size && !t[i].xdr_args && !t[i].xdr_ret);
        } else {
            LVRPCT_ASSERT(!t[i].xdr_msg && !t[i].msg_size);
        }
        LVRPCT_ASSERT((t[i].xdr_args == NULL) == (t[i].args_size == 0));
        LVRPCT_ASSERT((t[i].xdr_ret == NULL) == (t[i].ret_size == 0));
    }
    LVRPCT_ASSERT_INT(counts[0], 453);
    LVRPCT_ASSERT_INT(counts[1], 7);
    LVRPCT_ASSERT_INT(counts[2], 1);
    LVRPCT_ASSERT_INT(counts[3], 19);
    LVRPCT_ASSERT_INT(events, 53 + 1);

    /* names: table names, constant names, any case; programs kept apart */
    p = lvrpc_proc_by_name("DOMAIN_EVENT_NIC_MAC_CHANGE");
    LVRPCT_ASSERT(p && p->proc == 453 && (p->flags & LVRPC_PROCF_EVENT) &&
                  p->msg_size == sizeof(lvrpc_domain_event_nic_mac_change_msg));
    p = lvrpc_proc_by_name("LVRPC_PROC_CONNECT_OPEN");
    LVRPCT_ASSERT(p && p->prog == LVRPC_PROGRAM_REMOTE && p->proc == 1);
    p = lvrpc_proc_by_name("ADMIN_CONNECT_OPEN");
    LVRPCT_ASSERT(p && p->prog == LVRPC_PROGRAM_ADMIN && p->proc == 1);
    p = lvrpc_proc_by_name("lvrpc_admin_proc_server_list_clients");
    LVRPCT_ASSERT(p && p->prog == LVRPC_PROGRAM_ADMIN && p->proc == 8);
    p = lvrpc_proc_by_name("LVRPC_QEMU_PROC_DOMAIN_MONITOR_COMMAND_WITH_FILES");
    LVRPCT_ASSERT(p && p->prog == LVRPC_PROGRAM_QEMU && p->proc == 7 &&
                  (p->flags & (LVRPC_PROCF_FDS_IN | LVRPC_PROCF_FDS_OUT)) ==
                      (LVRPC_PROCF_FDS_IN | LVRPC_PROCF_FDS_OUT));
    p = lvrpc_proc_by_number(LVRPC_PROGRAM_LXC, 1);
    LVRPCT_ASSERT(p && strcmp(p->name, "LXC_DOMAIN_OPEN_NAMESPACE") == 0 &&
                  (p->flags & LVRPC_PROCF_FDS_OUT) && !p->xdr_ret);
    LVRPCT_ASSERT(lvrpc_proc_by_number(LVRPC_PROGRAM_QEMU, 8) == NULL);
    LVRPCT_ASSERT(lvrpc_proc_by_name("QEMU_NO_SUCH") == NULL);
    LVRPCT_ASSERT(lvrpc_proc_by_name(NULL) == NULL);

    /* stream and FD flags */
    p = lvrpc_proc_by_number(LVRPC_PROGRAM_REMOTE, LVRPC_PROC_STORAGE_VOL_DOWNLOAD);
    LVRPCT_ASSERT(p && p->flags == LVRPC_PROCF_STREAM_RECV);
    p = lvrpc_proc_by_number(LVRPC_PROGRAM_REMOTE, LVRPC_PROC_STORAGE_VOL_UPLOAD);
    LVRPCT_ASSERT(p && p->flags == LVRPC_PROCF_STREAM_SEND);
    p = lvrpc_proc_by_number(LVRPC_PROGRAM_REMOTE, LVRPC_PROC_DOMAIN_OPEN_CONSOLE);
    LVRPCT_ASSERT(p && p->flags == (LVRPC_PROCF_STREAM_RECV | LVRPC_PROCF_STREAM_SEND));
    p = lvrpc_proc_by_number(LVRPC_PROGRAM_REMOTE, LVRPC_PROC_DOMAIN_OPEN_GRAPHICS_FD);
    LVRPCT_ASSERT(p && p->flags == LVRPC_PROCF_FDS_OUT);
    p = lvrpc_proc_by_number(LVRPC_PROGRAM_REMOTE, LVRPC_PROC_DOMAIN_CREATE_XML_WITH_FILES);
    LVRPCT_ASSERT(p && p->flags == LVRPC_PROCF_FDS_IN);
    p = lvrpc_proc_by_number(LVRPC_PROGRAM_REMOTE, LVRPC_PROC_DOMAIN_GET_INFO);
    LVRPCT_ASSERT(p && p->flags == 0);
}

/* ------------------------------------------------------------------ errors */

/* A procedure newer than the daemon: an error reply, not a broken handle. */
static void test_unknown_procedure(void)
{
    lvrpc_domain_lookup_by_name_ret *dom = lookup_test();
    lvrpc_typed_param params[1] = {tp_ullong("total_bytes_sec", 1000000)};
    lvrpc_domain_set_throttle_group_args ta;
    lvrpc_connect_get_lib_version_ret *lv = NULL;
    lvrpc_error e;
    int rc;

    if (!dom)
        return;
    memset(&ta, 0, sizeof(ta));
    ta.dom = dom->dom;
    ta.group = "lvrpct-group";
    ta.params.params_len = 1;
    ta.params.params_val = params;
    rc = lvrpc_domain_set_throttle_group(c, &ta);
    lvrpc_last_error(&e);
    if (lib_version && lib_version < 11002000) {
        /* libvirt < 11.2 has no procedure 451 */
        LVRPCT_ASSERT_INT(rc, LVRPC_EREMOTE);
        LVRPCT_ASSERT_INT(e.code, LVRPC_EREMOTE);
        LVRPCT_ASSERT_INT(e.remote_code, VIR_ERR_RPC);
        lvrpct_assert(strstr(e.message, "unknown procedure") != NULL, __FILE__, __LINE__,
                      "message says unknown procedure: %s", e.message);
        lvrpct_assert(strstr(e.message, "451") != NULL, __FILE__, __LINE__,
                      "message names procedure 451: %s", e.message);
    } else {
        LVRPCT_ASSERT(rc == LVRPC_OK || rc == LVRPC_EREMOTE);
    }
    /* the handle still works, on the same socket (Direct mode keeps it) */
    LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(c, &lv));
    LVRPCT_ASSERT(lv && lv->lib_ver > 0);
    FREE(lv);
    /* and so does a second unknown one, from another program's range */
    if (lib_version && lib_version < 9007000) {
        lvrpc_network_get_metadata_args ma;
        lvrpc_network_lookup_by_name_args na = {"default"};
        lvrpc_network_lookup_by_name_ret *net = NULL;
        lvrpc_network_get_metadata_ret *md = NULL;
        LVRPCT_ASSERT_OK(lvrpc_network_lookup_by_name(c, &na, &net));
        if (net) {
            memset(&ma, 0, sizeof(ma));
            ma.network = net->net;
            ma.type = VIR_DOMAIN_METADATA_TITLE;
            rc = lvrpc_network_get_metadata(c, &ma, &md);
            LVRPCT_ASSERT_INT(rc, LVRPC_EREMOTE);
            LVRPCT_ASSERT(md == NULL);
            lvrpc_last_error(&e);
            lvrpct_assert(strstr(e.message, "unknown procedure") != NULL, __FILE__, __LINE__,
                          "message says unknown procedure: %s", e.message);
        }
        FREE(net);
    }
    LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(c, &lv));
    FREE(lv);
    FREE(dom);
}

/* The QEMU and LXC programs reach the daemon: the test driver has neither
 * feature, so it answers "not supported" (a wrong program number would get
 * "cannot find program"). */
static void test_other_programs(void)
{
    lvrpc_domain_lookup_by_name_ret *dom = lookup_test();
    lvrpc_qemu_domain_monitor_command_args qa;
    lvrpc_qemu_domain_monitor_command_ret *qr = NULL;
    lvrpc_qemu_domain_agent_command_args aa;
    lvrpc_qemu_domain_agent_command_ret *ar = NULL;
    lvrpc_lxc_domain_open_namespace_args la;
    lvrpc_error e;

    if (!dom)
        return;
    memset(&qa, 0, sizeof(qa));
    qa.dom = dom->dom;
    qa.cmd = "{\"execute\":\"query-status\"}";
    LVRPCT_ASSERT_RC(lvrpc_qemu_domain_monitor_command(c, &qa, &qr), LVRPC_EREMOTE);
    lvrpc_last_error(&e);
    LVRPCT_ASSERT_INT(e.remote_code, VIR_ERR_NO_SUPPORT);
    LVRPCT_ASSERT(qr == NULL);

    memset(&aa, 0, sizeof(aa));
    aa.dom = dom->dom;
    aa.cmd = "{\"execute\":\"guest-ping\"}";
    aa.timeout = -2;
    LVRPCT_ASSERT_RC(lvrpc_qemu_domain_agent_command(c, &aa, &ar), LVRPC_EREMOTE);
    lvrpc_last_error(&e);
    LVRPCT_ASSERT_INT(e.remote_code, VIR_ERR_NO_SUPPORT);

    memset(&la, 0, sizeof(la));
    la.dom = dom->dom;
    LVRPCT_ASSERT_RC(lvrpc_lxc_domain_open_namespace(c, &la, NULL, NULL), LVRPC_EREMOTE);
    lvrpc_last_error(&e);
    LVRPCT_ASSERT_INT(e.remote_code, VIR_ERR_NO_SUPPORT);
    FREE(dom);
}

/* ------------------------------------------------------------------ connection and host */

static void test_connect_host(void)
{
    lvrpc_connect_get_type_ret *type = NULL;
    lvrpc_connect_get_version_ret *ver = NULL;
    lvrpc_connect_get_lib_version_ret *lv = NULL;
    lvrpc_connect_get_hostname_ret *host = NULL;
    lvrpc_connect_get_uri_ret *uri = NULL;
    lvrpc_connect_get_capabilities_ret *caps = NULL;
    lvrpc_connect_get_sysinfo_args sa = {0};
    lvrpc_connect_get_sysinfo_ret *sys = NULL;
    lvrpc_connect_get_max_vcpus_args mva = {NULL};
    lvrpc_connect_get_max_vcpus_ret *mv = NULL;
    lvrpc_connect_is_secure_ret *sec = NULL;
    lvrpc_connect_supports_feature_args fa = {VIR_DRV_FEATURE_TYPED_PARAM_STRING};
    lvrpc_connect_supports_feature_ret *feat = NULL;
    lvrpc_node_get_info_ret *info = NULL;
    lvrpc_node_get_free_memory_ret *fm = NULL;
    lvrpc_node_get_cells_free_memory_args cfa = {0, 2};
    lvrpc_node_get_cells_free_memory_ret *cf = NULL;
    lvrpc_node_get_cpu_stats_args csa = {-1, 0, 0};
    lvrpc_node_get_cpu_stats_ret *cs = NULL;
    lvrpc_node_get_security_model_ret *sm = NULL;
    lvrpc_node_get_cpu_map_args cma = {1, 1, 0};
    lvrpc_node_get_cpu_map_ret *cm = NULL;
    unsigned int page_sizes[1] = {4};
    lvrpc_node_get_free_pages_args fpa;
    lvrpc_node_get_free_pages_ret *fp = NULL;
    lvrpc_connect_get_cpu_model_names_args mna = {"x86_64", 1, 0};
    lvrpc_connect_get_cpu_model_names_ret *mn = NULL;
    char *cpus[1] = {"<cpu><arch>x86_64</arch><model>core2duo</model>"
                     "<vendor>Intel</vendor></cpu>"};
    lvrpc_connect_baseline_cpu_args ba;
    lvrpc_connect_baseline_cpu_ret *bl = NULL;
    lvrpc_connect_set_identity_args ia;

    OK(connect_get_type, &type);
    if (type)
        LVRPCT_ASSERT_STR(type->type, "TEST");
    OK(connect_get_version, &ver);
    LVRPCT_ASSERT(ver && ver->hv_ver > 0);
    OK(connect_get_lib_version, &lv);
    if (lv && lib_version)
        LVRPCT_ASSERT_INT(lv->lib_ver, lib_version);
    OK(connect_get_hostname, &host);
    LVRPCT_ASSERT(host && host->hostname[0]);
    OK(connect_get_uri, &uri);
    if (uri)
        LVRPCT_ASSERT_STR(uri->uri, "test:///default");
    OK(connect_get_capabilities, &caps);
    LVRPCT_ASSERT(caps && strstr(caps->capabilities, "<capabilities>"));
    OK(connect_get_sysinfo, &sa, &sys);
    LVRPCT_ASSERT(sys && strstr(sys->sysinfo, "<sysinfo"));
    OK(connect_get_max_vcpus, &mva, &mv);
    LVRPCT_ASSERT(mv && mv->max_vcpus > 0);
    OK(connect_is_secure, &sec);
    LVRPCT_ASSERT(sec && sec->secure == 1); /* a UNIX socket */
    OK(connect_supports_feature, &fa, &feat);
    LVRPCT_ASSERT(feat && feat->supported == 1);

    OK(node_get_info, &info);
    LVRPCT_ASSERT(info && info->cpus > 0 && info->memory > 0 && info->mhz > 0);
    OK(node_get_free_memory, &fm);
    LVRPCT_ASSERT(fm && fm->freeMem > 0);
    OK(node_get_cells_free_memory, &cfa, &cf);
    LVRPCT_ASSERT(cf && cf->cells.cells_len == 2 && cf->cells.cells_val[0] > 0);
    OK(node_get_cpu_stats, &csa, &cs);
    LVRPCT_ASSERT(cs && cs->nparams > 0 && cs->params.params_len == 0);
    if (cs && cs->nparams > 0) {
        csa.nparams = cs->nparams;
        FREE(cs);
        OK(node_get_cpu_stats, &csa, &cs);
        LVRPCT_ASSERT(cs && cs->params.params_len == (u_int)csa.nparams &&
                      cs->params.params_val[0].field[0]);
    }
    OK(node_get_security_model, &sm);
    LVRPCT_ASSERT(sm != NULL);
    OK(node_get_cpu_map, &cma, &cm);
    LVRPCT_ASSERT(cm && cm->ret > 0 && cm->cpumap.cpumap_len > 0 && cm->online > 0);
    memset(&fpa, 0, sizeof(fpa));
    fpa.pages.pages_len = 1;
    fpa.pages.pages_val = page_sizes;
    fpa.startCell = 0;
    fpa.cellCount = 1;
    /* libvirt 9.0's test driver returns 0 instead of the number of counts,
     * which the daemon turns into an error without a message */
    if (lib_version && lib_version < 9001000) {
        ERR(VIR_ERR_INTERNAL_ERROR, node_get_free_pages, &fpa, &fp);
    } else {
        OK(node_get_free_pages, &fpa, &fp);
        LVRPCT_ASSERT(fp && fp->counts.counts_len == 1);
    }
    OK(connect_get_cpu_model_names, &mna, &mn);
    LVRPCT_ASSERT(mn && mn->ret >= 0 && mn->models.models_len == (u_int)mn->ret);
    memset(&ba, 0, sizeof(ba));
    ba.xmlCPUs.xmlCPUs_len = 1;
    ba.xmlCPUs.xmlCPUs_val = cpus;
    OK(connect_baseline_cpu, &ba, &bl);
    LVRPCT_ASSERT(bl && strstr(bl->cpu, "<cpu"));
    memset(&ia, 0, sizeof(ia));
    OK(connect_set_identity, &ia);
    OK0(connect_register_close_callback);
    OK0(connect_unregister_close_callback);

    FREE(type); FREE(ver); FREE(lv); FREE(host); FREE(uri); FREE(caps); FREE(sys); FREE(mv);
    FREE(sec); FREE(feat); FREE(info); FREE(fm); FREE(cf); FREE(cs); FREE(sm); FREE(cm);
    FREE(fp); FREE(mn); FREE(bl);
}

/* ------------------------------------------------------------------ domains */

/* Listing, lookup and the read-only queries on the running domain "test". */
static void test_domain_queries(void)
{
    lvrpc_domain_lookup_by_name_ret *dom = lookup_test();
    lvrpc_domain_lookup_by_id_args ida = {0};
    lvrpc_domain_lookup_by_id_ret *byid = NULL;
    lvrpc_domain_lookup_by_uuid_args uua;
    lvrpc_domain_lookup_by_uuid_ret *byuuid = NULL;
    lvrpc_connect_list_domains_args lda = {16};
    lvrpc_connect_list_domains_ret *ids = NULL;
    lvrpc_connect_num_of_domains_ret *nd = NULL;
    lvrpc_connect_num_of_defined_domains_ret *ndd = NULL;
    lvrpc_connect_list_defined_domains_args ldda = {16};
    lvrpc_connect_list_defined_domains_ret *names = NULL;
    lvrpc_connect_list_all_domains_args lada = {1, 0};
    lvrpc_connect_list_all_domains_ret *all = NULL;
    lvrpc_connect_get_all_domain_stats_args gsa;
    lvrpc_connect_get_all_domain_stats_ret *gs = NULL;
    lvrpc_domain_ref d;

    if (!dom)
        return;
    d = dom->dom;
    OK(connect_list_domains, &lda, &ids);
    LVRPCT_ASSERT(ids && ids->ids.ids_len >= 1);
    OK(connect_num_of_domains, &nd);
    LVRPCT_ASSERT(nd && ids && nd->num == (int)ids->ids.ids_len);
    OK(connect_num_of_defined_domains, &ndd);
    LVRPCT_ASSERT(ndd && ndd->num >= 0);
    OK(connect_list_defined_domains, &ldda, &names);
    LVRPCT_ASSERT(names && ndd && (int)names->names.names_len == ndd->num);
    OK(connect_list_all_domains, &lada, &all);
    LVRPCT_ASSERT(all && all->ret >= 1);
    ida.id = d.id;
    OK(domain_lookup_by_id, &ida, &byid);
    if (byid)
        LVRPCT_ASSERT_STR(byid->dom.name, "test");
    memcpy(uua.uuid, d.uuid, sizeof(uua.uuid));
    OK(domain_lookup_by_uuid, &uua, &byuuid);
    LVRPCT_ASSERT(byuuid && byuuid->dom.id == d.id);
    memset(&gsa, 0, sizeof(gsa));
    OK(connect_get_all_domain_stats, &gsa, &gs);
    LVRPCT_ASSERT(gs && gs->retStats.retStats_len >= 1 &&
                  gs->retStats.retStats_val[0].params.params_len > 0);

    {
        lvrpc_domain_get_info_args a = {d};
        lvrpc_domain_get_info_ret *r = NULL;
        OK(domain_get_info, &a, &r);
        LVRPCT_ASSERT(r && r->state == VIR_DOMAIN_RUNNING && r->nrVirtCpu > 0);
        FREE(r);
    }
    {
        lvrpc_domain_get_state_args a = {d, 0};
        lvrpc_domain_get_state_ret *r = NULL;
        OK(domain_get_state, &a, &r);
        LVRPCT_ASSERT(r && r->state == VIR_DOMAIN_RUNNING);
        FREE(r);
    }
    {
        lvrpc_domain_get_xml_desc_args a = {d, 0};
        lvrpc_domain_get_xml_desc_ret *r = NULL;
        OK(domain_get_xml_desc, &a, &r);
        LVRPCT_ASSERT(r && strstr(r->xml, "<name>test</name>"));
        FREE(r);
    }
    {
        lvrpc_domain_get_os_type_args a = {d};
        lvrpc_domain_get_os_type_ret *r = NULL;
        OK(domain_get_os_type, &a, &r);
        if (r)
            LVRPCT_ASSERT_STR(r->type, "linux");
        FREE(r);
    }
    {
        lvrpc_domain_get_max_memory_args a = {d};
        lvrpc_domain_get_max_memory_ret *r = NULL;
        OK(domain_get_max_memory, &a, &r);
        LVRPCT_ASSERT(r && r->memory > 0);
        FREE(r);
    }
    {
        lvrpc_domain_get_max_vcpus_args a = {d};
        lvrpc_domain_get_max_vcpus_ret *r = NULL;
        OK(domain_get_max_vcpus, &a, &r);
        LVRPCT_ASSERT(r && r->num > 0);
        FREE(r);
    }
    {
        lvrpc_domain_get_vcpus_args a = {d, 2, 1};
        lvrpc_domain_get_vcpus_ret *r = NULL;
        OK(domain_get_vcpus, &a, &r);
        LVRPCT_ASSERT(r && r->info.info_len >= 1 && r->cpumaps.cpumaps_len == r->info.info_len);
        FREE(r);
    }
    {
        lvrpc_domain_get_vcpus_flags_args a = {d, VIR_DOMAIN_VCPU_MAXIMUM | VIR_DOMAIN_AFFECT_CONFIG};
        lvrpc_domain_get_vcpus_flags_ret *r = NULL;
        OK(domain_get_vcpus_flags, &a, &r);
        LVRPCT_ASSERT(r && r->num > 0);
        FREE(r);
    }
    {
        lvrpc_domain_get_vcpu_pin_info_args a = {d, 1, 1, 0};
        lvrpc_domain_get_vcpu_pin_info_ret *r = NULL;
        OK(domain_get_vcpu_pin_info, &a, &r);
        LVRPCT_ASSERT(r && r->num >= 1 && r->cpumaps.cpumaps_len >= 1);
        FREE(r);
    }
    {
        lvrpc_domain_get_emulator_pin_info_args a = {d, 1, 0};
        lvrpc_domain_get_emulator_pin_info_ret *r = NULL;
        OK(domain_get_emulator_pin_info, &a, &r);
        LVRPCT_ASSERT(r && r->cpumaps.cpumaps_len == 1);
        FREE(r);
    }
    {
        lvrpc_domain_get_autostart_args a = {d};
        lvrpc_domain_get_autostart_ret *r = NULL;
        OK(domain_get_autostart, &a, &r);
        LVRPCT_ASSERT(r && (r->autostart == 0 || r->autostart == 1));
        FREE(r);
    }
    {
        lvrpc_domain_is_active_args a = {d};
        lvrpc_domain_is_active_ret *r = NULL;
        lvrpc_domain_is_persistent_args pa = {d};
        lvrpc_domain_is_persistent_ret *pr = NULL;
        lvrpc_domain_is_updated_args ua = {d};
        lvrpc_domain_is_updated_ret *ur = NULL;
        OK(domain_is_active, &a, &r);
        LVRPCT_ASSERT(r && r->active == 1);
        OK(domain_is_persistent, &pa, &pr);
        LVRPCT_ASSERT(pr && pr->persistent == 1);
        OK(domain_is_updated, &ua, &ur);
        LVRPCT_ASSERT(ur && ur->updated == 0);
        FREE(r); FREE(pr); FREE(ur);
    }
    {
        lvrpc_domain_get_security_label_args a = {d};
        lvrpc_domain_get_security_label_ret *r = NULL;
        lvrpc_domain_get_security_label_list_args la = {d};
        lvrpc_domain_get_security_label_list_ret *lr = NULL;
        OK(domain_get_security_label, &a, &r);
        LVRPCT_ASSERT(r != NULL);
        OK(domain_get_security_label_list, &la, &lr);
        /* the daemon answers ret = -1 and no labels when the driver has no
         * label list (the test driver's case), else one label per driver */
        LVRPCT_ASSERT(lr && (lr->ret == (int)lr->labels.labels_len ||
                             (lr->ret == -1 && lr->labels.labels_len == 0)));
        FREE(r); FREE(lr);
    }
    {
        lvrpc_domain_get_hostname_args a = {d, 0};
        lvrpc_domain_get_hostname_ret *r = NULL;
        OK(domain_get_hostname, &a, &r);
        LVRPCT_ASSERT(r && r->hostname[0]);
        FREE(r);
    }
    {
        lvrpc_domain_get_control_info_args a = {d, 0};
        lvrpc_domain_get_control_info_ret *r = NULL;
        OK(domain_get_control_info, &a, &r);
        LVRPCT_ASSERT(r && r->state == 0); /* VIR_DOMAIN_CONTROL_OK */
        FREE(r);
    }
    {
        lvrpc_domain_get_block_info_args a = {d, "vda", 0};
        lvrpc_domain_get_block_info_ret *r = NULL;
        OK(domain_get_block_info, &a, &r);
        LVRPCT_ASSERT(r && r->capacity > 0);
        FREE(r);
    }
    {
        lvrpc_domain_block_stats_args a = {d, "vda"};
        lvrpc_domain_block_stats_ret *r = NULL;
        OK(domain_block_stats, &a, &r);
        LVRPCT_ASSERT(r && r->rd_req >= 0);
        FREE(r);
    }
    {
        lvrpc_domain_interface_stats_args a = {d, "testnet0"};
        lvrpc_domain_interface_stats_ret *r = NULL;
        OK(domain_interface_stats, &a, &r);
        LVRPCT_ASSERT(r && r->rx_bytes >= 0);
        FREE(r);
    }
    {
        lvrpc_domain_memory_stats_args a = {d, 16, 0};
        lvrpc_domain_memory_stats_ret *r = NULL;
        OK(domain_memory_stats, &a, &r);
        LVRPCT_ASSERT(r && r->stats.stats_len >= 1);
        FREE(r);
    }
    {
        lvrpc_domain_memory_peek_args a = {d, 0, 64, 1}; /* VIR_MEMORY_VIRTUAL */
        lvrpc_domain_memory_peek_ret *r = NULL;
        OK(domain_memory_peek, &a, &r);
        LVRPCT_ASSERT(r && r->buffer.buffer_len == 64);
        FREE(r);
    }
    {
        lvrpc_domain_get_cpu_stats_args a = {d, 0, -1, 1, 0};
        lvrpc_domain_get_cpu_stats_ret *r = NULL;
        OK(domain_get_cpu_stats, &a, &r);
        LVRPCT_ASSERT(r && r->nparams > 0);
        if (r && r->nparams > 0) {
            a.nparams = (unsigned)r->nparams;
            FREE(r);
            OK(domain_get_cpu_stats, &a, &r);
            LVRPCT_ASSERT(r && r->params.params_len > 0 &&
                          find_param(r->params.params_val, r->params.params_len, "cpu_time"));
        }
        FREE(r);
    }
    {
        lvrpc_domain_get_disk_errors_args a = {d, 8, 0};
        lvrpc_domain_get_disk_errors_ret *r = NULL;
        OK(domain_get_disk_errors, &a, &r);
        LVRPCT_ASSERT(r && r->nerrors >= 0 && r->errors.errors_len == (u_int)r->nerrors);
        FREE(r);
    }
    {
        lvrpc_domain_get_scheduler_type_args a = {d};
        lvrpc_domain_get_scheduler_type_ret *r = NULL;
        OK(domain_get_scheduler_type, &a, &r);
        LVRPCT_ASSERT(r && r->type[0] && r->nparams >= 1);
        if (r && r->nparams >= 1) {
            lvrpc_domain_get_scheduler_parameters_args pa = {d, r->nparams};
            lvrpc_domain_get_scheduler_parameters_ret *pr = NULL;
            lvrpc_domain_get_scheduler_parameters_flags_args fa = {d, r->nparams, 0};
            lvrpc_domain_get_scheduler_parameters_flags_ret *fr = NULL;
            OK(domain_get_scheduler_parameters, &pa, &pr);
            LVRPCT_ASSERT(pr && pr->params.params_len >= 1);
            /* libvirt's API adds VIR_TYPED_PARAM_STRING_OKAY (0x4) for drivers
             * that support string parameters, and the test driver then
             * rejects that flag: an error reply from the driver itself */
            expect_remote(CALL(domain_get_scheduler_parameters_flags, &fa, &fr),
                          VIR_ERR_INVALID_ARG, "domain_get_scheduler_parameters_flags",
                          __LINE__);
            LVRPCT_ASSERT(fr == NULL);
            FREE(pr); FREE(fr);
        }
        FREE(r);
    }
    {
        lvrpc_domain_get_fsinfo_args a = {d, 0};
        lvrpc_domain_get_fsinfo_ret *r = NULL;
        OK(domain_get_fsinfo, &a, &r);
        LVRPCT_ASSERT(r && r->ret == r->info.info_len && r->ret >= 1 &&
                      r->info.info_val[0].mountpoint[0]);
        FREE(r);
    }
    {
        lvrpc_domain_interface_addresses_args a = {d, VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0};
        lvrpc_domain_interface_addresses_ret *r = NULL;
        OK(domain_interface_addresses, &a, &r);
        LVRPCT_ASSERT(r && r->ifaces.ifaces_len >= 1);
        FREE(r);
    }
    {
        lvrpc_domain_get_time_args a = {d, 0};
        lvrpc_domain_get_time_ret *r = NULL;
        OK(domain_get_time, &a, &r);
        LVRPCT_ASSERT(r && r->seconds > 0);
        if (r) {
            lvrpc_domain_set_time_args sa = {d, r->seconds, 0, 0};
            OK(domain_set_time, &sa);
        }
        FREE(r);
    }
    {
        lvrpc_domain_get_iothread_info_args a = {d, 0};
        lvrpc_domain_get_iothread_info_ret *r = NULL;
        OK(domain_get_iothread_info, &a, &r);
        LVRPCT_ASSERT(r && r->ret == r->info.info_len);
        FREE(r);
    }
    {
        lvrpc_domain_get_perf_events_args a = {d, 0};
        lvrpc_domain_get_perf_events_ret *r = NULL;
        OK(domain_get_perf_events, &a, &r);
        LVRPCT_ASSERT(r && r->params.params_len >= 1);
        FREE(r);
    }
    {
        lvrpc_domain_get_launch_security_info_args a = {d, 0};
        lvrpc_domain_get_launch_security_info_ret *r = NULL;
        /* the same VIR_TYPED_PARAM_STRING_OKAY story as above */
        ERR(VIR_ERR_INVALID_ARG, domain_get_launch_security_info, &a, &r);
        LVRPCT_ASSERT(r == NULL);
        FREE(r);
    }
    {
        lvrpc_domain_get_messages_args a = {d, 0};
        lvrpc_domain_get_messages_ret *r = NULL;
        OK(domain_get_messages, &a, &r);
        LVRPCT_ASSERT(r != NULL);
        FREE(r);
    }
    {
        lvrpc_domain_get_memory_parameters_args a = {d, 0, 0};
        lvrpc_domain_get_memory_parameters_ret *r = NULL;
        OK(domain_get_memory_parameters, &a, &r);
        LVRPCT_ASSERT(r && r->nparams > 0);
        FREE(r);
    }
    {
        lvrpc_domain_get_blkio_parameters_args a = {d, 0, 0};
        lvrpc_domain_get_blkio_parameters_ret *r = NULL;
        OK(domain_get_blkio_parameters, &a, &r);
        LVRPCT_ASSERT(r && r->nparams > 0);
        FREE(r);
    }
    {
        lvrpc_domain_get_numa_parameters_args a = {d, 0, 0};
        lvrpc_domain_get_numa_parameters_ret *r = NULL;
        OK(domain_get_numa_parameters, &a, &r);
        LVRPCT_ASSERT(r && r->nparams > 0);
        FREE(r);
    }
    {
        lvrpc_domain_get_interface_parameters_args a = {d, "testnet0", 0, 0};
        lvrpc_domain_get_interface_parameters_ret *r = NULL;
        OK(domain_get_interface_parameters, &a, &r);
        LVRPCT_ASSERT(r && r->nparams > 0);
        FREE(r);
    }
    {
        lvrpc_domain_get_block_io_tune_args a = {d, NULL, 0, 0};
        lvrpc_str disk = "vda";
        lvrpc_domain_get_block_io_tune_ret *r = NULL;
        a.disk = &disk;
        OK(domain_get_block_io_tune, &a, &r);
        LVRPCT_ASSERT(r && r->nparams > 0);
        FREE(r);
    }
    {
        lvrpc_domain_has_managed_save_image_args a = {d, 0};
        lvrpc_domain_has_managed_save_image_ret *r = NULL;
        OK(domain_has_managed_save_image, &a, &r);
        LVRPCT_ASSERT(r && r->result == 0);
        FREE(r);
    }
    FREE(dom); FREE(byid); FREE(byuuid); FREE(ids); FREE(nd); FREE(ndd); FREE(names);
    FREE(all); FREE(gs);
}

/* A domain of our own through its whole life: define, start, pause,
 * settings, save/restore, managed save, dumps, shutdown, rename, undefine. */
static void test_domain_lifecycle(void)
{
    char xml[1024], path[512];
    lvrpc_domain_define_xml_args da;
    lvrpc_domain_define_xml_ret *def = NULL;
    lvrpc_domain_ref d;
    lvrpc_domain_get_state_args sa;
    lvrpc_domain_get_state_ret *st = NULL;
    lvrpc_domain_lookup_by_name_ret *renamed = NULL;

    da.xml = dom_xml(xml, sizeof(xml), "lvp-life", 1);
    OK(domain_define_xml, &da, &def);
    if (!def)
        return;
    d = def->dom;
    sa.dom = d;
    sa.flags = 0;
#define STATE_IS(want) do { \
        FREE(st); \
        OK(domain_get_state, &sa, &st); \
        LVRPCT_ASSERT(st && st->state == (want)); \
    } while (0)

    STATE_IS(VIR_DOMAIN_SHUTOFF);
    {
        lvrpc_domain_set_autostart_args a = {d, 1};
        lvrpc_domain_get_autostart_args ga = {d};
        lvrpc_domain_get_autostart_ret *r = NULL;
        OK(domain_set_autostart, &a);
        OK(domain_get_autostart, &ga, &r);
        LVRPCT_ASSERT(r && r->autostart == 1);
        FREE(r);
    }
    {
        lvrpc_domain_set_metadata_args a;
        lvrpc_domain_get_metadata_args ga;
        lvrpc_domain_get_metadata_ret *r = NULL;
        lvrpc_str title = "lvrpc title";
        memset(&a, 0, sizeof(a));
        a.dom = d;
        a.type = VIR_DOMAIN_METADATA_TITLE;
        a.metadata = &title;
        a.flags = VIR_DOMAIN_AFFECT_CONFIG;
        OK(domain_set_metadata, &a);
        memset(&ga, 0, sizeof(ga));
        ga.dom = d;
        ga.type = VIR_DOMAIN_METADATA_TITLE;
        ga.flags = VIR_DOMAIN_AFFECT_CONFIG;
        OK(domain_get_metadata, &ga, &r);
        if (r)
            LVRPCT_ASSERT_STR(r->metadata, "lvrpc title");
        FREE(r);
        ga.type = VIR_DOMAIN_METADATA_DESCRIPTION;
        ERR(VIR_ERR_NO_DOMAIN_METADATA, domain_get_metadata, &ga, &r);
    }
    {
        lvrpc_domain_rename_args a;
        lvrpc_domain_rename_ret *r = NULL;
        lvrpc_str nn = "lvp-life2";
        memset(&a, 0, sizeof(a));
        a.dom = d;
        a.new_name = &nn;
        OK(domain_rename, &a, &r);
        LVRPCT_ASSERT(r && r->retcode == 0);
        FREE(r);
        {
            lvrpc_domain_lookup_by_name_args la = {"lvp-life2"};
            OK(domain_lookup_by_name, &la, &renamed);
            if (!renamed) {
                FREE(def);
                return;
            }
            d = renamed->dom;
            sa.dom = d;
        }
    }
    {
        /* the memory ceiling can only change while the domain is off */
        lvrpc_domain_set_max_memory_args ma = {d, 262144};
        lvrpc_domain_get_max_memory_args ga = {d};
        lvrpc_domain_get_max_memory_ret *gr = NULL;
        lvrpc_domain_create_args a = {d};
        OK(domain_set_max_memory, &ma);
        OK(domain_get_max_memory, &ga, &gr);
        LVRPCT_ASSERT(gr && gr->memory == 262144);
        FREE(gr);
        OK(domain_create, &a);
        STATE_IS(VIR_DOMAIN_RUNNING);
    }
    {
        lvrpc_domain_suspend_args a = {d};
        lvrpc_domain_resume_args ra = {d};
        OK(domain_suspend, &a);
        STATE_IS(VIR_DOMAIN_PAUSED);
        OK(domain_resume, &ra);
        STATE_IS(VIR_DOMAIN_RUNNING);
    }
    {
        lvrpc_domain_reboot_args a = {d, 0};
        lvrpc_domain_reset_args ra = {d, 0};
        lvrpc_domain_inject_nmi_args na = {d, 0};
        unsigned int keys[2] = {29, 56}; /* left ctrl, left alt (Linux codes) */
        lvrpc_domain_send_key_args ka;
        OK(domain_reboot, &a);
        OK(domain_reset, &ra);
        OK(domain_inject_nmi, &na);
        memset(&ka, 0, sizeof(ka));
        ka.dom = d;
        ka.codeset = VIR_KEYCODE_SET_LINUX;
        ka.holdtime = 10;
        ka.keycodes.keycodes_len = 2;
        ka.keycodes.keycodes_val = keys;
        OK(domain_send_key, &ka);
        STATE_IS(VIR_DOMAIN_RUNNING);
    }
    {
        lvrpc_domain_set_memory_args a = {d, 65536};
        lvrpc_domain_set_memory_flags_args fa = {d, 32768, 0};
        lvrpc_domain_get_info_args ia = {d};
        lvrpc_domain_get_info_ret *ir = NULL;
        lvrpc_domain_set_memory_stats_period_args pa = {d, 5, 0};
        OK(domain_set_memory, &a);
        OK(domain_set_memory_flags, &fa);
        OK(domain_get_info, &ia, &ir);
        LVRPCT_ASSERT(ir && ir->memory == 32768);
        FREE(ir);
        OK(domain_set_memory_stats_period, &pa);
    }
    {
        lvrpc_domain_set_vcpus_args a = {d, 2};
        lvrpc_domain_set_vcpus_flags_args fa = {d, 1, 0};
        lvrpc_domain_get_vcpus_flags_args ga = {d, 0};
        lvrpc_domain_get_vcpus_flags_ret *gr = NULL;
        char map[1] = {1};
        lvrpc_domain_pin_vcpu_args pa;
        lvrpc_domain_pin_vcpu_flags_args pfa;
        lvrpc_domain_pin_emulator_args pea;
        OK(domain_set_vcpus, &a);
        OK(domain_set_vcpus_flags, &fa);
        OK(domain_get_vcpus_flags, &ga, &gr);
        LVRPCT_ASSERT(gr && gr->num == 1);
        FREE(gr);
        memset(&pa, 0, sizeof(pa));
        pa.dom = d;
        pa.vcpu = 0;
        pa.cpumap.cpumap_len = 1;
        pa.cpumap.cpumap_val = map;
        OK(domain_pin_vcpu, &pa);
        memset(&pfa, 0, sizeof(pfa));
        pfa.dom = d;
        pfa.cpumap.cpumap_len = 1;
        pfa.cpumap.cpumap_val = map;
        OK(domain_pin_vcpu_flags, &pfa);
        memset(&pea, 0, sizeof(pea));
        pea.dom = d;
        pea.cpumap.cpumap_len = 1;
        pea.cpumap.cpumap_val = map;
        OK(domain_pin_emulator, &pea);
    }
    {
        lvrpc_domain_add_iothread_args a = {d, 7, 0};
        lvrpc_domain_get_iothread_info_args ia = {d, 0};
        lvrpc_domain_get_iothread_info_ret *ir = NULL;
        char map[1] = {1};
        lvrpc_domain_pin_iothread_args pa;
        lvrpc_typed_param ps[1] = {tp_ullong("poll_max_ns", 1000)};
        lvrpc_domain_set_iothread_params_args sp;
        lvrpc_domain_del_iothread_args da2 = {d, 7, 0};
        OK(domain_add_iothread, &a);
        OK(domain_get_iothread_info, &ia, &ir);
        LVRPCT_ASSERT(ir && ir->ret >= 1);
        FREE(ir);
        memset(&pa, 0, sizeof(pa));
        pa.dom = d;
        pa.iothreads_id = 7;
        pa.cpumap.cpumap_len = 1;
        pa.cpumap.cpumap_val = map;
        OK(domain_pin_iothread, &pa);
        memset(&sp, 0, sizeof(sp));
        sp.dom = d;
        sp.iothread_id = 7;
        sp.params.params_len = 1;
        sp.params.params_val = ps;
        OK(domain_set_iothread_params, &sp);
        OK(domain_del_iothread, &da2);
    }
    {
        /* typed-parameter setters, each followed by its getter */
        lvrpc_typed_param mem[1] = {tp_ullong("hard_limit", 1048576)};
        lvrpc_domain_set_memory_parameters_args ma;
        lvrpc_domain_get_memory_parameters_args mga = {d, 8, 0};
        lvrpc_domain_get_memory_parameters_ret *mr = NULL;
        lvrpc_typed_param blk[1] = {tp_uint("weight", 500)};
        lvrpc_domain_set_blkio_parameters_args ba;
        lvrpc_domain_get_blkio_parameters_args bga = {d, 8, 0};
        lvrpc_domain_get_blkio_parameters_ret *br = NULL;
        lvrpc_typed_param numa[1] = {tp_string("numa_nodeset", "0")};
        lvrpc_domain_set_numa_parameters_args na;
        lvrpc_typed_param sched[1] = {tp_uint("weight", 60)};
        lvrpc_domain_set_scheduler_parameters_args sa2;
        lvrpc_domain_set_scheduler_parameters_flags_args sfa;
        lvrpc_typed_param iface[1] = {tp_uint("inbound.average", 1000)};
        lvrpc_domain_set_interface_parameters_args ifa;
        lvrpc_typed_param iot[2] = {tp_ullong("total_bytes_sec", 1000000),
                                    tp_ullong("total_bytes_sec_max", 2000000)};
        lvrpc_domain_set_block_io_tune_args ita;
        lvrpc_typed_param perf[1];
        lvrpc_domain_set_perf_events_args pfa;
        lvrpc_domain_get_perf_events_args pga = {d, 0};
        lvrpc_domain_get_perf_events_ret *pgr = NULL;

        memset(&ma, 0, sizeof(ma));
        ma.dom = d;
        ma.params.params_len = 1;
        ma.params.params_val = mem;
        OK(domain_set_memory_parameters, &ma);
        OK(domain_get_memory_parameters, &mga, &mr);
        LVRPCT_ASSERT(mr && find_param(mr->params.params_val, mr->params.params_len,
                                       "hard_limit") &&
                      find_param(mr->params.params_val, mr->params.params_len, "hard_limit")
                              ->value.lvrpc_typed_value_u.ul == 1048576);
        FREE(mr);
        memset(&ba, 0, sizeof(ba));
        ba.dom = d;
        ba.params.params_len = 1;
        ba.params.params_val = blk;
        OK(domain_set_blkio_parameters, &ba);
        OK(domain_get_blkio_parameters, &bga, &br);
        LVRPCT_ASSERT(br && find_param(br->params.params_val, br->params.params_len, "weight") &&
                      find_param(br->params.params_val, br->params.params_len, "weight")
                              ->value.lvrpc_typed_value_u.ui == 500);
        FREE(br);
        memset(&na, 0, sizeof(na));
        na.dom = d;
        na.params.params_len = 1;
        na.params.params_val = numa;
        OK(domain_set_numa_parameters, &na);
        memset(&sa2, 0, sizeof(sa2));
        sa2.dom = d;
        sa2.params.params_len = 1;
        sa2.params.params_val = sched;
        OK(domain_set_scheduler_parameters, &sa2);
        memset(&sfa, 0, sizeof(sfa));
        sfa.dom = d;
        sfa.params.params_len = 1;
        sfa.params.params_val = sched;
        OK(domain_set_scheduler_parameters_flags, &sfa);
        memset(&ifa, 0, sizeof(ifa));
        ifa.dom = d;
        ifa.device = "vnet0";
        ifa.params.params_len = 1;
        ifa.params.params_val = iface;
        ERR(VIR_ERR_INVALID_ARG, domain_set_interface_parameters, &ifa);
        memset(&ita, 0, sizeof(ita));
        ita.dom = d;
        ita.disk = "vda";
        ita.params.params_len = 2;
        ita.params.params_val = iot;
        OK(domain_set_block_io_tune, &ita);
        /* the first perf counter the driver offers, switched on */
        OK(domain_get_perf_events, &pga, &pgr);
        LVRPCT_ASSERT(pgr && pgr->params.params_len >= 1);
        if (!pgr || pgr->params.params_len == 0)
            return;
        perf[0].field = pgr->params.params_val[0].field;
        perf[0].value.type = LVRPC_TYPED_PARAM_BOOLEAN;
        perf[0].value.lvrpc_typed_value_u.b = 1;
        memset(&pfa, 0, sizeof(pfa));
        pfa.dom = d;
        pfa.params.params_len = 1;
        pfa.params.params_val = perf;
        OK(domain_set_perf_events, &pfa);
        FREE(pgr);
        OK(domain_get_perf_events, &pga, &pgr);
        LVRPCT_ASSERT(pgr && pgr->params.params_len >= 1 &&
                      pgr->params.params_val[0].value.lvrpc_typed_value_u.b == 1);
        FREE(pgr);
    }
    {
        lvrpc_domain_set_lifecycle_action_args a = {d, VIR_DOMAIN_LIFECYCLE_POWEROFF,
                                                   VIR_DOMAIN_LIFECYCLE_ACTION_DESTROY,
                                                   VIR_DOMAIN_AFFECT_CONFIG};
        OK(domain_set_lifecycle_action, &a);
    }
    {
        /* guest-agent style calls, which the test driver fakes */
        lvrpc_domain_fsfreeze_args fa;
        lvrpc_domain_fsfreeze_ret *fr = NULL;
        lvrpc_domain_fsthaw_args ta;
        lvrpc_domain_fsthaw_ret *tr = NULL;
        lvrpc_domain_fstrim_args tra;
        lvrpc_domain_set_user_password_args pa;
        lvrpc_str user = "root", pw = "secret";
        lvrpc_domain_send_process_signal_args sga = {d, 1, VIR_DOMAIN_PROCESS_SIGNAL_NOP, 0};
        memset(&fa, 0, sizeof(fa));
        fa.dom = d;
        OK(domain_fsfreeze, &fa, &fr);
        LVRPCT_ASSERT(fr && fr->filesystems >= 1);
        memset(&ta, 0, sizeof(ta));
        ta.dom = d;
        OK(domain_fsthaw, &ta, &tr);
        LVRPCT_ASSERT(tr && tr->filesystems >= 1);
        FREE(fr); FREE(tr);
        memset(&tra, 0, sizeof(tra));
        tra.dom = d;
        OK(domain_fstrim, &tra);
        memset(&pa, 0, sizeof(pa));
        pa.dom = d;
        pa.user = &user;
        pa.password = &pw;
        OK(domain_set_user_password, &pa);
        OK(domain_send_process_signal, &sga);
    }
    {
        /* save to a file and back */
        lvrpc_domain_save_args a = {d, path};
        lvrpc_domain_save_image_get_xml_desc_args ga = {path, 0};
        lvrpc_domain_save_image_get_xml_desc_ret *gr = NULL;
        lvrpc_domain_save_image_define_xml_args dxa = {path, NULL, 0};
        lvrpc_domain_restore_args ra = {path};
        lvrpc_domain_save_flags_args sfa;
        lvrpc_domain_restore_flags_args rfa;
        snprintf(path, sizeof(path), "%s/lvp-life.save", daemon_.dir);
        OK(domain_save, &a);
        STATE_IS(VIR_DOMAIN_SHUTOFF);
        OK(domain_save_image_get_xml_desc, &ga, &gr);
        LVRPCT_ASSERT(gr && strstr(gr->xml, "lvp-life2"));
        if (gr) {
            dxa.dxml = gr->xml;
            OK(domain_save_image_define_xml, &dxa);
        }
        FREE(gr);
        OK(domain_restore, &ra);
        STATE_IS(VIR_DOMAIN_RUNNING);
        memset(&sfa, 0, sizeof(sfa));
        sfa.dom = d;
        sfa.to = path;
        OK(domain_save_flags, &sfa);
        STATE_IS(VIR_DOMAIN_SHUTOFF);
        memset(&rfa, 0, sizeof(rfa));
        rfa.from = path;
        OK(domain_restore_flags, &rfa);
        STATE_IS(VIR_DOMAIN_RUNNING);
    }
    {
        /* managed save */
        lvrpc_domain_managed_save_args a = {d, 0};
        lvrpc_domain_has_managed_save_image_args ha = {d, 0};
        lvrpc_domain_has_managed_save_image_ret *hr = NULL;
        lvrpc_domain_managed_save_remove_args ra = {d, 0};
        OK(domain_managed_save, &a);
        STATE_IS(VIR_DOMAIN_SHUTOFF);
        OK(domain_has_managed_save_image, &ha, &hr);
        LVRPCT_ASSERT(hr && hr->result == 1);
        FREE(hr);
        OK(domain_managed_save_remove, &ra);
        OK(domain_has_managed_save_image, &ha, &hr);
        LVRPCT_ASSERT(hr && hr->result == 0);
        FREE(hr);
    }
    {
        lvrpc_domain_create_with_flags_args a = {d, 0};
        lvrpc_domain_create_with_flags_ret *r = NULL;
        OK(domain_create_with_flags, &a, &r);
        LVRPCT_ASSERT(r && r->dom.id > 0);
        FREE(r);
        STATE_IS(VIR_DOMAIN_RUNNING);
    }
    {
        /* core dumps */
        lvrpc_domain_core_dump_args a = {d, path, 0};
        lvrpc_domain_core_dump_with_format_args fa = {d, path, VIR_DOMAIN_CORE_DUMP_FORMAT_RAW, 0};
        snprintf(path, sizeof(path), "%s/lvp-life.core", daemon_.dir);
        OK(domain_core_dump, &a);
        OK(domain_core_dump_with_format, &fa);
        STATE_IS(VIR_DOMAIN_RUNNING);
    }
    {
        lvrpc_domain_shutdown_args a = {d};
        lvrpc_domain_create_args ca = {d};
        lvrpc_domain_shutdown_flags_args sfa = {d, 0};
        lvrpc_domain_destroy_flags_args dfa = {d, 0};
        lvrpc_domain_destroy_args dsa = {d};
        OK(domain_shutdown, &a);
        STATE_IS(VIR_DOMAIN_SHUTOFF);
        OK(domain_create, &ca);
        OK(domain_shutdown_flags, &sfa);
        STATE_IS(VIR_DOMAIN_SHUTOFF);
        OK(domain_create, &ca);
        OK(domain_destroy_flags, &dfa);
        STATE_IS(VIR_DOMAIN_SHUTOFF);
        OK(domain_create, &ca);
        OK(domain_destroy, &dsa);
        STATE_IS(VIR_DOMAIN_SHUTOFF);
    }
    {
        lvrpc_domain_undefine_flags_args a = {d, 0};
        lvrpc_domain_get_info_args ia = {d};
        lvrpc_domain_get_info_ret *ir = NULL;
        OK(domain_undefine_flags, &a);
        ERR(VIR_ERR_NO_DOMAIN, domain_get_info, &ia, &ir);
    }
#undef STATE_IS
    FREE(st);
    FREE(renamed);
    FREE(def);
}

/* Transient domains, the other ways of defining, and the *_WITH_FILES
 * variants (sent without descriptors). */
static void test_domain_create_define(void)
{
    char xml[1024];
    lvrpc_domain_create_xml_args ca;
    lvrpc_domain_create_xml_ret *cr = NULL;
    lvrpc_domain_create_xml_with_files_args cfa;
    lvrpc_domain_create_xml_with_files_ret *cfr = NULL;
    lvrpc_domain_define_xml_flags_args dfa;
    lvrpc_domain_define_xml_flags_ret *dfr = NULL;

    ca.xml_desc = dom_xml(xml, sizeof(xml), "lvp-transient", 2);
    ca.flags = 0;
    OK(domain_create_xml, &ca, &cr);
    if (cr) {
        lvrpc_domain_is_persistent_args pa = {cr->dom};
        lvrpc_domain_is_persistent_ret *pr = NULL;
        lvrpc_domain_destroy_args da = {cr->dom};
        OK(domain_is_persistent, &pa, &pr);
        LVRPCT_ASSERT(pr && pr->persistent == 0);
        FREE(pr);
        OK(domain_destroy, &da);
    }
    cfa.xml_desc = dom_xml(xml, sizeof(xml), "lvp-files", 3);
    cfa.flags = 0;
    OK(domain_create_xml_with_files, &cfa, &cfr, NULL, 0);
    if (cfr) {
        lvrpc_domain_destroy_args da = {cfr->dom};
        LVRPCT_ASSERT(cfr->dom.id > 0);
        OK(domain_destroy, &da);
    }
    dfa.xml = dom_xml(xml, sizeof(xml), "lvp-flags", 4);
    dfa.flags = 0;
    OK(domain_define_xml_flags, &dfa, &dfr);
    if (dfr) {
        lvrpc_domain_create_with_files_args wa = {dfr->dom, 0};
        lvrpc_domain_create_with_files_ret *wr = NULL;
        lvrpc_domain_destroy_args da = {dfr->dom};
        lvrpc_domain_undefine_args ua = {dfr->dom};
        OK(domain_create_with_files, &wa, &wr, NULL, 0);
        LVRPCT_ASSERT(wr && wr->dom.id > 0);
        FREE(wr);
        OK(domain_destroy, &da);
        OK(domain_undefine, &ua);
    }
    FREE(cr); FREE(cfr); FREE(dfr);
}

/* Waits up to 5 s for fd to reach end of file: 1 when it did. */
static int reaches_eof(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char b;

    return poll(&pfd, 1, 5000) == 1 && read(fd, &b, 1) == 0;
}

/* Starts lvp-fds<n> from XML, passing real descriptors, then checks that
 * libvirtd took them and let them go.  libvirtd reads the count, then one
 * descriptor per dummy byte, before it dispatches: a wrong framing would
 * leave it waiting (the call would time out) or make it drop the
 * connection.  The test driver ignores the files and the daemon closes its
 * copies after the call, so each pipe's read end sees end of file once
 * ours are closed. */
static void create_with_fds(lvrpc_client *fc, int n)
{
    char xml[1024], name[32];
    int p1[2], p2[2];
    lvrpc_domain_create_xml_with_files_args a;
    lvrpc_domain_create_xml_with_files_ret *r = NULL;

    if (pipe(p1) != 0 || pipe(p2) != 0) {
        LVRPCT_ASSERT(0);
        return;
    }
    snprintf(name, sizeof(name), "lvp-fds%d", n);
    a.xml_desc = dom_xml(xml, sizeof(xml), name, 40 + n);
    a.flags = 0;
    {
        int fds[3] = {p1[1], p2[1], p2[0]};
        LVRPCT_ASSERT_OK(lvrpc_domain_create_xml_with_files(fc, &a, &r, fds, 3));
    }
    if (r) {
        lvrpc_domain_destroy_args da = {r->dom};
        LVRPCT_ASSERT(r->dom.id > 0 && strcmp(r->dom.name, name) == 0);
        LVRPCT_ASSERT_OK(lvrpc_domain_destroy(fc, &da));
        lvrpc_reply_free(r);
    }
    close(p1[1]);
    close(p2[1]);
    LVRPCT_ASSERT(reaches_eof(p1[0]));
    close(p1[0]);
    close(p2[0]);
}

/* The two other procedures that take descriptors.  libvirt checks that
 * the descriptor OPEN_GRAPHICS receives is a socket, so a pipe end makes
 * the daemon name the descriptor it got; the test driver implements
 * neither call, so a socket gets "not supported", as does FD_ASSOCIATE.
 * Either way the connection stays in step. */
static void graphics_and_associate(lvrpc_client *fc)
{
    lvrpc_domain_lookup_by_name_args la = {"test"};
    lvrpc_domain_lookup_by_name_ret *d = NULL;
    int p[2], sp[2];
    lvrpc_error e;

    LVRPCT_ASSERT_OK(lvrpc_domain_lookup_by_name(fc, &la, &d));
    if (!d || pipe(p) != 0)
        goto out;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0) {
        lvrpc_domain_open_graphics_args ga = {d->dom, 0, 0};
        lvrpc_domain_fd_associate_args fa = {d->dom, "lvp-fdset", 0};
        int rc = lvrpc_domain_open_graphics(fc, &ga, &p[1], 1);
        lvrpc_last_error(&e);
        LVRPCT_ASSERT(rc == LVRPC_EREMOTE && strstr(e.message, "must be a socket"));
        rc = lvrpc_domain_open_graphics(fc, &ga, &sp[0], 1);
        lvrpc_last_error(&e);
        LVRPCT_ASSERT(rc == LVRPC_EREMOTE && e.remote_code == VIR_ERR_NO_SUPPORT);
        mark("domain_open_graphics", rc);
        rc = lvrpc_domain_fd_associate(fc, &fa, p, 2);
        lvrpc_last_error(&e);
        LVRPCT_ASSERT(rc == LVRPC_EREMOTE && e.remote_code == VIR_ERR_NO_SUPPORT);
        mark("domain_fd_associate", rc);
        {
            lvrpc_domain_open_graphics_fd_args gfa = {d->dom, 0, 0};
            int *rfds = (int *)&gfa; /* must come back NULL */
            unsigned nrfds = 7;
            rc = lvrpc_domain_open_graphics_fd(fc, &gfa, &rfds, &nrfds);
            lvrpc_last_error(&e);
            LVRPCT_ASSERT(rc == LVRPC_EREMOTE && e.remote_code == VIR_ERR_NO_SUPPORT);
            LVRPCT_ASSERT(rfds == NULL && nrfds == 0);
            mark("domain_open_graphics_fd", rc);
        }
        close(sp[0]);
        close(sp[1]);
    }
    close(p[0]);
    close(p[1]);
out:
    lvrpc_reply_free(d);
}

/* Descriptors passed with calls to the real daemon, over its UNIX socket
 * in both modes; the same calls with descriptors over TCP are refused
 * before anything is sent, and the handle stays usable. */
static void test_fds_unix(void)
{
    lvrpc_client *tcp = NULL;
    int fds[1] = {0};

    for (int m = 0; m < 2; m++) {
        lvrpc_client *fc = NULL;
        lvrpc_connect_get_lib_version_ret *v = NULL;
        LVRPCT_ASSERT_OK(lvrpct_open(daemon_.uri_unix,
                                     m ? LVRPC_MODE_SHARED : LVRPC_MODE_DIRECT, &fc));
        if (!fc)
            continue;
        for (int i = 0; i < 3; i++)
            create_with_fds(fc, m * 3 + i);
        graphics_and_associate(fc);
        LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(fc, &v));
        LVRPCT_ASSERT(v && v->lib_ver == lib_version);
        lvrpc_reply_free(v);
        lvrpc_close(fc);
    }
    mark("domain_create_xml_with_files", LVRPC_OK);

    LVRPCT_ASSERT_OK(lvrpct_open(daemon_.uri_tcp, LVRPC_MODE_SHARED, &tcp));
    if (tcp) {
        lvrpc_domain_create_xml_with_files_args a = {"<domain/>", 0};
        lvrpc_domain_create_xml_with_files_ret *r = NULL;
        LVRPCT_ASSERT_RC(lvrpc_domain_create_xml_with_files(tcp, &a, &r, fds, 1),
                         LVRPC_ENOTSUP);
        LVRPCT_ASSERT(r == NULL);
        LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(tcp, NULL));
        lvrpc_close(tcp);
    }
}

/* Snapshots and checkpoints of a domain of our own. */
static void test_domain_snapshots(void)
{
    char xml[1024];
    lvrpc_domain_define_xml_args da;
    lvrpc_domain_define_xml_ret *def = NULL;
    lvrpc_domain_ref d;
    lvrpc_domain_snapshot_create_xml_args sca;
    lvrpc_domain_snapshot_create_xml_ret *s1 = NULL, *s2 = NULL;

    da.xml = dom_xml(xml, sizeof(xml), "lvp-snap", 5);
    OK(domain_define_xml, &da, &def);
    if (!def)
        return;
    d = def->dom;
    sca.dom = d;
    sca.xml_desc = "<domainsnapshot><name>s1</name></domainsnapshot>";
    sca.flags = 0;
    OK(domain_snapshot_create_xml, &sca, &s1);
    sca.xml_desc = "<domainsnapshot><name>s2</name></domainsnapshot>";
    OK(domain_snapshot_create_xml, &sca, &s2);
    if (s1 && s2) {
        lvrpc_domain_snapshot_num_args na = {d, 0};
        lvrpc_domain_snapshot_num_ret *nr = NULL;
        lvrpc_domain_snapshot_list_names_args lna = {d, 8, 0};
        lvrpc_domain_snapshot_list_names_ret *lnr = NULL;
        lvrpc_domain_list_all_snapshots_args laa = {d, 1, 0};
        lvrpc_domain_list_all_snapshots_ret *lar = NULL;
        lvrpc_domain_snapshot_lookup_by_name_args lba = {d, "s1", 0};
        lvrpc_domain_snapshot_lookup_by_name_ret *lbr = NULL;
        lvrpc_domain_has_current_snapshot_args hca = {d, 0};
        lvrpc_domain_has_current_snapshot_ret *hcr = NULL;
        lvrpc_domain_snapshot_current_args cua = {d, 0};
        lvrpc_domain_snapshot_current_ret *cur = NULL;
        lvrpc_domain_snapshot_get_xml_desc_args gxa = {s2->snap, 0};
        lvrpc_domain_snapshot_get_xml_desc_ret *gxr = NULL;
        lvrpc_domain_snapshot_get_parent_args gpa = {s2->snap, 0};
        lvrpc_domain_snapshot_get_parent_ret *gpr = NULL;
        lvrpc_domain_snapshot_num_children_args nca = {s1->snap, 0};
        lvrpc_domain_snapshot_num_children_ret *ncr = NULL;
        lvrpc_domain_snapshot_list_children_names_args lcna = {s1->snap, 8, 0};
        lvrpc_domain_snapshot_list_children_names_ret *lcnr = NULL;
        lvrpc_domain_snapshot_list_all_children_args lcaa = {s1->snap, 1, 0};
        lvrpc_domain_snapshot_list_all_children_ret *lcar = NULL;
        lvrpc_domain_snapshot_is_current_args ica = {s2->snap, 0};
        lvrpc_domain_snapshot_is_current_ret *icr = NULL;
        lvrpc_domain_snapshot_has_metadata_args hma = {s1->snap, 0};
        lvrpc_domain_snapshot_has_metadata_ret *hmr = NULL;
        lvrpc_domain_revert_to_snapshot_args rva = {s1->snap, 0};
        lvrpc_domain_snapshot_delete_args dla = {s2->snap, 0};

        OK(domain_snapshot_num, &na, &nr);
        LVRPCT_ASSERT(nr && nr->num == 2);
        OK(domain_snapshot_list_names, &lna, &lnr);
        LVRPCT_ASSERT(lnr && lnr->names.names_len == 2);
        OK(domain_list_all_snapshots, &laa, &lar);
        LVRPCT_ASSERT(lar && lar->ret == 2 && lar->snapshots.snapshots_len == 2);
        OK(domain_snapshot_lookup_by_name, &lba, &lbr);
        if (lbr)
            LVRPCT_ASSERT_STR(lbr->snap.name, "s1");
        OK(domain_has_current_snapshot, &hca, &hcr);
        LVRPCT_ASSERT(hcr && hcr->result == 1);
        OK(domain_snapshot_current, &cua, &cur);
        if (cur)
            LVRPCT_ASSERT_STR(cur->snap.name, "s2");
        OK(domain_snapshot_get_xml_desc, &gxa, &gxr);
        LVRPCT_ASSERT(gxr && strstr(gxr->xml, "<name>s2</name>"));
        OK(domain_snapshot_get_parent, &gpa, &gpr);
        if (gpr)
            LVRPCT_ASSERT_STR(gpr->snap.name, "s1");
        OK(domain_snapshot_num_children, &nca, &ncr);
        LVRPCT_ASSERT(ncr && ncr->num == 1);
        OK(domain_snapshot_list_children_names, &lcna, &lcnr);
        LVRPCT_ASSERT(lcnr && lcnr->names.names_len == 1);
        OK(domain_snapshot_list_all_children, &lcaa, &lcar);
        LVRPCT_ASSERT(lcar && lcar->ret == 1);
        OK(domain_snapshot_is_current, &ica, &icr);
        LVRPCT_ASSERT(icr && icr->current == 1);
        OK(domain_snapshot_has_metadata, &hma, &hmr);
        LVRPCT_ASSERT(hmr && hmr->metadata == 1);
        OK(domain_revert_to_snapshot, &rva);
        OK(domain_snapshot_delete, &dla);
        /* and s1 too: the test driver has no checkpoints while snapshots exist */
        dla.snap = s1->snap;
        OK(domain_snapshot_delete, &dla);
        lba.name = "s2";
        FREE(lbr);
        ERR(VIR_ERR_NO_DOMAIN_SNAPSHOT, domain_snapshot_lookup_by_name, &lba, &lbr);
        FREE(nr); FREE(lnr); FREE(lar); FREE(lbr); FREE(hcr); FREE(cur); FREE(gxr);
        FREE(gpr); FREE(ncr); FREE(lcnr); FREE(lcar); FREE(icr); FREE(hmr);
    }
    {
        /* checkpoints need a running domain */
        lvrpc_domain_create_args ca = {d};
        lvrpc_domain_checkpoint_create_xml_args cca;
        lvrpc_domain_checkpoint_create_xml_ret *c1 = NULL, *c2 = NULL;
        OK(domain_create, &ca);
        cca.dom = d;
        cca.xml_desc = "<domaincheckpoint><name>c1</name></domaincheckpoint>";
        cca.flags = 0;
        OK(domain_checkpoint_create_xml, &cca, &c1);
        cca.xml_desc = "<domaincheckpoint><name>c2</name></domaincheckpoint>";
        OK(domain_checkpoint_create_xml, &cca, &c2);
        if (c1 && c2) {
            lvrpc_domain_checkpoint_get_xml_desc_args gxa = {c2->checkpoint, 0};
            lvrpc_domain_checkpoint_get_xml_desc_ret *gxr = NULL;
            lvrpc_domain_list_all_checkpoints_args laa = {d, 1, 0};
            lvrpc_domain_list_all_checkpoints_ret *lar = NULL;
            lvrpc_domain_checkpoint_list_all_children_args lca = {c1->checkpoint, 1, 0};
            lvrpc_domain_checkpoint_list_all_children_ret *lcr = NULL;
            lvrpc_domain_checkpoint_lookup_by_name_args lba = {d, "c1", 0};
            lvrpc_domain_checkpoint_lookup_by_name_ret *lbr = NULL;
            lvrpc_domain_checkpoint_get_parent_args gpa = {c2->checkpoint, 0};
            lvrpc_domain_checkpoint_get_parent_ret *gpr = NULL;
            lvrpc_domain_checkpoint_delete_args dla = {c2->checkpoint, 0};
            OK(domain_checkpoint_get_xml_desc, &gxa, &gxr);
            LVRPCT_ASSERT(gxr && strstr(gxr->xml, "<name>c2</name>"));
            OK(domain_list_all_checkpoints, &laa, &lar);
            LVRPCT_ASSERT(lar && lar->ret == 2);
            OK(domain_checkpoint_list_all_children, &lca, &lcr);
            LVRPCT_ASSERT(lcr && lcr->ret == 1);
            OK(domain_checkpoint_lookup_by_name, &lba, &lbr);
            if (lbr)
                LVRPCT_ASSERT_STR(lbr->checkpoint.name, "c1");
            OK(domain_checkpoint_get_parent, &gpa, &gpr);
            if (gpr)
                LVRPCT_ASSERT_STR(gpr->parent.name, "c1");
            OK(domain_checkpoint_delete, &dla);
            dla.checkpoint = c1->checkpoint;
            OK(domain_checkpoint_delete, &dla);
            lba.name = "c2";
            FREE(lbr);
            ERR(VIR_ERR_NO_DOMAIN_CHECKPOINT, domain_checkpoint_lookup_by_name, &lba, &lbr);
            FREE(gxr); FREE(lar); FREE(lcr); FREE(lbr); FREE(gpr);
        }
        FREE(c1); FREE(c2);
    }
    {
        lvrpc_domain_destroy_args da2 = {d};
        lvrpc_domain_undefine_flags_args ua = {d, 0};
        OK(domain_destroy, &da2);
        OK(domain_undefine_flags, &ua);
    }
    FREE(s1); FREE(s2); FREE(def);
}

/* ------------------------------------------------------------------ networks */

static void test_networks(void)
{
#define NET_XML_FMT "<network><name>%s</name><uuid>%s</uuid><bridge name='%s'/>" \
                    "<ip address='192.168.%d.1' netmask='255.255.255.0'>" \
                    "<dhcp><range start='192.168.%d.2' end='192.168.%d.254'/></dhcp>" \
                    "</ip></network>"
    char xml[1024], text[37];
    lvrpc_uuid raw;
    lvrpc_network_define_xml_args da;
    lvrpc_network_define_xml_ret *def = NULL;
    lvrpc_network_ref n;

    uuid_of(20, raw, text);
    snprintf(xml, sizeof(xml), NET_XML_FMT, "lvp-net", text, "lvpbr0", 120, 120, 120);
    da.xml = xml;
    OK(network_define_xml, &da, &def);
    if (!def)
        return;
    n = def->net;
    {
        lvrpc_connect_num_of_networks_ret *nn = NULL;
        lvrpc_connect_list_networks_args la = {16};
        lvrpc_connect_list_networks_ret *ln = NULL;
        lvrpc_connect_num_of_defined_networks_ret *nd = NULL;
        lvrpc_connect_list_defined_networks_args lda = {16};
        lvrpc_connect_list_defined_networks_ret *ld = NULL;
        lvrpc_connect_list_all_networks_args laa = {1, 0};
        lvrpc_connect_list_all_networks_ret *lar = NULL;
        OK(connect_num_of_networks, &nn);
        OK(connect_list_networks, &la, &ln);
        LVRPCT_ASSERT(nn && ln && (int)ln->names.names_len == nn->num && nn->num >= 1);
        OK(connect_num_of_defined_networks, &nd);
        OK(connect_list_defined_networks, &lda, &ld);
        LVRPCT_ASSERT(nd && ld && (int)ld->names.names_len == nd->num && nd->num >= 1);
        OK(connect_list_all_networks, &laa, &lar);
        LVRPCT_ASSERT(lar && nn && nd && (int)lar->ret == nn->num + nd->num);
        FREE(nn); FREE(ln); FREE(nd); FREE(ld); FREE(lar);
    }
    {
        lvrpc_network_lookup_by_name_args la = {"lvp-net"};
        lvrpc_network_lookup_by_name_ret *lr = NULL;
        lvrpc_network_lookup_by_uuid_args ua;
        lvrpc_network_lookup_by_uuid_ret *ur = NULL;
        OK(network_lookup_by_name, &la, &lr);
        memcpy(ua.uuid, raw, sizeof(raw));
        OK(network_lookup_by_uuid, &ua, &ur);
        if (ur)
            LVRPCT_ASSERT_STR(ur->net.name, "lvp-net");
        FREE(lr); FREE(ur);
    }
    {
        lvrpc_network_create_args ca = {n};
        lvrpc_network_is_active_args aa = {n};
        lvrpc_network_is_active_ret *ar = NULL;
        lvrpc_network_is_persistent_args pa = {n};
        lvrpc_network_is_persistent_ret *pr = NULL;
        lvrpc_network_get_bridge_name_args ba = {n};
        lvrpc_network_get_bridge_name_ret *br = NULL;
        lvrpc_network_set_autostart_args sa = {n, 1};
        lvrpc_network_get_autostart_args ga = {n};
        lvrpc_network_get_autostart_ret *gr = NULL;
        lvrpc_network_update_args upa;
        lvrpc_network_get_xml_desc_args xa = {n, 0};
        lvrpc_network_get_xml_desc_ret *xr = NULL;
        lvrpc_network_destroy_args dsa = {n};
        OK(network_create, &ca);
        OK(network_is_active, &aa, &ar);
        LVRPCT_ASSERT(ar && ar->active == 1);
        OK(network_is_persistent, &pa, &pr);
        LVRPCT_ASSERT(pr && pr->persistent == 1);
        OK(network_get_bridge_name, &ba, &br);
        if (br)
            LVRPCT_ASSERT_STR(br->name, "lvpbr0");
        OK(network_set_autostart, &sa);
        OK(network_get_autostart, &ga, &gr);
        LVRPCT_ASSERT(gr && gr->autostart == 1);
        memset(&upa, 0, sizeof(upa));
        upa.net = n;
        upa.command = VIR_NETWORK_UPDATE_COMMAND_ADD_LAST;
        upa.section = VIR_NETWORK_SECTION_IP_DHCP_HOST;
        upa.parentIndex = -1;
        upa.xml = "<host mac='52:54:00:00:00:01' name='h1' ip='192.168.120.10'/>";
        upa.flags = VIR_NETWORK_UPDATE_AFFECT_LIVE | VIR_NETWORK_UPDATE_AFFECT_CONFIG;
        OK(network_update, &upa);
        OK(network_get_xml_desc, &xa, &xr);
        LVRPCT_ASSERT(xr && strstr(xr->xml, "192.168.120.10"));
        OK(network_destroy, &dsa);
        FREE(ar); FREE(pr); FREE(br); FREE(gr); FREE(xr);
    }
    {
        lvrpc_network_undefine_args ua = {n};
        lvrpc_network_lookup_by_name_args la = {"lvp-net"};
        lvrpc_network_lookup_by_name_ret *lr = NULL;
        OK(network_undefine, &ua);
        ERR(VIR_ERR_NO_NETWORK, network_lookup_by_name, &la, &lr);
    }
    {
        lvrpc_network_create_xml_args ca;
        lvrpc_network_create_xml_ret *cr = NULL;
        lvrpc_network_create_xml_flags_args cfa;
        lvrpc_network_create_xml_flags_ret *cfr = NULL;
        lvrpc_network_define_xml_flags_args dfa;
        lvrpc_network_define_xml_flags_ret *dfr = NULL;
        uuid_of(21, raw, text);
        snprintf(xml, sizeof(xml), NET_XML_FMT, "lvp-net-t1", text, "lvpbr1", 121, 121, 121);
        ca.xml = xml;
        OK(network_create_xml, &ca, &cr);
        if (cr) {
            lvrpc_network_destroy_args d2 = {cr->net};
            OK(network_destroy, &d2);
        }
        uuid_of(22, raw, text);
        snprintf(xml, sizeof(xml), NET_XML_FMT, "lvp-net-t2", text, "lvpbr2", 122, 122, 122);
        cfa.xml = xml;
        cfa.flags = 0;
        OK(network_create_xml_flags, &cfa, &cfr);
        if (cfr) {
            lvrpc_network_destroy_args d2 = {cfr->net};
            OK(network_destroy, &d2);
        }
        uuid_of(23, raw, text);
        snprintf(xml, sizeof(xml), NET_XML_FMT, "lvp-net-d", text, "lvpbr3", 123, 123, 123);
        dfa.xml = xml;
        dfa.flags = 0;
        OK(network_define_xml_flags, &dfa, &dfr);
        if (dfr) {
            lvrpc_network_undefine_args u2 = {dfr->net};
            OK(network_undefine, &u2);
        }
        FREE(cr); FREE(cfr); FREE(dfr);
    }
    FREE(def);
#undef NET_XML_FMT
}

/* ------------------------------------------------------------------ storage */

static void test_storage(void)
{
    char xml[1024], text[37], path[300];
    lvrpc_uuid raw;
    lvrpc_storage_pool_define_xml_args da;
    lvrpc_storage_pool_define_xml_ret *def = NULL;
    lvrpc_pool_ref p;

    uuid_of(30, raw, text);
    snprintf(path, sizeof(path), "%s/lvp-pool", daemon_.dir);
    snprintf(xml, sizeof(xml),
             "<pool type='dir'><name>lvp-pool</name><uuid>%s</uuid>"
             "<target><path>%s</path></target></pool>", text, path);
    da.xml = xml;
    da.flags = 0;
    OK(storage_pool_define_xml, &da, &def);
    if (!def)
        return;
    p = def->pool;
    {
        lvrpc_connect_num_of_storage_pools_ret *np = NULL;
        lvrpc_connect_list_storage_pools_args la = {16};
        lvrpc_connect_list_storage_pools_ret *lp = NULL;
        lvrpc_connect_num_of_defined_storage_pools_ret *nd = NULL;
        lvrpc_connect_list_defined_storage_pools_args lda = {16};
        lvrpc_connect_list_defined_storage_pools_ret *ld = NULL;
        lvrpc_connect_list_all_storage_pools_args laa = {1, 0};
        lvrpc_connect_list_all_storage_pools_ret *lar = NULL;
        OK(connect_num_of_storage_pools, &np);
        OK(connect_list_storage_pools, &la, &lp);
        LVRPCT_ASSERT(np && lp && (int)lp->names.names_len == np->num);
        OK(connect_num_of_defined_storage_pools, &nd);
        OK(connect_list_defined_storage_pools, &lda, &ld);
        LVRPCT_ASSERT(nd && ld && (int)ld->names.names_len == nd->num && nd->num >= 1);
        OK(connect_list_all_storage_pools, &laa, &lar);
        LVRPCT_ASSERT(lar && np && nd && (int)lar->ret == np->num + nd->num);
        FREE(np); FREE(lp); FREE(nd); FREE(ld); FREE(lar);
    }
    {
        lvrpc_storage_pool_build_args ba = {p, 0};
        lvrpc_storage_pool_create_args ca = {p, 0};
        lvrpc_storage_pool_is_active_args aa = {p};
        lvrpc_storage_pool_is_active_ret *ar = NULL;
        lvrpc_storage_pool_is_persistent_args pa = {p};
        lvrpc_storage_pool_is_persistent_ret *pr = NULL;
        lvrpc_storage_pool_get_info_args ia = {p};
        lvrpc_storage_pool_get_info_ret *ir = NULL;
        lvrpc_storage_pool_get_xml_desc_args xa = {p, 0};
        lvrpc_storage_pool_get_xml_desc_ret *xr = NULL;
        lvrpc_storage_pool_set_autostart_args sa = {p, 1};
        lvrpc_storage_pool_get_autostart_args ga = {p};
        lvrpc_storage_pool_get_autostart_ret *gr = NULL;
        lvrpc_storage_pool_refresh_args ra = {p, 0};
        lvrpc_storage_pool_lookup_by_name_args lna = {"lvp-pool"};
        lvrpc_storage_pool_lookup_by_name_ret *lnr = NULL;
        lvrpc_storage_pool_lookup_by_uuid_args lua;
        lvrpc_storage_pool_lookup_by_uuid_ret *lur = NULL;
        OK(storage_pool_build, &ba);
        OK(storage_pool_create, &ca);
        OK(storage_pool_is_active, &aa, &ar);
        LVRPCT_ASSERT(ar && ar->active == 1);
        OK(storage_pool_is_persistent, &pa, &pr);
        LVRPCT_ASSERT(pr && pr->persistent == 1);
        OK(storage_pool_get_info, &ia, &ir);
        LVRPCT_ASSERT(ir && ir->capacity > 0);
        OK(storage_pool_get_xml_desc, &xa, &xr);
        LVRPCT_ASSERT(xr && strstr(xr->xml, "<name>lvp-pool</name>"));
        OK(storage_pool_set_autostart, &sa);
        OK(storage_pool_get_autostart, &ga, &gr);
        LVRPCT_ASSERT(gr && gr->autostart == 1);
        OK(storage_pool_refresh, &ra);
        OK(storage_pool_lookup_by_name, &lna, &lnr);
        memcpy(lua.uuid, raw, sizeof(raw));
        OK(storage_pool_lookup_by_uuid, &lua, &lur);
        if (lur)
            LVRPCT_ASSERT_STR(lur->pool.name, "lvp-pool");
        FREE(ar); FREE(pr); FREE(ir); FREE(xr); FREE(gr); FREE(lnr); FREE(lur);
    }
    {
        lvrpc_storage_vol_create_xml_args ca;
        lvrpc_storage_vol_create_xml_ret *v1 = NULL;
        lvrpc_storage_vol_create_xml_from_args cfa;
        lvrpc_storage_vol_create_xml_from_ret *v2 = NULL;
        ca.pool = p;
        ca.xml = "<volume><name>v1.img</name><capacity unit='bytes'>1048576</capacity>"
                 "<allocation unit='bytes'>4096</allocation></volume>";
        ca.flags = 0;
        OK(storage_vol_create_xml, &ca, &v1);
        if (v1) {
            lvrpc_storage_pool_num_of_volumes_args na = {p};
            lvrpc_storage_pool_num_of_volumes_ret *nr = NULL;
            lvrpc_storage_pool_list_volumes_args la = {p, 8};
            lvrpc_storage_pool_list_volumes_ret *lr = NULL;
            lvrpc_storage_pool_list_all_volumes_args laa = {p, 1, 0};
            lvrpc_storage_pool_list_all_volumes_ret *lar = NULL;
            lvrpc_storage_vol_lookup_by_name_args lna = {p, "v1.img"};
            lvrpc_storage_vol_lookup_by_name_ret *lnr = NULL;
            lvrpc_storage_vol_lookup_by_key_args lka = {v1->vol.key};
            lvrpc_storage_vol_lookup_by_key_ret *lkr = NULL;
            lvrpc_storage_vol_get_path_args gpa = {v1->vol};
            lvrpc_storage_vol_get_path_ret *gpr = NULL;
            lvrpc_storage_vol_get_info_args gia = {v1->vol};
            lvrpc_storage_vol_get_info_ret *gir = NULL;
            lvrpc_storage_vol_get_xml_desc_args gxa = {v1->vol, 0};
            lvrpc_storage_vol_get_xml_desc_ret *gxr = NULL;
            lvrpc_storage_pool_lookup_by_volume_args lva = {v1->vol};
            lvrpc_storage_pool_lookup_by_volume_ret *lvr = NULL;

            OK(storage_pool_num_of_volumes, &na, &nr);
            LVRPCT_ASSERT(nr && nr->num == 1);
            OK(storage_pool_list_volumes, &la, &lr);
            LVRPCT_ASSERT(lr && lr->names.names_len == 1);
            OK(storage_pool_list_all_volumes, &laa, &lar);
            LVRPCT_ASSERT(lar && lar->ret == 1);
            OK(storage_vol_lookup_by_name, &lna, &lnr);
            OK(storage_vol_lookup_by_key, &lka, &lkr);
            OK(storage_vol_get_path, &gpa, &gpr);
            if (gpr) {
                lvrpc_storage_vol_lookup_by_path_args lpa = {gpr->name};
                lvrpc_storage_vol_lookup_by_path_ret *lpr = NULL;
                OK(storage_vol_lookup_by_path, &lpa, &lpr);
                if (lpr)
                    LVRPCT_ASSERT_STR(lpr->vol.name, "v1.img");
                FREE(lpr);
            }
            OK(storage_vol_get_info, &gia, &gir);
            LVRPCT_ASSERT(gir && gir->capacity == 1048576);
            OK(storage_vol_get_xml_desc, &gxa, &gxr);
            LVRPCT_ASSERT(gxr && strstr(gxr->xml, "v1.img"));
            OK(storage_pool_lookup_by_volume, &lva, &lvr);
            if (lvr)
                LVRPCT_ASSERT_STR(lvr->pool.name, "lvp-pool");
            cfa.pool = p;
            cfa.xml = "<volume><name>v2.img</name><capacity unit='bytes'>1048576</capacity>"
                      "</volume>";
            cfa.clonevol = v1->vol;
            cfa.flags = 0;
            OK(storage_vol_create_xml_from, &cfa, &v2);
            if (v2) {
                lvrpc_storage_vol_delete_args dla = {v2->vol, 0};
                OK(storage_vol_delete, &dla);
            }
            {
                lvrpc_storage_vol_delete_args dla = {v1->vol, 0};
                OK(storage_vol_delete, &dla);
            }
            FREE(nr); FREE(lr); FREE(lar); FREE(lnr); FREE(lkr); FREE(gpr); FREE(gir);
            FREE(gxr); FREE(lvr);
        }
        FREE(v1); FREE(v2);
    }
    {
        lvrpc_storage_pool_destroy_args dsa = {p};
        lvrpc_storage_pool_delete_args dla = {p, 0};
        lvrpc_storage_pool_undefine_args ua = {p};
        OK(storage_pool_destroy, &dsa);
        OK(storage_pool_delete, &dla);
        OK(storage_pool_undefine, &ua);
    }
    {
        lvrpc_storage_pool_create_xml_args ca;
        lvrpc_storage_pool_create_xml_ret *cr = NULL;
        uuid_of(31, raw, text);
        snprintf(path, sizeof(path), "%s/lvp-pool-t", daemon_.dir);
        snprintf(xml, sizeof(xml),
                 "<pool type='dir'><name>lvp-pool-t</name><uuid>%s</uuid>"
                 "<target><path>%s</path></target></pool>", text, path);
        ca.xml = xml;
        ca.flags = 0;
        OK(storage_pool_create_xml, &ca, &cr);
        if (cr) {
            lvrpc_storage_pool_destroy_args dsa = {cr->pool};
            OK(storage_pool_destroy, &dsa);
        }
        FREE(cr);
    }
    FREE(def);
}

/* ------------------------------------------------------------------ host devices, interfaces */

static void test_node_devices(void)
{
    lvrpc_node_num_of_devices_args na = {NULL, 0};
    lvrpc_node_num_of_devices_ret *nr = NULL;
    lvrpc_node_list_devices_args la = {NULL, 64, 0};
    lvrpc_node_list_devices_ret *lr = NULL;
    lvrpc_connect_list_all_node_devices_args laa = {1, 0};
    lvrpc_connect_list_all_node_devices_ret *lar = NULL;

    OK(node_num_of_devices, &na, &nr);
    LVRPCT_ASSERT(nr && nr->num >= 2);
    OK(node_list_devices, &la, &lr);
    LVRPCT_ASSERT(lr && nr && (int)lr->names.names_len == nr->num);
    OK(connect_list_all_node_devices, &laa, &lar);
    LVRPCT_ASSERT(lar && nr && (int)lar->ret == nr->num);
    {
        lvrpc_node_device_lookup_by_name_args a = {"scsi_host1"};
        lvrpc_node_device_lookup_by_name_ret *r = NULL;
        lvrpc_node_device_get_xml_desc_args xa = {"scsi_host1", 0};
        lvrpc_node_device_get_xml_desc_ret *xr = NULL;
        lvrpc_node_device_get_parent_args pa = {"scsi_host1"};
        lvrpc_node_device_get_parent_ret *pr = NULL;
        lvrpc_node_device_num_of_caps_args nca = {"scsi_host1"};
        lvrpc_node_device_num_of_caps_ret *ncr = NULL;
        lvrpc_node_device_list_caps_args lca = {"scsi_host1", 8};
        lvrpc_node_device_list_caps_ret *lcr = NULL;
        OK(node_device_lookup_by_name, &a, &r);
        OK(node_device_get_xml_desc, &xa, &xr);
        LVRPCT_ASSERT(xr && strstr(xr->xml, "scsi_host1"));
        OK(node_device_get_parent, &pa, &pr);
        LVRPCT_ASSERT(pr && pr->parentName && strcmp(*pr->parentName, "computer") == 0);
        OK(node_device_num_of_caps, &nca, &ncr);
        LVRPCT_ASSERT(ncr && ncr->num >= 1);
        OK(node_device_list_caps, &lca, &lcr);
        LVRPCT_ASSERT(lcr && ncr && (int)lcr->names.names_len == ncr->num);
        FREE(r); FREE(xr); FREE(pr); FREE(ncr); FREE(lcr);
    }
    {
        /* a vHBA on the fibre-channel capable scsi_host1 */
        lvrpc_node_device_create_xml_args ca;
        lvrpc_node_device_create_xml_ret *cr = NULL;
        ca.xml_desc = "<device><parent>scsi_host1</parent>"
                      "<capability type='scsi_host'><capability type='fc_host'>"
                      "<wwnn>2001001b32a9da5e</wwnn><wwpn>2101001b32a9da5e</wwpn>"
                      "</capability></capability></device>";
        ca.flags = 0;
        OK(node_device_create_xml, &ca, &cr);
        if (cr) {
            lvrpc_node_device_destroy_args dsa = {cr->dev.name};
            OK(node_device_destroy, &dsa);
        }
        FREE(cr);
    }
    FREE(nr); FREE(lr); FREE(lar);
}

static void test_interfaces(void)
{
    lvrpc_connect_num_of_interfaces_ret *n = NULL;
    lvrpc_connect_list_interfaces_args la = {8};
    lvrpc_connect_list_interfaces_ret *lr = NULL;
    lvrpc_connect_num_of_defined_interfaces_ret *nd = NULL;
    lvrpc_connect_list_defined_interfaces_args lda = {8};
    lvrpc_connect_list_defined_interfaces_ret *ldr = NULL;
    lvrpc_connect_list_all_interfaces_args laa = {1, 0};
    lvrpc_connect_list_all_interfaces_ret *lar = NULL;
    lvrpc_interface_change_begin_args cba = {0};
    lvrpc_interface_change_commit_args cca = {0};
    lvrpc_interface_change_rollback_args cra = {0};

    OK(connect_num_of_interfaces, &n);
    OK(connect_list_interfaces, &la, &lr);
    LVRPCT_ASSERT(n && lr && n->num >= 1 && (int)lr->names.names_len == n->num);
    OK(connect_num_of_defined_interfaces, &nd);
    OK(connect_list_defined_interfaces, &lda, &ldr);
    LVRPCT_ASSERT(nd && ldr && (int)ldr->names.names_len == nd->num);
    OK(connect_list_all_interfaces, &laa, &lar);
    LVRPCT_ASSERT(lar && n && nd && (int)lar->ret == n->num + nd->num);
    {
        lvrpc_interface_lookup_by_name_args a = {"eth1"};
        lvrpc_interface_lookup_by_name_ret *r = NULL;
        lvrpc_interface_lookup_by_mac_string_args ma = {"aa:bb:cc:dd:ee:ff"};
        lvrpc_interface_lookup_by_mac_string_ret *mr = NULL;
        OK(interface_lookup_by_name, &a, &r);
        OK(interface_lookup_by_mac_string, &ma, &mr);
        if (mr)
            LVRPCT_ASSERT_STR(mr->iface.name, "eth1");
        if (r) {
            lvrpc_interface_get_xml_desc_args xa = {r->iface, 0};
            lvrpc_interface_get_xml_desc_ret *xr = NULL;
            lvrpc_interface_is_active_args ia = {r->iface};
            lvrpc_interface_is_active_ret *ir = NULL;
            OK(interface_get_xml_desc, &xa, &xr);
            LVRPCT_ASSERT(xr && strstr(xr->xml, "eth1"));
            OK(interface_is_active, &ia, &ir);
            LVRPCT_ASSERT(ir && ir->active == 1);
            FREE(xr); FREE(ir);
        }
        FREE(r); FREE(mr);
    }
    OK(interface_change_begin, &cba);
    {
        lvrpc_interface_define_xml_args da;
        lvrpc_interface_define_xml_ret *dr = NULL;
        da.xml = "<interface type='ethernet' name='lvp0'><mac address='52:54:00:aa:bb:01'/>"
                 "</interface>";
        da.flags = 0;
        OK(interface_define_xml, &da, &dr);
        if (dr) {
            lvrpc_interface_create_args ca = {dr->iface, 0};
            lvrpc_interface_destroy_args dsa = {dr->iface, 0};
            lvrpc_interface_undefine_args ua = {dr->iface};
            OK(interface_create, &ca);
            OK(interface_destroy, &dsa);
            OK(interface_undefine, &ua);
        }
        FREE(dr);
    }
    OK(interface_change_commit, &cca);
    OK(interface_change_begin, &cba);
    OK(interface_change_rollback, &cra);
    {
        lvrpc_interface_lookup_by_name_args a = {"lvp0"};
        lvrpc_interface_lookup_by_name_ret *r = NULL;
        ERR(VIR_ERR_NO_INTERFACE, interface_lookup_by_name, &a, &r);
    }
    FREE(n); FREE(lr); FREE(nd); FREE(ldr); FREE(lar);
}

/* ------------------------------------------------------------------ events */

/* Registration calls, each undone at once; on a handle of its own, and
 * nothing changes in between, so no event is sent. */
static void test_event_registration(void)
{
    lvrpc_client *saved = c;
    lvrpc_client *ev = NULL;

    if (lvrpct_open(daemon_.uri_unix, LVRPC_MODE_DIRECT, &ev) != LVRPC_OK)
        return;
    c = ev;
    {
        lvrpc_connect_domain_event_register_ret *r = NULL;
        lvrpc_connect_domain_event_deregister_ret *dr = NULL;
        /* cb_registered is a placeholder that libvirtd leaves at 0 */
        OK(connect_domain_event_register, &r);
        LVRPCT_ASSERT(r != NULL);
        OK(connect_domain_event_deregister, &dr);
        LVRPCT_ASSERT(dr != NULL);
        FREE(r); FREE(dr);
    }
    {
        lvrpc_connect_domain_event_register_any_args a = {VIR_DOMAIN_EVENT_ID_REBOOT};
        lvrpc_connect_domain_event_deregister_any_args da = {VIR_DOMAIN_EVENT_ID_REBOOT};
        OK(connect_domain_event_register_any, &a);
        OK(connect_domain_event_deregister_any, &da);
    }
    {
        lvrpc_connect_domain_event_callback_register_any_args a = {VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                                   NULL};
        lvrpc_connect_domain_event_callback_register_any_ret *r = NULL;
        OK(connect_domain_event_callback_register_any, &a, &r);
        if (r) {
            lvrpc_connect_domain_event_callback_deregister_any_args da = {r->callbackID};
            OK(connect_domain_event_callback_deregister_any, &da);
            ERR(VIR_ERR_INTERNAL_ERROR, connect_domain_event_callback_deregister_any, &da);
        }
        FREE(r);
    }
    {
        lvrpc_connect_network_event_register_any_args a = {VIR_NETWORK_EVENT_ID_LIFECYCLE, NULL};
        lvrpc_connect_network_event_register_any_ret *r = NULL;
        OK(connect_network_event_register_any, &a, &r);
        if (r) {
            lvrpc_connect_network_event_deregister_any_args da = {r->callbackID};
            OK(connect_network_event_deregister_any, &da);
        }
        FREE(r);
    }
    {
        lvrpc_connect_storage_pool_event_register_any_args a = {
            VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE, NULL};
        lvrpc_connect_storage_pool_event_register_any_ret *r = NULL;
        OK(connect_storage_pool_event_register_any, &a, &r);
        if (r) {
            lvrpc_connect_storage_pool_event_deregister_any_args da = {r->callbackID};
            OK(connect_storage_pool_event_deregister_any, &da);
        }
        FREE(r);
    }
    {
        lvrpc_connect_node_device_event_register_any_args a = {
            VIR_NODE_DEVICE_EVENT_ID_LIFECYCLE, NULL};
        lvrpc_connect_node_device_event_register_any_ret *r = NULL;
        OK(connect_node_device_event_register_any, &a, &r);
        if (r) {
            lvrpc_connect_node_device_event_deregister_any_args da = {r->callbackID};
            OK(connect_node_device_event_deregister_any, &da);
        }
        FREE(r);
    }
    c = saved;
    lvrpc_close(ev);
}

/* ------------------------------------------------------------------ coverage */

/* Remote procedures that libvirt 9.0's test driver (or the daemon itself,
 * for a test-driver connection) answers with something other than "not
 * supported", found by calling every procedure against it. */
static const int test_driver_procs[] = {
    3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
    28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49,
    50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 64, 65, 71, 72, 73, 74, 76, 77, 78, 79, 80,
    81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101,
    102, 104, 105, 106, 110, 111, 112, 113, 114, 115, 116, 117, 121, 122, 123, 124, 125, 126,
    127, 128, 129, 130, 131, 132, 133, 134, 137, 138, 149, 150, 151, 152, 153, 154, 155, 156,
    157, 159, 162, 167, 168, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194,
    196, 197, 198, 199, 200, 202, 203, 204, 205, 206, 210, 211, 212, 219, 220, 221, 222, 223,
    225, 226, 227, 229, 230, 231, 232, 233, 234, 235, 236, 244, 245, 246, 247, 249, 252, 253,
    254, 255, 256, 257, 258, 262, 263, 264, 265, 271, 272, 273, 274, 275, 277, 278, 279, 280,
    281, 282, 283, 284, 285, 291, 293, 294, 295, 308, 309, 310, 312, 313, 314, 316, 317, 334,
    335, 336, 337, 338, 340, 344, 349, 350, 351, 352, 353, 355, 356, 357, 358, 360, 361, 365,
    366, 368, 369, 374, 375, 390, 396, 402, 411, 412, 413, 414, 415, 416, 417, 419, 426, 432,
    437, 443,
};

/* Those this program does not call, and why. */
static const struct {
    int proc;
    const char *why;
} not_reached[] = {
    {211, "DOMAIN_SCREENSHOT opens a stream (the stream tests' business)"},
};

static void test_coverage(void)
{
    size_t n = sizeof(test_driver_procs) / sizeof(test_driver_procs[0]);
    unsigned missed = 0, total_reached = 0;

    for (int i = 1; i <= LVRPC_PROC_COUNT_REMOTE; i++)
        total_reached += reached[i];
    for (size_t i = 0; i < n; i++) {
        int proc = test_driver_procs[i], excused = 0;
        const lvrpc_proc_info *p = lvrpc_proc_by_number(LVRPC_PROGRAM_REMOTE, proc);
        for (size_t j = 0; j < sizeof(not_reached) / sizeof(not_reached[0]); j++)
            if (not_reached[j].proc == proc)
                excused = 1;
        if (reached[proc] || excused)
            continue;
        missed++;
        lvrpct_assert(0, __FILE__, __LINE__, "test-driver procedure %d %s was not called", proc,
                      p ? p->name : "?");
    }
    printf("\n  %u remote procedures answered by the daemon; %zu implemented by the test "
           "driver, %u of them missed, %zu excused:\n",
           total_reached, n, missed, sizeof(not_reached) / sizeof(not_reached[0]));
    for (size_t j = 0; j < sizeof(not_reached) / sizeof(not_reached[0]); j++)
        printf("    %d: %s\n", not_reached[j].proc, not_reached[j].why);
    LVRPCT_ASSERT_INT(missed, 0);
}

/* ------------------------------------------------------------------ storage driver */

/* A private libvirtd with the real storage driver and a directory pool
 * (tests/libvirtd-storage-up.sh), for the calls the test driver lacks. */
static struct {
    char dir[128];
    pid_t pid;
    char uri[320], pool[64], pool_dir[256];
} sd;


static int storage_suite_cleanup(void)
{
    lvrpc_close(c);
    c = NULL;
    if (!sd.dir[0])
        return 0;
    if (sd.pid > 0 && lvrpct_run_test_script("libvirtd-down.sh", sd.dir, NULL) != 0)
        fprintf(stderr, "warning: libvirtd-down.sh %s failed\n", sd.dir);
    if (getenv("LVRPCT_KEEP"))
        fprintf(stderr, "LVRPCT_KEEP: keeping %s\n", sd.dir);
    else
        lvrpct_remove_tree(sd.dir);
    memset(&sd, 0, sizeof(sd));
    return 0;
}

static int storage_suite_init(void)
{
    char out[PATH_MAX], line[1024];
    const char *tmp = getenv("TMPDIR");
    FILE *f;
    int rc;

    memset(&sd, 0, sizeof(sd));
    if (!tmp || !*tmp || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(sd.dir, sizeof(sd.dir), "%s/lvrpcp-XXXXXX", tmp);
    if (!mkdtemp(sd.dir)) {
        lvrpct_hard_error("mkdtemp %s: %s", sd.dir, strerror(errno));
        sd.dir[0] = '\0';
        return 1;
    }
    chmod(sd.dir, 0755); /* the daemon may run as another user */
    snprintf(out, sizeof(out), "%s/up.out", sd.dir);
    rc = lvrpct_run_test_script("libvirtd-storage-up.sh", sd.dir, out);
    if (rc != 0) {
        lvrpct_hard_error("libvirtd-storage-up.sh %s failed (exit status %d)", sd.dir, rc);
        storage_suite_cleanup();
        return 1;
    }
    snprintf(out, sizeof(out), "%s/env", sd.dir);
    if (!(f = fopen(out, "r"))) {
        lvrpct_hard_error("no %s", out);
        storage_suite_cleanup();
        return 1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *val = strchr(line, '=');
        if (!val)
            continue;
        *val++ = '\0';
        val[strcspn(val, "\n")] = '\0';
        if (!strcmp(line, "LIBVIRTD_PID"))
            sd.pid = (pid_t)atol(val);
        else if (!strcmp(line, "LIBVIRTD_URI_UNIX"))
            snprintf(sd.uri, sizeof(sd.uri), "%s", val);
        else if (!strcmp(line, "LIBVIRTD_POOL"))
            snprintf(sd.pool, sizeof(sd.pool), "%s", val);
        else if (!strcmp(line, "LIBVIRTD_POOL_DIR"))
            snprintf(sd.pool_dir, sizeof(sd.pool_dir), "%s", val);
    }
    fclose(f);
    if (!sd.uri[0] || !sd.pool[0] || !sd.pool_dir[0]) {
        lvrpct_hard_error("%s/env lacks the URI or the pool", sd.dir);
        storage_suite_cleanup();
        return 1;
    }
    if (lvrpct_open(sd.uri, LVRPC_MODE_DIRECT, &c) != LVRPC_OK) {
        storage_suite_cleanup();
        return 1;
    }
    return 0;
}

/* What the storage driver has and the test driver lacks (volume streams
 * are the stream tests' business). */
static void test_storage_driver(void)
{
    lvrpc_connect_get_storage_pool_capabilities_args ca = {0};
    lvrpc_connect_get_storage_pool_capabilities_ret *caps = NULL;
    lvrpc_storage_pool_lookup_by_target_path_args ta = {sd.pool_dir};
    lvrpc_storage_pool_lookup_by_target_path_ret *pool = NULL;
    lvrpc_connect_find_storage_pool_sources_args fa = {"dir", NULL, 0};
    lvrpc_connect_find_storage_pool_sources_ret *found = NULL;
    lvrpc_storage_vol_create_xml_args va;
    lvrpc_storage_vol_create_xml_ret *vol = NULL;

    OK(connect_get_storage_pool_capabilities, &ca, &caps);
    LVRPCT_ASSERT(caps && strstr(caps->capabilities, "<storagepoolCapabilities"));
    OK(storage_pool_lookup_by_target_path, &ta, &pool);
    if (pool)
        LVRPCT_ASSERT_STR(pool->pool.name, sd.pool);
    /* the driver has source discovery, directory pools do not */
    ERR(VIR_ERR_NO_SUPPORT, connect_find_storage_pool_sources, &fa, &found);
    if (!pool)
        return;
    va.pool = pool->pool;
    va.xml = "<volume><name>lvp-wipe.raw</name><capacity unit='bytes'>1048576</capacity>"
             "<target><format type='raw'/></target></volume>";
    va.flags = 0;
    OK(storage_vol_create_xml, &va, &vol);
    if (vol) {
        lvrpc_storage_vol_get_info_flags_args ia = {vol->vol, 0};
        lvrpc_storage_vol_get_info_flags_ret *ir = NULL;
        lvrpc_storage_vol_resize_args ra = {vol->vol, 2097152, 0};
        lvrpc_storage_vol_wipe_args wa = {vol->vol, 0};
        lvrpc_storage_vol_wipe_pattern_args wpa = {vol->vol, 0, 0}; /* VIR_STORAGE_VOL_WIPE_ALG_ZERO */
        lvrpc_storage_vol_delete_args da = {vol->vol, 0};
        OK(storage_vol_get_info_flags, &ia, &ir);
        LVRPCT_ASSERT(ir && ir->capacity == 1048576);
        FREE(ir);
        OK(storage_vol_resize, &ra);
        OK(storage_vol_get_info_flags, &ia, &ir);
        LVRPCT_ASSERT(ir && ir->capacity == 2097152);
        FREE(ir);
        OK(storage_vol_wipe, &wa);
        OK(storage_vol_wipe_pattern, &wpa);
        OK(storage_vol_delete, &da);
    }
    FREE(caps); FREE(pool); FREE(found); FREE(vol);
}

/* ------------------------------------------------------------------ admin program */

/* A minimal client of the admin program on a UNIX socket: one call at a
 * time, packets built with the generated XDR routines. */
typedef struct admin_conn {
    int fd;
    unsigned serial;
    lvrpc_remote_error err; /* the last error reply */
} admin_conn;

static int admin_call(admin_conn *a, int proc, xdrproc_t xa, void *args, xdrproc_t xr,
                      void *ret)
{
    static char buf[1 << 20];
    lvrpc_header h = {LVRPC_PROGRAM_ADMIN, LVRPC_PROGRAM_ADMIN_VERSION, proc, LVRPC_CALL,
                      ++a->serial, LVRPC_STATUS_OK};
    lvrpc_header rh;
    uint32_t len;
    size_t got = 0;
    XDR x;
    int rc = -1;

    xdr_free((xdrproc_t)xdr_lvrpc_remote_error, (char *)&a->err);
    memset(&a->err, 0, sizeof(a->err));
    xdrmem_create(&x, buf + 4, sizeof(buf) - 4, XDR_ENCODE);
    if (!xdr_lvrpc_header(&x, &h) || (xa && !xa(&x, args)))
        return -1;
    len = htonl(xdr_getpos(&x) + 4);
    memcpy(buf, &len, 4);
    if (write(a->fd, buf, xdr_getpos(&x) + 4) != (ssize_t)(xdr_getpos(&x) + 4))
        return -1;
    if (read(a->fd, &len, 4) != 4)
        return -1;
    len = ntohl(len);
    if (len < 28 || len - 4 > sizeof(buf))
        return -1;
    len -= 4;
    while (got < len) {
        ssize_t r = read(a->fd, buf + got, len - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    xdrmem_create(&x, buf, len, XDR_DECODE);
    if (!xdr_lvrpc_header(&x, &rh) || rh.prog != LVRPC_PROGRAM_ADMIN || rh.proc != proc ||
        rh.type != LVRPC_REPLY || rh.serial != a->serial)
        return -1;
    if (rh.status == LVRPC_STATUS_ERROR)
        return xdr_lvrpc_remote_error(&x, &a->err) ? 1 : -1;
    if (rh.status != LVRPC_STATUS_OK)
        return -1;
    if (xr)
        rc = xr(&x, ret) && xdr_getpos(&x) == len ? 0 : -1;
    else
        rc = len == 24 ? 0 : -1;
    return rc;
}

#define ADMIN_OK(a, proc, xa, args, xr, ret) \
    lvrpct_assert(admin_call((a), (proc), (xdrproc_t)(xa), (args), (xdrproc_t)(xr), (ret)) == 0, \
                  __FILE__, __LINE__, "admin procedure %d (%s): %s", (proc), #proc, \
                  (a)->err.message ? *(a)->err.message : "no error reply")

static void test_admin(void)
{
    char path[320], *slash;
    struct sockaddr_un sa;
    admin_conn a;
    lvrpc_admin_connect_open_args oa = {0};
    lvrpc_admin_connect_get_lib_version_ret lv;
    lvrpc_admin_connect_list_servers_args lsa = {1, 0};
    lvrpc_admin_connect_list_servers_ret ls;
    lvrpc_connect_get_lib_version_ret *remote_lv = NULL;
    int found_libvirtd = 0;

    memset(&a, 0, sizeof(a));
    memset(&lv, 0, sizeof(lv));
    memset(&ls, 0, sizeof(ls));
    snprintf(path, sizeof(path), "%s", daemon_.unix_sock);
    slash = strrchr(path, '/');
    if (!slash)
        return;
    snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path), "libvirt-admin-sock");
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        lvrpct_assert(0, __FILE__, __LINE__, "admin socket path too long: %s", path);
        return;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    a.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    LVRPCT_ASSERT(a.fd >= 0);
    if (a.fd < 0)
        return;
    {
        struct timeval tv = {10, 0};
        setsockopt(a.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    if (connect(a.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        lvrpct_assert(0, __FILE__, __LINE__, "connect %s: %s", path, strerror(errno));
        close(a.fd);
        return;
    }
    /* the remote handle c is a client of the "libvirtd" server meanwhile */
    LVRPCT_ASSERT_OK(lvrpc_connect_get_lib_version(c, &remote_lv));

    ADMIN_OK(&a, LVRPC_ADMIN_PROC_CONNECT_OPEN, xdr_lvrpc_admin_connect_open_args, &oa, NULL, NULL);
    ADMIN_OK(&a, LVRPC_ADMIN_PROC_CONNECT_GET_LIB_VERSION, NULL, NULL,
             xdr_lvrpc_admin_connect_get_lib_version_ret, &lv);
    LVRPCT_ASSERT(remote_lv && lv.libVer == remote_lv->lib_ver);
    ADMIN_OK(&a, LVRPC_ADMIN_PROC_CONNECT_LIST_SERVERS, xdr_lvrpc_admin_connect_list_servers_args,
             &lsa, xdr_lvrpc_admin_connect_list_servers_ret, &ls);
    LVRPCT_ASSERT(ls.ret >= 2 && ls.servers.servers_len == ls.ret);
    for (u_int i = 0; i < ls.servers.servers_len; i++) {
        lvrpc_admin_server_ref *srv = &ls.servers.servers_val[i];
        lvrpc_admin_connect_lookup_server_args lka = {srv->name, 0};
        lvrpc_admin_connect_lookup_server_ret lkr;
        lvrpc_admin_server_list_clients_args lca = {*srv, 1, 0};
        lvrpc_admin_server_list_clients_ret lcr;
        lvrpc_admin_server_get_threadpool_parameters_args tpa = {*srv, 0};
        lvrpc_admin_server_get_threadpool_parameters_ret tpr;
        lvrpc_admin_server_get_client_limits_args cla = {*srv, 0};
        lvrpc_admin_server_get_client_limits_ret clr;

        memset(&lkr, 0, sizeof(lkr));
        memset(&lcr, 0, sizeof(lcr));
        memset(&tpr, 0, sizeof(tpr));
        memset(&clr, 0, sizeof(clr));
        ADMIN_OK(&a, LVRPC_ADMIN_PROC_CONNECT_LOOKUP_SERVER,
                 xdr_lvrpc_admin_connect_lookup_server_args, &lka,
                 xdr_lvrpc_admin_connect_lookup_server_ret, &lkr);
        LVRPCT_ASSERT(lkr.srv.name && strcmp(lkr.srv.name, srv->name) == 0);
        ADMIN_OK(&a, LVRPC_ADMIN_PROC_SERVER_LIST_CLIENTS,
                 xdr_lvrpc_admin_server_list_clients_args, &lca,
                 xdr_lvrpc_admin_server_list_clients_ret, &lcr);
        LVRPCT_ASSERT(lcr.clients.clients_len == lcr.ret);
        /* both servers have a client: our remote handle, and this admin connection */
        LVRPCT_ASSERT(lcr.ret >= 1);
        if (strcmp(srv->name, "libvirtd") == 0)
            found_libvirtd = 1;
        for (u_int j = 0; j < lcr.clients.clients_len && j < 4; j++) {
            lvrpc_admin_client_ref *cl = &lcr.clients.clients_val[j];
            lvrpc_admin_server_lookup_client_args sla = {*srv, cl->id, 0};
            lvrpc_admin_server_lookup_client_ret slr;
            lvrpc_admin_client_get_info_args cia = {*cl, 0};
            lvrpc_admin_client_get_info_ret cir;
            memset(&slr, 0, sizeof(slr));
            memset(&cir, 0, sizeof(cir));
            LVRPCT_ASSERT(cl->timestamp > 0 && strcmp(cl->srv.name, srv->name) == 0);
            ADMIN_OK(&a, LVRPC_ADMIN_PROC_SERVER_LOOKUP_CLIENT,
                     xdr_lvrpc_admin_server_lookup_client_args, &sla,
                     xdr_lvrpc_admin_server_lookup_client_ret, &slr);
            LVRPCT_ASSERT(slr.clnt.id == cl->id && slr.clnt.transport == cl->transport);
            ADMIN_OK(&a, LVRPC_ADMIN_PROC_CLIENT_GET_INFO, xdr_lvrpc_admin_client_get_info_args,
                     &cia, xdr_lvrpc_admin_client_get_info_ret, &cir);
            LVRPCT_ASSERT(find_param(cir.params.params_val, cir.params.params_len,
                                     "readonly") != NULL);
            xdr_free((xdrproc_t)xdr_lvrpc_admin_server_lookup_client_ret, (char *)&slr);
            xdr_free((xdrproc_t)xdr_lvrpc_admin_client_get_info_ret, (char *)&cir);
        }
        ADMIN_OK(&a, LVRPC_ADMIN_PROC_SERVER_GET_THREADPOOL_PARAMETERS,
                 xdr_lvrpc_admin_server_get_threadpool_parameters_args, &tpa,
                 xdr_lvrpc_admin_server_get_threadpool_parameters_ret, &tpr);
        LVRPCT_ASSERT(find_param(tpr.params.params_val, tpr.params.params_len, "maxWorkers"));
        ADMIN_OK(&a, LVRPC_ADMIN_PROC_SERVER_GET_CLIENT_LIMITS,
                 xdr_lvrpc_admin_server_get_client_limits_args, &cla,
                 xdr_lvrpc_admin_server_get_client_limits_ret, &clr);
        LVRPCT_ASSERT(find_param(clr.params.params_val, clr.params.params_len, "nclients_max"));
        if (strcmp(srv->name, "libvirtd") == 0) {
            /* setting the current values back changes nothing */
            const lvrpc_typed_param *mw = find_param(tpr.params.params_val,
                                                     tpr.params.params_len, "maxWorkers");
            if (mw) {
                lvrpc_typed_param set[1] = {*mw};
                lvrpc_admin_server_set_threadpool_parameters_args spa;
                memset(&spa, 0, sizeof(spa));
                spa.srv = *srv;
                spa.params.params_len = 1;
                spa.params.params_val = set;
                ADMIN_OK(&a, LVRPC_ADMIN_PROC_SERVER_SET_THREADPOOL_PARAMETERS,
                         xdr_lvrpc_admin_server_set_threadpool_parameters_args, &spa, NULL, NULL);
            }
        }
        xdr_free((xdrproc_t)xdr_lvrpc_admin_connect_lookup_server_ret, (char *)&lkr);
        xdr_free((xdrproc_t)xdr_lvrpc_admin_server_list_clients_ret, (char *)&lcr);
        xdr_free((xdrproc_t)xdr_lvrpc_admin_server_get_threadpool_parameters_ret, (char *)&tpr);
        xdr_free((xdrproc_t)xdr_lvrpc_admin_server_get_client_limits_ret, (char *)&clr);
    }
    LVRPCT_ASSERT(found_libvirtd);
    {
        lvrpc_admin_connect_get_logging_outputs_args goa = {0};
        lvrpc_admin_connect_get_logging_outputs_ret gor;
        lvrpc_admin_connect_get_logging_filters_args gfa = {0};
        lvrpc_admin_connect_get_logging_filters_ret gfr;
        memset(&gor, 0, sizeof(gor));
        memset(&gfr, 0, sizeof(gfr));
        ADMIN_OK(&a, LVRPC_ADMIN_PROC_CONNECT_GET_LOGGING_OUTPUTS,
                 xdr_lvrpc_admin_connect_get_logging_outputs_args, &goa,
                 xdr_lvrpc_admin_connect_get_logging_outputs_ret, &gor);
        LVRPCT_ASSERT(gor.noutputs >= 1 && gor.outputs && strstr(gor.outputs, "libvirtd.log"));
        ADMIN_OK(&a, LVRPC_ADMIN_PROC_CONNECT_GET_LOGGING_FILTERS,
                 xdr_lvrpc_admin_connect_get_logging_filters_args, &gfa,
                 xdr_lvrpc_admin_connect_get_logging_filters_ret, &gfr);
        xdr_free((xdrproc_t)xdr_lvrpc_admin_connect_get_logging_outputs_ret, (char *)&gor);
        xdr_free((xdrproc_t)xdr_lvrpc_admin_connect_get_logging_filters_ret, (char *)&gfr);
    }
    {
        /* an unknown server is an error reply, and the connection goes on */
        lvrpc_admin_connect_lookup_server_args lka = {"no-such-server", 0};
        lvrpc_admin_connect_lookup_server_ret lkr;
        memset(&lkr, 0, sizeof(lkr));
        LVRPCT_ASSERT_INT(admin_call(&a, LVRPC_ADMIN_PROC_CONNECT_LOOKUP_SERVER,
                                     (xdrproc_t)xdr_lvrpc_admin_connect_lookup_server_args, &lka,
                                     (xdrproc_t)xdr_lvrpc_admin_connect_lookup_server_ret, &lkr),
                          1);
        LVRPCT_ASSERT(a.err.message && strstr(*a.err.message, "no-such-server"));
    }
    ADMIN_OK(&a, LVRPC_ADMIN_PROC_CONNECT_CLOSE, NULL, NULL, NULL, NULL);
    xdr_free((xdrproc_t)xdr_lvrpc_admin_connect_list_servers_ret, (char *)&ls);
    xdr_free((xdrproc_t)xdr_lvrpc_remote_error, (char *)&a.err);
    FREE(remote_lv);
    close(a.fd);
}

/* ------------------------------------------------------------------ main */

static const lvrpct_test tests[] = {
    {"procedure table", test_table},
    {"unknown procedure", test_unknown_procedure},
    {"QEMU and LXC programs", test_other_programs},
    {"connection and host", test_connect_host},
    {"domain queries", test_domain_queries},
    {"domain life cycle and settings", test_domain_lifecycle},
    {"domain create and define variants", test_domain_create_define},
    {"file descriptors passed to the daemon", test_fds_unix},
    {"snapshots and checkpoints", test_domain_snapshots},
    {"networks", test_networks},
    {"storage", test_storage},
    {"host devices", test_node_devices},
    {"host interfaces", test_interfaces},
    {"event registration", test_event_registration},
    {"test-driver coverage", test_coverage},
    {NULL, NULL},
};

static const lvrpct_test storage_tests[] = {
    {"what only the storage driver implements", test_storage_driver},
    {NULL, NULL},
};

/* The same program through lvrpc_open(): an admin URI (the daemon's name as
 * the scheme, as virt-admin takes it) makes the handle speak the admin
 * program's handshake, in both modes. */
static void test_admin_open(void)
{
    for (int m = 0; m < 2; m++) {
        char uri[512], path[320], *slash;
        lvrpc_options o = {0};
        lvrpc_client *ac = NULL;
        lvrpc_admin_connect_list_servers_args lsa = {1, 0};
        lvrpc_admin_connect_list_servers_ret *ls = NULL;
        lvrpc_admin_connect_get_lib_version_ret *lv = NULL;
        int found = 0;

        snprintf(path, sizeof(path), "%s", daemon_.unix_sock);
        if (!(slash = strrchr(path, '/')))
            return;
        snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path), "libvirt-admin-sock");
        snprintf(uri, sizeof(uri), "libvirtd:///system?socket=%s", path);
        o.mode = m ? LVRPC_MODE_SHARED : LVRPC_MODE_DIRECT;
        LVRPCT_ASSERT_OK(lvrpc_open(uri, &o, &ac));
        if (!ac)
            continue;
        LVRPCT_ASSERT_OK(lvrpc_admin_connect_list_servers(ac, &lsa, &ls));
        for (unsigned i = 0; ls && i < ls->servers.servers_len; i++)
            found += strcmp(ls->servers.servers_val[i].name, "libvirtd") == 0 ||
                     strcmp(ls->servers.servers_val[i].name, "admin") == 0;
        LVRPCT_ASSERT_INT(found, 2);
        LVRPCT_ASSERT_OK(lvrpc_admin_connect_get_lib_version(ac, &lv));
        if (lv)
            CU_ASSERT(lv->libVer >= 9000000);
        lvrpc_reply_free(ls);
        lvrpc_reply_free(lv);
        lvrpc_close(ac);
    }
}

static const lvrpct_test admin_tests[] = {
    {"servers and clients on the admin socket", test_admin},
    {"lvrpc_open() with an admin URI, both modes", test_admin_open},
    {NULL, NULL},
};

static void add_suites(void)
{
    lvrpct_add_suite("procedures (test driver)", suite_init, suite_cleanup, tests);
    lvrpct_add_suite("storage driver", storage_suite_init, storage_suite_cleanup, storage_tests);
    lvrpct_add_suite("admin program", suite_init, suite_cleanup, admin_tests);
}

int main(int argc, char **argv)
{
    return lvrpct_main(argc, argv, add_suites);
}
