#include "front.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "banner.h"
#include "drop.h"
#include "listing.h"
#include "log.h"
#include "netmatch.h"
#include "proxy.h"
#include "reply.h"
#include "sandbox.h"
#include "uops.h"

void front_exit(struct front *f, int status)
{
    dc_reset(&f->dc);
    /* Our close_notify is a reply of sorts: as long to be read, at most. */
    ctl_tls_close(&f->ctl, (int)f->cfg->reply_timeout * 1000);
    shutdown(f->ctl.fd, SHUT_RDWR);
    close(f->ctl.fd);
    exit(status);
}

static void send_buf(struct front *f, const struct sbuf *b)
{
    if (ctl_write(&f->ctl, b->data, b->len, (int)f->cfg->reply_timeout * 1000) < 0) {
        log_msg(LOG_INFO, "control connection lost while writing a reply");
        dc_reset(&f->dc);
        exit(0);
    }
}

void front_reply(struct front *f, int code, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct sbuf b;
    sbuf_init(&b);
    reply_one(&b, code, text);
    send_buf(f, &b);
    sbuf_free(&b);
}

void front_reply_multi(struct front *f, int code, const char *text)
{
    struct sbuf b;
    sbuf_init(&b);
    reply_multi(&b, code, text);
    send_buf(f, &b);
    sbuf_free(&b);
}

void front_reply_dashed(struct front *f, int code, const char *text)
{
    struct sbuf b;
    sbuf_init(&b);
    reply_dashed(&b, code, text);
    send_buf(f, &b);
    sbuf_free(&b);
}

void ureply_init(struct ureply *r)
{
    r->code = 0;
    sbuf_init(&r->text);
    r->value = 0;
    r->name[0] = '\0';
    r->fd = -1;
}

void ureply_free(struct ureply *r)
{
    sbuf_free(&r->text);
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}

void front_user_request(struct front *f, uint32_t op, uint32_t flags, uint64_t offset,
                        const char *arg, const char *arg2, struct ureply *out)
{
    struct msg *m = f->m;
    /* The user process takes paths shorter than VPATH_MAX (a longer one would be a malformed
     * message to it), and max_line_length may allow longer arguments: the client's error, 553
     * for a name to create (RFC 959's "file name not allowed"), 550 for one that names nothing. */
    if ((arg && strlen(arg) >= VPATH_MAX) || (arg2 && strlen(arg2) >= VPATH_MAX)) {
        ureply_init(out);
        out->code = op == UOP_OPEN_WRITE || op == UOP_RNTO ? 553 : 550;
        sbuf_adds(&out->text, "File name too long.");
        return;
    }
    msg_init(m, MSG_REQ);
    msg_put_u32(m, op);
    msg_put_u32(m, flags | (f->type == 'A' ? UF_ASCII : 0));
    msg_put_u32(m, f->mlst_facts);
    msg_put_u64(m, offset);
    msg_put_str(m, arg ? arg : "");
    msg_put_str(m, arg2 ? arg2 : "");
    ureply_init(out);
    if (msg_send(f->user_fd, m) < 0 || msg_recv(f->user_fd, m) < 0 || m->type != MSG_REPLY)
        goto broken;
    out->code = (int)msg_get_u32(m);
    char *text = xmalloc(MSG_MAX);
    msg_get_str(m, text, MSG_MAX);
    sbuf_adds(&out->text, text);
    free(text);
    out->value = msg_get_u64(m);
    msg_get_str(m, out->name, sizeof out->name);
    out->fd = m->fd;
    m->fd = -1;
    if (!msg_ok_end(m) || out->code < 100 || out->code > 599)
        goto broken;
    return;
broken:
    log_msg(LOG_ERR, "the user process stopped answering; ending the session");
    if (f->pending_temp[0]) {
        msg_init(m, MSG_CLEANUP);
        msg_put_str(m, f->pending_temp);
        msg_put_str(m, f->pending_reserved);
        msg_send(f->mon_fd, m);
    }
    front_reply(f, 421, "Service not available: internal error, closing connection.");
    front_exit(f, 1);
}

void front_relay_reply(struct front *f, const struct ureply *r)
{
    front_reply_multi(f, r->code, r->text.data ? r->text.data : "");
}

void front_set_prot_log(struct front *f)
{
    char d[128] = "";
    if (f->ctl.ssl)
        tls_describe(f->ctl.ssl, d, sizeof d);
    log_set_tls(d, f->prot_p ? 'P' : 'C');
}

