/* The front's command table: what each command needs (login, argument) and who answers it. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include "certid.h"
#include "front.h"
#include "listing.h"
#include "log.h"
#include "reply.h"
#include "uops.h"

enum {
    F_PRE = 1u << 0,   /* allowed before login */
    F_ARG = 1u << 1,   /* an argument is required */
    F_NOARG = 1u << 2, /* no argument is allowed */
};

struct fcmd {
    const char *name;
    void (*fn)(struct front *f, const char *name, char *arg);
    unsigned flags;
    uint32_t op; /* for commands answered by the user process */
    const char *syntax;
};

static bool needs_tls(const struct front *f)
{
    return f->anon ? f->cfg->anon_require_tls : f->cfg->require_tls_login;
}

/* Room for certificates in MSG_LOGIN: what the other fields may take (user, password, counts)
 * stays free. A chain larger than that is cut, and the monitor's check of it then fails (530)
 * instead of every login, password ones too, failing to reach the monitor (421). */
#define CHAIN_BUDGET (MSG_MAX - 8 * 1024)

static void chain_clear(struct certchain *c)
{
    for (size_t i = 0; i < c->n; i++)
        OPENSSL_free(c->der[i]);
    c->n = 0;
}

static void chain_add(struct certchain *c, X509 *x, size_t *total)
{
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    if (len <= 0 || c->n >= CERTID_MAX_CHAIN || *total + (size_t)len + 4 > CHAIN_BUDGET) {
        OPENSSL_free(der);
        return;
    }
    *total += (size_t)len + 4;
    c->der[c->n] = der;
    c->len[c->n++] = (size_t)len;
}

/* The leaf, then sk's other certificates; drop_last: without sk's last one (the trust anchor
 * of a verified chain, which the monitor's own store holds). */
static void chain_fill(struct certchain *c, X509 *leaf, STACK_OF(X509) * sk, bool drop_last)
{
    chain_clear(c);
    size_t total = 0;
    chain_add(c, leaf, &total);
    int n = sk ? sk_X509_num(sk) : 0;
    if (drop_last && n > 1)
        n--;
    for (int i = 0; i < n; i++)
        if (X509_cmp(sk_X509_value(sk, i), leaf) != 0)
            chain_add(c, sk_X509_value(sk, i), &total);
}

static bool chain_has_leaf(const struct certchain *c, X509 *leaf)
{
    unsigned char *der = NULL;
    int len = i2d_X509(leaf, &der);
    bool same =
        c->n > 0 && len > 0 && c->len[0] == (size_t)len && memcmp(c->der[0], der, (size_t)len) == 0;
    OPENSSL_free(der);
    return same;
}

/* The client's certificate chain, for the monitor to check and map (certificate login). */
static void put_cert_chain(struct front *f, struct msg *m)
{
    X509 *leaf = f->ctl.ssl ? SSL_get0_peer_certificate(f->ctl.ssl) : NULL;
    if (!leaf || f->anon || config_cert_login(f->cfg) == CERT_LOGIN_NO) {
        msg_put_u32(m, 0);
        return;
    }
    /* The chain the handshake verified (leaf to trust anchor), not what the client sent: a
     * client may send unrelated certificates too (RFC 8446 §4.4.2), and the first few of those
     * would crowd out the intermediates the monitor needs. It is kept: a session resumed
     * later (AUTH TLS after REIN) has no verified chain, and from a ticket not even what was
     * sent, only the leaf, which alone would fail the monitor's check whenever an
     * intermediate signed it. */
    struct certchain other = {.n = 0};
    struct certchain *send = &f->cert_chain;
    STACK_OF(X509) *verified = SSL_get0_verified_chain(f->ctl.ssl);
    if (verified) {
        chain_fill(&f->cert_chain, leaf, verified, true);
    } else if (!chain_has_leaf(&f->cert_chain, leaf)) {
        chain_fill(&other, leaf, SSL_get_peer_cert_chain(f->ctl.ssl), false);
        send = &other;
    }
    msg_put_u32(m, (uint32_t)send->n);
    for (size_t i = 0; i < send->n; i++)
        msg_put_blob(m, send->der[i], send->len[i]);
    chain_clear(&other);
}

/* Asks the monitor to log in (with the password, or by certificate only) and relays its
 * answer: 230/232 logged in, 331 password needed, 530 refused, 421 refused and closing. */
static void login_request(struct front *f, bool has_password, const char *password)
{
    struct msg *m = f->m;
    msg_init(m, MSG_LOGIN);
    msg_put_u32(m, f->vhost);
    msg_put_str(m, f->user);
    msg_put_u32(m, has_password);
    /* An over-long password cannot be right; send one that fails, so the delay still applies. */
    msg_put_str(m, strlen(password) < 1024 ? password : "");
    put_cert_chain(f, m);
    int rc = msg_send(f->mon_fd, m);
    explicit_bzero(m->data, m->len);
    if (rc < 0 || msg_recv(f->mon_fd, m) < 0 || m->type != MSG_LOGIN_RESULT) {
        front_reply(f, 421, "Service not available: internal error, closing connection.");
        front_exit(f, 1);
    }
    uint32_t ok = msg_get_u32(m), code = msg_get_u32(m), close_after = msg_get_u32(m);
    char *lines = xmalloc(MSG_MAX);
    msg_get_str(m, lines, MSG_MAX);
    uint64_t fsize = msg_get_u64(m);
    char account[sizeof f->user];
    msg_get_str(m, account, sizeof account);
    uint32_t write_ok = msg_get_u32(m);
    uint64_t rate = msg_get_u64(m);
    int fd = m->fd;
    m->fd = -1;
    if (!msg_ok_end(m) || (ok && (fd < 0 || !account[0]))) {
        front_reply(f, 421, "Service not available: internal error, closing connection.");
        front_exit(f, 1);
    }
    if (ok) {
        f->logged_in = true;
        f->user_fd = fd;
        front_user_fsize(f, fsize);
        f->write_ok = write_ok != 0;
        f->max_rate = rate;
        snprintf(f->user, sizeof f->user, "%s", account);
        log_set_user(f->user);
        malloc_trim(0);
    } else if (code != 331) {
        f->have_user = false;
    }
    front_reply_dashed(f, (int)code, lines);
    free(lines);
    if (close_after)
        front_exit(f, 0);
}

