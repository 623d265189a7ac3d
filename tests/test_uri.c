/* test_uri.c - libvirt URI parsing (lvrpci_uri_parse), no daemon.
 *
 * Each case gives a URI and what libvirt's own client would make of it:
 * transport, host and port, socket path, and the name sent in CONNECT_OPEN.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "harness.h"
#include "lvrpc_internal.h"

#define NONE NULL

typedef struct uri_case {
    const char *uri;
    unsigned flags;
    lvrpci_transport_kind kind;
    const char *host;   /* tcp/tls */
    const char *port;   /* tcp/tls */
    const char *socket; /* unix; NULL: not checked (default socket) */
    const char *name;   /* sent in CONNECT_OPEN */
} uri_case;

static void check_case(const uri_case *k, unsigned line)
{
    lvrpci_target t;
    int rc = lvrpci_uri_parse(k->uri, k->flags, &t);

    lvrpct_assert(rc == LVRPC_OK, __FILE__, line, "parse '%s' -> %d %s: %s", k->uri, rc,
                  lvrpc_strerror(rc), lvrpc_last_message());
    if (rc != LVRPC_OK)
        return;
    lvrpct_assert(t.kind == k->kind, __FILE__, line, "'%s': transport %d, want %d", k->uri,
                  (int)t.kind, (int)k->kind);
    if (k->kind != LVRPCI_UNIX) {
        lvrpct_assert(t.host && strcmp(t.host, k->host) == 0, __FILE__, line,
                      "'%s': host '%s', want '%s'", k->uri, t.host ? t.host : "(null)",
                      k->host);
        lvrpct_assert(t.port && strcmp(t.port, k->port) == 0, __FILE__, line,
                      "'%s': port '%s', want '%s'", k->uri, t.port ? t.port : "(null)",
                      k->port);
    } else {
        lvrpct_assert(t.host == NULL, __FILE__, line, "'%s': unix with host '%s'", k->uri,
                      t.host);
        lvrpct_assert(t.socket_path != NULL, __FILE__, line, "'%s': no socket path", k->uri);
        if (k->socket)
            lvrpct_assert(t.socket_path && strcmp(t.socket_path, k->socket) == 0, __FILE__,
                          line, "'%s': socket '%s', want '%s'", k->uri,
                          t.socket_path ? t.socket_path : "(null)", k->socket);
    }
    lvrpct_assert(t.name && strcmp(t.name, k->name) == 0, __FILE__, line,
                  "'%s': name '%s', want '%s'", k->uri, t.name ? t.name : "(null)", k->name);
    lvrpct_assert(t.open_flags == (k->flags & LVRPC_OPEN_READONLY ? 1u : 0u), __FILE__, line,
                  "'%s': open flags %u", k->uri, t.open_flags);
    lvrpci_target_clear(&t);
}

#define CHECK_CASES(cases) do { \
        for (size_t i_ = 0; i_ < sizeof(cases) / sizeof(cases[0]); i_++) \
            check_case(&cases[i_], __LINE__); \
    } while (0)

/* driver+transport, and the transport libvirt picks when none is given */
static void test_transports(void)
{
    static const uri_case cases[] = {
        /* no host -> unix */
        {"test:///default", 0, LVRPCI_UNIX, NONE, NONE, NULL, "test:///default"},
        {"test+unix:///default", 0, LVRPCI_UNIX, NONE, NONE, NULL, "test:///default"},
        /* a host -> tls on 16514 */
        {"test://example.org/default", 0, LVRPCI_TLS, "example.org", "16514", NULL,
         "test:///default"},
        {"qemu+tls://example.org/system", 0, LVRPCI_TLS, "example.org", "16514", NULL,
         "qemu:///system"},
        /* tcp on 16509 */
        {"test+tcp://example.org/default", 0, LVRPCI_TCP, "example.org", "16509", NULL,
         "test:///default"},
        /* tcp/tls without a host: localhost */
        {"test+tcp:///default", 0, LVRPCI_TCP, "localhost", "16509", NULL, "test:///default"},
        {"test+tls:///default", 0, LVRPCI_TLS, "localhost", "16514", NULL, "test:///default"},
        /* explicit ports */
        {"test+tcp://h:1/default", 0, LVRPCI_TCP, "h", "1", NULL, "test:///default"},
        {"test+tcp://127.0.0.1:65535/default", 0, LVRPCI_TCP, "127.0.0.1", "65535", NULL,
         "test:///default"},
        {"test+tls://h:16600/default", 0, LVRPCI_TLS, "h", "16600", NULL, "test:///default"},
        /* other drivers and paths */
        {"qemu+tcp://h/system", 0, LVRPCI_TCP, "h", "16509", NULL, "qemu:///system"},
        {"qemu+tcp://h/session", 0, LVRPCI_TCP, "h", "16509", NULL, "qemu:///session"},
        {"lxc+tcp://h/", 0, LVRPCI_TCP, "h", "16509", NULL, "lxc:///"},
        {"storage+tcp://127.0.0.1:16709/session", 0, LVRPCI_TCP, "127.0.0.1", "16709", NULL,
         "storage:///session"},
    };
    CHECK_CASES(cases);
}

