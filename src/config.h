/* ftpsd.conf: keys, defaults and parsing. Every key is documented in ftpsd.conf(5). */
#ifndef FTPSD_CONFIG_H
#define FTPSD_CONFIG_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#ifndef FTPSD_CONFIG_FILE
#define FTPSD_CONFIG_FILE "/etc/ftpsd.conf"
#endif

/* A [host NAME] section (RFC 7151 HOST and TLS SNI): what differs for that name. NULL fields
 * take the main value. */
struct vhost {
    char *name; /* lower case */
    char *tls_cert_file;
    char *tls_key_file;
    char *root_dir;
    char *banner;
    char *banner_file;
    char *pam_service;
    unsigned line;       /* of the [host NAME] line */
    unsigned line_of[8]; /* of each key set in the section, in host_keys' order */
};

#define MAX_VHOSTS 64

/* A [user NAME] or [group NAME] section: settings for the accounts it names (acctconf.h says
 * which section wins). A key counts only where line_of has its line. */
enum acct_key {
    ACCT_ROOT_DIR,
    ACCT_WRITE_ENABLE,
    ACCT_MAX_RATE,
    ACCT_UMASK,
    ACCT_MAX_SESSIONS,
    ACCT_DENY_FILE,
    ACCT_HIDE_FILE,
    ACCT_CHMOD_ENABLE,
    ACCT_NKEYS
};
struct acctsect {
    char *name; /* as written: user and group names are case-sensitive */
    bool group;
    char *root_dir;
    bool write_enable;
    uint64_t max_rate;
    unsigned umask;
    unsigned max_sessions;
    char *deny_file;
    char *hide_file;
    bool chmod_enable;
    unsigned line;                /* of the section's header */
    unsigned line_of[ACCT_NKEYS]; /* of each key set, 0 if not */
};

#define MAX_ACCTSECTS 256

struct config {
    const char *path; /* the file read, for messages */
    struct vhost *vhosts;
    unsigned nvhosts;
    struct acctsect *accts;
    unsigned naccts;

    char *tls_cert_file;
    char *tls_key_file;
    int tls_min_version; /* OpenSSL version constant */
    char *tls_ciphers;
    char *tls_ciphersuites;
    bool require_tls_login;
    bool require_prot_p;
    bool require_session_reuse;
    bool implicit_tls;
    bool upload_require_close_notify;
    bool keep_partial_uploads; /* a failed upload to a new name keeps what arrived */
    char *tls_client_cert;     /* none | optional | required */
    char *tls_ca_file;
    char *tls_ca_path;
    char *tls_crl_file;
    unsigned tls_verify_depth;
    char *tls_groups;
    bool tls_prefer_server_ciphers;
    bool tls_ktls; /* kernel TLS for PROT P data connections where the kernel offers it */
    char *tls_ocsp_file;
    char *cert_map_file;
    char *cert_login; /* no | cert | cert+password */

    bool anonymous;
    char *anon_root;
    char *anon_user;
    bool anon_require_tls;
    int anon_write_enable; /* enum anon_write */
    unsigned anon_umask;

    char *pam_service;
    bool chroot;
    char *root_dir;
    char *guest_user; /* the account virtual users (PAM only, no passwd entry) run as; "": none */
    char *nopriv_user;
    char *empty_dir;

    unsigned pasv_min_port;
    unsigned pasv_max_port;
    char *pasv_address;
    int proxy_protocol; /* enum proxy_mode */
    char *proxy_trusted;
    unsigned proxy_timeout;
    bool port_enable;
    bool allow_ccc;
    bool allow_rein;

    bool write_enable;
    unsigned umask;
    char *deny_file; /* names no command may reach (namefilter.h patterns) */
    char *hide_file; /* names listings leave out */
    bool chmod_enable;

    unsigned idle_timeout;
    unsigned data_timeout;
    unsigned reply_timeout;        /* seconds a reply may wait for the client to read */
    unsigned data_close_timeout;   /* seconds a download waits for the client's close */
    unsigned upload_drain_timeout; /* seconds a refused upload's rest is read and dropped */
    unsigned login_timeout;
    unsigned max_login_failures;
    unsigned max_sessions_per_user; /* 0: no limit */
    unsigned anon_max_sessions;     /* of all anonymous sessions together, 0: no limit */
    char *session_lock_dir;
    unsigned fail_delay_ms;
    unsigned max_line_length;
    unsigned max_open_files;
    uint64_t max_file_size;
    uint64_t max_rate, anon_max_rate; /* bytes per second per transfer, 0: no limit */
    unsigned max_list_entries;
    int seccomp; /* enum seccomp_mode */
    bool landlock;

