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
    char *name;
    struct stat st;
    char *target;
};

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

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

static int read_dir(int dfd, bool all, const char *pattern, struct entry **out, size_t *count)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    struct entry *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        bool dot = strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0;
        if (nm[0] == '.' && !all && !(pattern && pattern[0] == '.'))
            continue;
        if (pattern && (dot || fnmatch(pattern, nm, FNM_PERIOD) != 0))
            continue;
        /* A listing line cannot carry CR or LF; such a name would forge further entries. */
        if (strpbrk(nm, "\r\n"))
            continue;
        struct stat st;
        if (fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* removed meanwhile */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            v = xrealloc(v, cap * sizeof *v);
        }
        v[n].name = xstrdup(nm);
        v[n].st = st;
        v[n].target = NULL;
        if (S_ISLNK(st.st_mode)) {
            char t[VPATH_MAX];
            ssize_t l = readlinkat(dfd, nm, t, sizeof t - 1);
            if (l >= 0) {
                t[l] = '\0';
                v[n].target = xstrdup(t);
            }
        }
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof *v, entry_cmp);
    *out = v;
    *count = n;
    return 0;
}

static void free_entries(struct entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].target);
    }
    free(v);
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

/* STAT path answers on the control connection: the LIST lines inside a 213 reply. */
static void to_reply(struct sbuf *b, const char *what, struct uresp *r)
{
    const size_t limit = 60 * 1024; /* well inside one message to the front */
    r->code = 213;
    sbuf_reset(&r->text);
    sbuf_printf(&r->text, "Status of %s:", what);
    for (const char *p = b->data ? b->data : ""; *p;) {
        size_t l = strcspn(p, "\r\n");
        if (r->text.len + l > limit) {
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

static int to_memfd(struct sbuf *b, struct uresp *r)
{
    int fd = memfd_create("ftpsd-listing", MFD_CLOEXEC);
    if (fd < 0 || write_full(fd, b->data ? b->data : "", b->len) < 0 ||
        lseek(fd, 0, SEEK_SET) < 0) {
        uresp_set(r, 451, "Cannot build the listing: %s.", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    r->fd = fd;
    r->value = b->len;
    r->code = 150;
    return 0;
}

static bool names_entry(struct usess *s, const char *arg)
{
    char vp[VPATH_MAX];
    if (vpath_join(s->cwd, arg, vp, sizeof vp) < 0)
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
    bool all = false;
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
    struct sbuf out;
    sbuf_init(&out);
    time_t now = time(NULL);
    struct entry *v = NULL;
    size_t n = 0;
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
    if (dfd < 0 && (errno == ENOTDIR || link_only)) {
        if (q->op == UOP_MLSD) {
            uresp_set(r, 501, "%s: Not a directory.", q->arg);
            goto done;
        }
        /* A single file: one line, named as the client wrote it. */
        int fd = path_open(s->rootfd, vp, O_PATH | O_NOFOLLOW, 0);
        struct entry e = {.name = (char *)p};
        if (fd < 0 || fstat(fd, &e.st) < 0) {
            uresp_errno(r, errno, p);
            if (fd >= 0)
                close(fd);
            goto done;
        }
        char target[VPATH_MAX];
        ssize_t tl = S_ISLNK(e.st.st_mode) ? readlinkat(fd, "", target, sizeof target - 1) : -1;
        if (tl >= 0)
            target[tl] = '\0';
        close(fd);
        if (q->op == UOP_NLST) {
            sbuf_printf(&out, "%s\r\n", p);
        } else {
            struct listent le = {.name = p, .st = e.st, .target = tl >= 0 ? target : NULL};
            list_format_ls(&out, &le, &s->ids, now);
        }
        if (q->op == UOP_STAT)
            to_reply(&out, p, r);
        else
            to_memfd(&out, r);
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
    if (read_dir(dfd, all || q->op == UOP_MLSD, pattern, &v, &n) < 0) {
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
    for (size_t i = 0; i < n; i++) {
        struct entry *e = &v[i];
        if (q->op == UOP_MLSD) {
            if (strcmp(e->name, "..") == 0)
                continue;
            bool cdir = strcmp(e->name, ".") == 0;
            mlsx_line(s, &out, dfd, dir_vp, e, q->facts, cdir ? "cdir" : NULL, dir_w, true);
        } else if (q->op == UOP_NLST) {
            /* Names usable as RETR/DELE arguments from the current directory (RFC 1123). */
            sbuf_printf(&out, "%s%s\r\n", nlst_prefix, e->name);
        } else {
            struct listent le = {.name = e->name, .st = e->st, .target = e->target};
            list_format_ls(&out, &le, &s->ids, now);
        }
    }
    if (q->op == UOP_STAT)
        to_reply(&out, *p ? p : vp, r);
    else
        to_memfd(&out, r);
done:
    if (dfd >= 0)
        close(dfd);
    free_entries(v, n);
    sbuf_free(&out);
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
    if (S_ISLNK(e.st.st_mode)) {
        ssize_t l = readlinkat(dfd, base, target, sizeof target - 1);
        if (l >= 0) {
            target[l] = '\0';
            e.target = target;
        }
    }
    struct sbuf line;
    sbuf_init(&line);
    char dirpart[VPATH_MAX];
    const char *dir_vp = "/";
    const char *b2;
    if (vpath_split(vp, dirpart, sizeof dirpart, &b2) == 0)
        dir_vp = dirpart;
    struct entry le = {.name = (char *)base, .st = e.st, .target = e.target};
    mlsx_line(s, &line, dfd, dir_vp, &le, q->facts, NULL, parent_w, false);
    uresp_set(r, 250, "Listing %s\n %s %s\nEnd", vp, line.data ? line.data : "", vp);
    sbuf_free(&line);
    close(dfd);
}
