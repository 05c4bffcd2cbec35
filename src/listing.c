#include "listing.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

static const struct {
    const char *name;
    unsigned bit;
} fact_names[] = {
    {"type", FACT_TYPE},
    {"size", FACT_SIZE},
    {"modify", FACT_MODIFY},
    {"perm", FACT_PERM},
    {"unique", FACT_UNIQUE},
    {"unix.mode", FACT_UNIX_MODE},
    {"unix.owner", FACT_UNIX_OWNER},
    {"unix.group", FACT_UNIX_GROUP},
};

int mlst_parse_facts(const char *list, unsigned *facts)
{
    unsigned f = 0;
    const char *p = list;
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        if (n == 0 || memchr(p, ' ', n) || memchr(p, '=', n))
            return -1;
        for (size_t i = 0; i < ARRAY_LEN(fact_names); i++)
            if (strlen(fact_names[i].name) == n && strncasecmp(fact_names[i].name, p, n) == 0)
                f |= fact_names[i].bit;
        p += n;
        if (*p == ';')
            p++;
    }
    *facts = f;
    return 0;
}

void mlst_feat_line(struct sbuf *out, unsigned facts)
{
    for (size_t i = 0; i < ARRAY_LEN(fact_names); i++)
        sbuf_printf(out, "%s%s;", fact_names[i].name, (facts & fact_names[i].bit) ? "*" : "");
}

void mlst_selected(struct sbuf *out, unsigned facts)
{
    for (size_t i = 0; i < ARRAY_LEN(fact_names); i++)
        if (facts & fact_names[i].bit)
            sbuf_printf(out, "%s;", fact_names[i].name);
}

/* A directory service (LDAP, sssd) may hand back any bytes as a group name; one with a control
 * character (a CR or LF would split the LIST line in two) is shown as its number instead. */
static bool printable_name(const char *s)
{
    for (; *s; s++)
        if (is_ctl_byte((unsigned char)*s))
            return false;
    return true;
}

static const char *lookup(const struct idname *v, size_t n, unsigned id, char *buf, size_t cap)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].id == id && printable_name(v[i].name))
            return v[i].name;
    snprintf(buf, cap, "%u", id);
    return buf;
}

const char *idmap_user(const struct idmap *m, unsigned uid, char *buf, size_t cap)
{
    return lookup(m ? m->users : NULL, m ? m->nusers : 0, uid, buf, cap);
}

const char *idmap_group(const struct idmap *m, unsigned gid, char *buf, size_t cap)
{
    return lookup(m ? m->groups : NULL, m ? m->ngroups : 0, gid, buf, cap);
}

static char type_char(mode_t m)
{
    switch (m & S_IFMT) {
    case S_IFDIR:
        return 'd';
    case S_IFLNK:
        return 'l';
    case S_IFCHR:
        return 'c';
    case S_IFBLK:
        return 'b';
    case S_IFIFO:
        return 'p';
    case S_IFSOCK:
        return 's';
    default:
        return '-';
    }
}

static void mode_string(char s[11], mode_t m)
{
    s[0] = type_char(m);
    const char *rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; i++)
        s[1 + i] = (m & (1u << (8 - i))) ? rwx[i] : '-';
    if (m & S_ISUID)
        s[3] = (m & S_IXUSR) ? 's' : 'S';
    if (m & S_ISGID)
        s[6] = (m & S_IXGRP) ? 's' : 'S';
    if (m & S_ISVTX)
        s[9] = (m & S_IXOTH) ? 't' : 'T';
    s[10] = '\0';
}

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Years 0000..9999: the range MDTM's YYYYMMDDHHMMSS can carry. A file system may keep any 64-bit
 * mtime (tmpfs, btrfs), and gmtime_r fails or gives a year that overflows int beyond it, so times
 * are clamped into it first; the clamped value also keeps "now - t" from overflowing. */
static time_t clamp_time(time_t t)
{
    const time_t first = -62167219200LL; /* 0000-01-01T00:00:00Z */
    const time_t last = 253402300799LL;  /* 9999-12-31T23:59:59Z */
    return t < first ? first : t > last ? last : t;
}