    char *banner;
    char *banner_file;
    int log_level;
    int log_facility;
    char *xferlog_file;
    char *wtmp_file;

    /* Not a key: started by a user other than root (rootless mode), see ftpsd(8). */
    bool rootless;
    /* Not a key: tls_ktls is on and the kernel has the "tls" ULP (tls_ktls_probe, monitor). */
    bool ktls_kernel;

    /* Line on which each key was set (0: default), so -t can point at it. */
    unsigned line_of[80];
    /* Whether each key was set, in the file or by -o (whose line is 0): where a setting's
     * presence changes what the server does (config_given). */
    bool given[80];
};

/* upload: a drop box, new files only (no replace, append, delete, rename, directories). */
enum anon_write { ANON_WRITE_NO, ANON_WRITE_UPLOAD, ANON_WRITE_YES };
enum client_cert_mode { CLIENT_CERT_NONE, CLIENT_CERT_OPTIONAL, CLIENT_CERT_REQUIRED };
enum cert_login_mode { CERT_LOGIN_NO, CERT_LOGIN_CERT, CERT_LOGIN_CERT_PASSWORD };
enum client_cert_mode config_client_cert(const struct config *c);
enum cert_login_mode config_cert_login(const struct config *c);

/* The default cipher lists: AES-GCM first, and the order used instead on a CPU without AES
 * instructions (tls.c), where ChaCha20-Poly1305 costs a fraction of software AES-GCM. */
#define TLS_CIPHERS_DEFAULT                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_CIPHERS_NO_AES                                                                         \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                   \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
#define TLS_CIPHERSUITES_DEFAULT                                                                   \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_CIPHERSUITES_NO_AES                                                                    \
    "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"

/* Index of a key in the table, for config_line(). */
int config_key_index(const char *name);
/* Line on which key was set in the file; 0 for a default or an -o value (no line to show). */
unsigned config_line(const struct config *c, const char *key);
/* Whether key was set, in the file or by -o, rather than left at its default. */
bool config_given(const struct config *c, const char *key);
/* The same for a session on vhost index v: the section's line where it sets key. */
unsigned config_host_line(const struct config *c, unsigned v, const char *key);

void config_defaults(struct config *c);
/* Parses the file; on error prints "file:line: what is wrong" through errfn and returns -1.
 * The checks across keys are left to config_validate(), so that -o values count in them. */
int config_load(struct config *c, const char *path, void (*errfn)(const char *msg));
/* Parses configuration text (used by config_load and the unit tests). */
int config_parse_text(struct config *c, const char *name, const char *text,
                      void (*errfn)(const char *msg));
/* "-o key=value" on the command line: sets one main-section key over the file's value. */
int config_override(struct config *c, const char *assignment, void (*errfn)(const char *msg));
/* Checks relations between keys (port range, ...). */
int config_validate(struct config *c, void (*errfn)(const char *msg));
void config_free(struct config *c);
/* Every main key's value (defaults too), then each section's keys, as a file that reads back
 * as the same settings (ftpsd -T). */
void config_dump(const struct config *c, FILE *out);

/* Names of all keys, NULL-terminated (for the man page test and -t listing). */
const char *const *config_key_names(void);
/* The section for a host name (case-insensitive), or NULL. */
const struct vhost *config_find_vhost(const struct config *c, const char *name);
/* Value for a session on vhost index v (0: main config, 1..n: sections). */
const char *config_cert(const struct config *c, unsigned v);
const char *config_key(const struct config *c, unsigned v);
const char *config_root_dir(const struct config *c, unsigned v);
/* Whether a root_dir names a directory per user (a %u escape, not %%u): virtual users
 * (guest_user) must each have their own. */
bool config_root_dir_per_user(const char *dir);
const char *config_banner(const struct config *c, unsigned v);
/* banner_file for vhost v: its section's; none ("") if the section sets only banner; else the
 * main one ("" for none). */
const char *config_banner_file(const struct config *c, unsigned v);
const char *config_pam_service(const struct config *c, unsigned v);

#endif
