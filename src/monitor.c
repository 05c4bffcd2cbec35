/*
 * The monitor forks the front (which owns the client connection), answers its login requests
 * with PAM, forks the user process after a successful login, and at the end closes the PAM
 * session and reaps everything. What it receives is a fixed-format message over a socketpair.
 */
#include "monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acctconf.h"
#include "audit_lookup.h"
#include "certcheck.h"
#include "certid.h"
#include "certmap.h"
#include "drop.h"
#include "netmatch.h"
#include "proxy.h"
#include "front.h"
#include "listing.h"
#include "ktls.h"
#include "log.h"
#include "pamauth.h"
#include "path.h"
#include "privsep.h"
#include "proclimits.h"
#include "session.h"
#include "session_info.h"
#include "sesslimit.h"
#include "util.h"
#include "wtmp.h"
#include "xferlog.h"

struct monitor {
    struct session_info si;
    int front_fd;
    pid_t front_pid;
    pid_t user_pid;
    int64_t started;       /* wall_ms() at the session's start, */
    int64_t front_started; /* the front's fork */
    int64_t user_started;  /* and the user process's: seccomp records older are not theirs */
    unsigned failures;
    bool logged_in;
    struct pamauth pam;
    struct proc_limits own_limits; /* as before PAM's session stage (pam_limits) */
    struct certmap *certmap;
    bool peer_set; /* the PROXY header's client replaced the socket's peer */
    char user[256];
    char virt[256];      /* a virtual user's name, who runs as guest_user; "" for any other login */
    char anon_ident[64]; /* anonymous FTP: the identity (e-mail) given, for the xferlog */
    bool anon;
    char root[4096]; /* the logged-in user's root, for xferlog paths */
    uid_t user_uid;  /* and who runs in it, for cleaning up after a dead user process */
    gid_t user_gid;
    bool user_chroot;
    int xferlog_fd;
    int64_t login_at;
    unsigned kill_reports; /* MSG_WORKER_KILLED taken */
    bool grant_write;      /* the login's write_enable and max_rate, for the front */
    uint64_t grant_rate;
    int slot_fd; /* the account's session slot (sesslimit.h), -1 if none */
};

/* The monitor's own SIGKILLs, logged where they are sent; reap() logs any other. */
static pid_t killed_here;

static void kill_front(struct monitor *m)
{
    killed_here = m->front_pid;
    kill(m->front_pid, SIGKILL);
}

static volatile sig_atomic_t g_term;

static void log_error_line(const char *msg)
{
    log_msg(LOG_ERR, "%s", msg);
}

static void on_term(int sig)
{
    (void)sig;
    g_term = 1;
}

static void plain_reply_and_exit(const struct config *cfg, const char *line)
{
    /* Only before TLS exists and only in explicit mode is a plaintext reply meaningful. */
    if (!cfg->implicit_tls)
        (void)!write(1, line, strlen(line));
    exit(1);
}

static void make_session_info(struct monitor *m, const struct config *cfg)
{
    struct session_info *si = &m->si;
    memset(si, 0, sizeof *si);
    si->cfg = cfg;
    unsigned char rnd[6];
    random_bytes(rnd, sizeof rnd);
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(si->sid + 2 * i, 3, "%02x", rnd[i]);
    socklen_t len = sizeof si->local;
    getsockname(0, (struct sockaddr *)&si->local, &len);
    len = sizeof si->peer;
    getpeername(0, (struct sockaddr *)&si->peer, &len);
    sockaddr_to_str(&si->local, si->local_str, sizeof si->local_str);
    sockaddr_to_str(&si->peer, si->peer_str, sizeof si->peer_str);
    log_set_session(si->sid, si->peer_str);
}

