/* Opening files for RETR/STOR/APPE, and the end of an upload: atomic rename or removal. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "session.h"
#include "uops.h"

static int clear_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

/* Opens vp (flags, non-blocking: a FIFO must not hang the session) as a regular file reaching
 * q->offset, positioned there, or at its end with to_end. The descriptor, with *st and *at;
 * -1 with the reply in r. */
static int open_regular_at(struct usess *s, const char *vp, const struct ureq *q, int flags,
                           bool to_end, struct stat *st, off_t *at, struct uresp *r)
{
    int fd = path_open(s->rootfd, vp, flags | O_NONBLOCK | O_NOCTTY, 0666);
    if (fd < 0) {
        uresp_errno(r, errno, q->arg);
        return -1;
    }
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        uresp_set(r, 550, "%s: Not a regular file.", q->arg);
        close(fd);
        return -1;
    }
    if (q->offset > (uint64_t)st->st_size) {
        uresp_set(r, 554, "Restart offset %llu is beyond the end of the file (%llu bytes).",
                  (unsigned long long)q->offset, (unsigned long long)st->st_size);
        close(fd);
        return -1;
    }
    *at = to_end ? lseek(fd, 0, SEEK_END) : lseek(fd, (off_t)q->offset, SEEK_SET);
    if (*at < 0 || clear_nonblock(fd) < 0) {
        uresp_errno(r, errno, q->arg);
        close(fd);
        return -1;
    }
    return fd;
}

void cmd_open_read(struct usess *s, const struct ureq *q, struct uresp *r)
{
    char vp[VPATH_MAX];
    struct stat st;
    off_t at;
    if (sess_vpath(s, q->arg, vp, r) < 0)
        return;
    int fd = open_regular_at(s, vp, q, O_RDONLY, false, &st, &at, r);
    if (fd < 0)
        return;
    /* The anonymous account can read its own uploads (anon_umask 077 makes them its alone):
     * publishing is the admin's, who makes a file world-readable, as vsftpd's
     * anon_world_readable_only. */
    if (s->anonymous && !(st.st_mode & S_IROTH)) {
        close(fd);
        uresp_set(r, 550, "%s: Permission denied (not a public file).", q->arg);
        return;
    }
    r->code = 150;
    r->fd = fd;
    r->value = (uint64_t)st.st_size - q->offset;
    snprintf(r->name, sizeof r->name, "%s", vp);
}

/* APPE (or REST + STOR) to a name that did not exist created it, in place, and nothing arrived
 * (end: the upload's file position): nothing is to be left. */
static bool created_empty(const struct usess *s, off_t end)
{
    return s->up_fd >= 0 && !s->up_temp && s->up_new && end <= s->up_start;
}

/* Ends an upload that will not be committed. A new file is removed; a file written in place
 * keeps what arrived, cut at its end so that SIZE is where a resume must start. */
void upload_discard(struct usess *s)
{
    off_t end = s->up_fd >= 0 ? lseek(s->up_fd, 0, SEEK_CUR) : -1;
    if (s->up_temp && s->up_dirfd >= 0)
        unlinkat(s->up_dirfd, s->up_tmpname, 0);
    if (created_empty(s, end) && s->up_dirfd >= 0)
        unlinkat(s->up_dirfd, s->up_base, 0);
    if (s->up_reserved && s->up_dirfd >= 0)
        unlinkat(s->up_dirfd, s->up_base, 0);
    if (s->up_truncate && s->up_fd >= 0) {
        /* Nothing written (no data connection came): the file stays as it was. */
        if (end > s->up_start && ftruncate(s->up_fd, end) < 0)
            log_msg(LOG_WARNING, "cannot cut %s at %lld bytes: %s", s->up_vpath, (long long)end,
                    strerror(errno));
    }
    if (s->up_fd >= 0)
        close(s->up_fd);
    if (s->up_dirfd >= 0)
        close(s->up_dirfd);
    s->up_fd = s->up_dirfd = -1;
    s->up_temp = s->up_truncate = s->up_reserved = false;
}

/* A new file beside the target, renamed over it only when the upload completes. It takes the
 * old file's mode and group; -1 with errno EPERM when the group cannot be kept. */
