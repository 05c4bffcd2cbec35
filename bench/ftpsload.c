/* ftpsload: a small compiled FTPS client for the benchmarks (bench/README.md), so that the
 * client is never what limits a server. OpenSSL, blocking sockets, no certificate checks (the
 * bench talks to its own servers on loopback; verifying would only add client CPU).
 *
 *   ftpsload sessions HOST PORT USER COUNT CONC   COUNT sessions in CONC forked clients, each
 *                                                 connect, AUTH TLS, USER/PASS, PBSZ 0, PROT P,
 *                                                 EPSV, LIST (data TLS resumes the control
 *                                                 session), QUIT; prints one JSON line
 *   ftpsload idle HOST PORT USER COUNT            COUNT logged-in sessions (PROT P set) kept open:
 *                                                 prints "ready N" once all are up, then waits
 *                                                 for EOF on stdin and QUITs them all
 *   ftpsload retr HOST PORT USER REMOTE [C]       download to nowhere (C: PROT C data)
 *   ftpsload stor HOST PORT USER REMOTE LOCAL [C] upload LOCAL
 *
 * The password is read from the environment variable FTPSLOAD_PASS. FTPSLOAD_CIPHERSUITES
 * sets the TLS 1.3 suites offered, FTPSLOAD_SNI the server name sent (default localhost).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tlsbufs.h"

#define BUF TLS_BLOCK
#define IO_TIMEOUT_S 60

static const char *host, *user, *pass, *sni;

/* Where a session's time goes, summed over the sessions of one client process: the wall time
 * from the previous step to the end of each step. */
enum {
    S_CONNECT,
    S_GREETING,
    S_AUTH,
    S_HANDSHAKE,
    S_USER,
    S_PASS,
    S_PBSZ_PROT,
    S_EPSV,
    S_LIST_150,
    S_DATA_TLS,
    S_DATA,
    S_226,
    S_QUIT,
    S_N
};
static const char *const step_names[S_N] = {
    "connect", "greeting", "auth_tls", "tls_handshake", "user",      "pass", "pbsz_prot",
    "epsv",    "list_150", "data_tls", "data",          "reply_226", "quit"};
static double step_sum[S_N], step_last;
static void step(int i);
static int port;
static SSL_CTX *ctx;
static char errtext[512];

struct ctl {
    int fd;
    SSL *ssl;
    char in[16384];
    size_t len;
    char last[1024]; /* last line of the last reply */
};

static void seterr(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errtext, sizeof errtext, fmt, ap);
    va_end(ap);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void step(int i)
{
    double t = now();
    step_sum[i] += t - step_last;
    step_last = t;
}

