/*
 * Shared helpers for the libFuzzer harnesses (tests/fuzz/fuzz_*.c): an invariant check that
 * stops the run with __builtin_trap, a small reader that takes typed values off the input, and
 * what several harnesses hand to the code under test (a NUL-terminated copy of a field, an
 * error callback).
 * Built by `make fuzz` / `make fuzz-smoke` (tests/fuzz/run.sh) with clang and
 * -fsanitize=fuzzer,address,undefined.
 */
#ifndef FTPSD_FUZZ_H
#define FTPSD_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant of the code under test: a violation is a finding, reported like a crash. */
#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond);         \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* Consumes the input front to back; reads past the end give zeros / empty data. */
struct fin {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t fin_u8(struct fin *f)
{
    if (f->n == 0)
        return 0;
    f->n--;
    return *f->p++;
}

static inline uint64_t fin_uint(struct fin *f, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++)
        v = v << 8 | fin_u8(f);
    return v;
}

/* The next field up to a NUL byte (or the end); the NUL is consumed. */
static inline const uint8_t *fin_field(struct fin *f, size_t *len)
{
    const uint8_t *s = f->p;
    const uint8_t *z = f->n ? memchr(f->p, '\0', f->n) : NULL;
    size_t l = z ? (size_t)(z - f->p) : f->n;
    f->p += l + (z ? 1 : 0);
    f->n -= l + (z ? 1 : 0);
    *len = l;
    return s;
}

/* A NUL-terminated copy of n input bytes (which may hold NULs of their own). */
static inline char *fuzz_strndup(const uint8_t *p, size_t n)
{
    char *s = xmalloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Error callback of the parsers: messages ("file:line: what") must be proper strings. */
static inline void fuzz_errfn(const char *msg)
{
    FUZZ_ASSERT(msg != NULL);
    volatile size_t n = strlen(msg);
    (void)n;
}

#endif