static int check_empty_dir(const char *dir, char *why, size_t whylen)
{
    struct stat st;
    if (stat(dir, &st) < 0) {
        snprintf(why, whylen, "empty_dir %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)) {
        snprintf(why, whylen,
                 "empty_dir %s must be a directory owned by root and writable by "
                 "nobody else",
                 dir);
        return -1;
    }
    return 0;
}

/* Expands root_dir's %u to name, or picks pw's home directory; also where the session starts. */
static int user_root(const struct config *cfg, const char *root_dir, const struct passwd *pw,
                     const char *name, char *root, size_t rcap, char *start, size_t scap)
{
    char tmp[PATH_MAX];
    if (root_dir[0]) {
        struct sbuf b;
        sbuf_init(&b);
        for (const char *p = root_dir; *p; p++) {
            if (p[0] == '%' && p[1] == 'u') {
                sbuf_adds(&b, name);
                p++;
            } else if (p[0] == '%' && p[1] == '%') {
                sbuf_addc(&b, '%');
                p++;
            } else {
                sbuf_addc(&b, *p);
            }
        }
        snprintf(tmp, sizeof tmp, "%s", b.data);
        sbuf_free(&b);
    } else if (cfg->chroot) {
        snprintf(tmp, sizeof tmp, "%s", pw->pw_dir);
    } else {
        snprintf(tmp, sizeof tmp, "/");
    }
    struct stat st;
    if (!realpath(tmp, root) || strlen(root) >= rcap || stat(root, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        /* Refused before the 230: the user process would fail its chroot after it. */
        errno = ENOTDIR;
        return -1;
    }
    char home[PATH_MAX];
    if (!realpath(pw->pw_dir, home))
        snprintf(home, sizeof home, "%s", pw->pw_dir);
    size_t rl = strlen(root);
    if (strcmp(root, "/") == 0)
        snprintf(start, scap, "%s", home);
    else if (strcmp(home, root) == 0)
        snprintf(start, scap, "/");
    else if (strncmp(home, root, rl) == 0 && home[rl] == '/')
        snprintf(start, scap, "%s", home + rl);
    else
        snprintf(start, scap, "/");
    return 0;
}

static void add_id(struct idname **v, size_t *n, unsigned id, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if ((*v)[i].id == id)
            return;
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[*n].id = id;
    snprintf((*v)[*n].name, sizeof(*v)[*n].name, "%s", name);
    (*n)++;
}

/* LIST shows names for the user's own uid and groups; everything else stays numeric, because
 * nothing may be looked up (NSS) once the process is inside the user's root. */
static void build_idmap(struct idmap *ids, const struct passwd *pw, const gid_t *groups, int ng)
{
    memset(ids, 0, sizeof *ids);
    add_id(&ids->users, &ids->nusers, pw->pw_uid, pw->pw_name);
    add_id(&ids->users, &ids->nusers, 0, "root");
    add_id(&ids->groups, &ids->ngroups, 0, "root");
    for (int i = 0; i < ng; i++) {
        struct group *g = getgrgid(groups[i]);
        if (g)
            add_id(&ids->groups, &ids->ngroups, groups[i], g->gr_name);
    }
}

/* fsize: the file size limit PAM's session stage set (pam_limits), for the front and its
 * workers, which write the uploads. */
static void send_login_result(struct monitor *m, bool ok, int code, bool close_after,
                              const struct sbuf *lines, int fd, uint64_t fsize)
{
    struct msg *r = msg_new();
    msg_init(r, MSG_LOGIN_RESULT);
    msg_put_u32(r, ok);
    msg_put_u32(r, (uint32_t)code);
    msg_put_u32(r, close_after);
    msg_put_str(r, lines->data ? lines->data : "");
    msg_put_u64(r, fsize);
    /* The account logged in, which the front's log lines then name: PAM may have mapped the
     * name typed to another, and anonymous logins are the anon_user account. */
    msg_put_str(r, ok ? m->user : "");
    /* What the front enforces itself: FEAT's MFMT, and the workers' pacing. */
    msg_put_u32(r, ok && m->grant_write);
    msg_put_u64(r, ok ? m->grant_rate : 0);
    r->fd = fd;
    if (msg_send(m->front_fd, r) < 0) {
        /* The front waits for this answer: ending it is the only way not to leave the client
         * hanging. */
        log_msg(LOG_ERR, "cannot answer the front: %s; ending the session", strerror(errno));
        kill_front(m);
    }
    r->fd = -1;
    msg_free(r);
}

static bool valid_user_name(const char *u)
{
    size_t n = strlen(u);
    if (n == 0 || n > 255)
        return false;
    for (const char *p = u; *p; p++)
        if (is_ctl_byte((unsigned char)*p) || *p == '/' || *p == ':')
            return false;
    return strcmp(u, ".") != 0 && strcmp(u, "..") != 0;
}

/* Why an account may not log in before PAM is even asked, for the name typed and again for
 * the one PAM settles on; NULL if it may. *pw is its passwd entry, or NULL if it has none
 * (PAM then decides: pam_matrix and LDAP accounts can exist only there until the session). */
static const char *user_refused(const struct config *cfg, const char *user, struct passwd **pw,
                                char *why, size_t whylen)
{
    *pw = valid_user_name(user) ? getpwnam(user) : NULL;
    const char *r = NULL;
    if (!valid_user_name(user))
        r = "invalid user name";
    else if (cfg->rootless && (!*pw || (*pw)->pw_uid != geteuid()))
        r = "rootless mode serves only the user it runs as";
    else if (*pw && (*pw)->pw_uid == 0)
        r = "root may not log in";
    if (r)
        snprintf(why, whylen, "%s", r);
    return r;
}

/*
 * The account a PAM user with no passwd entry runs as: guest_user's, judged as any login's is
 * (never root) and never nopriv_user's uid (the front could then signal the user process).
 * Only a name NSS says is unknown is virtual: one it failed to look up (a directory service
 * that is down) may be a real account. NULL with why: the server is at fault.
 */
static struct passwd *virtual_account(const struct monitor *m, const char *user, char *why,
                                      size_t whylen)
{
    const struct config *cfg = m->si.cfg;
    struct passwd pwbuf, *res = NULL, *pw;
    char buf[16384];
    int e = getpwnam_r(user, &pwbuf, buf, sizeof buf, &res);
    /* getpwnam_r(3): these mean "no such user" on some systems; others are failures. */
    if (res || !(e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)) {
        snprintf(why, whylen, "cannot tell whether %s has a passwd entry (NSS %s)", user,
                 res ? "answered only now" : "failed");
        return NULL;
    }
    char r[200];
    const char *bad = user_refused(cfg, cfg->guest_user, &pw, r, sizeof r);
    if (!bad || (pw && pw->pw_uid == 0))
        bad = acct_guest_problem(pw, m->si.nopriv_uid);
    if (bad) {
        snprintf(why, whylen, "guest_user '%s' %s", cfg->guest_user, bad);
        return NULL;
    }
    return pw;
}

/* A virtual user's root must be its own: with one root_dir for all, every virtual user could
 * read and replace every other's files. */
static bool virtual_root_ok(const struct monitor *m, const char *root_dir, char *why, size_t whylen)
{
    if (!m->virt[0] || config_root_dir_per_user(root_dir))
        return true;
    snprintf(why, whylen, "root_dir '%s' has no %%u: virtual users would share one tree", root_dir);
    return false;
}

/* Where and how a logged-in user's process runs. */
struct user_spec {
    const char *root_dir; /* root_dir setting ("" = home), %u expanded */
    bool write_enable;
    unsigned umask;
    const char *deny_file, *hide_file;
    bool chmod_enable;
    bool anonymous;   /* always chrooted, anon_umask, anon_write_enable's kind of writes */
    const char *name; /* a virtual user's name (%u, log lines), NULL: the account's */
};

/* groups: the account's, ngroups of them from acct_groups (-1: NSS failed); the caller's. */
static pid_t start_user_process(struct monitor *m, const struct passwd *pw, const gid_t *groups,
                                int ngroups, const struct user_spec *u, int *front_end, char *why,
                                size_t whylen)
{
    const struct config *cfg = m->si.cfg;
    char root[PATH_MAX], start[PATH_MAX];
    const char *name = u->name ? u->name : pw->pw_name;
    if (user_root(cfg, u->root_dir, pw, name, root, sizeof root, start, sizeof start) < 0) {
        snprintf(why, whylen, "root directory for %s is not usable: %s", name, strerror(errno));
        return -1;
    }
    int ng = ngroups < 0 ? 0 : ngroups; /* NSS failed: LIST names only the user's own group */
    struct idmap ids;
    build_idmap(&ids, pw, groups, ng);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(why, whylen, "socketpair: %s", strerror(errno));
        free(ids.users);
        free(ids.groups);
        return -1;
    }
    snprintf(m->root, sizeof m->root, "%s", root);
    m->user_uid = pw->pw_uid;
    m->user_gid = pw->pw_gid;
    m->user_chroot = (cfg->chroot || u->anonymous) && !cfg->rootless;
    m->user_started = wall_ms();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        free(ids.users);
        free(ids.groups);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        close(m->front_fd);
        if (m->xferlog_fd >= 0)
            close(m->xferlog_fd);
        /* An flock belongs to the open file, which this copy would keep: the slot must be
         * given back when the monitor lets go of it (REIN), whenever this process ends. */
        if (m->slot_fd >= 0)
            close(m->slot_fd);
        /* It writes only listings; PAM's file size limit binds the uploads' writers (front). */
        proc_limits_restore_one(&m->own_limits, RLIMIT_FSIZE);
        struct session_args a = {
            .si = &m->si,
            .id = {.uid = pw->pw_uid, .gid = pw->pw_gid, .groups = groups, .ngroups = ng},
            .user = name,
            .chan = sv[1],
            .ids = ids,
            .write_enable = u->write_enable,
            .umask = u->umask,
            .deny_file = u->deny_file,
            .hide_file = u->hide_file,
            .chmod_enable = u->chmod_enable && !u->anonymous,
            .anonymous = u->anonymous,
            .chroot = cfg->chroot || u->anonymous,
        };
        snprintf(a.root, sizeof a.root, "%s", root);
        snprintf(a.start, sizeof a.start, "%s", start);
        session_main(&a);
    }
    close(sv[1]);
    free(ids.users);
    free(ids.groups);
    *front_end = sv[0];
    return pid;
}

