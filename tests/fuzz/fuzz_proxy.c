/*
 * PROXY protocol headers (proxy_parse, v1 and v2) and the address lists of the configuration
 * (cidr_parse_list for proxy_trusted, pasv_rules_parse for pasv_address, cidr_match).
 *
 * Input: one byte of accepted modes (v1, v2 or both), then the bytes a balancer (or anyone who
 * reaches the port) sends first; the same bytes, up to the first NUL, are also read as an
 * address list.
 *
 * Checked for proxy_parse: the returned length never exceeds the input; a header found in len
 * bytes is found, with the same length, in any longer input that starts with it, and every
 * shorter prefix answers "need more" (0), which is what proxy_read's peek-and-retry relies on;
 * a source address is AF_INET or AF_INET6.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "netmatch.h"
#include "proxy.h"
#include "util.h"

#include "fuzz.h"

static long parse_copy(const uint8_t *p, size_t n, int modes, struct sockaddr_storage *src,
                       int *have)
{
    /* An exact-size copy, so that ASan sees a read past n. */
    uint8_t *c = xmalloc(n ? n : 1);
    memcpy(c, p, n);
    long r = proxy_parse(c, n, modes, src, have);
    free(c);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int modes = 1 + data[0] % 3; /* PROXY_V1, PROXY_V2, PROXY_ANY */
    const uint8_t *buf = data + 1;
    size_t len = size - 1;

    struct sockaddr_storage src;
    memset(&src, 0xa5, sizeof src);
    int have = -1;
    long r = parse_copy(buf, len, modes, &src, &have);
    FUZZ_ASSERT(r >= -1);
    FUZZ_ASSERT(r <= (long)len);
    if (r > 0) {
        FUZZ_ASSERT(have == 0 || have == 1);
        if (have)
            FUZZ_ASSERT(src.ss_family == AF_INET || src.ss_family == AF_INET6);
        /* Every shorter prefix needs more bytes (checked at a few cut points). */
        size_t cuts[] = {1, (size_t)r / 2, (size_t)r - 1, len ? (size_t)(buf[0] % r) : 0};
        for (size_t i = 0; i < ARRAY_LEN(cuts); i++) {
            size_t k = cuts[i];
            if (k == 0 || k >= (size_t)r)
                continue;
            struct sockaddr_storage s2;
            int h2 = -1;
            FUZZ_ASSERT(parse_copy(buf, k, modes, &s2, &h2) == 0);
        }
        /* What follows the header (FTP, a ClientHello) does not change it. */
        uint8_t *more = xmalloc((size_t)r + 64);
        memcpy(more, buf, (size_t)r);
        memset(more + r, 'A', 64);
        struct sockaddr_storage s3;
        memset(&s3, 0xa5, sizeof s3);
        int h3 = -1;
        FUZZ_ASSERT(proxy_parse(more, (size_t)r + 64, modes, &s3, &h3) == r);
        FUZZ_ASSERT(h3 == have);
        if (have)
            FUZZ_ASSERT(memcmp(&s3, &src, sizeof src) == 0);
        free(more);
    }

    /* The same bytes as a configuration value. */
    const uint8_t *z = memchr(buf, '\0', len);
    size_t sl = z ? (size_t)(z - buf) : len;
    char *s = xmalloc(sl + 1);
    memcpy(s, buf, sl);
    s[sl] = '\0';
    struct cidr nets[64];
    char bad[256];
    int nn = cidr_parse_list(s, nets, ARRAY_LEN(nets), bad, sizeof bad);
    FUZZ_ASSERT(nn >= -1 && nn <= (int)ARRAY_LEN(nets));
    for (int i = 0; i < nn; i++) {
        FUZZ_ASSERT(nets[i].family == AF_INET || nets[i].family == AF_INET6);
        FUZZ_ASSERT(nets[i].prefix <= (nets[i].family == AF_INET ? 32u : 128u));
        if (r > 0 && have)
            (void)cidr_match(&nets[i], &src);
    }
    struct pasv_rule rules[PASV_RULES_MAX];
    int nr = pasv_rules_parse(s, rules, PASV_RULES_MAX, bad, sizeof bad);
    FUZZ_ASSERT(nr >= -1 && nr <= PASV_RULES_MAX);
    for (int i = 0; i < nr; i++) {
        size_t al = strnlen(rules[i].address, sizeof rules[i].address);
        FUZZ_ASSERT(al > 0 && al < sizeof rules[i].address);
        if (!rules[i].any) {
            FUZZ_ASSERT(rules[i].net.family == AF_INET || rules[i].net.family == AF_INET6);
            if (r > 0 && have)
                (void)cidr_match(&rules[i].net, &src);
        }
    }
    struct cidr one;
    if (sl < 200 && cidr_parse(s, &one) == 0)
        FUZZ_ASSERT(one.prefix <= (one.family == AF_INET ? 32u : 128u));
    free(s);
    return 0;
}