static void c_user(struct front *f, const char *name, char *arg)
{
    (void)name;
    if (f->logged_in) {
        front_reply(f, 530, "Already logged in; cannot change to another user.");
        return;
    }
    if (strlen(arg) >= sizeof f->user) {
        front_reply(f, 501, "User name too long.");
        return;
    }
    f->anon = f->cfg->anonymous && (str_ieq(arg, "anonymous") || str_ieq(arg, "ftp"));
    if (needs_tls(f) && !f->tls) {
        front_reply(f, 530, "TLS required: send AUTH TLS before logging in.");
        return;
    }
    snprintf(f->user, sizeof f->user, "%s", arg);
    f->have_user = true;
    if (f->anon) {
        front_reply(f, 331, "Guest login ok, send your e-mail address as password.");
    } else if (config_cert_login(f->cfg) != CERT_LOGIN_NO && f->ctl.ssl &&
               SSL_get0_peer_certificate(f->ctl.ssl)) {
        /* RFC 4217 §12.2: the certificate may be enough (232), or the password is asked. */
        login_request(f, false, "");
    } else {
        front_reply(f, 331, "Please specify the password.");
    }
}

static void c_pass(struct front *f, const char *name, char *arg)
{
    (void)name;
    if (f->logged_in) {
        front_reply(f, 230, "Already logged in.");
        return;
    }
    if (!f->have_user) {
        front_reply(f, 503, "Login with USER first.");
        return;
    }
    if (needs_tls(f) && !f->tls) {
        front_reply(f, 530, "TLS required: send AUTH TLS before logging in.");
        return;
    }
    login_request(f, true, arg);
}

static void c_quit(struct front *f, const char *name, char *arg)
{
    (void)name;
    (void)arg;
    front_reply(f, 221, "Goodbye.");
    front_exit(f, 0);
}

static void c_noop(struct front *f, const char *name, char *arg)
{
    (void)name;
    (void)arg;
    front_reply(f, 200, "NOOP ok.");
}

static void c_syst(struct front *f, const char *name, char *arg)
{
    (void)name;
    (void)arg;
    front_reply(f, 215, "UNIX Type: L8");
}

/* CLNT (FileZilla, WinSCP, lftp: sent when FEAT lists it) names the client software; it changes
 * nothing, and is logged once per session, so that repeating it cannot fill the log. */
static void c_clnt(struct front *f, const char *name, char *arg)
{
    (void)name;
    if (!f->clnt_logged) {
        f->clnt_logged = true;
        log_msg(LOG_INFO, "client software: %.100s", arg);
    }
    front_reply(f, 200, "Noted.");
}

static void c_feat(struct front *f, const char *name, char *arg)
{
    (void)name;
    (void)arg;
    struct sbuf t;
    sbuf_init(&t);
    sbuf_adds(&t, "Features:\n AUTH TLS\n PBSZ\n PROT\n");
    /* As c_ccc answers: implicit TLS never clears the control connection. */
    if (f->cfg->allow_ccc && !f->cfg->implicit_tls)
        sbuf_adds(&t, " CCC\n");
    sbuf_adds(&t, " CLNT\n");
    if (f->cfg->port_enable)
        sbuf_adds(&t, " EPRT\n");
    sbuf_adds(&t, " EPSV\n HOST\n LANG EN*\n MDTM\n");
    /* The account's own setting once logged in ([user]/[group] sections, anonymous FTP). */
    if (f->logged_in ? f->write_ok : f->cfg->write_enable)
        sbuf_adds(&t, " MFMT\n");
    sbuf_adds(&t, " MLST ");
    mlst_feat_line(&t, f->mlst_facts);
    sbuf_adds(&t, "\n REST STREAM\n SIZE\n TVFS\n UTF8\nEnd");
    front_reply_multi(f, 211, t.data);
    sbuf_free(&t);
}

static void c_opts(struct front *f, const char *name, char *arg)
{
    (void)name;
    char *sp = strchr(arg, ' ');
    char *val = sp ? sp + 1 : NULL;
    if (sp)
        *sp = '\0';
    if (str_ieq(arg, "UTF8")) {
        if (val && str_ieq(val, "ON"))
            front_reply(f, 200, "Always in UTF8 mode.");
        else if (val && str_ieq(val, "OFF"))
            front_reply(f, 504, "UTF8 mode cannot be turned off.");
        else
            front_reply(f, 501, "Use OPTS UTF8 ON.");
        return;
    }
    if (str_ieq(arg, "MLST")) {
        unsigned facts;
        if (mlst_parse_facts(val ? val : "", &facts) < 0) {
            front_reply(f, 501, "Invalid MLST fact list.");
            return;
        }
        f->mlst_facts = facts;
        struct sbuf t;
        sbuf_init(&t);
        sbuf_adds(&t, "MLST OPTS");
        if (facts) {
            sbuf_addc(&t, ' ');
            mlst_selected(&t, facts);
        }
        front_reply(f, 200, "%s", t.data);
        sbuf_free(&t);
        return;
    }
    front_reply(f, 501, "Option not understood.");
}

static void c_auth(struct front *f, const char *name, char *arg)
{
    (void)name;
    if (f->ccc_done) {
        front_reply(f, 534, "AUTH is refused after CCC.");
        return;
    }
    if (f->tls) {
        front_reply(f, 503, "Already using TLS.");
        return;
    }
    if (f->logged_in) {
        front_reply(f, 534, "AUTH is refused after login.");
        return;
    }
    bool tls = str_ieq(arg, "TLS") || str_ieq(arg, "TLS-C");
    bool ssl = str_ieq(arg, "SSL") || str_ieq(arg, "TLS-P");
    if (!tls && !ssl) {
        front_reply(f, 504, "AUTH mechanism not supported; use AUTH TLS.");
        return;
    }
    if (!f->ctx) {
        front_reply(f, 431, "TLS is not available: the server has no usable certificate.");
        return;
    }
    SSL *s = front_new_ctl_ssl(f);
    if (!s) {
        front_reply(f, 431, "TLS is not available now.");
        return;
    }
    front_reply(f, 234, "Proceed with negotiation.");
    char err[256];
    /* The handshake counts against the login deadline, not a fresh one. */
    int64_t left = f->login_deadline - now_ms();
    if (left < 1)
        left = 1;
    if (ctl_starttls(&f->ctl, s, (int)left, true, err, sizeof err) < 0) {
        log_msg(LOG_INFO, "control TLS handshake failed: %s", err);
        SSL_free(s);
        f->ctl.ssl = NULL;
        front_exit(f, 0);
    }
    f->tls = true;
    char d[128];
    tls_describe(s, d, sizeof d);
    log_set_tls(d, ssl ? 'P' : 'C');
    log_msg(LOG_INFO, "control connection protected: %s", d);
    /* The handshake's temporary allocations go back to the kernel: an idle session is small. */
    malloc_trim(0);
    /* RFC 4217 §4.2: AUTH resets the session almost as REIN would. */
    f->have_user = false;
    f->type = 'A';
    f->rest = 0;
    f->rnfr_ok = false;
    dc_reset(&f->dc);
    f->pbsz = ssl;
    f->prot_p = ssl; /* AUTH SSL / TLS-P imply protected data, as vsftpd and ProFTPD do */
}

