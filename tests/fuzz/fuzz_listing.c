/*
 * Listing formats: list_format_ls (LIST), list_format_mlsx (MLSD/MLST), format_mdtm,
 * mlst_parse_facts (OPTS MLST), mlst_feat_line / mlst_selected.
 *
 * Input: a struct stat (mode, nlink, uid, gid, size, mtime, dev, ino), the clock, the MLST fact
 * set and switches (fixed-size header), then NUL-separated strings: the name, the symlink
 * target, a type override, the perm fact, an OPTS MLST fact list, and user/group names for the
 * id map. Every field of struct stat takes any value the kernel can hand back (file systems
 * such as tmpfs and btrfs store any 64-bit mtime a user sets with utimensat/touch -d).
 *
 * Checked: each formatted entry is exactly one line ending in CRLF when the name, symlink
 * target, type and perm strings hold no CR/LF (whatever the user and group names hold); the MLSX
 * facts are "fact=value;" items; mlst_parse_facts only returns known bits and round-trips through
 * mlst_selected.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "listing.h"
#include "util.h"

#include "fuzz.h"

/* One line ending in CRLF when none of the strings that go into it verbatim holds a CR or LF.
 * The type override and the perm fact are the server's own words ("cdir", "adfrw"), so the
 * harness's arbitrary ones count as such strings; user and group names never do: a name with
 * a control character is shown as its number. */
static void check_one_line(const struct sbuf *b, size_t from, const char *const *verbatim, size_t n)
{
    bool clean = true;
    for (size_t i = 0; i < n; i++)
        if (verbatim[i] && strpbrk(verbatim[i], "\r\n"))
            clean = false;
    FUZZ_ASSERT(b->len >= from + 2 && b->data[b->len - 2] == '\r' && b->data[b->len - 1] == '\n');
    if (clean) {
        const char *crlf = strstr(b->data + from, "\r\n");
        FUZZ_ASSERT(crlf == b->data + b->len - 2);
    }
}

/*
 * Fills the stack below the caller with a pattern, so that a callee reading a local it never set
 * (ASan does not see that) gets the same wrong value on every run, and a crash found while
 * fuzzing reproduces when the saved input is run alone.
 */
__attribute__((noinline)) static void scribble_stack(void)
{
    volatile unsigned char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = 0xa5;
    __asm__ volatile("" : : "r"(junk) : "memory");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fin in = {data, size};
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_mode = (mode_t)fin_uint(&in, 4);
    st.st_nlink = (nlink_t)fin_uint(&in, 8);
    st.st_uid = (uid_t)fin_uint(&in, 4);
    st.st_gid = (gid_t)fin_uint(&in, 4);
    st.st_size = (off_t)fin_uint(&in, 8);
    st.st_mtime = (time_t)fin_uint(&in, 8);
    st.st_dev = (dev_t)fin_uint(&in, 8);
    st.st_ino = (ino_t)fin_uint(&in, 8);
    /* time(NULL) of the server: any time from 1970 to the year 2554. */
    time_t now = (time_t)(fin_uint(&in, 8) & ((1ull << 34) - 1));
    unsigned facts = fin_u8(&in);
    uint8_t sw = fin_u8(&in);

    char *str[7] = {0};
    for (size_t i = 0; i < ARRAY_LEN(str); i++) {
        size_t n;
        const uint8_t *p = fin_field(&in, &n);
        str[i] = fuzz_strndup(p, n);
    }
    const char *name = str[0];
    const char *target = (sw & 1) ? str[1] : NULL;
    const char *type = (sw & 2) ? str[2] : NULL;
    const char *perm = (sw & 4) ? str[3] : NULL;

    struct idname users[2] = {{.id = 0, .name = "root"}, {.id = 1000, .name = ""}};
    struct idname groups[1] = {{.id = 1000, .name = ""}};
    snprintf(users[1].name, sizeof users[1].name, "%s", str[5]);
    snprintf(groups[0].name, sizeof groups[0].name, "%s", str[6]);
    struct idmap ids = {.users = users, .nusers = 2, .groups = groups, .ngroups = 1};

    struct sbuf b;
    sbuf_init(&b);
    struct listent e = {.name = name, .st = st, .target = target};
    scribble_stack();
    list_format_ls(&b, &e, (sw & 8) ? NULL : &ids, now);
    check_one_line(&b, 0, (const char *const[]){name, target}, 2);

    /* MLSD: "facts name\r\n", where the facts are what MLST prints for the same entry. */
    struct sbuf full, only;
    sbuf_init(&full);
    sbuf_init(&only);
    scribble_stack();
    list_format_mlsx(&full, &e, facts, type, perm, &ids);
    check_one_line(&full, 0, (const char *const[]){name, target, type, perm}, 4);
    struct listent facts_only = {.name = NULL, .st = st, .target = target};
    list_format_mlsx(&only, &facts_only, facts, type, perm, NULL);
    size_t nl = strlen(name);
    FUZZ_ASSERT(full.len == only.len + 1 + nl + 2);
    FUZZ_ASSERT(memcmp(full.data, only.data ? only.data : "", only.len) == 0);
    FUZZ_ASSERT(full.data[only.len] == ' ' && memcmp(full.data + only.len + 1, name, nl) == 0);
    /* Each fact is "name=value;" (RFC 3659 7.5: a value holds no ';'), when the strings that
     * go into values (type override, perm, symlink target) hold no ';' themselves. */
    if (!strchr(type ? type : "", ';') && !strchr(perm ? perm : "", ';') &&
        !strchr(target ? target : "", ';')) {
        for (const char *q = only.data ? only.data : ""; *q;) {
            const char *semi = strchr(q, ';');
            FUZZ_ASSERT(semi != NULL);
            const char *eq = memchr(q, '=', (size_t)(semi - q));
            FUZZ_ASSERT(eq != NULL && eq > q);
            q = semi + 1;
        }
    }
    sbuf_free(&full);
    sbuf_free(&only);

    char t[20];
    scribble_stack();
    format_mdtm(t, sizeof t, st.st_mtime);
    FUZZ_ASSERT(strlen(t) < sizeof t);

    unsigned parsed = 0xdead;
    if (mlst_parse_facts(str[4], &parsed) == 0) {
        FUZZ_ASSERT((parsed & ~FACT_ALL) == 0);
        struct sbuf s;
        sbuf_init(&s);
        mlst_selected(&s, parsed);
        unsigned again = 0;
        FUZZ_ASSERT(mlst_parse_facts(s.data ? s.data : "", &again) == 0 && again == parsed);
        sbuf_reset(&s);
        mlst_feat_line(&s, parsed);
        FUZZ_ASSERT(s.len > 0);
        sbuf_free(&s);
    } else {
        FUZZ_ASSERT(parsed == 0xdead);
    }

    sbuf_free(&b);
    for (size_t i = 0; i < ARRAY_LEN(str); i++)
        free(str[i]);
    return 0;
}
