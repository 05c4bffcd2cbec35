#include "banner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static char *read_all(const char *path, size_t *len, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return NULL;
    }
    /* One byte more than allowed tells a file that is too long. */
    char *buf = xmalloc(BANNER_MAX_BYTES + 2);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, BANNER_MAX_BYTES + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, whylen, "%s", strerror(errno));
            close(fd);
            free(buf);
            return NULL;
        }
        if (r == 0 || (n += (size_t)r) > BANNER_MAX_BYTES)
            break;
    }
    close(fd);
    if (n > BANNER_MAX_BYTES) {
        snprintf(why, whylen, "longer than %d bytes", BANNER_MAX_BYTES);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *banner_load(const char *path, char *why, size_t whylen)
{
    size_t len;
    char *text = read_all(path, &len, why, whylen);
    if (!text)
        return NULL;
    if (memchr(text, '\0', len)) {
        snprintf(why, whylen, "not a text file (it holds a NUL byte)");
        free(text);
        return NULL;
    }
    /* CR LF and LF end lines; text_sanitize then takes any other control character. */
    char *w = text;
    unsigned lines = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\r' && p[1] == '\n')
            continue;
        if (*p == '\n')
            lines++;
        *w++ = *p;
    }
    *w = '\0';
    if (w > text && w[-1] == '\n')
        *--w = '\0';
    else if (w > text)
        lines++;
    if (w == text) {
        snprintf(why, whylen, "empty");
        free(text);
        return NULL;
    }
    if (lines > BANNER_MAX_LINES) {
        snprintf(why, whylen, "more than %d lines", BANNER_MAX_LINES);
        free(text);
        return NULL;
    }
    for (char *line = text; line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        text_sanitize(line, '?');
        size_t n = strlen(line);
        if (nl) {
            /* text_sanitize may have shortened the line: close the gap up to the next one. */
            memmove(line + n + 1, nl + 1, strlen(nl + 1) + 1);
            line[n] = '\n';
            line += n + 1;
        } else {
            line = NULL;
        }
    }
    return text;
}
