#include "ctlio.h"

#include <errno.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls.h"
#include "util.h"

#define IAC 255
#define SB 250
#define SE 240
#define WILL 251
#define DONT 254

void ctl_init(struct ctlio *c, int fd, size_t max_line)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->max_line = max_line;
    c->cap = max_line + 2;
    c->buf = xmalloc(c->cap);
}

size_t telnet_unescape(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = in[i];
        if (ch == IAC && i + 1 < n) {
            unsigned char cmd = in[++i];
            if (cmd == IAC) {
                out[o++] = (char)IAC;
            } else if (cmd >= WILL && cmd <= DONT) {
                i++; /* option byte: we never negotiate, so the request is ignored */
            } else if (cmd == SB) {
                while (i + 1 < n && !(in[i] == IAC && in[i + 1] == SE))
                    i++;
                i++;
            }
            /* IP, DM, AYT, NOP, ... are dropped: ABOR that follows them runs as usual */
            continue;
        }
        if (ch == IAC)
            continue;
        if (ch == '\0' && o > 0 && out[o - 1] == '\r' && i > 0 && in[i - 1] == '\r')
            continue;
        out[o++] = (char)ch;
    }
    return o;
}

/* The LF that ends a command line, not the option byte of a Telnet option request (IAC DO 10):
 * taken as a line end, that split one command into two replies. A subnegotiation (IAC SB)
 * still ends at a LF: its IAC SE may never come. NULL if no line is complete yet. */
static unsigned char *line_end(unsigned char *b, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (b[i] == '\n')
            return b + i;
        if (b[i] != IAC || i + 1 >= len)
            continue;
        if (b[i + 1] == IAC) /* an escaped 0xFF: the next byte is data again */
            i++;
        else if (b[i + 1] >= WILL && b[i + 1] <= DONT)
            i += 2;
    }
    return NULL;
}

static int raw_read(struct ctlio *c, void *p, size_t n)
{
    if (c->ssl) {
        ERR_clear_error();
        int r = SSL_read(c->ssl, p, (int)n);
        if (r > 0)
            return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        return -1;
    }
    ssize_t r = read(c->fd, p, n);
    if (r > 0)
        return (int)r;
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    return -1;
}

static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int r;
    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r;
}

/* After ctl_tls_clear: 1 when TLS is gone and plaintext may be read, 0 to wait for more. */
static int finish_clear(struct ctlio *c)
{
    unsigned char first;
    ssize_t r = recv(c->fd, &first, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
        return 1; /* EOF or error: the plain read below reports it */
    if (r < 0)
        return 0;
    if (first >= 0x14 && first <= 0x17) {
        /* A TLS record, not a command: the client's close_notify (TLS 1.2 sends it as an alert
         * record, 0x15; TLS 1.3 hides it in an application-data record, 0x17). OpenSSL reads
         * exactly that record (no read-ahead), so plaintext behind it stays in the socket. */
        ERR_clear_error();
        int s = SSL_shutdown(c->ssl);
        if (s != 1) {
            int e = SSL_get_error(c->ssl, s);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
        }
    }
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->clearing = false;
    return 1;
}

int ctl_tls_clear(struct ctlio *c, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        ERR_clear_error();
        int r = SSL_shutdown(c->ssl);
        if (r >= 0)
            break;
        int e = SSL_get_error(c->ssl, r);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
            return -1;
        int64_t left = deadline - now_ms();
        if (left <= 0 ||
            wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, (int)left) <= 0)
            return -1;
    }
    c->clearing = true;
    return 0;
}

int ctl_fill(struct ctlio *c)
{
    if (c->eof)
        return -1;
    if (c->clearing && !finish_clear(c))
        return 0;
    if (c->len == c->cap) {
        if (line_end(c->buf, c->len))
            return 0; /* complete lines are waiting to be taken first */
        /* A full buffer without LF is an overlong line: drop it and look for its end. */
        c->discarding = true;
        c->len = 0;
    }
    int r = raw_read(c, c->buf + c->len, c->cap - c->len);
    if (r < 0) {
        c->eof = true;
        return -1;
    }
    c->len += (size_t)r;
    return r;
}

