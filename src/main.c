/* ftpsd: command line, configuration check (-t), and the hand-over to the monitor. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "acctconf.h"
#include "banner.h"
#include "certmap.h"
#include "config.h"
#include "ktls.h"
#include "log.h"
#include "monitor.h"
#include "tls.h"
#include "sesslimit.h"
#include "util.h"

#ifndef FTPSD_VERSION
#define FTPSD_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
    fprintf(out, "usage: ftpsd [-f CONFIG] [-o KEY=VALUE]... [-t] [-T] [-V]\n"
                 "  -f CONFIG  configuration file (default " FTPSD_CONFIG_FILE ")\n"
                 "  -o KEY=VALUE  set a configuration key over the file (e.g. implicit_tls=yes)\n"
                 "  -t         check the configuration, certificate and key, then exit\n"
                 "  -T         print every setting in effect (defaults too), then exit\n"
                 "  -V         print the version and exit\n"
                 "ftpsd serves one FTPS control connection on standard input/output; it is\n"
                 "started per connection by systemd (ftpsd.socket, Accept=yes) or xinetd.\n");
}

static void print_err(const char *msg)
{
    fprintf(stderr, "%s\n", msg);
}

static int errors_seen;
static void log_err(const char *msg)
{
    errors_seen++;
    log_msg(LOG_ERR, "%s", msg);
    log_stderr("%s", msg);
}

/* "file:line: what" where the key at fault was set, "file: what" for a default or an -o
 * value, which have no line. */
static void __attribute__((format(printf, 3, 4)))
report(const struct config *cfg, unsigned line, const char *fmt, ...)
{
    if (line)
        fprintf(stderr, "%s:%u: ", cfg->path, line);
    else
        fprintf(stderr, "%s: ", cfg->path);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* What the root monitor needs to separate privileges (monitor.c does the same checks). */
static int check_privsep(const struct config *cfg)
{
    int bad = 0;
    struct stat st;
    struct passwd *pw = getpwnam(cfg->nopriv_user);
    if (!pw || pw->pw_uid == 0) {
        report(cfg, config_line(cfg, "nopriv_user"), "nopriv_user '%s' %s", cfg->nopriv_user,
               pw ? "must not be root" : "does not exist");
        bad = 1;
    }
    if (stat(cfg->empty_dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 ||
        (st.st_mode & 022)) {
        report(cfg, config_line(cfg, "empty_dir"),
               "empty_dir %s must be an existing directory owned by root and writable by "
               "nobody else",
               cfg->empty_dir);
        bad = 1;
    }
    return bad;
}

/* Rootless mode uses neither nopriv_user nor empty_dir (ftpsd(8)): its processes all run as
 * the starting user, whom the monitor looks up by uid. */
static int check_rootless_user(void)
{
    if (getpwuid(geteuid()))
        return 0;
    fprintf(stderr, "ftpsd: rootless mode: uid %u has no passwd entry\n", (unsigned)geteuid());
    return 1;
}

/* The authentication a TLS 1.2 cipher needs to be used with this key; NID_undef for a key type
 * not judged here. */
static int auth_nid_of_key(const EVP_PKEY *pkey)
{
    switch (pkey ? EVP_PKEY_get_base_id(pkey) : EVP_PKEY_NONE) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        return NID_auth_rsa;
    case EVP_PKEY_EC:
    case EVP_PKEY_ED25519:
    case EVP_PKEY_ED448:
        return NID_auth_ecdsa;
    default:
        return NID_undef;
    }
}

/* OpenSSL takes cipher lists that leave a handshake nothing to agree on (TLS 1.2 ciphers all
 * for another key type, disabled at tls_min_version or the security level, with no TLS 1.3
 * suite): every handshake would then fail with "no shared cipher". */
static bool some_cipher_usable(SSL_CTX *ctx)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    int auth = auth_nid_of_key(cert ? X509_get0_pubkey(cert) : NULL);
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return true; /* out of memory: nothing to say about the lists */
    STACK_OF(SSL_CIPHER) *usable = SSL_get1_supported_ciphers(ssl);
    bool ok = false;
    for (int i = 0; usable && i < sk_SSL_CIPHER_num(usable) && !ok; i++) {
        int a = SSL_CIPHER_get_auth_nid(sk_SSL_CIPHER_value(usable, i));
        ok = a == NID_auth_any || auth == NID_undef || a == auth;
    }
    sk_SSL_CIPHER_free(usable);
    SSL_free(ssl);
    ERR_clear_error();
    return ok;
}