static int tcp_connect(int p)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        seterr("bad host %s (IPv4 address expected)", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        seterr("socket: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        seterr("connect to port %d: %s", p, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int ctl_send(struct ctl *c, const char *line)
{
    char buf[1100];
    int n = snprintf(buf, sizeof buf, "%s\r\n", line);
    if (c->ssl) {
        if (SSL_write(c->ssl, buf, n) != n) {
            seterr("SSL_write of %.4s failed", line);
            return -1;
        }
    } else if (write(c->fd, buf, (size_t)n) != n) {
        seterr("write of %.4s failed: %s", line, strerror(errno));
        return -1;
    }
    return 0;
}

/* One line (without CRLF) into out; -1 on EOF or error. */
static int ctl_line(struct ctl *c, char *out, size_t outlen)
{
    for (;;) {
        char *nl = memchr(c->in, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - c->in);
            size_t k = n > 0 && c->in[n - 1] == '\r' ? n - 1 : n;
            if (k >= outlen)
                k = outlen - 1;
            memcpy(out, c->in, k);
            out[k] = '\0';
            memmove(c->in, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            return 0;
        }
        if (c->len == sizeof c->in) {
            seterr("reply line too long");
            return -1;
        }
        int r;
        if (c->ssl) {
            r = SSL_read(c->ssl, c->in + c->len, (int)(sizeof c->in - c->len));
        } else {
            ssize_t k = read(c->fd, c->in + c->len, sizeof c->in - c->len);
            r = (int)k;
        }
        if (r <= 0) {
            seterr("control connection closed or failed while reading a reply");
            return -1;
        }
        c->len += (size_t)r;
    }
}

static int ctl_reply(struct ctl *c)
{
    char line[1024];
    if (ctl_line(c, line, sizeof line) < 0)
        return -1;
    int code = atoi(line);
    if (strlen(line) >= 4 && line[3] == '-') {
        char end[5];
        memcpy(end, line, 3);
        end[3] = ' ';
        end[4] = '\0';
        do {
            if (ctl_line(c, line, sizeof line) < 0)
                return -1;
        } while (strncmp(line, end, 4) != 0);
    }
    snprintf(c->last, sizeof c->last, "%s", line);
    return code;
}

static int expect(struct ctl *c, const char *cmd, int want)
{
    if (cmd && ctl_send(c, cmd) < 0)
        return -1;
    int code = ctl_reply(c);
    if (code < 0) {
        char why[sizeof errtext];
        snprintf(why, sizeof why, "%s", errtext);
        seterr("%.4s: %s", cmd ? cmd : "reply", why);
        return -1;
    }
    if (code / 100 != want / 100 || (want % 100 && code != want)) {
        seterr("%.4s: expected %d, got: %s", cmd ? cmd : "reply", want, c->last);
        return -1;
    }
    return code;
}

static void ctl_close(struct ctl *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Connected, TLS up, logged in, PBSZ 0 and PROT P (or C) done. */
static int login(struct ctl *c, int prot_c)
{
    memset(c, 0, sizeof *c);
    step_last = now();
    c->fd = tcp_connect(port);
    if (c->fd < 0)
        return -1;
    step(S_CONNECT);
    if (expect(c, NULL, 220) < 0)
        return -1;
    step(S_GREETING);
    if (expect(c, "AUTH TLS", 234) < 0)
        return -1;
    step(S_AUTH);
    c->ssl = SSL_new(ctx);
    SSL_set_tlsext_host_name(c->ssl, sni);
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_connect(c->ssl) != 1) {
        unsigned long e = ERR_get_error();
        seterr("control TLS handshake failed: %s", e ? ERR_error_string(e, NULL) : "?");
        return -1;
    }
    step(S_HANDSHAKE);
    char buf[1100];
    snprintf(buf, sizeof buf, "USER %s", user);
    if (expect(c, buf, 331) < 0)
        return -1;
    step(S_USER);
    snprintf(buf, sizeof buf, "PASS %s", pass);
    if (expect(c, buf, 230) < 0)
        return -1;
    step(S_PASS);
    if (expect(c, "PBSZ 0", 200) < 0)
        return -1;
    if (expect(c, prot_c ? "PROT C" : "PROT P", 200) < 0)
        return -1;
    step(S_PBSZ_PROT);
    return 0;
}

struct data {
    int fd;
    SSL *ssl;
};

static int epsv_connect(struct ctl *c, struct data *d)
{
    memset(d, 0, sizeof *d);
    d->fd = -1;
    if (expect(c, "EPSV", 229) < 0)
        return -1;
    char *p = strstr(c->last, "(|||");
    int dport = p ? atoi(p + 4) : 0;
    if (dport <= 0) {
        seterr("cannot parse EPSV reply: %s", c->last);
        return -1;
    }
    d->fd = tcp_connect(dport);
    return d->fd < 0 ? -1 : 0;
}

/* After the 150: TLS on the data connection, resuming the control connection's session. */
static int data_tls(struct ctl *c, struct data *d)
{
    d->ssl = SSL_new(ctx);
    SSL_SESSION *s = SSL_get1_session(c->ssl);
    if (s) {
        SSL_set_session(d->ssl, s);
        SSL_SESSION_free(s);
    }
    SSL_set_tlsext_host_name(d->ssl, sni);
    /* As tlspump's client, so that the client is not what limits a transfer. */
    tls_bufs(d->ssl, d->fd, BUF, TLS_SEND_BUF);
    if (SSL_connect(d->ssl) != 1) {
        unsigned long e = ERR_get_error();
        seterr("data TLS handshake failed: %s", e ? ERR_error_string(e, NULL) : "?");
        return -1;
    }
    return 0;
}

static void data_close(struct data *d)
{
    if (d->ssl)
        SSL_free(d->ssl);
    if (d->fd >= 0)
        close(d->fd);
    d->ssl = NULL;
    d->fd = -1;
}

/* Reads the data connection to its end; returns bytes or -1. */
static long long data_drain(struct data *d, char *buf)
{
    long long total = 0;
    for (;;) {
        int r;
        if (d->ssl) {
            r = SSL_read(d->ssl, buf, BUF);
            if (r <= 0) {
                int e = SSL_get_error(d->ssl, r);
                if (e == SSL_ERROR_ZERO_RETURN)
                    break;
                /* A TCP close without close_notify: the 226 says whether all came. */
                if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL) {
                    ERR_clear_error();
                    break;
                }
                seterr("data read failed (%d)", e);
                return -1;
            }
        } else {
            ssize_t k = read(d->fd, buf, BUF);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0) {
                seterr("data read: %s", strerror(errno));
                return -1;
            }
            if (k == 0)
                break;
            r = (int)k;
        }
        total += r;
    }
    if (d->ssl)
        SSL_shutdown(d->ssl); /* our close_notify back, as curl does */
    return total;
}

