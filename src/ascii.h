/* TYPE A line-end conversion (RFC 959 §3.1.1.1): LF on disk, CRLF on the wire. */
#ifndef FTPSD_ASCII_H
#define FTPSD_ASCII_H

#include <stdbool.h>
#include <stddef.h>

/* Disk -> wire: a LF not preceded by CR becomes CRLF. out needs 2*n bytes. *prev_cr carries
 * whether the previous chunk ended with CR. Returns bytes written. */
size_t ascii_to_net(const char *in, size_t n, char *out, bool *prev_cr);
/* Wire -> disk: CRLF becomes LF, a lone CR stays. out needs n+1 bytes. A CR at the end of a
 * chunk is held in *pending_cr until the next byte is seen. Returns bytes written. */
size_t ascii_from_net(const char *in, size_t n, char *out, bool *pending_cr);
/* End of stream: emits a held CR. Returns 0 or 1. */
size_t ascii_from_net_flush(char *out, bool *pending_cr);

#endif
