/*
 * The user process: forked by the monitor after login, it becomes the user (groups, uid, gid,
 * no capabilities), enters the user's root, and carries out the file side of FTP commands the
 * front relays. It never touches the network and links no TLS into what it does.
 */
#ifndef FTPSD_SESSION_H
#define FTPSD_SESSION_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "drop.h"
#include "listing.h"
#include "namefilter.h"
#include "path.h"
#include "session_info.h"
#include "util.h"

struct session_args {
    const struct session_info *si;
    struct identity id;
    const char *user;
    char root[PATH_MAX];  /* real path of the user's root */
    char start[PATH_MAX]; /* starting directory, as a path inside the root */
    int chan;
    struct idmap ids;
    bool write_enable; /* write_enable, or anon_write_enable for anonymous sessions */
    unsigned umask;    /* umask (the account's section's), or anon_umask */
    /* deny_file and hide_file (the account's section's, else the main ones; validated with
     * the configuration) */
    const char *deny_file, *hide_file;
    bool chmod_enable; /* chmod_enable (the account's section's); never for anonymous */
    bool anonymous;
    bool chroot;
};

_Noreturn void session_main(const struct session_args *a);

/* State of the user process, shared by its command files. */
struct usess {
    const struct config *cfg;
    bool write_enable;
    bool anonymous;   /* downloads only of what everyone may read */
    bool upload_only; /* anon_write_enable = upload: new files, nothing else */
    bool chmod_enable;
    unsigned base_umask; /* the account's umask: with chmod_enable off, SITE UMASK keeps it */
    uid_t uid;
    int chan;
    int rootfd;
    char cwd[VPATH_MAX];
    struct idmap ids;
    /* Checked here, where the files are, not in the front: a front taken over cannot reach a
     * denied name by sending its own requests. */
    struct namefilter deny; /* deny_file: names no request may reach, nor a listing show */
    struct namefilter hide; /* hide_file: names listings leave out */
    const char *cmd;        /* the command being served (its op), for the log */

    /* The upload in progress (between UOP_OPEN_WRITE and UOP_COMMIT/UOP_ABORT). */
    int up_fd;
    int up_dirfd;
    bool up_temp;     /* written under up_tmpname, renamed to up_base on success */
    bool up_truncate; /* in place: cut the file at the end of what was written */
    off_t up_start;   /* in place: where writing began */
    bool up_reserved; /* STOU: up_base was created empty to reserve the name */
    bool up_new;      /* no file had the name: keep_partial_uploads may keep a failed one */
    char up_tmpname[64];
    char up_base[NAME_MAX + 1];
    char up_vpath[VPATH_MAX];
};

/* What one request answers. */
struct uresp {
    int code;
    struct sbuf text;
    uint64_t value;
    char name[VPATH_MAX];
    int fd;
};
void uresp_set(struct uresp *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An error reply for errno err about path: 550 "<path>: <reason>." (452/552 for space). */
void uresp_errno(struct uresp *r, int err, const char *path);
/* The same for a name being created (STOR, STOU, APPE, RNTO): one the file system cannot take
 * is RFC 959's 553, "file name not allowed"; elsewhere a name too long names nothing, 550. */
void uresp_errno_new(struct uresp *r, int err, const char *path);

struct ureq {
    uint32_t op;
    uint32_t flags;
    uint32_t facts;
    uint64_t offset;
    char arg[VPATH_MAX];
    char arg2[VPATH_MAX];
};

/* Whether base may name a new file or directory; 553 reply if not. A CR or LF would end a
 * listing's entry, so listings leave such names out. */
bool sess_new_name_ok(const char *base, const char *arg, struct uresp *r);
/* Resolves a client argument against the working directory; 550 reply if too long, or if a
 * name in it matches deny_file (logged). */
int sess_vpath(struct usess *s, const char *arg, char *out, struct uresp *r);
/* sess_vpath for a name being created: too long is 553. */
int sess_new_vpath(struct usess *s, const char *arg, char *out, struct uresp *r);
/* Whether a name in the canonical path vp matches deny_file; with r, the 550 reply for arg is
 * set and the refusal logged. */
bool sess_denied(const struct usess *s, const char *vp, const char *arg, struct uresp *r);
/* Whether a listing leaves the name of a directory entry out (deny_file or hide_file). */
bool sess_hidden(const struct usess *s, const char *name);

/* Command families. */
void cmd_pwd(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_cwd(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_cdup(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_mkd(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_rmd(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_dele(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_rnfr(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_rnto(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_size(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_mdtm(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_mlst(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_list(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_open_read(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_open_write(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_commit(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_abort(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_stat(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_chmod(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_umask(struct usess *s, const struct ureq *q, struct uresp *r);
void cmd_settime(struct usess *s, const struct ureq *q, struct uresp *r);
/* Refuses a change when write_enable is off (550). */
bool sess_may_write(struct usess *s, struct uresp *r);
/* Ends a pending upload without committing it (a new file is removed, a file written in place
 * is cut at the end of what arrived); used at exit too. */
void upload_discard(struct usess *s);

#endif
