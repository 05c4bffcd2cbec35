#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "privsep.h"
#include "worker.h"

/* --- seccomp ---------------------------------------------------------------------------- */

/* System calls every role makes: memory, exiting, time, the syslog socket already open. */
static const char *const common_calls[] = {
    "brk",
    "munmap",
    "mremap",
    "madvise",
    "exit",
    "exit_group",
    "close",
    "getpid",
    "gettid",
    "getrandom",
    "clock_gettime",
    "gettimeofday",
    "time",
    "rt_sigreturn",
    "restart_syscall",
    "futex",
    "read",
    "write",
    "recvmsg",
    "sendmsg",
    "sendto",
    "poll",
    "ppoll",
    "clock_nanosleep",
    "nanosleep",
    "fcntl",
    "lseek",
    /* glibc's qsort() sizes its buffer with sysconf(_SC_PHYS_PAGES) for large arrays */
    "sysinfo",
};

/* Measured with strace on Debian 12 (OpenSSL 3.0, glibc 2.36); see docs/ARCHITECTURE.md. */
static const char *const worker_calls[] = {"sendfile", "splice"};

/* The front's filter stays under each worker's own (filters stack), so it also lets through
 * what only workers call (sendfile). */
static const char *const front_calls[] = {
    "sendfile",
    "splice",
    "pipe2",
    "accept4",
    "bind",
    "listen",
    "connect",
    "getsockopt",
    "setsockopt",
    "getsockname",
    "getpeername",
    "shutdown",
    "recvfrom",
    "wait4",
    "close_range",
    "seccomp",
    "prlimit64",
    "setrlimit",
    "set_robust_list",
    "rseq",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "rt_sigaction",
    "rt_sigprocmask",
    "sigaltstack",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "dup",
    "dup2",
};

static const char *const user_calls[] = {
    "openat",
    "openat2",
    "newfstatat",
    "fstat",
    "statx",
    "getdents64",
    "mkdirat",
    "unlinkat",
    "renameat",
    "renameat2",
    "fchmod",
    "fchmodat",
    "utimensat",
    "faccessat",
    "faccessat2",
    "readlinkat",
    "memfd_create",
    "ftruncate",
    "dup",
    "umask",
    "pread64",
    "pwrite64",
    "fsync",
    "fdatasync",
    /* a replacement upload keeps the old file's group */
    "fchown",
    /* SIGTERM is blocked while a request runs */
    "rt_sigprocmask",
};

static int allow(scmp_filter_ctx ctx, const char *name)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0; /* not a system call on this architecture */
    return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
}

static int allow_list(scmp_filter_ctx ctx, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (allow(ctx, names[i]) < 0)
            return -1;
    return 0;
}

/* Anonymous, never executable memory: no mapping of files, no code injection. The kernel reads
 * only the low 32 bits of mmap's fd, and callers pass -1 zero- or sign-extended (glibc, raw
 * syscalls), so only those bits are compared; libseccomp's _32 macros truncate the datum, not
 * the argument, and would refuse the sign-extended form. */
static int memory_rules(scmp_filter_ctx ctx)
{
    return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 2,
                            SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0),
                            SCMP_A4(SCMP_CMP_MASKED_EQ, 0xffffffffULL, 0xffffffffULL)) < 0 ||
                   seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                                    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)) < 0
               ? -1
               : 0;
}