static int one_session(char *buf)
{
    struct ctl c;
    struct data d = {.fd = -1};
    int rc = -1;
    if (login(&c, 0) < 0)
        goto out;
    if (epsv_connect(&c, &d) < 0)
        goto out;
    step(S_EPSV);
    if (ctl_send(&c, "LIST") < 0 || expect(&c, NULL, 100) < 0)
        goto out;
    step(S_LIST_150);
    if (data_tls(&c, &d) < 0)
        goto out;
    step(S_DATA_TLS);
    if (data_drain(&d, buf) < 0)
        goto out;
    data_close(&d);
    step(S_DATA);
    if (expect(&c, NULL, 226) < 0)
        goto out;
    step(S_226);
    if (expect(&c, "QUIT", 221) < 0)
        goto out;
    step(S_QUIT);
    rc = 0;
out:
    data_close(&d);
    ctl_close(&c);
    return rc;
}

static int cmd_sessions(int count, int conc)
{
    if (conc < 1)
        conc = 1;
    int pfd[2];
    if (pipe(pfd) < 0)
        return 2;
    double t0 = now();
    for (int i = 0; i < conc; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            close(pfd[0]);
            char *buf = malloc(BUF);
            int ok = 0, fail = 0;
            for (int k = i; k < count; k += conc) {
                if (one_session(buf) == 0)
                    ok++;
                else {
                    if (fail == 0)
                        fprintf(stderr, "ftpsload: session failed: %s\n", errtext);
                    fail++;
                }
            }
            char msg[64 + 24 * S_N];
            int n = snprintf(msg, sizeof msg, "%d %d", ok, fail);
            for (int k = 0; k < S_N; k++)
                n += snprintf(msg + n, sizeof msg - (size_t)n, " %.6f", step_sum[k]);
            n += snprintf(msg + n, sizeof msg - (size_t)n, "\n");
            if (write(pfd[1], msg, (size_t)n) != n)
                _exit(3);
            _exit(0);
        }
    }
    close(pfd[1]);
    int ok = 0, fail = 0;
    double sums[S_N] = {0};
    FILE *f = fdopen(pfd[0], "r");
    int a, b;
    while (f && fscanf(f, "%d %d", &a, &b) == 2) {
        ok += a;
        fail += b;
        for (int k = 0; k < S_N; k++) {
            double v;
            if (fscanf(f, "%lf", &v) == 1)
                sums[k] += v;
        }
    }
    while (wait(NULL) > 0)
        ;
    double wall = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("{\"sessions\": %d, \"failures\": %d, \"wall\": %.6f, \"client_cpu\": %.6f, "
           "\"steps_ms\": {",
           ok, fail, wall, cpu);
    for (int k = 0; k < S_N; k++)
        printf("%s\"%s\": %.3f", k ? ", " : "", step_names[k], ok ? 1000 * sums[k] / ok : 0.0);
    printf("}}\n");
    return fail ? 1 : 0;
}

static int cmd_idle(int count)
{
    struct ctl *cs = calloc((size_t)count, sizeof *cs);
    for (int i = 0; i < count; i++) {
        if (login(&cs[i], 0) < 0) {
            fprintf(stderr, "ftpsload: idle session %d failed: %s\n", i, errtext);
            return 1;
        }
    }
    printf("ready %d\n", count);
    fflush(stdout);
    char tmp[64];
    while (read(0, tmp, sizeof tmp) > 0)
        ;
    for (int i = 0; i < count; i++) {
        expect(&cs[i], "QUIT", 221);
        ctl_close(&cs[i]);
    }
    return 0;
}

