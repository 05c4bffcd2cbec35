/*
 * Test only: linked into build/asan/ftpsd-selftest, a copy of build/asan/ftpsd that misbehaves
 * on purpose, for tests/sanitizers/test_plumbing.py (the first step of make check-asan). It
 * proves that a report from each kind of process, confined as in production, reaches the logs.
 *
 * FTPSD_SELFTEST=ROLE:KIND, ROLE one of monitor, front, user, worker; KIND one of
 *   heap   a heap-buffer-overflow read (AddressSanitizer)
 *   ubsan  a signed integer overflow (UndefinedBehaviorSanitizer)
 *   leak   a block nobody frees (LeakSanitizer, at exit: only the monitor checks)
 * The fault happens once, in that process, after its seccomp filter is loaded (the monitor has
 * none): for the worker when worker_main starts, for the others at the first message they
 * receive from another process (msg_recv). The entry points are wrapped with -Wl,--wrap.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "front.h"
#include "monitor.h"
#include "privsep.h"
#include "session.h"
#include "worker.h"

extern int sandbox_hooks_filters; /* sandbox_hooks.c: filters loaded in this process */

void __real_monitor_run(struct config *cfg);
void __wrap_monitor_run(struct config *cfg);
void __real_front_main(const struct session_info *si, int mon_fd);
void __wrap_front_main(const struct session_info *si, int mon_fd);
void __real_session_main(const struct session_args *a);
void __wrap_session_main(const struct session_args *a);
void __real_worker_main(const struct worker_args *a);
void __wrap_worker_main(const struct worker_args *a);
int __real_msg_recv(int sock, struct msg *m);
int __wrap_msg_recv(int sock, struct msg *m);

static const char *role = "";
static int fired;

static void *volatile leaked;
static volatile int sink;

static void selftest_fault(const char *here)
{
    const char *want = getenv("FTPSD_SELFTEST");
    size_t n = strlen(here);
    if (fired || !want || strncmp(want, here, n) != 0 || want[n] != ':')
        return;
    if (strcmp(here, "monitor") != 0 && sandbox_hooks_filters == 0)
        return; /* not confined yet */
    fired = 1;
    const char *kind = want + n + 1;
    if (strcmp(kind, "heap") == 0) {
        char *volatile p = malloc(8);
        sink = p[8];
        free(p);
    } else if (strcmp(kind, "ubsan") == 0) {
        volatile int x = INT_MAX;
        sink = x + 1;
    } else if (strcmp(kind, "leak") == 0) {
        leaked = malloc(77);
        leaked = NULL;
    }
}

void __wrap_monitor_run(struct config *cfg)
{
    role = "monitor";
    __real_monitor_run(cfg);
    abort(); /* _Noreturn */
}

void __wrap_front_main(const struct session_info *si, int mon_fd)
{
    role = "front";
    __real_front_main(si, mon_fd);
    abort();
}

void __wrap_session_main(const struct session_args *a)
{
    role = "user";
    __real_session_main(a);
    abort();
}

void __wrap_worker_main(const struct worker_args *a)
{
    role = "worker";
    selftest_fault(role);
    __real_worker_main(a);
    abort();
}

int __wrap_msg_recv(int sock, struct msg *m)
{
    int r = __real_msg_recv(sock, m);
    selftest_fault(role);
    return r;
}