SSL_CTX *front_ctx_for(const struct front *f, unsigned v)
{
    if (v > 0 && v <= f->cfg->nvhosts && f->vctx && f->vctx[v - 1])
        return f->vctx[v - 1];
    return f->ctx;
}

/* TLS SNI: the certificate of the [host] section named, unless HOST already chose one. Data
 * connections keep the control connection's certificate whatever they send (RFC 4217 §15.1.1). */
static int sni_callback(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    struct front *f = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (f->in_worker || !name)
        return SSL_TLSEXT_ERR_OK;
    snprintf(f->sni, sizeof f->sni, "%s", name);
    if (f->host_given)
        return SSL_TLSEXT_ERR_OK;
    const struct vhost *v = config_find_vhost(f->cfg, name);
    unsigned idx = v ? (unsigned)(v - f->cfg->vhosts) + 1 : 0;
    f->vhost = f->cert_vhost = idx;
    SSL_CTX *c = front_ctx_for(f, idx);
    if (c != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, c);
    return SSL_TLSEXT_ERR_OK;
}

SSL *front_new_ctl_ssl(struct front *f)
{
    SSL *s = SSL_new(f->ctx);
    if (!s)
        return NULL;
    SSL_set_session_id_context(s, f->sid_ctx, sizeof f->sid_ctx);
    /* Sessions and tickets stay with the main context even when a vhost's certificate is used. */
    SSL_CTX *c = front_ctx_for(f, f->vhost);
    if (f->host_given && c != f->ctx)
        SSL_set_SSL_CTX(s, c);
    f->cert_vhost = f->host_given ? f->vhost : 0;
    return s;
}

static void setup_tls_and_drop(struct front *f)
{
    const struct config *cfg = f->cfg;
    struct tls_err err;
    f->ctx = tls_server_ctx(cfg, cfg->tls_cert_file, cfg->tls_key_file, &err);
    if (!f->ctx) {
        snprintf(f->ctx_err, sizeof f->ctx_err, "%s", err.text);
        log_msg(LOG_ERR, "TLS is not available: %s", err.text);
    } else {
        SSL_CTX_set_tlsext_servername_callback(f->ctx, sni_callback);
        SSL_CTX_set_tlsext_servername_arg(f->ctx, f);
        /* A response file a failed refresh left empty or broken costs the staple, not TLS
         * (ftpsd -t reports it as an error). */
        if (cfg->tls_ocsp_file[0] && tls_staple_ocsp(f->ctx, cfg->tls_ocsp_file, &err))
            log_msg(LOG_WARNING, "no OCSP stapling: %s", err.text);
    }
    f->vctx = xcalloc(cfg->nvhosts + 1, sizeof *f->vctx);
    for (unsigned i = 0; f->ctx && i < cfg->nvhosts; i++) {
        const struct vhost *v = &cfg->vhosts[i];
        if (!v->tls_cert_file)
            continue;
        f->vctx[i] = tls_server_ctx(cfg, v->tls_cert_file, v->tls_key_file, &err);
        if (!f->vctx[i])
            log_msg(LOG_ERR, "[host %s]: TLS certificate not usable, the main one is used: %s",
                    v->name, err.text);
    }
    /* Binds data connections to this control connection (see tls_check_data_session). */
    random_bytes(f->sid_ctx, sizeof f->sid_ctx);
    struct identity id = {.uid = f->si->nopriv_uid, .gid = f->si->nopriv_gid, .ngroups = 0};
    char why[512];
    int abi = 0;
    if (drop_privileges(&id, cfg->rootless ? NULL : cfg->empty_dir, why, sizeof why) < 0 ||
        sandbox_rlimits(cfg, SB_FRONT, why, sizeof why) < 0 ||
        (cfg->landlock && (abi = sandbox_landlock(SB_FRONT, -1, why, sizeof why)) < 0) ||
        sandbox_seccomp(cfg, SB_FRONT, -1, why, sizeof why) < 0) {
        log_msg(LOG_ERR, "front: %s", why);
        if (!cfg->implicit_tls)
            front_reply(f, 421, "Service not available (server configuration error).");
        exit(1);
    }
    f->landlock_abi = abi;
    getrlimit(RLIMIT_FSIZE, &f->base_fsize);
    /* Writes past a file size limit (max_file_size, or the user's from PAM) fail with EFBIG,
     * which the workers report (552), instead of killing. */
    signal(SIGXFSZ, SIG_IGN);
}

