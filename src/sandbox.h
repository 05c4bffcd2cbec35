/*
 * What each unprivileged process may still do: a libseccomp allow-list per role, Landlock
 * (where the kernel has it) and resource limits. Loaded after the privilege drop.
 */
#ifndef FTPSD_SANDBOX_H
#define FTPSD_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum sandbox_role { SB_FRONT, SB_USER, SB_WORKER };

#include <sys/syscall.h>
#ifndef SYS_fchmodat2
/* Linux 6.6; glibc 2.36's headers predate it. 452 in the unified table, offset where an
 * architecture's table is (MIPS: by ABI). */
#if defined(__mips__) && _MIPS_SIM == _MIPS_SIM_ABI64
#define SYS_fchmodat2 5452
#elif defined(__mips__) && _MIPS_SIM == _MIPS_SIM_NABI32
#define SYS_fchmodat2 6452
#elif defined(__mips__)
#define SYS_fchmodat2 4452
#elif defined(__alpha__)
#define SYS_fchmodat2 562
#else
#define SYS_fchmodat2 452
#endif
#endif

/* config key "seccomp" */
enum seccomp_mode {
    SECCOMP_OFF = 0,
    SECCOMP_ON,   /* SECCOMP_RET_KILL_PROCESS: a forbidden call kills the process */
    SECCOMP_TRAP, /* SIGSYS names the call to the parent, then the process dies of SIGSYS */
    SECCOMP_LOG,  /* SECCOMP_RET_LOG: allowed, but the kernel logs it (finding missing calls) */
};

/*
 * Loads the role's seccomp filter (mode from the configuration). For SECCOMP_TRAP in a worker,
 * report_fd receives the number of the forbidden call before the process dies. 0 or -1 with
 * the reason in why.
 */
int sandbox_seccomp(const struct config *cfg, enum sandbox_role role, int report_fd, char *why,
                    size_t whylen);
/*
 * Landlock: the user process may touch only what is below root_fd; the front and workers no
 * path at all (and cannot signal or reach abstract sockets outside their session, ABI >= 6).
 * Returns the ABI used (0: not offered by the kernel, skipped) or -1 with why.
 */
int sandbox_landlock(enum sandbox_role role, int root_fd, char *why, size_t whylen);
/* Resource limits for the role: open files, processes (none for user and worker), file size. */
int sandbox_rlimits(const struct config *cfg, enum sandbox_role role, char *why, size_t whylen);
/* Name of a system call number of this architecture ("getrandom"), or "unknown". */
void sandbox_syscall_name(int nr, char *buf, size_t len);

#endif
