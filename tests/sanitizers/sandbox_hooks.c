/*
 * Test only: linked into build/asan/ftpsd by `make check-asan`, never into ftpsd itself.
 *
 * Gets AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer reports out of ftpsd's
 * sandboxed processes without changing src/. The sanitizer runtime opens its log file
 * (log_path=DIR/asan -> DIR/asan.PID) only when it first reports, and by then the process is
 * chrooted (the path does not exist there) and, for the front and the workers, seccomp forbids
 * openat. So, through the linker (-Wl,--wrap=SYMBOL, see the Makefile):
 *
 *  drop_privileges  every session process (front, user process) passes here while it is still
 *                   root and unconfined: DIR/asan.PID is opened now and given to the runtime
 *                   (__sanitizer_set_report_fd), /proc/self/maps is read now (the runtime's
 *                   module list, __sanitizer_sandbox_on_notify), and LeakSanitizer is
 *                   turned off for this process (__lsan_is_turned_off below): its ptrace-based
 *                   stop-the-world cannot work in a non-dumpable, filtered process.
 *  fork             a child of a process that already went through drop_privileges is a data
 *                   worker. It closes every descriptor but its two (xfer.c: keep_only), and
 *                   tests check that it holds exactly two, so it cannot keep a log file: its
 *                   reports are copied into memory shared with the front (an ASan report
 *                   callback, the UBSan report hook), which the front writes into its own log
 *                   when it reaps the worker (waitpid) and when it exits.
 *  waitpid          see fork.
 *  seccomp_load     adds one rule to every filter: sigaltstack(NULL, &old), a query that
 *                   changes nothing. The compiler calls __asan_handle_no_return() before every
 *                   call of a noreturn function (_exit, worker_main, ...), and it asks for the
 *                   alternate signal stack; the user process's and the workers' filters do not
 *                   allow sigaltstack (the front's allows it already, so the rule is refused
 *                   there, which is fine).
 *  (constructor)    SIGSEGV, SIGBUS, SIGFPE and SIGILL sent with kill() (tests do, to crash a
 *                   process on purpose) kill the process by that signal, as without the
 *                   runtime, whose handler would report a bogus fault at si_addr = the sender's
 *                   pid and exit(1). Faults (si_code > 0) still go to the runtime's handler.
 *  config_defaults, config_load, config_override
 *                   what they allocate is ignored by LeakSanitizer (__lsan_disable): the
 *                   configuration lives as long as the process, and main() returns without
 *                   freeing it (ftpsd -t, configuration errors), which LeakSanitizer would
 *                   report at every such exit. (Suppressions by function name cannot be used:
 *                   nothing is symbolized at run time, see symbolize=0 in the Makefile.)
 * Both filter changes exist only in build/asan/ftpsd; everything else in the filters, and kill
 * on any other call, is as in ftpsd (test_sandbox.py runs unchanged).
 *
 * The monitor is not touched: it stays root and unfiltered, writes DIR/asan.PID itself, and
 * keeps LeakSanitizer's check at exit. The user process and the workers leave with _exit(), so
 * no leak check runs there anyway; valgrind (tests/integration/test_valgrind.py) covers them.
 *
 * FTPSD_ASAN_OPTIONS / FTPSD_UBSAN_OPTIONS / FTPSD_LSAN_OPTIONS (from the Makefile) become the
 * runtime's defaults, so that processes started outside the test fixture (xinetd, systemd
 * units in test_system.py, ftpsd -t) log to the same place; ASAN_OPTIONS etc. still override.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <seccomp.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>

#include "config.h"
#include "drop.h"

int __real_drop_privileges(const struct identity *id, const char *chroot_dir, char *why,
                           size_t whylen);
int __wrap_drop_privileges(const struct identity *id, const char *chroot_dir, char *why,
                           size_t whylen);
pid_t __real_fork(void);
pid_t __wrap_fork(void);
pid_t __real_waitpid(pid_t pid, int *status, int options);
pid_t __wrap_waitpid(pid_t pid, int *status, int options);
int __real_seccomp_load(const scmp_filter_ctx ctx);
int __wrap_seccomp_load(const scmp_filter_ctx ctx);
extern int sandbox_hooks_filters;
void __real_config_defaults(struct config *c);
void __wrap_config_defaults(struct config *c);
int __real_config_load(struct config *c, const char *path, void (*errfn)(const char *msg));
int __wrap_config_load(struct config *c, const char *path, void (*errfn)(const char *msg));
int __real_config_override(struct config *c, const char *assignment,
                           void (*errfn)(const char *msg));
int __wrap_config_override(struct config *c, const char *assignment,
                           void (*errfn)(const char *msg));

/* The wrapper must keep the wrapped function's type; a change in drop.h fails the build. */
_Static_assert(__builtin_types_compatible_p(__typeof__(&drop_privileges),
                                            __typeof__(&__wrap_drop_privileges)),
               "drop_privileges changed: update tests/sanitizers/sandbox_hooks.c");
