/* Opening files for RETR/STOR/APPE, and the end of an upload: atomic rename or removal. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session.h"
#include "uops.h"

static int clear_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

void cmd_open_read(struct usess *s, const struct ureq *q, struct uresp *r)
{
    char vp[VPATH_MAX];
    struct stat st;
    if (sess_vpath(s, q->arg, vp, r) < 0)
        return;
    /* O_NONBLOCK: opening a FIFO must not hang the session. */
    int fd = path_open(s->rootfd, vp, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
    if (fd < 0) {
        uresp_errno(r, errno, q->arg);
        return;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        uresp_set(r, 550, "%s: Not a regular file.", q->arg);
        close(fd);
        return;
    }
    if (q->offset > (uint64_t)st.st_size) {
        uresp_set(r, 554, "Restart offset %llu is beyond the end of the file (%llu bytes).",
                  (unsigned long long)q->offset, (unsigned long long)st.st_size);
        close(fd);
        return;
    }
    if (lseek(fd, (off_t)q->offset, SEEK_SET) < 0 || clear_nonblock(fd) < 0) {
        uresp_errno(r, errno, q->arg);
        close(fd);
        return;
    }
    r->code = 150;
    r->fd = fd;
    r->value = (uint64_t)st.st_size - q->offset;
    snprintf(r->name, sizeof r->name, "%s", vp);
}

void upload_discard(struct usess *s)
{
    if (s->up_temp && s->up_dirfd >= 0)
        unlinkat(s->up_dirfd, s->up_tmpname, 0);
    if (s->up_reserved && s->up_dirfd >= 0)
        unlinkat(s->up_dirfd, s->up_base, 0);
    if (s->up_fd >= 0)
        close(s->up_fd);
    if (s->up_dirfd >= 0)
        close(s->up_dirfd);
    s->up_fd = s->up_dirfd = -1;
    s->up_temp = s->up_truncate = s->up_reserved = false;
}

