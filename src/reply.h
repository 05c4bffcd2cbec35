/* FTP reply formatting (RFC 959 §4.2): single and multi-line replies, Telnet-safe text. */
#ifndef FTPSD_REPLY_H
#define FTPSD_REPLY_H

#include "util.h"

/* Appends "DDD text\r\n". */
void reply_one(struct sbuf *out, int code, const char *text);
/*
 * Appends a reply whose text may hold several lines separated by '\n': the first line gets
 * "DDD-", middle lines are sent as they are (indented by one space when they would otherwise
 * start with a digit), and the last line gets "DDD ". One line gives a single-line reply.
 */
void reply_multi(struct sbuf *out, int code, const char *text);
/* Like reply_multi, but every line but the last is written "DDD-line" (PAM messages, errors). */
void reply_dashed(struct sbuf *out, int code, const char *text);
/* Appends one line of reply text with 0xFF doubled (RFC 3659 §2.2) and CR padded with NUL. */
void reply_text(struct sbuf *out, const char *text, size_t len);
/* Quotes a path for 257 replies: every '"' doubled (RFC 959 Appendix II). */
void reply_quote_path(struct sbuf *out, const char *path);

#endif
