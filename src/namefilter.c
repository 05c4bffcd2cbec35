#include "namefilter.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "util.h"

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The ']' that closes the bracket expression p starts ('['), or NULL with what is wrong. A ']'
 * first in it (after '!' or '^') is a member, as fnmatch(3) takes it, and so is a '[' that
 * starts no class; "[:name:]" must name a class fnmatch knows, or it matches nothing. */
static const char *bracket_end(const char *p, const char *end, const char **err)
{
    const char *q = p + 1;
    if (q < end && (*q == '!' || *q == '^'))
        q++;
    if (q < end && *q == ']')
        q++;
    while (q < end) {
        if (*q == '\\' && q + 1 < end) {
            q += 2;
        } else if (*q == '[' && q + 1 < end && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
            char kind = q[1];
            const char *c = q + 2;
            while (c + 1 < end && !(c[0] == kind && c[1] == ']'))
                c++;
            if (c + 1 >= end) {
                *err = "has a '[' without its closing ']'";
                return NULL;
            }
            char name[32];
            size_t n = (size_t)(c - (q + 2));
            if (kind == ':') {
                snprintf(name, sizeof name, "%.*s", (int)n, q + 2);
                if (n >= sizeof name || !wctype(name)) {
                    *err = "names an unknown character class (alpha, digit, upper... are known)";
                    return NULL;
                }
            }
            q = c + 2;
        } else if (*q == ']') {
            return q;
        } else {
            q++;
        }
    }
    *err = "has a '[' without its closing ']'";
    return NULL;
}

/* What is wrong with one pattern as written, or NULL. */
static const char *pattern_problem(const char *pat)
{
    size_t n = strlen(pat);
    if (n == 0)
        return "is empty (two commas, or one at an end)";
    if (n > NAMEFILTER_PATTERN_MAX)
        return "is longer than 255 bytes, the longest name";
    if (strchr(pat, '/'))
        return "contains '/': a pattern matches one name in a path, not a path";
    for (const unsigned char *c = (const unsigned char *)pat; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return "contains a control character";
    if (strcmp(pat, ".") == 0 || strcmp(pat, "..") == 0)
        return "names '.' or '..', which are never the name of a file";
    return NULL;
}

static int fail(struct namefilter *f, char *why, size_t whylen, const char *item, size_t n,
                const char *problem)
{
    /* A long pattern is cut, so that what is wrong with it is still in the message. */
    snprintf(why, whylen, "pattern '%.*s%s' %s", n > 64 ? 64 : (int)n, item, n > 64 ? "..." : "",
             problem);
    namefilter_free(f);
    return -1;
}

int namefilter_parse(struct namefilter *f, const char *list, char *why, size_t whylen)
{
    *f = (struct namefilter){0};
    const char *p = list, *end = list + strlen(list);
    while (p < end && blank(*p))
        p++;
    while (end > p && blank(end[-1]) && !(end - 1 > p && end[-2] == '\\'))
        end--;
    if (end - p >= 2 && *p == '{' && end[-1] == '}') {
        p++;
        end--;
    }
    if (p == end)
        return 0;
    /* Every pattern is a part of list, with a NUL in place of its comma: list's length is
     * enough. */
    char *o = f->buf = xmalloc((size_t)(end - p) + 1);
    for (;;) {
        while (p < end && blank(*p))
            p++;
        const char *item = p;
        char *start = o;
        size_t keep = 0; /* up to the last character that is no trailing blank */
        const char *err = NULL;
        while (p < end && *p != ',' && !err) {
            const char *q = p + 1;
            if (*p == '\\' && p + 1 >= end)
                err = "ends in a lone '\\'";
            else if (*p == '\\')
                q = p + 2;
            else if (*p == '[' && (q = bracket_end(p, end, &err)))
                q++;
            if (err)
                break;
            memcpy(o, p, (size_t)(q - p));
            o += q - p;
            if (q - p > 1 || !blank(*p))
                keep = (size_t)(o - start);
            p = q;
        }
        if (err) {
            size_t shown = strcspn(item, ",");
            return fail(f, why, whylen, item,
                        shown < (size_t)(end - item) ? shown : (size_t)(end - item), err);
        }
        o = start + keep;
        *o++ = '\0';
        const char *problem = pattern_problem(start);
        if (problem)
            return fail(f, why, whylen, start, keep, problem);
        if (f->n >= NAMEFILTER_MAX) {
            snprintf(why, whylen, "more than %d patterns", NAMEFILTER_MAX);
            namefilter_free(f);
            return -1;
        }
        f->pat[f->n++] = start;
        if (p >= end)
            return 0;
        p++; /* the comma */
    }
}

const char *namefilter_match(const struct namefilter *f, const char *name)
{
    for (unsigned i = 0; i < f->n; i++)
        if (fnmatch(f->pat[i], name, 0) == 0)
            return f->pat[i];
    return NULL;
}

bool namefilter_match_path(const struct namefilter *f, const char *vpath, char *comp, size_t cap,
                           const char **pat)
{
    if (f->n == 0)
        return false;
    char *copy = xstrdup(vpath);
    bool hit = false;
    for (char *p = copy, *next; p && !hit; p = next) {
        next = strchr(p, '/');
        if (next)
            *next++ = '\0';
        if (*p && (*pat = namefilter_match(f, p))) {
            snprintf(comp, cap, "%s", p);
            hit = true;
        }
    }
    free(copy);
    return hit;
}

void namefilter_free(struct namefilter *f)
{
    free(f->buf);
    *f = (struct namefilter){0};
}
