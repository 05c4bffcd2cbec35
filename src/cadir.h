/* An OpenSSL hashed CA directory (tls_ca_path), read into a store at once. */
#ifndef FTPSD_CADIR_H
#define FTPSD_CADIR_H

#include <openssl/x509.h>

/*
 * Adds the certificates and CRLs of dir's hashed entries ("5f6d13a9.0", "5f6d13a9.r0", as
 * `openssl rehash` makes them) to st. OpenSSL's own directory lookup reads them only while it
 * verifies, which a chrooted or sandboxed process can no longer do. *crls: how many CRL
 * entries were added. 0; -1 with errno when dir cannot be read; CADIR_EMPTY when it holds no
 * hashed certificate (a missing directory is not the same mistake as one never rehashed).
 */
#define CADIR_EMPTY (-2)
int cadir_load(X509_STORE *st, const char *dir, int *crls);

#endif
