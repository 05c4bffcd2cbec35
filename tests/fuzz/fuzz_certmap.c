/*
 * Client-certificate map (cert_map_file): certmap_parse, then certmap_lookup with a
 * certificate's identities taken from the input.
 *
 * Input: the map text, then NUL-separated fields: subject DN, issuer DN, then values that
 * alternate between SAN rfc822Name (email) and SAN UPN. Any user name returned must satisfy
 * the documented rules (1..255 bytes, not "." or "..", no '/', ':', blank or control
 * character) and fit the caller's buffer.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "certmap.h"
#include "util.h"

#include "fuzz.h"

#define MAX_VALUES 8

static void check_user(const char *user, size_t cap, unsigned line, unsigned nlines)
{
    size_t n = strlen(user);
    FUZZ_ASSERT(n < cap);
    if (line == 0) {
        FUZZ_ASSERT(n == 0);
        return;
    }
    FUZZ_ASSERT(line <= nlines);
    FUZZ_ASSERT(n >= 1 && n <= 255);
    FUZZ_ASSERT(strcmp(user, ".") != 0 && strcmp(user, "..") != 0);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)user[i];
        FUZZ_ASSERT(c != '/' && c != ':' && c > ' ' && c != 0x7f);
    }
}

/*
 * glibc's regcomp copies the tree of a repetition: once per repeat for "{m,n}", once more for
 * each '+' ("x+" is "xx*"), so nested ones ("((a{99}){99}){99}", "a++++...+") take gigabytes
 * to compile. The map is the administrator's file, read at start, and that cost is glibc's, not
 * ftpsd's: such maps are skipped (at most two '{' with counts below 100, at most four '+') so
 * that the fuzzer does not stop at an out-of-memory there.
 */
static bool regex_bomb(const char *text)
{
    unsigned braces = 0, plus = 0;
    for (const char *p = text; (p = strchr(p, '+')); p++)
        if (++plus > 4)
            return true;
    for (const char *p = text; (p = strchr(p, '{')); p++) {
        if (++braces > 2)
            return true;
        for (const char *q = p + 1; *q && *q != '}'; q++) {
            size_t digits = strspn(q, "0123456789");
            if (digits > 2)
                return true;
            q += digits;
            if (!*q || *q == '}')
                break;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fin in = {data, size};
    size_t n;
    const uint8_t *p = fin_field(&in, &n);
    char *text = fuzz_strndup(p, n);
    if (regex_bomb(text)) {
        free(text);
        return -1; /* not added to the corpus */
    }
    unsigned nlines = 1;
    for (const char *s = text; *s; s++)
        nlines += *s == '\n';

    char *fields[2 + 2 * MAX_VALUES] = {0};
    size_t nf = 0;
    while (in.n > 0 && nf < ARRAY_LEN(fields)) {
        p = fin_field(&in, &n);
        fields[nf++] = fuzz_strndup(p, n);
    }
    const char *emails[MAX_VALUES], *upns[MAX_VALUES];
    size_t ne = 0, nu = 0;
    for (size_t i = 2; i < nf; i++) {
        if (i % 2 == 0)
            emails[ne++] = fields[i];
        else
            upns[nu++] = fields[i];
    }
    struct cert_ids ids = {
        .subject = nf > 0 ? fields[0] : "CN=alice,O=Example,C=US",
        .issuer = nf > 1 ? fields[1] : NULL,
        .emails = ne ? emails : NULL,
        .nemails = ne,
        .upns = nu ? upns : NULL,
        .nupns = nu,
    };

    struct certmap *m = certmap_parse(text, "fuzz.map", fuzz_errfn);
    char user[256];
    unsigned line = certmap_lookup(m, &ids, user, sizeof user);
    check_user(user, sizeof user, line, nlines);
    if (m) {
        FUZZ_ASSERT(certmap_rule_count(m) <= nlines);
        /* A small buffer: a name that does not fit is never truncated; that value fails and the
         * next value or rule is tried. So the answer is the same as with 256 bytes when that
         * name fits, else a later rule (or the same rule with a later value), or none. */
        size_t cap = 1 + size % 32;
        char small[32];
        unsigned l2 = certmap_lookup(m, &ids, small, cap);
        check_user(small, cap, l2, nlines);
        if (line == 0)
            FUZZ_ASSERT(l2 == 0);
        else if (strlen(user) < cap)
            FUZZ_ASSERT(l2 == line && strcmp(small, user) == 0);
        else
            FUZZ_ASSERT(l2 == 0 || l2 >= line);
        /* No identities at all: no rule can match. */
        struct cert_ids empty = {0};
        FUZZ_ASSERT(certmap_lookup(m, &empty, user, sizeof user) == 0 && user[0] == '\0');
        FUZZ_ASSERT(certmap_lookup(m, NULL, user, sizeof user) == 0);
    } else {
        FUZZ_ASSERT(line == 0);
    }
    certmap_free(m);
    for (size_t i = 0; i < nf; i++)
        free(fields[i]);
    free(text);
    return 0;
}
