#include "worker.h"

#include <errno.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ascii.h"
#include "privsep.h"
#include "tls.h"
#include "util.h"

/* Measured with bench/ (make bench-sizes, bench/sizes.md): 256 KiB blocks for file reads, the
 * read-ahead buffer and received blocks; a 1 MiB buffering BIO under TLS writes, so that a
 * download's records leave in 1 MiB write(2) calls (about 14% less CPU than 256 KiB ones).
 * Larger receive blocks are slower. */
#define BUF_SIZE (256 * 1024)
#define SEND_BIO_SIZE (1024 * 1024)

struct wstate {
    const struct worker_args *a;
    SSL *ssl;
    bool handshake_done;
    bool tls_failed;
    char text[512];
    char tlsinfo[128];
    uint64_t bytes;
    bool ktls_send;     /* the kernel encrypts what is sent (kernel TLS) */
    int64_t started_ms; /* when the transfer's first byte could move (max_rate pacing) */
    char *buf;          /* BUF_SIZE */
    char *conv;         /* 2 * BUF_SIZE, for TYPE A */
    struct job {
        bool have; /* received (it may come while the handshake waits) */
        bool ok;
        uint32_t dir, type, prot, test_forbidden;
        uint64_t ascii_skip;
        int fd;
    } job;
};

/* max_rate: a transfer that is ahead of its rate waits until the bytes it has moved are due.
 * Each step moves at most a tenth of a second's worth (block), so it never bursts far ahead. */
static void moved(struct wstate *w, uint64_t n)
{
    w->bytes += n;
    if (w->a->progress)
        __atomic_store_n(w->a->progress, w->bytes, __ATOMIC_RELAXED);
    uint64_t rate = w->a->max_rate;
    if (rate) {
        int64_t due = w->started_ms + (int64_t)(w->bytes * 1000 / rate);
        int64_t now = now_ms();
        if (due > now)
            sleep_ms((unsigned)(due - now));
    }
}

/* How much one step of a transfer may move: full, or less under max_rate. */
static size_t block(const struct wstate *w, size_t full)
{
    uint64_t tenth = w->a->max_rate / 10;
    if (!w->a->max_rate || tenth >= full)
        return full;
    return tenth < 4096 ? 4096 : (size_t)tenth;
}

static _Noreturn void finish(struct wstate *w, uint32_t status)
{
    struct msg *m = msg_new();
    msg_init(m, MSG_RESULT);
    msg_put_u32(m, status);
    msg_put_u64(m, w->bytes);
    msg_put_str(m, w->text);
    msg_put_str(m, w->tlsinfo);
    msg_send(w->a->chan_fd, m);
    msg_free(m);
    /* _exit: no atexit handlers (OpenSSL cleanup) in the worker. */
    _exit(0);
}

/* The front's job for this connection: what to move, at which PROT level. A front that is
 * gone ends the worker. */
static void read_job(struct wstate *w)
{
    struct msg *m = msg_new();
    if (msg_recv(w->a->chan_fd, m) < 0 || m->type != MSG_JOB)
        _exit(0);
    struct job *j = &w->job;
    j->dir = msg_get_u32(m);
    j->type = msg_get_u32(m);
    j->prot = msg_get_u32(m);
    j->test_forbidden = msg_get_u32(m);
    j->ascii_skip = msg_get_u64(m);
    j->fd = m->fd;
    m->fd = -1; /* the file is the worker's now */
    j->ok = msg_ok_end(m) && j->fd >= 0 && (j->dir == JOB_SEND || j->dir == JOB_RECV);
    j->have = true;
    msg_free(m);
}

/*
 * SSL_accept within timeout_ms of the transfer command, in all: the socket's own timeouts bound
 * each read, and a client dripping its ClientHello a byte at a time would get through those.
 * A connection accepted under PROT P starts its handshake at once, maybe long before the
 * command (the client may start its handshake only after the 150): until the job comes, only
 * the session's idle timeout (the front's) bounds the wait. A job under PROT C ends the
 * handshake at once (the client will not start one). -2: that job came.
 */
