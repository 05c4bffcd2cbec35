#include "tls.h"

#include "cadir.h"
#include "cpuaes.h"

#include <errno.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A week: the longest TLS 1.3 ticket lifetime (RFC 8446 §4.6.1). A data connection must be able
 * to resume the control session however long the login lasts. */
#define SESSION_LIFETIME (7 * 24 * 3600)

static bool alpn_may_be_ftp(const unsigned char *id, unsigned len)
{
    static const char *const known_non_ftp[] = {
        "http/0.9",    "http/1.0",    "http/1.1",    "h2",         "h2c",  "h3",
        "spdy/1",      "spdy/2",      "spdy/3",      "imap",       "pop3", "smtp",
        "managesieve", "xmpp-client", "xmpp-server", "irc",        "coap", "mqtt",
        "sip/2",       "dot",         "acme-tls/1",  "postgresql", "ldap"};
    for (size_t i = 0; i < sizeof known_non_ftp / sizeof known_non_ftp[0]; i++)
        if (strlen(known_non_ftp[i]) == len && memcmp(known_non_ftp[i], id, len) == 0)
            return false;
    return true;
}

/* ALPN (RFC 7301): pick "ftp"; ignore unknown ids (FileZilla's); refuse a list made only of
 * other protocols, which is what a cross-protocol (ALPACA) attempt looks like. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    bool any_unknown = false;
    for (unsigned i = 0; i < inlen;) {
        unsigned n = in[i];
        if (n == 0 || i + 1 + n > inlen)
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        const unsigned char *id = in + i + 1;
        if (n == 3 && memcmp(id, "ftp", 3) == 0) {
            *out = id;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        if (alpn_may_be_ftp(id, n))
            any_unknown = true;
        i += 1 + n;
    }
    return any_unknown ? SSL_TLSEXT_ERR_NOACK : SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void set_err(struct tls_err *err, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(struct tls_err *err, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    err->key = key;
}

/* OpenSSL's last error, after what failed and on what. A file that cannot be opened or read
 * ends the queue with a bare "system lib"; the errno OpenSSL queued before it (an ERR_LIB_SYS
 * entry, whose reason is the errno) says why: missing, unreadable, a directory. */
static void last_error(struct tls_err *err, const char *key, const char *what, const char *file)
{
    unsigned long e, last = 0;
    int sys_errno = 0;
    while ((e = ERR_get_error()) != 0) {
        if (ERR_GET_LIB(e) == ERR_LIB_SYS && !sys_errno)
            sys_errno = ERR_GET_REASON(e);
        last = e;
    }
    char buf[256] = "unknown error";
    if (sys_errno)
        snprintf(buf, sizeof buf, "%s", strerror(sys_errno));
    else if (last)
        ERR_error_string_n(last, buf, sizeof buf);
    set_err(err, key, "%s %s: %s", what, file, buf);
}

int tls_client_trust(X509_STORE *st, const struct config *cfg, struct tls_err *err)
{
    const char *file = cfg->tls_ca_file[0] ? cfg->tls_ca_file : NULL;
    const char *path = cfg->tls_ca_path[0] ? cfg->tls_ca_path : NULL;
    /* Only this call's errors, so that last_error finds its system error and no older one. */
    ERR_clear_error();
    if (file && X509_STORE_load_file(st, file) != 1) {
        last_error(err, "tls_ca_file", "cannot load client CA from", file);
        return -1;
    }
    /* Read now: the front verifies in its chroot, and the certificate checker in a sandbox,
     * where the directory is out of reach. */
    int dir_crls = 0;
    int rc = path ? cadir_load(st, path, &dir_crls) : 0;
    if (rc < 0) {
        set_err(err, "tls_ca_path", "cannot load client CAs from %s: %s", path,
                rc == CADIR_EMPTY ? "no hashed certificate (run openssl rehash)" : strerror(errno));
        return -1;
    }
    /* OpenSSL consults CRLs only when asked to: a CRL put in the directory must not sit there
     * unread while the certificates it revokes log in. */
    if (dir_crls)
        X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    if (cfg->tls_crl_file[0]) {
        X509_LOOKUP *lu = X509_STORE_add_lookup(st, X509_LOOKUP_file());
        if (!lu || X509_load_crl_file(lu, cfg->tls_crl_file, X509_FILETYPE_PEM) < 1) {
            last_error(err, "tls_crl_file", "cannot load CRL", cfg->tls_crl_file);
            return -1;
        }
        X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    }
    X509_STORE_set_purpose(st, X509_PURPOSE_SSL_CLIENT);
    return 0;
}

