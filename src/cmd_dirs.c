/* PWD, CWD, CDUP, MKD, RMD, DELE, RNFR/RNTO, SIZE, MDTM in the user process. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "listing.h"
#include "reply.h"
#include "sandbox.h"
#include "session.h"
#include "uops.h"

#define may_write sess_may_write

void cmd_pwd(struct usess *s, const struct ureq *q, struct uresp *r)
{
    (void)q;
    struct sbuf b;
    sbuf_init(&b);
    reply_quote_path(&b, s->cwd);
    uresp_set(r, 257, "%s is the current directory.", b.data);
    sbuf_free(&b);
}

static void change_dir(struct usess *s, const char *arg, struct uresp *r)
{
    char vp[VPATH_MAX];
    if (sess_vpath(s, arg, vp, r) < 0)
        return;
    int fd = path_open(s->rootfd, vp, O_PATH | O_DIRECTORY, 0);
    /* O_PATH needs no search permission on the directory itself; entering it does. */
    if (fd < 0 || faccessat(fd, "", X_OK, AT_EACCESS | AT_EMPTY_PATH) < 0) {
        uresp_errno(r, errno, arg);
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    snprintf(s->cwd, sizeof s->cwd, "%s", vp);
    uresp_set(r, 250, "Directory successfully changed.");
}

void cmd_cwd(struct usess *s, const struct ureq *q, struct uresp *r)
{
    change_dir(s, q->arg, r);
}

void cmd_cdup(struct usess *s, const struct ureq *q, struct uresp *r)
{
    (void)q;
    change_dir(s, "..", r);
}

/* For a command that changes q->arg: checks write permission, resolves the argument into vp
 * and opens the directory holding its last component (*base). Reply set on failure (-1). */
static int writable_parent(struct usess *s, const struct ureq *q, char *vp, const char **base,
                           struct uresp *r)
{
    if (!may_write(s, r) || sess_vpath(s, q->arg, vp, r) < 0)
        return -1;
    snprintf(r->name, sizeof r->name, "%s", vp); /* for the front's record of the change */
    int dfd = path_open_parent(s->rootfd, vp, base);
    if (dfd < 0)
        uresp_errno(r, errno, q->arg);
    return dfd;
}

void cmd_mkd(struct usess *s, const struct ureq *q, struct uresp *r)
{
    char vp[VPATH_MAX];
    const char *base;
    int dfd = writable_parent(s, q, vp, &base, r);
    if (dfd < 0)
        return;
    if (!sess_new_name_ok(base, q->arg, r)) {
        close(dfd);
        return;
    }
    if (mkdirat(dfd, base, 0777) < 0) {
        uresp_errno(r, errno, q->arg);
    } else {
        struct sbuf b;
        sbuf_init(&b);
        reply_quote_path(&b, vp);
        uresp_set(r, 257, "%s created.", b.data);
        sbuf_free(&b);
    }
    close(dfd);
}

static void remove_name(struct usess *s, const struct ureq *q, struct uresp *r, int flags)
{
    char vp[VPATH_MAX];
    const char *base;
    int dfd = writable_parent(s, q, vp, &base, r);
    if (dfd < 0)
        return;
    if (unlinkat(dfd, base, flags) < 0)
        uresp_errno(r, errno, q->arg);
    else
        uresp_set(r, 250, flags ? "Directory removed." : "File deleted.");
    close(dfd);
}

void cmd_rmd(struct usess *s, const struct ureq *q, struct uresp *r)
{
    remove_name(s, q, r, AT_REMOVEDIR);
}

void cmd_dele(struct usess *s, const struct ureq *q, struct uresp *r)
{
    remove_name(s, q, r, 0);
}

void cmd_rnfr(struct usess *s, const struct ureq *q, struct uresp *r)
{
    char vp[VPATH_MAX];
    const char *base;
    struct stat st;
    int dfd = writable_parent(s, q, vp, &base, r);
    if (dfd < 0)
        return;
    if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        uresp_errno(r, errno, q->arg);
    } else {
        snprintf(r->name, sizeof r->name, "%s", vp);
        uresp_set(r, 350, "Ready for RNTO.");
    }
    close(dfd);
}

