/* LIST, NLST, MLSD (into a memory file the worker sends) and MLST (on the control line). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "listing.h"
#include "session.h"
#include "uops.h"

struct entry {
    const char *name;
    struct stat st;
    const char *target;
};

/* name "" asks about dfd itself (an object already resolved inside the root). */
static bool can(int dfd, const char *name, int mode)
{
    return faccessat(dfd, name, mode,
                     AT_EACCESS | AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH)) == 0;
}

/* RFC 3659 §7.5.5: what this user may really do with the object. */
static void perm_fact(const struct usess *s, int dfd, const char *name, const struct stat *st,
                      bool parent_writable, char out[16])
{
    bool w = s->write_enable;
    size_t n = 0;
    if (S_ISDIR(st->st_mode)) {
        bool dw = w && can(dfd, name, W_OK | X_OK);
        if (dw)
            out[n++] = 'c';
        if (w && parent_writable)
            out[n++] = 'd';
        if (can(dfd, name, X_OK))
            out[n++] = 'e';
        if (w && parent_writable)
            out[n++] = 'f';
        if (can(dfd, name, R_OK))
            out[n++] = 'l';
        if (dw) {
            out[n++] = 'm';
            out[n++] = 'p';
        }
    } else {
        bool fw = w && can(dfd, name, W_OK);
        if (fw)
            out[n++] = 'a';
        if (w && parent_writable) {
            out[n++] = 'd';
            out[n++] = 'f';
        }
        if (can(dfd, name, R_OK))
            out[n++] = 'r';
        if (fw)
            out[n++] = 'w';
    }
    out[n] = '\0';
}

/* A directory's names, sorted, back to back in one buffer: nothing else is kept per entry (each
 * is stat'ed as its line is written), so that a big directory costs its names and not a stat
 * buffer and an allocation each. */
struct names {
    char *buf;
    size_t len, cap;
    size_t *off;
    size_t n, ncap;
};

static int name_cmp(const void *a, const void *b, void *buf)
{
    return strcmp((const char *)buf + *(const size_t *)a, (const char *)buf + *(const size_t *)b);
}

static const char *name_at(const struct names *v, size_t i)
{
    return v->buf + v->off[i];
}

static void names_add(struct names *v, const char *nm)
{
    size_t l = strlen(nm) + 1;
    if (v->len + l > v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4096;
        if (v->cap < v->len + l)
            v->cap = v->len + l;
        v->buf = xrealloc(v->buf, v->cap);
    }
    if (v->n == v->ncap) {
        v->ncap = v->ncap ? v->ncap * 2 : 64;
        v->off = xrealloc(v->off, v->ncap * sizeof *v->off);
    }
    memcpy(v->buf + v->len, nm, l);
    v->off[v->n++] = v->len;
    v->len += l;
}

/* A symlink's target into buf, or NULL (not a link, or unreadable). name "" reads dfd itself. */
static const char *link_target(int dfd, const char *name, const struct stat *st,
                               char buf[VPATH_MAX])
{
    if (!S_ISLNK(st->st_mode))
        return NULL;
    ssize_t l = readlinkat(dfd, name, buf, VPATH_MAX - 1);
    if (l < 0)
        return NULL;
    buf[l] = '\0';
    return buf;
}

static void names_free(struct names *v)
{
    free(v->buf);
    free(v->off);
}

/* -1 with errno; -2: more than limit entries (0: no limit) besides . and .. would be listed.
 * Names deny_file or hide_file match are left out. */
static int read_dir(const struct usess *s, int dfd, bool all, const char *pattern, unsigned limit,
                    struct names *v)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    size_t counted = 0;
    for (;;) {
        /* readdir's NULL is also its error: a directory read short (EIO, a stale NFS handle)
         * would be listed as complete, and its missing entries taken for deleted files. */
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de)
            break;
        const char *nm = de->d_name;
        bool dot = strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0;
        if (nm[0] == '.' && !all && !(pattern && pattern[0] == '.'))
            continue;
        if (pattern && (dot || fnmatch(pattern, nm, FNM_PERIOD) != 0))
            continue;
        /* A listing line cannot carry CR or LF; such a name would forge further entries. */
        if (strpbrk(nm, "\r\n"))
            continue;
        if (!dot && sess_hidden(s, nm))
            continue;
        if (!dot && limit && ++counted > limit) {
            closedir(d);
            return -2;
        }
        names_add(v, nm);
    }
    int e = errno;
    closedir(d);
    if (e) {
        errno = e;
        return -1;
    }
    if (v->n > 1)
        qsort_r(v->off, v->n, sizeof *v->off, name_cmp, v->buf);
    return 0;
}

