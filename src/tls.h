/* OpenSSL server context, TLS policy, and the binding of data connections to the control one. */
#ifndef FTPSD_TLS_H
#define FTPSD_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define TLS_SID_CTX_LEN 32

/* The TLS cipher order in use, in words, for ftpsd -t. */
const char *tls_cipher_order_text(const struct config *cfg);

/* Builds a server context from the configuration and one certificate/key pair (checked to
 * match): protocol floor, ciphers, session cache and tickets, ALPN. NULL with a reason in err. */
SSL_CTX *tls_server_ctx(const struct config *cfg, const char *cert, const char *key, char *err,
                        size_t errlen);
/* Staples the DER OCSP response in file (tls_ocsp_file) to ctx's handshakes: the main
 * certificate's only, since the response names one certificate. 0, or -1 with err. */
int tls_staple_ocsp(SSL_CTX *ctx, const char *file, char *err, size_t errlen);
/* Fills st with the client CAs (tls_ca_file, and tls_ca_path read whole) and the CRL, for TLS
 * client use: the front's handshakes and the monitor's certificate checker. 0, or -1 with err. */
int tls_client_trust(X509_STORE *st, const struct config *cfg, char *err, size_t errlen);
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
