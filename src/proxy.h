/* The PROXY protocol (HAProxy, v1 text and v2 binary): the real client behind a load balancer. */
#ifndef FTPSD_PROXY_H
#define FTPSD_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

enum proxy_mode { PROXY_OFF = 0, PROXY_V1 = 1, PROXY_V2 = 2, PROXY_ANY = 3 };

enum proxy_result {
    PROXY_OK = 0,       /* *src holds the client (or is unchanged for LOCAL/UNKNOWN) */
    PROXY_BAD = -1,     /* malformed, truncated, oversized or of the wrong version */
    PROXY_TIMEOUT = -2, /* no complete header in time */
    PROXY_EOF = -3,
};

/*
 * Parses one header at the start of buf (len bytes). Returns its length (> 0) with *src filled
 * (source address and port; *have_src 0 for LOCAL or UNKNOWN), 0 when more bytes are needed,
 * or -1 when it is not a valid header of an accepted version.
 */
long proxy_parse(const unsigned char *buf, size_t len, int modes, struct sockaddr_storage *src,
                 int *have_src);
/*
 * Reads exactly one header from a socket (peeking first, so nothing after it is consumed),
 * waiting at most timeout_ms. On PROXY_OK with a source, *src is the client.
 */
enum proxy_result proxy_read(int fd, int modes, int timeout_ms, struct sockaddr_storage *src,
                             char *why, size_t whylen);

#endif
