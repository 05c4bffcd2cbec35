/* Which system call the kernel's seccomp killed a process for, from its audit record. */
#ifndef FTPSD_AUDIT_LOOKUP_H
#define FTPSD_AUDIT_LOOKUP_H

#include <stdint.h>
#include <sys/types.h>

/*
 * Searches the kernel log (/dev/kmsg, root only) for the seccomp record (audit type 1326) of
 * pid, run by uid ((uid_t)-1: any), stamped at or after not_before (wall_ms(), when the process
 * was started), and returns its system call number, or -1 when none is found. A process killed
 * by SECCOMP_RET_KILL_PROCESS leaves only SIGSYS in its exit status; this names the call.
 * Without the time bound, a missing record (the kernel's printk rate limit drops some) let an
 * earlier process that had the same pid name the call.
 */
int audit_seccomp_syscall(pid_t pid, uid_t uid, int64_t not_before);
/* A kernel audit record's own time, "audit(1795822310.584:1932)": milliseconds of the wall
 * clock; -1 when it has none. */
int64_t audit_record_ms(const char *rec);
/* Logs "<what> (pid N) killed by seccomp: system call NR (name)", looked up as above. */
void audit_log_seccomp_kill(const char *what, pid_t pid, uid_t uid, int64_t not_before);

#endif
