/* Transfers as the front runs them: policy checks, the user process opens the file, 150, the
 * worker moves the bytes, the control connection is watched for ABOR and STAT meanwhile. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "front.h"
#include "log.h"
#include "sandbox.h"
#include "uops.h"
#include "worker.h"

static void spawn_worker(struct front *f, int fd)
{
    struct timeval tv = {.tv_sec = (time_t)f->cfg->data_timeout};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* The last record and the close_notify go out at once, not after a delayed ACK. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        log_msg(LOG_ERR, "socketpair: %s", strerror(errno));
        close(fd);
        return;
    }
    bool tls = f->prot_p;
    pid_t front = getpid();
    /* Clear-text uploads move from the socket to the file through a pipe with splice(2), so
     * the bytes never pass through the worker; the pipe is made here, not in the sandbox. */
    int pp[2] = {-1, -1};
    if (!tls && pipe2(pp, O_CLOEXEC) == 0)
        fcntl(pp[1], F_SETPIPE_SZ, 1 << 20);
    if (f->progress)
        *f->progress = 0;
    int64_t started = wall_ms();
    pid_t pid = fork();
    if (pid < 0) {
        log_msg(LOG_ERR, "fork: %s", strerror(errno));
        close(fd);
        close(sv[0]);
        close(sv[1]);
        if (pp[0] >= 0) {
            close(pp[0]);
            close(pp[1]);
        }
        return;
    }
    if (pid == 0) {
        /* The worker keeps the data socket, its channel and its pipe, nothing else. */
        int keep[4] = {fd, sv[1], pp[0], pp[1]};
        close_fds_except(keep, 4);
        /* If the front dies (crash, kill), the worker goes too instead of holding the data
         * connection and the file until its timeout; the check catches a front already gone. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != front)
            _exit(0);
        f->in_worker = true;
        char why[256];
        if (sandbox_rlimits(f->cfg, SB_WORKER, why, sizeof why) < 0 ||
            (f->cfg->landlock && sandbox_landlock(SB_WORKER, -1, why, sizeof why) < 0) ||
            sandbox_seccomp(f->cfg, SB_WORKER, sv[1], why, sizeof why) < 0)
            _exit(3);
        struct worker_args a = {
            .data_fd = fd,
            .chan_fd = sv[1],
            .pipe_r = pp[0],
            .pipe_w = pp[1],
            .ctx = f->ctx,
            .cert_ctx = front_ctx_for(f, f->cert_vhost),
            .sid_ctx = f->sid_ctx,
            .ctl_peer = f->ctl.ssl ? SSL_get0_peer_certificate(f->ctl.ssl) : NULL,
            .tls_now = tls,
            .require_reuse = f->cfg->require_session_reuse && !f->reuse_relaxed,
            .require_close_notify = f->cfg->upload_require_close_notify,
            .ktls = f->cfg->ktls_kernel || f->test_force_ktls,
            .timeout_ms = (int)f->cfg->data_timeout * 1000,
            .close_ms = (int)f->cfg->data_close_timeout * 1000,
            .drain_ms = (int)f->cfg->upload_drain_timeout * 1000,
            .max_rate = f->max_rate,
            .progress = f->progress,
        };
        worker_main(&a);
    }
    close(fd);
    close(sv[1]);
    if (pp[0] >= 0) {
        close(pp[0]);
        close(pp[1]);
    }
    f->dc.worker = pid;
    f->dc.worker_started = started;
    f->dc.worker_fd = sv[0];
    f->dc.worker_tls = tls;
}

void xfer_accept_ready(struct front *f)
{
    int fd = dc_accept(&f->dc, &f->si->peer, &f->proxy);
    if (fd >= 0)
        spawn_worker(f, fd);
}

/* len SIZE_MAX marks an overlong line, answered with 500 in its turn. */
static void queue_line(struct front *f, const char *line, size_t len)
{
    if (f->queued >= FRONT_QUEUE_MAX) {
        /* drain_control stops reading before this; a dropped line beats a write past the end */
        log_msg(LOG_ERR, "command queue full; line dropped");
        return;
    }
    size_t n = len == SIZE_MAX ? 0 : len;
    char *copy = xmalloc(n + 1);
    memcpy(copy, line, n);
    copy[n] = '\0';
    f->queue[f->queued] = copy;
    f->queue_len[f->queued] = len;
    f->queued++;
}

int xfer_handle_async_line(struct front *f, char *line, size_t len, const char *what)
{
    char verb[5] = "";
    size_t vlen = strcspn(line, " ");
    /* "ABOR " is ABOR here as it is between transfers (the argument is empty). */
    size_t tlen = len;
    while (tlen > vlen && line[tlen - 1] == ' ')
        tlen--;
    if (vlen <= 4 && tlen == vlen) {
        memcpy(verb, line, vlen);
        verb[vlen] = '\0';
    }
    if (str_ieq(verb, "ABOR"))
        return 1;
    if (str_ieq(verb, "STAT")) {
        front_reply(f, 213, "Status: %s in progress.", what);
        return 0;
    }
    queue_line(f, line, len);
    return 0;
}

enum wait_result { W_READY, W_ABORT, W_TIMEOUT, W_CTL_GONE };

/* Reads whatever the client sent meanwhile; ABOR stops the wait. A full queue stops the
 * reading, lines already buffered included: the rest waits for the transfer's end. */
static enum wait_result drain_control(struct front *f, const char *what)
{
    while (f->queued < FRONT_QUEUE_MAX) {
        size_t n = 0;
        int r = ctl_next_line(&f->ctl, f->line, f->line_cap, &n);
        if (r == CTL_LINE) {
            if (xfer_handle_async_line(f, f->line, n, what))
                return W_ABORT;
        } else if (r == CTL_TOOLONG) {
            queue_line(f, "", SIZE_MAX);
        } else if (f->ctl.ssl && SSL_pending(f->ctl.ssl) > 0) {
            if (ctl_fill(&f->ctl) < 0)
                return W_CTL_GONE;
        } else {
            return W_READY;
        }
    }
    return W_READY;
}

/* Waits until fd is ready for events, watching the control connection. timeout_ms < 0: no
 * limit. */
static enum wait_result wait_for(struct front *f, int fd, short events, int timeout_ms,
                                 const char *what)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        front_check_term(f);
        enum wait_result w = drain_control(f, what);
        if (w != W_READY)
            return w;
        /* With the queue full, lines stay in the buffer, read only for an ABOR among them; a
         * full buffer leaves only a hang-up to watch for. */
        bool full = f->queued >= FRONT_QUEUE_MAX;
        if (full) {
            while (ctl_has_room(&f->ctl) && f->ctl.ssl && SSL_pending(f->ctl.ssl) > 0)
                if (ctl_fill(&f->ctl) < 0)
                    return W_CTL_GONE;
            if (ctl_take_abor(&f->ctl))
                return W_ABORT;
        }
        short ctl_events = !full ? POLLIN : ctl_has_room(&f->ctl) ? POLLIN | POLLRDHUP : POLLRDHUP;
        struct pollfd p[2] = {{.fd = fd, .events = events},
                              {.fd = f->ctl.fd, .events = ctl_events}};
        nfds_t n = 2;
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return W_TIMEOUT;
            wait = (int)left;
        }
        int r = front_wait(f, p, n, wait);
        if (r < 0 && errno != EINTR)
            return W_CTL_GONE;
        if (r == 0)
            return W_TIMEOUT;
        if (p[0].revents)
            return W_READY;
        if (p[1].revents && ((full && !(p[1].revents & POLLIN)) || ctl_fill(&f->ctl) < 0))
            return W_CTL_GONE;
    }
}

