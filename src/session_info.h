/* What every process of one session knows about it from the start. */
#ifndef FTPSD_SESSION_INFO_H
#define FTPSD_SESSION_INFO_H

#include <sys/socket.h>
#include <sys/types.h>

#include "config.h"

struct session_info {
    const struct config *cfg;
    char sid[20];                  /* random id shown in every log line */
    struct sockaddr_storage local; /* control connection, server side */
    struct sockaddr_storage peer;  /* control connection, client side */
    char local_str[64];
    char peer_str[64];
    uid_t nopriv_uid; /* the front's and workers' identity */
    gid_t nopriv_gid;
};

/* The port of an IPv4 or IPv6 address. */
unsigned sockaddr_port(const struct sockaddr_storage *ss);
/* Address without port, IPv4-mapped IPv6 shown as IPv4. */
void sockaddr_to_str(const struct sockaddr_storage *ss, char *buf, size_t len);
/* Equal host addresses (ports ignored; IPv4-mapped IPv6 equals its IPv4 form). */
int sockaddr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