_Static_assert(__builtin_types_compatible_p(__typeof__(&config_defaults),
                                            __typeof__(&__wrap_config_defaults)) &&
                   __builtin_types_compatible_p(__typeof__(&config_load),
                                                __typeof__(&__wrap_config_load)) &&
                   __builtin_types_compatible_p(__typeof__(&config_override),
                                                __typeof__(&__wrap_config_override)),
               "config_* changed: update tests/sanitizers/sandbox_hooks.c");

/* The runtime's own interfaces that its headers of this clang version do not declare. */
int __lsan_is_turned_off(void);
void __ubsan_on_report(void);
void __ubsan_get_current_report_data(const char **kind, const char **message, const char **filename,
                                     unsigned *line, unsigned *col, char **memory_addr);
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);
const char *__lsan_default_options(void);

#ifndef FTPSD_ASAN_OPTIONS
#define FTPSD_ASAN_OPTIONS ""
#endif
#ifndef FTPSD_UBSAN_OPTIONS
#define FTPSD_UBSAN_OPTIONS ""
#endif
#ifndef FTPSD_LSAN_OPTIONS
#define FTPSD_LSAN_OPTIONS ""
#endif

const char *__asan_default_options(void)
{
    return FTPSD_ASAN_OPTIONS;
}

const char *__ubsan_default_options(void)
{
    return FTPSD_UBSAN_OPTIONS;
}

const char *__lsan_default_options(void)
{
    return FTPSD_LSAN_OPTIONS;
}

static pid_t sandboxed_pid; /* this process went through drop_privileges */
static int in_worker;       /* forked by a sandboxed process: reports go to `captured` */

#define CAPTURE_SIZE (1u << 20)
struct capture {
    unsigned len; /* bytes used in text, updated atomically by the workers */
    char text[CAPTURE_SIZE - sizeof(unsigned)];
};
static struct capture *captured; /* MAP_SHARED between the front and its workers */

/* Read at the leak check, at exit. Not constant as the interface asks, but only ever turned on
 * before anything could check. */
int __lsan_is_turned_off(void)
{
    return sandboxed_pid != 0;
}

static void capture_append(const char *s, size_t n)
{
    if (!captured)
        return;
    unsigned off = __atomic_fetch_add(&captured->len, (unsigned)n, __ATOMIC_SEQ_CST);
    if (off >= sizeof captured->text)
        return;
    if (n > sizeof captured->text - off)
        n = sizeof captured->text - off;
    memcpy(captured->text + off, s, n);
}

