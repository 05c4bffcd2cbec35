/* tlspump: the "ceiling" of the transfer benchmarks (bench/README.md). A minimal one-connection
 * OpenSSL sender/receiver doing what an FTPS data connection does and nothing else: no control
 * connection, no login, no privilege separation.
 *
 *   tlspump server PORT send|recv FILE CERT KEY [plain] [http]   serves one connection
 *   tlspump client PORT recv|send FILE [plain]                   the matching client
 *   tlspump idle CERT KEY                       inetd: one TLS connection on fd 0, held idle
 *
 * The server prints "listening" once it accepts connections. Sending reads FILE in 256 KiB
 * blocks and SSL_writes them (plain: sendfile, as the FTP servers do for PROT C); receiving
 * SSL_reads into a 256 KiB block, taking every record already read ahead, and writes the block
 * to FILE (server; plain: splice) or drops it (client). TLS reads use read-ahead into a 256 KiB
 * buffer, TLS writes go through a 256 KiB buffering BIO. Both ends exchange close_notify.
 *
 * With "http" the server speaks just enough HTTP/1.1 for curl to be the client, so that the
 * ceiling and the FTP servers are measured with the same client: send answers any request with
 * the file; recv takes a PUT body of Content-Length bytes (send it without Expect: 100-continue)
 * and answers 200.
 *
 * "idle" is the memory floor of table 5: what a process started per connection holds when it
 * has loaded OpenSSL, its certificate and key, completed one handshake and waits for the next
 * byte, as an idle FTPS session's front does (record buffers released while idle).
 *
 * TLSPUMP_CIPHERSUITES sets the TLS 1.3 suites. The client prints one JSON line: bytes, seconds,
 * cipher. Variants, to weigh data-path choices (environment, both ends): TLSPUMP_WBUF=N
 * gives the buffering BIO N bytes instead of 1 MiB, and 0 writes each record with its own
 * write(2); TLSPUMP_RELEASE=1 sets SSL_MODE_RELEASE_BUFFERS; TLSPUMP_MMAP=1 sends from an mmap
 * of the file instead of read(2) into a buffer; TLSPUMP_BUF=N uses N-byte blocks (file reads,
 * read-ahead, received blocks) instead of 256 KiB; TLSPUMP_CORK=0 sends TLS without TCP_CORK,
 * TLSPUMP_CORK=1 corks sendfile too; TLSPUMP_SPLICE=0 receives clear text with read(2) and
 * write(2). The defaults are ftpsd's worker's.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tlsbufs.h"

static size_t BUF = TLS_BLOCK;

static void die(const char *what)
{
    fprintf(stderr, "tlspump: %s: %s\n", what, errno ? strerror(errno) : "");
    ERR_print_errors_fp(stderr);
    exit(1);
}

static int env_flag(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_all(SSL *ssl, int sock, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = ssl ? SSL_write(ssl, p, (int)n) : write(sock, p, n);
        if (w <= 0)
            die("write");
        p += w;
        n -= (size_t)w;
    }
}

static long long do_send(SSL *ssl, int sock, int fd, char *buf)
{
    long long total = 0;
    if (!ssl) {
        for (;;) {
            ssize_t r = sendfile(sock, fd, NULL, SENDFILE_CHUNK);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                die("sendfile");
            if (r == 0)
                break;
            total += r;
        }
    } else if (env_flag("TLSPUMP_MMAP", 0)) {
        struct stat st;
        if (fstat(fd, &st) < 0)
            die("fstat");
        for (off_t off = 0; off < st.st_size;) {
            size_t win = 4 << 20;
            if ((off_t)win > st.st_size - off)
                win = (size_t)(st.st_size - off);
            char *p = mmap(NULL, win, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, off);
            if (p == MAP_FAILED)
                die("mmap");
            for (size_t k = 0; k < win;) {
                size_t n = win - k < BUF ? win - k : BUF;
                write_all(ssl, sock, p + k, n);
                k += n;
            }
            munmap(p, win);
            off += (off_t)win;
            total += (long long)win;
        }
    } else {
        for (;;) {
            ssize_t n = read(fd, buf, BUF);
            if (n < 0)
                die("read");
            if (n == 0)
                break;
            write_all(ssl, sock, buf, (size_t)n);
            total += n;
        }
    }
    return total;
}

/* Receives until close_notify/EOF, or `limit` bytes when limit >= 0. */
static long long do_recv(SSL *ssl, int sock, int out, char *buf, long long limit)
{
    long long total = 0;
    if (!ssl && out >= 0 && env_flag("TLSPUMP_SPLICE", 1)) { /* clear text into a file: splice */
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
            die("pipe");
        fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
        while (limit < 0 || total < limit) {
            size_t want = 1 << 20;
            if (limit >= 0 && (long long)want > limit - total)
                want = (size_t)(limit - total);
            ssize_t n = splice(sock, NULL, p[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_MORE);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                die("splice from socket");
            if (n == 0)
                break;
            while (n > 0) {
                ssize_t m = splice(p[0], NULL, out, NULL, (size_t)n, SPLICE_F_MOVE);
                if (m <= 0)
                    die("splice to file");
                n -= m;
                total += m;
            }
        }
        close(p[0]);
        close(p[1]);
        return total;
    }
    while (limit < 0 || total < limit) {
        size_t want = BUF;
        if (limit >= 0 && (long long)want > limit - total)
            want = (size_t)(limit - total);
        ssize_t n;
        if (ssl) {
            int r = SSL_read(ssl, buf, (int)want);
            if (r <= 0) {
                if (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN)
                    break;
                die("SSL_read");
            }
            /* Records already read ahead are decrypted now: the file gets large writes. */
            while ((size_t)r + 16384 <= want && SSL_has_pending(ssl)) {
                int more = SSL_read(ssl, buf + r, (int)(want - (size_t)r));
                if (more <= 0)
                    break;
                r += more;
            }
            n = r;
        } else {
            n = read(sock, buf, want);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                die("read");
            if (n == 0)
                break;
        }
        if (out >= 0) {
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(out, buf + off, (size_t)(n - off));
                if (w <= 0)
                    die("write");
                off += w;
            }
        }
        total += n;
    }
    return total;
}

