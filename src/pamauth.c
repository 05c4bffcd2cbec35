#include "pamauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* PAM's messages become reply lines: a module (pam_exec, pam_motd) may write any amount of
 * any bytes, and the reply must fit one message to the front and stay a reply. */
#define PAM_MSG_LINES 20
#define PAM_MSG_LINE_MAX 400
static const char more_note[] = "(further messages not shown)";

static void add_msg(struct sbuf *msgs, const char *text)
{
    /* One message may hold several lines; each becomes its own reply line. */
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        if (n > 0) {
            size_t lines = msgs->len ? 1 : 0;
            for (size_t i = 0; i < msgs->len; i++)
                lines += msgs->data[i] == '\n';
            if (lines >= PAM_MSG_LINES) {
                size_t nl = strlen(more_note);
                if (msgs->len < nl || strcmp(msgs->data + msgs->len - nl, more_note) != 0) {
                    sbuf_addc(msgs, '\n');
                    sbuf_adds(msgs, more_note);
                }
                return;
            }
            char line[PAM_MSG_LINE_MAX + 1];
            size_t k = n > PAM_MSG_LINE_MAX ? PAM_MSG_LINE_MAX : n;
            memcpy(line, p, k);
            line[k] = '\0';
            text_sanitize(line, '?');
            if (msgs->len)
                sbuf_addc(msgs, '\n');
            sbuf_adds(msgs, line);
        }
        p += n + (p[n] == '\n');
    }
}

static int conversation(int num, const struct pam_message **msg, struct pam_response **resp,
                        void *appdata)
{
    struct pamauth_conv *cd = appdata;
    if (num <= 0 || num > PAM_MAX_NUM_MSG)
        return PAM_CONV_ERR;
    struct pam_response *r = calloc((size_t)num, sizeof *r);
    if (!r)
        return PAM_BUF_ERR;
    int rc = PAM_CONV_ERR;
    for (int i = 0; i < num; i++) {
        switch (msg[i]->msg_style) {
        case PAM_PROMPT_ECHO_OFF:
            /* FTP has one secret per login: the PASS argument answers the first hidden prompt;
             * a second one (OTP, new password) cannot be asked over FTP. */
            if (cd->passwords_given++ > 0 || !cd->password)
                goto drop;
            r[i].resp = strdup(cd->password);
            break;
        case PAM_PROMPT_ECHO_ON:
            r[i].resp = strdup(cd->user);
            break;
        case PAM_TEXT_INFO:
        case PAM_ERROR_MSG:
            if (msg[i]->msg && cd->msgs)
                add_msg(cd->msgs, msg[i]->msg);
            break;
        default:
            goto drop;
        }
        if ((msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON) &&
            !r[i].resp)
            goto drop;
    }
    if (resp) {
        *resp = r;
        return PAM_SUCCESS;
    }
    /* Some modules send pure messages with no response pointer; answers to prompts among them
     * have nowhere to go, and must not stay behind in the monitor's heap. */
    rc = PAM_SUCCESS;
drop:
    /* The responses may hold the password: wiped before they go. */
    for (int i = 0; i < num; i++) {
        if (r[i].resp) {
            explicit_bzero(r[i].resp, strlen(r[i].resp));
            free(r[i].resp);
        }
    }
    free(r);
    return rc;
}

/* The delay after a failure is ftpsd's own (fail_delay_ms), so modules' delays are ignored. */
static void no_fail_delay(int retval, unsigned usec_delay, void *appdata)
{
    (void)retval;
    (void)usec_delay;
    (void)appdata;
}

/* The login is over: the password and the reply lines were the caller's, and go. */
static void conv_done(struct pamauth_conv *c)
{
    c->password = NULL;
    c->passwords_given = 1;
    c->msgs = NULL;
}

enum pam_outcome pamauth_login(struct pamauth *pa, const char *service, const char *user,
                               const char *password, const char *rhost, const char *const *env,
                               struct sbuf *msgs, char *why, size_t whylen)
{
    memset(pa, 0, sizeof *pa);
    /* Without a password, a module that still prompts gets nothing (and fails). */
    snprintf(pa->conv.user, sizeof pa->conv.user, "%s", user);
    pa->conv.password = password ? password : "";
    pa->conv.passwords_given = password ? 0 : 1;
    pa->conv.msgs = msgs;
    struct pam_conv conv = {conversation, &pa->conv}; /* libpam keeps a copy */
    int rc = pam_start(service, user, &conv, &pa->pamh);
    if (rc != PAM_SUCCESS) {
        snprintf(why, whylen, "pam_start(%s): %s", service, pam_strerror(NULL, rc));
        pa->pamh = NULL;
        return PAMAUTH_ERROR;
    }
    pam_set_item(pa->pamh, PAM_RHOST, rhost);
    pam_set_item(pa->pamh, PAM_RUSER, user);
    pam_set_item(pa->pamh, PAM_TTY, "ftp");
    pam_set_item(pa->pamh, PAM_FAIL_DELAY, (const void *)no_fail_delay);
    for (const char *const *e = env; e && *e; e++)
        pam_putenv(pa->pamh, *e);

