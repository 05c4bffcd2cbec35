/*
 * LD_PRELOAD shim for tests/integration/test_account_sections.py and test_virtual_users.py
 * only: a directory service that is down. getgrnam_r(3) fails with EIO for the group
 * NSS_FAIL_GROUP, and getpwnam_r(3) for the user NSS_FAIL_USER, as NSS reports an LDAP server
 * it cannot reach; every other name is looked up as usual. With NSS_TRACE set,
 * each getgrouplist(3) call (a directory service's query) is written to stderr, which the
 * fixture keeps in a file.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int getgrnam_r(const char *name, struct group *gr, char *buf, size_t len, struct group **res)
{
    static int (*real)(const char *, struct group *, char *, size_t, struct group **);
    if (!real)
        real = (int (*)(const char *, struct group *, char *, size_t, struct group **))dlsym(
            RTLD_NEXT, "getgrnam_r");
    const char *fail = getenv("NSS_FAIL_GROUP");
    if (fail && strcmp(name, fail) == 0) {
        *res = NULL;
        return EIO;
    }
    return real(name, gr, buf, len, res);
}

int getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t len, struct passwd **res)
{
    static int (*real)(const char *, struct passwd *, char *, size_t, struct passwd **);
    if (!real)
        real = (int (*)(const char *, struct passwd *, char *, size_t, struct passwd **))dlsym(
            RTLD_NEXT, "getpwnam_r");
    const char *fail = getenv("NSS_FAIL_USER");
    if (fail && strcmp(name, fail) == 0) {
        *res = NULL;
        return EIO;
    }
    return real(name, pw, buf, len, res);
}

int getgrouplist(const char *user, gid_t group, gid_t *groups, int *ngroups)
{
    static int (*real)(const char *, gid_t, gid_t *, int *);
    if (!real)
        real = (int (*)(const char *, gid_t, gid_t *, int *))dlsym(RTLD_NEXT, "getgrouplist");
    if (getenv("NSS_TRACE")) {
        char line[300];
        int n = snprintf(line, sizeof line, "nss-trace: getgrouplist %s\n", user);
        if (n > 0 && write(2, line, (size_t)n) < 0)
            return -1;
    }
    return real(user, group, groups, ngroups);
}