static void report_no_cipher(const struct config *cfg, unsigned v)
{
    char host[300] = "";
    if (v > 0)
        snprintf(host, sizeof host, "[host %s]: ", cfg->vhosts[v - 1].name);
    if (cfg->tls_min_version >= TLS1_3_VERSION)
        report(cfg, config_line(cfg, "tls_ciphersuites"),
               "%stls_ciphersuites: no TLS 1.3 suite in '%s' is usable, and tls_min_version = 1.3 "
               "leaves no other: every handshake would fail",
               host, cfg->tls_ciphersuites);
    else
        report(cfg, config_line(cfg, "tls_ciphers"),
               "%stls_ciphers: no cipher in '%s' is usable with the key of %s, and "
               "tls_ciphersuites leaves no TLS 1.3 suite: every handshake would fail",
               host, cfg->tls_ciphers, config_cert(cfg, v));
}

/* Who besides the owner may read the key, or NULL when that is as it should be. Debian keeps
 * keys root:ssl-cert 0640 (the snakeoil pair, README.Debian's step) for the daemons in that
 * group; root's own group is no wider than root. Any other group, or everyone, is. */
static const char *key_readers(const struct stat *st, char *buf, size_t len)
{
    if (st->st_mode & S_IROTH)
        return "everyone";
    if (!(st->st_mode & S_IRGRP) || st->st_gid == 0)
        return NULL;
    struct group *gr = getgrgid(st->st_gid);
    if (gr && strcmp(gr->gr_name, "ssl-cert") == 0)
        return NULL;
    if (gr)
        snprintf(buf, len, "group %s", gr->gr_name);
    else
        snprintf(buf, len, "group %u", (unsigned)st->st_gid);
    return buf;
}

static void check_key_mode(const struct config *cfg, unsigned v, const char *keyfile)
{
    struct stat st;
    char buf[300];
    if (stat(keyfile, &st) < 0)
        return;
    const char *readers = key_readers(&st, buf, sizeof buf);
    if (readers)
        report(cfg, config_host_line(cfg, v, "tls_key_file"),
               "warning: key %s is readable by %s (mode %04o): only its owner, root's group or "
               "ssl-cert should read it",
               keyfile, readers, (unsigned)(st.st_mode & 07777));
    /* Whoever may write it may swap in a key of their own, whatever group it is. */
    else if (st.st_mode & (S_IWGRP | S_IWOTH))
        report(cfg, config_host_line(cfg, v, "tls_key_file"),
               "warning: key %s is writable by %s (mode %04o): only its owner should write it",
               keyfile, st.st_mode & S_IWOTH ? "everyone" : "its group",
               (unsigned)(st.st_mode & 07777));
}

/* One TLS context: the main one (v = 0) or a [host] section's. A section fails on the main
 * keys exactly as the main context does, so only what differs is reported again. */