static int accept_within(struct wstate *w, int fd, int timeout_ms)
{
    SSL *ssl = w->ssl;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return SSL_accept(ssl);
    int64_t deadline = now_ms() + timeout_ms;
    int r;
    for (;;) {
        r = SSL_accept(ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            break;
        int64_t left = deadline - now_ms();
        if (w->job.have && left <= 0)
            break;
        struct pollfd p[2] = {{.fd = fd, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT},
                              {.fd = w->job.have ? -1 : w->a->chan_fd, .events = POLLIN}};
        if (poll(p, 2, w->job.have ? (int)left : -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents) {
            read_job(w);
            if (w->job.ok && w->job.prot == 'C') {
                r = -2;
                break;
            }
            deadline = now_ms() + timeout_ms;
        }
    }
    fcntl(fd, F_SETFL, fl);
    return r;
}

static void handshake(struct wstate *w)
{
    const struct worker_args *a = w->a;
    w->ssl = SSL_new(a->ctx);
    if (!w->ssl) {
        w->tls_failed = true;
        snprintf(w->text, sizeof w->text, "TLS unavailable on the data connection");
        return;
    }
    SSL_set_session_id_context(w->ssl, a->sid_ctx, TLS_SID_CTX_LEN);
    if (a->cert_ctx && a->cert_ctx != a->ctx)
        SSL_set_SSL_CTX(w->ssl, a->cert_ctx);
    /* No ticket at the end of the handshake: on an upload the client never reads it, and
     * closing with it unread makes the client's kernel reset the connection and drop what it
     * had not sent yet (checklist D-11). Downloads get one later (send_ticket); the control
     * connection issues one with every transfer reply, which keeps curl's chain of single-use
     * TLS 1.3 tickets going. */
    SSL_set_num_tickets(w->ssl, 0);
    /* Reads: read-ahead with a large buffer, so one read(2) brings many records. Writes: a
     * buffering BIO under the TLS layer, so the 16 KiB records of SSL_writes leave in large
     * write(2) calls instead of one each (flushed by the handshake and at the end). */
    SSL_set_read_ahead(w->ssl, 1);
    SSL_set_default_read_buffer_len(w->ssl, BUF_SIZE);
    /* Kernel TLS needs the socket itself as the write BIO; the kernel then sends whole files
     * (SSL_sendfile) and the buffering BIO has nothing left to do. */
    BIO *sock = a->ktls ? NULL : BIO_new_socket(a->data_fd, BIO_NOCLOSE);
    BIO *buf = a->ktls ? NULL : BIO_new(BIO_f_buffer());
    if (a->ktls)
        SSL_set_options(w->ssl, SSL_OP_ENABLE_KTLS);
    if (sock && buf && BIO_set_write_buffer_size(buf, SEND_BIO_SIZE) == 1) {
        BIO_push(buf, sock);
        SSL_set_bio(w->ssl, sock, buf);
        BIO_up_ref(sock); /* read side and write chain both own it */
    } else {
        BIO_free(buf);
        BIO_free(sock);
        SSL_set_fd(w->ssl, a->data_fd);
    }
    ERR_clear_error();
    int r = accept_within(w, a->data_fd, a->timeout_ms);
    if (r == -2)
        return; /* PROT C came: worker_main answers it */
    if (r != 1) {
        int e = SSL_get_error(w->ssl, r);
        char why[256];
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            snprintf(why, sizeof why, "timed out");
        else
            tls_error_text(w->ssl, r, why, sizeof why);
        snprintf(w->text, sizeof w->text, "TLS handshake on the data connection failed: %s", why);
        w->tls_failed = true;
        return;
    }
    w->handshake_done = true;
    tls_describe(w->ssl, w->tlsinfo, sizeof w->tlsinfo);
    if (strlen(w->tlsinfo) < sizeof w->tlsinfo - 10 && SSL_session_reused(w->ssl))
        strcat(w->tlsinfo, " resumed");
    w->ktls_send = BIO_get_ktls_send(SSL_get_wbio(w->ssl));
    if (strlen(w->tlsinfo) < sizeof w->tlsinfo - 10 && w->ktls_send)
        strcat(w->tlsinfo, " kTLS");
    if (tls_check_data_session(w->ssl, a->sid_ctx, a->require_reuse, w->text, sizeof w->text) < 0) {
        w->tls_failed = true;
        return;
    }
    /* RFC 4217 §15.1.2: the data connection's client certificate must be the control's. */
    X509 *peer = SSL_get0_peer_certificate(w->ssl);
    if (a->ctl_peer && (!peer || X509_cmp(peer, a->ctl_peer) != 0)) {
        snprintf(w->text, sizeof w->text,
                 "The data connection's client certificate differs "
                 "from the control connection's; refused");
        w->tls_failed = true;
    }
}

static bool wait_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r > 0;
}

/* close_notify, then a bounded wait for the client's, so closing never resets a connection
 * whose last bytes the client has not read yet. */
static void tls_close(struct wstate *w)
{
    if (!w->ssl)
        return;
    int r = SSL_shutdown(w->ssl);
    BIO_flush(SSL_get_wbio(w->ssl));
    if (r == 0 && wait_readable(w->a->data_fd, w->a->close_ms))
        SSL_shutdown(w->ssl);
}

static uint32_t file_write_error(struct wstate *w, int err)
{
    snprintf(w->text, sizeof w->text, "writing the file failed: %s", strerror(err));
    if (err == ENOSPC)
        return WR_NO_SPACE;
    if (err == EDQUOT || err == EFBIG)
        return WR_QUOTA;
    return WR_LOCAL_ERROR;
}

static uint32_t net_error(struct wstate *w, int err, const char *what)
{
    if (err == EAGAIN || err == EWOULDBLOCK) {
        snprintf(w->text, sizeof w->text,
                 "no progress on the data connection for the data "
                 "timeout while %s",
                 what);
        return WR_TIMEOUT;
    }
    snprintf(w->text, sizeof w->text, "%s: %s", what,
             err ? strerror(err) : "connection closed by peer");
    return WR_CONN_LOST;
}

/* A blocking socket with SO_RCVTIMEO/SO_SNDTIMEO: "want read/write" means the timeout ran out,
 * unless a signal (a debugger, SIGSTOP/SIGCONT) interrupted the call. */
static bool tls_retry(struct wstate *w, int r)
{
    int e = SSL_get_error(w->ssl, r);
    return (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && errno == EINTR;
}

static uint32_t tls_io_error(struct wstate *w, int r, const char *what)
{
    int e = SSL_get_error(w->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return net_error(w, EAGAIN, what);
    char why[256];
    tls_error_text(w->ssl, r, why, sizeof why);
    snprintf(w->text, sizeof w->text, "%s: %s", what, why);
    return WR_CONN_LOST;
}

static uint32_t net_write(struct wstate *w, const char *p, size_t n)
{
    while (n > 0) {
        if (w->ssl) {
            ERR_clear_error();
            errno = 0;
            int r = SSL_write(w->ssl, p, (int)n);
            if (r <= 0 && tls_retry(w, r))
                continue;
            if (r <= 0)
                return tls_io_error(w, r, "sending data");
            p += r;
            n -= (size_t)r;
        } else {
            ssize_t r = write(w->a->data_fd, p, n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return net_error(w, r < 0 ? errno : 0, "sending data");
            p += r;
            n -= (size_t)r;
        }
    }
    return WR_OK;
}

/* A fresh TLS 1.3 ticket ahead of the download's first bytes; the client reads it with them. */
static void send_ticket(struct wstate *w)
{
    if (w->ssl && SSL_version(w->ssl) >= TLS1_3_VERSION) {
        SSL_new_session_ticket(w->ssl);
        SSL_do_handshake(w->ssl);
        BIO_flush(SSL_get_wbio(w->ssl));
    }
}

/* Corked while a TLS download streams, the socket sends only full segments: the data socket
 * has TCP_NODELAY for its last bytes, and without the cork the tail of every buffered write
 * would leave as a short segment. Uncorking sends the tail at once, before the close_notify.
 * sendfile(2) is not corked: there the cork only moved the receiving side's TCP work from the
 * server to the client, at no gain in total (bench/README.md). */
static void cork(const struct wstate *w, int on)
{
    setsockopt(w->a->data_fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

/* sendfile(2) asks for this much per call, as good as the whole file: in 28 alternating pairs of
 * 1 GiB downloads it beat 1 MiB calls in 19, at about 7% less server CPU (bench/README.md). A
 * stalled client still ends the transfer: the socket's SO_SNDTIMEO bounds every wait inside
 * the call, which then returns what it sent. */
#define SENDFILE_CHUNK (1 << 30)

/* The kernel reads the file and sends it, no copy through user space: sendfile(2) in clear
 * text, SSL_sendfile() under kernel TLS (the kernel encrypts). false: this file cannot be sent
 * so (sendfile's EINVAL/ENOSYS), copy it instead from where the file position now is. */
static bool kernel_send(struct wstate *w, int fd, uint32_t *st)
{
    off_t off = w->ssl ? lseek(fd, 0, SEEK_CUR) : 0; /* REST moved it */
    if (off < 0)
        off = 0;
    for (;;) {
        ssize_t r = w->ssl ? (ssize_t)SSL_sendfile(w->ssl, fd, off, block(w, 1 << 20), 0)
                           : sendfile(w->a->data_fd, fd, NULL, block(w, SENDFILE_CHUNK));
        if (r > 0) {
            off += r;
            moved(w, (uint64_t)r);
            continue;
        }
        if (r == 0) {
            *st = WR_OK;
            return true;
        }
        if (errno == EINTR)
            continue;
        if (!w->ssl && (errno == EINVAL || errno == ENOSYS))
            return false;
        if (errno == EIO) {
            snprintf(w->text, sizeof w->text, "reading the file failed: %s", strerror(errno));
            *st = WR_LOCAL_ERROR;
        } else {
            *st = net_error(w, errno, "sending data");
        }
        return true;
    }
}

/* skip: a TYPE A restart. RFC 3659 §5 counts its offset in the converted stream, which no
 * offset in the file stands for without reading up to it (it may even fall between a CR this
 * conversion added and its LF): the file is read from its start and that much of the
 * converted stream is left out. */
static uint32_t send_file(struct wstate *w, int fd, bool ascii, uint64_t skip)
{
    uint32_t st;
    if (!ascii && (!w->ssl || w->ktls_send) && kernel_send(w, fd, &st))
        return st;
    bool prev_cr = false;
    for (;;) {
        ssize_t n = read(fd, w->buf, block(w, BUF_SIZE));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(w->text, sizeof w->text, "reading the file failed: %s", strerror(errno));
            return WR_LOCAL_ERROR;
        }
        if (n == 0 && skip > 0) {
            snprintf(w->text, sizeof w->text,
                     "the restart offset is past the end of the file in ASCII mode");
            return WR_LOCAL_ERROR;
        }
        if (n == 0)
            return WR_OK;
        moved(w, (uint64_t)n);
        if (ascii) {
            size_t c = ascii_to_net(w->buf, (size_t)n, w->conv, &prev_cr);
            size_t drop = skip < c ? (size_t)skip : c;
            skip -= drop;
            st = net_write(w, w->conv + drop, c - drop);
        } else {
            st = net_write(w, w->buf, (size_t)n);
        }
        if (st != WR_OK)
            return st;
    }
}

static uint32_t file_write(struct wstate *w, int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return file_write_error(w, errno);
        if (r == 0)
            return file_write_error(w, ENOSPC);
        p += r;
        n -= (size_t)r;
        moved(w, (uint64_t)r);
    }
    return WR_OK;
}

/* PROT C, TYPE I upload: socket -> pipe -> file inside the kernel. */
static uint32_t splice_file(struct wstate *w, int fd)
{
    const struct worker_args *a = w->a;
    for (;;) {
        ssize_t n = splice(a->data_fd, NULL, a->pipe_w, NULL, block(w, 1 << 20), SPLICE_F_MOVE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return net_error(w, errno, "receiving data");
        if (n == 0)
            return WR_OK;
        while (n > 0) {
            ssize_t m = splice(a->pipe_r, NULL, fd, NULL, (size_t)n, SPLICE_F_MOVE);
            if (m < 0 && errno == EINTR)
                continue;
            if (m <= 0)
                return file_write_error(w, m < 0 ? errno : ENOSPC);
            n -= m;
            moved(w, (uint64_t)m);
        }
    }
}

static uint32_t recv_file(struct wstate *w, int fd, bool ascii)
{
    /* splice(2) cannot write to a file opened O_APPEND (APPE): EINVAL. */
    int fl = fcntl(fd, F_GETFL);
    if (!w->ssl && !ascii && w->a->pipe_r >= 0 && fl >= 0 && !(fl & O_APPEND))
        return splice_file(w, fd);
    bool pending_cr = false;
    const int step = (int)block(w, BUF_SIZE);
    for (;;) {
        ssize_t n;
        if (w->ssl) {
            ERR_clear_error();
            errno = 0;
            int r = SSL_read(w->ssl, w->buf, step);
            if (r <= 0 && tls_retry(w, r))
                continue;
            /* Records already read ahead are decrypted now, so the file gets large writes. */
            while (r > 0 && r < step - 16384 && SSL_has_pending(w->ssl)) {
                int more = SSL_read(w->ssl, w->buf + r, step - r);
                if (more <= 0)
                    break;
                r += more;
            }
            if (r <= 0) {
                int e = SSL_get_error(w->ssl, r);
                if (e == SSL_ERROR_ZERO_RETURN)
                    break; /* close_notify: a complete upload */
                unsigned long code = ERR_peek_last_error();
                if (e == SSL_ERROR_SSL &&
                    ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                    ERR_clear_error();
                    if (w->a->require_close_notify) {
                        snprintf(w->text, sizeof w->text,
                                 "upload ended without TLS close_notify (truncated?)");
                        return WR_NO_CLOSE_NOTIFY;
                    }
                    break;
                }
                return tls_io_error(w, r, "receiving data");
            }
            n = r;
        } else {
            n = read(w->a->data_fd, w->buf, (size_t)step);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return net_error(w, errno, "receiving data");
            if (n == 0)
                break;
        }
        uint32_t st;
        if (ascii) {
            size_t c = ascii_from_net(w->buf, (size_t)n, w->conv, &pending_cr);
            st = file_write(w, fd, w->conv, c);
        } else {
            st = file_write(w, fd, w->buf, (size_t)n);
        }
        if (st != WR_OK)
            return st;
    }
    if (ascii) {
        size_t c = ascii_from_net_flush(w->conv, &pending_cr);
        if (c)
            return file_write(w, fd, w->conv, c);
    }
    return WR_OK;
}

/* A refused or failed upload: read and discard what the client still sends (for a while), so
 * it sees a clean end and reads the 522/552 instead of failing on a connection reset. */
static void drain_upload(struct wstate *w)
{
    int64_t end = now_ms() + w->a->drain_ms;
    while (now_ms() < end) {
        if (w->ssl && w->handshake_done) {
            int r = SSL_read(w->ssl, w->buf, BUF_SIZE);
            if (r <= 0)
                break;
        } else if (!w->ssl) {
            ssize_t r = read(w->a->data_fd, w->buf, BUF_SIZE);
            if (r <= 0 && !(r < 0 && errno == EINTR))
                break;
        } else {
            break;
        }
    }
    if (w->ssl && w->handshake_done)
        SSL_shutdown(w->ssl);
}

void worker_main(const struct worker_args *a)
{
    struct wstate w = {.a = a};
    w.buf = xmalloc(BUF_SIZE);
    w.conv = xmalloc(2 * BUF_SIZE);
    if (a->tls_now)
        handshake(&w);

    if (!w.job.have)
        read_job(&w);
    uint32_t dir = w.job.dir, type = w.job.type, prot = w.job.prot;
    uint32_t test_forbidden = w.job.test_forbidden;
    uint64_t ascii_skip = w.job.ascii_skip;
    int fd = w.job.fd;
    if (!w.job.ok) {
        snprintf(w.text, sizeof w.text, "malformed job");
        finish(&w, WR_LOCAL_ERROR);
    }
    if (prot == 'P' && !a->tls_now)
        handshake(&w);
    if (prot == 'C' && a->tls_now) {
        snprintf(w.text, sizeof w.text,
                 "the data connection was opened under PROT P; open a "
                 "new one after PROT C");
        finish(&w, WR_PROT_CHANGED);
    }
    if (w.tls_failed) {
        if (dir == JOB_RECV)
            drain_upload(&w);
        else if (w.handshake_done)
            SSL_shutdown(w.ssl);
        close(a->data_fd);
        finish(&w, WR_TLS_FAILED);
    }
#ifdef FTPSD_TEST_HOOKS
    if (test_forbidden) /* a call no worker may make: the filter must stop the process here */
        syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
#else
    (void)test_forbidden;
#endif
    bool ascii = type == 'A';
    if (dir == JOB_SEND)
        send_ticket(&w);
    uint32_t st;
    w.started_ms = now_ms();
    if (dir == JOB_SEND) {
        bool corked = w.ssl && !w.ktls_send;
        if (corked)
            cork(&w, 1);
        st = send_file(&w, fd, ascii, ascii ? ascii_skip : 0);
        if (corked)
            cork(&w, 0);
    } else {
        st = recv_file(&w, fd, ascii);
        /* NFS, CIFS and FUSE write back at close and report ENOSPC, EDQUOT or EIO there; the
         * upload must not be answered 226 for data that never reached the file. */
        int c = close(fd);
        fd = -1;
        if (c < 0 && errno != EINTR && st == WR_OK)
            st = file_write_error(&w, errno);
    }
    if (dir == JOB_RECV && (st == WR_NO_SPACE || st == WR_QUOTA || st == WR_LOCAL_ERROR))
        drain_upload(&w);
    else if (st == WR_OK)
        tls_close(&w);
    else if (w.ssl)
        SSL_set_shutdown(w.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    if (fd >= 0)
        close(fd);
    close(a->data_fd);
    finish(&w, st);
}
