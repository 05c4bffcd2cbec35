/*
 * LD_PRELOAD shim for tests/integration/test_listing_limits.py only: readdir(3) fails with EIO,
 * as it does on a damaged disk or a stale NFS handle, when it comes to an entry named
 * "ftpsd-eio". What was read before it has been returned already: a short read.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <string.h>

static struct dirent *(*real_readdir)(DIR *);

/* Looked up before any process confines itself (the constructor), or at the first call. */
__attribute__((constructor)) static void init(void)
{
    if (!real_readdir)
        real_readdir = (struct dirent * (*)(DIR *)) dlsym(RTLD_NEXT, "readdir");
}

struct dirent *readdir(DIR *d)
{
    init();
    struct dirent *de = real_readdir(d);
    if (de && strcmp(de->d_name, "ftpsd-eio") == 0) {
        errno = EIO;
        return NULL;
    }
    return de;
}
