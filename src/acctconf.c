#include "acctconf.h"

#include <grp.h>
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
            ng = 0;
    }
    *n = ng;
    return g;
}

static bool in_group(const char *name, const gid_t *g, int n)
{
    struct group *gr = getgrnam(name);
    if (!gr)
        return false;
    for (int i = 0; i < n; i++)
        if (g[i] == gr->gr_gid)
            return true;
    return false;
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
        else
            out->max_rate = a->max_rate;
    }
}

void acct_settings(const struct config *c, unsigned vhost, const struct passwd *pw,
                   struct acct_settings *out)
{
    out->root_dir = config_root_dir(c, vhost);
    out->write_enable = c->write_enable;
    out->max_rate = c->max_rate;
    if (c->naccts == 0)
        return;
    bool done[ACCT_NKEYS] = {false};
    for (unsigned i = 0; i < c->naccts; i++)
        if (!c->accts[i].group && strcmp(c->accts[i].name, pw->pw_name) == 0)
            take(&c->accts[i], done, out);
    int n = 0;
    gid_t *g = NULL;
    for (unsigned i = 0; i < c->naccts; i++) {
        if (!c->accts[i].group)
            continue;
        if (!g)
            g = acct_groups(pw, &n);
        if (in_group(c->accts[i].name, g, n))
            take(&c->accts[i], done, out);
    }
    free(g);
}