/* user@, IPv6 literals */
static void test_authority(void)
{
    static const uri_case cases[] = {
        /* the user name only matters to ssh: not sent, not used */
        {"test+tcp://alice@h:2000/default", 0, LVRPCI_TCP, "h", "2000", NULL,
         "test:///default"},
        {"test+tls://alice@h/default", 0, LVRPCI_TLS, "h", "16514", NULL, "test:///default"},
        {"test+tcp://[::1]:16509/default", 0, LVRPCI_TCP, "::1", "16509", NULL,
         "test:///default"},
        {"test+tcp://[::1]/default", 0, LVRPCI_TCP, "::1", "16509", NULL, "test:///default"},
        {"test://[fe80::1:2]:7/default", 0, LVRPCI_TLS, "fe80::1:2", "7", NULL,
         "test:///default"},
        {"test+tcp://bob@[2001:db8::5]:1234/default", 0, LVRPCI_TCP, "2001:db8::5", "1234",
         NULL, "test:///default"},
    };
    CHECK_CASES(cases);
}

/* socket=, name=, mode= and percent-escapes */
static void test_params(void)
{
    static const uri_case cases[] = {
        {"test+unix:///default?socket=/tmp/x/libvirt-sock", 0, LVRPCI_UNIX, NONE, NONE,
         "/tmp/x/libvirt-sock", "test:///default"},
        {"test:///default?socket=/run/s", 0, LVRPCI_UNIX, NONE, NONE, "/run/s",
         "test:///default"},
        /* percent-escapes in values, '+' is a space in a query */
        {"test:///default?socket=/tmp/a%20b%2Fc", 0, LVRPCI_UNIX, NONE, NONE, "/tmp/a b/c",
         "test:///default"},
        {"test:///default?socket=/tmp/a+b", 0, LVRPCI_UNIX, NONE, NONE, "/tmp/a b",
         "test:///default"},
        /* name= overrides the name entirely */
        {"test+tcp://h/default?name=qemu:///system", 0, LVRPCI_TCP, "h", "16509", NULL,
         "qemu:///system"},
        {"test+tcp://h/default?name=test%3A%2F%2F%2Fother", 0, LVRPCI_TCP, "h", "16509", NULL,
         "test:///other"},
        {"remote+tcp://h/?name=", 0, LVRPCI_TCP, "h", "16509", NULL, ""},
        /* percent-escapes in the path */
        {"test+tcp://h/de%66ault", 0, LVRPCI_TCP, "h", "16509", NULL, "test:///default"},
        /* client-only parameters are consumed, never forwarded */
        {"test+tls://h/default?pkipath=/p&no_verify=1&no_tty=1", 0, LVRPCI_TLS, "h", "16514",
         NULL, "test:///default"},
        {"test+tcp://h/default?mode=legacy", 0, LVRPCI_TCP, "h", "16509", NULL,
         "test:///default"},
        {"test+tcp://h/default?auth=polkit", 0, LVRPCI_TCP, "h", "16509", NULL,
         "test:///default"},
    };
    lvrpci_target t;

    CHECK_CASES(cases);
    LVRPCT_ASSERT_OK(lvrpci_uri_parse("test+tls://h/default?pkipath=/etc/pk%69&no_verify=1", 0,
                                      &t));
    LVRPCT_ASSERT_STR(t.pkipath, "/etc/pki");
    LVRPCT_ASSERT_INT(t.no_verify, 1);
    lvrpci_target_clear(&t);
    LVRPCT_ASSERT_OK(lvrpci_uri_parse("test+tls://h/default?no_verify=0", 0, &t));
    LVRPCT_ASSERT_INT(t.no_verify, 0);
    LVRPCT_ASSERT(t.pkipath == NULL);
    lvrpci_target_clear(&t);
}

