/* uri.c - libvirt URIs: driver[+transport]://[user@][host][:port]/path[?params]
 *
 * Follows the rules of libvirt's own client: the transport is unix when the
 * URI names no host and tls when it does; tcp and tls default to ports 16509
 * and 16514; the parameters the client consumes (socket, name, pkipath,
 * no_verify, mode, ...) are removed, the rest are passed to the daemon inside
 * the name sent in CONNECT_OPEN, which is the URI rebuilt without transport,
 * user, host and port (e.g. test+tcp://h:1/default -> test:///default).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lvrpc_internal.h"

#define URI_MAX 4096

/* Parameters consumed by the client and never forwarded to the daemon. */
static const char *const client_params[] = {
    "name", "socket", "pkipath", "no_verify", "no_sanity", "no_tty", "mode",
    "proxy", "auth", "sshauth", "netcat", "command", "keyfile", "known_hosts",
    "known_hosts_verify", "tls_priority", "authfile", NULL,
};

static int is_client_param(const char *key)
{
    for (size_t i = 0; client_params[i]; i++)
        if (strcmp(client_params[i], key) == 0)
            return 1;
    return 0;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Decodes %XX escapes (and '+' as space, as in query strings) in place.
 * Returns -1 on a malformed escape or an encoded NUL. */
static int percent_decode(char *s, int plus_is_space)
{
    char *w = s;

    for (char *r = s; *r; r++) {
        if (*r == '%') {
            int hi = hexval((unsigned char)r[1]);
            int lo = hi < 0 ? -1 : hexval((unsigned char)r[2]);
            if (lo < 0 || (hi == 0 && lo == 0))
                return -1;
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else if (*r == '+' && plus_is_space) {
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return 0;
}

static int bad_uri(const char *uri, const char *why)
{
    return lvrpci_fail(LVRPC_EINVAL, 0, "malformed URI '%s': %s", uri, why);
}

static int set_str(char **dst, const char *src, size_t n)
{
    free(*dst);
    *dst = strndup(src, n);
    return *dst ? LVRPC_OK : lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
}

/* Splits "[user@]host[:port]" (host may be "[v6addr]"). */
static int parse_authority(const char *uri, const char *a, size_t n, lvrpci_target *t)
{
    const char *at = memchr(a, '@', n);
    const char *end = a + n, *host, *host_end, *port = NULL;

    if (at) /* the user name is only used by ssh, which lvrpc does not speak */
        a = at + 1;
    if (a == end)
        return LVRPC_OK;
    if (*a == '[') {
        host = a + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end)
            return bad_uri(uri, "unterminated '[' in host");
        if (host_end + 1 < end) {
            if (host_end[1] != ':')
                return bad_uri(uri, "junk after ']'");
            port = host_end + 2;
        }
    } else {
        host = a;
        host_end = memchr(a, ':', (size_t)(end - a));
        if (host_end)
            port = host_end + 1;
        else
            host_end = end;
    }
    if (host_end == host)
        return bad_uri(uri, "empty host name");
    if (set_str(&t->host, host, (size_t)(host_end - host)) != LVRPC_OK)
        return LVRPC_ENOMEM;
    if (port) {
        size_t plen = (size_t)(end - port);
        if (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen ||
            atoi(port) == 0 || atoi(port) > 65535)
            return bad_uri(uri, "invalid port");
        if (set_str(&t->port, port, plen) != LVRPC_OK)
            return LVRPC_ENOMEM;
    }
    return LVRPC_OK;
}

typedef struct uri_parts {
    char driver[64];
    char transport[16];
    char path[URI_MAX];
    char mode[16];
    char fwd[URI_MAX]; /* forwarded query, "k=v&k=v" (still encoded) */
    int have_name;
} uri_parts;

static int append(char *dst, size_t cap, const char *s, size_t n)
{
    size_t len = strlen(dst);

    if (len + n >= cap)
        return -1;
    memcpy(dst + len, s, n);
    dst[len + n] = '\0';
    return 0;
}

/* Handles one "key=value" query item. */
static int take_param(const char *uri, char *item, uri_parts *p, lvrpci_target *t)
{
    char *eq = strchr(item, '=');
    char *val = eq ? eq + 1 : item + strlen(item);
    char key[64];
    size_t klen = eq ? (size_t)(eq - item) : strlen(item);

    if (klen == 0 || klen >= sizeof(key))
        return bad_uri(uri, "bad query parameter");
    memcpy(key, item, klen);
    key[klen] = '\0';
    if (percent_decode(key, 1) < 0)
        return bad_uri(uri, "bad %-escape in a parameter name");
    if (!is_client_param(key)) {
        if ((p->fwd[0] && append(p->fwd, sizeof(p->fwd), "&", 1) < 0) ||
            append(p->fwd, sizeof(p->fwd), item, strlen(item)) < 0)
            return bad_uri(uri, "too long");
        return LVRPC_OK;
    }
    if (percent_decode(val, 1) < 0)
        return bad_uri(uri, "bad %-escape in a parameter value");
    if (strcmp(key, "name") == 0) {
        p->have_name = 1;
        return set_str(&t->name, val, strlen(val));
    }
    if (strcmp(key, "socket") == 0) {
        if (*val != '/')
            return bad_uri(uri, "socket= needs an absolute path");
        return set_str(&t->socket_path, val, strlen(val));
    }
    if (strcmp(key, "pkipath") == 0)
        return set_str(&t->pkipath, val, strlen(val));
    if (strcmp(key, "no_verify") == 0) {
        t->no_verify = atoi(val) != 0;
        return LVRPC_OK;
    }
    if (strcmp(key, "mode") == 0) {
        if (strcmp(val, "auto") && strcmp(val, "legacy") && strcmp(val, "direct"))
            return bad_uri(uri, "mode= must be auto, legacy or direct");
        snprintf(p->mode, sizeof(p->mode), "%s", val);
        return LVRPC_OK;
    }
    if (strcmp(key, "auth") == 0) {
        if (strcmp(val, "polkit") != 0)
            return lvrpci_fail(LVRPC_EAUTH, 0,
                               "unsupported auth '%s': lvrpc accepts none and polkit", val);
        return LVRPC_OK;
    }
    return LVRPC_OK; /* ssh/ext-only parameters: meaningless here, dropped */
}

static int parse_query(const char *uri, char *q, uri_parts *p, lvrpci_target *t)
{
    char *save = NULL;

    for (char *item = strtok_r(q, "&", &save); item; item = strtok_r(NULL, "&", &save)) {
        int rc = take_param(uri, item, p, t);
        if (rc != LVRPC_OK)
            return rc;
    }
    return LVRPC_OK;
}

static int file_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* The local daemon's socket, as libvirt's client picks it: the monolithic
 * libvirtd socket (legacy) or the driver's own daemon (direct); auto takes
 * libvirtd's when it exists.  Privileged (/system, or root) sockets live in
 * /run/libvirt, session ones in $XDG_RUNTIME_DIR/libvirt. */
/* Daemons with an admin socket: virt-admin's URI schemes. */
static const char *const admin_daemons[] = {
    "libvirtd", "virtqemud", "virtlxcd", "virtxend", "virtchd", "virtvboxd", "virtvzd",
    "virtbhyved", "virtnetworkd", "virtnodedevd", "virtnwfilterd", "virtsecretd",
    "virtstoraged", "virtinterfaced", "virtproxyd", "virtlogd", "virtlockd", NULL,
};

static int is_admin_daemon(const char *driver)
{
    for (size_t i = 0; admin_daemons[i]; i++)
        if (strcmp(admin_daemons[i], driver) == 0)
            return 1;
    return 0;
}

static int default_socket(const uri_parts *p, unsigned flags, lvrpci_target *t)
{
    char dir[URI_MAX], legacy[URI_MAX + 96], direct[URI_MAX + 96];
    int session = strcmp(p->path, "/session") == 0 ||
                  (geteuid() != 0 && strcmp(p->path, "/system") != 0);
    const char *ro = (flags & LVRPC_OPEN_READONLY) ? "-ro" : "";
    const char *mode = p->mode[0] ? p->mode : "auto";

    if (session) {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        const char *home = getenv("HOME");
        if (xdg && *xdg)
            snprintf(dir, sizeof(dir), "%s/libvirt", xdg);
        else
            snprintf(dir, sizeof(dir), "%s/.cache/libvirt", home ? home : "");
        ro = "";
    } else {
        snprintf(dir, sizeof(dir), "/run/libvirt");
    }
    if (t->admin) { /* DIR/libvirt-admin-sock, DIR/virtqemud-admin-sock, ... */
        snprintf(legacy, sizeof(legacy), "%s/%s-admin-sock", dir,
                 strcmp(p->driver, "libvirtd") == 0 ? "libvirt" : p->driver);
        return set_str(&t->socket_path, legacy, strlen(legacy));
    }
    snprintf(legacy, sizeof(legacy), "%s/libvirt-sock%s", dir, ro);
    snprintf(direct, sizeof(direct), "%s/virt%sd-sock%s", dir, p->driver, ro);
    if (strcmp(mode, "direct") == 0 ||
        (strcmp(mode, "auto") == 0 && !file_exists(legacy) && file_exists(direct)))
        return set_str(&t->socket_path, direct, strlen(direct));
    return set_str(&t->socket_path, legacy, strlen(legacy));
}

static int choose_transport(const char *uri, const uri_parts *p, lvrpci_target *t)
{
    const char *tr = p->transport;

    if (!*tr)
        tr = t->host ? "tls" : "unix";
    if (strcmp(tr, "unix") == 0) {
        if (t->host)
            return bad_uri(uri, "the unix transport takes no host name");
        t->kind = LVRPCI_UNIX;
    } else if (strcmp(tr, "tcp") == 0 || strcmp(tr, "tls") == 0) {
        t->kind = tr[1] == 'c' ? LVRPCI_TCP : LVRPCI_TLS;
        if (!t->host && set_str(&t->host, "localhost", 9) != LVRPC_OK)
            return LVRPC_ENOMEM;
        if (!t->port && set_str(&t->port, t->kind == LVRPCI_TCP ? "16509" : "16514", 5) != LVRPC_OK)
            return LVRPC_ENOMEM;
    } else if (!strcmp(tr, "ssh") || !strcmp(tr, "libssh") || !strcmp(tr, "libssh2") ||
               !strcmp(tr, "ext")) {
        return lvrpci_fail(LVRPC_ENOTSUP, 0,
                           "transport '%s' is not supported by lvrpc (use unix, tcp or tls)", tr);
    } else {
        return bad_uri(uri, "unknown transport");
    }
    return LVRPC_OK;
}

static int build_name(const uri_parts *p, lvrpci_target *t)
{
    char name[3 * URI_MAX];

    if (p->have_name)
        return LVRPC_OK;
    if (strcmp(p->driver, "remote") == 0) /* the daemon picks its default driver */
        return set_str(&t->name, "", 0);
    snprintf(name, sizeof(name), "%s://%s%s%s", p->driver, p->path[0] ? p->path : "/",
             p->fwd[0] ? "?" : "", p->fwd);
    return set_str(&t->name, name, strlen(name));
}

/* Splits scheme, authority, path and query, then fills the target. */
static int parse(const char *uri, unsigned flags, lvrpci_target *t, uri_parts *p)
{
    char buf[URI_MAX];
    const char *colon, *rest, *auth_end, *q;
    size_t slen;
    int rc;

    if (strlen(uri) >= sizeof(buf))
        return bad_uri(uri, "too long");
    colon = strchr(uri, ':');
    if (!colon || colon == uri)
        return bad_uri(uri, "no scheme (expected driver[+transport]://...)");
    slen = (size_t)(colon - uri);
    if (slen >= sizeof(p->driver) + sizeof(p->transport))
        return bad_uri(uri, "scheme too long");
    for (size_t i = 0; i < slen; i++)
        if (!isalnum((unsigned char)uri[i]) && uri[i] != '+' && uri[i] != '-' && uri[i] != '.')
            return bad_uri(uri, "bad character in scheme");
    {
        const char *plus = memchr(uri, '+', slen);
        size_t dlen = plus ? (size_t)(plus - uri) : slen;
        if (dlen == 0 || dlen >= sizeof(p->driver) ||
            (plus && (slen - dlen - 1 == 0 || slen - dlen - 1 >= sizeof(p->transport))))
            return bad_uri(uri, "bad driver or transport");
        memcpy(p->driver, uri, dlen);
        if (plus)
            memcpy(p->transport, plus + 1, slen - dlen - 1);
    }
    rest = colon + 1;
    if (strncmp(rest, "//", 2) != 0)
        return bad_uri(uri, "expected '//' after the scheme");
    rest += 2;
    auth_end = rest + strcspn(rest, "/?#");
    if (*auth_end == '#')
        return bad_uri(uri, "fragments are not allowed");
    if ((rc = parse_authority(uri, rest, (size_t)(auth_end - rest), t)) != LVRPC_OK)
        return rc;
    q = strchr(auth_end, '?');
    snprintf(p->path, sizeof(p->path), "%.*s",
             (int)(q ? (size_t)(q - auth_end) : strlen(auth_end)), auth_end);
    if (strchr(p->path, '#') || percent_decode(p->path, 0) < 0)
        return bad_uri(uri, "bad path");
    if (q) {
        snprintf(buf, sizeof(buf), "%s", q + 1);
        if ((rc = parse_query(uri, buf, p, t)) != LVRPC_OK)
            return rc;
    }
    t->admin = is_admin_daemon(p->driver);
    if ((rc = choose_transport(uri, p, t)) != LVRPC_OK)
        return rc;
    if (t->admin && t->kind != LVRPCI_UNIX)
        return lvrpci_fail(LVRPC_ENOTSUP, 0, "admin URIs ('%s') use the daemon's local admin "
                           "socket: no host or transport", p->driver);
    if (t->kind == LVRPCI_UNIX && !t->socket_path &&
        (rc = default_socket(p, flags, t)) != LVRPC_OK)
        return rc;
    t->open_flags = flags & LVRPC_OPEN_READONLY ? 1u : 0u;
    return build_name(p, t);
}

int lvrpci_uri_parse(const char *uri, unsigned flags, lvrpci_target *out)
{
    uri_parts *p;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!uri)
        return lvrpci_fail(LVRPC_EINVAL, 0, "no URI given");
    p = calloc(1, sizeof(*p));
    if (!p)
        return lvrpci_fail(LVRPC_ENOMEM, ENOMEM, "out of memory");
    rc = parse(uri, flags, out, p);
    free(p);
    if (rc != LVRPC_OK)
        lvrpci_target_clear(out);
    return rc;
}

void lvrpci_target_clear(lvrpci_target *t)
{
    free(t->host);
    free(t->port);
    free(t->socket_path);
    free(t->name);
    free(t->pkipath);
    lvrpci_tls_release(t);
    memset(t, 0, sizeof(*t));
}