static int front_rules(scmp_filter_ctx ctx)
{
    /* Network sockets for the data connections only; no new UNIX sockets (abstract sockets
     * are reachable even from a chroot). glibc's syslog reconnect then fails quietly. */
    /* TCP only (type and protocol too: other protocols are kernel code, some loaded on demand);
     * socketpair only for UNIX sockets, the workers' channels. */
    const uint32_t flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 3, SCMP_A0_32(SCMP_CMP_EQ, AF_INET),
                         SCMP_A1_32(SCMP_CMP_MASKED_EQ, ~flags, SOCK_STREAM),
                         SCMP_A2_32(SCMP_CMP_EQ, 0)) < 0 ||
        seccomp_rule_add(
            ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 3, SCMP_A0_32(SCMP_CMP_EQ, AF_INET6),
            SCMP_A1_32(SCMP_CMP_MASKED_EQ, ~flags, SOCK_STREAM), SCMP_A2_32(SCMP_CMP_EQ, 0)) < 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1,
                         SCMP_A0_32(SCMP_CMP_EQ, AF_UNIX)) < 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
                         SCMP_A0_32(SCMP_CMP_EQ, AF_UNIX)) < 0)
        return -1;
    /* fork() for workers: a new process, never a thread or a namespace. */
    const uint64_t bad = CLONE_THREAD | CLONE_VM | CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID |
                         CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, bad, 0)) < 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) < 0)
        return -1;
    /* Workers are stopped with SIGKILL; nothing else is sent, and never to another process
     * group or to every process of the uid (a negative pid): all sessions share the uid. */
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 2,
                         SCMP_A0_32(SCMP_CMP_MASKED_EQ, 0x80000000U, 0),
                         SCMP_A1_32(SCMP_CMP_EQ, SIGKILL)) < 0)
        return -1;
    /* A worker's own filter and no_new_privs (libseccomp sets it again), and its tie to the
     * front's life. */
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                         SCMP_A0_32(SCMP_CMP_EQ, PR_SET_NO_NEW_PRIVS)) < 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                         SCMP_A0_32(SCMP_CMP_EQ, PR_SET_PDEATHSIG)) < 0 ||
        allow(ctx, "getppid") < 0)
        return -1;
    return allow_list(ctx, front_calls, sizeof front_calls / sizeof front_calls[0]);
}

/* Kernel TLS (tls_ktls): OpenSSL attaches the "tls" upper-layer protocol to the data socket and
 * hands the keys to the kernel. TLS downloads cork the socket while they stream (worker.c). Nothing
 * else may be set on the socket. */
static int worker_rules(scmp_filter_ctx ctx)
{
    return allow_list(ctx, worker_calls, sizeof worker_calls / sizeof worker_calls[0]) < 0 ||
                   seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setsockopt), 2,
                                    SCMP_A1(SCMP_CMP_EQ, SOL_TCP),
                                    SCMP_A2(SCMP_CMP_EQ, TCP_ULP)) < 0 ||
                   seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setsockopt), 2,
                                    SCMP_A1(SCMP_CMP_EQ, SOL_TCP),
                                    SCMP_A2(SCMP_CMP_EQ, TCP_CORK)) < 0 ||
                   seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setsockopt), 1,
                                    SCMP_A1(SCMP_CMP_EQ, SOL_TLS)) < 0
               ? -1
               : 0;
}

static int user_rules(scmp_filter_ctx ctx)
{
    /* No network at all: refused with an error, so a syslog reconnect cannot kill it. */
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 0) < 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(connect), 0) < 0)
        return -1;
    /* By number: a libseccomp older than the call would not know its name. */
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SYS_fchmodat2, 0) < 0)
        return -1;
    return allow_list(ctx, user_calls, sizeof user_calls / sizeof user_calls[0]);
}

static volatile int trap_report_fd = -1;

/* SECCOMP_TRAP: tell the front which call was refused, then die of SIGSYS as a kill would. */
static void on_sigsys(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)uc;
    static struct msg m;
    if (trap_report_fd >= 0) {
        msg_init(&m, MSG_RESULT);
        msg_put_u32(&m, WR_SANDBOX);
        msg_put_u64(&m, (uint64_t)(unsigned)info->si_syscall);
        msg_put_str(&m, "");
        msg_put_str(&m, "");
        msg_send(trap_report_fd, &m);
    }
    /* SA_RESETHAND restored the default action: the same call now ends the process. */
    syscall(info->si_syscall, 0, 0, 0, 0, 0, 0);
    _exit(128 + SIGSYS);
}

