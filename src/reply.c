#include "reply.h"

#include <stdio.h>
#include <string.h>

void reply_text(struct sbuf *out, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        sbuf_addc(out, (char)c);
        if (c == 0xff)
            sbuf_addc(out, (char)0xff);
        else if (c == '\r')
            sbuf_addc(out, '\0');
    }
}

static void code_prefix(struct sbuf *out, int code, char sep)
{
    char p[8];
    snprintf(p, sizeof p, "%03d%c", code, sep);
    sbuf_adds(out, p);
}

void reply_one(struct sbuf *out, int code, const char *text)
{
    code_prefix(out, code, ' ');
    size_t n = strcspn(text, "\n");
    reply_text(out, text, n);
    sbuf_adds(out, "\r\n");
}

static void reply_lines(struct sbuf *out, int code, const char *text, bool dashed)
{
    const char *p = text;
    bool first = true;
    for (;;) {
        size_t n = strcspn(p, "\n");
        bool last = p[n] == '\0';
        if (last) {
            code_prefix(out, code, ' ');
        } else if (first || dashed) {
            code_prefix(out, code, '-');
        } else if (n > 0 && p[0] >= '0' && p[0] <= '9') {
            sbuf_addc(out, ' ');
        }
        reply_text(out, p, n);
        sbuf_adds(out, "\r\n");
        if (last)
            break;
        p += n + 1;
        first = false;
    }
}

void reply_multi(struct sbuf *out, int code, const char *text)
{
    reply_lines(out, code, text, false);
}

void reply_dashed(struct sbuf *out, int code, const char *text)
{
    reply_lines(out, code, text, true);
}

void reply_quote_path(struct sbuf *out, const char *path)
{
    sbuf_addc(out, '"');
    for (const char *p = path; *p; p++) {
        if (*p == '"')
            sbuf_addc(out, '"');
        sbuf_addc(out, *p);
    }
    sbuf_addc(out, '"');
}
