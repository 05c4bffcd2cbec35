/*
 * The monitor's own check of the client certificate chain a front passes on with a login. The
 * chain is client bytes: it is parsed and verified in a child of the monitor that runs as
 * nopriv_user, in empty_dir, under the workers' seccomp filter, and sends back only what the
 * certificate says (certid), so the monitor itself never parses client bytes.
 */
#ifndef FTPSD_CERTCHECK_H
#define FTPSD_CERTCHECK_H

#include "certid.h"
#include "session_info.h"

/* 0 with id filled, or -1 with why. */
int certcheck_verify(const struct session_info *si, const unsigned char *const *der,
                     const size_t *len, size_t n, struct certid *id, char *why, size_t whylen);

#endif
