/* fakeserver.h - an in-process, scripted fake libvirtd for lvrpc's tests.
 *
 * The fake listens on 127.0.0.1 (an ephemeral port) and, on request, on a
 * UNIX socket inside a private mkdtemp() directory.  It speaks just enough of
 * libvirt's remote protocol for lvrpc's tests and benchmarks:
 *
 *   handshake   AUTH_LIST (66) -> [NONE], CONNECT_SUPPORTS_FEATURE (60) ->
 *               1 for feature 10 (keepalive), else 0, CONNECT_OPEN (1) and
 *               CONNECT_CLOSE (2) -> empty replies;
 *   calls       CONNECT_GET_LIB_VERSION (157) -> 9000000,
 *               CONNECT_GET_HOSTNAME (59) -> "fakehost",
 *               DOMAIN_LOOKUP_BY_NAME (23) -> the name asked for, a uuid
 *               derived from it (fake_uuid_for_name()) and id 1,
 *               CONNECT_LIST_ALL_DOMAINS (273) -> list_count domains named
 *               "dom-0", "dom-1", ... with ids 1, 2, ...;
 *               any other procedure -> an error reply (VIR_ERR_NO_SUPPORT);
 *   keepalive   PING from the client -> PONG; PONGs are counted;
 *   streams     (after CONNECT_OPEN; see "Streams" below)
 *               DOMAIN_OPEN_CONSOLE (201), DOMAIN_OPEN_CHANNEL (296) -> an
 *               echo stream: every data packet comes back on the same serial;
 *               STORAGE_VOL_DOWNLOAD (209), DOMAIN_SCREENSHOT (211, mime
 *               FAKE_SCREENSHOT_MIME) -> stream_bytes bytes of
 *               fake_stream_byte(i), in packets of FAKE_STREAM_CHUNK, then
 *               the end of data;
 *               STORAGE_VOL_UPLOAD (208) -> data and holes are counted
 *               (stats.stream_rx_bytes, stream_rx_holes) and the data checked
 *               against fake_stream_byte (stats.stream_rx_mismatch);
 *               the client's finish (STREAM/OK) -> STREAM/OK, its abort
 *               (STREAM/ERROR) -> STREAM/ERROR with FAKE_ABORT_MESSAGE, as
 *               libvirtd does; packets of streams that are gone are dropped;
 *   descriptors (UNIX sockets; see "Descriptors" below)
 *               DOMAIN_OPEN_GRAPHICS (249) -> an empty reply, after writing
 *               "fake-fd-<i>\n" into the i-th descriptor that came with the
 *               call and closing it;
 *               LXC_DOMAIN_OPEN_NAMESPACE (program 0x00068000 version 1,
 *               procedure 1) -> REPLY_WITH_FDS with FAKE_NS_FDS descriptors:
 *               the read ends of pipes holding "ns-<i>\n" whose write ends
 *               the fake has closed (so each reads that, then EOF); the fake
 *               closes its copies once they are sent.
 *
 * Descriptors.  On a UNIX connection the fake reads with recvmsg(), keeping
 * the descriptors passed to it in arrival order (at most FAKE_RX_FDS_MAX
 * waiting; the excess is closed).  A CALL_WITH_FDS (type 4; a 4-byte count
 * before the arguments, at most 32) is handled once its count of dummy bytes
 * has arrived too; it takes that many descriptors from the queue, and when
 * fewer are there (or the count is above 32) the call is counted in
 * stats.bad_packets and the connection closed.  Such calls are counted in
 * stats.fds_calls and their descriptors in stats.fds_received; procedures
 * other than DOMAIN_OPEN_GRAPHICS ignore them.  Descriptors the fake sends go
 * after the whole reply packet, one sendmsg() of one '\0' byte each
 * (stats.fds_sent), as libvirtd sends them.  The fake closes every
 * descriptor it received or made as soon as it is done with it.
 *
 * A behaviour (fake_behavior) decides how the fake answers.  Fault behaviours
 * apply to the first non-handshake call of each connection, or to every
 * non-handshake call with FAKE_ALL_CALLS, or to the first packet of each
 * connection (normally AUTH_LIST) with FAKE_IN_HANDSHAKE.  The behaviour is
 * read when a call arrives, so a test switches it at any time, from any
 * thread, with fake_server_set_behavior().
 *
 * Threads: one acceptor thread plus one thread per connection.  Every
 * function here may be called from any thread, except that fake_server_stop()
 * must be called exactly once per server and no other call may race with it.
 * fake_server_stop() wakes every thread, joins them all, closes every socket
 * and removes the UNIX socket and its directory.
 */