static void consume(struct ctlio *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

int ctl_next_line(struct ctlio *c, char *out, size_t cap, size_t *n)
{
    unsigned char *lf = line_end(c->buf, c->len);
    if (!lf) {
        if (c->len == c->cap) {
            c->discarding = true;
            c->len = 0;
        }
        return CTL_NONE;
    }
    size_t raw = (size_t)(lf - c->buf);
    if (c->discarding) {
        c->discarding = false;
        consume(c, raw + 1);
        return CTL_TOOLONG;
    }
    size_t linelen = raw;
    if (linelen > 0 && c->buf[linelen - 1] == '\r')
        linelen--;
    if (linelen > c->max_line || linelen + 1 > cap) {
        consume(c, raw + 1);
        return CTL_TOOLONG;
    }
    *n = telnet_unescape(c->buf, linelen, out);
    out[*n] = '\0';
    consume(c, raw + 1);
    return CTL_LINE;
}

bool ctl_take_abor(struct ctlio *c)
{
    size_t start = 0;
    bool skip = c->discarding; /* the rest of an overlong line comes first */
    for (;;) {
        unsigned char *lf = line_end(c->buf + start, c->len - start);
        if (!lf)
            return false;
        size_t end = (size_t)(lf - c->buf) + 1;
        size_t raw = end - 1 - start;
        if (raw > 0 && c->buf[start + raw - 1] == '\r')
            raw--;
        char line[64];
        /* Telnet IAC IP IAC DM in front (lftp) is what unescaping removes; trailing spaces
         * are an empty argument, as in the command loop. */
        size_t n = skip || raw >= sizeof line ? 0 : telnet_unescape(c->buf + start, raw, line);
        while (n > 4 && line[n - 1] == ' ')
            n--;
        if (n == 4 && strncasecmp(line, "ABOR", 4) == 0) {
            memmove(c->buf + start, c->buf + end, c->len - end);
            c->len -= end - start;
            return true;
        }
        skip = false;
        start = end;
    }
}

bool ctl_has_room(const struct ctlio *c)
{
    return c->len < c->cap;
}

int ctl_write(struct ctlio *c, const void *p, size_t n, int timeout_ms)
{
    const char *s = p;
    int64_t deadline = now_ms() + timeout_ms;
    while (n > 0) {
        short want = POLLOUT;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, s, (int)(n > (1 << 30) ? (1 << 30) : n));
            if (r > 0) {
                s += r;
                n -= (size_t)r;
                continue;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                want = POLLIN;
            else if (e != SSL_ERROR_WANT_WRITE)
                return -1;
        } else {
            ssize_t r = write(c->fd, s, n);
            if (r > 0) {
                s += r;
                n -= (size_t)r;
                continue;
            }
            if (r < 0 && errno != EAGAIN && errno != EINTR)
                return -1;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0 || wait_fd(c->fd, want, (int)left) <= 0)
            return -1;
    }
    return 0;
}

void ctl_discard(struct ctlio *c)
{
    c->len = 0;
    c->discarding = false;
}

int ctl_starttls(struct ctlio *c, SSL *ssl, int timeout_ms, bool plain_refusal, char *err,
                 size_t errlen)
{
    ctl_discard(c);
    SSL_set_fd(ssl, c->fd);
    int64_t deadline = now_ms() + timeout_ms;
    if (plain_refusal) {
        unsigned char first;
        ssize_t r;
        for (;;) {
            r = recv(c->fd, &first, 1, MSG_PEEK);
            if (r >= 0 || (errno != EAGAIN && errno != EINTR))
                break;
            int64_t left = deadline - now_ms();
            if (left <= 0 || wait_fd(c->fd, POLLIN, (int)left) <= 0) {
                snprintf(err, errlen, "no TLS handshake within %d s", timeout_ms / 1000);
                return -1;
            }
        }
        if (r <= 0) {
            snprintf(err, errlen, "connection closed before the TLS handshake");
            return -1;
        }
        if (first != 0x16) {
            static const char refusal[] = "421 TLS negotiation failed: expected a TLS handshake."
                                          "\r\n";
            (void)!write(c->fd, refusal, sizeof refusal - 1);
            snprintf(err, errlen, "client sent plaintext instead of a TLS handshake");
            return -1;
        }
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_accept(ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(ssl, r);
        short want;
        if (e == SSL_ERROR_WANT_READ)
            want = POLLIN;
        else if (e == SSL_ERROR_WANT_WRITE)
            want = POLLOUT;
        else {
            tls_error_text(ssl, r, err, errlen);
            return -1;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0 || wait_fd(c->fd, want, (int)left) <= 0) {
            snprintf(err, errlen, "TLS handshake timed out");
            return -1;
        }
    }
    c->ssl = ssl;
    return 0;
}

void ctl_tls_close(struct ctlio *c, int timeout_ms)
{
    if (!c->ssl)
        return;
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        ERR_clear_error();
        int r = SSL_shutdown(c->ssl);
        if (r >= 0)
            break; /* our close_notify is out; the peer's is not waited for */
        int e = SSL_get_error(c->ssl, r);
        short want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            break;
        int64_t left = deadline - now_ms();
        if (left <= 0 || wait_fd(c->fd, want, (int)left) <= 0)
            break;
    }
}
