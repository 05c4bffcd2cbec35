/* Leaving root for good: chroot, groups, uid/gid, capabilities (libcap-ng), no_new_privs. */
#ifndef FTPSD_DROP_H
#define FTPSD_DROP_H

#include <stddef.h>
#include <sys/types.h>

struct identity {
    uid_t uid;
    gid_t gid;
    const gid_t *groups; /* supplementary groups, gathered before chroot (no NSS afterwards) */
    int ngroups;
};

/*
 * chroot(dir) when dir is not NULL, then setgroups, setresgid/setresuid to id, every
 * capability set emptied (effective, permitted, inheritable, ambient, bounding), no_new_privs,
 * no core dumps, and SIGTERM when the parent (the monitor) dies. Verifies the result. 0, or -1
 * with the reason in why.
 */
int drop_privileges(const struct identity *id, const char *chroot_dir, char *why, size_t whylen);

#endif