/* Active mode (PORT/EPRT): the server connects to the client, then runs TLS as the server. */
static enum wait_result active_connect(struct front *f, const char *what, char *why, size_t whylen)
{
    int fd = dc_connect_start(&f->dc, &f->si->local, why, whylen);
    if (fd < 0)
        return W_TIMEOUT;
    enum wait_result w = wait_for(f, fd, POLLOUT, (int)f->cfg->data_timeout * 1000, what);
    int err = 0;
    socklen_t len = sizeof err;
    if (w == W_READY && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)) {
        snprintf(why, whylen, "connect to port %u: %s", sockaddr_port(&f->dc.target),
                 strerror(err));
        w = W_TIMEOUT;
    } else if (w == W_TIMEOUT) {
        snprintf(why, whylen, "no connection within %u s", f->cfg->data_timeout);
    }
    if (w != W_READY) {
        close(fd);
        return w;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    spawn_worker(f, fd);
    return f->dc.worker ? W_READY : W_TIMEOUT;
}

static bool control_closed(struct front *f)
{
    char c;
    ssize_t r = recv(f->ctl.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void upload_done(struct front *f, bool upload, bool ok, struct ureply *commit)
{
    ureply_init(commit);
    if (!upload)
        return;
    front_user_request(f, ok ? UOP_COMMIT : UOP_ABORT, 0, 0, NULL, NULL, commit);
    f->pending_temp[0] = f->pending_reserved[0] = '\0';
}

/* What a failed upload left on disk, as "; <the user process's words>" for the reply. */
static void outcome(const struct ureply *fin, char *out, size_t len)
{
    const char *t = fin->text.data;
    if (fin->code == 226 && t && *t)
        snprintf(out, len, "; %s", t);
    else
        out[0] = '\0';
}

static const char *kind_verb(enum xfer_kind k)
{
    static const char *const v[] = {"RETR", "STOR", "APPE", "LIST", "NLST", "MLSD", "STOU"};
    return v[k];
}

/* A transfer's record, whatever its end: the log line, and the xferlog entry for files. */
struct record {
    const char *logwhat, *name;
    bool upload, listing;
    int64_t started;
};

/* The transfer a worker is carrying, until it is recorded. */
static const struct record *under_way;

static void record(struct front *f, const struct record *rc, uint64_t bytes, const char *tlsinfo,
                   int code, const char *text)
{
    under_way = NULL;
    int64_t ms = now_ms() - rc->started;
    if (f->cfg->xferlog_file[0] && !rc->listing) {
        struct msg *m = f->m;
        msg_init(m, MSG_XFERLOG);
        msg_put_u64(m, bytes);
        msg_put_u32(m, (uint32_t)ms);
        msg_put_u32(m, rc->upload ? 'i' : 'o');
        msg_put_u32(m, f->type == 'A' ? 'a' : 'b');
        msg_put_u32(m, code == 226);
        msg_put_str(m, rc->name);
        msg_send(f->mon_fd, m);
    }
    log_msg(LOG_INFO, "%s bytes=%llu secs=%.3f prot=%s%s%s reply=%d%s%s", rc->logwhat,
            (unsigned long long)bytes, (double)ms / 1000.0, f->prot_p ? "P" : "C",
            tlsinfo[0] ? " tls=" : "", tlsinfo, code, text[0] ? " reason=" : "", text);
}

/* The reply to a transfer the worker reported as failed. */
static int status_code(uint32_t status)
{
    switch (status) {
    case WR_TLS_FAILED:
        return 522;
    case WR_LOCAL_ERROR:
        return 451;
    case WR_NO_SPACE:
        return 452;
    case WR_QUOTA:
        return 552;
    case WR_PROT_CHANGED:
        return 425;
    default:
        return 426;
    }
}

/* What a worker that gave no result had moved. */
static uint64_t progress(const struct front *f)
{
    return f->progress ? __atomic_load_n(f->progress, __ATOMIC_RELAXED) : 0;
}

void xfer_interrupted(struct front *f, int code, const char *why)
{
    if (under_way)
        record(f, under_way, progress(f), "", code, why);
}

void xfer_run(struct front *f, enum xfer_kind kind, const char *arg)
{
    const struct config *cfg = f->cfg;
    bool upload = kind == XK_STOR || kind == XK_APPE || kind == XK_STOU;
    bool listing = kind == XK_LIST || kind == XK_NLST || kind == XK_MLSD;
    uint64_t rest = f->rest;
    f->rest = 0;

    /* Anonymous sessions need protected data only where they need TLS at all. */
    bool need_p = f->anon ? cfg->anon_require_tls : cfg->require_prot_p;
    if (need_p && !f->prot_p) {
        dc_reset(&f->dc);
        front_reply(f, 522, "Data connections must be protected: send PBSZ 0 and PROT P first.");
        return;
    }
    if (!dc_active(&f->dc)) {
        front_reply(f, 425, "Use PASV or EPSV first.");
        return;
    }

    /* A TYPE A restart counts the converted stream (RFC 3659 §5). A download's worker finds
     * that point by converting from the start. An upload's cannot be found: a LF in the file
     * may have come as CR LF or as a bare LF. */
    bool ascii = f->type == 'A' && !listing;
    /* RFC 3659 §5.3: APPE after REST must act as STOR does. */
    if (ascii && rest > 0 && (kind == XK_STOR || kind == XK_APPE)) {
        dc_reset(&f->dc);
        front_reply(f, 554,
                    "Restarting an upload is not possible in ASCII mode (TYPE A): the "
                    "file does not show where a restart offset falls; use TYPE I.");
        return;
    }
    uint64_t ascii_skip = ascii ? rest : 0;
    if (ascii)
        rest = 0;
    static const uint32_t ops[] = {UOP_OPEN_READ, UOP_OPEN_WRITE, UOP_OPEN_WRITE, UOP_LIST,
                                   UOP_NLST,      UOP_MLSD,       UOP_OPEN_WRITE};
    uint32_t flags = kind == XK_APPE ? UW_APPEND : kind == XK_STOU ? UW_UNIQUE : 0;
    struct ureply open;
    front_user_request(f, ops[kind], flags, kind == XK_STOU ? 0 : rest, arg, NULL, &open);
    if (open.code != 150 || open.fd < 0) {
        dc_reset(&f->dc);
        front_relay_reply(f, &open);
        ureply_free(&open);
        return;
    }
    char what[VPATH_MAX + 16], quoted[LOG_QUOTED_MAX + 16], logwhat[LOG_QUOTED_MAX + 32];
    snprintf(what, sizeof what, "%s %s", kind_verb(kind), open.name);
    log_quote(quoted, sizeof quoted, open.name);
    snprintf(logwhat, sizeof logwhat, "%s %s", kind_verb(kind), quoted);
    if (upload) {
        snprintf(f->pending_temp, sizeof f->pending_temp, "%s",
                 open.text.data ? open.text.data : "");
        snprintf(f->pending_reserved, sizeof f->pending_reserved, "%s",
                 kind == XK_STOU ? open.name : "");
    }
    if (kind == XK_RETR)
        front_reply(f, 150, "Opening %s mode data connection for %s (%llu bytes).",
                    f->type == 'A' ? "ASCII" : "BINARY", open.name, (unsigned long long)open.value);
    else if (kind == XK_STOU)
        /* RFC 1123 §4.1.2.9: the pathname of the file; a name asked for in another directory
         * gets the full path, as the last component alone would name no file from the cwd. */
        front_reply(f, 150, "FILE: %s",
                    strchr(arg, '/') || !strrchr(open.name, '/') ? open.name
                                                                 : strrchr(open.name, '/') + 1);
    else if (upload)
        front_reply(f, 150, "Ok to send data.");
    else
        front_reply(f, 150, "Here comes the directory listing.");

    int64_t started = now_ms();
    const struct record rc = {.logwhat = logwhat,
                              .name = open.name,
                              .upload = upload,
                              .listing = listing,
                              .started = started};
    enum wait_result w = W_READY;
    struct ureply fin;
    char why[256] = "";
    if (f->dc.active && !f->dc.worker)
        w = active_connect(f, what, why, sizeof why);
    /* One deadline for the whole wait: connections from other addresses, refused one by one,
     * must not restart it. */
    int64_t deadline = now_ms() + (int64_t)cfg->data_timeout * 1000;
    while (!f->dc.worker && w == W_READY) {
        int64_t left = deadline - now_ms();
        w = left <= 0 ? W_TIMEOUT : wait_for(f, f->dc.listen_fd, POLLIN, (int)left, what);
        if (w == W_READY)
            xfer_accept_ready(f);
    }
    if (w != W_READY) {
        dc_reset(&f->dc);
        upload_done(f, upload, false, &fin);
        char tail[160];
        outcome(&fin, tail, sizeof tail);
        ureply_free(&fin);
        if (w == W_CTL_GONE) {
            record(f, &rc, 0, "", 426, "client closed the control connection");
            front_exit(f, 0);
        }
        ureply_free(&open);
        if (w == W_ABORT) {
            front_reply(f, 426, "Transfer aborted%s.", tail);
            front_reply(f, 226, "ABOR successful.");
        } else if (why[0]) {
            front_reply(f, 425, "Cannot open the data connection: %s%s.", why, tail);
        } else {
            front_reply(f, 425,
                        "Failed to establish the data connection (no connection within "
                        "%u s)%s.",
                        cfg->data_timeout, tail);
        }
        return;
    }

    under_way = &rc;
    struct msg *m = f->m;
    msg_init(m, MSG_JOB);
    msg_put_u32(m, upload ? JOB_RECV : JOB_SEND);
    msg_put_u32(m, (listing || f->type == 'I') ? 'I' : 'A');
    msg_put_u32(m, f->prot_p ? 'P' : 'C');
#ifdef FTPSD_TEST_HOOKS
    msg_put_u32(m, f->test_bad_worker);
    f->test_bad_worker = false;
#else
    msg_put_u32(m, 0);
#endif
    msg_put_u64(m, ascii_skip);
    m->fd = open.fd;
    int sent = msg_send(f->dc.worker_fd, m);
    m->fd = -1;
    close(open.fd);
    open.fd = -1;

    uint32_t status = WR_LOCAL_ERROR;
    uint64_t bytes = 0;
    char text[512] = "", tlsinfo[128] = "";
    bool aborted = false, got = false;
    if (sent == 0) {
        w = wait_for(f, f->dc.worker_fd, POLLIN, -1, what);
        if (w == W_READY && msg_recv(f->dc.worker_fd, m) == 0 && m->type == MSG_RESULT) {
            status = msg_get_u32(m);
            bytes = msg_get_u64(m);
            msg_get_str(m, text, sizeof text);
            msg_get_str(m, tlsinfo, sizeof tlsinfo);
            got = msg_ok_end(m);
        }
        aborted = w == W_ABORT;
    }
    pid_t wpid = f->dc.worker;
    int64_t wstarted = f->dc.worker_started;
    if (!got)
        kill(wpid, SIGKILL);
    int st = 0;
    while (waitpid(wpid, &st, 0) < 0 && errno == EINTR)
        ;
    f->dc.worker = 0;
    dc_reset(&f->dc);
    if (!got)
        bytes = progress(f);
    if (w == W_CTL_GONE) {
        upload_done(f, upload, false, &fin);
        /* No reply can reach the client now; the record says what moved. */
        record(f, &rc, bytes, tlsinfo, 426, "client closed the control connection");
        front_exit(f, 0);
    }
    if (got && status == WR_SANDBOX) {
        /* seccomp = trap: the worker named the refused call before it died. */
        char name[64];
        sandbox_syscall_name((int)bytes, name, sizeof name);
        log_msg(LOG_ERR, "%s: data worker killed by seccomp: forbidden system call %llu (%s)",
                logwhat, (unsigned long long)bytes, name);
        snprintf(text, sizeof text,
                 "the data transfer process was stopped by the sandbox "
                 "(forbidden system call %s)",
                 name);
        bytes = progress(f);
        got = false;
    } else if (!got && !aborted) {
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) {
            snprintf(text, sizeof text,
                     "the data transfer process was stopped by the sandbox "
                     "(forbidden system call)");
            log_msg(LOG_ERR, "%s: data worker killed by seccomp (SIGSYS)", logwhat);
            msg_init(m, MSG_WORKER_KILLED);
            msg_put_u32(m, (uint32_t)wpid);
            msg_put_u64(m, (uint64_t)wstarted);
            msg_send(f->mon_fd, m);
        } else if (WIFSIGNALED(st)) {
            snprintf(text, sizeof text, "data transfer process died (signal %d)", WTERMSIG(st));
            log_msg(LOG_ERR, "%s: %s", logwhat, text);
        } else {
            snprintf(text, sizeof text, "data transfer process ended unexpectedly");
            log_msg(LOG_ERR, "%s: %s", logwhat, text);
        }
    }
    bool ok = got && status == WR_OK;
    if (ok && upload && control_closed(f)) {
        ok = false;
        status = WR_CONN_LOST;
        snprintf(text, sizeof text, "client disconnected");
    }
    upload_done(f, upload, ok, &fin);
    char tail[160] = "";
    if (!ok)
        outcome(&fin, tail, sizeof tail);
    /* A fresh TLS 1.3 ticket travels with the final reply, for the next data connection. */
    if (f->ctl.ssl && SSL_version(f->ctl.ssl) >= TLS1_3_VERSION)
        SSL_new_session_ticket(f->ctl.ssl);
    int code = aborted                           ? 426
               : ok && upload && fin.code != 226 ? fin.code
               : ok                              ? 226
               : !got                            ? 451
                                                 : status_code(status);
    if (aborted && !text[0])
        snprintf(text, sizeof text, "aborted by ABOR");
    /* Recorded before the reply, which ends the front if the client has gone meanwhile. */
    record(f, &rc, bytes, tlsinfo, code, text);
    if (aborted) {
        front_reply(f, 426, "Transfer aborted%s.", tail);
        front_reply(f, 226, "ABOR successful.");
    } else if (ok && upload && fin.code != 226) {
        front_relay_reply(f, &fin);
    } else if (ok) {
        front_reply(f, 226, "%s", listing ? "Directory send OK." : "Transfer complete.");
    } else if (code == 522) {
        front_reply(f, 522, "%s%s", text, tail);
    } else if (code == 426) {
        front_reply(f, 426, "Connection closed; transfer aborted (%s)%s.", text, tail);
    } else {
        front_reply(f, code, "Transfer failed: %s%s.", text, tail);
    }
    ureply_free(&fin);
    ureply_free(&open);
}
