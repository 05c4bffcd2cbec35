/* What a client certificate says about its holder, checked again by the monitor. */
#ifndef FTPSD_CERTID_H
#define FTPSD_CERTID_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "certmap.h"
#include "config.h"

#define CERTID_MAX_NAMES 16
/* The client's certificate, tls_verify_depth's most (16) intermediates and the trust anchor. */
#define CERTID_MAX_CHAIN 18

struct certid {
    char subject[4096]; /* RFC 2253; "" when longer (never a truncated DN) */
    char issuer[4096];
    /* The certificate that signed it is one of the configured CA certificates, compared
     * whole: only then may a map rule's issuer name match. */
    bool issuer_trusted;
    char *emails[CERTID_MAX_NAMES];
    size_t nemails;
    char *upns[CERTID_MAX_NAMES];
    size_t nupns;
};

/* Fills id from a certificate: DNs in RFC 2253 form, SAN e-mail addresses and UPNs. */
void certid_from_x509(X509 *x, struct certid *id);
void certid_free(struct certid *id);
/* The view certmap_lookup() takes. */
void certid_view(const struct certid *id, struct cert_ids *view);
/* The configured client CAs and CRL, read at once, for certid_verify_with(); NULL with why. */
X509_STORE *certid_store(const struct config *cfg, char *why, size_t whylen);
/*
 * Verifies a chain (DER certificates, the client's first) against store for TLS client use, as
 * the handshake did, and fills id. 0, or -1 with why. Parses client bytes: the monitor runs it
 * only in a sandboxed child (certcheck.c).
 */
int certid_verify_with(X509_STORE *store, const unsigned char *const *der, const size_t *len,
                       size_t n, struct certid *id, char *why, size_t whylen);

#endif
