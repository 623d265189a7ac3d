/* raw_rpc.c - the floor: a bare socket round trip of libvirt's remote
 * protocol, written by hand (no libvirt.so, no liblvrpc).
 *
 * One socket, one thread, one call at a time: CONNECT_OPEN, a short
 * warm-up, then the timed calls, each a write() of the packet and read()s
 * until its whole reply is in, checked just enough to be sure it is the
 * right answer.  Whatever a client library adds to the p50 of this loop is
 * its own overhead.
 *
 * usage: raw_rpc (-T HOST:PORT | -U SOCKET_PATH) [-s SECONDS | -n CALLS]
 *                [-c libversion|lookup|listall] [-d DOMAIN] [-N NAME]
 *                [-w WARMUP] [-W WORK_NS]
 *   NAME is the URI sent in CONNECT_OPEN (default test:///default);
 *   WARMUP calls before the timed phase (default 200);
 *   WORK_NS: busy for that many nanoseconds after each reply, outside the
 *   timed round trip, as a client that does something with its replies.
 *   On a small VM this moves the round trip itself: with none, the next
 *   call reaches libvirtd before its vCPU has gone idle; with 2,000 ns it
 *   must wake it (measured 2026-12-02: +9 µs per round trip, +2.3 µs of
 *   client CPU beyond the work).
 * Output: the one line of bench.h.
 *
 * Wire format (XDR, big-endian), see /usr/share/libvirt's remote_protocol.x:
 *   u32 len     whole packet, this word included
 *   u32 prog    0x20008086       u32 vers   1
 *   i32 proc    1 CONNECT_OPEN, 157 CONNECT_GET_LIB_VERSION,
 *               23 DOMAIN_LOOKUP_BY_NAME, 273 CONNECT_LIST_ALL_DOMAINS
 *   i32 type    0 CALL, 1 REPLY     u32 serial     i32 status 0 OK, 1 ERROR
 *   body
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

#define PROG 0x20008086u
#define PROC_CONNECT_OPEN 1
#define PROC_LOOKUP 23
#define PROC_LIB_VERSION 157
#define PROC_LIST_ALL 273
#define HDR 28 /* length word + header */

static int fd;
static unsigned char rbuf[1 << 16]; /* bytes read, not yet consumed */
static size_t rlen;
static unsigned char pkt[1 << 16];  /* the last packet read */

static void put32(unsigned char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return ntohl(v);
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void write_all(const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            die("raw_rpc: send");
        p += w;
        n -= (size_t)w;
    }
}