static void start_control(struct front *f)
{
    int one = 1;
    setsockopt(f->ctl.fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof one);
    setsockopt(f->ctl.fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(f->ctl.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(f->ctl.fd, F_SETFL, fcntl(f->ctl.fd, F_GETFL) | O_NONBLOCK);
    if (f->cfg->implicit_tls) {
        char err[256];
        if (!f->ctx) {
            front_exit(f, 1);
        }
        SSL *ssl = front_new_ctl_ssl(f);
        if (!ssl || ctl_starttls(&f->ctl, ssl, (int)f->cfg->login_timeout * 1000, false, err,
                                 sizeof err) < 0) {
            log_msg(LOG_INFO, "implicit TLS handshake failed: %s", err);
            exit(0);
        }
        f->tls = true;
        /* Implicit FTPS protects data by default (PBSZ 0 / PROT P implied). */
        f->pbsz = true;
        f->prot_p = true;
        char d[128];
        tls_describe(ssl, d, sizeof d);
        log_set_tls(d, 'P');
        log_msg(LOG_INFO, "implicit TLS established: %s", d);
        malloc_trim(0);
    }
    front_greet(f, f->vhost);
}

/* Read while the front can still open them (before its chroot); one that cannot be read is
 * logged, and its greeting is the banner line. */
static void load_banners(struct front *f)
{
    const struct config *cfg = f->cfg;
    f->banners = xcalloc(cfg->nvhosts + 1, sizeof *f->banners);
    for (unsigned v = 0; v <= cfg->nvhosts; v++) {
        const char *path = config_banner_file(cfg, v);
        char why[256];
        if (path[0] && !(f->banners[v] = banner_load(path, why, sizeof why)))
            log_msg(LOG_ERR, "banner_file %s: %s; the greeting is the banner line", path, why);
    }
}

void front_greet(struct front *f, unsigned v)
{
    if (f->banners && v <= f->cfg->nvhosts && f->banners[v])
        front_reply_multi(f, 220, f->banners[v]);
    else
        front_reply(f, 220, "%s", config_banner(f->cfg, v));
}

static volatile sig_atomic_t term_requested;
static const struct front *term_front;

static void on_term(int sig)
{
    (void)sig;
    /* A data worker is a copy of the front: it just ends (its transfer fails). */
    if (term_front && term_front->in_worker)
        _exit(1);
    term_requested = 1;
}

void front_user_fsize(struct front *f, uint64_t fsize)
{
    struct rlimit r = f->base_fsize;
    if (fsize < (uint64_t)r.rlim_cur)
        r.rlim_cur = (rlim_t)fsize;
    setrlimit(RLIMIT_FSIZE, &r);
}

void front_check_term(struct front *f)
{
    if (!term_requested)
        return;
    bool orphan = getppid() != f->mon_pid;
    log_msg(orphan ? LOG_WARNING : LOG_INFO, "%s; ending the session",
            orphan ? "the monitor process is gone" : "shutting down");
    /* Recorded first: the reply may find the client gone, which ends the front. */
    xfer_interrupted(f, 421,
                     orphan ? "the monitor process is gone" : "the server is shutting down");
    /* RFC 959 §4.2: 421 is the reply for a service that knows it must shut down. */
    front_reply(f, 421, "Service not available: the server is shutting down.");
    front_exit(f, 1);
}

/* poll() that a SIGTERM always ends: the signal stays blocked from the last check until ppoll()
 * unblocks it atomically, where with poll() one arriving just after the check waited for the
 * next wake-up (up to idle_timeout). */
int front_wait(struct front *f, struct pollfd *p, nfds_t n, int timeout_ms)
{
    sigset_t term, old;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, &old);
    front_check_term(f);
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L};
    int r = ppoll(p, n, timeout_ms < 0 ? NULL : &ts, &old);
    int saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    front_check_term(f);
    errno = saved;
    return r;
}