/* Client certificates: which CAs are trusted, the CRL, how deep a chain may be. */
static int setup_client_verify(SSL_CTX *ctx, const struct config *cfg, struct tls_err *err)
{
    if (tls_client_trust(SSL_CTX_get_cert_store(ctx), cfg, err) < 0)
        return -1;
    if (cfg->tls_ca_file[0]) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_ca_file);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    SSL_CTX_set_verify_depth(ctx, (int)cfg->tls_verify_depth);
    int mode = SSL_VERIFY_PEER;
    if (config_client_cert(cfg) == CLIENT_CERT_REQUIRED)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    return 0;
}

/* OCSP stapling from a response file the admin refreshes (read once per connection). */
static int ocsp_status_cb(SSL *s, void *arg)
{
    const BUF_MEM *resp = arg;
    if (SSL_get_tlsext_status_type(s) != TLSEXT_STATUSTYPE_ocsp || !resp->length)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = OPENSSL_memdup(resp->data, resp->length);
    if (!copy || SSL_set_tlsext_status_ocsp_resp(s, copy, (long)resp->length) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

int tls_staple_ocsp(SSL_CTX *ctx, const char *file, struct tls_err *err)
{
    ERR_clear_error(); /* as in tls_client_trust */
    BIO *in = BIO_new_file(file, "rb");
    BUF_MEM *resp = BUF_MEM_new();
    char chunk[4096];
    int n;
    if (!in || !resp) {
        last_error(err, "tls_ocsp_file", "cannot read OCSP response", file);
        BIO_free(in);
        BUF_MEM_free(resp);
        return -1;
    }
    while ((n = BIO_read(in, chunk, sizeof chunk)) > 0) {
        size_t old = resp->length;
        if (old + (size_t)n > 1024 * 1024 || !BUF_MEM_grow(resp, old + (size_t)n)) {
            set_err(err, "tls_ocsp_file", "OCSP response %s is too large", file);
            BIO_free(in);
            BUF_MEM_free(resp);
            return -1;
        }
        memcpy(resp->data + old, chunk, (size_t)n);
    }
    BIO_free(in);
    /* Check it parses, so -t reports a broken file rather than clients seeing garbage. */
    const unsigned char *p = (const unsigned char *)resp->data;
    OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)resp->length);
    if (!r) {
        last_error(err, "tls_ocsp_file", "not a DER OCSP response:", file);
        BUF_MEM_free(resp);
        return -1;
    }
    OCSP_RESPONSE_free(r);
    SSL_CTX_set_tlsext_status_cb(ctx, ocsp_status_cb);
    SSL_CTX_set_tlsext_status_arg(ctx, resp); /* lives as long as the process */
    return 0;
}

/* While both lists are the defaults, ChaCha20-Poly1305 goes first on a CPU without AES
 * instructions; lists the admin wrote are used as written. */
static bool default_lists(const struct config *cfg)
{
    return strcmp(cfg->tls_ciphersuites, TLS_CIPHERSUITES_DEFAULT) == 0 &&
           strcmp(cfg->tls_ciphers, TLS_CIPHERS_DEFAULT) == 0;
}

const char *tls_cipher_order_text(const struct config *cfg)
{
    if (!default_lists(cfg))
        return "as configured (tls_ciphersuites, tls_ciphers)";
    return cpu_has_aes() ? "AES-GCM first (this CPU has AES instructions)"
                         : "ChaCha20-Poly1305 first (this CPU has no AES instructions)";
}

/* There is no one to ask for a passphrase: stdin is the client's socket, and OpenSSL's default
 * prompt would read the passphrase from it (one guess per connection, and every client hangs
 * before the greeting until it sends a line). */
static int no_passphrase(char *buf, int size, int rwflag, void *asked)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    *(bool *)asked = true;
    return 0;
}

