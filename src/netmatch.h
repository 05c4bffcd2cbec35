/* Address lists in configuration: CIDR matching, and pasv_address per client network. */
#ifndef FTPSD_NETMATCH_H
#define FTPSD_NETMATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;
};

/* "10.0.0.0/8", "2001:db8::/32", "192.0.2.7" (a host). 0 or -1. */
int cidr_parse(const char *s, struct cidr *out);
/* IPv4-mapped IPv6 addresses match IPv4 networks. */
bool cidr_match(const struct cidr *c, const struct sockaddr_storage *ss);
/* A comma/blank separated list. Returns the count, or -1 with what is wrong in why (a
 * sentence for a configuration message: the bad entry quoted, or what the list breaks). */
int cidr_parse_list(const char *s, struct cidr *out, size_t max, char *why, size_t whylen);

#define PASV_RULES_MAX 16
struct pasv_rule {
    bool any; /* no network given: the default */
    struct cidr net;
    char address[256]; /* IPv4 address or host name as configured */
};
/*
 * pasv_address: "203.0.113.10", "ftp.example.org", or a list "10.0.0.0/8=10.1.1.5,
 * 203.0.113.10" where the first network containing the client wins and an entry without a
 * network is the default. Returns the count, or -1 with what is wrong in why, as
 * cidr_parse_list.
 */
int pasv_rules_parse(const char *s, struct pasv_rule *out, size_t max, char *why, size_t whylen);

#endif
