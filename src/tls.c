#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

/* A week: the longest TLS 1.3 ticket lifetime (RFC 8446 §4.6.1). A data connection must be able
 * to resume the control session however long the login lasts. */
#define SESSION_LIFETIME (7 * 24 * 3600)

static bool alpn_may_be_ftp(const unsigned char *id, unsigned len)
{
    static const char *const known_non_ftp[] = {
        "http/0.9", "http/1.0", "http/1.1", "h2", "h2c", "h3", "spdy/1", "spdy/2", "spdy/3",
        "imap",     "pop3",     "smtp",     "managesieve", "xmpp-client", "xmpp-server",
        "irc",      "coap",     "mqtt",     "sip/2",  "dot",   "acme-tls/1", "postgresql", "ldap"};
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

static void last_error(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s %s: %s", what, file, buf);
    ERR_clear_error();
}

SSL_CTX *tls_server_ctx(const struct config *cfg, const char *cert, const char *key, char *err,
                        size_t errlen)
{
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        last_error(err, errlen, "cannot create", "TLS context");
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        last_error(err, errlen, "cannot load certificate", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        last_error(err, errlen, "cannot load key", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        last_error(err, errlen, "key does not match certificate", key);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, cfg->tls_min_version);
    if (SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
        last_error(err, errlen, "tls_ciphers: no usable cipher in", cfg->tls_ciphers);
        goto fail;
    }
    if (SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites) != 1) {
        last_error(err, errlen, "tls_ciphersuites: no usable suite in", cfg->tls_ciphersuites);
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
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
        snprintf(why, whylen, "Data connection must resume the TLS session of the control "
                              "connection (TLS session reuse required)");
        return -1;
    }
    /* OpenSSL only resumes a session whose id context matches the one set on this SSL, but the
     * identity is checked again here rather than trusted to that side effect. */
    unsigned int n = 0;
    const unsigned char *ctx = SSL_SESSION_get0_id_context(SSL_get0_session(data), &n);
    if (n != TLS_SID_CTX_LEN || CRYPTO_memcmp(ctx, sid_ctx, n) != 0) {
        snprintf(why, whylen, "Data connection resumed a TLS session of another control "
                              "connection; refused");
        return -1;
    }
    return 0;
}
