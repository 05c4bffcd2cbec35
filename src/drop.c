#include "drop.h"

#include <cap-ng.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

/* Checked with capget and prctl, not libcap-ng's /proc reader: after chroot, /proc would be
 * looked up inside the new root. */
static bool caps_left(bool bounding)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0)
        return true;
    for (int i = 0; i < 2; i++)
        if (d[i].effective || d[i].permitted || d[i].inheritable)
            return true;
    for (int c = 0; c <= 63; c++) {
        int b = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
        if (b < 0)
            break; /* past the last capability this kernel knows */
        if ((bounding && b > 0) || prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) > 0)
            return true;
    }
    return false;
}

/* What every unprivileged process ends with, root-started or not. */
static int finish_drop(bool bounding, pid_t parent, char *why, size_t whylen)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        snprintf(why, whylen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
        return -1;
    }
    /* Without CAP_SETPCAP (rootless mode) the bounding set cannot be emptied; with no
     * permitted capability and no_new_privs it grants nothing. */
    if (caps_left(bounding)) {
        snprintf(why, whylen, "capabilities are still held after the drop");
        return -1;
    }
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    /* Not dumpable: other processes of the same uid (other sessions) cannot ptrace this one. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* Set after the id change, which clears it. A session process must not outlive the
     * monitor: under xinetd or a bare listener nothing else would end it, and the session
     * would go on with no one to log it or close PAM's session. SIGTERM: it ends as at a
     * shutdown; the check catches a parent already gone. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0 || getppid() != parent)
        raise(SIGTERM);
    return 0;
}

int drop_privileges(const struct identity *id, const char *chroot_dir, char *why, size_t whylen)
{
    pid_t parent = getppid();
    if (id->uid == 0) {
        snprintf(why, whylen, "refusing to run a session process as root");
        return -1;
    }
    if (geteuid() != 0) {
        /* Rootless mode: already the one user there is; no chroot or id change is possible,
         * and openat2 and Landlock do the confining. */
        if (getuid() != id->uid || geteuid() != id->uid) {
            snprintf(why, whylen, "rootless mode can only serve the user it runs as");
            return -1;
        }
        return finish_drop(false, parent, why, whylen);
    }
    if (chroot_dir) {
        if (chdir(chroot_dir) < 0 || chroot(".") < 0 || chdir("/") < 0) {
            snprintf(why, whylen, "chroot %s: %s", chroot_dir, strerror(errno));
            return -1;
        }
    }
    if (setgroups((size_t)id->ngroups, id->groups) < 0) {
        snprintf(why, whylen, "setgroups: %s", strerror(errno));
        return -1;
    }
    capng_clear(CAPNG_SELECT_ALL);
    int rc =
        capng_change_id((int)id->uid, (int)id->gid, CAPNG_CLEAR_BOUNDING | CAPNG_CLEAR_AMBIENT);
    if (rc < 0) {
        snprintf(why, whylen, "capng_change_id(%u, %u) failed (%d): %s", (unsigned)id->uid,
                 (unsigned)id->gid, rc, strerror(errno));
        return -1;
    }
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != id->uid ||
        eu != id->uid || su != id->uid || rg != id->gid || eg != id->gid || sg != id->gid) {
        snprintf(why, whylen, "uid/gid change did not take effect");
        return -1;
    }
    return finish_drop(true, parent, why, whylen);
}
