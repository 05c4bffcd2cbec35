#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "namefilter.h"
#include "netmatch.h"
#include "proxy.h"
#include "sandbox.h"
#include "util.h"

#ifndef FTPSD_EMPTY_DIR
#define FTPSD_EMPTY_DIR "/usr/share/ftpsd/empty"
#endif

enum ktype {
    K_STR,
    K_PATH,
    K_OPTPATH,
    K_BOOL,
    K_UINT,
    K_U64,
    K_OCTAL,
    K_TLSVER,
    K_LOGLEVEL,
    K_FACILITY,
    K_SECCOMP,
    K_PROXY,
    K_ANONWRITE
};

struct key {
    const char *name;
    enum ktype type;
    size_t off;
    unsigned min, max; /* K_UINT, K_OCTAL */
    const char *def;
};

#define O(f) offsetof(struct config, f)

/* The defaults are the safe ones: TLS for login and data, session reuse, TLS >= 1.2. */
static const struct key keys[] = {
    {"tls_cert_file", K_PATH, O(tls_cert_file), 0, 0, "/etc/ssl/certs/ssl-cert-snakeoil.pem"},
    {"tls_key_file", K_PATH, O(tls_key_file), 0, 0, "/etc/ssl/private/ssl-cert-snakeoil.key"},
    {"tls_min_version", K_TLSVER, O(tls_min_version), 0, 0, "1.2"},
    {"tls_ciphers", K_STR, O(tls_ciphers), 0, 0, TLS_CIPHERS_DEFAULT},
    {"tls_ciphersuites", K_STR, O(tls_ciphersuites), 0, 0, TLS_CIPHERSUITES_DEFAULT},
    {"require_tls_login", K_BOOL, O(require_tls_login), 0, 0, "yes"},
    {"require_prot_p", K_BOOL, O(require_prot_p), 0, 0, "yes"},
    {"require_session_reuse", K_BOOL, O(require_session_reuse), 0, 0, "yes"},
    {"implicit_tls", K_BOOL, O(implicit_tls), 0, 0, "no"},
    {"upload_require_close_notify", K_BOOL, O(upload_require_close_notify), 0, 0, "yes"},
    {"keep_partial_uploads", K_BOOL, O(keep_partial_uploads), 0, 0, "no"},
    {"tls_client_cert", K_STR, O(tls_client_cert), 0, 0, "none"},
    {"tls_ca_file", K_OPTPATH, O(tls_ca_file), 0, 0, ""},
    {"tls_ca_path", K_OPTPATH, O(tls_ca_path), 0, 0, ""},
    {"tls_crl_file", K_OPTPATH, O(tls_crl_file), 0, 0, ""},
    {"tls_verify_depth", K_UINT, O(tls_verify_depth), 1, 16, "5"},
    {"tls_groups", K_STR, O(tls_groups), 0, 0, "X25519:P-256:P-384"},
    {"tls_prefer_server_ciphers", K_BOOL, O(tls_prefer_server_ciphers), 0, 0, "yes"},
    {"tls_ocsp_file", K_OPTPATH, O(tls_ocsp_file), 0, 0, ""},
    {"tls_ktls", K_BOOL, O(tls_ktls), 0, 0, "yes"},
    {"cert_map_file", K_OPTPATH, O(cert_map_file), 0, 0, ""},
    {"cert_login", K_STR, O(cert_login), 0, 0, "no"},
    {"anonymous", K_BOOL, O(anonymous), 0, 0, "no"},
    {"anon_root", K_PATH, O(anon_root), 0, 0, "/srv/ftp"},
    {"anon_user", K_STR, O(anon_user), 0, 0, "ftp"},
    {"anon_require_tls", K_BOOL, O(anon_require_tls), 0, 0, "no"},
    {"anon_write_enable", K_ANONWRITE, O(anon_write_enable), 0, 0, "no"},
    {"anon_umask", K_OCTAL, O(anon_umask), 0, 0777, "077"},
    {"pam_service", K_STR, O(pam_service), 0, 0, "ftpsd"},
    {"chroot", K_BOOL, O(chroot), 0, 0, "yes"},
    {"root_dir", K_OPTPATH, O(root_dir), 0, 0, ""},
    {"guest_user", K_STR, O(guest_user), 0, 0, ""},
    {"nopriv_user", K_STR, O(nopriv_user), 0, 0, "ftpsd"},
    {"empty_dir", K_PATH, O(empty_dir), 0, 0, FTPSD_EMPTY_DIR},
    {"pasv_min_port", K_UINT, O(pasv_min_port), 1024, 65535, "49152"},
    {"pasv_max_port", K_UINT, O(pasv_max_port), 1024, 65535, "65534"},
    {"pasv_address", K_STR, O(pasv_address), 0, 0, ""},
    {"port_enable", K_BOOL, O(port_enable), 0, 0, "yes"},
    {"proxy_protocol", K_PROXY, O(proxy_protocol), 0, 0, "off"},
    {"proxy_trusted", K_STR, O(proxy_trusted), 0, 0, ""},
    {"proxy_timeout", K_UINT, O(proxy_timeout), 1, 60, "5"},
    {"allow_ccc", K_BOOL, O(allow_ccc), 0, 0, "no"},
    {"allow_rein", K_BOOL, O(allow_rein), 0, 0, "no"},
    {"write_enable", K_BOOL, O(write_enable), 0, 0, "no"},
    {"umask", K_OCTAL, O(umask), 0, 0777, "022"},
    {"deny_file", K_STR, O(deny_file), 0, 0, ""},
    {"hide_file", K_STR, O(hide_file), 0, 0, ""},
    {"chmod_enable", K_BOOL, O(chmod_enable), 0, 0, "yes"},
    {"idle_timeout", K_UINT, O(idle_timeout), 1, 86400, "300"},
    {"data_timeout", K_UINT, O(data_timeout), 1, 86400, "60"},
    {"login_timeout", K_UINT, O(login_timeout), 1, 3600, "60"},
    {"reply_timeout", K_UINT, O(reply_timeout), 1, 3600, "30"},
    {"data_close_timeout", K_UINT, O(data_close_timeout), 0, 600, "5"},
    {"upload_drain_timeout", K_UINT, O(upload_drain_timeout), 0, 600, "10"},
    {"max_login_failures", K_UINT, O(max_login_failures), 1, 100, "3"},
    {"max_sessions_per_user", K_UINT, O(max_sessions_per_user), 0, 100000, "32"},
    {"anon_max_sessions", K_UINT, O(anon_max_sessions), 0, 100000, "0"},
    {"session_lock_dir", K_PATH, O(session_lock_dir), 0, 0, "/run/ftpsd"},
    {"fail_delay_ms", K_UINT, O(fail_delay_ms), 0, 60000, "3000"},
    {"max_line_length", K_UINT, O(max_line_length), 512, 65536, "4096"},
    {"max_open_files", K_UINT, O(max_open_files), 32, 65536, "256"},
    {"max_file_size", K_U64, O(max_file_size), 0, 0, "0"},
    {"max_rate", K_U64, O(max_rate), 0, 0, "0"},
    {"anon_max_rate", K_U64, O(anon_max_rate), 0, 0, "0"},
    {"max_list_entries", K_UINT, O(max_list_entries), 0, 100000000, "200000"},
    {"seccomp", K_SECCOMP, O(seccomp), 0, 0, "on"},
    {"landlock", K_BOOL, O(landlock), 0, 0, "yes"},
    {"banner", K_STR, O(banner), 0, 0, "ftpsd FTPS server ready."},
    {"banner_file", K_OPTPATH, O(banner_file), 0, 0, ""},
    {"log_level", K_LOGLEVEL, O(log_level), 0, 0, "info"},
    {"log_facility", K_FACILITY, O(log_facility), 0, 0, "ftp"},
    {"xferlog_file", K_OPTPATH, O(xferlog_file), 0, 0, ""},
    {"wtmp_file", K_OPTPATH, O(wtmp_file), 0, 0, "/var/log/wtmp"},
};

