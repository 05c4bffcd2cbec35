#include "proclimits.h"

#include <errno.h>

void proc_limits_save(struct proc_limits *p)
{
    for (int r = 0; r < RLIM_NLIMITS; r++)
        p->have[r] = getrlimit(r, &p->lim[r]) == 0;
    errno = 0;
    p->nice = getpriority(PRIO_PROCESS, 0);
    if (errno)
        p->nice = 0;
}

void proc_limits_restore_one(const struct proc_limits *p, int resource)
{
    if (resource >= 0 && resource < RLIM_NLIMITS && p->have[resource])
        setrlimit(resource, &p->lim[resource]);
}

void proc_limits_restore(const struct proc_limits *p)
{
    for (int r = 0; r < RLIM_NLIMITS; r++)
        proc_limits_restore_one(p, r);
    setpriority(PRIO_PROCESS, 0, p->nice);
}