static void capture_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void capture_printf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        capture_append(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void on_asan_report(const char *report)
{
    capture_printf("==%d== (data worker; report captured by its front)\n", (int)getpid());
    capture_append(report, strlen(report));
}

/* UBSan's own text went to the worker's stderr, which it closed; keep what the hook offers. */
void __ubsan_on_report(void)
{
    if (!in_worker)
        return;
    const char *kind = "", *msg = "", *file = "";
    unsigned line = 0, col = 0;
    char *addr = NULL;
    __ubsan_get_current_report_data(&kind, &msg, &file, &line, &col, &addr);
    capture_printf("==%d== (data worker; report captured by its front)\n"
                   "%s:%u:%u: runtime error: %s\n"
                   "SUMMARY: UndefinedBehaviorSanitizer: %s %s:%u:%u\n",
                   (int)getpid(), file, line, col, msg, kind, file, line, col);
}

/* log_path as the runtime resolves it: compiled-in defaults, then the environment, each
 * later source overriding (ASAN, LSAN, UBSAN, as asan_flags.cpp parses them). */
static void option_log_path(const char *opts, char *out, size_t outlen)
{
    for (const char *p = opts; p && *p;) {
        size_t n = strcspn(p, ": \t");
        if (n > 9 && strncmp(p, "log_path=", 9) == 0)
            snprintf(out, outlen, "%.*s", (int)(n - 9), p + 9);
        p += n;
        p += strspn(p, ": \t");
    }
}

static int log_fd = -1; /* this process's DIR/asan.PID, opened before any confinement */

static void open_log(void)
{
    char prefix[4096] = "";
    option_log_path(__asan_default_options(), prefix, sizeof prefix);
    option_log_path(__lsan_default_options(), prefix, sizeof prefix);
    option_log_path(__ubsan_default_options(), prefix, sizeof prefix);
    option_log_path(getenv("ASAN_OPTIONS"), prefix, sizeof prefix);
    option_log_path(getenv("LSAN_OPTIONS"), prefix, sizeof prefix);
    option_log_path(getenv("UBSAN_OPTIONS"), prefix, sizeof prefix);
    if (!prefix[0] || strcmp(prefix, "stderr") == 0 || strcmp(prefix, "stdout") == 0)
        return;
    char path[4200];
    snprintf(path, sizeof path, "%s.%d", prefix, (int)getpid());
    /* O_APPEND: the runtime and flush_captured() share this descriptor. */
    log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd >= 0)
        __sanitizer_set_report_fd((void *)(long)log_fd);
    else
        dprintf(STDERR_FILENO, "sandbox_hooks: cannot open %s: %s\n", path, strerror(errno));
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* The front writes what its workers reported into its own log (write is allowed by every
 * filter). */
static void flush_captured(void)
{
    if (!captured || in_worker || sandboxed_pid != getpid())
        return;
    unsigned len = __atomic_exchange_n(&captured->len, 0, __ATOMIC_SEQ_CST);
    if (!len)
        return;
    if (len > sizeof captured->text)
        len = sizeof captured->text;
    write_all(log_fd >= 0 ? log_fd : STDERR_FILENO, captured->text, len);
}

int __wrap_drop_privileges(const struct identity *id, const char *chroot_dir, char *why,
                           size_t whylen)
{
    if (sandboxed_pid != getpid()) {
        open_log();
        /* /proc/self/maps is not reachable later: the runtime keeps a copy, and its list of
         * modules is loaded now (the first stack it prints would read the file otherwise). */
        __sanitizer_sandbox_on_notify(NULL);
        char module[256];
        void *offset;
        (void)__sanitizer_get_module_and_offset_for_pc((void *)(uintptr_t)&open_log, module,
                                                       sizeof module, &offset);
        void *p =
            mmap(NULL, sizeof *captured, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        captured = p == MAP_FAILED ? NULL : p;
        sandboxed_pid = getpid();
        atexit(flush_captured);
    }
    return __real_drop_privileges(id, chroot_dir, why, whylen);
}

pid_t __wrap_fork(void)
{
    pid_t pid = __real_fork();
    if (pid == 0 && sandboxed_pid) {
        in_worker = 1;
        /* Never reopen DIR/asan.PID here (chroot; openat would be killed): the runtime does
         * not reopen stderr, which a worker closes; the copy to `captured` is what remains. */
        __sanitizer_set_report_fd((void *)(long)STDERR_FILENO);
        __asan_set_error_report_callback(on_asan_report);
    }
    return pid;
}

pid_t __wrap_waitpid(pid_t pid, int *status, int options)
{
    pid_t r = __real_waitpid(pid, status, options);
    if (r > 0)
        flush_captured();
    return r;
}

/* See the top of the file. */
int sandbox_hooks_filters; /* filters loaded in this process (selftest_faults.c) */

int __wrap_seccomp_load(const scmp_filter_ctx ctx)
{
    (void)seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sigaltstack), 1, SCMP_A0(SCMP_CMP_EQ, 0));
    int rc = __real_seccomp_load(ctx);
    if (rc == 0)
        sandbox_hooks_filters++;
    return rc;
}

/* See the top of the file: signals sent by kill() end the process as they would without the
 * runtime; no system call is needed for it (a filtered process may make none of them). */
static struct sigaction runtime_handler[NSIG];

static volatile int zero;

__attribute__((no_sanitize("address", "undefined"))) static void
on_deadly_signal(int sig, siginfo_t *info, void *uc)
{
    if (info->si_code <= 0) {
        /* SA_RESETHAND restored SIG_DFL on entry, SA_NODEFER left the signal unblocked:
         * the same signal, raised by a fault now, ends the process as kill() meant. */
        if (sig == SIGSEGV || sig == SIGBUS)
            zero = *(volatile int *)(uintptr_t)zero;
        else if (sig == SIGFPE)
            zero = 1 / zero;
        __builtin_trap(); /* SIGILL */
    }
    runtime_handler[sig].sa_sigaction(sig, info, uc);
}

__attribute__((constructor)) static void chain_deadly_signals(void)
{
    /* libc's sigaction, not the runtime's interceptor (which keeps its own handler). */
    int (*real_sigaction)(int, const struct sigaction *, struct sigaction *) =
        (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
    if (!real_sigaction)
        return;
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        int sig = sigs[i];
        struct sigaction old;
        if (real_sigaction(sig, NULL, &old) < 0 || !(old.sa_flags & SA_SIGINFO) ||
            !old.sa_sigaction)
            continue; /* the runtime does not handle it (handle_segv=0 ...) */
        runtime_handler[sig] = old;
        struct sigaction sa = old;
        sa.sa_sigaction = on_deadly_signal;
        sa.sa_flags = old.sa_flags | SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
        real_sigaction(sig, &sa, NULL);
    }
}

/* See the top of the file: the configuration is allocated once and kept. */
void __wrap_config_defaults(struct config *c)
{
    __lsan_disable();
    __real_config_defaults(c);
    __lsan_enable();
}

int __wrap_config_load(struct config *c, const char *path, void (*errfn)(const char *msg))
{
    __lsan_disable();
    int rc = __real_config_load(c, path, errfn);
    __lsan_enable();
    return rc;
}

int __wrap_config_override(struct config *c, const char *assignment, void (*errfn)(const char *msg))
{
    __lsan_disable();
    int rc = __real_config_override(c, assignment, errfn);
    __lsan_enable();
    return rc;
}
