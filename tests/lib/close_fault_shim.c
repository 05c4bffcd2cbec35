/*
 * LD_PRELOAD shim for tests/integration/test_upload_integrity.py only: close(2) fails with
 * EDQUOT, as NFS, CIFS and FUSE report a write-back failure, for a file open for writing whose
 * position is exactly CLOSE_FAULT_AT bytes (an upload of that size, when the worker that
 * wrote it closes it). The file is closed all the same, as the kernel does.
 *
 * Only fcntl(2) and lseek(2) are used to tell: they are in every sandboxed role's filter.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>

#define CLOSE_FAULT_AT 77777

static int (*real_close)(int);

/* Looked up before any process confines itself (the constructor), or at the first call, should
 * another preloaded library's constructor close a descriptor first. */
__attribute__((constructor)) static void init(void)
{
    if (!real_close)
        real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
}

int close(int fd)
{
    init();
    int fl = fcntl(fd, F_GETFL);
    bool fault =
        fl >= 0 && (fl & O_ACCMODE) != O_RDONLY && lseek(fd, 0, SEEK_CUR) == CLOSE_FAULT_AT;
    int r = real_close(fd);
    if (fault && r == 0) {
        errno = EDQUOT;
        return -1;
    }
    return r;
}
