#include "sesslimit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Another user who could write here could hold every slot of an account, or swap a slot file
 * for a link to one of root's files. */
static const char *unsafe_dir(const struct stat *st)
{
    if (!S_ISDIR(st->st_mode))
        return "is not a directory";
    if (st->st_uid != geteuid())
        return "does not belong to the server's user";
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return "is writable by others than its owner";
    return NULL;
}

static int open_dir(const char *dir, char *why, size_t whylen)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(why, whylen, "session_lock_dir %s: cannot make it: %s", dir, strerror(errno));
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(why, whylen, "session_lock_dir %s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    const char *bad = unsafe_dir(&st);
    if (bad) {
        snprintf(why, whylen, "session_lock_dir %s %s", dir, bad);
        close(fd);
        return -1;
    }
    return fd;
}

/* Bytes a file name may not hold, and '%' itself, as %XX: distinct names stay distinct. */
static int slot_prefix(const char *account, char *out, size_t outlen)
{
    static const char keep[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    size_t n = (size_t)snprintf(out, outlen, "u_");
    for (const unsigned char *p = (const unsigned char *)account; *p; p++) {
        int w = strchr(keep, *p) ? snprintf(out + n, outlen - n, "%c", *p)
                                 : snprintf(out + n, outlen - n, "%%%02X", *p);
        if (w < 0 || (size_t)w >= outlen - n)
            return -1;
        n += (size_t)w;
    }
    return 0;
}

int sesslimit_take(const char *dir, const char *account, unsigned max, char *why, size_t whylen)
{
    /* NAME_MAX less room for ".<slot>". */
    char prefix[230];
    if (slot_prefix(account, prefix, sizeof prefix) < 0) {
        snprintf(why, whylen, "account name too long for a session slot file");
        return SESSLIMIT_ERROR;
    }
    int dfd = open_dir(dir, why, whylen);
    if (dfd < 0)
        return SESSLIMIT_ERROR;
    int rc = SESSLIMIT_FULL;
    for (unsigned i = 0; i < max && rc == SESSLIMIT_FULL; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.%u", prefix, i);
        int fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            snprintf(why, whylen, "session_lock_dir %s: %s: %s", dir, name, strerror(errno));
            rc = SESSLIMIT_ERROR;
        } else if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            rc = fd;
        } else {
            int e = errno;
            close(fd);
            if (e != EWOULDBLOCK) {
                snprintf(why, whylen, "session_lock_dir %s: %s: flock: %s", dir, name, strerror(e));
                rc = SESSLIMIT_ERROR;
            }
        }
    }
    close(dfd);
    return rc;
}

const char *sesslimit_dir_problem(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) == 0)
        return unsafe_dir(&st);
    if (errno != ENOENT)
        return "cannot be examined";
    char parent[4096];
    path_dir_of(dir, parent, sizeof parent);
    if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOENT;
        return "is missing, and so is the directory it would be made in";
    }
    return NULL;
}
