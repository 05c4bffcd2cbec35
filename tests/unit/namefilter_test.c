#include "namefilter.h"

#include <string.h>

#include "unit.h"

/* The patterns list parses into, joined by '|', or "(error: why)". */
static const char *parsed(const char *list)
{
    static char out[4096];
    struct namefilter f;
    char why[256];
    if (namefilter_parse(&f, list, why, sizeof why) < 0) {
        snprintf(out, sizeof out, "(error: %s)", why);
        CHECK(f.n == 0 && f.buf == NULL);
        return out;
    }
    out[0] = '\0';
    for (unsigned i = 0; i < f.n; i++)
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? "|" : "", f.pat[i]);
    namefilter_free(&f);
    return out;
}

/* The pattern of list that name matches, "" for none. */
static const char *matched(const char *list, const char *name)
{
    static char out[300];
    struct namefilter f;
    char why[256];
    if (namefilter_parse(&f, list, why, sizeof why) < 0)
        return "(error)";
    const char *p = namefilter_match(&f, name);
    snprintf(out, sizeof out, "%s", p ? p : "");
    namefilter_free(&f);
    return out;
}

/* "component pattern" of the first component of vpath that list denies, "" for none. */
static const char *path_hit(const char *list, const char *vpath)
{
    static char out[600];
    struct namefilter f;
    char why[256], comp[256];
    const char *pat = NULL;
    if (namefilter_parse(&f, list, why, sizeof why) < 0)
        return "(error)";
    out[0] = '\0';
    if (namefilter_match_path(&f, vpath, comp, sizeof comp, &pat))
        snprintf(out, sizeof out, "%s %s", comp, pat);
    namefilter_free(&f);
    return out;
}

int main(void)
{
    /* Lists: commas, blanks, vsftpd's braces, escapes, brackets. */
    CHECK_STR(parsed(""), "");
    CHECK_STR(parsed("   "), "");
    CHECK_STR(parsed("{}"), "");
    CHECK_STR(parsed(".ssh"), ".ssh");
    CHECK_STR(parsed(" .ssh , .gnupg,*.key "), ".ssh|.gnupg|*.key");
    CHECK_STR(parsed("{.ssh,*.key}"), ".ssh|*.key");
    CHECK_STR(parsed("a\\,b,c"), "a\\,b|c");
    CHECK_STR(parsed("[,;]x, y"), "[,;]x|y");
    CHECK_STR(parsed("[]a]b"), "[]a]b");
    CHECK_STR(parsed("[![:digit:]]*"), "[![:digit:]]*");
    CHECK_STR(parsed("my file"), "my file");
    CHECK_STR(parsed("end\\ "), "end\\ ");
    CHECK_STR(parsed("end\\ ,x"), "end\\ |x");

    /* Errors name the pattern and what is wrong with it. */
    CHECK_STR(parsed("a,,b"), "(error: pattern '' is empty (two commas, or one at an end))");
    CHECK_STR(parsed("a,"), "(error: pattern '' is empty (two commas, or one at an end))");
    CHECK_STR(parsed("*.key, [abc"), "(error: pattern '[abc' has a '[' without its closing ']')");
    CHECK_STR(parsed("a\\"), "(error: pattern 'a\\' ends in a lone '\\')");
    CHECK_STR(parsed(".ssh/id_rsa"), "(error: pattern '.ssh/id_rsa' contains '/': a pattern "
                                     "matches one name in a path, not a path)");
    CHECK_STR(parsed("[[:nope:]]"), "(error: pattern '[[:nope:]]' names an unknown character "
                                    "class (alpha, digit, upper... are known))");
    CHECK_STR(parsed("x,.."), "(error: pattern '..' names '.' or '..', which are never the "
                              "name of a file)");
    CHECK_STR(parsed("a\tb"), "(error: pattern 'a\tb' contains a control character)");
    CHECK_STR(parsed("a\x01"), "(error: pattern 'a\x01' contains a control character)");
    char many[400] = "";
    for (int i = 0; i < 65; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sp%d", i ? "," : "", i);
    CHECK_STR(parsed(many), "(error: more than 64 patterns)");
    many[strlen(many) - 4] = '\0'; /* 64 of them */
    CHECK(strncmp(parsed(many), "p0|p1|", 6) == 0);
    char longpat[300];
    memset(longpat, 'a', 256);
    longpat[256] = '\0';
    CHECK(strstr(parsed(longpat), "is longer than 255 bytes") != NULL);
    longpat[255] = '\0';
    CHECK_STR(parsed(longpat), longpat);

    /* Matching: whole names, case-sensitive, '*' takes a leading dot. */
    CHECK_STR(matched(".ssh,*.key", ".ssh"), ".ssh");
    CHECK_STR(matched(".ssh,*.key", ".SSH"), "");
    CHECK_STR(matched(".ssh,*.key", ".ssh2"), "");
    CHECK_STR(matched(".ssh,*.key", "server.key"), "*.key");
    CHECK_STR(matched(".ssh,*.key", ".secret.key"), "*.key");
    CHECK_STR(matched(".ssh,*.key", "key"), "");
    CHECK_STR(matched("*", ".profile"), "*");
    CHECK_STR(matched("*.[kK][eE][yY]", "a.KEY"), "*.[kK][eE][yY]");
    CHECK_STR(matched("a\\,b", "a,b"), "a\\,b");
    CHECK_STR(matched("\\*", "*"), "\\*");
    CHECK_STR(matched("\\*", "x"), "");
    CHECK_STR(matched("", "anything"), "");

    /* Paths: any component, the first that matches. */
    CHECK_STR(path_hit(".ssh", "/home/alice/.ssh/authorized_keys"), ".ssh .ssh");
    CHECK_STR(path_hit(".ssh", "/.ssh"), ".ssh .ssh");
    CHECK_STR(path_hit(".ssh", "/a.ssh/b"), "");
    CHECK_STR(path_hit(".ssh", "/"), "");
    CHECK_STR(path_hit("*.key,priv*", "/private/x.key"), "private priv*");
    CHECK_STR(path_hit("b", "/a/b/c"), "b b");
    CHECK_STR(path_hit("", "/a/b/c"), "");
    return unit_done("namefilter");
}
