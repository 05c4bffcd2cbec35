/* Directory listing formats: LIST (ls -l), NLST (names) and MLSD/MLST facts (RFC 3659 §7). */
#ifndef FTPSD_LISTING_H
#define FTPSD_LISTING_H

#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

enum mlst_fact {
    FACT_TYPE = 1u << 0,
    FACT_SIZE = 1u << 1,
    FACT_MODIFY = 1u << 2,
    FACT_PERM = 1u << 3,
    FACT_UNIQUE = 1u << 4,
    FACT_UNIX_MODE = 1u << 5,
    FACT_UNIX_OWNER = 1u << 6,
    FACT_UNIX_GROUP = 1u << 7,
};
#define FACT_ALL 0xffu
#define FACT_DEFAULT FACT_ALL

/* Parses an OPTS MLST fact list ("type;size;"); unknown facts are dropped. -1 on syntax error. */
int mlst_parse_facts(const char *list, unsigned *facts);
/* The FEAT line body: "type*;size*;...;" with '*' on the selected facts. */
void mlst_feat_line(struct sbuf *out, unsigned facts);
/* "type;size;" of the selected facts, for the OPTS MLST reply. */
void mlst_selected(struct sbuf *out, unsigned facts);

/* Names for numeric ids, gathered before chroot (nothing is looked up afterwards). */
struct idname {
    unsigned id;
    char name[33];
};
struct idmap {
    struct idname *users;
    size_t nusers;
    struct idname *groups;
    size_t ngroups;
};
const char *idmap_user(const struct idmap *m, unsigned uid, char *buf, size_t cap);
const char *idmap_group(const struct idmap *m, unsigned gid, char *buf, size_t cap);

struct listent {
    const char *name; /* as shown: a bare name, or the argument for a single file */
    struct stat st;
    const char *target; /* symlink target, or NULL */
};

/* One "ls -l" line with CRLF: mode nlink owner group size date name [-> target]. */
void list_format_ls(struct sbuf *out, const struct listent *e, const struct idmap *ids, time_t now);
/* "fact=value;...; name" with CRLF (no leading space: MLST adds it). type: NULL = from st.
 * A NULL e->name writes only the facts ("fact=value;...;"), for MLST. */
void list_format_mlsx(struct sbuf *out, const struct listent *e, unsigned facts, const char *type,
                      const char *perm, const struct idmap *ids);
/* "YYYYMMDDHHMMSS" in UTC. */
void format_mdtm(char *buf, size_t cap, time_t t);

#endif
