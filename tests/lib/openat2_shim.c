/*
 * LD_PRELOAD shim for tests/integration/test_valgrind.py only: valgrind 3.19 (Debian 12) does
 * not know openat2(2) and answers ENOSYS, which path.c has no other way around. This stands in
 * for syscall(SYS_openat2, ...) with plain openat(2) calls that valgrind does follow.
 *
 * Not RESOLVE_IN_ROOT's semantics, only a strict subset: the path is walked one component at a
 * time below dirfd with O_NOFOLLOW, so any symbolic link (ELOOP) and any ".." (EXDEV) are
 * refused. The session of the valgrind test has neither; the user process is chrooted anyway.
 * Every other system call goes to libc's syscall() unchanged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

long syscall(long nr, ...);

static long emulate_openat2(int dirfd, const char *path, const struct open_how *how, size_t size)
{
    if (size < sizeof *how || !path) {
        errno = EINVAL;
        return -1;
    }
    char buf[4096];
    if (strlen(path) >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(buf, path);
    int cur = dirfd;
    char *save = NULL;
    char *comp = strtok_r(buf, "/", &save);
    while (comp && strcmp(comp, ".") == 0)
        comp = strtok_r(NULL, "/", &save);
    if (!comp) /* the directory itself */
        return openat(dirfd, ".", (int)how->flags, (mode_t)how->mode);
    for (;;) {
        char *next = strtok_r(NULL, "/", &save);
        while (next && strcmp(next, ".") == 0)
            next = strtok_r(NULL, "/", &save);
        if (strcmp(comp, "..") == 0) {
            if (cur != dirfd)
                close(cur);
            errno = EXDEV;
            return -1;
        }
        int fd;
        if (next)
            fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        else
            fd = openat(cur, comp, (int)how->flags | O_NOFOLLOW, (mode_t)how->mode);
        int err = errno;
        if (cur != dirfd)
            close(cur);
        if (fd < 0) {
            errno = err == ENOTDIR && next ? ELOOP : err;
            return -1;
        }
        if (!next)
            return fd;
        cur = fd;
        comp = next;
    }
}

long syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (nr == SYS_openat2)
        return emulate_openat2((int)a[0], (const char *)a[1], (const struct open_how *)a[2],
                               (size_t)a[3]);
    static long (*real)(long, ...);
    if (!real)
        real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
