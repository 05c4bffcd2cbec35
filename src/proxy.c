#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

static const unsigned char v2sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                        0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

#define V1_MAX 107
#define V2_MAX (16 + 4096) /* addresses plus any TLVs a sane balancer sends */

/* A v1 port: decimal digits only. sscanf's %u would take a sign and wrap a value past
 * UINT_MAX into range (4294967317 as 21). */
static bool parse_port(const char *s, unsigned *port)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > 5 || s[n] != '\0')
        return false;
    unsigned long v = strtoul(s, NULL, 10);
    if (v > 65535)
        return false;
    *port = (unsigned)v;
    return true;
}

static long parse_v1(const unsigned char *buf, size_t len, struct sockaddr_storage *src,
                     int *have_src)
{
    const unsigned char *end = memchr(buf, '\n', len < V1_MAX ? len : V1_MAX);
    if (!end)
        return len >= V1_MAX ? -1 : 0;
    size_t n = (size_t)(end - buf) + 1;
    if (n < 8 || buf[n - 2] != '\r')
        return -1;
    char line[V1_MAX + 1];
    memcpy(line, buf, n - 2);
    line[n - 2] = '\0';
    if (strncmp(line, "PROXY ", 6) != 0)
        return -1;
    char proto[8], sa[64], da[64], sps[8], dps[8];
    unsigned sp, dp;
    char extra;
    if (strcmp(line, "PROXY UNKNOWN") == 0 || strncmp(line, "PROXY UNKNOWN ", 14) == 0) {
        *have_src = 0;
        return (long)n;
    }
    if (sscanf(line, "PROXY %7s %63s %63s %7s %7s%c", proto, sa, da, sps, dps, &extra) != 5 ||
        !parse_port(sps, &sp) || !parse_port(dps, &dp))
        return -1;
    memset(src, 0, sizeof *src);
    if (strcmp(proto, "TCP4") == 0) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)src;
        struct in_addr d;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)sp);
        if (inet_pton(AF_INET, sa, &s4->sin_addr) != 1 || inet_pton(AF_INET, da, &d) != 1)
            return -1;
    } else if (strcmp(proto, "TCP6") == 0) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)src;
        struct in6_addr d;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)sp);
        if (inet_pton(AF_INET6, sa, &s6->sin6_addr) != 1 || inet_pton(AF_INET6, da, &d) != 1)
            return -1;
    } else {
        return -1;
    }
    *have_src = 1;
    return (long)n;
}

static long parse_v2(const unsigned char *buf, size_t len, struct sockaddr_storage *src,
                     int *have_src)
{
    if (len < 16)
        return memcmp(buf, v2sig, len < 12 ? len : 12) == 0 ? 0 : -1;
    if (memcmp(buf, v2sig, 12) != 0 || (buf[12] & 0xf0) != 0x20)
        return -1;
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (16 + body > V2_MAX)
        return -1;
    if (len < 16 + body)
        return 0;
    unsigned cmd = buf[12] & 0x0f, fam = buf[13];
    const unsigned char *a = buf + 16;
    *have_src = 0;
    if (cmd == 0x0) /* LOCAL: the balancer's own connection, e.g. a health check */
        return (long)(16 + body);
    if (cmd != 0x1)
        return -1;
    memset(src, 0, sizeof *src);
    if (fam == 0x11) { /* TCP over IPv4 */
        if (body < 12)
            return -1;
        struct sockaddr_in *s4 = (struct sockaddr_in *)src;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, a, 4);
        memcpy(&s4->sin_port, a + 8, 2);
        *have_src = 1;
    } else if (fam == 0x21) { /* TCP over IPv6 */
        if (body < 36)
            return -1;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)src;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a, 16);
        memcpy(&s6->sin6_port, a + 32, 2);
        *have_src = 1;
    } else if (fam != 0x00) { /* UNSPEC is kept as "unknown"; UDP and UNIX are not ours */
        return -1;
    }
    /* TLVs after the addresses are skipped, but their framing must hold. */
    size_t off = fam == 0x11 ? 12 : fam == 0x21 ? 36 : 0;
    while (off < body) {
        if (body - off < 3)
            return -1;
        size_t tl = (size_t)a[off + 1] << 8 | a[off + 2];
        if (body - off - 3 < tl)
            return -1;
        off += 3 + tl;
    }
    return (long)(16 + body);
}

long proxy_parse(const unsigned char *buf, size_t len, int modes, struct sockaddr_storage *src,
                 int *have_src)
{
    if (len == 0)
        return 0;
    if (buf[0] == 'P' && (modes & PROXY_V1))
        return parse_v1(buf, len, src, have_src);
    if (buf[0] == 0x0d && (modes & PROXY_V2))
        return parse_v2(buf, len, src, have_src);
    return -1;
}

enum proxy_result proxy_read(int fd, int modes, int timeout_ms, struct sockaddr_storage *src,
                             char *why, size_t whylen)
{
    static unsigned char buf[V2_MAX];
    int64_t deadline = now_ms() + timeout_ms;
    size_t have = 0;
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            snprintf(why, whylen, "no complete PROXY header within %d ms", timeout_ms);
            return PROXY_TIMEOUT;
        }
        ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) {
            snprintf(why, whylen, "connection closed before the PROXY header");
            return PROXY_EOF;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            snprintf(why, whylen, "reading the PROXY header: %s", strerror(errno));
            return PROXY_EOF;
        }
        int have_src = 0;
        long hl = proxy_parse(buf, (size_t)n, modes, src, &have_src);
        if (hl < 0) {
            snprintf(why, whylen, "malformed, oversized or unexpected PROXY header");
            return PROXY_BAD;
        }
        if (hl > 0) {
            /* Consume exactly the header: what follows is FTP or a TLS ClientHello. */
            size_t got = 0;
            while (got < (size_t)hl) {
                ssize_t r = recv(fd, buf, (size_t)hl - got, 0);
                if (r <= 0 && !(r < 0 && errno == EINTR)) {
                    snprintf(why, whylen, "reading the PROXY header failed");
                    return PROXY_EOF;
                }
                if (r > 0)
                    got += (size_t)r;
            }
            if (!have_src)
                src->ss_family = AF_UNSPEC;
            return PROXY_OK;
        }
        if ((size_t)n == have) {
            /* Nothing new arrived yet; wait a little instead of spinning on the peek. */
            sleep_ms(5);
        }
        have = (size_t)n;
    }
}