/* A slot of the account's max (the key that set it, for the log) taken for the session, or
 * PAMAUTH_BUSY / PAMAUTH_ERROR with why. */
static enum pam_outcome take_slot(struct monitor *m, const char *account, unsigned max,
                                  const char *key, char *why, size_t whylen)
{
    const struct config *cfg = m->si.cfg;
    /* Rootless, the default directory is root's: the limit holds where the admin named one. */
    if (max == 0 || (cfg->rootless && !config_given(cfg, "session_lock_dir")))
        return PAMAUTH_OK;
    int fd = sesslimit_take(cfg->session_lock_dir, account, max, why, whylen);
    if (fd == SESSLIMIT_FULL) {
        snprintf(why, whylen, "%u sessions already open (%s)", max, key);
        return PAMAUTH_BUSY;
    }
    if (fd < 0)
        return PAMAUTH_ERROR;
    m->slot_fd = fd;
    return PAMAUTH_OK;
}

static void release_slot(struct monitor *m)
{
    if (m->slot_fd >= 0)
        close(m->slot_fd);
    m->slot_fd = -1;
}

/* What the client proved, from the front's request and the monitor's own checks. */
struct login_req {
    unsigned vhost;
    char user[256];
    bool has_password;
    char pass[1024];
    size_t ncerts;
    const unsigned char *der[CERTID_MAX_CHAIN];
    size_t derlen[CERTID_MAX_CHAIN];
};

static bool parse_login(const struct config *cfg, struct msg *req, struct login_req *l)
{
    l->vhost = msg_get_u32(req);
    msg_get_str(req, l->user, sizeof l->user);
    l->has_password = msg_get_u32(req) != 0;
    msg_get_str(req, l->pass, sizeof l->pass);
    uint32_t n = msg_get_u32(req);
    if (n > CERTID_MAX_CHAIN)
        return false;
    l->ncerts = n;
    for (size_t i = 0; i < n; i++)
        l->derlen[i] = msg_get_blob(req, &l->der[i], 64 * 1024);
    return msg_ok_end(req) && l->vhost <= cfg->nvhosts;
}

static bool is_anonymous(const struct config *cfg, const char *user)
{
    return cfg->anonymous && (str_ieq(user, "anonymous") || str_ieq(user, "ftp"));
}

