/*
 * LD_PRELOAD shim for tests/integration/test_account_sections.py only: a directory service
 * that is down. getgrnam_r(3) fails with EIO for the group NSS_FAIL_GROUP, as NSS reports an
 * LDAP server it cannot reach; every other name is looked up as usual.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>

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
