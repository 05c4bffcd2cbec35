#include "certid.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "tls.h"
#include "util.h"

static void name_rfc2253(X509_NAME *n, char *out, size_t cap)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return;
    /* A DN that does not fit is left out whole: a cut one could match a rule meant for
     * another name, and never equals what openssl prints. */
    if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0 && BIO_pending(b) < (int)cap) {
        int len = BIO_read(b, out, (int)cap - 1);
        out[len > 0 ? len : 0] = '\0';
    }
    BIO_free(b);
}

static void add_name(char **v, size_t *n, const unsigned char *s, int len)
{
    /* Values with NUL or control bytes cannot be honest names: skip them. */
    if (*n >= CERTID_MAX_NAMES || len <= 0 || len > 255)
        return;
    for (int i = 0; i < len; i++)
        if (is_ctl_byte(s[i]))
            return;
    char *c = xmalloc((size_t)len + 1);
    memcpy(c, s, (size_t)len);
    c[len] = '\0';
    v[(*n)++] = c;
}

void certid_from_x509(X509 *x, struct certid *id)
{
    memset(id, 0, sizeof *id);
    name_rfc2253(X509_get_subject_name(x), id->subject, sizeof id->subject);
    name_rfc2253(X509_get_issuer_name(x), id->issuer, sizeof id->issuer);
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_EMAIL) {
            add_name(id->emails, &id->nemails, ASN1_STRING_get0_data(g->d.rfc822Name),
                     ASN1_STRING_length(g->d.rfc822Name));
        } else if (g->type == GEN_OTHERNAME && OBJ_obj2nid(g->d.otherName->type_id) == NID_ms_upn &&
                   g->d.otherName->value->type == V_ASN1_UTF8STRING) {
            ASN1_UTF8STRING *u = g->d.otherName->value->value.utf8string;
            add_name(id->upns, &id->nupns, ASN1_STRING_get0_data(u), ASN1_STRING_length(u));
        }
    }
    GENERAL_NAMES_free(gens);
}

void certid_free(struct certid *id)
{
    for (size_t i = 0; i < id->nemails; i++)
        free(id->emails[i]);
    for (size_t i = 0; i < id->nupns; i++)
        free(id->upns[i]);
    id->nemails = id->nupns = 0;
}

void certid_view(const struct certid *id, struct cert_ids *view)
{
    view->subject = id->subject[0] ? id->subject : NULL; /* too long (or empty): no rule */
    view->issuer = id->issuer_trusted && id->issuer[0] ? id->issuer : NULL;
    view->emails = (const char *const *)id->emails;
    view->nemails = id->nemails;
    view->upns = (const char *const *)id->upns;
    view->nupns = id->nupns;
}

X509_STORE *certid_store(const struct config *cfg, char *why, size_t whylen)
{
    X509_STORE *store = X509_STORE_new();
    if (!store) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    struct tls_err err;
    if (tls_client_trust(store, cfg, &err) < 0) {
        snprintf(why, whylen, "%s", err.text);
        X509_STORE_free(store);
        return NULL;
    }
    X509_STORE_set_depth(store, (int)cfg->tls_verify_depth);
    return store;
}

/* An issuer rule names a CA, and any trusted CA can sign an intermediate that bears the same
 * name: the issuing certificate must be one the admin configured, not one the client sent. */
static bool issued_by_configured_ca(X509_STORE *store, X509_STORE_CTX *ctx)
{
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    int n = sk_X509_num(chain);
    if (n < 1)
        return false;
    X509 *issuer = sk_X509_value(chain, n > 1 ? 1 : 0);
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *c = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (c && X509_cmp(c, issuer) == 0)
            return true;
    }
    return false;
}

int certid_verify_with(X509_STORE *store, const unsigned char *const *der, const size_t *len,
                       size_t n, struct certid *id, char *why, size_t whylen)
{
    int rc = -1;
    X509 *leaf = NULL;
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (!untrusted || !ctx || n == 0) {
        snprintf(why, whylen, "no certificate");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = der[i];
        X509 *x = d2i_X509(NULL, &p, (long)len[i]);
        if (!x || p != der[i] + len[i]) {
            X509_free(x);
            snprintf(why, whylen, "malformed certificate");
            goto out;
        }
        if (i == 0)
            leaf = x;
        else
            sk_X509_push(untrusted, x);
    }
    if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
        snprintf(why, whylen, "cannot set up verification");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        snprintf(why, whylen, "certificate not accepted: %s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    certid_from_x509(leaf, id);
    id->issuer_trusted = issued_by_configured_ca(store, ctx);
    rc = 0;
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    sk_X509_pop_free(untrusted, X509_free);
    X509_free(leaf);
    return rc;
}