/* Unknown parameters go to the daemon inside the name; the transport, user,
 * host, port and client-only parameters do not. */
static void test_forwarded(void)
{
    static const uri_case cases[] = {
        {"test+tcp://h:1/default?foo=bar&socket=/x", 0, LVRPCI_TCP, "h", "1", NULL,
         "test:///default?foo=bar"},
        {"test+tcp://h/default?a=1&b=2", 0, LVRPCI_TCP, "h", "16509", NULL,
         "test:///default?a=1&b=2"},
        {"test+tcp://h/default?a=1&no_verify=1&b=2", 0, LVRPCI_TCP, "h", "16509", NULL,
         "test:///default?a=1&b=2"},
        {"test:///default?socket=/s&x=y%20z", 0, LVRPCI_UNIX, NONE, NONE, "/s",
         "test:///default?x=y%20z"},
        {"qemu+tcp://u@h:5/system?mode=direct&keep=1", 0, LVRPCI_TCP, "h", "5", NULL,
         "qemu:///system?keep=1"},
        /* the remote driver: the daemon picks its own default */
        {"remote://h/", 0, LVRPCI_TLS, "h", "16514", NULL, ""},
        {"remote+tcp://h:7/", 0, LVRPCI_TCP, "h", "7", NULL, ""},
        {"remote+unix:///system?socket=/s", 0, LVRPCI_UNIX, NONE, NONE, "/s", ""},
    };
    CHECK_CASES(cases);
}

/* The local daemon's default socket: legacy libvirtd or the per-driver one,
 * read-only variants, system vs session. */
static void test_default_socket(void)
{
    char want[512];
    const char *old = getenv("XDG_RUNTIME_DIR");
    char *saved = old ? strdup(old) : NULL;
    uri_case k;

    {
        static const uri_case cases[] = {
            {"qemu:///system?mode=legacy", 0, LVRPCI_UNIX, NONE, NONE,
             "/run/libvirt/libvirt-sock", "qemu:///system"},
            {"qemu:///system?mode=legacy", LVRPC_OPEN_READONLY, LVRPCI_UNIX, NONE, NONE,
             "/run/libvirt/libvirt-sock-ro", "qemu:///system"},
            {"qemu:///system?mode=direct", 0, LVRPCI_UNIX, NONE, NONE,
             "/run/libvirt/virtqemud-sock", "qemu:///system"},
            {"network:///system?mode=direct", LVRPC_OPEN_READONLY, LVRPCI_UNIX, NONE, NONE,
             "/run/libvirt/virtnetworkd-sock-ro", "network:///system"},
            /* socket= wins over mode= */
            {"qemu:///system?mode=direct&socket=/s", 0, LVRPCI_UNIX, NONE, NONE, "/s",
             "qemu:///system"},
        };
        CHECK_CASES(cases);
    }

    /* session sockets live in $XDG_RUNTIME_DIR/libvirt; no -ro variant */
    setenv("XDG_RUNTIME_DIR", "/tmp/lvrpct-xdg", 1);
    k = (uri_case){"qemu:///session?mode=legacy", 0, LVRPCI_UNIX, NONE, NONE,
                   "/tmp/lvrpct-xdg/libvirt/libvirt-sock", "qemu:///session"};
    check_case(&k, __LINE__);
    k.flags = LVRPC_OPEN_READONLY;
    check_case(&k, __LINE__);
    k = (uri_case){"qemu:///session?mode=direct", 0, LVRPCI_UNIX, NONE, NONE,
                   "/tmp/lvrpct-xdg/libvirt/virtqemud-sock", "qemu:///session"};
    check_case(&k, __LINE__);

    /* /default and the like: privileged for root, session for others */
    if (geteuid() == 0)
        snprintf(want, sizeof(want), "/run/libvirt/libvirt-sock");
    else
        snprintf(want, sizeof(want), "/tmp/lvrpct-xdg/libvirt/libvirt-sock");
    k = (uri_case){"test:///default?mode=legacy", 0, LVRPCI_UNIX, NONE, NONE, want,
                   "test:///default"};
    check_case(&k, __LINE__);

    if (saved) {
        setenv("XDG_RUNTIME_DIR", saved, 1);
        free(saved);
    } else {
        unsetenv("XDG_RUNTIME_DIR");
    }
}

