/* OpenSSL server context, TLS policy, and the binding of data connections to the control one. */
#ifndef FTPSD_TLS_H
#define FTPSD_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define TLS_SID_CTX_LEN 32

/* Why a context could not be built, and the configuration key at fault (NULL when none is, as
 * for an out-of-memory failure), so that ftpsd -t can point at the key's line. */
struct tls_err {
    const char *key;
    char text[512];
};

/* The TLS cipher order in use, in words, for ftpsd -t. */
const char *tls_cipher_order_text(const struct config *cfg);

/* Builds a server context from the configuration and one certificate/key pair (checked to
 * match): protocol floor, ciphers, session cache and tickets, ALPN. NULL with err filled. */
SSL_CTX *tls_server_ctx(const struct config *cfg, const char *cert, const char *key,
                        struct tls_err *err);
/* Staples the DER OCSP response in file (tls_ocsp_file) to ctx's handshakes: the main
 * certificate's only, since the response names one certificate. 0, or -1 with err filled. */
int tls_staple_ocsp(SSL_CTX *ctx, const char *file, struct tls_err *err);
/* Fills st with the client CAs (tls_ca_file, and tls_ca_path read whole) and the CRL, for TLS
 * client use: the front's handshakes and the monitor's certificate checker. 0, or -1 with err
 * filled. */
int tls_client_trust(X509_STORE *st, const struct config *cfg, struct tls_err *err);
/* Reason for the last failure of an SSL call, for logs and 522 texts. */
void tls_error_text(SSL *ssl, int ret, char *buf, size_t len);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" */
void tls_describe(SSL *ssl, char *buf, size_t len);
/*
 * After a data handshake: accepts only a resumption of a session issued on this control
 * connection (its random session id context), when require_reuse is set. 0 or -1 with why.
 */
int tls_check_data_session(SSL *data, const unsigned char *sid_ctx, bool require_reuse, char *why,
                           size_t whylen);

#endif