/*
 * Facts of a symlink's target when it resolves inside the root, else of the link itself; the
 * perm fact is worked out on what the name resolves to inside the root, never through a link
 * that points outside it. with_name false leaves the name out (MLST prints the full path).
 */
static void mlsx_line(const struct usess *s, struct sbuf *out, int dfd, const char *dir_vp,
                      struct entry *e, unsigned facts, const char *type, bool parent_w,
                      bool with_name)
{
    struct listent le = {.name = with_name ? e->name : NULL, .st = e->st, .target = e->target};
    char perm[16] = "";
    if (S_ISLNK(e->st.st_mode)) {
        char vp[VPATH_MAX];
        struct stat tst;
        int fd = -1;
        if (vpath_join(dir_vp, e->name, vp, sizeof vp) == 0)
            fd = path_open(s->rootfd, vp, O_PATH, 0);
        if (fd >= 0 && fstat(fd, &tst) == 0) {
            le.st = tst;
            le.target = NULL;
            perm_fact(s, fd, "", &le.st, parent_w, perm);
        }
        if (fd >= 0)
            close(fd);
    } else {
        perm_fact(s, dfd, e->name, &le.st, parent_w, perm);
    }
    list_format_mlsx(out, &le, facts, type, perm, &s->ids);
}

/* STAT path answers on the control connection: the LIST lines inside a 213 reply, of which
 * only this much is kept (well inside one message to the front). */
#define STAT_REPLY_MAX (60 * 1024)
/* The listing text goes to its memory file in pieces of this size. */
#define LISTING_PIECE (256 * 1024)

static void to_reply(struct sbuf *b, const char *what, struct uresp *r)
{
    r->code = 213;
    sbuf_reset(&r->text);
    sbuf_printf(&r->text, "Status of %s:", what);
    for (const char *p = b->data ? b->data : ""; *p;) {
        size_t l = strcspn(p, "\r\n");
        if (r->text.len + l > STAT_REPLY_MAX) {
            sbuf_adds(&r->text, "\n(listing truncated: use LIST for the whole directory)");
            break;
        }
        if (l) {
            sbuf_addc(&r->text, '\n');
            sbuf_add(&r->text, p, l);
        }
        p += l;
        while (*p == '\r' || *p == '\n')
            p++;
    }
    sbuf_adds(&r->text, "\nEnd of status.");
}

/* Where a listing goes: STAT's reply, or a memory file the worker sends, written piece by
 * piece as the listing is made so that its whole text is never in this process's memory. */
struct sink {
    bool stat;
    int fd;
    int err;
    uint64_t size;
    struct sbuf buf;
};

static void sink_open(struct sink *k, bool stat)
{
    *k = (struct sink){.stat = stat, .fd = -1};
    sbuf_init(&k->buf);
}

/* The memory file, made when the first text goes to it: a listing refused before any line
 * (550, 451) makes none. */
static bool sink_file(struct sink *k)
{
    if (k->fd < 0 && !k->err && (k->fd = memfd_create("ftpsd-listing", MFD_CLOEXEC)) < 0)
        k->err = errno;
    return !k->err;
}

/* false: no more lines are wanted (STAT's reply is full, or the memory file failed). */
static bool sink_flush(struct sink *k, size_t at_least)
{
    if (k->stat)
        return k->buf.len <= STAT_REPLY_MAX;
    if (k->err)
        return false;
    if (k->buf.len < at_least || k->buf.len == 0)
        return true;
    if (!sink_file(k))
        return false;
    if (write_full(k->fd, k->buf.data, k->buf.len) < 0) {
        k->err = errno;
        return false;
    }
    k->size += k->buf.len;
    sbuf_reset(&k->buf);
    return true;
}

static void sink_finish(struct sink *k, const char *what, struct uresp *r)
{
    if (k->stat) {
        to_reply(&k->buf, what, r);
    } else if (sink_file(k) && sink_flush(k, 0) && lseek(k->fd, 0, SEEK_SET) == 0) {
        r->fd = k->fd;
        k->fd = -1;
        r->value = k->size;
        r->code = 150;
    } else {
        uresp_set(r, 451, "Cannot build the listing: %s.", strerror(k->err ? k->err : errno));
    }
}

static void sink_close(struct sink *k)
{
    if (k->fd >= 0)
        close(k->fd);
    sbuf_free(&k->buf);
}