    enum pam_outcome out = PAMAUTH_OK;
    size_t shown = msgs ? msgs->len : 0;
    rc = password ? pam_authenticate(pa->pamh, PAM_DISALLOW_NULL_AUTHTOK) : PAM_SUCCESS;
    if (rc != PAM_SUCCESS) {
        /* What modules say when authentication fails can differ between an existing account
         * and an unknown one (pam_faillock's "account is locked"), and RFC 2577 §5 asks that
         * the client not learn which names exist: the admin reads it in the log instead. Later
         * stages speak only to a client that gave the right password. */
        if (msgs && msgs->len > shown) {
            for (size_t i = shown; i < msgs->len; i++)
                if (msgs->data[i] == '\n')
                    msgs->data[i] = '|';
            log_msg(LOG_NOTICE, "PAM said (not shown to the client): %s", msgs->data + shown);
            sbuf_truncate(msgs, shown);
        }
        snprintf(why, whylen, "authentication failed: %s", pam_strerror(pa->pamh, rc));
        out = (rc == PAM_ABORT || rc == PAM_BUF_ERR || rc == PAM_SYSTEM_ERR) ? PAMAUTH_ERROR
                                                                             : PAMAUTH_BAD_LOGIN;
        goto fail;
    }
    rc = pam_acct_mgmt(pa->pamh, PAM_DISALLOW_NULL_AUTHTOK);
    if (rc == PAM_NEW_AUTHTOK_REQD) {
        snprintf(why, whylen, "password expired");
        out = PAMAUTH_EXPIRED_PW;
        goto fail;
    }
    if (rc != PAM_SUCCESS) {
        snprintf(why, whylen, "account refused: %s", pam_strerror(pa->pamh, rc));
        out = PAMAUTH_ACCT_DENIED;
        goto fail;
    }
    const void *item = NULL;
    if (pam_get_item(pa->pamh, PAM_USER, &item) == PAM_SUCCESS && item)
        snprintf(pa->user, sizeof pa->user, "%s", (const char *)item);
    else
        snprintf(pa->user, sizeof pa->user, "%s", user);
    return PAMAUTH_OK;
fail:
    pamauth_close(pa);
    return out;
}

enum pam_outcome pamauth_open_session(struct pamauth *pa, char *why, size_t whylen)
{
    enum pam_outcome out = PAMAUTH_ERROR;
    int rc = pam_setcred(pa->pamh, PAM_ESTABLISH_CRED);
    if (rc != PAM_SUCCESS) {
        snprintf(why, whylen, "pam_setcred: %s", pam_strerror(pa->pamh, rc));
        goto fail;
    }
    pa->cred_set = true;
    rc = pam_open_session(pa->pamh, 0);
    if (rc != PAM_SUCCESS) {
        snprintf(why, whylen, "pam_open_session: %s", pam_strerror(pa->pamh, rc));
        goto fail;
    }
    pa->session_open = true;
    /* The session modules have had the token (pam_mount and the like unlock with it); libpam
     * overwrites it now, as the handle stays open and the user process is forked from here. */
    pam_set_item(pa->pamh, PAM_AUTHTOK, NULL);
    conv_done(&pa->conv);
    return PAMAUTH_OK;
fail:
    pamauth_close(pa);
    return out;
}

void pamauth_close(struct pamauth *pa)
{
    /* Closed after the login without a session: the caller's password and lines go too. */
    conv_done(&pa->conv);
    if (!pa->pamh)
        return;
    int rc = PAM_SUCCESS;
    if (pa->session_open)
        rc = pam_close_session(pa->pamh, 0);
    if (pa->cred_set)
        pam_setcred(pa->pamh, PAM_DELETE_CRED);
    pam_end(pa->pamh, rc);
    pa->pamh = NULL;
    pa->session_open = pa->cred_set = false;
}
