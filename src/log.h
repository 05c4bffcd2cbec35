/*
 * Logging to journald (native protocol, with the session's fields) or syslog: every line tagged
 * with the session id and client address.
 */
#ifndef FTPSD_LOG_H
#define FTPSD_LOG_H

#include <stddef.h>
#include <syslog.h>

/* Opens the syslog socket now (LOG_NDELAY) so that it survives chroot. */
void log_open(int facility, int max_level);
/* The journal's socket (kept by close_fds_except callers), or -1. */
int log_journal_fd(void);
/* A new syslog socket, for a process that closed its descriptors (before chroot). */
void log_reconnect(void);
void log_set_session(const char *sid, const char *client);
void log_set_user(const char *user);
/* The name a login attempt gave, for journald's FTPSD_USER until a login succeeds or this is
 * set to "" (not in the text: a client's name must not change how its line parses). */
void log_set_attempted_user(const char *user);
/* TLS version/cipher and PROT level, sent as structured fields to journald. */
void log_set_tls(const char *tls, char prot);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s (a client's path) in double quotes, '"' and '\\' escaped, at most LOG_QUOTED_MAX bytes
 * of it (then "..." inside the quotes): what follows it in a line cannot be forged by the
 * name, nor pushed out of the line by its length. */
#define LOG_QUOTED_MAX 1024
void log_quote(char *dst, size_t cap, const char *s);
/* Text for -t and start-up problems, before a session exists: stderr when it is not the socket. */
void log_stderr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_stderr_disable(void);

#endif