static void test_readonly_flag(void)
{
    lvrpci_target t;

    LVRPCT_ASSERT_OK(lvrpci_uri_parse("test+tcp://h/default", LVRPC_OPEN_READONLY, &t));
    LVRPCT_ASSERT_INT(t.open_flags, 1); /* VIR_CONNECT_RO */
    lvrpci_target_clear(&t);
    LVRPCT_ASSERT_OK(lvrpci_uri_parse("test+tcp://h/default", 0, &t));
    LVRPCT_ASSERT_INT(t.open_flags, 0);
    lvrpci_target_clear(&t);
}

static void expect_fail(const char *uri, int want, unsigned line)
{
    lvrpci_target t;
    lvrpc_error e;
    int rc;

    memset(&t, 0xa5, sizeof(t)); /* the parser must not trust *out */
    rc = lvrpci_uri_parse(uri, 0, &t);
    lvrpc_last_error(&e);
    lvrpct_assert(rc == want, __FILE__, line, "parse '%s' -> %d %s, want %d %s (%s)",
                  uri ? uri : "(null)", rc, lvrpc_strerror(rc), want, lvrpc_strerror(want),
                  e.message);
    lvrpct_assert(e.code == want && e.message[0], __FILE__, line,
                  "parse '%s': error record code %d, message '%s'", uri ? uri : "(null)",
                  e.code, e.message);
    /* on failure the target is left cleared: nothing to free, no stale pointers */
    lvrpct_assert(t.host == NULL && t.port == NULL && t.socket_path == NULL &&
                      t.name == NULL && t.pkipath == NULL,
                  __FILE__, line, "parse '%s' failed but left pointers in the target",
                  uri ? uri : "(null)");
    if (rc == LVRPC_OK)
        lvrpci_target_clear(&t);
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "",
        "test",
        "default",
        ":///default",
        "test:/default",
        "test:default",
        "te st:///default",
        "te$t:///default",
        "+tcp://h/",
        "test+://h/",
        "test+tcp://h:/default",
        "test+tcp://h:0/default",
        "test+tcp://h:65536/default",
        "test+tcp://h:99999/default",
        "test+tcp://h:123456/default",
        "test+tcp://h:abc/default",
        "test+tcp://h:12a/default",
        "test+tcp://h:-1/default",
        "test+tcp://[::1/default",
        "test+tcp://[::1]x/default",
        "test+tcp://[]/default",
        "test+tcp://u@:5/default",
        "test+unix://h/default",
        "test+bogus://h/default",
        "test+tcp://h/default#frag",
        "test+tcp://h/def%zzault",
        "test+tcp://h/def%4",
        "test+tcp://h/de%00f",
        "test+tcp://h/default?%zz=1",
        "test+tcp://h/default?socket=%zz",
        "test+tcp://h/default?name=a%00b",
        "test:///default?socket=relative/path",
        "test:///default?mode=bogus",
        "test+tcp://h/default?=1",
    };
    char *huge;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_fail(bad[i], LVRPC_EINVAL, __LINE__);
    expect_fail(NULL, LVRPC_EINVAL, __LINE__);

    /* too long: the parser has a fixed limit and must say so, not overflow */
    huge = malloc(70000);
    if (huge) {
        memcpy(huge, "test+tcp://h/", 13);
        memset(huge + 13, 'a', 70000 - 14);
        huge[70000 - 1] = '\0';
        expect_fail(huge, LVRPC_EINVAL, __LINE__);
        memcpy(huge, "test+tcp://h/default?x=", 23);
        expect_fail(huge, LVRPC_EINVAL, __LINE__);
        free(huge);
    }
}

