#include "netmatch.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int cidr_parse(const char *s, struct cidr *out)
{
    char buf[80];
    if (strlen(s) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", s);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        out->prefix = 128;
    } else {
        return -1;
    }
    if (slash) {
        unsigned p;
        if (!parse_uint(slash + 1, out->prefix, &p))
            return -1;
        out->prefix = p;
    }
    return 0;
}

bool cidr_match(const struct cidr *c, const struct sockaddr_storage *ss)
{
    const unsigned char *a;
    int fam = ss->ss_family;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    if (fam == AF_INET) {
        a = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
    } else if (fam == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
        fam = AF_INET;
        a = &s6->sin6_addr.s6_addr[12];
    } else if (fam == AF_INET6) {
        a = s6->sin6_addr.s6_addr;
    } else {
        return false;
    }
    if (fam != c->family)
        return false;
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(a, c->addr, full) != 0)
        return false;
    if (rest) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));
        if ((a[full] & mask) != (c->addr[full] & mask))
            return false;
    }
    return true;
}

/* Splits at commas and blanks; returns the next token or NULL. */
static char *next_token(char **p)
{
    while (**p == ',' || isspace((unsigned char)**p))
        (*p)++;
    if (!**p)
        return NULL;
    char *t = *p;
    while (**p && **p != ',' && !isspace((unsigned char)**p))
        (*p)++;
    if (**p)
        *(*p)++ = '\0';
    return t;
}

/* Mistakes no single entry shows, which would otherwise be reported as a bad entry that is
 * only a piece of one: a '#' (configuration lines are comments only when they start with one,
 * so a "# note" after the list is part of the value), and blanks around '=' in a
 * network=address list (which split the entry in two or three). NULL when there is none. */
static const char *list_problem(const char *s, bool network_eq_address)
{
    if (strchr(s, '#'))
        return "comments go on their own line ('#' starts a comment only at the start of a "
               "line)";
    for (const char *e = s; network_eq_address && (e = strchr(e, '=')); e++)
        if ((e > s && isspace((unsigned char)e[-1])) || isspace((unsigned char)e[1]))
            return "no blanks around '=' (network=address, as in 10.0.0.0/8=10.1.1.5)";
    return NULL;
}

int cidr_parse_list(const char *s, struct cidr *out, size_t max, char *why, size_t whylen)
{
    const char *problem = list_problem(s, false);
    if (problem) {
        snprintf(why, whylen, "%s", problem);
        return -1;
    }
    char *copy = xstrdup(s), *p = copy, *t;
    int n = 0;
    while ((t = next_token(&p))) {
        if ((size_t)n >= max || cidr_parse(t, &out[n]) < 0) {
            if ((size_t)n >= max)
                snprintf(why, whylen, "at most %zu entries", max);
            else
                snprintf(why, whylen, "'%s' is not an address or network", t);
            free(copy);
            return -1;
        }
        n++;
    }
    free(copy);
    return n;
}

int pasv_rules_parse(const char *s, struct pasv_rule *out, size_t max, char *why, size_t whylen)
{
    const char *problem = list_problem(s, true);
    if (problem) {
        snprintf(why, whylen, "%s", problem);
        return -1;
    }
    char *copy = xstrdup(s), *p = copy, *t;
    int n = 0;
    while ((t = next_token(&p))) {
        if ((size_t)n >= max) {
            snprintf(why, whylen, "at most %zu entries", max);
            goto fail;
        }
        struct pasv_rule *r = &out[n];
        memset(r, 0, sizeof *r);
        char *eq = strchr(t, '=');
        const char *addr = t;
        if (eq) {
            *eq = '\0';
            addr = eq + 1;
            if (cidr_parse(t, &r->net) < 0) {
                snprintf(why, whylen, "'%s' is not a network (in network=address)", t);
                goto fail;
            }
        } else {
            r->any = true;
        }
        /* An IPv4 address or a host name (resolved when a session starts). */
        bool ok = *addr && strlen(addr) < sizeof r->address;
        for (const char *c = addr; ok && *c; c++)
            ok = isalnum((unsigned char)*c) || *c == '.' || *c == '-';
        /* All digits and dots: it must then be a real IPv4 address, not a host name. */
        struct in_addr a4;
        if (ok && strspn(addr, "0123456789.") == strlen(addr))
            ok = inet_pton(AF_INET, addr, &a4) == 1;
        if (!ok) {
            snprintf(why, whylen, "'%s' is not an address, host name or network=address", addr);
            goto fail;
        }
        snprintf(r->address, sizeof r->address, "%s", addr);
        n++;
    }
    free(copy);
    return n;
fail:
    free(copy);
    return -1;
}