/* close_notify, then wait for the peer's (or its FIN). */
static void finish(SSL *ssl, int sock, char *buf)
{
    if (ssl) {
        BIO_flush(SSL_get_wbio(ssl));
        int r = SSL_shutdown(ssl);
        BIO_flush(SSL_get_wbio(ssl));
        if (r == 0)
            SSL_shutdown(ssl);
        BIO_flush(SSL_get_wbio(ssl));
    }
    shutdown(sock, SHUT_WR);
    while (read(sock, buf, BUF) > 0)
        ;
}

/* http: reads the request head; returns the Content-Length (0 if none) and leaves in
 * extra and nextra the body bytes that came with the head. */
static long long http_request(SSL *ssl, int sock, char *head, size_t cap, char **extra,
                              size_t *nextra)
{
    size_t hl = 0;
    char *end = NULL;
    while (!end) {
        if (hl + 1 >= cap)
            die("request head too long");
        ssize_t n = ssl ? SSL_read(ssl, head + hl, (int)(cap - hl - 1))
                        : read(sock, head + hl, cap - hl - 1);
        if (n <= 0)
            die("reading the request");
        hl += (size_t)n;
        head[hl] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    size_t hlen = (size_t)(end + 4 - head);
    *extra = head + hlen;
    *nextra = hl - hlen;
    long long cl = 0;
    for (char *p = head; p && p < end; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL)
        if (!strncasecmp(p, "Content-Length:", 15))
            cl = atoll(p + 15);
    return cl;
}

/* Either end's context: TLS 1.2 or later, TLSPUMP_CIPHERSUITES, and a server's certificate. */
static SSL_CTX *new_ctx(int server, const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx)
        die("context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    const char *cs = getenv("TLSPUMP_CIPHERSUITES");
    if (cs && *cs && SSL_CTX_set_ciphersuites(ctx, cs) != 1)
        die("ciphersuites");
    if (server && (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
                   SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1))
        die("certificate");
    return ctx;
}

/* inetd mode: handshake on fd 0, then wait until the client closes. */
static int idle(const char *cert, const char *key)
{
    SSL_CTX *ctx = new_ctx(1, cert, key);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL *ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, 0) != 1 || SSL_accept(ssl) != 1)
        die("handshake");
    char b[64];
    for (;;) {
        struct pollfd p = {.fd = 0, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            die("poll");
        if (SSL_read(ssl, b, sizeof b) <= 0)
            return 0;
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 4 && !strcmp(argv[1], "idle"))
        return idle(argv[2], argv[3]);
    if (argc < 5) {
        fprintf(stderr, "usage: see the comment at the top of tlspump.c\n");
        return 2;
    }
    int server = !strcmp(argv[1], "server");
    int port = atoi(argv[2]);
    int sending = !strcmp(argv[3], "send");
    const char *file = argv[4];
    int plain = 0, http = 0;
    for (int i = server ? 7 : 5; i < argc; i++) {
        plain |= !strcmp(argv[i], "plain");
        http |= !strcmp(argv[i], "http");
    }
    if (env_flag("TLSPUMP_BUF", 0) >= 16384)
        BUF = (size_t)env_flag("TLSPUMP_BUF", 0);
    char *buf = malloc(BUF);

    SSL_CTX *ctx = NULL;
    if (!plain) {
        if (server && argc < 7)
            die("server needs CERT and KEY");
        ctx = new_ctx(server, server ? argv[5] : NULL, server ? argv[6] : NULL);
        if (server)
            SSL_CTX_set_num_tickets(ctx, 0);
        else
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int sock;
    if (server) {
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 1) < 0)
            die("bind/listen");
        printf("listening\n");
        fflush(stdout);
        sock = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (sock < 0)
            die("accept");
        close(l);
    } else {
        sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(sock, (struct sockaddr *)&sa, sizeof sa) < 0)
            die("connect");
    }
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL *ssl = NULL;
    if (!plain) {
        ssl = SSL_new(ctx);
        /* As a tuned server would, the way ftpsd's worker does (tlsbufs.h). */
        tls_bufs(ssl, sock, BUF, (size_t)env_flag("TLSPUMP_WBUF", TLS_SEND_BUF));
        if (env_flag("TLSPUMP_RELEASE", 0))
            SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
        if (!server)
            SSL_set_tlsext_host_name(ssl, "localhost");
        if ((server ? SSL_accept(ssl) : SSL_connect(ssl)) != 1)
            die("handshake");
        BIO_flush(SSL_get_wbio(ssl));
    }
    double t0 = now();
    long long bytes;
    if (sending) {
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            die(file);
        if (http) {
            char head[16384], *extra, resp[256];
            size_t nextra;
            http_request(ssl, sock, head, sizeof head, &extra, &nextra);
            struct stat st;
            fstat(fd, &st);
            int n = snprintf(resp, sizeof resp,
                             "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n"
                             "Connection: close\r\n\r\n",
                             (long long)st.st_size);
            write_all(ssl, sock, resp, (size_t)n);
        }
        int cork = env_flag("TLSPUMP_CORK", !plain), off = 0;
        setsockopt(sock, IPPROTO_TCP, TCP_CORK, &cork, sizeof cork);
        bytes = do_send(ssl, sock, fd, buf);
        setsockopt(sock, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
        close(fd);
    } else {
        int out = -1;
        if (server) {
            out = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (out < 0)
                die(file);
        }
        long long limit = -1;
        bytes = 0;
        if (http) {
            char head[16384], *extra;
            size_t nextra;
            limit = http_request(ssl, sock, head, sizeof head, &extra, &nextra);
            if (nextra && write(out, extra, nextra) != (ssize_t)nextra)
                die("write");
            bytes = (long long)nextra;
            limit -= (long long)nextra;
        }
        bytes += do_recv(ssl, sock, out, buf, limit);
        if (out >= 0)
            close(out);
        if (http) {
            static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                                     "Connection: close\r\n\r\n";
            write_all(ssl, sock, ok, sizeof ok - 1);
        }
    }
    finish(ssl, sock, buf);
    double t = now() - t0;
    if (!server)
        printf("{\"bytes\": %lld, \"xfer_s\": %.6f, \"cipher\": \"%s\"}\n", bytes, t,
               ssl ? SSL_get_cipher_name(ssl) : "none");
    return 0;
}