static int front_poll(struct front *f, int timeout_ms)
{
    struct pollfd p[3];
    int n = 0, listen_i = -1, user_i = -1;
    p[n++] = (struct pollfd){.fd = f->ctl.fd, .events = POLLIN};
    if (f->dc.listen_fd >= 0) {
        listen_i = n;
        p[n++] = (struct pollfd){.fd = f->dc.listen_fd, .events = POLLIN};
    }
    if (f->user_fd >= 0) {
        /* The user process never speaks unasked: anything here means it is gone. */
        user_i = n;
        p[n++] = (struct pollfd){.fd = f->user_fd, .events = POLLIN};
    }
    int r = front_wait(f, p, (nfds_t)n, timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -1;
    if (listen_i >= 0 && (p[listen_i].revents & POLLIN))
        xfer_accept_ready(f);
    if (user_i >= 0 && p[user_i].revents) {
        log_msg(LOG_ERR, "the user process ended unexpectedly; ending the session");
        front_reply(f, 421, "Service not available: internal error, closing connection.");
        front_exit(f, 1);
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (ctl_fill(&f->ctl) < 0)
            return -1;
    }
    return r;
}

static void run_queue(struct front *f)
{
    while (f->queued > 0) {
        char *l = f->queue[0];
        size_t n = f->queue_len[0];
        memmove(f->queue, f->queue + 1, (size_t)(f->queued - 1) * sizeof f->queue[0]);
        memmove(f->queue_len, f->queue_len + 1, (size_t)(f->queued - 1) * sizeof f->queue_len[0]);
        f->queued--;
        if (n == SIZE_MAX) {
            front_reply(f, 500, "Command line too long (at most %u bytes).",
                        f->cfg->max_line_length);
        } else {
            front_dispatch(f, l, n);
            explicit_bzero(l, n);
        }
        free(l);
        f->last_command = now_ms();
    }
}

static void command_loop(struct front *f)
{
    for (;;) {
        run_queue(f);
        size_t n = 0;
        int r = ctl_next_line(&f->ctl, f->line, f->line_cap, &n);
        if (r == CTL_LINE) {
            f->last_command = now_ms();
            front_dispatch(f, f->line, n);
            explicit_bzero(f->line, n);
            /* A transfer may have taken longer than the idle timeout: idle starts now. */
            f->last_command = now_ms();
            continue;
        }
        if (r == CTL_TOOLONG) {
            f->last_command = now_ms();
            front_reply(f, 500, "Command line too long (at most %u bytes).",
                        f->cfg->max_line_length);
            continue;
        }
        if (f->ctl.ssl && SSL_pending(f->ctl.ssl) > 0) {
            if (ctl_fill(&f->ctl) < 0)
                break;
            continue;
        }
        int64_t now = now_ms();
        int64_t deadline = f->last_command + (int64_t)f->cfg->idle_timeout * 1000;
        bool login_limit = !f->logged_in && f->login_deadline < deadline;
        if (login_limit)
            deadline = f->login_deadline;
        if (now >= deadline) {
            log_msg(LOG_INFO, "%s timeout; closing", login_limit ? "login" : "idle");
            front_reply(f, 421, "%s",
                        login_limit ? "Login timeout: closing control connection."
                                    : "Idle timeout: closing control connection.");
            front_exit(f, 0);
        }
        if (front_poll(f, (int)(deadline - now)) < 0)
            break;
    }
    log_msg(LOG_INFO, "client closed the control connection");
    front_exit(f, 0);
}

/* Behind a load balancer: the PROXY header names the real client, used from here on for logs,
 * PAM, the data-connection address check and active mode. Only trusted balancers may send one. */
static void read_proxy_header(struct front *f)
{
    const struct config *cfg = f->cfg;
    struct session_info *si = &f->si_own;
    char why[256];
    bool ok = false;
    for (int i = 0; i < f->proxy.ntrusted && !ok; i++)
        ok = cidr_match(&f->proxy_trusted[i], &si->peer);
    if (!ok) {
        log_msg(LOG_WARNING, "connection from %s, which is not in proxy_trusted: closed",
                si->peer_str);
        exit(0);
    }
    struct sockaddr_storage src;
    enum proxy_result r = proxy_read(f->ctl.fd, cfg->proxy_protocol, (int)cfg->proxy_timeout * 1000,
                                     &src, why, sizeof why);
    if (r != PROXY_OK) {
        log_msg(LOG_WARNING, "PROXY header from %s refused: %s", si->peer_str, why);
        exit(0);
    }
    if (src.ss_family == AF_UNSPEC) {
        /* LOCAL or UNKNOWN: the balancer's own connection (a health check) */
        log_msg(LOG_INFO, "connect to %s port %u from the proxy itself", si->local_str,
                sockaddr_port(&si->local));
        return;
    }
    char via[64];
    snprintf(via, sizeof via, "%s", si->peer_str);
    si->peer = src;
    sockaddr_to_str(&src, si->peer_str, sizeof si->peer_str);
    log_set_session(si->sid, si->peer_str);
    log_msg(LOG_INFO, "connect to %s port %u via proxy %s", si->local_str,
            sockaddr_port(&si->local), via);
    struct msg *m = f->m;
    msg_init(m, MSG_PEER);
    msg_put_u32(m, (uint32_t)src.ss_family);
    if (src.ss_family == AF_INET) {
        msg_put_blob(m, &((struct sockaddr_in *)&src)->sin_addr, 4);
        msg_put_u32(m, ntohs(((struct sockaddr_in *)&src)->sin_port));
    } else {
        msg_put_blob(m, &((struct sockaddr_in6 *)&src)->sin6_addr, 16);
        msg_put_u32(m, ntohs(((struct sockaddr_in6 *)&src)->sin6_port));
    }
    if (msg_send(f->mon_fd, m) < 0)
        exit(1);
}

/* pasv_address rules; host names are resolved now, before chroot takes the resolver away. */
static void resolve_pasv_addresses(struct front *f)
{
    char bad[256];
    f->npasv =
        pasv_rules_parse(f->cfg->pasv_address, f->pasv_rules, PASV_RULES_MAX, bad, sizeof bad);
    for (int i = 0; i < f->npasv; i++) {
        const char *name = f->pasv_rules[i].address;
        if (inet_pton(AF_INET, name, &f->pasv_addr[i]) == 1) {
            f->pasv_ok[i] = true;
            continue;
        }
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
        int rc = getaddrinfo(name, NULL, &hints, &res);
        if (rc == 0 && res) {
            f->pasv_addr[i] = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
            f->pasv_ok[i] = true;
        } else {
            log_msg(LOG_ERR, "pasv_address %s: %s; the local address is announced instead", name,
                    gai_strerror(rc));
        }
        if (res)
            freeaddrinfo(res);
    }
}

bool front_pasv_address(const struct front *f, struct in_addr *out)
{
    /* Networks first, in order; then the entry without a network. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < f->npasv; i++) {
            const struct pasv_rule *r = &f->pasv_rules[i];
            if (!f->pasv_ok[i] || (pass == 0 ? r->any : !r->any))
                continue;
            if (r->any || cidr_match(&r->net, &f->si->peer)) {
                *out = f->pasv_addr[i];
                return true;
            }
        }
    return false;
}

void front_main(const struct session_info *si, int mon_fd)
{
    struct front *f = xcalloc(1, sizeof *f);
    f->si_own = *si;
    f->si = &f->si_own;
    f->cfg = si->cfg;
    f->mon_fd = mon_fd;
    f->mon_pid = getppid();
    void *shared =
        mmap(NULL, sizeof *f->progress, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    f->progress = shared == MAP_FAILED ? NULL : shared;
    f->user_fd = -1;
    f->type = 'A';
    f->mlst_facts = FACT_DEFAULT;
    dc_init(&f->dc);
    f->m = msg_new();
    f->line_cap = si->cfg->max_line_length + 1;
    f->line = xmalloc(f->line_cap);
    ctl_init(&f->ctl, 0, si->cfg->max_line_length);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGURG, SIG_IGN);
    /* No SA_RESTART: a wait ends with EINTR and the front answers 421. */
    term_front = f;
    struct sigaction term = {.sa_handler = on_term};
    sigaction(SIGTERM, &term, NULL);
    resolve_pasv_addresses(f);
    load_banners(f);
    setup_tls_and_drop(f);
    if (f->cfg->proxy_protocol != PROXY_OFF) {
        char bad[64];
        int n = cidr_parse_list(f->cfg->proxy_trusted, f->proxy_trusted, 64, bad, sizeof bad);
        f->proxy = (struct proxy_policy){.mode = f->cfg->proxy_protocol,
                                         .trusted = f->proxy_trusted,
                                         .ntrusted = n < 0 ? 0 : n,
                                         .timeout_ms = (int)f->cfg->proxy_timeout * 1000};
        read_proxy_header(f);
    }
    /* Logged only now: behind a balancer, this is the first line that knows the client. */
    log_msg(LOG_DEBUG, "front sandboxed: seccomp %s, landlock ABI %d",
            f->cfg->seccomp == SECCOMP_OFF ? "off" : "on", f->landlock_abi);
    f->last_command = now_ms();
    f->login_deadline = f->last_command + (int64_t)f->cfg->login_timeout * 1000;
    start_control(f);
    command_loop(f);
    front_exit(f, 0);
}
