/* banner_file: the 220 greeting read from a file (a legal notice of several lines). */
#ifndef FTPSD_BANNER_H
#define FTPSD_BANNER_H

#include <stddef.h>

#define BANNER_MAX_BYTES 8192
#define BANNER_MAX_LINES 100

/*
 * The file's text, each line made safe to send (control characters and invalid UTF-8 as '?',
 * CR LF or LF ends a line, a last empty line dropped), for a multi-line reply. NULL with why
 * when it cannot be read, is empty, or is longer than BANNER_MAX_BYTES or BANNER_MAX_LINES
 * (a greeting every client waits for is no place for a file that grew). Freed by the caller.
 */
char *banner_load(const char *path, char *why, size_t whylen);

#endif