static int cmd_xfer(int stor, const char *remote, const char *local, int prot_c)
{
    char *buf = malloc(BUF);
    struct ctl c;
    struct data d = {.fd = -1};
    int lfd = -1;
    long long bytes = 0;
    double t0 = now(), t1 = 0, t2 = 0;
    if (stor) {
        lfd = open(local, O_RDONLY | O_CLOEXEC);
        if (lfd < 0) {
            seterr("%s: %s", local, strerror(errno));
            goto fail;
        }
    }
    if (login(&c, prot_c) < 0 || expect(&c, "TYPE I", 200) < 0 || epsv_connect(&c, &d) < 0)
        goto fail;
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "%s %s", stor ? "STOR" : "RETR", remote);
    if (ctl_send(&c, cmd) < 0 || expect(&c, NULL, 100) < 0)
        goto fail;
    t1 = now(); /* from the 150: the data TLS handshake counts, as in curl's figures */
    if (!prot_c && data_tls(&c, &d) < 0)
        goto fail;
    if (!stor) {
        bytes = data_drain(&d, buf);
        if (bytes < 0)
            goto fail;
    } else {
        for (;;) {
            ssize_t n = read(lfd, buf, BUF);
            if (n < 0) {
                seterr("read %s: %s", local, strerror(errno));
                goto fail;
            }
            if (n == 0)
                break;
            ssize_t off = 0;
            while (off < n) {
                ssize_t w;
                if (d.ssl)
                    w = SSL_write(d.ssl, buf + off, (int)(n - off));
                else
                    w = write(d.fd, buf + off, (size_t)(n - off));
                if (w <= 0) {
                    seterr("data write failed");
                    goto fail;
                }
                off += w;
            }
            bytes += n;
        }
        if (d.ssl) {
            BIO_flush(SSL_get_wbio(d.ssl));
            SSL_shutdown(d.ssl);
            BIO_flush(SSL_get_wbio(d.ssl));
        }
        shutdown(d.fd, SHUT_WR);
        while (read(d.fd, buf, BUF) > 0) /* the server's close_notify and FIN */
            ;
    }
    char cipher[128];
    snprintf(cipher, sizeof cipher, "%s%s", d.ssl ? SSL_get_cipher_name(d.ssl) : "none",
             d.ssl && SSL_session_reused(d.ssl) ? " resumed" : "");
    data_close(&d);
    if (expect(&c, NULL, 226) < 0)
        goto fail;
    t2 = now(); /* the 226: the server has all of it stored, or sent */
    expect(&c, "QUIT", 221);
    ctl_close(&c);
    printf("{\"bytes\": %lld, \"xfer_s\": %.6f, \"total_s\": %.6f, \"cipher\": \"%s\"}\n", bytes,
           t2 - t1, now() - t0, cipher);
    return 0;
fail:
    fprintf(stderr, "ftpsload: %s\n", errtext);
    return 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 6) {
        fprintf(stderr, "usage: see the comment at the top of ftpsload.c\n");
        return 2;
    }
    const char *mode = argv[1];
    host = argv[2];
    port = atoi(argv[3]);
    user = argv[4];
    pass = getenv("FTPSLOAD_PASS");
    sni = getenv("FTPSLOAD_SNI") ? getenv("FTPSLOAD_SNI") : "localhost";
    if (!pass) {
        fprintf(stderr, "ftpsload: FTPSLOAD_PASS is not set\n");
        return 2;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    const char *cs = getenv("FTPSLOAD_CIPHERSUITES");
    if (cs && *cs && SSL_CTX_set_ciphersuites(ctx, cs) != 1) {
        fprintf(stderr, "ftpsload: bad FTPSLOAD_CIPHERSUITES\n");
        return 2;
    }
    if (!strcmp(mode, "sessions") && argc >= 7)
        return cmd_sessions(atoi(argv[5]), atoi(argv[6]));
    if (!strcmp(mode, "idle"))
        return cmd_idle(atoi(argv[5]));
    if (!strcmp(mode, "retr"))
        return cmd_xfer(0, argv[5], NULL, argc > 6 && !strcmp(argv[6], "C"));
    if (!strcmp(mode, "stor") && argc >= 7)
        return cmd_xfer(1, argv[5], argv[6], argc > 7 && !strcmp(argv[7], "C"));
    fprintf(stderr, "ftpsload: bad arguments\n");
    return 2;
}