static void c_pbsz(struct front *f, const char *name, char *arg)
{
    (void)name;
    uint64_t v;
    if (f->ccc_done) {
        front_reply(f, 503, "PBSZ is not allowed after CCC.");
        return;
    }
    if (!f->tls) {
        front_reply(f, 503, "PBSZ needs a protected control connection: send AUTH TLS first.");
        return;
    }
    if (!parse_u64(arg, UINT32_MAX, &v)) {
        front_reply(f, 501, "PBSZ needs a number from 0 to 4294967295.");
        return;
    }
    f->pbsz = true;
    front_reply(f, 200, "PBSZ=0");
}

static void c_prot(struct front *f, const char *name, char *arg)
{
    (void)name;
    if (f->ccc_done) {
        front_reply(f, 503, "PROT is not allowed after CCC.");
        return;
    }
    if (!f->tls) {
        front_reply(f, 503, "PROT needs a protected control connection: send AUTH TLS first.");
        return;
    }
    if (!f->pbsz) {
        front_reply(f, 503, "PROT needs PBSZ first.");
        return;
    }
    if (str_ieq(arg, "C")) {
        f->prot_p = false;
        front_set_prot_log(f);
        front_reply(f, 200, "Protection level set to Clear.");
    } else if (str_ieq(arg, "P")) {
        f->prot_p = true;
        front_set_prot_log(f);
        front_reply(f, 200, "Protection level set to Private.");
    } else if (str_ieq(arg, "S") || str_ieq(arg, "E")) {
        front_reply(f, 536, "PROT %s is not supported with TLS; use C or P.", arg);
    } else {
        front_reply(f, 504, "Unknown protection level; use C or P.");
    }
}

static void c_ccc(struct front *f, const char *name, char *arg)
{
    (void)name;
    (void)arg;
    if (!f->tls) {
        front_reply(f, 533, "The control connection is not protected.");
    } else if (!f->logged_in) {
        front_reply(f, 534, "CCC is refused before login.");
    } else if (!f->cfg->allow_ccc || f->cfg->implicit_tls) {
        front_reply(f, 534, "CCC is refused by policy.");
    } else {
        front_reply(f, 200, "Control connection cleared; commands continue in plaintext.");
        if (ctl_tls_clear(&f->ctl, (int)f->cfg->reply_timeout * 1000) < 0)
            front_exit(f, 0);
        f->tls = false;
        f->ccc_done = true;
        log_msg(LOG_INFO, "control connection cleared (CCC); data protection stays %s",
                f->prot_p ? "P" : "C");
    }
}

/* RFC 4217 §13: the reply goes out protected, then TLS is cleared and the session starts over
 * as after the greeting; resumption is no longer required. */
static void c_rein(struct front *f, const char *name, char *arg)
{
    (void)name;
    (void)arg;
    if (!f->cfg->allow_rein || f->cfg->implicit_tls) {
        front_reply(f, 502, "REIN is disabled on this server.");
        return;
    }
    front_reply(f, 220, "Service ready for new user.");
    if (f->ctl.ssl && ctl_tls_clear(&f->ctl, (int)f->cfg->reply_timeout * 1000) < 0)
        front_exit(f, 0);
    bool was_logged_in = f->logged_in;
    if (f->logged_in) {
        close(f->user_fd);
        f->user_fd = -1;
        msg_init(f->m, MSG_LOGOUT);
        if (msg_send(f->mon_fd, f->m) < 0 || msg_recv(f->mon_fd, f->m) < 0 ||
            f->m->type != MSG_LOGOUT_DONE)
            front_exit(f, 1);
        log_set_user("");
    }
    dc_reset(&f->dc);
    f->logged_in = f->have_user = f->tls = f->pbsz = f->prot_p = false;
    f->ccc_done = f->epsv_all = f->rnfr_ok = f->anon = false;
    f->type = 'A';
    f->rest = 0;
    f->mlst_facts = FACT_DEFAULT;
    f->reuse_relaxed = true;
    f->vhost = f->cert_vhost = 0;
    f->host_given = false;
    f->sni[0] = '\0';
    /* Only a user who had logged in gets a new login period; REIN cannot extend the first. */
    if (was_logged_in)
        f->login_deadline = now_ms() + (int64_t)f->cfg->login_timeout * 1000;
    f->user[0] = '\0';
}

static void c_not_impl(struct front *f, const char *name, char *arg)
{
    (void)arg;
    front_reply(f, 502, "%s is not implemented.", name);
}

static void c_sec_data(struct front *f, const char *name, char *arg)
{
    (void)arg;
    front_reply(f, 502, "%s is not used with TLS: the whole connection is protected.", name);
}

static void c_acct(struct front *f, const char *name, char *arg)
{
    (void)name;
    (void)arg;
    if (f->logged_in)
        front_reply(f, 202, "ACCT is not needed.");
    else
        front_reply(f, 503, "Login with USER and PASS first.");
}

static bool all_digits(const char *s, size_t n)
{
    return n > 0 && strspn(s, "0123456789") == n;
}

/* RFC 959 §4.1.3: ALLO <decimal-integer> [<SP> R <SP> <decimal-integer>]. */
static void c_allo(struct front *f, const char *name, char *arg)
{
    (void)name;
    size_t n = strcspn(arg, " ");
    const char *r = arg + n;
    if (all_digits(arg, n) &&
        (!*r || ((r[1] == 'R' || r[1] == 'r') && r[2] == ' ' && all_digits(r + 3, strlen(r + 3)))))
        front_reply(f, 202, "ALLO is not needed.");
    else
        front_reply(f, 501, "ALLO needs a byte count: ALLO <size> [R <record size>].");
}