static void login_succeeded(struct monitor *m, const struct passwd *pw, const struct login_req *l,
                            const char *method, int code, struct sbuf *lines, int front_end,
                            uint64_t fsize)
{
    const struct config *cfg = m->si.cfg;
    m->logged_in = true;
    m->login_at = now_ms();
    snprintf(m->user, sizeof m->user, "%s", m->virt[0] ? m->virt : pw->pw_name);
    log_set_user(m->user);
    /* A virtual user's line also names the account that acts for it. */
    char guest[300] = "";
    if (m->virt[0])
        snprintf(guest, sizeof guest, " guest=%s", pw->pw_name);
    if (l->vhost)
        log_msg(LOG_NOTICE, "login ok user=%s method=%s%s host=%s", m->user, method, guest,
                cfg->vhosts[l->vhost - 1].name);
    else
        log_msg(LOG_NOTICE, "login ok user=%s method=%s%s", m->user, method, guest);
    if (lines->len)
        sbuf_addc(lines, '\n');
    wtmp_login(cfg->wtmp_file, m->user, &m->si);
    sbuf_adds(lines, code == 232 ? "User logged in, authorized by the client certificate."
                                 : "Login successful.");
    send_login_result(m, true, code, false, lines, front_end, fsize);
    close(front_end);
    /* PAM's and NSS's temporary memory is returned: the monitor then idles small. */
    malloc_trim(0);
}

static void login_failed(struct monitor *m, const struct login_req *l, const char *method,
                         enum pam_outcome out, const char *why, struct sbuf *lines)
{
    const struct config *cfg = m->si.cfg;
    m->failures++;
    log_set_attempted_user(l->user);
    if (out == PAMAUTH_BUSY)
        /* The password was right: not a failure for fail2ban's filter either. */
        log_msg(LOG_NOTICE, "login refused user=%s method=%s: %s (attempt %u of %u)", l->user,
                method, why, m->failures, cfg->max_login_failures);
    else if (out == PAMAUTH_ERROR)
        /* The server's fault, not the client's: worded so that fail2ban's filter (which
         * matches "login failed") does not ban a client for it. It still counts towards
         * max_login_failures, which bounds how often a session can make the server try. */
        log_msg(LOG_ERR, "login error (server side) user=%s method=%s: %s (attempt %u of %u)",
                l->user, method, why, m->failures, cfg->max_login_failures);
    else
        log_msg(LOG_WARNING, "login failed user=%s method=%s: %s (failure %u of %u)", l->user,
                method, why, m->failures, cfg->max_login_failures);
    /* The delay is the monitor's, so a misbehaving front cannot skip it. */
    sleep_ms(cfg->fail_delay_ms);
    if (lines->len)
        sbuf_addc(lines, '\n');
    if (out == PAMAUTH_EXPIRED_PW)
        sbuf_adds(lines, "Password has expired; change it before logging in.");
    else if (out == PAMAUTH_ACCT_DENIED)
        sbuf_adds(lines, "Account is not allowed to log in now.");
    else if (out == PAMAUTH_ERROR)
        sbuf_adds(lines, "Login failed (server authentication error).");
    else if (out == PAMAUTH_BUSY)
        sbuf_adds(lines, "Too many sessions of this account are open; try again later.");
    else
        sbuf_adds(lines, "Login incorrect.");
    bool last = m->failures >= cfg->max_login_failures;
    if (last) {
        sbuf_adds(lines, "\nToo many failed logins; closing the connection.");
        log_msg(LOG_WARNING, "too many login failures; closing");
    }
    log_set_attempted_user("");
    send_login_result(m, false, last ? 421 : 530, last, lines, -1, UINT64_MAX);
}

static void need_password(struct monitor *m)
{
    struct sbuf t;
    sbuf_init(&t);
    sbuf_adds(&t, "Please specify the password.");
    send_login_result(m, false, 331, false, &t, -1, UINT64_MAX);
    sbuf_free(&t);
}

/* Anonymous FTP: no PAM, the configured account, its own root, read-only unless allowed. */
static void login_anonymous(struct monitor *m, const struct login_req *l, struct sbuf *lines)
{
    const struct config *cfg = m->si.cfg;
    char why[512];
    int front_end = -1;
    struct passwd *pw = getpwnam(cfg->anon_user);
    if (!pw || pw->pw_uid == 0) {
        snprintf(why, sizeof why, "anon_user '%s' %s", cfg->anon_user,
                 pw ? "must not be root" : "does not exist");
        log_msg(LOG_ERR, "%s", why);
        login_failed(m, l, "anonymous", PAMAUTH_ERROR, why, lines);
        return;
    }
    struct user_spec u = {.root_dir = cfg->anon_root,
                          .write_enable = cfg->anon_write_enable != ANON_WRITE_NO,
                          .umask = cfg->anon_umask,
                          /* The main lists: they keep names from every session. */
                          .deny_file = cfg->deny_file,
                          .hide_file = cfg->hide_file,
                          .anonymous = true};
    /* The front offers MFMT only where it may be used. */
    m->grant_write = cfg->anon_write_enable == ANON_WRITE_YES;
    m->grant_rate = cfg->anon_max_rate;
    /* One count for all anonymous sessions: '/' is in no account's name. */
    enum pam_outcome out =
        take_slot(m, "/anonymous", cfg->anon_max_sessions, "anon_max_sessions", why, sizeof why);
    if (out != PAMAUTH_OK) {
        login_failed(m, l, "anonymous", out, why, lines);
        return;
    }
    int ng;
    gid_t *groups = acct_groups(pw, &ng);
    m->user_pid = start_user_process(m, pw, groups, ng, &u, &front_end, why, sizeof why);
    free(groups);
    if (m->user_pid < 0) {
        release_slot(m);
        login_failed(m, l, "anonymous", PAMAUTH_ERROR, why, lines);
        return;
    }
    char ident[64];
    snprintf(ident, sizeof ident, "%s", l->pass);
    log_msg(LOG_INFO, "anonymous login, password (e-mail) given: %s", ident);
    snprintf(m->anon_ident, sizeof m->anon_ident, "%s", ident);
    m->anon = true;
    login_succeeded(m, pw, l, "anonymous", 230, lines, front_end, UINT64_MAX);
}