static void utc_tm(time_t t, struct tm *tm)
{
    t = clamp_time(t);
    if (!gmtime_r(&t, tm)) /* cannot happen inside the clamp; keep the fields defined anyway */
        *tm = (struct tm){.tm_year = 70, .tm_mday = 1};
}

void list_format_ls(struct sbuf *out, const struct listent *e, const struct idmap *ids, time_t now)
{
    char mode[11], ub[16], gb[16];
    mode_string(mode, e->st.st_mode);
    struct tm tm;
    time_t t = clamp_time(e->st.st_mtime);
    now = clamp_time(now);
    utc_tm(t, &tm);
    /* ls(1): times within six months in the past show the clock, others the year. */
    const time_t half_year = 182 * 24 * 3600;
    char date[20];
    if (t <= now + 3600 && now - t < half_year)
        snprintf(date, sizeof date, "%s %02d %02d:%02d", months[tm.tm_mon], tm.tm_mday, tm.tm_hour,
                 tm.tm_min);
    else
        snprintf(date, sizeof date, "%s %02d  %4d", months[tm.tm_mon], tm.tm_mday,
                 tm.tm_year + 1900);
    sbuf_printf(out, "%s %4lu %-8s %-8s %8llu %s %s", mode, (unsigned long)e->st.st_nlink,
                idmap_user(ids, e->st.st_uid, ub, sizeof ub),
                idmap_group(ids, e->st.st_gid, gb, sizeof gb), (unsigned long long)e->st.st_size,
                date, e->name);
    if (e->target && !strpbrk(e->target, "\r\n"))
        sbuf_printf(out, " -> %s", e->target);
    sbuf_adds(out, "\r\n");
}

void format_mdtm(char *buf, size_t cap, time_t t)
{
    struct tm tm;
    utc_tm(t, &tm);
    snprintf(buf, cap, "%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void list_format_mlsx(struct sbuf *out, const struct listent *e, unsigned facts, const char *type,
                      const char *perm, const struct idmap *ids)
{
    const struct stat *st = &e->st;
    (void)ids;
    if (facts & FACT_TYPE) {
        if (type)
            sbuf_printf(out, "type=%s;", type);
        else if (S_ISDIR(st->st_mode))
            sbuf_adds(out, "type=dir;");
        else if (S_ISREG(st->st_mode))
            sbuf_adds(out, "type=file;");
        else if (S_ISLNK(st->st_mode) && e->target && !strpbrk(e->target, "; \r\n"))
            sbuf_printf(out, "type=OS.unix=slink:%s;", e->target);
        else
            sbuf_printf(out, "type=OS.unix=%s;",
                        S_ISCHR(st->st_mode)    ? "chr"
                        : S_ISBLK(st->st_mode)  ? "blk"
                        : S_ISFIFO(st->st_mode) ? "fifo"
                        : S_ISSOCK(st->st_mode) ? "socket"
                        : S_ISLNK(st->st_mode)  ? "symlink"
                                                : "other");
    }
    if ((facts & FACT_SIZE) && !S_ISDIR(st->st_mode))
        sbuf_printf(out, "size=%llu;", (unsigned long long)st->st_size);
    if (facts & FACT_MODIFY) {
        char t[20];
        format_mdtm(t, sizeof t, st->st_mtime);
        sbuf_printf(out, "modify=%s;", t);
    }
    if ((facts & FACT_PERM) && perm)
        sbuf_printf(out, "perm=%s;", perm);
    if (facts & FACT_UNIQUE)
        sbuf_printf(out, "unique=%llxg%llx;", (unsigned long long)st->st_dev,
                    (unsigned long long)st->st_ino);
    if (facts & FACT_UNIX_MODE)
        sbuf_printf(out, "unix.mode=0%o;", (unsigned)(st->st_mode & 07777));
    if (facts & FACT_UNIX_OWNER)
        sbuf_printf(out, "unix.owner=%u;", (unsigned)st->st_uid);
    if (facts & FACT_UNIX_GROUP)
        sbuf_printf(out, "unix.group=%u;", (unsigned)st->st_gid);
    if (e->name)
        sbuf_printf(out, " %s\r\n", e->name);
}