_Static_assert(ARRAY_LEN(keys) <= ARRAY_LEN(((struct config *)0)->line_of), "line_of too small");
_Static_assert(ARRAY_LEN(keys) <= ARRAY_LEN(((struct config *)0)->given), "given too small");

static const char *key_names[ARRAY_LEN(keys) + 1];

const char *const *config_key_names(void)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        key_names[i] = keys[i].name;
    key_names[ARRAY_LEN(keys)] = NULL;
    return key_names;
}

int config_key_index(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

unsigned config_line(const struct config *c, const char *key)
{
    int i = config_key_index(key);
    return i < 0 ? 0 : c->line_of[i];
}

bool config_given(const struct config *c, const char *key)
{
    int i = config_key_index(key);
    return i >= 0 && c->given[i];
}

static const struct {
    const char *name;
    int value;
} loglevels[] = {{"error", LOG_ERR},
                 {"warning", LOG_WARNING},
                 {"notice", LOG_NOTICE},
                 {"info", LOG_INFO},
                 {"debug", LOG_DEBUG}},
  facilities[] = {{"ftp", LOG_FTP},           {"daemon", LOG_DAEMON}, {"auth", LOG_AUTH},
                  {"authpriv", LOG_AUTHPRIV}, {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},
                  {"local2", LOG_LOCAL2},     {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
                  {"local5", LOG_LOCAL5},     {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7}};

#define H(f) offsetof(struct vhost, f)
static const struct key host_keys[] = {
    {"tls_cert_file", K_PATH, H(tls_cert_file), 0, 0, NULL},
    {"tls_key_file", K_PATH, H(tls_key_file), 0, 0, NULL},
    {"root_dir", K_OPTPATH, H(root_dir), 0, 0, NULL},
    {"banner", K_STR, H(banner), 0, 0, NULL},
    {"banner_file", K_OPTPATH, H(banner_file), 0, 0, NULL},
    {"pam_service", K_STR, H(pam_service), 0, 0, NULL},
};
_Static_assert(ARRAY_LEN(host_keys) <= ARRAY_LEN(((struct vhost *)0)->line_of),
               "vhost line_of too small");

#define A(f) offsetof(struct acctsect, f)
/* In enum acct_key's order. */
static const struct key acct_keys[] = {
    {"root_dir", K_OPTPATH, A(root_dir), 0, 0, NULL},
    {"write_enable", K_BOOL, A(write_enable), 0, 0, NULL},
    {"max_rate", K_U64, A(max_rate), 0, 0, NULL},
    {"umask", K_OCTAL, A(umask), 0, 0777, NULL},
    {"max_sessions_per_user", K_UINT, A(max_sessions), 0, 100000, NULL},
    {"deny_file", K_STR, A(deny_file), 0, 0, NULL},
    {"hide_file", K_STR, A(hide_file), 0, 0, NULL},
    {"chmod_enable", K_BOOL, A(chmod_enable), 0, 0, NULL},
};
_Static_assert(ARRAY_LEN(acct_keys) == ACCT_NKEYS, "acct_keys and enum acct_key differ");
unsigned config_host_line(const struct config *c, unsigned v, const char *key)
{
    for (size_t i = 0; v > 0 && v <= c->nvhosts && i < ARRAY_LEN(host_keys); i++)
        if (strcmp(host_keys[i].name, key) == 0 && c->vhosts[v - 1].line_of[i])
            return c->vhosts[v - 1].line_of[i];
    return config_line(c, key);
}

/* yes/true/on/1 or no/false/off/0, as every yes-or-no key (and anon_write_enable) takes them. */
static bool parse_yes_no(const char *v, bool *out)
{
    if (str_ieq(v, "yes") || str_ieq(v, "true") || str_ieq(v, "on") || strcmp(v, "1") == 0)
        *out = true;
    else if (str_ieq(v, "no") || str_ieq(v, "false") || str_ieq(v, "off") || strcmp(v, "0") == 0)
        *out = false;
    else
        return false;
    return true;
}

/* Returns NULL on success or a description of what is wrong with the value. */
static const char *set_value(void *base, const struct key *k, const char *v, char *why,
                             size_t whylen)
{
    void *field = (char *)base + k->off;
    switch (k->type) {
    case K_PATH:
        if (v[0] != '/')
            return "must be an absolute path";
        /* fall through */
    case K_OPTPATH:
        if (v[0] && v[0] != '/')
            return "must be an absolute path";
        /* fall through */
    case K_STR:
        free(*(char **)field);
        *(char **)field = xstrdup(v);
        return NULL;
    case K_BOOL:
        if (!parse_yes_no(v, (bool *)field))
            return "must be yes or no";
        return NULL;
    case K_UINT: {
        unsigned u;
        if (!parse_uint(v, k->max, &u) || u < k->min) {
            snprintf(why, whylen, "must be a whole number from %u to %u", k->min, k->max);
            return why;
        }
        *(unsigned *)field = u;
        return NULL;
    }
    case K_U64: {
        uint64_t u;
        if (!parse_u64(v, UINT64_MAX, &u))
            return "must be a whole number of bytes, or of bytes per second for a rate (0: no "
                   "limit)";
        *(uint64_t *)field = u;
        return NULL;
    }
    case K_SECCOMP:
        if (str_ieq(v, "on") || str_ieq(v, "yes"))
            *(int *)field = SECCOMP_ON;
        else if (str_ieq(v, "trap"))
            *(int *)field = SECCOMP_TRAP;
        else if (str_ieq(v, "log"))
            *(int *)field = SECCOMP_LOG;
        else if (str_ieq(v, "off") || str_ieq(v, "no"))
            *(int *)field = SECCOMP_OFF;
        else
            return "must be on, trap, log or off";
        return NULL;
    case K_ANONWRITE: {
        bool yes;
        if (str_ieq(v, "upload"))
            *(int *)field = ANON_WRITE_UPLOAD;
        else if (parse_yes_no(v, &yes))
            *(int *)field = yes ? ANON_WRITE_YES : ANON_WRITE_NO;
        else
            return "must be no, upload or yes";
        return NULL;
    }
    case K_PROXY:
        if (str_ieq(v, "off") || str_ieq(v, "no"))
            *(int *)field = PROXY_OFF;
        else if (str_ieq(v, "v1"))
            *(int *)field = PROXY_V1;
        else if (str_ieq(v, "v2"))
            *(int *)field = PROXY_V2;
        else if (str_ieq(v, "any"))
            *(int *)field = PROXY_ANY;
        else
            return "must be off, v1, v2 or any";
        return NULL;
    case K_OCTAL: {
        char *end;
        unsigned long u = strtoul(v, &end, 8);
        if (!*v || *end || v[0] == '-' || v[0] == '+' || u > k->max)
            return "must be an octal number such as 022";
        *(unsigned *)field = (unsigned)u;
        return NULL;
    }
    case K_TLSVER:
        if (strcmp(v, "1.2") == 0)
            *(int *)field = TLS1_2_VERSION;
        else if (strcmp(v, "1.3") == 0)
            *(int *)field = TLS1_3_VERSION;
        else
            return "must be 1.2 or 1.3 (TLS 1.0 and 1.1 are not allowed, RFC 8996)";
        return NULL;
    case K_LOGLEVEL:
        for (size_t i = 0; i < ARRAY_LEN(loglevels); i++)
            if (str_ieq(v, loglevels[i].name)) {
                *(int *)field = loglevels[i].value;
                return NULL;
            }
        return "must be one of error, warning, notice, info, debug";
    case K_FACILITY:
        for (size_t i = 0; i < ARRAY_LEN(facilities); i++)
            if (str_ieq(v, facilities[i].name)) {
                *(int *)field = facilities[i].value;
                return NULL;
            }
        return "must be ftp, daemon, auth, authpriv or local0 to local7";
    }
    return "unknown type";
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    c->path = "(defaults)";
    char why[128];
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (set_value(c, &keys[i], keys[i].def, why, sizeof why))
            die("bad built-in default for %s", keys[i].name);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

static bool valid_host_name(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-' || h[n - 1] == '.')
        return false;
    for (const char *p = h; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return false;
    return strstr(h, "..") == NULL;
}

/* A user or group name as a section names it: what NSS could return, nothing that would make
 * the header ambiguous. */
static bool valid_account_name(const char *n)
{
    if (!*n || strlen(n) > 255)
        return false;
    for (const unsigned char *p = (const unsigned char *)n; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == ':' || *p == '/' || *p == '[' || *p == ']')
            return false;
    return true;
}

static int start_account_section(struct config *c, bool group, const char *name, unsigned lineno,
                                 char *why, size_t whylen)
{
    const char *kind = group ? "group" : "user";
    if (!valid_account_name(name)) {
        snprintf(why, whylen, "'%s' is not a valid %s name", name, kind);
        return -1;
    }
    for (unsigned i = 0; i < c->naccts; i++)
        if (c->accts[i].group == group && strcmp(c->accts[i].name, name) == 0) {
            snprintf(why, whylen, "[%s %s] is already defined on line %u", kind, name,
                     c->accts[i].line);
            return -1;
        }
    if (c->naccts >= MAX_ACCTSECTS) {
        snprintf(why, whylen, "at most %d [user] and [group] sections", MAX_ACCTSECTS);
        return -1;
    }
    c->accts = xrealloc(c->accts, (c->naccts + 1) * sizeof *c->accts);
    struct acctsect *a = &c->accts[c->naccts++];
    memset(a, 0, sizeof *a);
    a->name = xstrdup(name);
    a->group = group;
    a->line = lineno;
    return 0;
}

enum section_kind { SECTION_HOST, SECTION_ACCOUNT };

/* "[host NAME]", "[user NAME]" or "[group NAME]": 0 and a new section of *kind, or -1 with a
 * message. */
static int start_section(struct config *c, char *s, unsigned lineno, enum section_kind *kind,
                         char *why, size_t whylen)
{
    size_t n = strlen(s);
    if (s[n - 1] != ']') {
        snprintf(why, whylen, "a section header must end with ']'");
        return -1;
    }
    s[n - 1] = '\0';
    char *in = trim(s + 1);
    size_t word = strcspn(in, " \t");
    /* The whole word: strncmp(in, "host", word) alone let "[h NAME]" or "[us NAME]" in. */
    bool is_host = word == 4 && strncmp(in, "host", 4) == 0;
    bool is_user = word == 4 && strncmp(in, "user", 4) == 0;
    bool is_group = word == 5 && strncmp(in, "group", 5) == 0;
    if (in[word] == '\0' || !(is_host || is_user || is_group)) {
        snprintf(why, whylen,
                 "unknown section '[%s]' (sections are [host NAME], [user NAME] and "
                 "[group NAME])",
                 in);
        return -1;
    }
    char *name = trim(in + word);
    if (!is_host) {
        *kind = SECTION_ACCOUNT;
        return start_account_section(c, is_group, name, lineno, why, whylen);
    }
    *kind = SECTION_HOST;
    for (char *p = name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (!valid_host_name(name)) {
        snprintf(why, whylen, "'%s' is not a valid host name", name);
        return -1;
    }
    for (unsigned i = 0; i < c->nvhosts; i++)
        if (strcmp(c->vhosts[i].name, name) == 0) {
            snprintf(why, whylen, "[host %s] is already defined on line %u", name,
                     c->vhosts[i].line);
            return -1;
        }
    if (c->nvhosts >= MAX_VHOSTS) {
        snprintf(why, whylen, "at most %d [host] sections", MAX_VHOSTS);
        return -1;
    }
    c->vhosts = xrealloc(c->vhosts, (c->nvhosts + 1) * sizeof *c->vhosts);
    struct vhost *v = &c->vhosts[c->nvhosts++];
    memset(v, 0, sizeof *v);
    v->name = xstrdup(name);
    v->line = lineno;
    return 0;
}

static int set_account_key(struct acctsect *a, const char *key, const char *val, unsigned lineno,
                           char *why, size_t whylen)
{
    const char *kind = a->group ? "group" : "user";
    for (size_t i = 0; i < ARRAY_LEN(acct_keys); i++) {
        if (strcmp(acct_keys[i].name, key) != 0)
            continue;
        if (a->line_of[i]) {
            snprintf(why, whylen, "'%s' is already set in [%s %s] on line %u", key, kind, a->name,
                     a->line_of[i]);
            return -1;
        }
        /* Set or not, the line is the key's, as in the main part: a second one is a
         * duplicate too (a failed file is never used). */
        a->line_of[i] = lineno;
        char w[128];
        const char *err = set_value(a, &acct_keys[i], val, w, sizeof w);
        if (err) {
            snprintf(why, whylen, "%s: '%s' %s", key, val, err);
            return -1;
        }
        return 0;
    }
    /* The keys that can, from the table: the message cannot fall behind it. */
    int n = snprintf(why, whylen, "'%s' cannot be set in a [%s] section (", key, kind);
    for (size_t i = 0; i < ARRAY_LEN(acct_keys) && n >= 0 && (size_t)n < whylen; i++)
        n += snprintf(why + n, whylen - (size_t)n, "%s%s", acct_keys[i].name,
                      i + 2 < ARRAY_LEN(acct_keys)   ? ", "
                      : i + 1 < ARRAY_LEN(acct_keys) ? " and "
                                                     : " can)");
    return -1;
}

static int set_host_key(struct vhost *v, const char *key, const char *val, unsigned lineno,
                        char *why, size_t whylen)
{
    for (size_t i = 0; i < ARRAY_LEN(host_keys); i++) {
        if (strcmp(host_keys[i].name, key) != 0)
            continue;
        if (*(char **)((char *)v + host_keys[i].off)) {
            snprintf(why, whylen, "'%s' is already set in [host %s]", key, v->name);
            return -1;
        }
        char w[128];
        const char *err = set_value(v, &host_keys[i], val, w, sizeof w);
        if (err) {
            snprintf(why, whylen, "%s: '%s' %s", key, val, err);
            return -1;
        }
        v->line_of[i] = lineno;
        return 0;
    }
    snprintf(why, whylen, "'%s' cannot be set in a [host] section", key);
    return -1;
}

int config_parse_text(struct config *c, const char *name, const char *text,
                      void (*errfn)(const char *msg))
{
    int errors = 0;
    unsigned lineno = 0;
    c->path = name;
    unsigned seen[ARRAY_LEN(keys)] = {0};
    struct vhost *section = NULL;
    struct acctsect *asect = NULL;
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        lineno++;
        char *line = xmalloc(n + 1);
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + (nl ? 1 : 0);

        char *s = trim(line);
        char why[256];
        if (*s == '\0' || *s == '#') {
            /* blank or comment */
        } else if (*s == '[') {
            enum section_kind kind;
            section = NULL;
            asect = NULL;
            if (start_section(c, s, lineno, &kind, why, sizeof why) < 0) {
                report_at(errfn, name, lineno, "%s", why);
                errors++;
            } else if (kind == SECTION_HOST) {
                section = &c->vhosts[c->nvhosts - 1];
            } else {
                asect = &c->accts[c->naccts - 1];
            }
        } else {
            char *eq = strchr(s, '=');
            if (!eq) {
                report_at(errfn, name, lineno, "expected 'key = value'");
                errors++;
            } else {
                *eq = '\0';
                char *key = trim(s), *val = trim(eq + 1);
                int idx = config_key_index(key);
                const char *err;
                if (section || asect) {
                    if ((section ? set_host_key(section, key, val, lineno, why, sizeof why)
                                 : set_account_key(asect, key, val, lineno, why, sizeof why)) < 0) {
                        report_at(errfn, name, lineno, "%s", why);
                        errors++;
                    }
                } else if (idx < 0) {
                    report_at(errfn, name, lineno, "unknown key '%s'", key);
                    errors++;
                } else if (seen[idx]) {
                    report_at(errfn, name, lineno, "'%s' is already set on line %u", key,
                              seen[idx]);
                    errors++;
                } else {
                    /* Set or not, the line is the key's: a second one is a duplicate too. */
                    seen[idx] = lineno;
                    if ((err = set_value(c, &keys[idx], val, why, sizeof why))) {
                        report_at(errfn, name, lineno, "%s: '%s' %s", key, val, err);
                        errors++;
                    } else {
                        c->line_of[idx] = lineno;
                        c->given[idx] = true;
                    }
                }
            }
        }
        free(line);
    }
    return errors ? -1 : 0;
}

int config_override(struct config *c, const char *assignment, void (*errfn)(const char *msg))
{
    char buf[4096], msg[4300];
    /* Cut short, a value could pass as another one ("a...a/x" loses its '/'). */
    bool too_long = snprintf(buf, sizeof buf, "%s", assignment) >= (int)sizeof buf;
    char *eq = strchr(buf, '=');
    const char *err = NULL;
    char why[128];
    int idx = -1;
    if (too_long) {
        err = "longer than 4095 bytes";
    } else if (!eq) {
        err = "expected key=value";
    } else {
        *eq = '\0';
        char *key = trim(buf), *val = trim(eq + 1);
        idx = config_key_index(key);
        if (idx < 0)
            err = "unknown key";
        else
            err = set_value(c, &keys[idx], val, why, sizeof why);
    }
    if (err) {
        snprintf(msg, sizeof msg, "-o %.*s%s: %s", too_long ? 40 : (int)sizeof buf, assignment,
                 too_long ? "..." : "", err);
        if (errfn)
            errfn(msg);
        return -1;
    }
    c->line_of[idx] = 0;
    c->given[idx] = true;
    return 0;
}

enum client_cert_mode config_client_cert(const struct config *c)
{
    return strcmp(c->tls_client_cert, "required") == 0   ? CLIENT_CERT_REQUIRED
           : strcmp(c->tls_client_cert, "optional") == 0 ? CLIENT_CERT_OPTIONAL
                                                         : CLIENT_CERT_NONE;
}

enum cert_login_mode config_cert_login(const struct config *c)
{
    return strcmp(c->cert_login, "cert") == 0            ? CERT_LOGIN_CERT
           : strcmp(c->cert_login, "cert+password") == 0 ? CERT_LOGIN_CERT_PASSWORD
                                                         : CERT_LOGIN_NO;
}

/* "file:line: what", or "file: what" for a key that has no line (a default, an -o value):
 * a line 0 would send the reader to a line that does not exist. */
static void __attribute__((format(printf, 4, 5)))
report_key(void (*errfn)(const char *), const struct config *c, const char *key, const char *fmt,
           ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    unsigned line = config_line(c, key);
    if (line) {
        report_at(errfn, c->path, line, "%s", msg);
    } else if (errfn) {
        char full[1200];
        snprintf(full, sizeof full, "%s: %s", c->path, msg);
        errfn(full);
    }
}

/* PAM takes an empty name for a service that has no file, and of a name with a '/' only what
 * follows the last one: no login could work as written. */
static bool pam_service_ok(const char *name)
{
    return name[0] && !strchr(name, '/');
}

/* OpenSSL takes an empty tls_ciphersuites (no TLS 1.3), but at tls_min_version = 1.3 that
 * leaves no cipher: every handshake would fail with "no ciphers available". Checked here, at
 * every session start, without OpenSSL's tables; ftpsd -t checks the lists in full (main.c). */
static bool tls_lists_ok(const struct config *c)
{
    return c->tls_min_version < TLS1_3_VERSION || c->tls_ciphersuites[0];
}

/* One check for the main root_dir and the [host] ones: the session expands both alike
 * (monitor.c), and an unknown escape would otherwise name a directory literally. */
static const char *root_dir_problem(const char *dir)
{
    if (strstr(dir, ".."))
        return "must not contain '..'";
    for (const char *p = dir; (p = strchr(p, '%')); p += 2)
        if (p[1] != 'u' && p[1] != '%')
            return "may have only %u (user name) and %% after a %";
    return NULL;
}

/* deny_file and hide_file as the user process parses them at its start (session.c), which
 * must not fail there: a session would end at login. */
static bool name_list_ok(const char *list, char *why, size_t whylen)
{
    struct namefilter f;
    if (namefilter_parse(&f, list, why, whylen) < 0)
        return false;
    namefilter_free(&f);
    return true;
}

static const struct {
    const char *key;
    enum acct_key acct;
    size_t off, acct_off;
} name_lists[] = {{"deny_file", ACCT_DENY_FILE, O(deny_file), A(deny_file)},
                  {"hide_file", ACCT_HIDE_FILE, O(hide_file), A(hide_file)}};

static int name_lists_problems(const struct config *c, void (*errfn)(const char *msg))
{
    int errors = 0;
    char why[256];
    for (size_t k = 0; k < ARRAY_LEN(name_lists); k++) {
        const char *key = name_lists[k].key;
        if (!name_list_ok(*(char *const *)((const char *)c + name_lists[k].off), why, sizeof why)) {
            report_key(errfn, c, key, "%s: %s", key, why);
            errors++;
        }
        for (unsigned i = 0; i < c->naccts; i++) {
            const struct acctsect *a = &c->accts[i];
            const char *v = *(char *const *)((const char *)a + name_lists[k].acct_off);
            if (a->line_of[name_lists[k].acct] && v && !name_list_ok(v, why, sizeof why)) {
                report_at(errfn, c->path, a->line_of[name_lists[k].acct], "[%s %s]: %s: %s",
                          a->group ? "group" : "user", a->name, key, why);
                errors++;
            }
        }
    }
    return errors;
}

int config_validate(struct config *c, void (*errfn)(const char *msg))
{
    int errors = name_lists_problems(c, errfn);
    if (strcmp(c->tls_client_cert, "none") && strcmp(c->tls_client_cert, "optional") &&
        strcmp(c->tls_client_cert, "required")) {
        report_key(errfn, c, "tls_client_cert",
                   "tls_client_cert: '%s' must be none, optional or required", c->tls_client_cert);
        errors++;
    } else if (config_client_cert(c) != CLIENT_CERT_NONE && !c->tls_ca_file[0] &&
               !c->tls_ca_path[0]) {
        report_key(
            errfn, c, "tls_client_cert",
            "tls_client_cert: verifying client certificates needs tls_ca_file or tls_ca_path");
        errors++;
    }
    if (strcmp(c->cert_login, "no") && strcmp(c->cert_login, "cert") &&
        strcmp(c->cert_login, "cert+password")) {
        report_key(errfn, c, "cert_login", "cert_login: '%s' must be no, cert or cert+password",
                   c->cert_login);
        errors++;
    } else if (config_cert_login(c) != CERT_LOGIN_NO &&
               (config_client_cert(c) == CLIENT_CERT_NONE || !c->cert_map_file[0])) {
        report_key(errfn, c, "cert_login",
                   "cert_login: needs tls_client_cert = optional or required, and cert_map_file");
        errors++;
    }
    if (c->pasv_min_port > c->pasv_max_port) {
        report_key(errfn, c, "pasv_max_port", "pasv_max_port (%u) is below pasv_min_port (%u)",
                   c->pasv_max_port, c->pasv_min_port);
        errors++;
    }
    struct pasv_rule rules[PASV_RULES_MAX];
    char bad[400];
    if (pasv_rules_parse(c->pasv_address, rules, PASV_RULES_MAX, bad, sizeof bad) < 0) {
        report_key(errfn, c, "pasv_address", "pasv_address: %s", bad);
        errors++;
    }
    struct cidr nets[64];
    int nn = cidr_parse_list(c->proxy_trusted, nets, 64, bad, sizeof bad);
    if (nn < 0) {
        report_key(errfn, c, "proxy_trusted", "proxy_trusted: %s", bad);
        errors++;
    } else if (c->proxy_protocol != PROXY_OFF && nn == 0) {
        report_key(errfn, c, "proxy_protocol",
                   "proxy_protocol: needs proxy_trusted (the balancers allowed to send headers)");
        errors++;
    }
    if (strlen(c->banner) > 400 || strpbrk(c->banner, "\r\n")) {
        report_key(errfn, c, "banner", "banner: must be one line of at most 400 characters");
        errors++;
    }
    if (!tls_lists_ok(c)) {
        report_key(errfn, c, "tls_ciphersuites",
                   "tls_ciphersuites: must not be empty with tls_min_version = 1.3 (it leaves "
                   "no cipher)");
        errors++;
    }
    if (!pam_service_ok(c->pam_service)) {
        report_key(errfn, c, "pam_service",
                   "pam_service: '%s' must name a PAM service (a file in /etc/pam.d)",
                   c->pam_service);
        errors++;
    }
    const char *why = root_dir_problem(c->root_dir);
    if (why) {
        report_key(errfn, c, "root_dir", "root_dir: %s", why);
        errors++;
    }
    for (unsigned i = 0; i < c->nvhosts; i++) {
        const struct vhost *v = &c->vhosts[i];
        if (!v->tls_cert_file != !v->tls_key_file) {
            report_at(errfn, c->path, v->line,
                      "[host %s]: set both tls_cert_file and tls_key_file, or neither", v->name);
            errors++;
        }
        if (v->banner && (strlen(v->banner) > 400 || strpbrk(v->banner, "\r\n"))) {
            report_at(errfn, c->path, v->line,
                      "[host %s]: banner must be one line of at most 400 "
                      "characters",
                      v->name);
            errors++;
        }
        if (v->pam_service && !pam_service_ok(v->pam_service)) {
            report_at(errfn, c->path, config_host_line(c, i + 1, "pam_service"),
                      "[host %s]: pam_service '%s' must name a PAM service (a file in "
                      "/etc/pam.d)",
                      v->name, v->pam_service);
            errors++;
        }
        if (v->root_dir && (why = root_dir_problem(v->root_dir))) {
            report_at(errfn, c->path, config_host_line(c, i + 1, "root_dir"),
                      "[host %s]: root_dir %s", v->name, why);
            errors++;
        }
    }
    /* [user]/[group] root_dir is expanded as the main one is (monitor.c user_root). */
    for (unsigned i = 0; i < c->naccts; i++) {
        const struct acctsect *a = &c->accts[i];
        if (a->line_of[ACCT_ROOT_DIR] && a->root_dir && (why = root_dir_problem(a->root_dir))) {
            report_at(errfn, c->path, a->line_of[ACCT_ROOT_DIR], "[%s %s]: root_dir %s",
                      a->group ? "group" : "user", a->name, why);
            errors++;
        }
    }
    return errors ? -1 : 0;
}

int config_load(struct config *c, const char *path, void (*errfn)(const char *msg))
{
    FILE *f = fopen(path, "re");
    if (!f) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s: cannot open: %m", path);
        if (errfn)
            errfn(msg);
        return -1;
    }
    struct sbuf b;
    sbuf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        sbuf_add(&b, chunk, n);
        if (b.len > 1 << 20)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (err || b.len > 1 << 20) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s: %s", path, err ? "read error" : "file is larger than 1 MiB");
        if (errfn)
            errfn(msg);
        sbuf_free(&b);
        return -1;
    }
    c->path = path;
    int rc = 0;
    if (memchr(b.data ? b.data : "", '\0', b.len)) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s: file contains NUL bytes", path);
        if (errfn)
            errfn(msg);
        rc = -1;
    } else {
        rc = config_parse_text(c, path, b.data ? b.data : "", errfn);
    }
    sbuf_free(&b);
    return rc;
}

const struct vhost *config_find_vhost(const struct config *c, const char *name)
{
    for (unsigned i = 0; i < c->nvhosts; i++)
        if (strcasecmp(c->vhosts[i].name, name) == 0)
            return &c->vhosts[i];
    return NULL;
}

static const char *pick(const struct config *c, unsigned v, size_t off, const char *main_value)
{
    if (v == 0 || v > c->nvhosts)
        return main_value;
    const char *s = *(char *const *)((const char *)&c->vhosts[v - 1] + off);
    return s ? s : main_value;
}

const char *config_cert(const struct config *c, unsigned v)
{
    return pick(c, v, H(tls_cert_file), c->tls_cert_file);
}

const char *config_key(const struct config *c, unsigned v)
{
    return pick(c, v, H(tls_key_file), c->tls_key_file);
}

const char *config_root_dir(const struct config *c, unsigned v)
{
    return pick(c, v, H(root_dir), c->root_dir);
}

bool config_root_dir_per_user(const char *dir)
{
    for (const char *p = dir; (p = strchr(p, '%')) && p[1]; p += 2)
        if (p[1] == 'u')
            return true;
    return false;
}

const char *config_banner(const struct config *c, unsigned v)
{
    return pick(c, v, H(banner), c->banner);
}

const char *config_banner_file(const struct config *c, unsigned v)
{
    /* A section's own banner line wins over the main part's file. */
    if (v > 0 && v <= c->nvhosts && !c->vhosts[v - 1].banner_file && c->vhosts[v - 1].banner)
        return "";
    return pick(c, v, H(banner_file), c->banner_file);
}

const char *config_pam_service(const struct config *c, unsigned v)
{
    return pick(c, v, H(pam_service), c->pam_service);
}

void config_free(struct config *c)
{
    for (unsigned i = 0; i < c->nvhosts; i++) {
        struct vhost *v = &c->vhosts[i];
        free(v->name);
        for (size_t k = 0; k < ARRAY_LEN(host_keys); k++)
            free(*(char **)((char *)v + host_keys[k].off));
    }
    free(c->vhosts);
    c->vhosts = NULL;
    c->nvhosts = 0;
    for (unsigned i = 0; i < c->naccts; i++) {
        free(c->accts[i].name);
        free(c->accts[i].root_dir);
        free(c->accts[i].deny_file);
        free(c->accts[i].hide_file);
    }
    free(c->accts);
    c->accts = NULL;
    c->naccts = 0;
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        enum ktype t = keys[i].type;
        if (t == K_STR || t == K_PATH || t == K_OPTPATH) {
            char **f = (char **)((char *)c + keys[i].off);
            free(*f);
            *f = NULL;
        }
    }
}