static void handle_login(struct monitor *m, struct msg *req)
{
    const struct config *cfg = m->si.cfg;
    struct login_req *l = xcalloc(1, sizeof *l);
    struct sbuf lines;
    sbuf_init(&lines);
    if (!parse_login(cfg, req, l) || m->logged_in || m->failures >= cfg->max_login_failures) {
        log_msg(LOG_ERR, "malformed or out-of-order login request from the front; ending");
        kill_front(m);
        goto out;
    }
    m->virt[0] = '\0'; /* a virtual user's before a REIN is not this login's */
    if (is_anonymous(cfg, l->user)) {
        if (l->has_password)
            login_anonymous(m, l, &lines);
        else
            need_password(m);
        goto out;
    }

    /* The certificate, checked here again rather than taken on the front's word. */
    enum cert_login_mode mode = config_cert_login(cfg);
    char mapped[256] = "", why[512] = "", dnenv[4200] = "", issenv[4200] = "";
    const char *method = l->has_password ? "password" : "certificate";
    if (mode != CERT_LOGIN_NO && l->ncerts > 0) {
        struct certid id;
        if (certcheck_verify(&m->si, l->der, l->derlen, l->ncerts, &id, why, sizeof why) < 0) {
            login_failed(m, l, "certificate", PAMAUTH_BAD_LOGIN, why, &lines);
            goto out;
        }
        struct cert_ids view;
        certid_view(&id, &view);
        unsigned rule = m->certmap ? certmap_lookup(m->certmap, &view, mapped, sizeof mapped) : 0;
        log_msg(LOG_INFO, "client certificate subject=\"%s\" issuer=\"%s\" maps to %s%s",
                id.subject, id.issuer, rule ? mapped : "no user", rule ? "" : " (no rule)");
        snprintf(dnenv, sizeof dnenv, "FTPSD_CLIENT_DN=%s", id.subject);
        snprintf(issenv, sizeof issenv, "FTPSD_CLIENT_ISSUER=%s", id.issuer);
        certid_free(&id);
    }
    bool cert_is_user = mapped[0] && strcmp(mapped, l->user) == 0;
    if (mapped[0] && !cert_is_user) {
        snprintf(why, sizeof why, "the client certificate belongs to %s", mapped);
        login_failed(m, l, "certificate", PAMAUTH_BAD_LOGIN, why, &lines);
        goto out;
    }
    if (mode == CERT_LOGIN_CERT_PASSWORD && !cert_is_user) {
        login_failed(m, l, "certificate+password", PAMAUTH_BAD_LOGIN,
                     "no client certificate mapped to this user", &lines);
        goto out;
    }
    bool cert_only = mode == CERT_LOGIN_CERT && cert_is_user && !l->has_password;
    if (!l->has_password && !cert_only) {
        need_password(m);
        goto out;
    }
    if (cert_is_user)
        method = cert_only ? "certificate" : "certificate+password";

    enum pam_outcome out = PAMAUTH_BAD_LOGIN;
    struct passwd *pw = NULL;
    const char *env[] = {dnenv[0] ? dnenv : NULL, issenv,
                         cert_is_user ? "FTPSD_AUTH=certificate" : NULL, NULL};
    if (!user_refused(cfg, l->user, &pw, why, sizeof why)) {
        out =
            pamauth_login(&m->pam, config_pam_service(cfg, l->vhost), l->user,
                          cert_only ? NULL : l->pass, m->si.peer_str, env, &lines, why, sizeof why);
        /* A module may have mapped the name to another (PAM_USER): that account is judged
         * again before its credentials and session are set up, root's included. */
        if (out == PAMAUTH_OK && user_refused(cfg, m->pam.user, &pw, why, sizeof why)) {
            pamauth_close(&m->pam);
            out = PAMAUTH_BAD_LOGIN;
        } else if (out == PAMAUTH_OK && !pw && cfg->guest_user[0] &&
                   !virtual_account(m, m->pam.user, why, sizeof why)) {
            pamauth_close(&m->pam); /* a virtual user's, also judged before its session */
            out = PAMAUTH_ERROR;
        }
        if (out == PAMAUTH_OK)
            out = pamauth_open_session(&m->pam, why, sizeof why);
    }
    /* The password, here and in the request it came in (which l's certificates point into),
     * is gone before the user process is forked from this one. */
    explicit_bzero(l->pass, sizeof l->pass);
    /* What was received only: zeroing all of the buffer would make each session hold ~90 KiB
     * more (measured in bench/results.md, table 5b). */
    explicit_bzero(req->data, req->len);
    int front_end = -1;
    gid_t *groups = NULL;
    /* What pam_limits set in this process, before the monitor's own limits come back. */
    struct rlimit fs = {RLIM_INFINITY, RLIM_INFINITY};
    getrlimit(RLIMIT_FSIZE, &fs);
    if (out == PAMAUTH_OK) {
        /* Looked up again: the session stage may have made the account (pam_mkhomedir's
         * home, an LDAP cache). */
        bool refused = user_refused(cfg, m->pam.user, &pw, why, sizeof why);
        /* A name PAM knows and NSS does not: with guest_user, a virtual user. */
        bool virt = !refused && !pw && cfg->guest_user[0];
        bool fault = virt && !(pw = virtual_account(m, m->pam.user, why, sizeof why));
        snprintf(m->virt, sizeof m->virt, "%s", virt && pw ? m->pam.user : "");
        /* Asked of NSS once (a directory service's query) for the sections and the process. */
        int ng = -1;
        groups = !refused && pw ? acct_groups(pw, &ng) : NULL;
        struct acct_settings as = {0};
        bool settled = !refused && pw &&
                       acct_settings(cfg, l->vhost, m->virt[0] ? m->virt : pw->pw_name, pw, groups,
                                     ng, &as, why, sizeof why) == 0 &&
                       virtual_root_ok(m, as.root_dir, why, sizeof why);
        struct user_spec u = {.root_dir = as.root_dir,
                              .write_enable = as.write_enable,
                              .umask = as.umask,
                              .deny_file = as.deny_file,
                              .hide_file = as.hide_file,
                              .chmod_enable = as.chmod_enable,
                              .anonymous = false,
                              .name = m->virt[0] ? m->virt : NULL};
        m->grant_write = as.write_enable;
        m->grant_rate = as.max_rate;
        if (refused || !pw) {
            if (!refused && !fault)
                snprintf(why, sizeof why, "user has no passwd entry");
            pamauth_close(&m->pam);
            out = fault ? PAMAUTH_ERROR : PAMAUTH_BAD_LOGIN;
        } else if (!settled) {
            pamauth_close(&m->pam);
            out = PAMAUTH_ERROR;
        } else if ((out = take_slot(m, u.name ? u.name : pw->pw_name, as.max_sessions,
                                    "max_sessions_per_user", why, sizeof why)) != PAMAUTH_OK) {
            pamauth_close(&m->pam);
        } else if ((m->user_pid = start_user_process(m, pw, groups, ng, &u, &front_end, why,
                                                     sizeof why)) < 0) {
            release_slot(m);
            pamauth_close(&m->pam);
            out = PAMAUTH_ERROR;
        }
    }
    /* The user process has the user's limits (it was forked after the session stage). */
    proc_limits_restore(&m->own_limits);
    if (out == PAMAUTH_OK)
        login_succeeded(m, pw, l, method, cert_only ? 232 : 230, &lines, front_end,
                        fs.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)fs.rlim_cur);
    else
        login_failed(m, l, method, out, why, &lines);
    free(groups);
