/* What [user NAME] and [group NAME] sections of ftpsd.conf give a logged-in account. */
#ifndef FTPSD_ACCTCONF_H
#define FTPSD_ACCTCONF_H

#include <pwd.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

struct acct_settings {
    const char *root_dir; /* root_dir setting ("" = home), %u not yet expanded */
    bool write_enable;
    uint64_t max_rate;                 /* bytes per second per transfer, 0: no limit */
    unsigned umask;                    /* for what the user process creates */
    unsigned max_sessions;             /* at once, 0: no limit */
    const char *deny_file, *hide_file; /* pattern lists (namefilter.h), "" for none */
    bool chmod_enable;                 /* SITE CHMOD (where it may write) */
};

/* The account's groups, primary first, as NSS lists them now; *n of them, -1 when NSS fails.
 * Freed by the caller. */
gid_t *acct_groups(const struct passwd *pw, int *n);

/* Why g (guest_user's passwd entry, NULL if none) cannot carry virtual users, or NULL: it
 * must exist, not be root, and not share nopriv_user's uid (the front could then signal the
 * user process). ftpsd -t and the monitor judge it alike. */
const char *acct_guest_problem(const struct passwd *g, uid_t nopriv_uid);

/*
 * Each setting from the [user] section of user (the account's name, or a virtual user's, who
 * runs as the account pw: guest_user) if it sets it; else from the first [group] section, in
 * the file's order, that names one of the account's groups (groups: ngroups of them from
 * acct_groups, -1 when NSS failed) and sets it; else the [host] section's (root_dir) or the main
 * one. Anonymous FTP has its own keys and takes none of these. -1 with why when NSS fails
 * to say whether the account is in a [group] section's group that would decide a setting: the
 * login must not go on with what may be wider rights.
 */
int acct_settings(const struct config *c, unsigned vhost, const char *user, const struct passwd *pw,
                  const gid_t *groups, int ngroups, struct acct_settings *out, char *why,
                  size_t whylen);

#endif
