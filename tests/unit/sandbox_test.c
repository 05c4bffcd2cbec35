/* The front's seccomp filter, call by call: each probe runs in a child that loads the filter,
 * makes one call and exits 0; a refused call kills the child with SIGSYS. */
#include "sandbox.h"

#include <netinet/in.h>
#include <grp.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit_lookup.h"
#include "config.h"
#include "unit.h"
#include "util.h"

static struct config cfg;

/* A uid no process has: the probes run as it, so that a filter that failed to refuse
 * kill(-1, SIGKILL) signals nobody (as root it would end every process of the machine). */
#define PROBE_UID 4000000000U

enum outcome { ALLOWED, KILLED, REFUSED, NOT_RUN };

static bool become_probe_uid(void)
{
    return setgroups(0, NULL) == 0 && setresgid(PROBE_UID, PROBE_UID, PROBE_UID) == 0 &&
           setresuid(PROBE_UID, PROBE_UID, PROBE_UID) == 0;
}

static pid_t last_probe;
static int64_t last_started;

static enum outcome probe(int (*call)(void))
{
    last_started = wall_ms();
    pid_t pid = last_probe = fork();
    if (pid == 0) {
        char why[256];
        if (!become_probe_uid() || sandbox_seccomp(&cfg, SB_FRONT, -1, why, sizeof why) < 0)
            _exit(3);
        _exit(call() < 0 ? 2 : 0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS)
        return KILLED;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
        return NOT_RUN;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? ALLOWED : REFUSED;
}

static int tcp4(void)
{
    return socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}
static int tcp6(void)
{
    return socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
}
static int udp(void)
{
    return socket(AF_INET, SOCK_DGRAM, 0);
}
static int udplite(void)
{
    return socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
}
static int sctp(void)
{
    return socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
}
static int raw(void)
{
    return socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
}
static int unix_socket(void)
{
    return socket(AF_UNIX, SOCK_DGRAM, 0);
}

static int pair_unix(void)
{
    int sv[2];
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

static int pair_inet(void)
{
    int sv[2];
    return socketpair(AF_INET, SOCK_STREAM, 0, sv);
}

static pid_t victim;
static int kill_child(void)
{
    return kill(victim, SIGKILL);
}
static int kill_everyone(void)
{
    return kill(-1, SIGKILL);
}
static int kill_group(void)
{
    return kill(-victim, SIGKILL);
}
static int term_child(void)
{
    return kill(victim, SIGTERM);
}

int main(void)
{
    /* The record's time as /dev/kmsg shows it (a line from this machine). */
    CHECK(audit_record_ms("5,2507,70231108513,-;audit: type=1326 audit(1795816054.148:1624): "
                          "auid=4294967295 uid=60100 pid=4256 syscall=41") == 1795816054148LL);
    CHECK(audit_record_ms("audit: type=1326 uid=60100 pid=4256 syscall=41") == -1);
    CHECK(audit_record_ms("audit: type=1326 audit(x.1:2): pid=1") == -1);
    if (geteuid() != 0) {
        printf("sandbox: skipped (needs root, to run its probes as an unused uid)\n");
        return 0;
    }
    config_defaults(&cfg);
    CHECK(probe(tcp4) == ALLOWED);
    CHECK(probe(tcp6) == ALLOWED);
    CHECK(probe(udp) == KILLED);
    /* The monitor names the call from the kernel's record of that pid and uid, never from a
     * record of another uid. (The kernel may drop records under its printk rate limit.) The
     * other uid is one nothing else runs as: the kernel log keeps the records of earlier
     * processes that had this pid, and the test suite's own nopriv uid (60100) has many. */
    int right = audit_seccomp_syscall(last_probe, PROBE_UID, last_started);
    CHECK(audit_seccomp_syscall(last_probe, PROBE_UID + 1, last_started) == -1);
    /* Nor from a record older than the process: as if the probe's pid came round again and
     * the new process's record were lost. */
    CHECK(audit_seccomp_syscall(last_probe, PROBE_UID, wall_ms() + 5000) == -1);
    if (right == -1)
        printf("sandbox: no kernel record of pid %d (rate-limited?)\n", (int)last_probe);
    else
        CHECK(right == SYS_socket);
    CHECK(probe(udplite) == KILLED);
    CHECK(probe(sctp) == KILLED);
    CHECK(probe(raw) == KILLED);
    CHECK(probe(unix_socket) == REFUSED); /* EACCES, so a syslog reconnect cannot kill */
    CHECK(probe(pair_unix) == ALLOWED);
    CHECK(probe(pair_inet) == KILLED);

    /* A process of the probes' uid to signal: SIGKILL may reach it, nothing else may. */
    victim = fork();
    if (victim == 0) {
        if (setpgid(0, 0) == 0 && become_probe_uid())
            pause();
        _exit(0);
    }
    setpgid(victim, victim);
    usleep(100000);
    CHECK(probe(term_child) == KILLED);
    CHECK(probe(kill_everyone) == KILLED);
    CHECK(probe(kill_group) == KILLED);
    CHECK(probe(kill_child) == ALLOWED);
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 200 && (got = waitpid(victim, &st, WNOHANG)) == 0; i++)
        usleep(10000);
    if (got == 0) {
        kill(victim, SIGKILL);
        waitpid(victim, &st, 0);
        CHECK(!"the victim outlived the allowed SIGKILL");
    }
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    config_free(&cfg);
    return unit_done("sandbox");
}