/* RFC 959 §5.3.2: A [<SP> N|T|C], E [<SP> N|T|C], I, L <SP> <byte size>. */
static bool type_syntax_ok(const char *arg)
{
    char t = (char)toupper((unsigned char)arg[0]);
    const char *r = arg[0] ? arg + 1 : arg;
    if (t == 'I')
        return !*r;
    if (t == 'A' || t == 'E')
        return !*r || (r[0] == ' ' && r[1] && strchr("NTCntc", r[1]) && !r[2]);
    if (t == 'L')
        return r[0] == ' ' && all_digits(r + 1, strlen(r + 1));
    return false;
}

static void c_type(struct front *f, const char *name, char *arg)
{
    (void)name;
    char t = (char)toupper((unsigned char)arg[0]);
    const char *rest = arg[0] ? arg + 1 : arg;
    if (!type_syntax_ok(arg)) {
        front_reply(f, 501, "TYPE syntax: A [N|T|C], E [N|T|C], I or L <byte size>.");
        return;
    }
    if (t == 'A' && (!*rest || str_ieq(rest, " N"))) {
        f->type = 'A';
        front_reply(f, 200, "Switching to ASCII mode.");
    } else if ((t == 'I' && !*rest) || (t == 'L' && strcmp(rest, " 8") == 0)) {
        f->type = 'I';
        front_reply(f, 200, "Switching to Binary mode.");
    } else {
        front_reply(f, 504, "TYPE %s is not supported; use A or I.", arg);
    }
}

static void c_stru(struct front *f, const char *name, char *arg)
{
    (void)name;
    if (str_ieq(arg, "F"))
        front_reply(f, 200, "Structure set to F.");
    else if (str_ieq(arg, "R") || str_ieq(arg, "P"))
        front_reply(f, 504, "Only STRU F is supported.");
    else
        front_reply(f, 501, "Unknown structure.");
}

static void c_mode(struct front *f, const char *name, char *arg)
{
    (void)name;
    if (str_ieq(arg, "S"))
        front_reply(f, 200, "Mode set to S.");
    else if (str_ieq(arg, "B") || str_ieq(arg, "C") || str_ieq(arg, "Z"))
        front_reply(f, 504, "Only MODE S is supported.");
    else
        front_reply(f, 501, "Unknown mode.");
}

static void c_rest(struct front *f, const char *name, char *arg)
{
    (void)name;
    uint64_t v;
    if (!parse_u64(arg, INT64_MAX, &v)) {
        front_reply(f, 501, "REST needs a non-negative byte offset.");
        return;
    }
    f->rest = v;
    front_reply(f, 350, "Restart position accepted (%llu).", (unsigned long long)v);
}

static bool local_is_ipv4(const struct sockaddr_storage *ss, struct in_addr *a)
{
    if (ss->ss_family == AF_INET) {
        *a = ((const struct sockaddr_in *)ss)->sin_addr;
        return true;
    }
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
        memcpy(a, &s6->sin6_addr.s6_addr[12], 4);
        return true;
    }
    return false;
}

/* A fresh TLS 1.3 ticket goes out with each passive reply, ahead of the data connection it is
 * for. OpenSSL clients that keep a session cache (curl) spend a ticket on each resumption, and a
 * data connection may be opened and dropped without the transfer whose final reply would have
 * brought the next one (curl connects before SIZE, and SIZE may fail; a refused RETR): the next
 * data connection would then have nothing to resume, and get 522. */
static void ticket_for_data_connection(struct front *f)
{
    if (f->ctl.ssl && SSL_version(f->ctl.ssl) >= TLS1_3_VERSION)
        SSL_new_session_ticket(f->ctl.ssl);
}

static void c_pasv(struct front *f, const char *name, char *arg)
{
    (void)name;
    (void)arg;
    struct in_addr a;
    if (f->epsv_all) {
        front_reply(f, 503, "PASV is not allowed after EPSV ALL.");
        return;
    }
    if (!local_is_ipv4(&f->si->local, &a)) {
        front_reply(f, 522, "PASV is IPv4-only; use EPSV.");
        return;
    }
    front_pasv_address(f, &a);
    unsigned port;
    char why[256];
    if (dc_listen(&f->dc, &f->si->local, f->cfg->pasv_min_port, f->cfg->pasv_max_port, &port, why,
                  sizeof why) < 0) {
        log_msg(LOG_WARNING, "PASV failed: %s", why);
        front_reply(f, 425, "Cannot open a passive data port: %s.", why);
        return;
    }
    const unsigned char *b = (const unsigned char *)&a;
    ticket_for_data_connection(f);
    front_reply(f, 227, "Entering Passive Mode (%u,%u,%u,%u,%u,%u).", b[0], b[1], b[2], b[3],
                port >> 8, port & 255);
}

static void c_epsv(struct front *f, const char *name, char *arg)
{
    (void)name;
    struct in_addr dummy;
    unsigned mine = local_is_ipv4(&f->si->local, &dummy) ? 1 : 2;
    if (arg[0]) {
        unsigned proto;
        if (str_ieq(arg, "ALL")) {
            f->epsv_all = true;
            front_reply(f, 200, "EPSV ALL ok: only EPSV from now on.");
            return;
        }
        if (!parse_uint(arg, 255, &proto)) {
            front_reply(f, 501, "EPSV takes a network protocol number or ALL.");
            return;
        }
        if (proto != mine) {
            front_reply(f, 522, "Network protocol not supported, use (%u)", mine);
            return;
        }
    }
    unsigned port;
    char why[256];
    if (dc_listen(&f->dc, &f->si->local, f->cfg->pasv_min_port, f->cfg->pasv_max_port, &port, why,
                  sizeof why) < 0) {
        log_msg(LOG_WARNING, "EPSV failed: %s", why);
        front_reply(f, 425, "Cannot open a passive data port: %s.", why);
        return;
    }
    ticket_for_data_connection(f);
    front_reply(f, 229, "Entering Extended Passive Mode (|||%u|)", port);
}

/* RFC 2577: the data connection may only go to the client itself, on an unprivileged port. */
static void set_active(struct front *f, const char *name, const struct sockaddr_storage *target)
{
    if (!f->cfg->port_enable) {
        front_reply(f, 502, "Active mode is disabled on this server; use PASV or EPSV.");
        return;
    }
    if (f->epsv_all) {
        front_reply(f, 503, "%s is not allowed after EPSV ALL.", name);
        return;
    }
    if (!sockaddr_same_host(target, &f->si->peer)) {
        log_msg(LOG_WARNING, "%s to another host refused (bounce attempt?)", name);
        front_reply(f, 500, "Illegal %s command: the data address must be the client's.", name);
        return;
    }
    if (sockaddr_port(target) < 1024) {
        front_reply(f, 504, "Illegal %s command: ports below 1024 are refused.", name);
        return;
    }
    dc_set_active(&f->dc, target);
    front_reply(f, 200, "%s command successful. Consider using EPSV.", name);
}

