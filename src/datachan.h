/* Passive data connections: a listening socket on a random port of the configured range, bound
 * to the control connection's local address, that accepts only the control peer's address. */
#ifndef FTPSD_DATACHAN_H
#define FTPSD_DATACHAN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "netmatch.h"

/* PROXY protocol on data connections: a connection from one of these balancers starts with a
 * header naming the real client (mode 0: off). */
struct proxy_policy {
    int mode;
    const struct cidr *trusted;
    int ntrusted;
    int timeout_ms;
};

struct datachan {
    int listen_fd; /* -1 when no PASV/EPSV is pending */
    bool active;   /* PORT/EPRT given: connect to target at the transfer */
    struct sockaddr_storage target;
    pid_t worker;           /* worker carrying the accepted connection, or 0 */
    int64_t worker_started; /* wall_ms() before its fork, to find its seccomp record */
    int worker_fd;          /* its channel */
    bool worker_tls;        /* it began the TLS handshake at accept time */
};

void dc_init(struct datachan *dc);
bool dc_active(const struct datachan *dc);
/* Opens a new listener (closing any previous one). 0 with *port, or -1 with why. */
int dc_listen(struct datachan *dc, const struct sockaddr_storage *local, unsigned min_port,
              unsigned max_port, unsigned *port, char *why, size_t whylen);
/*
 * Accepts what is pending on the listener without blocking. Returns the connected socket when
 * it comes from the control peer (and closes the listener); connections from other addresses
 * are closed and logged (port stealing). -1 when nothing acceptable is there.
 */
int dc_accept(struct datachan *dc, const struct sockaddr_storage *peer,
              const struct proxy_policy *pp);
/* Closes the listener and kills any worker. */
void dc_reset(struct datachan *dc);
/* Records an active-mode target (closing any listener). */
void dc_set_active(struct datachan *dc, const struct sockaddr_storage *target);
/*
 * Starts a non-blocking connection to the active-mode target from the control connection's
 * local address. Returns the socket (connecting) or -1 with why.
 */
int dc_connect_start(struct datachan *dc, const struct sockaddr_storage *local, char *why,
                     size_t whylen);
/* Parses "h1,h2,h3,h4,p1,p2" (PORT). 0, or -1 on a syntax error. */
int dc_parse_port(const char *arg, struct sockaddr_storage *out);
/* Parses "<d>proto<d>addr<d>port<d>" (EPRT, RFC 2428). 0; -1 syntax error; -2 unknown
 * protocol (*proto set). */
int dc_parse_eprt(const char *arg, struct sockaddr_storage *out, unsigned *proto);

#endif
