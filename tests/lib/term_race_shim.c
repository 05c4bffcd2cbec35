/*
 * LD_PRELOAD shim for tests/integration/test_faults.py only: widens the window between a
 * process's last check for SIGTERM and its wait, where a SIGTERM used to be noticed only at the
 * next wake-up. TERM_RACE_SHIM=front or =monitor picks the process; its first wait of that kind
 * sleeps TERM_RACE_SLEEP_MS first (the whole time, whatever signal arrives), then waits.
 *   front:   the wait for a command (the control connection, fd 0, alone or first)
 *   monitor: the wait for the front's requests (one descriptor, not fd 0, no time limit)
 * Only nanosleep is used: it is in every sandboxed role's filter.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TERM_RACE_SLEEP_MS 2000

static int (*real_poll)(struct pollfd *, nfds_t, int);
static int (*real_ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
static int mode; /* 0 off, 1 front, 2 monitor */
static bool done;

__attribute__((constructor)) static void init(void)
{
    if (!real_poll)
        real_poll = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
    if (!real_ppoll)
        real_ppoll = (int (*)(struct pollfd *, nfds_t, const struct timespec *,
                              const sigset_t *))dlsym(RTLD_NEXT, "ppoll");
    const char *m = getenv("TERM_RACE_SHIM");
    mode = !m ? 0 : strcmp(m, "front") == 0 ? 1 : strcmp(m, "monitor") == 0 ? 2 : 0;
}

static void maybe_sleep(const struct pollfd *p, nfds_t n, bool unlimited)
{
    if (done || n < 1)
        return;
    bool hit = mode == 1 ? p[0].fd == 0 && p[0].events == POLLIN
                         : mode == 2 && n == 1 && p[0].fd != 0 && unlimited;
    if (!hit)
        return;
    done = true;
    struct timespec left = {TERM_RACE_SLEEP_MS / 1000, (TERM_RACE_SLEEP_MS % 1000) * 1000000L};
    while (nanosleep(&left, &left) < 0 && errno == EINTR)
        ;
}

int poll(struct pollfd *p, nfds_t n, int timeout)
{
    init();
    maybe_sleep(p, n, timeout < 0);
    return real_poll(p, n, timeout);
}

int ppoll(struct pollfd *p, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
    init();
    maybe_sleep(p, n, ts == NULL);
    return real_ppoll(p, n, ts, mask);
}
