#include "cadir.h"

#include <dirent.h>
#include <openssl/err.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* "<8 hex digits>.<n>" for a certificate, ".r<n>" for a CRL: what X509_LOOKUP_hash_dir reads.
 * 0: neither, 1: a certificate, 2: a CRL. */
static int hashed_name(const char *n)
{
    if (strspn(n, "0123456789abcdef") != 8 || n[8] != '.')
        return 0;
    const char *p = n + 9;
    bool crl = *p == 'r';
    if (crl)
        p++;
    if (!*p || strspn(p, "0123456789") != strlen(p))
        return 0;
    return crl ? 2 : 1;
}

int cadir_load(X509_STORE *st, const char *dir, int *crls)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int loaded = 0;
    *crls = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int kind = hashed_name(e->d_name);
        if (!kind)
            continue;
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path)
            continue;
        /* PEM with certificates, CRLs or both; one that does not parse is left out, as the
         * lookup would leave it. */
        if (X509_STORE_load_file(st, path) == 1) {
            loaded++;
            *crls += kind == 2;
        }
        ERR_clear_error();
    }
    closedir(d);
    return loaded ? 0 : CADIR_EMPTY;
}
