/*
 * Virtual paths: vpath_join, vpath_split and vpath_rel.
 *
 * Input: one byte that picks the output capacity (0..127 bytes, or VPATH_MAX as the server
 * uses), then the working directory, a NUL, and the client's argument. The output buffer is
 * allocated with exactly that capacity, so ASan sees any write past it.
 *
 * Checked: the result is canonical (starts with '/', no "//", no "." or ".." component, no
 * trailing '/' except for the root), fits in cap, equals an independent model of the lexical
 * join (which also predicts exactly when the join must fail), and is a fixed point: joining
 * it to "/" or to any directory gives it back. vpath_split of the result gives a canonical
 * parent and a base name that join back to the result.
 */
#include <stdlib.h>
#include <string.h>

#include "path.h"
#include "util.h"

#include "fuzz.h"

static void check_canonical(const char *s, size_t cap)
{
    size_t n = strlen(s);
    FUZZ_ASSERT(n + 1 <= cap);
    FUZZ_ASSERT(s[0] == '/');
    FUZZ_ASSERT(n == 1 || s[n - 1] != '/');
    FUZZ_ASSERT(!strstr(s, "//"));
    for (const char *c = s + 1; n > 1 && c;) {
        const char *e = strchr(c, '/');
        size_t l = e ? (size_t)(e - c) : strlen(c);
        FUZZ_ASSERT(l > 0);
        FUZZ_ASSERT(!(l == 1 && c[0] == '.'));
        FUZZ_ASSERT(!(l == 2 && c[0] == '.' && c[1] == '.'));
        c = e ? e + 1 : NULL;
    }
}

/*
 * The model: a stack of components; a component is pushed only if the output so far plus
 * '/', the component and the NUL fit in cap (that is how vpath_join fails: when any
 * intermediate path does not fit, even if ".." would shorten it again), and at most
 * VPATH_MAX / 2 + 1 components deep.
 */
static int model_join(const char *cwd, const char *arg, char *out, size_t cap)
{
    if (cap < 2)
        return -1;
    size_t len = 0, depth = 0;
    size_t *starts = xmalloc((VPATH_MAX / 2 + 1) * sizeof *starts);
    const char *parts[2] = {arg[0] == '/' ? "" : cwd, arg};
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        const char *p = parts[i];
        for (;;) {
            p += strspn(p, "/");
            if (!*p)
                break;
            size_t l = strcspn(p, "/");
            if (l == 1 && p[0] == '.') {
            } else if (l == 2 && p[0] == '.' && p[1] == '.') {
                if (depth)
                    len = starts[--depth];
            } else {
                if (len + l + 2 > cap || depth >= VPATH_MAX / 2 + 1) {
                    rc = -1;
                    break;
                }
                starts[depth++] = len;
                out[len++] = '/';
                memcpy(out + len, p, l);
                len += l;
            }
            p += l;
        }
    }
    free(starts);
    if (rc == 0) {
        if (len == 0)
            out[len++] = '/';
        out[len] = '\0';
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fin in = {data, size};
    uint8_t c = fin_u8(&in);
    size_t cap = c < 128 ? c : VPATH_MAX;
    size_t n;
    const uint8_t *p = fin_field(&in, &n);
    char *cwd = fuzz_strndup(p, n);
    char *arg = fuzz_strndup(in.p, in.n);

    char *out = xmalloc(cap ? cap : 1);
    char *model = xmalloc(VPATH_MAX + 1);
    int rc = vpath_join(cwd, arg, out, cap);
    int mrc = model_join(cwd, arg, model, cap);
    FUZZ_ASSERT(rc == 0 || rc == -1);
    FUZZ_ASSERT(rc == mrc);
    if (rc == 0) {
        check_canonical(out, cap);
        FUZZ_ASSERT(strcmp(out, model) == 0);

        /* Fixed point: "/" + out, out + "", any cwd + out (absolute). */
        char *again = xmalloc(cap);
        FUZZ_ASSERT(vpath_join("/", out, again, cap) == 0 && strcmp(again, out) == 0);
        FUZZ_ASSERT(vpath_join(out, "", again, cap) == 0 && strcmp(again, out) == 0);
        FUZZ_ASSERT(vpath_join(out, ".", again, cap) == 0 && strcmp(again, out) == 0);
        FUZZ_ASSERT(vpath_join(cwd, out, again, cap) == 0 && strcmp(again, out) == 0);

        const char *rel = vpath_rel(out);
        FUZZ_ASSERT(strcmp(out, "/") == 0 ? strcmp(rel, ".") == 0 : rel == out + 1);

        char *parent = xmalloc(cap);
        const char *base = NULL;
        int src = vpath_split(out, parent, cap, &base);
        if (strcmp(out, "/") == 0) {
            FUZZ_ASSERT(src == -1);
        } else {
            FUZZ_ASSERT(src == 0);
            check_canonical(parent, cap);
            FUZZ_ASSERT(base > out && base < out + strlen(out) && *base && !strchr(base, '/'));
            FUZZ_ASSERT(vpath_join(parent, base, again, cap) == 0 && strcmp(again, out) == 0);
            /* ".." from the result is its parent. */
            FUZZ_ASSERT(vpath_join(out, "..", again, cap) == 0 && strcmp(again, parent) == 0);
        }
        free(parent);
        free(again);
    }
    free(model);
    free(out);
    free(arg);
    free(cwd);
    return 0;
}