static int check_tls_context(const struct config *cfg, unsigned v, const char *main_err,
                             struct tls_err *err)
{
    const char *keyfile = config_key(cfg, v);
    SSL_CTX *ctx = tls_server_ctx(cfg, config_cert(cfg, v), keyfile, err);
    /* Only the main certificate staples (a response names one certificate). */
    if (ctx && v == 0 && cfg->tls_ocsp_file[0] &&
        tls_staple_ocsp(ctx, cfg->tls_ocsp_file, err) < 0) {
        SSL_CTX_free(ctx);
        ctx = NULL;
    }
    check_key_mode(cfg, v, keyfile);
    if (ctx) {
        bool usable = some_cipher_usable(ctx);
        SSL_CTX_free(ctx);
        err->text[0] = '\0';
        if (!usable)
            report_no_cipher(cfg, v);
        return !usable;
    }
    if (v > 0 && strcmp(err->text, main_err) == 0)
        return 1;
    const char *key = err->key;
    unsigned line = key ? config_host_line(cfg, v, key) : 0;
    char host[300] = "";
    if (v > 0 && (!key || line != config_line(cfg, key))) {
        snprintf(host, sizeof host, "[host %s]: ", cfg->vhosts[v - 1].name);
        line = key ? line : cfg->vhosts[v - 1].line;
    }
    /* Name the key where the text does not start with it ("cannot load certificate ..."). */
    const char *label = key && strncmp(err->text, key, strlen(key)) != 0 ? key : NULL;
    report(cfg, line, "%s%s%s%s", host, label ? label : "", label ? ": " : "", err->text);
    return 1;
}

/* The main certificate, then each [host] section's own. */
static int check_tls(const struct config *cfg)
{
    struct tls_err main_err, err;
    int bad = check_tls_context(cfg, 0, "", &main_err);
    for (unsigned v = 1; v <= cfg->nvhosts; v++)
        if (cfg->vhosts[v - 1].tls_cert_file)
            bad |= check_tls_context(cfg, v, main_err.text, &err);
    return bad;
}

/* A section for a user or group NSS does not know is most likely a typo; a directory service
 * that is down looks the same, so it is only a warning. */
static void check_account_sections(const struct config *cfg)
{
    for (unsigned i = 0; i < cfg->naccts; i++) {
        const struct acctsect *a = &cfg->accts[i];
        /* With guest_user, a [user] section may be for a virtual user, whom NSS does not
         * know by design. */
        if (a->group ? getgrnam(a->name) == NULL : getpwnam(a->name) == NULL && !cfg->guest_user[0])
            report(cfg, a->line, "warning: [%s %s]: no such %s on this system",
                   a->group ? "group" : "user", a->name, a->group ? "group" : "user");
    }
}

/* guest_user as the monitor checks it at a virtual user's login: an error when no virtual
 * user could log in, a warning for a root_dir that would refuse them (one tree for all). */
static int check_guest_user(const struct config *cfg)
{
    if (!cfg->guest_user[0])
        return 0;
    unsigned line = config_line(cfg, "guest_user");
    if (cfg->rootless) {
        report(cfg, line, "warning: guest_user: not used in rootless mode");
        return 0;
    }
    struct passwd *np = getpwnam(cfg->nopriv_user);
    uid_t nopriv = np ? np->pw_uid : 0;
    const char *why = acct_guest_problem(getpwnam(cfg->guest_user), nopriv);
    if (why) {
        report(cfg, line, "guest_user '%s' %s", cfg->guest_user, why);
        return 1;
    }
    for (unsigned v = 0; v <= cfg->nvhosts; v++) {
        const char *dir = config_root_dir(cfg, v);
        if (v > 0 && !cfg->vhosts[v - 1].root_dir)
            continue; /* the main one, reported once */
        if (!config_root_dir_per_user(dir))
            report(cfg, config_host_line(cfg, v, "root_dir"),
                   "warning: %s%s%sroot_dir '%s' has no %%u: virtual users' logins (guest_user) "
                   "would be refused, unless a [user] or [group] section gives them one with %%u",
                   v ? "[host " : "", v ? cfg->vhosts[v - 1].name : "", v ? "]: " : "", dir);
    }
    return 0;
}

/* A directory the session needs at every login, or xferlog_file's; "" when it is usable as
 * far as a stat can tell, else why not. */
static const char *dir_problem(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0)
        return strerror(errno);
    return S_ISDIR(st.st_mode) ? "" : "not a directory";
}

static bool is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Where Linux-PAM finds a service's file: /etc/pam.d, then /usr/lib/pam.d, and /etc/pam.conf
 * only when neither directory exists. Under cwrap's pam_wrapper (PAM_WRAPPER=1 with
 * PAM_WRAPPER_SERVICE_DIR, as the tests run sessions) only its service directory counts.
 * Returns whether the file exists; *where names the places looked in. */
