/* Small helpers shared by every process: memory, growable buffers, number parsing. */
#ifndef FTPSD_UTIL_H
#define FTPSD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Fatal allocation failure: the process ends; its parent reports it. */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable byte buffer that is always NUL-terminated. */
struct sbuf {
    char *data;
    size_t len;
    size_t cap;
};
void sbuf_init(struct sbuf *b);
void sbuf_free(struct sbuf *b);
void sbuf_reset(struct sbuf *b);
/* Keeps the first len bytes (no-op if it holds no more). */
void sbuf_truncate(struct sbuf *b, size_t len);
void sbuf_add(struct sbuf *b, const void *p, size_t n);
void sbuf_addc(struct sbuf *b, char c);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reports "file:line: message" to errfn (a config or map file's error), if errfn is set. */
void report_at(void (*errfn)(const char *), const char *file, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Strict decimal parsing: digits only, no sign, no spaces, within [0, max]. */
bool parse_u64(const char *s, uint64_t max, uint64_t *out);
bool parse_uint(const char *s, unsigned max, unsigned *out);

/* A C0 control character or DEL: text from clients, certificates or directory services that
 * holds one could forge a reply or log line (CR, LF) or hide what it says. */
static inline bool is_ctl_byte(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/*
 * Makes client text safe to log, in place: every C0 control and DEL, every byte that is not
 * part of valid UTF-8, and every C1 control (U+0080..U+009F, which some terminals obey) or
 * bidirectional override (U+202A..U+202E, U+2066..U+2069, which reorder what a reader sees)
 * becomes repl. Valid UTF-8 text is kept as it is. The result is never longer.
 */
void text_sanitize(char *s, char repl);

bool str_ieq(const char *a, const char *b);
bool str_has_prefix_ci(const char *s, const char *prefix);
/* The directory an absolute configured path (xferlog_file, session_lock_dir) is in, into out:
 * what comes before its last '/', "/" for a name in the root. */
void path_dir_of(const char *path, char *out, size_t len);

/* Write all of buf to a blocking descriptor, retrying on EINTR. */
int write_full(int fd, const void *buf, size_t len);

/* Closes every descriptor but the n given (at most 8; -1 entries are ignored). */
void close_fds_except(const int *keep, int n);

/* Milliseconds on the monotonic clock. */
int64_t now_ms(void);
/* Milliseconds on the wall clock, the kernel audit records' clock. */
int64_t wall_ms(void);
void sleep_ms(unsigned ms);

/* Fills buf with random bytes from the kernel (getrandom). */
void random_bytes(void *buf, size_t len);
uint32_t random_below(uint32_t n);

#endif