#ifndef LVRPC_TESTS_FAKESERVER_H
#define LVRPC_TESTS_FAKESERVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fake_behavior {
    FAKE_NORMAL = 0,      /* answer correctly */
    FAKE_INSTANT,         /* NORMAL for benchmarks: no fault checks, no
                           * handshake bookkeeping; pipelined calls are
                           * answered in order, in batches */
    FAKE_GARBAGE,         /* a well-framed 64-byte packet of random bytes
                           * whose header cannot be valid; socket kept open */
    FAKE_LEN_TOO_SMALL,   /* length word 16 (< 28) and 12 bytes; kept open */
    FAKE_LEN_TOO_BIG,     /* length word 0xFFFFFFF0, a header, 8 bytes; kept open */
    FAKE_LEN_OVER_MAX,    /* length word 33554437 (one over the maximum),
                           * a header, 8 bytes; kept open */
    FAKE_LEN_TOO_BIG_BARE,/* length word 0xFFFFFFF0 and nothing else; kept
                           * open (a client must judge the length alone) */
    FAKE_TRUNCATED,       /* the reply, its length word 16 bytes too large;
                           * then the fake closes */
    FAKE_WRONG_SERIAL,    /* the reply with another serial */
    FAKE_WRONG_PROGRAM,   /* the reply with program 0x12345678 */
    FAKE_WRONG_VERSION,   /* the reply with version 2 */
    FAKE_WRONG_TYPE,      /* the reply with type 7 */
    FAKE_WRONG_TYPE_CALL, /* the reply with type CALL (0) */
    FAKE_WRONG_STATUS,    /* the reply with status 9 */
    FAKE_BAD_STRING_LEN,  /* an OK reply whose body starts with a string
                           * length of 4000000000 (fits CONNECT_GET_HOSTNAME) */
    FAKE_BAD_ARRAY_COUNT, /* an OK reply whose body starts with an array
                           * count of 1000000000 (fits CONNECT_LIST_ALL_DOMAINS) */
    FAKE_ERROR_REPLY,     /* status ERROR with remote_error code 42, domain 10,
                           * level 2, message FAKE_ERROR_MESSAGE */
    FAKE_CLOSE_MID_REPLY, /* the first half of the reply's bytes, then close */
    FAKE_CLOSE_AFTER_REPLY, /* the correct reply, then the connection closed
                             * (a daemon restarted, or dropping an idle
                             * client) */
    FAKE_NEVER_ANSWER,    /* read the call, never answer, keep the socket */
    FAKE_SLOW,            /* answer after slow_ms */
    FAKE_PING_FIRST,      /* a keepalive PING, then the reply */
    FAKE_MAX_REPLY,       /* a valid OK reply of exactly 33554436 bytes, the
                           * largest allowed: its body is a variable-length
                           * opaque of FAKE_MAX_REPLY_BYTES bytes, byte i
                           * being (i * 7) & 0xff */
    FAKE_AUTH_SASL_ONLY,  /* handshake: AUTH_LIST answers [SASL] */
    FAKE_REFUSE_OPEN,     /* handshake: CONNECT_OPEN gets an error reply
                           * (code 5 VIR_ERR_NO_CONNECT, domain 13,
                           * message FAKE_REFUSE_MESSAGE) */
    /* Descriptor faults (call faults, like GARBAGE..MAX_REPLY): */
    FAKE_FDS_MISSING,     /* the reply as REPLY_WITH_FDS announcing 2
                           * descriptors, followed by 2 plain dummy bytes
                           * with no SCM_RIGHTS; kept open */
    FAKE_FDS_TOO_MANY,    /* the reply as REPLY_WITH_FDS with a count of 33
                           * (one over the limit) and no descriptors; kept
                           * open */
    FAKE_FDS_NO_COUNT,    /* a REPLY_WITH_FDS that is only the 28-byte
                           * header (no count); kept open */
    FAKE_FDS_UNANNOUNCED, /* the correct reply (with its descriptors, if
                           * any), but its first byte is sent with an
                           * SCM_RIGHTS descriptor attached (a pipe end the
                           * client never asked for; the fake closes its
                           * copy); UNIX sockets only, over TCP the reply
                           * is merely correct */
    FAKE_BEHAVIOR_COUNT
} fake_behavior;