/* Each table's name for a value, or NULL if it has none. */
static const char *level_name(int v)
{
    for (size_t i = 0; i < ARRAY_LEN(loglevels); i++)
        if (loglevels[i].value == v)
            return loglevels[i].name;
    return NULL;
}

static const char *facility_name(int v)
{
    for (size_t i = 0; i < ARRAY_LEN(facilities); i++)
        if (facilities[i].value == v)
            return facilities[i].name;
    return NULL;
}

/* An enumerated kind's value (K_TLSVER ... K_ANONWRITE) as the file names it. */
static const char *enum_name(enum ktype t, int v)
{
    switch (t) {
    case K_TLSVER:
        return v == TLS1_3_VERSION ? "1.3" : "1.2";
    case K_LOGLEVEL:
        return level_name(v);
    case K_FACILITY:
        return facility_name(v);
    case K_SECCOMP:
        return v == SECCOMP_TRAP  ? "trap"
               : v == SECCOMP_LOG ? "log"
               : v == SECCOMP_OFF ? "off"
                                  : "on";
    case K_PROXY:
        return v == PROXY_V1 ? "v1" : v == PROXY_V2 ? "v2" : v == PROXY_ANY ? "any" : "off";
    case K_ANONWRITE:
        return v == ANON_WRITE_UPLOAD ? "upload" : v == ANON_WRITE_YES ? "yes" : "no";
    default:
        return NULL;
    }
}

