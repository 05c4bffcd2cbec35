/* CIDR matching, pasv_address rules and PROXY protocol v1/v2 headers. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netmatch.h"
#include "proxy.h"
#include "unit.h"

static struct sockaddr_storage v4(const char *a)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    s->sin_family = AF_INET;
    inet_pton(AF_INET, a, &s->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *a)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
    s->sin6_family = AF_INET6;
    inet_pton(AF_INET6, a, &s->sin6_addr);
    return ss;
}

static const char *addr_of(const struct sockaddr_storage *ss)
{
    static char buf[64];
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((struct sockaddr_in *)ss)->sin_addr
                        : (const void *)&((struct sockaddr_in6 *)ss)->sin6_addr;
    inet_ntop(ss->ss_family, a, buf, sizeof buf);
    return buf;
}

int main(void)
{
    struct cidr c;
    CHECK(cidr_parse("10.0.0.0/8", &c) == 0);
    struct sockaddr_storage a = v4("10.20.30.40"), b = v4("11.0.0.1"), m = v6("::ffff:10.1.2.3");
    CHECK(cidr_match(&c, &a) && !cidr_match(&c, &b) && cidr_match(&c, &m));
    CHECK(cidr_parse("192.0.2.128/25", &c) == 0);
    a = v4("192.0.2.200");
    b = v4("192.0.2.127");
    CHECK(cidr_match(&c, &a) && !cidr_match(&c, &b));
    CHECK(cidr_parse("2001:db8::/32", &c) == 0);
    a = v6("2001:db8:1::5");
    b = v6("2001:db9::5");
    CHECK(cidr_match(&c, &a) && !cidr_match(&c, &b));
    CHECK(cidr_parse("10.0.0.0/33", &c) < 0 && cidr_parse("nope", &c) < 0);
    CHECK(cidr_parse("0.0.0.0/0", &c) == 0);
    a = v4("203.0.113.9");
    CHECK(cidr_match(&c, &a));

    struct pasv_rule r[PASV_RULES_MAX];
    char bad[64];
    CHECK(pasv_rules_parse("10.0.0.0/8=10.1.1.5, 203.0.113.10", r, PASV_RULES_MAX, bad,
                           sizeof bad) == 2);
    CHECK(!r[0].any && r[1].any);
    CHECK_STR(r[0].address, "10.1.1.5");
    CHECK(pasv_rules_parse("ftp.example.org", r, PASV_RULES_MAX, bad, sizeof bad) == 1);
    CHECK(pasv_rules_parse("10.0.0.0/8=", r, PASV_RULES_MAX, bad, sizeof bad) < 0);
    CHECK(pasv_rules_parse("", r, PASV_RULES_MAX, bad, sizeof bad) == 0);

    /* v1 */
    struct sockaddr_storage src;
    int have;
    const char *h1 = "PROXY TCP4 198.51.100.7 192.0.2.1 40000 21\r\nUSER x\r\n";
    long n = proxy_parse((const unsigned char *)h1, strlen(h1), PROXY_ANY, &src, &have);
    CHECK(n == (long)strlen("PROXY TCP4 198.51.100.7 192.0.2.1 40000 21\r\n") && have);
    CHECK_STR(addr_of(&src), "198.51.100.7");
    CHECK(ntohs(((struct sockaddr_in *)&src)->sin_port) == 40000);
    const char *h6 = "PROXY TCP6 2001:db8::7 2001:db8::1 1234 21\r\n";
    CHECK(proxy_parse((const unsigned char *)h6, strlen(h6), PROXY_V1, &src, &have) > 0);
    CHECK_STR(addr_of(&src), "2001:db8::7");
    CHECK(proxy_parse((const unsigned char *)"PROXY UNKNOWN\r\n", 15, PROXY_V1, &src, &have) ==
              15 &&
          !have);
    CHECK(proxy_parse((const unsigned char *)"PROXY TCP4 1.2.3", 16, PROXY_V1, &src, &have) == 0);
    CHECK(proxy_parse((const unsigned char *)"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31, PROXY_V1, &src,
                      &have) < 0); /* no CR */
    CHECK(proxy_parse((const unsigned char *)"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n", 34, PROXY_V1,
                      &src, &have) < 0);
    CHECK(proxy_parse((const unsigned char *)"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", 36, PROXY_V1,
                      &src, &have) < 0);
    /* 2^32 + 21 and signs: %u took them, and the first wrapped to port 21. */
    const char *wrap = "PROXY TCP4 1.2.3.4 5.6.7.8 4294967317 21\r\n";
    CHECK(proxy_parse((const unsigned char *)wrap, strlen(wrap), PROXY_V1, &src, &have) < 0);
    const char *sign = "PROXY TCP4 1.2.3.4 5.6.7.8 +1 21\r\n";
    CHECK(proxy_parse((const unsigned char *)sign, strlen(sign), PROXY_V1, &src, &have) < 0);
    const char *zero = "PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n";
    CHECK(proxy_parse((const unsigned char *)zero, strlen(zero), PROXY_V1, &src, &have) > 0);
    CHECK(proxy_parse((const unsigned char *)h1, strlen(h1), PROXY_V2, &src, &have) < 0);
    char longline[200];
    memset(longline, 'A', sizeof longline);
    memcpy(longline, "PROXY ", 6);
    CHECK(proxy_parse((unsigned char *)longline, sizeof longline, PROXY_V1, &src, &have) < 0);
    CHECK(proxy_parse((const unsigned char *)"USER x\r\n", 8, PROXY_ANY, &src, &have) < 0);

    /* v2 */
    unsigned char h[64] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
                           0x54, 0x0a, 0x21, 0x11, 0x00, 12,   198,  51,   100,  9,
                           192,  0,    2,    1,    0x9c, 0x40, 0x00, 0x15};
    CHECK(proxy_parse(h, 28, PROXY_V2, &src, &have) == 28 && have);
    CHECK_STR(addr_of(&src), "198.51.100.9");
    CHECK(proxy_parse(h, 20, PROXY_V2, &src, &have) == 0); /* truncated: wait */
    CHECK(proxy_parse(h, 28, PROXY_V1, &src, &have) < 0);  /* v2 not accepted */
    unsigned char t[64];
    memcpy(t, h, 28);
    t[15] = 12 + 5; /* a TLV: type 0x04, length 2, value */
    t[28] = 0x04;
    t[29] = 0;
    t[30] = 2;
    t[31] = 'x';
    t[32] = 'y';
    CHECK(proxy_parse(t, 33, PROXY_V2, &src, &have) == 33);
    t[30] = 9; /* TLV longer than the header */
    CHECK(proxy_parse(t, 33, PROXY_V2, &src, &have) < 0);
    memcpy(t, h, 28);
    t[12] = 0x20; /* LOCAL */
    CHECK(proxy_parse(t, 28, PROXY_V2, &src, &have) == 28 && !have);
    t[12] = 0x31; /* version 3 */
    CHECK(proxy_parse(t, 28, PROXY_V2, &src, &have) < 0);
    memcpy(t, h, 28);
    t[14] = 0xff; /* oversized */
    CHECK(proxy_parse(t, 28, PROXY_V2, &src, &have) < 0);
    memcpy(t, h, 28);
    t[15] = 4; /* too short for TCP4 addresses */
    CHECK(proxy_parse(t, 20, PROXY_V2, &src, &have) < 0);

    /* proxy_read consumes exactly the header */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(write(sv[0], h1, strlen(h1)) == (ssize_t)strlen(h1));
    char why[128];
    CHECK(proxy_read(sv[1], PROXY_ANY, 1000, &src, why, sizeof why) == PROXY_OK);
    char rest[32] = "";
    CHECK(read(sv[1], rest, sizeof rest - 1) == 8);
    CHECK(memcmp(rest, "USER x\r\n", 8) == 0);
    CHECK(write(sv[0], "PROXY TC", 8) == 8);
    CHECK(proxy_read(sv[1], PROXY_ANY, 200, &src, why, sizeof why) == PROXY_TIMEOUT);
    close(sv[0]);
    close(sv[1]);
    return unit_done("netproxy");
}
