/* Linux-PAM in the monitor: authentication, account checks, credentials and the session. */
#ifndef FTPSD_PAMAUTH_H
#define FTPSD_PAMAUTH_H

#include <security/pam_appl.h>
#include <stdbool.h>

#include "util.h"

enum pam_outcome {
    PAMAUTH_OK = 0,
    PAMAUTH_BAD_LOGIN,   /* wrong password or unknown user */
    PAMAUTH_EXPIRED_PW,  /* the password must be changed first */
    PAMAUTH_ACCT_DENIED, /* expired or locked account, pam_access/pam_time refusal */
    PAMAUTH_ERROR,       /* PAM itself failed (configuration, session module) */
    PAMAUTH_BUSY,        /* not PAM's: the account has as many sessions as it may */
};

/* What the conversation answers with. It lives as long as the handle: session modules may
 * talk at pam_close_session, long after the login (pam_exec with stdout does). */
struct pamauth_conv {
    char user[256];
    const char *password; /* during pamauth_login only */
    unsigned passwords_given;
    struct sbuf *msgs; /* during pamauth_login only; later messages reach no client */
};

struct pamauth {
    pam_handle_t *pamh;
    bool cred_set;
    bool session_open;
    char user[256]; /* PAM_USER after authentication (a module may map the name) */
    struct pamauth_conv conv;
};

/*
 * Runs auth and acct_mgmt for user with password, and leaves in pa->user the name PAM settled
 * on (a module may map the one typed to another). A NULL password skips pam_authenticate (the
 * client certificate authenticated the user); the account stage still runs, so expiry,
 * pam_access and pam_time apply. env ("NAME=value", NULL-ended, may be NULL) goes into the PAM
 * environment for the modules. Every PAM_TEXT_INFO and PAM_ERROR_MSG is appended to msgs, one
 * per line, to be relayed as 230-/530- lines. On failure the handle is closed again; on
 * success the caller judges pa->user, then calls pamauth_open_session() or pamauth_close().
 */
enum pam_outcome pamauth_login(struct pamauth *pa, const char *service, const char *user,
                               const char *password, const char *rhost, const char *const *env,
                               struct sbuf *msgs, char *why, size_t whylen);
/* setcred and open_session, for pa->user. On failure the handle is closed again; on success
 * pamauth_close() must be called later. */
enum pam_outcome pamauth_open_session(struct pamauth *pa, char *why, size_t whylen);
/* close_session, setcred(DELETE_CRED), pam_end. */
void pamauth_close(struct pamauth *pa);

#endif
