/* ftpsd: command line, configuration check (-t), and the hand-over to the monitor. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "certmap.h"
#include "config.h"
#include "ktls.h"
#include "log.h"
#include "monitor.h"
#include "tls.h"

#ifndef FTPSD_VERSION
#define FTPSD_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
    fprintf(out, "usage: ftpsd [-f CONFIG] [-o KEY=VALUE]... [-t] [-V]\n"
                 "  -f CONFIG  configuration file (default " FTPSD_CONFIG_FILE ")\n"
                 "  -o KEY=VALUE  set a configuration key over the file (e.g. implicit_tls=yes)\n"
                 "  -t         check the configuration, certificate and key, then exit\n"
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

/* What the root monitor needs to separate privileges (monitor.c does the same checks). */
static int check_privsep(const struct config *cfg)
{
    int bad = 0;
    struct stat st;
    struct passwd *pw = getpwnam(cfg->nopriv_user);
    if (!pw || pw->pw_uid == 0) {
        fprintf(stderr, "%s:%u: nopriv_user '%s' %s\n", cfg->path, config_line(cfg, "nopriv_user"),
                cfg->nopriv_user, pw ? "must not be root" : "does not exist");
        bad = 1;
    }
    if (stat(cfg->empty_dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 ||
        (st.st_mode & 022)) {
        fprintf(stderr,
                "%s:%u: empty_dir %s must be an existing directory owned by root and "
                "writable by nobody else\n",
                cfg->path, config_line(cfg, "empty_dir"), cfg->empty_dir);
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

static int check_config(struct config *cfg)
{
    int bad = 0;
    char err[600];
    struct stat st;
    /* The main certificate, then each [host] section's own. */
    for (unsigned v = 0; v <= cfg->nvhosts; v++) {
        if (v > 0 && !cfg->vhosts[v - 1].tls_cert_file)
            continue;
        unsigned line = v ? cfg->vhosts[v - 1].line : config_line(cfg, "tls_cert_file");
        const char *key = config_key(cfg, v);
        SSL_CTX *ctx = tls_server_ctx(cfg, config_cert(cfg, v), key, err, sizeof err);
        if (ctx && v == 0 && cfg->tls_ocsp_file[0] &&
            tls_staple_ocsp(ctx, cfg->tls_ocsp_file, err, sizeof err) < 0) {
            SSL_CTX_free(ctx);
            ctx = NULL;
            line = config_line(cfg, "tls_ocsp_file");
        }
        if (!ctx) {
            fprintf(stderr, "%s:%u: %s\n", cfg->path, line, err);
            bad = 1;
        } else {
            SSL_CTX_free(ctx);
        }
        if (stat(key, &st) == 0 && (st.st_mode & 0077))
            fprintf(stderr, "%s:%u: warning: key %s is readable by others than its owner\n",
                    cfg->path, v ? line : config_line(cfg, "tls_key_file"), key);
    }
    if (cfg->cert_map_file[0]) {
        struct certmap *map = certmap_load(cfg->cert_map_file, print_err);
        if (!map)
            bad = 1;
        certmap_free(map);
    }
    if (cfg->anonymous) {
        struct passwd *anon = getpwnam(cfg->anon_user);
        if (!anon || anon->pw_uid == 0) {
            fprintf(stderr, "%s:%u: anon_user '%s' %s\n", cfg->path, config_line(cfg, "anon_user"),
                    cfg->anon_user, anon ? "must not be root" : "does not exist");
            bad = 1;
        }
    }
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
    bool test = false;
    const char *overrides[32];
    int noverrides = 0;
    int opt;
    while ((opt = getopt(argc, argv, "f:o:tVh")) != -1) {
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
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    /* Time zone rules are read now, before any chroot (log timestamps, xferlog). */
    tzset();
    struct config cfg;
    config_defaults(&cfg);
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
