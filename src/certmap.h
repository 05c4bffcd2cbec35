/* Client certificate to local user mapping (RFC 4217 section 12.2: USER with a client
 * certificate), read from the file named by cert_map_file.
 *
 * The map file has one rule per line. Blank lines and lines whose first non-blank character is
 * '#' are ignored. Rules are tried in file order and the first one that matches decides.
 *
 *     [issuer "DN"] KIND PATTERN USER
 *
 * Fields are separated by spaces or tabs.
 *
 * issuer "DN"
 *     Optional. The rule applies only to certificates whose issuer DN is exactly DN (a
 *     byte-for-byte, case-sensitive comparison).
 *
 * KIND
 *     subject   the certificate's subject DN;
 *     email     each subjectAltName rfc822Name, in the order of the certificate;
 *     upn       each subjectAltName otherName Microsoft UPN, in the order of the certificate.
 *
 * PATTERN
 *     "string"  the value must equal string exactly (for subject: the whole DN).
 *     /regex/   a POSIX extended regular expression that must match the whole value, not a
 *               part of it: it is used as ^(regex)$. Case matters.
 *
 * USER
 *     The local user name. \1 to \9 are replaced by what the regex's groups matched (a group
 *     that took no part in the match gives an empty string); every other character is taken as
 *     it is. If the resulting name is empty, longer than 255 bytes, "." or "..", or contains
 *     '/', ':', a blank or a control character, the rule does not match that value and the next
 *     value or rule is tried.
 *
 * Quoting: inside "...", \" is a double quote and \\ a backslash; no other backslash escape is
 * allowed, so the escapes of a DN are doubled ("CN=Doe\\, John,O=Example"). Inside /.../, \/ is
 * a '/'; every other backslash pair is passed to the regex unchanged (\. a literal dot, \\ a
 * backslash). A ')' without its '(' must be written \). Inside a regex, \1 to \8 refer to the
 * regex's own groups.
 *
 * DNs are in RFC 2253 form as OpenSSL prints them (XN_FLAG_RFC2253), most specific RDN first:
 *     CN=alice,OU=Students,O=Example University,C=US
 * `openssl x509 -in cert.pem -noout -subject -issuer -nameopt RFC2253` prints them this way.
 *
 * Lines are at most 4096 bytes, the file at most 1 MiB. Examples:
 *
 *     # staff certificates name the account directly
 *     subject "CN=Alice Smith,OU=Staff,O=Example University,C=US" asmith
 *     # students: the CN is the account, but only from the university's own CA
 *     issuer "CN=Student CA,O=Example,C=US" subject /CN=([a-z0-9]+),OU=Students,O=Example,C=US/ \1
 *     email /(.*)@students\.example\.edu/ \1
 *     upn /([a-z]+)\.([a-z]+)@AD\.EXAMPLE\.EDU/ \1-\2
 */
#ifndef FTPSD_CERTMAP_H
#define FTPSD_CERTMAP_H

#include <stddef.h>

struct certmap;

/* What the TLS layer extracts from a client certificate. Any pointer may be NULL. */
struct cert_ids {
    const char *subject; /* RFC 2253 subject DN */
    const char *issuer;  /* RFC 2253 issuer DN */
    const char *const *emails;
    size_t nemails; /* SAN rfc822Name values */
    const char *const *upns;
    size_t nupns; /* SAN otherName UPN values */
};

/* Parses map text (NULL is empty text); name is used in messages "name:line: what". Every error
 * is reported through errfn (may be NULL); if there was any, returns NULL. */
struct certmap *certmap_parse(const char *text, const char *name, void (*errfn)(const char *msg));
/* Reads and parses a file of at most 1 MiB; errors as for certmap_parse, and "path: cannot
 * open: why", ... for the file itself. */
struct certmap *certmap_load(const char *path, void (*errfn)(const char *msg));
/* The first matching rule: writes the user name to user (cap bytes, NUL included) and returns
 * the rule's line number (from 1). Returns 0, user "", when no rule matches. A name that does not
 * fit in cap counts as invalid, never truncated: give at least 256 bytes. */
unsigned certmap_lookup(const struct certmap *m, const struct cert_ids *ids, char *user,
                        size_t cap);
size_t certmap_rule_count(const struct certmap *m);
void certmap_free(struct certmap *m);

#endif