/* Whether arg names an entry, so is no "-la"-style word; a denied name names none, or "LIST
 * -name" would tell whether it exists. */
static bool names_entry(struct usess *s, const char *arg)
{
    char vp[VPATH_MAX];
    if (vpath_join(s->cwd, arg, vp, sizeof vp) < 0 || sess_denied(s, vp, NULL, NULL))
        return false;
    int fd = path_open(s->rootfd, vp, O_PATH, 0);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static bool is_symlink(struct usess *s, const char *vp)
{
    struct stat st;
    int fd = path_open(s->rootfd, vp, O_PATH | O_NOFOLLOW, 0);
    bool link = fd >= 0 && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode);
    if (fd >= 0)
        close(fd);
    return link;
}

void cmd_list(struct usess *s, const struct ureq *q, struct uresp *r)
{
    const char *p = q->arg;
    bool all = false, itself = false;
    if (q->op != UOP_MLSD) {
        /* Leading "-la"-style words are ls options, not names; "--" ends them, and what names
         * an existing entry ("-dir", or all the rest, "-my file") is a name. */
        while (*p == '-' && !names_entry(s, p)) {
            size_t n = strcspn(p, " ");
            bool end = n == 2 && p[1] == '-';
            char word[NAME_MAX + 1];
            if (!end && n < sizeof word) {
                memcpy(word, p, n);
                word[n] = '\0';
                if (names_entry(s, word))
                    break;
            }
            if (!end && (memchr(p, 'a', n) || memchr(p, 'A', n)))
                all = true;
            /* ls -d: a directory is listed as itself, not by its contents */
            if (!end && memchr(p, 'd', n))
                itself = true;
            p += n;
            while (*p == ' ')
                p++;
            if (end)
                break;
        }
    }
    char vp[VPATH_MAX];
    if (sess_vpath(s, *p ? p : ".", vp, r) < 0)
        return;
    snprintf(r->name, sizeof r->name, "%s", vp);
    struct sink out;
    sink_open(&out, q->op == UOP_STAT);
    time_t now = time(NULL);
    struct names v = {0};
    int dfd = path_open(s->rootfd, vp, O_PATH | O_DIRECTORY, 0);
    const char *pattern = NULL;
    char parent[VPATH_MAX];
    /* A symlink that leads nowhere (dangling, a loop) is listed as itself, as ls -l does;
     * "link/" asks for the directory it leads to. */
    int e0 = errno;
    size_t plen = strlen(p);
    bool link_only =
        dfd < 0 && (e0 == ENOENT || e0 == ELOOP) && plen && p[plen - 1] != '/' && is_symlink(s, vp);
    errno = e0;
    if ((itself && dfd >= 0) || (dfd < 0 && (errno == ENOTDIR || link_only))) {
        if (q->op == UOP_MLSD) {
            uresp_set(r, 501, "%s: Not a directory.", q->arg);
            goto done;
        }
        /* A single file (or a directory under -d): one line, named as the client wrote it. */
        const char *shown = *p ? p : ".";
        int fd = path_open(s->rootfd, vp, O_PATH | O_NOFOLLOW, 0);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
            uresp_errno(r, errno, shown);
            if (fd >= 0)
                close(fd);
            goto done;
        }
        char target[VPATH_MAX];
        const char *tgt = link_target(fd, "", &st, target);
        close(fd);
        if (q->op == UOP_NLST) {
            sbuf_printf(&out.buf, "%s\r\n", shown);
        } else {
            struct listent le = {.name = shown, .st = st, .target = tgt};
            list_format_ls(&out.buf, &le, &s->ids, now);
        }
        sink_finish(&out, shown, r);
        goto done;
    }
    if (dfd < 0 && errno == ENOENT && q->op != UOP_MLSD && strpbrk(p, "*?[")) {
        /* A wildcard in the last component (LIST *.txt, NLST *.c). */
        const char *base;
        if (vpath_split(vp, parent, sizeof parent, &base) == 0 && !strpbrk(parent, "*?[")) {
            pattern = base;
            dfd = path_open(s->rootfd, parent, O_PATH | O_DIRECTORY, 0);
        }
    }
    if (dfd < 0) {
        uresp_errno(r, errno, *p ? p : ".");
        goto done;
    }
    unsigned limit = s->cfg->max_list_entries;
    int got = read_dir(s, dfd, all || q->op == UOP_MLSD, pattern, limit, &v);
    if (got == -2) {
        /* Refused whole: a client mirroring with deletion would take a partial listing's
         * missing entries for deleted files. */
        uresp_set(r, 451,
                  "%s: more than %u entries to list (max_list_entries); list a pattern "
                  "or a subdirectory.",
                  *p ? p : ".", limit);
        goto done;
    }
    if (got < 0) {
        uresp_errno(r, errno, *p ? p : ".");
        goto done;
    }
    const char *dir_vp = pattern ? parent : vp;
    /* NLST dir answers "dir/name"; NLST dir/x*.c answers "dir/x1.c". */
    char nlst_prefix[VPATH_MAX] = "";
    if (pattern) {
        const char *slash = strrchr(p, '/');
        if (slash)
            snprintf(nlst_prefix, sizeof nlst_prefix, "%.*s", (int)(slash - p + 1), p);
    } else if (*p) {
        snprintf(nlst_prefix, sizeof nlst_prefix, "%s%s", p, p[strlen(p) - 1] == '/' ? "" : "/");
    }
    bool dir_w = can(dfd, ".", W_OK | X_OK);
    /* The cdir entry is the directory itself: deleting or renaming it is up to its parent,
     * as MLST of it says (the root has none). */
    bool cdir_parent_w = false;
    if (q->op == UOP_MLSD && strcmp(dir_vp, "/") != 0) {
        const char *base;
        int pfd = path_open_parent(s->rootfd, dir_vp, &base);
        if (pfd >= 0) {
            cdir_parent_w = can(pfd, ".", W_OK | X_OK);
            close(pfd);
        }
    }
    for (size_t i = 0; i < v.n && sink_flush(&out, LISTING_PIECE); i++) {
        const char *nm = name_at(&v, i);
        if (q->op == UOP_NLST) {
            /* Names usable as RETR/DELE arguments from the current directory (RFC 1123). */
            sbuf_printf(&out.buf, "%s%s\r\n", nlst_prefix, nm);
            continue;
        }
        if (q->op == UOP_MLSD && strcmp(nm, "..") == 0)
            continue;
        struct entry e = {.name = nm};
        if (fstatat(dfd, nm, &e.st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* removed meanwhile */
        char target[VPATH_MAX];
        e.target = link_target(dfd, nm, &e.st, target);
        if (q->op == UOP_MLSD) {
            const char *type = strcmp(nm, ".") == 0 ? "cdir" : NULL;
            mlsx_line(s, &out.buf, dfd, dir_vp, &e, q->facts, type, type ? cdir_parent_w : dir_w,
                      true);
        } else {
            struct listent le = {.name = nm, .st = e.st, .target = e.target};
            list_format_ls(&out.buf, &le, &s->ids, now);
        }
    }
    sink_finish(&out, *p ? p : vp, r);
done:
    if (dfd >= 0)
        close(dfd);
    names_free(&v);
    sink_close(&out);
}

void cmd_mlst(struct usess *s, const struct ureq *q, struct uresp *r)
{
    char vp[VPATH_MAX];
    if (sess_vpath(s, q->arg[0] ? q->arg : ".", vp, r) < 0)
        return;
    struct entry e = {.name = vp};
    const char *base = ".";
    int dfd;
    bool parent_w = false;
    if (strcmp(vp, "/") == 0) {
        dfd = path_open(s->rootfd, vp, O_PATH | O_DIRECTORY, 0);
    } else {
        dfd = path_open_parent(s->rootfd, vp, &base);
        parent_w = dfd >= 0 && can(dfd, ".", W_OK | X_OK);
    }
    if (dfd < 0 || fstatat(dfd, base, &e.st, AT_SYMLINK_NOFOLLOW) < 0) {
        uresp_errno(r, errno, q->arg[0] ? q->arg : ".");
        if (dfd >= 0)
            close(dfd);
        return;
    }
    char target[VPATH_MAX];
    e.target = link_target(dfd, base, &e.st, target);
    struct sbuf line;
    sbuf_init(&line);
    char dirpart[VPATH_MAX];
    const char *dir_vp = "/";
    const char *b2;
    if (vpath_split(vp, dirpart, sizeof dirpart, &b2) == 0)
        dir_vp = dirpart;
    struct entry le = {.name = base, .st = e.st, .target = e.target};
    mlsx_line(s, &line, dfd, dir_vp, &le, q->facts, NULL, parent_w, false);
    uresp_set(r, 250, "Listing %s\n %s %s\nEnd", vp, line.data ? line.data : "", vp);
    sbuf_free(&line);
    close(dfd);
}