/* How streams misbehave (fake_server_set_stream()).  "after" counts data
 * bytes the fake sent (download, screenshot), echoed (console, channel) or
 * received (upload) on that stream. */
typedef enum fake_stream_fault {
    FAKE_STREAM_NORMAL = 0, /* as described above */
    FAKE_STREAM_ERROR,      /* after "after" bytes: STREAM/ERROR with code
                             * FAKE_STREAM_ERROR_CODE, domain
                             * FAKE_STREAM_ERROR_DOMAIN, message
                             * FAKE_STREAM_ERROR_MESSAGE (the daemon's abort) */
    FAKE_STREAM_CLOSE,      /* after "after" bytes (whole packets): the fake
                             * closes the connection, no end of data */
    FAKE_STREAM_CUT,        /* after "after" bytes: half of a data packet,
                             * then the fake closes the connection */
    FAKE_STREAM_STALL,      /* after "after" bytes: nothing more is sent on
                             * the stream (the connection stays open) */
    FAKE_STREAM_END,        /* after "after" bytes: the end of data at once
                             * (the daemon hung up, e.g. a console's domain
                             * stopped) */
    FAKE_STREAM_HOLE,       /* download: a 4096-byte hole first (a protocol
                             * error on a stream that is not sparse), then
                             * as NORMAL */
    FAKE_STREAM_EARLY,      /* download, screenshot: the first "after" bytes
                             * of data (whole packets) go before the reply
                             * to the opening call, as libvirtd sometimes
                             * sends them; then as NORMAL */
    FAKE_STREAM_FAULT_COUNT
} fake_stream_fault;

#define FAKE_STREAM_CHUNK 262120u
#define FAKE_SCREENSHOT_MIME "image/x-fake"
#define FAKE_STREAM_ERROR_CODE 38   /* VIR_ERR_SYSTEM_ERROR */
#define FAKE_STREAM_ERROR_DOMAIN 18 /* VIR_FROM_STORAGE */
#define FAKE_STREAM_ERROR_MESSAGE "cannot write to stream: No space left on device"
#define FAKE_ABORT_CODE 1           /* VIR_ERR_INTERNAL_ERROR */
#define FAKE_ABORT_MESSAGE "stream aborted at client request"

/* Byte i of every stream the fake sends, and of uploads it checks. */
static inline unsigned char fake_stream_byte(uint64_t i)
{
    return (unsigned char)((i * 131u) ^ (i >> 9));
}

/* Flags for fake_server_set_behavior(). */
#define FAKE_ALL_CALLS 0x1u    /* every non-handshake call, not only the first */
#define FAKE_IN_HANDSHAKE 0x2u /* the first packet of each connection instead */

#define FAKE_LIB_VERSION 9000000u
#define FAKE_HOSTNAME "fakehost"
#define FAKE_ERROR_CODE 42
#define FAKE_ERROR_DOMAIN 10
#define FAKE_ERROR_LEVEL 2
#define FAKE_ERROR_MESSAGE "Domain not found: no domain with matching name 'x'"
#define FAKE_REFUSE_CODE 5
#define FAKE_REFUSE_DOMAIN 13
#define FAKE_REFUSE_MESSAGE "no connection driver available for fake:///refused"
#define FAKE_BAD_STRING_LENGTH 4000000000u
#define FAKE_BAD_ARRAY_COUNT_VALUE 1000000000u
#define FAKE_MAX_PACKET (33554432u + 4u)
#define FAKE_MAX_REPLY_BYTES (FAKE_MAX_PACKET - 32u)
/* Descriptors in a LXC_DOMAIN_OPEN_NAMESPACE reply. */
#define FAKE_NS_FDS 3u
/* Received descriptors a connection holds until calls claim them. */
#define FAKE_RX_FDS_MAX 64u

typedef struct fake_server fake_server;

/* Options for fake_server_start().  {0} means: TCP only, NORMAL, no delay,
 * 3 domains. */
typedef struct fake_config {
    int unix_socket;         /* also listen on a UNIX socket */
    fake_behavior behavior;  /* initial behaviour */
    unsigned behavior_flags; /* FAKE_ALL_CALLS, FAKE_IN_HANDSHAKE */
    unsigned slow_ms;        /* delay of FAKE_SLOW */
    unsigned list_count;     /* domains listed; 0 = 3 */
    uint64_t stream_bytes;   /* bytes of a download or screenshot; 0 = 1 MiB */
} fake_config;