static void c_port(struct front *f, const char *name, char *arg)
{
    struct sockaddr_storage t;
    struct in_addr dummy;
    if (!local_is_ipv4(&f->si->local, &dummy)) {
        front_reply(f, 522, "PORT is IPv4-only; use EPRT.");
        return;
    }
    if (dc_parse_port(arg, &t) < 0) {
        front_reply(f, 501, "Syntax: PORT h1,h2,h3,h4,p1,p2");
        return;
    }
    set_active(f, name, &t);
}

static void c_eprt(struct front *f, const char *name, char *arg)
{
    struct sockaddr_storage t;
    struct in_addr dummy;
    unsigned mine = local_is_ipv4(&f->si->local, &dummy) ? 1 : 2, proto = 0;
    int rc = dc_parse_eprt(arg, &t, &proto);
    if (rc == -2 || (rc == 0 && proto != mine)) {
        front_reply(f, 522, "Network protocol not supported, use (%u)", mine);
        return;
    }
    if (rc < 0) {
        front_reply(f, 501, "Syntax: EPRT |proto|address|port|");
        return;
    }
    set_active(f, name, &t);
}

static void c_abor(struct front *f, const char *name, char *arg)
{
    (void)name;
    (void)arg;
    if (dc_active(&f->dc)) {
        dc_reset(&f->dc);
        front_reply(f, 226, "No transfer to abort; data connection closed.");
    } else {
        front_reply(f, 225, "No transfer to abort.");
    }
}

static void c_stat(struct front *f, const char *name, char *arg)
{
    (void)name;
    if (arg[0]) {
        if (!f->logged_in) {
            front_reply(f, 530, "Please login with USER and PASS.");
            return;
        }
        struct ureply r;
        front_user_request(f, UOP_STAT, 0, 0, arg, NULL, &r);
        front_relay_reply(f, &r);
        ureply_free(&r);
        return;
    }
    struct sbuf t;
    sbuf_init(&t);
    char d[128] = "plaintext";
    if (f->ctl.ssl)
        tls_describe(f->ctl.ssl, d, sizeof d);
    sbuf_printf(&t,
                "FTP server status:\n Connected to %s\n Logged in as %s\n"
                " TYPE: %s, STRU: File, MODE: Stream\n Control connection: %s\n"
                " Data protection: %s\nEnd of status",
                f->si->peer_str, f->logged_in ? f->user : "nobody (not logged in)",
                f->type == 'A' ? "ASCII" : "Binary", d, f->prot_p ? "Private (TLS)" : "Clear");
    front_reply_multi(f, 211, t.data);
    sbuf_free(&t);
}

/*
 * A command that changes the file tree leaves a record, as a transfer does: what it named (the
 * canonical path when the user process resolved one, else the argument as given), what it did
 * (detail: a mode, a time) and its reply, refusals included: who deleted or renamed what is
 * what an admin asks of the log.
 */
static void log_change(const char *verb, const char *detail, const struct ureply *r,
                       const char *arg)
{
    char q[LOG_QUOTED_MAX + 16];
    log_quote(q, sizeof q, r->name[0] ? r->name : arg);
    log_msg(LOG_INFO, "%s%s%s %s reply=%d", verb, detail[0] ? " " : "", detail, q, r->code);
}

static void c_user_op(struct front *f, const struct fcmd *c, char *arg)
{
    struct ureply r;
    front_user_request(f, c->op, 0, 0, arg, NULL, &r);
    if (c->op == UOP_RNFR && r.code == 350) {
        f->rnfr_ok = true;
        snprintf(f->rnfr, sizeof f->rnfr, "%s", r.name);
    }
    /* XMKD and XRMD are logged as MKD and RMD; a RNFR that worked, with its RNTO. */
    if (c->op == UOP_DELE || c->op == UOP_MKD || c->op == UOP_RMD ||
        (c->op == UOP_RNFR && r.code != 350))
        log_change(c->op == UOP_DELE  ? "DELE"
                   : c->op == UOP_MKD ? "MKD"
                   : c->op == UOP_RMD ? "RMD"
                                      : "RNFR",
                   "", &r, arg);
    front_relay_reply(f, &r);
    ureply_free(&r);
}

static void c_rnto(struct front *f, const char *name, char *arg)
{
    (void)name;
    /* rnfr_ok was armed by the command right before this one (see front_dispatch). */
    struct ureply r;
    front_user_request(f, UOP_RNTO, 0, 0, arg, f->rnfr, &r);
    char from[LOG_QUOTED_MAX + 16], detail[LOG_QUOTED_MAX + 24];
    log_quote(from, sizeof from, f->rnfr);
    snprintf(detail, sizeof detail, "%s ->", from);
    log_change("RENAME", detail, &r, arg);
    front_relay_reply(f, &r);
    ureply_free(&r);
}

static void c_xfer(struct front *f, const char *name, char *arg)
{
    static const struct {
        const char *name;
        enum xfer_kind kind;
    } k[] = {{"RETR", XK_RETR}, {"STOR", XK_STOR}, {"APPE", XK_APPE}, {"LIST", XK_LIST},
             {"NLST", XK_NLST}, {"MLSD", XK_MLSD}, {"STOU", XK_STOU}};
    for (size_t i = 0; i < ARRAY_LEN(k); i++)
        if (strcmp(k[i].name, name) == 0)
            xfer_run(f, k[i].kind, arg);
}

