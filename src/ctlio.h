/*
 * The control connection of the front: non-blocking reads and writes, in plaintext or through
 * TLS, a line reader that strips Telnet sequences (RFC 959 §4, RFC 1123 §4.1.2.12) and refuses
 * overlong lines, and the STARTTLS switch that throws away any plaintext read past AUTH.
 */
#ifndef FTPSD_CTLIO_H
#define FTPSD_CTLIO_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

enum ctl_status {
    CTL_LINE = 1,
    CTL_NONE = 0,
    CTL_TOOLONG = -3,
};

struct ctlio {
    int fd;
    SSL *ssl;
    unsigned char *buf;
    size_t len, cap;
    size_t max_line;
    bool discarding; /* inside an overlong line, dropping bytes up to the next LF */
    bool clearing;   /* our close_notify is out (CCC, REIN): TLS ends at the next byte */
    bool eof;
};

void ctl_init(struct ctlio *c, int fd, size_t max_line);
/* Reads what is available without blocking. >0 bytes, 0 nothing now, -1 EOF or error. */
int ctl_fill(struct ctlio *c);
/* Takes one complete line from the buffer (Telnet-cleaned, without CRLF, NUL-terminated;
 * *n is its length, which may be shorter than strlen if it holds NUL). */
int ctl_next_line(struct ctlio *c, char *out, size_t cap, size_t *n);
/* Takes an ABOR line out of the buffered ones, if there is one, leaving the others in order:
 * ABOR reaches a transfer even behind commands waiting to be read. */
bool ctl_take_abor(struct ctlio *c);
/* Whether ctl_fill can read more into the buffer. */
bool ctl_has_room(const struct ctlio *c);
/* Writes everything, waiting up to timeout_ms. 0 or -1. */
int ctl_write(struct ctlio *c, const void *p, size_t n, int timeout_ms);
/* Drops every buffered byte (plaintext read past AUTH TLS, CVE-2011-1575). */
void ctl_discard(struct ctlio *c);
/*
 * Runs the server handshake on the control socket. With plain_refusal, a first byte that is
 * not a TLS handshake record gets an unprotected 421 (RFC 4217 §10.1) before failing.
 * 0, or -1 (error text in err).
 */
int ctl_starttls(struct ctlio *c, SSL *ssl, int timeout_ms, bool plain_refusal, char *err,
                 size_t errlen);
/*
 * Leaves TLS but keeps the connection (CCC, REIN): sends close_notify now, without waiting for
 * the client's. The next read consumes the client's close_notify if one comes first (a TLS
 * alert record), then continues in plaintext (RFC 4217 §5). The session stays cached.
 */
int ctl_tls_clear(struct ctlio *c, int timeout_ms);
/* Sends close_notify (best effort, bounded) and forgets the TLS object. */
void ctl_tls_close(struct ctlio *c, int timeout_ms);

/* Telnet clean-up of one raw line: IAC IAC -> 0xFF, other IAC commands and option negotiation
 * removed, CR NUL -> CR. Returns the length written to out (out holds at least n bytes). */
size_t telnet_unescape(const unsigned char *in, size_t n, char *out);

#endif