out:
    explicit_bzero(l->pass, sizeof l->pass);
    free(l);
    sbuf_free(&lines);
}

static void reap(pid_t pid, const char *what, int grace_ms, int64_t started);

static bool is_temp_upload_name(const char *base)
{
    /* ".ftpsd-" + 12 hex digits + ".part", as cmd_xfer.c names them */
    if (strlen(base) != 7 + 12 + 5 || strncmp(base, ".ftpsd-", 7) != 0 ||
        strcmp(base + 19, ".part") != 0)
        return false;
    for (int i = 7; i < 19; i++)
        if (!strchr("0123456789abcdef", base[i]))
            return false;
    return true;
}

/* The user process died with an upload's temporary file open: remove it, as that user, inside
 * that user's root, so nothing half-written stays behind. */
/* STOU's reserved name: beside the temporary file, and removed only while still empty. */
static bool reserved_ok(const char *rv, const char *parent)
{
    char canon[VPATH_MAX], rparent[VPATH_MAX];
    const char *rbase;
    return !rv[0] || (vpath_join("/", rv, canon, sizeof canon) == 0 && strcmp(canon, rv) == 0 &&
                      vpath_split(canon, rparent, sizeof rparent, &rbase) == 0 &&
                      strcmp(rparent, parent) == 0);
}