/* A value written as the file would give it, so that what -T prints reads back as the same
 * settings. */
static void print_value(FILE *out, const void *base, const struct key *k)
{
    const void *field = (const char *)base + k->off;
    const char *name;
    switch (k->type) {
    case K_STR:
    case K_PATH:
    case K_OPTPATH:
        name = *(char *const *)field ? *(char *const *)field : "";
        break;
    case K_BOOL:
        name = *(const bool *)field ? "yes" : "no";
        break;
    case K_UINT:
        fprintf(out, "%s = %u\n", k->name, *(const unsigned *)field);
        return;
    case K_U64:
        fprintf(out, "%s = %" PRIu64 "\n", k->name, *(const uint64_t *)field);
        return;
    case K_OCTAL:
        fprintf(out, "%s = %03o\n", k->name, *(const unsigned *)field);
        return;
    default: /* the enumerated kinds, whose fields are ints (a bool's is not aligned for one) */
        name = enum_name(k->type, *(const int *)field);
        break;
    }
    fprintf(out, "%s =%s%s\n", k->name, name && !name[0] ? "" : " ", name ? name : "?");
}

void config_dump(const struct config *c, FILE *out)
{
    fprintf(out, "# ftpsd -T: every key's value from %s, defaults included\n", c->path);
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        /* Set at all, session_lock_dir makes a rootless server count sessions (even set to
         * its default, root's /run/ftpsd, where every counted login would then fail): left at
         * its default it is shown as a comment, so that the output reads back the same. */
        if (!c->given[i] && strcmp(keys[i].name, "session_lock_dir") == 0)
            fputc('#', out);
        print_value(out, c, &keys[i]);
    }
    for (unsigned v = 0; v < c->nvhosts; v++) {
        fprintf(out, "\n[host %s]\n", c->vhosts[v].name);
        for (size_t i = 0; i < ARRAY_LEN(host_keys); i++)
            if (c->vhosts[v].line_of[i])
                print_value(out, &c->vhosts[v], &host_keys[i]);
    }
    /* In the file's order: the first [group] section that sets a key decides. */
    for (unsigned a = 0; a < c->naccts; a++) {
        fprintf(out, "\n[%s %s]\n", c->accts[a].group ? "group" : "user", c->accts[a].name);
        for (size_t i = 0; i < ARRAY_LEN(acct_keys); i++)
            if (c->accts[a].line_of[i])
                print_value(out, &c->accts[a], &acct_keys[i]);
    }
}