static void test_unsupported(void)
{
    expect_fail("test+ssh://h/default", LVRPC_ENOTSUP, __LINE__);
    expect_fail("qemu+ssh://root@h:22/system", LVRPC_ENOTSUP, __LINE__);
    expect_fail("qemu+libssh://h/system", LVRPC_ENOTSUP, __LINE__);
    expect_fail("qemu+libssh2://h/system?known_hosts=/k", LVRPC_ENOTSUP, __LINE__);
    expect_fail("test+ext:///default?command=/bin/true", LVRPC_ENOTSUP, __LINE__);
    /* an auth method lvrpc does not speak */
    expect_fail("test+tcp://h/default?auth=sasl", LVRPC_EAUTH, __LINE__);
}

/* The public entry point reports the same errors and leaves *out NULL. */
static void test_open_errors(void)
{
    lvrpc_client *c = (lvrpc_client *)&c;
    lvrpc_options o;
    const char *old = getenv("LIBVIRT_DEFAULT_URI");
    char *saved = old ? strdup(old) : NULL;

    LVRPCT_ASSERT_RC(lvrpc_open("test+tcp://h:99999/default", NULL, &c), LVRPC_EINVAL);
    LVRPCT_ASSERT(c == NULL);
    LVRPCT_ASSERT(strstr(lvrpc_last_message(), "test+tcp://h:99999/default") != NULL);
    c = (lvrpc_client *)&c;
    LVRPCT_ASSERT_RC(lvrpc_open("test+ssh://h/default", NULL, &c), LVRPC_ENOTSUP);
    LVRPCT_ASSERT(c == NULL);
    LVRPCT_ASSERT_RC(lvrpc_open("test:///default", NULL, NULL), LVRPC_EINVAL);

    unsetenv("LIBVIRT_DEFAULT_URI");
    c = (lvrpc_client *)&c;
    LVRPCT_ASSERT_RC(lvrpc_open(NULL, NULL, &c), LVRPC_EINVAL);
    LVRPCT_ASSERT(c == NULL);
    /* with no URI, LIBVIRT_DEFAULT_URI is used, as libvirt does */
    setenv("LIBVIRT_DEFAULT_URI", "test+ssh://h/default", 1);
    LVRPCT_ASSERT_RC(lvrpc_open(NULL, NULL, &c), LVRPC_ENOTSUP);
    if (saved) {
        setenv("LIBVIRT_DEFAULT_URI", saved, 1);
        free(saved);
    } else {
        unsetenv("LIBVIRT_DEFAULT_URI");
    }

    memset(&o, 0, sizeof(o));
    o.mode = (lvrpc_mode)7;
    LVRPCT_ASSERT_RC(lvrpc_open("test+tcp://127.0.0.1:1/default", &o, &c), LVRPC_EINVAL);
    LVRPCT_ASSERT(c == NULL);
}

/* Nothing listens on this socket: a clean "unreachable", not a hang. */
static void test_open_unreachable(void)
{
    lvrpc_client *c = NULL;
    lvrpc_error e;
    int rc;

    rc = lvrpc_open("test+unix:///default?socket=/nonexistent/lvrpct/sock", NULL, &c);
    lvrpc_last_error(&e);
    LVRPCT_ASSERT_RC(rc, LVRPC_EUNREACHABLE);
    LVRPCT_ASSERT(c == NULL);
    LVRPCT_ASSERT(strstr(e.message, "/nonexistent/lvrpct/sock") != NULL);
    LVRPCT_ASSERT_INT(e.sys_errno, 2); /* ENOENT */
}

static const lvrpct_test uri_tests[] = {
    {"transports and default ports", test_transports},
    {"user@ and IPv6 hosts", test_authority},
    {"socket= name= mode= and %-escapes", test_params},
    {"unknown parameters forwarded in the name", test_forwarded},
    {"default local sockets", test_default_socket},
    {"read-only flag", test_readonly_flag},
    {"malformed URIs -> EINVAL", test_malformed},
    {"ssh/ext -> ENOTSUP, sasl -> EAUTH", test_unsupported},
    {"lvrpc_open argument errors", test_open_errors},
    {"lvrpc_open unreachable socket", test_open_unreachable},
    {NULL, NULL},
};

static void add_suites(void)
{
    lvrpct_add_suite("uri", NULL, NULL, uri_tests);
}

int main(int argc, char **argv)
{
    return lvrpct_main(argc, argv, add_suites);
}