int sandbox_seccomp(const struct config *cfg, enum sandbox_role role, int report_fd, char *why,
                    size_t whylen)
{
    if (cfg->seccomp == SECCOMP_OFF)
        return 0;
    uint32_t def = cfg->seccomp == SECCOMP_LOG    ? SCMP_ACT_LOG
                   : cfg->seccomp == SECCOMP_TRAP ? SCMP_ACT_TRAP
                                                  : SCMP_ACT_KILL_PROCESS;
    if (cfg->seccomp == SECCOMP_TRAP) {
        trap_report_fd = role == SB_WORKER ? report_fd : -1;
        struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO | SA_RESETHAND};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSYS, &sa, NULL);
    }
    scmp_filter_ctx ctx = seccomp_init(def);
    if (!ctx) {
        snprintf(why, whylen, "seccomp_init failed");
        return -1;
    }
    int rc = allow_list(ctx, common_calls, sizeof common_calls / sizeof common_calls[0]);
    if (rc == 0)
        rc = memory_rules(ctx);
    if (rc == 0) {
        switch (role) {
        case SB_FRONT:
            rc = front_rules(ctx);
            break;
        case SB_USER:
            rc = user_rules(ctx);
            break;
        case SB_WORKER:
            rc = worker_rules(ctx);
            break;
        }
    }
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0) {
        snprintf(why, whylen, "loading the seccomp filter failed: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

void sandbox_syscall_name(int nr, char *buf, size_t len)
{
    char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    snprintf(buf, len, "%s", name ? name : "unknown");
    free(name);
}

/* --- Landlock ---------------------------------------------------------------------------- */

/* The UAPI as of Linux 6.12 (ABI 6); Debian 12's headers stop at ABI 2. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

static uint64_t fs_rights(long abi)
{
    uint64_t r = (1ULL << 13) - 1; /* ABI 1: EXECUTE .. MAKE_SYM */
    if (abi >= 2)
        r |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        r |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        r |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return r;
}

int sandbox_landlock(enum sandbox_role role, int root_fd, char *why, size_t whylen)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 0)
        return 0; /* not built in or disabled at boot: chroot and seccomp still hold */
    struct ll_ruleset_attr attr = {.handled_access_fs = fs_rights(abi)};
    size_t size = sizeof(uint64_t);
    if (abi >= 4 && role != SB_FRONT) {
        /* No TCP bind or connect where no network belongs (the front needs both). */
        attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
        size = 2 * sizeof(uint64_t);
    }
    if (abi >= 6) {
        /* Signals and abstract UNIX sockets stay inside this session's processes. */
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
        size = sizeof attr;
    }
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (rs < 0) {
        snprintf(why, whylen, "landlock_create_ruleset: %s", strerror(errno));
        return -1;
    }
    if (role == SB_USER) {
        struct landlock_path_beneath_attr pb = {.allowed_access = attr.handled_access_fs,
                                                .parent_fd = root_fd};
        if (syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0) {
            snprintf(why, whylen, "landlock_add_rule: %s", strerror(errno));
            close(rs);
            return -1;
        }
    }
    if (syscall(SYS_landlock_restrict_self, rs, 0) < 0) {
        snprintf(why, whylen, "landlock_restrict_self: %s", strerror(errno));
        close(rs);
        return -1;
    }
    close(rs);
    return (int)abi;
}

/* --- resource limits ---------------------------------------------------------------------- */

int sandbox_rlimits(const struct config *cfg, enum sandbox_role role, char *why, size_t whylen)
{
    struct rlimit nofile = {cfg->max_open_files, cfg->max_open_files}, cur;
    /* A lower hard limit (pam_limits' nofile, for the user process) cannot be raised: kept. */
    if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max < nofile.rlim_max)
        nofile.rlim_cur = nofile.rlim_max = cur.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nofile) < 0) {
        snprintf(why, whylen, "RLIMIT_NOFILE: %s", strerror(errno));
        return -1;
    }
    /* The user process and the workers never start a process. (The front forks workers, and
     * RLIMIT_NPROC counts every process of its uid, shared by all sessions: seccomp limits it
     * instead.) */
    if (role != SB_FRONT) {
        struct rlimit none = {0, 0};
        if (setrlimit(RLIMIT_NPROC, &none) < 0) {
            snprintf(why, whylen, "RLIMIT_NPROC: %s", strerror(errno));
            return -1;
        }
    }
    /* The front holds each upload's descriptor before its worker does, so it is bound too. The
     * user process writes only listings (memfd), which may be larger than any file. */
    if (cfg->max_file_size && role != SB_USER) {
        struct rlimit fsize = {cfg->max_file_size, cfg->max_file_size};
        /* Writes past the limit fail with EFBIG (552) instead of killing with SIGXFSZ. */
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &fsize) < 0) {
            snprintf(why, whylen, "RLIMIT_FSIZE: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}
