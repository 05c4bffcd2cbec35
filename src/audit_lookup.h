/* Which system call the kernel's seccomp killed a process for, from its audit record. */
#ifndef FTPSD_AUDIT_LOOKUP_H
#define FTPSD_AUDIT_LOOKUP_H

#include <sys/types.h>

/*
 * Searches the kernel log (/dev/kmsg, root only) for the seccomp record (audit type 1326) of
 * pid, run by uid ((uid_t)-1: any), and returns its system call number, or -1 when none is
 * found. A process killed by SECCOMP_RET_KILL_PROCESS leaves only SIGSYS in its exit status;
 * this names the call.
 */
int audit_seccomp_syscall(pid_t pid, uid_t uid);
/* Logs "<what> (pid N) killed by seccomp: system call NR (name)", looked up as above. */
void audit_log_seccomp_kill(const char *what, pid_t pid, uid_t uid);

#endif
