#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int vpath_join(const char *cwd, const char *arg, char *out, size_t cap)
{
    /* Component stack as offsets into out. */
    size_t len = 0;
    size_t starts[VPATH_MAX / 2 + 1];
    size_t depth = 0;
    if (cap < 2)
        return -1;
    out[0] = '\0';
    const char *parts[2] = {arg[0] == '/' ? "" : cwd, arg};
    for (int pi = 0; pi < 2; pi++) {
        const char *p = parts[pi];
        while (*p) {
            while (*p == '/')
                p++;
            if (!*p)
                break;
            const char *e = strchr(p, '/');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (n == 1 && p[0] == '.') {
                /* stays */
            } else if (n == 2 && p[0] == '.' && p[1] == '.') {
                if (depth > 0)
                    len = starts[--depth];
            } else {
                if (len + 1 + n + 1 > cap || depth >= sizeof starts / sizeof starts[0])
                    return -1;
                starts[depth++] = len;
                out[len++] = '/';
                memcpy(out + len, p, n);
                len += n;
            }
            p += n;
        }
    }
    if (len == 0)
        out[len++] = '/';
    out[len] = '\0';
    return 0;
}

const char *vpath_rel(const char *vpath)
{
    return vpath[1] ? vpath + 1 : ".";
}

int vpath_split(const char *vpath, char *parent, size_t pcap, const char **base)
{
    const char *slash = strrchr(vpath, '/');
    if (!slash || slash[1] == '\0')
        return -1;
    size_t n = (size_t)(slash - vpath);
    if (n == 0)
        n = 1; /* parent is "/" */
    if (n + 1 > pcap)
        return -1;
    memcpy(parent, vpath, n);
    parent[n] = '\0';
    *base = slash + 1;
    return 0;
}

int path_openat2(int rootfd, const char *vpath, int flags, mode_t mode, unsigned long long resolve)
{
    struct open_how how = {
        .flags = (unsigned long long)(flags | O_CLOEXEC),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve,
    };
    long fd;
    do
        fd = syscall(SYS_openat2, rootfd, vpath_rel(vpath), &how, sizeof how);
    while (fd < 0 && (errno == EINTR || errno == EAGAIN));
    return (int)fd;
}

int path_open(int rootfd, const char *vpath, int flags, mode_t mode)
{
    return path_openat2(rootfd, vpath, flags, mode, 0);
}

int path_open_parent(int rootfd, const char *vpath, const char **base)
{
    char parent[VPATH_MAX];
    if (vpath_split(vpath, parent, sizeof parent, base) < 0) {
        errno = EPERM; /* the root itself has no parent to act in */
        return -1;
    }
    return path_open(rootfd, parent, O_PATH | O_DIRECTORY, 0);
}