static int open_temp(struct usess *s, int dfd, const struct stat *old)
{
    for (int tries = 0; tries < 16; tries++) {
        unsigned char rnd[6];
        random_bytes(rnd, sizeof rnd);
        snprintf(s->up_tmpname, sizeof s->up_tmpname, ".ftpsd-%02x%02x%02x%02x%02x%02x.part",
                 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
        int fd =
            openat(dfd, s->up_tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0 || !old)
            return fd;
        struct stat st;
        if (fstat(fd, &st) < 0 || (st.st_gid != old->st_gid && fchown(fd, -1, old->st_gid) < 0)) {
            int e = errno;
            close(fd);
            unlinkat(dfd, s->up_tmpname, 0);
            errno = e == EINVAL ? EPERM : e;
            return -1;
        }
        fchmod(fd, old->st_mode & 0777);
        return fd;
    }
    return -1;
}

/* Whether a new file renamed over old would be the same file to everyone else: it would get a
 * new owner and lose old's other hard links. */
static bool replace_keeps_file(const struct usess *s, const struct stat *old)
{
    return old->st_uid == s->uid && old->st_nlink == 1;
}

/* Writes into the existing file (APPE creates it): a resume, an append, a write through a
 * symlink, or a replace that a new file could not make without changing the file for others. */
static int open_in_place(struct usess *s, const struct ureq *q, const char *vp, bool append,
                         struct uresp *r)
{
    bool appending = append && q->offset == 0;
    struct stat st;
    off_t at;
    int fd = open_regular_at(s, vp, q, O_WRONLY | (appending ? O_APPEND | O_CREAT : 0), appending,
                             &st, &at, r);
    if (fd < 0)
        return -1;
    /* Not truncated at open: a transfer that never starts leaves the file as it was. */
    s->up_truncate = !appending;
    s->up_start = at;
    return fd;
}
/* STOU: reserves a new name beside the argument ("name", "name.1", ...) by creating it empty;
 * the data goes to a temporary file renamed over it at the end. */
static int reserve_unique(struct usess *s, const char *arg, char *vp, struct uresp *r)
{
    char want[VPATH_MAX];
    const char *name = arg[0] ? arg : "ftpsd-upload";
    if (sess_new_vpath(s, name, want, r) < 0)
        return -1;
    for (unsigned i = 0; i < 1000; i++) {
        char cand[VPATH_MAX];
        if (i == 0)
            snprintf(cand, sizeof cand, "%s", want);
        else if ((size_t)snprintf(cand, sizeof cand, "%s.%u", want, i) >= sizeof cand)
            break;
        /* A name deny_file takes ("*.1") is passed over, as a taken one is. */
        if (sess_denied(s, cand, NULL, NULL))
            continue;
        const char *base;
        int dfd = path_open_parent(s->rootfd, cand, &base);
        if (dfd < 0) {
            uresp_errno_new(r, errno, name);
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
            uresp_errno_new(r, e, name);
            return -1;
        }
    }
    uresp_set(r, 553, "Cannot find a unique name for %s.", name);
    return -1;
}

void cmd_open_write(struct usess *s, const struct ureq *q, struct uresp *r)
{
    char vp[VPATH_MAX];
    const char *base;
    struct stat st;
    upload_discard(s);
    if (!s->write_enable) {
        uresp_set(r, 550,
                  "Permission denied: uploads and changes are not enabled for this account.");
        return;
    }
    bool unique = q->flags & UW_UNIQUE;
    /* STOU without a name uses "ftpsd-upload"; replies name what was asked for. */
    const char *shown = q->arg[0] ? q->arg : "ftpsd-upload";
    if (unique ? reserve_unique(s, q->arg, vp, r) < 0 : sess_new_vpath(s, q->arg, vp, r) < 0)
        return;
    int dfd = path_open_parent(s->rootfd, vp, &base);
    if (dfd < 0) {
        uresp_errno_new(r, errno, shown);
        return;
    }
    s->up_reserved = unique;
    bool append = q->flags & UW_APPEND;
    bool have_old = fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    int fd = -1;
    /* A drop box takes new files whole: nothing it holds can be replaced or added to. */
    if (s->upload_only && (append || q->offset > 0 || (have_old && !unique))) {
        uresp_set(r, 553, "%s: anonymous users may only upload new files%s.", shown,
                  have_old && !unique ? " (a file of that name exists)" : ", from their start");
        goto fail;
    }
    /* The name is kept for the rename: it must fit whole, or another file would be replaced. */
    if (strlen(base) >= sizeof s->up_base) {
        uresp_errno_new(r, ENAMETOOLONG, shown);
        goto fail;
    }
    if (!have_old && !sess_new_name_ok(base, shown, r))
        goto fail;
    if (have_old && S_ISDIR(st.st_mode)) {
        uresp_set(r, 550, "%s: Is a directory.", shown);
        goto fail;
    }
    if (have_old && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
        uresp_set(r, 550, "%s: Not a regular file.", shown);
        goto fail;
    }
    bool in_place = !unique && (q->offset > 0 || append || (have_old && S_ISLNK(st.st_mode)));
    if (!in_place && have_old && !unique) {
        if (faccessat(dfd, base, W_OK, AT_EACCESS) < 0) {
            uresp_errno_new(r, errno, shown);
            goto fail;
        }
        in_place = !replace_keeps_file(s, &st);
    }
    if (!in_place) {
        fd = open_temp(s, dfd, have_old && !unique ? &st : NULL);
        /* A directory the user may not write, or a group the user is not in: the file the
         * user may write is written in place instead. */
        in_place = fd < 0 && have_old && !unique && (errno == EACCES || errno == EPERM);
        if (fd < 0 && !in_place) {
            uresp_errno_new(r, errno, shown);
            goto fail;
        }
        s->up_temp = fd >= 0;
    }
    if (in_place && (fd = open_in_place(s, q, vp, append, r)) < 0)
        goto fail;
    s->up_fd = dup(fd);
    if (s->up_fd < 0) {
        uresp_errno_new(r, errno, shown);
        s->up_dirfd = dfd;
        upload_discard(s);
        close(fd);
        return;
    }
    s->up_dirfd = dfd;
    s->up_new = !have_old || unique;
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
    s->up_reserved = s->up_temp = s->up_truncate = false;
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
    struct stat st;
    uint64_t limit = s->cfg->max_file_size;
    /* The writers are bound by RLIMIT_FSIZE; a new file past the limit is refused all the same
     * (a file written in place can no longer be undone). */
    if (s->up_temp && limit && fstat(s->up_fd, &st) == 0 && (uint64_t)st.st_size > limit) {
        uresp_set(r, 552, "Cannot store %s: larger than the %llu bytes allowed.", s->up_vpath,
                  (unsigned long long)limit);
        upload_discard(s);
        return;
    }
    /* A drop box never replaces: a file given the name during the upload stays. */
    unsigned flags = s->upload_only && !s->up_reserved ? RENAME_NOREPLACE : 0;
    if (s->up_temp && renameat2(s->up_dirfd, s->up_tmpname, s->up_dirfd, s->up_base, flags) < 0) {
        if (errno == EEXIST)
            uresp_set(r, 553, "Cannot store %s: a file of that name exists now.", s->up_vpath);
        else
            uresp_set(r, 451, "Cannot store %s: %s.", s->up_vpath, strerror(errno));
        upload_discard(s);
        return;
    }
    s->up_temp = s->up_reserved = s->up_new = false; /* it stays, whatever its size */
    upload_discard(s);
    uresp_set(r, 226, "Transfer complete.");
}

/* keep_partial_uploads: a failed upload to a name no file had is given that name, so the
 * client can resume it; an existing file is never replaced by part of its new version. */
static bool keep_partial(struct usess *s, struct uresp *r)
{
    off_t end = lseek(s->up_fd, 0, SEEK_CUR);
    if (!s->cfg->keep_partial_uploads || !s->up_temp || !s->up_new || end <= 0)
        return false;
    /* STOU's reserved empty file is ours to replace; any other name must still be free. */
    if (renameat2(s->up_dirfd, s->up_tmpname, s->up_dirfd, s->up_base,
                  s->up_reserved ? 0 : RENAME_NOREPLACE) < 0)
        return false;
    s->up_temp = s->up_reserved = s->up_new = false;
    upload_discard(s);
    uresp_set(r, 226, "partial file kept, %lld bytes", (long long)end);
    return true;
}

void cmd_abort(struct usess *s, const struct ureq *q, struct uresp *r)
{
    (void)q;
    if (s->up_fd >= 0 && keep_partial(s, r))
        return;
    bool in_place = s->up_fd >= 0 && !s->up_temp;
    off_t start = s->up_start, end = in_place ? lseek(s->up_fd, 0, SEEK_CUR) : -1;
    bool empty_new = created_empty(s, end);
    upload_discard(s);
    if (!in_place || empty_new)
        uresp_set(r, 226, "upload discarded");
    else if (end > start)
        uresp_set(r, 226, "partial file kept, %lld bytes", (long long)end);
    else
        uresp_set(r, 226, "file left as it was");
}
