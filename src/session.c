#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "privsep.h"
#include "sandbox.h"
#include "uops.h"

void uresp_set(struct uresp *r, int code, const char *fmt, ...)
{
    r->code = code;
    sbuf_reset(&r->text);
    char buf[VPATH_MAX + 512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sbuf_adds(&r->text, buf);
}

/* too_long: the code for ENAMETOOLONG, 553 for a name being created, else 550. */
static void errno_reply(struct uresp *r, int err, const char *path, int too_long)
{
    int code = 550;
    const char *why = strerror(err);
    switch (err) {
    case ENOENT:
        why = "No such file or directory";
        break;
    case EACCES:
    case EPERM:
        why = "Permission denied";
        break;
    case ENOSPC:
        code = 452;
        break;
    case EDQUOT:
        code = 552;
        break;
    case ENAMETOOLONG:
        code = too_long;
        why = "File name too long";
        break;
    case ELOOP:
        why = "Too many levels of symbolic links";
        break;
    case ENXIO: /* opening a FIFO without a reader, or a socket */
        why = "Not a regular file";
        break;
    default:
        break;
    }
    uresp_set(r, code, "%s: %s.", path, why);
}

void uresp_errno(struct uresp *r, int err, const char *path)
{
    errno_reply(r, err, path, 550);
}

void uresp_errno_new(struct uresp *r, int err, const char *path)
{
    errno_reply(r, err, path, 553);
}

bool sess_may_write(struct usess *s, struct uresp *r)
{
    if (s->write_enable && !s->upload_only)
        return true;
    if (s->upload_only)
        uresp_set(r, 550, "Permission denied: anonymous users may only upload new files.");
    else
        uresp_set(r, 550,
                  "Permission denied: uploads and changes are not enabled for this account.");
    return false;
}

bool sess_new_name_ok(const char *base, const char *arg, struct uresp *r)
{
    if (!strpbrk(base, "\r\n"))
        return true;
    uresp_set(r, 553, "%s: File names may not contain CR or LF.", arg);
    return false;
}

bool sess_denied(const struct usess *s, const char *vp, const char *arg, struct uresp *r)
{
    char comp[NAME_MAX + 1];
    const char *pat;
    if (!namefilter_match_path(&s->deny, vp, comp, sizeof comp, &pat))
        return false;
    if (r) {
        /* Decided on the name alone, before the file system is asked: the same reply whether
         * or not such a file exists, so the refusal does not tell. */
        uresp_set(r, 550, "%s: Permission denied: name is not allowed.", arg);
        char qp[LOG_QUOTED_MAX + 16], qc[LOG_QUOTED_MAX + 16], qpat[LOG_QUOTED_MAX + 16];
        log_quote(qp, sizeof qp, vp);
        log_quote(qc, sizeof qc, comp);
        log_quote(qpat, sizeof qpat, pat);
        log_msg(LOG_WARNING, "%s %s refused: %s matches deny_file %s", s->cmd ? s->cmd : "?", qp,
                qc, qpat);
    }
    return true;
}

bool sess_hidden(const struct usess *s, const char *name)
{
    return namefilter_match(&s->deny, name) || namefilter_match(&s->hide, name);
}

static int vpath_or(struct usess *s, const char *arg, char *out, struct uresp *r, int code)
{
    if (vpath_join(s->cwd, arg, out, VPATH_MAX) < 0) {
        uresp_set(r, code, "File name too long.");
        return -1;
    }
    return sess_denied(s, out, arg, r) ? -1 : 0;
}

int sess_vpath(struct usess *s, const char *arg, char *out, struct uresp *r)
{
    return vpath_or(s, arg, out, r, 550);
}

int sess_new_vpath(struct usess *s, const char *arg, char *out, struct uresp *r)
{
    return vpath_or(s, arg, out, r, 553);
}

#ifdef FTPSD_TEST_HOOKS
/* Test builds: what a plain open(2), bypassing openat2, may reach under Landlock. */
static void cmd_test_open(struct usess *s, const struct ureq *q, struct uresp *r)
{
    (void)s;
    int fd = open(q->arg, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        uresp_set(r, 550, "open %s: %s", q->arg, strerror(errno));
        return;
    }
    close(fd);
    uresp_set(r, 200, "opened %s", q->arg);
}
#endif

typedef void (*ucmd_fn)(struct usess *, const struct ureq *, struct uresp *);

/* The FTP command a request serves, as the log names it. */
static const char *cmd_name(const struct ureq *q)
{
    static const char *const names[UOP_MAX] = {
        [UOP_PWD] = "PWD",
        [UOP_CWD] = "CWD",
        [UOP_CDUP] = "CDUP",
        [UOP_MKD] = "MKD",
        [UOP_RMD] = "RMD",
        [UOP_DELE] = "DELE",
        [UOP_RNFR] = "RNFR",
        [UOP_RNTO] = "RNTO",
        [UOP_SIZE] = "SIZE",
        [UOP_MDTM] = "MDTM",
        [UOP_MLST] = "MLST",
        [UOP_OPEN_READ] = "RETR",
        [UOP_OPEN_WRITE] = "STOR",
        [UOP_LIST] = "LIST",
        [UOP_NLST] = "NLST",
        [UOP_MLSD] = "MLSD",
        [UOP_COMMIT] = "COMMIT",
        [UOP_ABORT] = "ABORT",
        [UOP_STAT] = "STAT",
        [UOP_CHMOD] = "SITE CHMOD",
        [UOP_UMASK] = "SITE UMASK",
        [UOP_SETTIME] = "MFMT",
#ifdef FTPSD_TEST_HOOKS
        /* Only there: a release binary holds no test command's name (test_package checks). */
        [UOP_TEST_OPEN] = "XTST",
#endif
    };
    if (q->op == UOP_OPEN_WRITE && (q->flags & UW_UNIQUE))
        return "STOU";
    if (q->op == UOP_OPEN_WRITE && (q->flags & UW_APPEND))
        return "APPE";
    return names[q->op];
}

static const ucmd_fn table[UOP_MAX] = {
    [UOP_PWD] = cmd_pwd,
    [UOP_CWD] = cmd_cwd,
    [UOP_CDUP] = cmd_cdup,
    [UOP_MKD] = cmd_mkd,
    [UOP_RMD] = cmd_rmd,
    [UOP_DELE] = cmd_dele,
    [UOP_RNFR] = cmd_rnfr,
    [UOP_RNTO] = cmd_rnto,
    [UOP_SIZE] = cmd_size,
    [UOP_MDTM] = cmd_mdtm,
    [UOP_MLST] = cmd_mlst,
    [UOP_OPEN_READ] = cmd_open_read,
    [UOP_OPEN_WRITE] = cmd_open_write,
    [UOP_LIST] = cmd_list,
    [UOP_NLST] = cmd_list,
    [UOP_MLSD] = cmd_list,
    [UOP_COMMIT] = cmd_commit,
    [UOP_ABORT] = cmd_abort,
    [UOP_STAT] = cmd_list,
    [UOP_CHMOD] = cmd_chmod,
    [UOP_UMASK] = cmd_umask,
    [UOP_SETTIME] = cmd_settime,
#ifdef FTPSD_TEST_HOOKS
    [UOP_TEST_OPEN] = cmd_test_open,
#endif
};

/* SIGTERM (systemctl stop, a shutdown, the monitor's death) and SIGHUP (a hang-up, which the
 * monitor takes as an end too). */
static void term_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

static void serve(struct usess *s)
{
    struct msg *m = msg_new();
    struct ureq *q = xmalloc(sizeof *q);
    struct uresp r;
    sbuf_init(&r.text);
    sigset_t term;
    term_signals(&term);
    for (;;) {
        /* SIGTERM is taken only while waiting, where no request is half done. */
        sigprocmask(SIG_UNBLOCK, &term, NULL);
        int got = msg_recv(s->chan, m);
        sigprocmask(SIG_BLOCK, &term, NULL);
        if (got < 0)
            break;
        if (m->fd >= 0) {
            close(m->fd);
            m->fd = -1;
        }
        q->op = msg_get_u32(m);
        q->flags = msg_get_u32(m);
        q->facts = msg_get_u32(m);
        q->offset = msg_get_u64(m);
        msg_get_str(m, q->arg, sizeof q->arg);
        msg_get_str(m, q->arg2, sizeof q->arg2);
        if (m->type != MSG_REQ || !msg_ok_end(m) || q->op == 0 || q->op >= UOP_MAX ||
            !table[q->op]) {
            log_msg(LOG_ERR, "malformed request from the front; ending");
            break;
        }
        r.code = 500;
        sbuf_reset(&r.text);
        r.value = 0;
        r.name[0] = '\0';
        r.fd = -1;
        s->cmd = cmd_name(q);
        table[q->op](s, q, &r);
        msg_init(m, MSG_REPLY);
        msg_put_u32(m, (uint32_t)r.code);
        msg_put_str(m, r.text.data ? r.text.data : "");
        msg_put_u64(m, r.value);
        msg_put_str(m, r.name);
        m->fd = r.fd;
        int rc = msg_send(s->chan, m);
        if (r.fd >= 0)
            close(r.fd);
        m->fd = -1;
        if (rc < 0)
            break;
    }
    upload_discard(s);
    /* Given back, though the process ends next: valgrind's leak check (test_valgrind) then
     * sees nothing lost, whichever registers the compiler left pointing at them. */
    free(q);
    sbuf_free(&r.text);
    msg_free(m);
}

static struct usess *term_sess;

/* The end of the session: the pending upload ends as ABORT would end it, so no temporary
 * file is left behind in the user's directory. */
static void on_term(int sig)
{
    (void)sig;
    if (term_sess)
        upload_discard(term_sess);
    _exit(0);
}

void session_main(const struct session_args *a)
{
    const struct config *cfg = a->si->cfg;
    struct usess s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.write_enable = a->write_enable;
    s.anonymous = a->anonymous;
    s.chmod_enable = a->chmod_enable;
    s.upload_only = a->anonymous && cfg->anon_write_enable == ANON_WRITE_UPLOAD;
    s.uid = a->id.uid;
    s.chan = a->chan;
    s.ids = a->ids;
    s.up_fd = s.up_dirfd = -1;
    log_set_user(a->user);
    /* Only what it needs: a descriptor a PAM or NSS module left open in the monitor (which never
     * execs) must not reach the user's process. The syslog socket is made anew. */
    closelog();
    int keep[5] = {0, 1, 2, a->chan, log_journal_fd()};
    close_fds_except(keep, 5);
    log_reconnect();
    signal(SIGPIPE, SIG_IGN);
    /* A listing past a file size limit the monitor could not lift (pam_limits' fsize, without
     * CAP_SYS_RESOURCE) fails with EFBIG (451) instead of killing. */
    signal(SIGXFSZ, SIG_IGN);
    sigset_t term;
    term_signals(&term);
    sigprocmask(SIG_BLOCK, &term, NULL);
    term_sess = &s;
    signal(SIGTERM, on_term);
    signal(SIGHUP, on_term);
    char why[512];
    bool chroot_ok = a->chroot && !cfg->rootless;
    if (drop_privileges(&a->id, chroot_ok ? a->root : NULL, why, sizeof why) < 0) {
        log_msg(LOG_ERR, "user process: %s", why);
        _exit(1);
    }
    umask((mode_t)a->umask);
    s.base_umask = a->umask;
    /* config_validate() checked both lists; one that fails here ends the session rather than
     * let it run without the names it keeps out. */
    if (namefilter_parse(&s.deny, a->deny_file ? a->deny_file : "", why, sizeof why) < 0 ||
        namefilter_parse(&s.hide, a->hide_file ? a->hide_file : "", why, sizeof why) < 0) {
        log_msg(LOG_ERR, "user process: deny_file or hide_file: %s", why);
        _exit(1);
    }
    s.rootfd = open(chroot_ok ? "/" : a->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s.rootfd < 0) {
        log_msg(LOG_ERR, "user process: cannot open root %s: %s", a->root, strerror(errno));
        _exit(1);
    }
    if (vpath_join("/", a->start, s.cwd, sizeof s.cwd) < 0)
        snprintf(s.cwd, sizeof s.cwd, "/");
    /* A home that is missing or not searchable inside the root, or one that deny_file keeps
     * out (every request from there would be refused): start at the root. */
    int fd = sess_denied(&s, s.cwd, NULL, NULL)
                 ? -1
                 : path_open(s.rootfd, s.cwd, O_PATH | O_DIRECTORY, 0);
    if (fd < 0)
        snprintf(s.cwd, sizeof s.cwd, "/");
    else
        close(fd);
    int abi = 0;
    if (sandbox_rlimits(cfg, SB_USER, why, sizeof why) < 0 ||
        (cfg->landlock && (abi = sandbox_landlock(SB_USER, s.rootfd, why, sizeof why)) < 0) ||
        sandbox_seccomp(cfg, SB_USER, -1, why, sizeof why) < 0) {
        log_msg(LOG_ERR, "user process: %s", why);
        _exit(1);
    }
    log_msg(LOG_DEBUG, "user process ready: root=%s cwd=%s landlock ABI %d", a->root, s.cwd, abi);
    malloc_trim(0);
    serve(&s);
    _exit(0);
}