static void handle_cleanup(struct monitor *m, struct msg *req)
{
    char vp[VPATH_MAX], canon[VPATH_MAX], parent[VPATH_MAX], rv[VPATH_MAX];
    const char *base;
    msg_get_str(req, vp, sizeof vp);
    msg_get_str(req, rv, sizeof rv);
    if (!msg_ok_end(req) || !m->logged_in || vpath_join("/", vp, canon, sizeof canon) < 0 ||
        strcmp(canon, vp) != 0 || vpath_split(canon, parent, sizeof parent, &base) < 0 ||
        !is_temp_upload_name(base) || !reserved_ok(rv, parent)) {
        log_msg(LOG_ERR, "unexpected cleanup request from the front; ignored");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        char why[256];
        struct identity id = {.uid = m->user_uid, .gid = m->user_gid};
        if (drop_privileges(&id, m->user_chroot ? m->root : NULL, why, sizeof why) < 0)
            _exit(1);
        int root = open(m->user_chroot ? "/" : m->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int dfd = root < 0 ? -1 : path_open_parent(root, canon, &base);
        bool ok = dfd >= 0 && unlinkat(dfd, base, 0) == 0;
        const char *rbase = strrchr(rv, '/');
        struct stat st;
        if (ok && rv[0] && rbase && fstatat(dfd, rbase + 1, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && st.st_size == 0)
            unlinkat(dfd, rbase + 1, 0);
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    if (pid > 0)
        waitpid(pid, &st, 0);
    log_msg(LOG_NOTICE, "removed the temporary file %s of an unfinished upload%s%s%s", canon,
            rv[0] ? " and the name STOU reserved, " : "", rv,
            pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "" : " (failed)");
}

/* The real client named by a PROXY header, accepted only from a balancer this monitor also
 * sees as trusted, once, before login. */
static void handle_peer(struct monitor *m, struct msg *req)
{
    const struct config *cfg = m->si.cfg;
    uint32_t fam = msg_get_u32(req);
    const unsigned char *addr;
    size_t len = msg_get_blob(req, &addr, 16);
    uint32_t port = msg_get_u32(req);
    struct cidr trusted[64];
    char bad[64];
    int n = cidr_parse_list(cfg->proxy_trusted, trusted, 64, bad, sizeof bad);
    bool ok = false;
    for (int i = 0; i < n && !ok; i++)
        ok = cidr_match(&trusted[i], &m->si.peer);
    if (!msg_ok_end(req) || cfg->proxy_protocol == PROXY_OFF || !ok || m->peer_set ||
        m->logged_in || port > 65535 ||
        !((fam == AF_INET && len == 4) || (fam == AF_INET6 && len == 16))) {
        log_msg(LOG_ERR, "unexpected client address from the front; ending");
        kill_front(m);
        return;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (fam == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, addr, 4);
        s4->sin_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, addr, 16);
        s6->sin6_port = htons((uint16_t)port);
    }
    m->si.peer = ss;
    sockaddr_to_str(&ss, m->si.peer_str, sizeof m->si.peer_str);
    log_set_session(m->si.sid, m->si.peer_str);
    m->peer_set = true;
}

static void handle_xferlog(struct monitor *m, struct msg *req)
{
    struct xferlog_entry e = {.end = time(NULL),
                              .host = m->si.peer_str,
                              .user = m->anon ? m->anon_ident : m->user,
                              .anonymous = m->anon,
                              .guest = m->virt[0] != '\0'};
    char vpath[4096], full[8192];
    e.bytes = msg_get_u64(req);
    uint32_t msecs = msg_get_u32(req);
    uint32_t dir = msg_get_u32(req), type = msg_get_u32(req), complete = msg_get_u32(req);
    msg_get_str(req, vpath, sizeof vpath);
    char canon[VPATH_MAX];
    if (!msg_ok_end(req) || !m->logged_in || vpath_join("/", vpath, canon, sizeof canon) < 0 ||
        strcmp(canon, vpath) != 0 || (dir != 'o' && dir != 'i') || (type != 'a' && type != 'b')) {
        log_msg(LOG_ERR, "unexpected transfer record from the front; ignored");
        return;
    }
    if (m->xferlog_fd < 0)
        return;
    e.seconds = (msecs + 999) / 1000;
    e.direction = (char)dir;
    e.type = (char)type;
    e.complete = complete != 0;
    snprintf(full, sizeof full, "%s%s", strcmp(m->root, "/") == 0 ? "" : m->root, vpath);
    e.path = full;
    if (xferlog_write(m->xferlog_fd, &e) < 0)
        log_msg(LOG_ERR, "cannot write the transfer log: %s", strerror(errno));
}

/* REIN: the user process has lost its channel and ends; close the PAM session. */
static void handle_logout(struct monitor *m, struct msg *req)
{
    if (!msg_ok_end(req)) {
        kill_front(m);
        return;
    }
    if (m->logged_in) {
        reap(m->user_pid, "user", 5000, m->user_started);
        m->user_pid = 0;
        pamauth_close(&m->pam);
        release_slot(m);
        wtmp_logout(m->si.cfg->wtmp_file, &m->si);
        m->logged_in = false;
        m->anon = false;
        log_msg(LOG_INFO, "logout (REIN) after %lld s",
                (long long)((now_ms() - m->login_at) / 1000));
        log_set_user("");
    }
    msg_init(req, MSG_LOGOUT_DONE);
    msg_send(m->front_fd, req);
}

/* After a SIGTERM the front still records the transfer it was carrying (its xferlog entry)
 * before it ends: what it sends until its end is handled, for limit_ms at most. */
static void drain_front(struct monitor *m, struct msg *req, int limit_ms)
{
    int64_t deadline = now_ms() + limit_ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = m->front_fd, .events = POLLIN};
        struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000L};
        if (left <= 0 || ppoll(&p, 1, &ts, NULL) <= 0 || msg_recv(m->front_fd, req) < 0)
            return;
        if (req->fd >= 0) {
            close(req->fd);
            req->fd = -1;
        }
        if (req->type == MSG_XFERLOG)
            handle_xferlog(m, req);
        else if (req->type == MSG_CLEANUP)
            handle_cleanup(m, req);
        else
            return; /* a request the front would wait for an answer to: it gets the close */
    }
}

/* started: wall_ms() before pid was forked. */
static void reap(pid_t pid, const char *what, int grace_ms, int64_t started)
{
    if (pid <= 0)
        return;
    int64_t deadline = now_ms() + grace_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            break;
        if (now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            log_msg(LOG_WARNING, "%s process did not end in time; killed", what);
            return;
        }
        sleep_ms(20);
    }
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS)
        audit_log_seccomp_kill(what, pid, (uid_t)-1, started);
    else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && pid != killed_here)
        log_msg(LOG_ERR,
                "%s process was killed (SIGKILL from outside the session: an administrator, or "
                "the kernel's out-of-memory killer)",
                what);
    else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL && WTERMSIG(st) != SIGTERM)
        log_msg(LOG_ERR, "%s process died of signal %d", what, WTERMSIG(st));
}

