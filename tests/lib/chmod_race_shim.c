/*
 * LD_PRELOAD shim for tests/integration/test_protocol.py only: plays another session that
 * swaps a symlink in between SITE CHMOD's check of a name and its change of mode. Right after
 * fstatat(2) looks at the name CHMOD_RACE_NAME without following it, the symlink
 * CHMOD_RACE_SWAP of the same directory is renamed over it (once).
 * Only renameat(2) is used: it is in the user process's filter.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int (*real_fstatat)(int, const char *, struct stat *, int);
static const char *victim, *swap;
static bool done;

__attribute__((constructor)) static void init(void)
{
    if (!real_fstatat)
        real_fstatat = (int (*)(int, const char *, struct stat *, int))dlsym(RTLD_NEXT, "fstatat");
    victim = getenv("CHMOD_RACE_NAME");
    swap = getenv("CHMOD_RACE_SWAP");
}

int fstatat(int dfd, const char *name, struct stat *st, int flags)
{
    init();
    int r = real_fstatat(dfd, name, st, flags);
    if (!done && victim && swap && (flags & AT_SYMLINK_NOFOLLOW) && strcmp(name, victim) == 0) {
        int e = errno;
        done = true;
        renameat(dfd, swap, dfd, name);
        errno = e;
    }
    return r;
}
