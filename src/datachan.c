#include "datachan.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "proxy.h"
#include "session_info.h"
#include "util.h"

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

void dc_init(struct datachan *dc)
{
    dc->listen_fd = -1;
    dc->active = false;
    dc->worker = 0;
    dc->worker_fd = -1;
    dc->worker_tls = false;
}

bool dc_active(const struct datachan *dc)
{
    return dc->listen_fd >= 0 || dc->worker > 0 || dc->active;
}

void dc_set_active(struct datachan *dc, const struct sockaddr_storage *target)
{
    dc_reset(dc);
    dc->active = true;
    dc->target = *target;
}

int dc_parse_port(const char *arg, struct sockaddr_storage *out)
{
    unsigned v[6];
    int n = 0;
    const char *p = arg;
    for (int i = 0; i < 6; i++) {
        char num[4];
        size_t len = strspn(p, "0123456789");
        if (len == 0 || len > 3)
            return -1;
        memcpy(num, p, len);
        num[len] = '\0';
        if (!parse_uint(num, 255, &v[i]))
            return -1;
        p += len;
        n++;
        if (i < 5) {
            if (*p != ',')
                return -1;
            p++;
        }
    }
    if (*p || n != 6)
        return -1;
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    unsigned char *a = (unsigned char *)&s4.sin_addr;
    for (int i = 0; i < 4; i++)
        a[i] = (unsigned char)v[i];
    s4.sin_port = htons((uint16_t)(v[4] * 256 + v[5]));
    memset(out, 0, sizeof *out);
    memcpy(out, &s4, sizeof s4);
    return 0;
}

int dc_parse_eprt(const char *arg, struct sockaddr_storage *out, unsigned *proto)
{
    char d = arg[0];
    if (d < 33 || d > 126)
        return -1;
    char buf[128];
    if (strlen(arg) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", arg + 1);
    char *f[3];
    char *p = buf;
    for (int i = 0; i < 3; i++) {
        char *e = strchr(p, d);
        if (!e)
            return -1;
        *e = '\0';
        f[i] = p;
        p = e + 1;
    }
    if (*p)
        return -1;
    unsigned port;
    if (!parse_uint(f[0], 255, proto))
        return -1;
    if (!parse_uint(f[2], 65535, &port) || port == 0)
        return -1;
    memset(out, 0, sizeof *out);
    if (*proto == 1) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, f[1], &s4->sin_addr) != 1)
            return -1;
    } else if (*proto == 2) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, f[1], &s6->sin6_addr) != 1)
            return -1;
    } else {
        return -2;
    }
    return 0;
}

int dc_connect_start(struct datachan *dc, const struct sockaddr_storage *local, char *why,
                     size_t whylen)
{
    /* Connect in the control connection's family, so the client sees the same server address;
     * an IPv4 target on an IPv6 (mapped) control socket becomes a mapped address. */
    struct sockaddr_storage to = dc->target, from = *local;
    if (from.ss_family == AF_INET6 && to.ss_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, &to, sizeof s4);
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&to;
        memset(&to, 0, sizeof to);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = s4.sin_port;
        s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&s6->sin6_addr.s6_addr[12], &s4.sin_addr, 4);
    }
    set_port(&from, 0);
    socklen_t alen =
        from.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int fd = socket(from.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&from, alen) < 0) {
        snprintf(why, whylen, "%s: %s", fd < 0 ? "socket" : "bind", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&to, alen) < 0 && errno != EINPROGRESS) {
        snprintf(why, whylen, "connect: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void dc_reset(struct datachan *dc)
{
    if (dc->listen_fd >= 0)
        close(dc->listen_fd);
    if (dc->worker_fd >= 0)
        close(dc->worker_fd);
    if (dc->worker > 0) {
        kill(dc->worker, SIGKILL);
        while (waitpid(dc->worker, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    dc_init(dc);
}

int dc_listen(struct datachan *dc, const struct sockaddr_storage *local, unsigned min_port,
              unsigned max_port, unsigned *port, char *why, size_t whylen)
{
    dc_reset(dc);
    int fd = socket(local->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    /* The server closes a download's connection first, so its end waits in TIME_WAIT for a
     * minute: without this, a busy range of N ports serves N transfers a minute. Linux still
     * refuses a second listener on the port. */
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
        snprintf(why, whylen, "SO_REUSEADDR: %s", strerror(errno));
        close(fd);
        return -1;
    }
    struct sockaddr_storage a = *local;
    socklen_t alen =
        a.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    /* A random start in the range, then every port once (RFC 2577 §8: not sequential). */
    unsigned span = max_port - min_port + 1;
    unsigned first = random_below(span);
    for (unsigned i = 0; i < span; i++) {
        unsigned p = min_port + (first + i) % span;
        set_port(&a, p);
        if (bind(fd, (struct sockaddr *)&a, alen) == 0) {
            if (listen(fd, 4) < 0) {
                snprintf(why, whylen, "listen: %s", strerror(errno));
                close(fd);
                return -1;
            }
            dc->listen_fd = fd;
            *port = p;
            return 0;
        }
        if (errno != EADDRINUSE && errno != EACCES) {
            snprintf(why, whylen, "bind: %s", strerror(errno));
            close(fd);
            return -1;
        }
    }
    close(fd);
    snprintf(why, whylen, "no free port in %u-%u", min_port, max_port);
    return -1;
}

/* Through a trusted balancer, the data connection's real source is in its PROXY header. */
static bool real_source(int fd, struct sockaddr_storage *from, const struct proxy_policy *pp)
{
    if (!pp || !pp->mode)
        return true;
    bool trusted = false;
    for (int i = 0; i < pp->ntrusted && !trusted; i++)
        trusted = cidr_match(&pp->trusted[i], from);
    if (!trusted)
        return true; /* a direct connection: its socket address is the source */
    struct sockaddr_storage src;
    char why[128], who[64];
    if (proxy_read(fd, pp->mode, pp->timeout_ms, &src, why, sizeof why) != PROXY_OK) {
        sockaddr_to_str(from, who, sizeof who);
        log_msg(LOG_WARNING, "data connection from proxy %s refused: %s", who, why);
        return false;
    }
    if (src.ss_family != AF_UNSPEC)
        *from = src;
    return true;
}

int dc_accept(struct datachan *dc, const struct sockaddr_storage *peer,
              const struct proxy_policy *pp)
{
    while (dc->listen_fd >= 0) {
        struct sockaddr_storage from;
        socklen_t len = sizeof from;
        int fd = accept4(dc->listen_fd, (struct sockaddr *)&from, &len, SOCK_CLOEXEC);
        if (fd < 0)
            return -1;
        if (!real_source(fd, &from, pp)) {
            close(fd);
            continue;
        }
        if (!sockaddr_same_host(&from, peer)) {
            char who[64];
            sockaddr_to_str(&from, who, sizeof who);
            log_msg(LOG_WARNING,
                    "data connection from %s refused: not the client's address "
                    "(port stealing attempt?)",
                    who);
            close(fd);
            continue;
        }
        close(dc->listen_fd);
        dc->listen_fd = -1;
        return fd;
    }
    return -1;
}
