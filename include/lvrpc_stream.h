/* lvrpc_stream.h - data streams: volume upload and download, screenshots,
 * consoles and channels.  Included by lvrpc.h.
 *
 * A stream is opened by a stream-creating call (e.g. STORAGE_VOL_UPLOAD).
 * From then on data flows under that call's serial until one side ends it.
 * Ownership is the same in both modes: data is copied into and out of
 * buffers that the caller owns; nothing is handed over.
 *
 * Threads: one thread may send while another receives on the same stream
 * (consoles and channels carry data both ways at once); two threads must not
 * send, or receive, on one stream at the same time.  Every stream must be
 * freed with lvrpc_stream_free() before its handle is closed; lvrpc_close()
 * wakes blocked stream operations with LVRPC_ECLOSED and waits until the
 * streams are freed.
 *
 * Modes: in Direct mode the stream holds a socket of its own until it is
 * freed.  In Shared mode it shares its connection with other calls; each
 * stream buffers at most LVRPC_STREAM_QUEUE_MAX received bytes, after which
 * the connection's reader waits for the stream's consumer (backpressure on
 * that one connection: calls already sent on it wait too; new calls go to
 * the pool's other connections while there is one that is not held back).
 * A consumer that stops reading for longer than the call timeout therefore
 * delays the calls sharing its connection, and one that stops for longer
 * than libvirtd's keepalive window (keepalive_interval x (keepalive_count +
 * 1), 30 s by default) loses the connection: the daemon's PINGs wait behind
 * the unread data, and the stream then fails with LVRPC_ECLOSED (an error,
 * never a silent short read).  Do not pump a download into an upload on the
 * same Shared connection from one thread: with the download's queue full and
 * the upload waiting for the daemon, neither side moves.
 *
 * libvirtd may send a stream's first data before its reply to the opening
 * call.  In both modes that data is kept for the stream, up to 4 x
 * LVRPC_STREAM_QUEUE_MAX bytes (no backpressure is possible before the
 * reply); a daemon that sends more fails the stream with LVRPC_EPROTO.
 */
#ifndef LVRPC_STREAM_H
#define LVRPC_STREAM_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lvrpc_stream lvrpc_stream;

/* Received bytes a Shared-mode stream buffers before backpressure. */
#define LVRPC_STREAM_QUEUE_MAX (4u * 1024 * 1024)
/* Data bytes per packet sent (libvirt's legacy payload limit). */
#define LVRPC_STREAM_CHUNK 262120u

/* lvrpc_stream_open() flags. */
#define LVRPC_STREAM_SPARSE 0x1u /* holes may be sent and received (the call's
                                  * own flags must carry its sparse flag, e.g.
                                  * VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM = 1) */

/* Makes a stream-creating call of the remote program: proc with its args,
 * reply decoded as lvrpc_call() does (*ret freed with lvrpc_reply_free();
 * pass NULL/0/NULL when the reply is empty).  On success *out is an open
 * stream the caller frees with lvrpc_stream_free(). */
LVRPC_API int lvrpc_stream_open(lvrpc_client *c, int proc, xdrproc_t xdr_args,
                                const void *args, xdrproc_t xdr_ret, size_t ret_size,
                                void **ret, unsigned flags, lvrpc_stream **out);

/* Typed openers for the stream-creating procedures (flags as above; the
 * call's own flags are in args).  Volume upload: send, then finish.
 * Volume download and screenshot: receive until the end, then finish.
 * Console and channel: both ways at once, until either side ends it. */
LVRPC_API int lvrpc_storage_vol_upload_stream(lvrpc_client *c,
                                              const lvrpc_storage_vol_upload_args *args,
                                              unsigned flags, lvrpc_stream **out);
LVRPC_API int lvrpc_storage_vol_download_stream(lvrpc_client *c,
                                                const lvrpc_storage_vol_download_args *args,
                                                unsigned flags, lvrpc_stream **out);
