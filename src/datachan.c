#include "datachan.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "session_info.h"
#include "util.h"

void dc_init(struct datachan *dc)
{
    dc->listen_fd = -1;
    dc->worker = 0;
    dc->worker_fd = -1;
    dc->worker_tls = false;
}

bool dc_active(const struct datachan *dc)
{
    return dc->listen_fd >= 0 || dc->worker > 0;
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

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
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
    struct sockaddr_storage a = *local;
    socklen_t alen = a.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                            : sizeof(struct sockaddr_in6);
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

int dc_accept(struct datachan *dc, const struct sockaddr_storage *peer)
{
    while (dc->listen_fd >= 0) {
        struct sockaddr_storage from;
        socklen_t len = sizeof from;
        int fd = accept4(dc->listen_fd, (struct sockaddr *)&from, &len, SOCK_CLOEXEC);
        if (fd < 0)
            return -1;
        if (!sockaddr_same_host(&from, peer)) {
            char who[64];
            sockaddr_to_str(&from, who, sizeof who);
            log_msg(LOG_WARNING, "data connection from %s refused: not the client's address "
                                 "(port stealing attempt?)", who);
            close(fd);
            continue;
        }
        close(dc->listen_fd);
        dc->listen_fd = -1;
        return fd;
    }
    return -1;
}