static bool pam_service_file_exists(const char *service, char *where, size_t wherelen)
{
    char name[256], path[PATH_MAX];
    size_t i = 0;
    /* pam_start lowercases the service name before it looks for the file. */
    for (; i < sizeof name - 1 && service[i]; i++)
        name[i] = (char)tolower((unsigned char)service[i]);
    name[i] = '\0';
    const char *wrap = getenv("PAM_WRAPPER"), *wrapdir = getenv("PAM_WRAPPER_SERVICE_DIR");
    if (wrap && wrap[0] == '1' && wrapdir && wrapdir[0]) {
        snprintf(where, wherelen, "PAM_WRAPPER_SERVICE_DIR %s", wrapdir);
        snprintf(path, sizeof path, "%s/%s", wrapdir, name);
        return is_regular_file(path);
    }
    static const char *const dirs[] = {"/etc/pam.d", "/usr/lib/pam.d"};
    if (dir_problem(dirs[0])[0] && dir_problem(dirs[1])[0]) {
        snprintf(where, wherelen, "/etc/pam.conf (there is no /etc/pam.d)");
        return access("/etc/pam.conf", F_OK) == 0;
    }
    snprintf(where, wherelen, "/etc/pam.d or /usr/lib/pam.d");
    for (size_t d = 0; d < ARRAY_LEN(dirs); d++) {
        snprintf(path, sizeof path, "%s/%s", dirs[d], name);
        if (is_regular_file(path))
            return true;
    }
    return false;
}

/* Every login but an anonymous one goes through PAM (a certificate login too, for its account
 * and session stages), so the service is checked whatever else is set. Without its file
 * Linux-PAM quietly uses "other", and the checks of the shipped pam.d/ftpsd (ftpusers, valid
 * shell) no longer apply: a warning, since packaging may install the file later. */
static void check_pam_service(const struct config *cfg, unsigned v)
{
    const char *service = config_pam_service(cfg, v);
    if (v > 0 && !cfg->vhosts[v - 1].pam_service)
        return; /* the main one, reported once */
    char where[PATH_MAX + 64];
    if (pam_service_file_exists(service, where, sizeof where))
        return;
    char host[300] = "";
    if (v > 0)
        snprintf(host, sizeof host, "[host %s]: ", cfg->vhosts[v - 1].name);
    report(cfg, config_host_line(cfg, v, "pam_service"),
           "warning: %spam_service '%s': no such service in %s; Linux-PAM would use the "
           "\"other\" service for every login",
           host, service, where);
}

/* root_dir with a %-escape names a directory per user, which -t cannot know; an empty one is
 * the home directory. */
static void check_root_dir(const struct config *cfg, unsigned line, const char *section,
                           const char *dir)
{
    if (!dir || !dir[0] || strchr(dir, '%'))
        return;
    const char *why = dir_problem(dir);
    if (why[0])
        report(cfg, line, "warning: %sroot_dir %s: %s: every login it applies to would fail",
               section, dir, why);
}

/* Paths that pass the syntax checks but fail at every session: warnings, not errors, since
 * they may be created after the check (by packaging, or before the service is enabled). */
static void check_paths(const struct config *cfg)
{
    char section[300];
    check_root_dir(cfg, config_line(cfg, "root_dir"), "", cfg->root_dir);
    for (unsigned v = 1; v <= cfg->nvhosts; v++) {
        snprintf(section, sizeof section, "[host %s]: ", cfg->vhosts[v - 1].name);
        check_root_dir(cfg, config_host_line(cfg, v, "root_dir"), section,
                       cfg->vhosts[v - 1].root_dir);
    }
    for (unsigned i = 0; i < cfg->naccts; i++) {
        const struct acctsect *a = &cfg->accts[i];
        snprintf(section, sizeof section, "[%s %s]: ", a->group ? "group" : "user", a->name);
        if (a->line_of[ACCT_ROOT_DIR])
            check_root_dir(cfg, a->line_of[ACCT_ROOT_DIR], section, a->root_dir);
    }
    const char *why;
    if (cfg->anonymous && (why = dir_problem(cfg->anon_root))[0])
        report(cfg, config_line(cfg, "anon_root"),
               "warning: anon_root %s: %s: every anonymous login would fail", cfg->anon_root, why);
    if (cfg->xferlog_file[0]) {
        char dir[PATH_MAX];
        path_dir_of(cfg->xferlog_file, dir, sizeof dir);
        if ((why = dir_problem(dir))[0])
            report(cfg, config_line(cfg, "xferlog_file"),
                   "warning: xferlog_file %s: directory %s: %s: no transfer would be logged",
                   cfg->xferlog_file, dir, why);
    }
}