/* *ret (the image's MIME type) is freed with lvrpc_reply_free(). */
LVRPC_API int lvrpc_domain_screenshot_stream(lvrpc_client *c,
                                             const lvrpc_domain_screenshot_args *args,
                                             lvrpc_domain_screenshot_ret **ret,
                                             lvrpc_stream **out);
LVRPC_API int lvrpc_domain_open_console_stream(lvrpc_client *c,
                                               const lvrpc_domain_open_console_args *args,
                                               lvrpc_stream **out);
LVRPC_API int lvrpc_domain_open_channel_stream(lvrpc_client *c,
                                               const lvrpc_domain_open_channel_args *args,
                                               lvrpc_stream **out);

/* Sends len bytes (split into packets of LVRPC_STREAM_CHUNK).  Fails with
 * the daemon's error if it has aborted the stream. */
LVRPC_API int lvrpc_stream_send(lvrpc_stream *st, const void *buf, size_t len);

/* Sends a hole of length bytes (sparse streams only). */
LVRPC_API int lvrpc_stream_send_hole(lvrpc_stream *st, int64_t length);

/* Receives what comes next: data (1..cap bytes copied to buf, *got set,
 * *hole 0), a hole (*got 0, *hole its length; sparse streams only), or the
 * end of the stream (*got 0, *hole 0).  hole may be NULL for streams that
 * are not sparse.  A stream that ends with an error returns the daemon's
 * error, never a silent short read.  When nothing arrives within the call
 * timeout it returns LVRPC_ETIMEDOUT and the stream stays open: recv may be
 * called again (a console may be idle for long; lvrpc_set_timeout() sets
 * how long one recv waits). */
LVRPC_API int lvrpc_stream_recv(lvrpc_stream *st, void *buf, size_t cap, size_t *got,
                                int64_t *hole);

/* Ends the stream normally: tells the daemon no more data follows (after
 * receiving the end, for downloads) and waits for its confirmation, which
 * carries any late error (e.g. a failed write on the daemon's side). */
LVRPC_API int lvrpc_stream_finish(lvrpc_stream *st);

/* Ends the stream with an abort packet and waits briefly for the daemon to
 * acknowledge.  The handle stays usable. */
LVRPC_API int lvrpc_stream_abort(lvrpc_stream *st);

/* Frees the stream (aborting it first if it is still open).  NULL is allowed. */
LVRPC_API void lvrpc_stream_free(lvrpc_stream *st);

/* Progress of lvrpc_stream_send_fd / lvrpc_stream_recv_fd: bytes moved so far
 * (holes included) of total (0 when unknown).  Runs on the calling thread;
 * returning non-zero aborts the transfer (LVRPC_ECLOSED is returned). */
typedef int (*lvrpc_progress_cb)(uint64_t done, uint64_t total, void *opaque);

/* Sends everything read from fd (until EOF), then finishes the stream.  On a
 * sparse stream the holes of a regular file are sent as holes.  Over TCP and
 * UNIX sockets a regular file is sent from a mapping of it, 16 MiB at a
 * time (the kernel copies it into the socket; it is never read into a
 * buffer); TLS and other
 * fds are read into a buffer.  A file that shrinks
 * meanwhile ends a stream that is not sparse where it now ends (as read()
 * would), and fails a sparse one with LVRPC_ESYS, the stream aborted; a file
 * cut while one of its packets is being sent fails with LVRPC_ESYS and drops
 * the connection, since that packet cannot be finished (in Shared mode the
 * calls in flight on it fail too, and it is re-opened). */
LVRPC_API int lvrpc_stream_send_fd(lvrpc_stream *st, int fd, uint64_t total,
                                   lvrpc_progress_cb cb, void *opaque);

/* Writes everything received to fd until the end, then finishes the stream.
 * Holes are skipped with lseek (and the file extended at the end), so a
 * sparse download keeps its holes. */
LVRPC_API int lvrpc_stream_recv_fd(lvrpc_stream *st, int fd, uint64_t total,
                                   lvrpc_progress_cb cb, void *opaque);

#ifdef __cplusplus
}
#endif

#endif /* LVRPC_STREAM_H */
