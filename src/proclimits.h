/* The monitor's own resource limits and priority, kept from what PAM's session stage sets. */
#ifndef FTPSD_PROCLIMITS_H
#define FTPSD_PROCLIMITS_H

#include <stdbool.h>
#include <sys/resource.h>

struct proc_limits {
    struct rlimit lim[RLIM_NLIMITS];
    bool have[RLIM_NLIMITS];
    int nice;
};

/* Records this process's limits and nice value. */
void proc_limits_save(struct proc_limits *p);
/* Puts them back (pam_limits lowers them in the process that opens the session: the monitor,
 * which must not run under the user's limits; a lowered file size limit killed it with SIGXFSZ
 * at its next xferlog line). Best effort: without CAP_SYS_RESOURCE (rootless mode) a lowered
 * hard limit stays lowered. */
void proc_limits_restore(const struct proc_limits *p);
/* One limit as saved: e.g. RLIMIT_FSIZE for the user process, which writes only listings. */
void proc_limits_restore_one(const struct proc_limits *p, int resource);

#endif
