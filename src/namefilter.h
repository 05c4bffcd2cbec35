/*
 * deny_file and hide_file: lists of shell glob patterns (fnmatch(3)), each matched against one
 * name (a path component), never against a whole path: "/" cannot occur in a name, so a
 * pattern holds none, and what a pattern means does not depend on where the name is.
 */
#ifndef FTPSD_NAMEFILTER_H
#define FTPSD_NAMEFILTER_H

#include <stdbool.h>
#include <stddef.h>

#define NAMEFILTER_MAX 64          /* patterns in one list */
#define NAMEFILTER_PATTERN_MAX 255 /* bytes in one pattern, as in one name (NAME_MAX) */

struct namefilter {
    unsigned n;
    const char *pat[NAMEFILTER_MAX];
    char *buf; /* the patterns, each NUL-terminated, back to back */
};

/*
 * Parses list: patterns separated by commas, blanks around each ignored; vsftpd's form
 * "{a,b}" is taken too. A '\' makes the next character literal (a comma, a blank, '*'), and a
 * comma inside a bracket expression ("[,;]") belongs to it. "" is the empty list. Returns 0,
 * or -1 with why (naming the pattern) and f empty.
 */
int namefilter_parse(struct namefilter *f, const char *list, char *why, size_t whylen);
/* The first pattern that matches name (case-sensitive; '*' and '?' match a leading '.'), or
 * NULL. */
const char *namefilter_match(const struct namefilter *f, const char *name);
/* The first component of vpath (components separated by '/') that a pattern matches: copied
 * into comp (cut to cap) with the pattern in *pat; false if none does. */
bool namefilter_match_path(const struct namefilter *f, const char *vpath, char *comp, size_t cap,
                           const char **pat);
void namefilter_free(struct namefilter *f);

#endif