SSL_CTX *tls_server_ctx(const struct config *cfg, const char *cert, const char *key,
                        struct tls_err *err)
{
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL);
    ERR_clear_error(); /* as in tls_client_trust */
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        last_error(err, NULL, "cannot create", "TLS context");
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        last_error(err, "tls_cert_file", "cannot load certificate", cert);
        goto fail;
    }
    bool asked = false;
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &asked);
    int used = SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    if (used != 1 && asked) {
        ERR_clear_error();
        set_err(err, "tls_key_file",
                "cannot load key %s: it is encrypted, and no passphrase can be asked for; store "
                "it unencrypted, readable only by root (openssl pkey -in KEY -out NEWKEY)",
                key);
        goto fail;
    }
    if (used != 1) {
        last_error(err, "tls_key_file", "cannot load key", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        last_error(err, "tls_key_file", "key does not match certificate", key);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, cfg->tls_min_version);
    bool chacha_first = default_lists(cfg) && !cpu_has_aes();
    const char *ciphers = chacha_first ? TLS_CIPHERS_NO_AES : cfg->tls_ciphers;
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        last_error(err, "tls_ciphers", "tls_ciphers: no usable cipher in", cfg->tls_ciphers);
        goto fail;
    }
    const char *suites = chacha_first ? TLS_CIPHERSUITES_NO_AES : cfg->tls_ciphersuites;
    if (SSL_CTX_set_ciphersuites(ctx, suites) != 1) {
        last_error(err, "tls_ciphersuites", "tls_ciphersuites: no usable suite in",
                   cfg->tls_ciphersuites);
        goto fail;
    }
    /* PRIORITIZE_CHACHA: a client that lists ChaCha20-Poly1305 first (one without AES
     * instructions, typically) gets it even where the server's order puts AES-GCM first. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 (cfg->tls_prefer_server_ciphers
                                      ? SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA
                                      : 0));
    if (SSL_CTX_set1_groups_list(ctx, cfg->tls_groups) != 1) {
        last_error(err, "tls_groups", "tls_groups: no usable group in", cfg->tls_groups);
        goto fail;
    }
    if (config_client_cert(cfg) != CLIENT_CERT_NONE && setup_client_verify(ctx, cfg, err) < 0)
        goto fail;
    /* RELEASE_BUFFERS: an idle control connection holds no 17 KiB record buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Stateless tickets (the default) and the server cache, both valid as long as a login;
     * each session process has its own context, hence its own ticket keys. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_timeout(ctx, SESSION_LIFETIME);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ftpsd", 5);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void tls_error_text(SSL *ssl, int ret, char *buf, size_t len)
{
    int e = ssl ? SSL_get_error(ssl, ret) : SSL_ERROR_SSL;
    unsigned long code = ERR_peek_last_error();
    if (code) {
        char tmp[256];
        ERR_error_string_n(code, tmp, sizeof tmp);
        /* "error:0A00010B:SSL routines::wrong version number" -> keep the reason. */
        const char *r = strrchr(tmp, ':');
        snprintf(buf, len, "%s", r && r[1] ? r + 1 : tmp);
    } else if (e == SSL_ERROR_SYSCALL) {
        snprintf(buf, len, "%s", errno ? strerror(errno) : "connection closed by peer");
    } else if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(buf, len, "peer closed the TLS session");
    } else {
        snprintf(buf, len, "TLS error %d", e);
    }
    ERR_clear_error();
}

void tls_describe(SSL *ssl, char *buf, size_t len)
{
    snprintf(buf, len, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}

int tls_check_data_session(SSL *data, const unsigned char *sid_ctx, bool require_reuse, char *why,
                           size_t whylen)
{
    if (!require_reuse)
        return 0;
    if (!SSL_session_reused(data)) {
        snprintf(why, whylen,
                 "Data connection must resume the TLS session of the control "
                 "connection (TLS session reuse required)");
        return -1;
    }
    /* OpenSSL only resumes a session whose id context matches the one set on this SSL, but the
     * identity is checked again here rather than trusted to that side effect. */
    unsigned int n = 0;
    const unsigned char *ctx = SSL_SESSION_get0_id_context(SSL_get0_session(data), &n);
    if (n != TLS_SID_CTX_LEN || CRYPTO_memcmp(ctx, sid_ctx, n) != 0) {
        snprintf(why, whylen,
                 "Data connection resumed a TLS session of another control "
                 "connection; refused");
        return -1;
    }
    return 0;
}