/* Reads one whole packet into pkt; returns its length. */
static size_t read_packet(void)
{
    for (;;) {
        if (rlen >= 4) {
            uint32_t len = get32(rbuf);

            if (len < HDR || len > sizeof(rbuf)) {
                fprintf(stderr, "raw_rpc: bad packet length %u\n", len);
                exit(1);
            }
            if (rlen >= len) {
                memcpy(pkt, rbuf, len);
                memmove(rbuf, rbuf + len, rlen - len);
                rlen -= len;
                return len;
            }
        }
        ssize_t r = recv(fd, rbuf + rlen, sizeof(rbuf) - rlen, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die("raw_rpc: recv");
        if (r == 0) {
            fprintf(stderr, "raw_rpc: EOF from the daemon\n");
            exit(1);
        }
        rlen += (size_t)r;
    }
}

/* Writes a length word and CALL header into b; returns HDR + body_len. */
static size_t build_call(unsigned char *b, int proc, uint32_t serial, size_t body_len)
{
    put32(b, (uint32_t)(HDR + body_len));
    put32(b + 4, PROG);
    put32(b + 8, 1);
    put32(b + 12, (uint32_t)proc);
    put32(b + 16, 0);
    put32(b + 20, serial);
    put32(b + 24, 0);
    return HDR + body_len;
}

/* Appends an XDR string at b; returns its encoded size. */
static size_t put_string(unsigned char *b, const char *s)
{
    size_t n = strlen(s), pad = (4 - n % 4) % 4;

    put32(b, (uint32_t)n);
    memcpy(b + 4, s, n);
    memset(b + 4 + n, 0, pad);
    return 4 + n + pad;
}

/* 0 when pkt[0..len) is the OK reply to (proc, serial), else prints why. */
static int check_reply(size_t len, int proc, uint32_t serial, int quiet)
{
    int rproc = (int)get32(pkt + 12), type = (int)get32(pkt + 16), status = (int)get32(pkt + 24);
    uint32_t rserial = get32(pkt + 20);

    if (type == 1 && rproc == proc && rserial == serial && status == 0)
        return 0;
    if (!quiet) {
        fprintf(stderr, "raw_rpc: unexpected reply proc=%d type=%d serial=%u status=%d (want %d/%u)\n",
                rproc, type, rserial, status, proc, serial);
        if (status == 1 && len >= HDR + 16 && get32(pkt + HDR + 8)) {
            uint32_t sl = get32(pkt + HDR + 12);
            if (HDR + 16 + (size_t)sl <= len)
                fprintf(stderr, "raw_rpc: error: %.*s\n", (int)sl, (const char *)pkt + HDR + 16);
        }
    }
    return -1;
}

static int connect_to(const char *tcp, const char *unix_path)
{
    if (tcp) {
        char host[256], *colon;
        struct addrinfo hints, *ai;
        int one = 1, s;

        snprintf(host, sizeof(host), "%s", tcp);
        if (!(colon = strrchr(host, ':')))
            return -1;
        *colon = '\0';
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
            return -1;
        s = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0 || connect(s, ai->ai_addr, ai->ai_addrlen) < 0)
            die("raw_rpc: connect");
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        freeaddrinfo(ai);
        return s;
    } else {
        struct sockaddr_un sa;
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", unix_path);
        if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            die("raw_rpc: connect");
        return s;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: raw_rpc (-T HOST:PORT | -U PATH) [-s SECONDS | -n CALLS] "
                    "[-c libversion|lookup|listall] [-d DOMAIN] [-N NAME] [-w WARMUP] [-W WORK_NS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *tcp = NULL, *unix_path = NULL, *name = "test:///default", *domain = "test";
    double seconds = 5.0;
    long ncalls = 0, warmup = 200, work_ns = 0;
    int proc = PROC_LOOKUP, opt;
    unsigned char call[512], open_pkt[512];
    size_t call_len, body = 0, len;
    uint32_t serial = 1;
    bench_lat lat = {0};
    uint64_t errors = 0;
    int64_t t0, deadline, cpu0;
    double wall;

    while ((opt = getopt(argc, argv, "T:U:s:n:c:d:N:w:W:")) != -1) {
        switch (opt) {
        case 'T': tcp = optarg; break;
        case 'U': unix_path = optarg; break;
        case 's': seconds = atof(optarg); break;
        case 'n': ncalls = atol(optarg); break;
        case 'c':
            if (strcmp(optarg, "libversion") == 0) proc = PROC_LIB_VERSION;
            else if (strcmp(optarg, "lookup") == 0) proc = PROC_LOOKUP;
            else if (strcmp(optarg, "listall") == 0) proc = PROC_LIST_ALL;
            else usage();
            break;
        case 'd': domain = optarg; break;
        case 'N': name = optarg; break;
        case 'w': warmup = atol(optarg); break;
        case 'W': work_ns = atol(optarg); break;
        default: usage();
        }
    }
    if ((!tcp == !unix_path) || !(seconds > 0) || work_ns < 0 || strlen(domain) > 200 || strlen(name) > 200)
        usage();
    if ((fd = connect_to(tcp, unix_path)) < 0) {
        fprintf(stderr, "raw_rpc: cannot resolve %s\n", tcp);
        return 1;
    }

    /* CONNECT_OPEN { remote_string name (present flag + string); u32 flags } */
    body = 4;
    put32(open_pkt + HDR, 1);
    body += put_string(open_pkt + HDR + body, name);
    put32(open_pkt + HDR + body, 0);
    body += 4;
    write_all(open_pkt, build_call(open_pkt, PROC_CONNECT_OPEN, serial, body));
    if (check_reply(read_packet(), PROC_CONNECT_OPEN, serial, 0) < 0)
        return 1;

    /* The timed call's packet, built once; only the serial changes. */
    body = 0;
    if (proc == PROC_LOOKUP) {
        body = put_string(call + HDR, domain); /* remote_nonnull_string name */
    } else if (proc == PROC_LIST_ALL) {
        put32(call + HDR, 1);     /* need_results */
        put32(call + HDR + 4, 0); /* flags */
        body = 8;
    }
    call_len = build_call(call, proc, 0, body);

    for (long i = 0; i < warmup; i++) {
        put32(call + 20, ++serial);
        write_all(call, call_len);
        if (check_reply(read_packet(), proc, serial, 0) < 0)
            return 1;
    }

    cpu0 = bench_cpu_us();
    t0 = bench_now_ns();
    deadline = t0 + (int64_t)(seconds * 1e9);
    for (;;) {
        int64_t c0 = bench_now_ns(), c1;

        if (work_ns) { /* the client's work, then the timed round trip */
            while (bench_now_ns() - c0 < work_ns)
                ;
            c0 = bench_now_ns();
        }
        put32(call + 20, ++serial);
        write_all(call, call_len);
        len = read_packet();
        if (check_reply(len, proc, serial, errors > 0) < 0)
            errors++;
        else if (proc == PROC_LOOKUP && (len < HDR + 4 || get32(pkt + HDR) != strlen(domain)))
            errors++; /* the reply's domain name is not the one asked for */
        c1 = bench_now_ns();
        if (bench_lat_add(&lat, (uint64_t)(c1 - c0)) < 0)
            return 1;
        if (ncalls ? (long)lat.n >= ncalls : c1 >= deadline)
            break;
    }
    wall = (double)(bench_now_ns() - t0) / 1e9;
    if (bench_report(&lat, 1, errors, wall, bench_cpu_us() - cpu0) < 0)
        return 1;
    close(fd);
    free(lat.v);
    return errors ? 1 : 0;
}
