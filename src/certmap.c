#include "certmap.h"

#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAX_LINE 4096
#define MAX_USER 255
#define MAX_FILE (1 << 20)

enum kind { KIND_SUBJECT, KIND_EMAIL, KIND_UPN };

struct rule {
    unsigned line;
    enum kind kind;
    char *issuer; /* NULL: any issuer */
    bool is_regex;
    char *exact;
    regex_t re;       /* ^(pattern)$, so the map's group n is group n + 1 here */
    unsigned ngroups; /* the map's own groups */
    char *user;       /* template, checked by parse_user */
};

struct certmap {
    struct rule *rules;
    size_t n, cap;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool bad_user_char(unsigned char c)
{
    return c == '/' || c == ':' || c <= ' ' || c == 0x7f;
}

/* "." and ".." contain no '/' but still walk out of a root_dir built from the name. */
static bool valid_user(const char *u, size_t n)
{
    if (n == 0 || n > MAX_USER || strcmp(u, ".") == 0 || strcmp(u, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (bad_user_char((unsigned char)u[i]))
            return false;
    return true;
}

static const char *skip_blanks(const char *p)
{
    while (is_blank(*p))
        p++;
    return p;
}

static const char *read_word(const char *p, struct sbuf *out)
{
    const char *s = p;
    while (*p && !is_blank(*p))
        p++;
    sbuf_reset(out);
    sbuf_add(out, s, (size_t)(p - s));
    return p;
}

/* A "string" or /regex/ starting at *p, with the delimiter's escapes resolved. Returns the end,
 * or NULL with *why set. */
static const char *read_delimited(const char *p, struct sbuf *out, const char **why)
{
    char delim = *p++;
    sbuf_reset(out);
    sbuf_add(out, "", 0);
    for (;;) {
        if (!*p) {
            *why = delim == '"' ? "unterminated quoted string"
                                : "unterminated regex (a '/' inside it is written \\/)";
            return NULL;
        }
        if (*p == delim)
            break;
        if (*p == '\\' && delim == '"') {
            if (p[1] != '"' && p[1] != '\\') {
                *why = "in a quoted string, a backslash must be followed by \" or \\";
                return NULL;
            }
            sbuf_addc(out, p[1]);
            p += 2;
        } else if (*p == '\\' && p[1] == '/') {
            sbuf_addc(out, '/');
            p += 2;
        } else if (*p == '\\' && p[1]) {
            /* Kept as a pair so that "\\/" is a backslash and then the closing '/'. */
            sbuf_add(out, p, 2);
            p += 2;
        } else {
            sbuf_addc(out, *p++);
        }
    }
    p++;
    if (*p && !is_blank(*p)) {
        *why = delim == '"' ? "a blank must follow the closing quote"
                            : "a blank must follow the regex's closing '/' (there are no flags)";
        return NULL;
    }
    return p;
}

/* The end of the bracket expression starting at p, or NULL. Inside one, '(' ')' and '\' are
 * ordinary characters, so wrap_regex must not look at them. */
static const char *bracket_end(const char *p)
{
    p++;
    if (*p == '^')
        p++;
    if (*p == ']')
        p++;
    while (*p && *p != ']') {
        if (*p == '[' && (p[1] == '.' || p[1] == ':' || p[1] == '=')) {
            char d = p[1];
            p += 2;
            while (*p && !(p[0] == d && p[1] == ']'))
                p++;
            if (!*p)
                return NULL;
            p += 2;
        } else {
            p++;
        }
    }
    return *p ? p + 1 : NULL;
}

/* Builds ^(body)$. glibc takes an unmatched ')' as a literal, so "a)|(b" would close the
 * anchoring group early and leave "^(a)" anchored at one end only: refuse it. The body's own
 * back-references move up by one, like its groups. Adjacent repetition operators ("a**",
 * "a+?", "a{2}*") are refused too: POSIX leaves them undefined, and glibc's regcomp takes time
 * exponential in their number (a fuzzer's "[)(]" and 60 '*' did not compile in 30 s). */
static int wrap_regex(const char *body, struct sbuf *out, char *why, size_t whylen)
{
    int depth = 0;
    bool after_rep = false, in_interval = false;
    sbuf_adds(out, "^(");
    for (const char *p = body; *p;) {
        bool rep = !in_interval && (*p == '*' || *p == '+' || *p == '?' || *p == '{');
        if (rep && after_rep) {
            snprintf(why, whylen,
                     "adjacent repetition operators in the regex ('%c' after another one); "
                     "group them, as in (a*)?",
                     *p);
            return -1;
        }
        after_rep = (rep && *p != '{') || (in_interval && *p == '}');
        if (*p == '{' && rep)
            in_interval = true;
        else if (*p == '}')
            in_interval = false;
        if (*p == '\\' && p[1] >= '1' && p[1] <= '9') {
            if (p[1] == '9') {
                snprintf(why, whylen, "\\9 cannot be used inside a regex (at most \\8)");
                return -1;
            }
            sbuf_addc(out, '\\');
            sbuf_addc(out, (char)(p[1] + 1));
            p += 2;
        } else if (*p == '\\' && p[1]) {
            sbuf_add(out, p, 2);
            p += 2;
        } else if (*p == '[' && bracket_end(p)) {
            const char *e = bracket_end(p);
            sbuf_add(out, p, (size_t)(e - p));
            p = e;
        } else {
            if (*p == '(')
                depth++;
            if (*p == ')' && depth-- == 0) {
                snprintf(why, whylen, "unmatched ')' in the regex (a literal one is written \\))");
                return -1;
            }
            sbuf_addc(out, *p++);
        }
    }
    sbuf_adds(out, ")$");
    return 0;
}

static int compile_regex(struct rule *r, const char *body, char *why, size_t whylen)
{
    char err[256];
    struct sbuf w;
    sbuf_init(&w);
    /* Wrapped first: it also refuses what regcomp could take exponential time over. */
    if (wrap_regex(body, &w, why, whylen) < 0) {
        sbuf_free(&w);
        return -1;
    }
    regex_t raw;
    /* Compiled alone first so that errors are about what the admin wrote, not the wrapping. */
    int rc = regcomp(&raw, body, REG_EXTENDED);
    if (rc != 0) {
        regerror(rc, &raw, err, sizeof err);
        snprintf(why, whylen, "regex does not compile: %s", err);
        sbuf_free(&w);
        return -1;
    }
    size_t nsub = raw.re_nsub;
    regfree(&raw);

    rc = regcomp(&r->re, w.data, REG_EXTENDED);
    sbuf_free(&w);
    if (rc != 0) {
        regerror(rc, &r->re, err, sizeof err);
        snprintf(why, whylen, "regex does not compile: %s", err);
        return -1;
    }
    if (r->re.re_nsub != nsub + 1) {
        regfree(&r->re);
        snprintf(why, whylen, "regex cannot be anchored");
        return -1;
    }
    r->ngroups = (unsigned)nsub;
    return 0;
}

/* Catches at load time what would make every lookup fail or take a capture from nowhere. */
static int check_user(const struct rule *r, char *why, size_t whylen)
{
    const char *u = r->user;
    size_t literal = 0;
    bool captures = false;
    if (u[0] == '"') {
        snprintf(why, whylen, "the user name is written without quotes");
        return -1;
    }
    for (const char *p = u; *p; p++) {
        if (*p == '\\') {
            if (p[1] < '1' || p[1] > '9') {
                snprintf(why, whylen,
                         "in the user name, a backslash must be followed by a digit 1 to 9");
                return -1;
            }
            unsigned g = (unsigned)(p[1] - '0');
            if (!r->is_regex) {
                snprintf(why, whylen, "\\%u in the user name needs a /regex/ pattern", g);
                return -1;
            }
            if (g > r->ngroups) {
                snprintf(why, whylen, "the user name uses \\%u but the regex has %u group%s", g,
                         r->ngroups, r->ngroups == 1 ? "" : "s");
                return -1;
            }
            captures = true;
            p++;
        } else if (bad_user_char((unsigned char)*p)) {
            snprintf(why, whylen, "the user name must not contain '/', ':' or control characters");
            return -1;
        } else {
            literal++;
        }
    }
    if (literal > MAX_USER || (!captures && !valid_user(u, literal))) {
        snprintf(why, whylen, "'%.64s' is not a valid user name", u);
        return -1;
    }
    return 0;
}

static void free_rule(struct rule *r)
{
    free(r->issuer);
    free(r->exact);
    free(r->user);
    if (r->is_regex)
        regfree(&r->re);
}

/* Returns the number of errors reported; on 0, *r is the rule. */
static unsigned parse_rule(const char *p, struct rule *r, const char *name, unsigned lineno,
                           void (*errfn)(const char *))
{
    struct sbuf f;
    sbuf_init(&f);
    const char *why = NULL;
    char whybuf[512];
    unsigned errors = 0;
    char *pattern = NULL;
    memset(r, 0, sizeof *r);
    r->line = lineno;

    p = read_word(p, &f);
    if (strcmp(f.data, "issuer") == 0) {
        p = skip_blanks(p);
        if (*p != '"') {
            why = "issuer must be followed by a quoted DN";
            goto fail;
        }
        if (!(p = read_delimited(p, &f, &why)))
            goto fail;
        r->issuer = xstrdup(f.data);
        p = skip_blanks(p);
        if (!*p) {
            why = "missing kind (subject, email or upn) after the issuer";
            goto fail;
        }
        p = read_word(p, &f);
    }
    if (strcmp(f.data, "subject") == 0) {
        r->kind = KIND_SUBJECT;
    } else if (strcmp(f.data, "email") == 0) {
        r->kind = KIND_EMAIL;
    } else if (strcmp(f.data, "upn") == 0) {
        r->kind = KIND_UPN;
    } else {
        snprintf(whybuf, sizeof whybuf, "unknown kind '%.64s' (expected subject, email or upn)",
                 f.data);
        why = whybuf;
        goto fail;
    }

    p = skip_blanks(p);
    if (!*p) {
        why = "missing pattern and user name";
        goto fail;
    }
    if (*p != '"' && *p != '/') {
        why = "the pattern must be \"string\" or /regex/";
        goto fail;
    }
    r->is_regex = *p == '/';
    if (!(p = read_delimited(p, &f, &why)))
        goto fail;
    pattern = xstrdup(f.data);

    p = skip_blanks(p);
    if (!*p) {
        why = "missing user name";
        goto fail;
    }
    p = read_word(p, &f);
    r->user = xstrdup(f.data);
    if (*skip_blanks(p)) {
        why = "extra field after the user name";
        goto fail;
    }
    sbuf_free(&f);

    /* The line's shape is right: report the regex and the user name each on their own. */
    bool compiled = false;
    if (r->is_regex) {
        if (compile_regex(r, pattern, whybuf, sizeof whybuf) < 0) {
            report_at(errfn, name, lineno, "%s", whybuf);
            errors++;
            r->ngroups = 9; /* do not blame the user name for the regex */
        } else {
            compiled = true;
        }
        free(pattern);
    } else {
        r->exact = pattern;
    }
    if (check_user(r, whybuf, sizeof whybuf) < 0) {
        report_at(errfn, name, lineno, "%s", whybuf);
        errors++;
    }
    if (errors) {
        r->is_regex = compiled;
        free_rule(r);
    }
    return errors;

fail:
    report_at(errfn, name, lineno, "%s", why);
    sbuf_free(&f);
    free(pattern);
    r->is_regex = false;
    free_rule(r);
    return 1;
}

struct certmap *certmap_parse(const char *text, const char *name, void (*errfn)(const char *msg))
{
    struct certmap *m = xcalloc(1, sizeof *m);
    unsigned errors = 0, lineno = 0;
    if (!name)
        name = "(certificate map)";
    for (const char *p = text ? text : ""; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        const char *start = p;
        p += n + (nl ? 1 : 0);
        lineno++;
        if (n > 0 && start[n - 1] == '\r')
            n--;
        if (n > MAX_LINE) {
            report_at(errfn, name, lineno, "line is longer than %d bytes", MAX_LINE);
            errors++;
            continue;
        }
        char line[MAX_LINE + 1];
        memcpy(line, start, n);
        line[n] = '\0';
        const char *s = skip_blanks(line);
        if (*s == '\0' || *s == '#')
            continue;
        struct rule r;
        unsigned e = parse_rule(s, &r, name, lineno, errfn);
        if (e) {
            errors += e;
            continue;
        }
        if (m->n == m->cap) {
            m->cap = m->cap ? 2 * m->cap : 16;
            m->rules = xrealloc(m->rules, m->cap * sizeof *m->rules);
        }
        m->rules[m->n++] = r;
    }
    if (errors) {
        certmap_free(m);
        return NULL;
    }
    return m;
}

static void load_error(void (*errfn)(const char *), const char *path, const char *what)
{
    if (!errfn)
        return;
    char msg[1200];
    snprintf(msg, sizeof msg, "%s: %s", path, what);
    errfn(msg);
}

struct certmap *certmap_load(const char *path, void (*errfn)(const char *msg))
{
    FILE *f = fopen(path, "re");
    if (!f) {
        char why[300];
        snprintf(why, sizeof why, "cannot open: %m");
        load_error(errfn, path, why);
        return NULL;
    }
    struct sbuf b;
    sbuf_init(&b);
    sbuf_add(&b, "", 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= MAX_FILE)
        sbuf_add(&b, chunk, n);
    int err = ferror(f);
    fclose(f);
    struct certmap *m = NULL;
    if (err)
        load_error(errfn, path, "read error");
    else if (b.len > MAX_FILE)
        load_error(errfn, path, "file is larger than 1 MiB");
    else if (memchr(b.data, '\0', b.len))
        load_error(errfn, path, "file contains NUL bytes");
    else
        m = certmap_parse(b.data, path, errfn);
    sbuf_free(&b);
    return m;
}

/* Builds the user name into out; false if it is not a valid name or does not fit. */
static bool expand_user(const struct rule *r, const char *value, const regmatch_t *g, char *out,
                        size_t cap)
{
    char buf[MAX_USER + 1];
    size_t n = 0;
    for (const char *p = r->user; *p; p++) {
        const char *s = p;
        size_t len = 1;
        if (*p == '\\') {
            const regmatch_t *c = &g[*++p - '0' + 1];
            if (c->rm_so < 0)
                continue;
            s = value + c->rm_so;
            len = (size_t)(c->rm_eo - c->rm_so);
        }
        if (len > MAX_USER - n)
            return false;
        memcpy(buf + n, s, len);
        n += len;
    }
    buf[n] = '\0';
    if (!valid_user(buf, n) || n >= cap)
        return false;
    memcpy(out, buf, n + 1);
    return true;
}

static bool match_value(const struct rule *r, const char *value, char *out, size_t cap)
{
    if (!r->is_regex)
        return strcmp(value, r->exact) == 0 && expand_user(r, value, NULL, out, cap);
    regmatch_t g[11]; /* the anchoring group and the map's \1 to \9 */
    if (regexec(&r->re, value, ARRAY_LEN(g), g, 0) != 0)
        return false;
    /* The anchors already ensure this; a partial match must never pick a user. */
    if (g[0].rm_so != 0 || (size_t)g[0].rm_eo != strlen(value))
        return false;
    return expand_user(r, value, g, out, cap);
}

unsigned certmap_lookup(const struct certmap *m, const struct cert_ids *ids, char *user, size_t cap)
{
    if (!user || cap == 0)
        return 0;
    user[0] = '\0';
    if (!m || !ids)
        return 0;
    for (size_t i = 0; i < m->n; i++) {
        const struct rule *r = &m->rules[i];
        if (r->issuer && (!ids->issuer || strcmp(r->issuer, ids->issuer) != 0))
            continue;
        const char *const *values;
        size_t nvalues;
        switch (r->kind) {
        case KIND_SUBJECT:
            values = &ids->subject;
            nvalues = 1;
            break;
        case KIND_EMAIL:
            values = ids->emails;
            nvalues = ids->emails ? ids->nemails : 0;
            break;
        default:
            values = ids->upns;
            nvalues = ids->upns ? ids->nupns : 0;
            break;
        }
        for (size_t k = 0; k < nvalues; k++)
            if (values[k] && match_value(r, values[k], user, cap))
                return r->line;
    }
    return 0;
}

size_t certmap_rule_count(const struct certmap *m)
{
    return m ? m->n : 0;
}

void certmap_free(struct certmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free_rule(&m->rules[i]);
    free(m->rules);
    free(m);
}