void monitor_run(struct config *cfg)
{
    struct monitor m;
    memset(&m, 0, sizeof m);
    m.started = wall_ms();
    m.xferlog_fd = -1;
    m.slot_fd = -1;
    proc_limits_save(&m.own_limits);
    /* A transfer log past a file size limit fails its write (EFBIG) instead of killing. */
    signal(SIGXFSZ, SIG_IGN);
    make_session_info(&m, cfg);
    /* Behind a balancer the front logs the connection once the PROXY header names the client. */
    if (cfg->proxy_protocol == PROXY_OFF)
        log_msg(LOG_INFO, "connect to %s port %u", m.si.local_str, sockaddr_port(&m.si.local));

    char why[512];
    struct passwd *np = cfg->rootless ? getpwuid(geteuid()) : getpwnam(cfg->nopriv_user);
    if (!np || np->pw_uid == 0) {
        log_msg(LOG_ERR, "nopriv_user '%s' %s", cfg->nopriv_user,
                np ? "must not be root" : "does not exist");
        plain_reply_and_exit(cfg, "421 Service not available (server configuration error).\r\n");
    }
    m.si.nopriv_uid = np->pw_uid;
    m.si.nopriv_gid = np->pw_gid;
    if (cfg->rootless)
        log_msg(LOG_INFO, "rootless mode: serving only user %s", np->pw_name);
    else if (check_empty_dir(cfg->empty_dir, why, sizeof why) < 0) {
        log_msg(LOG_ERR, "%s", why);
        plain_reply_and_exit(cfg, "421 Service not available (server configuration error).\r\n");
    }

    cfg->ktls_kernel = cfg->tls_ktls && ktls_probe();
    if (cfg->cert_map_file[0] && !(m.certmap = certmap_load(cfg->cert_map_file, log_error_line)))
        log_msg(LOG_ERR, "cert_map_file %s is not usable: certificate logins fail",
                cfg->cert_map_file);
    if (cfg->xferlog_file[0] && (m.xferlog_fd = xferlog_open(cfg->xferlog_file)) < 0)
        log_msg(LOG_ERR, "xferlog_file %s: %s", cfg->xferlog_file, strerror(errno));
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair: %s", strerror(errno));
    m.front_started = wall_ms();
    m.front_pid = fork();
    if (m.front_pid < 0)
        die("fork: %s", strerror(errno));
    if (m.front_pid == 0) {
        close(sv[0]);
        if (m.xferlog_fd >= 0)
            close(m.xferlog_fd);
        front_main(&m.si, sv[1]);
    }
    close(sv[1]);
    m.front_fd = sv[0];
    /* The monitor holds nothing network-facing. */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        close(devnull);
    } else {
        close(0);
        close(1);
    }
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Blocked from the check of g_term until ppoll() unblocks them atomically: one arriving
     * just after the check would otherwise wait for the front's next message. Unblocked while
     * a request runs, for what PAM starts. */
    sigset_t ends, waiting;
    sigemptyset(&ends);
    sigaddset(&ends, SIGTERM);
    sigaddset(&ends, SIGHUP);

    struct msg *req = msg_new();
    for (;;) {
        sigprocmask(SIG_BLOCK, &ends, &waiting);
        struct pollfd p = {.fd = m.front_fd, .events = POLLIN};
        int r = g_term ? 0 : ppoll(&p, 1, NULL, &waiting);
        int saved = errno;
        sigprocmask(SIG_SETMASK, &waiting, NULL);
        if (g_term)
            break;
        if (r < 0) {
            if (saved == EINTR)
                continue;
            break;
        }
        if (msg_recv(m.front_fd, req) < 0)
            break;
        if (req->fd >= 0) {
            close(req->fd);
            req->fd = -1;
        }
        if (req->type == MSG_LOGIN) {
            handle_login(&m, req);
        } else if (req->type == MSG_LOGOUT) {
            handle_logout(&m, req);
        } else if (req->type == MSG_CLEANUP) {
            handle_cleanup(&m, req);
        } else if (req->type == MSG_PEER) {
            handle_peer(&m, req);
        } else if (req->type == MSG_XFERLOG) {
            handle_xferlog(&m, req);
        } else if (req->type == MSG_WORKER_KILLED) {
            /* The front's word: only records of its uid since the session began, and a few
             * per session (each costs reads of the kernel log). */
            uint32_t pid = msg_get_u32(req);
            int64_t started = (int64_t)msg_get_u64(req);
            if (msg_ok_end(req) && pid > 1 && m.kill_reports++ < 16)
                audit_log_seccomp_kill("data worker", (pid_t)pid, m.si.nopriv_uid,
                                       started > m.started ? started : m.started);
        } else {
            log_msg(LOG_ERR, "unexpected message %u from the front; ending", req->type);
            break;
        }
    }
    if (g_term) {
        log_msg(LOG_NOTICE, "terminated by signal");
        kill(m.front_pid, SIGTERM);
        drain_front(&m, req, 3000);
    }
    msg_free(req);
    close(m.front_fd);
    reap(m.front_pid, "front", 5000, m.front_started);
    /* The user process ends by itself when the front's channel closes. */
    reap(m.user_pid, "user", 5000, m.user_started);
    if (m.logged_in) {
        pamauth_close(&m.pam);
        wtmp_logout(cfg->wtmp_file, &m.si);
        log_msg(LOG_INFO, "disconnect after %lld s", (long long)((now_ms() - m.login_at) / 1000));
    } else {
        log_msg(LOG_INFO, "disconnect (not logged in)");
    }
    exit(0);
}
