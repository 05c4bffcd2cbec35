#include "audit_lookup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sandbox.h"
#include "util.h"

/* The kernel stamps records from its coarse clock, a tick behind, and the wall clock may be
 * stepped; a pid comes round again only after pid_max other processes, far more than a second. */
#define CLOCK_SLACK_MS 1000

int64_t audit_record_ms(const char *rec)
{
    const char *a = strstr(rec, " audit(");
    long long sec;
    unsigned ms;
    int used = 0;
    if (!a || sscanf(a + 7, "%lld.%3u:%n", &sec, &ms, &used) != 2 || used == 0)
        return -1;
    return (int64_t)sec * 1000 + ms;
}

int audit_seccomp_syscall(pid_t pid, uid_t uid, int64_t not_before)
{
    int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char want[32], want_uid[32] = "";
    snprintf(want, sizeof want, " pid=%d ", (int)pid);
    if (uid != (uid_t)-1)
        snprintf(want_uid, sizeof want_uid, " uid=%u ", (unsigned)uid);
    int found = -1;
    char rec[8192];
    /* The record is written as the process dies, but kauditd emits it when it next runs: on a
     * loaded machine that took more than the 100 ms once allowed. Up to a second, only when a
     * process was killed. */
    for (int attempt = 0; attempt < 40 && found < 0; attempt++) {
        lseek(fd, 0, SEEK_SET);
        for (;;) {
            ssize_t n = read(fd, rec, sizeof rec - 1);
            if (n < 0 && errno == EPIPE)
                continue; /* records were overwritten while reading: go on */
            if (n <= 0)
                break;
            rec[n] = '\0';
            const char *p = strstr(rec, "type=1326");
            if (!p || !strstr(p, want) || (want_uid[0] && !strstr(p, want_uid)) ||
                audit_record_ms(p) + CLOCK_SLACK_MS < not_before)
                continue;
            const char *s = strstr(p, " syscall=");
            if (s)
                found = atoi(s + 9);
        }
        if (found < 0)
            sleep_ms(25);
    }
    close(fd);
    return found;
}

void audit_log_seccomp_kill(const char *what, pid_t pid, uid_t uid, int64_t not_before)
{
    int nr = audit_seccomp_syscall(pid, uid, not_before);
    if (nr < 0) {
        log_msg(LOG_ERR,
                "%s (pid %d) killed by seccomp (SIGSYS); the system call is in the "
                "kernel audit log (type=1326), or set seccomp = trap",
                what, (int)pid);
        return;
    }
    char name[64];
    sandbox_syscall_name(nr, name, sizeof name);
    log_msg(LOG_ERR, "%s (pid %d) killed by seccomp: forbidden system call %d (%s)", what, (int)pid,
            nr, name);
}