/* "YYYYMMDDHHMMSS[.sss]" (UTC, RFC 3659 §2.3) followed by one space; *rest points after it. */
static bool parse_time_prefix(const char *arg, time_t *t, const char **rest)
{
    size_t n = strspn(arg, "0123456789");
    if (n != 14)
        return false;
    const char *p = arg + 14;
    if (*p == '.') {
        size_t frac = strspn(p + 1, "0123456789");
        if (frac < 1 || frac > 3)
            return false;
        p += 1 + frac;
    }
    if (*p != ' ' || !p[1])
        return false;
    struct tm tm = {0};
    if (sscanf(arg, "%4d%2d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return false;
    /* Times before 1970 are times too: MDTM reports them, and a file copied from an old
     * archive has one. timegm's -1 is also 1969-12-31 23:59:59: only EOVERFLOW (a 32-bit
     * time_t) says it failed. */
    if (tm.tm_year < 1 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    errno = 0;
    *t = timegm(&tm);
    *rest = p + 1;
    return *t != (time_t)-1 || errno != EOVERFLOW;
}

static void set_time(struct front *f, const char *path, time_t t)
{
    struct ureply r;
    front_user_request(f, UOP_SETTIME, 0, (uint64_t)t, path, NULL, &r);
    char when[32];
    format_mdtm(when, sizeof when, t);
    log_change("MFMT", when, &r, path);
    front_relay_reply(f, &r);
    ureply_free(&r);
}

static void c_mdtm(struct front *f, const char *name, char *arg)
{
    (void)name;
    time_t t;
    const char *path;
    struct ureply r;
    front_user_request(f, UOP_MDTM, 0, 0, arg, NULL, &r);
    /* "MDTM time file" sets the time (the overload lftp and others know), if writes are on;
     * but only when the whole argument names nothing ("20240101120000 photo.jpg" may be a
     * file, whose time a read-only query must not turn into a change of photo.jpg). */
    if (r.code != 213 && parse_time_prefix(arg, &t, &path)) {
        ureply_free(&r);
        set_time(f, path, t);
        return;
    }
    front_relay_reply(f, &r);
    ureply_free(&r);
}

static void c_mfmt(struct front *f, const char *name, char *arg)
{
    (void)name;
    time_t t;
    const char *path;
    if (!parse_time_prefix(arg, &t, &path)) {
        front_reply(f, 501, "Syntax: MFMT YYYYMMDDHHMMSS path");
        return;
    }
    set_time(f, path, t);
}

static void c_site(struct front *f, const char *name, char *arg)
{
    (void)name;
    char *sp = strchr(arg, ' ');
    char *rest = sp ? sp + 1 : arg + strlen(arg);
    if (sp)
        *sp = '\0';
    struct ureply r;
    if (str_ieq(arg, "HELP")) {
        front_reply_multi(f, 214,
                          "The following SITE commands are recognized.\n"
                          " CHMOD <mode> <path>\n UMASK [<mask>]\n HELP\nHelp OK.");
    } else if (f->anon && (str_ieq(arg, "CHMOD") || str_ieq(arg, "UMASK"))) {
        /* Anonymous uploads keep the modes the server gives them (as vsftpd's). */
        front_reply(f, 550, "SITE %s is not available to anonymous users.", arg);
    } else if (str_ieq(arg, "CHMOD")) {
        char *path = strchr(rest, ' ');
        char *end = NULL;
        unsigned long mode = 0;
        if (path) {
            *path++ = '\0';
            mode = strtoul(rest, &end, 8);
        }
        if (!path || !*path || !end || *end || !*rest || mode > 07777) {
            front_reply(f, 501, "Syntax: SITE CHMOD <octal mode> <path>");
            return;
        }
        front_user_request(f, UOP_CHMOD, 0, mode, path, NULL, &r);
        char octal[16];
        snprintf(octal, sizeof octal, "%04lo", mode);
        log_change("SITE CHMOD", octal, &r, path);
        front_relay_reply(f, &r);
        ureply_free(&r);
    } else if (str_ieq(arg, "UMASK")) {
        front_user_request(f, UOP_UMASK, 0, 0, rest, NULL, &r);
        front_relay_reply(f, &r);
        ureply_free(&r);
    } else {
        front_reply(f, 500, "Unknown SITE command %s.", arg);
    }
}

static bool is_local_address(const struct front *f, int family, const void *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, addr, 4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, addr, 16);
    }
    return sockaddr_same_host(&ss, &f->si->local);
}

/* RFC 7151: HOST names the virtual host before login; it must agree with TLS SNI. */
static void c_host(struct front *f, const char *name, char *arg)
{
    (void)name;
    if (f->logged_in || f->have_user) {
        front_reply(f, 503, "HOST must come before USER.");
        return;
    }
    unsigned char addr[16];
    unsigned idx = 0;
    bool literal = false;
    if (arg[0] == '[') {
        char *end = strchr(arg, ']');
        if (!end || end[1] != '\0') {
            front_reply(f, 501, "HOST: a port or other text after the address is not allowed.");
            return;
        }
        *end = '\0';
        if (inet_pton(AF_INET6, arg + 1, addr) != 1) {
            front_reply(f, 501, "HOST: not an IPv6 address.");
            return;
        }
        if (!is_local_address(f, AF_INET6, addr)) {
            front_reply(f, 504, "HOST: that address is not this server's.");
            return;
        }
        literal = true;
    } else if (strchr(arg, ':')) {
        front_reply(f, 501, "HOST takes a name or address without a port (IPv6 in [brackets]).");
        return;
    } else if (inet_pton(AF_INET, arg, addr) == 1) {
        if (!is_local_address(f, AF_INET, addr)) {
            front_reply(f, 504, "HOST: that address is not this server's.");
            return;
        }
        literal = true;
    } else {
        size_t n = strlen(arg);
        bool ok = n > 0 && n <= 253;
        for (const char *p = arg; ok && *p; p++)
            ok = isalnum((unsigned char)*p) || *p == '-' || *p == '.';
        if (!ok) {
            front_reply(f, 501, "HOST: not a valid host name.");
            return;
        }
        const struct vhost *v = config_find_vhost(f->cfg, arg);
        if (v) {
            idx = (unsigned)(v - f->cfg->vhosts) + 1;
        } else if (f->cfg->nvhosts > 0) {
            front_reply(f, 504, "HOST %s is not served here.", arg);
            return;
        }
    }
    if (idx > 0 && f->cfg->vhosts[idx - 1].tls_cert_file && !f->vctx[idx - 1]) {
        /* RFC 7151 §3.2: its certificate could not be loaded; the client may retry later. */
        front_reply(f, 421, "HOST %s is temporarily unavailable; closing connection.", arg);
        front_exit(f, 0);
    }
    if (f->tls) {
        /* The TLS handshake already picked a certificate: HOST may not contradict it. */
        bool sni_clash = f->sni[0] && !literal && strcasecmp(f->sni, arg) != 0;
        /* A section without its own certificate uses the main one: what counts is the
         * certificate, not the section. */
        if (sni_clash || front_ctx_for(f, idx) != front_ctx_for(f, f->cert_vhost)) {
            front_reply(f, 504, "HOST %s does not match the TLS server name in use.", arg);
            return;
        }
    }
    f->vhost = idx;
    f->host_given = true;
    f->have_user = false;
    front_greet(f, idx);
}

#ifdef FTPSD_TEST_HOOKS
/* XTST MSG <type> [<hex payload>]: the front sends the monitor what a compromised front
 * could, and answers 200 if the send worked; what the monitor does is the test's to see. */
static void test_monitor_msg(struct front *f, const char *arg)
{
    char *end;
    unsigned long type = strtoul(arg, &end, 10);
    const char *hex = *end == ' ' ? end + 1 : end;
    size_t n = strlen(hex);
    if (end == arg || (*end && *end != ' ') || type > UINT32_MAX || n % 2 || n / 2 > MSG_MAX) {
        front_reply(f, 501, "XTST MSG <type> [<hex payload>]");
        return;
    }
    struct msg *m = f->m;
    msg_init(m, (uint32_t)type);
    for (size_t i = 0; i < n; i += 2) {
        char byte[3] = {hex[i], hex[i + 1], '\0'};
        if (!isxdigit((unsigned char)byte[0]) || !isxdigit((unsigned char)byte[1])) {
            front_reply(f, 501, "XTST MSG <type> [<hex payload>]");
            return;
        }
        m->data[i / 2] = (unsigned char)strtoul(byte, NULL, 16);
    }
    m->len = n / 2;
    if (msg_send(f->mon_fd, m) < 0)
        front_reply(f, 451, "Could not send to the monitor.");
    else
        front_reply(f, 200, "Sent to the monitor.");
}

/* Test builds only: XTST WORKER-SYSCALL (the next data worker calls socket(2), which its
 * filter forbids), XTST OPEN <path> (the user process tries a plain open(2)), XTST KTLS
 * (data workers try kernel TLS even where the kernel does not offer it), XTST RNTO <old> <new>
 * (RNTO with an old name of the front's choosing, no RNFR: what a compromised front could send
 * the user process) and XTST MSG (above). */
static void c_test_hook(struct front *f, const char *name, char *arg)
{
    (void)name;
    if (str_has_prefix_ci(arg, "MSG ")) {
        test_monitor_msg(f, arg + 4);
    } else if (!f->logged_in) {
        front_reply(f, 530, "Please login with USER and PASS.");
    } else if (str_ieq(arg, "WORKER-SYSCALL")) {
        f->test_bad_worker = true;
        front_reply(f, 200, "The next data worker will make a forbidden system call.");
    } else if (str_ieq(arg, "KTLS")) {
        f->test_force_ktls = true;
        front_reply(f, 200, "Data workers will try kernel TLS.");
    } else if (str_has_prefix_ci(arg, "OPEN ")) {
        struct ureply r;
        front_user_request(f, UOP_TEST_OPEN, 0, 0, arg + 5, NULL, &r);
        front_relay_reply(f, &r);
        ureply_free(&r);
    } else if (str_has_prefix_ci(arg, "RNTO ") && strchr(arg + 5, ' ')) {
        char *to = strchr(arg + 5, ' ');
        *to++ = '\0';
        struct ureply r;
        front_user_request(f, UOP_RNTO, 0, 0, to, arg + 5, &r);
        front_relay_reply(f, &r);
        ureply_free(&r);
    } else {
        front_reply(f, 501,
                    "XTST WORKER-SYSCALL | KTLS | OPEN <path> | RNTO <old> <new> | MSG <type> "
                    "[<hex>]");
    }
}
#endif

/* RFC 2640 §4: English is the one language; LANG names it or asks for the default. */
static void c_lang(struct front *f, const char *name, char *arg)
{
    (void)name;
    if (!arg[0] || str_ieq(arg, "EN") || str_has_prefix_ci(arg, "EN-")) {
        bool ok = !arg[0] || strlen(arg) <= 8;
        for (const char *p = arg; ok && *p; p++)
            ok = isalpha((unsigned char)*p) || *p == '-';
        if (ok) {
            /* English is all there is, so nothing changes and REIN has nothing to undo. */
            front_reply(f, 200, "Responses in English.");
            return;
        }
    }
    for (const char *p = arg; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-') {
            front_reply(f, 501, "Syntax: LANG [language-tag]");
            return;
        }
    front_reply(f, 504, "Language %s is not supported; only EN.", arg);
}

static void c_help(struct front *f, const char *name, char *arg);

#define USEROP NULL

static const struct fcmd cmds[] = {
    {"ABOR", c_abor, F_PRE | F_NOARG, 0, "ABOR"},
    {"ACCT", c_acct, F_PRE | F_ARG, 0, "ACCT <account>"},
    {"ADAT", c_sec_data, F_PRE, 0, "ADAT <base64>"},
    {"ALLO", c_allo, F_ARG, 0, "ALLO <size>"},
    {"APPE", c_xfer, F_ARG, 0, "APPE <file>"},
    {"AUTH", c_auth, F_PRE | F_ARG, 0, "AUTH TLS"},
    {"CCC", c_ccc, F_PRE | F_NOARG, 0, "CCC"},
    {"CDUP", USEROP, F_NOARG, UOP_CDUP, "CDUP"},
    {"CLNT", c_clnt, F_PRE | F_ARG, 0, "CLNT <client software>"},
    {"CONF", c_sec_data, F_PRE, 0, "CONF <base64>"},
    {"CWD", USEROP, F_ARG, UOP_CWD, "CWD <directory>"},
    {"DELE", USEROP, F_ARG, UOP_DELE, "DELE <file>"},
    {"ENC", c_sec_data, F_PRE, 0, "ENC <base64>"},
    {"EPRT", c_eprt, F_ARG, 0, "EPRT |proto|address|port|"},
    {"EPSV", c_epsv, 0, 0, "EPSV [1|2|ALL]"},
    {"FEAT", c_feat, F_PRE | F_NOARG, 0, "FEAT"},
    {"HELP", c_help, F_PRE, 0, "HELP [command]"},
    {"HOST", c_host, F_PRE | F_ARG, 0, "HOST <name>"},
    {"LANG", c_lang, F_PRE, 0, "LANG [EN]"},
    {"LIST", c_xfer, 0, 0, "LIST [-a] [path]"},
    {"MDTM", c_mdtm, F_ARG, 0, "MDTM [YYYYMMDDHHMMSS] <file>"},
    {"MFMT", c_mfmt, F_ARG, 0, "MFMT YYYYMMDDHHMMSS <path>"},
    {"MIC", c_sec_data, F_PRE, 0, "MIC <base64>"},
    {"MKD", USEROP, F_ARG, UOP_MKD, "MKD <directory>"},
    {"MLSD", c_xfer, 0, 0, "MLSD [directory]"},
    {"MLST", USEROP, 0, UOP_MLST, "MLST [path]"},
    {"MODE", c_mode, F_ARG, 0, "MODE S"},
    {"NLST", c_xfer, 0, 0, "NLST [path]"},
    {"NOOP", c_noop, F_PRE | F_NOARG, 0, "NOOP"},
    {"OPTS", c_opts, F_PRE | F_ARG, 0, "OPTS UTF8 ON | OPTS MLST <facts>"},
    {"PASS", c_pass, F_PRE, 0, "PASS <password>"},
    {"PASV", c_pasv, F_NOARG, 0, "PASV"},
    {"PBSZ", c_pbsz, F_PRE | F_ARG, 0, "PBSZ 0"},
    {"PORT", c_port, F_ARG, 0, "PORT h1,h2,h3,h4,p1,p2"},
    {"PROT", c_prot, F_PRE | F_ARG, 0, "PROT C|P"},
    {"PWD", USEROP, F_NOARG, UOP_PWD, "PWD"},
    {"QUIT", c_quit, F_PRE | F_NOARG, 0, "QUIT"},
    {"REIN", c_rein, F_PRE | F_NOARG, 0, "REIN"},
    {"REST", c_rest, F_ARG, 0, "REST <offset>"},
    {"RETR", c_xfer, F_ARG, 0, "RETR <file>"},
    {"RMD", USEROP, F_ARG, UOP_RMD, "RMD <directory>"},
    {"RNFR", USEROP, F_ARG, UOP_RNFR, "RNFR <old name>"},
    {"RNTO", c_rnto, F_ARG, 0, "RNTO <new name>"},
    {"SITE", c_site, F_ARG, 0, "SITE HELP | CHMOD <mode> <path> | UMASK [<mask>]"},
    {"SIZE", USEROP, F_ARG, UOP_SIZE, "SIZE <file>"},
    {"SMNT", c_not_impl, F_ARG, 0, "SMNT <path>"},
    {"STAT", c_stat, F_PRE, 0, "STAT [path]"},
    {"STOR", c_xfer, F_ARG, 0, "STOR <file>"},
    {"STOU", c_xfer, 0, 0, "STOU [<name>]"},
    {"STRU", c_stru, F_ARG, 0, "STRU F"},
    {"SYST", c_syst, F_PRE | F_NOARG, 0, "SYST"},
    {"TYPE", c_type, F_ARG, 0, "TYPE A|I"},
    {"USER", c_user, F_PRE | F_ARG, 0, "USER <name>"},
    {"XCUP", USEROP, F_NOARG, UOP_CDUP, "XCUP"},
    {"XCWD", USEROP, F_ARG, UOP_CWD, "XCWD <directory>"},
    {"XMKD", USEROP, F_ARG, UOP_MKD, "XMKD <directory>"},
    {"XPWD", USEROP, F_NOARG, UOP_PWD, "XPWD"},
    {"XRMD", USEROP, F_ARG, UOP_RMD, "XRMD <directory>"},
#ifdef FTPSD_TEST_HOOKS
    {"XTST", c_test_hook, F_PRE | F_ARG, 0,
     "XTST WORKER-SYSCALL | KTLS | OPEN <path> | RNTO <old> <new> | MSG"},
#endif
};

static const struct fcmd *find_cmd(const char *verb)
{
    for (size_t i = 0; i < ARRAY_LEN(cmds); i++)
        if (str_ieq(cmds[i].name, verb))
            return &cmds[i];
    return NULL;
}

static void c_help(struct front *f, const char *name, char *arg)
{
    (void)name;
    if (arg[0]) {
        const struct fcmd *c = find_cmd(arg);
        if (c && c->fn == c_not_impl)
            front_reply(f, 214, "%s is recognized but not implemented.", c->name);
        else if (c)
            front_reply(f, 214, "Syntax: %s", c->syntax);
        else
            front_reply(f, 502, "Unknown command %s.", arg);
        return;
    }
    struct sbuf t;
    sbuf_init(&t);
    sbuf_adds(&t, "The following commands are recognized.");
    for (size_t i = 0; i < ARRAY_LEN(cmds); i++) {
        sbuf_adds(&t, i % 10 == 0 ? "\n " : " ");
        sbuf_adds(&t, cmds[i].name);
    }
    sbuf_adds(&t, "\nHelp OK.");
    front_reply_multi(f, 214, t.data);
    sbuf_free(&t);
}

void front_dispatch(struct front *f, char *line, size_t len)
{
    /* RNFR arms RNTO for exactly the next command. */
    bool rnfr_armed = f->rnfr_ok;
    f->rnfr_ok = false;

    char *sp = memchr(line, ' ', len);
    size_t vlen = sp ? (size_t)(sp - line) : len;
    char verb[8];
    if (vlen == 0 || vlen >= sizeof verb) {
        front_reply(f, 500, "Unknown command.");
        return;
    }
    if (memchr(line, '\0', vlen)) {
        /* "DELE\0x victim" must not run as DELE */
        front_reply(f, 500, "Unknown command.");
        return;
    }
    memcpy(verb, line, vlen);
    verb[vlen] = '\0';
    /* Exactly one space separates verb and argument; the rest (spaces too) is the argument. */
    char *arg = sp ? sp + 1 : line + len;
    size_t alen = len - (size_t)(arg - line);
    const struct fcmd *c = find_cmd(verb);
    if (!c) {
        front_reply(f, 500, "Unknown command.");
        return;
    }
    if (memchr(arg, '\0', alen)) {
        front_reply(f, 501, "Invalid character (NUL) in argument.");
        return;
    }
    if (!f->logged_in && !(c->flags & F_PRE)) {
        front_reply(f, 530, "Please login with USER and PASS.");
        return;
    }
    if ((c->flags & F_ARG) && alen == 0) {
        front_reply(f, 501, "Syntax: %s", c->syntax);
        return;
    }
    if ((c->flags & F_NOARG) && alen > 0) {
        front_reply(f, 501, "%s takes no argument.", c->name);
        return;
    }
    if (strcmp(c->name, "RNTO") == 0 && !rnfr_armed) {
        front_reply(f, 503, "RNFR required first.");
        return;
    }
    if (c->fn)
        c->fn(f, c->name, arg);
    else
        c_user_op(f, c, arg);
}
