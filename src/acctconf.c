#include "acctconf.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "util.h"

gid_t *acct_groups(const struct passwd *pw, int *n)
{
    int ng = 64;
    gid_t *g = xmalloc(sizeof(gid_t) * (size_t)ng);
    if (getgrouplist(pw->pw_name, pw->pw_gid, g, &ng) < 0) {
        g = xrealloc(g, sizeof(gid_t) * (size_t)ng);
        if (getgrouplist(pw->pw_name, pw->pw_gid, g, &ng) < 0)
            ng = -1;
    }
    *n = ng;
    return g;
}

const char *acct_guest_problem(const struct passwd *g, uid_t nopriv_uid)
{
    return !g                        ? "does not exist"
           : g->pw_uid == 0          ? "must not be root"
           : g->pw_uid == nopriv_uid ? "must not have nopriv_user's uid"
                                     : NULL;
}

/* 1 if the account is in group name, 0 if not (or no such group), -1 if NSS failed to say. */
static int in_group(const char *name, const gid_t *g, int n)
{
    struct group gr, *res = NULL;
    char buf[16384];
    int e = getgrnam_r(name, &gr, buf, sizeof buf, &res);
    if (!res)
        /* getgrnam_r(3): these mean "no such group" on some systems; others are failures. */
        return e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM ? 0 : -1;
    for (int i = 0; i < n; i++)
        if (g[i] == gr.gr_gid)
            return 1;
    return 0;
}

static void take(const struct acctsect *a, bool *done, struct acct_settings *out)
{
    for (int k = 0; k < ACCT_NKEYS; k++) {
        if (done[k] || !a->line_of[k])
            continue;
        done[k] = true;
        if (k == ACCT_ROOT_DIR)
            out->root_dir = a->root_dir;
        else if (k == ACCT_WRITE_ENABLE)
            out->write_enable = a->write_enable;
        else if (k == ACCT_MAX_RATE)
            out->max_rate = a->max_rate;
        else if (k == ACCT_UMASK)
            out->umask = a->umask;
        else if (k == ACCT_MAX_SESSIONS)
            out->max_sessions = a->max_sessions;
        else if (k == ACCT_DENY_FILE)
            out->deny_file = a->deny_file;
        else if (k == ACCT_HIDE_FILE)
            out->hide_file = a->hide_file;
        else
            out->chmod_enable = a->chmod_enable;
    }
}

int acct_settings(const struct config *c, unsigned vhost, const char *user, const struct passwd *pw,
                  const gid_t *groups, int ngroups, struct acct_settings *out, char *why,
                  size_t whylen)
{
    out->root_dir = config_root_dir(c, vhost);
    out->write_enable = c->write_enable;
    out->max_rate = c->max_rate;
    out->umask = c->umask;
    out->max_sessions = c->max_sessions_per_user;
    out->deny_file = c->deny_file;
    out->hide_file = c->hide_file;
    out->chmod_enable = c->chmod_enable;
    if (c->naccts == 0)
        return 0;
    bool done[ACCT_NKEYS] = {false};
    for (unsigned i = 0; i < c->naccts; i++)
        if (!c->accts[i].group && strcmp(c->accts[i].name, user) == 0)
            take(&c->accts[i], done, out);
    int rc = 0;
    for (unsigned i = 0; i < c->naccts && rc == 0; i++) {
        const struct acctsect *a = &c->accts[i];
        bool matters = false;
        for (int k = 0; k < ACCT_NKEYS; k++)
            matters |= a->line_of[k] && !done[k];
        if (!a->group || !matters)
            continue;
        int in = ngroups < 0 ? -1 : in_group(a->name, groups, ngroups);
        if (in < 0) {
            /* A section may take rights away: without an answer the login does not go on
             * with the main settings (a directory service that is down). */
            snprintf(why, whylen, "cannot tell whether %s is in group %s (NSS failed)", pw->pw_name,
                     a->name);
            rc = -1;
        } else if (in) {
            take(a, done, out);
        }
    }
    return rc;
}
