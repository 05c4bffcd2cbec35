#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "session_info.h"

/* Reduces an IPv4-mapped IPv6 address to IPv4 so that both forms compare and print alike. */
static void canonical(const struct sockaddr_storage *in, struct sockaddr_storage *out)
{
    *out = *in;
    if (in->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)in;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = s6->sin6_port};
            memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
            memset(out, 0, sizeof *out);
            memcpy(out, &s4, sizeof s4);
        }
    }
}

unsigned sockaddr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

void sockaddr_to_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    struct sockaddr_storage c;
    canonical(ss, &c);
    const void *a = c.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&c)->sin_addr
                                           : (const void *)&((struct sockaddr_in6 *)&c)->sin6_addr;
    if ((c.ss_family != AF_INET && c.ss_family != AF_INET6) ||
        !inet_ntop(c.ss_family, a, buf, (socklen_t)len))
        snprintf(buf, len, "unknown");
}

int sockaddr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    struct sockaddr_storage x, y;
    canonical(a, &x);
    canonical(b, &y);
    if (x.ss_family != y.ss_family)
        return 0;
    if (x.ss_family == AF_INET)
        return memcmp(&((struct sockaddr_in *)&x)->sin_addr, &((struct sockaddr_in *)&y)->sin_addr,
                      4) == 0;
    if (x.ss_family == AF_INET6)
        return memcmp(&((struct sockaddr_in6 *)&x)->sin6_addr,
                      &((struct sockaddr_in6 *)&y)->sin6_addr, 16) == 0;
    return 0;
}