void cmd_rnto(struct usess *s, const struct ureq *q, struct uresp *r)
{
    char to[VPATH_MAX], from[VPATH_MAX];
    const char *from_base, *to_base;
    if (!may_write(s, r) || sess_new_vpath(s, q->arg, to, r) < 0)
        return;
    snprintf(r->name, sizeof r->name, "%s", to);
    /* The old name is RNFR's canonical path as the front kept it; checked again here, since
     * the front's word is all this request has: a denied name is not renamed away. */
    if (vpath_join("/", q->arg2, from, sizeof from) < 0) {
        uresp_set(r, 550, "File name too long.");
        return;
    }
    if (sess_denied(s, from, q->arg2, r))
        return;
    int fdir = path_open_parent(s->rootfd, from, &from_base);
    if (fdir < 0) {
        uresp_errno(r, errno, q->arg2);
        return;
    }
    int tdir = path_open_parent(s->rootfd, to, &to_base);
    struct stat st;
    size_t len = strlen(q->arg);
    /* "name/" names a directory, as rename(2) has it; the joined path lost the slash. */
    bool want_dir = len > 1 && q->arg[len - 1] == '/';
    if (tdir < 0) {
        uresp_set(r, 553, "%s: %s.", q->arg, strerror(errno));
    } else if (!sess_new_name_ok(to_base, q->arg, r)) {
        /* reply set */
    } else if (want_dir && fstatat(fdir, from_base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
               !S_ISDIR(st.st_mode)) {
        uresp_set(r, 553, "Cannot rename to %s: Not a directory.", q->arg);
    } else if (renameat(fdir, from_base, tdir, to_base) < 0) {
        int e = errno;
        if (e == EINVAL)
            uresp_set(r, 553, "Cannot rename to %s: a directory cannot move into itself.", q->arg);
        else if (e == ENAMETOOLONG || e == EISDIR || e == ENOTDIR || e == EEXIST || e == ENOTEMPTY)
            uresp_set(r, 553, "Cannot rename to %s: %s.", q->arg, strerror(e));
        else
            uresp_errno(r, e, q->arg);
    } else {
        uresp_set(r, 250, "Rename successful.");
    }
    if (tdir >= 0)
        close(tdir);
    close(fdir);
}

static int stat_path(struct usess *s, const char *arg, struct stat *st, struct uresp *r)
{
    char vp[VPATH_MAX];
    if (sess_vpath(s, arg, vp, r) < 0)
        return -1;
    int fd = path_open(s->rootfd, vp, O_PATH, 0);
    if (fd < 0 || fstat(fd, st) < 0) {
        uresp_errno(r, errno, arg);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

void cmd_size(struct usess *s, const struct ureq *q, struct uresp *r)
{
    struct stat st;
    if (stat_path(s, q->arg, &st, r) < 0)
        return;
    if (!S_ISREG(st.st_mode)) {
        uresp_set(r, 550, "%s: Not a regular file.", q->arg);
        return;
    }
    /* The size in TYPE A would depend on line-end conversion; RFC 3659 §4 lets us decline. */
    if (q->flags & UF_ASCII) {
        uresp_set(r, 550, "SIZE is not available in ASCII mode; use TYPE I.");
        return;
    }
    uresp_set(r, 213, "%llu", (unsigned long long)st.st_size);
}

void cmd_mdtm(struct usess *s, const struct ureq *q, struct uresp *r)
{
    struct stat st;
    if (stat_path(s, q->arg, &st, r) < 0)
        return;
    char t[20];
    format_mdtm(t, sizeof t, st.st_mtime);
    uresp_set(r, 213, "%s", t);
}

/*
 * Runs op on the object vp names, resolved inside the root: through a descriptor when the user
 * can open it, else by name in its resolved directory unless that name is a symlink (which could
 * point out of the root). Returns op's result with errno set.
 */
static int on_object(struct usess *s, const char *vp, int (*by_fd)(int, const void *),
                     int (*by_name)(int, const char *, const void *), const void *arg)
{
    int fd = path_open(s->rootfd, vp, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
    if (fd >= 0) {
        int rc = by_fd(fd, arg), e = errno;
        close(fd);
        errno = e;
        return rc;
    }
    if (errno != EACCES)
        return -1;
    const char *base;
    struct stat st;
    int dfd = path_open_parent(s->rootfd, vp, &base);
    if (dfd < 0)
        return -1;
    int rc = -1;
    if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISLNK(st.st_mode))
        rc = by_name(dfd, base, arg);
    else
        errno = EACCES;
    int e = errno;
    close(dfd);
    errno = e;
    return rc;
}

/* What SITE CHMOD asked for, and whether the object's type made it refuse. */
struct chmod_req {
    mode_t mode;
    bool special_refused;
};

/*
 * setuid never: a program uploaded and made setuid would run as this account for any local
 * user who starts it (vsftpd masks the bit away). setgid and sticky only on directories, where
 * they mean a shared group's directory and restricted deletion; on a file setgid would run a
 * program with the group's rights.
 */
static bool special_bits_ok(struct chmod_req *c, mode_t type)
{
    c->special_refused = (c->mode & S_ISUID) || (!S_ISDIR(type) && (c->mode & (S_ISGID | S_ISVTX)));
    if (c->special_refused)
        errno = EPERM;
    return !c->special_refused;
}

static int chmod_fd(int fd, const void *arg)
{
    struct chmod_req *c = (struct chmod_req *)arg;
    struct stat st;
    if (fstat(fd, &st) < 0 || !special_bits_ok(c, st.st_mode))
        return -1;
    return fchmod(fd, c->mode);
}

/* on_object() checked that name is no symlink, but another session that may rename in the
 * directory could swap one in before the call: fchmodat2 (Linux 6.6) refuses to follow it.
 * Older kernels have only fchmodat, which follows. */
static int chmod_name(int dfd, const char *name, const void *arg)
{
    struct chmod_req *c = (struct chmod_req *)arg;
    mode_t mode = c->mode;
    /* By name the type checked could be swapped before the change (a file for a directory):
     * special bits only through a descriptor, whose object cannot change. */
    if (!special_bits_ok(c, S_IFREG))
        return -1;
    if (syscall(SYS_fchmodat2, dfd, name, mode, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    if (errno == EOPNOTSUPP)
        errno = EACCES; /* as on_object() answers a symlink */
    if (errno != ENOSYS)
        return -1;
    return fchmodat(dfd, name, mode, 0);
}

void cmd_chmod(struct usess *s, const struct ureq *q, struct uresp *r)
{
    char vp[VPATH_MAX];
    if (!may_write(s, r))
        return;
    /* Here, not only in the front: a front taken over could ask for an anonymous chmod. */
    if (!s->chmod_enable) {
        uresp_set(r, 550, "Permission denied: SITE CHMOD is not enabled for this account.");
        return;
    }
    if (sess_vpath(s, q->arg, vp, r) < 0)
        return;
    snprintf(r->name, sizeof r->name, "%s", vp);
    struct chmod_req c = {.mode = (mode_t)q->offset & 07777};
    int rc = on_object(s, vp, chmod_fd, chmod_name, &c);
    if (rc < 0 && c.special_refused)
        uresp_set(r, 550,
                  "%s: the setuid bit cannot be set, nor setgid or sticky on anything but a "
                  "directory its owner can read.",
                  q->arg);
    else if (rc < 0)
        uresp_errno(r, errno, q->arg);
    else
        uresp_set(r, 200, "SITE CHMOD command ok.");
}

void cmd_umask(struct usess *s, const struct ureq *q, struct uresp *r)
{
    if (!q->arg[0]) {
        mode_t cur = umask(0);
        umask(cur);
        uresp_set(r, 200, "Your current UMASK is %04o.", (unsigned)cur);
        return;
    }
    char *end;
    unsigned long m = strtoul(q->arg, &end, 8);
    if (*end || m > 0777 || q->arg[0] == '-' || q->arg[0] == '+') {
        uresp_set(r, 501, "SITE UMASK needs an octal mask such as 022.");
        return;
    }
    /* Else a new upload would get the modes SITE CHMOD may not give (umask 000). */
    if (!s->chmod_enable && (m & s->base_umask) != s->base_umask) {
        uresp_set(r, 550,
                  "Permission denied: without SITE CHMOD, SITE UMASK may only make modes "
                  "stricter than %04o.",
                  s->base_umask);
        return;
    }
    umask((mode_t)m);
    uresp_set(r, 200, "UMASK set to %04lo.", m);
}

/* The time asked for, and the one the file then has: a file system keeps what it can (ext4
 * stops at 2446, FAT at 2107 and at even seconds), and the reply says what it kept. */
struct settime {
    struct timespec ts[2];
    time_t got;
};

static int settime_fd(int fd, const void *arg)
{
    struct settime *st = (struct settime *)arg;
    struct stat sb;
    if (futimens(fd, st->ts) < 0 || fstat(fd, &sb) < 0)
        return -1;
    st->got = sb.st_mtime;
    return 0;
}

static int settime_name(int dfd, const char *name, const void *arg)
{
    struct settime *st = (struct settime *)arg;
    struct stat sb;
    if (utimensat(dfd, name, st->ts, AT_SYMLINK_NOFOLLOW) < 0 ||
        fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        return -1;
    st->got = sb.st_mtime;
    return 0;
}

void cmd_settime(struct usess *s, const struct ureq *q, struct uresp *r)
{
    char vp[VPATH_MAX];
    if (!may_write(s, r) || sess_vpath(s, q->arg, vp, r) < 0)
        return;
    snprintf(r->name, sizeof r->name, "%s", vp);
    struct settime st = {.ts = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = (time_t)q->offset}}};
    if (on_object(s, vp, settime_fd, settime_name, &st) < 0) {
        uresp_errno(r, errno, q->arg);
    } else {
        char t[20];
        format_mdtm(t, sizeof t, st.got);
        uresp_set(r, 213, "Modify=%s; %s", t, q->arg);
    }
}