/* A new file beside the target, renamed over it only when the upload completes. */
static int open_temp(struct usess *s, int dfd, const struct stat *old)
{
    for (int tries = 0; tries < 16; tries++) {
        unsigned char rnd[6];
        random_bytes(rnd, sizeof rnd);
        snprintf(s->up_tmpname, sizeof s->up_tmpname, ".ftpsd-%02x%02x%02x%02x%02x%02x.part",
                 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
        int fd =
            openat(dfd, s->up_tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd >= 0) {
            if (old)
                fchmod(fd, old->st_mode & 0777);
            return fd;
        }
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

/* STOU: reserves a new name beside the argument ("name", "name.1", ...) by creating it empty;
 * the data goes to a temporary file renamed over it at the end. */
static int reserve_unique(struct usess *s, const char *arg, char *vp, struct uresp *r)
{
    char want[VPATH_MAX];
    if (sess_vpath(s, arg[0] ? arg : "ftpsd-upload", want, r) < 0)
        return -1;
    for (unsigned i = 0; i < 1000; i++) {
        char cand[VPATH_MAX];
        if (i == 0)
            snprintf(cand, sizeof cand, "%s", want);
        else if ((size_t)snprintf(cand, sizeof cand, "%s.%u", want, i) >= sizeof cand)
            break;
        const char *base;
        int dfd = path_open_parent(s->rootfd, cand, &base);
        if (dfd < 0) {
            uresp_errno(r, errno, arg);
            return -1;
        }
        int fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        int e = errno;
        close(dfd);
        if (fd >= 0) {
            close(fd);
            snprintf(vp, VPATH_MAX, "%s", cand);
            return 0;
        }
        if (e != EEXIST) {
            uresp_errno(r, e, arg);
            return -1;
        }
    }
    uresp_set(r, 553, "Cannot find a unique name for %s.", arg);
    return -1;
}

void cmd_open_write(struct usess *s, const struct ureq *q, struct uresp *r)
{
    char vp[VPATH_MAX];
    const char *base;
    struct stat st;
    upload_discard(s);
    if (!s->write_enable) {
        uresp_set(r, 550, "Permission denied (this server is read-only).");
        return;
    }
    bool unique = q->flags & UW_UNIQUE;
    if (unique ? reserve_unique(s, q->arg, vp, r) < 0 : sess_vpath(s, q->arg, vp, r) < 0)
        return;
    int dfd = path_open_parent(s->rootfd, vp, &base);
    if (dfd < 0) {
        uresp_errno(r, errno, q->arg);
        return;
    }
    s->up_reserved = unique;
    bool append = q->flags & UW_APPEND;
    bool have_old = fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    int fd = -1;
    if (have_old && S_ISDIR(st.st_mode)) {
        uresp_set(r, 550, "%s: Is a directory.", q->arg);
        goto fail;
    }
    if (!unique && (q->offset > 0 || append || (have_old && S_ISLNK(st.st_mode)))) {
        /* Resume, append, or write through a symlink: in place, as the client asked. */
        int flags = O_WRONLY | O_NONBLOCK | O_NOCTTY;
        if (append && q->offset == 0)
            flags |= O_APPEND | O_CREAT;
        else if (q->offset == 0)
            flags |= O_TRUNC;
        fd = path_open(s->rootfd, vp, flags, 0666);
        if (fd < 0) {
            uresp_errno(r, errno, q->arg);
            goto fail;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            uresp_set(r, 550, "%s: Not a regular file.", q->arg);
            goto fail;
        }
        if (q->offset > (uint64_t)st.st_size) {
            uresp_set(r, 554, "Restart offset %llu is beyond the end of the file (%llu bytes).",
                      (unsigned long long)q->offset, (unsigned long long)st.st_size);
            goto fail;
        }
        if ((q->offset > 0 && lseek(fd, (off_t)q->offset, SEEK_SET) < 0) ||
            clear_nonblock(fd) < 0) {
            uresp_errno(r, errno, q->arg);
            goto fail;
        }
        s->up_truncate = q->offset > 0;
    } else {
        if (have_old && !S_ISREG(st.st_mode)) {
            uresp_set(r, 550, "%s: Not a regular file.", q->arg);
            goto fail;
        }
        if (have_old && !unique && faccessat(dfd, base, W_OK, AT_EACCESS) < 0) {
            uresp_errno(r, errno, q->arg);
            goto fail;
        }
        fd = open_temp(s, dfd, have_old && !unique ? &st : NULL);
        if (fd < 0) {
            uresp_errno(r, errno, q->arg);
            goto fail;
        }
        s->up_temp = true;
    }
    s->up_fd = dup(fd);
    if (s->up_fd < 0) {
        uresp_errno(r, errno, q->arg);
        s->up_dirfd = dfd;
        upload_discard(s);
        close(fd);
        return;
    }
    s->up_dirfd = dfd;
    snprintf(s->up_base, sizeof s->up_base, "%s", base);
    snprintf(s->up_vpath, sizeof s->up_vpath, "%s", vp);
    r->code = 150;
    r->fd = fd;
    snprintf(r->name, sizeof r->name, "%s", vp);
    /* The front keeps the temporary name, so the monitor can remove the file should this
     * process die before COMMIT or ABORT. */
    if (s->up_temp) {
        char parent[VPATH_MAX];
        const char *b;
        if (vpath_split(vp, parent, sizeof parent, &b) == 0)
            uresp_set(r, 150, "%s%s%s", parent, strcmp(parent, "/") ? "/" : "", s->up_tmpname);
    }
    return;
fail:
    if (fd >= 0)
        close(fd);
    if (s->up_reserved)
        unlinkat(dfd, base, 0);
    s->up_reserved = false;
    close(dfd);
}

void cmd_commit(struct usess *s, const struct ureq *q, struct uresp *r)
{
    (void)q;
    if (s->up_fd < 0) {
        uresp_set(r, 451, "No upload in progress.");
        return;
    }
    if (s->up_truncate) {
        off_t end = lseek(s->up_fd, 0, SEEK_CUR);
        if (end < 0 || ftruncate(s->up_fd, end) < 0) {
            uresp_set(r, 451, "Cannot finish %s: %s.", s->up_vpath, strerror(errno));
            upload_discard(s);
            return;
        }
    }
    if (s->up_temp && renameat(s->up_dirfd, s->up_tmpname, s->up_dirfd, s->up_base) < 0) {
        uresp_set(r, 451, "Cannot store %s: %s.", s->up_vpath, strerror(errno));
        upload_discard(s);
        return;
    }
    s->up_temp = s->up_reserved = false;
    upload_discard(s);
    uresp_set(r, 226, "Transfer complete.");
}

void cmd_abort(struct usess *s, const struct ureq *q, struct uresp *r)
{
    (void)q;
    upload_discard(s);
    uresp_set(r, 226, "Upload discarded.");
}