static void check_warnings(const struct config *cfg)
{
    check_account_sections(cfg);
    for (unsigned v = 0; v <= cfg->nvhosts; v++)
        check_pam_service(cfg, v);
    check_paths(cfg);
}

/* Each greeting file as a session reads it: one that cannot be read, or is too long, would
 * make every session fall back to the banner line, which -t reports as an error. */
static int check_banner_files(const struct config *cfg)
{
    int bad = 0;
    for (unsigned v = 0; v <= cfg->nvhosts; v++) {
        const char *path = v ? cfg->vhosts[v - 1].banner_file : cfg->banner_file;
        char why[256];
        if (!path || !path[0])
            continue;
        char *text = banner_load(path, why, sizeof why);
        if (!text) {
            report(cfg,
                   v ? config_host_line(cfg, v, "banner_file") : config_line(cfg, "banner_file"),
                   "banner_file %s: %s", path, why);
            bad = 1;
        }
        free(text);
    }
    return bad;
}

/* Where a session limit applies, a directory that cannot hold its slots fails every login. */
static int check_session_lock_dir(const struct config *cfg)
{
    bool limited = cfg->max_sessions_per_user || (cfg->anonymous && cfg->anon_max_sessions);
    for (unsigned i = 0; i < cfg->naccts; i++)
        limited |= cfg->accts[i].line_of[ACCT_MAX_SESSIONS] && cfg->accts[i].max_sessions;
    /* Rootless without the key, the monitor does not count (ftpsd.conf(5)). */
    if (!limited || (cfg->rootless && !config_given(cfg, "session_lock_dir")))
        return 0;
    const char *why = sesslimit_dir_problem(cfg->session_lock_dir);
    if (!why)
        return 0;
    report(cfg, config_line(cfg, "session_lock_dir"),
           "session_lock_dir %s %s: logins under a session limit would fail", cfg->session_lock_dir,
           why);
    return 1;
}

static int check_config(struct config *cfg)
{
    int bad = check_tls(cfg);
    bad |= check_banner_files(cfg);
    bad |= check_session_lock_dir(cfg);
    check_warnings(cfg);
    if (cfg->cert_map_file[0]) {
        struct certmap *map = certmap_load(cfg->cert_map_file, print_err);
        if (!map)
            bad = 1;
        certmap_free(map);
    }
    if (cfg->anonymous) {
        struct passwd *anon = getpwnam(cfg->anon_user);
        if (!anon || anon->pw_uid == 0) {
            report(cfg, config_line(cfg, "anon_user"), "anon_user '%s' %s", cfg->anon_user,
                   anon ? "must not be root" : "does not exist");
            bad = 1;
        }
    }
    bad |= check_guest_user(cfg);
    if (cfg->rootless ? check_rootless_user() : check_privsep(cfg))
        bad = 1;
    if (!bad) {
        printf("%s: configuration OK\n", cfg->path);
        if (cfg->rootless)
            printf("rootless mode: nopriv_user and empty_dir are not used\n");
        printf("kernel TLS: %s\n",
               !cfg->tls_ktls ? "off (tls_ktls = no)"
               : ktls_probe() ? "offered by this kernel; PROT P downloads use it"
                              : "not offered by this kernel (no \"tls\" ULP); OpenSSL encrypts");
        printf("TLS cipher order: %s\n", tls_cipher_order_text(cfg));
    }
    return bad;
}