/* Counters, all since the server started. */
typedef struct fake_stats {
    uint64_t accepted;          /* connections accepted */
    uint64_t active;            /* connections open now */
    uint64_t closed_by_peer;    /* connections the client closed (EOF/reset) */
    uint64_t calls;             /* CALL packets received (handshake included) */
    uint64_t handshake_calls;   /* of which AUTH_LIST, SUPPORTS_FEATURE,
                                 * CONNECT_OPEN, CONNECT_CLOSE */
    uint64_t calls_before_open; /* non-handshake calls before CONNECT_OPEN */
    uint64_t faults;            /* misbehaviours performed */
    uint64_t pings;             /* PINGs received (answered with PONG) */
    uint64_t pongs;             /* PONGs received */
    uint64_t bad_packets;       /* client packets the fake could not accept */
    uint64_t open_flags;        /* flags of the last CONNECT_OPEN */
    uint64_t stream_opens;      /* stream-creating calls answered */
    uint64_t stream_tx_bytes;   /* data bytes sent on streams (echo included) */
    uint64_t stream_rx_bytes;   /* data bytes received on streams */
    uint64_t stream_rx_holes;   /* hole bytes received on streams */
    uint64_t stream_rx_mismatch;/* upload bytes that were not fake_stream_byte */
    uint64_t stream_finishes;   /* finishes confirmed */
    uint64_t stream_aborts;     /* client aborts answered */
    uint64_t stream_dropped;    /* packets of unknown (ended) streams */
    uint64_t fds_calls;         /* CALL_WITH_FDS packets accepted */
    uint64_t fds_received;      /* descriptors they carried */
    uint64_t fds_sent;          /* descriptors sent with replies, counted
                                 * once the fake has closed its copies */
} fake_stats;

/* Starts a server.  Returns 0 and *out, or -1 with errno set (and a message
 * on stderr). */
int fake_server_start(const fake_config *cfg, fake_server **out);

/* Stops and frees the server; NULL is allowed. */
void fake_server_stop(fake_server *s);

/* The TCP port (host byte order). */
int fake_server_port(const fake_server *s);

/* The UNIX socket path, or NULL when not listening on one. */
const char *fake_server_unix_path(const fake_server *s);

/* Writes "test+tcp://127.0.0.1:PORT/default" or, with unix_socket,
 * "test+unix:///default?socket=PATH" into buf.  Returns buf. */
char *fake_server_uri(const fake_server *s, int use_unix, char *buf,
                      size_t size);

/* Changes the behaviour for calls that arrive from now on. */
void fake_server_set_behavior(fake_server *s, fake_behavior b, unsigned flags);
fake_behavior fake_server_get_behavior(fake_server *s, unsigned *flags);
void fake_server_set_slow_ms(fake_server *s, unsigned ms);
void fake_server_set_list_count(fake_server *s, unsigned count);
/* Streams opened from now on: the fault, after how many bytes, and the size
 * of downloads and screenshots (0 = 1 MiB). */
void fake_server_set_stream(fake_server *s, fake_stream_fault fault, uint64_t after,
                            uint64_t bytes);

/* Copies the counters. */
void fake_server_get_stats(fake_server *s, fake_stats *out);
uint64_t fake_server_connections(fake_server *s); /* stats.accepted */
uint64_t fake_server_calls(fake_server *s);       /* stats.calls */

/* Copies the name of the last CONNECT_OPEN ("" if none, "(null)" if the
 * client sent no name) into buf. */
void fake_server_last_open_name(fake_server *s, char *buf, size_t size);

/* Waits until stats.closed_by_peer >= n or timeout_ms pass.  Returns 1 when
 * reached, 0 on timeout. */
int fake_server_wait_closed_by_peer(fake_server *s, uint64_t n,
                                    unsigned timeout_ms);

/* Waits until stats.calls >= n or timeout_ms pass.  Returns 1 / 0. */
int fake_server_wait_calls(fake_server *s, uint64_t n, unsigned timeout_ms);

/* The 16-byte uuid the fake gives the domain called name. */
void fake_uuid_for_name(const char *name, unsigned char uuid[16]);

/* A short name for a behaviour ("GARBAGE"), for messages. */
const char *fake_behavior_name(fake_behavior b);

#ifdef __cplusplus
}
#endif

#endif /* LVRPC_TESTS_FAKESERVER_H */