/* The file, then the -o assignments over it, and only then the checks across keys: an -o value
 * may settle what the file alone leaves wrong (proxy_protocol without proxy_trusted). */
static int load_all(struct config *cfg, const char *path, const char *const *overrides, int n,
                    void (*errfn)(const char *))
{
    if (config_load(cfg, path, errfn) < 0)
        return -1;
    for (int i = 0; i < n; i++)
        if (config_override(cfg, overrides[i], errfn) < 0)
            return -1;
    return config_validate(cfg, errfn);
}

/* Under xinetd stderr is the client socket: nothing but replies may go there. */
static void protect_stderr(void)
{
    struct stat s0, s2;
    if (fstat(0, &s0) == 0 && fstat(2, &s2) == 0 && S_ISSOCK(s2.st_mode) &&
        s0.st_ino == s2.st_ino && s0.st_dev == s2.st_dev) {
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        } else {
            close(2);
        }
        log_stderr_disable();
    }
}

int main(int argc, char **argv)
{
    const char *path = FTPSD_CONFIG_FILE;
    bool test = false, dump = false;
    const char *overrides[32];
    int noverrides = 0;
    int opt;
    while ((opt = getopt(argc, argv, "f:o:tTVh")) != -1) {
        switch (opt) {
        case 'f':
            path = optarg;
            break;
        case 'o':
            if (noverrides == (int)(sizeof overrides / sizeof overrides[0])) {
                fprintf(stderr, "ftpsd: too many -o options\n");
                return 2;
            }
            overrides[noverrides++] = optarg;
            break;
        case 't':
            test = true;
            break;
        case 'T':
            dump = true;
            break;
        case 'V':
            printf("ftpsd %s\n", FTPSD_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || (test && dump)) {
        usage(stderr);
        return 2;
    }

    /* Time zone rules are read now, before any chroot (log timestamps, xferlog). */
    tzset();
    struct config cfg;
    config_defaults(&cfg);
    if (dump) {
        /* The file's own checks only: the settings, not the machine, as sshd -T. */
        cfg.rootless = geteuid() != 0;
        int rc = load_all(&cfg, path, overrides, noverrides, print_err) < 0 ? 1 : 0;
        if (rc == 0)
            config_dump(&cfg, stdout);
        config_free(&cfg);
        return rc;
    }
    if (test) {
        /* Checked as a session started by this user would run. */
        cfg.rootless = geteuid() != 0;
        int rc =
            load_all(&cfg, path, overrides, noverrides, print_err) < 0 ? 1 : check_config(&cfg);
        config_free(&cfg);
        return rc;
    }

    struct stat st;
    if (isatty(0) || fstat(0, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr,
                "ftpsd: standard input is %s, not a network connection.\n"
                "ftpsd serves one connection on stdin/stdout: start it from systemd "
                "(ftpsd.socket, Accept=yes), xinetd, or\n"
                "systemd-socket-activate --inetd. Use -t to check the configuration.\n",
                isatty(0) ? "a terminal" : "not a socket");
        config_free(&cfg);
        return 2;
    }
    /* A session of its own per connection, as a systemd Accept=yes unit gets: under xinetd or
     * systemd-socket-activate every connection would otherwise share the launcher's session, and
     * so one scheduler autogroup (one CPU share for all clients). EPERM when already a leader. */
    (void)setsid();
    protect_stderr();
    log_open(LOG_FTP, LOG_INFO);
    if (load_all(&cfg, path, overrides, noverrides, log_err) < 0) {
        static const char msg[] = "421 Service not available (server configuration error).\r\n";
        (void)!write(1, msg, sizeof msg - 1);
        config_free(&cfg);
        return 1;
    }
    closelog();
    log_open(cfg.log_facility, cfg.log_level);
    /* Started by an ordinary user: serve only that user, confined without root's tools. */
    cfg.rootless = geteuid() != 0;
    monitor_run(&cfg);
}
